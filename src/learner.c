/*
 * learner.c - the public mfs_learner: a model, its source and its
 * checkpointer, opened from settings given by name (as the CLI spells its
 * options) and run batch by batch. Resume is exact: the model comes from the
 * newest checkpoint and the source continues from the position it holds.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "parse.h"

struct mfs_learner_config {
	mfs_config model;
	int format;
	char *fields;
	size_t batch;
	unsigned threads;
	char *dir; /* checkpoints (NULL: none) */
	uint64_t every_events, every_ms, delta_events, delta_ms;
	int64_t keep, compress, stop_on_error;
	char *kernel;
	mfs_bad_record_fn on_bad;
	void *ctx;
};

struct mfs_learner {
	mfs_model *m;
	mfs_source *src;
	mfs_checkpointer *ck;
	uint64_t read;   /* events read since open (the checkpoint periods count them) */
	int ended;
	mfs_learner_stats st;
};

MFS_API int mfs_learner_config_new(mfs_learner_config **out)
{
	if (!out)
		return -MFS_E_INVAL;
	mfs_learner_config *c = calloc(1, sizeof *c);
	if (!c)
		return -MFS_E_NOMEM;
	mfs_config_default(&c->model);
	mfs_source_config sc;
	mfs_source_config_default(&sc);
	c->format = sc.format;
	c->batch = sc.batch;
	c->threads = 1;
	c->every_ms = 30000;
	c->keep = 3;
	*out = c;
	return 0;
}

MFS_API void mfs_learner_config_free(mfs_learner_config *c)
{
	if (!c)
		return;
	free(c->fields);
	free(c->dir);
	free(c->kernel);
	free(c);
}

MFS_API void mfs_learner_config_on_bad(mfs_learner_config *c, mfs_bad_record_fn fn, void *ctx)
{
	if (c) {
		c->on_bad = fn;
		c->ctx = ctx;
	}
}

/* A number of the whole text v (locale-independent), with an optional k/M/G suffix. */
static int number(const char *v, int suffix, double *out)
{
	size_t n = strlen(v);
	double mul = 1;
	if (suffix && n > 1) {
		char s = v[n - 1];
		mul = s == 'k' || s == 'K' ? 1e3 : s == 'M' ? 1e6 : s == 'G' ? 1e9 : 1;
		if (mul > 1)
			n--;
	}
	if (n == 0 || mfs_parse_number(v, n, out) < 0)
		return -1;
	*out *= mul;
	return 0;
}

/* An event count "100000" / "100k", or a period "30s" / "500ms" (*ms). */
static int period(const char *v, uint64_t *events, uint64_t *ms)
{
	static const struct {
		const char *suffix;
		double ms;
	} units[] = { { "ms", 1 }, { "s", 1000 } };
	size_t n = strlen(v);
	double x;
	for (size_t u = 0; u < sizeof units / sizeof *units; u++) {
		size_t sl = strlen(units[u].suffix);
		char buf[64];
		if (n <= sl || strcmp(v + n - sl, units[u].suffix) != 0 || n - sl >= sizeof buf)
			continue;
		memcpy(buf, v, n - sl);
		buf[n - sl] = '\0';
		if (number(buf, 0, &x) < 0 || x < 0 || x * units[u].ms > 1e15)
			return -1;
		*events = 0;
		*ms = (uint64_t)(x * units[u].ms + 0.5);
		return 0;
	}
	if (number(v, 1, &x) < 0 || x < 0 || x > 1e18 || x != (double)(uint64_t)x)
		return -1;
	*events = (uint64_t)x;
	*ms = 0;
	return 0;
}

static int set_string(char **slot, const char *v)
{
	char *s = strdup(v);
	if (!s)
		return -MFS_E_NOMEM;
	free(*slot);
	*slot = s;
	return 0;
}

enum kind { K_U32, K_U64, K_F32, K_INT };

