/*
 * kafka.c - Kafka topics -> batches of events. The only file that includes
 * librdkafka's header.
 *
 *   consumer (librdkafka, its own threads) -> messages -> lines
 *   -> records (parse.c, as the file reader parses lines) -> events
 *
 * Threads: librdkafka runs its broker threads; every callback of ours (errors,
 * rebalances, commit results) is served from rd_kafka_consumer_poll() in the
 * caller's thread (the main queue is forwarded to the consumer queue), so this
 * file's state is touched by one thread. mfs_source_stop() sets an atomic flag
 * that the polling loop looks at every POLL_MS.
 *
 * Offsets: each partition has the state handed out ("out": what the caller has
 * learned once it asks for the next batch) and the state read into the batch
 * in progress ("rd"). The position blob is made of "out"; a batch that is
 * handed out moves "rd" into "out". Offsets are never stored or committed by
 * librdkafka on its own (enable.auto.commit and auto.offset.store off): the
 * learner commits a position once the checkpoint that holds it is written.
 *
 * Without a group the source assigns itself every partition of its topics
 * (rd_kafka_assign), found by metadata requests that are retried while the
 * brokers are unreachable and repeated every META_REFRESH_MS for partitions
 * added later. With a group it subscribes with static membership, and a
 * rebalance starts each partition it assigns at the position's offset.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* --- config ---------------------------------------------------------------- */

MFS_API int mfs_kafka_config_create(mfs_kafka_config **out)
{
	if (!out)
		return -MFS_E_INVAL;
	mfs_kafka_config *kc = calloc(1, sizeof *kc);
	if (!kc)
		return -MFS_E_NOMEM;
	kc->conf = rd_kafka_conf_new();
	if (!kc->conf) {
		free(kc);
		return -MFS_E_NOMEM;
	}
	kc->notice_ms = 10000;
	*out = kc;
	return 0;
}

MFS_API void mfs_kafka_config_free(mfs_kafka_config *kc)
{
	if (!kc)
		return;
	free(kc->brokers);
	free(kc->topics);
	free(kc->group);
	free(kc->instance);
	if (kc->conf)
		rd_kafka_conf_destroy(kc->conf);
	free(kc);
}

static int set_str(char **dst, const char *v, mfs_diag *d)
{
	char *c = strdup(v);
	if (!c)
		return mfs_diag_set(d, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
	free(*dst);
	*dst = c;
	return 0;
}

/* Properties the source decides itself: a user setting would break exactly-once. */
static const char *const owned_props[] = {
	"enable.auto.commit", "enable.auto.offset.store", "enable.partition.eof",
	"group.id", "group.instance.id", "bootstrap.servers", "metadata.broker.list",
};

MFS_API int mfs_kafka_config_set(mfs_kafka_config *kc, const char *key, const char *value,
				 mfs_diag *d)
{
	if (!kc || !key || !value)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "NULL argument");
	if (strcmp(key, "brokers") == 0 || strcmp(key, "topics") == 0) {
		if (!*value)
			return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "kafka %s is empty", key);
		return set_str(key[0] == 'b' ? &kc->brokers : &kc->topics, value, d);
	}
	if (strcmp(key, "group") == 0 || strcmp(key, "instance") == 0) {
		if (!*value)
			return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "kafka %s is empty", key);
		return set_str(key[0] == 'g' ? &kc->group : &kc->instance, value, d);
	}
	if (strcmp(key, "start") == 0) {
		if (strcmp(value, "earliest") == 0)
			kc->latest = 0;
		else if (strcmp(value, "latest") == 0)
			kc->latest = 1;
		else
			return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0,
					    "kafka start must be earliest or latest, not \"%s\"", value);
		return 0;
	}
	if (strcmp(key, "notice-ms") == 0) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(value, &end, 10);
		if (errno || !*value || *end || v < 10 || v > 3600000)
			return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0,
					    "kafka notice-ms must be 10..3600000, not \"%s\"", value);
		kc->notice_ms = (unsigned)v;
		return 0;
	}
	for (size_t i = 0; i < sizeof owned_props / sizeof *owned_props; i++)
		if (strcmp(key, owned_props[i]) == 0)
			return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0,
					    "kafka property %s is set by mfstream (%s)", key,
					    i < 3 ? "offsets live in the checkpoints"
					    : i < 5 ? "use --group / instance"
						    : "use --kafka BROKERS");
	char err[512];
	if (rd_kafka_conf_set(kc->conf, key, value, err, sizeof err) != RD_KAFKA_CONF_OK)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "kafka property %s=%s: %s", key,
				    value, err);
	return 0;
}

