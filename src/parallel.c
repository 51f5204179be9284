/*
 * parallel.c - deterministic block-parallel learning of resolved events
 * (mfs_model_set_threads, mfs_model_learn_rows with N > 1 threads).
 * mfs_model_learn_rows lives here, above model.c's serial learner, so that
 * the scheduler calls the model and never the other way round.
 *
 * A call is cut into windows of up to N x W events (W: mfs_model_set_window). The calling
 * thread buckets a window by (user row mod N, item row mod N) into an N x N
 * grid (a stable counting sort: inside a block the events keep their order),
 * sets the rows' dirty bits and counts the events whose rows are not in use.
 * Then N threads (the caller is thread 0) learn the grid in N rounds: in round
 * r thread t learns block (t, (t + r) mod N). The blocks of a round share no
 * user row and no item row, so no two threads touch the same row; the
 * prediction's mu term is fixed for the window. Each thread adds its blocks
 * into its own accumulator; after the window the caller merges them in thread
 * order into mu and the statistics. Nothing depends on timing: the same
 * input and N give the same model byte for byte.
 *
 * Pass 1 (mfs_model_learn with N > 1 threads) runs on the same grid: the
 * calling thread resolves a window's IDs in order, as the serial loop would
 * (the clock, fresh rows, evictions, the users' histories in stream order),
 * then the grid learns it, counting the rows' events. A window ends
 * early before a new ID that evicts a row, so no row in flight is evicted;
 * windows of fewer than MFS_PAR_SMALL events are learned on the caller's
 * thread alone, in order. The windows are cut from the start of the call:
 * mfs_learner hands whole windows counted on the model's clock
 * (mfs_model_window_left), so a resumed run cuts the stream where an
 * uninterrupted one does.
 *
 * Threads: the N - 1 workers live for one call. They share the model (each
 * writes only the rows of its blocks), the window's bucketed events (read
 * only) and their accumulators (each its own); a barrier separates the
 * bucketing, every round and the merge. They start behind a gate that opens
 * once all are created (or tells them to return when one could not be), and
 * stop when the caller marks the work done and passes the barrier once more.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* Events per thread in a window, by default. */
#define MFS_PAR_WINDOW 65536

/* Events of a window at most. */
static size_t window_of(const mfs_model *m)
{
	return (size_t)m->threads * (m->window ? m->window : MFS_PAR_WINDOW);
}

struct par {
	mfs_model *m;
	unsigned n; /* threads */
	size_t win; /* events per window at most */
	pthread_barrier_t bar;
	pthread_mutex_t gate_mu; /* the gate: workers wait until all are started */
	pthread_cond_t gate_cv;
	int go;
	mfs_row_event *grid;  /* the window's events, block by block */
	size_t *start;        /* n * n + 1 block offsets into grid */
	size_t *fill;
	uint32_t *blk;
	float rawmu;          /* mu's term for the window */
	int failed;           /* not every worker started: those that did return */
	int done;             /* set by the caller before the last barrier */
	struct mfs_block_acc *acc; /* one per thread */
	pthread_t *tid;
	struct worker *w;
	unsigned started;
	int barrier, gate;
	/* the call's sums */
	int64_t learned;
	uint64_t unplaced, outside;
	double sq, ab;
};

struct worker {
	struct par *p;
	unsigned t;
};

/* Events of a pass-1 window below which the caller learns it alone, in order. */
#define MFS_PAR_SMALL 1024

