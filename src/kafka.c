/*
 * kafka.c - Kafka topics -> batches of events: the consumer, its settings,
 * partitions and rebalances (kafka_read.c turns its messages into events and
 * keeps the positions). librdkafka's header is included by these two (through
 * kafka_internal.h) and by the model topic's publish.c only.
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

#include "kafka_internal.h"

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

void mfs_ksrc_notice(struct mfs_ksrc *k, int code, const char *fmt, ...)
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
void mfs_ksrc_note_error(struct mfs_ksrc *k, const char *what)
{
	snprintf(k->err_text, sizeof k->err_text, "%s", what);
	k->err_count++;
}

void mfs_ksrc_flush_errors(struct mfs_ksrc *k)
{
	if (!k->err_count)
		return;
	int64_t t = mfs_ksrc_now_ms();
	if (k->last_notice && t - k->last_notice < (int64_t)k->kc.notice_ms)
		return;
	mfs_ksrc_notice(k, MFS_E_IO, "%s (%llu error%s since the last notice); retrying, learning what arrives",
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
	mfs_ksrc_note_error(k, buf);
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
	mfs_ksrc_notice(k, MFS_E_OK, "librdkafka %s: %s", fac, buf);
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
		mfs_ksrc_note_error(k, buf);
	}
}

/* --- partitions --------------------------------------------------------------- */

struct kpart *mfs_ksrc_find_part(struct mfs_ksrc *k, const char *topic, size_t tlen, int32_t part,
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
int mfs_ksrc_has_pos(const struct kpart *p)
{
	return p->known || p->out.events || p->out.skipped || p->out.off > 0;
}

static int64_t start_offset(const struct mfs_ksrc *k, const struct kpart *p)
{
	if (mfs_ksrc_has_pos(p))
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
			struct kpart *p = mfs_ksrc_find_part(k, t->topic, strlen(t->topic), t->partition, 1);
			if (!p)
				continue; /* out of memory: it starts where the group says */
			p->assigned = 1;
			p->rd = p->out;
			t->offset = start_offset(k, p);
		}
		mfs_ksrc_notice(k, MFS_E_OK, "group %s assigned %d partition%s", k->kc.group, list->cnt,
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
		struct kpart *p = mfs_ksrc_find_part(k, t->topic, strlen(t->topic), t->partition, 0);
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
	mfs_ksrc_notice(k, MFS_E_OK, "group %s took back %d partition%s", k->kc.group, list->cnt,
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
int mfs_ksrc_assign_all(struct mfs_ksrc *k, int timeout_ms)
{
	int64_t t = mfs_ksrc_now_ms();
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
				mfs_ksrc_note_error(k, buf);
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
				mfs_ksrc_note_error(k, buf);
				missing = 1;
				continue;
			}
			for (int pi = 0; pi < mt->partition_cnt; pi++) {
				struct kpart *p = mfs_ksrc_find_part(k, mt->topic, strlen(mt->topic),
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
		k->next_meta = mfs_ksrc_now_ms() + META_RETRY_MS;
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
		int64_t off = mfs_ksrc_has_pos(p) || p->rd.off > 0 ? p->rd.off : start_offset(k, p);
		rd_kafka_topic_partition_list_add(l, p->topic, p->part)->offset = off;
	}
	rd_kafka_resp_err_t e = rd_kafka_assign(k->rk, l);
	rd_kafka_topic_partition_list_destroy(l);
	if (e) {
		mfs_ksrc_note_error(k, rd_kafka_err2str(e));
		return 0;
	}
	mfs_ksrc_notice(k, MFS_E_OK, "consuming %zu partition%s of %s", n, n == 1 ? "" : "s", k->kc.topics);
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

