/*
 * mfstream - learn a biased matrix-factorisation recommender from a stream of
 * rating events, one SGD step per event.
 *
 * Overview
 * --------
 * The model is fastbook chapter 8's DotProductBias: every user and item has an
 * embedding row of width `dim` and a bias; a rating is predicted as
 *     mu + b_user + b_item + dot(p_user, q_item)
 * kept inside the rating range [lo, hi]. User and item IDs are opaque byte
 * strings; they are keyed with seeded XXH3-64 and looked up in fixed-capacity
 * tables, so memory is decided when the model is created.
 *
 * The pieces:
 *   mfs_model   the model: create, learn a batch of events, predict, top-K, save, load
 *   mfs_source  a reader of event files (tsv/csv/dat/jsonl, plain or zstd), or of
 *               Kafka topics (mfs_source_open_kafka), batch by batch
 *   mfs_server  serving: the newest model of a path, swapped in while queries run
 *   mfs_titles  item ID -> title, from MovieLens u.item, movies.csv or id<TAB>title
 *
 * Threading: a handle is not thread safe; use one handle per thread, or lock.
 * Calls on distinct handles are independent. Read-only calls (predict,
 * recommend, similar, info) on one model may run concurrently when no thread
 * mutates it.
 *
 * Ownership: `mfs_x_create(&out, ...)` writes *out only on success; the caller
 * frees with `mfs_x_free`, and `mfs_x_free(NULL)` is a no-op. Buffers passed in
 * are borrowed for the duration of the call only. Pointers the library returns
 * into its own memory stay valid until the next mutating call on that handle.
 *
 * Errors: a fallible call returns an int, >= 0 on success (or a count), or a
 * negated MFS_E_* code. mfs_error_name() names a code. Calls that can fail for
 * a reason worth telling a person (a file, a line, an offset, an OS errno)
 * take an optional `mfs_diag *` that is filled on failure; pass NULL if not
 * needed. The library never prints, exits or aborts.
 */
#ifndef MFSTREAM_H
#define MFSTREAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MFS_API __attribute__((visibility("default")))
#else
#define MFS_API
#endif

#define MFS_VERSION_MAJOR 0
#define MFS_VERSION_MINOR 2
#define MFS_VERSION_PATCH 0
#define MFS_VERSION_STRING "0.2.0"

/* ===================================================================== */
/* Errors                                                                */
/* ===================================================================== */

/* Pinned: append new codes at the end, never renumber. */
enum mfs_error {
	MFS_E_OK = 0,
	MFS_E_NOMEM = 1,       /* out of memory */
	MFS_E_INVAL = 2,       /* invalid argument or configuration */
	MFS_E_IO = 3,          /* I/O error; mfs_diag.os_errno says which */
	MFS_E_PARSE = 4,       /* malformed record */
	MFS_E_CORRUPT = 5,     /* corrupt file: bad magic, checksum, or structure */
	MFS_E_VERSION = 6,     /* file format version this build cannot read */
	MFS_E_FULL = 7,        /* a fixed-capacity table is full */
	MFS_E_UNSUPPORTED = 8, /* not supported by this build, CPU or OS */
	MFS_E_NOTFOUND = 9,    /* no such file, ID or checkpoint */
	MFS_E_RANGE = 10,      /* a value outside its allowed range */
	MFS_E_TRUNCATED = 11,  /* input ends in the middle of a record or frame */
	MFS_E_AGAIN = 12,      /* nothing ready within the time asked for; not a failure: call again */
	MFS_E_BUSY = 13,       /* held by another process (a checkpoint directory's lock) */
	MFS_E_MAX_CODE
};

/* The name of an error code ("MFS_E_IO"); accepts c or -c. Always a static string. */
MFS_API const char *mfs_error_name(int code);

/*
 * Details of a failure. Filled by calls that take a `mfs_diag *` when they
 * fail (and by the bad-record callback of a source). Fields that do not apply
 * are 0 or empty.
 */
typedef struct mfs_diag {
	int code;          /* MFS_E_* (positive) */
	int os_errno;      /* errno of the failed system call, or 0 */
	char path[512];    /* the file concerned, or "" ("-" for standard input) */
	uint64_t line;     /* 1-based line number within the file, or 0 */
	uint64_t offset;   /* byte offset (in the compressed file for a frame error), or 0 */
	char reason[256];  /* what is wrong, for a person: `rating "x" is not a number` */
} mfs_diag;

/*
 * Write a one-line message "path:line: reason" (or "path: offset N: reason",
 * or "path: reason", or just "reason") into buf (always NUL-terminated when
 * len > 0). Returns the length it would have written, as snprintf.
 */
MFS_API int mfs_diag_format(const mfs_diag *d, char *buf, size_t len);

/* ===================================================================== */
/* Events                                                                */
/* ===================================================================== */

/*
 * One rating event. IDs are byte strings (not NUL-terminated, any bytes);
 * the pointers are borrowed.
 */
typedef struct mfs_event {
	const char *user;
	const char *item;
	uint32_t user_len;
	uint32_t item_len;
	float rating;
	int64_t time; /* as given in the input, or 0 */
} mfs_event;

/* Longest ID accepted, in bytes. */
#define MFS_ID_MAX 255

/* ===================================================================== */
/* Model                                                                 */
/* ===================================================================== */

typedef struct mfs_model mfs_model;

enum mfs_optimizer { MFS_OPT_SGD = 0, MFS_OPT_ADAGRAD = 1 };
enum mfs_range_link { MFS_RANGE_CLAMP = 0, MFS_RANGE_SIGMOID = 1 };

/*
 * How IDs find rows. EXACT: an index from the ID's key to its own row (a full
 * table evicts the least recently seen ID, see mfs_config.evict). HASHED: the
 * hashing trick, row = key mapped onto the table; no index, colliding IDs
 * share a row (and its ID string is the last one seen).
 */
enum mfs_ids { MFS_IDS_EXACT = 0, MFS_IDS_HASHED = 1 };

/* Model configuration. Start from mfs_config_default(), then change fields. */
typedef struct mfs_config {
	uint32_t dim;        /* embedding width (default 64) */
	uint64_t max_users;  /* user table capacity in rows */
	uint64_t max_items;  /* item table capacity in rows */
	int optimizer;       /* enum mfs_optimizer */
	float lr;            /* factor learning rate (AdaGrad: base rate) */
	float lr_bias;       /* bias learning rate */
	float l2;            /* factor L2 */
	float l2_bias;       /* bias L2 */
	float init_std;      /* std of the normal initial factors */
	float lo, hi;        /* rating range: predictions stay inside */
	int link;            /* enum mfs_range_link: how the range is kept */
	float range_margin;  /* sigmoid link: the sigmoid spans the range widened by this
				fraction of it on each side (as fastai's y_range=(0, 5.5)
				for ratings 1..5); predictions are then clamped into range */
	uint64_t seed;       /* all randomness (init, hash seed) comes from it */
	const char *kernel;  /* NULL or "auto", "scalar", "avx2", "avx512", "neon";
				the environment variable MFS_KERNEL overrides NULL/"auto" */
	int ids;             /* enum mfs_ids: how IDs find rows (default MFS_IDS_EXACT) */
	int evict;           /* exact mode, full table: 1 (default) a new ID takes the row of
				the least recently seen ID; 0 the event is not learned (unplaced) */
	uint32_t min_count;  /* admission: an ID gets a row after this many sightings
				(default 1: at once) */
	uint32_t user_hashes; /* hashed mode: 2 gives every user two rows whose sum is its
				vector (and bias), softening collisions; default 1 */
	float replay_lr, replay_lr_bias, replay_l2, replay_l2_bias;
			     /* the learning settings of replayed passes over events already
				learned (mfs_model_set_replay): multi-epoch training on finite
				input anneals with lower rates and stronger L2 */
	float freq_alpha, freq_alpha_bias;
			     /* frequency-dependent L2: a row that has learned n events
				(counted in the first pass) uses L2 * (n / 100)^(alpha - 1) at
				each step, so that its total L2 grows as n^alpha rather than n
				(alpha 1: plain per-event L2, as ALS-WR's lambda * n). freq_alpha
				scales the factor L2 of replayed passes (default 0.7),
				freq_alpha_bias the bias L2 of every pass (default 0.2); 0..1 */
	uint32_t history;    /* the items each user row remembers: the item keys of
				its `history` most recent events of the first pass (not
				replays, not unadmitted events; a repeat of the item just
				before takes no slot), in a ring sized at create
				(mfs_model_history_bytes per user row). Recommendations
				leave them out (mfs_query): a user with more events than
				this has only the items of its `history` most recent ones
				left out. 0 turns it off; default 128, at most
				MFS_HISTORY_MAX */
} mfs_config;

/* The largest mfs_config.history. */
#define MFS_HISTORY_MAX 1024

/* Fill cfg with the defaults documented in README.md. */
MFS_API void mfs_config_default(mfs_config *cfg);

/*
 * Bytes one table row costs under cfg (factors, bias, optimizer state, index
 * and ID bookkeeping, an ID string of 16 bytes on average): how --memory
 * turns a budget into capacities. 0 for an invalid cfg.
 */
MFS_API uint64_t mfs_model_row_bytes(const mfs_config *cfg);

/*
 * Bytes a user row's history costs beyond mfs_model_row_bytes:
 * 8 * history + 4 (the item keys and the ring's place), 0 when history is 0.
 * Item rows keep no history.
 */
MFS_API uint64_t mfs_model_history_bytes(const mfs_config *cfg);

/*
 * Create an empty model. Tables are sized here, once; learning never
 * allocates embedding memory. Returns 0, or -MFS_E_INVAL (bad field; diag
 * says which), -MFS_E_UNSUPPORTED (kernel this CPU cannot run), -MFS_E_NOMEM.
 */
MFS_API int mfs_model_create(mfs_model **out, const mfs_config *cfg, mfs_diag *diag);

/* Free a model. NULL is a no-op. */
MFS_API void mfs_model_free(mfs_model *m);

/* Running totals of a sequence of learn calls (zero it before the first). */
typedef struct mfs_learn_stats {
	uint64_t events;     /* events learned */
	uint64_t unplaced;   /* events dropped because a table was full (evict off) */
	double sq_err;       /* sum of (rating - prediction before the step)^2 */
	double abs_err;      /* sum of |rating - prediction before the step| */
	uint64_t unadmitted; /* events with an ID not admitted yet (min_count): they
				update mu and the bias of the side that has a row, no factors */
	uint64_t out_of_range; /* events learned whose rating was outside [lo, hi] */
} mfs_learn_stats;

/*
 * Learn from n events, in order, one SGD step each (test-then-train: the
 * error of the prediction before each step is added to st, which may be NULL).
 * New IDs get a row; an event whose new ID finds its table full is not learned
 * and is counted in st->unplaced. An event with a rating outside [lo, hi] is
 * learned with the rating clamped into range, scored (sq_err, abs_err)
 * against its true rating, and counted in st->out_of_range. Outside replay
 * (mfs_model_set_replay), an event learned with rows on both sides adds its
 * item to the user's history (mfs_config.history).
 * The model's lifetime count (mfs_model_info.events) counts the events of
 * the first pass: calls in replay mode (mfs_model_set_replay) add none.
 * Returns the number of events learned, or -MFS_E_INVAL, or -MFS_E_NOMEM
 * (no memory to copy a loaded model's mapped tables, or for an ID string:
 * then the events before the one that failed are learned and counted in st,
 * that one and the rest are not).
 */
MFS_API int64_t mfs_model_learn(mfs_model *m, const mfs_event *ev, size_t n, mfs_learn_stats *st);

