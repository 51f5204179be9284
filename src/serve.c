/*
 * serve.c - a model held for serving, swapped for a newer one while other
 * threads query it.
 *
 * Readers pin the current model (acquire), query it, and unpin it (release).
 * A refresh loads the newer model with no lock held, then swaps the pointer
 * under a short mutex; the model it replaces is retired and freed by whoever
 * drops its last pin. A reader therefore always sees one whole model, and
 * nobody waits for a load.
 */
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "chunk.h"
#include "model_internal.h"
#include "publish.h"
#include "topk.h"

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

static void qindex_free(struct qindex *q)
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

static int qindex_build(struct qindex *q, const mfs_model *m)
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
		qindex_free(q);
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

/* What a path looked like when we last tried it: a refresh loads only on change. */
struct signature {
	char name[256]; /* newest checkpoint name ("" for a model file) */
	uint64_t size, ino;
	int64_t mtime_ns;
};

struct mfs_server {
	char path[4096];
	int is_dir;
	char *kernel;
	mfs_bad_record_fn on_skip;
	void *ctx;
	pthread_mutex_t mu;      /* guards cur, snaps and the pins */
	pthread_mutex_t load_mu; /* one refresh at a time */
	struct mfs_view *cur;
	struct mfs_view *snaps; /* current and retired-but-pinned */
	struct signature tried;
	char loaded_from[4096];
	uint64_t refreshes;
	/* a Kafka model topic (else NULL): its reader and the chain it holds */
	struct mfs_ktail *kt;
	struct mfs_edge *edge;
	uint64_t write_ns, lag_ns; /* of the serving model (guarded by mu) */
};

/* The largest model file a Kafka server accepts from the topic. */
#define KAFKA_MAX_MODEL (4ull << 30)

static uint64_t wall_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int is_ckpt_entry(const char *n)
{
	return strncmp(n, "ckpt-", 5) == 0;
}

/* The signature of path now: for a directory its newest checkpoint entry. */
static int signature_of(const struct mfs_server *s, struct signature *sig, mfs_diag *d)
{
	memset(sig, 0, sizeof *sig);
	char file[4096 + 256];
	const char *stat_path = s->path;
	if (s->is_dir) {
		DIR *dp = opendir(s->path);
		if (!dp) {
			int e = errno;
			return mfs_diag_set(d, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, s->path, 0,
					    0, "cannot read checkpoint directory: %s", strerror(e));
		}
		struct dirent *e;
		while ((e = readdir(dp)) != NULL)
			if (is_ckpt_entry(e->d_name) && strlen(e->d_name) < sizeof sig->name &&
			    strcmp(e->d_name, sig->name) > 0)
				strcpy(sig->name, e->d_name);
		closedir(dp);
		if (!sig->name[0])
			return mfs_diag_set(d, MFS_E_NOTFOUND, 0, s->path, 0, 0,
					    "no checkpoint in the directory");
		snprintf(file, sizeof file, "%s/%s", s->path, sig->name);
		stat_path = file;
	}
	struct stat st;
	if (stat(stat_path, &st) < 0) {
		int e = errno;
		return mfs_diag_set(d, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, stat_path, 0, 0,
				    "%s", strerror(e));
	}
	sig->size = (uint64_t)st.st_size;
	sig->ino = (uint64_t)st.st_ino;
	sig->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	return 0;
}

static int same_signature(const struct signature *a, const struct signature *b)
{
	return strcmp(a->name, b->name) == 0 && a->size == b->size && a->ino == b->ino &&
	       a->mtime_ns == b->mtime_ns;
}

static int load(struct mfs_server *s, mfs_model **m, char *from, size_t from_len, mfs_diag *d)
{
	/* copied, never mapped: a served file rewritten or truncated in place cannot fault it */
	if (s->is_dir)
		return mfs_checkpoint_load_newest_flags(m, s->path, s->kernel, MFS_LOAD_COPY, s->on_skip,
							s->ctx, from, from_len, d);
	snprintf(from, from_len, "%s", s->path);
	return mfs_model_load_flags(m, s->path, s->kernel, MFS_LOAD_COPY, d);
}

