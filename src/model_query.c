/*
 * model_query.c - predictions and answers: the link, predict, the exact
 * top-K of recommend and similar (topk.h), what a query leaves out, a user's
 * history, rows by index.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_step.h"
#include "topk.h"

static float apply_link(const mfs_model *m, float raw)
{
	if (m->imp.on)
		return raw; /* implicit: the logit itself */
	struct mfs_step s;
	memset(&s, 0, sizeof s);
	s.lo = m->cfg.lo;
	s.hi = m->cfg.hi;
	sigmoid_span(m, &s.slo, &s.shi);
	s.link = m->cfg.link == MFS_RANGE_SIGMOID ? MFS_LINK_SIGMOID : MFS_LINK_CLAMP;
	s.base = raw;
	mfs_step_finish(&s, 0.0f);
	return s.pred;
}

/*
 * The factor vector and bias of a known user: its row, or with two hashes per
 * user the sum of its two rows (written to buf, stride floats).
 */
static const float *user_vector(const mfs_model *m, int64_t u, const char *id, size_t len,
				float *buf, float *bias)
{
	const float *p1 = mfs_row(&m->user, (uint64_t)u, m->stride);
	*bias = m->user.bias[u];
	if (m->cfg.user_hashes != 2)
		return p1;
	int64_t u2 = mfs_idmap_find(&m->user.ids,
				    second_key(id_key(m, id, (uint32_t)len)));
	if (u2 < 0 || u2 == u)
		return p1;
	const float *p2 = mfs_row(&m->user, (uint64_t)u2, m->stride);
	for (uint32_t d = 0; d < m->stride; d++)
		buf[d] = p1[d] + p2[d];
	*bias += m->user.bias[u2];
	return buf;
}

MFS_API int mfs_model_predict(const mfs_model *m, const char *user, size_t user_len,
			      const char *item, size_t item_len, float *out)
{
	if (!m || !out)
		return -MFS_E_INVAL;
	int64_t u = find_row(m, &m->user, user, user_len);
	int64_t i = find_row(m, &m->item, item, item_len);
	float raw = raw_mu(m);
	int known = 0;
	float ubuf[MFS_DIM_MAX_STRIDE] __attribute__((aligned(64)));
	float ub;
	const float *p = u >= 0 ? user_vector(m, u, user, user_len, ubuf, &ub) : NULL;
	if (u >= 0) {
		raw += ub;
		known |= MFS_KNOWN_USER;
	}
	if (i >= 0) {
		raw += m->item.bias[i];
		known |= MFS_KNOWN_ITEM;
	}
	if (u >= 0 && i >= 0)
		raw += m->k->dot(p, mfs_row(&m->item, (uint64_t)i, m->stride), m->klen);
	*out = apply_link(m, raw);
	return known;
}

/* --- top-K (topk.h: a min-heap of the k best, then sorted best first) --- */

struct mfs_query {
	int include_seen;
	uint32_t min_events;
};

MFS_API int mfs_query_create(mfs_query **out)
{
	if (!out)
		return -MFS_E_INVAL;
	mfs_query *q = calloc(1, sizeof *q);
	if (!q)
		return -MFS_E_NOMEM;
	*out = q;
	return 0;
}

MFS_API int mfs_query_set(mfs_query *q, int param, int64_t value)
{
	if (!q)
		return -MFS_E_INVAL;
	switch (param) {
	case MFS_QUERY_INCLUDE_SEEN:
		if (value != 0 && value != 1)
			return -MFS_E_RANGE;
		q->include_seen = (int)value;
		return 0;
	case MFS_QUERY_MIN_EVENTS:
		if (value < 0 || value > UINT32_MAX)
			return -MFS_E_RANGE;
		q->min_events = (uint32_t)value;
		return 0;
	default:
		return -MFS_E_INVAL;
	}
}

MFS_API void mfs_query_free(mfs_query *q)
{
	free(q);
}

