/*
 * parallel.c - deterministic block-parallel learning of resolved events
 * (mfs_model_set_threads, mfs_model_learn_rows with N > 1 threads).
 * mfs_model_learn_rows lives here, above model.c's serial learner, so that
 * the scheduler calls the model and never the other way round.
 *
 * A call is cut into windows of up to N x MFS_PAR_WINDOW events. The calling
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

/* Events per thread in a window. */
#define MFS_PAR_WINDOW 65536

struct par {
	mfs_model *m;
	unsigned n; /* threads */
	pthread_barrier_t bar;
	pthread_mutex_t gate_mu; /* the gate: workers wait until all are started */
	pthread_cond_t gate_cv;
	int go;
	mfs_row_event *grid;  /* the window's events, block by block */
	size_t *start;        /* n * n + 1 block offsets into grid */
	float rawmu;          /* mu's term for the window */
	int done;             /* set by the caller before the last barrier */
	struct mfs_block_acc *acc; /* one per thread */
};

struct worker {
	struct par *p;
	unsigned t;
};

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
	if (p->done)
		return NULL; /* not all threads could be started */
	for (;;) {
		pthread_barrier_wait(&p->bar); /* a window is bucketed, or we are done */
		if (p->done)
			return NULL;
		learn_rounds(p, w->t);
	}
}

static int64_t learn_parallel(mfs_model *m, const mfs_row_event *ev, size_t n,
			      mfs_learn_stats *st)
{
	struct par p;
	memset(&p, 0, sizeof p);
	p.m = m;
	p.n = m->threads;
	const unsigned nt = p.n;
	const size_t nb = (size_t)nt * nt;
	size_t win = (size_t)nt * MFS_PAR_WINDOW;
	if (win > n)
		win = n;
	p.grid = malloc((win ? win : 1) * sizeof *p.grid);
	p.start = calloc(nb + 1, sizeof *p.start);
	size_t *fill = malloc(nb * sizeof *fill);
	uint32_t *blk = malloc((win ? win : 1) * sizeof *blk);
	p.acc = calloc(nt, sizeof *p.acc);
	pthread_t *tid = calloc(nt, sizeof *tid);
	struct worker *w = calloc(nt, sizeof *w);
	int64_t rc = -MFS_E_NOMEM;
	unsigned started = 0;
	int barrier = 0, gate = 0;
	if (!p.grid || !p.start || !fill || !blk || !p.acc || !tid || !w)
		goto out;
	pthread_mutex_init(&p.gate_mu, NULL);
	pthread_cond_init(&p.gate_cv, NULL);
	gate = 1;
	if (pthread_barrier_init(&p.bar, NULL, nt) != 0)
		goto out;
	barrier = 1;
	for (unsigned t = 1; t < nt; t++) {
		w[t].p = &p;
		w[t].t = t;
		if (pthread_create(&tid[t], NULL, worker_main, &w[t]) != 0)
			break;
		started++;
	}
	pthread_mutex_lock(&p.gate_mu);
	p.done = started != nt - 1; /* fewer threads than asked: they stop, the call fails */
	p.go = 1;
	pthread_cond_broadcast(&p.gate_cv);
	pthread_mutex_unlock(&p.gate_mu);
	if (p.done)
		goto out;
	int64_t learned = 0;
	uint64_t unplaced = 0, outside = 0;
	double sq = 0.0, ab = 0.0;
	for (size_t base = 0; base < n; base += win) {
		size_t cn = n - base < win ? n - base : win;
		const mfs_row_event *e = ev + base;
		/* bucket: a stable counting sort by block */
		memset(p.start, 0, (nb + 1) * sizeof *p.start);
		for (size_t j = 0; j < cn; j++) {
			if (MFS_UNLIKELY(!mfs_model_rows_ok(m, &e[j]))) {
				blk[j] = UINT32_MAX;
				unplaced++;
				continue;
			}
			blk[j] = (e[j].user % nt) * nt + e[j].item % nt;
			p.start[blk[j] + 1]++;
			mfs_dirty_set(&m->user, e[j].user);
			mfs_dirty_set(&m->item, e[j].item);
		}
		for (size_t b = 0; b < nb; b++)
			p.start[b + 1] += p.start[b];
		memcpy(fill, p.start, nb * sizeof *fill);
		for (size_t j = 0; j < cn; j++)
			if (blk[j] != UINT32_MAX)
				p.grid[fill[blk[j]]++] = e[j];
		p.rawmu = mfs_model_raw_mu(m);
		memset(p.acc, 0, nt * sizeof *p.acc);
		pthread_barrier_wait(&p.bar); /* workers start the rounds */
		learn_rounds(&p, 0);
		/* merge in thread order */
		for (unsigned t = 0; t < nt; t++) {
			sq += p.acc[t].sq;
			ab += p.acc[t].ab;
			m->mu_sum += p.acc[t].mu_sum;
			m->mu_count += p.acc[t].mu_count;
			learned += (int64_t)p.acc[t].mu_count;
			outside += p.acc[t].outside;
		}
	}
	p.done = 1;
	pthread_barrier_wait(&p.bar); /* the workers see done and return */
	mfs_model_account(m, st, learned, unplaced, outside, sq, ab);
	rc = learned;
out:
	for (unsigned t = 1; t <= started; t++)
		pthread_join(tid[t], NULL);
	if (barrier)
		pthread_barrier_destroy(&p.bar);
	if (gate) {
		pthread_mutex_destroy(&p.gate_mu);
		pthread_cond_destroy(&p.gate_cv);
	}
	free(p.grid);
	free(p.start);
	free(fill);
	free(blk);
	free(p.acc);
	free(tid);
	free(w);
	return rc;
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