/* The model settings that are plain numbers: name, kind, where, range. */
static const struct {
	const char *name;
	enum kind kind;
	size_t off;
	double lo, hi;
} NUMBERS[] = {
	{ "dim", K_U32, offsetof(mfs_config, dim), 1, 4096 },
	{ "max-users", K_U64, offsetof(mfs_config, max_users), 1, 1e12 },
	{ "max-items", K_U64, offsetof(mfs_config, max_items), 1, 1e12 },
	{ "lr", K_F32, offsetof(mfs_config, lr), 0, 1e6 },
	{ "lr-bias", K_F32, offsetof(mfs_config, lr_bias), 0, 1e6 },
	{ "l2", K_F32, offsetof(mfs_config, l2), 0, 1e6 },
	{ "l2-bias", K_F32, offsetof(mfs_config, l2_bias), 0, 1e6 },
	{ "init-std", K_F32, offsetof(mfs_config, init_std), 0, 1e3 },
	{ "seed", K_U64, offsetof(mfs_config, seed), 0, 1.8e19 },
	{ "min-count", K_U32, offsetof(mfs_config, min_count), 1, 1e9 },
	{ "history", K_U32, offsetof(mfs_config, history), 0, MFS_HISTORY_MAX },
	{ "freq-alpha", K_F32, offsetof(mfs_config, freq_alpha), 0, 1 },
	{ "freq-alpha-bias", K_F32, offsetof(mfs_config, freq_alpha_bias), 0, 1 },
	{ "evict", K_INT, offsetof(mfs_config, evict), 0, 1 },
};

static int bad(mfs_diag *d, const char *name, const char *v, const char *why)
{
	return mfs_diag_set(d, MFS_E_INVAL, 0, NULL, 0, 0, "learner setting %s=\"%s\": %s", name,
			    v, why);
}

MFS_API int mfs_learner_config_set(mfs_learner_config *c, const char *name, const char *v,
				   mfs_diag *diag)
{
	if (!c || !name || !v)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no config, name or value");
	for (size_t i = 0; i < sizeof NUMBERS / sizeof *NUMBERS; i++) {
		if (strcmp(name, NUMBERS[i].name) != 0)
			continue;
		double x;
		if (number(v, NUMBERS[i].kind != K_F32, &x) < 0)
			return bad(diag, name, v, "not a number");
		if (!(x >= NUMBERS[i].lo && x <= NUMBERS[i].hi))
			return bad(diag, name, v, "out of range");
		if (NUMBERS[i].kind != K_F32 && x != (double)(uint64_t)x)
			return bad(diag, name, v, "not a whole number");
		char *p = (char *)&c->model + NUMBERS[i].off;
		switch (NUMBERS[i].kind) {
		case K_U32:
			*(uint32_t *)(void *)p = (uint32_t)x;
			break;
		case K_U64:
			*(uint64_t *)(void *)p = (uint64_t)x;
			break;
		case K_F32:
			*(float *)(void *)p = (float)x;
			break;
		case K_INT:
			*(int *)(void *)p = (int)x;
			break;
		}
		return 0;
	}
	if (strcmp(name, "optimizer") == 0) {
		if (strcmp(v, "sgd") == 0)
			c->model.optimizer = MFS_OPT_SGD;
		else if (strcmp(v, "adagrad") == 0)
			c->model.optimizer = MFS_OPT_ADAGRAD;
		else
			return bad(diag, name, v, "must be sgd or adagrad");
		return 0;
	}
	if (strcmp(name, "rating-range") == 0) {
		const char *colon = strchr(v, ':');
		double lo, hi;
		char buf[64];
		if (!colon || (size_t)(colon - v) >= sizeof buf)
			return bad(diag, name, v, "must be LO:HI");
		memcpy(buf, v, (size_t)(colon - v));
		buf[colon - v] = '\0';
		if (number(buf, 0, &lo) < 0 || number(colon + 1, 0, &hi) < 0 || !(lo < hi))
			return bad(diag, name, v, "must be LO:HI with LO < HI");
		c->model.lo = (float)lo;
		c->model.hi = (float)hi;
		return 0;
	}
	if (strcmp(name, "kernel") == 0) {
		int rc = set_string(&c->kernel, v);
		c->model.kernel = c->kernel;
		return rc < 0 ? mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory") : 0;
	}
	if (strcmp(name, "format") == 0) {
		int f = mfs_format_parse(v);
		if (f < 0)
			return bad(diag, name, v, "not a format (auto, tsv, csv, dat, jsonl, ssv)");
		c->format = f;
		return 0;
	}
	if (strcmp(name, "fields") == 0 || strcmp(name, "checkpoint-dir") == 0)
		return set_string(name[0] == 'f' ? &c->fields : &c->dir, v) < 0
			       ? mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory")
			       : 0;
	if (strcmp(name, "checkpoint-every") == 0 || strcmp(name, "delta-every") == 0) {
		int full = name[0] == 'c';
		if (period(v, full ? &c->every_events : &c->delta_events,
			   full ? &c->every_ms : &c->delta_ms) < 0)
			return bad(diag, name, v, "must be events (100000, 100k) or a time (30s, 500ms)");
		return 0;
	}
	if (strcmp(name, "on-checkpoint-error") == 0) {
		if (strcmp(v, "stop") != 0 && strcmp(v, "continue") != 0)
			return bad(diag, name, v, "must be stop or continue");
		c->stop_on_error = v[0] == 's';
		return 0;
	}
	double x;
	int64_t *slot = strcmp(name, "keep") == 0 ? &c->keep
			: strcmp(name, "compress") == 0 ? &c->compress
							: NULL;
	if (slot || strcmp(name, "batch") == 0 || strcmp(name, "threads") == 0) {
		if (number(v, 1, &x) < 0 || x < 0 || x > 1e9 || x != (double)(uint64_t)x)
			return bad(diag, name, v, "not a whole number");
		if (slot)
			*slot = (int64_t)x;
		else if (name[0] == 'b')
			c->batch = (size_t)x;
		else
			c->threads = (unsigned)x;
		return 0;
	}
	return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no learner setting is called \"%s\"",
			    name);
}

