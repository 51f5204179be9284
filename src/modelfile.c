/*
 * modelfile.c - the model file (also the checkpoint format).
 *
 * Layout (little-endian):
 *   header      256 bytes: magic "MFSMODL\0", version, sizes, counters, learning
 *               settings, RNG state; an XXH3 checksum of its first 248 bytes
 *               in its last 8 bytes
 *   table       n_sections entries of 48 bytes, then an XXH3 checksum of the table
 *   sections    each starting at a 64-byte aligned offset (raw sections of 64 KiB
 *               or more at a 4096-byte one, so that a loader can map them: files
 *               written before have 64-byte offsets and are copied); stored raw
 *               or as one zstd frame; each entry carries the XXH3 of the stored bytes
 * Sections added later (the frequency alphas, the users' histories) are
 * optional: files without them load as models without that feature, and
 * builds that predate them ignore them.
 * Version 1 is a whole model. Version 2 (header kind 1 at byte 240) is a
 * delta: the rows changed since the checkpoint it names (SEC_DELTA: that
 * state's event count and ID) with their row numbers, and the whole header
 * state. A state's ID is the XXH3 of its header's first 240 bytes written as
 * a version-1 header with no sections: full file and delta of one state agree.
 * Loading maps big raw sections copy-on-write (MAP_PRIVATE) over the tables,
 * so it reads no more than the checksums need; a learner copies them into
 * anonymous memory before its first step (mfs_model_unmap). MFS_LOAD_COPY
 * (serving) reads the file into anonymous memory instead and maps nothing:
 * a file truncated or rewritten in place later cannot fault the model.
 * Written to a temporary file beside the target, fsync'd, renamed, and the
 * directory fsync'd: a reader sees the old file or the new one, never a torn one.
 */
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
static void putf(uint8_t *p, float f)
{
	uint32_t v;
	memcpy(&v, &f, 4);
	mfs_put32(p, v);
}
static float getf(const uint8_t *p)
{
	uint32_t v = mfs_get32(p);
	float f;
	memcpy(&f, &v, 4);
	return f;
}
static void putd(uint8_t *p, double f)
{
	uint64_t v;
	memcpy(&v, &f, 8);
	mfs_put64(p, v);
}
static double getd(const uint8_t *p)
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
static void encode_header(const mfs_model *m, uint32_t n_sections, uint32_t kind, uint8_t *h)
{
	memset(h, 0, HEADER_SIZE);
	memcpy(h, MAGIC, 8);
	mfs_put32(h + 8, kind ? FORMAT_VERSION_DELTA : FORMAT_VERSION);
	mfs_put32(h + 12, HEADER_SIZE);
	mfs_put32(h + 16, m->cfg.dim);
	mfs_put32(h + 20, m->stride);
	mfs_put32(h + 24, (uint32_t)m->cfg.optimizer);
	mfs_put32(h + 28, (uint32_t)m->cfg.link);
	mfs_put64(h + 32, m->cfg.max_users);
	mfs_put64(h + 40, m->cfg.max_items);
	mfs_put64(h + 48, table_rows(&m->user));
	mfs_put64(h + 56, table_rows(&m->item));
	mfs_put64(h + 64, m->hash_seed);
	mfs_put64(h + 72, m->cfg.seed);
	mfs_put64(h + 80, m->events);
	mfs_put64(h + 88, m->mu_count);
	putd(h + 96, m->mu_sum);
	putf(h + 104, m->cfg.lr);
	putf(h + 108, m->cfg.lr_bias);
	putf(h + 112, m->cfg.l2);
	putf(h + 116, m->cfg.l2_bias);
	putf(h + 120, m->cfg.init_std);
	putf(h + 124, m->cfg.lo);
	putf(h + 128, m->cfg.hi);
	mfs_put32(h + 132, n_sections);
	for (int i = 0; i < 4; i++)
		mfs_put64(h + 136 + 8 * i, m->rng.s[i]);
	mfs_put32(h + 168, (uint32_t)m->cfg.ids);
	mfs_put32(h + 172, (uint32_t)m->cfg.evict);
	mfs_put32(h + 176, m->cfg.min_count);
	mfs_put32(h + 180, (uint32_t)m->tick);
	mfs_put32(h + 244, (uint32_t)(m->tick >> 32)); /* 0 in files before the 64-bit clock */
	mfs_put64(h + 184, m->user.ids.hand);
	mfs_put64(h + 192, m->item.ids.hand);
	mfs_put64(h + 200, m->user.ids.evictions);
	mfs_put64(h + 208, m->item.ids.evictions);
	mfs_put64(h + 216, m->user.ids.sketch_adds);
	mfs_put64(h + 224, m->item.ids.sketch_adds);
	putf(h + 232, m->cfg.range_margin);
	mfs_put32(h + 236, m->cfg.user_hashes);
	mfs_put32(h + 240, kind);
	mfs_put64(h + 248, mfs_checksum(h, 248));
}

uint64_t mfs_model_state_id(const mfs_model *m)
{
	uint8_t h[HEADER_SIZE];
	encode_header(m, 0, 0, h);
	return mfs_checksum(h, 240) | 1; /* never 0 */
}

/*
 * The ID strings of rows (all n rows, or the n rows listed in idx): for each
 * a length byte and the bytes (0 for unused rows).
 */
static int encode_ids(const struct mfs_idmap *ids, const uint32_t *idx, uint64_t n, void **out,
		      size_t *len)
{
	size_t total = n;
	for (size_t k = 0; k < n; k++)
		total += ids->row_len[idx ? idx[k] : k];
	uint8_t *b = malloc(total ? total : 1);
	if (!b)
		return -MFS_E_NOMEM;
	size_t o = 0;
	for (size_t k = 0; k < n; k++) {
		uint64_t r = idx ? idx[k] : k;
		b[o++] = ids->row_len[r];
		memcpy(b + o, ids->arena + ids->row_off[r], ids->row_len[r]);
		o += ids->row_len[r];
	}
	*out = b;
	*len = total;
	return 0;
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		off += (uint64_t)w;
		len -= (size_t)w;
	}
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", path);
	const char *dir = dirname(buf);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* A section of n rows of elem bytes each: the whole table, or the rows listed in idx (copied). */
static int rows_section(struct section *sec, uint32_t tag, const void *data, size_t elem,
			const uint32_t *idx, uint64_t n)
{
	*sec = (struct section){ .tag = tag, .data = data, .raw_len = n * elem };
	if (!idx)
		return 0;
	uint8_t *b = malloc(n ? n * elem : 1);
	if (!b)
		return -MFS_E_NOMEM;
	for (uint64_t k = 0; k < n; k++)
		memcpy(b + k * elem, (const uint8_t *)data + (size_t)idx[k] * elem, elem);
	sec->data = b;
	sec->owned = b;
	return 0;
}

