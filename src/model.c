/*
 * model.c - the biased MF model: create, learn (one SGD step per event),
 * predict, top-K.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "model_internal.h"
#include "topk.h"

#ifndef MFS_BIAS_ACC0
#define MFS_BIAS_ACC0 1.0f
#endif

MFS_API void mfs_config_default(mfs_config *cfg)
{
	/* Tuned on MovieLens 100K (README.md, "Defaults"): one pass in time order
	 * and 20 epochs on the standard folds, with one set of settings. */
	memset(cfg, 0, sizeof *cfg);
	cfg->dim = 384;
	cfg->max_users = 1u << 20;
	cfg->max_items = 1u << 20;
	cfg->optimizer = MFS_OPT_ADAGRAD;
	cfg->lr = 0.1034f;
	cfg->lr_bias = 0.19f;
	cfg->l2 = 0.0088f;
	cfg->l2_bias = 0.058f;
	cfg->init_std = 0.013f;
	cfg->lo = 1.0f;
	cfg->hi = 5.0f;
	cfg->link = MFS_RANGE_SIGMOID;
	cfg->range_margin = 0.125f;
	cfg->seed = 42;
	cfg->kernel = NULL;
	cfg->ids = MFS_IDS_EXACT;
	cfg->evict = 1;
	cfg->min_count = 1;
	cfg->user_hashes = 1;
	cfg->replay_lr = 0.0098f;
	cfg->replay_lr_bias = 0.065f;
	cfg->replay_l2 = 0.073f;
	cfg->replay_l2_bias = 0.0235f;
	cfg->freq_alpha = 0.7f;
	cfg->freq_alpha_bias = 0.2f;
	/* ML-100K's users rate 106 movies on average (median 65); u1.base's user
	 * 42, the README's example, 88: 128 covers most of them whole. */
	cfg->history = 128;
}

static int finite_nonneg(float x)
{
	return isfinite(x) && x >= 0.0f;
}

static int check_config(const mfs_config *c, mfs_diag *d)
{
	if (c->dim == 0 || c->dim > 4096)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "dim %u out of range 1..4096", c->dim);
	if (c->max_users == 0 || c->max_users > (1ULL << 32) - 1)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "max users must be 1..4294967295");
	if (c->max_items == 0 || c->max_items > (1ULL << 32) - 1)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "max items must be 1..4294967295");
	if (c->optimizer != MFS_OPT_SGD && c->optimizer != MFS_OPT_ADAGRAD)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "unknown optimizer %d", c->optimizer);
	if (c->link != MFS_RANGE_CLAMP && c->link != MFS_RANGE_SIGMOID)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "unknown range link %d", c->link);
	if (!finite_nonneg(c->lr) || !finite_nonneg(c->lr_bias) || !finite_nonneg(c->l2) ||
	    !finite_nonneg(c->l2_bias) || !finite_nonneg(c->init_std) ||
	    !finite_nonneg(c->replay_lr) || !finite_nonneg(c->replay_lr_bias) ||
	    !finite_nonneg(c->replay_l2) || !finite_nonneg(c->replay_l2_bias))
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0,
				    "learning rates, L2 and init std must be finite and >= 0");
	if (!(c->freq_alpha >= 0.0f && c->freq_alpha <= 1.0f) ||
	    !(c->freq_alpha_bias >= 0.0f && c->freq_alpha_bias <= 1.0f))
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0,
				    "frequency alphas must be 0..1");
	if (c->ids != MFS_IDS_EXACT && c->ids != MFS_IDS_HASHED)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "unknown ID mode %d", c->ids);
	if (c->user_hashes != 1 && c->user_hashes != 2)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "hashes per user must be 1 or 2");
	if (c->user_hashes == 2 && c->ids != MFS_IDS_HASHED)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0,
				    "two hashes per user need the hashed ID mode");
	if (c->history > MFS_HISTORY_MAX)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "history must be 0..%u items",
				    MFS_HISTORY_MAX);
	if (c->min_count > 255)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "min count must be 1..255");
	if (!isfinite(c->range_margin) || c->range_margin < 0.0f || c->range_margin > 10.0f)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "range margin must be 0..10");
	if (!isfinite(c->lo) || !isfinite(c->hi) || !(c->lo < c->hi))
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0,
				    "rating range %g:%g is empty (need LO < HI)", c->lo, c->hi);
	return 0;
}

