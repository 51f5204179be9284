/* sampler.c - the Fenwick tree of the negative sampler (sampler.h). */
#include "sampler.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mathf.h"

int mfs_sampler_init(struct mfs_sampler *s, uint64_t cap, float beta)
{
	memset(s, 0, sizeof *s);
	s->tree = calloc((size_t)cap + 1, sizeof *s->tree);
	s->w = calloc(cap ? (size_t)cap : 1, sizeof *s->w);
	if (!s->tree || !s->w) {
		mfs_sampler_free(s);
		return -MFS_E_NOMEM;
	}
	s->cap = cap;
	s->beta = beta;
	for (s->top = cap ? 1 : 0; s->top && s->top * 2 <= cap; s->top *= 2)
		;
	return 0;
}

void mfs_sampler_free(struct mfs_sampler *s)
{
	free(s->tree);
	free(s->w);
	memset(s, 0, sizeof *s);
}

uint32_t mfs_sampler_weight(float beta, uint32_t count)
{
	if (count == 0)
		return 0;
	if (beta == 0.0f)
		return 16;
	double w = beta == 1.0f ? 16.0 * count : 16.0 * (double)mfs_powf((float)count, beta);
	w = w + 0.5;
	return w >= 4294967295.0 ? UINT32_MAX : (uint32_t)w;
}

void mfs_sampler_set(struct mfs_sampler *s, uint64_t row, uint32_t w)
{
	uint32_t old = s->w[row];
	if (w == old)
		return;
	s->w[row] = w;
	s->total = s->total + w - old;
	/* unsigned wrap-around adds a negative difference exactly */
	uint64_t d = (uint64_t)w - (uint64_t)old;
	for (uint64_t i = row + 1; i <= s->cap; i += i & (~i + 1))
		s->tree[i] += d;
}

void mfs_sampler_build(struct mfs_sampler *s)
{
	s->total = 0;
	for (uint64_t i = 1; i <= s->cap; i++) {
		s->tree[i] = s->w[i - 1];
		s->total += s->w[i - 1];
	}
	for (uint64_t i = 1; i <= s->cap; i++) {
		uint64_t p = i + (i & (~i + 1));
		if (p <= s->cap)
			s->tree[p] += s->tree[i];
	}
}

uint64_t mfs_sampler_find(const struct mfs_sampler *s, uint64_t r)
{
	uint64_t pos = 0;
	for (uint64_t step = s->top; step; step >>= 1) {
		uint64_t nx = pos + step;
		if (nx <= s->cap && s->tree[nx] <= r) {
			pos = nx;
			r -= s->tree[nx];
		}
	}
	return pos; /* the 1-based index pos + 1 holds r: row pos */
}
