/*
 * kernels.h - the internal interface between the model and its SIMD kernels.
 *
 * One `const struct mfs_kernels` per ISA (scalar, avx2, avx512, neon). The model
 * picks one at creation (simd/dispatch.c) and calls through it on the hot path.
 * The scalar kernels are the oracle: every other kernel is tested against them
 * with a relative tolerance.
 *
 * Vectors are plain float arrays of length n. The model stores rows 64-byte
 * aligned with a stride padded to a multiple of 16 floats and zero padding, and
 * passes n = round_up(dim, k->width) so the main loop needs no tail; kernels
 * must still be correct for any n (0 included) and any alignment (unaligned loads).
 *
 * No kernel allocates, blocks or touches anything but its arguments.
 */
#ifndef MFS_SIMD_KERNELS_H
#define MFS_SIMD_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "mathf.h"

/* How a raw score becomes a prediction inside [lo, hi]. */
enum mfs_link {
	MFS_LINK_CLAMP = 0,   /* pred = clamp(raw, lo, hi); gradient 1 inside */
	MFS_LINK_SIGMOID = 1, /* pred = clamp(slo + (shi - slo) * sigmoid(raw), lo, hi), with
				 [slo, shi] a little wider than [lo, hi] (fastai's y_range) */
	MFS_LINK_LOGIT = 2,   /* implicit feedback, logistic loss: pred = sigmoid(raw), the
				 rating a label (0, 1); grad = weight * (label - pred) */
};

/*
 * One SGD event. The caller fills the inputs; the step kernel fills the outputs.
 * base = mu + b_u + b_i (everything of the prediction but the dot product).
 */
struct mfs_step {
	/* in */
	float base;   /* mu + b_u + b_i */
	float rating; /* observed rating */
	float lo, hi; /* rating range: predictions are kept inside */
	float slo, shi; /* sigmoid link: the span of the sigmoid (slo <= lo, shi >= hi) */
	int link;     /* enum mfs_link */
	float lr;     /* factor learning rate (AdaGrad: the base rate eta) */
	float l2;     /* factor L2 of row p */
	float l2_q;   /* factor L2 of row q (the model scales each row's L2 by its count) */
	float *acc_p; /* AdaGrad: accumulated mean squared gradient of row p (in/out) */
	float *acc_q; /* AdaGrad: same for row q */
	uint32_t dim; /* the true row width (n may include zero padding); 0 means n */
	float weight; /* MFS_LINK_LOGIT: the event's weight */
	/* out */
	float pred; /* prediction before the update (after the link) */
	float grad; /* d loss / d raw with the sign of the error: (rating - pred) * link'(raw) */
};

/*
 * The link function and the error term, shared by every kernel so that all
 * kernels agree exactly once the dot product is known.
 */
static inline void mfs_step_finish(struct mfs_step *s, float dot)
{
	float raw = s->base + dot;
	if (s->link == MFS_LINK_LOGIT) {
		float p = 1.0f / (1.0f + mfs_expf(-raw));
		s->pred = p;
		s->grad = s->weight * (s->rating - p);
	} else if (s->link == MFS_LINK_SIGMOID) {
		float span = s->shi - s->slo;
		float sg = 1.0f / (1.0f + mfs_expf(-raw)); /* mathf.h: no libm call */
		float p = s->slo + span * sg;
		/* learn from the sigmoid's value; predict it kept inside [lo, hi] */
		s->grad = (s->rating - p) * span * sg * (1.0f - sg);
		s->pred = p < s->lo ? s->lo : p > s->hi ? s->hi : p;
	} else {
		float pr = raw;
		if (pr < s->lo)
			pr = s->lo;
		if (pr > s->hi)
			pr = s->hi;
		s->pred = pr;
		s->grad = s->rating - pr;
	}
}

/*
 * One BPR pair (implicit feedback): the positive item i and a sampled
 * negative j of user p. The caller fills the inputs; bpr_step the outputs.
 */
struct mfs_bpr {
	/* in */
	float base; /* b_i - b_j (everything of s_ui - s_uj but the dot products) */
	float w;    /* the pair's weight */
	float lr;   /* factor learning rate */
	float l2;   /* factor L2 of p, q_i and q_j */
	/* out */
	float x;    /* s_ui - s_uj before the step */
	float g;    /* w * sigmoid(-x): minus d loss / d x of the loss -w log sigmoid(x) */
};

/* The pair's error term, shared by every kernel once d = p.q_i - p.q_j is known. */
static inline void mfs_bpr_finish(struct mfs_bpr *s, float d)
{
	s->x = s->base + d;
	s->g = s->w / (1.0f + mfs_expf(s->x)); /* w * sigmoid(-x) */
}