MFS_API uint64_t mfs_model_row_bytes(const mfs_config *cfg)
{
	if (!cfg || cfg->dim == 0 || cfg->dim > 4096)
		return 0;
	uint64_t stride = (cfg->dim + 15u) & ~15u;
	uint64_t b = stride * 4 + 4;                       /* factors, bias */
	if (cfg->optimizer == MFS_OPT_ADAGRAD)
		b += 8;                                     /* accumulators */
	if (cfg->freq_alpha != 1.0f || cfg->freq_alpha_bias != 1.0f)
		b += 4;                                     /* event count */
	b += 8 + 4 + 8 + 1 + 16;                            /* key, seen, ID offset/len/bytes */
	if (cfg->ids != MFS_IDS_HASHED)
		b += 2 * sizeof(struct mfs_idslot) * 2;     /* index at most half full, pow2 */
	if (cfg->min_count > 1)
		b += MFS_SKETCH_DEPTH * 2;                  /* sketch */
	return b;
}

MFS_API uint64_t mfs_model_history_bytes(const mfs_config *cfg)
{
	if (!cfg || cfg->history == 0 || cfg->history > MFS_HISTORY_MAX)
		return 0;
	return 8 * (uint64_t)cfg->history + 4;
}

static void side_free(struct mfs_table *s)
{
	mfs_idmap_free(&s->ids);
	mfs_free_huge(s->rows, s->rows_bytes);
	mfs_free_huge(s->bias, s->cap * sizeof(float));
	mfs_free_huge(s->acc, s->cap * sizeof(float));
	mfs_free_huge(s->bacc, s->cap * sizeof(float));
	mfs_free_huge(s->dirty, mfs_dirty_bytes(s->cap));
	mfs_free_huge(s->count, s->cap * sizeof(uint32_t));
	if (s->hist)
		mfs_free_huge(s->hist, s->cap * s->hist_len * 8);
	mfs_free_huge(s->hpos, s->cap * 4);
	memset(s, 0, sizeof *s);
}

static int side_init(struct mfs_table *s, const mfs_config *cfg, uint64_t cap, uint32_t stride,
		     uint32_t hist_len)
{
	memset(s, 0, sizeof *s);
	s->cap = cap;
	int adagrad = cfg->optimizer == MFS_OPT_ADAGRAD;
	int rc = mfs_idmap_init(&s->ids, cap,
				cfg->ids == MFS_IDS_HASHED ? MFS_IDMAP_HASHED : MFS_IDMAP_EXACT,
				cfg->evict, cfg->min_count);
	if (rc < 0)
		return rc;
	/* Untouched rows cost no memory; huge pages spare the TLB a miss per row
	 * and keep fork (checkpoints) from copying millions of page-table entries. */
	size_t bytes = (size_t)cap * stride * sizeof(float);
	s->rows_bytes = bytes;
	s->rows = mfs_alloc_huge(bytes);
	s->bias = mfs_alloc_huge(cap * sizeof(float));
	s->dirty = mfs_alloc_huge(mfs_dirty_bytes(cap));
	if (adagrad) {
		s->acc = mfs_alloc_huge(cap * sizeof(float));
		s->bacc = mfs_alloc_huge(cap * sizeof(float));
	}
	int counted = cfg->freq_alpha != 1.0f || cfg->freq_alpha_bias != 1.0f;
	if (counted)
		s->count = mfs_alloc_huge(cap * sizeof(uint32_t));
	if (hist_len) {
		s->hist_len = hist_len;
		s->hist = mfs_alloc_huge(cap * hist_len * 8);
		s->hpos = mfs_alloc_huge(cap * 4);
	}
	if (!s->rows || !s->bias || !s->dirty || (adagrad && (!s->acc || !s->bacc)) ||
	    (counted && !s->count) || (hist_len && (!s->hist || !s->hpos))) {
		side_free(s);
		return -MFS_E_NOMEM;
	}
	return 0;
}

