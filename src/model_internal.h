/* model_internal.h - the model's layout, shared by model.c and modelfile.c. */
#ifndef MFS_MODEL_INTERNAL_H
#define MFS_MODEL_INTERNAL_H

#include "idmap.h"
#include "internal.h"
#include "kernels.h"
#include "sampler.h"

/* Events resolved to rows per chunk of a learn call (scratch sized at create). */
#define MFS_LEARN_CHUNK 1024
/* Largest row stride (dim 4096 rounded up to 16 floats). */
#define MFS_DIM_MAX_STRIDE 4096

struct mfs_table {
	struct mfs_idmap ids;
	uint64_t cap;
	float *rows; /* cap x stride floats, 64-byte aligned, zero padding */
	size_t rows_bytes;
	float *bias; /* cap */
	float *acc;  /* cap: AdaGrad accumulators of the rows (1 for a fresh row), NULL for SGD */
	float *bacc; /* cap: AdaGrad accumulators of the biases, NULL for SGD */
	uint64_t *dirty; /* cap bits: rows learned since the last checkpoint mark (deltas) */
	uint32_t *count; /* cap: events each row learned outside replay (frequency-dependent
			    L2, minimum support), NULL when both freq alphas are 1 */
	/* Users only: each row's history, a ring of hist_len item keys (hist),
	 * and its place (hpos: the next slot in the low 16 bits, how many are
	 * filled in the high 16; dense, so that the learner finds the slot to
	 * prefetch in a line it shares with 15 other users). NULL when off. */
	uint64_t *hist;
	uint32_t *hpos;
	uint32_t hist_len;
};

#define MFS_HPOS_NEXT(w) ((w) & 0xFFFFu)
#define MFS_HPOS_FILL(w) ((w) >> 16)

static inline uint64_t *mfs_hist_row(const struct mfs_table *s, uint64_t row)
{
	return s->hist + row * (size_t)s->hist_len;
}

/* Frequency-dependent L2: the count at which a row's L2 is the configured one. */
#define MFS_FREQ_REF 100.0f
/* Counts below this take their L2 weights from a table (no powf per step). */
#define MFS_FREQ_TABLE 1024u

/*
 * A table whose head mfs_model_load mapped from its file (copy-on-write):
 * *table (a field of the model: s->rows, s->bias, ...) points to a mapping
 * of bytes (as mfs_alloc_huge made it) whose first len (page-rounded) come
 * from the file. Rows of row_bytes; side s says how many are in use.
 */
struct mfs_table;
struct mfs_mapped {
	void **table;
	size_t bytes, len;
	struct mfs_table *side;
	size_t row_bytes;
};

#define MFS_MAX_MAPPED 16

struct mfs_model {
	mfs_config cfg; /* cfg.kernel is not kept (NULL) */
	unsigned threads; /* mfs_model_learn_rows: learner threads (0, 1: the caller's alone) */
	uint32_t window;  /* events per thread of a window (0: MFS_PAR_WINDOW) */
	/* parallel.c's window buffers, kept from call to call (fresh pages of
	 * megabytes per call were a quarter of pass 1's time, zeroed) */
	mfs_row_event *par_rows, *par_grid;
	uint32_t *par_blk;
	size_t par_cap;
	const struct mfs_kernels *k;
	uint32_t stride; /* floats per row, multiple of 16 */
	uint32_t klen;   /* length passed to kernels: dim rounded up to the kernel width */
	uint64_t hash_seed;
	struct mfs_rng rng;
	double mu_sum;
	uint64_t mu_count;
	uint64_t events;
	uint64_t tick; /* advances once per event: the clock of least-recently-seen eviction
			  (64-bit: idmap.h, mfs_idmap_age) */
	float *freq_w;  /* 2 x MFS_FREQ_TABLE weights (n / ref)^(alpha - 1): factors, biases */
	int replay;    /* learning uses the replay_* settings (mfs_model_set_replay) */
	struct mfs_table user, item;
	int64_t *scratch; /* 3 * MFS_LEARN_CHUNK rows (users, items, users' second rows) */
	uint64_t *keys;   /* 2 * MFS_LEARN_CHUNK ID keys */
	float *tmp;       /* stride floats: a user's summed rows (two hashes per user) */
	void *position;
	size_t position_len;
	/* Deltas: the state the dirty bits are relative to (mfs_checkpoint_mark). */
	int ck_valid;
	uint64_t ck_events, ck_id;
	/* Regions mapped from a model file; copied to anonymous memory before learning. */
	struct mfs_mapped mapped[MFS_MAX_MAPPED];
	int n_mapped;
	/* Implicit feedback (mfs_model_set_implicit): on, its settings, and the
	 * negative sampler, rebuilt from the item counts when smp_ok is 0 (a
	 * load, a delta applied). */
	struct {
		int on, smp_ok;
		mfs_implicit_config cfg;
		struct mfs_sampler smp;
		uint64_t *seen; /* history length: a user's item keys, sorted (scratch) */
	} imp;
};

