/*
 * source.c - event files -> batches of events.
 *
 *   inputs (files, directories, "-") -> bytes (uring.c, or pread/read)
 *   -> zstd frames (zstd.c) / gzip members (gzip.c) -> lines
 *   -> records (parse.c) -> events
 *
 * Compression is recognised by the magic bytes at the start of each file.
 * Events point into the text buffer; a batch never spans a refill of that
 * buffer, so the pointers stay valid until the next call. With a reader
 * thread (config2.queue > 0) the same batches are made on that thread and
 * copied into queue slots, so both cores work.
 *
 * Positions: the text buffer's first byte has a known offset in the file's
 * decompressed stream; the frame (member) boundaries seen recently are kept,
 * so the next record's position is "decompress from compressed offset C,
 * skip K bytes" - restartable exactly, whatever the codec.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gzip.h"
#include "files.h"
#include "internal.h"
#include "kafka.h"
#include "parse.h"
#include "uring.h"
#include "zstd_stage.h"

#define CHUNK_DEFAULT (1u << 20)  /* compressed bytes per read */
#define TEXT_CAP (4u << 20)       /* decoded text buffer */
#define LINE_MAX_BYTES (1u << 20) /* a longer line is skipped as malformed */
#define NBOUND 64                 /* frame boundaries remembered */
#define NBLK 3                    /* decode stage: text blocks in the ring */
#define BLK_HEAD LINE_MAX_BYTES   /* room before a block's text for the previous partial line */
#define BLK_DATA (TEXT_CAP - BLK_HEAD) /* decoded bytes per block */

enum { CODEC_UNKNOWN = -1, CODEC_PLAIN = 0, CODEC_ZSTD = 1, CODEC_GZIP = 2 };
enum { BE_URING = 0, BE_PREAD = 1 };

/* A restart point inside one file. */
struct fpos {
	uint64_t coff;   /* compressed offset of a frame start (== doff for plain) */
	uint64_t dframe; /* decompressed offset of that frame start */
	uint64_t doff;   /* decompressed offset of the next unread record */
	uint64_t line_no, records;
	int codec, format, seen_record;
};

/* A position as the consumer sees it (struct fpos of a file, by path). */
struct snap {
	const char *path;
	int done;
	struct fpos pos;
};

struct fent {
	char *path;
	int input;  /* index of the input it came from */
	int dir;    /* came from a directory listing */
	int done;   /* every record read */
	int parked; /* follow mode: waiting for more at pos */
	struct fpos pos;
};

struct bound {
	uint64_t c, d;
};

/* A watched directory of a directory input. */
struct wdir {
	int wd;
	char *path;
	int input, depth;
};

struct slot; /* reader thread queue */

/* Where an event of a batch was read (mfs_source_event_line). */
struct evloc {
	const char *path; /* a file's path (lives as long as the source) */
	uint64_t line;
};

/*
 * Decode stage (with a reader thread, for compressed regular files): a second
 * thread reads and decompresses the open file into a ring of text blocks while
 * the reader thread splits and parses lines. Blocks are filled, taken and
 * released strictly in order. Each block leaves BLK_HEAD bytes in front of its
 * text, where the reader copies the partial line left over from the block
 * before, so lines stay contiguous without moving the whole buffer.
 */
struct dblk {
	char *buf;         /* BLK_HEAD + BLK_DATA + 1 */
	size_t len;        /* decoded bytes at buf + BLK_HEAD */
	uint64_t doff;     /* decompressed offset of buf[BLK_HEAD] */
	struct bound b[NBOUND];
	int nb;
	uint64_t bytes;    /* compressed bytes read while filling it */
	uint64_t read_off; /* file offset of the next read after it */
	int end;           /* the end of the file as it is now */
	int truncated;     /* ... and it falls inside a frame */
	int err;           /* < 0: a read or decode error (diag) */
	mfs_diag diag;
};

struct mfs_source {
	struct mfs_ksrc *ks; /* a Kafka source (kafka.c): the calls below dispatch to it */
	mfs_source_config cfg;
	mfs_source_config2 cfg2;
	struct mfs_fields fields;
	char **inputs;
	size_t ninputs;
	struct fent *files;
	size_t nfiles, cap_files;
	size_t cur; /* index of the open (or next) file */
	int need_sort;
	size_t nsorted;        /* files[0..nsorted) are in order */
	struct mfs_iset known; /* every file listed, by (device, inode) */
	struct mfs_pmap newest; /* the newest file of each partition */
	struct mfs_iset dirs;  /* directories listed in the current scan */
	char **dir_paths;      /* ... their paths (dirs borrows them) */
	size_t ndir_paths, cap_dir_paths;
	struct wdir *wds;      /* follow mode: watched directories */
	size_t nwds, cap_wds;
	int ino_full;          /* inotify cannot tell everything: list the directories */
	int64_t last_list;     /* when they were last listed (ms) */
	int growable; /* an input is a directory or a regular file: follow mode can wait on it */

	int be;                /* BE_URING or BE_PREAD */
	int fallback_errno;    /* io was AUTO and io_uring refused */
	int fell_back;
	struct mfs_uring *ring;

	/* the open file */
	int fd;          /* -1: no file open */
	int is_reg;      /* regular file (else read(2)) */
	int codec;
	int eof;         /* the backend returned 0 */
	uint64_t read_off;  /* file offset of the next read */
	uint64_t line_no, records;
	int format;      /* of the current file; AUTO until decided */
	int seen_record; /* a record line has been seen (header check) */
	int discarding;  /* inside an over-long line */
	int read_stopped; /* a pipe read gave up on mfs_source_stop: its end is not the input's */
	uint64_t skip;   /* decoded bytes still to drop (resuming mid-frame) */

	const uint8_t *raw;
	uint8_t *own_raw;
	size_t raw_cap;
	size_t raw_len, raw_pos;
	uint64_t raw_off; /* file offset of raw[0] */
	struct mfs_zstream *z;
	struct mfs_gzstream *gz;

	char *text;
	size_t text_len, text_pos;
	uint64_t text_doff; /* decompressed offset of text[0] */
	struct bound bounds[NBOUND];
	int nbounds;

	mfs_event *events;
	struct evloc *evloc; /* beside events: file and line of each */
	size_t sync_n;       /* events in the last batch next_sync made */
	mfs_source_stats st;

	atomic_int stop;
	int ino_fd;
	unsigned linger_ms; /* follow: a partial batch waits this long for more */
	uint64_t align;     /* no batch crosses a multiple of align events (0: off) */
	int64_t deadline;   /* next_sync in the caller's thread: give up waiting then (0: never) */
	int timed_out;      /* ... and it did */
	char *stash;        /* follow: IDs of a lingering batch, copied out of the text buffer */
	size_t nstash;      /* events of the batch in progress whose IDs are in stash */

	/* reader thread */
	int threaded, started;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct slot *slots;
	unsigned nslots, qhead, qcount;
	int decision; /* after an error slot: 0 waiting, 1 skip file, 2 retry */
	int quit;
	int prod_done;
	struct slot *held;
	mfs_source_stats cons_st;
	struct mfs_source_where cons_where;
	struct fpos cons_pos;
	size_t cons_file;
	int cons_valid;
	struct snap cons_at; /* consumer: where the last slot handed out ends (a copy) */

	/* decode stage (see struct dblk); d_* under dmu, dec_* reader thread only */
	int dec_ok;          /* the stage thread runs */
	int dec_active;      /* a session for the open file */
	int dec_end, dec_trunc, dec_err;
	uint64_t dec_read_off; /* read_off as of the last block taken (read_off is the stage's) */
	mfs_diag dec_diag;
	char *own_text;      /* text when no block is held */
	struct dblk *text_blk; /* the block text points into, or NULL */
	struct dblk blk[NBLK];
	pthread_t dth;
	pthread_mutex_t dmu;
	pthread_cond_t dcv;
	int d_run, d_cancel, d_quit;
	const char *d_path;
	uint64_t d_doff;
	uint64_t produced, consumed, released;
};

MFS_API void mfs_source_config_default(mfs_source_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->format = MFS_FORMAT_AUTO;
	cfg->batch = 4096;
}

