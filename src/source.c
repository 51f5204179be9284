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
 *
 * This file holds the public calls; each stage has its own file (the list
 * is in source_internal.h, which holds the state they share).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gzip.h"
#include "kafka.h"
#include "source_internal.h"
#include "uring.h"
#include "zstd_stage.h"

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

/* --- public API -------------------------------------------------------------- */

MFS_API void mfs_source_free(mfs_source *s)
{
	if (!s)
		return;
	mfs_ksrc_free(s->ks);
	mfs_src_stop_thread(s);
	mfs_src_dec_stop(s);
	mfs_src_dec_quit(s);
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
			rc = mfs_src_add_file(s, "-", NULL, (int)i, 0);
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
			rc = mfs_src_add_dir(s, in, diag, 0, (int)i);
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
			rc = mfs_src_add_file(s, in, &st, (int)i, 0);
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
	mfs_src_skip_file_sync(s);
}

MFS_API int mfs_source_next_wait(mfs_source *s, const mfs_event **out, int timeout_ms,
				 mfs_diag *diag)
{
	if (!s || !out)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "NULL argument");
	if (atomic_load(&s->stop))
		return 0;
	if (s->ks)
		return mfs_ksrc_next(s->ks, out, timeout_ms, s->linger_ms, s->align, s->align_phase,
				     diag);
	if (!s->cfg2.follow)
		timeout_ms = -1; /* a finite input never makes the caller wait on nothing */
	if (s->threaded) {
		if (!s->started)
			mfs_src_start_thread(s);
		if (s->threaded)
			return mfs_src_next_threaded(s, out, timeout_ms, diag);
	}
	s->deadline = timeout_ms >= 0 ? mfs_src_now_ms() + timeout_ms : 0;
	s->timed_out = 0;
	int n = mfs_src_next_sync(s, diag);
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
	return mfs_source_set_align_phase(s, every, 0);
}

int mfs_source_set_align_phase(mfs_source *s, uint64_t every, uint64_t phase)
{
	if (!s)
		return -MFS_E_INVAL;
	s->align = every;
	s->align_phase = every ? phase % every : 0;
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
	return mfs_src_snap_now(s);
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
