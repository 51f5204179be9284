/*
 * files.c - which files are inputs and in what order (names, Kafka-sink
 * partitions), and the two hash tables that let follow mode handle tens of
 * thousands of files in linear time: files known by (device, inode), so that
 * no file is read twice (through links, or listed again), and the newest file
 * of each partition, which says when an older one is complete.
 */
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "internal.h"

int mfs_name_ignored(const char *n)
{
	size_t l = strlen(n);
	return n[0] == '.' || strstr(n, "_tmp") != NULL || (l >= 4 && strcmp(n + l - 4, ".tmp") == 0);
}

const char *mfs_base_name(const char *p)
{
	const char *b = strrchr(p, '/');
	return b ? b + 1 : p;
}

struct kname {
	int kafka;
	size_t topic_len;
	unsigned long long partition, offset;
};

static int parse_num(const char *p, const char *end, unsigned long long *v)
{
	if (p >= end)
		return 0;
	unsigned long long x = 0;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9' || x > (~0ULL - 9) / 10)
			return 0;
		x = x * 10 + (unsigned)(*p - '0');
	}
	*v = x;
	return 1;
}

/* "topic+partition+start[+end].ext" or "topic-partition-start.ext". */
static struct kname kafka_name(const char *n)
{
	struct kname k = { 0 };
	const char *dot = strchr(n, '.');
	const char *end = dot ? dot : n + strlen(n);
	const char *p1 = memchr(n, '+', (size_t)(end - n));
	if (p1) {
		const char *p2 = memchr(p1 + 1, '+', (size_t)(end - p1 - 1));
		if (p2) {
			const char *p3 = memchr(p2 + 1, '+', (size_t)(end - p2 - 1));
			const char *oend = p3 ? p3 : end;
			unsigned long long e;
			if (parse_num(p1 + 1, p2, &k.partition) && parse_num(p2 + 1, oend, &k.offset) &&
			    (!p3 || parse_num(p3 + 1, end, &e))) {
				k.kafka = 1;
				k.topic_len = (size_t)(p1 - n);
				return k;
			}
		}
	}
	/* topic-partition-start: the last two '-' separated numbers */
	const char *d2 = NULL, *d1 = NULL;
	for (const char *p = end - 1; p >= n; p--) {
		if (*p == '-') {
			if (!d2)
				d2 = p;
			else {
				d1 = p;
				break;
			}
		}
	}
	if (d1 && d2 && d1 > n && parse_num(d1 + 1, d2, &k.partition) &&
	    parse_num(d2 + 1, end, &k.offset)) {
		k.kafka = 1;
		k.topic_len = (size_t)(d1 - n);
	}
	return k;
}

int mfs_kafka_name(const char *base, uint64_t *partition, uint64_t *offset)
{
	struct kname k = kafka_name(base);
	if (k.kafka) {
		*partition = k.partition;
		*offset = k.offset;
	}
	return k.kafka;
}

int mfs_name_cmp(const void *a, const void *b)
{
	const char *na = *(const char *const *)a, *nb = *(const char *const *)b;
	struct kname ka = kafka_name(na), kb = kafka_name(nb);
	if (ka.kafka && kb.kafka) {
		size_t l = ka.topic_len < kb.topic_len ? ka.topic_len : kb.topic_len;
		int c = memcmp(na, nb, l);
		if (c == 0 && ka.topic_len != kb.topic_len)
			c = ka.topic_len < kb.topic_len ? -1 : 1;
		if (c)
			return c;
		if (ka.partition != kb.partition)
			return ka.partition < kb.partition ? -1 : 1;
		if (ka.offset != kb.offset)
			return ka.offset < kb.offset ? -1 : 1;
	}
	return strcmp(na, nb);
}

int mfs_file_cmp(int input_a, const char *x, int input_b, const char *y)
{
	if (input_a != input_b)
		return input_a < input_b ? -1 : 1;
	const char *bx = mfs_base_name(x), *by = mfs_base_name(y);
	size_t dx = (size_t)(bx - x), dy = (size_t)(by - y);
	size_t dl = dx < dy ? dx : dy;
	int c = memcmp(x, y, dl);
	if (c == 0 && dx != dy)
		c = dx < dy ? -1 : 1;
	if (c)
		return c;
	return mfs_name_cmp(&bx, &by);
}

int mfs_same_partition(const char *a, const char *b)
{
	const char *ba = mfs_base_name(a), *bb = mfs_base_name(b);
	if (ba - a != bb - b || memcmp(a, b, (size_t)(ba - a)) != 0)
		return 0;
	struct kname ka = kafka_name(ba), kb = kafka_name(bb);
	if (ka.kafka != kb.kafka)
		return 0;
	if (!ka.kafka)
		return 1;
	return ka.topic_len == kb.topic_len && memcmp(ba, bb, ka.topic_len) == 0 &&
	       ka.partition == kb.partition;
}