MFS_API void mfs_source_config2_default(mfs_source_config2 *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->io = MFS_IO_AUTO;
	cfg->chunk = CHUNK_DEFAULT;
	cfg->depth = 8;
	cfg->poll_ms = 200;
}

MFS_API int mfs_io_parse(const char *name)
{
	if (!name)
		return -MFS_E_INVAL;
	if (strcmp(name, "auto") == 0)
		return MFS_IO_AUTO;
	if (strcmp(name, "uring") == 0)
		return MFS_IO_URING;
	if (strcmp(name, "pread") == 0)
		return MFS_IO_PREAD;
	return -MFS_E_INVAL;
}

/* --- input listing --------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
static int add_file(struct mfs_source *s, const char *path, const struct stat *st, int input,
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
static int sort_files(struct mfs_source *s)
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

static int add_dir(struct mfs_source *s, const char *dir, mfs_diag *d, int depth, int input)
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
			rc = add_dir(s, path, d, depth + 1, input);
		else if (S_ISREG(st.st_mode))
			rc = add_file(s, path, &st, input, 1);
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
			add_dir(s, s->inputs[i], NULL, 0, (int)i);
	}
}

/*
 * Follow mode: take in what changed. With inotify, the events name the new
 * files and directories, so nothing is listed again; without it (or after
 * the kernel dropped events), every input directory is listed, at most once
 * per poll interval.
 */
static void rescan(struct mfs_source *s)
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
					add_dir(s, path, NULL, w->depth + 1, w->input);
				else if (S_ISREG(st.st_mode))
					add_file(s, path, &st, w->input, 1);
			}
		}
		if (!s->ino_full)
			return;
	}
	int64_t t = now_ms();
	if (s->last_list && t - s->last_list < (int64_t)s->cfg2.poll_ms)
		return;
	s->last_list = t;
	s->ino_full = 0;
	list_all(s);
}

/* Whether the file is complete: a newer file of its partition is listed. */
static int file_complete(const struct mfs_source *s, size_t i)
{
	const struct fent *f = &s->files[i];
	if (!s->cfg2.follow || !s->is_reg)
		return 1;
	if (!f->dir)
		return 0;
	const char *nw = mfs_pmap_newest(&s->newest, f->input, f->path);
	return nw && mfs_file_cmp(f->input, f->path, f->input, nw) < 0;
}

/* --- the open file ---------------------------------------------------------- */

static const char *cur_path(const struct mfs_source *s)
{
	return s->cur < s->nfiles ? s->files[s->cur].path : "";
}

static void dec_stop(struct mfs_source *s);

static void close_file(struct mfs_source *s)
{
	dec_stop(s);
	if (s->fd > 0)
		close(s->fd);
	s->fd = -1;
	s->raw = NULL;
	s->raw_len = s->raw_pos = 0;
	s->text_len = s->text_pos = 0;
	s->eof = 0;
	s->discarding = 0;
	s->skip = 0;
	s->nbounds = 0;
}

static void push_bound(struct mfs_source *s, uint64_t c, uint64_t d)
{
	uint64_t now = s->text_doff + s->text_pos;
	if (s->nbounds == NBOUND) {
		if (s->bounds[1].d <= now) {
			memmove(s->bounds, s->bounds + 1, (NBOUND - 1) * sizeof *s->bounds);
			s->nbounds--;
		} else {
			s->nbounds--; /* drop the newest: an older restart point is still exact */
		}
	}
	s->bounds[s->nbounds].c = c;
	s->bounds[s->nbounds].d = d;
	s->nbounds++;
}

/* The restart point of the next unread record of the open file. */
static struct fpos file_pos(const struct mfs_source *s)
{
	struct fpos p = { 0 };
	p.doff = s->text_doff + s->text_pos + s->skip;
	p.line_no = s->line_no;
	p.records = s->records;
	p.codec = s->codec;
	p.format = s->format;
	p.seen_record = s->seen_record;
	if (s->codec == CODEC_PLAIN || s->codec == CODEC_UNKNOWN) {
		p.coff = p.dframe = p.doff;
		return p;
	}
	for (int i = s->nbounds - 1; i >= 0; i--)
		if (s->bounds[i].d <= p.doff) {
			p.coff = s->bounds[i].c;
			p.dframe = s->bounds[i].d;
			return p;
		}
	p.coff = p.dframe = 0; /* the file's start is always a restart point */
	return p;
}

static int open_file(struct mfs_source *s, mfs_diag *d)
{
	struct fent *f = &s->files[s->cur];
	const char *p = f->path;
	struct stat st;
	if (strcmp(p, "-") == 0) {
		s->fd = 0;
	} else {
		s->fd = open(p, O_RDONLY | O_CLOEXEC);
		if (s->fd < 0) {
			int e = errno;
			s->fd = -1;
			return mfs_diag_set(d, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, p, 0, 0, "%s",
					    strerror(e));
		}
	}
	s->is_reg = fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode);
	if (s->is_reg)
		posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	s->st.files++;
	struct fpos *r = &f->pos;
	s->codec = r->codec;
	s->line_no = r->line_no;
	s->records = r->records;
	s->format = r->codec == CODEC_UNKNOWN ? s->cfg.format : r->format;
	s->seen_record = r->codec == CODEC_UNKNOWN ? 0 : r->seen_record;
	if (r->codec == CODEC_UNKNOWN)
		r->coff = r->dframe = r->doff = 0;
	s->read_off = r->coff;
	s->text_doff = r->dframe;
	s->skip = r->doff - r->dframe;
	s->nbounds = 0;
	push_bound(s, r->coff, r->dframe);
	if (s->read_off && !s->is_reg)
		return mfs_diag_set(d, MFS_E_INVAL, 0, p, 0, 0, "cannot seek in a pipe");
	if (s->is_reg && s->be == BE_URING)
		mfs_uring_start(s->ring, s->fd, s->read_off);
	else if (!s->is_reg)
		s->read_off = 0;
	mfs_zstream_reset(s->z);
	mfs_gzstream_reset(s->gz);
	return 0;
}

/*
 * read(2) from a pipe or terminal that gives up when the source is stopped
 * (mfs_source_stop): a read blocked on an idle pipe would otherwise keep the
 * reader thread, and mfs_source_free joining it, waiting for input forever.
 * Returns as read(2); 0 with s->read_stopped set when stopped.
 */
static ssize_t read_stoppable(struct mfs_source *s, void *buf, size_t len)
{
	for (;;) {
		if (atomic_load(&s->stop)) {
			s->read_stopped = 1;
			return 0;
		}
		struct pollfd pf = { .fd = s->fd, .events = POLLIN };
		int pr = poll(&pf, 1, 50);
		if (pr == 0 || (pr < 0 && errno == EINTR))
			continue;
		ssize_t r = read(s->fd, buf, len);
		if (r >= 0 || errno != EINTR)
			return r;
	}
}

/*
 * Next raw bytes into raw[0..raw_len). Returns bytes, 0 at end of file, or <0.
 * Touches only the raw-side fields (the decode stage calls it too).
 */
static ssize_t fetch_raw(struct mfs_source *s, const char *path, mfs_diag *d)
{
	ssize_t r;
	s->raw_pos = s->raw_len = 0;
	s->raw_off = s->read_off;
	if (s->is_reg && s->be == BE_URING) {
		r = mfs_uring_next(s->ring, &s->raw);
	} else {
		s->raw = s->own_raw;
		for (;;) {
			r = s->is_reg ? pread(s->fd, s->own_raw, s->cfg2.chunk, (off_t)s->read_off)
				      : read_stoppable(s, s->own_raw, s->cfg2.chunk);
			if (r >= 0 || errno != EINTR)
				break;
		}
		if (r < 0)
			r = -errno;
	}
	if (r < 0) {
		int e = (int)-r;
		return mfs_diag_set(d, MFS_E_IO, e, path, 0, s->read_off,
				    "read failed at byte %llu: %s", (unsigned long long)s->read_off,
				    strerror(e));
	}
	s->raw_len = (size_t)r;
	s->read_off += (uint64_t)r;
	return r;
}

