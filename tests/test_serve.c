/* test_serve.c - serving: exact top-K from the int8 scan, refresh under concurrent queries,
 * damaged checkpoints ignored, and the recommend/similar/serve commands. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model_internal.h"
#include "support.h"

#define RUN(r, ...)                                                                  \
	do {                                                                         \
		const char *argv_[] = { MFS_CLI, __VA_ARGS__, NULL };                \
		assert_int_equal(mfs_run_argv(r, (char *const *)argv_, NULL, 0), 0); \
	} while (0)

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

/* Learn n random events over users x items (IDs "u<k>", "i<k>") into m. */
static void learn_random(mfs_model *m, uint64_t *seed, size_t n, unsigned users, unsigned items)
{
	char ub[32], ib[32];
	for (size_t e = 0; e < n; e++) {
		int ul = snprintf(ub, sizeof ub, "u%u", (unsigned)(lcg(seed) % users));
		int il = snprintf(ib, sizeof ib, "i%u", (unsigned)(lcg(seed) % items));
		mfs_event ev = { ub, ib, (uint32_t)ul, (uint32_t)il,
				 (float)(1 + lcg(seed) % 5), 0 };
		assert_int_equal(mfs_model_learn(m, &ev, 1, NULL), 1);
	}
}

static mfs_model *make_model(mfs_config *cfg, uint64_t seed, size_t events, unsigned users,
			     unsigned items)
{
	mfs_model *m;
	assert_int_equal(mfs_model_create(&m, cfg, NULL), 0);
	learn_random(m, &seed, events, users, items);
	return m;
}

/* Whether brute force under query settings (include_seen, min_events) leaves row r out. */
static int left_out(const mfs_model *m, const uint32_t *seen, int n_seen, uint32_t r,
		    uint32_t min_events)
{
	for (int j = 0; j < n_seen; j++)
		if (seen[j] == r)
			return 1;
	return min_events && mfs_model_row_events(m, MFS_ITEMS, r) < (int64_t)min_events;
}

/* The view's top-k equals the float scan of mfs_model_recommend_with (same
 * rows; a near-tie may swap, so scores are compared with a tolerance) and the
 * best k of mfs_model_predict over every item the query lets in: by default
 * not the user's history (the exclusion keeps the top-k exact: the k best of
 * the rest, not k minus holes), with include_seen every item, with
 * min_events only items with that support. */
static void check_recommend_q(const mfs_view *v, const char *user, size_t k, int include_seen,
			      uint32_t min_events)
{
	const mfs_model *m = mfs_view_model(v);
	mfs_query *q;
	assert_int_equal(mfs_query_create(&q), 0);
	assert_int_equal(mfs_query_set(q, MFS_QUERY_INCLUDE_SEEN, include_seen), 0);
	assert_int_equal(mfs_query_set(q, MFS_QUERY_MIN_EVENTS, min_events), 0);
	mfs_scored a[64], b[64];
	int na = mfs_view_recommend_with(v, q, user, strlen(user), k, a);
	int nb = mfs_model_recommend_with(m, q, user, strlen(user), k, b);
	assert_int_equal(na, nb);
	for (int i = 0; i < na; i++) /* rows may differ only where scores tie */
		assert_true(fabsf(a[i].score - b[i].score) <= 1e-5f);
	uint32_t seen[MFS_HISTORY_MAX];
	int n_seen = include_seen ? 0 : mfs_model_history(m, user, strlen(user), seen, MFS_HISTORY_MAX);
	if (n_seen < 0)
		n_seen = 0; /* a cold user has none */
	if (!include_seen && mfs_model_find(m, MFS_USERS, user, strlen(user)) >= 0)
		assert_true(n_seen > 0); /* something to leave out */
	/* brute force: every item's prediction, the k largest */
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	float *all = malloc(info.item_rows * sizeof *all);
	size_t n = 0;
	for (uint64_t r = 0; r < info.item_rows; r++) {
		const char *id;
		size_t len;
		if (mfs_model_row(m, MFS_ITEMS, (uint32_t)r, &id, &len, NULL) < 0 ||
		    left_out(m, seen, n_seen, (uint32_t)r, min_events))
			continue;
		assert_true(mfs_model_predict(m, user, strlen(user), id, len, &all[n]) >= 0);
		n++;
	}
	assert_int_equal(na, n < k ? n : k);
	for (int i = 0; i < na; i++) { /* selection of the i-th largest */
		assert_false(left_out(m, seen, n_seen, a[i].row, min_events));
		size_t best = (size_t)i;
		for (size_t j = (size_t)i; j < n; j++)
			if (all[j] > all[best])
				best = j;
		float t = all[i];
		all[i] = all[best];
		all[best] = t;
		assert_true(fabsf(all[i] - a[i].score) <= 1e-4f);
	}
	free(all);
	mfs_query_free(q);
}

