/*
 * chunk.c - model files cut into chunks for the model topic, and the edge
 * state that reassembles them (see chunk.h for the format).
 *
 * The edge keeps the newest whole snapshot's bytes and the deltas after it
 * (deltas 1..n, in order); a build loads the snapshot from memory and applies
 * the deltas, as a checkpoint directory's chain is loaded. What is held is
 * bounded: a declared total above max_total is refused, and the sets still
 * arriving (with the deltas that wait for a missing one) stay under twice
 * max_total, the oldest dropped first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "model_internal.h"

/* The fuzz build takes every checksum as a match (as modelfile.c does), so
 * that what lies past them is reached. */
#ifdef MFS_FUZZ_IGNORE_CHECKSUMS
#define CHUNK_SUM_OK(p, n, want) ((void)(p), (void)(n), (void)(want), 1)
#else
#define CHUNK_SUM_OK(p, n, want) (mfs_checksum((p), (n)) == (want))
#endif

static const char CHUNK_MAGIC[8] = { 'M', 'F', 'S', 'C', 'H', 'N', 'K', '1' };
#define CHUNK_VERSION 1u

uint32_t mfs_chunk_count(uint64_t total)
{
	uint64_t n = (total + MFS_CHUNK_PAYLOAD - 1) / MFS_CHUNK_PAYLOAD;
	return n ? (uint32_t)n : 1;
}

void mfs_chunk_header(uint8_t h[MFS_CHUNK_HEADER], const struct mfs_chunk_info *ci,
		      const void *payload)
{
	memset(h, 0, MFS_CHUNK_HEADER);
	memcpy(h, CHUNK_MAGIC, 8);
	mfs_put32(h + 8, CHUNK_VERSION);
	mfs_put32(h + 12, ci->kind);
	mfs_put64(h + 16, ci->snap);
	mfs_put64(h + 24, ci->seq);
	mfs_put32(h + 32, ci->index);
	mfs_put32(h + 36, ci->count);
	mfs_put64(h + 40, ci->total);
	mfs_put64(h + 48, ci->events);
	mfs_put64(h + 56, ci->write_ns);
	mfs_put32(h + 64, ci->len);
	mfs_put64(h + 72, mfs_checksum(payload, ci->len));
	mfs_put64(h + 88, mfs_checksum(h, 88));
}

int mfs_chunk_parse(const void *msg, size_t len, struct mfs_chunk_info *ci,
		    const uint8_t **payload, const char **why)
{
	const uint8_t *h = msg;
	if (!msg || len < MFS_CHUNK_HEADER || memcmp(h, CHUNK_MAGIC, 8) != 0) {
		*why = "not a model chunk (bad magic or too short)";
		return -1;
	}
	if (!CHUNK_SUM_OK(h, 88, mfs_get64(h + 88))) {
		*why = "chunk header checksum mismatch";
		return -1;
	}
	if (mfs_get32(h + 8) != CHUNK_VERSION) {
		*why = "chunk format version is not supported";
		return -1;
	}
	ci->kind = mfs_get32(h + 12);
	ci->snap = mfs_get64(h + 16);
	ci->seq = mfs_get64(h + 24);
	ci->index = mfs_get32(h + 32);
	ci->count = mfs_get32(h + 36);
	ci->total = mfs_get64(h + 40);
	ci->events = mfs_get64(h + 48);
	ci->write_ns = mfs_get64(h + 56);
	ci->len = mfs_get32(h + 64);
	if (ci->kind > MFS_CHUNK_DELTA || (ci->kind == MFS_CHUNK_FULL) != (ci->seq == 0)) {
		*why = "chunk has an unknown kind";
		return -1;
	}
	uint64_t want = ci->total - (uint64_t)ci->index * MFS_CHUNK_PAYLOAD;
	if (ci->total == 0 || ci->count != mfs_chunk_count(ci->total) || ci->index >= ci->count ||
	    ci->len != (want > MFS_CHUNK_PAYLOAD ? MFS_CHUNK_PAYLOAD : want) ||
	    len != MFS_CHUNK_HEADER + (size_t)ci->len) {
		*why = "chunk has impossible sizes";
		return -1;
	}
	*payload = h + MFS_CHUNK_HEADER;
	if (!CHUNK_SUM_OK(*payload, ci->len, mfs_get64(h + 72))) {
		*why = "chunk payload checksum mismatch";
		return -1;
	}
	return 0;
}