/* An event resolved to table rows (mfs_model_resolve), for replaying it. */
typedef struct mfs_row_event {
	uint32_t user; /* user row */
	uint32_t item; /* item row */
	float rating;
} mfs_row_event;

/*
 * Resolve n events to the rows their IDs hold now, without giving any ID a
 * row or touching the model: out[j] gets event j's rows, or user/item
 * UINT32_MAX when that ID has no row. Only where rows are found exactly
 * (exact ID mode, one hash per user); else every ID is UINT32_MAX.
 * Returns the number of events with both rows (n when all replay exactly),
 * or -MFS_E_INVAL.
 */
MFS_API int64_t mfs_model_resolve(const mfs_model *m, const mfs_event *ev, size_t n,
				  mfs_row_event *out);

/*
 * Learn n resolved events, in order: the same steps mfs_model_learn takes on
 * the events they came from while their IDs keep those rows (passes 2..N of
 * --epochs replay these records instead of IDs: no hashing, no index). The
 * events are not new sightings: the eviction clock does not move. Events
 * whose rows are not in use are not learned (st->unplaced).
 * Returns the number of events learned, or -MFS_E_INVAL.
 */
MFS_API int64_t mfs_model_learn_rows(mfs_model *m, const mfs_row_event *ev, size_t n,
				     mfs_learn_stats *st);

/*
 * Learner threads of mfs_model_learn_rows and of mfs_model_learn (default 1:
 * the caller's thread, events in order). With threads = N > 1 each call is
 * learned in windows of up to N x W events (W: mfs_model_set_window): a
 * window's events are bucketed by (user row mod N, item row mod N) into an
 * N x N grid, keeping their order inside a block, and N threads learn
 * conflict-free blocks in N rounds (thread t learns block (t, (t + r) mod N)
 * in round r: the stratified SGD of DSGD / FPSGD / LIBMF). Predictions inside
 * a window use mu as it was at the window's start; each event is still scored
 * before it is learned. mfs_model_learn resolves a window's IDs on the
 * calling thread, in order, first (a window ends early before a new ID that
 * evicts a row); implicit models, two hashes per user and min_count > 1 keep
 * pass 1 on the caller's thread. The same model, events, calls and N give the
 * same model byte for byte, however the threads are scheduled (mfs_learner
 * makes the calls whole windows, so input cut differently learns the same).
 * Returns 0 or -MFS_E_INVAL (0, or over 64).
 */
MFS_API int mfs_model_set_threads(mfs_model *m, unsigned threads);

/* Events per thread of a window of mfs_model_set_threads (default 65536;
 * 256..2^24). Returns 0 or -MFS_E_INVAL. */
MFS_API int mfs_model_set_window(mfs_model *m, uint32_t events_per_thread);

/*
 * Switch learning between the first-pass settings (on = 0, the default) and
 * the replay_* settings (on = 1), for passes over events the model has
 * already learned once. Returns 0 or -MFS_E_INVAL.
 */
MFS_API int mfs_model_set_replay(mfs_model *m, int on);

/*
 * Set the rating range [lo, hi] of a model that has learned nothing yet (for
 * a range taken from the first events, see mfs_ratings_range). Returns 0, or
 * -MFS_E_INVAL (lo >= hi, a bound not finite, or the model has learned).
 */
MFS_API int mfs_model_set_range(mfs_model *m, float lo, float hi);

/*
 * The smallest and largest rating of n events, and their step: the coarsest
 * of 1, 0.5, 0.1 and 0.01 that every rating is a multiple of (1: whole stars,
 * 0.5: half stars), or 0 when there is none. lo, hi, step may be NULL.
 * Returns 0, or -MFS_E_INVAL (n = 0, or a rating that is not finite).
 */
MFS_API int mfs_ratings_range(const mfs_event *ev, size_t n, float *lo, float *hi, float *step);

/*
 * The configuration m was created with (or loaded with), as it is now; kernel
 * is NULL (mfs_model_info names the kernel). Returns 0 or -MFS_E_INVAL.
 */
MFS_API int mfs_model_config_get(const mfs_model *m, mfs_config *cfg);

/*
 * Change the learning settings of m from cfg: lr, lr_bias, l2, l2_bias,
 * init_std and the replay_* ones (other fields of cfg are ignored: the
 * shape of a model does not change). A resumed learner uses it for settings
 * given anew. Returns 0, or -MFS_E_INVAL (a value not finite or negative).
 */
MFS_API int mfs_model_set_learning(mfs_model *m, const mfs_config *cfg);

/* Bits of the value mfs_model_predict returns. */
#define MFS_KNOWN_USER 1
#define MFS_KNOWN_ITEM 2

/*
 * Predict the rating of (user, item). Unknown IDs contribute nothing (a cold
 * user gets mu + b_item). Writes *out; returns MFS_KNOWN_* bits (>= 0) or
 * -MFS_E_INVAL.
 */
MFS_API int mfs_model_predict(const mfs_model *m, const char *user, size_t user_len,
			      const char *item, size_t item_len, float *out);

/* A scored item: its row and score. mfs_model_item_id turns a row into its ID. */
typedef struct mfs_scored {
	uint32_t row;
	float score;
} mfs_scored;

/*
 * Settings of a top-K query (recommend, similar): an opaque object with
 * setters, so that a new setting is not a new ABI. NULL wherever a query
 * takes one means all defaults. Create it once and reuse it; a query only
 * reads it, so threads may share one that nobody changes meanwhile.
 */
typedef struct mfs_query mfs_query;

enum mfs_query_param {
	/* recommend: 0 (default) leaves out the items in the user's history (the
	 * items of its mfs_config.history most recent events); 1 keeps them.
	 * Models without a history have nothing to leave out. */
	MFS_QUERY_INCLUDE_SEEN = 1,
	/* recommend and similar: leave out items that learned fewer than this
	 * many events in the first pass (default 0: none left out). Needs the
	 * per-row event counts (mfs_model_info.counts): without them a query
	 * with a value above 0 returns -MFS_E_UNSUPPORTED. 0..UINT32_MAX */
	MFS_QUERY_MIN_EVENTS = 2,
};

/* A query with the defaults. Returns 0 or -MFS_E_INVAL / -MFS_E_NOMEM. */
MFS_API int mfs_query_create(mfs_query **out);

/* Set param (enum mfs_query_param) to value. Returns 0, -MFS_E_INVAL (unknown
 * param or q NULL), -MFS_E_RANGE (value outside the param's range). */
MFS_API int mfs_query_set(mfs_query *q, int param, int64_t value);

/* Free a query. NULL is a no-op. */
MFS_API void mfs_query_free(mfs_query *q);

/*
 * The k items with the highest predicted rating for user, best first, among
 * the items q lets in (q NULL: the defaults, which leave out the user's
 * history). The exclusions are applied while ranking: the result is the top
 * k of the remaining items, not a top k with holes. A cold (unknown) user
 * gets the items with the highest mu + b_item. Writes up to k entries to out
 * (caller-owned, k entries). Returns the count written (min(k, items left
 * in)), or -MFS_E_INVAL / -MFS_E_NOMEM / -MFS_E_UNSUPPORTED (see
 * MFS_QUERY_MIN_EVENTS).
 */
MFS_API int mfs_model_recommend_with(const mfs_model *m, const mfs_query *q, const char *user,
				     size_t user_len, size_t k, mfs_scored *out);

/* mfs_model_recommend_with(m, NULL, ...): the user's history left out. */
MFS_API int mfs_model_recommend(const mfs_model *m, const char *user, size_t user_len, size_t k,
				mfs_scored *out);

/*
 * The k items most similar to item by cosine of their factor rows (the item
 * itself excluded, and the items q leaves out: MFS_QUERY_MIN_EVENTS; a
 * similar query has no user, so no history applies), best first. Returns the
 * count, -MFS_E_NOTFOUND for an unknown item, -MFS_E_INVAL, -MFS_E_NOMEM,
 * -MFS_E_UNSUPPORTED.
 */
MFS_API int mfs_model_similar_with(const mfs_model *m, const mfs_query *q, const char *item,
				   size_t item_len, size_t k, mfs_scored *out);

/* mfs_model_similar_with(m, NULL, ...). */
MFS_API int mfs_model_similar(const mfs_model *m, const char *item, size_t item_len, size_t k,
			      mfs_scored *out);

/*
 * The user's history: the item rows of its mfs_config.history most recent
 * first-pass events, each item once (at its most recent place), most recent
 * first. Items no longer in the model (evicted) are left out. The history is kept with the model: saved, carried
 * by checkpoints and deltas, cleared when the user's row is re-initialised
 * (evicted, or in hashed mode taken by another ID; users sharing a hashed row
 * share its history). Writes up to cap rows to rows (may be NULL with cap 0).
 * Returns the number of rows the history holds (it may exceed cap: then only
 * cap were written), -MFS_E_NOTFOUND for an unknown user, -MFS_E_INVAL.
 */
MFS_API int mfs_model_history(const mfs_model *m, const char *user, size_t user_len,
			      uint32_t *rows, size_t cap);

enum mfs_side { MFS_USERS = 0, MFS_ITEMS = 1 };

/*
 * The ID string and bias of row `row` of a table (side MFS_USERS or MFS_ITEMS).
 * *id points into the model (valid until the next mutating call); id, len and
 * bias may be NULL. Returns 0, or -MFS_E_RANGE for a row that is not in use.
 */
MFS_API int mfs_model_row(const mfs_model *m, int side, uint32_t row, const char **id,
			  size_t *len, float *bias);

/* Look an ID up without changing anything. Returns its row (>= 0) or -MFS_E_NOTFOUND. */
MFS_API int64_t mfs_model_find(const mfs_model *m, int side, const char *id, size_t len);

/*
 * The events row `row` of a table has learned in the first pass (replayed
 * passes do not add to it; events of an unadmitted ID count for the side that
 * has a row), kept since the row was last initialised: the support of an
 * item. Returns the count (>= 0), -MFS_E_RANGE for a row not in use,
 * -MFS_E_UNSUPPORTED when the model keeps no counts (mfs_model_info.counts
 * is 0: trained with both frequency alphas at 1), -MFS_E_INVAL.
 */
MFS_API int64_t mfs_model_row_events(const mfs_model *m, int side, uint32_t row);

/*
 * The whole factor and bias tables of a side (MFS_USERS or MFS_ITEMS), for
 * reading them at once (a NumPy view, a PCA map of the items) rather than
 * row by row: *rows gets the factor rows, row r at rows + r * *stride floats
 * (dim of them used, the padding up to stride zero), *bias the biases, one
 * per row. Rows not in use (mfs_model_row returns -MFS_E_RANGE for them, in
 * hashed mode) hold zeros or the values of an earlier ID. In hashed mode with
 * user_hashes 2 a user's vector is the sum of its two rows, so its rows are
 * not its vector. rows, stride and bias may be NULL. The pointers are into
 * the model, read only, and stay valid until the next mutating call on m
 * (mfs_model_learn moves the tables of a loaded model into memory of its
 * own; a free ends them). Returns the number of rows (mfs_model_info's
 * user_rows or item_rows), or -MFS_E_INVAL.
 */
MFS_API int64_t mfs_model_table(const mfs_model *m, int side, const float **rows, size_t *stride,
				const float **bias);

/* A summary of a model. Strings point to static or model memory. */
typedef struct mfs_model_info {
	uint32_t dim;
	uint64_t users, items;         /* IDs with a row */
	uint64_t user_rows, item_rows; /* rows to iterate with mfs_model_row (some may be
					  unused in hashed mode: -MFS_E_RANGE) */
	uint64_t user_evictions, item_evictions;
	int ids, evict;
	uint32_t min_count, user_hashes;
	uint64_t max_users, max_items; /* capacities */
	uint64_t events;               /* events learned over the model's lifetime (first
					  passes: replayed passes over the same events add none) */
	double mu;                     /* global mean */
	float lo, hi;
	int optimizer, link;
	uint64_t seed;
	const char *kernel; /* the kernel this handle runs */
	uint32_t history;   /* items remembered per user row (mfs_config.history; 0: none) */
	int counts;         /* 1: rows count their events (mfs_model_row_events) */
} mfs_model_info;

