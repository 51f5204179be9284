/*
 * learner_replay.c - the events pass 1 keeps (epochs >= 2), and passes
 * 2..N over them in a seeded random order: resolved once to rows when every
 * ID still holds one, else looked up again each pass.
 */
#include <stdlib.h>
#include <string.h>

#include "learner_internal.h"

int mfs_replay_add(struct mfs_replay *r, const mfs_event *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t need = (size_t)e[i].user_len + e[i].item_len;
		if (r->len + need > r->cap) {
			size_t nc = r->cap ? r->cap * 2 : (1u << 20);
			while (nc < r->len + need)
				nc *= 2;
			char *na = realloc(r->arena, nc);
			if (!na)
				return -MFS_E_NOMEM;
			r->arena = na;
			r->cap = nc;
		}
		if (r->n == r->rcap) {
			size_t nc = r->rcap ? r->rcap * 2 : 65536;
			struct mfs_replay_rec *nr = realloc(r->recs, nc * sizeof *nr);
			if (!nr)
				return -MFS_E_NOMEM;
			r->recs = nr;
			r->rcap = nc;
		}
		struct mfs_replay_rec *x = &r->recs[r->n++];
		x->off = r->len;
		x->ulen = (uint8_t)e[i].user_len;
		x->ilen = (uint8_t)e[i].item_len;
		x->rating = e[i].rating;
		memcpy(r->arena + r->len, e[i].user, e[i].user_len);
		memcpy(r->arena + r->len + e[i].user_len, e[i].item, e[i].item_len);
		r->len += need;
	}
	return 0;
}

void mfs_replay_free(struct mfs_replay *r)
{
	free(r->arena);
	free(r->recs);
	memset(r, 0, sizeof *r);
}

void mfs_replay_event(const struct mfs_replay *rp, size_t i, mfs_event *e)
{
	const struct mfs_replay_rec *x = &rp->recs[i];
	e->user = rp->arena + x->off;
	e->user_len = x->ulen;
	e->item = rp->arena + x->off + x->ulen;
	e->item_len = x->ilen;
	e->rating = x->rating;
	e->time = 0;
}

static uint64_t mix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

MFS_API int64_t mfs_learner_replay(mfs_learner *l, mfs_diag *diag)
{
	if (!l)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no learner");
	int64_t rc = mfs_learner_flush(l, diag);
	if (rc < 0)
		return rc;
	struct mfs_replay *rp = &l->keep;
	if (l->c.epochs < 2 || rp->n == 0)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0,
				    "no events kept to replay (epochs %llu)",
				    (unsigned long long)l->c.epochs);
	enum { B = 4096, RB = 1 << 20 };
	mfs_event *batch = malloc(B * sizeof *batch);
	mfs_row_event *rows = malloc(rp->n * sizeof *rows);
	uint32_t *order = NULL;
	rc = -MFS_E_NOMEM;
	if (!batch)
		goto nomem;
	int resolved = rows != NULL;
	for (size_t i = 0; resolved && i < rp->n; i += B) {
		size_t cn = rp->n - i < B ? rp->n - i : B;
		for (size_t j = 0; j < cn; j++)
			mfs_replay_event(rp, i + j, &batch[j]);
		resolved = mfs_model_resolve(l->m, batch, cn, rows + i) == (int64_t)cn;
	}
	if (!resolved) {
		free(rows);
		rows = NULL;
		if (!(order = malloc(rp->n * sizeof *order)))
			goto nomem;
		for (size_t i = 0; i < rp->n; i++)
			order[i] = (uint32_t)i;
	}
	uint64_t rs = l->c.model.seed ^ 0x5eed5eed5eed5eedULL;
	mfs_model_set_replay(l->m, 1); /* passes 2..N: the replay settings */
	int stopped = 0;
	for (uint64_t ep = 2; ep <= l->c.epochs && !stopped; ep++) {
		/* the same swaps on the records as on an index, so both orders agree */
		for (size_t i = rp->n - 1; i > 0; i--) {
			size_t j = (size_t)(mix64(&rs) % (i + 1));
			if (rows) {
				mfs_row_event t = rows[i];
				rows[i] = rows[j];
				rows[j] = t;
			} else {
				uint32_t t = order[i];
				order[i] = order[j];
				order[j] = t;
			}
		}
		mfs_learn_stats es;
		memset(&es, 0, sizeof es);
		for (size_t i = 0, cn; i < rp->n; i += cn) {
			cn = rp->n - i < B ? rp->n - i : B;
			int64_t r;
			if (rows) {
				if (l->c.threads > 1) /* whole windows per call: the blocks fill up */
					cn = rp->n - i < RB ? rp->n - i : RB;
				r = mfs_model_learn_rows(l->m, rows + i, cn, &es);
			} else {
				for (size_t j = 0; j < cn; j++)
					mfs_replay_event(rp, order[i + j], &batch[j]);
				r = mfs_model_learn(l->m, batch, cn, &es);
			}
			if (r < 0) {
				rc = mfs_diag_set(diag, (int)-r, 0, NULL, 0, 0,
						  "learning stopped in pass %llu: %s",
						  (unsigned long long)ep, mfs_error_name((int)r));
				goto out;
			}
			if (l->c.report && l->c.report(l->c.report_ctx, l, (unsigned)ep, &es)) {
				stopped = 1;
				break;
			}
		}
		l->steps += es.events;
		if (!stopped)
			l->epochs_done = ep;
	}
	rc = (int64_t)l->epochs_done;
	goto out;
nomem:
	rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory for the replay passes");
out:
	free(order);
	free(rows);
	free(batch);
	return rc;
}