static void check_recommend(const mfs_view *v, const char *user, size_t k)
{
	check_recommend_q(v, user, k, 0, 0);
	check_recommend_q(v, user, k, 1, 0);
	check_recommend_q(v, user, k, 0, 25);
}

static void check_similar(const mfs_view *v, const char *item, size_t k, uint32_t min_events)
{
	mfs_query *q;
	assert_int_equal(mfs_query_create(&q), 0);
	assert_int_equal(mfs_query_set(q, MFS_QUERY_MIN_EVENTS, min_events), 0);
	mfs_scored a[64], b[64];
	const mfs_model *m = mfs_view_model(v);
	int na = mfs_view_similar_with(v, q, item, strlen(item), k, a);
	int nb = mfs_model_similar_with(m, q, item, strlen(item), k, b);
	assert_int_equal(na, nb);
	int64_t self = mfs_model_find(m, MFS_ITEMS, item, strlen(item));
	for (int i = 0; i < na; i++) {
		assert_true(fabsf(a[i].score - b[i].score) <= 1e-5f);
		assert_true(a[i].row != (uint32_t)self);
		assert_true(mfs_model_row_events(m, MFS_ITEMS, a[i].row) >= (int64_t)min_events);
	}
	mfs_query_free(q);
}

static void topk_cases(mfs_config *cfg, const char *name)
{
	mfs_model *m = make_model(cfg, 7, 60000, 300, 2500);
	const char *path = mfs_test_path(name);
	assert_int_equal(mfs_model_save(m, path, NULL, NULL), 0);
	mfs_model_free(m);
	mfs_server *s;
	assert_int_equal(mfs_server_open(&s, path, NULL, NULL, NULL, NULL), 0);
	const mfs_view *v = mfs_server_acquire(s);
	char id[32];
	for (unsigned u = 0; u < 40; u++) {
		snprintf(id, sizeof id, "u%u", u);
		check_recommend(v, id, u % 3 ? 10 : 50);
		snprintf(id, sizeof id, "i%u", u * 7);
		check_similar(v, id, 10, 0);
		check_similar(v, id, 10, 30);
	}
	check_recommend(v, "nobody", 10); /* cold: by bias */
	mfs_scored one;
	assert_int_equal(mfs_view_similar(v, "no-such-item", 12, 1, &one), -MFS_E_NOTFOUND);
	mfs_server_release(s, v);
	mfs_server_free(s);
}

/* The int8 scan keeps the exact top-K: dims with and without padding, both
 * links, SGD, hashed IDs with two rows per user. */
static void view__topk_equals_brute_force(void **state)
{
	(void)state;
	mfs_config cfg;
	mfs_config_default(&cfg);
	cfg.dim = 24;
	cfg.max_users = 1000;
	cfg.max_items = 4000;
	topk_cases(&cfg, "a.mfs");
	cfg.dim = 64;
	cfg.link = MFS_RANGE_CLAMP;
	cfg.optimizer = MFS_OPT_SGD;
	cfg.lr = 0.02f;
	topk_cases(&cfg, "b.mfs");
	mfs_config_default(&cfg);
	cfg.dim = 40;
	cfg.ids = MFS_IDS_HASHED;
	cfg.user_hashes = 2;
	cfg.max_users = 512;
	cfg.max_items = 4096;
	topk_cases(&cfg, "c.mfs");
}

/* Item rows of m in bias order, highest first (the order of the scan's blocks). */
static int cmp_bias_desc(const void *a, const void *b, void *ctx)
{
	const float *bias = ctx;
	float x = bias[*(const uint32_t *)a], y = bias[*(const uint32_t *)b];
	return x > y ? -1 : x < y;
}

/* Open a server on m (saved to name), check recommend for users u0..u39
 * against brute force, and return the share of index rows the scans bounded
 * and whether an answer came from the second half of the bias order. */
static double pruned_cases(mfs_model *m, const char *name, const uint32_t *order, uint64_t n,
			   int *late)
{
	const char *path = mfs_test_path(name);
	assert_int_equal(mfs_model_save(m, path, NULL, NULL), 0);
	uint64_t *rank = calloc(table_rows(&m->item), sizeof *rank);
	for (uint64_t i = 0; i < n; i++)
		rank[order[i]] = i;
	mfs_server *s;
	assert_int_equal(mfs_server_open(&s, path, NULL, NULL, NULL, NULL), 0);
	const mfs_view *v = mfs_server_acquire(s);
	struct mfs_scan_counts c0, c1;
	mfs_scan_counts_get(&c0);
	char id[32];
	*late = 0;
	for (unsigned u = 0; u < 40; u++) {
		snprintf(id, sizeof id, "u%u", u);
		check_recommend(v, id, 10);
		check_recommend_q(v, id, 1, 1, 0);
		mfs_scored a[10];
		int na = mfs_view_recommend(v, id, strlen(id), 10, a);
		for (int i = 0; i < na; i++)
			*late |= rank[a[i].row] >= n / 2;
	}
	check_recommend(v, "nobody", 10);
	mfs_scan_counts_get(&c1);
	mfs_server_release(s, v);
	mfs_server_free(s);
	free(rank);
	return (double)(c1.bounded - c0.bounded) / (double)(c1.queries - c0.queries) / (double)n;
}