MFS_API int mfs_model_info_get(const mfs_model *m, mfs_model_info *info);

/* ===================================================================== */
/* Implicit feedback                                                     */
/* ===================================================================== */

/*
 * An implicit model learns from interactions (clicks, plays, views) instead
 * of ratings: every event is a positive, its rating a weight (>= 0), and each
 * step also learns S negatives drawn from the stream's own items:
 *   MFS_LOSS_BPR       -w log sigmoid(s_ui - s_uj) for each negative j
 *   MFS_LOSS_LOGISTIC  sigmoid cross-entropy: the positive with label 1 and
 *                      weight w, each negative with label 0 and weight w
 * where s_ui = b_u + b_i + dot(p_u, q_i) is a logit (no mu, no range):
 * predict, recommend and similar return logits. Negatives are drawn in
 * proportion to round(16 * count^neg_beta) over the items seen (count: the
 * item's events so far), by a Fenwick tree sized by the item table; a draw
 * equal to the positive, or to an item of the user's history (the seen set,
 * mfs_config.history), is drawn again (up to 8 times, then taken). Draws come from the model's RNG:
 * the same seed and stream give the same model byte for byte, and a model
 * saved and loaded goes on as if never stopped (the tree is rebuilt from the
 * saved item counts). The user's history (mfs_config.history) is the seen
 * set of the ranking metrics and of recommend.
 */
enum mfs_loss {
	MFS_LOSS_BPR = 0,
	MFS_LOSS_LOGISTIC = 1,
	/* a baseline, not a loss: an item's bias is its weighted count so far and
	 * nothing else is learned; ranking (metrics, recommend) is by that count,
	 * as a cold user's is. No negatives are drawn. */
	MFS_LOSS_POPULARITY = 2,
};

typedef struct mfs_implicit_config {
	int loss;           /* enum mfs_loss (default MFS_LOSS_BPR) */
	uint32_t negatives; /* negatives per event, 1..1024 (default 64) */
	float neg_beta;     /* popularity exponent of the sampler, 0..2 (default 0: uniform
			       over the items seen; 0.75 as word2vec) */
} mfs_implicit_config;

/* Fill c with the defaults above. */
MFS_API void mfs_implicit_config_default(mfs_implicit_config *c);

/*
 * The model settings of an implicit model (README.md: measured on MovieLens
 * 100K): mfs_config_default() with dim 128, plain SGD, lr 0.07, history 1024.
 */
MFS_API void mfs_config_default_implicit(mfs_config *cfg);

/*
 * Make m, which has learned nothing, an implicit model. It needs exact IDs
 * with one row per user, min_count 1, plain SGD, per-row counts (frequency
 * alphas not both 1) and a history. Saved with the model. Returns 0,
 * -MFS_E_INVAL (a value out of range, or m has learned: diag says which),
 * -MFS_E_UNSUPPORTED (a model setting the implicit learner does not
 * support: diag says which), -MFS_E_NOMEM.
 */
MFS_API int mfs_model_set_implicit(mfs_model *m, const mfs_implicit_config *c, mfs_diag *diag);

/* 1 and *c filled (c may be NULL) for an implicit model, 0 for an explicit one,
 * -MFS_E_INVAL. */
MFS_API int mfs_model_implicit_get(const mfs_model *m, mfs_implicit_config *c);

/*
 * Prequential ranking metrics of implicit learning, test-then-train: before
 * an event is learned, if its (user, item) pair is a first-time one (the
 * item is not in the user's history: exact while the user has at most
 * mfs_config.history distinct items, past that "not among the items of its
 * history most recent events"), the model ranks every item for the user as
 * mfs_model_recommend does (the same scan, the history left out) and the
 * event scores a hit when its item is among the first k, at rank r (0-based)
 * with NDCG 1 / log2(r + 2). An item the model does not hold yet, or a cold
 * user's item outside the popular top k, is a miss. Set k (and every) before
 * the first call, zero the rest.
 */
typedef struct mfs_rank_stats {
	uint32_t k;      /* in: the cutoff (0: no ranking) */
	uint32_t every;  /* in: rank every Nth first-time pair (0, 1: all) */
	uint64_t pairs;  /* first-time pairs seen */
	uint64_t ranked; /* of them ranked */
	double hits;     /* ranked with the item in the top k */
	double ndcg;     /* sum of 1 / log2(rank + 2) over the hits */
	double seconds;  /* spent ranking (wall clock) */
	double loss;     /* sum of the training loss before each step */
	uint64_t negatives; /* negatives learned */
} mfs_rank_stats;

/*
 * mfs_model_learn for an implicit model, with the ranking metrics into rs
 * (NULL: none). ev[j].rating is the event's weight: a value not finite or
 * below 0 is -MFS_E_INVAL, and nothing of the call is learned (checked
 * first). mfs_model_learn on an implicit model is this with rs NULL.
 * Returns the number of events learned, -MFS_E_INVAL (not an implicit
 * model, or a bad weight), -MFS_E_NOMEM.
 */
MFS_API int64_t mfs_model_learn_implicit(mfs_model *m, const mfs_event *ev, size_t n,
					 mfs_learn_stats *st, mfs_rank_stats *rs);

/* Options of mfs_model_save; NULL means all defaults. */
typedef struct mfs_save_opts {
	int compress;      /* zstd level for the sections, 0 = store raw (default) */
	const void *position;  /* opaque reader position to record (checkpoints), or NULL */
	size_t position_len;
} mfs_save_opts;

/*
 * Save the model to path, atomically: written to a temporary file beside it,
 * fsync'd, renamed over path, the directory fsync'd. On failure path is
 * untouched and no temporary is left behind. Returns 0 or -MFS_E_IO
 * (diag->os_errno), -MFS_E_NOMEM, -MFS_E_INVAL.
 */
MFS_API int mfs_model_save(const mfs_model *m, const char *path, const mfs_save_opts *opts,
			   mfs_diag *diag);

/*
 * Load a model saved by mfs_model_save. kernel as in mfs_config (NULL: auto).
 * Every section's checksum is verified; a torn or corrupt file is refused.
 * The big tables are mapped from the file copy-on-write (private: writes
 * never reach the file) instead of read, where the file allows it (files of
 * this version); the model stays valid when the file is deleted or replaced
 * (by rename; files are never rewritten in place). The first mfs_model_learn
 * copies mapped tables into anonymous memory. A delta checkpoint is refused
 * (-MFS_E_INVAL): load its directory with mfs_checkpoint_load_newest.
 * Returns 0, or -MFS_E_NOTFOUND, -MFS_E_IO, -MFS_E_CORRUPT, -MFS_E_VERSION,
 * -MFS_E_UNSUPPORTED, -MFS_E_NOMEM; diag says why.
 */
MFS_API int mfs_model_load(mfs_model **out, const char *path, const char *kernel, mfs_diag *diag);

/*
 * The reader position stored in a loaded model (see mfs_save_opts), or NULL
 * with *len = 0. The pointer lives as long as the model.
 */
MFS_API const void *mfs_model_position(const mfs_model *m, size_t *len);

/* ===================================================================== */
/* Source: events from files                                             */
/* ===================================================================== */

typedef struct mfs_source mfs_source;

enum mfs_format {
	MFS_FORMAT_AUTO = 0, /* decided per file from its first non-empty line */
	MFS_FORMAT_TSV = 1,  /* user<TAB>item<TAB>rating[<TAB>time] */
	MFS_FORMAT_CSV = 2,  /* user,item,rating[,time]; a header line is skipped */
	MFS_FORMAT_DAT = 3,  /* user::item::rating[::time] */
	MFS_FORMAT_JSONL = 4, /* one JSON object per line */
	MFS_FORMAT_SSV = 5    /* user item rating[ time]: fields between runs of spaces
				 (or tabs), LIBMF's format */
};

/* Parse "auto", "tsv", "csv", "dat", "jsonl", "ssv"; returns the enum value or -MFS_E_INVAL. */
MFS_API int mfs_format_parse(const char *name);
MFS_API const char *mfs_format_name(int format);

/* Called for every malformed record that is skipped; d->path and d->line say where. */
typedef void (*mfs_bad_record_fn)(void *ctx, const mfs_diag *d);

typedef struct mfs_source_config {
	int format;                 /* enum mfs_format (default AUTO) */
	const char *fields;         /* jsonl field names: "user=userId,item=movieId,rating=rating,time=ts";
				       NULL: "user,item,rating,time" */
	size_t batch;               /* events per batch (default 4096) */
	mfs_bad_record_fn on_bad;   /* may be NULL */
	void *on_bad_ctx;
} mfs_source_config;

MFS_API void mfs_source_config_default(mfs_source_config *cfg);

/*
 * Open a source over inputs (files, directories, "-" for standard input),
 * read in order. Every input is checked to exist here, so a missing file is
 * reported before anything is learned. Directory entries are read in order:
 * Kafka-sink names (topic+partition+offset..., topic-partition-offset.ext) by
 * partition and numeric offset, other names lexicographically; names starting
 * with '.', containing "_tmp" or ending in ".tmp" are ignored.
 * Returns 0, or -MFS_E_NOTFOUND / -MFS_E_IO (diag names the input),
 * -MFS_E_INVAL, -MFS_E_NOMEM.
 */
MFS_API int mfs_source_open(mfs_source **out, const char *const *inputs, size_t n_inputs,
			    const mfs_source_config *cfg, mfs_diag *diag);

/*
 * The next batch of events. *ev points into the source and stays valid until
 * the next call on it. Malformed records are skipped, counted and passed to
 * on_bad. Returns the number of events (> 0), 0 at the end of all inputs, or
 * a negative code on an I/O or decompression failure (diag names the file and
 * offset); after a failure the source may be continued with the next file by
 * calling mfs_source_skip_file().
 */
MFS_API int mfs_source_next(mfs_source *s, const mfs_event **ev, mfs_diag *diag);

/*
 * Where event i of the batch the last mfs_source_next returned was read: its
 * file (*path points into the source and lives as long as it) and 1-based
 * line. For a warning about one event (a rating outside the range, ...).
 * path and line may be NULL. Returns 0, or -MFS_E_RANGE (no event i in that
 * batch), -MFS_E_INVAL.
 */
MFS_API int mfs_source_event_line(const mfs_source *s, size_t i, const char **path,
				  uint64_t *line);

/* Abandon the current file (after an error) and continue with the next one. */
MFS_API void mfs_source_skip_file(mfs_source *s);

typedef struct mfs_source_stats {
	uint64_t events;  /* events returned */
	uint64_t skipped; /* malformed records skipped */
	uint64_t bytes;   /* bytes read from files (compressed size) */
	uint64_t files;   /* files opened */
} mfs_source_stats;

MFS_API void mfs_source_stats_get(const mfs_source *s, mfs_source_stats *st);

MFS_API void mfs_source_free(mfs_source *s);

/* ===================================================================== */
/* Source: I/O backends, reading ahead, follow mode, positions           */
/* ===================================================================== */

/*
 * Backends for regular files (pipes and standard input are always read with
 * read(2)). MFS_IO_AUTO tries io_uring and falls back to pread when the kernel
 * refuses it (ENOSYS, EPERM from a seccomp profile, kernel.io_uring_disabled);
 * mfs_source_io_fallback() then says why.
 */
