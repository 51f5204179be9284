/*
 * source_list.c - the inputs of a file source -> the files to read, in order.
 *
 * Inputs are files, directories (listed recursively, each file once by
 * (device, inode)) and "-". In follow mode new files are found through
 * inotify, or by listing the directories again when it cannot tell.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source_internal.h"

/* Order of files in follow mode: input, directory, then name as SPEC says. */
static int cmp_fent(const void *a, const void *b)
{
	const struct fent *x = a, *y = b;
	return mfs_file_cmp(x->input, x->path, y->input, y->path);
}


/*
 * A file is added once, by (device, inode): a second path to it (a link, a
 * symlinked directory, a loop) is not read again. An inode seen before whose
 * first path no longer names it was reused by a new file: that one is new.
 */
int mfs_src_add_file(struct mfs_source *s, const char *path, const struct stat *st, int input,
		    int dir)
{
	if (st && dir) {
		struct mfs_iset_ent *k = mfs_iset_find(&s->known, st->st_dev, st->st_ino);
		if (k) {
			struct stat was;
			if (strcmp(k->path, path) == 0 ||
			    (stat(k->path, &was) == 0 && was.st_dev == st->st_dev &&
			     was.st_ino == st->st_ino))
				return 0; /* known, or another name of a known file */
		}
	}
	if (s->nfiles == s->cap_files) {
		size_t nc = s->cap_files ? s->cap_files * 2 : 16;
		struct fent *nf = realloc(s->files, nc * sizeof *nf);
		if (!nf)
			return -MFS_E_NOMEM;
		s->files = nf;
		s->cap_files = nc;
	}
	struct fent *f = &s->files[s->nfiles];
	memset(f, 0, sizeof *f);
	f->path = strdup(path);
	if (!f->path)
		return -MFS_E_NOMEM;
	if ((st && mfs_iset_put(&s->known, st->st_dev, st->st_ino, f->path) < 0) ||
	    (dir && mfs_pmap_offer(&s->newest, input, f->path) < 0)) {
		free(f->path);
		return -MFS_E_NOMEM;
	}
	f->input = input;
	f->dir = dir;
	f->pos.codec = CODEC_UNKNOWN;
	s->nfiles++;
	if (s->nfiles > 1 && s->nsorted == s->nfiles - 1 &&
	    cmp_fent(&s->files[s->nfiles - 2], f) <= 0)
		s->nsorted = s->nfiles; /* the usual case: a new file sorts last */
	else
		s->need_sort = 1;
	return 0;
}

/*
 * Put files in order again after new ones came: sort the new tail and merge
 * it into the sorted front (O(n) when files arrive in order, not a full sort).
 */
int mfs_src_sort_files(struct mfs_source *s)
{
	size_t k = s->nsorted, n = s->nfiles;
	if (n - k > 1)
		qsort(s->files + k, n - k, sizeof *s->files, cmp_fent);
	if (k > 0 && k < n && cmp_fent(&s->files[k - 1], &s->files[k]) > 0) {
		struct fent *t = malloc(n * sizeof *t);
		if (!t)
			return -MFS_E_NOMEM;
		size_t i = 0, j = k, o = 0;
		while (i < k && j < n)
			t[o++] = cmp_fent(&s->files[i], &s->files[j]) <= 0 ? s->files[i++] : s->files[j++];
		while (i < k)
			t[o++] = s->files[i++];
		while (j < n)
			t[o++] = s->files[j++];
		memcpy(s->files, t, n * sizeof *t);
		free(t);
	}
	s->nsorted = n;
	s->need_sort = 0;
	return 0;
}

/* Follow mode with inotify: watch a directory, remember what it lists for. */
static int watch_dir(struct mfs_source *s, const char *dir, int input, int depth)
{
	if (s->ino_fd < 0 || input < 0)
		return 0;
	int wd = inotify_add_watch(s->ino_fd, dir,
				   IN_CREATE | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE |
					   IN_DELETE_SELF | IN_MOVE_SELF);
	if (wd < 0) {
		s->ino_full = 1; /* out of watches: find new files by listing */
		return 0;
	}
	for (size_t i = 0; i < s->nwds; i++)
		if (s->wds[i].wd == wd)
			return 0; /* the same directory by another name: watched already */
	if (s->nwds == s->cap_wds) {
		size_t nc = s->cap_wds ? 2 * s->cap_wds : 8;
		struct wdir *nw = realloc(s->wds, nc * sizeof *nw);
		if (!nw)
			return -MFS_E_NOMEM;
		s->wds = nw;
		s->cap_wds = nc;
	}
	char *p = strdup(dir);
	if (!p)
		return -MFS_E_NOMEM;
	s->wds[s->nwds++] = (struct wdir){ wd, p, input, depth };
	return 0;
}

