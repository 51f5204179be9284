/*
 * chunk.h - the chunks of the model topic (chunk.c): a model file (whole or
 * delta) cut into ordered pieces that each fit a Kafka message, and the edge
 * state that puts them back together and keeps the newest whole snapshot
 * with the deltas after it. No librdkafka here: publish.c moves the bytes.
 *
 * A chunk is a 96-byte header and up to MFS_CHUNK_PAYLOAD bytes of the file:
 *   0  magic "MFSCHNK1"        48 model_events of the state
 *   8  u32 version (1)         56 u64 learner write time (ns, CLOCK_REALTIME)
 *  12  u32 kind (0 full, 1 delta)  64 u32 payload length
 *  16  u64 snapshot id         68 u32 0
 *  24  u64 delta seq (0: full) 72 u64 XXH3 of the payload
 *  32  u32 chunk index         80 u64 0
 *  36  u32 chunk count         88 u64 XXH3 of bytes 0..87
 *  40  u64 total length of the file
 * Every chunk but the last holds exactly MFS_CHUNK_PAYLOAD bytes. A snapshot
 * id names one whole snapshot (newer ones are larger); delta seq j (1, 2, ...)
 * applies on that snapshot after deltas 1..j-1. Chunks may arrive in any
 * order and from any partition: the header says where each belongs.
 */
#ifndef MFS_CHUNK_H
#define MFS_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "mfstream.h"

#define MFS_CHUNK_HEADER 96
#ifndef MFS_CHUNK_PAYLOAD /* the fuzz build cuts small chunks (-DMFS_CHUNK_PAYLOAD=256u) */
#define MFS_CHUNK_PAYLOAD (512u * 1024u)
#endif
#define MFS_CHUNK_FULL 0u
#define MFS_CHUNK_DELTA 1u

struct mfs_chunk_info {
	uint32_t kind;
	uint64_t snap, seq;
	uint32_t index, count;
	uint64_t total, events, write_ns;
	uint32_t len; /* payload bytes */
};

/* Chunks of a file of total bytes (at least 1). */
uint32_t mfs_chunk_count(uint64_t total);

/* Write the header of chunk ci (its payload at payload, ci->len bytes) into h. */
void mfs_chunk_header(uint8_t h[MFS_CHUNK_HEADER], const struct mfs_chunk_info *ci,
		      const void *payload);

/*
 * Parse one message. Returns 0 with *ci and *payload (inside msg), or -1 with
 * *why (a static string): not a chunk, damaged header or payload, impossible
 * sizes. Checks only the chunk itself.
 */
int mfs_chunk_parse(const void *msg, size_t len, struct mfs_chunk_info *ci,
		    const uint8_t **payload, const char **why);


/* --- the edge: chunks in, whole models out --------------------------------- */

struct mfs_edge;

/* max_total: the largest file accepted (a declared total above it is refused);
 * the chunks pending, complete or not, are bounded by twice that. */
int mfs_edge_create(struct mfs_edge **out, uint64_t max_total);
void mfs_edge_free(struct mfs_edge *e);

/*
 * One message of the model topic; where names it in reports ("topic T
 * partition P offset O"). A damaged or refused chunk is passed to on_bad and
 * counted. Returns 1 when it completed a file that changes the chain (a newer
 * whole snapshot, or the next delta), else 0.
 */
int mfs_edge_add(struct mfs_edge *e, const void *msg, size_t len, const char *where,
		 mfs_bad_record_fn on_bad, void *ctx);

/*
 * The model of the chain, if it changed since the last call: the newest
 * whole snapshot with its deltas applied in order. A delta that does not
 * apply, or a gap in the sequence (a delta missing or damaged while later ones
 * arrived), is reported once through on_bad: the chain stops before it until
 * the next whole snapshot. Returns 1 with *out (and *write_ns, the learner's
 * write time of the newest file in it), 0 when nothing changed, or < 0.
 */
int mfs_edge_build(struct mfs_edge *e, mfs_model **out, const char *kernel, uint64_t *write_ns,
		   mfs_bad_record_fn on_bad, void *ctx, mfs_diag *diag);

/*
 * Whether the edge waits for chunks: a file has some of its chunks and not
 * all, or a delta waits for an earlier one. (The reader's stall watchdog.)
 */
int mfs_edge_waiting(const struct mfs_edge *e);

struct mfs_edge_stats {
	uint64_t chunks, bad_chunks, fulls, deltas, gaps, dropped_sets;
	uint64_t snap, seq; /* the chain: snapshot and last delta in it */
};
void mfs_edge_stats_get(const struct mfs_edge *e, struct mfs_edge_stats *st);

#endif