MFS_API int mfs_kafka_config_set_notice(mfs_kafka_config *kc, mfs_bad_record_fn fn, void *ctx)
{
	if (!kc)
		return -MFS_E_INVAL;
	kc->notice = fn;
	kc->notice_ctx = ctx;
	return 0;
}

MFS_API int mfs_kafka_config_set_revoke(mfs_kafka_config *kc, void (*fn)(void *ctx), void *ctx)
{
	if (!kc)
		return -MFS_E_INVAL;
	kc->revoke = fn;
	kc->revoke_ctx = ctx;
	return 0;
}

/* --- notices ---------------------------------------------------------------- */

static void notice(struct mfs_ksrc *k, int code, const char *fmt, ...) MFS_PRINTF(3, 4);

static void notice(struct mfs_ksrc *k, int code, const char *fmt, ...)
{
	if (!k->kc.notice)
		return;
	mfs_diag d;
	char path[300];
	snprintf(path, sizeof path, "kafka %s", k->kc.brokers);
	mfs_diag_set(&d, code, 0, path, 0, 0, NULL);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d.reason, sizeof d.reason, fmt, ap);
	va_end(ap);
	k->kc.notice(k->kc.notice_ctx, &d);
}

/* An error to tell about, at most once per notice-ms with the count since. */
static void note_error(struct mfs_ksrc *k, const char *what)
{
	snprintf(k->err_text, sizeof k->err_text, "%s", what);
	k->err_count++;
}

static void flush_errors(struct mfs_ksrc *k)
{
	if (!k->err_count)
		return;
	int64_t t = now_ms();
	if (k->last_notice && t - k->last_notice < (int64_t)k->kc.notice_ms)
		return;
	notice(k, MFS_E_IO, "%s (%llu error%s since the last notice); retrying, learning what arrives",
	       k->err_text, (unsigned long long)k->err_count, k->err_count == 1 ? "" : "s");
	k->last_notice = t;
	k->err_count = 0;
	k->down = 1;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)rk;
	struct mfs_ksrc *k = opaque;
	char buf[256];
	snprintf(buf, sizeof buf, "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
	note_error(k, buf);
}

/*
 * librdkafka's log lines (served from the poll, log.queue): the library never
 * prints, so they are dropped, unless the "debug" property asked for them;
 * then they are notices. Errors come through on_error.
 */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	struct mfs_ksrc *k = rd_kafka_opaque(rk);
	if (!k || !k->debug)
		return;
	(void)level;
	notice(k, MFS_E_OK, "librdkafka %s: %s", fac, buf);
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
		      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
	(void)rk;
	(void)offsets;
	struct mfs_ksrc *k = opaque;
	if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
		char buf[256];
		snprintf(buf, sizeof buf, "offset commit failed: %s", rd_kafka_err2str(err));
		note_error(k, buf);
	}
}

/* --- partitions --------------------------------------------------------------- */

static struct kpart *find_part(struct mfs_ksrc *k, const char *topic, size_t tlen, int32_t part,
			       int add)
{
	if (k->last_hit < k->nparts) {
		struct kpart *p = &k->parts[k->last_hit];
		if (p->part == part && strlen(p->topic) == tlen && memcmp(p->topic, topic, tlen) == 0)
			return p;
	}
	for (size_t i = 0; i < k->nparts; i++) {
		struct kpart *p = &k->parts[i];
		if (p->part == part && strlen(p->topic) == tlen && memcmp(p->topic, topic, tlen) == 0) {
			k->last_hit = i;
			return p;
		}
	}
	if (!add)
		return NULL;
	if (k->nparts == k->cap_parts) {
		size_t nc = k->cap_parts ? 2 * k->cap_parts : 16;
		struct kpart *np = realloc(k->parts, nc * sizeof *np);
		if (!np)
			return NULL;
		k->parts = np;
		k->cap_parts = nc;
	}
	struct kpart *p = &k->parts[k->nparts];
	memset(p, 0, sizeof *p);
	p->topic = malloc(tlen + 1);
	if (!p->topic)
		return NULL;
	memcpy(p->topic, topic, tlen);
	p->topic[tlen] = 0;
	p->part = part;
	k->last_hit = k->nparts++;
	return p;
}

/* Whether the partition has a position of its own (else "start" decides). */
static int has_pos(const struct kpart *p)
{
	return p->known || p->out.events || p->out.skipped || p->out.off > 0;
}

static int64_t start_offset(const struct mfs_ksrc *k, const struct kpart *p)
{
	if (has_pos(p))
		return p->out.off;
	return k->kc.latest ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
}