/* The dirty rows of a table below n, ascending (malloc'd; *nd of them). */
static int dirty_rows(const struct mfs_table *s, uint64_t n, uint32_t **out, uint64_t *nd)
{
	uint64_t words = (n + 63) / 64, cnt = 0;
	for (uint64_t w = 0; w < words; w++)
		cnt += (uint64_t)__builtin_popcountll(s->dirty[w]);
	uint32_t *idx = malloc(cnt ? cnt * 4 : 4);
	if (!idx)
		return -MFS_E_NOMEM;
	uint64_t k = 0;
	for (uint64_t w = 0; w < words; w++) {
		for (uint64_t b = s->dirty[w]; b; b &= b - 1) {
			uint64_t r = w * 64 + (uint64_t)__builtin_ctzll(b);
			if (r < n)
				idx[k++] = (uint32_t)r;
		}
	}
	*out = idx;
	*nd = k;
	return 0;
}

/*
 * The sections of m: every row of each table, or (delta) only its dirty rows
 * with their row numbers. Appends to sec[*ns].
 */
static int gather(const mfs_model *m, int delta, struct section *sec, uint32_t *ns)
{
	const struct mfs_table *sides[2] = { &m->user, &m->item };
	int rc;
	for (int sd = 0; sd < 2; sd++) {
		const struct mfs_table *s = sides[sd];
		uint64_t n = table_rows(s);
		uint32_t t0 = sd == 0 ? SEC_USER_KEYS : SEC_ITEM_KEYS;
		uint32_t *idx = NULL;
		if (delta) {
			rc = dirty_rows(s, n, &idx, &n);
			if (rc < 0)
				return rc;
			sec[(*ns)++] = (struct section){ .tag = sd == 0 ? SEC_USER_DIRTY : SEC_ITEM_DIRTY,
							 .data = idx, .owned = idx, .raw_len = n * 4 };
		}
		if ((rc = rows_section(&sec[(*ns)++], t0, s->ids.row_key, 8, idx, n)) < 0)
			return rc;
		void *ids;
		size_t idlen;
		if ((rc = encode_ids(&s->ids, idx, n, &ids, &idlen)) < 0)
			return rc;
		sec[(*ns)++] = (struct section){ .tag = t0 + 1, .data = ids, .owned = ids, .raw_len = idlen };
		if ((rc = rows_section(&sec[(*ns)++], t0 + 2, s->bias, 4, idx, n)) < 0 ||
		    (rc = rows_section(&sec[(*ns)++], t0 + 3, s->rows, (size_t)m->stride * 4, idx, n)) < 0)
			return rc;
		if (s->acc) {
			if ((rc = rows_section(&sec[(*ns)++], t0 + 4, s->acc, 4, idx, n)) < 0 ||
			    (rc = rows_section(&sec[(*ns)++], t0 + 5, s->bacc, 4, idx, n)) < 0)
				return rc;
		}
		if (s->count && (rc = rows_section(&sec[(*ns)++], t0 + 9, s->count, 4, idx, n)) < 0)
			return rc;
		if (s->hist && ((rc = rows_section(&sec[(*ns)++], SEC_USER_HIST, s->hist,
						   (size_t)s->hist_len * 8, idx, n)) < 0 ||
				(rc = rows_section(&sec[(*ns)++], SEC_USER_HPOS, s->hpos, 4, idx, n)) < 0))
			return rc;
		if (s->ids.mode == MFS_IDMAP_EXACT) {
			uint32_t *seen = malloc(n ? n * 4 : 1);
			if (!seen)
				return -MFS_E_NOMEM;
			for (uint64_t k = 0; k < n; k++)
				seen[k] = mfs_idmap_seen(&s->ids, idx ? idx[k] : k);
			sec[(*ns)++] = (struct section){ .tag = t0 + 6, .data = seen, .owned = seen,
							 .raw_len = n * 4 };
		}
		/* The admission sketch is not per row: a delta carries all of it
		 * (at most 4 bytes per row of capacity). */
		if (s->ids.sketch)
			sec[(*ns)++] = (struct section){ .tag = t0 + 7, .data = s->ids.sketch,
							 .raw_len = mfs_idmap_sketch_bytes(&s->ids) };
	}
	return 0;
}

