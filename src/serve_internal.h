/*
 * serve_internal.h - what serving's two files share (serve.c: the server,
 * its refresh and pins; serve_index.c: the int8 index and its exact top-K
 * scan): the index, a view, and the index's build and free. Internal.
 */
#ifndef MFS_SERVE_INTERNAL_H
#define MFS_SERVE_INTERNAL_H

#include "model_internal.h"

/*
 * The compact copy of the item table that a top-K scans first: every live
 * item row quantised to int8 with a scale of its own (a quarter of the bytes
 * of float rows, so the scan streams 4x less memory). The query is quantised
 * too (to -63..63, so that the kernel's byte multiply-adds cannot saturate),
 * and the integer dot product of the two gives an approximate score whose
 * error is bounded (Cauchy-Schwarz):
 *   |p.q - sp*sq*(p8.q8)| <= |p - sp*p8| |q| + |sp*p8| |q - sq*q8|
 * The scan keeps every item whose upper bound reaches the k-th best lower
 * bound and scores only those exactly from the float rows, so the result is
 * the exact top-K of mfs_model_recommend / mfs_model_similar.
 *
 * The entries are ordered by item bias, highest first, in blocks of
 * BOUND_ROWS with the largest bias and row norm of each: a recommend score is
 * at most base + bias + |p| |q| (Cauchy-Schwarz), so once the k-th best lower
 * bound is known a block whose bound stays below it is skipped unread, and
 * the scan stops where no later block can reach it. Biases dominate the
 * scores of trained models (the bound leaves a few in 10^4 items on the
 * bench models), so a top-10 reads the first blocks and a few block bounds,
 * not the whole table.
 */
struct qindex {
	uint64_t n;    /* live item rows */
	uint32_t np;   /* bytes per int8 row: dim rounded up to 16 (zero padding) */
	uint32_t *row; /* n: the model row of each */
	int8_t *q8;    /* n x np, -127..127 */
	int32_t *rsum; /* n: the sum of a row's q8 (the query's +64 offset adds 64 * rsum) */
	float *scale;  /* n: row ~ scale * q8 */
	float *bias;   /* n: the item bias */
	float *err;    /* n: |q - scale * q8|, rounded up */
	float *norm;   /* n: |q| as mfs_model_similar computes it */
	uint64_t nb;   /* blocks of BOUND_ROWS entries (the last may be short) */
	float *bmax;   /* 2 x nb: a block's largest bias (its first), largest norm */
	float *snorm;  /* nb: the largest norm of a block and all after it */
};

#define BOUND_ROWS 64

/* x rounded to the nearest integer (halves away from 0), kept in [-lim, lim]:
 * roundf without the libm call (baseline x86-64 has no rounding instruction),
 * and without a branch on the sign (which mispredicted on every other value
 * and was most of an index build). */
static inline float round_level(float x, float lim)
{
	x = x > lim ? lim : x;
	x = x < -lim ? -lim : x;
	return (float)(int)(x + __builtin_copysignf(0.5f, x));
}

/* The query levels: -63..63, offset by 64 into the kernel's unsigned 1..127. */
#define Q_LEVELS 63
#define Q_OFFSET 64

/* One loaded model, its index, and the pins on it. */
struct mfs_view {
	mfs_model *m;
	struct qindex ix;
	uint64_t pins;
	int retired; /* no longer current: freed when pins reaches 0 */
	struct mfs_view *next;
};

/* Build the index of m's item rows into q. 0, or -MFS_E_NOMEM. */
int mfs_qindex_build(struct qindex *q, const mfs_model *m);
void mfs_qindex_free(struct qindex *q);

#endif
