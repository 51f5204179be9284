/*
 * fuzz_models.h - the models that fuzz_model and fuzz_delta start from, shared
 * with the seed generator (make_model_seeds.c), so that the deltas it writes
 * apply on the base models fuzz_delta rebuilds for every input: one per ID
 * mode (exact with evictions, exact with admission, hashed with two rows per
 * user, hashed with admission), both optimizers, with and without the
 * frequency-dependent L2 counts, and users' histories. Small (dim 4 and 8,
 * 64-row tables, short histories), so that a file is a few KB and an input
 * runs in microseconds.
 */
#ifndef MFS_FUZZ_MODELS_H
#define MFS_FUZZ_MODELS_H

#include <stdio.h>
#include <string.h>

#include "mfstream.h"

#define FUZZ_BASES 5

static inline void fuzz_base_config(int k, mfs_config *c)
{
	mfs_config_default(c);
	c->kernel = "scalar";
	c->dim = k % 2 ? 8 : 4;
	c->max_users = 64;
	c->max_items = 48;
	c->seed = 7 + (uint64_t)k;
	c->history = k == 0 ? 16 : 4; /* users' histories: a ring per row, kept small */
	switch (k) {
	case 0: /* exact, AdaGrad, frequency counts; 100 users in 64 rows: evictions */
		break;
	case 1: /* exact, SGD, no counts, clamp link */
		c->optimizer = MFS_OPT_SGD;
		c->freq_alpha = c->freq_alpha_bias = 1.0f;
		c->link = MFS_RANGE_CLAMP;
		break;
	case 2: /* exact with admission: the sketch */
		c->min_count = 2;
		break;
	case 3: /* hashed, two rows per user */
		c->ids = MFS_IDS_HASHED;
		c->user_hashes = 2;
		break;
	default: /* hashed with admission, SGD */
		c->ids = MFS_IDS_HASHED;
		c->min_count = 3;
		c->optimizer = MFS_OPT_SGD;
		break;
	}
}

/* n events of a seeded stream over 100 users and 60 items. */
static inline void fuzz_learn(mfs_model *m, uint64_t *seed, int n)
{
	char u[32], i[32];
	for (int k = 0; k < n; k++) {
		uint64_t s = *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
		int un = snprintf(u, sizeof u, "u%llu", (unsigned long long)((s >> 33) % 100));
		int in = snprintf(i, sizeof i, "item-%llu", (unsigned long long)((s >> 17) % 60));
		mfs_event e = { u, i, (uint32_t)un, (uint32_t)in, 1.0f + (float)((s >> 45) % 9) / 2, 0 };
		mfs_model_learn(m, &e, 1, NULL);
	}
}

/* The base model k (NULL if it cannot be made), with the stream position after it. */
static inline mfs_model *fuzz_base_model(int k, uint64_t *seed)
{
	mfs_config c;
	fuzz_base_config(k, &c);
	mfs_model *m;
	if (mfs_model_create(&m, &c, NULL) < 0)
		return NULL;
	*seed = 1000 + (uint64_t)k;
	fuzz_learn(m, seed, 400);
	return m;
}

/* Use a loaded model the ways a server and a learner do: nothing may crash. */
static inline void fuzz_exercise(mfs_model *m)
{
	mfs_model_info mi;
	if (mfs_model_info_get(m, &mi) < 0)
		return;
	mfs_scored top[5];
	for (uint32_t r = 0; r < 3 && r < mi.user_rows; r++) {
		const char *uid;
		size_t ul;
		if (mfs_model_row(m, MFS_USERS, r, &uid, &ul, NULL) < 0)
			continue;
		char ub[256];
		memcpy(ub, uid, ul); /* learning below may move the ID strings */
		float p;
		mfs_model_predict(m, ub, ul, "item-1", 6, &p);
		mfs_model_recommend(m, ub, ul, 5, top);
	}
	for (uint32_t r = 0; r < 2 && r < mi.item_rows; r++) {
		const char *iid;
		size_t il;
		if (mfs_model_row(m, MFS_ITEMS, r, &iid, &il, NULL) == 0) {
			char ib[256];
			memcpy(ib, iid, il);
			mfs_model_similar(m, ib, il, 3, top);
		}
	}
	/* learning copies mapped tables out, then evicts, admits, grows */
	uint64_t seed = 99;
	fuzz_learn(m, &seed, 40);
}

#endif
