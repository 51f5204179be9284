/*
 * kernels_neon.c - AArch64 Advanced SIMD kernels (4 floats per register).
 * Built only on aarch64, where NEON is mandatory (no extra flags). Tails
 * (n not a multiple of 4) are handled by short scalar loops.
 *
 * Update form as in kernels_avx2.c: p' = (p - (lr*l2)*p) + (lr*g)*q.
 */
#include <arm_neon.h>

#include "kernels.h"

static inline float dot_neon(const float *a, const float *b, size_t n)
{
	float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);
	float32x4_t s2 = vdupq_n_f32(0.0f), s3 = vdupq_n_f32(0.0f);
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
		s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
		s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
		s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
	}
	for (; i + 4 <= n; i += 4)
		s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
	float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

static float mfs_dot_neon(const float *a, const float *b, size_t n)
{
	return dot_neon(a, b, n);
}

static void mfs_sgd_step_neon(float *restrict p, float *restrict q, size_t n, struct mfs_step *s)
{
	mfs_step_finish(s, dot_neon(p, q, n));
	const float a = s->lr * s->grad, b = s->lr * s->l2, bq = s->lr * s->l2_q;
	const float32x4_t va = vdupq_n_f32(a), vb = vdupq_n_f32(b), vbq = vdupq_n_f32(bq);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		float32x4_t p0 = vld1q_f32(p + i), p1 = vld1q_f32(p + i + 4);
		float32x4_t q0 = vld1q_f32(q + i), q1 = vld1q_f32(q + i + 4);
		vst1q_f32(p + i, vfmaq_f32(vfmsq_f32(p0, vb, p0), va, q0));
		vst1q_f32(p + i + 4, vfmaq_f32(vfmsq_f32(p1, vb, p1), va, q1));
		vst1q_f32(q + i, vfmaq_f32(vfmsq_f32(q0, vbq, q0), va, p0));
		vst1q_f32(q + i + 4, vfmaq_f32(vfmsq_f32(q1, vbq, q1), va, p1));
	}
	if (i + 4 <= n) {
		float32x4_t p0 = vld1q_f32(p + i), q0 = vld1q_f32(q + i);
		vst1q_f32(p + i, vfmaq_f32(vfmsq_f32(p0, vb, p0), va, q0));
		vst1q_f32(q + i, vfmaq_f32(vfmsq_f32(q0, vbq, q0), va, p0));
		i += 4;
	}
	for (; i < n; i++) {
		float pi = p[i], qi = q[i];
		p[i] = (pi - b * pi) + a * qi;
		q[i] = (qi - bq * qi) + a * pi;
	}
}

/* BPR pair (kernels.h): p' = (p - b*p) + a*(qi - qj), qi' = (qi - b*qi) + a*p,
 * qj' = (qj - b*qj) - a*p with a = lr*g, b = lr*l2. */
static void mfs_bpr_step_neon(float *restrict p, float *restrict qi, float *restrict qj,
			      size_t n, struct mfs_bpr *s)
{
	mfs_bpr_finish(s, dot_neon(p, qi, n) - dot_neon(p, qj, n));
	const float a = s->lr * s->g, b = s->lr * s->l2;
	const float32x4_t va = vdupq_n_f32(a), vb = vdupq_n_f32(b);
	size_t k = 0;
	for (; k + 4 <= n; k += 4) {
		float32x4_t p0 = vld1q_f32(p + k), a0 = vld1q_f32(qi + k), b0 = vld1q_f32(qj + k);
		vst1q_f32(p + k, vfmaq_f32(vfmsq_f32(p0, vb, p0), va, vsubq_f32(a0, b0)));
		vst1q_f32(qi + k, vfmaq_f32(vfmsq_f32(a0, vb, a0), va, p0));
		vst1q_f32(qj + k, vfmsq_f32(vfmsq_f32(b0, vb, b0), va, p0));
	}
	for (; k < n; k++) {
		float pk = p[k], ak = qi[k], bk = qj[k];
		p[k] = (pk - b * pk) + a * (ak - bk);
		qi[k] = (ak - b * ak) + a * pk;
		qj[k] = (bk - b * bk) - a * pk;
	}
}