/* The scan orders items by bias and skips blocks whose Cauchy-Schwarz bound
 * cannot reach the k-th best: still the exact top-K when (a) the scores are
 * bias-dominated (most blocks skipped: the pruning works), (b) the largest
 * rows sit at the end of the bias order (a block is skipped, the scan goes
 * on: the stop needs the largest norm still to come), (c) every
 * highest-bias item is in the user's history (left out before it can set
 * the threshold). */
static void view__bias_order_pruning_stays_exact(void **state)
{
	(void)state;
	mfs_config cfg;
	mfs_config_default(&cfg);
	cfg.dim = 32;
	cfg.max_users = 1000;
	cfg.max_items = 4096;
	mfs_model *m = make_model(&cfg, 11, 60000, 300, 3000);
	const struct mfs_table *t = &m->item;
	uint64_t rows = table_rows(t), n = 0;
	uint32_t *order = malloc(rows * sizeof *order);
	for (uint64_t r = 0; r < rows; r++)
		if (row_live(t, r))
			order[n++] = (uint32_t)r;
	qsort_r(order, n, sizeof *order, cmp_bias_desc, t->bias);
	int late;
	/* (a) biases spread wide: a top-10 reads few blocks */
	for (uint64_t i = 0; i < n; i++)
		t->bias[order[i]] *= 4.0f;
	double share = pruned_cases(m, "prune-a.mfs", order, n, &late);
	assert_true(share < 0.5);
	/* (b) the rows grow along the bias order: the last are 30 times the first */
	for (uint64_t i = 0; i < n; i++) {
		float *v = mfs_row(t, order[i], m->stride), f = 1.0f + 29.0f * (float)i / (float)n;
		t->bias[order[i]] *= 0.25f;
		for (uint32_t d = 0; d < cfg.dim; d++)
			v[d] *= f;
	}
	/* and for u0..u9 the last items are parallel to their query at the largest
	 * norm: the bound is reached (up to rounding), their block must be read */
	float mx = 0.0f;
	for (uint64_t i = 0; i < n; i++) {
		const float *v = mfs_row(t, order[i], m->stride);
		mx = fmaxf(mx, sqrtf(m->k->dot(v, v, m->klen)));
	}
	for (unsigned u = 0; u < 10; u++) {
		char uid[32];
		float buf[MFS_DIM_MAX_STRIDE], base;
		snprintf(uid, sizeof uid, "u%u", u);
		const float *p = mfs_model_user_query(m, uid, strlen(uid), buf, &base);
		assert_non_null(p);
		float pn = sqrtf(m->k->dot(p, p, m->klen)), *v = mfs_row(t, order[n - 1 - u], m->stride);
		for (uint32_t d = 0; d < cfg.dim; d++)
			v[d] = p[d] * (mx / pn);
		if (u)
			continue;
		/* and u0's runner-up, parallel too, in the first block, 1% of the dot
		 * behind: a top-1 must still read the last block */
		float dot = pn * mx, b_hi = t->bias[order[0]], b_lo = t->bias[order[n - 1]];
		float want = dot + b_lo - b_hi - 0.01f * dot, *w = mfs_row(t, order[0], m->stride);
		assert_true(want > 0.0f);
		for (uint32_t d = 0; d < cfg.dim; d++)
			w[d] = p[d] * (want / (pn * pn));
	}
	pruned_cases(m, "prune-b.mfs", order, n, &late);
	assert_true(late); /* some answers come from the end of the bias order */
	/* (c) the histories of u0 and u1 hold the highest biases */
	for (uint64_t i = 0; i < n; i++) {
		float *v = mfs_row(t, order[i], m->stride), f = 1.0f / (1.0f + 29.0f * (float)i / n);
		for (uint32_t d = 0; d < cfg.dim; d++)
			v[d] *= f;
	}
	uint32_t seen[MFS_HISTORY_MAX];
	char id[32];
	for (unsigned u = 0; u < 2; u++) {
		snprintf(id, sizeof id, "u%u", u);
		int ns = mfs_model_history(m, id, strlen(id), seen, MFS_HISTORY_MAX);
		for (int j = 0; j < ns; j++)
			t->bias[seen[j]] = 50.0f + (float)u;
	}
	share = pruned_cases(m, "prune-c.mfs", order, n, &late);
	assert_true(share < 0.5);
	free(order);
	mfs_model_free(m);
}