/* --- the edge ---------------------------------------------------------------- */

/* A file, arriving (have/got) or complete. */
struct part {
	uint32_t kind, count, got;
	uint64_t snap, seq, total, events, write_ns;
	uint8_t *buf;
	uint8_t *have; /* count flags; NULL once complete */
	struct part *next;
};

struct mfs_edge {
	uint64_t max_total;
	uint64_t held;        /* bytes of the arriving sets and the waiting deltas */
	struct part *arriving;
	struct part *waiting; /* complete deltas that are not next in the chain */
	struct part *full;    /* the newest whole snapshot */
	struct part **chain;  /* its deltas 1..nd */
	size_t nd, cap;
	int frozen;           /* a delta did not apply: no more until the next snapshot */
	int changed;          /* the chain grew since the last build */
	uint64_t gap_snap, gap_seq; /* the gap reported last */
	struct mfs_edge_stats st;
};

static void part_free(struct part *p)
{
	if (!p)
		return;
	free(p->buf);
	free(p->have);
	free(p);
}

int mfs_edge_create(struct mfs_edge **out, uint64_t max_total)
{
	struct mfs_edge *e = calloc(1, sizeof *e);
	if (!e)
		return -MFS_E_NOMEM;
	e->max_total = max_total;
	*out = e;
	return 0;
}

static void free_list(struct part *p)
{
	while (p) {
		struct part *n = p->next;
		part_free(p);
		p = n;
	}
}

static void free_chain(struct mfs_edge *e)
{
	for (size_t i = 0; i < e->nd; i++)
		part_free(e->chain[i]);
	e->nd = 0;
}

void mfs_edge_free(struct mfs_edge *e)
{
	if (!e)
		return;
	free_list(e->arriving);
	free_list(e->waiting);
	part_free(e->full);
	free_chain(e);
	free(e->chain);
	free(e);
}

/* Older first: (snap, seq) order. */
static int older(const struct part *a, const struct part *b)
{
	return a->snap < b->snap || (a->snap == b->snap && a->seq < b->seq);
}

/* Unlink and free the oldest held part (arriving or waiting); 0 when none. */
static int drop_oldest(struct mfs_edge *e)
{
	struct part **best = NULL;
	for (struct part **pp = &e->arriving; *pp; pp = &(*pp)->next)
		if (!best || older(*pp, *best))
			best = pp;
	for (struct part **pp = &e->waiting; *pp; pp = &(*pp)->next)
		if (!best || older(*pp, *best))
			best = pp;
	if (!best)
		return 0;
	struct part *p = *best;
	*best = p->next;
	e->held -= p->total;
	e->st.dropped_sets++;
	part_free(p);
	return 1;
}

/* Drop the held parts of snapshots before snap (superseded). */
static void drop_before(struct mfs_edge *e, uint64_t snap)
{
	struct part **lists[2] = { &e->arriving, &e->waiting };
	for (int l = 0; l < 2; l++)
		for (struct part **pp = lists[l]; *pp;) {
			struct part *p = *pp;
			if (p->snap < snap) {
				*pp = p->next;
				e->held -= p->total;
				if (p->have)
					e->st.dropped_sets++; /* never completed */
				part_free(p);
			} else {
				pp = &p->next;
			}
		}
}

/* Move the waiting deltas that come next into the chain; returns how many. */
static int pull_waiting(struct mfs_edge *e)
{
	int moved = 0;
	while (e->full && !e->frozen) {
		struct part **pp = &e->waiting;
		while (*pp && !((*pp)->snap == e->full->snap && (*pp)->seq == e->nd + 1))
			pp = &(*pp)->next;
		if (!*pp)
			break;
		if (e->nd == e->cap) {
			size_t nc = e->cap ? 2 * e->cap : 16;
			struct part **c = realloc(e->chain, nc * sizeof *c);
			if (!c)
				break; /* it waits */
			e->chain = c;
			e->cap = nc;
		}
		struct part *p = *pp;
		*pp = p->next;
		e->held -= p->total;
		p->next = NULL;
		e->chain[e->nd++] = p;
		e->st.deltas++;
		moved++;
	}
	return moved;
}