static void mfs_adagrad_step_neon(float *restrict p, float *restrict q, size_t n,
				  struct mfs_step *s)
{
	mfs_step_finish(s, dot_neon(p, q, n));
	if (n == 0)
		return;
	const float g = s->grad, l2 = s->l2, l2q = s->l2_q;
	const float rp = s->lr / sqrtf(*s->acc_p), rq = s->lr / sqrtf(*s->acc_q);
	const float32x4_t vg = vdupq_n_f32(g), vl2 = vdupq_n_f32(l2), vl2q = vdupq_n_f32(l2q);
	const float32x4_t vrp = vdupq_n_f32(rp), vrq = vdupq_n_f32(rq);
	float32x4_t sp0 = vdupq_n_f32(0.0f), sp1 = vdupq_n_f32(0.0f);
	float32x4_t sq0 = vdupq_n_f32(0.0f), sq1 = vdupq_n_f32(0.0f);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		float32x4_t p0 = vld1q_f32(p + i), p1 = vld1q_f32(p + i + 4);
		float32x4_t q0 = vld1q_f32(q + i), q1 = vld1q_f32(q + i + 4);
		/* gp = g*q - l2*p, gq = g*p - l2_q*q from the old values */
		float32x4_t gp0 = vfmsq_f32(vmulq_f32(vg, q0), vl2, p0);
		float32x4_t gp1 = vfmsq_f32(vmulq_f32(vg, q1), vl2, p1);
		float32x4_t gq0 = vfmsq_f32(vmulq_f32(vg, p0), vl2q, q0);
		float32x4_t gq1 = vfmsq_f32(vmulq_f32(vg, p1), vl2q, q1);
		vst1q_f32(p + i, vfmaq_f32(p0, vrp, gp0));
		vst1q_f32(p + i + 4, vfmaq_f32(p1, vrp, gp1));
		vst1q_f32(q + i, vfmaq_f32(q0, vrq, gq0));
		vst1q_f32(q + i + 4, vfmaq_f32(q1, vrq, gq1));
		sp0 = vfmaq_f32(sp0, gp0, gp0);
		sp1 = vfmaq_f32(sp1, gp1, gp1);
		sq0 = vfmaq_f32(sq0, gq0, gq0);
		sq1 = vfmaq_f32(sq1, gq1, gq1);
	}
	if (i + 4 <= n) {
		float32x4_t p0 = vld1q_f32(p + i), q0 = vld1q_f32(q + i);
		float32x4_t gp0 = vfmsq_f32(vmulq_f32(vg, q0), vl2, p0);
		float32x4_t gq0 = vfmsq_f32(vmulq_f32(vg, p0), vl2q, q0);
		vst1q_f32(p + i, vfmaq_f32(p0, vrp, gp0));
		vst1q_f32(q + i, vfmaq_f32(q0, vrq, gq0));
		sp0 = vfmaq_f32(sp0, gp0, gp0);
		sq0 = vfmaq_f32(sq0, gq0, gq0);
		i += 4;
	}
	float sp = vaddvq_f32(vaddq_f32(sp0, sp1)), sq = vaddvq_f32(vaddq_f32(sq0, sq1));
	for (; i < n; i++) {
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

/* Rows ahead of the current block whose cache lines are prefetched. */
#define SCORE_AHEAD 16

/* Batch score: four rows at a time share each load of u. */
static void mfs_score_neon(const float *u, const float *rows, size_t stride, size_t n,
			   size_t count, float *out)
{
	const size_t nv = n & ~(size_t)3;
	size_t j = 0;
	for (; j + 4 <= count; j += 4) {
		const float *r0 = rows + j * stride, *r1 = r0 + stride;
		const float *r2 = r0 + 2 * stride, *r3 = r0 + 3 * stride;
		if (j + 4 + SCORE_AHEAD <= count) {
			const char *f = (const char *)(r0 + SCORE_AHEAD * stride);
			const size_t bytes = 4 * stride * sizeof(float);
			for (size_t b = 0; b < bytes; b += 64)
				__builtin_prefetch(f + b, 0, 3);
		}
		float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);
		float32x4_t a2 = vdupq_n_f32(0.0f), a3 = vdupq_n_f32(0.0f);
		for (size_t i = 0; i < nv; i += 4) {
			const float32x4_t x = vld1q_f32(u + i);
			a0 = vfmaq_f32(a0, x, vld1q_f32(r0 + i));
			a1 = vfmaq_f32(a1, x, vld1q_f32(r1 + i));
			a2 = vfmaq_f32(a2, x, vld1q_f32(r2 + i));
			a3 = vfmaq_f32(a3, x, vld1q_f32(r3 + i));
		}
		/* lane k = sum of a_k */
		float32x4_t sum = vpaddq_f32(vpaddq_f32(a0, a1), vpaddq_f32(a2, a3));
		if (nv < n) {
			float t[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
			for (size_t i = nv; i < n; i++) {
				t[0] += u[i] * r0[i];
				t[1] += u[i] * r1[i];
				t[2] += u[i] * r2[i];
				t[3] += u[i] * r3[i];
			}
			sum = vaddq_f32(sum, vld1q_f32(t));
		}
		vst1q_f32(out + j, sum);
	}
	for (; j < count; j++)
		out[j] = dot_neon(u, rows + j * stride, n);
}

/* a += pairwise sums of x[0..16) * r[0..16) (u <= 127, so it is an int8 too). */
static inline int32x4_t dot_q8x16(int32x4_t a, const uint8_t *x, const int8_t *r)
{
	const int8_t *xs = (const int8_t *)x;
	const int8x16_t xv = vld1q_s8(xs), rv = vld1q_s8(r);
	a = vpadalq_s16(a, vmull_s8(vget_low_s8(xv), vget_low_s8(rv)));
	return vpadalq_s16(a, vmull_high_s8(xv, rv));
}

/* Integer batch score: four rows at a time share each load of u; n % 16 == 0. */
static void mfs_score_q8_neon(const uint8_t *u, const int8_t *rows, size_t stride, size_t n,
			      size_t count, int32_t *out)
{
	size_t j = 0;
	for (; j + 4 <= count; j += 4) {
		const int8_t *r0 = rows + j * stride;
		int32x4_t a0 = vdupq_n_s32(0), a1 = vdupq_n_s32(0);
		int32x4_t a2 = vdupq_n_s32(0), a3 = vdupq_n_s32(0);
		for (size_t i = 0; i < n; i += 16) {
			a0 = dot_q8x16(a0, u + i, r0 + i);
			a1 = dot_q8x16(a1, u + i, r0 + stride + i);
			a2 = dot_q8x16(a2, u + i, r0 + 2 * stride + i);
			a3 = dot_q8x16(a3, u + i, r0 + 3 * stride + i);
		}
		vst1q_s32(out + j, vpaddq_s32(vpaddq_s32(a0, a1), vpaddq_s32(a2, a3)));
	}
	for (; j < count; j++) {
		int32x4_t a = vdupq_n_s32(0);
		for (size_t i = 0; i < n; i += 16)
			a = dot_q8x16(a, u + i, rows + j * stride + i);
		out[j] = vaddvq_s32(a);
	}
}

const struct mfs_kernels mfs_kernels_neon = {
	.name = "neon",
	.width = 4,
	.dot = mfs_dot_neon,
	.sgd_step = mfs_sgd_step_neon,
	.bpr_step = mfs_bpr_step_neon,
	.adagrad_step = mfs_adagrad_step_neon,
	.score = mfs_score_neon,
	.score_q8 = mfs_score_q8_neon,
};
