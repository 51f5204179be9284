/*
 * publish.c - the Kafka model topic: the learner's publisher (checkpoint
 * files cut into chunks, chunk.c, produced idempotently) and the edge's
 * reader of every partition (mfs_ktail, for serve.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "chunk.h"
#include "model_internal.h"
#include "publish.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* librdkafka's own log lines: dropped (what matters comes through the error and
 * delivery callbacks, said through the caller's function) */
static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	(void)level;
	(void)fac;
	(void)buf;
}

/* --- the publisher -------------------------------------------------------------- */

struct mfs_publisher {
	rd_kafka_t *rk;
	char *topic;
	unsigned full_every;
	uint64_t snap;       /* the snapshot the deltas apply on (0: none sent yet) */
	uint64_t seq;        /* the last delta's sequence */
	int lost;            /* a file was not (or may not be) delivered: next is whole */
	mfs_bad_record_fn on_error;
	void *ctx;
	mfs_publisher_stats st;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	struct mfs_publisher *p = opaque;
	if (!m->err) {
		p->st.delivered++;
		return;
	}
	if (!p->lost)
		p->st.failures++; /* one file lost (its other chunks are of the same) */
	p->lost = 1;
	mfs_diag_report(p->on_error, p->ctx, MFS_E_IO, p->topic, 0,
	    "a model chunk was not delivered: %s (the next file published is whole)",
	    rd_kafka_err2str(m->err));
}

static void on_pub_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk;
	struct mfs_publisher *p = opaque;
	mfs_diag_report(p->on_error, p->ctx, MFS_E_IO, p->topic, 0, "kafka: %s (%s)", reason,
	    rd_kafka_err2name((rd_kafka_resp_err_t)err));
}

MFS_API int mfs_publisher_open(mfs_publisher **out, const char *target, const char *const *props,
			       size_t n_props, unsigned full_every, mfs_bad_record_fn on_error,
			       void *ctx, mfs_diag *diag)
{
	if (!out || !target)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no publish target");
	const char *slash = strrchr(target, '/');
	if (!slash || slash == target || !slash[1])
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0,
				    "publish target \"%s\" is not BROKERS/TOPIC", target);
	struct mfs_publisher *p = calloc(1, sizeof *p);
	char *brokers = strndup(target, (size_t)(slash - target));
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	int rc;
	if (!p || !brokers || !conf || !(p->topic = strdup(slash + 1))) {
		rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		goto fail;
	}
	p->full_every = full_every ? full_every : 10;
	p->on_error = on_error;
	p->ctx = ctx;
	char err[512];
	const char *fixed[][2] = {
		{ "bootstrap.servers", brokers },
		{ "enable.idempotence", "true" },
		{ "linger.ms", "5" },
	};
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
		if (rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], err, sizeof err) !=
		    RD_KAFKA_CONF_OK) {
			rc = mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "kafka %s: %s",
					  fixed[i][0], err);
			goto fail;
		}
	for (size_t i = 0; i < n_props; i++) {
		const char *eq = props[i] ? strchr(props[i], '=') : NULL;
		if (!eq || eq == props[i]) {
			rc = mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0,
					  "producer property \"%s\" is not key=value",
					  props[i] ? props[i] : "");
			goto fail;
		}
		char key[256];
		snprintf(key, sizeof key, "%.*s", (int)(eq - props[i]), props[i]);
		if (rd_kafka_conf_set(conf, key, eq + 1, err, sizeof err) != RD_KAFKA_CONF_OK) {
			rc = mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "kafka %s: %s", key, err);
			goto fail;
		}
	}
	rd_kafka_conf_set_opaque(conf, p);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_log_cb(conf, quiet_log);
	rd_kafka_conf_set_error_cb(conf, on_pub_error);
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (!p->rk) {
		rc = mfs_diag_set(diag, MFS_E_IO, 0, NULL, 0, 0, "kafka producer: %s", err);
		goto fail;
	}
	free(brokers);
	*out = p;
	return 0;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	free(brokers);
	if (p)
		free(p->topic);
	free(p);
	return rc;
}

MFS_API int mfs_publisher_want_full(const mfs_publisher *p)
{
	return p && (p->snap == 0 || p->lost || p->seq + 1 >= p->full_every);
}