static struct part *find_arriving(struct mfs_edge *e, const struct mfs_chunk_info *ci,
				  struct part ***link)
{
	for (struct part **pp = &e->arriving; *pp; pp = &(*pp)->next) {
		struct part *p = *pp;
		if (p->kind == ci->kind && p->snap == ci->snap && p->seq == ci->seq) {
			*link = pp;
			return p;
		}
	}
	return NULL;
}

int mfs_edge_add(struct mfs_edge *e, const void *msg, size_t len, const char *where,
		 mfs_bad_record_fn on_bad, void *ctx)
{
	struct mfs_chunk_info ci;
	const uint8_t *payload;
	const char *why;
	e->st.chunks++;
	if (mfs_chunk_parse(msg, len, &ci, &payload, &why) < 0) {
		e->st.bad_chunks++;
		mfs_diag_report(on_bad, ctx, MFS_E_CORRUPT, where, 0, "%s: skipped", why);
		return 0;
	}
	if (ci.total > e->max_total) {
		e->st.bad_chunks++;
		mfs_diag_report(on_bad, ctx, MFS_E_INVAL, where, 0,
		       "a model file of %llu bytes is over the limit of %llu: skipped",
		       (unsigned long long)ci.total, (unsigned long long)e->max_total);
		return 0;
	}
	/* stale: an older snapshot, or a delta the chain already holds */
	if (e->full && (ci.snap < e->full->snap ||
			(ci.snap == e->full->snap && (ci.kind == MFS_CHUNK_FULL || ci.seq <= e->nd))))
		return 0;
	for (struct part *w = e->waiting; w; w = w->next)
		if (w->snap == ci.snap && w->seq == ci.seq && ci.kind == MFS_CHUNK_DELTA)
			return 0; /* complete already (a duplicate) */
	struct part **link = NULL;
	struct part *p = find_arriving(e, &ci, &link);
	if (p && (p->count != ci.count || p->total != ci.total)) {
		e->st.bad_chunks++;
		mfs_diag_report(on_bad, ctx, MFS_E_CORRUPT, where, 0,
		       "chunk disagrees with the others of its file (%u chunks, %llu bytes, not "
		       "%u and %llu): the file is dropped",
		       ci.count, (unsigned long long)ci.total, p->count, (unsigned long long)p->total);
		*link = p->next;
		e->held -= p->total;
		e->st.dropped_sets++;
		part_free(p);
		return 0;
	}
	if (!p) {
		while (e->held + ci.total > 2 * e->max_total && drop_oldest(e))
			;
		p = calloc(1, sizeof *p);
		if (p) {
			p->buf = malloc(ci.total);
			p->have = calloc(ci.count, 1);
		}
		if (!p || !p->buf || !p->have) {
			part_free(p);
			e->st.bad_chunks++;
			mfs_diag_report(on_bad, ctx, MFS_E_NOMEM, where, 0, "out of memory for a model file of %llu bytes",
			       (unsigned long long)ci.total);
			return 0;
		}
		p->kind = ci.kind;
		p->snap = ci.snap;
		p->seq = ci.seq;
		p->count = ci.count;
		p->total = ci.total;
		p->events = ci.events;
		p->write_ns = ci.write_ns;
		p->next = e->arriving;
		e->arriving = p;
		link = &e->arriving;
		e->held += ci.total;
	}
	if (p->have[ci.index])
		return 0; /* a duplicate (a producer's retry, or a reread) */
	p->have[ci.index] = 1;
	memcpy(p->buf + (size_t)ci.index * MFS_CHUNK_PAYLOAD, payload, ci.len);
	if (++p->got < p->count)
		return 0;
	/* complete */
	*link = p->next;
	p->next = NULL;
	free(p->have);
	p->have = NULL;
	if (p->kind == MFS_CHUNK_FULL) {
		e->held -= p->total;
		part_free(e->full);
		free_chain(e);
		e->full = p;
		e->frozen = 0;
		e->st.fulls++;
		drop_before(e, p->snap);
		pull_waiting(e);
		e->changed = 1;
		return 1;
	}
	p->next = e->waiting;
	e->waiting = p;
	if (pull_waiting(e) > 0) {
		e->changed = 1;
		return 1;
	}
	return 0;
}

