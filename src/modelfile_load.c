/*
 * modelfile_load.c - loading a model file (the layout: modelfile.c): every
 * offset, size and checksum checked before it is touched, big raw sections
 * mapped copy-on-write, MFS_LOAD_COPY reading into anonymous memory.
 */
#include "modelfile_internal.h"

/* --- load ---------------------------------------------------------------- */


void mfs_mf_loader_close(struct loader *L)
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
int mfs_mf_loader_open(struct loader *L, const char *path, unsigned flags, mfs_diag *diag)
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
int mfs_mf_loader_open_mem(struct loader *L, const void *buf, size_t len, const char *name,
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

int mfs_mf_section_len(struct loader *L, uint32_t tag, uint64_t *raw)
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
int mfs_mf_get_section(struct loader *L, uint32_t tag, uint64_t want, int required,
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
	int rc = mfs_mf_get_section(L, tag, want, 1, &data, &owned);
	if (rc < 0)
		return rc;
	memcpy(*slot, data, want);
	free(owned);
	return 1;
}

/* A history's place: the next slot and the filled ones inside the ring (a ring
 * not yet full is filled from slot 0: next == fill). */
int mfs_mf_hpos_ok(const struct mfs_table *s, uint32_t w)
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
	    (rc = mfs_mf_get_section(L, t0 + 6, n * 4, 1, &seen, &seen_owned)) < 0)
		goto out;
	rc = mfs_idmap_load_keys(&s->ids, s->ids.row_key, seen, n);
	if (rc < 0) {
		rc = mfs_diag_set(L->diag, -rc, 0, L->path, 0, 0, "duplicate ID key");
		goto out;
	}
	uint64_t idlen = 0;
	if (!mfs_mf_section_len(L, t0 + 1, &idlen)) {
		rc = mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0, "ID section is missing");
		goto out;
	}
	if (idlen < n || idlen > n * (1 + MFS_ID_MAX)) {
		rc = mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
				  "ID section of %llu bytes cannot hold %llu IDs",
				  (unsigned long long)idlen, (unsigned long long)n);
		goto out;
	}
	if ((rc = mfs_mf_get_section(L, t0 + 1, idlen, 1, &ids, &ids_owned)) < 0)
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
		rc = mfs_mf_get_section(L, t0 + 7, mfs_idmap_sketch_bytes(&s->ids), 1, &sk, &sk_owned);
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
			if (!mfs_mf_hpos_ok(s, s->hpos[r])) {
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
	if (!mfs_mf_section_len(L, SEC_FREQ, &len))
		return 0;
	const void *p;
	void *owned;
	int rc = mfs_mf_get_section(L, SEC_FREQ, 8, 1, &p, &owned);
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
	if (!mfs_mf_section_len(L, SEC_IMPLICIT, &len))
		return 0;
	const void *p;
	void *owned;
	int rc = mfs_mf_get_section(L, SEC_IMPLICIT, 16, 1, &p, &owned);
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
int mfs_mf_load_history_len(struct loader *L, uint32_t *len)
{
	uint64_t raw;
	*len = 0;
	if (!mfs_mf_section_len(L, SEC_HISTORY, &raw))
		return 0;
	const void *p;
	void *owned;
	int rc = mfs_mf_get_section(L, SEC_HISTORY, 4, 1, &p, &owned);
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
			if (!mfs_mf_section_len(L, want[k].tag, &len))
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
int mfs_mf_decode_state(struct loader *L, mfs_model *m)
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
int mfs_mf_load_position(struct loader *L, mfs_model *m)
{
	uint64_t plen;
	if (!mfs_mf_section_len(L, SEC_POSITION, &plen))
		return 0;
	if (plen > (1u << 24))
		return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0, "position is too large");
	const void *data;
	void *owned;
	int rc = mfs_mf_get_section(L, SEC_POSITION, plen, 1, &data, &owned);
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
	int rc = mfs_mf_loader_open(&L, path, flags, diag);
	if (rc >= 0)
		rc = load_opened(&L, out, kernel);
	mfs_mf_loader_close(&L);
	return rc;
}

int mfs_model_load_mem(mfs_model **out, const void *buf, size_t len, const char *name,
		       const char *kernel, mfs_diag *diag)
{
	if (!out || !name)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, name, 0, 0, "no buffer name");
	struct loader L;
	int rc = mfs_mf_loader_open_mem(&L, buf, len, name, diag);
	if (rc >= 0)
		rc = load_opened(&L, out, kernel);
	mfs_mf_loader_close(&L);
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
	if ((rc = load_freq(&L, &cfg)) < 0 || (rc = mfs_mf_load_history_len(&L, &cfg.history)) < 0)
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
	    (rc = mfs_mf_decode_state(&L, m)) < 0 || (rc = mfs_mf_load_position(&L, m)) < 0 ||
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