static int save_file(const mfs_model *m, const char *path, const mfs_save_opts *opts, int delta,
		     mfs_diag *diag)
{
	if (!m || !path || !*path)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, path, 0, 0, "no model or path");
	if (delta && !m->ck_valid)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, path, 0, 0,
				    "a delta needs a checkpoint to apply on (mfs_checkpoint_mark)");
	int level = opts ? opts->compress : 0;
	struct section sec[MAX_SECTIONS];
	uint32_t ns = 0;
	int rc = 0, fd = -1;
	char tmp[4096];
	tmp[0] = 0;
	memset(sec, 0, sizeof sec);
	uint8_t dsec[24];

	rc = gather(m, delta, sec, &ns);
	if (rc < 0)
		goto out;
	if (delta) {
		mfs_put64(dsec, m->ck_events);
		mfs_put64(dsec + 8, m->ck_id);
		mfs_put64(dsec + 16, mfs_model_state_id(m));
		sec[ns++] = (struct section){ .tag = SEC_DELTA, .data = dsec, .raw_len = sizeof dsec };
	}
	uint8_t hsec[4];
	if (m->user.hist_len) {
		mfs_put32(hsec, m->user.hist_len);
		sec[ns++] = (struct section){ .tag = SEC_HISTORY, .data = hsec, .raw_len = sizeof hsec };
	}
	uint8_t fsec[8];
	if (m->cfg.freq_alpha != 1.0f || m->cfg.freq_alpha_bias != 1.0f) {
		putf(fsec, m->cfg.freq_alpha);
		putf(fsec + 4, m->cfg.freq_alpha_bias);
		sec[ns++] = (struct section){ .tag = SEC_FREQ, .data = fsec, .raw_len = sizeof fsec };
	}
	uint8_t isec[16];
	if (m->imp.on && !delta) {
		mfs_put32(isec, (uint32_t)m->imp.cfg.loss);
		mfs_put32(isec + 4, m->imp.cfg.negatives);
		putf(isec + 8, m->imp.cfg.neg_beta);
		mfs_put32(isec + 12, 0);
		sec[ns++] = (struct section){ .tag = SEC_IMPLICIT, .data = isec, .raw_len = sizeof isec };
	}
	const void *pos = opts && opts->position ? opts->position : m->position;
	size_t pos_len = opts && opts->position ? opts->position_len : m->position_len;
	if (pos && pos_len)
		sec[ns++] = (struct section){ .tag = SEC_POSITION, .data = pos, .raw_len = pos_len };

	if (level > 0) {
		for (uint32_t i = 0; i < ns; i++) {
			if (sec[i].raw_len < 256)
				continue;
			void *c;
			size_t clen;
			rc = mfs_zstd_compress(sec[i].data, sec[i].raw_len, level, &c, &clen);
			if (rc < 0)
				goto out;
			free(sec[i].owned);
			sec[i].data = c;
			sec[i].owned = c;
			sec[i].stored_len = clen;
			sec[i].flags |= SEC_FLAG_ZSTD;
		}
	}
	uint64_t off = HEADER_SIZE + (uint64_t)ns * ENTRY_SIZE + 8;
	for (uint32_t i = 0; i < ns; i++) {
		if (!(sec[i].flags & SEC_FLAG_ZSTD))
			sec[i].stored_len = sec[i].raw_len;
		uint64_t align = !(sec[i].flags & SEC_FLAG_ZSTD) && sec[i].raw_len >= MAP_MIN ? MAP_ALIGN : 64;
		off = (off + align - 1) & ~(align - 1);
		sec[i].offset = off;
		sec[i].checksum = mfs_checksum(sec[i].data, sec[i].stored_len);
		off += sec[i].stored_len;
	}

	uint8_t head[HEADER_SIZE + MAX_SECTIONS * ENTRY_SIZE + 8];
	encode_header(m, ns, delta ? 1 : 0, head);
	uint8_t *t = head + HEADER_SIZE;
	memset(t, 0, (size_t)ns * ENTRY_SIZE);
	for (uint32_t i = 0; i < ns; i++) {
		uint8_t *e = t + (size_t)i * ENTRY_SIZE;
		mfs_put32(e, sec[i].tag);
		mfs_put32(e + 4, sec[i].flags);
		mfs_put64(e + 8, sec[i].offset);
		mfs_put64(e + 16, sec[i].stored_len);
		mfs_put64(e + 24, sec[i].raw_len);
		mfs_put64(e + 32, sec[i].checksum);
	}
	mfs_put64(t + (size_t)ns * ENTRY_SIZE, mfs_checksum(t, (size_t)ns * ENTRY_SIZE));

	/* Temporary name in the same directory: ".<base>.tmp.XXXXXX". */
	{
		char pb[4096], db[4096];
		snprintf(pb, sizeof pb, "%s", path);
		snprintf(db, sizeof db, "%s", path);
		int n = snprintf(tmp, sizeof tmp, "%s/.%s.tmp.XXXXXX", dirname(db), basename(pb));
		if (n < 0 || (size_t)n >= sizeof tmp) {
			tmp[0] = 0;
			rc = mfs_diag_set(diag, MFS_E_INVAL, 0, path, 0, 0, "path too long");
			goto out;
		}
	}
	fd = mkstemp(tmp);
	if (fd >= 0)
		fchmod(fd, 0644); /* mkstemp makes 0600; models are read by other services */
	if (fd < 0) {
		int e = errno;
		tmp[0] = 0;
		rc = mfs_diag_set(diag, MFS_E_IO, e, path, 0, 0, "cannot create a temporary file: %s",
				  strerror(e));
		goto out;
	}
	int w = write_all(fd, head, HEADER_SIZE + (size_t)ns * ENTRY_SIZE + 8, 0);
	for (uint32_t i = 0; i < ns && w == 0; i++)
		w = write_all(fd, sec[i].data, sec[i].stored_len, sec[i].offset);
	if (w == 0 && ftruncate(fd, (off_t)off) < 0)
		w = -errno;
	if (w == 0 && fsync(fd) < 0)
		w = -errno;
	if (w < 0) {
		rc = mfs_diag_set(diag, MFS_E_IO, -w, path, 0, 0, "cannot write: %s", strerror(-w));
		goto out;
	}
	if (close(fd) < 0) {
		int e = errno;
		fd = -1;
		rc = mfs_diag_set(diag, MFS_E_IO, e, path, 0, 0, "cannot write: %s", strerror(e));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		int e = errno;
		rc = mfs_diag_set(diag, MFS_E_IO, e, path, 0, 0, "cannot rename into place: %s",
				  strerror(e));
		goto out;
	}
	tmp[0] = 0;
	int d = fsync_dir_of(path);
	if (d < 0)
		rc = mfs_diag_set(diag, MFS_E_IO, -d, path, 0, 0, "cannot fsync its directory: %s",
				  strerror(-d));
out:
	if (fd >= 0)
		close(fd);
	if (tmp[0])
		unlink(tmp);
	for (uint32_t i = 0; i < ns; i++)
		free(sec[i].owned);
	if (rc == -MFS_E_NOMEM && diag && diag->code == 0)
		mfs_diag_set(diag, MFS_E_NOMEM, 0, path, 0, 0, "out of memory");
	return rc;
}

MFS_API int mfs_model_save(const mfs_model *m, const char *path, const mfs_save_opts *opts,
			   mfs_diag *diag)
{
	return save_file(m, path, opts, 0, diag);
}

int mfs_model_save_delta(const mfs_model *m, const char *path, const mfs_save_opts *opts,
			 mfs_diag *diag)
{
	return save_file(m, path, opts, 1, diag);
}

/* --- load ---------------------------------------------------------------- */

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

static void loader_close(struct loader *L)
{
	if (L->base && !L->borrowed)
		munmap((void *)L->base, L->size);
	if (L->fd >= 0)
		close(L->fd);
	L->base = NULL;
	L->fd = -1;
}

/*
 * Every entry of the section table, before any section is touched (a valid
 * checksum proves nothing about a crafted file): known flags, one entry per
 * tag, a 64-byte aligned offset past the table (so that every raw section is
 * aligned for the u32/u64/float loads of its parser), the stored bytes inside
 * the file and overlapping no other section, stored == raw for a raw section,
 * and a compressed one a single zstd frame that can hold its raw length (so
 * that what is allocated for it is bounded by the file).
 */
static int check_table(struct loader *L)
{
	uint64_t table_end = HEADER_SIZE + (uint64_t)L->ns * ENTRY_SIZE + 8;
	for (uint32_t i = 0; i < L->ns; i++) {
		const uint8_t *e = L->table + (size_t)i * ENTRY_SIZE;
		uint32_t tag = mfs_get32(e), flags = mfs_get32(e + 4);
		uint64_t off = mfs_get64(e + 8), stored = mfs_get64(e + 16), raw = mfs_get64(e + 24);
		if (flags & ~SEC_FLAG_ZSTD)
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, HEADER_SIZE,
					    "section %u has unknown flags 0x%x", tag, flags);
		if (off % 64 != 0 || off < table_end)
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, HEADER_SIZE,
					    "section %u has an impossible offset %llu", tag,
					    (unsigned long long)off);
		if (off > L->size || stored > L->size - off)
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
					    "file is truncated (section %u ends past its %llu bytes)",
					    tag, (unsigned long long)L->size);
		if (!(flags & SEC_FLAG_ZSTD) && stored != raw)
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
					    "section %u has an impossible size", tag);
		for (uint32_t j = 0; j < i; j++) {
			const uint8_t *f = L->table + (size_t)j * ENTRY_SIZE;
			uint64_t o2 = mfs_get64(f + 8), s2 = mfs_get64(f + 16);
			if (mfs_get32(f) == tag)
				return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, HEADER_SIZE,
						    "section %u appears twice", tag);
			if (stored && s2 && off < o2 + s2 && o2 < off + stored)
				return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
						    "sections %u and %u overlap", mfs_get32(f), tag);
		}
		const char *why;
		if ((flags & SEC_FLAG_ZSTD) &&
		    mfs_zstd_check_frame(L->base + off, stored, raw, &why) < 0)
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
					    "section %u %s", tag, why);
	}
	return 0;
}

