/*
 * source_fetch.c - the open file of a source -> raw bytes.
 *
 * Opens the file at its restart point, reads it through io_uring (uring.c)
 * or pread/read, and tells its codec from the magic bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gzip.h"
#include "source_internal.h"
#include "uring.h"
#include "zstd_stage.h"

void mfs_src_push_bound(struct mfs_source *s, uint64_t c, uint64_t d)
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
struct fpos mfs_src_file_pos(const struct mfs_source *s)
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

int mfs_src_open_file(struct mfs_source *s, mfs_diag *d)
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
	mfs_src_push_bound(s, r->coff, r->dframe);
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
ssize_t mfs_src_fetch_raw(struct mfs_source *s, const char *path, mfs_diag *d)
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

ssize_t mfs_src_fetch(struct mfs_source *s, mfs_diag *d)
{
	ssize_t r = mfs_src_fetch_raw(s, mfs_src_path(s), d);
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
int mfs_src_sniff(struct mfs_source *s, mfs_diag *d)
{
	uint8_t m[10];
	size_t have = 0;
	if (s->is_reg) {
		ssize_t r;
		do
			r = pread(s->fd, m, sizeof m, 0);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			return mfs_diag_set(d, MFS_E_IO, errno, mfs_src_path(s), 0, 0, "read failed: %s",
					    strerror(errno));
		have = (size_t)r;
		if (have < 4 && !mfs_src_file_complete(s, s->cur))
			return 0;
	} else {
		/* A pipe: the first bytes read stay in raw and are decoded next. */
		while (s->raw_len < 4) {
			ssize_t r = read_stoppable(s, s->own_raw + s->raw_len, s->raw_cap - s->raw_len);
			if (r < 0)
				return mfs_diag_set(d, MFS_E_IO, errno, mfs_src_path(s), 0, 0,
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
		return mfs_diag_set(d, MFS_E_UNSUPPORTED, 0, mfs_src_path(s), 0, 0,
				    "the file is %s-compressed (by its magic bytes), which is not "
				    "supported: decompress it, or recompress it with zstd or gzip",
				    foreign);
	s->codec = mfs_zstd_magic(m, have) ? CODEC_ZSTD
		   : mfs_gzip_magic(m, have) ? CODEC_GZIP
					     : CODEC_PLAIN;
	return 1;
}
