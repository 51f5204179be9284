/* gzip.c - streaming gzip (zlib): the only file that includes zlib.h. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "internal.h"
#include "gzip.h"

struct mfs_gzstream {
	z_stream zs;
	int mid; /* inside a member */
};

int mfs_gzip_magic(const void *p, size_t len)
{
	const uint8_t *b = p;
	return len >= 2 && b[0] == 0x1f && b[1] == 0x8b;
}

int mfs_gzstream_create(struct mfs_gzstream **out)
{
	struct mfs_gzstream *z = calloc(1, sizeof *z);
	if (!z)
		return -MFS_E_NOMEM;
	/* 16 + MAX_WBITS: gzip wrapper only. */
	if (inflateInit2(&z->zs, 16 + MAX_WBITS) != Z_OK) {
		free(z);
		return -MFS_E_NOMEM;
	}
	*out = z;
	return 0;
}

void mfs_gzstream_free(struct mfs_gzstream *z)
{
	if (!z)
		return;
	inflateEnd(&z->zs);
	free(z);
}

void mfs_gzstream_reset(struct mfs_gzstream *z)
{
	inflateReset(&z->zs);
	z->mid = 0;
}

int mfs_gzstream_mid_member(const struct mfs_gzstream *z)
{
	return z->mid;
}

int mfs_gzstream_run(struct mfs_gzstream *z, const void *in, size_t in_len, size_t *in_pos,
		     void *out, size_t out_cap, size_t *out_pos, const char **why)
{
	while ((*in_pos < in_len || z->mid) && *out_pos < out_cap) {
		size_t ia = in_len - *in_pos, oa = out_cap - *out_pos;
		if (ia > UINT_MAX)
			ia = UINT_MAX;
		if (oa > UINT_MAX)
			oa = UINT_MAX;
		z->zs.next_in = (Bytef *)(uintptr_t)((const uint8_t *)in + *in_pos);
		z->zs.avail_in = (uInt)ia;
		z->zs.next_out = (Bytef *)out + *out_pos;
		z->zs.avail_out = (uInt)oa;
		int r = inflate(&z->zs, Z_NO_FLUSH);
		*in_pos += ia - z->zs.avail_in;
		*out_pos += oa - z->zs.avail_out;
		if (ia != z->zs.avail_in)
			z->mid = 1;
		if (r == Z_STREAM_END) {
			inflateReset(&z->zs);
			z->mid = 0;
			return 1;
		}
		if (r == Z_BUF_ERROR || (ia == z->zs.avail_in && oa == z->zs.avail_out))
			break; /* needs more input or more room */
		if (r != Z_OK) {
			*why = z->zs.msg ? z->zs.msg : (r == Z_MEM_ERROR ? "out of memory" : "corrupt data");
			return -MFS_E_CORRUPT;
		}
	}
	/* Output may be pending inside zlib with no input left: let the caller call again. */
	return 0;
}
