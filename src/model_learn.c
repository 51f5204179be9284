/*
 * model_learn.c - learning: an ID to its row (admission, eviction, a fresh
 * row's initialisation), one SGD or AdaGrad step per event through the kernel
 * table, prequential scoring, the resolved-row learning of replayed passes.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_step.h"

/* Initialise a fresh row: N(0, init_std) factors, zero bias, AdaGrad accumulator 1. */
static void init_row(mfs_model *m, struct mfs_table *s, uint64_t row)
{
	float *r = mfs_row(s, row, m->stride);
	uint32_t d = m->cfg.dim;
	mfs_rng_normal_fill(&m->rng, r, d, m->cfg.init_std);
	for (uint32_t i = d; i < m->stride; i++)
		r[i] = 0.0f;
	s->bias[row] = 0.0f;
	if (s->count)
		s->count[row] = 0;
	if (s->acc) {
		s->acc[row] = 1.0f;
		s->bacc[row] = MFS_BIAS_ACC0;
	}
	/* a new ID's history starts empty (an evicted row forgets its user's).
	 * Slots past the filled ones are always 0, so only those are cleared: a
	 * row used for the first time touches no ring memory here. */
	if (s->hist) {
		uint32_t fill = MFS_HPOS_FILL(s->hpos[row]);
		if (fill)
			memset(mfs_hist_row(s, row), 0, (size_t)fill * 8);
		s->hpos[row] = 0;
	}
}



int64_t mfs_model_resolve_key(mfs_model *m, struct mfs_table *s, uint64_t key, const char *id,
			      uint32_t len)
{
	int fresh;
	int64_t row = mfs_idmap_get(&s->ids, key, id, len, (uint32_t)m->tick, &fresh);
	if (fresh)
		init_row(m, s, (uint64_t)row);
	/* Every row an event changes comes through here: one bit for the next delta. */
	if (row >= 0)
		mfs_dirty_set(s, (uint64_t)row);
	return row;
}




/*
 * Frequency-dependent L2: the weight (n / MFS_FREQ_REF)^(alpha - 1) of a row
 * that has learned n events (bias 0: the factor alpha, 1: the bias alpha).
 */
static inline float freq_weight(const mfs_model *m, const struct mfs_table *s, int64_t row,
				int bias)
{
	uint32_t n = s->count[row];
	if (n < MFS_FREQ_TABLE)
		return m->freq_w[(uint32_t)bias * MFS_FREQ_TABLE + n];
	float a = bias ? m->cfg.freq_alpha_bias : m->cfg.freq_alpha;
	return mfs_powf((float)n / MFS_FREQ_REF, a - 1.0f);
}


/*
 * The L2 of one step, frequency-scaled: factors of rows p (user) and q (item)
 * into s->l2 and s->l2_q (replayed passes only), biases into *l2u and *l2i.
 */
static inline void step_l2(const mfs_model *m, int64_t u, int64_t i, float l2f, float l2b,
			   struct mfs_step *s, float *l2u, float *l2i)
{
	s->l2 = l2f;
	s->l2_q = l2f;
	*l2u = l2b;
	*l2i = l2b;
	if (!m->user.count)
		return;
	if (m->replay) {
		s->l2 = l2f * freq_weight(m, &m->user, u, 0);
		s->l2_q = l2f * freq_weight(m, &m->item, i, 0);
	}
	*l2u = l2b * freq_weight(m, &m->user, u, 1);
	*l2i = l2b * freq_weight(m, &m->item, i, 1);
}

/*
 * A chunk of events is learned in three passes: IDs -> keys with the index
 * slots prefetched; keys -> rows in event order; one step per event with the
 * rows MFS_ROW_AHEAD events ahead prefetched. (Interleaving the passes in
 * groups of 8-32 events measured 3-40% slower here, on a loaded 2-core VM:
 * the tight resolve pass overlaps its misses better.) Events are resolved
 * and learned in stream order, and resolve_side's drain keeps evictions off
 * rows in flight, so the model equals the event-by-event loop's.
 */