static ssize_t fetch(struct mfs_source *s, mfs_diag *d)
{
	ssize_t r = fetch_raw(s, cur_path(s), d);
	if (r > 0)
		s->st.bytes += (uint64_t)r;
	return r;
}

/*
 * Compressions this build cannot read, by their magic bytes: the name of the
 * one m[0..have) starts with, or NULL. The file is refused rather than read
 * as text (a bzip2 file would be thousands of malformed lines).
 */
static const char *foreign_codec(const uint8_t *m, size_t have)
{
	static const struct {
		const char *name;
		uint8_t len;
		uint8_t magic[6];
	} k[] = {
		{ "xz", 6, { 0xFD, '7', 'z', 'X', 'Z', 0x00 } },
		{ "lz4", 4, { 0x04, 0x22, 0x4D, 0x18 } },
		{ "zip", 4, { 'P', 'K', 0x03, 0x04 } },
		{ "7z", 6, { '7', 'z', 0xBC, 0xAF, 0x27, 0x1C } },
		{ "lzip", 4, { 'L', 'Z', 'I', 'P' } },
	};
	/* bzip2: "BZh", the block size digit, then a block or end-of-stream magic */
	static const uint8_t blk[6] = { 0x31, 0x41, 0x59, 0x26, 0x53, 0x59 },
			     eos[6] = { 0x17, 0x72, 0x45, 0x38, 0x50, 0x90 };
	if (have >= 10 && m[0] == 'B' && m[1] == 'Z' && m[2] == 'h' && m[3] >= '1' && m[3] <= '9' &&
	    (memcmp(m + 4, blk, 6) == 0 || memcmp(m + 4, eos, 6) == 0))
		return "bzip2";
	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
		if (have >= k[i].len && memcmp(m, k[i].magic, k[i].len) == 0)
			return k[i].name;
	return NULL;
}

/*
 * Decide the codec from the first bytes (4 decide zstd and gzip; up to 10 are
 * looked at for the compressions refused). Returns 1 when decided, 0 when the
 * file has fewer than 4 bytes so far (follow mode waits), <0 on error.
 */
static int sniff(struct mfs_source *s, mfs_diag *d)
{
	uint8_t m[10];
	size_t have = 0;
	if (s->is_reg) {
		ssize_t r;
		do
			r = pread(s->fd, m, sizeof m, 0);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return mfs_diag_set(d, MFS_E_IO, errno, cur_path(s), 0, 0, "read failed: %s",
					    strerror(errno));
		have = (size_t)r;
		if (have < 4 && !file_complete(s, s->cur))
			return 0;
	} else {
		/* A pipe: the first bytes read stay in raw and are decoded next. */
		while (s->raw_len < 4) {
			ssize_t r = read_stoppable(s, s->own_raw + s->raw_len, s->raw_cap - s->raw_len);
			if (r < 0)
				return mfs_diag_set(d, MFS_E_IO, errno, cur_path(s), 0, 0,
						    "read failed: %s", strerror(errno));
			if (r == 0)
				break;
			s->raw = s->own_raw;
			s->raw_len += (size_t)r;
			s->read_off += (uint64_t)r;
			s->st.bytes += (uint64_t)r;
		}
		have = s->raw_len < sizeof m ? s->raw_len : sizeof m;
		memcpy(m, s->own_raw, have);
	}
	const char *foreign = foreign_codec(m, have);
	if (foreign)
		return mfs_diag_set(d, MFS_E_UNSUPPORTED, 0, cur_path(s), 0, 0,
				    "the file is %s-compressed (by its magic bytes), which is not "
				    "supported: decompress it, or recompress it with zstd or gzip",
				    foreign);
	s->codec = mfs_zstd_magic(m, have) ? CODEC_ZSTD
		   : mfs_gzip_magic(m, have) ? CODEC_GZIP
					     : CODEC_PLAIN;
	return 1;
}

/* --- decode stage ------------------------------------------------------------ */

/* Decode stage thread: fill one block from the open file. Returns 1 when the session ends. */
static int dec_fill(struct mfs_source *s, struct dblk *b, int codec)
{
	b->len = 0;
	b->nb = 0;
	b->bytes = 0;
	b->end = b->truncated = b->err = 0;
	b->doff = s->d_doff;
	char *out = b->buf + BLK_HEAD;
	while (b->len < BLK_DATA) {
		int mid = codec == CODEC_ZSTD ? mfs_zstream_mid_frame(s->z)
					      : mfs_gzstream_mid_member(s->gz);
		if (s->raw_pos < s->raw_len || mid) {
			const char *why = "corrupt data";
			size_t ol = b->len, rp = s->raw_pos;
			int rc = codec == CODEC_ZSTD
					 ? mfs_zstream_run(s->z, s->raw, s->raw_len, &s->raw_pos, out,
							   BLK_DATA, &b->len, &why)
					 : mfs_gzstream_run(s->gz, s->raw, s->raw_len, &s->raw_pos, out,
							    BLK_DATA, &b->len, &why);
			if (rc < 0) {
				uint64_t off = s->raw_off + s->raw_pos;
				b->err = mfs_diag_set(&b->diag, MFS_E_CORRUPT, 0, s->d_path, 0, off,
						      "corrupt %s data near compressed byte %llu: %s",
						      codec == CODEC_ZSTD ? "zstd" : "gzip",
						      (unsigned long long)off, why);
				break;
			}
			if (rc == 1 && b->nb < NBOUND) {
				b->b[b->nb].c = s->raw_off + s->raw_pos;
				b->b[b->nb].d = b->doff + b->len;
				b->nb++;
			}
			if (ol != b->len || rp != s->raw_pos)
				continue;
		}
		if (s->eof && s->raw_pos >= s->raw_len) {
			b->end = 1;
			b->truncated = codec == CODEC_ZSTD ? mfs_zstream_mid_frame(s->z)
							   : mfs_gzstream_mid_member(s->gz);
			break;
		}
		ssize_t r = fetch_raw(s, s->d_path, &b->diag);
		if (r < 0) {
			b->err = (int)r;
			break;
		}
		b->bytes += (uint64_t)r;
		s->eof = r == 0;
	}
	b->read_off = s->read_off;
	s->d_doff += b->len;
	return b->end || b->err;
}

static void *dec_main(void *arg)
{
	struct mfs_source *s = arg;
	pthread_mutex_lock(&s->dmu);
	for (;;) {
		while (!s->d_quit && !s->d_run)
			pthread_cond_wait(&s->dcv, &s->dmu);
		if (s->d_quit)
			break;
		int codec = s->codec; /* set before the session starts, fixed during it */
		pthread_mutex_unlock(&s->dmu);
		s->raw_pos = s->raw_len = 0;
		s->eof = 0;
		if (s->be == BE_URING)
			mfs_uring_start(s->ring, s->fd, s->read_off);
		mfs_zstream_reset(s->z);
		mfs_gzstream_reset(s->gz);
		pthread_mutex_lock(&s->dmu);
		for (;;) {
			while (s->produced - s->released >= NBLK && !s->d_cancel)
				pthread_cond_wait(&s->dcv, &s->dmu);
			if (s->d_cancel)
				break;
			struct dblk *b = &s->blk[s->produced % NBLK];
			pthread_mutex_unlock(&s->dmu);
			int last = dec_fill(s, b, codec);
			pthread_mutex_lock(&s->dmu);
			s->produced++;
			pthread_cond_broadcast(&s->dcv);
			if (last)
				break;
		}
		s->d_run = 0;
		pthread_cond_broadcast(&s->dcv);
	}
	pthread_mutex_unlock(&s->dmu);
	return NULL;
}

/* Start the stage thread (once). Without it, decoding stays on the reader thread. */
static void dec_init(struct mfs_source *s)
{
	for (int i = 0; i < NBLK; i++) {
		s->blk[i].buf = malloc(BLK_HEAD + BLK_DATA + 1);
		if (!s->blk[i].buf)
			return;
	}
	pthread_mutex_init(&s->dmu, NULL);
	pthread_cond_init(&s->dcv, NULL);
	if (pthread_create(&s->dth, NULL, dec_main, s) != 0) {
		pthread_mutex_destroy(&s->dmu);
		pthread_cond_destroy(&s->dcv);
		return;
	}
	s->dec_ok = 1;
}