/* Drop the events of partition pi from the batch in progress (a revoke). */
static void drop_batch_part(struct mfs_ksrc *k, size_t pi)
{
	size_t w = 0;
	for (size_t r = 0; r < k->n; r++) {
		if (k->evp[r] == pi)
			continue;
		k->events[w] = k->events[r];
		k->evp[w] = k->evp[r];
		w++;
	}
	k->n = w;
	if (k->pend && k->pend_part == pi) {
		rd_kafka_message_destroy(k->pend);
		k->pend = NULL;
	}
	k->parts[pi].rd = k->parts[pi].out;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *list, void *opaque)
{
	struct mfs_ksrc *k = opaque;
	int coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		for (int i = 0; i < list->cnt; i++) {
			rd_kafka_topic_partition_t *t = &list->elems[i];
			struct kpart *p = find_part(k, t->topic, strlen(t->topic), t->partition, 1);
			if (!p)
				continue; /* out of memory: it starts where the group says */
			p->assigned = 1;
			p->rd = p->out;
			t->offset = start_offset(k, p);
		}
		notice(k, MFS_E_OK, "group %s assigned %d partition%s", k->kc.group, list->cnt,
		       list->cnt == 1 ? "" : "s");
		if (coop) {
			rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, list);
			if (e)
				rd_kafka_error_destroy(e);
		} else {
			rd_kafka_assign(rk, list);
		}
		return;
	}
	/* revoked or lost: checkpoint what is learned, forget what is in progress */
	if (k->kc.revoke)
		k->kc.revoke(k->kc.revoke_ctx);
	rd_kafka_topic_partition_list_t *commit = rd_kafka_topic_partition_list_new(list->cnt);
	for (int i = 0; i < list->cnt; i++) {
		rd_kafka_topic_partition_t *t = &list->elems[i];
		struct kpart *p = find_part(k, t->topic, strlen(t->topic), t->partition, 0);
		if (!p)
			continue;
		drop_batch_part(k, (size_t)(p - k->parts));
		p->assigned = 0;
		if (commit && p->out.off >= 0 && (p->known || p->out.events || p->out.skipped))
			rd_kafka_topic_partition_list_add(commit, p->topic, p->part)->offset = p->out.off;
	}
	if (commit && commit->cnt && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS &&
	    !rd_kafka_assignment_lost(rk))
		rd_kafka_commit(rk, commit, 0);
	if (commit)
		rd_kafka_topic_partition_list_destroy(commit);
	notice(k, MFS_E_OK, "group %s took back %d partition%s", k->kc.group, list->cnt,
	       list->cnt == 1 ? "" : "s");
	if (coop) {
		rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, list);
		if (e)
			rd_kafka_error_destroy(e);
	} else {
		rd_kafka_assign(rk, NULL);
	}
}

/*
 * Without a group: find the partitions of the topics and assign them all,
 * each at its position (rd: what is read so far). Returns 1 if the assignment
 * changed.
 */
static int assign_all(struct mfs_ksrc *k, int timeout_ms)
{
	int64_t t = now_ms();
	if (t < k->next_meta)
		return 0;
	k->next_meta = t + (k->meta_ok ? META_REFRESH_MS : META_RETRY_MS);
	int changed = 0, missing = 0;
	for (size_t i = 0; i < k->ntopics; i++) {
		rd_kafka_topic_t *rkt = rd_kafka_topic_new(k->rk, k->topics[i], NULL);
		if (!rkt)
			continue;
		const struct rd_kafka_metadata *md = NULL;
		rd_kafka_resp_err_t e = rd_kafka_metadata(k->rk, 0, rkt, &md, timeout_ms);
		rd_kafka_topic_destroy(rkt);
		if (e) {
			if (!k->meta_ok) { /* a later refresh that fails is tried again in silence */
				char buf[256];
				snprintf(buf, sizeof buf, "cannot list the partitions of %s: %s",
					 k->topics[i], rd_kafka_err2str(e));
				note_error(k, buf);
			}
			missing = 1;
			continue;
		}
		for (int ti = 0; ti < md->topic_cnt; ti++) {
			const struct rd_kafka_metadata_topic *mt = &md->topics[ti];
			if (mt->err || mt->partition_cnt == 0) {
				char buf[256];
				snprintf(buf, sizeof buf, "topic %s: %s", mt->topic,
					 mt->err ? rd_kafka_err2str(mt->err) : "no partitions");
				note_error(k, buf);
				missing = 1;
				continue;
			}
			for (int pi = 0; pi < mt->partition_cnt; pi++) {
				struct kpart *p = find_part(k, mt->topic, strlen(mt->topic),
							    mt->partitions[pi].id, 1);
				if (p && !p->assigned) {
					p->assigned = 1;
					changed = 1;
				}
			}
		}
		rd_kafka_metadata_destroy(md);
	}
	if (!missing)
		k->meta_ok = 1;
	else
		k->next_meta = now_ms() + META_RETRY_MS;
	if (!changed)
		return 0;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)k->nparts);
	if (!l)
		return 0;
	size_t n = 0;
	for (size_t i = 0; i < k->nparts; i++) {
		struct kpart *p = &k->parts[i];
		if (!p->assigned)
			continue;
		n++;
		int64_t off = has_pos(p) || p->rd.off > 0 ? p->rd.off : start_offset(k, p);
		rd_kafka_topic_partition_list_add(l, p->topic, p->part)->offset = off;
	}
	rd_kafka_resp_err_t e = rd_kafka_assign(k->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		note_error(k, rd_kafka_err2str(e));
		return 0;
	}
	notice(k, MFS_E_OK, "consuming %zu partition%s of %s", n, n == 1 ? "" : "s", k->kc.topics);
	return 1;
}