MFS_API const mfs_config *mfs_learner_config_model(const mfs_learner_config *c)
{
	return c ? &c->model : NULL;
}

static int open_checkpointer(mfs_learner *l, const mfs_learner_config *c, mfs_diag *diag)
{
	int stale = mfs_checkpointer_open(&l->ck, c->dir, diag);
	if (stale < 0)
		return stale;
	l->st.stale_removed = (uint64_t)stale;
	const struct {
		mfs_checkpointer_param p;
		int64_t v;
	} set[] = {
		{ MFS_CKPT_EVERY_EVENTS, (int64_t)c->every_events },
		{ MFS_CKPT_EVERY_MS, (int64_t)c->every_ms },
		{ MFS_CKPT_DELTA_EVENTS, (int64_t)c->delta_events },
		{ MFS_CKPT_DELTA_MS, (int64_t)c->delta_ms },
		{ MFS_CKPT_KEEP, c->keep },
		{ MFS_CKPT_COMPRESS, c->compress },
		{ MFS_CKPT_STOP_ON_ERROR, c->stop_on_error },
	};
	for (size_t i = 0; i < sizeof set / sizeof *set; i++)
		if (mfs_checkpointer_set(l->ck, set[i].p, set[i].v) < 0)
			return mfs_diag_set(diag, MFS_E_INVAL, 0, c->dir, 0, 0,
					    "a checkpoint setting is out of range (keep, compress)");
	mfs_checkpointer_on_error(l->ck, c->on_bad, c->ctx);
	return 0;
}

MFS_API int mfs_learner_open(mfs_learner **out, const mfs_learner_config *c,
			     const char *const *inputs, size_t n_inputs, mfs_diag *diag)
{
	if (!out || !c || !inputs || n_inputs == 0)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no config or no inputs");
	mfs_learner *l = calloc(1, sizeof *l);
	if (!l)
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
	int rc = 0;
	if (c->dir) {
		if ((rc = open_checkpointer(l, c, diag)) < 0)
			goto fail;
		rc = mfs_checkpointer_load(l->ck, &l->m, c->model.kernel, c->on_bad, c->ctx, NULL, 0,
					   diag);
		if (rc < 0 && rc != -MFS_E_NOTFOUND)
			goto fail;
		l->st.resumed = rc == 0;
	}
	if (!l->m && (rc = mfs_model_create(&l->m, &c->model, diag)) < 0)
		goto fail;
	mfs_model_set_threads(l->m, c->threads);
	mfs_source_config sc;
	mfs_source_config_default(&sc);
	sc.format = c->format;
	sc.fields = c->fields;
	if (c->batch)
		sc.batch = c->batch;
	sc.on_bad = c->on_bad;
	sc.on_bad_ctx = c->ctx;
	if ((rc = mfs_source_open(&l->src, inputs, n_inputs, &sc, diag)) < 0)
		goto fail;
	size_t plen;
	const void *pos = l->st.resumed ? mfs_model_position(l->m, &plen) : NULL;
	if (pos && (rc = mfs_source_seek(l->src, pos, plen, diag)) < 0)
		goto fail;
	if (l->ck)
		/* batches end on the checkpoint counts, so checkpoints fall on them */
		mfs_source_set_align(l->src, mfs_checkpointer_align(l->ck));
	*out = l;
	return 0;
fail:
	mfs_source_free(l->src);
	mfs_model_free(l->m);
	mfs_checkpointer_free(l->ck);
	free(l);
	return rc;
}