#define MFS_ROW_AHEAD 4

/* The lines one side's row will touch: factors, bias, AdaGrad state, count,
 * and (hist: users, the serial first pass) the history slot the event will
 * take (its place was prefetched before). */
static inline void prefetch_side(const mfs_model *m, const struct mfs_table *s, int64_t r,
				 int hist)
{
	if (r < 0)
		return;
	const float *p = mfs_row(s, (uint64_t)r, m->stride);
	for (uint32_t off = 0; off < m->stride; off += 16)
		__builtin_prefetch(p + off, 1);
	__builtin_prefetch(&s->bias[r], 1);
	if (s->acc) {
		__builtin_prefetch(&s->acc[r], 1);
		__builtin_prefetch(&s->bacc[r], 1);
	}
	if (s->count)
		__builtin_prefetch(&s->count[r], 1);
	if (hist && s->hist)
		__builtin_prefetch(mfs_hist_row(s, (uint64_t)r) + MFS_HPOS_NEXT(s->hpos[r]), 1);
}

/* The rows of an event (hist: and the user's history slot). */
static inline void prefetch_rows(const mfs_model *m, int64_t u, int64_t i, int hist)
{
	prefetch_side(m, &m->user, u, hist);
	prefetch_side(m, &m->item, i, 0);
}

/*
 * Hashed mode with two hashes per user: the user's vector is the sum of two
 * rows (and its bias the sum of two biases), so that two users colliding in
 * one row still differ in the other. The step runs on the sum (in m->tmp);
 * each row then takes half of the change, so the sum moves as one row would.
 * AdaGrad state is the first row's.
 */
static void step_two_rows(mfs_model *m, int64_t u, int64_t u2, int64_t i, float r,
			  struct mfs_step *s, float lrb, float l2u, float l2i)
{
	const int adagrad = m->cfg.optimizer == MFS_OPT_ADAGRAD;
	float *p1 = mfs_row(&m->user, (uint64_t)u, m->stride);
	float *p2 = mfs_row(&m->user, (uint64_t)u2, m->stride);
	float *q = mfs_row(&m->item, (uint64_t)i, m->stride);
	float *t = m->tmp;
	for (uint32_t d = 0; d < m->stride; d++)
		t[d] = p1[d] + p2[d];
	float *b1 = &m->user.bias[u], *b2 = &m->user.bias[u2], *bi = &m->item.bias[i];
	float bu = *b1 + *b2;
	s->base = raw_mu(m) + bu + *bi;
	s->rating = r;
	if (adagrad) {
		s->acc_p = &m->user.acc[u];
		s->acc_q = &m->item.acc[i];
		m->k->adagrad_step(t, q, m->klen, s);
	} else {
		m->k->sgd_step(t, q, m->klen, s);
	}
	for (uint32_t d = 0; d < m->cfg.dim; d++) {
		float half = 0.5f * (t[d] - (p1[d] + p2[d]));
		p1[d] += half;
		p2[d] += half;
	}
	float g = s->grad;
	float gu = g - l2u * bu, gi = g - l2i * *bi, du, di;
	if (adagrad) {
		float *au = &m->user.bacc[u], *ai = &m->item.bacc[i];
		du = lrb / sqrtf(*au) * gu;
		di = lrb / sqrtf(*ai) * gi;
		*au += gu * gu;
		*ai += gi * gi;
	} else {
		du = lrb * gu;
		di = lrb * gi;
	}
	*b1 += 0.5f * du;
	*b2 += 0.5f * du;
	*bi += di;
}


/*
 * An event whose user or item is not admitted yet (min_count): predicted from
 * mu and the bias of the side that has a row; it updates that bias and mu,
 * and no factors (the unadmitted side has none). Scored prequentially.
 */
