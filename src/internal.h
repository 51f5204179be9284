/* internal.h - helpers shared by the library's stages. Not installed. */
#ifndef MFS_INTERNAL_H
#define MFS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "mfstream.h"

#if defined(__GNUC__)
#define MFS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define MFS_LIKELY(x) __builtin_expect(!!(x), 1)
#define MFS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define MFS_PRINTF(a, b)
#define MFS_LIKELY(x) (x)
#define MFS_UNLIKELY(x) (x)
#endif

/*
 * Fill a diag (if d is not NULL): code, os_errno, path (may be NULL), line,
 * offset and a printf-style reason. Returns -code, so that callers can write
 * `return mfs_diag_set(d, MFS_E_IO, errno, path, 0, 0, "cannot open: %s", ...)`.
 */
int mfs_diag_set(mfs_diag *d, int code, int os_errno, const char *path, uint64_t line,
		 uint64_t offset, const char *fmt, ...) MFS_PRINTF(7, 8);

/* A diag (code, where, line, printf-style reason) handed to fn; nothing when
 * fn is NULL. The one way a stage reports through a caller's function. */
void mfs_diag_report(mfs_bad_record_fn fn, void *ctx, int code, const char *where, uint64_t line,
		     const char *fmt, ...) MFS_PRINTF(6, 7);

/* --- hash.c: the only file that includes xxhash.h -------------------- */
/* mfs_hash_id is public (mfstream.h) */
uint64_t mfs_checksum(const void *data, size_t len);

/* --- rng.c: deterministic randomness (seed, next, uniform, normal and
 * below are public: mfstream.h) ---------------------------------------- */
/* n values of a bounded near-normal with standard deviation std (see rng.c) */
void mfs_rng_normal_fill(struct mfs_rng *r, float *out, size_t n, float std);
uint64_t mfs_splitmix64(uint64_t *state);

/* --- little-endian fields of the file formats and position blobs ----- */
static inline void mfs_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void mfs_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t mfs_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t mfs_get64(const uint8_t *p)
{
	return (uint64_t)mfs_get32(p) | (uint64_t)mfs_get32(p + 4) << 32;
}

/* --- aligned allocation ----------------------------------------------- */
void *mfs_alloc_aligned(size_t size); /* 64-byte aligned, zeroed; free with free() */
/*
 * A large zeroed table: an anonymous mapping (pages cost nothing until
 * touched) asked to be backed by transparent huge pages, so that random
 * accesses over gigabytes do not miss the TLB every time. NULL on failure;
 * free with mfs_free_huge(p, size).
 */
void *mfs_alloc_huge(size_t size);
void mfs_free_huge(void *p, size_t size);

/* --- pass 1 on threads (parallel.c) ------------------------------------ */
/*
 * Events until the model's next pass-1 window boundary on its clock (the
 * events it has resolved), when it learns pass 1 on several threads; 0 when
 * it learns on one (any cut gives the same model then). mfs_learner hands
 * mfs_model_learn whole windows, so a resumed run learns what an
 * uninterrupted one does.
 */
size_t mfs_model_window_left(const mfs_model *m);

/* The events of one such window (0: one thread). */
size_t mfs_model_window_size(const mfs_model *m);

/* mfs_source_set_align counted from phase events before the open (the
 * learner's windows, when its model's clock is inside one). */
int mfs_source_set_align_phase(mfs_source *s, uint64_t every, uint64_t phase);

#endif