/* --- open / free ------------------------------------------------------------ */

int mfs_ksrc_open(struct mfs_ksrc **out, const mfs_kafka_config *kc, const mfs_source_config *cfg,
		  const struct mfs_fields *fields, atomic_int *stop, mfs_diag *d)
{
	if (!kc->brokers || !kc->topics)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0,
				    "a Kafka source needs brokers and topics");
	struct mfs_ksrc *k = calloc(1, sizeof *k);
	if (!k)
		return mfs_diag_set(d, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
	int rc = -MFS_E_NOMEM;
	rd_kafka_conf_t *conf = NULL;
	k->cfg = *cfg;
	k->fields = *fields;
	k->stop = stop;
	k->kc = *kc;
	k->kc.conf = NULL;
	k->kc.brokers = dup_str(kc->brokers);
	k->kc.topics = dup_str(kc->topics);
	k->kc.group = dup_str(kc->group);
	k->kc.instance = dup_str(kc->instance);
	if (!k->kc.brokers || !k->kc.topics || (kc->group && !k->kc.group) ||
	    (kc->instance && !k->kc.instance))
		goto nomem;
	/* the topics */
	char *list = strdup(kc->topics);
	if (!list)
		goto nomem;
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char **nt = realloc(k->topics, (k->ntopics + 1) * sizeof *nt);
		if (!nt || !(nt[k->ntopics] = strdup(t))) {
			if (nt)
				k->topics = nt;
			free(list);
			goto nomem;
		}
		k->topics = nt;
		k->ntopics++;
	}
	free(list);
	if (k->ntopics == 0) {
		rc = mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "no topic in \"%s\"", kc->topics);
		goto out;
	}
	k->events = malloc(k->cfg.batch * sizeof *k->events);
	k->evp = malloc(k->cfg.batch * sizeof *k->evp);
	k->arena_cap = 1u << 20;
	k->arena = malloc(k->arena_cap);
	if (!k->events || !k->evp || !k->arena)
		goto nomem;

	conf = rd_kafka_conf_dup(kc->conf);
	if (!conf)
		goto nomem;
	char err[512];
	char inst[300];
	/* librdkafka assigns only with a group.id; without "group" it is never joined,
	 * only committed to (so that the group tools show the lag) */
	char own_gid[300];
	snprintf(own_gid, sizeof own_gid, "mfstream-%s", k->kc.topics);
	const char *gid = k->kc.group ? k->kc.group : own_gid;
	struct {
		const char *k, *v;
	} props[] = {
		{ "bootstrap.servers", k->kc.brokers },
		{ "enable.auto.commit", "false" },
		{ "enable.auto.offset.store", "false" },
		{ "enable.partition.eof", "false" },
		{ "auto.offset.reset", kc->latest ? "latest" : "earliest" },
		{ "group.id", gid },
		{ "group.instance.id", NULL },
	};
	if (k->kc.group) {
		if (k->kc.instance) {
			snprintf(inst, sizeof inst, "%s", k->kc.instance);
		} else {
			char host[256] = "";
			gethostname(host, sizeof host - 1);
			snprintf(inst, sizeof inst, "mfstream-%s", host[0] ? host : "host");
		}
		props[6].v = inst;
	}
	for (size_t i = 0; i < sizeof props / sizeof *props; i++) {
		if (!props[i].v)
			continue;
		if (rd_kafka_conf_set(conf, props[i].k, props[i].v, err, sizeof err) != RD_KAFKA_CONF_OK) {
			rc = mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "kafka %s=%s: %s", props[i].k,
					  props[i].v, err);
			goto out;
		}
	}
	k->grouped = k->kc.group != NULL;
	k->has_group_id = 1;
	char dbg[256];
	size_t dl = sizeof dbg;
	k->debug = rd_kafka_conf_get(conf, "debug", dbg, &dl) == RD_KAFKA_CONF_OK && dbg[0];
	if (rd_kafka_conf_set(conf, "log.queue", "true", err, sizeof err) != RD_KAFKA_CONF_OK) {
		rc = mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "kafka log.queue: %s", err);
		goto out;
	}
	rd_kafka_conf_set_log_cb(conf, on_log);
	rd_kafka_conf_set_opaque(conf, k);
	rd_kafka_conf_set_error_cb(conf, on_error);
	rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
	if (k->grouped)
		rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!k->rk) {
		rc = mfs_diag_set(d, MFS_E_IO, 0, NULL, 0, 0, "kafka consumer: %s", err);
		goto out; /* rd_kafka_new frees conf only on success */
	}
	conf = NULL;
	rd_kafka_set_log_queue(k->rk, NULL); /* log lines to the main queue, then ours */
	rd_kafka_poll_set_consumer(k->rk);
	if (k->grouped) {
		rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)k->ntopics);
		for (size_t i = 0; l && i < k->ntopics; i++)
			rd_kafka_topic_partition_list_add(l, k->topics[i], RD_KAFKA_PARTITION_UA);
		rd_kafka_resp_err_t e = l ? rd_kafka_subscribe(k->rk, l) : RD_KAFKA_RESP_ERR__FAIL;
		if (l)
			rd_kafka_topic_partition_list_destroy(l);
		if (e) {
			rc = mfs_diag_set(d, MFS_E_IO, 0, NULL, 0, 0, "kafka subscribe %s: %s",
					  kc->topics, rd_kafka_err2str(e));
			goto out;
		}
	}
	*out = k;
	return 0;