/* --- refresh under concurrent queries ------------------------------------ */

/* How many threads of process pid run at nice n, and how many at another. */
static void threads_by_nice(pid_t pid, int n, int *at, int *others)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	*at = *others = 0;
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char sp[512];
		if (snprintf(sp, sizeof sp, "%s/%s/stat", path, e->d_name) >= (int)sizeof sp)
			continue;
		char *st = mfs_read_file(sp, NULL);
		char *p = st ? strrchr(st, ')') : NULL; /* the name may hold spaces */
		int field = 2, nice = 0;
		for (char *t = p ? strtok(p + 1, " ") : NULL; t; t = strtok(NULL, " "))
			if (++field == 19) {
				nice = atoi(t);
				break;
			}
		if (field == 19)
			*(nice == n ? at : others) += 1;
		free(st);
	}
	closedir(d);
}

#define GENERATIONS 21
#define K 10

struct expect {
	uint64_t events[GENERATIONS];
	mfs_scored top[GENERATIONS][K];
	int n[GENERATIONS];
};

struct hammer {
	mfs_server *s;
	const struct expect *x;
	atomic_int stop;
	uint64_t answers, wrong, newest_seen;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	mfs_scored out[K];
	while (!atomic_load(&h->stop)) {
		const mfs_view *v = mfs_server_acquire(h->s);
		mfs_model_info info;
		mfs_model_info_get(mfs_view_model(v), &info);
		int n = mfs_view_recommend(v, "u1", 2, K, out);
		mfs_server_release(h->s, v);
		int g = -1;
		for (int i = 0; i < GENERATIONS; i++)
			if (h->x->events[i] == info.events)
				g = i;
		int ok = g >= 0 && n == h->x->n[g];
		for (int i = 0; ok && i < n; i++)
			ok = fabsf(out[i].score - h->x->top[g][i].score) <= 1e-5f;
		h->answers++;
		h->wrong += !ok;
		if (info.events > h->newest_seen)
			h->newest_seen = info.events;
	}
	return NULL;
}

/* Four threads query while 20 newer checkpoints land and are swapped in:
 * every answer is the answer of one whole model (its own generation's top-K). */
static void server__refresh_under_concurrent_queries(void **state)
{
	(void)state;
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("ck"));
	mkdir(dir, 0755);
	mfs_config cfg;
	mfs_config_default(&cfg);
	cfg.dim = 16;
	cfg.max_users = 500;
	cfg.max_items = 3000;
	mfs_model *m;
	assert_int_equal(mfs_model_create(&m, &cfg, NULL), 0);
	uint64_t seed = 3;
	static struct expect x;
	mfs_model *gens[GENERATIONS];
	for (int g = 0; g < GENERATIONS; g++) {
		learn_random(m, &seed, 3000, 200, 2000);
		/* a copy of this generation: saved and loaded back */
		const char *p = mfs_test_path("gen.mfs");
		assert_int_equal(mfs_model_save(m, p, NULL, NULL), 0);
		assert_int_equal(mfs_model_load(&gens[g], p, NULL, NULL), 0);
		mfs_model_info info;
		mfs_model_info_get(gens[g], &info);
		x.events[g] = info.events;
		x.n[g] = mfs_model_recommend(gens[g], "u1", 2, K, x.top[g]);
		assert_int_equal(x.n[g], K);
	}
	mfs_model_free(m);
	assert_int_equal(mfs_checkpoint_write(gens[0], dir, NULL, 0, 0, 3, NULL), 0);
	mfs_server *s;
	assert_int_equal(mfs_server_open(&s, dir, NULL, NULL, NULL, NULL), 0);
	struct hammer h[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){ s, &x, 0, 0, 0, 0 };
		atomic_init(&h[i].stop, 0);
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
	}
	struct timespec pause = { 0, 5 * 1000 * 1000 };
	for (int g = 1; g < GENERATIONS; g++) {
		nanosleep(&pause, NULL);
		assert_int_equal(mfs_checkpoint_write(gens[g], dir, NULL, 0, 0, 3, NULL), 0);
		assert_int_equal(mfs_server_refresh(s, NULL), 1);
		assert_int_equal(mfs_server_refresh(s, NULL), 0); /* nothing newer */
	}
	nanosleep(&pause, NULL);
	uint64_t answers = 0;
	for (int i = 0; i < 4; i++) {
		atomic_store(&h[i].stop, 1);
		pthread_join(t[i], NULL);
		answers += h[i].answers;
		assert_int_equal(h[i].wrong, 0);
	}
	assert_true(answers >= 20);
	mfs_server_info si;
	assert_int_equal(mfs_server_info_get(s, &si), 0);
	assert_int_equal(si.refreshes, GENERATIONS - 1);
	assert_int_equal(si.events, x.events[GENERATIONS - 1]);
	assert_int_equal(si.retired_pinned, 0); /* every replaced model was freed */
	mfs_server_free(s);
	for (int g = 0; g < GENERATIONS; g++)
		mfs_model_free(gens[g]);
}

