/*
 * checkpoint.c - a directory of model files named by the events they hold:
 * write one atomically (mfs_model_save), keep the newest few, and find the
 * newest that loads.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"

#define CKPT_PREFIX "ckpt-"
#define CKPT_SUFFIX ".mfs"

static int is_ckpt_name(const char *n)
{
	size_t l = strlen(n), pl = strlen(CKPT_PREFIX), sl = strlen(CKPT_SUFFIX);
	return l > pl + sl && strncmp(n, CKPT_PREFIX, pl) == 0 && strcmp(n + l - sl, CKPT_SUFFIX) == 0;
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

MFS_API int mfs_checkpoint_write(const mfs_model *m, const char *dir, const void *position,
				 size_t position_len, int compress, unsigned keep, mfs_diag *diag)
{
	if (!m || !dir || !*dir)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, dir, 0, 0, "no model or directory");
	char path[4096];
	int l = snprintf(path, sizeof path, "%s/" CKPT_PREFIX "%020llu" CKPT_SUFFIX, dir,
			 (unsigned long long)m->events);
	if (l < 0 || (size_t)l >= sizeof path)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, dir, 0, 0, "path too long");
	mfs_save_opts so = { .compress = compress, .position = position,
			     .position_len = position_len };
	int rc = mfs_model_save(m, path, &so, diag);
	if (rc < 0)
		return rc;
	/* Keep the newest `keep`; a failure to prune is not a failed checkpoint. */
	char **names;
	size_t n;
	if (keep > 0 && list_ckpts(dir, &names, &n, NULL) == 0) {
		for (size_t i = keep; i < n; i++) {
			snprintf(path, sizeof path, "%s/%s", dir, names[i]);
			unlink(path);
		}
		free_names(names, n);
	}
	return 0;
}

MFS_API int mfs_checkpoint_load_newest(mfs_model **out, const char *dir, const char *kernel,
				       mfs_bad_record_fn on_skip, void *ctx, char *path,
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
		char full[4096];
		snprintf(full, sizeof full, "%s/%s", dir, names[i]);
		mfs_diag d;
		int r = mfs_model_load(out, full, kernel, &d);
		if (r == 0) {
			if (path && path_len)
				snprintf(path, path_len, "%s", full);
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
