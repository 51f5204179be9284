/* zstd_stage.h - zstd frames: the only part of mfstream that includes zstd.h. Internal. */
#ifndef MFS_ZSTD_STAGE_H
#define MFS_ZSTD_STAGE_H

#include <stddef.h>
#include <stdint.h>

#include "mfstream.h"

/* Whether the bytes begin a zstd frame or a skippable frame (needs 4 bytes). */
int mfs_zstd_magic(const void *p, size_t len);

struct mfs_zstream;

int mfs_zstream_create(struct mfs_zstream **out);
void mfs_zstream_free(struct mfs_zstream *z);
/* Forget any partial frame (a new file). */
void mfs_zstream_reset(struct mfs_zstream *z);

/*
 * Decompress from in[*in_pos..in_len) into out[*out_pos..out_cap), advancing
 * both positions. Frames may be split anywhere and concatenated; skippable
 * frames are skipped. Stops after a frame that ends (returns 1: *in_pos is then
 * a frame boundary, a point the stream can be restarted from); otherwise
 * returns 0 when the input is used up or the output full; or -MFS_E_CORRUPT
 * with a static reason in *why.
 */
int mfs_zstream_run(struct mfs_zstream *z, const void *in, size_t in_len, size_t *in_pos,
		    void *out, size_t out_cap, size_t *out_pos, const char **why);

/* Whether the last call ended in the middle of a frame (input truncated if at EOF). */
int mfs_zstream_mid_frame(const struct mfs_zstream *z);

/* Compress src into a malloc'd buffer (*dst, *dst_len). 0 or -MFS_E_NOMEM/-MFS_E_INVAL. */
int mfs_zstd_compress(const void *src, size_t len, int level, void **dst, size_t *dst_len);

/*
 * Whether src[0..len) can be one zstd frame that decompresses to raw_len
 * bytes, checked from its headers alone (before anything is allocated for
 * it): exactly one frame fills len, its content size (when it records one)
 * is raw_len, and raw_len is no more than len bytes of blocks can produce
 * (an RLE block of 128 KiB costs at least 4 bytes). 0, or -MFS_E_CORRUPT with
 * a static reason in *why.
 */
int mfs_zstd_check_frame(const void *src, size_t len, uint64_t raw_len, const char **why);

/* Decompress exactly raw_len bytes of one frame. 0, or -MFS_E_CORRUPT. */
int mfs_zstd_decompress(const void *src, size_t len, void *dst, size_t raw_len);


/* The streaming zstd writer (mfs_zwriter_open/write/close) is public: mfstream.h. */

#endif
