/*
 * modelfile.c - the model file (also the checkpoint format).
 *
 * Layout (little-endian):
 *   header      256 bytes: magic "MFSMODL\0", version, sizes, counters, learning
 *               settings, RNG state; an XXH3 checksum of its first 248 bytes
 *               in its last 8 bytes
 *   table       n_sections entries of 48 bytes, then an XXH3 checksum of the table
 *   sections    each starting at a 64-byte aligned offset; stored raw or as one
 *               zstd frame; each entry carries the XXH3 of the stored bytes
 * Written to a temporary file beside the target, fsync'd, renamed, and the
 * directory fsync'd: a reader sees the old file or the new one, never a torn one.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"
#include "zstd_stage.h"

#define MAGIC "MFSMODL"
#define FORMAT_VERSION 1u
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
};

#define SEC_FLAG_ZSTD 1u

struct section {
	uint32_t tag, flags;
	uint64_t offset, stored_len, raw_len, checksum;
	const void *data; /* raw bytes to write */
	void *owned;      /* malloc'd data to free */
};

/* --- little-endian helpers (the format is LE; so are x86-64 and aarch64 Linux) --- */
static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}
static void putf(uint8_t *p, float f)
{
	uint32_t v;
	memcpy(&v, &f, 4);
	put32(p, v);
}
static float getf(const uint8_t *p)
{
	uint32_t v = get32(p);
	float f;
	memcpy(&f, &v, 4);
	return f;
}
static void putd(uint8_t *p, double f)
{
	uint64_t v;
	memcpy(&v, &f, 8);
	put64(p, v);
}
static double getd(const uint8_t *p)
{
	uint64_t v = get64(p);
	double f;
	memcpy(&f, &v, 8);
	return f;
}

static void encode_header(const mfs_model *m, uint32_t n_sections, uint8_t *h)
{
	memset(h, 0, HEADER_SIZE);
	memcpy(h, MAGIC, 8);
	put32(h + 8, FORMAT_VERSION);
	put32(h + 12, HEADER_SIZE);
	put32(h + 16, m->cfg.dim);
	put32(h + 20, m->stride);
	put32(h + 24, (uint32_t)m->cfg.optimizer);
	put32(h + 28, (uint32_t)m->cfg.link);
	put64(h + 32, m->cfg.max_users);
	put64(h + 40, m->cfg.max_items);
	put64(h + 48, table_rows(&m->user));
	put64(h + 56, table_rows(&m->item));
	put64(h + 64, m->hash_seed);
	put64(h + 72, m->cfg.seed);
	put64(h + 80, m->events);
	put64(h + 88, m->mu_count);
	putd(h + 96, m->mu_sum);
	putf(h + 104, m->cfg.lr);
	putf(h + 108, m->cfg.lr_bias);
	putf(h + 112, m->cfg.l2);
	putf(h + 116, m->cfg.l2_bias);
	putf(h + 120, m->cfg.init_std);
	putf(h + 124, m->cfg.lo);
	putf(h + 128, m->cfg.hi);
	put32(h + 132, n_sections);
	for (int i = 0; i < 4; i++)
		put64(h + 136 + 8 * i, m->rng.s[i]);
	put32(h + 168, (uint32_t)m->cfg.ids);
	put32(h + 172, (uint32_t)m->cfg.evict);
	put32(h + 176, m->cfg.min_count);
	put32(h + 180, m->tick);
	put64(h + 184, m->user.ids.hand);
	put64(h + 192, m->item.ids.hand);
	put64(h + 200, m->user.ids.evictions);
	put64(h + 208, m->item.ids.evictions);
	put64(h + 216, m->user.ids.sketch_adds);
	put64(h + 224, m->item.ids.sketch_adds);
	putf(h + 232, m->cfg.range_margin);
	put32(h + 236, m->cfg.user_hashes);
	put64(h + 248, mfs_checksum(h, 248));
}

