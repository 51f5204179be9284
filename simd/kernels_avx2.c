/*
 * kernels_avx2.c - AVX2 + FMA kernels (8 floats per register).
 * Compiled with -mavx2 -mfma only; the dispatcher calls them only on a CPU
 * (and OS) with AVX2 and FMA. Unaligned loads and stores throughout; tails
 * use masked loads/stores so any n (0 included) is handled in the vector code.
 *
 * Update form: p += lr*(g*q - l2*p) is computed as fma(lr*g, q, fnmadd(lr*l2, p, p)),
 * i.e. (p - (lr*l2)*p) + (lr*g)*q: two fused operations per element, the same
 * value up to rounding (the tests compare against the scalar oracle with a
 * relative tolerance).
 */
#include <immintrin.h>

#include "kernels.h"
#include "kernels_x86_q8.h"

/* Mask with the first r (0..8) 32-bit lanes set. */
static inline __m256i tail_mask(size_t r)
{
	static const int32_t bits[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };
	return _mm256_loadu_si256((const __m256i *)(const void *)(bits + 8 - r));
}

static inline float hsum256(__m256 v)
{
	__m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	x = _mm_add_ps(x, _mm_movehl_ps(x, x));
	x = _mm_add_ss(x, _mm_movehdup_ps(x));
	return _mm_cvtss_f32(x);
}

/* The horizontal sums of eight vectors, as one vector: lane k = sum of a_k. */
static inline __m256 hsum8x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4, __m256 a5,
			     __m256 a6, __m256 a7)
{
	__m256 t0 = _mm256_hadd_ps(a0, a1);
	__m256 t1 = _mm256_hadd_ps(a2, a3);
	__m256 t2 = _mm256_hadd_ps(a4, a5);
	__m256 t3 = _mm256_hadd_ps(a6, a7);
	__m256 u0 = _mm256_hadd_ps(t0, t1); /* a0..a3 low halves | a0..a3 high halves */
	__m256 u1 = _mm256_hadd_ps(t2, t3); /* a4..a7 low halves | a4..a7 high halves */
	return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
			     _mm256_permute2f128_ps(u0, u1, 0x31));
}

static inline float dot_avx2(const float *a, const float *b, size_t n)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	__m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
	}
	if (i + 16 <= n) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
		i += 16;
	}
	if (i + 8 <= n) {
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s2);
		i += 8;
	}
	if (i < n) {
		__m256i m = tail_mask(n - i);
		s3 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s3);
	}
	return hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

static float mfs_dot_avx2(const float *a, const float *b, size_t n)
{
	return dot_avx2(a, b, n);
}

/* p' = p - b*p + a*q, q' = q - b*q + a*p on 8 lanes, from the old values. */
#define SGD_UPDATE8(P, Q, VA, VB, VBQ)                                                 \
	do {                                                                         \
		__m256 np_ = _mm256_fmadd_ps(VA, Q, _mm256_fnmadd_ps(VB, P, P));     \
		__m256 nq_ = _mm256_fmadd_ps(VA, P, _mm256_fnmadd_ps(VBQ, Q, Q));     \
		P = np_;                                                             \
		Q = nq_;                                                             \
	} while (0)

static void mfs_sgd_step_avx2(float *restrict p, float *restrict q, size_t n, struct mfs_step *s)
{
	mfs_step_finish(s, dot_avx2(p, q, n));
	const __m256 va = _mm256_set1_ps(s->lr * s->grad);
	const __m256 vb = _mm256_set1_ps(s->lr * s->l2);
	const __m256 vbq = _mm256_set1_ps(s->lr * s->l2_q);
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256 p0 = _mm256_loadu_ps(p + i), p1 = _mm256_loadu_ps(p + i + 8);
		__m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
		SGD_UPDATE8(p0, q0, va, vb, vbq);
		SGD_UPDATE8(p1, q1, va, vb, vbq);
		_mm256_storeu_ps(p + i, p0);
		_mm256_storeu_ps(p + i + 8, p1);
		_mm256_storeu_ps(q + i, q0);
		_mm256_storeu_ps(q + i + 8, q1);
	}
	if (i + 8 <= n) {
		__m256 p0 = _mm256_loadu_ps(p + i), q0 = _mm256_loadu_ps(q + i);
		SGD_UPDATE8(p0, q0, va, vb, vbq);
		_mm256_storeu_ps(p + i, p0);
		_mm256_storeu_ps(q + i, q0);
		i += 8;
	}
	if (i < n) {
		__m256i m = tail_mask(n - i);
		__m256 p0 = _mm256_maskload_ps(p + i, m), q0 = _mm256_maskload_ps(q + i, m);
		SGD_UPDATE8(p0, q0, va, vb, vbq);
		_mm256_maskstore_ps(p + i, m, p0);
		_mm256_maskstore_ps(q + i, m, q0);
	}
}

