/*
 * kernels_avx512.c - AVX-512F kernels (16 floats per register).
 * Compiled with -mavx512f -mfma only; the dispatcher calls them only on a CPU
 * (and OS) with AVX-512F. Unaligned loads and stores throughout; tails use
 * masked loads/stores (masked-off lanes never fault), so any n works.
 *
 * Update form as in kernels_avx2.c: p' = fma(lr*g, q, fnmadd(lr*l2, p, p)).
 * sgd_step keeps rows of up to 128 floats in registers (one read, one write
 * per row); on cores that split 512-bit operations in two (AMD Zen 4) this is
 * what AVX-512 gains over AVX2 at small dims, the arithmetic throughput being
 * the same.
 */
#include <immintrin.h>

#include "kernels.h"
#include "kernels_x86_q8.h"

/* The first r (0..16) lanes. */
static inline __mmask16 tail_mask(size_t r)
{
	return (__mmask16)((1u << r) - 1u);
}

static inline float dot_avx512(const float *a, const float *b, size_t n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
	__m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 64 <= n; i += 64) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
		s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
		s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
	}
	if (i + 32 <= n) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
		i += 32;
	}
	if (i + 16 <= n) {
		s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s2);
		i += 16;
	}
	if (i < n) {
		__mmask16 m = tail_mask(n - i);
		s3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i),
				     s3);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

static float mfs_dot_avx512(const float *a, const float *b, size_t n)
{
	return dot_avx512(a, b, n);
}

/* p' = p - b*p + a*q, q' = q - b*q + a*p on 16 lanes, from the old values. */
#define SGD_UPDATE16(P, Q, VA, VB, VBQ)                                                \
	do {                                                                         \
		__m512 np_ = _mm512_fmadd_ps(VA, Q, _mm512_fnmadd_ps(VB, P, P));     \
		__m512 nq_ = _mm512_fmadd_ps(VA, P, _mm512_fnmadd_ps(VBQ, Q, Q));     \
		P = np_;                                                             \
		Q = nq_;                                                             \
	} while (0)

/*
 * Rows of at most 8 vectors (n <= 128) are loaded once into registers: the dot
 * product and the update both work on them, so each row is read once and
 * written once. nv (vectors per row) and masked (n not a multiple of 16) are
 * compile-time constants in each expansion; the unused registers and branches
 * fold away. Plain variables rather than arrays keep everything in registers.
 */
#define REG_LOAD(k)                                                                 \
	__m512 p##k = _mm512_setzero_ps(), q##k = _mm512_setzero_ps();              \
	if (nv > k) {                                                                \
		if (masked && nv == k + 1) {                                         \
			p##k = _mm512_maskz_loadu_ps(last, p + 16 * k);             \
			q##k = _mm512_maskz_loadu_ps(last, q + 16 * k);             \
		} else {                                                             \
			p##k = _mm512_loadu_ps(p + 16 * k);                          \
			q##k = _mm512_loadu_ps(q + 16 * k);                          \
		}                                                                    \
	}
