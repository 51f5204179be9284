/* topk.h - the k best (score, row) pairs of a scan: a min-heap, then sorted best first. */
#ifndef MFS_TOPK_H
#define MFS_TOPK_H

#include <stddef.h>

#include "model_internal.h"

/* Higher score first; ties: the lower row first. */
static inline int topk_better(mfs_scored a, mfs_scored b)
{
	return a.score > b.score || (a.score == b.score && a.row < b.row);
}

static inline void topk_down(mfs_scored *h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, w = i;
		if (l < n && topk_better(h[w], h[l]))
			w = l;
		if (r < n && topk_better(h[w], h[r]))
			w = r;
		if (w == i)
			return;
		mfs_scored t = h[i];
		h[i] = h[w];
		h[w] = t;
		i = w;
	}
}

static inline void topk_up(mfs_scored *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!topk_better(h[p], h[i]))
			return;
		mfs_scored t = h[i];
		h[i] = h[p];
		h[p] = t;
		i = p;
	}
}

/* h: room for k entries; n: entries held. h[0] is the worst of the k best. */
struct topk {
	mfs_scored *h;
	size_t k, n;
};

static inline void topk_offer(struct topk *t, uint32_t row, float score)
{
	mfs_scored c = { row, score };
	if (t->n < t->k) {
		t->h[t->n] = c;
		topk_up(t->h, t->n++);
	} else if (topk_better(c, t->h[0])) {
		t->h[0] = c;
		topk_down(t->h, t->n, 0);
	}
}

/* Whether a top-K leaves item row r out (struct mfs_exclusion, model_internal.h). */
static inline int mfs_excluded(const struct mfs_exclusion *x, uint32_t r)
{
	if ((int64_t)r == x->self)
		return 1;
	if (x->count && x->count[r] < x->min_events)
		return 1;
	size_t lo = 0, hi = x->n; /* binary search of the sorted history */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->rows[mid] < r)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < x->n && x->rows[lo] == r;
}

/* Sort the heap best first (heap sort in place); returns the count. */
static inline size_t topk_finish(struct topk *t)
{
	size_t n = t->n;
	for (size_t end = n; end > 1; end--) {
		mfs_scored tmp = t->h[0];
		t->h[0] = t->h[end - 1];
		t->h[end - 1] = tmp;
		topk_down(t->h, end - 1, 0);
	}
	return n;
}

#endif
