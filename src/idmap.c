/* idmap.c - ID keys -> rows in fixed memory: index, eviction, admission, ID strings. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "idmap.h"
#include "internal.h"

int mfs_idmap_init(struct mfs_idmap *m, uint64_t cap, int mode, int evict, uint32_t min_count)
{
	memset(m, 0, sizeof *m);
	if (cap == 0 || cap > (1ULL << 40) || (mode != MFS_IDMAP_EXACT && mode != MFS_IDMAP_HASHED))
		return -MFS_E_INVAL;
	m->cap = cap;
	m->mode = mode;
	m->evict = mode == MFS_IDMAP_EXACT && evict;
	m->min_count = min_count > 1 ? min_count : 0;
	/* Anonymous huge-page mappings: pages cost nothing until IDs arrive, and
	 * fork (for checkpoints) copies few page-table entries. */
	if (mode == MFS_IDMAP_EXACT) {
		uint64_t slots = 16;
		while (slots < cap * 2)
			slots <<= 1;
		m->mask = slots - 1;
		m->slots = mfs_alloc_huge(slots * sizeof *m->slots);
	}
	m->row_key = mfs_alloc_huge(cap * sizeof *m->row_key);
	m->row_off = mfs_alloc_huge(cap * sizeof *m->row_off);
	m->row_len = mfs_alloc_huge(cap * sizeof *m->row_len);
	/* 32 bytes per row reserved up front (pages are touched as IDs arrive);
	 * it grows only if the live IDs average more than half of that. */
	m->arena_cap = cap * 32 > 4096 ? (size_t)cap * 32 : 4096;
	m->arena = mfs_alloc_huge(m->arena_cap);
	m->order = mfs_alloc_huge(cap * sizeof *m->order);
	if (m->min_count) {
		uint64_t w = mfs_idmap_sketch_width(cap);
		m->sketch_mask = (uint32_t)(w - 1);
		m->sketch = calloc(MFS_SKETCH_DEPTH, w);
	}
	if ((mode == MFS_IDMAP_EXACT && !m->slots) || !m->row_key || !m->row_off ||
	    !m->row_len || !m->arena || !m->order || (m->min_count && !m->sketch)) {
		mfs_idmap_free(m);
		return -MFS_E_NOMEM;
	}
	return 0;
}

void mfs_idmap_free(struct mfs_idmap *m)
{
	mfs_free_huge(m->slots, (m->mask + 1) * sizeof *m->slots);
	mfs_free_huge(m->row_key, m->cap * sizeof *m->row_key);
	mfs_free_huge(m->row_off, m->cap * sizeof *m->row_off);
	mfs_free_huge(m->row_len, m->cap * sizeof *m->row_len);
	mfs_free_huge(m->arena, m->arena_cap);
	mfs_free_huge(m->order, m->cap * sizeof *m->order);
	free(m->sketch);
	memset(m, 0, sizeof *m);
}

/* --- ID strings -------------------------------------------------------- */

static int cmp_off(const void *a, const void *b, void *ctx)
{
	const uint64_t *off = ctx;
	uint64_t x = off[*(const uint32_t *)a], y = off[*(const uint32_t *)b];
	return (x > y) - (x < y);
}

/*
 * Slide the live IDs down over the garbage, in place: rows in order of their
 * offset (sorted in the order array allocated at init), each ID moved to the
 * write point, which never passes the read point. No allocation.
 */
static void compact(struct mfs_idmap *m, uint64_t rows)
{
	size_t n = 0;
	for (uint64_t r = 0; r < rows; r++)
		if (m->row_len[r])
			m->order[n++] = (uint32_t)r;
	qsort_r(m->order, n, sizeof *m->order, cmp_off, m->row_off);
	size_t o = 0;
	for (size_t k = 0; k < n; k++) {
		uint32_t r = m->order[k];
		memmove(m->arena + o, m->arena + m->row_off[r], m->row_len[r]);
		m->row_off[r] = o;
		o += m->row_len[r];
	}
	m->arena_len = o;
	m->arena_dead = 0;
}

/* The arena moved to a bigger huge-page mapping (its pages move, no copy). */
static char *grow_arena(struct mfs_idmap *m, size_t ncap)
{
	const size_t huge = (size_t)2 << 20;
	size_t o = (m->arena_cap + huge - 1) & ~(huge - 1), n = (ncap + huge - 1) & ~(huge - 1);
	void *p = mremap(m->arena, o, n, MREMAP_MAYMOVE);
	return p == MAP_FAILED ? NULL : p;
}

