/*
 * checkpointer.c - periodic checkpoints that do not stall learning (the
 * public mfs_checkpointer): a whole checkpoint every period and a delta
 * every shorter one, written by a forked child (copy-on-write, as Redis's
 * BGSAVE) while the parent learns on; the directory lock; the regroup of
 * huge pages after a writer exits; resume; a whole checkpoint now (a
 * rebalance, the end of a run); publishing and offset commits after each.
 * The only pause is the fork itself.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct mfs_checkpointer {
	char *dir;
	mfs_lock *lock;
	int stale; /* temporary files of dead writers removed at open */
	/* settings (mfs_checkpointer_set) */
	uint64_t every_events, every_ms, delta_events, delta_ms;
	unsigned keep;
	int compress, stop_on_error, may_fork;
	mfs_bad_record_fn on_error;
	void *ctx;
	mfs_publisher *pub;      /* not owned */
	mfs_source *commit_src;  /* not owned */
	/* the cadence */
	pid_t pid;                /* the child writing, or -1 */
	double last_t;            /* when the last whole one started */
	uint64_t last_events;
	double last_any_t;        /* when the last one of either kind started */
	uint64_t last_any_events, last_model_events;
	int need_full;            /* no checkpoint to apply a delta on */
	int abort;                /* stop_on_error, and one failed */
	int pending_full;         /* the child's file is whole */
	uint64_t pending_events;  /* model events of the state the child holds */
	char *cpos;               /* the child's position, committed once it is reaped */
	size_t cpos_len;
	mfs_checkpointer_stats st;
	/* huge pages back after a writer exits, on a thread */
	mfs_model *m;         /* the model of the last call (the caller's thread only) */
	mfs_model *regroup_m; /* what the regroup thread works on, set before it starts */
	pthread_t regroup;
	int regrouping, regroup_off, regroup_done;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A failure or a warning, through the caller's function. */
static void say(const mfs_checkpointer *c, const mfs_diag *d)
{
	if (c->on_error)
		c->on_error(c->ctx, d);
}

/*
 * Whether the periodic writer may be a forked child. Not in an AddressSanitizer
 * build while librdkafka's threads run (a Kafka source or a publisher): that
 * allocator (GCC 12's libasan) has no fork handlers, so a child forked while
 * another thread holds its lock deadlocks in its first malloc, and the learner
 * then waits for it forever. glibc's malloc takes its locks around fork, so a
 * release build forks always. Such builds write in the foreground instead.
 */
static int may_fork(const mfs_checkpointer *c)
{
	if (!c->may_fork)
		return 0;
#if defined(__SANITIZE_ADDRESS__)
	return !c->commit_src && !c->pub;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return !c->commit_src && !c->pub;
#endif
#endif
	return 1;
}

MFS_API int mfs_checkpointer_open(mfs_checkpointer **out, const char *dir, mfs_diag *diag)
{
	if (!out || !dir || !*dir)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no checkpoint directory");
	struct stat sb;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return mfs_diag_set(diag, MFS_E_IO, errno, dir, 0, 0, "cannot create it: %s",
				    strerror(errno));
	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return mfs_diag_set(diag, MFS_E_IO, errno ? errno : ENOTDIR, dir, 0, 0, "%s",
				    errno ? strerror(errno) : "not a directory");
	if (access(dir, W_OK | X_OK) < 0)
		return mfs_diag_set(diag, MFS_E_IO, errno, dir, 0, 0, "cannot write in it: %s",
				    strerror(errno));
	mfs_checkpointer *c = calloc(1, sizeof *c);
	if (!c || !(c->dir = strdup(dir))) {
		free(c);
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, dir, 0, 0, "out of memory");
	}
	int stale = mfs_checkpoint_lock(&c->lock, dir, diag);
	if (stale < 0) {
		free(c->dir);
		free(c);
		return stale;
	}
	c->stale = stale;
	c->every_ms = 30000;
	c->keep = 3;
	c->may_fork = 1;
	c->pid = -1;
	c->need_full = 1;
	c->last_t = c->last_any_t = now_s();
	*out = c;
	return stale;
}