/* --- files by (device, inode) ------------------------------------------------ */

static uint64_t mix2(uint64_t a, uint64_t b)
{
	uint64_t h = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL);
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ULL;
	return h ^ (h >> 29);
}

struct mfs_iset_ent *mfs_iset_find(const struct mfs_iset *s, uint64_t dev, uint64_t ino)
{
	if (!s->cap)
		return NULL;
	for (size_t i = mix2(dev, ino) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
		struct mfs_iset_ent *e = &s->t[i];
		if (!e->path)
			return NULL;
		if (e->dev == dev && e->ino == ino)
			return e;
	}
}

static void iset_insert(struct mfs_iset_ent *t, size_t cap, struct mfs_iset_ent x)
{
	size_t i = mix2(x.dev, x.ino) & (cap - 1);
	while (t[i].path)
		i = (i + 1) & (cap - 1);
	t[i] = x;
}

int mfs_iset_put(struct mfs_iset *s, uint64_t dev, uint64_t ino, const char *path)
{
	struct mfs_iset_ent *e = mfs_iset_find(s, dev, ino);
	if (e) {
		e->path = path;
		return 0;
	}
	if (2 * (s->n + 1) > s->cap) {
		size_t nc = s->cap ? 2 * s->cap : 64;
		struct mfs_iset_ent *nt = calloc(nc, sizeof *nt);
		if (!nt)
			return -MFS_E_NOMEM;
		for (size_t i = 0; i < s->cap; i++)
			if (s->t[i].path)
				iset_insert(nt, nc, s->t[i]);
		free(s->t);
		s->t = nt;
		s->cap = nc;
	}
	iset_insert(s->t, s->cap, (struct mfs_iset_ent){ dev, ino, path });
	s->n++;
	return 0;
}

void mfs_iset_clear(struct mfs_iset *s)
{
	if (s->t)
		memset(s->t, 0, s->cap * sizeof *s->t);
	s->n = 0;
}

void mfs_iset_free(struct mfs_iset *s)
{
	free(s->t);
	memset(s, 0, sizeof *s);
}

/* --- the newest file of each partition ----------------------------------------- */

static uint64_t partition_hash(int input, const char *path)
{
	const char *b = mfs_base_name(path);
	uint64_t h = mfs_hash_id(path, (size_t)(b - path), (uint64_t)input);
	struct kname k = kafka_name(b);
	if (k.kafka)
		h = mix2(h ^ mfs_hash_id(b, k.topic_len, 1), k.partition + 1);
	return h ? h : 1;
}

static struct mfs_pmap_ent *pmap_find(const struct mfs_pmap *m, uint64_t h, int input,
				      const char *path)
{
	if (!m->cap)
		return NULL;
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct mfs_pmap_ent *e = &m->t[i];
		if (!e->path)
			return e;
		if (e->h == h && e->input == input && mfs_same_partition(e->path, path))
			return e;
	}
}

int mfs_pmap_offer(struct mfs_pmap *m, int input, const char *path)
{
	if (2 * (m->n + 1) > m->cap) {
		size_t nc = m->cap ? 2 * m->cap : 64;
		struct mfs_pmap_ent *nt = calloc(nc, sizeof *nt);
		if (!nt)
			return -MFS_E_NOMEM;
		for (size_t i = 0; i < m->cap; i++) {
			if (!m->t[i].path)
				continue;
			size_t j = m->t[i].h & (nc - 1);
			while (nt[j].path)
				j = (j + 1) & (nc - 1);
			nt[j] = m->t[i];
		}
		free(m->t);
		m->t = nt;
		m->cap = nc;
	}
	uint64_t h = partition_hash(input, path);
	struct mfs_pmap_ent *e = pmap_find(m, h, input, path);
	if (!e->path) {
		*e = (struct mfs_pmap_ent){ h, input, path };
		m->n++;
	} else if (mfs_file_cmp(input, path, e->input, e->path) > 0) {
		e->path = path;
	}
	return 0;
}

const char *mfs_pmap_newest(const struct mfs_pmap *m, int input, const char *path)
{
	struct mfs_pmap_ent *e = pmap_find(m, partition_hash(input, path), input, path);
	return e ? e->path : NULL;
}

void mfs_pmap_free(struct mfs_pmap *m)
{
	free(m->t);
	memset(m, 0, sizeof *m);
}