static void dec_start(struct mfs_source *s)
{
	pthread_mutex_lock(&s->dmu);
	s->produced = s->consumed = s->released = 0;
	s->d_cancel = 0;
	s->d_path = cur_path(s);
	s->d_doff = s->text_doff + s->text_len;
	s->d_run = 1;
	pthread_cond_broadcast(&s->dcv);
	pthread_mutex_unlock(&s->dmu);
	s->dec_active = 1;
	s->dec_end = s->dec_trunc = s->dec_err = 0;
	s->text_blk = NULL;
}

/* End the session of the open file; the text goes back to own_text (emptied by the caller). */
static void dec_stop(struct mfs_source *s)
{
	if (!s->dec_active)
		return;
	pthread_mutex_lock(&s->dmu);
	s->d_cancel = 1;
	pthread_cond_broadcast(&s->dcv);
	while (s->d_run)
		pthread_cond_wait(&s->dcv, &s->dmu);
	pthread_mutex_unlock(&s->dmu);
	s->dec_active = 0;
	s->text_blk = NULL;
	s->text = s->own_text;
}

static void dec_quit(struct mfs_source *s)
{
	if (!s->dec_ok)
		return;
	pthread_mutex_lock(&s->dmu);
	s->d_quit = 1;
	s->d_cancel = 1;
	pthread_cond_broadcast(&s->dcv);
	pthread_mutex_unlock(&s->dmu);
	pthread_join(s->dth, NULL);
	pthread_mutex_destroy(&s->dmu);
	pthread_cond_destroy(&s->dcv);
	s->dec_ok = 0;
}

/* refill() through the decode stage: take the next block, carrying the partial line over. */

/*
 * Resuming inside a frame: drop the decoded text that comes before the
 * position. Returns 1 when all the text in the buffer was dropped.
 */
static int drop_skipped(struct mfs_source *s)
{
	if (!s->skip)
		return 0;
	size_t k = s->text_len - s->text_pos;
	if (k > s->skip)
		k = (size_t)s->skip;
	s->text_pos += k;
	s->skip -= k;
	return s->text_pos == s->text_len;
}

static int refill_blocks(struct mfs_source *s, int *truncated, mfs_diag *d)
{
	for (;;) {
		if (s->dec_err) {
			if (d)
				*d = s->dec_diag;
			return s->dec_err;
		}
		if (s->dec_end) {
			*truncated = s->dec_trunc;
			return 0;
		}
		pthread_mutex_lock(&s->dmu);
		while (s->consumed == s->produced)
			pthread_cond_wait(&s->dcv, &s->dmu);
		struct dblk *b = &s->blk[s->consumed % NBLK];
		s->consumed++;
		pthread_mutex_unlock(&s->dmu);
		s->st.bytes += b->bytes;
		s->dec_read_off = b->read_off;
		if (b->err) {
			s->dec_err = b->err;
			s->dec_diag = b->diag;
			continue;
		}
		size_t tail = s->text_len - s->text_pos;
		assert(tail < BLK_HEAD && s->text_doff + s->text_len == b->doff);
		char *t = b->buf + BLK_HEAD - tail;
		memcpy(t, s->text + s->text_pos, tail);
		s->text_doff += s->text_pos;
		if (s->text_blk) {
			/* blocks are released in order: the previous one is free again */
			pthread_mutex_lock(&s->dmu);
			s->released++;
			pthread_cond_broadcast(&s->dcv);
			pthread_mutex_unlock(&s->dmu);
		}
		s->text_blk = b;
		s->text = t;
		s->text_pos = 0;
		s->text_len = tail + b->len;
		for (int i = 0; i < b->nb; i++)
			push_bound(s, b->b[i].c, b->b[i].d);
		if (b->end) {
			s->dec_end = 1;
			s->dec_trunc = b->truncated;
		}
		if (b->len == 0)
			continue;
		if (drop_skipped(s))
			continue;
		return 1;
	}
}

/*
 * Append decoded text after text[text_len]. Returns 1 if bytes were added,
 * 0 at the end of the file as it is now, <0 on error. *truncated is set when
 * the end falls inside a frame.
 */
static int refill(struct mfs_source *s, int *truncated, mfs_diag *d)
{
	*truncated = 0;
	if (s->dec_active)
		return refill_blocks(s, truncated, d);
	/* Keep the unconsumed tail (a partial line) at the front. */
	if (s->text_pos > 0) {
		memmove(s->text, s->text + s->text_pos, s->text_len - s->text_pos);
		s->text_doff += s->text_pos;
		s->text_len -= s->text_pos;
		s->text_pos = 0;
	}
	size_t room = TEXT_CAP - s->text_len;
	if (room == 0)
		return 1; /* the caller handles a line that fills the buffer */
	if (s->codec == CODEC_UNKNOWN) {
		int rc = sniff(s, d);
		if (rc <= 0)
			return rc;
	}
	if (s->threaded && s->is_reg && (s->codec == CODEC_ZSTD || s->codec == CODEC_GZIP)) {
		if (!s->dec_ok && !s->blk[0].buf)
			dec_init(s);
		if (s->dec_ok) {
			dec_start(s);
			return refill_blocks(s, truncated, d);
		}
	}
	for (;;) {
		size_t before = s->text_len;
		if (s->codec == CODEC_PLAIN) {
			if (s->raw_pos < s->raw_len) {
				size_t n = s->raw_len - s->raw_pos;
				if (n > room)
					n = room;
				memcpy(s->text + s->text_len, s->raw + s->raw_pos, n);
				s->raw_pos += n;
				s->text_len += n;
			}
		} else {
			int mid = s->codec == CODEC_ZSTD ? mfs_zstream_mid_frame(s->z)
							 : mfs_gzstream_mid_member(s->gz);
			while (s->raw_pos < s->raw_len || mid) {
				const char *why = "corrupt data";
				size_t tl = s->text_len, rp = s->raw_pos;
				int rc = s->codec == CODEC_ZSTD
						 ? mfs_zstream_run(s->z, s->raw, s->raw_len, &s->raw_pos,
								   s->text, TEXT_CAP, &s->text_len, &why)
						 : mfs_gzstream_run(s->gz, s->raw, s->raw_len, &s->raw_pos,
								    s->text, TEXT_CAP, &s->text_len, &why);
				if (rc < 0) {
					uint64_t off = s->raw_off + s->raw_pos;
					return mfs_diag_set(d, MFS_E_CORRUPT, 0, cur_path(s), 0, off,
							    "corrupt %s data near compressed byte %llu: %s",
							    s->codec == CODEC_ZSTD ? "zstd" : "gzip",
							    (unsigned long long)off, why);
				}
				if (rc == 1)
					push_bound(s, s->raw_off + s->raw_pos, s->text_doff + s->text_len);
				mid = s->codec == CODEC_ZSTD ? mfs_zstream_mid_frame(s->z)
							     : mfs_gzstream_mid_member(s->gz);
				if (s->text_len == TEXT_CAP || (tl == s->text_len && rp == s->raw_pos))
					break;
			}
		}
		if (s->text_len > before) {
			if (drop_skipped(s)) {
				s->text_doff += s->text_len;
				s->text_len = s->text_pos = 0;
				continue;
			}
			return 1;
		}
		if (s->raw_pos < s->raw_len && s->text_len == TEXT_CAP)
			return 1;
		if (s->eof && s->raw_pos >= s->raw_len) {
			if (s->codec == CODEC_ZSTD ? mfs_zstream_mid_frame(s->z)
						   : s->codec == CODEC_GZIP ? mfs_gzstream_mid_member(s->gz)
									    : 0)
				*truncated = 1;
			return 0;
		}
		ssize_t r = fetch(s, d);
		if (r < 0)
			return (int)r;
		s->eof = r == 0;
	}
}

static void report_bad(struct mfs_source *s, const char *reason)
{
	s->st.skipped++;
	s->records++;
	if (s->cfg.on_bad) {
		mfs_diag d;
		mfs_diag_set(&d, MFS_E_PARSE, 0, cur_path(s), s->line_no, 0, "%s", reason);
		s->cfg.on_bad(s->cfg.on_bad_ctx, &d);
	}
}

