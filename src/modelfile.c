/*
 * modelfile.c - the model file (also the checkpoint format): its layout and
 * saving (whole files and deltas). Loading is modelfile_load.c, applying
 * deltas modelfile_delta.c.
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
#include "modelfile_internal.h"

void mfs_mf_encode_header(const mfs_model *m, uint32_t n_sections, uint32_t kind, uint8_t *h)
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
	mfs_mf_encode_header(m, 0, 0, h);
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
	mfs_mf_encode_header(m, ns, delta ? 1 : 0, head);
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