static void learn_partial(mfs_model *m, int64_t u, int64_t i, float rating, uint64_t *unadmitted,
			  double *sq, double *ab, int64_t *learned)
{
	const mfs_config *c = &m->cfg;
	float r = rating < c->lo ? c->lo : rating > c->hi ? c->hi : rating;
	float *bu = u >= 0 ? &m->user.bias[u] : NULL, *bi = i >= 0 ? &m->item.bias[i] : NULL;
	struct mfs_step s;
	memset(&s, 0, sizeof s);
	s.lo = c->lo;
	s.hi = c->hi;
	sigmoid_span(m, &s.slo, &s.shi);
	s.link = c->link == MFS_RANGE_SIGMOID ? MFS_LINK_SIGMOID : MFS_LINK_CLAMP;
	s.base = raw_mu(m) + (bu ? *bu : 0.0f) + (bi ? *bi : 0.0f);
	s.rating = r;
	mfs_step_finish(&s, 0.0f);
	float err = rating - s.pred; /* scored against the true rating, learned clamped */
	*sq += (double)err * err;
	*ab += fabs((double)err);
	float lrb = m->replay ? c->replay_lr_bias : c->lr_bias;
	float l2b = m->replay ? c->replay_l2_bias : c->l2_bias;
	if (bu) {
		count_event(m, &m->user, u);
		float l2u = m->user.count ? l2b * freq_weight(m, &m->user, u, 1) : l2b;
		*bu += lrb * (s.grad - l2u * *bu);
	}
	if (bi) {
		count_event(m, &m->item, i);
		float l2i = m->item.count ? l2b * freq_weight(m, &m->item, i, 1) : l2b;
		*bi += lrb * (s.grad - l2i * *bi);
	}
	m->mu_sum += r;
	m->mu_count++;
	(*unadmitted)++;
	(*learned)++;
}

/*
 * One SGD step of the event (u, i, r) (rows in use, r the rating clamped
 * inside the range, tr the true one) with the prediction's mu term rawmu: the
 * kernel on the factors, then the biases; the squared and absolute error of
 * the prediction before the step against tr go to *sq and *ab. mu itself is
 * not updated.
 */
static inline void step_at(mfs_model *m, int64_t u, int64_t i, float r, float tr,
			   struct mfs_step *s, int adagrad, float lrb, float l2u, float l2i,
			   float rawmu, double *sq, double *ab)
{
	float *p = mfs_row(&m->user, (uint64_t)u, m->stride);
	float *q = mfs_row(&m->item, (uint64_t)i, m->stride);
	float *bu = &m->user.bias[u], *bi = &m->item.bias[i];
	s->base = rawmu + *bu + *bi;
	s->rating = r;
	if (adagrad) {
		s->acc_p = &m->user.acc[u];
		s->acc_q = &m->item.acc[i];
		m->k->adagrad_step(p, q, m->klen, s);
	} else {
		m->k->sgd_step(p, q, m->klen, s);
	}
	float err = tr - s->pred;
	*sq += (double)err * err;
	*ab += fabs((double)err);
	float g = s->grad;
	float gu = g - l2u * *bu, gi = g - l2i * *bi;
	if (adagrad) {
		float *au = &m->user.bacc[u], *ai = &m->item.bacc[i];
		*bu += lrb / sqrtf(*au) * gu;
		*bi += lrb / sqrtf(*ai) * gi;
		*au += gu * gu;
		*ai += gi * gi;
	} else {
		*bu += lrb * gu;
		*bi += lrb * gi;
	}
}

/* step_at with the running mu, which then learns r. */
static inline void step_one(mfs_model *m, int64_t u, int64_t i, float r, float tr,
			    struct mfs_step *s, int adagrad, float lrb, float l2u, float l2i,
			    double *sq, double *ab)
{
	step_at(m, u, i, r, tr, s, adagrad, lrb, l2u, l2i, raw_mu(m), sq, ab);
	m->mu_sum += r;
	m->mu_count++;
}

/* What a learn call carries from event to event. */
struct learn_ctx {
	const mfs_event *ev; /* the chunk's events */
	const int64_t *rows; /* 2 per event: user row, item row (or a negated code) */
	const int64_t *rows2; /* two hashes per user: the user's second row */
	struct mfs_step s;
	const uint64_t *keys; /* 2 per event: user key, item key */
	int adagrad, two, hist;
	float lo, hi, lrb, l2b, l2f;
	int64_t learned;
	uint64_t unplaced, unadmitted, outside;
	double sq, ab;
};

