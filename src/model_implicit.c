/*
 * model_implicit.c - implicit feedback: BPR and logistic steps against
 * sampled negatives (sampler.c), the seen set, prequential HR@K and NDCG@K.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_step.h"

/* --- implicit feedback (mfstream.h: "Implicit feedback") ------------------ */

/* Draws of one negative at most (the last one is taken). */
#define MFS_NEG_TRIES 8

MFS_API void mfs_implicit_config_default(mfs_implicit_config *c)
{
	memset(c, 0, sizeof *c);
	c->loss = MFS_LOSS_BPR;
	c->negatives = 64;
	c->neg_beta = 0.0f;
}

MFS_API void mfs_config_default_implicit(mfs_config *cfg)
{
	mfs_config_default(cfg);
	/* README.md, "Implicit feedback": one pass over ML-100K in time order */
	cfg->dim = 128;
	cfg->optimizer = MFS_OPT_SGD;
	cfg->lr = 0.07f;
	cfg->lr_bias = 0.03f;
	cfg->l2 = 0.006f;
	cfg->l2_bias = 0.003f;
	cfg->init_std = 0.1f;
	cfg->history = MFS_HISTORY_MAX;
}

int mfs_model_implicit_enable(mfs_model *m, const mfs_implicit_config *c, mfs_diag *d)
{
	const mfs_config *f = &m->cfg;
	if (c->loss != MFS_LOSS_BPR && c->loss != MFS_LOSS_LOGISTIC && c->loss != MFS_LOSS_POPULARITY)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "unknown loss %d", c->loss);
	if (c->negatives < 1 || c->negatives > 1024)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "negatives %u out of range 1..1024",
				    c->negatives);
	if (!(c->neg_beta >= 0.0f && c->neg_beta <= 2.0f))
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "neg_beta %g out of range 0..2",
				    c->neg_beta);
	const char *why = f->ids == MFS_IDS_HASHED  ? "hashed IDs"
			  : f->user_hashes != 1     ? "two hashes per user"
			  : f->min_count > 1        ? "a minimum count (admission)"
			  : f->optimizer != MFS_OPT_SGD ? "AdaGrad (use plain SGD)"
			  : !m->item.count          ? "frequency alphas both 1 (no item counts)"
			  : !m->user.hist           ? "history 0 (no seen set)"
						    : NULL;
	if (why)
		return mfs_diag_set(d, MFS_E_UNSUPPORTED, 0, NULL, 0, 0,
				    "implicit feedback does not support %s", why);
	mfs_sampler_free(&m->imp.smp);
	free(m->imp.seen);
	m->imp.seen = malloc((size_t)m->user.hist_len * 8);
	int rc = m->imp.seen ? mfs_sampler_init(&m->imp.smp, m->item.ids.cap, c->neg_beta)
			     : -MFS_E_NOMEM;
	if (rc < 0)
		return mfs_diag_set(d, MFS_E_NOMEM, 0, NULL, 0, 0, "no memory for the sampler");
	m->imp.on = 1;
	m->imp.smp_ok = 0;
	m->imp.cfg = *c;
	return 0;
}

MFS_API int mfs_model_set_implicit(mfs_model *m, const mfs_implicit_config *c, mfs_diag *diag)
{
	if (!m || !c)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no model or settings");
	if (m->events || m->mu_count || m->user.ids.used || m->item.ids.used)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0,
				    "the model has learned: implicit feedback is set before the first event");
	return mfs_model_implicit_enable(m, c, diag);
}

MFS_API int mfs_model_implicit_get(const mfs_model *m, mfs_implicit_config *c)
{
	if (!m)
		return -MFS_E_INVAL;
	if (c && m->imp.on)
		*c = m->imp.cfg;
	return m->imp.on;
}

/* The sampler's weights from the item counts (after a load or a delta). */
static void sampler_rebuild(mfs_model *m)
{
	struct mfs_sampler *sm = &m->imp.smp;
	uint64_t rows = table_rows(&m->item);
	for (uint64_t r = 0; r < sm->cap; r++)
		sm->w[r] = r < rows && row_live(&m->item, r)
				   ? mfs_sampler_weight(sm->beta, m->item.count[r])
				   : 0;
	mfs_sampler_build(sm);
	m->imp.smp_ok = 1;
}

