/*
 * cli_rank.c - eval --metric: ranking metrics of a saved model on held-out
 * interactions, offline, as train --feedback implicit scores the stream.
 *
 * Every held-out (user, item) pair whose item is not in the user's history
 * (the model's seen set, as in the prequential metrics) is scored: the model
 * ranks every item for the user with mfs_model_recommend (the same scan as
 * recommend and serve, the history left out), and the pair is a hit at K
 * when its item is among the first K, at rank r (0-based):
 *   hr@K       hits / pairs
 *   ndcg@K     sum over hits of 1 / log2(r + 2), / pairs
 *   recall@K   per user, its hits / its pairs; the mean over users
 * An item the model does not hold is a miss. Pairs in the user's history are
 * counted (seen_skipped) and not scored.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define RANK_METRICS_MAX 8
#define RANK_K_MAX 1000

enum { M_HR, M_NDCG, M_RECALL };

struct metric {
	int kind;
	unsigned k;
	double sum; /* hr, ndcg: over pairs; recall: over users (at the end) */
};

/* Per user (recall): pairs and hits at each recall metric, by a hash of the ID. */
struct user_acc {
	uint64_t key; /* 0: empty */
	uint32_t pairs;
	uint32_t hits[RANK_METRICS_MAX];
};

struct users {
	struct user_acc *t;
	size_t cap, n;
};

static uint64_t id_key(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h ? h : 1;
}

static struct user_acc *users_get(struct users *u, uint64_t key)
{
	if (2 * (u->n + 1) > u->cap) {
		size_t nc = u->cap ? 2 * u->cap : 1024;
		struct user_acc *nt = calloc(nc, sizeof *nt);
		if (!nt)
			return NULL;
		for (size_t i = 0; i < u->cap; i++) {
			if (!u->t[i].key)
				continue;
			size_t j = u->t[i].key & (nc - 1);
			while (nt[j].key)
				j = (j + 1) & (nc - 1);
			nt[j] = u->t[i];
		}
		free(u->t);
		u->t = nt;
		u->cap = nc;
	}
	size_t j = key & (u->cap - 1);
	while (u->t[j].key && u->t[j].key != key)
		j = (j + 1) & (u->cap - 1);
	if (!u->t[j].key) {
		u->t[j].key = key;
		u->n++;
	}
	return &u->t[j];
}

/* "hr@10,ndcg@10,recall@20" -> metrics. Returns the count, or -1 (said). */
static int parse_metrics(const char *spec, struct metric *m)
{
	int n = 0;
	const char *p = spec;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char one[64];
		if (len == 0 || len >= sizeof one) {
			cli_usage("eval", "--metric: empty or over-long entry in \"%s\"", spec);
			return -1;
		}
		memcpy(one, p, len);
		one[len] = 0;
		char *at = strchr(one, '@');
		int kind = -1;
		if (at) {
			*at = 0;
			kind = strcmp(one, "hr") == 0	    ? M_HR
			       : strcmp(one, "ndcg") == 0   ? M_NDCG
			       : strcmp(one, "recall") == 0 ? M_RECALL
							    : -1;
		}
		char *e = NULL;
		unsigned long k = at ? strtoul(at + 1, &e, 10) : 0;
		if (kind < 0 || !at[1] || *e || at[1] < '1' || at[1] > '9' || k > RANK_K_MAX) {
			cli_usage("eval", "--metric: \"%.*s\" is not hr@K, ndcg@K or recall@K (K 1..%d)",
				  (int)len, p, RANK_K_MAX);
			return -1;
		}
		if (n == RANK_METRICS_MAX) {
			cli_usage("eval", "--metric: at most %d metrics", RANK_METRICS_MAX);
			return -1;
		}
		m[n++] = (struct metric){ kind, (unsigned)k, 0.0 };
		p = end ? end + 1 : p + len;
		if (end && !*p) {
			cli_usage("eval", "--metric: empty entry at the end of \"%s\"", spec);
			return -1;
		}
	}
	if (n == 0)
		cli_usage("eval", "--metric: no metric given");
	return n ? n : -1;
}

static const char *metric_name(int kind)
{
	return kind == M_HR ? "hr" : kind == M_NDCG ? "ndcg" : "recall";
}

struct rank_ctx {
	const mfs_model *m;
	struct metric *mt;
	int nm;
	unsigned kmax;
	mfs_scored *top;
	uint32_t *hist;
	size_t hcap;
	struct users us;
	uint64_t pairs, seen, unknown;
};