struct mfs_kernels {
	const char *name; /* "scalar", "avx2", "avx512", "neon" */
	size_t width;     /* floats per vector register (1 for scalar) */

	/* sum_i a[i] * b[i] */
	float (*dot)(const float *a, const float *b, size_t n);

	/*
	 * Plain SGD step. d = dot(p, q); mfs_step_finish(s, d); g = s->grad; then,
	 * with the old values of both rows:
	 *   p[i] += lr * (g * q[i] - l2 * p[i])
	 *   q[i] += lr * (g * p[i] - l2_q * q[i])
	 * p and q do not overlap.
	 */
	void (*sgd_step)(float *restrict p, float *restrict q, size_t n, struct mfs_step *s);

	/*
	 * AdaGrad step, per-row accumulator as in LIBMF. d, g as above; with the
	 * old rows:  gp[i] = g * q[i] - l2 * p[i];  gq[i] = g * p[i] - l2_q * q[i];
	 *   p[i] += lr / sqrtf(*acc_p) * gp[i];   q[i] += lr / sqrtf(*acc_q) * gq[i]
	 * then *acc_p += sum(gp^2) / d;  *acc_q += sum(gq^2) / d  (n > 0), where
	 * d = s->dim, or n when s->dim is 0: the mean over the real width, so that
	 * zero padding (which adds nothing to the sums) does not change the result.
	 * The accumulators start at 1 (set by the model).
	 */
	void (*adagrad_step)(float *restrict p, float *restrict q, size_t n, struct mfs_step *s);

	/*
	 * BPR step of one pair: d = dot(p, qi) - dot(p, qj); mfs_bpr_finish(s, d);
	 * g = s->g; then, with the old values of the three rows:
	 *   p[k]  += lr * (g * (qi[k] - qj[k]) - l2 * p[k])
	 *   qi[k] += lr * (g * p[k] - l2 * qi[k])
	 *   qj[k] += lr * (-g * p[k] - l2 * qj[k])
	 * The rows do not overlap.
	 */
	void (*bpr_step)(float *restrict p, float *restrict qi, float *restrict qj, size_t n,
			 struct mfs_bpr *s);

	/*
	 * Batch score for top-K: out[j] = dot(u, rows + j * stride) for j < count.
	 * rows holds count rows of n floats each, stride floats apart (stride >= n).
	 */
	void (*score)(const float *u, const float *rows, size_t stride, size_t n, size_t count,
		      float *out);

	/*
	 * Batch score of int8 rows (the compact copy of the item table that
	 * serving scans first) against a quantised query: out[j] = sum_i u[i] *
	 * rows[j * stride + i] for j < count, exactly (integer arithmetic, so
	 * every kernel gives the same result). u[i] <= 127 (so that a pair of
	 * products fits in 16 bits); rows hold -127..127. n is a multiple of 16;
	 * stride (bytes) >= n. The caller applies the scales.
	 */
	void (*score_q8)(const uint8_t *u, const int8_t *rows, size_t stride, size_t n, size_t count,
			 int32_t *out);
};

extern const struct mfs_kernels mfs_kernels_scalar;
#if defined(__x86_64__) || defined(_M_X64)
extern const struct mfs_kernels mfs_kernels_avx2;
extern const struct mfs_kernels mfs_kernels_avx512;
#endif
#if defined(__aarch64__)
extern const struct mfs_kernels mfs_kernels_neon;
#endif

/*
 * Choose a kernel table. name NULL or "auto": the best the CPU and OS support
 * (AVX-512F -> AVX2+FMA -> scalar on x86-64, NEON on aarch64). Otherwise one of
 * "scalar", "avx2", "avx512", "neon". Returns 0 and sets *out, or
 * -MFS_E_INVAL for an unknown name, -MFS_E_UNSUPPORTED for a kernel this build
 * or this CPU cannot run.
 */
int mfs_kernels_select(const char *name, const struct mfs_kernels **out);

/* The kernel table by name if the CPU can run it, else NULL (for tests and benches). */
const struct mfs_kernels *mfs_kernels_get(const char *name);

/* Instruction sets a kernel needs: bits of what mfs_kernels_preferred takes. */
enum { MFS_ISA_AVX2_FMA = 1, MFS_ISA_AVX512F = 2, MFS_ISA_NEON = 4 };

/*
 * The kernel "auto" takes where the sets in isa can be run (and are built):
 * AVX-512F, then AVX2+FMA, then NEON, then "scalar". A pure function, so
 * that the order itself can be tested for every set, whatever this CPU is.
 */
const char *mfs_kernels_preferred(unsigned isa);

/* The MFS_ISA_* bits whose kernels this build has and this CPU and OS run. */
unsigned mfs_kernels_usable_isa(void);

#endif