/* Turn implicit learning on with c (checked) without the "learned nothing"
 * test: mfs_model_set_implicit and the loader (modelfile.c). */
int mfs_model_implicit_enable(mfs_model *m, const mfs_implicit_config *c, mfs_diag *d);

/* --- block-parallel learning (parallel.c) --------------------------------- */

#define MFS_THREADS_MAX 64

/* What one thread's blocks of a window add up to (merged in thread order). */
struct mfs_block_acc {
	double sq, ab;   /* prequential squared and absolute errors */
	double mu_sum;   /* ratings learned, for mu */
	uint64_t mu_count;
	uint64_t outside; /* ratings outside the range (learned clamped) */
};

/* mu's term in a prediction now. */
float mfs_model_raw_mu(const mfs_model *m);

/* A resolved event's rows are both in use. */
int mfs_model_rows_ok(const mfs_model *m, const mfs_row_event *e);

/*
 * Learn n resolved events (rows in use, checked by the caller) in order,
 * predicting with mu's term fixed at rawmu; adds to *acc, leaves mu, the
 * event count and the dirty bits to the caller. Touches only the rows of ev:
 * threads may learn blocks with disjoint user and item rows at once. Pass 1
 * also counts the events of each row.
 */
void mfs_model_learn_block(mfs_model *m, const mfs_row_event *ev, size_t n, float rawmu,
			   struct mfs_block_acc *acc);

/* Pass 1 may be learned on the block grid: m->threads > 1, explicit, one
 * hash per user, no admission count (their partial steps are serial). */
int mfs_model_first_parallel(const mfs_model *m);

/*
 * Pass 1 on the block grid (parallel.c): ev[0..n) resolved in order as the
 * serial loop resolves them (the clock, stamps, fresh rows, dirty bits, the
 * users' histories) into out (UINT32_MAX: no row). Stops before an event,
 * not the first, whose new ID would evict a row: the events resolved before
 * it are learned first, so no row in flight is evicted. Returns the events
 * resolved; *failed: an ID string found no memory at the next one.
 */
size_t mfs_model_resolve_first(mfs_model *m, const mfs_event *ev, size_t n, mfs_row_event *out,
			       int *failed);

/* mfs_model_learn's one-thread loop (model_learn.c): explicit, m unmapped. */
int64_t mfs_model_learn_serial(mfs_model *m, const mfs_event *ev, size_t n, mfs_learn_stats *st);

/* After a learning call: the lifetime event count (not on replayed passes) and
 * st (may be NULL) take the call's events, unplaced, out-of-range and errors. */
void mfs_model_account(mfs_model *m, mfs_learn_stats *st, int64_t learned, uint64_t unplaced,
		       uint64_t outside, double sq, double ab);

/*
 * mfs_model_learn_rows on the calling thread (model.c), m already unmapped;
 * the public call (parallel.c) runs it, or the block grid on m->threads.
 */
int64_t mfs_model_learn_rows_serial(mfs_model *m, const mfs_row_event *ev, size_t n,
				    mfs_learn_stats *st);

/* Allocate an empty model for a validated config and a kernel table. */
int mfs_model_alloc(mfs_model **out, const mfs_config *cfg, const struct mfs_kernels *k);

/* Replace the mapped regions of m by anonymous (huge-page) copies. */
int mfs_model_unmap(mfs_model *m);

/* Bytes of a table's dirty bitmap. */
static inline size_t mfs_dirty_bytes(uint64_t cap)
{
	return (size_t)((cap + 63) / 64) * 8;
}

static inline void mfs_dirty_set(struct mfs_table *s, uint64_t row)
{
	s->dirty[row >> 6] |= 1ULL << (row & 63);
}

/* --- modelfile.c ---------------------------------------------------------- */

/* The ID of m's state (counters, mu, RNG, hands, ...): what a delta names as its base. */
uint64_t mfs_model_state_id(const mfs_model *m);

/* Write the rows marked dirty and the header state as a delta file (atomically). */
int mfs_model_save_delta(const mfs_model *m, const char *path, const mfs_save_opts *opts,
			 mfs_diag *diag);

