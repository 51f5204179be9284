/*
 * serve_index.c - the int8 index of a view's item rows (serve_internal.h
 * says how it bounds scores) and the exact top-K scan over it: recommend and
 * similar of a pinned view.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "serve_internal.h"
#include "topk.h"

void mfs_qindex_free(struct qindex *q)
{
	free(q->row);
	free(q->q8);
	free(q->scale);
	free(q->bias);
	free(q->err);
	free(q->norm);
	free(q->rsum);
	free(q->bmax);
	free(q->snorm);
	memset(q, 0, sizeof *q);
}

/* Bias order: the higher bias first, then the lower row (a total order). */
struct by_bias {
	float bias;
	uint32_t row;
};

static int by_bias_cmp(const void *a, const void *b)
{
	const struct by_bias *x = a, *y = b;
	if (x->bias != y->bias)
		return x->bias > y->bias ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

int mfs_qindex_build(struct qindex *q, const mfs_model *m)
{
	const struct mfs_table *t = &m->item;
	uint64_t rows = table_rows(t), n = 0;
	for (uint64_t r = 0; r < rows; r++)
		n += row_live(t, r);
	memset(q, 0, sizeof *q);
	q->n = n;
	q->np = (m->cfg.dim + 15u) & ~15u;
	q->nb = (n + BOUND_ROWS - 1) / BOUND_ROWS;
	size_t nn = n ? (size_t)n : 1, nb = q->nb ? (size_t)q->nb : 1;
	struct by_bias *order = malloc(nn * sizeof *order);
	q->row = malloc(nn * sizeof *q->row);
	q->q8 = mfs_alloc_aligned(nn * q->np);
	q->scale = malloc(nn * sizeof(float));
	q->bias = malloc(nn * sizeof(float));
	q->err = malloc(nn * sizeof(float));
	q->norm = malloc(nn * sizeof(float));
	q->rsum = malloc(nn * sizeof(int32_t));
	q->bmax = malloc(2 * nb * sizeof(float));
	q->snorm = malloc(nb * sizeof(float));
	if (!order || !q->row || !q->q8 || !q->scale || !q->bias || !q->err || !q->norm ||
	    !q->rsum || !q->bmax || !q->snorm) {
		free(order);
		mfs_qindex_free(q);
		return -MFS_E_NOMEM;
	}
	uint64_t i = 0;
	for (uint64_t r = 0; r < rows; r++)
		if (row_live(t, r))
			order[i++] = (struct by_bias){ isnan(t->bias[r]) ? -INFINITY : t->bias[r],
						       (uint32_t)r };
	qsort(order, (size_t)n, sizeof *order, by_bias_cmp);
	const uint32_t dim = m->cfg.dim;
	float lv[MFS_DIM_MAX_STRIDE], res[MFS_DIM_MAX_STRIDE] __attribute__((aligned(64)));
	memset(res, 0, sizeof res); /* zero padding up to klen */
	for (i = 0; i < n; i++) {
		const uint32_t r = order[i].row;
		const float *v = mfs_row(t, r, m->stride);
		int8_t *o = q->q8 + i * q->np;
		float mx = 0.0f;
		for (uint32_t d = 0; d < dim; d++) {
			float a = fabsf(v[d]);
			mx = a > mx ? a : mx;
		}
		const float sc = mx > 0.0f ? mx / 127.0f : 1.0f, inv = 1.0f / sc;
		int32_t sum = 0;
		/* plain loops over locals, so that they vectorise */
		for (uint32_t d = 0; d < dim; d++)
			lv[d] = round_level(v[d] * inv, 127.0f);
		for (uint32_t d = 0; d < dim; d++) {
			o[d] = (int8_t)lv[d];
			sum += (int32_t)lv[d];
		}
		for (uint32_t d = 0; d < dim; d++)
			res[d] = v[d] - sc * lv[d];
		/*
		 * |row - sc * q8| from the float residuals: each is within one
		 * rounding (2^-24 relative) of sc * lv[d], so of |v[d]| + |res[d]|,
		 * and the kernel's sum within dim * 2^-24: 1e-5 relative and 1e-6
		 * of |v| more cover both with room.
		 */
		const float rn = sqrtf(m->k->dot(res, res, m->klen)), vn = sqrtf(m->k->dot(v, v, m->klen));
		q->row[i] = r;
		q->rsum[i] = sum;
		q->scale[i] = sc;
		q->bias[i] = t->bias[r];
		q->err[i] = rn * (1.0f + 1e-5f) + 1e-6f * vn;
		q->norm[i] = vn;
	}
	free(order);
	for (uint64_t b = q->nb; b-- > 0;) {
		uint64_t lo = b * BOUND_ROWS, hi = lo + BOUND_ROWS < n ? lo + BOUND_ROWS : n;
		float mn = 0.0f;
		for (uint64_t j = lo; j < hi; j++)
			mn = q->norm[j] > mn ? q->norm[j] : mn;
		q->bmax[2 * b] = q->bias[lo];
		q->bmax[2 * b + 1] = mn;
		q->snorm[b] = b + 1 < q->nb && q->snorm[b + 1] > mn ? q->snorm[b + 1] : mn;
	}
	return 0;
}

/* Candidates of a scan: index entries whose upper bound reached the threshold. */
struct cands {
	uint32_t *idx;
	float *hi;
	size_t n, cap;
};

static int cands_push(struct cands *c, uint32_t i, float hi)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 1024;
		uint32_t *a = realloc(c->idx, cap * sizeof *a);
		if (!a)
			return -1;
		c->idx = a;
		float *b = realloc(c->hi, cap * sizeof *b);
		if (!b)
			return -1;
		c->hi = b;
		c->cap = cap;
	}
	c->idx[c->n] = i;
	c->hi[c->n++] = hi;
	return 0;
}