/* The whole file into anonymous memory at b (MFS_LOAD_COPY). Returns 0 or < 0. */
static int read_whole(struct loader *L, uint8_t *b)
{
	for (uint64_t got = 0; got < L->size;) {
		ssize_t r = pread(L->fd, b + got, (size_t)(L->size - got), (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			return mfs_diag_set(L->diag, MFS_E_IO, e, L->path, 0, got, "cannot read model: %s",
					    strerror(e));
		}
		if (r == 0)
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, got,
					    "file is truncated (it shrank while it was read)");
		got += (uint64_t)r;
	}
	return 0;
}

static int loader_check(struct loader *L);

/* Open path and check its header and table; returns the format version or < 0. */
static int loader_open(struct loader *L, const char *path, unsigned flags, mfs_diag *diag)
{
	memset(L, 0, sizeof *L);
	L->fd = -1;
	L->path = path;
	L->diag = diag;
	L->copy = (flags & MFS_LOAD_COPY) != 0;
	L->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (L->fd < 0) {
		int e = errno;
		return mfs_diag_set(diag, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, path, 0, 0,
				    "cannot open model: %s", strerror(e));
	}
	struct stat st;
	if (fstat(L->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return mfs_diag_set(diag, MFS_E_IO, errno, path, 0, 0, "not a regular file");
	L->size = (uint64_t)st.st_size;
	if (L->size < HEADER_SIZE)
		return mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
				    "not an mfstream model (file too short)");
	void *b = L->copy ? mmap(NULL, L->size, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
				 -1, 0)
			  : mmap(NULL, L->size, PROT_READ, MAP_PRIVATE, L->fd, 0);
	if (b == MAP_FAILED) {
		int e = errno;
		return mfs_diag_set(diag, e == ENOMEM ? MFS_E_NOMEM : MFS_E_IO, e, path, 0, 0,
				    "cannot map model: %s", strerror(e));
	}
	L->base = b;
	int rc = L->copy ? read_whole(L, b) : 0;
	if (rc < 0)
		return rc;
	return loader_check(L);
}

/* A model held in memory (len bytes at buf, the caller's until loader_close):
 * read as MFS_LOAD_COPY reads a file; name stands for the path in messages. */
static int loader_open_mem(struct loader *L, const void *buf, size_t len, const char *name,
			   mfs_diag *diag)
{
	memset(L, 0, sizeof *L);
	L->fd = -1;
	L->path = name;
	L->diag = diag;
	L->copy = 1;
	L->borrowed = 1;
	L->base = buf;
	L->size = len;
	if (!buf || L->size < HEADER_SIZE)
		return mfs_diag_set(diag, MFS_E_CORRUPT, 0, name, 0, 0,
				    "not an mfstream model (too short)");
	return loader_check(L);
}

/* The header and table of L's bytes checked; returns the format version or < 0. */
static int loader_check(struct loader *L)
{
	const char *path = L->path;
	mfs_diag *diag = L->diag;
	int rc;
	const uint8_t *h = L->h = L->base;
	if (memcmp(h, MAGIC, 8) != 0)
		return mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
				    "not an mfstream model (bad magic)");
	uint32_t version = mfs_get32(h + 8);
	if (version != FORMAT_VERSION && version != FORMAT_VERSION_DELTA)
		return mfs_diag_set(diag, MFS_E_VERSION, 0, path, 0, 0,
				    "model format version %u is not supported (this build reads %u and %u)",
				    version, FORMAT_VERSION, FORMAT_VERSION_DELTA);
	if (!SUM_OK(h, 248, mfs_get64(h + 248)))
		return mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0, "header checksum mismatch");
	if (mfs_get32(h + 12) != HEADER_SIZE)
		return mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
				    "header size %u is not %u", mfs_get32(h + 12), HEADER_SIZE);
	L->ns = mfs_get32(h + 132);
	if (L->ns > MAX_SECTIONS || L->size < HEADER_SIZE + (uint64_t)L->ns * ENTRY_SIZE + 8)
		return mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0, "section table is damaged");
	L->table = L->base + HEADER_SIZE;
	if (!SUM_OK(L->table, (size_t)L->ns * ENTRY_SIZE, mfs_get64(L->table + (size_t)L->ns * ENTRY_SIZE)))
		return mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, HEADER_SIZE,
				    "section table checksum mismatch");
	if ((rc = check_table(L)) < 0)
		return rc;
	return (int)version;
}

static const uint8_t *find_entry(const struct loader *L, uint32_t tag)
{
	for (uint32_t i = 0; i < L->ns; i++) {
		const uint8_t *e = L->table + (size_t)i * ENTRY_SIZE;
		if (mfs_get32(e) == tag)
			return e;
	}
	return NULL;
}

static int section_len(struct loader *L, uint32_t tag, uint64_t *raw)
{
	const uint8_t *e = find_entry(L, tag);
	if (e)
		*raw = mfs_get64(e + 24);
	return e != NULL;
}

/*
 * The checked bytes of section tag (exactly want raw bytes): *data points
 * into the file, or for a compressed section into *owned (malloc'd, the
 * caller frees). Returns 1, 0 when missing and not required, or < 0.
 */
static int get_section(struct loader *L, uint32_t tag, uint64_t want, int required,
		       const void **data, void **owned)
{
	*data = NULL;
	*owned = NULL;
	const uint8_t *e = find_entry(L, tag);
	if (!e) {
		if (required)
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
					    "section %u is missing", tag);
		return 0;
	}
	uint32_t flags = mfs_get32(e + 4);
	uint64_t off = mfs_get64(e + 8), stored = mfs_get64(e + 16), raw = mfs_get64(e + 24);
	uint64_t sum = mfs_get64(e + 32);
	if (raw != want || off > L->size || stored > L->size - off ||
	    (!(flags & SEC_FLAG_ZSTD) && stored != raw)) {
		if (raw == want && off <= L->size && stored > L->size - off)
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
					    "file is truncated");
		return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
				    "section %u has an impossible size", tag);
	}
	if (!SUM_OK(L->base + off, stored, sum))
		return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
				    "checksum mismatch in section %u", tag);
	if (!(flags & SEC_FLAG_ZSTD)) {
		*data = L->base + off;
		return 1;
	}
	void *buf = malloc(raw ? raw : 1);
	if (!buf)
		return mfs_diag_set(L->diag, MFS_E_NOMEM, 0, L->path, 0, 0, "out of memory");
	if (mfs_zstd_decompress(L->base + off, stored, buf, raw) < 0) {
		free(buf);
		return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
				    "section %u does not decompress", tag);
	}
	*data = *owned = buf;
	return 1;
}

/*
 * Section tag (want raw bytes) into the table *slot (table_bytes long, as
 * mfs_alloc_huge made it; rows of row_bytes of side s). A raw, page-aligned
 * section is mapped copy-on-write instead of copied: at the head of a fresh
 * table, which replaces *slot only once the mapping is in place and its
 * checksum verified (recorded in m->mapped). A MAP_FIXED that fails may
 * unmap what it was to replace: here that is only the fresh table, which is
 * dropped whole, and the section is copied into the live one instead, so a
 * failure never leaves a hole in a table in use.
 */