nomem:
	rc = mfs_diag_set(d, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
out:
	if (conf)
		rd_kafka_conf_destroy(conf);
	mfs_ksrc_free(k);
	return rc;
}

void mfs_ksrc_free(struct mfs_ksrc *k)
{
	if (!k)
		return;
	if (k->pend)
		rd_kafka_message_destroy(k->pend);
	if (k->rk)
		/* no consumer close: it waits for the group coordinator without a bound when
		 * the brokers are gone, and has nothing to do here (offsets are committed
		 * after checkpoints; a static member keeps its slot without a LeaveGroup) */
		rd_kafka_destroy_flags(k->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	for (size_t i = 0; i < k->nparts; i++)
		free(k->parts[i].topic);
	free(k->parts);
	for (size_t i = 0; i < k->ntopics; i++)
		free(k->topics[i]);
	free(k->topics);
	free(k->events);
	free(k->evp);
	free(k->arena);
	free(k->kc.brokers);
	free(k->kc.topics);
	free(k->kc.group);
	free(k->kc.instance);
	free(k);
}

/* --- messages -> events --------------------------------------------------------- */

static void report_bad(struct mfs_ksrc *k, const struct kpart *p, int64_t off, uint64_t line,
		       int multi, const char *reason)
{
	k->st.skipped++;
	if (!k->cfg.on_bad)
		return;
	char where[400];
	if (multi)
		snprintf(where, sizeof where, "topic %s partition %d offset %lld, line %llu", p->topic,
			 (int)p->part, (long long)off, (unsigned long long)line);
	else
		snprintf(where, sizeof where, "topic %s partition %d offset %lld", p->topic,
			 (int)p->part, (long long)off);
	mfs_diag d;
	mfs_diag_set(&d, MFS_E_PARSE, 0, where, 0, 0, "%s", reason);
	k->cfg.on_bad(k->cfg.on_bad_ctx, &d);
}

static int is_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

/*
 * Take lines of the pending message into the batch until it is used up or
 * the batch has limit events. The message's remaining text is copied into the
 * arena (the events point into it). Returns 1 when the message is used up,
 * 0 when the batch filled first, -1 when the arena has no room (and the batch
 * has events: hand it out first).
 */
static int take_message(struct mfs_ksrc *k, size_t limit)
{
	rd_kafka_message_t *m = k->pend;
	struct kpart *p = &k->parts[k->pend_part];
	const char *payload = m->payload ? m->payload : "";
	size_t left = m->len - k->pend_pos;
	if (k->arena_len + left + 1 > k->arena_cap) {
		if (k->n > 0)
			return -1;
		size_t nc = k->arena_cap;
		while (nc < left + 1)
			nc *= 2;
		char *na = malloc(nc);
		if (!na)
			return -1;
		free(k->arena);
		k->arena = na;
		k->arena_cap = nc;
		k->arena_len = 0;
	}
	char *text = k->arena + k->arena_len;
	memcpy(text, payload + k->pend_pos, left);
	text[left] = 0;
	if (m->len == 0) {
		report_bad(k, p, m->offset, 0, 0, "empty message");
		p->rd.skipped++;
		return 1;
	}
	const char *nl1 = memchr(payload, '\n', m->len);
	int multi = nl1 && nl1 != payload + m->len - 1; /* more than one line */
	size_t pos = 0;
	int format = k->cfg.format;
	char why[256];
	while (pos < left) {
		if (k->n >= limit) {
			k->arena_len += pos;
			k->pend_pos += pos;
			return 0;
		}
		char *line = text + pos;
		char *nl = memchr(line, '\n', left - pos);
		size_t len = nl ? (size_t)(nl - line) : left - pos;
		line[len] = 0;
		pos += len + (nl ? 1 : 0);
		p->rd.lines++;
		if (is_blank(line, len))
			continue;
		int f = format;
		if (f == MFS_FORMAT_AUTO) {
			f = mfs_parse_detect(line, len);
			if (f < 0) {
				report_bad(k, p, m->offset, p->rd.lines, multi,
					   "cannot tell the format of this record (use --format)");
				p->rd.skipped++;
				continue;
			}
		}
		if (multi && p->rd.lines == 1 && mfs_parse_is_header(f, line, len))
			continue;
		mfs_event *ev = &k->events[k->n];
		int r = mfs_parse_line(f, &k->fields, line, len, ev, why, sizeof why);
		if (r < 0) {
			report_bad(k, p, m->offset, p->rd.lines, multi, why);
			p->rd.skipped++;
			continue;
		}
		if (r > 0) {
			k->evp[k->n++] = (uint32_t)k->pend_part;
			p->rd.events++;
		}
	}
	k->arena_len += left + 1;
	return 1;
}

/* The message m arrived: make it the pending one, or drop it. Returns 1 if pending. */
static int accept_message(struct mfs_ksrc *k, rd_kafka_message_t *m)
{
	const char *topic = rd_kafka_topic_name(m->rkt);
	struct kpart *p = find_part(k, topic, strlen(topic), m->partition, 0);
	if (!p || !p->assigned || m->offset < p->rd.off) {
		rd_kafka_message_destroy(m); /* stale: before the position, or not ours any more */
		return 0;
	}
	size_t skip = 0;
	if (m->offset == p->rd.off) {
		skip = (size_t)p->rd.lines; /* resumed inside this message */
	} else {
		int64_t t = now_ms();
		if ((p->rd.off > 0 || p->known) &&
		    (!k->last_gap || t - k->last_gap >= (int64_t)k->kc.notice_ms)) {
			k->last_gap = t; /* at most one a period: a compacted log has many gaps */
			notice(k, MFS_E_OK,
			       "topic %s partition %d: offsets %lld..%lld are not in the log "
			       "(retention, compaction or transaction markers); going on at %lld",
			       p->topic, (int)p->part, (long long)p->rd.off, (long long)m->offset - 1,
			       (long long)m->offset);
		}
		p->rd.off = m->offset;
		p->rd.lines = 0;
	}
	k->pend = m;
	k->pend_part = (size_t)(p - k->parts);
	k->pend_pos = 0;
	k->st.bytes += m->len;
	const char *payload = m->payload;
	for (size_t i = 0; i < skip && k->pend_pos < m->len; i++) {
		const char *nl = memchr(payload + k->pend_pos, '\n', m->len - k->pend_pos);
		k->pend_pos = nl ? (size_t)(nl - payload) + 1 : m->len;
	}
	return 1;
}

/* The pending message is used up. */
static void finish_message(struct mfs_ksrc *k)
{
	struct kpart *p = &k->parts[k->pend_part];
	p->rd.off = k->pend->offset + 1;
	p->rd.lines = 0;
	rd_kafka_message_destroy(k->pend);
	k->pend = NULL;
}

int mfs_ksrc_next(struct mfs_ksrc *k, const mfs_event **ev, int timeout_ms, unsigned linger_ms,
		  uint64_t align, mfs_diag *d)
{
	size_t limit = k->cfg.batch;
	if (align) {
		uint64_t left = align - k->handed % align;
		if (left < limit)
			limit = (size_t)left;
	}
	k->n = 0;
	k->arena_len = 0;
	int64_t start = now_ms();
	int64_t deadline = timeout_ms >= 0 ? start + timeout_ms : -1;
	int64_t linger_end = -1;
	while (k->n < limit) {
		if (atomic_load(k->stop))
			break;
		if (k->pend) {
			int r = take_message(k, limit);
			if (r < 0 && k->n == 0)
				return mfs_diag_set(d, MFS_E_NOMEM, 0, NULL, 0, 0,
						    "out of memory for a message of %zu bytes",
						    k->pend->len);
			if (r < 0)
				break; /* hand out what is in the arena first */
			if (r == 0)
				break; /* the batch is full */
			finish_message(k);
			continue;
		}
		int64_t t = now_ms();
		int wait = POLL_MS;
		if (k->n > 0) {
			if (linger_end < 0)
				linger_end = t + linger_ms;
			if (t >= linger_end)
				wait = 0;
			else if (linger_end - t < wait)
				wait = (int)(linger_end - t);
		} else if (deadline >= 0) {
			if (t >= deadline)
				break;
			if (deadline - t < wait)
				wait = (int)(deadline - t);
		}
		if (!k->grouped && k->n == 0)
			assign_all(k, wait > 0 ? wait : 1); /* the first time, then now and then */
		flush_errors(k);
		rd_kafka_message_t *m = rd_kafka_consumer_poll(k->rk, wait);
		if (!m) {
			if (k->n > 0 && wait == 0)
				break; /* the linger is over */
			continue;
		}
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
				char buf[256];
				snprintf(buf, sizeof buf, "%s%s%s", rd_kafka_err2str(m->err),
					 m->rkt ? " on " : "", m->rkt ? rd_kafka_topic_name(m->rkt) : "");
				note_error(k, buf);
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		if (k->down) {
			notice(k, MFS_E_OK, "receiving messages again");
			k->down = 0;
			k->err_count = 0;
		}
		accept_message(k, m);
	}
	flush_errors(k);
	if (k->n == 0) {
		*ev = NULL;
		if (atomic_load(k->stop))
			return 0;
		return -MFS_E_AGAIN;
	}
	/* handed out: what was read is now what the caller learns */
	for (size_t i = 0; i < k->nparts; i++)
		k->parts[i].out = k->parts[i].rd;
	/* (a message cut by the batch's end: its lines taken so far are in out.lines) */
	k->handed += k->n;
	k->st.events += k->n;
	*ev = k->events;
	return (int)k->n;
}

void mfs_ksrc_stats(const struct mfs_ksrc *k, mfs_source_stats *st)
{
	*st = k->st;
}

/* --- positions ------------------------------------------------------------------ */

/*
 * Blob, little-endian: "MFSPOS\1\0", u32 version 2, u32 count, then per
 * partition: u32 topic length, the topic, u32 partition, u64 next offset,
 * u64 lines of it taken, u64 events, u64 skipped. (Version 1 is a file position.)
 */
#define KPOS_HEAD 16
#define KPOS_ENTRY (4 + 4 + 4 * 8)

int mfs_ksrc_position(const struct mfs_ksrc *k, void *buf, size_t len)
{
	size_t need = KPOS_HEAD, count = 0;
	for (size_t i = 0; i < k->nparts; i++) {
		const struct kpart *p = &k->parts[i];
		if (!p->known && !p->assigned)
			continue;
		need += KPOS_ENTRY + strlen(p->topic);
		count++;
	}
	if (buf && len >= need) {
		uint8_t *b = buf;
		memcpy(b, POS_MAGIC, 8);
		mfs_put32(b + 8, KPOS_VERSION);
		mfs_put32(b + 12, (uint32_t)count);
		b += KPOS_HEAD;
		for (size_t i = 0; i < k->nparts; i++) {
			const struct kpart *p = &k->parts[i];
			if (!p->known && !p->assigned)
				continue;
			size_t tl = strlen(p->topic);
			/* never consumed and not in the seek position: start where "start" says */
			int64_t off = has_pos(p) ? p->out.off : -1;
			mfs_put32(b, (uint32_t)tl);
			memcpy(b + 4, p->topic, tl);
			b += 4 + tl;
			mfs_put32(b, (uint32_t)p->part);
			mfs_put64(b + 4, (uint64_t)off);
			mfs_put64(b + 12, p->out.lines);
			mfs_put64(b + 20, p->out.events);
			mfs_put64(b + 28, p->out.skipped);
			b += 36;
		}
	}
	return (int)need;
}

int mfs_kpos_is_kafka(const void *pos, size_t len)
{
	return pos && len >= KPOS_HEAD && memcmp(pos, POS_MAGIC, 8) == 0 &&
	       mfs_get32((const uint8_t *)pos + 8) == KPOS_VERSION;
}

MFS_API int mfs_position_kafka_partition(const void *pos, size_t len, size_t i,
					 mfs_kafka_partition *out)
{
	if (!mfs_kpos_is_kafka(pos, len))
		return -MFS_E_CORRUPT;
	const uint8_t *b = pos, *end = b + len;
	uint32_t count = mfs_get32(b + 12);
	b += KPOS_HEAD;
	for (uint32_t j = 0; j < count; j++) {
		if (end - b < 4)
			return -MFS_E_CORRUPT;
		uint32_t tl = mfs_get32(b);
		if (tl == 0 || tl > 4096 || (size_t)(end - b) < 4 + (size_t)tl + 36)
			return -MFS_E_CORRUPT;
		if (j == i && out) {
			memset(out, 0, sizeof *out);
			out->topic = (const char *)b + 4;
			out->topic_len = tl;
			const uint8_t *e = b + 4 + tl;
			out->partition = (int32_t)mfs_get32(e);
			out->offset = (int64_t)mfs_get64(e + 4);
			out->lines = mfs_get64(e + 12);
			out->events = mfs_get64(e + 20);
			out->skipped = mfs_get64(e + 28);
			out->end = -1;
			out->lag = -1;
		}
		b += 4 + tl + 36;
	}
	if (b != end)
		return -MFS_E_CORRUPT;
	return (int)count;
}

int mfs_ksrc_seek(struct mfs_ksrc *k, const void *pos, size_t len, mfs_diag *d)
{
	if (k->handed || k->pend)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0,
				    "seek only before the first mfs_source_next");
	if (len >= 12 && memcmp(pos, POS_MAGIC, 8) == 0 && mfs_get32((const uint8_t *)pos + 8) == 1)
		return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0,
				    "the position is of a file source, not of Kafka topics");
	int n = mfs_position_kafka_partition(pos, len, 0, NULL);
	if (n < 0)
		return mfs_diag_set(d, MFS_E_CORRUPT, 0, NULL, 0, 0, "not a Kafka reader position");
	for (int i = 0; i < n; i++) {
		mfs_kafka_partition e;
		mfs_position_kafka_partition(pos, len, (size_t)i, &e);
		struct kpart *p = find_part(k, e.topic, e.topic_len, e.partition, 1);
		if (!p)
			return mfs_diag_set(d, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		if (e.offset < 0)
			continue; /* held but never consumed: "start" decides */
		p->known = 1;
		p->out.off = e.offset;
		p->out.lines = e.lines;
		p->out.events = e.events;
		p->out.skipped = e.skipped;
		p->rd = p->out;
	}
	return 0;
}

