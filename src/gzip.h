/* gzip.h - gzip members (zlib): the only part of mfstream that includes zlib.h. Internal. */
#ifndef MFS_GZIP_H
#define MFS_GZIP_H

#include <stddef.h>

/* Whether the bytes begin a gzip member (needs 2 bytes). */
int mfs_gzip_magic(const void *p, size_t len);

struct mfs_gzstream;
int mfs_gzstream_create(struct mfs_gzstream **out);
void mfs_gzstream_free(struct mfs_gzstream *z);
void mfs_gzstream_reset(struct mfs_gzstream *z);

/*
 * Inflate from in[*in_pos..in_len) into out[*out_pos..out_cap), advancing
 * both. Members may be split anywhere and concatenated. Returns 1 when a
 * member ended exactly at *in_pos (the caller may note a restart point), 0
 * otherwise, or -MFS_E_CORRUPT with a static reason in *why.
 */
int mfs_gzstream_run(struct mfs_gzstream *z, const void *in, size_t in_len, size_t *in_pos,
		     void *out, size_t out_cap, size_t *out_pos, const char **why);

/* Whether the input so far ends inside a member (truncated if at the end). */
int mfs_gzstream_mid_member(const struct mfs_gzstream *z);

#endif