int mfs_model_alloc(mfs_model **out, const mfs_config *cfg, const struct mfs_kernels *k)
{
	mfs_model *m = calloc(1, sizeof *m);
	if (!m)
		return -MFS_E_NOMEM;
	m->cfg = *cfg;
	m->cfg.kernel = NULL;
	m->k = k;
	m->stride = (cfg->dim + 15u) & ~15u;
	m->klen = (uint32_t)((cfg->dim + k->width - 1) / k->width * k->width);
	if (m->klen > m->stride)
		m->klen = m->stride;
	uint64_t st = cfg->seed;
	m->hash_seed = mfs_splitmix64(&st);
	mfs_rng_seed(&m->rng, mfs_splitmix64(&st));
	int rc = side_init(&m->user, cfg, cfg->max_users, m->stride, cfg->history);
	if (rc == 0)
		rc = side_init(&m->item, cfg, cfg->max_items, m->stride, 0);
	m->scratch = malloc(3 * MFS_LEARN_CHUNK * sizeof *m->scratch);
	m->tmp = mfs_alloc_aligned(m->stride * sizeof(float));
	m->keys = malloc(2 * MFS_LEARN_CHUNK * sizeof *m->keys);
	if (rc == 0 && (!m->scratch || !m->keys || !m->tmp))
		rc = -MFS_E_NOMEM;
	if (rc == 0 && m->user.count) {
		m->freq_w = malloc(2 * MFS_FREQ_TABLE * sizeof *m->freq_w);
		if (!m->freq_w)
			rc = -MFS_E_NOMEM;
		for (uint32_t n = 0; m->freq_w && n < MFS_FREQ_TABLE; n++) {
			float r = (float)(n ? n : 1) / MFS_FREQ_REF;
			m->freq_w[n] = mfs_powf(r, cfg->freq_alpha - 1.0f);
			m->freq_w[MFS_FREQ_TABLE + n] = mfs_powf(r, cfg->freq_alpha_bias - 1.0f);
		}
	}
	if (rc < 0) {
		mfs_model_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

static int select_kernel(const char *name, const struct mfs_kernels **k, mfs_diag *d)
{
	const char *src = "kernel";
	if (!name || !*name || strcmp(name, "auto") == 0) {
		const char *env = getenv("MFS_KERNEL");
		if (env && *env) {
			name = env;
			src = "MFS_KERNEL";
		}
	}
	int rc = mfs_kernels_select(name, k);
	if (rc == -MFS_E_INVAL)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0,
				    "%s \"%s\" is unknown (expected auto, scalar, avx2, avx512 or neon)",
				    src, name);
	if (rc == -MFS_E_UNSUPPORTED)
		return mfs_diag_set(d, MFS_E_UNSUPPORTED, 0, NULL, 0, 0,
				    "%s \"%s\" is not supported by this CPU or build", src, name);
	return rc;
}

MFS_API int mfs_model_create(mfs_model **out, const mfs_config *cfg, mfs_diag *diag)
{
	if (!out || !cfg)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "NULL argument");
	int rc = check_config(cfg, diag);
	if (rc < 0)
		return rc;
	const struct mfs_kernels *k;
	rc = select_kernel(cfg->kernel, &k, diag);
	if (rc < 0)
		return rc;
	rc = mfs_model_alloc(out, cfg, k);
	if (rc < 0)
		return mfs_diag_set(diag, -rc, 0, NULL, 0, 0,
				    "cannot allocate tables for %llu users and %llu items of dim %u",
				    (unsigned long long)cfg->max_users,
				    (unsigned long long)cfg->max_items, cfg->dim);
	return 0;
}

int mfs_model_unmap(mfs_model *m)
{
	while (m->n_mapped > 0) {
		struct mfs_mapped *r = &m->mapped[m->n_mapped - 1];
		/* what is in use: the mapped head, and rows that deltas added after it */
		size_t used = (size_t)table_rows(r->side) * r->row_bytes;
		if (used < r->len)
			used = r->len;
		if (used > r->bytes)
			used = r->bytes;
		/* a new table beside the mapped one, then the pointer: on failure the
		 * model stays whole (still mapped), never with a hole */
		void *t = mfs_alloc_huge(r->bytes);
		if (!t)
			return -MFS_E_NOMEM;
		memcpy(t, *r->table, used);
		mfs_free_huge(*r->table, r->bytes);
		*r->table = t;
		m->n_mapped--;
	}
	return 0;
}

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1; older kernels say EINVAL */
#endif

/*
 * Collapse [p, p+len) of a table back into huge pages, 2 MiB at a time.
 * Tables are whole 2 MiB mappings from mfs_alloc_huge: when p is aligned (the
 * kernel aligns such mappings) the last, partly used 2 MiB is included.
 * Counts the bytes collapsed and the refusals of the kernel (EINVAL: no
 * MADV_COLLAPSE, or THP off).
 */