/* Handle one complete line (NUL-terminated in place). Returns 1 if *ev was filled. */
static int take_line(struct mfs_source *s, char *line, size_t len, mfs_event *ev)
{
	char why[256];
	s->line_no++;
	if (s->format == MFS_FORMAT_AUTO) {
		size_t k = 0;
		while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
			k++;
		if (k == len)
			return 0; /* blank lines before the first record */
		int f = mfs_parse_detect(line, len);
		if (f < 0) {
			report_bad(s, "cannot tell the format of this line (use --format)");
			return 0;
		}
		s->format = f;
	}
	if (!s->seen_record) {
		size_t k = 0;
		while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
			k++;
		if (k == len)
			return 0;
		s->seen_record = 1;
		if (mfs_parse_is_header(s->format, line, len))
			return 0;
	}
	int r = mfs_parse_line(s->format, &s->fields, line, len, ev, why, sizeof why);
	if (r < 0) {
		report_bad(s, why);
		return 0;
	}
	if (r > 0) {
		s->records++;
		size_t k = (size_t)(ev - s->events);
		s->evloc[k].path = cur_path(s);
		s->evloc[k].line = s->line_no;
	}
	return r;
}

/* Follow mode: wait until something may have changed, at most ms (or stop). */
static void follow_wait(struct mfs_source *s, int64_t ms)
{
	if (ms > (int64_t)s->cfg2.poll_ms)
		ms = s->cfg2.poll_ms;
	if (ms <= 0)
		return;
	if (s->ino_fd >= 0) {
		/* the events are read by rescan(), which names the new files */
		struct pollfd pf = { .fd = s->ino_fd, .events = POLLIN };
		poll(&pf, 1, (int)ms);
	} else {
		usleep((useconds_t)ms * 1000u);
	}
}

/* The file at cur reached its end for now: finish it, or park it (follow). */
static int end_of_file(struct mfs_source *s, int truncated, mfs_diag *d)
{
	struct fent *f = &s->files[s->cur];
	if (s->cfg2.follow && s->is_reg) {
		rescan(s);
		if (!file_complete(s, s->cur)) {
			f->pos = file_pos(s);
			f->parked = 1;
			close_file(s);
			s->cur++;
			return 0;
		}
	}
	if (truncated && !s->read_stopped) {
		uint64_t off = s->dec_active ? s->dec_read_off : s->read_off;
		return mfs_diag_set(d, MFS_E_TRUNCATED, 0, cur_path(s), 0, off,
				    "%s stream is truncated at compressed byte %llu",
				    s->codec == CODEC_GZIP ? "gzip" : "zstd", (unsigned long long)off);
	}
	return 1;
}

static void finish_file(struct mfs_source *s)
{
	if (s->cur < s->nfiles) {
		s->files[s->cur].done = 1;
		s->files[s->cur].parked = 0;
		s->files[s->cur].pos = file_pos(s);
	}
	close_file(s);
	s->cur++;
}

/*
 * Copy the IDs of events[nstash..n) into the stash, so that the batch outlives
 * a refill or a reopen of the text buffer (follow mode lingers over both).
 */
static void stash_ids(struct mfs_source *s, size_t n)
{
	char *a = s->stash;
	if (s->nstash > 0) {
		const mfs_event *l = &s->events[s->nstash - 1];
		a = (char *)l->item + l->item_len;
	}
	for (size_t k = s->nstash; k < n; k++) {
		mfs_event *e = &s->events[k];
		memcpy(a, e->user, e->user_len);
		e->user = a;
		a += e->user_len;
		memcpy(a, e->item, e->item_len);
		e->item = a;
		a += e->item_len;
	}
	s->nstash = n;
}

/* One batch, in the caller's thread. */
static int next_sync(struct mfs_source *s, mfs_diag *diag)
{
	size_t n = 0, limit = s->cfg.batch;
	int progress = 0;
	int64_t linger_end = -1;
	s->nstash = 0;
	if (s->align) {
		uint64_t left = s->align - s->st.events % s->align;
		if (left < limit)
			limit = (size_t)left;
	}
	while (n < limit) {
		if (atomic_load(&s->stop))
			break;
		if (s->fd < 0) {
			while (s->cur < s->nfiles && s->files[s->cur].done)
				s->cur++;
			if (s->cur >= s->nfiles) {
				if (!s->cfg2.follow || !s->growable)
					break;
				/*
				 * The end of one round over the files: look again, maybe
				 * wait. Events in hand wait at most the linger for more;
				 * with none, wait until input comes (or the deadline).
				 */
				int64_t wait = s->cfg2.poll_ms, t = now_ms();
				if (n > 0) {
					if (linger_end < 0)
						linger_end = t + s->linger_ms;
					if (t >= linger_end)
						break;
					wait = linger_end - t;
				} else if (s->deadline) {
					if (t >= s->deadline) {
						s->timed_out = 1;
						break;
					}
					if (s->deadline - t < wait)
						wait = s->deadline - t;
				}
				rescan(s);
				if (s->need_sort && sort_files(s) < 0)
					return mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0,
							    "out of memory");
				if (!progress)
					follow_wait(s, wait);
				progress = 0;
				s->cur = 0;
				continue;
			}
			int rc = open_file(s, diag);
			if (rc < 0)
				return rc;
		}
		/* Complete lines in the buffer. */
		char *base = s->text + s->text_pos;
		size_t avail = s->text_len - s->text_pos;
		char *nl = memchr(base, '\n', avail);
		if (nl) {
			size_t len = (size_t)(nl - base);
			s->text_pos += len + 1;
			progress = 1;
			if (s->discarding) {
				s->discarding = 0;
				s->line_no++;
				continue;
			}
			*nl = 0;
			if (take_line(s, base, len, &s->events[n]))
				n++;
			continue;
		}
		/*
		 * No complete line: hand out what we have before the buffer moves,
		 * or (follow mode, linger not over) keep the batch in the stash and
		 * read on.
		 */
		if (n > 0) {
			/* a pipe's read blocks until more comes: no linger there */
			if (!s->stash || !s->is_reg || (linger_end >= 0 && now_ms() >= linger_end))
				break;
			stash_ids(s, n);
		}
		if (avail >= LINE_MAX_BYTES && !s->discarding) {
			s->line_no++;
			report_bad(s, "line longer than 1048576 bytes");
			s->line_no--; /* counted again when its end is reached */
			s->discarding = 1;
		}
		if (s->discarding)
			s->text_pos = s->text_len; /* drop the over-long line's bytes */
		int truncated;
		int rc = refill(s, &truncated, diag);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			rc = end_of_file(s, truncated, diag);
			if (rc < 0)
				return rc;
			if (rc == 0)
				continue; /* parked: wait for more */
			/* End of a complete file: a last line without '\n'. */
			avail = s->text_len - s->text_pos;
			if (avail > 0 && !s->discarding && !s->read_stopped) {
				char *line = s->text + s->text_pos;
				line[avail] = 0;
				s->text_pos = s->text_len;
				if (take_line(s, line, avail, &s->events[n]))
					n++;
			}
			finish_file(s);
			progress = 1;
		}
	}
	s->st.events += n;
	s->sync_n = n;
	return (int)n;
}

/* Where the next unread record is, in the reading thread's view. */
static void where_now(const struct mfs_source *s, size_t *file, struct fpos *p)
{
	if (s->fd >= 0) {
		*file = s->cur;
		*p = file_pos(s);
		return;
	}
	/* the first file not done, else the last file (done) */
	for (size_t i = 0; i < s->nfiles; i++)
		if (!s->files[i].done) {
			*file = i;
			*p = s->files[i].pos;
			if (p->codec == CODEC_UNKNOWN)
				p->coff = p->dframe = p->doff = 0;
			return;
		}
	*file = s->nfiles ? s->nfiles - 1 : 0;
	if (s->nfiles)
		*p = s->files[*file].pos;
	else
		memset(p, 0, sizeof *p);
}

/* --- positions ------------------------------------------------------------- */