int mfs_src_add_dir(struct mfs_source *s, const char *dir, mfs_diag *d, int depth, int input)
{
	if (depth > 16)
		return mfs_diag_set(d, MFS_E_INVAL, 0, dir, 0, 0, "directories nested too deeply");
	struct stat ds;
	if (stat(dir, &ds) < 0)
		return 0; /* vanished */
	if (mfs_iset_find(&s->dirs, ds.st_dev, ds.st_ino))
		return 0; /* listed in this scan already: a link to it, or a loop */
	char *keep = strdup(dir);
	if (!keep || mfs_iset_put(&s->dirs, ds.st_dev, ds.st_ino, keep) < 0) {
		free(keep);
		return mfs_diag_set(d, MFS_E_NOMEM, 0, dir, 0, 0, "out of memory");
	}
	if (s->ndir_paths == s->cap_dir_paths) {
		size_t nc = s->cap_dir_paths ? 2 * s->cap_dir_paths : 8;
		char **np = realloc(s->dir_paths, nc * sizeof *np);
		if (!np) {
			free(keep);
			return mfs_diag_set(d, MFS_E_NOMEM, 0, dir, 0, 0, "out of memory");
		}
		s->dir_paths = np;
		s->cap_dir_paths = nc;
	}
	s->dir_paths[s->ndir_paths++] = keep;
	/* watch before listing: a file created in between is seen by one or the other */
	if (s->cfg2.follow && watch_dir(s, dir, input, depth) < 0)
		return mfs_diag_set(d, MFS_E_NOMEM, 0, dir, 0, 0, "out of memory");
	DIR *dp = opendir(dir);
	if (!dp)
		return mfs_diag_set(d, MFS_E_IO, errno, dir, 0, 0, "cannot read directory: %s",
				    strerror(errno));
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(dp)) != NULL) {
		if (mfs_name_ignored(e->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof *nn);
			if (!nn) {
				rc = -MFS_E_NOMEM;
				goto out;
			}
			names = nn;
		}
		names[n] = strdup(e->d_name);
		if (!names[n]) {
			rc = -MFS_E_NOMEM;
			goto out;
		}
		n++;
	}
	if (n > 1)
		qsort(names, n, sizeof *names, mfs_name_cmp); /* names is NULL for an empty directory */
	for (size_t i = 0; i < n && rc == 0; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		struct stat st;
		if (stat(path, &st) < 0)
			continue; /* vanished (a sink renamed it): not an input any more */
		if (S_ISDIR(st.st_mode))
			rc = mfs_src_add_dir(s, path, d, depth + 1, input);
		else if (S_ISREG(st.st_mode))
			rc = mfs_src_add_file(s, path, &st, input, 1);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(dp);
	if (rc == -MFS_E_NOMEM)
		mfs_diag_set(d, MFS_E_NOMEM, 0, dir, 0, 0, "out of memory");
	return rc;
}

/* List every input directory again (new files only are added). */
static void list_all(struct mfs_source *s)
{
	mfs_iset_clear(&s->dirs);
	for (size_t i = 0; i < s->ndir_paths; i++)
		free(s->dir_paths[i]);
	s->ndir_paths = 0;
	for (size_t i = 0; i < s->ninputs; i++) {
		struct stat st;
		if (strcmp(s->inputs[i], "-") != 0 && stat(s->inputs[i], &st) == 0 &&
		    S_ISDIR(st.st_mode))
			mfs_src_add_dir(s, s->inputs[i], NULL, 0, (int)i);
	}
}

/*
 * Follow mode: take in what changed. With inotify, the events name the new
 * files and directories, so nothing is listed again; without it (or after
 * the kernel dropped events), every input directory is listed, at most once
 * per poll interval.
 */
void mfs_src_rescan(struct mfs_source *s)
{
	if (s->ino_fd >= 0) {
		char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
		ssize_t r;
		while ((r = read(s->ino_fd, buf, sizeof buf)) > 0) {
			for (char *p = buf; p < buf + r;) {
				struct inotify_event *ev = (struct inotify_event *)p;
				p += sizeof *ev + ev->len;
				if (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF |
						IN_MOVE_SELF)) {
					s->ino_full = 1;
					continue;
				}
				if (!(ev->mask & (IN_CREATE | IN_MOVED_TO)) || !ev->len ||
				    mfs_name_ignored(ev->name))
					continue;
				const struct wdir *w = NULL;
				for (size_t i = 0; i < s->nwds && !w; i++)
					if (s->wds[i].wd == ev->wd)
						w = &s->wds[i];
				if (!w)
					continue; /* the directory of a file input: nothing to add */
				char path[4096];
				snprintf(path, sizeof path, "%s/%s", w->path, ev->name);
				struct stat st;
				if (stat(path, &st) < 0)
					continue;
				if (S_ISDIR(st.st_mode))
					mfs_src_add_dir(s, path, NULL, w->depth + 1, w->input);
				else if (S_ISREG(st.st_mode))
					mfs_src_add_file(s, path, &st, w->input, 1);
			}
		}
		if (!s->ino_full)
			return;
	}
	int64_t t = mfs_src_now_ms();
	if (s->last_list && t - s->last_list < (int64_t)s->cfg2.poll_ms)
		return;
	s->last_list = t;
	s->ino_full = 0;
	list_all(s);
}

/* Whether the file is complete: a newer file of its partition is listed. */
int mfs_src_file_complete(const struct mfs_source *s, size_t i)
{
	const struct fent *f = &s->files[i];
	if (!s->cfg2.follow || !s->is_reg)
		return 1;
	if (!f->dir)
		return 0;
	const char *nw = mfs_pmap_newest(&s->newest, f->input, f->path);
	return nw && mfs_file_cmp(f->input, f->path, f->input, nw) < 0;
}

/* Follow mode: wait until something may have changed, at most ms (or stop). */
void mfs_src_follow_wait(struct mfs_source *s, int64_t ms)
{
	if (ms > (int64_t)s->cfg2.poll_ms)
		ms = s->cfg2.poll_ms;
	if (ms <= 0)
		return;
	if (s->ino_fd >= 0) {
		/* the events are read by mfs_src_rescan(), which names the new files */
		struct pollfd pf = { .fd = s->ino_fd, .events = POLLIN };
		poll(&pf, 1, (int)ms);
	} else {
		usleep((useconds_t)ms * 1000u);
	}
}