#define SCAN_BLOCK 1024

static _Thread_local struct mfs_scan_counts scan_counts;

void mfs_scan_counts_get(struct mfs_scan_counts *c)
{
	*c = scan_counts;
}

/*
 * Quantise a query of dim floats into np bytes (offset, see Q_OFFSET); the
 * padding gets the offset, which the rows' zero padding cancels. Writes the
 * scale, |q - scale * q8| and |scale * q8| (both rounded up). Returns 0, or
 * -1 for a zero query.
 */
static int quantise_query(const float *q, uint32_t dim, uint32_t np, uint8_t *u, float *scale,
			  float *err, float *qn8)
{
	float mx = 0.0f;
	for (uint32_t d = 0; d < dim; d++) {
		float a = fabsf(q[d]);
		mx = a > mx ? a : mx;
	}
	if (!(mx > 0.0f))
		return -1;
	const float sc = mx / Q_LEVELS, inv = 1.0f / sc;
	double e2 = 0.0, n2 = 0.0;
	for (uint32_t d = 0; d < dim; d++) {
		float x = round_level(q[d] * inv, Q_LEVELS);
		u[d] = (uint8_t)(int)(x + Q_OFFSET);
		double e = (double)q[d] - (double)sc * x;
		e2 += e * e;
		n2 += (double)sc * x * ((double)sc * x);
	}
	for (uint32_t d = dim; d < np; d++)
		u[d] = Q_OFFSET;
	*scale = sc;
	*err = (float)(sqrt(e2) * (1.0 + 1e-5));
	*qn8 = (float)(sqrt(n2) * (1.0 + 1e-5));
	return 0;
}

/*
 * The exact top-k of q's scores over the index, among the items x lets in:
 * an item left out never enters the bounds, so the result is the top k of
 * the rest (not a top k with holes).
 * Recommend (cos == 0): score = base + bias + q.row. Similar (cos == 1):
 * score = q.row / (|q| |row|) as mfs_model_similar. q NULL: a cold user (the
 * scores are base + bias). Returns the count or -MFS_E_NOMEM.
 */