#define REG_STORE(k)                                                                \
	if (nv > k) {                                                                \
		if (masked && nv == k + 1) {                                         \
			_mm512_mask_storeu_ps(p + 16 * k, last, p##k);               \
			_mm512_mask_storeu_ps(q + 16 * k, last, q##k);               \
		} else {                                                             \
			_mm512_storeu_ps(p + 16 * k, p##k);                          \
			_mm512_storeu_ps(q + 16 * k, q##k);                          \
		}                                                                    \
	}
#define REG_SGD(k)                                                                  \
	if (nv > k) {                                                                \
		SGD_UPDATE16(p##k, q##k, va, vb, vbq);                                    \
		REG_STORE(k)                                                         \
	}

static inline __attribute__((always_inline)) void
sgd_step_regs(float *restrict p, float *restrict q, size_t n, struct mfs_step *s, const int nv,
	      const int masked)
{
	const __mmask16 last = tail_mask(n - 16 * (size_t)(nv - 1));
	REG_LOAD(0) REG_LOAD(1) REG_LOAD(2) REG_LOAD(3)
	REG_LOAD(4) REG_LOAD(5) REG_LOAD(6) REG_LOAD(7)
	/* up to four independent products, summed as a tree */
	__m512 d0 = _mm512_mul_ps(p0, q0);
	__m512 d1 = _mm512_mul_ps(p1, q1);
	__m512 d2 = _mm512_mul_ps(p2, q2);
	__m512 d3 = _mm512_mul_ps(p3, q3);
	if (nv > 4)
		d0 = _mm512_fmadd_ps(p4, q4, d0);
	if (nv > 5)
		d1 = _mm512_fmadd_ps(p5, q5, d1);
	if (nv > 6)
		d2 = _mm512_fmadd_ps(p6, q6, d2);
	if (nv > 7)
		d3 = _mm512_fmadd_ps(p7, q7, d3);
	__m512 d = nv > 1 ? _mm512_add_ps(d0, d1) : d0;
	if (nv > 2)
		d = _mm512_add_ps(d, nv > 3 ? _mm512_add_ps(d2, d3) : d2);
	mfs_step_finish(s, _mm512_reduce_add_ps(d));
	const __m512 va = _mm512_set1_ps(s->lr * s->grad);
	const __m512 vb = _mm512_set1_ps(s->lr * s->l2);
	const __m512 vbq = _mm512_set1_ps(s->lr * s->l2_q);
	REG_SGD(0) REG_SGD(1) REG_SGD(2) REG_SGD(3)
	REG_SGD(4) REG_SGD(5) REG_SGD(6) REG_SGD(7)
}

/* Rows longer than 8 vectors (n > 128): dot pass, then update pass. */
static __attribute__((noinline)) void sgd_step_long(float *restrict p, float *restrict q,
						    size_t n, struct mfs_step *s)
{
	mfs_step_finish(s, dot_avx512(p, q, n));
	const __m512 va = _mm512_set1_ps(s->lr * s->grad);
	const __m512 vb = _mm512_set1_ps(s->lr * s->l2);
	const __m512 vbq = _mm512_set1_ps(s->lr * s->l2_q);
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m512 p0 = _mm512_loadu_ps(p + i), p1 = _mm512_loadu_ps(p + i + 16);
		__m512 q0 = _mm512_loadu_ps(q + i), q1 = _mm512_loadu_ps(q + i + 16);
		SGD_UPDATE16(p0, q0, va, vb, vbq);
		SGD_UPDATE16(p1, q1, va, vb, vbq);
		_mm512_storeu_ps(p + i, p0);
		_mm512_storeu_ps(p + i + 16, p1);
		_mm512_storeu_ps(q + i, q0);
		_mm512_storeu_ps(q + i + 16, q1);
	}
	if (i + 16 <= n) {
		__m512 p0 = _mm512_loadu_ps(p + i), q0 = _mm512_loadu_ps(q + i);
		SGD_UPDATE16(p0, q0, va, vb, vbq);
		_mm512_storeu_ps(p + i, p0);
		_mm512_storeu_ps(q + i, q0);
		i += 16;
	}
	if (i < n) {
		__mmask16 m = tail_mask(n - i);
		__m512 p0 = _mm512_maskz_loadu_ps(m, p + i), q0 = _mm512_maskz_loadu_ps(m, q + i);
		SGD_UPDATE16(p0, q0, va, vb, vbq);
		_mm512_mask_storeu_ps(p + i, m, p0);
		_mm512_mask_storeu_ps(q + i, m, q0);
	}
}

static void mfs_sgd_step_avx512(float *restrict p, float *restrict q, size_t n,
				struct mfs_step *s)
{
	/* whole vectors (the model's padded rows) without masks: masked loads do not
	 * take forwarded store data, which matters when a row is reused at once */
	if (n % 16 == 0) {
		switch (n / 16) {
		case 1: sgd_step_regs(p, q, n, s, 1, 0); return;
		case 2: sgd_step_regs(p, q, n, s, 2, 0); return;
		case 3: sgd_step_regs(p, q, n, s, 3, 0); return;
		case 4: sgd_step_regs(p, q, n, s, 4, 0); return;
		case 5: sgd_step_regs(p, q, n, s, 5, 0); return;
		case 6: sgd_step_regs(p, q, n, s, 6, 0); return;
		case 7: sgd_step_regs(p, q, n, s, 7, 0); return;
		case 8: sgd_step_regs(p, q, n, s, 8, 0); return;
		default: break;
		}
	} else {
		switch ((n + 15) / 16) {
		case 1: sgd_step_regs(p, q, n, s, 1, 1); return;
		case 2: sgd_step_regs(p, q, n, s, 2, 1); return;
		case 3: sgd_step_regs(p, q, n, s, 3, 1); return;
		case 4: sgd_step_regs(p, q, n, s, 4, 1); return;
		case 5: sgd_step_regs(p, q, n, s, 5, 1); return;
		case 6: sgd_step_regs(p, q, n, s, 6, 1); return;
		case 7: sgd_step_regs(p, q, n, s, 7, 1); return;
		case 8: sgd_step_regs(p, q, n, s, 8, 1); return;
		default: break;
		}
	}
	sgd_step_long(p, q, n, s);
}

/*
 * AdaGrad on 16 lanes: gp = g*q - l2*p, gq = g*p - l2_q*q (old values);
 * p += rp*gp, q += rq*gq; SP += gp^2, SQ += gq^2.
 */
#define ADAGRAD_UPDATE16(P, Q, SP, SQ)                                              \
	do {                                                                         \
		__m512 gp_ = _mm512_fmsub_ps(vg, Q, _mm512_mul_ps(vl2, P));          \
		__m512 gq_ = _mm512_fmsub_ps(vg, P, _mm512_mul_ps(vl2q, Q));          \
		P = _mm512_fmadd_ps(vrp, gp_, P);                                    \
		Q = _mm512_fmadd_ps(vrq, gq_, Q);                                    \
		SP = _mm512_fmadd_ps(gp_, gp_, SP);                                  \
		SQ = _mm512_fmadd_ps(gq_, gq_, SQ);                                  \
	} while (0)

static void mfs_adagrad_step_avx512(float *restrict p, float *restrict q, size_t n,
				    struct mfs_step *s)
{
	mfs_step_finish(s, dot_avx512(p, q, n));
	if (n == 0)
		return;
	const __m512 vg = _mm512_set1_ps(s->grad), vl2 = _mm512_set1_ps(s->l2);
	const __m512 vl2q = _mm512_set1_ps(s->l2_q);
	const __m512 vrp = _mm512_set1_ps(s->lr / sqrtf(*s->acc_p));
	const __m512 vrq = _mm512_set1_ps(s->lr / sqrtf(*s->acc_q));
	__m512 sp0 = _mm512_setzero_ps(), sp1 = _mm512_setzero_ps();
	__m512 sq0 = _mm512_setzero_ps(), sq1 = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		__m512 p0 = _mm512_loadu_ps(p + i), p1 = _mm512_loadu_ps(p + i + 16);
		__m512 q0 = _mm512_loadu_ps(q + i), q1 = _mm512_loadu_ps(q + i + 16);
		ADAGRAD_UPDATE16(p0, q0, sp0, sq0);
		ADAGRAD_UPDATE16(p1, q1, sp1, sq1);
		_mm512_storeu_ps(p + i, p0);
		_mm512_storeu_ps(p + i + 16, p1);
		_mm512_storeu_ps(q + i, q0);
		_mm512_storeu_ps(q + i + 16, q1);
	}
	if (i + 16 <= n) {
		__m512 p0 = _mm512_loadu_ps(p + i), q0 = _mm512_loadu_ps(q + i);
		ADAGRAD_UPDATE16(p0, q0, sp0, sq0);
		_mm512_storeu_ps(p + i, p0);
		_mm512_storeu_ps(q + i, q0);
		i += 16;
	}
	if (i < n) {
		/* masked-off lanes load as 0, so their gp, gq are 0 and add nothing */
		__mmask16 m = tail_mask(n - i);
		__m512 p0 = _mm512_maskz_loadu_ps(m, p + i), q0 = _mm512_maskz_loadu_ps(m, q + i);
		ADAGRAD_UPDATE16(p0, q0, sp1, sq1);
		_mm512_mask_storeu_ps(p + i, m, p0);
		_mm512_mask_storeu_ps(q + i, m, q0);
	}
	*s->acc_p += _mm512_reduce_add_ps(_mm512_add_ps(sp0, sp1)) / (float)(s->dim ? s->dim : n);
	*s->acc_q += _mm512_reduce_add_ps(_mm512_add_ps(sq0, sq1)) / (float)(s->dim ? s->dim : n);
}

/* Sum of the two 256-bit halves. */
static inline __m256 fold512(__m512 v)
{
	return _mm256_add_ps(_mm512_castps512_ps256(v),
			     _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* The horizontal sums of eight vectors, as one vector: lane k = sum of a_k. */
static inline __m256 hsum8x16(__m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5,
			      __m512 a6, __m512 a7)
{
	__m256 t0 = _mm256_hadd_ps(fold512(a0), fold512(a1));
	__m256 t1 = _mm256_hadd_ps(fold512(a2), fold512(a3));
	__m256 t2 = _mm256_hadd_ps(fold512(a4), fold512(a5));
	__m256 t3 = _mm256_hadd_ps(fold512(a6), fold512(a7));
	__m256 u0 = _mm256_hadd_ps(t0, t1);
	__m256 u1 = _mm256_hadd_ps(t2, t3);
	return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
			     _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* Rows ahead of the current block whose cache lines are prefetched. */
#define SCORE_AHEAD 16

/*
 * Batch score: eight rows at a time share each load of u; one accumulator per
 * row (eight independent FMA chains), one reduction per eight rows.
 */
/* BPR pair (kernels.h), masked 16-lane steps: the update form of kernels_avx2.c. */
static void mfs_bpr_step_avx512(float *restrict p, float *restrict qi, float *restrict qj,
				size_t n, struct mfs_bpr *s)
{
	mfs_bpr_finish(s, dot_avx512(p, qi, n) - dot_avx512(p, qj, n));
	const __m512 va = _mm512_set1_ps(s->lr * s->g), vb = _mm512_set1_ps(s->lr * s->l2);
	for (size_t k = 0; k < n; k += 16) {
		__mmask16 m = tail_mask(n - k < 16 ? n - k : 16);
		__m512 p0 = _mm512_maskz_loadu_ps(m, p + k), a0 = _mm512_maskz_loadu_ps(m, qi + k);
		__m512 b0 = _mm512_maskz_loadu_ps(m, qj + k);
		__m512 np = _mm512_fmadd_ps(va, _mm512_sub_ps(a0, b0), _mm512_fnmadd_ps(vb, p0, p0));
		__m512 na = _mm512_fmadd_ps(va, p0, _mm512_fnmadd_ps(vb, a0, a0));
		__m512 nb = _mm512_fnmadd_ps(va, p0, _mm512_fnmadd_ps(vb, b0, b0));
		_mm512_mask_storeu_ps(p + k, m, np);
		_mm512_mask_storeu_ps(qi + k, m, na);
		_mm512_mask_storeu_ps(qj + k, m, nb);
	}
}

static void mfs_score_avx512(const float *u, const float *rows, size_t stride, size_t n,
			     size_t count, float *out)
{
	const size_t nv = n & ~(size_t)15;
	const __mmask16 m = tail_mask(n - nv);
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
		__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
		__m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
		__m512 a4 = _mm512_setzero_ps(), a5 = _mm512_setzero_ps();
		__m512 a6 = _mm512_setzero_ps(), a7 = _mm512_setzero_ps();
		size_t i = 0;
		for (; i < nv; i += 16) {
			const __m512 x = _mm512_loadu_ps(u + i);
			a0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r0 + i), a0);
			a1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r1 + i), a1);
			a2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r2 + i), a2);
			a3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r3 + i), a3);
			a4 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r4 + i), a4);
			a5 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r5 + i), a5);
			a6 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r6 + i), a6);
			a7 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r7 + i), a7);
		}
		if (i < n) {
			const __m512 x = _mm512_maskz_loadu_ps(m, u + i);
			a0 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, r0 + i), a0);
			a1 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, r1 + i), a1);
			a2 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, r2 + i), a2);
			a3 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, r3 + i), a3);
			a4 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, r4 + i), a4);
			a5 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, r5 + i), a5);
			a6 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, r6 + i), a6);
			a7 = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m, r7 + i), a7);
		}
		_mm256_storeu_ps(out + j, hsum8x16(a0, a1, a2, a3, a4, a5, a6, a7));
	}
	for (; j < count; j++)
		out[j] = dot_avx512(u, rows + j * stride, n);
}

/* The AVX2 integer form (AVX-512F implies AVX2; the 512-bit byte
 * multiply-add needs AVX-512BW, which AVX-512F alone does not promise). */
static void mfs_score_q8_avx512(const uint8_t *u, const int8_t *rows, size_t stride, size_t n,
				size_t count, int32_t *out)
{
	mfs_score_q8_x86(u, rows, stride, n, count, out);
}

const struct mfs_kernels mfs_kernels_avx512 = {
	.name = "avx512",
	.width = 16,
	.dot = mfs_dot_avx512,
	.sgd_step = mfs_sgd_step_avx512,
	.bpr_step = mfs_bpr_step_avx512,
	.adagrad_step = mfs_adagrad_step_avx512,
	.score = mfs_score_avx512,
	.score_q8 = mfs_score_q8_avx512,
};
