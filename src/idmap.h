/*
 * idmap.h - ID keys -> table rows, in fixed memory. Internal.
 *
 * Two modes:
 *  - exact: an open-addressing index (linear probing, power-of-two slots, at
 *    most half full, backward-shift deletion) from a 64-bit XXH3 key to a row.
 *    Rows are handed out in order of first sight; when all rows are in use and
 *    eviction is on, a new ID takes the row of the least recently seen of the
 *    next MFS_EVICT_SAMPLE rows after a moving hand (sampled LRU, O(1)).
 *  - hashed: the hashing trick; row = key mapped onto [0, cap); no index, IDs
 *    that collide share a row.
 * Admission (min_count > 1): an unknown ID gets a row only once a count-min
 * sketch has seen it min_count times.
 * The ID string of every row is kept in an arena (so results print real IDs);
 * evicted strings become garbage that is compacted away in place, so the
 * arena stays within about twice the live bytes. The arena reserves 32 bytes
 * per row at init and grows only if live IDs average more than 16 bytes.
 */
#ifndef MFS_IDMAP_H
#define MFS_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#define MFS_EVICT_SAMPLE 8
#define MFS_SKETCH_DEPTH 4

enum mfs_idmap_mode { MFS_IDMAP_EXACT = 0, MFS_IDMAP_HASHED = 1 };

struct mfs_idslot {
	uint64_t key;  /* 0: empty */
	uint32_t row;
	uint32_t seen; /* tick of the last access: in the slot, so a lookup touches one line */
};

struct mfs_idmap {
	uint64_t cap;  /* rows */
	uint64_t used; /* exact: rows in use (0 .. used-1); hashed: rows ever touched */
	uint64_t mask; /* slots - 1 (exact) */
	int mode;      /* enum mfs_idmap_mode */
	int evict;     /* exact: reuse the least recently seen row when full */
	struct mfs_idslot *slots;
	uint64_t *row_key;  /* key of each row (hashed: the last key seen there; 0: untouched) */
	uint64_t hand;      /* next row the eviction sampler looks at */
	uint64_t evictions;
	/* ID strings */
	uint64_t *row_off; /* offset of each row's ID in arena */
	uint8_t *row_len;  /* length of each row's ID */
	char *arena;
	size_t arena_len, arena_cap, arena_dead;
	uint32_t *order; /* cap entries: scratch of the in-place compaction */
	/* admission: count-min sketch of unknown keys (min_count > 1) */
	uint32_t min_count;
	uint32_t sketch_mask; /* width - 1 */
	uint8_t *sketch;      /* MFS_SKETCH_DEPTH x width saturating counters */
	uint64_t sketch_adds; /* increments since the last halving */
};

/*
 * used grows while another thread may read it (mfs_model_regroup_pages, on
 * the checkpointing learner's regroup thread, sizes what it collapses by it):
 * every store while a model is shared is atomic (relaxed: the reader only
 * needs some value it held; a plain load and store on x86-64 and aarch64).
 */
static inline void mfs_idmap_used_set(struct mfs_idmap *m, uint64_t v)
{
	__atomic_store_n(&m->used, v, __ATOMIC_RELAXED);
}

/* A key is never 0 (0 marks an empty slot). */
static inline uint64_t mfs_idmap_key(uint64_t h)
{
	return h ? h : 1;
}

/*
 * cap rows; mode; evict (exact mode); min_count (<= 1: admit at once).
 * Returns 0, -MFS_E_INVAL or -MFS_E_NOMEM.
 */
int mfs_idmap_init(struct mfs_idmap *m, uint64_t cap, int mode, int evict, uint32_t min_count);
void mfs_idmap_free(struct mfs_idmap *m);

/* Hashed mode: the row of a key (Lemire's multiply-shift onto [0, cap)). */
static inline uint64_t mfs_idmap_hashed_row(const struct mfs_idmap *m, uint64_t key)
{
	return (uint64_t)(((unsigned __int128)key * m->cap) >> 64);
}

/* The row of key, or -1 (hashed mode: -1 only for a row never touched). */
static inline int64_t mfs_idmap_find(const struct mfs_idmap *m, uint64_t key)
{
	if (m->mode == MFS_IDMAP_HASHED) {
		uint64_t r = mfs_idmap_hashed_row(m, key);
		return m->row_key[r] ? (int64_t)r : -1;
	}
	uint64_t i = key & m->mask;
	for (;;) {
		const struct mfs_idslot *s = &m->slots[i];
		if (s->key == key)
			return (int64_t)s->row;
		if (s->key == 0)
			return -1;
		i = (i + 1) & m->mask;
	}
}

/*
 * Exact mode: the row of key, its slot stamped with tick (the least recently
 * seen clock), or -1 when the key has no row (nothing is changed then).
 */