static int scan(const struct mfs_view *v, const float *q, float base, int cos,
		const struct mfs_exclusion *x, size_t k, mfs_scored *out)
{
	const mfs_model *m = v->m;
	const struct qindex *ix = &v->ix;
	uint8_t qu[MFS_DIM_MAX_STRIDE] __attribute__((aligned(64)));
	float qs = 0.0f, qerr = 0.0f, qn8 = 0.0f;
	if (q && quantise_query(q, m->cfg.dim, ix->np, qu, &qs, &qerr, &qn8) < 0)
		q = NULL; /* a zero vector: its dot products are all 0 */
	const float qn = q ? sqrtf(m->k->dot(q, q, m->klen)) : 0.0f;
	const float qinv = qn > 0.0f ? 1.0f / qn : 0.0f;
	/* the k best lower bounds so far: h[0] is the threshold */
	mfs_scored lbuf[64], *lh = k <= 64 ? lbuf : malloc(k * sizeof *lh);
	struct topk lo = { lh, k, 0 };
	struct cands c = { 0 };
	int32_t sc[SCAN_BLOCK];
	float av[SCAN_BLOCK], hv[SCAN_BLOCK];
	int rc = 0;
	if (!lh)
		return -MFS_E_NOMEM;
	const float rel = 1.0f + 1e-5f; /* the kernel's |q| may be a rounding below the true one */
	/* recommend: blocks of BOUND_ROWS, each first checked against its bound */
	const uint64_t step = cos ? SCAN_BLOCK : BOUND_ROWS;
	uint64_t bounded = 0;
	for (uint64_t b = 0; b < ix->n && rc == 0; b += step) {
		size_t cnt = ix->n - b < step ? (size_t)(ix->n - b) : (size_t)step;
		if (!cos && lo.n == k) {
			/* every score of block bb is at most base + bias + |p| |q| (the
			 * float dot's rounding, relative to dim * 2^-24, well inside the
			 * 1e-4; the adds' inside the 1e-5): below the threshold it cannot
			 * enter, and from a block on whose bound with the largest norm
			 * still to come is below it, nothing after can (bias order) */
			const uint64_t bb = b / BOUND_ROWS;
			const float thr = lo.h[0].score, mb = ix->bmax[2 * bb];
			const float add = base + mb + 1e-5f * (fabsf(base) + fabsf(mb));
			if (add + qn * ix->snorm[bb] * 1.0001f < thr)
				break;
			if (add + qn * ix->bmax[2 * bb + 1] * 1.0001f < thr)
				continue;
		}
		bounded += cnt;
		if (q)
			m->k->score_q8(qu, ix->q8 + b * ix->np, ix->np, ix->np, cnt, sc);
		else
			memset(sc, 0, cnt * sizeof *sc);
		/* approximate scores and their error bounds, in loops that vectorise */
		const float *bias = ix->bias + b, *scale = ix->scale + b, *err = ix->err + b;
		const float *norm = ix->norm + b;
		const int32_t *rsum = ix->rsum + b;
		/* the threshold so far: a block none of whose rows reach it is done */
		const float thr0 = lo.n == k ? lo.h[0].score : -INFINITY;
		int any = 0;
		if (!cos) {
			for (size_t j = 0; j < cnt; j++) {
				float d = qs * scale[j] * (float)(q ? sc[j] - Q_OFFSET * rsum[j] : 0);
				float a = base + bias[j] + d;
				float h = a + (qerr * norm[j] * rel + qn8 * err[j]) +
					  4.0f * FLT_EPSILON * (fabsf(a) + fabsf(base) + fabsf(d));
				av[j] = a;
				hv[j] = h;
				any |= h >= thr0;
			}
		} else {
			for (size_t j = 0; j < cnt; j++) {
				/* a zero row or query: the exact cosine is 0 */
				float rinv = norm[j] > 0.0f ? qinv / norm[j] : 0.0f;
				float d = qs * scale[j] * (float)(q ? sc[j] - Q_OFFSET * rsum[j] : 0);
				float a = d * rinv;
				av[j] = a;
				float h = a + (rinv > 0.0f ? (qerr * norm[j] * rel + qn8 * err[j]) * rinv : 0.0f) +
					  8.0f * FLT_EPSILON * (fabsf(a) + 1.0f);
				hv[j] = h;
				any |= h >= thr0;
			}
		}
		float thr = thr0;
		for (size_t j = 0; any && j < cnt; j++) {
			if (hv[j] < thr)
				continue;
			uint32_t i = (uint32_t)(b + j);
			if (mfs_excluded(x, ix->row[i]))
				continue;
			topk_offer(&lo, i, av[j] - (hv[j] - av[j]));
			if (lo.n == k)
				thr = lo.h[0].score;
			if (cands_push(&c, i, hv[j]) < 0) {
				rc = -MFS_E_NOMEM;
				break;
			}
		}
	}
	size_t got = 0;
	if (rc == 0) {
		const float thr = lo.n == k ? lo.h[0].score : -INFINITY;
		struct topk t = { out, k, 0 };
		uint64_t rescored = 0;
		for (size_t j = 0; j < c.n; j++) {
			if (c.hi[j] < thr)
				continue;
			uint32_t r = ix->row[c.idx[j]];
			rescored++;
			const float *row = mfs_row(&m->item, r, m->stride);
			float d = q ? m->k->dot(q, row, m->klen) : 0.0f;
			float s;
			if (!cos) {
				s = base + m->item.bias[r] + d;
			} else {
				float rn = ix->norm[c.idx[j]];
				s = (qn > 0.0f && rn > 0.0f) ? d / (qn * rn) : 0.0f;
			}
			topk_offer(&t, r, s);
		}
		got = topk_finish(&t);
		scan_counts.queries++;
		scan_counts.bounded += bounded;
		scan_counts.rescored += rescored;
		if (!cos)
			for (size_t j = 0; j < got; j++)
				out[j].score = mfs_model_link(m, out[j].score);
	}
	if (lh != lbuf)
		free(lh);
	free(c.idx);
	free(c.hi);
	return rc < 0 ? rc : (int)got;
}