/*
 * Room for len more bytes at the end of the arena (compacted or grown), before
 * anything else changes: an ID that finds no memory leaves the map as it was.
 */
static int reserve_id(struct mfs_idmap *m, size_t len)
{
	if (len > MFS_ID_MAX)
		len = MFS_ID_MAX;
	if (m->arena_len + len > m->arena_cap) {
		uint64_t rows = m->mode == MFS_IDMAP_HASHED ? m->cap : m->used;
		/* Compact while the live IDs fill at most half the arena, so that
		 * each compaction frees at least half of it (amortised O(1) per ID);
		 * beyond that, grow. */
		if ((m->arena_len - m->arena_dead) + len <= m->arena_cap / 2)
			compact(m, rows);
		if (m->arena_len + len > m->arena_cap) {
			size_t ncap = m->arena_cap * 2;
			while (ncap < m->arena_len + len)
				ncap *= 2;
			char *na = grow_arena(m, ncap);
			if (!na)
				return -MFS_E_NOMEM;
			m->arena = na;
			m->arena_cap = ncap;
		}
	}
	return 0;
}

static int store_id(struct mfs_idmap *m, uint64_t row, const char *id, size_t len)
{
	if (len > MFS_ID_MAX)
		len = MFS_ID_MAX;
	m->arena_dead += m->row_len[row];
	m->row_len[row] = 0;
	if (reserve_id(m, len) < 0)
		return -MFS_E_NOMEM;
	memcpy(m->arena + m->arena_len, id, len);
	m->row_off[row] = m->arena_len;
	m->row_len[row] = (uint8_t)len;
	m->arena_len += len;
	return 0;
}

/* --- admission sketch ---------------------------------------------------- */

static inline uint32_t sketch_slot(const struct mfs_idmap *m, uint64_t key, int d)
{
	static const uint64_t mul[MFS_SKETCH_DEPTH] = { 0x9E3779B97F4A7C15ULL, 0xC2B2AE3D27D4EB4FULL,
							0x165667B19E3779F9ULL, 0xD6E8FEB86659FD93ULL };
	uint64_t h = (key ^ (key >> 31)) * mul[d];
	return (uint32_t)(h >> 32) & m->sketch_mask;
}

uint32_t mfs_idmap_sketch_count(const struct mfs_idmap *m, uint64_t key)
{
	if (!m->sketch)
		return 0;
	uint32_t w = m->sketch_mask + 1u, best = 255;
	for (int d = 0; d < MFS_SKETCH_DEPTH; d++) {
		uint8_t c = m->sketch[(size_t)d * w + sketch_slot(m, key, d)];
		if (c < best)
			best = c;
	}
	return best;
}

/* Count one sighting (conservative update); returns the new estimate. */
static uint32_t sketch_add(struct mfs_idmap *m, uint64_t key)
{
	uint32_t w = m->sketch_mask + 1u;
	uint32_t est = mfs_idmap_sketch_count(m, key);
	if (est < 255) {
		for (int d = 0; d < MFS_SKETCH_DEPTH; d++) {
			uint8_t *c = &m->sketch[(size_t)d * w + sketch_slot(m, key, d)];
			if (*c == est)
				(*c)++;
		}
		est++;
	}
	/* Age: halve every counter after 8 sightings per column, so that IDs
	 * seen long ago fade (amortised O(1) per sighting). */
	if (++m->sketch_adds >= 8ULL * w) {
		for (size_t i = 0; i < (size_t)MFS_SKETCH_DEPTH * w; i++)
			m->sketch[i] >>= 1;
		m->sketch_adds = 0;
	}
	return est;
}

/* --- index ---------------------------------------------------------------- */

int mfs_idmap_remove(struct mfs_idmap *m, uint64_t key)
{
	if (m->mode != MFS_IDMAP_EXACT)
		return 0;
	uint64_t i = key & m->mask;
	while (m->slots[i].key != key) {
		if (m->slots[i].key == 0)
			return 0;
		i = (i + 1) & m->mask;
	}
	/* Backward-shift deletion: pull later members of the cluster into the
	 * hole unless their home slot lies cyclically in (hole, j]. */
	uint64_t j = i;
	for (;;) {
		j = (j + 1) & m->mask;
		uint64_t k = m->slots[j].key;
		if (k == 0)
			break;
		uint64_t home = k & m->mask;
		int stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
		if (!stays) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].key = 0;
	m->slots[i].row = 0;
	m->slots[i].seen = 0;
	return 1;
}