/* The ID strings of a side: for each row a length byte and the bytes (0 for unused rows). */
static int encode_ids(const struct mfs_idmap *ids, uint64_t n, void **out, size_t *len)
{
	size_t total = n;
	for (size_t r = 0; r < n; r++)
		total += ids->row_len[r];
	uint8_t *b = malloc(total ? total : 1);
	if (!b)
		return -MFS_E_NOMEM;
	size_t o = 0;
	for (size_t r = 0; r < n; r++) {
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

MFS_API int mfs_model_save(const mfs_model *m, const char *path, const mfs_save_opts *opts,
			   mfs_diag *diag)
{
	if (!m || !path || !*path)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, path, 0, 0, "no model or path");
	int level = opts ? opts->compress : 0;
	struct section sec[MAX_SECTIONS];
	uint32_t ns = 0;
	int rc = 0, fd = -1;
	char tmp[4096];
	tmp[0] = 0;
	memset(sec, 0, sizeof sec);

	const struct mfs_table *sides[2] = { &m->user, &m->item };
	for (int sd = 0; sd < 2; sd++) {
		const struct mfs_table *s = sides[sd];
		uint64_t n = table_rows(s);
		uint32_t t0 = sd == 0 ? SEC_USER_KEYS : SEC_ITEM_KEYS;
		sec[ns++] = (struct section){ .tag = t0, .data = s->ids.row_key, .raw_len = n * 8 };
		void *ids;
		size_t idlen;
		rc = encode_ids(&s->ids, n, &ids, &idlen);
		if (rc < 0)
			goto out;
		sec[ns++] = (struct section){ .tag = t0 + 1, .data = ids, .owned = ids, .raw_len = idlen };
		sec[ns++] = (struct section){ .tag = t0 + 2, .data = s->bias, .raw_len = n * 4 };
		sec[ns++] = (struct section){ .tag = t0 + 3, .data = s->rows,
					      .raw_len = n * m->stride * 4 };
		if (s->acc) {
			sec[ns++] = (struct section){ .tag = t0 + 4, .data = s->acc, .raw_len = n * 4 };
			sec[ns++] = (struct section){ .tag = t0 + 5, .data = s->bacc, .raw_len = n * 4 };
		}
		if (s->ids.mode == MFS_IDMAP_EXACT) {
			uint32_t *seen = malloc(n ? n * 4 : 1);
			if (!seen) {
				rc = -MFS_E_NOMEM;
				goto out;
			}
			for (uint64_t r = 0; r < n; r++)
				seen[r] = mfs_idmap_seen(&s->ids, r);
			sec[ns++] = (struct section){ .tag = t0 + 6, .data = seen, .owned = seen,
						      .raw_len = n * 4 };
		}
		if (s->ids.sketch)
			sec[ns++] = (struct section){ .tag = t0 + 7, .data = s->ids.sketch,
						      .raw_len = mfs_idmap_sketch_bytes(&s->ids) };
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
		off = (off + 63) & ~(uint64_t)63;
		sec[i].offset = off;
		sec[i].checksum = mfs_checksum(sec[i].data, sec[i].stored_len);
		off += sec[i].stored_len;
	}

	uint8_t head[HEADER_SIZE + MAX_SECTIONS * ENTRY_SIZE + 8];
	encode_header(m, ns, head);
	uint8_t *t = head + HEADER_SIZE;
	memset(t, 0, (size_t)ns * ENTRY_SIZE);
	for (uint32_t i = 0; i < ns; i++) {
		uint8_t *e = t + (size_t)i * ENTRY_SIZE;
		put32(e, sec[i].tag);
		put32(e + 4, sec[i].flags);
		put64(e + 8, sec[i].offset);
		put64(e + 16, sec[i].stored_len);
		put64(e + 24, sec[i].raw_len);
		put64(e + 32, sec[i].checksum);
	}
	put64(t + (size_t)ns * ENTRY_SIZE, mfs_checksum(t, (size_t)ns * ENTRY_SIZE));

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

/* --- load ---------------------------------------------------------------- */

static int read_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t r = pread(fd, p, len, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE; /* short file */
		p += r;
		off += (uint64_t)r;
		len -= (size_t)r;
	}
	return 0;
}

struct loader {
	int fd;
	const char *path;
	uint64_t size;
	uint8_t table[MAX_SECTIONS * ENTRY_SIZE];
	uint32_t ns;
	mfs_diag *diag;
};

/* Read section tag into dst (exactly want bytes raw). Missing: -MFS_E_NOTFOUND if required. */
static int load_section(struct loader *L, uint32_t tag, void *dst, uint64_t want, int required)
{
	for (uint32_t i = 0; i < L->ns; i++) {
		const uint8_t *e = L->table + (size_t)i * ENTRY_SIZE;
		if (get32(e) != tag)
			continue;
		uint32_t flags = get32(e + 4);
		uint64_t off = get64(e + 8), stored = get64(e + 16), raw = get64(e + 24);
		uint64_t sum = get64(e + 32);
		if (raw != want || off > L->size || stored > L->size - off ||
		    (!(flags & SEC_FLAG_ZSTD) && stored != raw))
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
					    "section %u has an impossible size", tag);
		void *buf = dst;
		void *tmp = NULL;
		if (flags & SEC_FLAG_ZSTD) {
			tmp = malloc(stored ? stored : 1);
			if (!tmp)
				return mfs_diag_set(L->diag, MFS_E_NOMEM, 0, L->path, 0, 0,
						    "out of memory");
			buf = tmp;
		}
		int r = read_all(L->fd, buf, stored, off);
		if (r < 0) {
			free(tmp);
			if (r == -EPIPE)
				return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
						    "file is truncated");
			return mfs_diag_set(L->diag, MFS_E_IO, -r, L->path, 0, off, "cannot read: %s",
					    strerror(-r));
		}
		if (mfs_checksum(buf, stored) != sum) {
			free(tmp);
			return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
					    "checksum mismatch in section %u", tag);
		}
		if (tmp) {
			r = mfs_zstd_decompress(tmp, stored, dst, raw);
			free(tmp);
			if (r < 0)
				return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, off,
						    "section %u does not decompress", tag);
		}
		return 1;
	}
	if (required)
		return mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0, "section %u is missing",
				    tag);
	return 0;
}