/* The whole file at path into *buf (malloc'd). */
static int read_file(const char *path, uint8_t **buf, size_t *len, mfs_diag *d)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return mfs_diag_set(d, MFS_E_IO, e, path, 0, 0, "cannot read the file to publish: %s",
				    strerror(e));
	}
	size_t n = (size_t)st.st_size;
	uint8_t *b = malloc(n ? n : 1);
	if (!b) {
		close(fd);
		return mfs_diag_set(d, MFS_E_NOMEM, 0, path, 0, 0, "out of memory");
	}
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, b + got, n - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r < 0 ? errno : 0;
			close(fd);
			free(b);
			return mfs_diag_set(d, MFS_E_IO, e, path, 0, got,
					    "cannot read the file to publish: %s",
					    e ? strerror(e) : "it shrank");
		}
		got += (size_t)r;
	}
	close(fd);
	*buf = b;
	*len = n;
	return 0;
}

MFS_API int mfs_publisher_send(mfs_publisher *p, const char *path, int full, uint64_t events,
			       mfs_diag *diag)
{
	if (!p || !path)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no publisher or path");
	mfs_publisher_poll(p);
	if (!full && (p->snap == 0 || p->lost)) {
		p->st.skipped++; /* the edges could not apply it */
		return 0;
	}
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = read_file(path, &buf, &len, diag);
	if (rc < 0) {
		p->st.failures++;
		p->lost = 1;
		return rc;
	}
	uint64_t t = now_ns();
	struct mfs_chunk_info ci = { .kind = full ? MFS_CHUNK_FULL : MFS_CHUNK_DELTA,
				     .total = len, .events = events, .write_ns = t };
	if (full) {
		/* a snapshot ID newer than any before it, across restarts (the clock) */
		ci.snap = t > p->snap ? t : p->snap + 1;
		ci.seq = 0;
	} else {
		ci.snap = p->snap;
		ci.seq = p->seq + 1;
	}
	ci.count = mfs_chunk_count(len);
	for (uint32_t i = 0; i < ci.count; i++) {
		ci.index = i;
		uint64_t off = (uint64_t)i * MFS_CHUNK_PAYLOAD;
		ci.len = (uint32_t)(len - off > MFS_CHUNK_PAYLOAD ? MFS_CHUNK_PAYLOAD : len - off);
		uint8_t *msg = malloc(MFS_CHUNK_HEADER + (size_t)ci.len);
		if (!msg) {
			rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, path, 0, 0, "out of memory");
			break;
		}
		memcpy(msg + MFS_CHUNK_HEADER, buf + off, ci.len);
		mfs_chunk_header(msg, &ci, msg + MFS_CHUNK_HEADER);
		char key[64];
		int kl = full ? snprintf(key, sizeof key, "full/%u", i)
			      : snprintf(key, sizeof key, "delta/%llu/%u", (unsigned long long)ci.seq, i);
		rd_kafka_resp_err_t e;
		for (;;) {
			e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(p->topic),
					      RD_KAFKA_V_KEY(key, (size_t)kl),
					      RD_KAFKA_V_VALUE(msg, MFS_CHUNK_HEADER + (size_t)ci.len),
					      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END);
			if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
				break;
			rd_kafka_poll(p->rk, 10); /* the queue drains as the brokers answer */
		}
		if (e) {
			free(msg);
			rc = mfs_diag_set(diag, MFS_E_IO, 0, p->topic, 0, 0,
					  "cannot produce to the model topic: %s", rd_kafka_err2str(e));
			break;
		}
		p->st.chunks++;
		p->st.bytes += MFS_CHUNK_HEADER + (uint64_t)ci.len;
	}
	free(buf);
	if (rc < 0) {
		p->st.failures++;
		p->lost = 1;
		return rc;
	}
	if (full) {
		p->snap = ci.snap;
		p->seq = 0;
		p->lost = 0;
		p->st.fulls++;
	} else {
		p->seq = ci.seq;
		p->st.deltas++;
	}
	mfs_publisher_poll(p);
	return 0;
}

MFS_API void mfs_publisher_poll(mfs_publisher *p)
{
	if (p)
		rd_kafka_poll(p->rk, 0);
}

MFS_API int mfs_publisher_flush(mfs_publisher *p, int timeout_ms)
{
	if (!p)
		return 0;
	rd_kafka_flush(p->rk, timeout_ms);
	return rd_kafka_outq_len(p->rk) > 0 ? -MFS_E_AGAIN : 0;
}

MFS_API void mfs_publisher_stats_get(const mfs_publisher *p, mfs_publisher_stats *st)
{
	if (p && st)
		*st = p->st;
}

MFS_API void mfs_publisher_free(mfs_publisher *p)
{
	if (!p)
		return;
	rd_kafka_destroy(p->rk);
	free(p->topic);
	free(p);
}

/* --- the edge's reader ------------------------------------------------------------ */

/* how long the edge waits for chunks before its watchdog re-fetches (watchdog()) */
#define STALL_MS 10000u