/* Learn event j of the chunk, its rows resolved: learned with the rating
 * clamped into range, scored against the true one. */
static inline void learn_event(mfs_model *m, struct learn_ctx *c, size_t j)
{
	int64_t u = c->rows[2 * j], i = c->rows[2 * j + 1];
	const float tr = c->ev[j].rating;
	const int out = !(tr >= c->lo && tr <= c->hi);
	if (MFS_UNLIKELY(u < 0 || i < 0)) {
		if (u == -MFS_E_NOTFOUND || i == -MFS_E_NOTFOUND) {
			learn_partial(m, u, i, tr, &c->unadmitted, &c->sq, &c->ab, &c->learned);
			c->outside += (uint64_t)out;
		} else {
			c->unplaced++;
		}
		return;
	}
	c->outside += (uint64_t)out;
	float r = tr, l2u, l2i;
	if (r < c->lo)
		r = c->lo;
	if (r > c->hi)
		r = c->hi;
	count_event(m, &m->user, u);
	count_event(m, &m->item, i);
	if (c->hist)
		hist_add(&m->user, u, c->keys[2 * j + 1]);
	step_l2(m, u, i, c->l2f, c->l2b, &c->s, &l2u, &l2i);
	if (c->two && c->rows2[j] >= 0 && c->rows2[j] != u) {
		step_two_rows(m, u, c->rows2[j], i, r, &c->s, c->lrb, l2u, l2i);
		float err = tr - c->s.pred;
		c->sq += (double)err * err;
		c->ab += fabs((double)err);
		m->mu_sum += r;
		m->mu_count++;
	} else {
		step_one(m, u, i, r, tr, &c->s, c->adagrad, c->lrb, l2u, l2i, &c->sq, &c->ab);
	}
	c->learned++;
}

/* The row of one side of an event, in order: a hit (exact mode) only reads
 * the index slot and stamps it; a new ID gets a row (maybe an evicted one).
 * (resolve_side below is the same with the serial loop's drain.) */
static inline int64_t resolve_now(mfs_model *m, struct mfs_table *s, uint64_t key, const char *id,
				  uint32_t len)
{
	if (s->ids.mode == MFS_IDMAP_EXACT) {
		int64_t r = mfs_idmap_touch(&s->ids, key, (uint32_t)m->tick);
		if (MFS_LIKELY(r >= 0)) {
			mfs_dirty_set(s, (uint64_t)r);
			return r;
		}
	}
	return mfs_model_resolve_key(m, s, key, id, len);
}

/* Whether resolving key would evict a row (exact mode, full, key unknown). */
static inline int would_evict(const struct mfs_table *s, uint64_t key)
{
	return s->ids.mode == MFS_IDMAP_EXACT && s->ids.evict && s->ids.used >= s->ids.cap &&
	       mfs_idmap_find(&s->ids, key) < 0;
}

/*
 * resolve_now for event j of a chunk. A new ID that will take an evicted row
 * first has the events resolved before it learned (*nl up to j): a row that
 * an event in flight holds is never evicted and re-initialised under it, so a
 * batch learns exactly what the event-by-event loop would.
 */
static inline int64_t resolve_side(mfs_model *m, struct learn_ctx *c, struct mfs_table *s,
				   uint64_t key, const char *id, uint32_t len, size_t j, size_t *nl)
{
	if (s->ids.mode == MFS_IDMAP_EXACT) {
		int64_t r = mfs_idmap_touch(&s->ids, key, (uint32_t)m->tick);
		if (MFS_LIKELY(r >= 0)) {
			mfs_dirty_set(s, (uint64_t)r);
			return r;
		}
		if (s->ids.evict && s->ids.used >= s->ids.cap)
			while (*nl < j)
				learn_event(m, c, (*nl)++);
	}
	return mfs_model_resolve_key(m, s, key, id, len);
}

