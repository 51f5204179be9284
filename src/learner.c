/*
 * learner.c - the public mfs_learner: a model, its source and its
 * checkpointer, run batch by batch (test-then-train). Resume is exact: the
 * model comes from the newest checkpoint and the source continues from the
 * position it holds. Settings: learner_config.c; passes 2..N:
 * learner_replay.c.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "learner_internal.h"

void mfs_learner_notice(mfs_learner *l, int code, size_t event, const char *fmt, ...)
{
	mfs_bad_record_fn fn = l->c.on_notice ? l->c.on_notice : l->c.on_bad;
	void *ctx = l->c.on_notice ? l->c.notice_ctx : l->c.ctx;
	if (!fn)
		return;
	mfs_diag d;
	memset(&d, 0, sizeof d);
	d.code = code;
	const char *path = NULL;
	uint64_t line = 0;
	if (event != (size_t)-1 && l->src && mfs_source_event_line(l->src, event, &path, &line) == 0 &&
	    path) {
		snprintf(d.path, sizeof d.path, "%s", path);
		d.line = line;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d.reason, sizeof d.reason, fmt, ap);
	va_end(ap);
	fn(ctx, &d);
}

/* The checkpointer's failures, and damaged checkpoints passed over on resume. */
static void say(void *ctx, const mfs_diag *d)
{
	mfs_learner *l = ctx;
	mfs_bad_record_fn fn = l->c.on_notice ? l->c.on_notice : l->c.on_bad;
	if (fn)
		fn(l->c.on_notice ? l->c.notice_ctx : l->c.ctx, d);
}

static void skip_damaged(void *ctx, const mfs_diag *d)
{
	mfs_learner *l = ctx;
	mfs_diag x = *d;
	static const char pre[] = "damaged checkpoint skipped: ";
	size_t room = sizeof x.reason - (sizeof pre - 1);
	memcpy(x.reason, pre, sizeof pre - 1);
	memcpy(x.reason + sizeof pre - 1, d->reason, room - 1);
	x.reason[sizeof x.reason - 1] = '\0';
	say(l, &x);
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
		{ MFS_CKPT_EVERY_MS, c->every_events ? 0 : (int64_t)c->every_ms },
		{ MFS_CKPT_DELTA_EVENTS, (int64_t)c->delta_events },
		{ MFS_CKPT_DELTA_MS, c->delta_events ? 0 : (int64_t)c->delta_ms },
		{ MFS_CKPT_KEEP, c->keep },
		{ MFS_CKPT_COMPRESS, c->compress },
		{ MFS_CKPT_STOP_ON_ERROR, c->stop_on_error },
	};
	for (size_t i = 0; i < sizeof set / sizeof *set; i++)
		if (mfs_checkpointer_set(l->ck, set[i].p, set[i].v) < 0)
			return mfs_diag_set(diag, MFS_E_INVAL, 0, c->dir, 0, 0,
					    "a checkpoint setting is out of range (keep, compress)");
	mfs_checkpointer_on_error(l->ck, say, l);
	return 0;
}

MFS_API int mfs_learner_new(mfs_learner **out, const mfs_learner_config *c, mfs_diag *diag)
{
	if (!out || !c)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no learner or no config");
	mfs_learner *l = calloc(1, sizeof *l);
	if (!l)
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
	l->c = *c; /* callbacks and numbers; the strings stay the config's */
	l->c.fields = l->c.dir = l->c.kernel = NULL;
	l->c.model.kernel = NULL;
	l->epochs_done = 1;
	int rc = 0;
	if (c->dir) {
		if ((rc = open_checkpointer(l, c, diag)) < 0)
			goto fail;
		rc = mfs_checkpointer_load(l->ck, &l->m, c->model.kernel, skip_damaged, l, l->from,
					   sizeof l->from, diag);
		if (rc < 0 && rc != -MFS_E_NOTFOUND)
			goto fail;
		l->st.resumed = rc == 0;
	}
	if (l->m) {
		mfs_implicit_config hc;
		int was = mfs_model_implicit_get(l->m, &hc);
		if (was != c->implicit) {
			rc = mfs_diag_set(diag, MFS_E_INVAL, 0, c->dir, 0, 0,
					  "the newest checkpoint learned %s feedback, not %s: give "
					  "feedback %s, or another checkpoint directory",
					  was ? "implicit" : "explicit", c->implicit ? "implicit" : "explicit",
					  was ? "implicit" : "explicit");
			goto fail;
		}
		l->c.icfg = hc; /* the checkpoint's */
		l->c.range_auto = 0;
	} else {
		if ((rc = mfs_model_create(&l->m, &c->model, diag)) < 0)
			goto fail;
		if (c->implicit && (rc = mfs_model_set_implicit(l->m, &c->icfg, diag)) < 0)
			goto fail;
	}
	if (c->implicit)
		l->c.range_auto = 0; /* interactions have no rating range */
	mfs_model_set_threads(l->m, c->threads);
	if (c->window)
		mfs_model_set_window(l->m, c->window);
	l->rank.k = c->implicit ? c->eval_k : 0;
	l->rank.every = c->eval_every;
	*out = l;
	return 0;
fail:
	mfs_model_free(l->m);
	mfs_checkpointer_free(l->ck);
	free(l);
	return rc;
}

