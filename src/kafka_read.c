/*
 * kafka_read.c - the Kafka consumer's messages -> batches of events (one
 * message = one line or many), and the positions: the offsets handed out,
 * their blob inside checkpoints, seeking to it, committing it, per-partition
 * lag. Runs in the caller's thread, as kafka.c does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_internal.h"
#include "parse.h"

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
	struct kpart *p = mfs_ksrc_find_part(k, topic, strlen(topic), m->partition, 0);
	if (!p || !p->assigned || m->offset < p->rd.off) {
		rd_kafka_message_destroy(m); /* stale: before the position, or not ours any more */
		return 0;
	}
	size_t skip = 0;
	if (m->offset == p->rd.off) {
		skip = (size_t)p->rd.lines; /* resumed inside this message */
	} else {
		int64_t t = mfs_ksrc_now_ms();
		if ((p->rd.off > 0 || p->known) &&
		    (!k->last_gap || t - k->last_gap >= (int64_t)k->kc.notice_ms)) {
			k->last_gap = t; /* at most one a period: a compacted log has many gaps */
			mfs_ksrc_notice(k, MFS_E_OK,
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
		  uint64_t align, uint64_t phase, mfs_diag *d)
{
	size_t limit = k->cfg.batch;
	if (align) {
		uint64_t left = align - (k->handed + phase) % align;
		if (left < limit)
			limit = (size_t)left;
	}
	k->n = 0;
	k->arena_len = 0;
	int64_t start = mfs_ksrc_now_ms();
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
		int64_t t = mfs_ksrc_now_ms();
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
			mfs_ksrc_assign_all(k, wait > 0 ? wait : 1); /* the first time, then now and then */
		mfs_ksrc_flush_errors(k);
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
				mfs_ksrc_note_error(k, buf);
			}
			rd_kafka_message_destroy(m);
			continue;
		}
		if (k->down) {
			mfs_ksrc_notice(k, MFS_E_OK, "receiving messages again");
			k->down = 0;
			k->err_count = 0;
		}
		accept_message(k, m);
	}
	mfs_ksrc_flush_errors(k);
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
			int64_t off = mfs_ksrc_has_pos(p) ? p->out.off : -1;
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
		struct kpart *p = mfs_ksrc_find_part(k, e.topic, e.topic_len, e.partition, 1);
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
		struct kpart *p = mfs_ksrc_find_part(k, e.topic, e.topic_len, e.partition, 0);
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
			if (!mfs_ksrc_has_pos(p))
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
	int64_t until = mfs_ksrc_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
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
		if (!unknown || mfs_ksrc_now_ms() >= until)
			return;
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}