static inline void age_tick(mfs_model *m)
{
	if (MFS_UNLIKELY((++m->tick & (MFS_AGE_PERIOD - 1)) == 0)) {
		mfs_idmap_age(&m->user.ids, m->tick);
		mfs_idmap_age(&m->item.ids, m->tick);
	}
}

int mfs_model_first_parallel(const mfs_model *m)
{
	return m->threads > 1 && !m->imp.on && !m->replay && m->cfg.user_hashes == 1 &&
	       m->user.ids.min_count <= 1 && m->item.ids.min_count <= 1;
}

size_t mfs_model_resolve_first(mfs_model *m, const mfs_event *ev, size_t n, mfs_row_event *out,
			       int *failed)
{
	const int hist = m->user.hist != NULL;
	uint64_t *keys = m->keys;
	*failed = 0;
	for (size_t base = 0; base < n; base += MFS_LEARN_CHUNK) {
		size_t cn = n - base < MFS_LEARN_CHUNK ? n - base : MFS_LEARN_CHUNK;
		const mfs_event *ce = ev + base;
		for (size_t j = 0; j < cn; j++) {
			keys[2 * j] = id_key(m, ce[j].user, ce[j].user_len);
			keys[2 * j + 1] = id_key(m, ce[j].item, ce[j].item_len);
			mfs_idmap_prefetch(&m->user.ids, keys[2 * j]);
			mfs_idmap_prefetch(&m->item.ids, keys[2 * j + 1]);
		}
		size_t j = 0, stop = 0;
		for (; j < cn; j++) {
			const mfs_event *e = &ce[j];
			uint64_t uk = keys[2 * j], ik = keys[2 * j + 1];
			if (base + j > 0 && (would_evict(&m->user, uk) || would_evict(&m->item, ik))) {
				stop = 1; /* the events before it are learned first */
				break;
			}
			age_tick(m);
			int64_t u = resolve_now(m, &m->user, uk, e->user, e->user_len);
			int64_t i = resolve_now(m, &m->item, ik, e->item, e->item_len);
			if (MFS_UNLIKELY(u == -MFS_E_NOMEM || i == -MFS_E_NOMEM)) {
				*failed = 1; /* this one and the rest are not learned */
				stop = 1;
				break;
			}
			mfs_row_event *o = &out[base + j];
			o->user = u < 0 ? UINT32_MAX : (uint32_t)u;
			o->item = i < 0 ? UINT32_MAX : (uint32_t)i;
			o->rating = e->rating;
		}
		/* the history in stream order (the grid learns a user's events block
		 * by block), its places and slots prefetched ahead. Only the call's
		 * first event may have evicted (and cleared) a row, before any of
		 * these are added, as in the serial loop. */
		const mfs_row_event *o = out + base;
		for (size_t x = 0; hist && x < j; x++) {
			if (x + 2 * MFS_ROW_AHEAD < j && o[x + 2 * MFS_ROW_AHEAD].user != UINT32_MAX)
				__builtin_prefetch(&m->user.hpos[o[x + 2 * MFS_ROW_AHEAD].user]);
			if (x + MFS_ROW_AHEAD < j && o[x + MFS_ROW_AHEAD].user != UINT32_MAX) {
				uint32_t a = o[x + MFS_ROW_AHEAD].user;
				__builtin_prefetch(mfs_hist_row(&m->user, a) + MFS_HPOS_NEXT(m->user.hpos[a]),
						   1);
			}
			if (o[x].user != UINT32_MAX && o[x].item != UINT32_MAX)
				hist_add(&m->user, o[x].user, keys[2 * x + 1]);
		}
		if (stop)
			return base + j;
	}
	return n;
}