/*
 * AdaGrad on 8 lanes: gp = g*q - l2*p, gq = g*p - l2_q*q (old values);
 * p += rp*gp, q += rq*gq; SP += gp^2, SQ += gq^2.
 */
#define ADAGRAD_UPDATE8(P, Q, SP, SQ)                                               \
	do {                                                                         \
		__m256 gp_ = _mm256_fmsub_ps(vg, Q, _mm256_mul_ps(vl2, P));          \
		__m256 gq_ = _mm256_fmsub_ps(vg, P, _mm256_mul_ps(vl2q, Q));          \
		P = _mm256_fmadd_ps(vrp, gp_, P);                                    \
		Q = _mm256_fmadd_ps(vrq, gq_, Q);                                    \
		SP = _mm256_fmadd_ps(gp_, gp_, SP);                                  \
		SQ = _mm256_fmadd_ps(gq_, gq_, SQ);                                  \
	} while (0)

static void mfs_adagrad_step_avx2(float *restrict p, float *restrict q, size_t n,
				  struct mfs_step *s)
{
	mfs_step_finish(s, dot_avx2(p, q, n));
	if (n == 0)
		return;
	const __m256 vg = _mm256_set1_ps(s->grad), vl2 = _mm256_set1_ps(s->l2);
	const __m256 vl2q = _mm256_set1_ps(s->l2_q);
	const __m256 vrp = _mm256_set1_ps(s->lr / sqrtf(*s->acc_p));
	const __m256 vrq = _mm256_set1_ps(s->lr / sqrtf(*s->acc_q));
	__m256 sp0 = _mm256_setzero_ps(), sp1 = _mm256_setzero_ps();
	__m256 sq0 = _mm256_setzero_ps(), sq1 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256 p0 = _mm256_loadu_ps(p + i), p1 = _mm256_loadu_ps(p + i + 8);
		__m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
		ADAGRAD_UPDATE8(p0, q0, sp0, sq0);
		ADAGRAD_UPDATE8(p1, q1, sp1, sq1);
		_mm256_storeu_ps(p + i, p0);
		_mm256_storeu_ps(p + i + 8, p1);
		_mm256_storeu_ps(q + i, q0);
		_mm256_storeu_ps(q + i + 8, q1);
	}
	if (i + 8 <= n) {
		__m256 p0 = _mm256_loadu_ps(p + i), q0 = _mm256_loadu_ps(q + i);
		ADAGRAD_UPDATE8(p0, q0, sp0, sq0);
		_mm256_storeu_ps(p + i, p0);
		_mm256_storeu_ps(q + i, q0);
		i += 8;
	}
	if (i < n) {
		/* masked-off lanes load as 0, so their gp, gq are 0 and add nothing */
		__m256i m = tail_mask(n - i);
		__m256 p0 = _mm256_maskload_ps(p + i, m), q0 = _mm256_maskload_ps(q + i, m);
		ADAGRAD_UPDATE8(p0, q0, sp1, sq1);
		_mm256_maskstore_ps(p + i, m, p0);
		_mm256_maskstore_ps(q + i, m, q0);
	}
	*s->acc_p += hsum256(_mm256_add_ps(sp0, sp1)) / (float)(s->dim ? s->dim : n);
	*s->acc_q += hsum256(_mm256_add_ps(sq0, sq1)) / (float)(s->dim ? s->dim : n);
}

/* Rows ahead of the current block whose cache lines are prefetched. */
#define SCORE_AHEAD 16

/*
 * Batch score: eight rows at a time share each load of u; one accumulator per
 * row (eight independent FMA chains), one horizontal reduction per eight rows.
 */
/*
 * BPR pair: with a = lr*g, b = lr*l2, from the old rows
 *   p' = (p - b*p) + a*(qi - qj), qi' = (qi - b*qi) + a*p, qj' = (qj - b*qj) - a*p.
 */