MFS_API int mfs_learner_attach(mfs_learner *l, mfs_source *src, mfs_diag *diag)
{
	if (!l || !src || l->src) {
		mfs_source_free(src);
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0,
				    "no learner or no source, or a source already attached");
	}
	l->src = src;
	size_t plen;
	const void *pos = l->st.resumed ? mfs_model_position(l->m, &plen) : NULL;
	if (pos) {
		int rc = mfs_source_seek(src, pos, plen, diag);
		if (rc < 0)
			return rc;
	}
	size_t win = l->c.implicit ? 0 : mfs_model_window_size(l->m);
	if (win) {
		/* pass 1 on threads: batches end on the windows of the model's clock,
		 * so the learner hands over a whole window at a batch's end, where a
		 * checkpoint may follow (checkpoints by count wait for the window) */
		mfs_source_set_align_phase(src, win, win - mfs_model_window_left(l->m));
	}
	if (l->ck) {
		/* batches end on the checkpoint counts, so checkpoints fall on them */
		if (!win)
			mfs_source_set_align(src, mfs_checkpointer_align(l->ck));
		if (strcmp(mfs_source_io(src), "kafka") == 0)
			mfs_checkpointer_set_commit(l->ck, src);
	}
	return 0;
}

MFS_API int mfs_learner_open(mfs_learner **out, const mfs_learner_config *c,
			     const char *const *inputs, size_t n_inputs, mfs_diag *diag)
{
	if (!out || !c || !inputs || n_inputs == 0)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no config or no inputs");
	mfs_learner *l;
	int rc = mfs_learner_new(&l, c, diag);
	if (rc < 0)
		return rc;
	mfs_source_config sc;
	mfs_source_config_default(&sc);
	sc.format = c->format;
	sc.fields = c->fields;
	if (c->batch)
		sc.batch = c->batch;
	sc.on_bad = c->on_bad;
	sc.on_bad_ctx = c->ctx;
	mfs_source *src;
	if ((rc = mfs_source_open(&src, inputs, n_inputs, &sc, diag)) < 0 ||
	    (rc = mfs_learner_attach(l, src, diag)) < 0) {
		mfs_learner_free(l);
		return rc;
	}
	*out = l;
	return 0;
}

/* --rating-range auto on a new model: the range of the first batch, said. */
static void range_from_first(mfs_learner *l, const mfs_event *ev, size_t n)
{
	float lo, hi, step;
	if (mfs_ratings_range(ev, n, &lo, &hi, &step) < 0)
		return;
	char how[96];
	if (step == 1.0f)
		snprintf(how, sizeof how, "whole numbers");
	else if (step == 0.5f)
		snprintf(how, sizeof how, "half steps");
	else if (step > 0.0f)
		snprintf(how, sizeof how, "steps of %g", step);
	else
		snprintf(how, sizeof how, "no common step");
	if (lo == hi) {
		mfs_model_info mi;
		mfs_model_info_get(l->m, &mi);
		float v = lo;
		lo = v < mi.lo ? v : mi.lo;
		hi = v > mi.hi ? v : mi.hi;
		mfs_learner_notice(l, 0, (size_t)-1,
				   "rating range %g:%g: the first %zu events all rate %g, so the "
				   "default range is kept (give rating-range LO:HI: --rating-range of train)", lo, hi, n, v);
	} else {
		mfs_learner_notice(l, 0, (size_t)-1, "rating range %g:%g from the first %zu events (%s)%s",
				   lo, hi, n, how,
				   n < 100 ? "; few events: give rating-range LO:HI (--rating-range) if the scale is wider"
					   : "");
	}
	mfs_model_set_range(l->m, lo, hi);
}