int64_t mfs_model_learn_serial(mfs_model *m, const mfs_event *ev, size_t n, mfs_learn_stats *st)
{
	const mfs_config *cf = &m->cfg;
	struct learn_ctx c;
	memset(&c, 0, sizeof c);
	c.adagrad = cf->optimizer == MFS_OPT_ADAGRAD;
	c.two = cf->user_hashes == 2;
	c.hist = m->user.hist && !m->replay;
	c.lo = cf->lo;
	c.hi = cf->hi;
	c.lrb = m->replay ? cf->replay_lr_bias : cf->lr_bias;
	c.l2b = m->replay ? cf->replay_l2_bias : cf->l2_bias;
	c.l2f = m->replay ? cf->replay_l2 : cf->l2;
	c.s.lo = cf->lo;
	c.s.hi = cf->hi;
	sigmoid_span(m, &c.s.slo, &c.s.shi);
	c.s.link = cf->link == MFS_RANGE_SIGMOID ? MFS_LINK_SIGMOID : MFS_LINK_CLAMP;
	c.s.lr = m->replay ? cf->replay_lr : cf->lr;
	c.s.dim = cf->dim;
	int64_t *rows = m->scratch, *rows2 = m->scratch + 2 * MFS_LEARN_CHUNK;
	uint64_t *keys = m->keys;
	c.rows = rows;
	c.rows2 = rows2;
	c.keys = keys;
	int failed = 0;

	for (size_t base = 0; base < n; base += MFS_LEARN_CHUNK) {
		size_t cn = n - base < MFS_LEARN_CHUNK ? n - base : MFS_LEARN_CHUNK;
		const mfs_event *ce = ev + base;
		c.ev = ce;
		/* IDs -> keys, and the index slots they probe prefetched */
		for (size_t j = 0; j < cn; j++) {
			keys[2 * j] = id_key(m, ce[j].user, ce[j].user_len);
			keys[2 * j + 1] = id_key(m, ce[j].item, ce[j].item_len);
			mfs_idmap_prefetch(&m->user.ids, keys[2 * j]);
			mfs_idmap_prefetch(&m->item.ids, keys[2 * j + 1]);
		}
		/* keys -> rows in event order (new rows are initialised in that order);
		 * a new ID that evicts first has the events before it learned */
		size_t nl = 0; /* next event to learn */
		for (size_t j = 0; j < cn; j++) {
			const mfs_event *e = &ce[j];
			age_tick(m);
			rows[2 * j] = resolve_side(m, &c, &m->user, keys[2 * j], e->user, e->user_len, j,
						   &nl);
			rows[2 * j + 1] = resolve_side(m, &c, &m->item, keys[2 * j + 1], e->item,
						       e->item_len, j, &nl);
			if (c.two)
				rows2[j] = rows[2 * j] < 0 ? -1
					   : mfs_model_resolve_key(m, &m->user, second_key(keys[2 * j]), e->user,
						     e->user_len);
			if (MFS_UNLIKELY(rows[2 * j] == -MFS_E_NOMEM || rows[2 * j + 1] == -MFS_E_NOMEM ||
					 (c.two && rows2[j] == -MFS_E_NOMEM))) {
				/* no memory for an ID string: an error, not a full table.
				 * The events before this one are learned, this one and
				 * the rest are not. */
				failed = 1;
				cn = j;
				break;
			}
		}
		/* one step per event, the rows of upcoming events prefetched (and the
		 * history ring's place two steps ahead: prefetch_rows reads it) */
		for (size_t j = nl; c.hist && j < nl + 2 * MFS_ROW_AHEAD && j < cn; j++)
			if (rows[2 * j] >= 0)
				__builtin_prefetch(&m->user.hpos[rows[2 * j]]);
		for (size_t j = nl; j < nl + MFS_ROW_AHEAD && j < cn; j++)
			prefetch_rows(m, rows[2 * j], rows[2 * j + 1], c.hist);
		for (; nl < cn; nl++) {
			if (c.hist && nl + 2 * MFS_ROW_AHEAD < cn && rows[2 * (nl + 2 * MFS_ROW_AHEAD)] >= 0)
				__builtin_prefetch(&m->user.hpos[rows[2 * (nl + 2 * MFS_ROW_AHEAD)]]);
			if (nl + MFS_ROW_AHEAD < cn)
				prefetch_rows(m, rows[2 * (nl + MFS_ROW_AHEAD)],
					      rows[2 * (nl + MFS_ROW_AHEAD) + 1], c.hist);
			learn_event(m, &c, nl);
		}
		if (failed)
			break;
	}
	mfs_model_account(m, st, c.learned, c.unplaced, c.outside, c.sq, c.ab);
	if (st)
		st->unadmitted += c.unadmitted;
	return failed ? -MFS_E_NOMEM : c.learned;
}


