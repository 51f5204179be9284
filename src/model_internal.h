/* model_internal.h - the model's layout, shared by model.c and modelfile.c. */
#ifndef MFS_MODEL_INTERNAL_H
#define MFS_MODEL_INTERNAL_H

#include "idmap.h"
#include "internal.h"
#include "kernels.h"

/* Events resolved to rows per chunk of a learn call (scratch sized at create). */
#define MFS_LEARN_CHUNK 1024
/* Largest row stride (dim 4096 rounded up to 16 floats). */
#define MFS_DIM_MAX_STRIDE 4096

/* Events ahead whose rows are prefetched. */
#define MFS_PREFETCH_AHEAD 4

struct mfs_table {
	struct mfs_idmap ids;
	uint64_t cap;
	float *rows; /* cap x stride floats, 64-byte aligned, zero padding */
	size_t rows_bytes;
	float *bias; /* cap */
	float *acc;  /* cap: AdaGrad accumulators of the rows (1 for a fresh row), NULL for SGD */
	float *bacc; /* cap: AdaGrad accumulators of the biases, NULL for SGD */
};

struct mfs_model {
	mfs_config cfg; /* cfg.kernel is not kept (NULL) */
	const struct mfs_kernels *k;
	uint32_t stride; /* floats per row, multiple of 16 */
	uint32_t klen;   /* length passed to kernels: dim rounded up to the kernel width */
	uint64_t hash_seed;
	struct mfs_rng rng;
	double mu_sum;
	uint64_t mu_count;
	uint64_t events;
	uint32_t tick; /* advances once per event: the clock of least-recently-seen eviction */
	int replay;    /* learning uses the replay_* settings (mfs_model_set_replay) */
	struct mfs_table user, item;
	int64_t *scratch; /* 3 * MFS_LEARN_CHUNK rows (users, items, users' second rows) */
	uint64_t *keys;   /* 2 * MFS_LEARN_CHUNK ID keys */
	float *tmp;       /* stride floats: a user's summed rows (two hashes per user) */
	void *position;
	size_t position_len;
};

/* Allocate an empty model for a validated config and a kernel table. */
int mfs_model_alloc(mfs_model **out, const mfs_config *cfg, const struct mfs_kernels *k);

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

#endif
