/*
 * publish.h - the model topic's reader for edge servers (publish.c, which
 * with kafka.c is the only file that includes librdkafka's headers). The
 * publisher itself is public (mfs_publisher_* in mfstream.h).
 */
#ifndef MFS_PUBLISH_H
#define MFS_PUBLISH_H

#include <stdint.h>

#include "chunk.h"
#include "mfstream.h"

struct mfs_ktail;

/* A consumer of every partition of topic from its beginning (no group is
 * joined, nothing committed). Waits at most timeout_ms for the topic's metadata. */
int mfs_ktail_open(struct mfs_ktail **out, const char *brokers, const char *topic,
		   int timeout_ms, mfs_diag *diag);
void mfs_ktail_free(struct mfs_ktail *t);

/*
 * Feed what has arrived into e: waits at most timeout_ms for a first message,
 * then takes those already fetched. Broker errors go to on_bad (once per
 * kind until it recovers). Returns the number of chain changes (see
 * mfs_edge_add).
 */
int mfs_ktail_poll(struct mfs_ktail *t, struct mfs_edge *e, int timeout_ms,
		   mfs_bad_record_fn on_bad, void *ctx);

/* 1 once every partition has been read up to the end it had at open. */
int mfs_ktail_caught_up(const struct mfs_ktail *t);

#endif