static void collapse(void *p, size_t len, size_t *done, int *refused)
{
	const uintptr_t huge = (uintptr_t)2 << 20;
	uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1);
	uintptr_t end = (uintptr_t)p + len;
	end = a == (uintptr_t)p ? (end + huge - 1) & ~(huge - 1) : end & ~(huge - 1);
	for (; a < end; a += huge) {
		/* one huge page per call: the learner waits at most for one 2 MiB copy */
		if (madvise((void *)a, huge, MADV_COLLAPSE) == 0)
			*done += huge;
		else if (errno == EINVAL)
			(*refused)++;
	}
}

MFS_API int64_t mfs_model_regroup_pages(mfs_model *m)
{
	if (!m)
		return -MFS_E_INVAL;
	size_t done = 0;
	int refused = 0;
	struct mfs_table *sides[2] = { &m->user, &m->item };
	for (int i = 0; i < 2; i++) {
		struct mfs_table *s = sides[i];
		/* the rows in use (learning touches no other; the count may grow meanwhile) */
		uint64_t n = s->ids.mode == MFS_IDMAP_HASHED
				     ? s->ids.cap
				     : __atomic_load_n(&s->ids.used, __ATOMIC_RELAXED);
		collapse(s->rows, (size_t)n * m->stride * sizeof(float), &done, &refused);
		collapse(s->bias, (size_t)n * sizeof(float), &done, &refused);
		if (s->acc) {
			collapse(s->acc, (size_t)n * sizeof(float), &done, &refused);
			collapse(s->bacc, (size_t)n * sizeof(float), &done, &refused);
		}
		collapse(s->dirty, mfs_dirty_bytes(n), &done, &refused);
		if (s->count)
			collapse(s->count, (size_t)n * 4, &done, &refused);
		if (s->hist) {
			collapse(s->hist, (size_t)n * s->hist_len * 8, &done, &refused);
			collapse(s->hpos, (size_t)n * 4, &done, &refused);
		}
		collapse(s->ids.row_key, (size_t)n * 8, &done, &refused);
		collapse(s->ids.row_off, (size_t)n * 8, &done, &refused);
		collapse(s->ids.row_len, (size_t)n, &done, &refused);
		if (s->ids.slots)
			collapse(s->ids.slots, (size_t)(s->ids.mask + 1) * sizeof *s->ids.slots, &done,
				 &refused);
	}
	return done == 0 && refused ? -MFS_E_UNSUPPORTED : (int64_t)done;
}

MFS_API void mfs_model_free(mfs_model *m)
{
	if (!m)
		return;
	side_free(&m->user);
	side_free(&m->item);
	free(m->scratch);
	free(m->keys);
	free(m->tmp);
	free(m->freq_w);
	free(m->position);
	mfs_sampler_free(&m->imp.smp);
	free(m->imp.seen);
	free(m);
}

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

