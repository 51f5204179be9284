/*
 * kafka.h - the Kafka source (kafka.c, the only file that includes
 * librdkafka's headers). Internal: source.c's public calls dispatch here
 * when a source was opened with mfs_source_open_kafka().
 */
#ifndef MFS_KAFKA_H
#define MFS_KAFKA_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "mfstream.h"
#include "parse.h"

struct mfs_ksrc;

/* Open a consumer as kc says; events parsed as cfg says (format, batch, on_bad).
 * stop is polled while waiting (mfs_source_stop sets it). */
int mfs_ksrc_open(struct mfs_ksrc **out, const mfs_kafka_config *kc, const mfs_source_config *cfg,
		  const struct mfs_fields *fields, atomic_int *stop, mfs_diag *d);
void mfs_ksrc_free(struct mfs_ksrc *k);

/*
 * The next batch (as mfs_source_next_wait): > 0 events in *ev, -MFS_E_AGAIN
 * when none came within timeout_ms (< 0: wait until one comes or stop), 0
 * once stopped. No batch crosses a multiple of align events (0: off), counted
 * from phase events before the open; a batch with events waits at most
 * linger_ms for more.
 */
int mfs_ksrc_next(struct mfs_ksrc *k, const mfs_event **ev, int timeout_ms, unsigned linger_ms,
		  uint64_t align, uint64_t phase, mfs_diag *d);
void mfs_ksrc_stats(const struct mfs_ksrc *k, mfs_source_stats *st);
int mfs_ksrc_position(const struct mfs_ksrc *k, void *buf, size_t len);
int mfs_ksrc_seek(struct mfs_ksrc *k, const void *pos, size_t len, mfs_diag *d);
int mfs_ksrc_commit(struct mfs_ksrc *k, const void *pos, size_t len, mfs_diag *d);
int mfs_ksrc_partition(const struct mfs_ksrc *k, size_t i, mfs_kafka_partition *p);
/* Wait at most timeout_ms for the fetchers to tell every assigned partition's end. */
void mfs_ksrc_watermarks(struct mfs_ksrc *k, int timeout_ms);

/* 1 if pos is a Kafka position blob (version 2), else 0. */
int mfs_kpos_is_kafka(const void *pos, size_t len);

#endif