struct mfs_ktail {
	rd_kafka_t *rk;
	char *topic;
	int nparts;
	int64_t *end;  /* per partition: the high watermark at open */
	int64_t *next; /* per partition: the next offset to read */
	int erred;     /* a broker error was reported and nothing arrived since */
	/* the stall watchdog (mfs_ktail_poll) */
	uint64_t *heard_ms;  /* per partition: when a message last came */
	uint64_t wait_since; /* since when the edge has waited for chunks (0: it does not) */
	uint64_t kicked_ms;  /* the last re-fetch */
	uint64_t kick_every; /* STALL_MS, doubled by each re-fetch that did not help */
	mfs_bad_record_fn on_bad;
	void *ctx;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_tail_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk;
	struct mfs_ktail *t = opaque;
	if (t->erred)
		return;
	t->erred = 1;
	mfs_diag_report(t->on_bad, t->ctx, MFS_E_IO, t->topic, 0, "kafka: %s (%s); retrying", reason,
	    rd_kafka_err2name((rd_kafka_resp_err_t)err));
}

int mfs_ktail_open(struct mfs_ktail **out, const char *brokers, const char *topic,
		   int timeout_ms, mfs_diag *diag)
{
	struct mfs_ktail *t = calloc(1, sizeof *t);
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	int rc;
	if (!t || !conf || !(t->topic = strdup(topic))) {
		rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		goto fail;
	}
	char err[512], gid[300];
	/* a group.id only because the consumer wants one: never joined, nothing committed */
	snprintf(gid, sizeof gid, "mfstream-edge-%s", topic);
	const char *props[][2] = {
		{ "bootstrap.servers", brokers },  { "group.id", gid },
		{ "enable.auto.commit", "false" }, { "enable.auto.offset.store", "false" },
		{ "fetch.wait.max.ms", "50" },     { "fetch.message.max.bytes", "2000000" },
	};
	for (size_t i = 0; i < sizeof props / sizeof *props; i++)
		if (rd_kafka_conf_set(conf, props[i][0], props[i][1], err, sizeof err) !=
		    RD_KAFKA_CONF_OK) {
			rc = mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "kafka %s: %s",
					  props[i][0], err);
			goto fail;
		}
	rd_kafka_conf_set_opaque(conf, t);
	rd_kafka_conf_set_error_cb(conf, on_tail_error);
	rd_kafka_conf_set_log_cb(conf, quiet_log);
	t->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!t->rk) {
		rc = mfs_diag_set(diag, MFS_E_IO, 0, NULL, 0, 0, "kafka consumer: %s", err);
		goto fail;
	}
	conf = NULL;
	rd_kafka_poll_set_consumer(t->rk);
	/* the partitions, retried until the topic exists or time is up */
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		rd_kafka_topic_t *rkt = rd_kafka_topic_new(t->rk, topic, NULL);
		const struct rd_kafka_metadata *md = NULL;
		rd_kafka_resp_err_t e =
			rkt ? rd_kafka_metadata(t->rk, 0, rkt, &md, 2000) : RD_KAFKA_RESP_ERR__FAIL;
		if (rkt)
			rd_kafka_topic_destroy(rkt);
		if (!e && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
			t->nparts = md->topics[0].partition_cnt;
		else if (!e)
			e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
		if (md)
			rd_kafka_metadata_destroy(md);
		if (t->nparts)
			break;
		struct timespec t1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= timeout_ms) {
			rc = mfs_diag_set(diag, MFS_E_NOTFOUND, 0, topic, 0, 0,
					  "cannot list the model topic's partitions: %s",
					  rd_kafka_err2str(e));
			goto fail;
		}
		struct timespec w = { 0, 200 * 1000000L };
		nanosleep(&w, NULL);
	}
	t->end = calloc((size_t)t->nparts, sizeof *t->end);
	t->next = calloc((size_t)t->nparts, sizeof *t->next);
	t->heard_ms = calloc((size_t)t->nparts, sizeof *t->heard_ms);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(t->nparts);
	if (!t->end || !t->next || !t->heard_ms || !l) {
		if (l)
			rd_kafka_topic_partition_list_destroy(l);
		rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		goto fail;
	}
	t->kick_every = STALL_MS;
	for (int i = 0; i < t->nparts; i++) {
		t->heard_ms[i] = mono_ms();
		int64_t lo = 0, hi = 0;
		if (rd_kafka_query_watermark_offsets(t->rk, topic, i, &lo, &hi, 5000) != 0)
			hi = 0; /* unknown: boot does not wait for it */
		t->end[i] = hi;
		t->next[i] = lo;
		rd_kafka_topic_partition_list_add(l, topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
	}
	rd_kafka_resp_err_t e = rd_kafka_assign(t->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		rc = mfs_diag_set(diag, MFS_E_IO, 0, topic, 0, 0, "kafka assign: %s",
				  rd_kafka_err2str(e));
		goto fail;
	}
	*out = t;
	return 0;
fail:
	if (conf)
		rd_kafka_conf_destroy(conf);
	mfs_ktail_free(t);
	return rc;
}