static int load_table(struct loader *L, mfs_model *m, uint32_t tag, void **slot,
		      size_t table_bytes, struct mfs_table *s, size_t row_bytes, uint64_t want)
{
	const uint8_t *e = find_entry(L, tag);
	if (e && !L->copy && want >= MAP_MIN && m->n_mapped < MFS_MAX_MAPPED &&
	    !(mfs_get32(e + 4) & SEC_FLAG_ZSTD)) {
		uint64_t off = mfs_get64(e + 8), stored = mfs_get64(e + 16);
		size_t page = (size_t)sysconf(_SC_PAGESIZE);
		size_t plen = (want + page - 1) & ~(uint64_t)(page - 1);
		void *fresh = NULL;
		if (mfs_get64(e + 24) == want && stored == want && off % page == 0 && off <= L->size &&
		    stored <= L->size - off && plen <= table_bytes)
			fresh = mfs_alloc_huge(table_bytes);
		if (fresh && (uintptr_t)fresh % page == 0) {
			void *p = mmap(fresh, plen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, L->fd,
				       (off_t)off);
			if (p == fresh) {
				/* the page's bytes past the section belong to the next one */
				memset((uint8_t *)p + want, 0, plen - want);
				if (!SUM_OK(p, want, mfs_get64(e + 32))) {
					mfs_free_huge(fresh, table_bytes);
					return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
							    "checksum mismatch in section %u", tag);
				}
				mfs_free_huge(*slot, table_bytes); /* untouched: nothing learned yet */
				*slot = fresh;
				m->mapped[m->n_mapped++] =
					(struct mfs_mapped){ slot, table_bytes, plen, s, row_bytes };
				return 1;
			}
		}
		/* not mappable here: drop the fresh table (and any hole in it), copy */
		mfs_free_huge(fresh, table_bytes);
	}
	const void *data;
	void *owned;
	int rc = get_section(L, tag, want, 1, &data, &owned);
	if (rc < 0)
		return rc;
	memcpy(*slot, data, want);
	free(owned);
	return 1;
}

/* A history's place: the next slot and the filled ones inside the ring (a ring
 * not yet full is filled from slot 0: next == fill). */
static int hpos_ok(const struct mfs_table *s, uint32_t w)
{
	uint32_t next = MFS_HPOS_NEXT(w), fill = MFS_HPOS_FILL(w);
	return fill <= s->hist_len && next < s->hist_len && (fill == s->hist_len || next == fill);
}

static int load_side(struct loader *L, mfs_model *m, struct mfs_table *s, uint64_t n, uint32_t t0)
{
	int rc;
	const void *seen = NULL, *ids = NULL;
	void *seen_owned = NULL, *ids_owned = NULL;
	const size_t cap = (size_t)s->cap, stride = (size_t)m->stride * 4;
	if ((rc = load_table(L, m, t0, (void **)&s->ids.row_key, cap * 8, s, 8, n * 8)) < 0)
		goto out;
	if (s->ids.mode == MFS_IDMAP_EXACT &&
	    (rc = get_section(L, t0 + 6, n * 4, 1, &seen, &seen_owned)) < 0)
		goto out;
	rc = mfs_idmap_load_keys(&s->ids, s->ids.row_key, seen, n);
	if (rc < 0) {
		rc = mfs_diag_set(L->diag, -rc, 0, L->path, 0, 0, "duplicate ID key");
		goto out;
	}
	uint64_t idlen = 0;
	if (!section_len(L, t0 + 1, &idlen)) {
		rc = mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0, "ID section is missing");
		goto out;
	}
	if (idlen < n || idlen > n * (1 + MFS_ID_MAX)) {
		rc = mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
				  "ID section of %llu bytes cannot hold %llu IDs",
				  (unsigned long long)idlen, (unsigned long long)n);
		goto out;
	}
	if ((rc = get_section(L, t0 + 1, idlen, 1, &ids, &ids_owned)) < 0)
		goto out;
	rc = mfs_idmap_load_ids(&s->ids, ids, idlen, n);
	if (rc < 0) {
		rc = mfs_diag_set(L->diag, -rc, 0, L->path, 0, 0,
				  rc == -MFS_E_NOMEM ? "out of memory" : "ID section is damaged");
		goto out;
	}
	if ((rc = load_table(L, m, t0 + 2, (void **)&s->bias, cap * 4, s, 4, n * 4)) < 0 ||
	    (rc = load_table(L, m, t0 + 3, (void **)&s->rows, s->rows_bytes, s, stride,
			     n * stride)) < 0)
		goto out;
	if (s->acc) {
		if ((rc = load_table(L, m, t0 + 4, (void **)&s->acc, cap * 4, s, 4, n * 4)) < 0 ||
		    (rc = load_table(L, m, t0 + 5, (void **)&s->bacc, cap * 4, s, 4, n * 4)) < 0)
			goto out;
	}
	if (s->ids.sketch) {
		const void *sk;
		void *sk_owned;
		rc = get_section(L, t0 + 7, mfs_idmap_sketch_bytes(&s->ids), 1, &sk, &sk_owned);
		if (rc < 0)
			goto out;
		memcpy(s->ids.sketch, sk, mfs_idmap_sketch_bytes(&s->ids));
		free(sk_owned);
	}
	if (s->count &&
	    (rc = load_table(L, m, t0 + 9, (void **)&s->count, cap * 4, s, 4, n * 4)) < 0)
		goto out;
	if (s->hist) {
		size_t hrow = (size_t)s->hist_len * 8;
		if ((rc = load_table(L, m, SEC_USER_HIST, (void **)&s->hist, cap * hrow, s, hrow,
				     n * hrow)) < 0 ||
		    (rc = load_table(L, m, SEC_USER_HPOS, (void **)&s->hpos, cap * 4, s, 4, n * 4)) < 0)
			goto out;
		for (uint64_t r = 0; r < n; r++)
			if (!hpos_ok(s, s->hpos[r])) {
				rc = mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
						  "the history of user row %llu is damaged",
						  (unsigned long long)r);
				goto out;
			}
	}
	rc = 0;
out:
	free(seen_owned);
	free(ids_owned);
	return rc;
}

/* The settings of header h (the fields that fix the tables' shape and the learning). */
/* The frequency alphas of a file: its SEC_FREQ section, or 1 (plain L2: files
 * from before them). */
static int load_freq(struct loader *L, mfs_config *cfg)
{
	uint64_t len;
	cfg->freq_alpha = cfg->freq_alpha_bias = 1.0f;
	if (!section_len(L, SEC_FREQ, &len))
		return 0;
	const void *p;
	void *owned;
	int rc = get_section(L, SEC_FREQ, 8, 1, &p, &owned);
	if (rc < 0)
		return rc;
	cfg->freq_alpha = getf(p);
	cfg->freq_alpha_bias = getf((const uint8_t *)p + 4);
	free(owned);
	return 0;
}

/* The implicit-feedback settings of a file (SEC_IMPLICIT), if it has them:
 * m learns interactions then. */