static inline int64_t mfs_idmap_touch(struct mfs_idmap *m, uint64_t key, uint32_t tick)
{
	uint64_t i = key & m->mask;
	for (;;) {
		struct mfs_idslot *s = &m->slots[i];
		if (s->key == key) {
			s->seen = tick;
			return (int64_t)s->row;
		}
		if (s->key == 0)
			return -1;
		i = (i + 1) & m->mask;
	}
}

/* Prefetch what looking key up will touch first. */
static inline void mfs_idmap_prefetch(const struct mfs_idmap *m, uint64_t key)
{
	if (m->mode == MFS_IDMAP_HASHED)
		__builtin_prefetch(&m->row_key[mfs_idmap_hashed_row(m, key)]);
	else
		__builtin_prefetch(&m->slots[key & m->mask]);
}

/*
 * The row of key at time tick, giving it a row when new: *fresh says that the
 * row must be (re)initialised (a new ID, an evicted row, or in hashed mode a
 * row whose last key was another). Returns the row, -MFS_E_NOTFOUND when the
 * ID is not admitted yet (min_count), -MFS_E_FULL when all rows are in use
 * and eviction is off, or -MFS_E_NOMEM when the ID arena cannot grow.
 */
int64_t mfs_idmap_get(struct mfs_idmap *m, uint64_t key, const char *id, size_t len,
		      uint32_t tick, int *fresh);

/* Add a row with a given key and ID (loading a model); exact mode, rows in order. */
int mfs_idmap_append(struct mfs_idmap *m, uint64_t key, const char *id, size_t len);

/* Hashed mode, loading: set row r's key and ID. */
int mfs_idmap_set_row(struct mfs_idmap *m, uint64_t r, uint64_t key, const char *id, size_t len);

/* Exact mode: the tick of the last access of row r (0 if unused); set it (loading). */
uint32_t mfs_idmap_seen(const struct mfs_idmap *m, uint64_t r);
void mfs_idmap_set_seen(struct mfs_idmap *m, uint64_t r, uint32_t tick);

/*
 * Loading a whole table at once (faster than a call per row): n rows of keys
 * (may alias m->row_key) and their last-seen ticks (exact mode; NULL: 0).
 * Exact mode: the index is built; a zero or repeated key is -MFS_E_CORRUPT.
 * Hashed mode: n must be cap; used counts the touched rows.
 */
int mfs_idmap_load_keys(struct mfs_idmap *m, const uint64_t *keys, const uint32_t *seen,
			uint64_t n);

/*
 * The ID strings of n rows from their file encoding (a length byte, then the
 * bytes, for each row). Returns 0, -MFS_E_CORRUPT (ends early or has bytes
 * left over), -MFS_E_NOMEM.
 */
int mfs_idmap_load_ids(struct mfs_idmap *m, const uint8_t *enc, size_t len, uint64_t n);

/*
 * Applying a delta: set row r (below used, which the caller has raised) to
 * key, ID and seen tick. Exact mode: the caller has first removed the old
 * keys of every row it will put; a key already in the index is
 * -MFS_E_CORRUPT. Returns 0, -MFS_E_CORRUPT or -MFS_E_NOMEM.
 */
int mfs_idmap_put(struct mfs_idmap *m, uint64_t r, uint64_t key, const char *id, size_t len,
		  uint32_t seen);

/*
 * The eviction clock is 64-bit (the model's tick); a slot keeps the low 32
 * bits of the tick of its last access, and ages are (uint32_t)(tick - seen).
 * So that an age never wraps and aliases (after 4.3G events a row unseen
 * since would look fresh), the model calls mfs_idmap_age every
 * MFS_AGE_PERIOD ticks: ages over 2^31 are clamped to 2^31, so every age
 * stays below 2^31 + MFS_AGE_PERIOD < 2^32. O(slots) per 2^30 events.
 */
#define MFS_AGE_PERIOD (UINT64_C(1) << 30)
void mfs_idmap_age(struct mfs_idmap *m, uint64_t tick);

/* Remove key from the index (exact mode). Returns 1 if it was there. */
int mfs_idmap_remove(struct mfs_idmap *m, uint64_t key);

/* The sketch's estimate of how often key has been seen (admission). */
uint32_t mfs_idmap_sketch_count(const struct mfs_idmap *m, uint64_t key);

/* Width (counters per row) of the admission sketch of a table of cap rows: a
 * power of two >= cap, 1024..2^30. */
static inline uint64_t mfs_idmap_sketch_width(uint64_t cap)
{
	uint64_t w = 1024;
	while (w < cap && w < (1ULL << 30))
		w <<= 1;
	return w;
}

/* Bytes of the sketch (0 without admission). */
static inline size_t mfs_idmap_sketch_bytes(const struct mfs_idmap *m)
{
	return m->sketch ? (size_t)MFS_SKETCH_DEPTH * (m->sketch_mask + 1u) : 0;
}

#endif
