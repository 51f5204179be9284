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
#include "serve_internal.h"
#include "publish.h"

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
	if (rc >= 0 && mfs_qindex_build(&sn->ix, sn->m) < 0)
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
	if (mfs_qindex_build(&sn->ix, sn->m) < 0) {
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
	if (sn && mfs_qindex_build(&sn->ix, m) < 0) {
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
		mfs_qindex_free(&old_free->ix);
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
		mfs_qindex_free(&dead->ix);
		mfs_model_free(dead->m);
		free(dead);
	}
}

MFS_API const mfs_model *mfs_view_model(const mfs_view *v)
{
	return v ? v->m : NULL;
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
		mfs_qindex_free(&sn->ix);
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

