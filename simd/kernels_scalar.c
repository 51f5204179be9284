/*
 * kernels_scalar.c - the reference kernels: plain loops, no intrinsics.
 * Built with -ffp-contract=off so that a*b+c is never fused: this file is the
 * oracle the SIMD kernels are tested against.
 */
#include "kernels.h"

static float mfs_dot_scalar(const float *a, const float *b, size_t n)
{
	float s = 0.0f;
	for (size_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static void mfs_sgd_step_scalar(float *restrict p, float *restrict q, size_t n, struct mfs_step *s)
{
	mfs_step_finish(s, mfs_dot_scalar(p, q, n));
	const float g = s->grad, lr = s->lr, l2 = s->l2, l2q = s->l2_q;
	for (size_t i = 0; i < n; i++) {
		float pi = p[i], qi = q[i];
		p[i] = pi + lr * (g * qi - l2 * pi);
		q[i] = qi + lr * (g * pi - l2q * qi);
	}
}

static void mfs_adagrad_step_scalar(float *restrict p, float *restrict q, size_t n,
				    struct mfs_step *s)
{
	mfs_step_finish(s, mfs_dot_scalar(p, q, n));
	if (n == 0)
		return;
	const float g = s->grad, l2 = s->l2, l2q = s->l2_q;
	const float rp = s->lr / sqrtf(*s->acc_p), rq = s->lr / sqrtf(*s->acc_q);
	float sp = 0.0f, sq = 0.0f;
	for (size_t i = 0; i < n; i++) {
		float pi = p[i], qi = q[i];
		float gp = g * qi - l2 * pi;
		float gq = g * pi - l2q * qi;
		p[i] = pi + rp * gp;
		q[i] = qi + rq * gq;
		sp += gp * gp;
		sq += gq * gq;
	}
	*s->acc_p += sp / (float)(s->dim ? s->dim : n);
	*s->acc_q += sq / (float)(s->dim ? s->dim : n);
}

static void mfs_bpr_step_scalar(float *restrict p, float *restrict qi, float *restrict qj,
				size_t n, struct mfs_bpr *s)
{
	mfs_bpr_finish(s, mfs_dot_scalar(p, qi, n) - mfs_dot_scalar(p, qj, n));
	const float g = s->g, lr = s->lr, l2 = s->l2;
	for (size_t k = 0; k < n; k++) {
		float pk = p[k], a = qi[k], b = qj[k];
		p[k] = pk + lr * (g * (a - b) - l2 * pk);
		qi[k] = a + lr * (g * pk - l2 * a);
		qj[k] = b + lr * (-g * pk - l2 * b);
	}
}

static void mfs_score_scalar(const float *u, const float *rows, size_t stride, size_t n,
			     size_t count, float *out)
{
	for (size_t j = 0; j < count; j++)
		out[j] = mfs_dot_scalar(u, rows + j * stride, n);
}

static void mfs_score_q8_scalar(const uint8_t *u, const int8_t *rows, size_t stride, size_t n,
				size_t count, int32_t *out)
{
	for (size_t j = 0; j < count; j++) {
		const int8_t *r = rows + j * stride;
		int32_t s = 0;
		for (size_t i = 0; i < n; i++)
			s += (int32_t)u[i] * r[i];
		out[j] = s;
	}
}

const struct mfs_kernels mfs_kernels_scalar = {
	.name = "scalar",
	.width = 1,
	.dot = mfs_dot_scalar,
	.sgd_step = mfs_sgd_step_scalar,
	.adagrad_step = mfs_adagrad_step_scalar,
	.bpr_step = mfs_bpr_step_scalar,
	.score = mfs_score_scalar,
	.score_q8 = mfs_score_q8_scalar,
};