static int rank_one(void *ctx, const mfs_event *e)
{
	struct rank_ctx *c = ctx;
	int64_t row = mfs_model_find(c->m, MFS_ITEMS, e->item, e->item_len);
	int hn = mfs_model_history(c->m, e->user, e->user_len, c->hist, c->hcap);
	for (int h = 0; row >= 0 && h < hn && h < (int)c->hcap; h++)
		if (c->hist[h] == (uint32_t)row) {
			c->seen++; /* not a first-time pair: not scored */
			return 0;
		}
	long rank = -1;
	if (row >= 0) {
		int k = mfs_model_recommend(c->m, e->user, e->user_len, c->kmax, c->top);
		if (k < 0) {
			cli_error("ranking failed: %s", mfs_error_name(k));
			return -1;
		}
		for (int r = 0; r < k && rank < 0; r++)
			if (c->top[r].row == (uint32_t)row)
				rank = r;
	} else {
		c->unknown++;
	}
	struct user_acc *ua = users_get(&c->us, id_key(e->user, e->user_len));
	if (!ua) {
		cli_error("out of memory");
		return -1;
	}
	c->pairs++;
	ua->pairs++;
	for (int j = 0; j < c->nm; j++) {
		if (rank < 0 || (unsigned)rank >= c->mt[j].k)
			continue;
		if (c->mt[j].kind == M_HR)
			c->mt[j].sum += 1.0;
		else if (c->mt[j].kind == M_NDCG)
			c->mt[j].sum += 1.0 / log2((double)rank + 2.0);
		else
			ua->hits[j]++;
	}
	return 0;
}

int cli_rank_eval(const mfs_model *m, const char *const *inputs, size_t n_inputs, int format,
		  const char *fields, const char *spec)
{
	struct metric mt[RANK_METRICS_MAX];
	int nm = parse_metrics(spec, mt);
	if (nm < 0)
		return EXIT_USAGE;
	struct rank_ctx c = { .m = m, .mt = mt, .nm = nm };
	for (int i = 0; i < nm; i++)
		c.kmax = mt[i].k > c.kmax ? mt[i].k : c.kmax;
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	c.hcap = info.history ? info.history : 1;
	c.top = malloc(c.kmax * sizeof *c.top);
	c.hist = malloc(c.hcap * sizeof *c.hist);
	int rc = 0, interrupted = 0;
	struct cli_bad bad;
	memset(&bad, 0, sizeof bad);
	if (!c.top || !c.hist) {
		cli_error("out of memory");
		rc = EXIT_RUNTIME;
		goto out;
	}
	rc = cli_each_event(inputs, n_inputs, format, fields, rank_one, &c, &bad, &interrupted);
	if (rc == 0 && c.pairs == 0) {
		cli_error("no held-out pair to rank (%llu records, %llu of them already in the "
			  "users' histories, %llu malformed)",
			  (unsigned long long)(c.seen + bad.count), (unsigned long long)c.seen,
			  (unsigned long long)bad.count);
		rc = EXIT_RUNTIME;
	}
	if (rc == 0) {
		for (size_t i = 0; i < c.us.cap; i++)
			for (int j = 0; j < nm; j++)
				if (c.us.t[i].key && mt[j].kind == M_RECALL)
					mt[j].sum += (double)c.us.t[i].hits[j] / c.us.t[i].pairs;
		printf("{\"n\": %llu, \"users\": %llu", (unsigned long long)c.pairs,
		       (unsigned long long)c.us.n);
		for (int j = 0; j < nm; j++)
			printf(", \"%s@%u\": %.6f", metric_name(mt[j].kind), mt[j].k,
			       mt[j].sum / (double)(mt[j].kind == M_RECALL ? c.us.n : c.pairs));
		printf(", \"seen_skipped\": %llu, \"unknown_items\": %llu, \"skipped\": %llu, "
		       "\"scores\": \"%s\", \"interrupted\": %s}\n",
		       (unsigned long long)c.seen, (unsigned long long)c.unknown,
		       (unsigned long long)bad.count,
		       mfs_model_implicit_get(m, NULL) == 1 ? "logit" : "rating",
		       interrupted ? "true" : "false");
	}
out:
	free(c.us.t);
	free(c.top);
	free(c.hist);
	return rc;
}
