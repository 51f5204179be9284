/*
 * checkpoint.c - a directory of model files named by the events they hold:
 * write one atomically (mfs_model_save) or a delta of the rows changed since
 * the last (mfs_model_save_delta), keep the newest few whole ones and their
 * deltas, and find the newest state that loads: a whole one and its chain.
 * The directory's lock (one learner per directory) lives here too: a flock
 * on DIR/LOCK, and the removal of temporary files that dead writers left.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model_internal.h"

#define CKPT_PREFIX "ckpt-"
#define CKPT_SUFFIX ".mfs"
#define DELTA_SUFFIX ".delta" /* sorts before ".mfs": a whole file of the same state wins */

#define LOCK_NAME "LOCK"
/* How long mfs_checkpoint_lock waits for the writer of a learner that died. */
#define ORPHAN_WAIT_MS 30000

struct mfs_lock {
	int fd;
};

/* The pid recorded in an open lock file (0 when empty or unreadable). */
static long lock_holder(int fd)
{
	char b[32];
	ssize_t n = pread(fd, b, sizeof b - 1, 0);
	if (n <= 0)
		return 0;
	b[n] = 0;
	char *end;
	long pid = strtol(b, &end, 10);
	return end != b && pid > 0 ? pid : 0;
}

/* A temporary file of mfs_model_save for a checkpoint: ".ckpt-<...>.tmp.XXXXXX". */
static int is_ckpt_temp(const char *n)
{
	return n[0] == '.' && strncmp(n + 1, CKPT_PREFIX, strlen(CKPT_PREFIX)) == 0 &&
	       strstr(n, ".tmp.") != NULL;
}

/* Remove the temporary files in dir (the caller holds its lock: their writers are dead). */
static int remove_temps(const char *dir, mfs_diag *diag)
{
	DIR *dp = opendir(dir);
	if (!dp) {
		int e = errno;
		return mfs_diag_set(diag, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, dir, 0, 0,
				    "cannot read checkpoint directory: %s", strerror(e));
	}
	int removed = 0;
	struct dirent *e;
	while ((e = readdir(dp)) != NULL)
		if (is_ckpt_temp(e->d_name) && unlinkat(dirfd(dp), e->d_name, 0) == 0)
			removed++;
	closedir(dp);
	return removed;
}

MFS_API int mfs_checkpoint_lock(mfs_lock **out, const char *dir, mfs_diag *diag)
{
	if (!out || !dir || !*dir)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, dir, 0, 0, "no directory");
	char path[4096];
	int l = snprintf(path, sizeof path, "%s/" LOCK_NAME, dir);
	if (l < 0 || (size_t)l >= sizeof path)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, dir, 0, 0, "path too long");
	struct mfs_lock *lk = malloc(sizeof *lk);
	if (!lk)
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, dir, 0, 0, "out of memory");
	int rc;
	/* O_CLOEXEC: a program the learner runs does not hold the directory */
	lk->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (lk->fd < 0) {
		int e = errno;
		rc = mfs_diag_set(diag, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, path, 0, 0,
				  "cannot open the checkpoint directory's lock: %s", strerror(e));
		goto fail;
	}
	for (int waited = 0;; waited += 10) {
		if (flock(lk->fd, LOCK_EX | LOCK_NB) == 0)
			break;
		int e = errno;
		if (e == EINTR)
			continue;
		if (e != EWOULDBLOCK) {
			rc = mfs_diag_set(diag, MFS_E_IO, e, path, 0, 0,
					  "cannot lock the checkpoint directory: %s", strerror(e));
			goto fail;
		}
		/* Held. By a live learner: refused. By the checkpoint writer of a
		 * learner that died (its child inherited the lock): wait for it. */
		long pid = lock_holder(lk->fd);
		int dead = pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
		if (!dead || waited >= ORPHAN_WAIT_MS) {
			if (pid == 0)
				rc = mfs_diag_set(diag, MFS_E_BUSY, 0, dir, 0, 0,
						  "another learner holds this checkpoint directory "
						  "(its pid is not recorded yet)");
			else if (!dead)
				rc = mfs_diag_set(diag, MFS_E_BUSY, 0, dir, 0, 0,
						  "another learner (pid %ld) holds this checkpoint "
						  "directory; one learner per directory",
						  pid);
			else
				rc = mfs_diag_set(diag, MFS_E_BUSY, 0, dir, 0, 0,
						  "a checkpoint writer of learner pid %ld (which has "
						  "exited) still holds this directory after %d s",
						  pid, ORPHAN_WAIT_MS / 1000);
			goto fail;
		}
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	/* Ours: record the pid for the message of a learner that comes next. */
	char b[32];
	int n = snprintf(b, sizeof b, "%ld\n", (long)getpid());
	if (ftruncate(lk->fd, 0) < 0 || pwrite(lk->fd, b, (size_t)n, 0) != n) {
		int e = errno;
		rc = mfs_diag_set(diag, MFS_E_IO, e, path, 0, 0,
				  "cannot write the checkpoint directory's lock: %s", strerror(e));
		goto fail;
	}
	rc = remove_temps(dir, diag);
	if (rc < 0)
		goto fail;
	*out = lk;
	return rc;
fail:
	if (lk->fd >= 0)
		close(lk->fd); /* the last descriptor: the flock, if taken, goes with it */
	free(lk);
	return rc;
}

