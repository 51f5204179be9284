/*
 * idmap.h - ID keys -> table rows. Internal.
 *
 * An open-addressing index (linear probing, power-of-two slots, at most half
 * full) from a 64-bit XXH3 key to a row in [0, cap). Rows are handed out in
 * order of first sight. The ID string of every row is kept in an arena so that
 * results can print real IDs. The index and the row arrays are sized at init;
 * only the ID arena grows, bounded by cap * MFS_ID_MAX bytes.
 */
#ifndef MFS_IDMAP_H
#define MFS_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct mfs_idslot {
	uint64_t key; /* 0: empty */
	uint64_t row;
};

struct mfs_idmap {
	uint64_t cap;    /* rows at most */
	uint64_t used;   /* rows in use: 0 .. used-1 */
	uint64_t mask;   /* slots - 1 */
	struct mfs_idslot *slots;
	uint64_t *row_key; /* key of each row */
	uint64_t *row_off; /* offset of each row's ID in arena */
	uint8_t *row_len;  /* length of each row's ID */
	char *arena;
	size_t arena_len, arena_cap;
};

/* A key is never 0 (0 marks an empty slot). */
static inline uint64_t mfs_idmap_key(uint64_t h)
{
	return h ? h : 1;
}

int mfs_idmap_init(struct mfs_idmap *m, uint64_t cap);
void mfs_idmap_free(struct mfs_idmap *m);

/* The row of key, or -1. */
static inline int64_t mfs_idmap_find(const struct mfs_idmap *m, uint64_t key)
{
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

/* Prefetch the first slot key would probe. */
static inline void mfs_idmap_prefetch(const struct mfs_idmap *m, uint64_t key)
{
	__builtin_prefetch(&m->slots[key & m->mask]);
}

/*
 * The row of key, inserting it (with its ID string) when new: *is_new says
 * which. Returns the row, -MFS_E_FULL when the table has no free row, or
 * -MFS_E_NOMEM when the ID arena cannot grow.
 */
int64_t mfs_idmap_get(struct mfs_idmap *m, uint64_t key, const char *id, size_t len, int *is_new);

/* Add a row with a given key and ID (loading a model); rows must come in order. */
int mfs_idmap_append(struct mfs_idmap *m, uint64_t key, const char *id, size_t len);

#endif