/* The first event of ev[off..off+n) with a rating outside the model's range, said. */
static void warn_out_of_range(mfs_learner *l, const mfs_event *ev, size_t off, size_t n)
{
	mfs_model_info mi;
	mfs_model_info_get(l->m, &mi);
	for (size_t i = off; i < off + n; i++) {
		float r = ev[i].rating;
		if (r >= mi.lo && r <= mi.hi)
			continue;
		mfs_learner_notice(l, MFS_E_RANGE, i,
				   "rating %g is outside the rating range %g:%g: learned as %g, scored "
				   "as %g; such events are counted in out_of_range and not reported "
				   "again (the rating-range setting, --rating-range of train, sets it)",
				   r, mi.lo, mi.hi, r < mi.lo ? mi.lo : mi.hi, r);
		return;
	}
}

static int learn_failed(mfs_learner *l, int64_t r, mfs_diag *diag)
{
	if (r == -MFS_E_NOMEM)
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0,
				    "learning stopped: out of memory (for an ID string, or to copy the "
				    "loaded model into memory); %llu events were learned in this "
				    "pass, none after them",
				    (unsigned long long)l->pass.events);
	return mfs_diag_set(diag, (int)-r, 0, NULL, 0, 0, "learning stopped: %s",
			    mfs_error_name((int)r));
}

/* Implicit: each event's weight from its rating column; a bad one is skipped and said. */
static int learn_implicit(mfs_learner *l, const mfs_event *ev, size_t n, mfs_diag *diag)
{
	if (n > l->ibuf_cap) {
		free(l->ibuf);
		l->ibuf_cap = 0;
		if (!(l->ibuf = malloc(n * sizeof *l->ibuf)))
			return mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		l->ibuf_cap = n;
	}
	size_t k = 0;
	int mode = l->c.weight;
	for (size_t i = 0; i < n; i++) {
		float w = mode == MFS_WEIGHT_NONE     ? 1.0f
			  : mode == MFS_WEIGHT_RATING ? ev[i].rating
						      : log1pf(ev[i].rating);
		if (!(isfinite(w) && w >= 0.0f)) {
			l->st.bad_weights++;
			mfs_learner_notice(l, MFS_E_PARSE, i,
					   "weight %g (weight %s of rating %g) is not a number >= 0: "
					   "skipped",
					   w, mode == MFS_WEIGHT_RATING ? "rating" : "log1p", ev[i].rating);
			continue;
		}
		l->ibuf[k] = ev[i];
		l->ibuf[k++].rating = w;
	}
	int64_t r = mfs_model_learn_implicit(l->m, l->ibuf, k, &l->pass, &l->rank);
	return r < 0 ? learn_failed(l, r, diag) : 0;
}

/* Explicit: ev[0..n) cut where a report is due (the same learning however cut). */
static int learn_explicit(mfs_learner *l, const mfs_event *ev, size_t n, mfs_diag *diag)
{
	uint64_t every = l->c.report ? l->c.report_every : 0;
	for (size_t off = 0, k; off < n; off += k) {
		k = n - off;
		if (every) {
			uint64_t left = every - (l->pass.events + l->pass.unplaced) % every;
			if (left < k)
				k = (size_t)left;
		}
		uint64_t out = l->pass.out_of_range;
		int64_t r = mfs_model_learn(l->m, ev + off, k, &l->pass);
		if (r < 0)
			return learn_failed(l, r, diag);
		if (l->pass.out_of_range > out && !l->warned) {
			l->warned = 1;
			warn_out_of_range(l, ev, off, k);
		}
		if (every && off + k < n)
			l->c.report(l->c.report_ctx, l, 1, &l->pass);
	}
	return 0;
}

/*
 * Pass 1 on threads: the model learns the stream in windows counted on its
 * clock, and the learner hands it whole ones, whatever the source's batches
 * (which shift when a resumed run starts mid-file), so a resumed run learns
 * what an uninterrupted one does. Events wait here, copied, until their
 * window is full, the input ends or goes idle (follow, Kafka), or a
 * checkpoint, save or replay needs the model whole.
 */
