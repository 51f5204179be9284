/* rng.c - xoshiro256** seeded through splitmix64: all the library's randomness. */
#include <math.h>

#include "internal.h"

uint64_t mfs_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

MFS_API void mfs_rng_seed(struct mfs_rng *r, uint64_t seed)
{
	uint64_t st = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = mfs_splitmix64(&st);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

MFS_API uint64_t mfs_rng_next(struct mfs_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

MFS_API double mfs_rng_uniform(struct mfs_rng *r)
{
	return (double)(mfs_rng_next(r) >> 11) * 0x1.0p-53;
}

MFS_API double mfs_rng_normal(struct mfs_rng *r)
{
	/* Box-Muller; one value per call keeps the stream simple to reproduce. */
	double u1 = mfs_rng_uniform(r), u2 = mfs_rng_uniform(r);
	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

MFS_API uint64_t mfs_rng_below(struct mfs_rng *r, uint64_t n)
{
	if (n == 0)
		return 0;
	/* Lemire's multiply-shift with rejection: unbiased. */
	unsigned __int128 m = (unsigned __int128)mfs_rng_next(r) * n;
	uint64_t l = (uint64_t)m;
	if (l < n) {
		uint64_t t = -n % n;
		while (l < t) {
			m = (unsigned __int128)mfs_rng_next(r) * n;
			l = (uint64_t)m;
		}
	}
	return (uint64_t)(m >> 64);
}

void mfs_rng_normal_fill(struct mfs_rng *r, float *out, size_t n, float std)
{
	/*
	 * A bounded near-normal (Irwin-Hall: the sum of four uniforms, centred
	 * and scaled to unit variance; |x| < 3.47), like the truncated normal
	 * fastai initialises embeddings with. One 64-bit draw per value: row
	 * initialisation was a fifth of a pass over a stream of new IDs with
	 * Box-Muller or the polar method.
	 */
	const float scale = std * 1.7320508f / 65536.0f; /* sd of the sum is 2^16 / sqrt(3) */
	for (size_t i = 0; i < n; i++) {
		uint64_t x = mfs_rng_next(r);
		int32_t sum = (int32_t)(x & 0xFFFF) + (int32_t)((x >> 16) & 0xFFFF) +
			      (int32_t)((x >> 32) & 0xFFFF) + (int32_t)(x >> 48) - 131070;
		out[i] = (float)sum * scale;
	}
}
