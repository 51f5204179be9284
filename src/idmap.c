/* idmap.c - open-addressing index from ID keys to rows; ID strings in an arena. */
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "internal.h"

int mfs_idmap_init(struct mfs_idmap *m, uint64_t cap)
{
	memset(m, 0, sizeof *m);
	if (cap == 0 || cap > (1ULL << 40))
		return -MFS_E_INVAL;
	uint64_t slots = 16;
	while (slots < cap * 2)
		slots <<= 1;
	m->cap = cap;
	m->mask = slots - 1;
	/* calloc: pages of the index and row arrays stay untouched (and cost no
	 * RSS) until IDs arrive. */
	m->slots = calloc(slots, sizeof *m->slots);
	m->row_key = calloc(cap, sizeof *m->row_key);
	m->row_off = calloc(cap, sizeof *m->row_off);
	m->row_len = calloc(cap, sizeof *m->row_len);
	m->arena_cap = 4096;
	m->arena = malloc(m->arena_cap);
	if (!m->slots || !m->row_key || !m->row_off || !m->row_len || !m->arena) {
		mfs_idmap_free(m);
		return -MFS_E_NOMEM;
	}
	return 0;
}

void mfs_idmap_free(struct mfs_idmap *m)
{
	free(m->slots);
	free(m->row_key);
	free(m->row_off);
	free(m->row_len);
	free(m->arena);
	memset(m, 0, sizeof *m);
}

static int store_id(struct mfs_idmap *m, uint64_t row, const char *id, size_t len)
{
	if (len > MFS_ID_MAX)
		len = MFS_ID_MAX;
	if (m->arena_len + len > m->arena_cap) {
		size_t ncap = m->arena_cap * 2;
		while (ncap < m->arena_len + len)
			ncap *= 2;
		char *na = realloc(m->arena, ncap);
		if (!na)
			return -MFS_E_NOMEM;
		m->arena = na;
		m->arena_cap = ncap;
	}
	memcpy(m->arena + m->arena_len, id, len);
	m->row_off[row] = m->arena_len;
	m->row_len[row] = (uint8_t)len;
	m->arena_len += len;
	return 0;
}

int64_t mfs_idmap_get(struct mfs_idmap *m, uint64_t key, const char *id, size_t len, int *is_new)
{
	uint64_t i = key & m->mask;
	*is_new = 0;
	for (;;) {
		struct mfs_idslot *s = &m->slots[i];
		if (s->key == key)
			return (int64_t)s->row;
		if (s->key == 0)
			break;
		i = (i + 1) & m->mask;
	}
	if (m->used >= m->cap)
		return -MFS_E_FULL;
	uint64_t row = m->used;
	if (store_id(m, row, id, len) < 0)
		return -MFS_E_NOMEM;
	m->slots[i].key = key;
	m->slots[i].row = row;
	m->row_key[row] = key;
	m->used++;
	*is_new = 1;
	return (int64_t)row;
}

int mfs_idmap_append(struct mfs_idmap *m, uint64_t key, const char *id, size_t len)
{
	int is_new;
	int64_t r = mfs_idmap_get(m, key, id, len, &is_new);
	if (r < 0)
		return (int)r;
	return is_new ? 0 : -MFS_E_CORRUPT; /* a duplicate key in a model file */
}