static int load_implicit(struct loader *L, mfs_model *m, const char *path, mfs_diag *diag)
{
	uint64_t len;
	if (!section_len(L, SEC_IMPLICIT, &len))
		return 0;
	const void *p;
	void *owned;
	int rc = get_section(L, SEC_IMPLICIT, 16, 1, &p, &owned);
	if (rc < 0)
		return rc;
	const uint8_t *b = p;
	mfs_implicit_config c = { .loss = (int)mfs_get32(b), .negatives = mfs_get32(b + 4),
				  .neg_beta = getf(b + 8) };
	free(owned);
	mfs_diag cd;
	rc = mfs_model_implicit_enable(m, &c, &cd);
	if (rc == -MFS_E_NOMEM)
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, path, 0, 0, "%s", cd.reason);
	if (rc < 0)
		return mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
				    "implicit-feedback section holds an invalid setting: %s", cd.reason);
	return 0;
}

/* The history's length of a file: its SEC_HISTORY section, or 0 (no history:
 * files from before it). */
static int load_history_len(struct loader *L, uint32_t *len)
{
	uint64_t raw;
	*len = 0;
	if (!section_len(L, SEC_HISTORY, &raw))
		return 0;
	const void *p;
	void *owned;
	int rc = get_section(L, SEC_HISTORY, 4, 1, &p, &owned);
	if (rc < 0)
		return rc;
	*len = mfs_get32(p);
	free(owned);
	return 0;
}

/*
 * The sections a whole model with header L->h must hold, at the raw sizes the
 * header implies, checked before the model is created: a crafted header
 * cannot make the loader allocate what the file does not hold (the admission
 * sketch, sized by the capacity, is creation's one big allocation; the
 * tables are mapped lazily).
 */
static int check_layout(struct loader *L, const mfs_config *cfg, uint64_t nu, uint64_t ni)
{
	uint64_t stride = ((uint64_t)cfg->dim + 15) & ~15ULL;
	int exact = cfg->ids != MFS_IDS_HASHED, adagrad = cfg->optimizer == MFS_OPT_ADAGRAD;
	int counted = cfg->freq_alpha != 1.0f || cfg->freq_alpha_bias != 1.0f;
	if (mfs_get32(L->h + 20) != stride || nu > cfg->max_users || ni > cfg->max_items ||
	    (!exact && (nu != cfg->max_users || ni != cfg->max_items)))
		return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0, "header sizes disagree");
	for (int sd = 0; sd < 2; sd++) {
		uint64_t n = sd ? ni : nu, cap = sd ? cfg->max_items : cfg->max_users;
		uint32_t t0 = sd ? SEC_ITEM_KEYS : SEC_USER_KEYS;
		const struct {
			uint32_t tag;
			uint64_t bytes;
			int need;
		} want[] = {
			{ t0, n * 8, 1 },
			{ t0 + 2, n * 4, 1 },
			{ t0 + 3, n * stride * 4, 1 },
			{ t0 + 4, n * 4, adagrad },
			{ t0 + 5, n * 4, adagrad },
			{ t0 + 6, n * 4, exact },
			{ t0 + 9, n * 4, counted },
			{ t0 + 7, MFS_SKETCH_DEPTH * mfs_idmap_sketch_width(cap), cfg->min_count > 1 },
			{ SEC_USER_HIST, n * cfg->history * 8, sd == 0 && cfg->history > 0 },
			{ SEC_USER_HPOS, n * 4, sd == 0 && cfg->history > 0 },
		};
		for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
			uint64_t len;
			if (!want[k].need)
				continue;
			if (!section_len(L, want[k].tag, &len))
				return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
						    "section %u is missing", want[k].tag);
			if (len != want[k].bytes)
				return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
						    "section %u holds %llu bytes where the header "
						    "(%llu rows, capacity %llu) needs %llu",
						    want[k].tag, (unsigned long long)len,
						    (unsigned long long)n, (unsigned long long)cap,
						    (unsigned long long)want[k].bytes);
		}
	}
	return 0;
}

static void decode_config(const uint8_t *h, const char *kernel, mfs_config *cfg)
{
	mfs_config_default(cfg);
	cfg->dim = mfs_get32(h + 16);
	cfg->optimizer = (int)mfs_get32(h + 24);
	cfg->link = (int)mfs_get32(h + 28);
	cfg->max_users = mfs_get64(h + 32);
	cfg->max_items = mfs_get64(h + 40);
	cfg->seed = mfs_get64(h + 72);
	cfg->lr = getf(h + 104);
	cfg->lr_bias = getf(h + 108);
	cfg->l2 = getf(h + 112);
	cfg->l2_bias = getf(h + 116);
	cfg->init_std = getf(h + 120);
	cfg->lo = getf(h + 124);
	cfg->hi = getf(h + 128);
	cfg->range_margin = getf(h + 232);
	cfg->user_hashes = mfs_get32(h + 236);
	cfg->kernel = kernel;
	cfg->ids = (int)mfs_get32(h + 168);
	cfg->evict = (int)mfs_get32(h + 172);
	cfg->min_count = mfs_get32(h + 176);
}

/* The learner state of header h into m (after the tables: the hands are checked against them). */
static int decode_state(struct loader *L, mfs_model *m)
{
	const uint8_t *h = L->h;
	if (m->user.ids.mode == MFS_IDMAP_EXACT &&
	    (mfs_get64(h + 184) >= m->cfg.max_users || mfs_get64(h + 192) >= m->cfg.max_items))
		return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
				    "eviction state is damaged");
	m->events = mfs_get64(h + 80);
	m->mu_count = mfs_get64(h + 88);
	m->mu_sum = getd(h + 96);
	for (int i = 0; i < 4; i++)
		m->rng.s[i] = mfs_get64(h + 136 + 8 * i);
	m->tick = mfs_get32(h + 180) | (uint64_t)mfs_get32(h + 244) << 32;
	m->user.ids.hand = mfs_get64(h + 184);
	m->item.ids.hand = mfs_get64(h + 192);
	m->user.ids.evictions = mfs_get64(h + 200);
	m->item.ids.evictions = mfs_get64(h + 208);
	m->user.ids.sketch_adds = mfs_get64(h + 216);
	m->item.ids.sketch_adds = mfs_get64(h + 224);
	return 0;
}

/* The position section into m (replacing the one it has). */
static int load_position(struct loader *L, mfs_model *m)
{
	uint64_t plen;
	if (!section_len(L, SEC_POSITION, &plen))
		return 0;
	if (plen > (1u << 24))
		return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0, "position is too large");
	const void *data;
	void *owned;
	int rc = get_section(L, SEC_POSITION, plen, 1, &data, &owned);
	if (rc < 0)
		return rc;
	void *p = malloc(plen ? plen : 1);
	if (!p) {
		free(owned);
		return mfs_diag_set(L->diag, MFS_E_NOMEM, 0, L->path, 0, 0, "out of memory");
	}
	memcpy(p, data, plen);
	free(owned);
	free(m->position);
	m->position = p;
	m->position_len = plen;
	return 0;
}

MFS_API int mfs_model_load(mfs_model **out, const char *path, const char *kernel, mfs_diag *diag)
{
	return mfs_model_load_flags(out, path, kernel, 0, diag);
}

static int load_opened(struct loader *Lp, mfs_model **out, const char *kernel);

int mfs_model_load_flags(mfs_model **out, const char *path, const char *kernel, unsigned flags,
			 mfs_diag *diag)
{
	if (!out || !path)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, path, 0, 0, "no path");
	struct loader L;
	int rc = loader_open(&L, path, flags, diag);
	if (rc >= 0)
		rc = load_opened(&L, out, kernel);
	loader_close(&L);
	return rc;
}