/* The settings of a step in the current pass (first or replay). */
static void step_setup(const mfs_model *m, struct mfs_step *s, float *lrb, float *l2b, float *l2f)
{
	const mfs_config *c = &m->cfg;
	*lrb = m->replay ? c->replay_lr_bias : c->lr_bias;
	*l2b = m->replay ? c->replay_l2_bias : c->l2_bias;
	*l2f = m->replay ? c->replay_l2 : c->l2;
	memset(s, 0, sizeof *s);
	s->lo = c->lo;
	s->hi = c->hi;
	sigmoid_span(m, &s->slo, &s->shi);
	s->link = c->link == MFS_RANGE_SIGMOID ? MFS_LINK_SIGMOID : MFS_LINK_CLAMP;
	s->lr = m->replay ? c->replay_lr : c->lr;
	s->dim = c->dim;
}

/* A resolved event's rows are in use. */
static inline int rows_ok(const mfs_model *m, uint64_t nu, uint64_t ni, const mfs_row_event *e)
{
	return e->user < nu && e->item < ni && row_live(&m->user, e->user) &&
	       row_live(&m->item, e->item);
}

/* Resolved events learned ahead of the current one whose rows are prefetched. */
#define MFS_ROWS_AHEAD 8

float mfs_model_raw_mu(const mfs_model *m)
{
	return raw_mu(m);
}

int mfs_model_rows_ok(const mfs_model *m, const mfs_row_event *e)
{
	return rows_ok(m, table_rows(&m->user), table_rows(&m->item), e);
}

void mfs_model_learn_block(mfs_model *m, const mfs_row_event *ev, size_t n, float rawmu,
			   struct mfs_block_acc *acc)
{
	const int adagrad = m->cfg.optimizer == MFS_OPT_ADAGRAD;
	const float lo = m->cfg.lo, hi = m->cfg.hi;
	float lrb, l2b, l2f, l2u, l2i;
	struct mfs_step s;
	step_setup(m, &s, &lrb, &l2b, &l2f);
	for (size_t j = 0; j < MFS_ROWS_AHEAD && j < n; j++)
		prefetch_rows(m, ev[j].user, ev[j].item, 0);
	for (size_t j = 0; j < n; j++) {
		if (j + MFS_ROWS_AHEAD < n)
			prefetch_rows(m, ev[j + MFS_ROWS_AHEAD].user, ev[j + MFS_ROWS_AHEAD].item, 0);
		int64_t u = ev[j].user, i = ev[j].item;
		const float tr = ev[j].rating;
		acc->outside += !(tr >= lo && tr <= hi);
		float r = tr;
		if (r < lo)
			r = lo;
		if (r > hi)
			r = hi;
		count_event(m, &m->user, u);
		count_event(m, &m->item, i);
		step_l2(m, u, i, l2f, l2b, &s, &l2u, &l2i);
		step_at(m, u, i, r, tr, &s, adagrad, lrb, l2u, l2i, rawmu, &acc->sq, &acc->ab);
		acc->mu_sum += r;
		acc->mu_count++;
	}
}

MFS_API int mfs_model_set_threads(mfs_model *m, unsigned threads)
{
	if (!m || threads == 0 || threads > MFS_THREADS_MAX)
		return -MFS_E_INVAL;
	m->threads = threads;
	return 0;
}

MFS_API int mfs_model_set_window(mfs_model *m, uint32_t events_per_thread)
{
	if (!m || events_per_thread < 256 || events_per_thread > (1u << 24))
		return -MFS_E_INVAL;
	m->window = events_per_thread;
	return 0;
}