int mfs_learner_flush(mfs_learner *l, mfs_diag *diag)
{
	struct mfs_replay *w = &l->win;
	if (w->n == 0)
		return 0;
	if (w->n > l->wev_cap) {
		mfs_event *ne = realloc(l->wev, w->n * sizeof *ne);
		if (!ne)
			return mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		l->wev = ne;
		l->wev_cap = w->n;
	}
	for (size_t i = 0; i < w->n; i++)
		mfs_replay_event(w, i, &l->wev[i]);
	uint64_t before = l->pass.events;
	l->st.failure = MFS_LEARNER_FAIL_LEARN;
	int64_t r = mfs_model_learn(l->m, l->wev, w->n, &l->pass);
	w->n = 0;
	w->len = 0;
	if (r < 0)
		return learn_failed(l, r, diag);
	l->st.failure = MFS_LEARNER_FAIL_NONE;
	l->steps += l->pass.events - before;
	if (l->c.report)
		l->c.report(l->c.report_ctx, l, 1, &l->pass);
	return 0;
}

/* A batch into the window(s), each learned as it fills; the first rating
 * outside the range is said here, where it can still name its line. */
static int learn_windowed(mfs_learner *l, const mfs_event *ev, size_t n, mfs_diag *diag)
{
	if (!l->warned) {
		mfs_model_info mi;
		mfs_model_info_get(l->m, &mi);
		for (size_t i = 0; i < n; i++)
			if (!(ev[i].rating >= mi.lo && ev[i].rating <= mi.hi)) {
				l->warned = 1;
				warn_out_of_range(l, ev, i, 1);
				break;
			}
	}
	for (size_t off = 0, k; off < n; off += k) {
		size_t left = mfs_model_window_left(l->m) - l->win.n;
		k = n - off < left ? n - off : left;
		if (mfs_replay_add(&l->win, ev + off, k) < 0)
			return mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		if (k == left) {
			int rc = mfs_learner_flush(l, diag);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

static int tick(mfs_learner *l, mfs_diag *diag)
{
	if (l->ck && mfs_checkpointer_tick(l->ck, l->m, l->src, l->read) == -MFS_E_IO) {
		l->st.failure = MFS_LEARNER_FAIL_CHECKPOINT;
		return mfs_diag_set(diag, MFS_E_IO, 0, NULL, 0, 0,
				    "a checkpoint failed and on-checkpoint-error is stop");
	}
	return 0;
}

MFS_API int mfs_learner_step(mfs_learner *l, int timeout_ms, mfs_diag *diag)
{
	if (!l || !l->src)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no learner, or no source");
	if (l->ended)
		return 0;
	const mfs_event *ev;
	int n = mfs_source_next_wait(l->src, &ev, timeout_ms, diag);
	if (n == -MFS_E_AGAIN || n == 0) {
		int rc = mfs_learner_flush(l, diag); /* idle or ended: the window waits no more */
		if (rc < 0)
			return rc;
	}
	if (n == -MFS_E_AGAIN) {
		int rc = tick(l, diag); /* idle: the checkpoint clock goes on */
		if (l->c.report)
			l->c.report(l->c.report_ctx, l, 1, &l->pass);
		return rc < 0 ? rc : n;
	}
	if (n < 0) {
		l->st.failure = MFS_LEARNER_FAIL_INPUT;
		return n; /* diag says which file; mfs_learner_skip_file goes on */
	}
	if (n == 0) {
		l->ended = 1;
		return 0;
	}
	l->st.failure = MFS_LEARNER_FAIL_LEARN; /* until this batch is learned */
	if (l->c.epochs > 1 && mfs_replay_add(&l->keep, ev, (size_t)n) < 0)
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0,
				    "out of memory keeping events for epochs %llu",
				    (unsigned long long)l->c.epochs);
	if (l->c.range_auto) {
		range_from_first(l, ev, (size_t)n);
		l->c.range_auto = 0;
	}
	if (!l->c.implicit && mfs_model_window_left(l->m)) {
		int rc = learn_windowed(l, ev, (size_t)n, diag);
		if (rc < 0)
			return rc;
		l->st.failure = MFS_LEARNER_FAIL_NONE;
		l->read += (uint64_t)n;
		/* checkpoints fall on window boundaries */
		rc = l->win.n ? 0 : tick(l, diag);
		return rc < 0 ? rc : n;
	}
	uint64_t before = l->pass.events;
	int rc = l->c.implicit ? learn_implicit(l, ev, (size_t)n, diag)
			       : learn_explicit(l, ev, (size_t)n, diag);
	if (rc < 0)
		return rc;
	l->st.failure = MFS_LEARNER_FAIL_NONE;
	l->read += (uint64_t)n;
	l->steps += l->pass.events - before;
	if (l->c.report)
		l->c.report(l->c.report_ctx, l, 1, &l->pass);
	rc = tick(l, diag);
	return rc < 0 ? rc : n;
}

MFS_API void mfs_learner_skip_file(mfs_learner *l)
{
	if (l && l->src)
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
	int rc = mfs_learner_flush(l, diag);
	if (rc < 0)
		return rc;
	if (mfs_checkpointer_now(l->ck, l->m, l->src) < 0)
		return mfs_diag_set(diag, MFS_E_IO, 0, NULL, 0, 0,
				    "the checkpoint failed (said through on_notice)");
	return 0;
}

MFS_API int mfs_learner_save(mfs_learner *l, const char *path, int compress, mfs_diag *diag)
{
	if (!l || !path)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no learner or no path");
	int rc = mfs_learner_flush(l, diag);
	if (rc < 0)
		return rc;
	/* the saved model records where its input ended, like a checkpoint */
	int n = l->src ? mfs_source_position(l->src, NULL, 0) : 0;
	char *pos = n > 0 ? malloc((size_t)n) : NULL;
	if (pos && mfs_source_position(l->src, pos, (size_t)n) != n) {
		free(pos);
		pos = NULL;
	}
	mfs_save_opts so = { .compress = compress, .position = pos,
			     .position_len = pos ? (size_t)n : 0 };
	rc = mfs_model_save(l->m, path, &so, diag);
	free(pos);
	return rc;
}

MFS_API mfs_model *mfs_learner_model(mfs_learner *l)
{
	return l ? l->m : NULL;
}

MFS_API const char *mfs_learner_resumed_from(const mfs_learner *l)
{
	return l && l->st.resumed ? l->from : NULL;
}

MFS_API mfs_source *mfs_learner_source(mfs_learner *l)
{
	return l ? l->src : NULL;
}

MFS_API mfs_checkpointer *mfs_learner_checkpointer(mfs_learner *l)
{
	return l ? l->ck : NULL;
}

MFS_API void mfs_learner_pass_stats(const mfs_learner *l, mfs_learn_stats *st, mfs_rank_stats *rk)
{
	if (!l)
		return;
	if (st)
		*st = l->pass;
	if (rk)
		*rk = l->rank;
}

MFS_API void mfs_learner_stats_get(const mfs_learner *l, mfs_learner_stats *st)
{
	if (!l || !st)
		return;
	*st = l->st;
	st->events = l->pass.events;
	st->unplaced = l->pass.unplaced;
	st->sq_err = l->pass.sq_err;
	st->abs_err = l->pass.abs_err;
	st->steps = l->steps;
	if (l->src) {
		mfs_source_stats ss;
		mfs_source_stats_get(l->src, &ss);
		st->skipped = ss.skipped;
	}
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

MFS_API void mfs_learner_free(mfs_learner *l)
{
	if (!l)
		return;
	mfs_checkpointer_free(l->ck); /* a writer still running keeps the lock until it exits */
	mfs_source_free(l->src);
	mfs_model_free(l->m);
	mfs_replay_free(&l->keep);
	mfs_replay_free(&l->win);
	free(l->wev);
	free(l->ibuf);
	free(l);
}

MFS_API int mfs_learner_finish(mfs_learner *l, uint64_t *unsaved, mfs_diag *diag)
{
	if (unsaved)
		*unsaved = 0;
	if (!l)
		return 0;
	int rc = mfs_learner_flush(l, diag);
	if (rc < 0)
		return rc;
	if (!l->ck)
		return 0;
	uint64_t lost = 0;
	if (mfs_checkpointer_finish(l->ck, l->m, l->src, &lost) == 0)
		return 0;
	if (unsaved)
		*unsaved = lost;
	mfs_checkpointer_stats cs;
	mfs_checkpointer_stats_get(l->ck, &cs);
	if (cs.saved_events)
		return mfs_diag_set(diag, MFS_E_IO, 0, NULL, 0, 0,
				    "the final checkpoint failed: the %llu events learned since the "
				    "newest valid checkpoint (%llu events) are not saved",
				    (unsigned long long)lost, (unsigned long long)cs.saved_events);
	return mfs_diag_set(diag, MFS_E_IO, 0, NULL, 0, 0,
			    "the final checkpoint failed: no checkpoint holds any of the %llu "
			    "events learned",
			    (unsigned long long)lost);
}

MFS_API int mfs_learner_close(mfs_learner *l, uint64_t *unsaved, mfs_diag *diag)
{
	int rc = mfs_learner_finish(l, unsaved, diag);
	mfs_learner_free(l);
	return rc;
}