int mfs_model_load_mem(mfs_model **out, const void *buf, size_t len, const char *name,
		       const char *kernel, mfs_diag *diag)
{
	if (!out || !name)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, name, 0, 0, "no buffer name");
	struct loader L;
	int rc = loader_open_mem(&L, buf, len, name, diag);
	if (rc >= 0)
		rc = load_opened(&L, out, kernel);
	loader_close(&L);
	return rc;
}

/* The whole model of an opened loader into *out. */
static int load_opened(struct loader *Lp, mfs_model **out, const char *kernel)
{
	struct loader L = *Lp; /* a copy of the handles: the caller closes them */
	const char *path = L.path;
	mfs_diag *diag = L.diag;
	mfs_model *m = NULL;
	int rc;
	const uint8_t *h = L.h;
	if (mfs_get32(h + 240) != 0) {
		rc = mfs_diag_set(diag, MFS_E_INVAL, 0, path, 0, 0,
				  "a delta checkpoint, not a whole model: load its directory");
		goto out;
	}
	mfs_config cfg;
	decode_config(h, kernel, &cfg);
	if ((rc = load_freq(&L, &cfg)) < 0 || (rc = load_history_len(&L, &cfg.history)) < 0)
		goto out;
	uint64_t nu = mfs_get64(h + 48), ni = mfs_get64(h + 56);
	if ((rc = check_layout(&L, &cfg, nu, ni)) < 0)
		goto out;
	mfs_diag cd;
	rc = mfs_model_create(&m, &cfg, &cd);
	if (rc < 0) {
		if (rc == -MFS_E_UNSUPPORTED || rc == -MFS_E_NOMEM)
			mfs_diag_set(diag, -rc, 0, path, 0, 0, "%s", cd.reason);
		else
			rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
					  "header holds an invalid setting: %s", cd.reason);
		goto out;
	}
	m->hash_seed = mfs_get64(h + 64);
	if ((rc = load_side(&L, m, &m->user, nu, SEC_USER_KEYS)) < 0 ||
	    (rc = load_side(&L, m, &m->item, ni, SEC_ITEM_KEYS)) < 0 ||
	    (rc = decode_state(&L, m)) < 0 || (rc = load_position(&L, m)) < 0 ||
	    (rc = load_implicit(&L, m, path, diag)) < 0)
		goto out;
	/* a delta written next applies on this state */
	m->ck_valid = 1;
	m->ck_events = m->events;
	m->ck_id = mfs_model_state_id(m);
	*out = m;
	m = NULL;
	rc = 0;
out:
	mfs_model_free(m);
	return rc;
}

/* --- deltas ---------------------------------------------------------------- */

/* A delta's rows of one table, checked, before any is applied. */
struct delta_side {
	uint64_t n, nd; /* table rows after the delta; rows in the delta */
	const uint32_t *idx;
	const uint64_t *keys;
	const uint8_t *ids;
	uint64_t idlen;
	const float *bias, *rows, *acc, *bacc;
	const uint32_t *seen, *count;
	const uint8_t *sketch;
	const uint64_t *hist;
	const uint32_t *hpos;
	void *owned[16];
	int n_owned;
};

static int delta_get(struct loader *L, struct delta_side *d, uint32_t tag, uint64_t want,
		     const void **out)
{
	void *owned;
	int rc = get_section(L, tag, want, 1, out, &owned);
	if (owned)
		d->owned[d->n_owned++] = owned;
	return rc;
}

static int delta_read_side(struct loader *L, const mfs_model *m, const struct mfs_table *s,
			   uint64_t n, uint32_t tdirty, uint32_t t0, struct delta_side *d)
{
	int rc;
	const void *p;
	uint64_t len;
	d->n = n;
	if (!section_len(L, tdirty, &len) || len % 4 != 0 || len / 4 > n)
		return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
				    "the delta's row list is missing or too long");
	d->nd = len / 4;
	uint64_t nd = d->nd;
	if ((rc = delta_get(L, d, tdirty, len, &p)) < 0)
		return rc;
	d->idx = p;
	/* rows ascending, inside the table; a table that grew lists every new row */
	uint64_t old = table_rows(s), fresh = 0;
	for (uint64_t k = 0; k < nd; k++) {
		if (d->idx[k] >= n || (k > 0 && d->idx[k] <= d->idx[k - 1]))
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
					    "the delta's row list is damaged");
		fresh += d->idx[k] >= old;
	}
	if (s->ids.mode == MFS_IDMAP_EXACT && (n < old || fresh != n - old))
		return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
				    "the delta's rows do not cover the table's new rows");
	if ((rc = delta_get(L, d, t0, nd * 8, &p)) < 0)
		return rc;
	d->keys = p;
	for (uint64_t k = 0; k < nd; k++)
		if (d->keys[k] == 0)
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
					    "the delta holds an empty ID key");
	if (!section_len(L, t0 + 1, &d->idlen) || d->idlen < nd || d->idlen > nd * 256)
		return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0, "ID section is missing");
	if ((rc = delta_get(L, d, t0 + 1, d->idlen, &p)) < 0)
		return rc;
	d->ids = p;
	uint64_t o = 0;
	for (uint64_t k = 0; k < nd; k++) {
		if (o >= d->idlen || d->idlen - o - 1 < d->ids[o])
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
					    "ID section ends early");
		o += 1 + (uint64_t)d->ids[o];
	}
	if (o != d->idlen)
		return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0, "ID section is damaged");
	if ((rc = delta_get(L, d, t0 + 2, nd * 4, &p)) < 0)
		return rc;
	d->bias = p;
	if ((rc = delta_get(L, d, t0 + 3, nd * m->stride * 4, &p)) < 0)
		return rc;
	d->rows = p;
	if (s->acc) {
		if ((rc = delta_get(L, d, t0 + 4, nd * 4, &p)) < 0)
			return rc;
		d->acc = p;
		if ((rc = delta_get(L, d, t0 + 5, nd * 4, &p)) < 0)
			return rc;
		d->bacc = p;
	}
	if (s->ids.mode == MFS_IDMAP_EXACT) {
		if ((rc = delta_get(L, d, t0 + 6, nd * 4, &p)) < 0)
			return rc;
		d->seen = p;
	}
	if (s->count) {
		if ((rc = delta_get(L, d, t0 + 9, nd * 4, &p)) < 0)
			return rc;
		d->count = p;
	}
	if (s->ids.sketch) {
		if ((rc = delta_get(L, d, t0 + 7, mfs_idmap_sketch_bytes(&s->ids), &p)) < 0)
			return rc;
		d->sketch = p;
	}
	if (s->hist) {
		if ((rc = delta_get(L, d, SEC_USER_HIST, nd * s->hist_len * 8, &p)) < 0)
			return rc;
		d->hist = p;
		if ((rc = delta_get(L, d, SEC_USER_HPOS, nd * 4, &p)) < 0)
			return rc;
		d->hpos = p;
		for (uint64_t k = 0; k < nd; k++)
			if (!hpos_ok(s, d->hpos[k]))
				return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
						    "the history of user row %u is damaged", d->idx[k]);
	}
	return 0;
}