static int skipped;

static void count_skip(void *ctx, const mfs_diag *d)
{
	(void)ctx;
	assert_true(d->path[0] != 0);
	skipped++;
}

/* A damaged newer checkpoint is reported once and ignored: the current model
 * keeps serving; a whole newer one after it is taken. */
static void server__damaged_newer_checkpoint_is_ignored(void **state)
{
	(void)state;
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("ck-bad"));
	mkdir(dir, 0755);
	mfs_config cfg;
	mfs_config_default(&cfg);
	cfg.dim = 8;
	cfg.max_users = 100;
	cfg.max_items = 100;
	mfs_model *m;
	assert_int_equal(mfs_model_create(&m, &cfg, NULL), 0);
	uint64_t seed = 9;
	learn_random(m, &seed, 1000, 50, 80);
	assert_int_equal(mfs_checkpoint_write(m, dir, NULL, 0, 0, 0, NULL), 0);
	mfs_server *s;
	skipped = 0;
	assert_int_equal(mfs_server_open(&s, dir, NULL, count_skip, NULL, NULL), 0);
	learn_random(m, &seed, 1000, 50, 80);
	assert_int_equal(mfs_checkpoint_write(m, dir, NULL, 0, 0, 0, NULL), 0);
	char path[1400];
	snprintf(path, sizeof path, "%s/ckpt-%020d.mfs", dir, 2000);
	size_t n;
	char *b = mfs_read_file(path, &n);
	assert_non_null(b);
	b[n / 2] ^= 0x10;
	mfs_write_file(path, b, n);
	free(b);
	assert_int_equal(mfs_server_refresh(s, NULL), 0);
	assert_int_equal(skipped, 1);
	assert_int_equal(mfs_server_refresh(s, NULL), 0); /* unchanged: not reloaded */
	assert_int_equal(skipped, 1);
	mfs_server_info si;
	mfs_server_info_get(s, &si);
	assert_int_equal(si.events, 1000);
	const mfs_view *v = mfs_server_acquire(s);
	mfs_scored out[5];
	assert_int_equal(mfs_view_recommend(v, "u1", 2, 5, out), 5);
	mfs_server_release(s, v);
	learn_random(m, &seed, 1000, 50, 80);
	assert_int_equal(mfs_checkpoint_write(m, dir, NULL, 0, 0, 0, NULL), 0);
	assert_int_equal(mfs_server_refresh(s, NULL), 1);
	mfs_server_info_get(s, &si);
	assert_int_equal(si.events, 3000);
	mfs_server_free(s);
	mfs_model_free(m);
}

/* --- the commands --------------------------------------------------------- */

static const char *stream_and_model(void)
{
	static char model[1200];
	if (model[0])
		return model;
	const char *stream = mfs_test_path("s.tsv");
	snprintf(model, sizeof model, "%s", mfs_test_path("m.mfs"));
	struct mfs_run r;
	RUN(&r, "gen", "--events", "40000", "--users", "300", "--items", "800", "--ids", "int",
	    "--seed", "5", "--output", stream);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--dim", "16", "--save", model, stream);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	return model;
}

/* --users answers each user as --user does; --exclude drops the pairs;
 * --stats prints the latency line. */
