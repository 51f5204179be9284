/*
 * fuzz_chunks - the model topic's edge: messages -> mfs_chunk_parse and the
 * reassembly (chunks of any set in any order, duplicates, conflicting sizes,
 * stale snapshots, the memory bound) -> mfs_edge_build (a whole snapshot
 * loaded from memory, its deltas applied). Input: messages, each a 2-byte
 * little-endian length and that many bytes; the edge is built after every
 * message that changes its chain and at the end. Chunks are 256 bytes in
 * this build and checksums are not checked (MFS_FUZZ_IGNORE_CHECKSUMS), so
 * that a fuzzed chunk reaches the reassembly and the loader.
 * Seeds: corpus_chunks/, a small checkpoint chain (whole + 3 deltas) cut into
 * chunks, in order, shuffled, and with a delta missing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "model_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void build(struct mfs_edge *e)
{
	mfs_model *m = NULL;
	uint64_t wns;
	mfs_diag d;
	if (mfs_edge_build(e, &m, "scalar", &wns, NULL, NULL, &d) == 1) {
		mfs_model_info mi;
		mfs_model_info_get(m, &mi);
		float p;
		mfs_model_predict(m, "1", 1, "2", 1, &p);
		mfs_model_free(m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_edge *e;
	if (mfs_edge_create(&e, 1u << 16) < 0) /* small: the bound is reached too */
		return 0;
	size_t off = 0;
	while (off + 2 <= size) {
		size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
		off += 2;
		if (len > size - off)
			len = size - off;
		uint8_t *msg = malloc(len ? len : 1); /* exact size: reads past it are caught */
		if (!msg)
			break;
		memcpy(msg, data + off, len);
		off += len;
		if (mfs_edge_add(e, msg, len, "fuzz", NULL, NULL) > 0)
			build(e);
		free(msg);
	}
	build(e);
	struct mfs_edge_stats st;
	mfs_edge_stats_get(e, &st);
	mfs_edge_free(e);
	return 0;
}