static void mfs_bpr_step_avx2(float *restrict p, float *restrict qi, float *restrict qj,
			      size_t n, struct mfs_bpr *s)
{
	mfs_bpr_finish(s, dot_avx2(p, qi, n) - dot_avx2(p, qj, n));
	const __m256 va = _mm256_set1_ps(s->lr * s->g), vb = _mm256_set1_ps(s->lr * s->l2);
	size_t k = 0;
	for (; k < n; k += 8) {
		__m256i m = tail_mask(n - k < 8 ? n - k : 8);
		__m256 p0 = _mm256_maskload_ps(p + k, m), a0 = _mm256_maskload_ps(qi + k, m);
		__m256 b0 = _mm256_maskload_ps(qj + k, m);
		__m256 np = _mm256_fmadd_ps(va, _mm256_sub_ps(a0, b0), _mm256_fnmadd_ps(vb, p0, p0));
		__m256 na = _mm256_fmadd_ps(va, p0, _mm256_fnmadd_ps(vb, a0, a0));
		__m256 nb = _mm256_fnmadd_ps(va, p0, _mm256_fnmadd_ps(vb, b0, b0));
		_mm256_maskstore_ps(p + k, m, np);
		_mm256_maskstore_ps(qi + k, m, na);
		_mm256_maskstore_ps(qj + k, m, nb);
	}
}

static void mfs_score_avx2(const float *u, const float *rows, size_t stride, size_t n,
			   size_t count, float *out)
{
	const size_t nv = n & ~(size_t)7;
	const __m256i m = tail_mask(n - nv);
	size_t j = 0;
	for (; j + 8 <= count; j += 8) {
		const float *r = rows + j * stride;
		const float *r0 = r, *r1 = r + stride, *r2 = r + 2 * stride, *r3 = r + 3 * stride;
		const float *r4 = r + 4 * stride, *r5 = r + 5 * stride, *r6 = r + 6 * stride;
		const float *r7 = r + 7 * stride;
		if (j + 8 + SCORE_AHEAD <= count) {
			/* the rows of the block after next: 8 short row streams defeat
			 * the hardware prefetcher (measured 1.6x at 100k rows of dim 64) */
			const char *f = (const char *)(r + SCORE_AHEAD * stride);
			const size_t bytes = 8 * stride * sizeof(float);
			for (size_t b = 0; b < bytes; b += 64)
				_mm_prefetch(f + b, _MM_HINT_T0);
		}
		__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
		__m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
		__m256 a4 = _mm256_setzero_ps(), a5 = _mm256_setzero_ps();
		__m256 a6 = _mm256_setzero_ps(), a7 = _mm256_setzero_ps();
		size_t i = 0;
		for (; i < nv; i += 8) {
			const __m256 x = _mm256_loadu_ps(u + i);
			a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r0 + i), a0);
			a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r1 + i), a1);
			a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r2 + i), a2);
			a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r3 + i), a3);
			a4 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r4 + i), a4);
			a5 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r5 + i), a5);
			a6 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r6 + i), a6);
			a7 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r7 + i), a7);
		}
		if (i < n) {
			const __m256 x = _mm256_maskload_ps(u + i, m);
			a0 = _mm256_fmadd_ps(x, _mm256_maskload_ps(r0 + i, m), a0);
			a1 = _mm256_fmadd_ps(x, _mm256_maskload_ps(r1 + i, m), a1);
			a2 = _mm256_fmadd_ps(x, _mm256_maskload_ps(r2 + i, m), a2);
			a3 = _mm256_fmadd_ps(x, _mm256_maskload_ps(r3 + i, m), a3);
			a4 = _mm256_fmadd_ps(x, _mm256_maskload_ps(r4 + i, m), a4);
			a5 = _mm256_fmadd_ps(x, _mm256_maskload_ps(r5 + i, m), a5);
			a6 = _mm256_fmadd_ps(x, _mm256_maskload_ps(r6 + i, m), a6);
			a7 = _mm256_fmadd_ps(x, _mm256_maskload_ps(r7 + i, m), a7);
		}
		_mm256_storeu_ps(out + j, hsum8x8(a0, a1, a2, a3, a4, a5, a6, a7));
	}
	for (; j < count; j++)
		out[j] = dot_avx2(u, rows + j * stride, n);
}

static void mfs_score_q8_avx2(const uint8_t *u, const int8_t *rows, size_t stride, size_t n,
			      size_t count, int32_t *out)
{
	mfs_score_q8_x86(u, rows, stride, n, count, out);
}

const struct mfs_kernels mfs_kernels_avx2 = {
	.name = "avx2",
	.width = 8,
	.dot = mfs_dot_avx2,
	.sgd_step = mfs_sgd_step_avx2,
	.bpr_step = mfs_bpr_step_avx2,
	.adagrad_step = mfs_adagrad_step_avx2,
	.score = mfs_score_avx2,
	.score_q8 = mfs_score_q8_avx2,
};
