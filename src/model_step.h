/*
 * model_step.h - what the model's files (model.c, model_learn.c,
 * model_query.c, model_implicit.c) share: small inline helpers of the
 * per-event path and the two calls that cross files. Internal.
 */
#ifndef MFS_MODEL_STEP_H
#define MFS_MODEL_STEP_H

#include "model_internal.h"

/* A fresh row's AdaGrad bias accumulator. */
#ifndef MFS_BIAS_ACC0
#define MFS_BIAS_ACC0 1.0f
#endif

/*
 * Remember that user row u learned item key: the ring's next slot takes it,
 * so the ring holds the items of the user's hist_len most recent events. A
 * repeat of the item just before takes no slot (runs of one item, as plays
 * of one song, collapse; the guarantee holds, as a run is one slot). Two
 * cache lines at most (the first word and the slot); the ring is not
 * searched for older repeats (they take a slot again), which would cost up
 * to hist_len / 8 lines per event.
 */
static inline void hist_add(struct mfs_table *s, int64_t u, uint64_t key)
{
	uint64_t *h = mfs_hist_row(s, (uint64_t)u);
	uint32_t next = MFS_HPOS_NEXT(s->hpos[u]), fill = MFS_HPOS_FILL(s->hpos[u]);
	uint32_t prev = next ? next - 1 : s->hist_len - 1;
	if (fill && h[prev] == key)
		return;
	h[next] = key;
	next = next + 1 == s->hist_len ? 0 : next + 1;
	fill += fill < s->hist_len;
	s->hpos[u] = fill << 16 | next;
}

static inline uint64_t id_key(const mfs_model *m, const char *id, uint32_t len)
{
	return mfs_idmap_key(mfs_hash_id(id, len, m->hash_seed));
}

static inline double current_mu(const mfs_model *m)
{
	if (m->mu_count == 0)
		return 0.5 * ((double)m->cfg.lo + (double)m->cfg.hi);
	return m->mu_sum / (double)m->mu_count;
}

/* The sigmoid link's span: the rating range widened by range_margin on each side. */
static inline void sigmoid_span(const mfs_model *m, float *slo, float *shi)
{
	float w = (m->cfg.hi - m->cfg.lo) * m->cfg.range_margin;
	*slo = m->cfg.lo - w;
	*shi = m->cfg.hi + w;
}

/*
 * mu where the prediction adds it: as it is for the clamp link; for the
 * sigmoid link the logit of its place in the range, so that a model with zero
 * biases and factors predicts mu (adding mu itself before the sigmoid would
 * start every prediction near the top of the range).
 */
static inline float raw_mu(const mfs_model *m)
{
	if (m->imp.on)
		return 0.0f; /* implicit: logits, no mean */
	double mu = current_mu(m);
	if (m->cfg.link != MFS_RANGE_SIGMOID)
		return (float)mu;
	float slo, shi;
	sigmoid_span(m, &slo, &shi);
	double t = (mu - slo) / ((double)shi - slo);
	if (t < 1e-3)
		t = 1e-3;
	if (t > 1.0 - 1e-3)
		t = 1.0 - 1e-3;
	return mfs_logf((float)(t / (1.0 - t))); /* mathf.h: no libm call per event */
}

/* A row learns an event: count it (first pass only: replays do not add to n). */
static inline void count_event(const mfs_model *m, struct mfs_table *s, int64_t row)
{
	if (s->count && !m->replay && s->count[row] != UINT32_MAX)
		s->count[row]++;
}

/* The second key of an ID (hashed mode, two hashes): another row of the table. */
static inline uint64_t second_key(uint64_t key)
{
	uint64_t x = key ^ 0xA0761D6478BD642FULL;
	x = (x ^ (x >> 32)) * 0xE7037ED1A0B428DBULL;
	return mfs_idmap_key(x ^ (x >> 29));
}

static inline int64_t find_row(const mfs_model *m, const struct mfs_table *s, const char *id, size_t len)
{
	if (!id || len == 0 || len > MFS_ID_MAX)
		return -1;
	return mfs_idmap_find(&s->ids, id_key(m, id, (uint32_t)len));
}

/*
 * The row of key on side s (its ID id, len bytes), placed if new (a fresh row
 * initialised), marked dirty for the next delta; -1 when not placed.
 */
int64_t mfs_model_resolve_key(mfs_model *m, struct mfs_table *s, uint64_t key, const char *id,
			      uint32_t len);

/* The top k items for user row u (vector p, bias ub), what q leaves out left out. */
int mfs_model_recommend_row(const mfs_model *m, const mfs_query *q, int64_t u, const float *p,
			    float ub, size_t k, mfs_scored *out);

#endif