size_t mfs_history_rows(const mfs_model *m, uint64_t u, uint32_t *rows, size_t cap)
{
	const struct mfs_table *s = &m->user;
	if (!s->hist)
		return 0;
	const uint64_t *h = mfs_hist_row(s, u);
	uint32_t next = MFS_HPOS_NEXT(s->hpos[u]), fill = MFS_HPOS_FILL(s->hpos[u]);
	size_t n = 0;
	/* newest first: the slots before next, then (a full ring) the ones after it */
	for (uint32_t j = 0; j < fill; j++) {
		uint32_t slot = next >= j + 1 ? next - j - 1 : next + s->hist_len - j - 1;
		int64_t r = mfs_idmap_find(&m->item.ids, h[slot]);
		if (r < 0)
			continue; /* evicted since */
		if (n < cap)
			rows[n] = (uint32_t)r;
		n++;
	}
	return n;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

int mfs_model_exclusion(const mfs_model *m, const mfs_query *q, int64_t u, int64_t self,
			uint32_t *buf, struct mfs_exclusion *x)
{
	memset(x, 0, sizeof *x);
	x->self = self;
	x->rows = buf;
	if (q && q->min_events > 0) {
		if (!m->item.count)
			return -MFS_E_UNSUPPORTED;
		x->count = m->item.count;
		x->min_events = q->min_events;
	}
	if (u >= 0 && !(q && q->include_seen)) {
		size_t n = mfs_history_rows(m, (uint64_t)u, buf, MFS_HISTORY_MAX), d = 0;
		qsort(buf, n, sizeof *buf, cmp_u32);
		for (size_t j = 0; j < n; j++) /* repeats once */
			if (d == 0 || buf[d - 1] != buf[j])
				buf[d++] = buf[j];
		x->n = d;
	}
	return 0;
}

#define SCORE_BLOCK 1024

/*
 * The top k of user row u (-1: a cold user) whose vector is p (NULL: cold)
 * and bias ub, among the items q lets in: the scan of mfs_model_recommend,
 * also the ranking of the implicit learner's prequential metrics. Raw scores.
 */
int mfs_model_recommend_row(const mfs_model *m, const mfs_query *q, int64_t u, const float *p,
			    float ub, size_t k, mfs_scored *out)
{
	uint64_t items = table_rows(&m->item);
	if (k > m->item.ids.used)
		k = m->item.ids.used;
	if (k == 0)
		return 0;
	struct topk t = { out, k, 0 };
	uint32_t seen[MFS_HISTORY_MAX];
	struct mfs_exclusion x;
	int rc = mfs_model_exclusion(m, q, u, -1, seen, &x);
	if (rc < 0)
		return rc;
	float base = raw_mu(m) + ub;
	float sc[SCORE_BLOCK];
	for (uint64_t b = 0; b < items; b += SCORE_BLOCK) {
		size_t cnt = items - b < SCORE_BLOCK ? (size_t)(items - b) : SCORE_BLOCK;
		if (p)
			m->k->score(p, mfs_row(&m->item, b, m->stride), m->stride, m->klen, cnt, sc);
		else
			memset(sc, 0, cnt * sizeof *sc);
		for (size_t j = 0; j < cnt; j++)
			if (row_live(&m->item, b + j) && !mfs_excluded(&x, (uint32_t)(b + j)))
				topk_offer(&t, (uint32_t)(b + j), base + m->item.bias[b + j] + sc[j]);
	}
	return (int)topk_finish(&t);
}

MFS_API int mfs_model_recommend_with(const mfs_model *m, const mfs_query *q, const char *user,
				     size_t user_len, size_t k, mfs_scored *out)
{
	if (!m || (!out && k))
		return -MFS_E_INVAL;
	int64_t u = find_row(m, &m->user, user, user_len);
	float ubuf[MFS_DIM_MAX_STRIDE] __attribute__((aligned(64)));
	float ub = 0.0f;
	const int pop = m->imp.on && m->imp.cfg.loss == MFS_LOSS_POPULARITY;
	const float *p = u >= 0 && !pop ? user_vector(m, u, user, user_len, ubuf, &ub) : NULL;
	int got = mfs_model_recommend_row(m, q, u, p, ub, k, out);
	for (int j = 0; j < got; j++)
		out[j].score = apply_link(m, out[j].score);
	return got;
}

MFS_API int mfs_model_recommend(const mfs_model *m, const char *user, size_t user_len, size_t k,
				mfs_scored *out)
{
	return mfs_model_recommend_with(m, NULL, user, user_len, k, out);
}

/* serve.c: what mfs_model_recommend ranks by, for a top-K of its own. */
const float *mfs_model_user_query(const mfs_model *m, const char *user, size_t len, float *buf,
				  float *base)
{
	int64_t u = find_row(m, &m->user, user, len);
	float ub = 0.0f;
	const float *p = u >= 0 ? user_vector(m, u, user, len, buf, &ub) : NULL;
	*base = raw_mu(m) + ub;
	return p;
}

float mfs_model_link(const mfs_model *m, float raw)
{
	return apply_link(m, raw);
}

MFS_API int mfs_model_similar_with(const mfs_model *m, const mfs_query *q, const char *item,
				   size_t item_len, size_t k, mfs_scored *out)
{
	if (!m || (!out && k))
		return -MFS_E_INVAL;
	int64_t it = find_row(m, &m->item, item, item_len);
	if (it < 0)
		return -MFS_E_NOTFOUND;
	uint64_t items = table_rows(&m->item);
	if (k > m->item.ids.used - 1)
		k = m->item.ids.used - 1;
	if (k == 0)
		return 0;
	struct mfs_exclusion x;
	int rc = mfs_model_exclusion(m, q, -1, it, NULL, &x);
	if (rc < 0)
		return rc;
	struct topk t = { out, k, 0 };
	const float *qv = mfs_row(&m->item, (uint64_t)it, m->stride);
	float qn = sqrtf(m->k->dot(qv, qv, m->klen));
	float sc[SCORE_BLOCK];
	for (uint64_t b = 0; b < items; b += SCORE_BLOCK) {
		size_t cnt = items - b < SCORE_BLOCK ? (size_t)(items - b) : SCORE_BLOCK;
		m->k->score(qv, mfs_row(&m->item, b, m->stride), m->stride, m->klen, cnt, sc);
		for (size_t j = 0; j < cnt; j++) {
			uint64_t row = b + j;
			if (!row_live(&m->item, row) || mfs_excluded(&x, (uint32_t)row))
				continue;
			const float *r = mfs_row(&m->item, row, m->stride);
			float rn = sqrtf(m->k->dot(r, r, m->klen));
			float cosv = (qn > 0.0f && rn > 0.0f) ? sc[j] / (qn * rn) : 0.0f;
			topk_offer(&t, (uint32_t)row, cosv);
		}
	}
	return (int)topk_finish(&t);
}

MFS_API int mfs_model_similar(const mfs_model *m, const char *item, size_t item_len, size_t k,
			      mfs_scored *out)
{
	return mfs_model_similar_with(m, NULL, item, item_len, k, out);
}

MFS_API int mfs_model_history(const mfs_model *m, const char *user, size_t user_len,
			      uint32_t *rows, size_t cap)
{
	if (!m || (!rows && cap))
		return -MFS_E_INVAL;
	int64_t u = find_row(m, &m->user, user, user_len);
	if (u < 0)
		return -MFS_E_NOTFOUND;
	uint32_t all[MFS_HISTORY_MAX];
	size_t n = mfs_history_rows(m, (uint64_t)u, all, MFS_HISTORY_MAX), d = 0;
	for (size_t j = 0; j < n; j++) { /* each item once, at its most recent place */
		size_t k = 0;
		while (k < d && all[k] != all[j])
			k++;
		if (k == d)
			all[d++] = all[j];
	}
	for (size_t j = 0; j < d && j < cap; j++)
		rows[j] = all[j];
	return (int)d;
}

MFS_API int64_t mfs_model_row_events(const mfs_model *m, int side, uint32_t row)
{
	if (!m || (side != MFS_USERS && side != MFS_ITEMS))
		return -MFS_E_INVAL;
	const struct mfs_table *s = side == MFS_USERS ? &m->user : &m->item;
	if (row >= table_rows(s) || !row_live(s, row))
		return -MFS_E_RANGE;
	if (!s->count)
		return -MFS_E_UNSUPPORTED;
	return s->count[row];
}

MFS_API int mfs_model_row(const mfs_model *m, int side, uint32_t row, const char **id,
			  size_t *len, float *bias)
{
	if (!m || (side != MFS_USERS && side != MFS_ITEMS))
		return -MFS_E_INVAL;
	const struct mfs_table *s = side == MFS_USERS ? &m->user : &m->item;
	if (row >= table_rows(s) || !row_live(s, row))
		return -MFS_E_RANGE;
	if (id)
		*id = s->ids.arena + s->ids.row_off[row];
	if (len)
		*len = s->ids.row_len[row];
	if (bias)
		*bias = s->bias[row];
	return 0;
}
