/*
 * files.h - discovery of input files: which names are inputs, their order,
 * Kafka-sink partitions, and the sets that keep follow mode linear (files
 * known by device and inode; the newest file of each partition). Internal.
 */
#ifndef MFS_FILES_H
#define MFS_FILES_H

#include <stddef.h>
#include <stdint.h>

/* Files a Kafka sink has not committed yet, and hidden files. */
int mfs_name_ignored(const char *name);

/* The part of a path after its last '/'. */
const char *mfs_base_name(const char *path);

/*
 * Order of names inside one directory: Kafka-sink names
 * ("topic+partition+start[+end].ext", "topic-partition-start.ext") by topic,
 * partition and numeric offset, other names (and ties) by strcmp. qsort-style
 * over const char * elements.
 */
int mfs_name_cmp(const void *a, const void *b);

/* Order of files: input index, then directory, then name as above. */
int mfs_file_cmp(int input_a, const char *path_a, int input_b, const char *path_b);

/* Same directory and same partition (Kafka names), or both not Kafka names. */
int mfs_same_partition(const char *a, const char *b);

/* Kafka-sink name: 1 and partition and start offset, or 0. */
int mfs_kafka_name(const char *base, uint64_t *partition, uint64_t *offset);

/*
 * A set of files by (device, inode), each with the path it was first seen at
 * (borrowed: it must outlive the entry). Open addressing, grows at half load.
 */
struct mfs_iset_ent {
	uint64_t dev, ino;
	const char *path; /* NULL: empty slot */
};
struct mfs_iset {
	struct mfs_iset_ent *t;
	size_t cap, n;
};
struct mfs_iset_ent *mfs_iset_find(const struct mfs_iset *s, uint64_t dev, uint64_t ino);
/* Insert, or update the path of, (dev, ino). 0 or -MFS_E_NOMEM. */
int mfs_iset_put(struct mfs_iset *s, uint64_t dev, uint64_t ino, const char *path);
void mfs_iset_clear(struct mfs_iset *s);
void mfs_iset_free(struct mfs_iset *s);

/*
 * The newest file of each (input, partition): mfs_pmap_offer keeps the one
 * that sorts last, mfs_pmap_newest returns it (NULL when none). Paths are
 * borrowed as above.
 */
struct mfs_pmap_ent {
	uint64_t h;
	int input;
	const char *path; /* NULL: empty slot */
};
struct mfs_pmap {
	struct mfs_pmap_ent *t;
	size_t cap, n;
};
int mfs_pmap_offer(struct mfs_pmap *m, int input, const char *path);
const char *mfs_pmap_newest(const struct mfs_pmap *m, int input, const char *path);
void mfs_pmap_free(struct mfs_pmap *m);

#endif
