/*
 * modelfile_internal.h - what the model file's three parts share
 * (modelfile.c: the layout and saving; modelfile_load.c: loading;
 * modelfile_delta.c: deltas): the layout's constants, a section, an open
 * file (struct loader) and the calls that cross them. Internal.
 */
#ifndef MFS_MODELFILE_INTERNAL_H
#define MFS_MODELFILE_INTERNAL_H

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"
#include "zstd_stage.h"

#define MAGIC "MFSMODL"
#define FORMAT_VERSION 1u       /* whole models */
#define FORMAT_VERSION_DELTA 2u /* deltas (the same layout, header kind 1) */
#define HEADER_SIZE 256u
#define ENTRY_SIZE 48u
#define MAX_SECTIONS 32u

enum section_tag {
	SEC_USER_KEYS = 1,
	SEC_USER_IDS = 2,
	SEC_USER_BIAS = 3,
	SEC_USER_ROWS = 4,
	SEC_USER_ACC = 5,
	SEC_USER_BACC = 6,
	SEC_USER_SEEN = 7,
	SEC_USER_SKETCH = 8,
	SEC_ITEM_KEYS = 11,
	SEC_ITEM_IDS = 12,
	SEC_ITEM_BIAS = 13,
	SEC_ITEM_ROWS = 14,
	SEC_ITEM_ACC = 15,
	SEC_ITEM_BACC = 16,
	SEC_ITEM_SEEN = 17,
	SEC_ITEM_SKETCH = 18,
	SEC_POSITION = 21,
	SEC_USER_COUNT = 10, /* u32 per row: events learned (frequency-dependent L2) */
	SEC_ITEM_COUNT = 20,
	SEC_FREQ = 23,       /* f32 freq_alpha, freq_alpha_bias (absent: both 1, plain L2) */
	SEC_HISTORY = 24,    /* u32 items remembered per user row (absent: 0, no history) */
	SEC_USER_HIST = 25,  /* per user row: its ring of u64 item keys (SEC_HISTORY of them) */
	SEC_USER_HPOS = 26,  /* per user row: u32 the ring's next slot | filled slots << 16 */
	SEC_IMPLICIT = 27,   /* implicit feedback: u32 loss, u32 negatives, f32 neg_beta, u32 0
				(absent: an explicit model; the sampler is rebuilt from the item counts) */
	/* deltas */
	SEC_USER_DIRTY = 9,  /* u32 row numbers, ascending: the rows the other sections hold */
	SEC_ITEM_DIRTY = 19,
	SEC_DELTA = 22,      /* base events, base state ID, state ID (u64 each) */
};

/* Raw sections at least this long start at a page boundary, so that a loader can map them. */
#define MAP_ALIGN 4096u
#define MAP_MIN (64u << 10)

#define SEC_FLAG_ZSTD 1u

/*
 * Whether bytes match their stored checksum. The fuzz build
 * (-DMFS_FUZZ_IGNORE_CHECKSUMS, tests/fuzz only) takes every checksum as a
 * match, so that mutated files reach the section parsers instead of stopping
 * at the first checksum; never defined in a library build.
 */
#ifdef MFS_FUZZ_IGNORE_CHECKSUMS
#define SUM_OK(p, n, want) ((void)(p), (void)(n), (void)(want), 1)
#else
#define SUM_OK(p, n, want) (mfs_checksum((p), (n)) == (want))
#endif

struct section {
	uint32_t tag, flags;
	uint64_t offset, stored_len, raw_len, checksum;
	const void *data; /* raw bytes to write */
	void *owned;      /* malloc'd data to free */
};

/* --- little-endian helpers (the format is LE; so are x86-64 and aarch64 Linux) --- */
static inline void putf(uint8_t *p, float f)
{
	uint32_t v;
	memcpy(&v, &f, 4);
	mfs_put32(p, v);
}
static inline float getf(const uint8_t *p)
{
	uint32_t v = mfs_get32(p);
	float f;
	memcpy(&f, &v, 4);
	return f;
}
static inline void putd(uint8_t *p, double f)
{
	uint64_t v;
	memcpy(&v, &f, 8);
	mfs_put64(p, v);
}
static inline double getd(const uint8_t *p)
{
	uint64_t v = mfs_get64(p);
	double f;
	memcpy(&f, &v, 8);
	return f;
}

/*
 * The header of m's state. kind 0: a whole model (version 1); 1: a delta
 * (version 2, which older builds refuse rather than misread).
 */
/*
 * An open model file: the whole file mapped read-only (sections are read in
 * place: no copy), its header and section table checked.
 */
struct loader {
	int fd;
	const char *path;
	uint64_t size;
	const uint8_t *base; /* the file, mapped */
	const uint8_t *h;    /* header */
	const uint8_t *table;
	uint32_t ns;
	int copy; /* MFS_LOAD_COPY: base is an anonymous copy, tables are never mapped */
	int borrowed; /* base is the caller's buffer (loader_open_mem): never unmapped */
	mfs_diag *diag;
};

void mfs_mf_encode_header(const mfs_model *m, uint32_t n_sections, uint32_t kind, uint8_t *h);
int mfs_mf_loader_open_mem(struct loader *L, const void *buf, size_t len, const char *name,
			   mfs_diag *diag);
int mfs_mf_decode_state(struct loader *L, mfs_model *m);
int mfs_mf_get_section(struct loader *L, uint32_t tag, uint64_t want, int required,
		       const void **data, void **owned);
int mfs_mf_hpos_ok(const struct mfs_table *s, uint32_t w);
int mfs_mf_load_history_len(struct loader *L, uint32_t *len);
int mfs_mf_load_position(struct loader *L, mfs_model *m);
void mfs_mf_loader_close(struct loader *L);
int mfs_mf_loader_open(struct loader *L, const char *path, unsigned flags, mfs_diag *diag);
int mfs_mf_section_len(struct loader *L, uint32_t tag, uint64_t *raw);

#endif