static int64_t resolve(mfs_model *m, struct mfs_table *s, uint64_t key, const char *id,
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

/* A row learns an event: count it (first pass only: replays do not add to n). */
static inline void count_event(const mfs_model *m, struct mfs_table *s, int64_t row)
{
	if (s->count && !m->replay && s->count[row] != UINT32_MAX)
		s->count[row]++;
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

static inline void prefetch_rows(const mfs_model *m, int64_t u, int64_t i)
{
	if (u >= 0) {
		const float *p = mfs_row(&m->user, (uint64_t)u, m->stride);
		for (uint32_t off = 0; off < m->stride; off += 16)
			__builtin_prefetch(p + off, 1);
		__builtin_prefetch(&m->user.bias[u], 1);
		if (m->user.acc) {
			__builtin_prefetch(&m->user.acc[u], 1);
			__builtin_prefetch(&m->user.bacc[u], 1);
		}
		if (m->user.count)
			__builtin_prefetch(&m->user.count[u], 1);
		if (m->user.hist && !m->replay) {
			/* the slot the event will take (its place was prefetched before) */
			const struct mfs_table *s = &m->user;
			__builtin_prefetch(mfs_hist_row(s, (uint64_t)u) + MFS_HPOS_NEXT(s->hpos[u]), 1);
		}
	}
	if (i >= 0) {
		const float *q = mfs_row(&m->item, (uint64_t)i, m->stride);
		for (uint32_t off = 0; off < m->stride; off += 16)
			__builtin_prefetch(q + off, 1);
		__builtin_prefetch(&m->item.bias[i], 1);
		if (m->item.acc) {
			__builtin_prefetch(&m->item.acc[i], 1);
			__builtin_prefetch(&m->item.bacc[i], 1);
		}
		if (m->item.count)
			__builtin_prefetch(&m->item.count[i], 1);
	}
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

/* The second key of an ID (hashed mode, two hashes): another row of the table. */
static inline uint64_t second_key(uint64_t key)
{
	uint64_t x = key ^ 0xA0761D6478BD642FULL;
	x = (x ^ (x >> 32)) * 0xE7037ED1A0B428DBULL;
	return mfs_idmap_key(x ^ (x >> 29));
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

/*
 * The row of one side of event j. A hit (exact mode) only reads the index
 * slot and stamps it. A new ID that will take an evicted row first has the
 * events resolved before it learned (*nl up to j): a row that an event in
 * flight holds is never evicted and re-initialised under it, so a batch
 * learns exactly what the event-by-event loop would.
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
	return resolve(m, s, key, id, len);
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

MFS_API int64_t mfs_model_learn(mfs_model *m, const mfs_event *ev, size_t n, mfs_learn_stats *st)
{
	if (!m || (!ev && n))
		return -MFS_E_INVAL;
	if (m->imp.on)
		return mfs_model_learn_implicit(m, ev, n, st, NULL);
	if (MFS_UNLIKELY(m->n_mapped)) {
		/* a model mapped from its file: learn in anonymous huge-page memory */
		int rc = mfs_model_unmap(m);
		if (rc < 0)
			return rc;
	}
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
			if (MFS_UNLIKELY((++m->tick & (MFS_AGE_PERIOD - 1)) == 0)) {
				mfs_idmap_age(&m->user.ids, m->tick);
				mfs_idmap_age(&m->item.ids, m->tick);
			}
			rows[2 * j] = resolve_side(m, &c, &m->user, keys[2 * j], e->user, e->user_len, j,
						   &nl);
			rows[2 * j + 1] = resolve_side(m, &c, &m->item, keys[2 * j + 1], e->item,
						       e->item_len, j, &nl);
			if (c.two)
				rows2[j] = rows[2 * j] < 0 ? -1
					   : resolve(m, &m->user, second_key(keys[2 * j]), e->user,
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
			prefetch_rows(m, rows[2 * j], rows[2 * j + 1]);
		for (; nl < cn; nl++) {
			if (c.hist && nl + 2 * MFS_ROW_AHEAD < cn && rows[2 * (nl + 2 * MFS_ROW_AHEAD)] >= 0)
				__builtin_prefetch(&m->user.hpos[rows[2 * (nl + 2 * MFS_ROW_AHEAD)]]);
			if (nl + MFS_ROW_AHEAD < cn)
				prefetch_rows(m, rows[2 * (nl + MFS_ROW_AHEAD)],
					      rows[2 * (nl + MFS_ROW_AHEAD) + 1]);
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

static int64_t find_row(const mfs_model *m, const struct mfs_table *s, const char *id, size_t len)
{
	if (!id || len == 0 || len > MFS_ID_MAX)
		return -1;
	return mfs_idmap_find(&s->ids, id_key(m, id, (uint32_t)len));
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
		prefetch_rows(m, ev[j].user, ev[j].item);
	for (size_t j = 0; j < n; j++) {
		if (j + MFS_ROWS_AHEAD < n)
			prefetch_rows(m, ev[j + MFS_ROWS_AHEAD].user, ev[j + MFS_ROWS_AHEAD].item);
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
			prefetch_rows(m, ev[j].user, ev[j].item);
	for (size_t j = 0; j < n; j++) {
		if (j + MFS_ROWS_AHEAD < n) {
			const mfs_row_event *a = &ev[j + MFS_ROWS_AHEAD];
			if (a->user < nu && a->item < ni)
				prefetch_rows(m, a->user, a->item);
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
static int recommend_row(const mfs_model *m, const mfs_query *q, int64_t u, const float *p,
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
	int got = recommend_row(m, q, u, p, ub, k, out);
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

MFS_API int mfs_model_info_get(const mfs_model *m, mfs_model_info *info)
{
	if (!m || !info)
		return -MFS_E_INVAL;
	memset(info, 0, sizeof *info);
	info->dim = m->cfg.dim;
	info->users = m->user.ids.used;
	info->items = m->item.ids.used;
	info->user_rows = table_rows(&m->user);
	info->item_rows = table_rows(&m->item);
	info->user_evictions = m->user.ids.evictions;
	info->item_evictions = m->item.ids.evictions;
	info->ids = m->cfg.ids;
	info->evict = m->cfg.evict;
	info->min_count = m->cfg.min_count;
	info->user_hashes = m->cfg.user_hashes;
	info->max_users = m->cfg.max_users;
	info->max_items = m->cfg.max_items;
	info->events = m->events;
	info->mu = current_mu(m);
	info->lo = m->cfg.lo;
	info->hi = m->cfg.hi;
	info->optimizer = m->cfg.optimizer;
	info->link = m->cfg.link;
	info->seed = m->cfg.seed;
	info->kernel = m->k->name;
	info->history = m->user.hist_len;
	info->counts = m->item.count != NULL;
	return 0;
}

MFS_API int mfs_model_set_replay(mfs_model *m, int on)
{
	if (!m)
		return -MFS_E_INVAL;
	m->replay = on != 0;
	return 0;
}

MFS_API const void *mfs_model_position(const mfs_model *m, size_t *len)
{
	if (len)
		*len = m && m->position ? m->position_len : 0;
	return m ? m->position : NULL;
}

MFS_API int mfs_model_set_range(mfs_model *m, float lo, float hi)
{
	if (!m || !isfinite(lo) || !isfinite(hi) || !(lo < hi) || m->mu_count != 0 || m->events != 0)
		return -MFS_E_INVAL;
	m->cfg.lo = lo;
	m->cfg.hi = hi;
	return 0;
}

MFS_API int mfs_model_config_get(const mfs_model *m, mfs_config *cfg)
{
	if (!m || !cfg)
		return -MFS_E_INVAL;
	*cfg = m->cfg;
	cfg->kernel = NULL;
	return 0;
}

MFS_API int mfs_model_set_learning(mfs_model *m, const mfs_config *c)
{
	if (!m || !c || !finite_nonneg(c->lr) || !finite_nonneg(c->lr_bias) ||
	    !finite_nonneg(c->l2) || !finite_nonneg(c->l2_bias) || !finite_nonneg(c->init_std) ||
	    !finite_nonneg(c->replay_lr) || !finite_nonneg(c->replay_lr_bias) ||
	    !finite_nonneg(c->replay_l2) || !finite_nonneg(c->replay_l2_bias))
		return -MFS_E_INVAL;
	m->cfg.lr = c->lr;
	m->cfg.lr_bias = c->lr_bias;
	m->cfg.l2 = c->l2;
	m->cfg.l2_bias = c->l2_bias;
	m->cfg.init_std = c->init_std;
	m->cfg.replay_lr = c->replay_lr;
	m->cfg.replay_lr_bias = c->replay_lr_bias;
	m->cfg.replay_l2 = c->replay_l2;
	m->cfg.replay_l2_bias = c->replay_l2_bias;
	return 0;
}

/* The finest of 1, 1/2, 1/10, 1/100 that every rating is a multiple of (0: none). */
static float rating_step(const mfs_event *ev, size_t n)
{
	static const float steps[] = { 1.0f, 0.5f, 0.1f, 0.01f };
	for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
		double inv = 1.0 / steps[k];
		size_t i = 0;
		for (; i < n; i++) {
			double x = (double)ev[i].rating * inv;
			if (fabs(x - nearbyint(x)) > 1e-3)
				break;
		}
		if (i == n)
			return steps[k];
	}
	return 0.0f;
}

MFS_API int mfs_ratings_range(const mfs_event *ev, size_t n, float *lo, float *hi, float *step)
{
	if (!ev || n == 0)
		return -MFS_E_INVAL;
	float a = INFINITY, b = -INFINITY;
	for (size_t i = 0; i < n; i++) {
		float r = ev[i].rating;
		if (!isfinite(r))
			return -MFS_E_INVAL;
		if (r < a)
			a = r;
		if (r > b)
			b = r;
	}
	if (lo)
		*lo = a;
	if (hi)
		*hi = b;
	if (step)
		*step = rating_step(ev, n);
	return 0;
}

MFS_API int64_t mfs_model_table(const mfs_model *m, int side, const float **rows, size_t *stride,
				const float **bias)
{
	if (!m || (side != MFS_USERS && side != MFS_ITEMS))
		return -MFS_E_INVAL;
	const struct mfs_table *s = side == MFS_USERS ? &m->user : &m->item;
	if (rows)
		*rows = s->rows;
	if (stride)
		*stride = m->stride;
	if (bias)
		*bias = s->bias;
	return (int64_t)table_rows(s);
}

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
		int got = recommend_row(m, NULL, u, p, ub, k, top);
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
		int64_t u = resolve(m, &m->user, ukey, e->user, e->user_len);
		int64_t i = u >= 0 ? resolve(m, &m->item, ikey, e->item, e->item_len) : u;
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