static struct snap snap_now(const struct mfs_source *s)
{
	struct snap x = { "", 0, { 0 } };
	size_t i;
	where_now(s, &i, &x.pos);
	if (i < s->nfiles) {
		x.path = s->files[i].path;
		x.done = s->fd < 0 && s->files[i].done;
	}
	return x;
}

/* --- reader thread --------------------------------------------------------- */

/* Abandon the open (failed) file and go on with the next one. */
static void skip_file_sync(struct mfs_source *s)
{
	if (s->cur >= s->nfiles)
		return;
	s->files[s->cur].done = 1;
	s->files[s->cur].parked = 0;
	close_file(s);
	s->cur++;
}

struct slot {
	mfs_event *events;
	struct evloc *loc;
	char *arena;
	int n; /* events, or a negative error code */
	mfs_diag diag;
	struct snap where;
	mfs_source_stats st;
};

static void *reader_main(void *arg)
{
	struct mfs_source *s = arg;
	for (;;) {
		pthread_mutex_lock(&s->mu);
		while (s->qcount == s->nslots && !s->quit)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->quit) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		struct slot *sl = &s->slots[(s->qhead + s->qcount) % s->nslots];
		pthread_mutex_unlock(&s->mu);

		int n = next_sync(s, &sl->diag);
		if (n > 0) {
			/* copy the IDs out of the text buffer, which moves on */
			char *a = sl->arena;
			for (int k = 0; k < n; k++) {
				mfs_event e = s->events[k];
				memcpy(a, e.user, e.user_len);
				e.user = a;
				a += e.user_len;
				memcpy(a, e.item, e.item_len);
				e.item = a;
				a += e.item_len;
				sl->events[k] = e;
			}
			memcpy(sl->loc, s->evloc, (size_t)n * sizeof *sl->loc);
		}
		sl->n = n;
		sl->where = snap_now(s);
		sl->st = s->st;

		pthread_mutex_lock(&s->mu);
		s->qcount++;
		pthread_cond_broadcast(&s->cv);
		if (n < 0) {
			/* wait for the consumer: skip the file, or try again */
			s->decision = 0;
			while (!s->decision && !s->quit)
				pthread_cond_wait(&s->cv, &s->mu);
			if (s->decision == 1 && !s->quit)
				skip_file_sync(s);
		}
		int end = n == 0;
		if (end)
			s->prod_done = 1;
		pthread_mutex_unlock(&s->mu);
		if (end)
			break;
	}
	return NULL;
}

static int start_thread(struct mfs_source *s)
{
	s->started = 1;
	s->cons_at = snap_now(s); /* before the thread: nothing handed out yet */
	if (pthread_create(&s->th, NULL, reader_main, s) != 0) {
		s->threaded = 0; /* read in the caller's thread instead */
		return 0;
	}
	return 0;
}

static void stop_thread(struct mfs_source *s)
{
	if (!s->threaded || !s->started)
		return;
	atomic_store(&s->stop, 1);
	pthread_mutex_lock(&s->mu);
	s->quit = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->th, NULL);
	s->started = 0;
}

static int next_threaded(struct mfs_source *s, const mfs_event **out, int timeout_ms,
			 mfs_diag *diag)
{
	int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
	pthread_mutex_lock(&s->mu);
	if (s->held) {
		/* the previous batch's slot is free again */
		s->held = NULL;
		s->qhead = (s->qhead + 1) % s->nslots;
		s->qcount--;
		pthread_cond_broadcast(&s->cv);
	}
	if (s->decision == 0 && s->qcount == 0 && s->cons_valid == 2) {
		/* after an error without mfs_source_skip_file: try again */
		s->decision = 2;
		pthread_cond_broadcast(&s->cv);
	}
	while (s->qcount == 0 && !atomic_load(&s->stop)) {
		/* mfs_source_stop takes no lock (signal handlers): look at the flag now and then */
		long wait_ms = 50;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();
			if (left <= 0) {
				pthread_mutex_unlock(&s->mu);
				*out = NULL;
				return -MFS_E_AGAIN;
			}
			if (left < wait_ms)
				wait_ms = (long)left;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += wait_ms * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
	}
	if (s->qcount == 0) {
		pthread_mutex_unlock(&s->mu);
		*out = NULL;
		return 0;
	}
	struct slot *sl = &s->slots[s->qhead];
	pthread_mutex_unlock(&s->mu);
	int n = sl->n;
	s->cons_at = sl->where;
	if (n < 0) {
		if (diag)
			*diag = sl->diag;
		/* the error slot is consumed now; the reader waits for a decision */
		pthread_mutex_lock(&s->mu);
		s->qhead = (s->qhead + 1) % s->nslots;
		s->qcount--;
		s->cons_valid = 2;
		pthread_mutex_unlock(&s->mu);
		return n;
	}
	if (n == 0) {
		/* the end: leave the slot in place, so later calls return 0 too */
		s->cons_st = sl->st;
		s->cons_st.events = s->cons_st.events;
		s->cons_valid = 1;
		*out = sl->events;
		return 0;
	}
	s->held = sl;
	s->cons_st = sl->st;
	s->cons_valid = 1;
	*out = sl->events;
	return n;
}

/* --- public API -------------------------------------------------------------- */

MFS_API void mfs_source_free(mfs_source *s)
{
	if (!s)
		return;
	mfs_ksrc_free(s->ks);
	stop_thread(s);
	dec_stop(s);
	dec_quit(s);
	for (int i = 0; i < NBLK; i++)
		free(s->blk[i].buf);
	if (s->fd > 0)
		close(s->fd);
	for (size_t i = 0; i < s->nfiles; i++)
		free(s->files[i].path);
	free(s->files);
	mfs_iset_free(&s->known);
	mfs_iset_free(&s->dirs);
	mfs_pmap_free(&s->newest);
	for (size_t i = 0; i < s->ndir_paths; i++)
		free(s->dir_paths[i]);
	free(s->dir_paths);
	for (size_t i = 0; i < s->nwds; i++)
		free(s->wds[i].path);
	free(s->wds);
	for (size_t i = 0; i < s->ninputs; i++)
		free(s->inputs[i]);
	free(s->inputs);
	if (s->slots) {
		for (unsigned i = 0; i < s->nslots; i++) {
			free(s->slots[i].events);
			free(s->slots[i].loc);
			free(s->slots[i].arena);
		}
		free(s->slots);
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->cv);
	}
	if (s->ino_fd >= 0)
		close(s->ino_fd);
	mfs_uring_free(s->ring);
	mfs_zstream_free(s->z);
	mfs_gzstream_free(s->gz);
	free(s->own_raw);
	free(s->own_text);
	free(s->events);
	free(s->stash);
	free(s->evloc);
	free(s);
}