static void recommend__users_exclude_and_stats(void **state)
{
	(void)state;
	const char *model = stream_and_model();
	const char *users = mfs_test_path("users.txt"), *excl = mfs_test_path("excl.txt");
	mfs_write_file(users, "1\n2\n\nnobody\n", 12);
	struct mfs_run r, one;
	RUN(&r, "recommend", "--model", model, "--users", users, "-k", "5", "--stats");
	assert_int_equal(r.status, 0);
	RUN(&one, "recommend", "--model", model, "--user", "2", "-k", "5");
	assert_int_equal(one.status, 0);
	/* user 2's block is --user 2's lines with "2\t" in front */
	char *blk = strstr(r.out, "\n2\t");
	assert_non_null(blk);
	const char *p = one.out;
	blk++;
	for (int i = 0; i < 5; i++) {
		assert_memory_equal(blk, "2\t", 2);
		const char *e = strchr(p, '\n');
		assert_memory_equal(blk + 2, p, (size_t)(e - p + 1));
		blk += 2 + (e - p + 1);
		p = e + 1;
	}
	assert_true(strstr(r.out, "nobody\t") != NULL);
	assert_true(strstr(r.err, "1 users are not in the model") != NULL);
	assert_float_equal(mfs_json_number(r.err, "queries"), 3, 0);
	assert_true(mfs_json_number(r.err, "p99_us") > 0);
	/* exclude user 2's first two items (and a malformed line) */
	char first[64], second[64];
	sscanf(one.out, "%63s %*s %63s", first, second);
	char buf[256];
	int n = snprintf(buf, sizeof buf, "2\t%s\nbroken\n2 %s\n", first, second);
	mfs_write_file(excl, buf, (size_t)n);
	mfs_run_free(&r);
	RUN(&r, "recommend", "--model", model, "--user", "2", "-k", "3", "--exclude", excl);
	assert_int_equal(r.status, 0);
	assert_true(strstr(r.err, ":2: expected \"user item\"") != NULL);
	/* the first line of the answer is the third of the unexcluded one */
	const char *third = strchr(strchr(one.out, '\n') + 1, '\n') + 1;
	assert_memory_equal(r.out, third, (size_t)(strchr(third, '\n') - third + 1));
	mfs_run_free(&r);
	mfs_run_free(&one);
	RUN(&r, "recommend", "--model", model, "--user", "2", "--users", users);
	assert_int_equal(r.status, 2);
	mfs_run_free(&r);
}