/* mfs_model_learn_rows on one thread (parallel.c calls it, or the blocks); m unmapped. */
int64_t mfs_model_learn_rows_serial(mfs_model *m, const mfs_row_event *ev, size_t n,
				    mfs_learn_stats *st)
{
	const int adagrad = m->cfg.optimizer == MFS_OPT_ADAGRAD;
	const float lo = m->cfg.lo, hi = m->cfg.hi;
	const uint64_t nu = table_rows(&m->user), ni = table_rows(&m->item);
	float lrb, l2b, l2f, l2u, l2i;
	int64_t learned = 0;
	uint64_t unplaced = 0, outside = 0;
	double sq = 0.0, ab = 0.0;
	struct mfs_step s;
	step_setup(m, &s, &lrb, &l2b, &l2f);
	for (size_t j = 0; j < MFS_ROWS_AHEAD && j < n; j++)
		if (ev[j].user < nu && ev[j].item < ni)
			prefetch_rows(m, ev[j].user, ev[j].item, 0);
	for (size_t j = 0; j < n; j++) {
		if (j + MFS_ROWS_AHEAD < n) {
			const mfs_row_event *a = &ev[j + MFS_ROWS_AHEAD];
			if (a->user < nu && a->item < ni)
				prefetch_rows(m, a->user, a->item, 0);
		}
		if (MFS_UNLIKELY(!rows_ok(m, nu, ni, &ev[j]))) {
			unplaced++;
			continue;
		}
		int64_t u = ev[j].user, i = ev[j].item;
		const float tr = ev[j].rating;
		outside += !(tr >= lo && tr <= hi);
		float r = tr;
		if (r < lo)
			r = lo;
		if (r > hi)
			r = hi;
		count_event(m, &m->user, u);
		count_event(m, &m->item, i);
		step_l2(m, u, i, l2f, l2b, &s, &l2u, &l2i);
		mfs_dirty_set(&m->user, (uint64_t)u);
		mfs_dirty_set(&m->item, (uint64_t)i);
		step_one(m, u, i, r, tr, &s, adagrad, lrb, l2u, l2i, &sq, &ab);
		learned++;
	}
	mfs_model_account(m, st, learned, unplaced, outside, sq, ab);
	return learned;
}

void mfs_model_account(mfs_model *m, mfs_learn_stats *st, int64_t learned, uint64_t unplaced,
		       uint64_t outside, double sq, double ab)
{
	if (!m->replay)
		m->events += (uint64_t)learned; /* the lifetime count: events, not replayed steps */
	if (st) {
		st->events += (uint64_t)learned;
		st->unplaced += unplaced;
		st->out_of_range += outside;
		st->sq_err += sq;
		st->abs_err += ab;
	}
}

MFS_API int64_t mfs_model_resolve(const mfs_model *m, const mfs_event *ev, size_t n,
				  mfs_row_event *out)
{
	if (!m || ((!ev || !out) && n))
		return -MFS_E_INVAL;
	int exact = m->cfg.ids == MFS_IDS_EXACT && m->cfg.user_hashes == 1;
	int64_t both = 0;
	for (size_t j = 0; j < n; j++) {
		int64_t u = -1, i = -1;
		if (exact) {
			u = find_row(m, &m->user, ev[j].user, ev[j].user_len);
			i = find_row(m, &m->item, ev[j].item, ev[j].item_len);
		}
		out[j].user = u < 0 ? UINT32_MAX : (uint32_t)u;
		out[j].item = i < 0 ? UINT32_MAX : (uint32_t)i;
		out[j].rating = ev[j].rating;
		both += u >= 0 && i >= 0;
	}
	return both;
}


MFS_API int64_t mfs_model_find(const mfs_model *m, int side, const char *id, size_t len)
{
	if (!m || (side != MFS_USERS && side != MFS_ITEMS))
		return -MFS_E_INVAL;
	int64_t r = find_row(m, side == MFS_USERS ? &m->user : &m->item, id, len);
	return r < 0 ? -MFS_E_NOTFOUND : r;
}