static int section_len(struct loader *L, uint32_t tag, uint64_t *raw)
{
	for (uint32_t i = 0; i < L->ns; i++) {
		const uint8_t *e = L->table + (size_t)i * ENTRY_SIZE;
		if (get32(e) == tag) {
			*raw = get64(e + 24);
			return 1;
		}
	}
	return 0;
}

static int load_side(struct loader *L, mfs_model *m, struct mfs_table *s, uint64_t n, uint32_t t0)
{
	int rc;
	uint64_t *keys = malloc(n ? n * 8 : 1);
	uint8_t *ids = NULL;
	if (!keys)
		return mfs_diag_set(L->diag, MFS_E_NOMEM, 0, L->path, 0, 0, "out of memory");
	rc = load_section(L, t0, keys, n * 8, 1);
	if (rc < 0)
		goto out;
	uint64_t idlen = 0;
	if (!section_len(L, t0 + 1, &idlen) || idlen > (1ULL << 40)) {
		rc = mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0, "ID section is missing");
		goto out;
	}
	ids = malloc(idlen ? idlen : 1);
	if (!ids) {
		rc = mfs_diag_set(L->diag, MFS_E_NOMEM, 0, L->path, 0, 0, "out of memory");
		goto out;
	}
	rc = load_section(L, t0 + 1, ids, idlen, 1);
	if (rc < 0)
		goto out;
	uint64_t o = 0;
	for (uint64_t r = 0; r < n; r++) {
		if (o >= idlen || o + 1 + ids[o] > idlen) {
			rc = mfs_diag_set(L->diag, MFS_E_CORRUPT, 0, L->path, 0, 0,
					  "ID section ends early");
			goto out;
		}
		if (s->ids.mode == MFS_IDMAP_HASHED)
			rc = mfs_idmap_set_row(&s->ids, r, keys[r], (const char *)ids + o + 1, ids[o]);
		else
			rc = mfs_idmap_append(&s->ids, keys[r], (const char *)ids + o + 1, ids[o]);
		if (rc < 0) {
			rc = mfs_diag_set(L->diag, -rc, 0, L->path, 0, 0,
					  rc == -MFS_E_NOMEM ? "out of memory" : "duplicate ID key");
			goto out;
		}
		o += 1 + (uint64_t)ids[o];
	}
	rc = load_section(L, t0 + 2, s->bias, n * 4, 1);
	if (rc < 0)
		goto out;
	rc = load_section(L, t0 + 3, s->rows, n * m->stride * 4, 1);
	if (rc < 0)
		goto out;
	if (s->acc) {
		rc = load_section(L, t0 + 4, s->acc, n * 4, 1);
		if (rc < 0)
			goto out;
		rc = load_section(L, t0 + 5, s->bacc, n * 4, 1);
		if (rc < 0)
			goto out;
	}
	if (s->ids.mode == MFS_IDMAP_EXACT) {
		uint32_t *seen = malloc(n ? n * 4 : 1);
		if (!seen) {
			rc = mfs_diag_set(L->diag, MFS_E_NOMEM, 0, L->path, 0, 0, "out of memory");
			goto out;
		}
		rc = load_section(L, t0 + 6, seen, n * 4, 1);
		for (uint64_t r = 0; rc >= 0 && r < n; r++)
			mfs_idmap_set_seen(&s->ids, r, seen[r]);
		free(seen);
		if (rc < 0)
			goto out;
	}
	if (s->ids.sketch) {
		rc = load_section(L, t0 + 7, s->ids.sketch, mfs_idmap_sketch_bytes(&s->ids), 1);
		if (rc < 0)
			goto out;
	}
	rc = 0;
out:
	free(keys);
	free(ids);
	return rc;
}