/* serve on standard input: one JSON answer per line, errors named by line. */
static void serve__answers_lines_on_stdin(void **state)
{
	(void)state;
	const char *model = stream_and_model();
	static const char q[] = "recommend 1 3\nsimilar 5 2\npredict 1 5\ninfo\n\nfly me\n"
				"recommend 1 0\nrecommend \xff\x01\xc3 2\n";
	char *argv[] = { MFS_CLI, "serve", "--model", (char *)model, NULL };
	struct mfs_run r;
	assert_int_equal(mfs_run_argv(&r, argv, q, sizeof q - 1), 0);
	assert_int_equal(r.status, 0);
	int lines = 0;
	for (const char *p = r.out; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	assert_int_equal(lines, 7);
	assert_true(strstr(r.out, "{\"op\": \"recommend\", \"user\": \"1\", \"known\": true") !=
		    NULL);
	/* an ID of invalid UTF-8 and a control byte is echoed as valid JSON */
	assert_true(strstr(r.out, "\"user\": \"\xef\xbf\xbd\\u0001\xef\xbf\xbd\", \"known\": false") !=
		    NULL);
	assert_true(strstr(r.out, "\"op\": \"similar\"") != NULL);
	assert_true(strstr(r.out, "\"op\": \"predict\"") != NULL);
	assert_true(strstr(r.out, "\"op\": \"info\", \"model_events\": 40000") != NULL);
	assert_true(strstr(r.out, "\"line\": 6}") != NULL);
	assert_true(strstr(r.out, "\"line\": 7}") != NULL);
	assert_float_equal(mfs_json_number(r.err, "answers"), 7, 0);
	mfs_run_free(&r);
}

/* The items user u rated in a tsv file, as "\nI1\nI2\n...\n"; *n: u's events. */
static char *rated_by(const char *path, const char *u, int *n)
{
	char *data = mfs_read_file(path, NULL);
	assert_non_null(data);
	size_t cap = 1 << 16, o = 1;
	char *set = calloc(1, cap);
	set[0] = '\n';
	*n = 0;
	for (char *l = strtok(data, "\n"); l; l = strtok(NULL, "\n")) {
		char uu[32], i[32], key[40];
		if (sscanf(l, "%31[^\t]\t%31[^\t]", uu, i) != 2 || strcmp(uu, u) != 0)
			continue;
		snprintf(key, sizeof key, "\n%s\n", i);
		(*n)++;
		if (strstr(set, key) || o + 40 >= cap)
			continue;
		o += (size_t)snprintf(set + o, cap - o, "%s\n", i);
	}
	free(data);
	return set;
}

/* How many items of serve's recommend answers to users 1..8 were rated by
 * them (users with more events than the history holds are not asked). */
static int serve_rated_answers(const char *model, int include_seen, int *items)
{
	const char *stream = mfs_test_path("s.tsv");
	char q[256];
	char *sets[9] = { 0 };
	size_t o = 0;
	for (int u = 1; u <= 8; u++) {
		char id[16];
		int n;
		snprintf(id, sizeof id, "%d", u);
		sets[u] = rated_by(stream, id, &n);
		if (n <= 128)
			o += (size_t)snprintf(q + o, sizeof q - o, "recommend %d 10\n", u);
	}
	char *argv[] = { MFS_CLI, "serve", "--model", (char *)model,
			 include_seen ? "--include-seen" : NULL, NULL };
	struct mfs_run r;
	assert_int_equal(mfs_run_argv(&r, argv, q, o), 0);
	assert_int_equal(r.status, 0);
	int rated = 0;
	*items = 0;
	for (char *l = strtok(r.out, "\n"); l; l = strtok(NULL, "\n")) {
		int u;
		assert_int_equal(sscanf(l, "{\"op\": \"recommend\", \"user\": \"%d\"", &u), 1);
		for (char *p = strstr(l, "{\"item\": \""); p; p = strstr(p + 1, "{\"item\": \"")) {
			char key[40];
			snprintf(key, sizeof key, "\n%.*s\n", (int)strcspn(p + 10, "\""), p + 10);
			rated += strstr(sets[u], key) != NULL;
			(*items)++;
		}
	}
	mfs_run_free(&r);
	for (int u = 1; u <= 8; u++)
		free(sets[u]);
	return rated;
}

/* serve's "recommend USER K" leaves out what USER rated; --include-seen keeps it. */
static void serve__recommend_leaves_out_the_users_history(void **state)
{
	(void)state;
	const char *model = stream_and_model();
	int items;
	assert_int_equal(serve_rated_answers(model, 0, &items), 0);
	assert_true(items >= 40); /* at least 4 users answered, 10 items each */
	int kept = serve_rated_answers(model, 1, &items);
	print_message("serve --include-seen: %d of %d answers were rated\n", kept, items);
	assert_true(kept > 0);
}

/* predict, recommend --users and serve's standard input take lines up to
 * 1 MiB: a longer one is reported by file:line and skipped, memory stays
 * bounded; a TSV user ID holding ',' is one field. */
static void query_lines__bounded_and_tsv_ids_keep_commas(void **state)
{
	(void)state;
	const char *model = stream_and_model();
	size_t big = (2u << 20) + 5;
	char *in = malloc(big + 64);
	assert_non_null(in);
	int l = snprintf(in, 64, "1\t5\n");
	memset(in + l, 'x', big);
	l += (int)big;
	l += snprintf(in + l, 64, " 5\n1,2\t5\n");
	char *argv[] = { MFS_CLI, "predict", "--model", (char *)model, NULL };
	struct mfs_run r;
	assert_int_equal(mfs_run_argv(&r, argv, in, (size_t)l), 0);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "-:2: line longer than 1 MiB"));
	assert_true(strncmp(r.out, "1\t5\t", 4) == 0);
	assert_non_null(strstr(r.out, "\n1,2\t5\t")); /* not "1" and "2" */
	assert_null(strstr(r.out, "xxxx"));
	mfs_run_free(&r);
	/* recommend --users: the same line as a user ID */
	l = snprintf(in, 64, "1\n");
	memset(in + l, 'y', big);
	l += (int)big;
	l += snprintf(in + l, 64, "\n2\n");
	char *argv2[] = { MFS_CLI, "recommend", "--model", (char *)model, "--users", "-", "-k", "1", NULL };
	assert_int_equal(mfs_run_argv(&r, argv2, in, (size_t)l), 0);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "-:2: line longer than 1 MiB"));
	assert_true(strncmp(r.out, "1\t", 2) == 0);
	assert_non_null(strstr(r.out, "\n2\t"));
	assert_null(strstr(r.out, "yyyy"));
	mfs_run_free(&r);
	/* serve on standard input: an error answer for that line, then on */
	l = snprintf(in, 64, "recommend ");
	memset(in + l, 'z', big);
	l += (int)big;
	l += snprintf(in + l, 64, "\ninfo\n");
	char *argv3[] = { MFS_CLI, "serve", "--model", (char *)model, NULL };
	assert_int_equal(mfs_run_argv(&r, argv3, in, (size_t)l), 0);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "{\"error\": \"line longer than 1 MiB; skipped\", \"line\": 1}\n"));
	assert_non_null(strstr(r.out, "\"op\": \"info\""));
	mfs_run_free(&r);
	free(in);
}

/* GET target over a keep-alive connection; returns the body (static buffer). */
static const char *ask(int fd, const char *target)
{
	static char body[65536];
	struct mfs_http_answer an;
	assert_int_equal(mfs_http_ask(fd, "GET", target, NULL, 0, &an), 0);
	assert_int_equal(an.status, 200);
	snprintf(body, sizeof body, "%s", an.body);
	mfs_http_answer_free(&an);
	return body;
}

/* serve --socket on a checkpoint directory: HTTP answers on the socket (mode
 * 0600 whatever the umask), and a checkpoint written by train while it runs
 * is picked up (inotify). */