/* Whether item key is among the n most recent of user row u's ring. */
static int hist_recent(const struct mfs_table *s, int64_t u, uint64_t key, uint32_t n)
{
	const uint64_t *h = mfs_hist_row(s, (uint64_t)u);
	uint32_t next = MFS_HPOS_NEXT(s->hpos[u]), fill = MFS_HPOS_FILL(s->hpos[u]);
	if (n > fill)
		n = fill;
	for (uint32_t j = 0; j < n; j++) {
		uint32_t slot = next >= j + 1 ? next - j - 1 : next + s->hist_len - j - 1;
		if (h[slot] == key)
			return 1;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The item keys of user row u's history, sorted, into m->imp.seen; returns how many. */
static size_t seen_keys(mfs_model *m, int64_t u)
{
	const struct mfs_table *s = &m->user;
	uint32_t fill = MFS_HPOS_FILL(s->hpos[u]);
	memcpy(m->imp.seen, mfs_hist_row(s, (uint64_t)u), (size_t)fill * 8);
	qsort(m->imp.seen, fill, 8, cmp_u64);
	return fill;
}

static int seen_has(const uint64_t *seen, size_t n, uint64_t key)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (seen[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && seen[lo] == key;
}

/*
 * A negative for the positive item row i of a user whose history keys are
 * seen[0..ns) (sorted), or -1 (nothing to draw): a draw of the positive or of
 * an item in the history is drawn again, up to MFS_NEG_TRIES times.
 */
static int64_t draw_negative(mfs_model *m, int64_t i, const uint64_t *seen, size_t ns)
{
	const struct mfs_sampler *sm = &m->imp.smp;
	if (sm->total == 0)
		return -1;
	int64_t j = -1;
	for (int t = 0; t < MFS_NEG_TRIES; t++) {
		j = (int64_t)mfs_sampler_find(sm, mfs_rng_below(&m->rng, sm->total));
		if (j != i && !seen_has(seen, ns, m->item.ids.row_key[j]))
			return j;
	}
	return j == i ? -1 : j;
}

static double now_seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/*
 * The prequential ranking of event (user, item key) before it is learned:
 * rank every item for the user as recommend does, the history left out.
 */
static void rank_event(const mfs_model *m, int64_t u, uint64_t ikey, mfs_rank_stats *rs)
{
	double t0 = now_seconds();
	int64_t i = mfs_idmap_find(&m->item.ids, ikey);
	mfs_scored top[1024];
	size_t k = rs->k < 1024 ? rs->k : 1024;
	rs->ranked++;
	if (i >= 0) {
		/* the popularity baseline ranks by the item counts (biases) alone */
		const int pop = m->imp.cfg.loss == MFS_LOSS_POPULARITY;
		const float *p = u >= 0 && !pop ? mfs_row(&m->user, (uint64_t)u, m->stride) : NULL;
		float ub = u >= 0 && !pop ? m->user.bias[u] : 0.0f;
		int got = mfs_model_recommend_row(m, NULL, u, p, ub, k, top);
		for (int r = 0; r < got; r++)
			if (top[r].row == (uint32_t)i) {
				rs->hits += 1.0;
				rs->ndcg += 1.0 / log2((double)r + 2.0);
				break;
			}
	}
	rs->seconds += now_seconds() - t0;
}

/* Biases of one step: b += lrb * (g - l2b * b). */
static inline void bias_step(float *b, float g, float lrb, float l2b)
{
	*b += lrb * (g - l2b * *b);
}

MFS_API int64_t mfs_model_learn_implicit(mfs_model *m, const mfs_event *ev, size_t n,
					 mfs_learn_stats *st, mfs_rank_stats *rs)
{
	if (!m || (!ev && n) || !m->imp.on)
		return -MFS_E_INVAL;
	for (size_t j = 0; j < n; j++)
		if (!(isfinite(ev[j].rating) && ev[j].rating >= 0.0f))
			return -MFS_E_INVAL;
	if (MFS_UNLIKELY(m->n_mapped)) {
		int rc = mfs_model_unmap(m);
		if (rc < 0)
			return rc;
	}
	if (!m->imp.smp_ok)
		sampler_rebuild(m);
	const mfs_config *cf = &m->cfg;
	const mfs_implicit_config *ic = &m->imp.cfg;
	const int bpr = ic->loss == MFS_LOSS_BPR;
	const float lrb = cf->lr_bias, l2b = cf->l2_bias;
	struct mfs_bpr pb;
	memset(&pb, 0, sizeof pb);
	pb.lr = cf->lr;
	pb.l2 = cf->l2;
	struct mfs_step ls;
	memset(&ls, 0, sizeof ls);
	ls.link = MFS_LINK_LOGIT;
	ls.lr = cf->lr;
	ls.l2 = ls.l2_q = cf->l2;
	ls.dim = cf->dim;
	int64_t learned = 0;
	uint64_t unplaced = 0, negs = 0;
	double loss = 0.0;
	int failed = 0;
	for (size_t j = 0; j < n; j++) {
		const mfs_event *e = &ev[j];
		if (MFS_UNLIKELY((++m->tick & (MFS_AGE_PERIOD - 1)) == 0)) {
			mfs_idmap_age(&m->user.ids, m->tick);
			mfs_idmap_age(&m->item.ids, m->tick);
		}
		uint64_t ukey = id_key(m, e->user, e->user_len);
		uint64_t ikey = id_key(m, e->item, e->item_len);
		if (rs && rs->k) {
			/* test before train, on first-time pairs */
			int64_t u0 = mfs_idmap_find(&m->user.ids, ukey);
			if (u0 < 0 || !hist_recent(&m->user, u0, ikey, m->user.hist_len)) {
				if (rs->every <= 1 || rs->pairs % rs->every == 0)
					rank_event(m, u0, ikey, rs);
				rs->pairs++;
			}
		}
		int64_t u = mfs_model_resolve_key(m, &m->user, ukey, e->user, e->user_len);
		int64_t i = u >= 0 ? mfs_model_resolve_key(m, &m->item, ikey, e->item, e->item_len) : u;
		if (u == -MFS_E_NOMEM || i == -MFS_E_NOMEM) {
			failed = 1;
			break;
		}
		if (u < 0 || i < 0) {
			unplaced++;
			continue;
		}
		float w = e->rating;
		float *p = mfs_row(&m->user, (uint64_t)u, m->stride);
		float *qi = mfs_row(&m->item, (uint64_t)i, m->stride);
		float *bu = &m->user.bias[u], *bi = &m->item.bias[i];
		if (ic->loss == MFS_LOSS_POPULARITY) {
			*bi += w;
			goto counted;
		}
		if (!bpr) {
			/* the positive: label 1 */
			ls.base = *bu + *bi;
			ls.rating = 1.0f;
			ls.weight = w;
			m->k->sgd_step(p, qi, m->klen, &ls);
			loss -= (double)w * log((double)ls.pred + 1e-12);
			float g = ls.grad;
			bias_step(bu, g, lrb, l2b);
			bias_step(bi, g, lrb, l2b);
		}
		size_t ns = seen_keys(m, u);
		for (uint32_t s = 0; s < ic->negatives; s++) {
			int64_t nj = draw_negative(m, i, m->imp.seen, ns);
			if (nj < 0)
				break;
			mfs_dirty_set(&m->item, (uint64_t)nj);
			float *qj = mfs_row(&m->item, (uint64_t)nj, m->stride);
			float *bj = &m->item.bias[nj];
			if (bpr) {
				pb.base = *bi - *bj;
				pb.w = w;
				m->k->bpr_step(p, qi, qj, m->klen, &pb);
				/* -w log sigmoid(x) = w log(1 + e^-x) */
				loss += (double)w * log1p(exp(-(double)pb.x));
				bias_step(bi, pb.g, lrb, l2b);
				bias_step(bj, -pb.g, lrb, l2b);
			} else {
				ls.base = *bu + *bj;
				ls.rating = 0.0f;
				ls.weight = w;
				m->k->sgd_step(p, qj, m->klen, &ls);
				loss -= (double)w * log(1.0 - (double)ls.pred + 1e-12);
				bias_step(bu, ls.grad, lrb, l2b);
				bias_step(bj, ls.grad, lrb, l2b);
			}
			negs++;
		}
	counted:
		count_event(m, &m->user, u);
		count_event(m, &m->item, i);
		mfs_sampler_set(&m->imp.smp, (uint64_t)i,
				mfs_sampler_weight(ic->neg_beta, m->item.count[i]));
		hist_add(&m->user, u, ikey);
		learned++;
	}
	m->events += (uint64_t)learned;
	if (st) {
		st->events += (uint64_t)learned;
		st->unplaced += unplaced;
	}
	if (rs) {
		rs->loss += loss;
		rs->negatives += negs;
	}
	return failed ? -MFS_E_NOMEM : learned;
}
