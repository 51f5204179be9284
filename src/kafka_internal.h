/*
 * kafka_internal.h - what the Kafka consumer's two files share (not public):
 * kafka.c (settings, the consumer, its partitions and rebalances, notices)
 * and kafka_read.c (messages -> events, positions, commits, lag).
 */
#ifndef MFS_KAFKA_INTERNAL_H
#define MFS_KAFKA_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "internal.h"
#include "kafka.h"

#define POLL_MS 100               /* longest single wait, so that stop is seen */
#define META_RETRY_MS 1000        /* no partitions yet: ask again this often */
#define META_REFRESH_MS 30000     /* new partitions of the topics */
#define POS_MAGIC "MFSPOS\x01\x00"
#define KPOS_VERSION 2

struct mfs_kafka_config {
	char *brokers, *topics, *group, *instance;
	int latest;
	unsigned notice_ms;
	rd_kafka_conf_t *conf; /* the librdkafka properties set so far */
	mfs_bad_record_fn notice;
	void *notice_ctx;
	void (*revoke)(void *);
	void *revoke_ctx;
};

struct kstate {
	int64_t off;      /* next message not taken */
	uint64_t lines;   /* lines of that message taken */
	uint64_t events, skipped;
};

struct kpart {
	char *topic;
	int32_t part;
	int assigned;
	int known;        /* the seek position holds it */
	struct kstate out, rd;
};

struct mfs_ksrc {
	struct mfs_kafka_config kc; /* strings owned (copied) */
	mfs_source_config cfg;
	struct mfs_fields fields;
	atomic_int *stop;
	rd_kafka_t *rk;
	char **topics;
	size_t ntopics;
	int grouped;     /* subscribe (group) or assign ourselves */
	int has_group_id; /* commits possible */
	int64_t next_meta; /* manual assignment: next metadata request (ms) */
	int meta_ok;     /* partitions found at least once */

	struct kpart *parts;
	size_t nparts, cap_parts;
	size_t last_hit;

	/* the batch in progress */
	mfs_event *events;
	uint32_t *evp;    /* partition index of each event */
	size_t n;
	char *arena;      /* message text copied, NUL-terminated lines */
	size_t arena_len, arena_cap;
	rd_kafka_message_t *pend; /* message being split into lines */
	size_t pend_pos;          /* its next unread byte */
	size_t pend_part;

	mfs_source_stats st;
	uint64_t handed; /* events handed out since open (align) */

	/* notices */
	char err_text[256];
	uint64_t err_count;
	int64_t last_notice;
	int64_t last_gap; /* the last notice of offsets not in the log */
	int down;
	int debug; /* the "debug" property is set: librdkafka's log lines are notices */
};

static inline int64_t mfs_ksrc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* kafka.c */
void mfs_ksrc_notice(struct mfs_ksrc *k, int code, const char *fmt, ...) MFS_PRINTF(3, 4);
void mfs_ksrc_note_error(struct mfs_ksrc *k, const char *what);
void mfs_ksrc_flush_errors(struct mfs_ksrc *k);
int mfs_ksrc_assign_all(struct mfs_ksrc *k, int timeout_ms);
struct kpart *mfs_ksrc_find_part(struct mfs_ksrc *k, const char *topic, size_t tlen, int32_t part,
			       int add);
int mfs_ksrc_has_pos(const struct kpart *p);

#endif