MFS_API int mfs_checkpointer_set(mfs_checkpointer *c, mfs_checkpointer_param p, int64_t v)
{
	if (!c || v < 0)
		return -MFS_E_INVAL;
	switch (p) {
	case MFS_CKPT_EVERY_EVENTS:
		c->every_events = (uint64_t)v;
		break;
	case MFS_CKPT_EVERY_MS:
		c->every_ms = (uint64_t)v;
		break;
	case MFS_CKPT_DELTA_EVENTS:
		c->delta_events = (uint64_t)v;
		break;
	case MFS_CKPT_DELTA_MS:
		c->delta_ms = (uint64_t)v;
		break;
	case MFS_CKPT_KEEP:
		if (v > 1000000)
			return -MFS_E_INVAL;
		c->keep = (unsigned)v;
		break;
	case MFS_CKPT_COMPRESS:
		if (v > 19)
			return -MFS_E_INVAL;
		c->compress = (int)v;
		break;
	case MFS_CKPT_STOP_ON_ERROR:
		c->stop_on_error = v != 0;
		break;
	case MFS_CKPT_FORK:
		c->may_fork = v != 0;
		break;
	default:
		return -MFS_E_INVAL;
	}
	return 0;
}

MFS_API uint64_t mfs_checkpointer_align(const mfs_checkpointer *c)
{
	if (!c)
		return 0;
	uint64_t a = c->every_events, b = c->delta_events;
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

MFS_API void mfs_checkpointer_on_error(mfs_checkpointer *c, mfs_bad_record_fn fn, void *ctx)
{
	if (c) {
		c->on_error = fn;
		c->ctx = ctx;
	}
}

MFS_API void mfs_checkpointer_set_publisher(mfs_checkpointer *c, mfs_publisher *p)
{
	if (c)
		c->pub = p;
}

MFS_API void mfs_checkpointer_set_commit(mfs_checkpointer *c, mfs_source *src)
{
	if (c)
		c->commit_src = src;
}

MFS_API int mfs_checkpointer_load(mfs_checkpointer *c, mfs_model **out, const char *kernel,
				  mfs_bad_record_fn on_skip, void *ctx, char *path,
				  size_t path_len, mfs_diag *diag)
{
	if (!c || !out)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no checkpointer");
	int rc = mfs_checkpoint_load_newest(out, c->dir, kernel, on_skip, ctx, path, path_len, diag);
	if (rc == 0) {
		mfs_model_info mi;
		mfs_model_info_get(*out, &mi);
		c->need_full = 0; /* deltas may go on the chain it was loaded from */
		c->st.saved_events = mi.events;
		c->st.resumed = 1;
	}
	return rc;
}

/* Produce the checkpoint of events just written (whole or a delta) to the
 * model topic. A failure is said and counted; the checkpoint stands. */
static void publish(mfs_checkpointer *c, int full, uint64_t events)
{
	if (!c->pub)
		return;
	char path[4096];
	snprintf(path, sizeof path, "%s/ckpt-%020llu%s", c->dir, (unsigned long long)events,
		 full ? ".mfs" : ".delta");
	mfs_diag d;
	if (mfs_publisher_send(c->pub, path, full, events, &d) < 0) {
		char buf[1024];
		mfs_diag_format(&d, buf, sizeof buf);
		mfs_diag_report(c->on_error, c->ctx, MFS_E_IO, c->dir, 0,
				"warning: publishing %s failed: %s (the checkpoint stands; the "
				"next one published is whole)",
				path, buf);
	}
}

static void *regroup_main(void *arg)
{
	mfs_checkpointer *c = arg;
	if (mfs_model_regroup_pages(c->regroup_m) == -MFS_E_UNSUPPORTED)
		c->regroup_off = 1; /* an old kernel: forks stay slower, nothing breaks */
	__atomic_store_n(&c->regroup_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Wait for the regrouping thread (wait = 0: only if it has finished). */
static void regroup_join(mfs_checkpointer *c, int wait)
{
	if (c->regrouping && (wait || __atomic_load_n(&c->regroup_done, __ATOMIC_ACQUIRE))) {
		pthread_join(c->regroup, NULL);
		c->regrouping = 0;
	}
}

static char *position_blob(mfs_source *src, size_t *len)
{
	int n = src ? mfs_source_position(src, NULL, 0) : 0;
	char *b = n > 0 ? malloc((size_t)n) : NULL;
	if (!b || mfs_source_position(src, b, (size_t)n) != n) {
		free(b);
		*len = 0;
		return NULL;
	}
	*len = (size_t)n;
	return b;
}

/* Reap the writer if it has finished (or wait for it). */
static void reap(mfs_checkpointer *c, int wait)
{
	if (c->pid <= 0)
		return;
	int status;
	pid_t r;
	while ((r = waitpid(c->pid, &status, wait ? 0 : WNOHANG)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return;
	if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		c->st.failed++; /* the child said why; the previous checkpoints stand */
		c->need_full = 1;
		c->abort |= c->stop_on_error;
	} else {
		c->st.saved_events = c->pending_events;
		if (c->commit_src && c->cpos)
			mfs_source_commit(c->commit_src, c->cpos, c->cpos_len, NULL);
		publish(c, c->pending_full, c->pending_events);
	}
	c->pid = -1;
	/* The child no longer shares the tables: merge the pages that the kernel
	 * split while it did, so that the next fork copies few page-table entries. */
	regroup_join(c, 0);
	if (!wait && c->m && !c->regrouping && !c->regroup_off) {
		c->regroup_done = 0;
		c->regroup_m = c->m;
		c->regrouping = pthread_create(&c->regroup, NULL, regroup_main, c) == 0;
	}
}

/* One checkpoint (whole or delta) written here, counted and committed as the
 * reaper does for a child's. Returns 0, or -1 (said, counted). */
static int write_here(mfs_checkpointer *c, mfs_model *m, const char *pos, size_t len, int full,
		      uint64_t events)
{
	mfs_diag d;
	c->st.started++;
	c->st.deltas += !full;
	int rc = full ? mfs_checkpoint_write(m, c->dir, pos, len, c->compress, c->keep, &d)
		      : mfs_checkpoint_write_delta(m, c->dir, pos, len, c->compress, c->keep, &d);
	if (rc < 0) {
		say(c, &d);
		c->st.failed++;
		c->abort |= c->stop_on_error;
		return -1;
	}
	c->st.saved_events = events;
	if (c->commit_src && pos)
		mfs_source_commit(c->commit_src, pos, len, NULL);
	publish(c, full, events);
	return 0;
}

/* A whole checkpoint here, of the source's present position. */
static int write_now(mfs_checkpointer *c, mfs_model *m, mfs_source *src)
{
	size_t len;
	char *pos = position_blob(src, &len);
	mfs_model_info mi;
	mfs_model_info_get(m, &mi);
	int rc = write_here(c, m, pos, len, 1, mi.events);
	free(pos);
	return rc;
}

/* Whether a period has come: by events, a multiple of every crossed since last. */
static int period_due(uint64_t every, uint64_t every_ms, uint64_t events, uint64_t last,
		      double now, double last_t)
{
	if (every)
		return events / every > last / every;
	return every_ms > 0 && (now - last_t) * 1000.0 >= (double)every_ms;
}

MFS_API int mfs_checkpointer_tick(mfs_checkpointer *c, mfs_model *m, mfs_source *src,
				  uint64_t events)
{
	if (!c || !m)
		return -MFS_E_INVAL;
	c->m = m;
	reap(c, 0);
	regroup_join(c, 0);
	mfs_publisher_poll(c->pub);
	double now = now_s();
	int full = period_due(c->every_events, c->every_ms, events, c->last_events, now, c->last_t);
	int delta = period_due(c->delta_events, c->delta_ms, events, c->last_any_events, now,
			       c->last_any_t);
	mfs_model_info mi;
	mfs_model_info_get(m, &mi);
	if (!full && delta && c->need_full)
		full = 1; /* no base for a delta yet, or the last write failed */
	if (!full && delta && mfs_publisher_want_full(c->pub))
		full = 1; /* the model topic needs a whole snapshot (full-every, a loss) */
	if ((!full && !delta) || (mi.events == c->last_model_events && !c->need_full))
		return c->abort ? -MFS_E_IO : 0; /* not yet, or nothing new (one name per state) */
	if (c->pid > 0 || c->regrouping) {
		/* due while the last writer (or its page merge) is busy: wait for it */
		reap(c, 1);
		regroup_join(c, 1);
		double t = now_s();
		c->st.wait_ms += (t - now) * 1000.0;
		now = t;
		if (c->need_full)
			full = 1; /* it failed: no base for a delta */
	}
	size_t len;
	char *pos = position_blob(src, &len);
	fflush(stdout);
	fflush(stderr);
	pid_t pid = may_fork(c) ? fork() : -2;
	if (pid == 0) {
		/* the child finishes its file whatever the parent is told */
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		mfs_diag d;
		int rc = full ? mfs_checkpoint_write(m, c->dir, pos, len, c->compress, c->keep, &d)
			      : mfs_checkpoint_write_delta(m, c->dir, pos, len, c->compress, c->keep,
							   &d);
		if (rc < 0)
			say(c, &d);
		_exit(rc < 0 ? 1 : 0);
	}
	int here_failed = 0;
	if (pid == -2) {
		here_failed = write_here(c, m, pos, len, full, mi.events) < 0;
		free(pos);
		pos = NULL;
	}
	if (c->commit_src && pid > 0) {
		free(c->cpos); /* committed when the child is reaped */
		c->cpos = pos;
		c->cpos_len = len;
		pos = NULL;
	}
	free(pos);
	if (pid == -1) {
		/* no fork (out of processes or memory): write it here, and say so */
		mfs_diag_report(c->on_error, c->ctx, MFS_E_NOMEM, c->dir, 0,
				"warning: fork failed (%s); writing the checkpoint in the "
				"foreground",
				strerror(errno));
		write_now(c, m, src);
		full = 1;
	} else if (pid > 0) {
		c->pid = pid;
		c->pending_full = full;
		c->st.started++;
		c->st.deltas += !full;
		c->pending_events = mi.events;
	}
	/* the child holds this state: the next delta holds what is learned from now on */
	mfs_checkpoint_mark(m);
	double stall = (now_s() - now) * 1000.0;
	if (stall > c->st.stall_ms_max)
		c->st.stall_ms_max = stall;
	if (full) {
		c->last_t = now;
		c->last_events = events;
		c->need_full = 0;
	}
	c->last_any_t = now;
	c->last_any_events = events;
	c->last_model_events = mi.events;
	if (here_failed)
		c->need_full = 1; /* no base for a delta */
	return c->abort ? -MFS_E_IO : 0;
}

MFS_API int mfs_checkpointer_now(mfs_checkpointer *c, mfs_model *m, mfs_source *src)
{
	if (!c || !m)
		return -MFS_E_INVAL;
	c->m = m;
	reap(c, 1);
	regroup_join(c, 1);
	int rc = write_now(c, m, src);
	mfs_checkpoint_mark(m);
	mfs_model_info mi;
	mfs_model_info_get(m, &mi);
	c->last_model_events = mi.events;
	c->need_full = rc < 0;
	return rc < 0 ? -MFS_E_IO : 0;
}

MFS_API int mfs_checkpointer_finish(mfs_checkpointer *c, mfs_model *m, mfs_source *src,
				    uint64_t *unsaved)
{
	if (unsaved)
		*unsaved = 0;
	if (!c || !m)
		return -MFS_E_INVAL;
	c->m = m;
	reap(c, 1);
	regroup_join(c, 1);
	double t0 = now_s();
	mfs_model_info mi;
	mfs_model_info_get(m, &mi);
	int rc = 0;
	if (c->need_full || c->st.started == 0 || mi.events != c->last_model_events)
		rc = write_now(c, m, src); /* else the last periodic one holds this state */
	c->st.final_ms = (now_s() - t0) * 1000.0;
	if (rc < 0) {
		if (unsaved)
			*unsaved = mi.events - c->st.saved_events;
		return -MFS_E_IO;
	}
	c->last_model_events = mi.events;
	return 0;
}

MFS_API void mfs_checkpointer_stats_get(const mfs_checkpointer *c, mfs_checkpointer_stats *st)
{
	if (!c || !st)
		return;
	*st = c->st;
	st->written = c->st.started - c->st.failed;
	st->stale_removed = (uint64_t)c->stale;
}

MFS_API void mfs_checkpointer_free(mfs_checkpointer *c)
{
	if (!c)
		return;
	regroup_join(c, 1);
	mfs_checkpoint_unlock(c->lock); /* a writer still running keeps it until it exits */
	free(c->cpos);
	free(c->dir);
	free(c);
}