static struct mfs_idslot *slot_of(const struct mfs_idmap *m, uint64_t key)
{
	uint64_t i = key & m->mask;
	for (;;) {
		struct mfs_idslot *s = &m->slots[i];
		if (s->key == key)
			return s;
		if (s->key == 0)
			return NULL;
		i = (i + 1) & m->mask;
	}
}

uint32_t mfs_idmap_seen(const struct mfs_idmap *m, uint64_t r)
{
	if (m->mode != MFS_IDMAP_EXACT || r >= m->used)
		return 0;
	const struct mfs_idslot *s = slot_of(m, m->row_key[r]);
	return s ? s->seen : 0;
}

void mfs_idmap_set_seen(struct mfs_idmap *m, uint64_t r, uint32_t tick)
{
	if (m->mode != MFS_IDMAP_EXACT || r >= m->used)
		return;
	struct mfs_idslot *s = slot_of(m, m->row_key[r]);
	if (s)
		s->seen = tick;
}

static void insert_slot(struct mfs_idmap *m, uint64_t key, uint64_t row, uint32_t tick)
{
	uint64_t i = key & m->mask;
	while (m->slots[i].key != 0)
		i = (i + 1) & m->mask;
	m->slots[i].key = key;
	m->slots[i].row = (uint32_t)row;
	m->slots[i].seen = tick;
}

void mfs_idmap_age(struct mfs_idmap *m, uint64_t tick)
{
	if (m->mode != MFS_IDMAP_EXACT || !m->slots)
		return;
	const uint32_t now = (uint32_t)tick, cap = UINT32_C(1) << 31;
	for (uint64_t i = 0; i <= m->mask; i++) {
		struct mfs_idslot *s = &m->slots[i];
		if (s->key && (uint32_t)(now - s->seen) > cap)
			s->seen = now - cap;
	}
}

/* The least recently seen of the next MFS_EVICT_SAMPLE rows after the hand. */
static uint64_t pick_victim(struct mfs_idmap *m, uint32_t tick)
{
	uint64_t best = m->hand % m->cap;
	uint32_t best_age = 0;
	for (int k = 0; k < MFS_EVICT_SAMPLE; k++) {
		uint64_t r = (m->hand + (uint64_t)k) % m->cap;
		uint32_t age = tick - mfs_idmap_seen(m, r); /* a probe per sample: evictions only */
		if (k == 0 || age > best_age) {
			best = r;
			best_age = age;
		}
	}
	m->hand = (m->hand + MFS_EVICT_SAMPLE) % m->cap;
	return best;
}

int64_t mfs_idmap_get(struct mfs_idmap *m, uint64_t key, const char *id, size_t len,
		      uint32_t tick, int *fresh)
{
	*fresh = 0;
	if (m->mode == MFS_IDMAP_HASHED) {
		uint64_t r = mfs_idmap_hashed_row(m, key);
		if (m->row_key[r] != key) {
			if (reserve_id(m, len) < 0)
				return -MFS_E_NOMEM; /* nothing changed: an error, not a full table */
			if (m->row_key[r] == 0) {
				if (m->min_count && sketch_add(m, key) < m->min_count)
					return -MFS_E_NOTFOUND;
				*fresh = 1; /* a new row; a collision keeps the shared row */
				mfs_idmap_used_set(m, m->used + 1);
			}
			if (store_id(m, r, id, len) < 0)
				return -MFS_E_NOMEM;
			m->row_key[r] = key;
		}
		return (int64_t)r;
	}
	uint64_t i = key & m->mask;
	for (;;) {
		struct mfs_idslot *s = &m->slots[i];
		if (s->key == key) {
			s->seen = tick;
			return (int64_t)s->row;
		}
		if (s->key == 0)
			break;
		i = (i + 1) & m->mask;
	}
	if (m->min_count && sketch_add(m, key) < m->min_count)
		return -MFS_E_NOTFOUND;
	if (reserve_id(m, len) < 0)
		return -MFS_E_NOMEM; /* nothing changed: an error, not a full table */
	uint64_t row;
	if (m->used < m->cap) {
		row = m->used;
		mfs_idmap_used_set(m, row + 1);
	} else if (m->evict) {
		row = pick_victim(m, tick);
		mfs_idmap_remove(m, m->row_key[row]);
		m->evictions++;
	} else {
		return -MFS_E_FULL;
	}
	if (store_id(m, row, id, len) < 0)
		return -MFS_E_NOMEM;
	insert_slot(m, key, row, tick);
	m->row_key[row] = key;
	*fresh = 1;
	return (int64_t)row;
}