static uint64_t events_of(const mfs_model *m)
{
	mfs_model_info info;
	return mfs_model_info_get(m, &info) == 0 ? info.events : 0;
}

MFS_API int mfs_server_open(mfs_server **out, const char *path, const char *kernel,
			    mfs_bad_record_fn on_skip, void *ctx, mfs_diag *diag)
{
	if (!out || !path || !*path)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, path, 0, 0, "no model path");
	if (strncmp(path, "kafka://", 8) == 0) {
		const char *slash = strrchr(path + 8, '/');
		if (!slash || slash == path + 8 || !slash[1] || strlen(path) >= 4096)
			return mfs_diag_set(diag, MFS_E_INVAL, 0, path, 0, 0,
					    "a Kafka model URL is kafka://BROKERS/TOPIC");
		char brokers[4096];
		snprintf(brokers, sizeof brokers, "%.*s", (int)(slash - (path + 8)), path + 8);
		return mfs_server_open_kafka(out, brokers, slash + 1, kernel, 0, on_skip, ctx, diag);
	}
	if (strlen(path) >= sizeof((struct mfs_server *)0)->path)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, "", 0, 0, "model path is too long");
	struct stat st;
	if (stat(path, &st) < 0) {
		int e = errno;
		return mfs_diag_set(diag, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, path, 0, 0,
				    "%s", strerror(e));
	}
	struct mfs_server *s = calloc(1, sizeof *s);
	struct mfs_view *sn = calloc(1, sizeof *sn);
	if (!s || !sn || (kernel && !(s->kernel = strdup(kernel)))) {
		free(s ? s->kernel : NULL);
		free(s);
		free(sn);
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, path, 0, 0, "out of memory");
	}
	strcpy(s->path, path);
	s->is_dir = S_ISDIR(st.st_mode);
	s->on_skip = on_skip;
	s->ctx = ctx;
	/* the signature before the load: a checkpoint landing during it is seen next time */
	int rc = signature_of(s, &s->tried, diag);
	if (rc >= 0)
		rc = load(s, &sn->m, s->loaded_from, sizeof s->loaded_from, diag);
	if (rc >= 0 && qindex_build(&sn->ix, sn->m) < 0)
		rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, path, 0, 0, "out of memory");
	if (rc < 0) {
		mfs_model_free(sn->m);
		free(s->kernel);
		free(s);
		free(sn);
		return rc;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->load_mu, NULL);
	s->cur = s->snaps = sn;
	*out = s;
	return 0;
}

static int swap_in(struct mfs_server *s, mfs_model *m, int newer, const char *from,
		   uint64_t write_ns, mfs_diag *diag);

/* The name of the chain's newest file, for info.path and the refresh line. */
static void chain_name(const struct mfs_server *s, char *from, size_t len)
{
	struct mfs_edge_stats st;
	mfs_edge_stats_get(s->edge, &st);
	int n = snprintf(from, len, "snapshot %llu delta %llu ", (unsigned long long)st.snap,
			 (unsigned long long)st.seq);
	size_t pl = strlen(s->path);
	if (n > 0 && (size_t)n + pl < len)
		memcpy(from + n, s->path, pl + 1);
}

/* A Kafka server's refresh: what arrived, and the chain's model if it grew. */
static int refresh_kafka(struct mfs_server *s, mfs_diag *diag)
{
	mfs_ktail_poll(s->kt, s->edge, 0, s->on_skip, s->ctx);
	mfs_model *m = NULL;
	uint64_t wns = 0;
	int rc = mfs_edge_build(s->edge, &m, s->kernel, &wns, s->on_skip, s->ctx, diag);
	if (rc <= 0)
		return rc;
	char from[4096];
	chain_name(s, from, sizeof from);
	return swap_in(s, m, 1, from, wns, diag);
}