MFS_API int mfs_source_open2(mfs_source **out, const char *const *inputs, size_t n_inputs,
			     const mfs_source_config *cfg, const mfs_source_config2 *cfg2,
			     mfs_diag *diag)
{
	if (!out || (!inputs && n_inputs))
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no inputs");
	struct mfs_source *s = calloc(1, sizeof *s);
	if (!s)
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
	int rc = 0;
	s->fd = -1;
	s->ino_fd = -1;
	atomic_init(&s->stop, 0);
	if (cfg)
		s->cfg = *cfg;
	else
		mfs_source_config_default(&s->cfg);
	if (cfg2)
		s->cfg2 = *cfg2;
	else
		mfs_source_config2_default(&s->cfg2);
	if (s->cfg.batch == 0)
		s->cfg.batch = 4096;
	if (s->cfg2.chunk == 0)
		s->cfg2.chunk = CHUNK_DEFAULT;
	if (s->cfg2.depth == 0)
		s->cfg2.depth = 8;
	if (s->cfg2.poll_ms == 0)
		s->cfg2.poll_ms = 200;
	if (s->cfg.format < MFS_FORMAT_AUTO || s->cfg.format > MFS_FORMAT_LAST) {
		rc = mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "unknown format %d", s->cfg.format);
		goto out;
	}
	if (s->cfg2.io < MFS_IO_AUTO || s->cfg2.io > MFS_IO_PREAD || s->cfg2.depth > 64 ||
	    s->cfg2.chunk > (1u << 30) || s->cfg2.queue > 64) {
		rc = mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0,
				  "bad reader settings (io, depth <= 64, chunk <= 1 GiB, queue <= 64)");
		goto out;
	}
	char why[256];
	if (mfs_fields_parse(&s->fields, s->cfg.fields, why, sizeof why) < 0) {
		rc = mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "%s", why);
		goto out;
	}
	s->inputs = calloc(n_inputs ? n_inputs : 1, sizeof *s->inputs);
	if (!s->inputs) {
		rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		goto out;
	}
	if (s->cfg2.follow) /* inotify wakes the wait early and names new files */
		s->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	for (size_t i = 0; i < n_inputs && rc == 0; i++) {
		const char *in = inputs[i];
		s->inputs[i] = strdup(in);
		if (!s->inputs[i]) {
			rc = -MFS_E_NOMEM;
			break;
		}
		s->ninputs++;
		if (strcmp(in, "-") == 0) {
			rc = add_file(s, "-", NULL, (int)i, 0);
			continue;
		}
		struct stat st;
		if (stat(in, &st) < 0) {
			int e = errno;
			rc = mfs_diag_set(diag, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, in, 0, 0,
					  "%s", strerror(e));
			goto out;
		}
		if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))
			s->growable = 1; /* pipes and '-' end for good at their EOF */
		if (S_ISDIR(st.st_mode)) {
			rc = add_dir(s, in, diag, 0, (int)i);
		} else {
			/*
			 * Fail now, before anything is learned, if it cannot be read. A
			 * FIFO is not opened here: its writer would be let in and then
			 * see the reader leave (SIGPIPE), or the open would block.
			 */
			int fd = -1;
			if (S_ISFIFO(st.st_mode) ? access(in, R_OK) < 0
						 : (fd = open(in, O_RDONLY | O_CLOEXEC)) < 0) {
				int e = errno;
				rc = mfs_diag_set(diag, MFS_E_IO, e, in, 0, 0, "%s", strerror(e));
				goto out;
			}
			if (fd >= 0)
				close(fd);
			rc = add_file(s, in, &st, (int)i, 0);
		}
	}
	if (rc < 0) {
		if (rc == -MFS_E_NOMEM)
			mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		goto out;
	}
	/* The backend. */
	s->be = BE_PREAD;
	if (s->cfg2.io != MFS_IO_PREAD) {
		int e = 0;
		rc = mfs_uring_create(&s->ring, s->cfg2.depth, s->cfg2.chunk, &e);
		if (rc == 0) {
			s->be = BE_URING;
		} else if (rc == -MFS_E_UNSUPPORTED && s->cfg2.io == MFS_IO_AUTO) {
			s->fell_back = 1;
			s->fallback_errno = e;
			rc = 0;
		} else {
			rc = mfs_diag_set(diag, -rc, e, NULL, 0, 0, "io_uring is not available: %s",
					  strerror(e));
			goto out;
		}
	}
	s->raw_cap = s->cfg2.chunk < 64 ? 64 : s->cfg2.chunk;
	s->own_raw = malloc(s->raw_cap);
	s->own_text = s->text = malloc(TEXT_CAP + 1);
	s->events = malloc(s->cfg.batch * sizeof *s->events);
	s->evloc = malloc(s->cfg.batch * sizeof *s->evloc);
	if (!s->own_raw || !s->text || !s->events || !s->evloc || mfs_zstream_create(&s->z) < 0 ||
	    mfs_gzstream_create(&s->gz) < 0) {
		rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		goto out;
	}
	s->linger_ms = 5;
	if (s->cfg2.follow) {
		s->stash = malloc(s->cfg.batch * 2 * MFS_ID_MAX + 1);
		if (!s->stash) {
			rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
			goto out;
		}
		/* a file input grows in place: its directory's events wake the wait */
		for (size_t i = 0; s->ino_fd >= 0 && i < s->ninputs; i++) {
			char dir[4096];
			struct stat st;
			const char *in = s->inputs[i];
			if (strcmp(in, "-") == 0 || stat(in, &st) != 0 || S_ISDIR(st.st_mode))
				continue;
			snprintf(dir, sizeof dir, "%s", in);
			char *sl = strrchr(dir, '/');
			if (sl)
				*sl = 0;
			else
				snprintf(dir, sizeof dir, ".");
			inotify_add_watch(s->ino_fd, dir, IN_MODIFY | IN_CLOSE_WRITE);
		}
	}
	if (s->cfg2.queue > 0) {
		s->threaded = 1;
		s->nslots = s->cfg2.queue + 1;
		s->slots = calloc(s->nslots, sizeof *s->slots);
		if (!s->slots) {
			rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
			goto out;
		}
		pthread_mutex_init(&s->mu, NULL);
		pthread_cond_init(&s->cv, NULL);
		for (unsigned i = 0; i < s->nslots; i++) {
			s->slots[i].events = malloc(s->cfg.batch * sizeof(mfs_event));
			s->slots[i].loc = malloc(s->cfg.batch * sizeof(struct evloc));
			s->slots[i].arena = malloc(s->cfg.batch * 2 * MFS_ID_MAX + 1);
			if (!s->slots[i].events || !s->slots[i].loc || !s->slots[i].arena) {
				rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
				goto out;
			}
		}
	}
	s->cur = 0;
	*out = s;
	return 0;
out:
	mfs_source_free(s);
	return rc;
}

MFS_API int mfs_source_open(mfs_source **out, const char *const *inputs, size_t n_inputs,
			    const mfs_source_config *cfg, mfs_diag *diag)
{
	mfs_source_config2 c2;
	mfs_source_config2_default(&c2);
	return mfs_source_open2(out, inputs, n_inputs, cfg, &c2, diag);
}

MFS_API const char *mfs_source_io(const mfs_source *s)
{
	if (s && s->ks)
		return "kafka";
	return s && s->be == BE_URING ? "uring" : "pread";
}

MFS_API int mfs_source_io_fallback(const mfs_source *s, mfs_diag *d)
{
	if (!s || !s->fell_back)
		return 0;
	if (d)
		mfs_diag_set(d, MFS_E_UNSUPPORTED, s->fallback_errno, NULL, 0, 0,
			     "io_uring is not available (%s); reading with pread",
			     strerror(s->fallback_errno));
	return 1;
}

MFS_API void mfs_source_stop(mfs_source *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, 1);
	/* the threaded consumer may sleep on the queue: it polls the flag (no locks here) */
}

MFS_API void mfs_source_skip_file(mfs_source *s)
{
	if (!s || s->ks)
		return;
	if (s->threaded && s->started) {
		pthread_mutex_lock(&s->mu);
		s->decision = 1;
		if (s->cons_valid == 2)
			s->cons_at.done = 1; /* the failed file is abandoned, as skip_file_sync does */
		s->cons_valid = 1;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	skip_file_sync(s);
}

MFS_API int mfs_source_next_wait(mfs_source *s, const mfs_event **out, int timeout_ms,
				 mfs_diag *diag)
{
	if (!s || !out)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "NULL argument");
	if (atomic_load(&s->stop))
		return 0;
	if (s->ks)
		return mfs_ksrc_next(s->ks, out, timeout_ms, s->linger_ms, s->align, diag);
	if (!s->cfg2.follow)
		timeout_ms = -1; /* a finite input never makes the caller wait on nothing */
	if (s->threaded) {
		if (!s->started)
			start_thread(s);
		if (s->threaded)
			return next_threaded(s, out, timeout_ms, diag);
	}
	s->deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;
	s->timed_out = 0;
	int n = next_sync(s, diag);
	s->deadline = 0;
	if (n == 0 && s->timed_out) {
		*out = NULL;
		return -MFS_E_AGAIN;
	}
	*out = s->events;
	return n;
}

MFS_API int mfs_source_next(mfs_source *s, const mfs_event **out, mfs_diag *diag)
{
	return mfs_source_next_wait(s, out, -1, diag);
}

MFS_API int mfs_source_set_linger(mfs_source *s, unsigned ms)
{
	if (!s || ms > 60000)
		return -MFS_E_INVAL;
	s->linger_ms = ms;
	return 0;
}

MFS_API int mfs_source_set_align(mfs_source *s, uint64_t every)
{
	if (!s)
		return -MFS_E_INVAL;
	s->align = every;
	return 0;
}

