/*
 * learner_internal.h - what the learner's files share: the settings
 * (learner_config.c), the object (learner.c) and the kept events of the
 * replay passes (learner_replay.c).
 */
#ifndef MFS_LEARNER_INTERNAL_H
#define MFS_LEARNER_INTERNAL_H

#include "internal.h"

/* What an implicit event's rating column means. */
enum { MFS_WEIGHT_NONE = 0, MFS_WEIGHT_RATING = 1, MFS_WEIGHT_LOG1P = 2 };

struct mfs_learner_config {
	mfs_config model;
	int format;
	char *fields;
	size_t batch;
	unsigned threads;
	uint32_t window;  /* events per thread of a pass-1 / replay window (0: default) */
	char *dir; /* checkpoints (NULL: none) */
	uint64_t every_events, every_ms, delta_events, delta_ms;
	int64_t keep, compress, stop_on_error;
	char *kernel;
	int range_auto;   /* the rating range of the first batch (a new model) */
	uint64_t epochs;  /* passes over the inputs (>= 2: events are kept) */
	int implicit;     /* interactions ranked against sampled negatives */
	mfs_implicit_config icfg;
	int weight;       /* implicit: MFS_WEIGHT_* */
	uint32_t eval_k, eval_every;
	mfs_bad_record_fn on_bad;
	void *ctx;
	mfs_bad_record_fn on_notice;
	void *notice_ctx;
	mfs_learner_report_fn report;
	uint64_t report_every;
	void *report_ctx;
};

/* Events kept for passes 2..N: IDs in one arena, records point into it. */
struct mfs_replay {
	char *arena;
	size_t len, cap;
	struct mfs_replay_rec {
		uint64_t off;
		uint8_t ulen, ilen;
		float rating;
	} *recs;
	size_t n, rcap;
};

struct mfs_learner {
	mfs_model *m;
	mfs_source *src;
	mfs_checkpointer *ck;
	mfs_learner_config c; /* a copy: strings and callbacks (strings not owned) */
	uint64_t read;        /* events read since open (the checkpoint periods count them) */
	int ended;
	int warned;           /* the one notice of a rating outside the range */
	mfs_learner_stats st;
	mfs_learn_stats pass; /* pass 1, test-then-train */
	mfs_rank_stats rank;  /* implicit: the prequential ranking of pass 1 */
	mfs_event *ibuf;      /* implicit: a batch with its weights */
	size_t ibuf_cap;
	struct mfs_replay keep;
	struct mfs_replay win; /* pass 1 on threads: the window filling up */
	mfs_event *wev;        /* its events, handed to the model */
	size_t wev_cap;
	char from[4096];      /* the checkpoint resumed ("" when new) */
	uint64_t steps;       /* updates over every pass */
	uint64_t epochs_done;
};

/* A notice of the learner (a rating outside the range, the range chosen, a bad weight). */
void mfs_learner_notice(mfs_learner *l, int code, size_t event, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Learn the events waiting for their window (pass 1 on threads), if any. */
int mfs_learner_flush(mfs_learner *l, mfs_diag *diag);

int mfs_replay_add(struct mfs_replay *r, const mfs_event *e, size_t n);
/* The i-th kept event as an mfs_event (its IDs point into the arena; time 0). */
void mfs_replay_event(const struct mfs_replay *r, size_t i, mfs_event *e);
void mfs_replay_free(struct mfs_replay *r);

#endif