MFS_API void mfs_checkpoint_unlock(mfs_lock *lock)
{
	if (!lock)
		return;
	/* close, never LOCK_UN: an unlock would release a forked writer's hold too */
	close(lock->fd);
	free(lock);
}

static int has_suffix(const char *n, const char *suf)
{
	size_t l = strlen(n), pl = strlen(CKPT_PREFIX), sl = strlen(suf);
	return l > pl + sl && strncmp(n, CKPT_PREFIX, pl) == 0 && strcmp(n + l - sl, suf) == 0;
}

static int is_delta_name(const char *n)
{
	return has_suffix(n, DELTA_SUFFIX);
}

static int is_ckpt_name(const char *n)
{
	return has_suffix(n, CKPT_SUFFIX) || is_delta_name(n);
}

static int cmp_desc(const void *a, const void *b)
{
	return strcmp(*(const char *const *)b, *(const char *const *)a);
}

/* The checkpoint names in dir, newest first (names sort by their event count). */
static int list_ckpts(const char *dir, char ***out, size_t *n, mfs_diag *d)
{
	DIR *dp = opendir(dir);
	if (!dp) {
		int e = errno;
		return mfs_diag_set(d, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, dir, 0, 0,
				    "cannot read checkpoint directory: %s", strerror(e));
	}
	char **names = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(dp)) != NULL) {
		if (!is_ckpt_name(e->d_name))
			continue;
		if (cnt == cap) {
			cap = cap ? 2 * cap : 16;
			char **nn = realloc(names, cap * sizeof *nn);
			if (!nn) {
				rc = -MFS_E_NOMEM;
				break;
			}
			names = nn;
		}
		if (!(names[cnt] = strdup(e->d_name))) {
			rc = -MFS_E_NOMEM;
			break;
		}
		cnt++;
	}
	closedir(dp);
	if (cnt > 1)
		qsort(names, cnt, sizeof *names, cmp_desc);
	*out = names;
	*n = cnt;
	if (rc < 0)
		mfs_diag_set(d, MFS_E_NOMEM, 0, dir, 0, 0, "out of memory");
	return rc;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Keep the newest `keep` whole checkpoints and the deltas after the oldest of them. */
static void prune(const char *dir, unsigned keep)
{
	char **names, path[4096];
	size_t n;
	if (keep == 0 || list_ckpts(dir, &names, &n, NULL) != 0)
		return;
	unsigned whole = 0;
	for (size_t i = 0; i < n; i++) {
		if (whole >= keep) {
			snprintf(path, sizeof path, "%s/%s", dir, names[i]);
			unlink(path);
		} else if (!is_delta_name(names[i])) {
			whole++;
		}
	}
	free_names(names, n);
}

static int write_ckpt(const mfs_model *m, const char *dir, const void *position,
		      size_t position_len, int compress, unsigned keep, int delta, mfs_diag *diag)
{
	if (!m || !dir || !*dir)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, dir, 0, 0, "no model or directory");
	char path[4096];
	int l = snprintf(path, sizeof path, "%s/" CKPT_PREFIX "%020llu%s", dir,
			 (unsigned long long)m->events, delta ? DELTA_SUFFIX : CKPT_SUFFIX);
	if (l < 0 || (size_t)l >= sizeof path)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, dir, 0, 0, "path too long");
	mfs_save_opts so = { .compress = compress, .position = position,
			     .position_len = position_len };
	int rc = delta ? mfs_model_save_delta(m, path, &so, diag) : mfs_model_save(m, path, &so, diag);
	if (rc < 0)
		return rc;
	/* a failure to prune is not a failed checkpoint */
	prune(dir, keep);
	return 0;
}

MFS_API int mfs_checkpoint_write(const mfs_model *m, const char *dir, const void *position,
				 size_t position_len, int compress, unsigned keep, mfs_diag *diag)
{
	return write_ckpt(m, dir, position, position_len, compress, keep, 0, diag);
}