MFS_API int mfs_source_event_line(const mfs_source *s, size_t i, const char **path,
				  uint64_t *line)
{
	if (!s)
		return -MFS_E_INVAL;
	const struct evloc *loc;
	size_t n;
	if (s->threaded && s->started) {
		if (!s->held)
			return -MFS_E_RANGE;
		loc = s->held->loc;
		n = (size_t)s->held->n;
	} else {
		loc = s->evloc;
		n = s->sync_n;
	}
	if (i >= n)
		return -MFS_E_RANGE;
	if (path)
		*path = loc[i].path;
	if (line)
		*line = loc[i].line;
	return 0;
}

MFS_API void mfs_source_stats_get(const mfs_source *s, mfs_source_stats *st)
{
	if (!s || !st)
		return;
	if (s->ks) {
		mfs_ksrc_stats(s->ks, st);
		return;
	}
	if (s->threaded && s->started) {
		*st = s->cons_st;
		return;
	}
	*st = s->st;
}

static struct snap cons_snap(const mfs_source *s)
{
	/* never the reader thread's state, nor a slot it may be refilling */
	if (s->threaded && s->started)
		return s->cons_at;
	return snap_now(s);
}

MFS_API int mfs_source_where_get(const mfs_source *s, mfs_source_where *w)
{
	if (!s || !w)
		return -MFS_E_INVAL;
	if (s->ks) {
		memset(w, 0, sizeof *w);
		w->path = ""; /* no file: mfs_source_kafka_partition tells the offsets */
		return 0;
	}
	struct snap x = cons_snap(s);
	memset(w, 0, sizeof *w);
	w->path = x.path;
	w->done = x.done;
	w->offset = x.pos.doff;
	w->frame_offset = x.pos.coff;
	w->line = x.pos.line_no;
	w->records = x.pos.records;
	uint64_t part, off;
	w->kafka = mfs_kafka_name(mfs_base_name(x.path), &part, &off);
	if (w->kafka) {
		w->partition = part;
		w->kafka_offset = off + x.pos.records;
	}
	return 0;
}

#define POS_MAGIC "MFSPOS\x01\x00"
#define POS_FIXED (8 + 4 + 4 + 5 * 8 + 4 * 4)

MFS_API int mfs_source_position(const mfs_source *s, void *buf, size_t len)
{
	if (!s)
		return -MFS_E_INVAL;
	if (s->ks)
		return mfs_ksrc_position(s->ks, buf, len);
	struct snap x = cons_snap(s);
	size_t pl = strlen(x.path);
	size_t need = POS_FIXED + pl;
	if (buf && len >= need) {
		uint8_t *p = buf;
		memcpy(p, POS_MAGIC, 8);
		mfs_put32(p + 8, 1);
		mfs_put32(p + 12, (uint32_t)pl);
		mfs_put64(p + 16, x.pos.coff);
		mfs_put64(p + 24, x.pos.dframe);
		mfs_put64(p + 32, x.pos.doff);
		mfs_put64(p + 40, x.pos.line_no);
		mfs_put64(p + 48, x.pos.records);
		mfs_put32(p + 56, (uint32_t)(x.pos.codec + 1));
		mfs_put32(p + 60, (uint32_t)x.pos.format);
		mfs_put32(p + 64, (uint32_t)x.pos.seen_record);
		mfs_put32(p + 68, (uint32_t)x.done);
		memcpy(p + POS_FIXED, x.path, pl);
	}
	return (int)need;
}

MFS_API int mfs_source_seek(mfs_source *s, const void *pos, size_t len, mfs_diag *diag)
{
	if (!s || (!pos && len))
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "NULL argument");
	if (s->ks)
		return mfs_ksrc_seek(s->ks, pos, len, diag);
	if (mfs_kpos_is_kafka(pos, len))
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0,
				    "the position is of Kafka topics, not of files");
	if (s->started || s->fd >= 0)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0,
				    "seek only before the first mfs_source_next");
	const uint8_t *p = pos;
	if (len < POS_FIXED || memcmp(p, POS_MAGIC, 8) != 0 || mfs_get32(p + 8) != 1 ||
	    mfs_get32(p + 12) != len - POS_FIXED)
		return mfs_diag_set(diag, MFS_E_CORRUPT, 0, NULL, 0, 0, "not a reader position");
	size_t pl = len - POS_FIXED;
	struct fpos fp;
	fp.coff = mfs_get64(p + 16);
	fp.dframe = mfs_get64(p + 24);
	fp.doff = mfs_get64(p + 32);
	fp.line_no = mfs_get64(p + 40);
	fp.records = mfs_get64(p + 48);
	fp.codec = (int)mfs_get32(p + 56) - 1;
	fp.format = (int)mfs_get32(p + 60);
	fp.seen_record = (int)mfs_get32(p + 64) != 0;
	int done = mfs_get32(p + 68) != 0;
	if (fp.codec < CODEC_UNKNOWN || fp.codec > CODEC_GZIP || fp.format < MFS_FORMAT_AUTO ||
	    fp.format > MFS_FORMAT_LAST || fp.dframe > fp.doff || fp.coff > fp.doff + (1ull << 62))
		return mfs_diag_set(diag, MFS_E_CORRUPT, 0, NULL, 0, 0, "not a reader position");
	size_t i;
	for (i = 0; i < s->nfiles; i++)
		if (strlen(s->files[i].path) == pl && memcmp(s->files[i].path, p + POS_FIXED, pl) == 0)
			break;
	if (i == s->nfiles) {
		mfs_diag_set(diag, MFS_E_NOTFOUND, 0, NULL, 0, 0,
			     "the position's file %.*s is not among the inputs", (int)(pl > 400 ? 400 : pl),
			     (const char *)p + POS_FIXED);
		return -MFS_E_NOTFOUND;
	}
	for (size_t j = 0; j < i; j++)
		s->files[j].done = 1;
	s->files[i].pos = fp;
	s->files[i].done = done;
	s->cur = 0;
	return 0;
}

/* --- Kafka sources (kafka.c does the work) ------------------------------------ */

MFS_API int mfs_source_open_kafka(mfs_source **out, const mfs_kafka_config *kc,
				  const mfs_source_config *cfg, mfs_diag *diag)
{
	if (!out || !kc)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "NULL argument");
	struct mfs_source *s = calloc(1, sizeof *s);
	if (!s)
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
	int rc;
	s->fd = -1;
	s->ino_fd = -1;
	atomic_init(&s->stop, 0);
	if (cfg)
		s->cfg = *cfg;
	else
		mfs_source_config_default(&s->cfg);
	mfs_source_config2_default(&s->cfg2);
	s->cfg2.follow = 1;
	s->be = BE_PREAD;
	s->linger_ms = 5;
	if (s->cfg.batch == 0)
		s->cfg.batch = 4096;
	if (s->cfg.format < MFS_FORMAT_AUTO || s->cfg.format > MFS_FORMAT_LAST) {
		rc = mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "unknown format %d", s->cfg.format);
		goto out;
	}
	char why[256];
	if (mfs_fields_parse(&s->fields, s->cfg.fields, why, sizeof why) < 0) {
		rc = mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "%s", why);
		goto out;
	}
	rc = mfs_ksrc_open(&s->ks, kc, &s->cfg, &s->fields, &s->stop, diag);
	if (rc < 0)
		goto out;
	*out = s;
	return 0;
out:
	mfs_source_free(s);
	return rc;
}

MFS_API int mfs_source_commit(mfs_source *s, const void *pos, size_t len, mfs_diag *diag)
{
	if (!s || (!pos && len))
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "NULL argument");
	if (!s->ks)
		return 0;
	return mfs_ksrc_commit(s->ks, pos, len, diag);
}

MFS_API int mfs_source_kafka_partition(const mfs_source *s, size_t i, mfs_kafka_partition *p)
{
	if (!s || !s->ks)
		return 0;
	return mfs_ksrc_partition(s->ks, i, p);
}

MFS_API void mfs_source_kafka_watermarks(mfs_source *s, int timeout_ms)
{
	if (s && s->ks)
		mfs_ksrc_watermarks(s->ks, timeout_ms);
}
