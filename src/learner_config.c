/*
 * learner_config.c - the settings of an mfs_learner, set by name with the
 * value as text (spelled as `mfstream train`'s options) or all at once.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "learner_internal.h"
#include "parse.h"

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
	c->epochs = 1;
	mfs_implicit_config_default(&c->icfg);
	c->eval_k = 10;
	c->eval_every = 1;
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

/* The settings of implicit learning, and epochs; else "no such setting". */
static int implicit_setting(mfs_learner_config *c, const char *name, const char *v,
			    mfs_diag *diag)
{
	static const char *const losses[] = { [MFS_LOSS_BPR] = "bpr",
					      [MFS_LOSS_LOGISTIC] = "logistic",
					      [MFS_LOSS_POPULARITY] = "popularity" };
	static const char *const weights[] = { [MFS_WEIGHT_NONE] = "none",
					       [MFS_WEIGHT_RATING] = "rating",
					       [MFS_WEIGHT_LOG1P] = "log1p" };
	double x;
	if (strcmp(name, "feedback") == 0) {
		if (strcmp(v, "explicit") != 0 && strcmp(v, "implicit") != 0)
			return bad(diag, name, v, "must be explicit or implicit");
		int was = c->implicit;
		c->implicit = v[0] == 'i';
		if (c->implicit && !was) {
			mfs_config di;
			mfs_config_default_implicit(&di);
			di.kernel = c->model.kernel;
			c->model = di;
		}
		return 0;
	}
	if (strcmp(name, "loss") == 0 || strcmp(name, "weight") == 0) {
		int is_loss = name[0] == 'l';
		const char *const *names = is_loss ? losses : weights;
		for (int i = 0; i < 3; i++)
			if (strcmp(v, names[i]) == 0) {
				*(is_loss ? &c->icfg.loss : &c->weight) = i;
				return 0;
			}
		return bad(diag, name, v, is_loss ? "must be bpr, logistic or popularity"
						  : "must be none, rating or log1p");
	}
	if (strcmp(name, "neg-beta") == 0) {
		if (number(v, 0, &x) < 0 || !(x >= 0 && x <= 2))
			return bad(diag, name, v, "must be a number 0..2");
		c->icfg.neg_beta = (float)x;
		return 0;
	}
	static const struct {
		const char *name;
		double lo, hi;
	} counts[] = { { "negatives", 1, 1024 }, { "eval-k", 0, 1024 },
		       { "eval-every", 0, 4294967295.0 }, { "epochs", 1, 1e9 } };
	for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
		if (strcmp(name, counts[i].name) != 0)
			continue;
		if (number(v, 1, &x) < 0 || x != (double)(uint64_t)x)
			return bad(diag, name, v, "not a whole number");
		if (!(x >= counts[i].lo && x <= counts[i].hi))
			return bad(diag, name, v, "out of range");
		if (i == 0)
			c->icfg.negatives = (uint32_t)x;
		else if (i == 1)
			c->eval_k = (uint32_t)x;
		else if (i == 2)
			c->eval_every = (uint32_t)x;
		else
			c->epochs = (uint64_t)x;
		return 0;
	}
	return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no learner setting is called \"%s\"",
			    name);
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
		if (strcmp(v, "auto") == 0) {
			c->range_auto = 1;
			return 0;
		}
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
		c->range_auto = 0;
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
		else if (x < 1 || x > 64)
			return bad(diag, name, v, "out of range 1..64");
		else
			c->threads = (unsigned)x;
		return 0;
	}
	if (strcmp(name, "window") == 0) {
		if (number(v, 1, &x) < 0 || x < 256 || x > 16777216 || x != (double)(uint64_t)x)
			return bad(diag, name, v, "not a whole number of events in 256..16M");
		c->window = (uint32_t)x;
		return 0;
	}
	return implicit_setting(c, name, v, diag);
}

MFS_API const mfs_config *mfs_learner_config_model(const mfs_learner_config *c)
{
	return c ? &c->model : NULL;
}

MFS_API int mfs_learner_config_set_model(mfs_learner_config *c, const mfs_config *m)
{
	if (!c || !m)
		return -MFS_E_INVAL;
	char *k = NULL;
	if (m->kernel && !(k = strdup(m->kernel)))
		return -MFS_E_NOMEM;
	free(c->kernel);
	c->kernel = k;
	c->model = *m;
	c->model.kernel = k;
	return 0;
}

MFS_API int mfs_learner_config_set_implicit(mfs_learner_config *c, const mfs_implicit_config *ic)
{
	if (!c || !ic)
		return -MFS_E_INVAL;
	c->implicit = 1;
	c->icfg = *ic;
	return 0;
}

MFS_API void mfs_learner_config_on_notice(mfs_learner_config *c, mfs_bad_record_fn fn, void *ctx)
{
	if (c) {
		c->on_notice = fn;
		c->notice_ctx = ctx;
	}
}

MFS_API void mfs_learner_config_on_report(mfs_learner_config *c, uint64_t every,
					  mfs_learner_report_fn fn, void *ctx)
{
	if (c) {
		c->report = fn;
		c->report_every = every;
		c->report_ctx = ctx;
	}
}
