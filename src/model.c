/*
 * model.c - the biased MF model: settings, create, free, huge-page regroup,
 * info and the settings that change after create. Learning is model_learn.c,
 * queries model_query.c, implicit feedback model_implicit.c.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "model_step.h"

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
	free(m->par_rows);
	free(m->par_grid);
	free(m->par_blk);
	free(m->tmp);
	free(m->freq_w);
	free(m->position);
	mfs_sampler_free(&m->imp.smp);
	free(m->imp.seen);
	free(m);
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