enum mfs_io { MFS_IO_AUTO = 0, MFS_IO_URING = 1, MFS_IO_PREAD = 2 };

/* Parse "auto", "uring", "pread"; returns the enum value or -MFS_E_INVAL. */
MFS_API int mfs_io_parse(const char *name);

/*
 * Reader settings beyond mfs_source_config. Start from
 * mfs_source_config2_default(); pass it to mfs_source_open2().
 *   io       enum mfs_io (default AUTO)
 *   follow   1: at the end of the inputs, wait for files to grow and new files to
 *            appear (inotify, else polling every poll_ms) until mfs_source_stop().
 *            An incomplete last line or compressed frame means "wait for more".
 *            Within a directory, a file is complete when a newer file of the
 *            same partition (Kafka names) or, for other names, any newer file
 *            exists; files of other partitions are read meanwhile.
 *   queue    batches parsed ahead by a reader thread (default 0: no thread, the
 *            caller's thread reads). With a thread, on_bad is called from it.
 *            The batches and their order are the same either way for input
 *            that decompresses cleanly; in a corrupt compressed file, how
 *            many records before the damage are delivered depends on the
 *            read size and on the thread (up to one 3 MiB decoded block).
 *   chunk    bytes per read (default 1 MiB; a test seam: any size >= 1 works)
 *   depth    reads in flight with io_uring (default 8, at most 64)
 *   poll_ms  follow mode: longest wait between checks (default 200)
 */
typedef struct mfs_source_config2 {
	int io;
	int follow;
	unsigned queue;
	size_t chunk;
	unsigned depth;
	unsigned poll_ms;
} mfs_source_config2;

MFS_API void mfs_source_config2_default(mfs_source_config2 *cfg);

/* mfs_source_open with reader settings (cfg2 NULL: defaults). Also returns
 * -MFS_E_UNSUPPORTED when io is MFS_IO_URING and the kernel refuses io_uring. */
MFS_API int mfs_source_open2(mfs_source **out, const char *const *inputs, size_t n_inputs,
			     const mfs_source_config *cfg, const mfs_source_config2 *cfg2,
			     mfs_diag *diag);

/* The backend in use: "uring" or "pread" (static string). */
MFS_API const char *mfs_source_io(const mfs_source *s);

/* 1 if io was AUTO and io_uring was refused (d, if not NULL, says why), else 0. */
MFS_API int mfs_source_io_fallback(const mfs_source *s, mfs_diag *d);

/*
 * Ask the source to stop: the next mfs_source_next returns 0 (follow mode
 * stops waiting). Safe to call from a signal handler or another thread; the
 * only call on a source that is.
 */
MFS_API void mfs_source_stop(mfs_source *s);

/*
 * mfs_source_next with a bound on the wait: in follow mode, when no event is
 * ready within timeout_ms (< 0: wait as long as it takes, as mfs_source_next),
 * returns -MFS_E_AGAIN and *ev is NULL; nothing is lost, call again. A caller
 * that must act on the clock while the stream is idle (periodic checkpoints, a
 * progress line) calls this in a loop. Without follow mode it is
 * mfs_source_next. Same thread rules as mfs_source_next.
 */
MFS_API int mfs_source_next_wait(mfs_source *s, const mfs_event **ev, int timeout_ms,
				 mfs_diag *diag);

/*
 * Follow mode: how long a batch that has some events lingers for more when no
 * more input is ready, before it is handed out (default 5 ms; 0 hands out
 * what has arrived at once). Larger batches amortise the learner's per-batch
 * work; the linger bounds the latency it adds. Call before the first
 * mfs_source_next. Returns 0, or -MFS_E_INVAL for more than 60000 ms.
 */
MFS_API int mfs_source_set_linger(mfs_source *s, unsigned ms);

/*
 * No batch crosses a multiple of every events counted from the open (0: no
 * such cut, the default). A caller that checkpoints every N events sets N
 * (or the gcd of its periods) so that checkpoints fall on exact counts.
 * Call before the first mfs_source_next. Returns 0 or -MFS_E_INVAL.
 */
MFS_API int mfs_source_set_align(mfs_source *s, uint64_t every);

/*
 * Where the next unread record is (after the last batch returned). path points
 * into the source (valid until it is freed).
 */
typedef struct mfs_source_where {
	const char *path;        /* the file, or "" when there are no inputs */
	int done;                /* 1: every record of path has been read */
	uint64_t offset;         /* byte offset in the decompressed stream of path */
	uint64_t frame_offset;   /* compressed offset of the frame (member) holding it;
				    equal to offset for plain files */
	uint64_t line;           /* lines of path read so far */
	uint64_t records;        /* records of path read (events + malformed) */
	int kafka;               /* 1 if path has a Kafka-sink name */
	uint64_t partition;      /* Kafka partition */
	uint64_t kafka_offset;   /* next Kafka offset: start offset + records */
} mfs_source_where;

MFS_API int mfs_source_where_get(const mfs_source *s, mfs_source_where *w);

/*
 * The position as an opaque, versioned blob (store it in a checkpoint with
 * mfs_save_opts.position). Writes up to len bytes to buf (may be NULL with len
 * 0) and returns the size of the whole blob, as snprintf.
 *
 * Limit: the blob names ONE file, the one mfs_source_where_get reports (the
 * open file, else the first file not done), and mfs_source_seek treats the
 * files ordered before it as done and the files after it as unread. That is
 * exact when files are read one after the other (no follow mode, or follow
 * mode with a single partition). In follow mode with several files parked at
 * once (several Kafka partitions, or several input directories), resuming from
 * a blob drops the unread records of the parked files ordered before the
 * blob's file, and reads again the records already read from the files ordered
 * after it. Checkpoint such streams per partition (one source per partition
 * directory), or accept at-least/at-most-once delivery for those files.
 */
MFS_API int mfs_source_position(const mfs_source *s, void *buf, size_t len);

/*
 * Continue from a position blob: files before its file are skipped, and its
 * file is read from the record the blob names. Call before the first
 * mfs_source_next. Returns 0, -MFS_E_CORRUPT (not a position blob),
 * -MFS_E_NOTFOUND (its file is not among the inputs), -MFS_E_INVAL.
 */
MFS_API int mfs_source_seek(mfs_source *s, const void *pos, size_t len, mfs_diag *diag);

/* ===================================================================== */
/* Source: Kafka topics                                                  */
/* ===================================================================== */

/*
 * A Kafka source reads the messages of one or more topics through
 * librdkafka's consumer; each message holds one record or several lines of
 * records in any of the formats above (decided per message under
 * MFS_FORMAT_AUTO), parsed exactly as lines of a file are. It is an
 * mfs_source: mfs_source_next_wait, _position, _seek, _stats_get, _stop and
 * _free work on it, in follow mode always (it never ends: -MFS_E_AGAIN when
 * idle, 0 only after mfs_source_stop).
 *
 * Its position blob (mfs_source_position) holds, per topic partition, the
 * offset of the next message not yet handed out, the lines of that message
 * already handed out, and the events and malformed records taken from the
 * partition over the blob's lifetime. mfs_source_seek starts every partition
 * there as it is assigned, whatever the group has committed; a partition the
 * blob does not hold starts at the "start" setting. A malformed message is
 * skipped, counted and passed to on_bad with d->path "topic T partition P
 * offset O" (", line L" within a multi-line message).
 *
 * Settings are made with mfs_kafka_config_set() on an opaque config:
 *   "brokers"   bootstrap servers, host:port[,host:port...] (required)
 *   "topics"    topic[,topic...] (required)
 *   "group"     consumer group: partitions are assigned by the group (subscribe),
 *               with static membership (group.instance.id, see "instance") so that a
 *               restarted member gets its partitions back at once. Unset (default):
 *               the source assigns itself every partition of the topics (partitions
 *               added later are picked up within 30 s) and needs no group session;
 *               commits go to group "mfstream-" + topics, which it never joins
 *   "instance"  group.instance.id with "group" (default: "mfstream-" + host name)
 *   "start"     earliest (default) | latest: where a partition that the position
 *               does not hold starts
 *   "notice-ms" at most one notice per kind this often (default 10000)
 *   any other key is a librdkafka property (e.g. "security.protocol"), checked here.
 * Offsets are never committed by librdkafka itself: mfs_source_commit() commits
 * the offsets of a position blob (after the checkpoint holding it is written).
 */
typedef struct mfs_kafka_config mfs_kafka_config;

/* Returns 0 or -MFS_E_NOMEM. */
MFS_API int mfs_kafka_config_create(mfs_kafka_config **out);
MFS_API void mfs_kafka_config_free(mfs_kafka_config *kc);

/* Set key to value (copied). Returns 0, or -MFS_E_INVAL (unknown key or bad value:
 * diag says which and why). */
MFS_API int mfs_kafka_config_set(mfs_kafka_config *kc, const char *key, const char *value,
				 mfs_diag *diag);

/*
 * Notices for a person, from the source's calls (its thread): brokers
 * unreachable and retried (at most one per "notice-ms", with the count of
 * errors since the last), receiving again, partitions assigned and revoked,
 * offsets gone (retention) and skipped, failed commits. d->code says the kind
 * (MFS_E_IO: a broker problem, MFS_E_OK: information). fn may be NULL.
 */
MFS_API int mfs_kafka_config_set_notice(mfs_kafka_config *kc, mfs_bad_record_fn fn, void *ctx);

/*
 * With "group": fn is called (from mfs_source_next_wait) before a rebalance
 * takes partitions away, when every batch handed out has been learned: the
 * place to write a checkpoint. The events of the batch in progress that came
 * from those partitions are dropped (the next owner reads them).
 */
MFS_API int mfs_kafka_config_set_revoke(mfs_kafka_config *kc, void (*fn)(void *ctx), void *ctx);

/*
 * Open a Kafka source. cfg as for files (format, fields, batch, on_bad; NULL:
 * defaults). Nothing waits for a broker here: partitions are looked up and
 * assigned by the first mfs_source_next_wait calls, which keep retrying while
 * the brokers are unreachable. Returns 0, or -MFS_E_INVAL (missing brokers or
 * topics, a bad setting), -MFS_E_NOMEM, -MFS_E_IO (librdkafka refused).
 */
MFS_API int mfs_source_open_kafka(mfs_source **out, const mfs_kafka_config *kc,
				  const mfs_source_config *cfg, mfs_diag *diag);

/*
 * Commit the offsets of a position blob of this source to its group
 * (asynchronously: a failure is a notice). Only partitions assigned now are
 * committed. A file source commits nothing.
 * Returns 0, -MFS_E_CORRUPT (not a Kafka position), -MFS_E_INVAL.
 */
MFS_API int mfs_source_commit(mfs_source *s, const void *pos, size_t len, mfs_diag *diag);

/* One partition of a Kafka source or of a Kafka position blob. */
typedef struct mfs_kafka_partition {
	const char *topic;   /* points into the source or the blob's copy: see below */
	size_t topic_len;
	int32_t partition;
	int assigned;        /* the source consumes it now (0 for a blob) */
	int64_t offset;      /* the next message not handed out */
	uint64_t lines;      /* lines of that message already handed out */
	int64_t end;         /* the partition's high watermark as last fetched, or -1 */
	int64_t lag;         /* end - offset, or -1 when end is not known */
	uint64_t events;     /* events taken from it over the position's lifetime */
	uint64_t skipped;    /* malformed records likewise */
} mfs_kafka_partition;

/*
 * Partition i of a Kafka source (in the order they became known). Returns
 * the number of partitions (p filled when i is below it), or 0 for a file
 * source. topic is valid until the source is freed.
 */
MFS_API int mfs_source_kafka_partition(const mfs_source *s, size_t i, mfs_kafka_partition *p);