static void serve__socket_and_refresh_from_train(void **state)
{
	(void)state;
	const char *stream = mfs_test_path("s2.tsv"), *more = mfs_test_path("s3.tsv");
	char dir[1200], sock[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("serve-ck"));
	/* a socket path has at most 107 bytes: keep it short */
	snprintf(sock, sizeof sock, "/tmp/mfs-test-serve-%d.sock", (int)getpid());
	struct mfs_run r;
	RUN(&r, "gen", "--events", "20000", "--users", "300", "--items", "500", "--seed", "6",
	    "--output", stream);
	mfs_run_free(&r);
	RUN(&r, "gen", "--events", "20000", "--users", "300", "--items", "500", "--seed", "7",
	    "--output", more);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--dim", "8", "--checkpoint-dir", dir, "--checkpoint-every",
	    "20000", stream);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		freopen("/dev/null", "w", stdout);
		freopen(mfs_test_path("serve.err"), "w", stderr);
		umask(0); /* the socket's mode must not follow it */
		execl(MFS_CLI, MFS_CLI, "serve", "--model", dir, "--socket", sock, "--no-stdin",
		      "--poll-ms", "200", (char *)NULL);
		_exit(127);
	}
	int fd = mfs_connect_unix(sock);
	assert_true(fd >= 0);
	struct stat sb;
	assert_int_equal(stat(sock, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* the refresh thread alone runs at nice 19 (--refresh-nice's default),
	 * once it has started (the socket may be up before it is) */
	errno = 0;
	int own = getpriority(PRIO_PROCESS, 0);
	if (errno == 0 && own < 19) {
		int at19 = 0, others = 0;
		for (int i = 0; i < 200 && at19 != 1; i++) {
			usleep(10000);
			threads_by_nice(pid, 19, &at19, &others);
		}
		if (at19 != 1 || others < 2)
			kill(pid, SIGTERM); /* not left running by a failed test */
		assert_int_equal(at19, 1);
		assert_true(others >= 2); /* the main thread and the HTTP pool keep theirs */
	}
	const char *a = ask(fd, "/v1/info");
	assert_float_equal(mfs_json_number(a, "model_events"), 20000, 0);
	a = ask(fd, "/v1/recommend?user=nobody%20at%20all&k=4");
	assert_true(strstr(a, "\"known\": false") != NULL);
	assert_true(strstr(a, "\"user\": \"nobody at all\"") != NULL);
	/* the learner resumes from the checkpoint and writes a newer one */
	RUN(&r, "train", "--quiet", "--dim", "8", "--checkpoint-dir", dir, "--checkpoint-every",
	    "20000", stream, more);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	double ev = 0;
	for (int i = 0; i < 500 && ev != 40000; i++) {
		usleep(20000);
		ev = mfs_json_number(ask(fd, "/v1/info"), "model_events");
	}
	assert_float_equal(ev, 40000, 0);
	a = ask(fd, "/v1/recommend?user=1&k=2");
	assert_float_equal(mfs_json_number(a, "model_events"), 40000, 0);
	close(fd);
	kill(pid, SIGTERM);
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_true(stat(sock, &sb) < 0); /* the socket is removed */
	char *err = mfs_read_file(mfs_test_path("serve.err"), NULL);
	assert_non_null(err);
	assert_true(strstr(err, "\"refresh\": 1") != NULL);
	assert_true(strstr(err, "\"lag_ms\"") != NULL);
	free(err);
}

/* mfs_json_quote: the escaping every JSON answer uses, with snprintf's contract. */
static void json_quote__escapes_and_truncates_as_snprintf(void **state)
{
	(void)state;
	char out[64];
	const char in[] = "a\"b\\c\x01\xff\xc3\xa9";
	const char want[] = "\"a\\\"b\\\\c\\u0001\xef\xbf\xbd\xc3\xa9\"";
	size_t need = mfs_json_quote(out, sizeof out, in, sizeof in - 1);
	assert_int_equal(need, strlen(want));
	assert_string_equal(out, want);
	/* too small: the length is still the whole one, the output cut and terminated */
	char small[5];
	assert_int_equal(mfs_json_quote(small, sizeof small, in, sizeof in - 1), strlen(want));
	assert_string_equal(small, "\"a\\\"");
	assert_int_equal(mfs_json_quote(NULL, 0, "", 0), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_quote__escapes_and_truncates_as_snprintf),
		cmocka_unit_test(view__topk_equals_brute_force),
		cmocka_unit_test(view__bias_order_pruning_stays_exact),
		cmocka_unit_test(server__refresh_under_concurrent_queries),
		cmocka_unit_test(server__damaged_newer_checkpoint_is_ignored),
		cmocka_unit_test(recommend__users_exclude_and_stats),
		cmocka_unit_test(serve__answers_lines_on_stdin),
		cmocka_unit_test(serve__recommend_leaves_out_the_users_history),
		cmocka_unit_test(query_lines__bounded_and_tsv_ids_keep_commas),
		cmocka_unit_test(serve__socket_and_refresh_from_train),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