MFS_API int mfs_view_recommend_with(const mfs_view *v, const mfs_query *q, const char *user,
				    size_t user_len, size_t k, mfs_scored *out)
{
	if (!v || (!out && k))
		return -MFS_E_INVAL;
	if (k > v->ix.n)
		k = (size_t)v->ix.n;
	if (k == 0)
		return 0;
	float buf[MFS_DIM_MAX_STRIDE] __attribute__((aligned(64)));
	float base;
	const float *p = mfs_model_user_query(v->m, user, user_len, buf, &base);
	uint32_t seen[MFS_HISTORY_MAX];
	struct mfs_exclusion x;
	int rc = mfs_model_exclusion(v->m, q, mfs_model_find(v->m, MFS_USERS, user, user_len), -1,
				     seen, &x);
	if (rc < 0)
		return rc;
	return scan(v, p, base, 0, &x, k, out);
}

MFS_API int mfs_view_similar_with(const mfs_view *v, const mfs_query *q, const char *item,
				  size_t item_len, size_t k, mfs_scored *out)
{
	if (!v || (!out && k))
		return -MFS_E_INVAL;
	int64_t it = mfs_model_find(v->m, MFS_ITEMS, item, item_len);
	if (it < 0)
		return -MFS_E_NOTFOUND;
	if (k > v->ix.n - 1)
		k = (size_t)(v->ix.n - 1);
	if (k == 0)
		return 0;
	struct mfs_exclusion x;
	int rc = mfs_model_exclusion(v->m, q, -1, it, NULL, &x);
	if (rc < 0)
		return rc;
	return scan(v, mfs_row(&v->m->item, (uint64_t)it, v->m->stride), 0.0f, 1, &x, k, out);
}

MFS_API int mfs_view_recommend(const mfs_view *v, const char *user, size_t user_len, size_t k,
			       mfs_scored *out)
{
	return mfs_view_recommend_with(v, NULL, user, user_len, k, out);
}

MFS_API int mfs_view_similar(const mfs_view *v, const char *item, size_t item_len, size_t k,
			     mfs_scored *out)
{
	return mfs_view_similar_with(v, NULL, item, item_len, k, out);
}