/*
 * Wait at most timeout_ms until every assigned partition's high watermark is
 * known (a partition with nothing new gets its first fetch answer only after
 * the broker's fetch.wait.max.ms), so that mfs_source_kafka_partition can tell
 * its lag. Returns at once for a file source or when all are known.
 */
MFS_API void mfs_source_kafka_watermarks(mfs_source *s, int timeout_ms);

/*
 * Partition i of a Kafka position blob (as stored in a checkpoint). Returns
 * the number of partitions, or -MFS_E_CORRUPT (not a Kafka position). topic
 * points into pos (topic_len bytes, not NUL-terminated).
 */
MFS_API int mfs_position_kafka_partition(const void *pos, size_t len, size_t i,
					 mfs_kafka_partition *p);

/*
 * Publishing checkpoints to a Kafka model topic, for edge servers on other
 * machines (mfs_server_open on "kafka://BROKERS/TOPIC"). Every file handed to
 * mfs_publisher_send (a whole checkpoint or a delta, as the checkpoint
 * directory holds them) is cut into chunks of 512 KiB, each with a 96-byte
 * header (snapshot ID, delta sequence, chunk index and count, total length,
 * model_events, the learner's write time, XXH3 of payload and header), and
 * produced through an idempotent producer (enable.idempotence=true) with
 * keys "full/<chunk>" and "delta/<seq>/<chunk>": under log compaction the
 * newest whole snapshot and the deltas after it stay (an older snapshot's
 * leftovers are told apart by their snapshot ID). Chunks are spread over the
 * topic's partitions by key; the header says where each belongs.
 */
typedef struct mfs_publisher mfs_publisher;

typedef struct mfs_publisher_stats {
	uint64_t fulls, deltas;  /* files produced */
	uint64_t chunks, bytes;  /* messages and their bytes (headers included) */
	uint64_t delivered;      /* messages the brokers acknowledged */
	uint64_t failures;       /* files not published (read error, refused or undelivered) */
	uint64_t skipped;        /* deltas not sent: no whole snapshot before them */
} mfs_publisher_stats;

/*
 * Open a publisher to target "BROKERS/TOPIC" (host:port[,host:port]/topic).
 * props: n_props "key=value" librdkafka producer properties. full_every: a
 * whole snapshot at least every that many files (0: 10). Delivery failures
 * and broker errors are passed to on_error (from the publisher's calls).
 * Returns 0, or -MFS_E_INVAL (a bad target or property), -MFS_E_IO, -MFS_E_NOMEM.
 */
MFS_API int mfs_publisher_open(mfs_publisher **out, const char *target, const char *const *props,
			       size_t n_props, unsigned full_every, mfs_bad_record_fn on_error,
			       void *ctx, mfs_diag *diag);

/* 1 when the next file must be whole (none yet, full_every reached, or a file
 * was lost: the edges wait for a whole one). */
MFS_API int mfs_publisher_want_full(const mfs_publisher *p);

/*
 * Read the model file at path (full: a whole one, else a delta on the last
 * one sent) and queue its chunks; events: its model_events. Returns 0, or
 * < 0 (counted in failures; the next file is then whole). The file is not
 * touched: a failure here never loses a checkpoint.
 */
MFS_API int mfs_publisher_send(mfs_publisher *p, const char *path, int full, uint64_t events,
			       mfs_diag *diag);

/* Serve delivery reports (call now and then; mfs_publisher_send does). */
MFS_API void mfs_publisher_poll(mfs_publisher *p);

/* Wait at most timeout_ms for every queued chunk to be delivered. Returns 0,
 * or -MFS_E_AGAIN (some still queued: they are lost when the publisher is freed). */
MFS_API int mfs_publisher_flush(mfs_publisher *p, int timeout_ms);

MFS_API void mfs_publisher_stats_get(const mfs_publisher *p, mfs_publisher_stats *st);
MFS_API void mfs_publisher_free(mfs_publisher *p);

/* ===================================================================== */
/* Checkpoints                                                           */
/* ===================================================================== */

/*
 * A checkpoint directory holds model files named ckpt-<events>.mfs (the
 * events the model has learned, 20 digits, so names sort by age), each
 * written atomically by mfs_model_save with the reader position it continues
 * from, and deltas named ckpt-<events>.delta: only the rows changed since the
 * previous checkpoint (whole or delta) and the learner state, naming the
 * state they apply on (its event count and ID). The newest state of a
 * directory is its newest whole checkpoint with its chain of deltas applied
 * in order; the name that sorts last is always that newest state.
 */

/*
 * One learner per checkpoint directory. Two learners writing one directory
 * would prune each other's checkpoints and resume from each other's models,
 * so a learner takes the directory's lock before it reads or writes there.
 */
typedef struct mfs_lock mfs_lock;

/*
 * Lock checkpoint directory dir (it must exist): an exclusive flock(2) on
 * dir/LOCK, a file that records the holder's pid (for the message of the
 * next learner; only the flock counts). The lock is held until
 * mfs_checkpoint_unlock or the end of the process, however it ends: the lock
 * of a process killed with SIGKILL is free again, and the next learner takes
 * it over. A child made by fork holds it too (it shares the open file
 * description): a forked checkpoint writer keeps the directory locked until
 * it exits, even if its parent died first; such a child must not call
 * mfs_checkpoint_unlock (it just exits). When the holder is gone but a
 * writer it forked still holds the lock, this call waits for that writer (up
 * to 30 s). With the lock taken, the temporary files of writers that died
 * (.ckpt-*.tmp.*, left by a kill during a write) are removed.
 * Readers (mfs_checkpoint_load_newest, mfs_server_open) need no lock, and
 * mfs_checkpoint_write does not check it.
 * Returns the number of temporary files removed (>= 0) and sets *out, or
 * -MFS_E_BUSY (another live process holds it: diag->reason names its pid),
 * -MFS_E_IO (cannot create dir/LOCK, e.g. a read-only directory; diag->os_errno),
 * -MFS_E_NOMEM, -MFS_E_INVAL.
 */
MFS_API int mfs_checkpoint_lock(mfs_lock **out, const char *dir, mfs_diag *diag);

/*
 * Release a lock (NULL: no-op): its descriptor is closed. A forked writer
 * that still runs keeps the directory locked until it exits.
 */
MFS_API void mfs_checkpoint_unlock(mfs_lock *lock);

/*
 * Write m to dir/ckpt-<events>.mfs with position (may be NULL) and zstd level
 * compress (0: raw), then delete all but the newest keep whole checkpoints and
 * the deltas that apply on them (older deltas go with their base; keep 0:
 * delete none). On failure the directory is as it was (no partial file).
 * Returns 0, or -MFS_E_IO (diag->os_errno: ENOSPC, EIO, ...), -MFS_E_NOMEM,
 * -MFS_E_INVAL.
 */
MFS_API int mfs_checkpoint_write(const mfs_model *m, const char *dir, const void *position,
				 size_t position_len, int compress, unsigned keep, mfs_diag *diag);

/*
 * Write a delta of m to dir/ckpt-<events>.delta: the rows learned since the
 * last mfs_checkpoint_mark (or since m was loaded), atomically, like
 * mfs_checkpoint_write (same position, compress and keep). The delta applies
 * on the checkpoint of the state m had at that mark: write that one (whole or
 * delta) before marking. Reads m only, so a forked child may call it.
 * Returns 0, or -MFS_E_INVAL (m was never marked nor loaded: write a whole
 * checkpoint first), -MFS_E_IO, -MFS_E_NOMEM.
 */
MFS_API int mfs_checkpoint_write_delta(const mfs_model *m, const char *dir, const void *position,
				       size_t position_len, int compress, unsigned keep,
				       mfs_diag *diag);

/*
 * Mark m's present state as checkpointed: the next delta holds the rows
 * learned from now on and applies on a checkpoint of this state. Call it right
 * after writing one (or after forking the child that writes it). If that
 * write fails, write a whole checkpoint next. Returns 0 or -MFS_E_INVAL.
 */
MFS_API int mfs_checkpoint_mark(mfs_model *m);

/*
 * Give m's tables their huge pages back after a forked checkpoint writer has
 * exited. While a child shares them, the kernel splits every huge page the
 * learner writes into 4 KiB pages, and the next fork copies one page-table
 * entry per 4 KiB page (tens of milliseconds for a 1 GiB model) instead of
 * one per 2 MiB. Collapses the rows in use, 2 MiB at a time (MADV_COLLAPSE):
 * call it from another thread while m learns (a learning step touching the
 * 2 MiB being copied waits for that copy, about 0.1 ms); not concurrently
 * with mfs_model_free. Returns the bytes now in huge pages, or
 * -MFS_E_UNSUPPORTED (kernel older than 6.1), -MFS_E_INVAL.
 */
MFS_API int64_t mfs_model_regroup_pages(mfs_model *m);

/*
 * Load the newest state of dir: its newest whole checkpoint that loads, with
 * the deltas after it applied in order. A damaged whole checkpoint (checksum,
 * truncation, ...) is passed to on_skip (may be NULL) and the previous one is
 * tried. The first delta that is damaged or does not apply on the state so
 * far (a missing link) is passed to on_skip; the chain goes on only with a
 * later delta that applies on the state so far (a run resumed from an earlier
 * link writes its deltas beside the stale ones), damaged ones are reported.
 * Writes the path of the last file applied to path (if not NULL). The model
 * is loaded as by mfs_model_load (mapped). Returns 0, or
 * -MFS_E_NOTFOUND (no checkpoint, or none valid), -MFS_E_IO, -MFS_E_NOMEM,
 * -MFS_E_UNSUPPORTED (kernel).
 */
MFS_API int mfs_checkpoint_load_newest(mfs_model **out, const char *dir, const char *kernel,
				       mfs_bad_record_fn on_skip, void *ctx, char *path,
				       size_t path_len, mfs_diag *diag);

/*
 * Periodic checkpoints that do not stall learning: what `mfstream train
 * --checkpoint-dir` does, for any program. A whole checkpoint falls at every
 * period and a delta (the rows learned since the last one) at every shorter
 * delta period; each is written by a forked child (copy-on-write: the only
 * pause is the fork) while the caller learns on, and the model's huge pages
 * are regrouped on a thread after the child exits (mfs_model_regroup_pages).
 * With a publisher, every file written is also produced to the model topic;
 * with a Kafka source to commit, its offsets are committed once the file is.
 *
 * Use: open (takes the directory's lock), set the periods, load (resume) or
 * create the model, open the source and seek it to mfs_model_position, then
 * call mfs_checkpointer_tick after every batch learned (and while the stream
 * is idle, for periods by time), and mfs_checkpointer_finish at the end.
 * Events periods fall exactly when the source's batches end on them
 * (mfs_source_set_align(src, mfs_checkpointer_align(c))).
 *
 * Threading: one thread calls a checkpointer (the one that learns the model).
 */
typedef struct mfs_checkpointer mfs_checkpointer;

typedef enum mfs_checkpointer_param {
	MFS_CKPT_EVERY_EVENTS = 1, /* a whole checkpoint at every multiple of N events (0: by time) */
	MFS_CKPT_EVERY_MS,         /* ... or once N ms passed since the last (default 30000; 0 never) */
	MFS_CKPT_DELTA_EVENTS,     /* a delta at every multiple of N events (default 0: none) */
	MFS_CKPT_DELTA_MS,         /* ... or once N ms passed since the last file (default 0) */
	MFS_CKPT_KEEP,             /* whole checkpoints kept, with their deltas (default 3; 0: all) */
	MFS_CKPT_COMPRESS,         /* zstd level of the files, 0..19 (default 0: raw) */
	MFS_CKPT_STOP_ON_ERROR,    /* 1: a failed periodic checkpoint makes tick return -MFS_E_IO */
	MFS_CKPT_FORK,             /* 1 (default): periodic files from a forked child; 0: here */
} mfs_checkpointer_param;