/*
 * mfs_model_load with flags: MFS_LOAD_COPY reads the file into anonymous
 * memory and maps nothing from it (for servers: a model file truncated or
 * rewritten in place can then never fault a loaded model, nor the load).
 */
#define MFS_LOAD_COPY 1u
int mfs_model_load_flags(mfs_model **out, const char *path, const char *kernel, unsigned flags,
			 mfs_diag *diag);

/*
 * Apply the delta file at path onto m (flags as mfs_model_load_flags). Returns 0; -MFS_E_CORRUPT when the
 * file is damaged or does not apply on m's state (*other_base set: it is
 * whole but names another base); m is untouched then, unless *touched is set:
 * the caller must then discard m. -MFS_E_IO, -MFS_E_NOMEM, -MFS_E_VERSION.
 */
int mfs_model_apply_delta(mfs_model *m, const char *path, unsigned flags, int *touched,
			  int *other_base, mfs_diag *diag);

/*
 * The same from a model file's bytes in memory (len bytes at buf; read as
 * MFS_LOAD_COPY reads a file, nothing of buf is kept): name stands for the
 * path in messages (a topic and offset). For models received over the
 * network (publish.c).
 */
int mfs_model_load_mem(mfs_model **out, const void *buf, size_t len, const char *name,
		       const char *kernel, mfs_diag *diag);
int mfs_model_apply_delta_mem(mfs_model *m, const void *buf, size_t len, const char *name,
			      int *touched, int *other_base, mfs_diag *diag);

/* mfs_checkpoint_load_newest with mfs_model_load_flags' flags (checkpoint.c). */
int mfs_checkpoint_load_newest_flags(mfs_model **out, const char *dir, const char *kernel,
				     unsigned flags, mfs_bad_record_fn on_skip, void *ctx, char *path,
				     size_t path_len, mfs_diag *diag);

/* Rows to iterate: exact mode 0..used-1 (all live); hashed mode the whole table. */
static inline uint64_t table_rows(const struct mfs_table *s)
{
	return s->ids.mode == MFS_IDMAP_HASHED ? s->ids.cap : s->ids.used;
}

static inline int row_live(const struct mfs_table *s, uint64_t r)
{
	return s->ids.row_key[r] != 0;
}

static inline float *mfs_row(const struct mfs_table *s, uint64_t row, uint32_t stride)
{
	return s->rows + row * (size_t)stride;
}

/*
 * For serve.c's top-K, the terms mfs_model_recommend ranks by: *base = the raw
 * mu + b_user; returns the user's factor vector (buf when its two rows are
 * summed; stride floats), or NULL for a cold user. mfs_model_link turns a raw
 * score into the prediction printed.
 */
const float *mfs_model_user_query(const mfs_model *m, const char *user, size_t len, float *buf,
				  float *base);
float mfs_model_link(const mfs_model *m, float raw);

/*
 * What a top-K leaves out (topk.h's mfs_excluded): built by
 * mfs_model_exclusion for a query. rows: the user's history as item rows,
 * sorted, in buf (MFS_HISTORY_MAX entries).
 */
struct mfs_exclusion {
	int64_t self;          /* an item row left out (similar: the query item), or -1 */
	const uint32_t *rows;  /* sorted */
	size_t n;
	const uint32_t *count; /* item event counts (NULL: no minimum) */
	uint32_t min_events;
};

/*
 * Fill x for a query q (NULL: defaults) of user row u (-1: none, e.g.
 * similar) leaving out item row self (-1: none). Returns 0 or
 * -MFS_E_UNSUPPORTED (a minimum support on a model without counts).
 */
int mfs_model_exclusion(const mfs_model *m, const mfs_query *q, int64_t u, int64_t self,
			uint32_t *buf, struct mfs_exclusion *x);

/*
 * The item rows of user row u's history, most recent first (items no longer
 * in the model left out; an item learned again after others appears again),
 * up to cap of them into rows; returns how many the history holds. The
 * implicit-feedback seen-set reads it too.
 */
size_t mfs_history_rows(const mfs_model *m, uint64_t u, uint32_t *rows, size_t cap);

/*
 * What the serving scans of the calling thread have done since it started
 * (serve.c): queries, index rows bounded from their int8 copy, and rows
 * rescored from the float table. For benchmarks and tests of the pruning.
 */
struct mfs_scan_counts {
	uint64_t queries, bounded, rescored;
};
void mfs_scan_counts_get(struct mfs_scan_counts *c);

#endif