MFS_API int mfs_model_load(mfs_model **out, const char *path, const char *kernel, mfs_diag *diag)
{
	if (!out || !path)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, path, 0, 0, "no path");
	struct loader L = { .fd = -1, .path = path, .diag = diag };
	mfs_model *m = NULL;
	int rc;
	L.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (L.fd < 0) {
		int e = errno;
		return mfs_diag_set(diag, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, path, 0, 0,
				    "cannot open model: %s", strerror(e));
	}
	struct stat st;
	if (fstat(L.fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = mfs_diag_set(diag, MFS_E_IO, errno, path, 0, 0, "not a regular file");
		goto out;
	}
	L.size = (uint64_t)st.st_size;
	uint8_t h[HEADER_SIZE];
	if (L.size < HEADER_SIZE || read_all(L.fd, h, HEADER_SIZE, 0) < 0) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
				  "not an mfstream model (file too short)");
		goto out;
	}
	if (memcmp(h, MAGIC, 8) != 0) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
				  "not an mfstream model (bad magic)");
		goto out;
	}
	if (get32(h + 8) != FORMAT_VERSION) {
		rc = mfs_diag_set(diag, MFS_E_VERSION, 0, path, 0, 0,
				  "model format version %u is not supported (this build reads %u)",
				  get32(h + 8), FORMAT_VERSION);
		goto out;
	}
	if (get64(h + 248) != mfs_checksum(h, 248)) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0, "header checksum mismatch");
		goto out;
	}
	L.ns = get32(h + 132);
	if (L.ns > MAX_SECTIONS || L.size < HEADER_SIZE + (uint64_t)L.ns * ENTRY_SIZE + 8) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0, "section table is damaged");
		goto out;
	}
	uint8_t tsum[8];
	if (read_all(L.fd, L.table, (size_t)L.ns * ENTRY_SIZE, HEADER_SIZE) < 0 ||
	    read_all(L.fd, tsum, 8, HEADER_SIZE + (uint64_t)L.ns * ENTRY_SIZE) < 0 ||
	    get64(tsum) != mfs_checksum(L.table, (size_t)L.ns * ENTRY_SIZE)) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, HEADER_SIZE,
				  "section table checksum mismatch");
		goto out;
	}

	mfs_config cfg;
	mfs_config_default(&cfg);
	cfg.dim = get32(h + 16);
	cfg.optimizer = (int)get32(h + 24);
	cfg.link = (int)get32(h + 28);
	cfg.max_users = get64(h + 32);
	cfg.max_items = get64(h + 40);
	cfg.seed = get64(h + 72);
	cfg.lr = getf(h + 104);
	cfg.lr_bias = getf(h + 108);
	cfg.l2 = getf(h + 112);
	cfg.l2_bias = getf(h + 116);
	cfg.init_std = getf(h + 120);
	cfg.lo = getf(h + 124);
	cfg.hi = getf(h + 128);
	cfg.range_margin = getf(h + 232);
	cfg.user_hashes = get32(h + 236);
	cfg.kernel = kernel;
	cfg.ids = (int)get32(h + 168);
	cfg.evict = (int)get32(h + 172);
	cfg.min_count = get32(h + 176);
	uint64_t nu = get64(h + 48), ni = get64(h + 56);
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
	if (get32(h + 20) != m->stride || nu > cfg.max_users || ni > cfg.max_items ||
	    (cfg.ids == MFS_IDS_HASHED && (nu != cfg.max_users || ni != cfg.max_items))) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0, "header sizes disagree");
		goto out;
	}
	m->hash_seed = get64(h + 64);
	m->events = get64(h + 80);
	m->mu_count = get64(h + 88);
	m->mu_sum = getd(h + 96);
	for (int i = 0; i < 4; i++)
		m->rng.s[i] = get64(h + 136 + 8 * i);
	m->tick = get32(h + 180);
	rc = load_side(&L, m, &m->user, nu, SEC_USER_KEYS);
	if (rc < 0)
		goto out;
	rc = load_side(&L, m, &m->item, ni, SEC_ITEM_KEYS);
	if (rc < 0)
		goto out;
	if (m->user.ids.mode == MFS_IDMAP_EXACT && (get64(h + 184) >= cfg.max_users ||
						    get64(h + 192) >= cfg.max_items)) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0, "eviction state is damaged");
		goto out;
	}
	m->user.ids.hand = get64(h + 184);
	m->item.ids.hand = get64(h + 192);
	m->user.ids.evictions = get64(h + 200);
	m->item.ids.evictions = get64(h + 208);
	m->user.ids.sketch_adds = get64(h + 216);
	m->item.ids.sketch_adds = get64(h + 224);
	uint64_t plen;
	if (section_len(&L, SEC_POSITION, &plen)) {
		if (plen > (1u << 24)) {
			rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0, "position is too large");
			goto out;
		}
		m->position = malloc(plen ? plen : 1);
		if (!m->position) {
			rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, path, 0, 0, "out of memory");
			goto out;
		}
		m->position_len = plen;
		rc = load_section(&L, SEC_POSITION, m->position, plen, 1);
		if (rc < 0)
			goto out;
	}
	*out = m;
	m = NULL;
	rc = 0;
out:
	mfs_model_free(m);
	if (L.fd >= 0)
		close(L.fd);
	return rc;
}
