/*
 * modelfile_delta.c - applying a delta (the rows changed since the state it
 * names) on a loaded model: every side checked before any row is written.
 */
#include "modelfile_internal.h"

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
	int rc = mfs_mf_get_section(L, tag, want, 1, out, &owned);
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
	if (!mfs_mf_section_len(L, tdirty, &len) || len % 4 != 0 || len / 4 > n)
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
	if (!mfs_mf_section_len(L, t0 + 1, &d->idlen) || d->idlen < nd || d->idlen > nd * 256)
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
			if (!mfs_mf_hpos_ok(s, d->hpos[k]))
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
	int rc = mfs_mf_loader_open(&L, path, flags, diag);
	if (rc >= 0)
		rc = apply_opened(m, &L, touched, other_base);
	mfs_mf_loader_close(&L);
	return rc;
}

int mfs_model_apply_delta_mem(mfs_model *m, const void *buf, size_t len, const char *name,
			      int *touched, int *other_base, mfs_diag *diag)
{
	struct loader L;
	*touched = 0;
	*other_base = 0;
	int rc = mfs_mf_loader_open_mem(&L, buf, len, name, diag);
	if (rc >= 0)
		rc = apply_opened(m, &L, touched, other_base);
	mfs_mf_loader_close(&L);
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
	mfs_mf_encode_header(m, 0, 0, mh);
	if (memcmp(h + 16, mh + 16, 32) != 0 || memcmp(h + 64, mh + 64, 16) != 0 ||
	    memcmp(h + 104, mh + 104, 28) != 0 || memcmp(h + 168, mh + 168, 12) != 0 ||
	    memcmp(h + 232, mh + 232, 8) != 0) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
				  "the delta is of a model with other settings");
		goto out;
	}
	uint32_t hist_len;
	if ((rc = mfs_mf_load_history_len(&L, &hist_len)) < 0)
		goto out;
	if (hist_len != m->user.hist_len) {
		rc = mfs_diag_set(diag, MFS_E_CORRUPT, 0, path, 0, 0,
				  "the delta is of a model with a history of %u items, not %u",
				  hist_len, m->user.hist_len);
		goto out;
	}
	const void *ds;
	void *ds_owned;
	if ((rc = mfs_mf_get_section(&L, SEC_DELTA, 24, 1, &ds, &ds_owned)) < 0)
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
	if (mfs_mf_section_len(&L, SEC_POSITION, &plen)) {
		const void *pp;
		void *po;
		if (plen > (1u << 24) || (rc = mfs_mf_get_section(&L, SEC_POSITION, plen, 1, &pp, &po)) < 0) {
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
	if ((rc = mfs_mf_decode_state(&L, m)) < 0 || (rc = mfs_mf_load_position(&L, m)) < 0)
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
