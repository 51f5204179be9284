/* zstd.c - streaming and one-shot zstd: the only user of zstd.h. */
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <zstd.h>

#include "internal.h"
#include "zstd_stage.h"

struct mfs_zstream {
	ZSTD_DCtx *dctx;
	int mid_frame; /* last ZSTD_decompressStream returned > 0 */
};

int mfs_zstd_magic(const void *p, size_t len)
{
	if (len < 4)
		return 0;
	const uint8_t *b = p;
	uint32_t magic = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
			 (uint32_t)b[3] << 24;
	return magic == ZSTD_MAGICNUMBER || (magic & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START;
}

int mfs_zstream_create(struct mfs_zstream **out)
{
	struct mfs_zstream *z = calloc(1, sizeof *z);
	if (!z)
		return -MFS_E_NOMEM;
	z->dctx = ZSTD_createDCtx();
	if (!z->dctx) {
		free(z);
		return -MFS_E_NOMEM;
	}
	*out = z;
	return 0;
}

void mfs_zstream_free(struct mfs_zstream *z)
{
	if (!z)
		return;
	ZSTD_freeDCtx(z->dctx);
	free(z);
}

void mfs_zstream_reset(struct mfs_zstream *z)
{
	ZSTD_DCtx_reset(z->dctx, ZSTD_reset_session_only);
	z->mid_frame = 0;
}

int mfs_zstream_run(struct mfs_zstream *z, const void *in, size_t in_len, size_t *in_pos,
		    void *out, size_t out_cap, size_t *out_pos, const char **why)
{
	ZSTD_inBuffer ib = { in, in_len, *in_pos };
	ZSTD_outBuffer ob = { out, out_cap, *out_pos };
	int ended = 0;
	/* Until the output is full, the input used up, or a frame ends. */
	while (ob.pos < ob.size && (ib.pos < ib.size || z->mid_frame)) {
		size_t ip = ib.pos, op = ob.pos;
		size_t r = ZSTD_decompressStream(z->dctx, &ob, &ib);
		if (ZSTD_isError(r)) {
			*why = ZSTD_getErrorName(r);
			*in_pos = ib.pos;
			*out_pos = ob.pos;
			return -MFS_E_CORRUPT;
		}
		if (r == 0) {
			/* a frame (or skippable frame) ended exactly at ib.pos */
			ended = z->mid_frame || ib.pos != ip;
			z->mid_frame = 0;
			if (ended)
				break;
		} else {
			z->mid_frame = 1;
		}
		if (ib.pos == ip && ob.pos == op)
			break; /* needs more input */
	}
	*in_pos = ib.pos;
	*out_pos = ob.pos;
	return ended;
}

int mfs_zstream_mid_frame(const struct mfs_zstream *z)
{
	return z->mid_frame;
}

int mfs_zstd_compress(const void *src, size_t len, int level, void **dst, size_t *dst_len)
{
	size_t cap = ZSTD_compressBound(len);
	void *b = malloc(cap ? cap : 1);
	if (!b)
		return -MFS_E_NOMEM;
	size_t r = ZSTD_compress(b, cap, src, len, level);
	if (ZSTD_isError(r)) {
		free(b);
		return -MFS_E_INVAL;
	}
	*dst = b;
	*dst_len = r;
	return 0;
}

int mfs_zstd_check_frame(const void *src, size_t len, uint64_t raw_len, const char **why)
{
	size_t fl = ZSTD_findFrameCompressedSize(src, len);
	if (ZSTD_isError(fl) || fl != len) {
		*why = "is not one whole zstd frame";
		return -MFS_E_CORRUPT;
	}
	unsigned long long cs = ZSTD_getFrameContentSize(src, len);
	if (cs == ZSTD_CONTENTSIZE_ERROR || (cs != ZSTD_CONTENTSIZE_UNKNOWN && cs != raw_len)) {
		*why = "holds another size than its table entry says";
		return -MFS_E_CORRUPT;
	}
	/* each block yields at most 128 KiB and costs at least 4 bytes */
	if (raw_len / 32768 > len) {
		*why = "is too short to decompress to the size its table entry says";
		return -MFS_E_CORRUPT;
	}
	return 0;
}

int mfs_zstd_decompress(const void *src, size_t len, void *dst, size_t raw_len)
{
	size_t r = ZSTD_decompress(dst, raw_len, src, len);
	if (ZSTD_isError(r) || r != raw_len)
		return -MFS_E_CORRUPT;
	return 0;
}

struct mfs_zwriter {
	ZSTD_CCtx *cctx;
	int fd;
	size_t frame_bytes, in_frame;
	char *out;
	size_t out_cap;
};

static int zw_flush_out(struct mfs_zwriter *w, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t r = write(w->fd, w->out + off, n - off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -MFS_E_IO;
		}
		off += (size_t)r;
	}
	return 0;
}

MFS_API int mfs_zwriter_open(struct mfs_zwriter **out, int fd, int level, size_t frame_bytes)
{
	struct mfs_zwriter *w = calloc(1, sizeof *w);
	if (!w)
		return -MFS_E_NOMEM;
	w->cctx = ZSTD_createCCtx();
	w->out_cap = ZSTD_CStreamOutSize();
	w->out = malloc(w->out_cap);
	if (!w->cctx || !w->out) {
		ZSTD_freeCCtx(w->cctx);
		free(w->out);
		free(w);
		return -MFS_E_NOMEM;
	}
	/* Content checksums (as the zstd CLI writes them) make damage detectable. */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1))) {
		ZSTD_freeCCtx(w->cctx);
		free(w->out);
		free(w);
		return -MFS_E_INVAL;
	}
	w->fd = fd;
	w->frame_bytes = frame_bytes;
	*out = w;
	return 0;
}

static int zw_run(struct mfs_zwriter *w, const void *buf, size_t len, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer in = { buf, len, 0 };
	for (;;) {
		ZSTD_outBuffer ob = { w->out, w->out_cap, 0 };
		size_t r = ZSTD_compressStream2(w->cctx, &ob, &in, mode);
		if (ZSTD_isError(r))
			return -MFS_E_INVAL;
		if (zw_flush_out(w, ob.pos) < 0)
			return -MFS_E_IO;
		if (mode == ZSTD_e_continue ? in.pos == in.size : r == 0)
			return 0;
	}
}

MFS_API int mfs_zwriter_write(struct mfs_zwriter *w, const void *buf, size_t len)
{
	int rc = zw_run(w, buf, len, ZSTD_e_continue);
	if (rc < 0)
		return rc;
	w->in_frame += len;
	if (w->frame_bytes && w->in_frame >= w->frame_bytes) {
		rc = zw_run(w, NULL, 0, ZSTD_e_end);
		w->in_frame = 0;
	}
	return rc;
}

MFS_API int mfs_zwriter_close(struct mfs_zwriter *w)
{
	if (!w)
		return 0;
	int rc = zw_run(w, NULL, 0, ZSTD_e_end);
	ZSTD_freeCCtx(w->cctx);
	free(w->out);
	free(w);
	return rc;
}