int mfs_ksrc_commit(struct mfs_ksrc *k, const void *pos, size_t len, mfs_diag *d)
{
	int n = mfs_position_kafka_partition(pos, len, 0, NULL);
	if (n < 0)
		return mfs_diag_set(d, MFS_E_CORRUPT, 0, NULL, 0, 0, "not a Kafka reader position");
	if (!k->has_group_id)
		return 0;
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
	if (!l)
		return mfs_diag_set(d, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
	for (int i = 0; i < n; i++) {
		mfs_kafka_partition e;
		mfs_position_kafka_partition(pos, len, (size_t)i, &e);
		struct kpart *p = find_part(k, e.topic, e.topic_len, e.partition, 0);
		if (!p || !p->assigned || e.offset < 0)
			continue;
		rd_kafka_topic_partition_list_add(l, p->topic, p->part)->offset = e.offset;
	}
	if (l->cnt)
		rd_kafka_commit(k->rk, l, 1);
	rd_kafka_topic_partition_list_destroy(l);
	return 0;
}

int mfs_ksrc_partition(const struct mfs_ksrc *k, size_t i, mfs_kafka_partition *out)
{
	if (i < k->nparts && out) {
		const struct kpart *p = &k->parts[i];
		memset(out, 0, sizeof *out);
		out->topic = p->topic;
		out->topic_len = strlen(p->topic);
		out->partition = p->part;
		out->assigned = p->assigned;
		out->offset = p->out.off;
		out->lines = p->out.lines;
		out->events = p->out.events;
		out->skipped = p->out.skipped;
		int64_t lo = -1, hi = -1;
		out->end = -1;
		out->lag = -1;
		if (rd_kafka_get_watermark_offsets(k->rk, p->topic, p->part, &lo, &hi) == 0 &&
		    hi >= 0) {
			out->end = hi;
			int64_t at = p->out.off;
			if (!has_pos(p))
				at = k->kc.latest ? hi : lo > 0 ? lo : 0;
			out->lag = hi > at ? hi - at : 0;
		}
	}
	return (int)k->nparts;
}

void mfs_ksrc_watermarks(struct mfs_ksrc *k, int timeout_ms)
{
	/*
	 * The broker threads keep the cached ends fresh from fetch responses; a
	 * partition with nothing new gets its first one after fetch.wait.max.ms.
	 * No rd_kafka_query_watermark_offsets: it does not keep to its timeout
	 * while the brokers are down.
	 */
	int64_t until = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		size_t unknown = 0;
		for (size_t i = 0; i < k->nparts; i++) {
			const struct kpart *p = &k->parts[i];
			int64_t lo = -1, hi = -1;
			if (p->assigned &&
			    (rd_kafka_get_watermark_offsets(k->rk, p->topic, p->part, &lo, &hi) != 0 ||
			     hi < 0))
				unknown++;
		}
		if (!unknown || now_ms() >= until)
			return;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}