/* Thread t's rounds over the current window. */
static void learn_rounds(struct par *p, unsigned t)
{
	for (unsigned r = 0; r < p->n; r++) {
		size_t b = (size_t)t * p->n + (t + r) % p->n;
		size_t lo = p->start[b], hi = p->start[b + 1];
		if (hi > lo)
			mfs_model_learn_block(p->m, p->grid + lo, hi - lo, p->rawmu, &p->acc[t]);
		pthread_barrier_wait(&p->bar);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct par *p = w->p;
	pthread_mutex_lock(&p->gate_mu);
	while (!p->go)
		pthread_cond_wait(&p->gate_cv, &p->gate_mu);
	pthread_mutex_unlock(&p->gate_mu);
	if (p->failed)
		return NULL; /* not all threads could be started */
	for (;;) {
		pthread_barrier_wait(&p->bar); /* a window is bucketed, or we are done */
		if (p->done)
			return NULL;
		learn_rounds(p, w->t);
	}
}

/* The model's window buffers, for windows of up to win events. */
static int par_buffers(mfs_model *m, size_t win)
{
	if (win <= m->par_cap)
		return 0;
	free(m->par_rows);
	free(m->par_grid);
	free(m->par_blk);
	m->par_rows = malloc(win * sizeof *m->par_rows);
	m->par_grid = malloc(win * sizeof *m->par_grid);
	m->par_blk = malloc(win * sizeof *m->par_blk);
	if (!m->par_rows || !m->par_grid || !m->par_blk) {
		m->par_cap = 0;
		return -MFS_E_NOMEM;
	}
	m->par_cap = win;
	return 0;
}

/* The buffers of windows of up to win events and the N - 1 started workers. */
static int par_open(struct par *p, mfs_model *m, size_t win)
{
	memset(p, 0, sizeof *p);
	p->m = m;
	p->n = m->threads;
	p->win = win;
	const unsigned nt = p->n;
	const size_t nb = (size_t)nt * nt;
	if (par_buffers(m, win ? win : 1) < 0)
		return -MFS_E_NOMEM;
	p->grid = m->par_grid;
	p->blk = m->par_blk;
	p->start = calloc(nb + 1, sizeof *p->start);
	p->fill = malloc(nb * sizeof *p->fill);
	p->acc = calloc(nt, sizeof *p->acc);
	p->tid = calloc(nt, sizeof *p->tid);
	p->w = calloc(nt, sizeof *p->w);
	if (!p->grid || !p->start || !p->fill || !p->blk || !p->acc || !p->tid || !p->w)
		return -MFS_E_NOMEM;
	pthread_mutex_init(&p->gate_mu, NULL);
	pthread_cond_init(&p->gate_cv, NULL);
	p->gate = 1;
	if (pthread_barrier_init(&p->bar, NULL, nt) != 0)
		return -MFS_E_NOMEM;
	p->barrier = 1;
	for (unsigned t = 1; t < nt; t++) {
		p->w[t].p = p;
		p->w[t].t = t;
		if (pthread_create(&p->tid[t], NULL, worker_main, &p->w[t]) != 0)
			break;
		p->started++;
	}
	pthread_mutex_lock(&p->gate_mu);
	p->failed = p->started != nt - 1; /* fewer threads than asked: they stop, the call fails */
	p->go = 1;
	pthread_cond_broadcast(&p->gate_cv);
	pthread_mutex_unlock(&p->gate_mu);
	return p->failed ? -MFS_E_NOMEM : 0;
}

static void par_close(struct par *p)
{
	if (p->go && !p->failed) {
		p->done = 1;
		pthread_barrier_wait(&p->bar); /* the workers see done and return */
	}
	for (unsigned t = 1; t <= p->started; t++)
		pthread_join(p->tid[t], NULL);
	if (p->barrier)
		pthread_barrier_destroy(&p->bar);
	if (p->gate) {
		pthread_mutex_destroy(&p->gate_mu);
		pthread_cond_destroy(&p->gate_cv);
	}
	free(p->start);
	free(p->fill);
	free(p->acc);
	free(p->tid);
	free(p->w);
}

/* The sums of one window's accumulators, in thread order, into mu and the call's. */
static void par_merge(struct par *p, const struct mfs_block_acc *acc, unsigned n)
{
	for (unsigned t = 0; t < n; t++) {
		p->sq += acc[t].sq;
		p->ab += acc[t].ab;
		p->m->mu_sum += acc[t].mu_sum;
		p->m->mu_count += acc[t].mu_count;
		p->learned += (int64_t)acc[t].mu_count;
		p->outside += acc[t].outside;
	}
}

/* Learn e[0..cn) (cn <= win) on the grid. */
static void par_window(struct par *p, const mfs_row_event *e, size_t cn)
{
	mfs_model *m = p->m;
	const unsigned nt = p->n;
	const size_t nb = (size_t)nt * nt;
	/* bucket: a stable counting sort by block */
	memset(p->start, 0, (nb + 1) * sizeof *p->start);
	for (size_t j = 0; j < cn; j++) {
		if (MFS_UNLIKELY(!mfs_model_rows_ok(m, &e[j]))) {
			p->blk[j] = UINT32_MAX;
			p->unplaced++;
			continue;
		}
		p->blk[j] = (e[j].user % nt) * nt + e[j].item % nt;
		p->start[p->blk[j] + 1]++;
		mfs_dirty_set(&m->user, e[j].user);
		mfs_dirty_set(&m->item, e[j].item);
	}
	for (size_t b = 0; b < nb; b++)
		p->start[b + 1] += p->start[b];
	memcpy(p->fill, p->start, nb * sizeof *p->fill);
	for (size_t j = 0; j < cn; j++)
		if (p->blk[j] != UINT32_MAX)
			p->grid[p->fill[p->blk[j]]++] = e[j];
	p->rawmu = mfs_model_raw_mu(m);
	memset(p->acc, 0, nt * sizeof *p->acc);
	pthread_barrier_wait(&p->bar); /* workers start the rounds */
	learn_rounds(p, 0);
	par_merge(p, p->acc, nt);
}

static int64_t learn_parallel(mfs_model *m, const mfs_row_event *ev, size_t n,
			      mfs_learn_stats *st)
{
	struct par p;
	size_t win = window_of(m);
	if (win > n)
		win = n;
	int64_t rc = par_open(&p, m, win);
	if (rc == 0) {
		for (size_t base = 0; base < n; base += win)
			par_window(&p, ev + base, n - base < win ? n - base : win);
		mfs_model_account(m, st, p.learned, p.unplaced, p.outside, p.sq, p.ab);
		rc = p.learned;
	}
	par_close(&p);
	return rc;
}

/* Pass 1 with N > 1 threads: windows resolved in order, then learned on the grid. */
static int64_t learn_first_parallel(mfs_model *m, const mfs_event *ev, size_t n,
				    mfs_learn_stats *st)
{
	struct par p;
	memset(&p, 0, sizeof p);
	size_t win = window_of(m);
	if (win > n)
		win = n;
	int64_t rc = par_open(&p, m, win);
	mfs_row_event *rows = m->par_rows;
	int failed = 0;
	if (rc == 0) {
		for (size_t base = 0; base < n && !failed;) {
			size_t want = n - base < win ? n - base : win;
			size_t k = mfs_model_resolve_first(m, ev + base, want, rows, &failed);
			if (k >= MFS_PAR_SMALL) {
				par_window(&p, rows, k);
			} else if (k > 0) {
				/* a short window (a new ID evicts): in order, on this thread */
				struct mfs_block_acc a;
				memset(&a, 0, sizeof a);
				size_t live = 0;
				for (size_t j = 0; j < k; j++) {
					if (!mfs_model_rows_ok(m, &rows[j])) {
						p.unplaced++;
						continue;
					}
					rows[live++] = rows[j];
				}
				mfs_model_learn_block(m, rows, live, mfs_model_raw_mu(m), &a);
				par_merge(&p, &a, 1);
			}
			base += k;
		}
		mfs_model_account(m, st, p.learned, p.unplaced, p.outside, p.sq, p.ab);
		rc = failed ? -MFS_E_NOMEM : p.learned;
	}
	par_close(&p);
	return rc;
}

size_t mfs_model_window_size(const mfs_model *m)
{
	return mfs_model_first_parallel(m) ? window_of(m) : 0;
}

size_t mfs_model_window_left(const mfs_model *m)
{
	if (!mfs_model_first_parallel(m))
		return 0;
	uint64_t w = window_of(m);
	return (size_t)(w - m->tick % w);
}

MFS_API int64_t mfs_model_learn(mfs_model *m, const mfs_event *ev, size_t n, mfs_learn_stats *st)
{
	if (!m || (!ev && n))
		return -MFS_E_INVAL;
	if (m->imp.on)
		return mfs_model_learn_implicit(m, ev, n, st, NULL);
	if (MFS_UNLIKELY(m->n_mapped)) {
		/* a model mapped from its file: learn in anonymous huge-page memory */
		int rc = mfs_model_unmap(m);
		if (rc < 0)
			return rc;
	}
	if (mfs_model_first_parallel(m))
		return learn_first_parallel(m, ev, n, st);
	return mfs_model_learn_serial(m, ev, n, st);
}

MFS_API int64_t mfs_model_learn_rows(mfs_model *m, const mfs_row_event *ev, size_t n,
				     mfs_learn_stats *st)
{
	if (!m || (!ev && n))
		return -MFS_E_INVAL;
	if (m->imp.on)
		return -MFS_E_UNSUPPORTED; /* replayed passes: explicit models only */
	if (MFS_UNLIKELY(m->n_mapped)) {
		int rc = mfs_model_unmap(m);
		if (rc < 0)
			return rc;
	}
	if (m->threads > 1)
		return learn_parallel(m, ev, n, st);
	return mfs_model_learn_rows_serial(m, ev, n, st);
}