/* Report a gap once: a later delta of the snapshot waits for a missing one. */
static void check_gap(struct mfs_edge *e, mfs_bad_record_fn on_bad, void *ctx)
{
	if (!e->full || e->frozen)
		return;
	uint64_t later = 0;
	for (struct part *w = e->waiting; w; w = w->next)
		if (w->snap == e->full->snap && w->seq > e->nd + 1 && (!later || w->seq < later))
			later = w->seq;
	if (!later || (e->gap_snap == e->full->snap && e->gap_seq == e->nd + 1))
		return;
	e->gap_snap = e->full->snap;
	e->gap_seq = e->nd + 1;
	e->st.gaps++;
	char where[96];
	snprintf(where, sizeof where, "snapshot %llu delta %llu", (unsigned long long)e->full->snap,
		 (unsigned long long)(e->nd + 1));
	mfs_diag_report(on_bad, ctx, MFS_E_CORRUPT, where, 0,
	       "delta %llu is missing or damaged (delta %llu arrived): serving the model up to "
	       "delta %llu until it comes or the next whole snapshot does",
	       (unsigned long long)(e->nd + 1), (unsigned long long)later,
	       (unsigned long long)e->nd);
}

/* The snapshot with the first n deltas of the chain applied. */
static int build_n(struct mfs_edge *e, size_t n, mfs_model **out, const char *kernel,
		   size_t *applied, mfs_bad_record_fn on_bad, void *ctx, mfs_diag *diag)
{
	char name[96];
	snprintf(name, sizeof name, "snapshot %llu", (unsigned long long)e->full->snap);
	mfs_model *m;
	int rc = mfs_model_load_mem(&m, e->full->buf, e->full->total, name, kernel, diag);
	if (rc < 0)
		return rc;
	*applied = 0;
	for (size_t i = 0; i < n; i++) {
		const struct part *p = e->chain[i];
		snprintf(name, sizeof name, "snapshot %llu delta %llu", (unsigned long long)p->snap,
			 (unsigned long long)p->seq);
		mfs_diag d;
		int touched, other;
		if (mfs_model_apply_delta_mem(m, p->buf, p->total, name, &touched, &other, &d) == 0) {
			*applied = i + 1;
			continue;
		}
		if (on_bad)
			on_bad(ctx, &d);
		if (touched) {
			mfs_model_free(m);
			return build_n(e, i, out, kernel, applied, NULL, NULL, diag);
		}
		break;
	}
	*out = m;
	return 0;
}

int mfs_edge_build(struct mfs_edge *e, mfs_model **out, const char *kernel, uint64_t *write_ns,
		   mfs_bad_record_fn on_bad, void *ctx, mfs_diag *diag)
{
	check_gap(e, on_bad, ctx);
	if (!e->changed || !e->full)
		return 0;
	e->changed = 0;
	size_t applied;
	mfs_diag d;
	int rc = build_n(e, e->nd, out, kernel, &applied, on_bad, ctx, &d);
	if (rc < 0) {
		/* the snapshot itself does not load: wait for the next one */
		if (on_bad)
			on_bad(ctx, &d);
		if (diag)
			*diag = d;
		part_free(e->full);
		e->full = NULL;
		free_chain(e);
		return rc == -MFS_E_NOMEM ? rc : 0;
	}
	if (applied < e->nd) {
		/* a delta that does not apply: the chain stops before it */
		for (size_t i = applied; i < e->nd; i++)
			part_free(e->chain[i]);
		e->nd = applied;
		e->frozen = 1;
	}
	*write_ns = e->nd ? e->chain[e->nd - 1]->write_ns : e->full->write_ns;
	return 1;
}

int mfs_edge_waiting(const struct mfs_edge *e)
{
	if (e->arriving)
		return 1;
	for (const struct part *w = e->waiting; w; w = w->next)
		if (!e->full || w->snap > e->full->snap || !e->frozen)
			return 1; /* it waits for an earlier delta or its snapshot */
	return 0;
}

void mfs_edge_stats_get(const struct mfs_edge *e, struct mfs_edge_stats *st)
{
	*st = e->st;
	st->snap = e->full ? e->full->snap : 0;
	st->seq = e->nd;
}