MFS_API int mfs_server_open_kafka(mfs_server **out, const char *brokers, const char *topic,
				  const char *kernel, int wait_ms, mfs_bad_record_fn on_skip,
				  void *ctx, mfs_diag *diag)
{
	if (!out || !brokers || !*brokers || !topic || !*topic)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no brokers or model topic");
	if (wait_ms <= 0)
		wait_ms = 30000;
	struct mfs_server *s = calloc(1, sizeof *s);
	struct mfs_view *sn = calloc(1, sizeof *sn);
	int rc = 0;
	if (!s || !sn || (kernel && !(s->kernel = strdup(kernel))) ||
	    mfs_edge_create(&s->edge, KAFKA_MAX_MODEL) < 0) {
		rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		goto fail;
	}
	snprintf(s->path, sizeof s->path, "kafka://%s/%s", brokers, topic);
	s->on_skip = on_skip;
	s->ctx = ctx;
	if ((rc = mfs_ktail_open(&s->kt, brokers, topic, wait_ms, diag)) < 0)
		goto fail;
	/* read the topic up to where it ended at open, then the newest chain serves */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		mfs_ktail_poll(s->kt, s->edge, 100, on_skip, ctx);
		if (mfs_ktail_caught_up(s->kt)) {
			uint64_t wns = 0;
			rc = mfs_edge_build(s->edge, &sn->m, kernel, &wns, on_skip, ctx, diag);
			if (rc < 0)
				goto fail;
			if (rc > 0) {
				s->write_ns = wns;
				uint64_t t = wall_ns();
				s->lag_ns = t > wns ? t - wns : 0;
				break;
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= wait_ms) {
			rc = mfs_diag_set(diag, MFS_E_NOTFOUND, 0, s->path, 0, 0,
					  "no whole model snapshot in the topic after %d ms", wait_ms);
			goto fail;
		}
	}
	if (qindex_build(&sn->ix, sn->m) < 0) {
		rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, s->path, 0, 0, "out of memory");
		goto fail;
	}
	chain_name(s, s->loaded_from, sizeof s->loaded_from);
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->load_mu, NULL);
	s->cur = s->snaps = sn;
	*out = s;
	return 0;
fail:
	if (sn)
		mfs_model_free(sn->m);
	free(sn);
	if (s) {
		mfs_ktail_free(s->kt);
		mfs_edge_free(s->edge);
		free(s->kernel);
	}
	free(s);
	return rc;
}

MFS_API int mfs_server_refresh(mfs_server *s, mfs_diag *diag)
{
	if (!s)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, "", 0, 0, "no server");
	pthread_mutex_lock(&s->load_mu);
	if (s->kt) {
		int r = refresh_kafka(s, diag);
		pthread_mutex_unlock(&s->load_mu);
		return r;
	}
	struct signature sig;
	int rc = signature_of(s, &sig, diag);
	if (rc < 0 || same_signature(&sig, &s->tried)) {
		pthread_mutex_unlock(&s->load_mu);
		return rc < 0 ? rc : 0;
	}
	s->tried = sig; /* a damaged newest file is reported once, not at every poll */
	mfs_model *m = NULL;
	char from[4096];
	rc = load(s, &m, from, sizeof from, diag);
	if (rc < 0) {
		pthread_mutex_unlock(&s->load_mu);
		return rc;
	}
	/* only a newer model replaces the one serving: the newest file may have been
	 * damaged, and the loader then fell back to one we already have (or older) */
	uint64_t have = events_of(s->cur->m), got = events_of(m);
	int newer = s->is_dir ? got > have || (got == have && strcmp(from, s->loaded_from) > 0)
			      : 1;
	rc = swap_in(s, m, newer, from, 0, diag);
	pthread_mutex_unlock(&s->load_mu);
	return rc;
}

/*
 * Make m (loaded from from) the serving model if newer (else free it), under
 * the caller's load_mu. Returns 1 when swapped, 0, or -MFS_E_NOMEM.
 */