typedef struct mfs_checkpointer_stats {
	uint64_t started;       /* checkpoints begun (whole and deltas) */
	uint64_t written;       /* ... that were written */
	uint64_t failed;        /* ... that failed (said through on_error) */
	uint64_t deltas;        /* deltas begun */
	uint64_t saved_events;  /* model events of the newest valid checkpoint */
	uint64_t stale_removed; /* temporary files of dead writers removed at open */
	int resumed;            /* mfs_checkpointer_load found a checkpoint */
	double stall_ms_max;    /* the longest pause of a tick that started a file */
	double wait_ms;         /* ticks waited for a busy writer, in all */
	double final_ms;        /* mfs_checkpointer_finish's own file */
} mfs_checkpointer_stats;

/*
 * A checkpointer of dir (created if missing): takes its lock
 * (mfs_checkpoint_lock: a second learner is refused) and removes the
 * temporary files of dead writers. Returns how many it removed (>= 0) and
 * sets *out, or -MFS_E_BUSY (diag names the holder), -MFS_E_IO (diag names
 * dir and errno), -MFS_E_NOMEM, -MFS_E_INVAL.
 */
MFS_API int mfs_checkpointer_open(mfs_checkpointer **out, const char *dir, mfs_diag *diag);

/* Set one parameter. Returns 0, or -MFS_E_INVAL (unknown, negative, too large). */
MFS_API int mfs_checkpointer_set(mfs_checkpointer *c, mfs_checkpointer_param p, int64_t value);

/* The batch cut that makes the event periods fall exactly (the gcd of the
 * whole and delta periods counted in events; 0: none): give it to
 * mfs_source_set_align. */
MFS_API uint64_t mfs_checkpointer_align(const mfs_checkpointer *c);

/* Where failures and warnings go (a failed write, a failed fork, a failed
 * publish), as diags; also called in a forked writer. NULL: nowhere. */
MFS_API void mfs_checkpointer_on_error(mfs_checkpointer *c, mfs_bad_record_fn fn, void *ctx);

/* Produce every file written to this publisher (not owned; NULL: none). */
MFS_API void mfs_checkpointer_set_publisher(mfs_checkpointer *c, mfs_publisher *p);

/* Commit this Kafka source's offsets once each file is written (not owned). */
MFS_API void mfs_checkpointer_set_commit(mfs_checkpointer *c, mfs_source *src);

/*
 * Resume: mfs_checkpoint_load_newest on the directory (same arguments and
 * returns), and the next delta may chain on what was loaded.
 */
MFS_API int mfs_checkpointer_load(mfs_checkpointer *c, mfs_model **out, const char *kernel,
				  mfs_bad_record_fn on_skip, void *ctx, char *path,
				  size_t path_len, mfs_diag *diag);

/*
 * After a batch (events: the events read so far, as the periods count them;
 * src: where the next batch starts, the position the file holds; may be NULL):
 * starts a file when a period is due, reaps a finished writer (committing and
 * publishing its file). A file due while the last writer still runs waits
 * for it (stats: wait_ms). Returns 0, or -MFS_E_IO when a file failed and
 * MFS_CKPT_STOP_ON_ERROR is set, -MFS_E_INVAL.
 */
MFS_API int mfs_checkpointer_tick(mfs_checkpointer *c, mfs_model *m, mfs_source *src,
				  uint64_t events);

/* A whole checkpoint now, here (after the running writer, if any): a Kafka
 * rebalance that takes partitions away. 0, or -MFS_E_IO (said). */
MFS_API int mfs_checkpointer_now(mfs_checkpointer *c, mfs_model *m, mfs_source *src);

/*
 * The end of a run: waits for the running writer, then writes a whole
 * checkpoint of m unless the newest file already holds its state. Returns 0,
 * or -MFS_E_IO (said through on_error) with *unsaved (may be NULL) the events
 * learned since the newest valid checkpoint: what the run loses.
 */
MFS_API int mfs_checkpointer_finish(mfs_checkpointer *c, mfs_model *m, mfs_source *src,
				    uint64_t *unsaved);

MFS_API void mfs_checkpointer_stats_get(const mfs_checkpointer *c, mfs_checkpointer_stats *st);

/* Join the regroup thread, release the lock (a writer still running keeps it
 * until it exits), free c. NULL is a no-op. */
MFS_API void mfs_checkpointer_free(mfs_checkpointer *c);

/* ===================================================================== */
/* The learner: a model, its source and its checkpoints, as one object  */
/* ===================================================================== */

/*
 * An mfs_learner learns its inputs batch by batch (test-then-train: each
 * event is scored before it is learned), with checkpoints when a
 * checkpoint-dir is set (an mfs_checkpointer: the lock, forked writers,
 * deltas). Opened on a directory that holds checkpoints, it resumes exactly:
 * the newest checkpoint's model (its settings, not the config's) and the
 * inputs from the position it holds, so a run killed at any moment and
 * opened again ends with the same bytes as one never killed.
 *
 * Settings live in an opaque mfs_learner_config, set by name with the value
 * as text, spelled as `mfstream train`'s options (a new setting is a new
 * name, never a new struct):
 *   model:    dim, max-users, max-items, lr, lr-bias, l2, l2-bias, init-std,
 *             seed, optimizer (sgd|adagrad), rating-range (LO:HI), min-count,
 *             history, freq-alpha, freq-alpha-bias, evict (0|1), kernel
 *   input:    format (auto|tsv|csv|dat|jsonl|ssv), fields, batch
 *             (rating-range auto: the range of the first batch, on a new model)
 *   learning: threads, window (events per thread of a window,
 *             mfs_model_set_window), epochs (passes; >= 2 keeps the events
 *             for mfs_learner_replay). With threads > 1 pass 1 is learned in
 *             whole windows counted on the model's clock, however the input
 *             is cut into batches: events wait in the learner until their
 *             window is full, the input ends or is idle, or a checkpoint,
 *             save or replay is asked; checkpoints fall on window boundaries
 *   implicit: feedback (explicit|implicit), loss (bpr|logistic|popularity),
 *             negatives, neg-beta, weight (none|rating|log1p: what the
 *             rating column means), eval-k (10; 0: no ranking), eval-every
 *             (1: rank every first-time pair)
 *   checkpoints: checkpoint-dir, checkpoint-every and delta-every (events
 *             "100000" / "100k", or time "30s" / "500ms"; default 30s and
 *             none), keep (3), compress (0..19), on-checkpoint-error
 *             (stop|continue)
 * Counts take k/M/G suffixes; numbers are read the same in every locale.
 * The defaults are mfs_config_default's and mfs_source_config_default's;
 * feedback implicit sets mfs_config_default_implicit's model settings (give it
 * first: the model settings given after it apply on top).
 *
 * Threading: a learner and its config are used by one thread at a time.
 */
typedef struct mfs_learner mfs_learner;
typedef struct mfs_learner_config mfs_learner_config;

/* A config with the defaults. Returns 0, or -MFS_E_NOMEM, -MFS_E_INVAL. */
MFS_API int mfs_learner_config_new(mfs_learner_config **out);
MFS_API void mfs_learner_config_free(mfs_learner_config *c);

/*
 * Set one setting by name. Returns 0, or -MFS_E_INVAL with diag naming the
 * setting and why (unknown name, not a number, out of range), -MFS_E_NOMEM.
 * The config keeps copies of strings.
 */
MFS_API int mfs_learner_config_set(mfs_learner_config *c, const char *name, const char *value,
				   mfs_diag *diag);

/* Where malformed records go (as diags), and, when no on_notice is set,
 * skipped checkpoints and checkpoint failures too (may be called from a
 * forked writer). NULL: nowhere. */
MFS_API void mfs_learner_config_on_bad(mfs_learner_config *c, mfs_bad_record_fn fn, void *ctx);

/* The model settings the config holds (for reading; set them by name). */
MFS_API const mfs_config *mfs_learner_config_model(const mfs_learner_config *c);

/* All the model settings at once (a copy; the kernel name is copied too).
 * Returns 0, or -MFS_E_INVAL (c or m NULL), -MFS_E_NOMEM. */
MFS_API int mfs_learner_config_set_model(mfs_learner_config *c, const mfs_config *m);

/* Implicit feedback with these settings (a copy); the model settings stay
 * what they are (mfs_config_default_implicit gives the tuned ones). */
MFS_API int mfs_learner_config_set_implicit(mfs_learner_config *c, const mfs_implicit_config *ic);

/* What the learner says that is not a malformed record: the rating range it
 * took (code 0), the first rating outside the range (MFS_E_RANGE, once), an
 * implicit event whose weight is not a number >= 0 (MFS_E_PARSE, skipped and
 * counted in bad_weights), a damaged checkpoint passed over on resume, a
 * checkpoint that failed. diag names the file and line where known. NULL:
 * to on_bad. */
MFS_API void mfs_learner_config_on_notice(mfs_learner_config *c, mfs_bad_record_fn fn, void *ctx);

/*
 * A report of a pass: called after every batch, and in an explicit pass 1
 * also after every `every` events read (0: batches only), cut exactly there
 * (learning is the same however a batch is cut; implicit batches are not
 * cut). pass: 1 (test-then-train), 2..N (replay);
 * st: that pass's counts so far. Returning nonzero stops a replay pass.
 */
typedef int (*mfs_learner_report_fn)(void *ctx, struct mfs_learner *l, unsigned pass,
				     const mfs_learn_stats *st);
MFS_API void mfs_learner_config_on_report(mfs_learner_config *c, uint64_t every,
					  mfs_learner_report_fn fn, void *ctx);

/*
 * Open a learner on inputs (files, directories, "-"; as mfs_source_open),
 * resuming from the config's checkpoint-dir when it holds a checkpoint. The
 * config may be freed afterwards. Returns 0, or what mfs_checkpointer_open,
 * mfs_checkpoint_load_newest, mfs_model_create, mfs_source_open and
 * mfs_source_seek return (diag says which and why).
 */
MFS_API int mfs_learner_open(mfs_learner **out, const mfs_learner_config *c,
			     const char *const *inputs, size_t n_inputs, mfs_diag *diag);

/*
 * mfs_learner_open in two steps, for a source opened by the caller (a Kafka
 * consumer, a followed directory): mfs_learner_new takes the checkpoint
 * directory's lock and resumes its newest checkpoint or creates the model
 * (query it with mfs_learner_model before any input); mfs_learner_attach
 * gives it src (owned by the learner from then on, also when it fails),
 * seeks src to the resumed position, cuts its batches on the checkpoint
 * counts, and with a Kafka source commits its offsets after each checkpoint.
 * A resumed checkpoint of the other feedback (explicit, implicit) than the
 * config's is -MFS_E_INVAL.
 */
MFS_API int mfs_learner_new(mfs_learner **out, const mfs_learner_config *c, mfs_diag *diag);
MFS_API int mfs_learner_attach(mfs_learner *l, mfs_source *src, mfs_diag *diag);

/* The learner's source (NULL before mfs_learner_attach) and checkpointer
 * (NULL without a checkpoint-dir; set a publisher on it). They belong to the
 * learner. */
MFS_API mfs_source *mfs_learner_source(mfs_learner *l);
/* The checkpoint file a resumed learner came from (NULL: a new model). */
MFS_API const char *mfs_learner_resumed_from(const mfs_learner *l);
MFS_API mfs_checkpointer *mfs_learner_checkpointer(mfs_learner *l);