int mfs_idmap_append(struct mfs_idmap *m, uint64_t key, const char *id, size_t len)
{
	if (m->mode != MFS_IDMAP_EXACT || m->used >= m->cap || key == 0)
		return -MFS_E_CORRUPT;
	if (mfs_idmap_find(m, key) >= 0)
		return -MFS_E_CORRUPT; /* a duplicate key in a model file */
	uint64_t row = m->used;
	if (store_id(m, row, id, len) < 0)
		return -MFS_E_NOMEM;
	insert_slot(m, key, row, 0);
	m->row_key[row] = key;
	mfs_idmap_used_set(m, m->used + 1);
	return 0;
}

int mfs_idmap_set_row(struct mfs_idmap *m, uint64_t r, uint64_t key, const char *id, size_t len)
{
	if (m->mode != MFS_IDMAP_HASHED || r >= m->cap)
		return -MFS_E_CORRUPT;
	if (key == 0)
		return 0; /* untouched row */
	if (store_id(m, r, id, len) < 0)
		return -MFS_E_NOMEM;
	m->row_key[r] = key;
	mfs_idmap_used_set(m, m->used + 1);
	return 0;
}

int mfs_idmap_load_keys(struct mfs_idmap *m, const uint64_t *keys, const uint32_t *seen,
			uint64_t n)
{
	if (n > m->cap || (m->mode == MFS_IDMAP_HASHED && n != m->cap))
		return -MFS_E_CORRUPT;
	if (keys != m->row_key)
		memcpy(m->row_key, keys, n * sizeof *keys);
	if (m->mode == MFS_IDMAP_HASHED) {
		uint64_t used = 0;
		for (uint64_t r = 0; r < n; r++)
			used += m->row_key[r] != 0;
		mfs_idmap_used_set(m, used);
		return 0;
	}
	/* Probe slots a few keys ahead: the index is far bigger than the caches. */
	enum { AHEAD = 8 };
	for (uint64_t r = 0; r < n; r++) {
		if (r + AHEAD < n)
			__builtin_prefetch(&m->slots[m->row_key[r + AHEAD] & m->mask], 1);
		uint64_t key = m->row_key[r];
		if (key == 0)
			return -MFS_E_CORRUPT;
		uint64_t i = key & m->mask;
		while (m->slots[i].key != 0) {
			if (m->slots[i].key == key)
				return -MFS_E_CORRUPT; /* a duplicate key in a model file */
			i = (i + 1) & m->mask;
		}
		m->slots[i].key = key;
		m->slots[i].row = (uint32_t)r;
		m->slots[i].seen = seen ? seen[r] : 0;
	}
	mfs_idmap_used_set(m, n);
	return 0;
}

int mfs_idmap_load_ids(struct mfs_idmap *m, const uint8_t *enc, size_t len, uint64_t n)
{
	if (len < n)
		return -MFS_E_CORRUPT;
	size_t bytes = len - n; /* the strings without their length bytes */
	if (bytes > m->arena_cap) {
		char *na = grow_arena(m, bytes);
		if (!na)
			return -MFS_E_NOMEM;
		m->arena = na;
		m->arena_cap = bytes;
	}
	size_t o = 0, a = 0;
	for (uint64_t r = 0; r < n; r++) {
		if (o >= len || len - o - 1 < enc[o])
			return -MFS_E_CORRUPT;
		uint8_t l = enc[o];
		memcpy(m->arena + a, enc + o + 1, l);
		m->row_off[r] = a;
		m->row_len[r] = l;
		a += l;
		o += 1 + (size_t)l;
	}
	if (o != len)
		return -MFS_E_CORRUPT;
	m->arena_len = a;
	m->arena_dead = 0;
	return 0;
}

int mfs_idmap_put(struct mfs_idmap *m, uint64_t r, uint64_t key, const char *id, size_t len,
		  uint32_t seen)
{
	if (r >= m->cap || key == 0)
		return -MFS_E_CORRUPT;
	if (m->mode == MFS_IDMAP_HASHED) {
		if (m->row_key[r] == 0)
			mfs_idmap_used_set(m, m->used + 1);
	} else {
		if (r >= m->used || mfs_idmap_find(m, key) >= 0)
			return -MFS_E_CORRUPT;
		insert_slot(m, key, r, seen);
	}
	m->row_key[r] = key;
	return store_id(m, r, id, len) < 0 ? -MFS_E_NOMEM : 0;
}