static int swap_in(struct mfs_server *s, mfs_model *m, int newer, const char *from,
		   uint64_t write_ns, mfs_diag *diag)
{
	struct mfs_view *sn = newer ? calloc(1, sizeof *sn) : NULL;
	if (sn && qindex_build(&sn->ix, m) < 0) {
		free(sn);
		sn = NULL;
	}
	if (!sn) {
		mfs_model_free(m);
		return newer ? mfs_diag_set(diag, MFS_E_NOMEM, 0, s->path, 0, 0, "out of memory") : 0;
	}
	sn->m = m;
	struct mfs_view *old_free = NULL;
	pthread_mutex_lock(&s->mu);
	struct mfs_view *old = s->cur;
	old->retired = 1;
	sn->next = s->snaps;
	s->snaps = sn;
	s->cur = sn;
	if (old->pins == 0) { /* unlink and free it outside the lock */
		for (struct mfs_view **pp = &s->snaps; *pp; pp = &(*pp)->next)
			if (*pp == old) {
				*pp = old->next;
				break;
			}
		old_free = old;
	}
	s->refreshes++;
	snprintf(s->loaded_from, sizeof s->loaded_from, "%s", from);
	if (write_ns) {
		uint64_t t = wall_ns();
		s->write_ns = write_ns;
		s->lag_ns = t > write_ns ? t - write_ns : 0;
	}
	pthread_mutex_unlock(&s->mu);
	if (old_free) {
		qindex_free(&old_free->ix);
		mfs_model_free(old_free->m);
		free(old_free);
	}
	return 1;
}

MFS_API const mfs_view *mfs_server_acquire(mfs_server *s)
{
	if (!s)
		return NULL;
	pthread_mutex_lock(&s->mu);
	struct mfs_view *sn = s->cur;
	sn->pins++;
	pthread_mutex_unlock(&s->mu);
	return sn;
}

MFS_API void mfs_server_release(mfs_server *s, const mfs_view *v)
{
	if (!s || !v)
		return;
	struct mfs_view *dead = NULL;
	pthread_mutex_lock(&s->mu);
	for (struct mfs_view **pp = &s->snaps; *pp; pp = &(*pp)->next) {
		struct mfs_view *sn = *pp;
		if (sn != v)
			continue;
		if (sn->pins > 0)
			sn->pins--;
		if (sn->pins == 0 && sn->retired) {
			*pp = sn->next;
			dead = sn;
		}
		break;
	}
	pthread_mutex_unlock(&s->mu);
	if (dead) {
		qindex_free(&dead->ix);
		mfs_model_free(dead->m);
		free(dead);
	}
}

MFS_API const mfs_model *mfs_view_model(const mfs_view *v)
{
	return v ? v->m : NULL;
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

MFS_API int mfs_server_info_get(mfs_server *s, mfs_server_info *info)
{
	if (!s || !info)
		return -MFS_E_INVAL;
	memset(info, 0, sizeof *info);
	pthread_mutex_lock(&s->mu);
	info->events = events_of(s->cur->m);
	info->refreshes = s->refreshes;
	for (struct mfs_view *sn = s->snaps; sn; sn = sn->next)
		info->retired_pinned += sn->retired;
	snprintf(info->path, sizeof info->path, "%s", s->loaded_from);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

MFS_API int mfs_server_lag(mfs_server *s, uint64_t *write_ns, uint64_t *lag_ns)
{
	uint64_t w = 0, l = 0;
	if (s) {
		pthread_mutex_lock(&s->mu);
		w = s->write_ns;
		l = s->lag_ns;
		pthread_mutex_unlock(&s->mu);
	}
	if (write_ns)
		*write_ns = w;
	if (lag_ns)
		*lag_ns = l;
	return s && s->kt ? 1 : 0;
}

MFS_API void mfs_server_free(mfs_server *s)
{
	if (!s)
		return;
	struct mfs_view *sn = s->snaps;
	while (sn) {
		struct mfs_view *next = sn->next;
		qindex_free(&sn->ix);
		mfs_model_free(sn->m);
		free(sn);
		sn = next;
	}
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->load_mu);
	mfs_ktail_free(s->kt);
	mfs_edge_free(s->edge);
	free(s->kernel);
	free(s);
}