/*
 * Learn the next batch, waiting up to timeout_ms for one (-1: as long as it
 * takes), then checkpoint if a period is due. Returns the events of the batch
 * (> 0), 0 at the end of the inputs, -MFS_E_AGAIN when none came in time (the
 * checkpoint clock still ran), or < 0: an input failed (diag names it; call
 * mfs_learner_skip_file to go on), a checkpoint failed with
 * on-checkpoint-error stop (-MFS_E_IO), learning failed (-MFS_E_NOMEM).
 * With threads > 1 a batch's events may wait for the rest of their window
 * (the threads setting above); the end of the inputs, an idle wait,
 * mfs_learner_finish, _checkpoint, _save and _replay learn them.
 */
MFS_API int mfs_learner_step(mfs_learner *l, int timeout_ms, mfs_diag *diag);

/* After a failed input: go on with the next file. */
MFS_API void mfs_learner_skip_file(mfs_learner *l);

/* Step until the end of the inputs or until *stop becomes nonzero (checked
 * between batches and at least every 100 ms; stop may be NULL). Returns 0
 * or the first error mfs_learner_step returned. */
MFS_API int mfs_learner_run(mfs_learner *l, const volatile int *stop, mfs_diag *diag);

/* A whole checkpoint now. 0, or -MFS_E_INVAL (no checkpoint-dir), -MFS_E_IO. */
MFS_API int mfs_learner_checkpoint(mfs_learner *l, mfs_diag *diag);

/*
 * Passes 2..epochs over the events pass 1 kept (epochs >= 2), each in a
 * seeded random order, with the model's replay settings. When every kept
 * event's IDs still hold rows, the events are resolved once and the passes
 * learn rows (no lookups). The report function may stop a pass (the pass is
 * then not counted). Returns the passes done (1 + those finished), or
 * -MFS_E_NOMEM, -MFS_E_INVAL (no events kept).
 */
MFS_API int64_t mfs_learner_replay(mfs_learner *l, mfs_diag *diag);

/* Save the model to path as mfs_model_save does, with the source's position
 * (a resumable file). Returns 0 or what mfs_model_save returns. */
MFS_API int mfs_learner_save(mfs_learner *l, const char *path, int compress, mfs_diag *diag);

/* The counts of pass 1 (test-then-train) and, for implicit learning, its
 * prequential ranking (k 0: none). */
MFS_API void mfs_learner_pass_stats(const mfs_learner *l, mfs_learn_stats *st, mfs_rank_stats *rk);

/* The model being learned: query it between steps (mfs_model_predict, ...);
 * it belongs to the learner. */
MFS_API mfs_model *mfs_learner_model(mfs_learner *l);

typedef struct mfs_learner_stats {
	uint64_t events;              /* learned since open */
	uint64_t unplaced;            /* not learned: no row for the ID */
	uint64_t skipped;             /* malformed records skipped */
	double sq_err, abs_err;       /* prequential sums (error before each step) */
	double rmse, mae;             /* ... as averages over events (0 with none) */
	int resumed;                  /* opened from a checkpoint */
	uint64_t stale_removed;       /* temporary files of dead writers removed */
	uint64_t checkpoints;         /* written since open */
	uint64_t checkpoint_failures;
	uint64_t saved_events;        /* model events of the newest valid checkpoint */
	uint64_t steps;               /* updates over every pass (pass 1 and replays) */
	uint64_t bad_weights;         /* implicit: events skipped for their weight */
	int failure;                  /* what the last failed step failed in: MFS_LEARNER_FAIL_* */
} mfs_learner_stats;

enum {
	MFS_LEARNER_FAIL_NONE = 0,
	MFS_LEARNER_FAIL_INPUT = 1,      /* a file or the stream (mfs_learner_skip_file goes on) */
	MFS_LEARNER_FAIL_CHECKPOINT = 2, /* a checkpoint, with on-checkpoint-error stop */
	MFS_LEARNER_FAIL_LEARN = 3,      /* learning (out of memory): what the batch learned stays */
};

MFS_API void mfs_learner_stats_get(const mfs_learner *l, mfs_learner_stats *st);

/*
 * The end: with a checkpoint-dir, a final whole checkpoint (unless the
 * newest file holds this state); then the learner is freed (NULL: no-op).
 * Returns 0, or -MFS_E_IO when the final checkpoint failed, with *unsaved
 * (may be NULL) the events learned since the newest valid one: what is lost.
 */
MFS_API int mfs_learner_close(mfs_learner *l, uint64_t *unsaved, mfs_diag *diag);

/* mfs_learner_close's final checkpoint without freeing the learner (its
 * stats stay readable; call mfs_learner_free after). Same returns. */
MFS_API int mfs_learner_finish(mfs_learner *l, uint64_t *unsaved, mfs_diag *diag);

/* Free the learner without a final checkpoint (what was learned since the
 * newest checkpoint is dropped). NULL: no-op. */
MFS_API void mfs_learner_free(mfs_learner *l);


/* ===================================================================== */
/* Serving: query the newest model while it is replaced                  */
/* ===================================================================== */

/*
 * A server holds the model of a path (a model file, or a checkpoint directory:
 * its newest valid checkpoint) for queries from any number of threads, and
 * swaps in a newer one on mfs_server_refresh() without stopping them.
 *
 * Queries pin the current view with mfs_server_acquire(), query it
 * (mfs_view_recommend, mfs_view_similar, and the read-only model calls on
 * mfs_view_model()), and unpin it with mfs_server_release(). A refresh loads the
 * newer model with no lock held and then swaps a pointer; the model it
 * replaces stays whole until its last pin is released, then it is freed. An
 * answer therefore always comes from one whole model.
 */
typedef struct mfs_server mfs_server;

/*
 * Open path for serving and load its model. kernel as in mfs_config (NULL:
 * auto). A server reads its models into memory and maps nothing from their
 * files, so a file rewritten or truncated in place while it is served never
 * faults it (mfs_model_load maps instead, and is faster). For a directory, damaged checkpoints are passed to on_skip (may be
 * NULL) and the previous one is used. Returns 0, or the codes of
 * mfs_model_load / mfs_checkpoint_load_newest; diag says why.
 */
MFS_API int mfs_server_open(mfs_server **out, const char *path, const char *kernel,
			    mfs_bad_record_fn on_skip, void *ctx, mfs_diag *diag);

/*
 * Look at the path again and swap in a newer model if there is one: for a
 * directory, a checkpoint that holds more events than the model serving (a
 * damaged newer checkpoint is reported through on_skip once and ignored); for
 * a file, a changed file. Nothing is loaded while the path is unchanged, so
 * it is cheap to call often. Any thread; refreshes are serialised. Returns 1
 * (swapped), 0 (nothing newer), or a negative code (the current model keeps
 * serving; diag says why).
 */
MFS_API int mfs_server_refresh(mfs_server *s, mfs_diag *diag);

/*
 * A server of a Kafka model topic (mfs_server_open with path
 * "kafka://BROKERS/TOPIC" does the same): reads every partition from its
 * beginning and boots from the newest whole snapshot in it with the deltas
 * after it applied (waiting at most wait_ms, 0: 30 s, for one to arrive);
 * each mfs_server_refresh takes what arrived since and swaps in the model of
 * the chain when it grew. A damaged or missing chunk, a delta that does not
 * apply, or a gap in the deltas is passed to on_skip and the server keeps
 * the last whole model until the next whole snapshot. Returns as
 * mfs_server_open; -MFS_E_NOTFOUND when no whole snapshot came in time.
 */
MFS_API int mfs_server_open_kafka(mfs_server **out, const char *brokers, const char *topic,
				  const char *kernel, int wait_ms, mfs_bad_record_fn on_skip,
				  void *ctx, mfs_diag *diag);

/*
 * A view: one whole model and what serving built for it (a compact int8 copy
 * of the item table that top-K scans first). Pin the current one with
 * mfs_server_acquire() (never NULL for an open server; any thread), query it,
 * unpin it with mfs_server_release(), which frees it if it was replaced.
 */
typedef struct mfs_view mfs_view;

MFS_API const mfs_view *mfs_server_acquire(mfs_server *s);
MFS_API void mfs_server_release(mfs_server *s, const mfs_view *v);

/* The view's model, for the read-only model calls (predict, row, find, info). */
MFS_API const mfs_model *mfs_view_model(const mfs_view *v);

/*
 * mfs_model_recommend_with and mfs_model_similar_with, the same results (the
 * exact top-K: the int8 scan only discards items whose score cannot reach the
 * k-th best, the rest are scored from the float rows; items q leaves out
 * never enter the ranking), faster: the scan streams a quarter of the bytes.
 * q NULL: the defaults (recommend leaves out the user's history). Same returns.
 */
MFS_API int mfs_view_recommend_with(const mfs_view *v, const mfs_query *q, const char *user,
				    size_t user_len, size_t k, mfs_scored *out);
MFS_API int mfs_view_similar_with(const mfs_view *v, const mfs_query *q, const char *item,
				  size_t item_len, size_t k, mfs_scored *out);

/* The same with q NULL (the defaults). */
MFS_API int mfs_view_recommend(const mfs_view *v, const char *user, size_t user_len, size_t k,
			       mfs_scored *out);
MFS_API int mfs_view_similar(const mfs_view *v, const char *item, size_t item_len, size_t k,
			     mfs_scored *out);

typedef struct mfs_server_info {
	uint64_t events;         /* lifetime events of the model serving */
	uint64_t refreshes;      /* models swapped in since open */
	uint64_t retired_pinned; /* replaced models still pinned by queries */
	char path[4096];         /* the file the serving model came from */
} mfs_server_info;

MFS_API int mfs_server_info_get(mfs_server *s, mfs_server_info *info);

/*
 * A server of a Kafka model topic: the learner's write time of the newest
 * file in the serving model (*write_ns, ns since the epoch) and the lag from
 * it to the swap that made it serve (*lag_ns). Returns 1, or 0 (both 0) for
 * a server of a path. (Not in mfs_server_info, whose layout bindings mirror.)
 */
MFS_API int mfs_server_lag(mfs_server *s, uint64_t *write_ns, uint64_t *lag_ns);

/* Free the server and its models. No model may be pinned. NULL is a no-op. */
MFS_API void mfs_server_free(mfs_server *s);

/* ===================================================================== */
/* Item titles: item ID -> title, for people reading the answers         */
/* ===================================================================== */

/*
 * A read-only table of item titles loaded from a file. The format is decided
 * from the first non-empty line, by the first of '|', ',' and TAB in it (a
 * line starting with '"' is csv):
 *   id|title|...            MovieLens 100K u.item (Latin-1); later fields ignored
 *   movieId,title[,genres]  MovieLens latest / 25M movies.csv, RFC 4180 quotes:
 *                           "American President, The (1995)", "" for a quote;
 *                           a quoted field must end on its line
 *   id<TAB>title            exactly two fields
 * A first line whose title field is "title" (any case) is a header, skipped.
 * IDs and titles are trimmed of spaces and tabs. IDs are byte strings
 * (1..MFS_ID_MAX bytes) matched exactly, as the model's are: "1" and "01"
 * differ. An ID given twice takes the later title.
 *
 * Titles are NUL-terminated, valid UTF-8 and one line: bytes that are valid
 * UTF-8 are kept, any other byte is read as Windows-1252 (Latin-1 whose
 * 0x80-0x9F are printable, as browsers read "latin1"; its 5 unassigned bytes
 * become U+FFFD), and control characters (below 0x20, 0x7F) become spaces.
 * They still need escaping for JSON or HTML ('"', '\\', '<').
 *
 * Threading: after mfs_titles_load returns, the table is never written, so
 * any number of threads may call mfs_titles_get / mfs_titles_count on it.
 */
typedef struct mfs_titles mfs_titles;

