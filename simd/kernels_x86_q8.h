/*
 * kernels_x86_q8.h - the integer batch score (score_q8 of kernels.h) with
 * AVX2 byte multiply-adds, shared by kernels_avx2.c and kernels_avx512.c
 * (each compiles it with its own flags). vpmaddubsw multiplies unsigned u by
 * signed rows and adds pairs into 16 bits: with u <= 127 and |row| <= 127 a
 * pair is at most 32258, so nothing saturates and the sum is exact.
 */
#ifndef MFS_KERNELS_X86_Q8_H
#define MFS_KERNELS_X86_Q8_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

/* acc += the 8 sums of 4 products of x[0..32) and r[0..32). */
static inline __m256i q8_madd32(__m256i acc, __m256i x, const int8_t *r)
{
	const __m256i p = _mm256_maddubs_epi16(x, _mm256_loadu_si256((const __m256i *)r));
	return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* acc += the 4 sums of 4 products of x[0..16) and r[0..16), in the low half. */
static inline __m256i q8_madd16(__m256i acc, __m128i x, const int8_t *r)
{
	const __m128i p = _mm_maddubs_epi16(x, _mm_loadu_si128((const __m128i *)r));
	return _mm256_add_epi32(acc, _mm256_zextsi128_si256(_mm_madd_epi16(p, _mm_set1_epi16(1))));
}

static inline int32_t q8_hsum(__m256i a)
{
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
	return _mm_cvtsi128_si32(s);
}

/* Four rows at a time share each load of u; n % 16 == 0. */
static inline void mfs_score_q8_x86(const uint8_t *u, const int8_t *rows, size_t stride, size_t n,
				    size_t count, int32_t *out)
{
	const size_t n32 = n & ~(size_t)31;
	size_t j = 0;
	for (; j + 4 <= count; j += 4) {
		const int8_t *r0 = rows + j * stride, *r1 = r0 + stride;
		const int8_t *r2 = r0 + 2 * stride, *r3 = r0 + 3 * stride;
		__m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
		__m256i a2 = _mm256_setzero_si256(), a3 = _mm256_setzero_si256();
		for (size_t i = 0; i < n32; i += 32) {
			const __m256i x = _mm256_loadu_si256((const __m256i *)(u + i));
			a0 = q8_madd32(a0, x, r0 + i);
			a1 = q8_madd32(a1, x, r1 + i);
			a2 = q8_madd32(a2, x, r2 + i);
			a3 = q8_madd32(a3, x, r3 + i);
		}
		if (n32 < n) {
			const __m128i x = _mm_loadu_si128((const __m128i *)(u + n32));
			a0 = q8_madd16(a0, x, r0 + n32);
			a1 = q8_madd16(a1, x, r1 + n32);
			a2 = q8_madd16(a2, x, r2 + n32);
			a3 = q8_madd16(a3, x, r3 + n32);
		}
		/* lane k of s = the sum of a_k */
		const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
		_mm_storeu_si128((__m128i *)(out + j),
				 _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1)));
	}
	for (; j < count; j++) {
		const int8_t *r = rows + j * stride;
		__m256i a = _mm256_setzero_si256();
		size_t i = 0;
		for (; i < n32; i += 32)
			a = q8_madd32(a, _mm256_loadu_si256((const __m256i *)(u + i)), r + i);
		if (i < n)
			a = q8_madd16(a, _mm_loadu_si128((const __m128i *)(u + i)), r + i);
		out[j] = q8_hsum(a);
	}
}

#endif
