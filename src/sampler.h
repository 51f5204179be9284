/*
 * sampler.h - the negative sampler of implicit feedback: item rows drawn in
 * proportion to a weight, from a Fenwick (binary indexed) tree over the rows.
 *
 * A row's weight is mfs_sampler_weight(beta, count): round(16 * count^beta)
 * for an item that has learned count events (0 for none), so beta 0 draws
 * uniformly over the items seen, 1 in proportion to their popularity, 0.75
 * as word2vec. Memory is fixed by the item table's capacity (12 bytes a
 * row); updates and draws cost O(log rows). The tree is a function of the
 * weights alone: rebuilt from the model's per-item counts it is the tree the
 * stream built, so a model file need not hold it.
 */
#ifndef MFS_SAMPLER_H
#define MFS_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

struct mfs_sampler {
	uint64_t cap;   /* rows */
	uint64_t top;   /* the largest power of two <= cap (0 when cap is 0) */
	uint64_t *tree; /* cap + 1 Fenwick sums, 1-based */
	uint32_t *w;    /* cap: each row's weight in the tree */
	uint64_t total; /* the sum of the weights */
	float beta;
};

/* An empty sampler (all weights 0) of cap rows. Returns 0 or -MFS_E_NOMEM. */
int mfs_sampler_init(struct mfs_sampler *s, uint64_t cap, float beta);
void mfs_sampler_free(struct mfs_sampler *s);

/* round(16 * count^beta), at most UINT32_MAX; 0 for count 0. */
uint32_t mfs_sampler_weight(float beta, uint32_t count);

/* Give row the weight w. */
void mfs_sampler_set(struct mfs_sampler *s, uint64_t row, uint32_t w);

/* Rebuild the tree from s->w (filled by the caller) in O(rows). */
void mfs_sampler_build(struct mfs_sampler *s);

/* The row whose share of [0, total) holds r (r < total). */
uint64_t mfs_sampler_find(const struct mfs_sampler *s, uint64_t r);

#endif