MFS_API int mfs_checkpoint_write_delta(const mfs_model *m, const char *dir, const void *position,
				       size_t position_len, int compress, unsigned keep,
				       mfs_diag *diag)
{
	return write_ckpt(m, dir, position, position_len, compress, keep, 1, diag);
}

/*
 * names[full] loaded, with the deltas after it (names[full-1] down to
 * names[stop]: newer names have lower indexes) applied in order. A delta that
 * fails is passed to on_skip and the chain goes on only with a later delta
 * that applies on the state so far (a run resumed from an earlier link writes
 * deltas beside the ones it replaces); after the first report, deltas that
 * merely name another base are skipped quietly, damaged ones are reported.
 * Returns 0 with *applied the index of the last file applied, or < 0 when the
 * whole one fails.
 */
static int load_chain(mfs_model **out, const char *dir, char **names, size_t full, size_t stop,
		      const char *kernel, unsigned flags, mfs_bad_record_fn on_skip, void *ctx,
		      size_t *applied, mfs_diag *diag)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", dir, names[full]);
	mfs_model *m;
	int rc = mfs_model_load_flags(&m, p, kernel, flags, diag);
	if (rc < 0)
		return rc;
	*applied = full;
	int reported = 0;
	for (size_t i = full; i-- > stop;) {
		if (!is_delta_name(names[i]))
			continue; /* a whole one that did not load: the chain may go on past it */
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		mfs_diag d;
		int touched, other;
		int r = mfs_model_apply_delta(m, p, flags, &touched, &other, &d);
		if (r == 0) {
			*applied = i;
			continue;
		}
		if (on_skip && (!reported || !other))
			on_skip(ctx, &d); /* damaged or a missing link */
		reported = 1;
		if (touched) {
			/* half applied: load the chain again up to the last link that applied */
			mfs_model_free(m);
			return load_chain(out, dir, names, full, *applied, kernel, flags, NULL, NULL,
					  applied, diag);
		}
	}
	*out = m;
	return 0;
}

MFS_API int mfs_checkpoint_load_newest(mfs_model **out, const char *dir, const char *kernel,
				       mfs_bad_record_fn on_skip, void *ctx, char *path,
				       size_t path_len, mfs_diag *diag)
{
	return mfs_checkpoint_load_newest_flags(out, dir, kernel, 0, on_skip, ctx, path, path_len,
						diag);
}

int mfs_checkpoint_load_newest_flags(mfs_model **out, const char *dir, const char *kernel,
				     unsigned flags, mfs_bad_record_fn on_skip, void *ctx, char *path,
				     size_t path_len, mfs_diag *diag)
{
	if (!out || !dir)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, dir, 0, 0, "no directory");
	char **names;
	size_t n;
	int rc = list_ckpts(dir, &names, &n, diag);
	if (rc < 0)
		return rc;
	rc = mfs_diag_set(diag, MFS_E_NOTFOUND, 0, dir, 0, 0,
			  n ? "no valid checkpoint (all are damaged)" : "no checkpoint");
	for (size_t i = 0; i < n; i++) {
		if (is_delta_name(names[i]))
			continue; /* applied on the whole checkpoint before it */
		mfs_diag d;
		size_t applied;
		int r = load_chain(out, dir, names, i, 0, kernel, flags, on_skip, ctx, &applied, &d);
		if (r == 0) {
			if (path && path_len)
				snprintf(path, path_len, "%s/%s", dir, names[applied]);
			rc = 0;
			break;
		}
		if (r == -MFS_E_UNSUPPORTED || r == -MFS_E_NOMEM) {
			if (diag)
				*diag = d;
			rc = r;
			break;
		}
		if (on_skip)
			on_skip(ctx, &d); /* damaged: reported, and the previous one is tried */
	}
	free_names(names, n);
	return rc;
}

/*
 * The base of the next delta: no row is dirty, and the state id of the
 * header as it is now (the file format's own encoding, mfs_model_state_id).
 */
MFS_API int mfs_checkpoint_mark(mfs_model *m)
{
	if (!m)
		return -MFS_E_INVAL;
	/* only rows in use can be dirty: an untouched tail of the bitmap costs nothing */
	memset(m->user.dirty, 0, mfs_dirty_bytes(table_rows(&m->user)));
	memset(m->item.dirty, 0, mfs_dirty_bytes(table_rows(&m->item)));
	m->ck_events = m->events;
	m->ck_id = mfs_model_state_id(m);
	m->ck_valid = 1;
	return 0;
}