MFS_API int mfs_learner_step(mfs_learner *l, int timeout_ms, mfs_diag *diag)
{
	if (!l)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no learner");
	if (l->ended)
		return 0;
	const mfs_event *ev;
	int n = mfs_source_next_wait(l->src, &ev, timeout_ms, diag);
	if (n == -MFS_E_AGAIN) {
		/* idle: the checkpoint clock goes on */
		if (l->ck && mfs_checkpointer_tick(l->ck, l->m, l->src, l->read) == -MFS_E_IO)
			return mfs_diag_set(diag, MFS_E_IO, 0, NULL, 0, 0,
					    "a checkpoint failed and on-checkpoint-error is stop");
		return n;
	}
	if (n < 0)
		return n; /* diag says which file; mfs_learner_skip_file goes on */
	if (n == 0) {
		l->ended = 1;
		return 0;
	}
	mfs_learn_stats st = { 0 };
	int64_t r = mfs_model_learn(l->m, ev, (size_t)n, &st);
	if (r < 0)
		return mfs_diag_set(diag, (int)-r, 0, NULL, 0, 0, "learning stopped: %s",
				    mfs_error_name((int)r));
	l->read += (uint64_t)n;
	l->st.events += st.events;
	l->st.unplaced += st.unplaced;
	l->st.sq_err += st.sq_err;
	l->st.abs_err += st.abs_err;
	if (l->ck && mfs_checkpointer_tick(l->ck, l->m, l->src, l->read) == -MFS_E_IO)
		return mfs_diag_set(diag, MFS_E_IO, 0, NULL, 0, 0,
				    "a checkpoint failed and on-checkpoint-error is stop");
	return n;
}

MFS_API void mfs_learner_skip_file(mfs_learner *l)
{
	if (l)
		mfs_source_skip_file(l->src);
}

MFS_API int mfs_learner_run(mfs_learner *l, const volatile int *stop, mfs_diag *diag)
{
	for (;;) {
		if (stop && *stop)
			return 0;
		int n = mfs_learner_step(l, 100, diag);
		if (n == 0)
			return 0;
		if (n < 0 && n != -MFS_E_AGAIN)
			return n;
	}
}

MFS_API int mfs_learner_checkpoint(mfs_learner *l, mfs_diag *diag)
{
	if (!l || !l->ck)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no checkpoint-dir was set");
	if (mfs_checkpointer_now(l->ck, l->m, l->src) < 0)
		return mfs_diag_set(diag, MFS_E_IO, 0, NULL, 0, 0,
				    "the checkpoint failed (said through on_bad)");
	return 0;
}

MFS_API mfs_model *mfs_learner_model(mfs_learner *l)
{
	return l ? l->m : NULL;
}

MFS_API void mfs_learner_stats_get(const mfs_learner *l, mfs_learner_stats *st)
{
	if (!l || !st)
		return;
	*st = l->st;
	mfs_source_stats ss;
	mfs_source_stats_get(l->src, &ss);
	st->skipped = ss.skipped;
	if (l->ck) {
		mfs_checkpointer_stats cs;
		mfs_checkpointer_stats_get(l->ck, &cs);
		st->checkpoints = cs.written;
		st->checkpoint_failures = cs.failed;
		st->saved_events = cs.saved_events;
	}
	if (st->events) {
		st->rmse = sqrt(st->sq_err / (double)st->events);
		st->mae = st->abs_err / (double)st->events;
	}
}

MFS_API int mfs_learner_close(mfs_learner *l, uint64_t *unsaved, mfs_diag *diag)
{
	if (unsaved)
		*unsaved = 0;
	if (!l)
		return 0;
	int rc = 0;
	uint64_t lost = 0;
	if (l->ck && mfs_checkpointer_finish(l->ck, l->m, l->src, &lost) < 0)
		rc = mfs_diag_set(diag, MFS_E_IO, 0, NULL, 0, 0,
				  "the final checkpoint failed: %llu events learned since the newest "
				  "valid checkpoint are not saved",
				  (unsigned long long)lost);
	if (unsaved)
		*unsaved = lost;
	mfs_source_free(l->src);
	mfs_model_free(l->m);
	mfs_checkpointer_free(l->ck);
	free(l);
	return rc;
}