/*
 * Load the titles of path. A file that does not look like a title file is
 * refused, with a reason naming what was expected: binary data (a NUL byte),
 * a first line with no separator, no title in it, more malformed lines
 * (wrong field count, unterminated quote, empty ID or title, ID too long)
 * than titles, or titles that are mostly plain numbers (more than half of
 * three or more: u.user's ages, a column of ratings). Fewer malformed lines are skipped and counted
 * (mfs_titles_skipped). Whether the IDs are those of a model is the caller's
 * check (mfs_titles_get on the model's items: mfs_model_row).
 * Writes *out only on success. Returns 0, or -MFS_E_NOTFOUND, -MFS_E_IO
 * (diag->os_errno; a directory is EISDIR), -MFS_E_PARSE (not a title file),
 * -MFS_E_RANGE (larger than 256 MiB), -MFS_E_NOMEM, -MFS_E_INVAL; diag
 * (may be NULL) names the file and says why.
 */
MFS_API int mfs_titles_load(mfs_titles **out, const char *path, mfs_diag *diag);

/*
 * The title of item id (id_len bytes, not NUL-terminated), or NULL if the
 * file has none (or t is NULL). The string lives as long as t.
 */
MFS_API const char *mfs_titles_get(const mfs_titles *t, const char *id, size_t id_len);

/* How many distinct IDs have a title (0 for NULL). */
MFS_API size_t mfs_titles_count(const mfs_titles *t);

/*
 * The i-th title of the table (0 <= i < mfs_titles_count), in no promised
 * order: *id (id_len bytes, not NUL-terminated) and *title, living as long as
 * t. Returns 0, or -MFS_E_RANGE (i too large, or t NULL).
 */
MFS_API int mfs_titles_at(const mfs_titles *t, size_t i, const char **id, size_t *id_len,
			  const char **title);

/*
 * How many malformed lines loading skipped. If first is not NULL it gets the
 * first of them (path, line and reason; zeroed when there was none).
 */
MFS_API uint64_t mfs_titles_skipped(const mfs_titles *t, mfs_diag *first);

/* Free a title table. NULL is a no-op. */
MFS_API void mfs_titles_free(mfs_titles *t);

/* ===================================================================== */
/* HTTP/JSON serving                                                     */
/* ===================================================================== */

/*
 * An HTTP/1.1 server answering queries from an mfs_server over TCP and/or a
 * Unix stream socket (the same API on both):
 *   GET  /v1/recommend?user=ID[&k=N][&exclude=ID,ID...][&include_seen=1]
 *   POST /v1/recommend   {"k": N, "requests": [{"user": ID, "k": N, "exclude": [ID...]}, ID...]}
 *   GET  /v1/similar?item=ID[&k=N]
 *   GET  /v1/predict?user=ID&item=ID
 *   GET  /v1/info        GET /healthz (503 until a model is attached)
 *   GET  /metrics        the Prometheus text format
 * Every answer is JSON in valid UTF-8 (bytes of an ID that are not UTF-8 are
 * written as U+FFFD), errors too: {"error": "...", "status": N} with 400 (bad
 * parameter), 404 (unknown route), 405 (method), 413 (request or answer too
 * large), 503 (no model yet, or over the connection limit).
 *
 * Bounded everywhere: a fixed pool of event-loop threads (no thread per
 * client), a connection limit (past it new requests get 503 with the
 * connection closed, past a hard limit connections are closed at accept), an
 * idle timeout that drops connections making no progress (also those that do
 * not read their answers), a per-connection memory limit on the request line
 * and headers, a body limit, and k and batch limits so that an answer's size
 * is bounded. A handler pins the serving view, builds the whole answer,
 * unpins the view, then queues the answer: a slow client never keeps an old
 * model alive.
 *
 * Threads: the server owns its pool (started by mfs_http_start, joined by
 * mfs_http_free). mfs_http_refresh, mfs_http_attach and mfs_http_address may
 * be called from any thread.
 */
typedef struct mfs_http mfs_http;
typedef struct mfs_http_config mfs_http_config;

/* Integer settings of mfs_http_config_set (defaults in brackets). */
enum mfs_http_param {
	MFS_HTTP_THREADS = 1,         /* event-loop threads [2], 1..64 */
	MFS_HTTP_MAX_CONNECTIONS = 2, /* open connections served [1000]; the hard limit
					 closed at accept is this plus an eighth (at least 16) */
	MFS_HTTP_IDLE_TIMEOUT_S = 3,  /* drop a connection without progress for this long [10] */
	MFS_HTTP_CONN_MEMORY = 4,     /* bytes per connection for the request line and
					 headers [32768], 4096..16 MiB */
	MFS_HTTP_MAX_BODY = 5,        /* bytes of a POST body [1 MiB] */
	MFS_HTTP_K_MAX = 6,           /* largest k [1000] */
	MFS_HTTP_BATCH_MAX = 7,       /* requests in one batch [1000]; their k sum to at
					 most 10 x this */
	MFS_HTTP_PER_IP = 8,          /* connections from one IP address [0: no limit] */
	MFS_HTTP_SOCKET_MODE = 9      /* permission bits of the Unix socket [0600], set
					 whatever the umask */
};

/* A config with the defaults. Returns 0 or -MFS_E_NOMEM. */
MFS_API int mfs_http_config_create(mfs_http_config **out);
MFS_API void mfs_http_config_free(mfs_http_config *c);

/* Set an integer setting. Returns 0, -MFS_E_INVAL (unknown param) or -MFS_E_RANGE. */
MFS_API int mfs_http_config_set(mfs_http_config *c, int param, int64_t value);

/*
 * Listen on TCP: "PORT" (loopback, 127.0.0.1), "HOST:PORT", "[IPv6]:PORT";
 * HOST is a numeric address (0.0.0.0 for all). PORT 0 takes a free port (see
 * mfs_http_address). NULL: no TCP. Returns 0 or -MFS_E_INVAL (malformed).
 */
MFS_API int mfs_http_config_listen(mfs_http_config *c, const char *addr);

/*
 * The settings of recommend and similar queries (mfs_query; borrowed until
 * mfs_http_free; NULL: the defaults, which leave the user's history out of
 * recommend). GET /v1/recommend?...&include_seen=1 keeps the history for
 * that request. Returns 0 or -MFS_E_INVAL.
 */
MFS_API int mfs_http_config_queries(mfs_http_config *c, const mfs_query *recommend,
				    const mfs_query *similar);

/*
 * Item titles (or any text per item) to return beside the IDs: every item of
 * an answer, and the item of similar and predict, gets "title": "..." (null
 * when t has none for it). t is borrowed until mfs_http_free; NULL: no
 * titles (the default). Returns 0 or -MFS_E_INVAL.
 */
MFS_API int mfs_http_config_titles(mfs_http_config *c, const mfs_titles *t);

/*
 * Listen on a Unix stream socket at path (NULL: none). The server takes
 * path.lock (flock, holding its pid) first: a second server on the same path
 * is refused, naming the first one's pid; a socket file left by a server that
 * is gone is replaced, any other file is an error. path has at most 95 bytes
 * (the socket is bound first in a private directory beside it, a longer
 * name, then renamed). Returns 0 or -MFS_E_INVAL.
 */
MFS_API int mfs_http_config_socket(mfs_http_config *c, const char *path);

/*
 * Bind what cfg names and start serving srv (may be NULL: answer 503 until
 * mfs_http_attach). cfg is copied; srv is borrowed until mfs_http_free. A
 * TCP address in use is an error naming it (no SO_REUSEPORT: one server per
 * port). Returns 0, or -MFS_E_INVAL (nothing to listen on), -MFS_E_IO (bind,
 * lock: diag says which address and why), -MFS_E_NOMEM, -MFS_E_UNSUPPORTED.
 */
MFS_API int mfs_http_start(mfs_http **out, mfs_server *srv, const mfs_http_config *cfg,
			   mfs_diag *diag);

/* Serve srv from now on (once, when the server started without one). Returns 0 or -MFS_E_INVAL. */
MFS_API int mfs_http_attach(mfs_http *h, mfs_server *srv);

/*
 * mfs_server_refresh on the attached server, counted in /metrics (refreshes,
 * failed refreshes, load time, model age). Same returns; -MFS_E_INVAL when
 * no server is attached.
 */
MFS_API int mfs_http_refresh(mfs_http *h, mfs_diag *diag);

/* "127.0.0.1:PORT" (the port bound, also for 0) or the socket path; which: 0 TCP, 1 Unix.
 * Returns the length as snprintf, or -MFS_E_NOTFOUND when not listening there. */
MFS_API int mfs_http_address(const mfs_http *h, int which, char *buf, size_t len);

/* Requests answered so far (any status). */
MFS_API uint64_t mfs_http_requests(const mfs_http *h);

/* Stop listening, close every connection, join the threads, remove the socket
 * file (path.lock stays, unlocked), free h. The attached server is not freed. NULL is a no-op. */
MFS_API void mfs_http_free(mfs_http *h);

/* ===================================================================== */
/* Utilities: IDs' hash, deterministic randomness, zstd output, JSON text */
/* ===================================================================== */

/*
 * The 64-bit hash the ID tables place IDs by (XXH3-64 of the bytes with
 * seed). Pure: any thread, any time.
 */
MFS_API uint64_t mfs_hash_id(const void *data, size_t len, uint64_t seed);

/*
 * The library's deterministic random numbers (xoshiro256**, seeded through
 * splitmix64): the same seed gives the same sequence on every machine, which
 * is how `mfstream gen` and a model's initialisation repeat themselves. The
 * state is the caller's (one per thread); a zeroed one must be seeded first.
 */
typedef struct mfs_rng {
	uint64_t s[4];
} mfs_rng;
MFS_API void mfs_rng_seed(mfs_rng *r, uint64_t seed);
MFS_API uint64_t mfs_rng_next(mfs_rng *r);
MFS_API double mfs_rng_uniform(mfs_rng *r);          /* [0, 1) */
MFS_API double mfs_rng_normal(mfs_rng *r);           /* N(0, 1) */
MFS_API uint64_t mfs_rng_below(mfs_rng *r, uint64_t n); /* [0, n); n > 0 */

/*
 * A streaming zstd writer to a file descriptor that the caller owns (and
 * closes). level 1..19; frame_bytes > 0 ends a frame after about that many
 * input bytes, so the output is many concatenated frames (a reader may start
 * at any frame). Writes *out only on success. Returns 0, or -MFS_E_INVAL (a
 * bad level), -MFS_E_NOMEM. One writer, one thread.
 */
typedef struct mfs_zwriter mfs_zwriter;
MFS_API int mfs_zwriter_open(mfs_zwriter **out, int fd, int level, size_t frame_bytes);
/* Compress and write len bytes. 0, or -MFS_E_IO (errno set) / -MFS_E_INVAL. */
MFS_API int mfs_zwriter_write(mfs_zwriter *w, const void *buf, size_t len);
/* End the last frame, flush and free w (not the fd). 0 or -MFS_E_IO. */
MFS_API int mfs_zwriter_close(mfs_zwriter *w);

/*
 * s (len bytes) as a quoted JSON string into out (cap bytes, NUL-terminated
 * when cap > 0): '"', '\\' and control bytes escaped, every byte that is not
 * part of well-formed UTF-8 replaced by U+FFFD, as every JSON answer of the
 * library writes IDs. Returns the length the whole string needs (without
 * the NUL), as snprintf: the output is complete when that is < cap; or
 * (size_t)-1 when memory for the work ran out. Any thread.
 */
MFS_API size_t mfs_json_quote(char *out, size_t cap, const char *s, size_t len);

#ifdef __cplusplus
}
#endif
#endif
