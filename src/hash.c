/* hash.c - ID keys and checksums: the only user of xxHash. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "internal.h"

MFS_API uint64_t mfs_hash_id(const void *data, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(data, len, seed);
}

uint64_t mfs_checksum(const void *data, size_t len)
{
	return XXH3_64bits(data, len);
}