void mfs_ktail_free(struct mfs_ktail *t)
{
	if (!t)
		return;
	if (t->rk)
		rd_kafka_destroy_flags(t->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	free(t->topic);
	free(t->end);
	free(t->next);
	free(t->heard_ms);
	free(t);
}

/*
 * The stall watchdog. Under load, with Fetch errors injected by the mock
 * cluster (NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT), the edge was seen
 * once in ~25 runs to receive nothing more from one partition while the
 * others went on: chunks of one file lie in every partition, so no file
 * completed again. The cause inside librdkafka 2.0 was not pinned down
 * (2.1 to 2.3 fix several leader-refresh stalls of partitions that are
 * assigned, not subscribed). So: when the edge has waited for chunks STALL_MS
 * with nothing completed and some partition has been silent as long, the
 * topic's metadata is refreshed and every partition is assigned again from
 * the next offset it was read to: nothing is read twice or skipped. Each
 * re-fetch that completes nothing doubles the wait before the next (a chunk
 * lost for good waits for the next whole snapshot), up to 32 x STALL_MS.
 */
static void watchdog(struct mfs_ktail *t, const struct mfs_edge *e, int changes)
{
	uint64_t now = mono_ms();
	if (changes > 0 || !mfs_edge_waiting(e)) {
		t->wait_since = 0;
		t->kick_every = STALL_MS;
		return;
	}
	if (!t->wait_since)
		t->wait_since = now;
	if (now - t->wait_since < STALL_MS || now - t->kicked_ms < t->kick_every)
		return;
	int silent = 0;
	for (int i = 0; i < t->nparts; i++)
		silent |= now - t->heard_ms[i] >= STALL_MS;
	if (!silent)
		return;
	/* a chunk lost for good waits for the next whole snapshot: kick less and less */
	t->kicked_ms = now;
	if (t->kick_every < 32 * STALL_MS)
		t->kick_every *= 2;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(t->rk, t->topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	if (rkt && rd_kafka_metadata(t->rk, 0, rkt, &md, 2000) == 0)
		rd_kafka_metadata_destroy(md);
	if (rkt)
		rd_kafka_topic_destroy(rkt);
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(t->nparts);
	if (!l)
		return;
	for (int i = 0; i < t->nparts; i++)
		rd_kafka_topic_partition_list_add(l, t->topic, i)->offset =
			t->next[i] > 0 ? t->next[i] : RD_KAFKA_OFFSET_BEGINNING;
	rd_kafka_resp_err_t err = rd_kafka_assign(t->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	mfs_diag_report(t->on_bad, t->ctx, MFS_E_IO, t->topic, 0,
	    "kafka: a model file has waited %llu s for chunks while a partition was silent: "
	    "reading every partition again from where it was read (%s)",
	    (unsigned long long)((now - t->wait_since) / 1000),
	    err ? rd_kafka_err2str(err) : "re-fetch started");
}

int mfs_ktail_poll(struct mfs_ktail *t, struct mfs_edge *e, int timeout_ms,
		   mfs_bad_record_fn on_bad, void *ctx)
{
	t->on_bad = on_bad;
	t->ctx = ctx;
	int changes = 0;
	/* a bounded number per call, so that a refresh ends while chunks pour in */
	for (int n = 0; n < 100000; n++) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(t->rk, n == 0 ? timeout_ms : 0);
		if (!m)
			break;
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && !t->erred) {
				t->erred = 1;
				mfs_diag_report(on_bad, ctx, MFS_E_IO, t->topic, 0, "kafka: %s; retrying",
				    rd_kafka_message_errstr(m));
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		t->erred = 0;
		if (m->partition >= 0 && m->partition < t->nparts) {
			t->next[m->partition] = m->offset + 1;
			t->heard_ms[m->partition] = mono_ms();
		}
		char where[400];
		snprintf(where, sizeof where, "topic %s partition %d offset %lld", t->topic,
			 (int)m->partition, (long long)m->offset);
		changes += mfs_edge_add(e, m->payload, m->len, where, on_bad, ctx);
		rd_kafka_message_destroy(m);
	}
	watchdog(t, e, changes);
	t->on_bad = NULL;
	return changes;
}

int mfs_ktail_caught_up(const struct mfs_ktail *t)
{
	for (int i = 0; i < t->nparts; i++)
		if (t->next[i] < t->end[i])
			return 0;
	return 1;
}