static int delta_apply_side(mfs_model *m, struct mfs_table *s, const struct delta_side *d)
{
	int rc;
	if (s->ids.mode == MFS_IDMAP_EXACT) {
		/* old keys out first: a key may have moved to another row (evicted, then back) */
		for (uint64_t k = 0; k < d->nd; k++)
			if (d->idx[k] < s->ids.used && s->ids.row_key[d->idx[k]])
				mfs_idmap_remove(&s->ids, s->ids.row_key[d->idx[k]]);
		mfs_idmap_used_set(&s->ids, d->n);
	}
	uint64_t o = 0;
	size_t rb = (size_t)m->stride * 4;
	for (uint64_t k = 0; k < d->nd; k++) {
		uint64_t r = d->idx[k];
		rc = mfs_idmap_put(&s->ids, r, d->keys[k], (const char *)d->ids + o + 1, d->ids[o],
				   d->seen ? d->seen[k] : 0);
		if (rc < 0)
			return rc;
		o += 1 + (uint64_t)d->ids[o];
		memcpy(mfs_row(s, r, m->stride), (const uint8_t *)d->rows + k * rb, rb);
		s->bias[r] = d->bias[k];
		if (s->acc) {
			s->acc[r] = d->acc[k];
			s->bacc[r] = d->bacc[k];
		}
		if (s->count)
			s->count[r] = d->count[k];
		if (s->hist) {
			memcpy(mfs_hist_row(s, r), d->hist + k * s->hist_len, (size_t)s->hist_len * 8);
			s->hpos[r] = d->hpos[k];
		}
	}
	if (d->sketch)
		memcpy(s->ids.sketch, d->sketch, mfs_idmap_sketch_bytes(&s->ids));
	return 0;
}

static int apply_opened(mfs_model *m, struct loader *Lp, int *touched, int *other_base);

int mfs_model_apply_delta(mfs_model *m, const char *path, unsigned flags, int *touched,
			  int *other_base, mfs_diag *diag)
{
	struct loader L;
	*touched = 0;
	*other_base = 0;
	int rc = loader_open(&L, path, flags, diag);
	if (rc >= 0)
		rc = apply_opened(m, &L, touched, other_base);
	loader_close(&L);
	return rc;
}

int mfs_model_apply_delta_mem(mfs_model *m, const void *buf, size_t len, const char *name,
			      int *touched, int *other_base, mfs_diag *diag)
{
	struct loader L;
	*touched = 0;
	*other_base = 0;
	int rc = loader_open_mem(&L, buf, len, name, diag);
	if (rc >= 0)
		rc = apply_opened(m, &L, touched, other_base);
	loader_close(&L);
	return rc;
}

/* The delta of an opened loader applied on m (see mfs_model_apply_delta). */
static int apply_opened(mfs_model *m, struct loader *Lp, int *touched, int *other_base)
{
	struct loader L = *Lp; /* a copy of the handles: the caller closes them */
	const char *path = L.path;
	mfs_diag *diag = L.diag;
	struct delta_side du, di;
	memset(&du, 0, sizeof du);
	memset(&di, 0, sizeof di);
	int rc;
	const uint8_t *h = L.h;
	if (mfs_get32(h + 240) != 1) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0, "not a delta checkpoint");
		goto out;
	}
	/* the same model: the settings and table shapes agree with m's */
	uint8_t mh[HEADER_SIZE];
	encode_header(m, 0, 0, mh);
	if (memcmp(h + 16, mh + 16, 32) != 0 || memcmp(h + 64, mh + 64, 16) != 0 ||
	    memcmp(h + 104, mh + 104, 28) != 0 || memcmp(h + 168, mh + 168, 12) != 0 ||
	    memcmp(h + 232, mh + 232, 8) != 0) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
				  "the delta is of a model with other settings");
		goto out;
	}
	uint32_t hist_len;
	if ((rc = load_history_len(&L, &hist_len)) < 0)
		goto out;
	if (hist_len != m->user.hist_len) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
				  "the delta is of a model with a history of %u items, not %u",
				  hist_len, m->user.hist_len);
		goto out;
	}
	const void *ds;
	void *ds_owned;
	if ((rc = get_section(&L, SEC_DELTA, 24, 1, &ds, &ds_owned)) < 0)
		goto out;
	uint64_t base_events = mfs_get64(ds), base_id = mfs_get64((const uint8_t *)ds + 8);
	uint64_t self_id = mfs_get64((const uint8_t *)ds + 16);
	free(ds_owned);
	uint64_t have = mfs_model_state_id(m);
	if (base_events != m->events || base_id != have) {
		*other_base = 1;
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
				  "the delta applies on the state after %llu events (ID %016llx), "
				  "not on this chain's (%llu events, ID %016llx): a link is missing",
				  (unsigned long long)base_events, (unsigned long long)base_id,
				  (unsigned long long)m->events, (unsigned long long)have);
		goto out;
	}
	uint64_t nu = mfs_get64(h + 48), ni = mfs_get64(h + 56);
	if (nu > m->user.cap || ni > m->item.cap) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0, "header sizes disagree");
		goto out;
	}
	if ((rc = delta_read_side(&L, m, &m->user, nu, SEC_USER_DIRTY, SEC_USER_KEYS, &du)) < 0 ||
	    (rc = delta_read_side(&L, m, &m->item, ni, SEC_ITEM_DIRTY, SEC_ITEM_KEYS, &di)) < 0)
		goto out;
	if (m->user.ids.mode == MFS_IDMAP_EXACT &&
	    (mfs_get64(h + 184) >= m->cfg.max_users || mfs_get64(h + 192) >= m->cfg.max_items)) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0, "eviction state is damaged");
		goto out;
	}
	uint64_t plen = 0;
	if (section_len(&L, SEC_POSITION, &plen)) {
		const void *pp;
		void *po;
		if (plen > (1u << 24) || (rc = get_section(&L, SEC_POSITION, plen, 1, &pp, &po)) < 0) {
			if (plen > (1u << 24))
				rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
						  "position is too large");
			goto out;
		}
		free(po);
	}
	/* Everything is checked: apply. */
	*touched = 1;
	if ((rc = delta_apply_side(m, &m->user, &du)) < 0 ||
	    (rc = delta_apply_side(m, &m->item, &di)) < 0) {
		rc = mfs_diag_set(diag, -rc, 0, path, 0, 0,
				  rc == -MFS_E_NOMEM ? "out of memory" : "the delta repeats an ID key");
		goto out;
	}
	if ((rc = decode_state(&L, m)) < 0 || (rc = load_position(&L, m)) < 0)
		goto out;
	if (mfs_model_state_id(m) != self_id) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
				  "the state after the delta is not the one it names");
		goto out;
	}
	m->ck_valid = 1;
	m->ck_events = m->events;
	m->ck_id = self_id;
	m->imp.smp_ok = 0; /* implicit: the sampler follows the item counts of the delta */
	rc = 0;
out:
	for (int i = 0; i < du.n_owned; i++)
		free(du.owned[i]);
	for (int i = 0; i < di.n_owned; i++)
		free(di.owned[i]);
	return rc;
}
