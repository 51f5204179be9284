/*
 * source_queue.c - the reader thread: batches made ahead, handed out in order.
 *
 * The thread runs the line stage (source_lines.c) and copies each batch,
 * with its IDs, into a queue slot; the consumer takes slots in order.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "source_internal.h"

static void *reader_main(void *arg)
{
	struct mfs_source *s = arg;
	for (;;) {
		pthread_mutex_lock(&s->mu);
		while (s->qcount == s->nslots && !s->quit)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->quit) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		struct slot *sl = &s->slots[(s->qhead + s->qcount) % s->nslots];
		pthread_mutex_unlock(&s->mu);

		int n = mfs_src_next_sync(s, &sl->diag);
		if (n > 0) {
			/* copy the IDs out of the text buffer, which moves on */
			char *a = sl->arena;
			for (int k = 0; k < n; k++) {
				mfs_event e = s->events[k];
				memcpy(a, e.user, e.user_len);
				e.user = a;
				a += e.user_len;
				memcpy(a, e.item, e.item_len);
				e.item = a;
				a += e.item_len;
				sl->events[k] = e;
			}
			memcpy(sl->loc, s->evloc, (size_t)n * sizeof *sl->loc);
		}
		sl->n = n;
		sl->where = mfs_src_snap_now(s);
		sl->st = s->st;

		pthread_mutex_lock(&s->mu);
		s->qcount++;
		pthread_cond_broadcast(&s->cv);
		if (n < 0) {
			/* wait for the consumer: skip the file, or try again */
			s->decision = 0;
			while (!s->decision && !s->quit)
				pthread_cond_wait(&s->cv, &s->mu);
			if (s->decision == 1 && !s->quit)
				mfs_src_skip_file_sync(s);
		}
		int end = n == 0;
		if (end)
			s->prod_done = 1;
		pthread_mutex_unlock(&s->mu);
		if (end)
			break;
	}
	return NULL;
}

int mfs_src_start_thread(struct mfs_source *s)
{
	s->started = 1;
	s->cons_at = mfs_src_snap_now(s); /* before the thread: nothing handed out yet */
	if (pthread_create(&s->th, NULL, reader_main, s) != 0) {
		s->threaded = 0; /* read in the caller's thread instead */
		return 0;
	}
	return 0;
}

void mfs_src_stop_thread(struct mfs_source *s)
{
	if (!s->threaded || !s->started)
		return;
	atomic_store(&s->stop, 1);
	pthread_mutex_lock(&s->mu);
	s->quit = 1;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->th, NULL);
	s->started = 0;
}

int mfs_src_next_threaded(struct mfs_source *s, const mfs_event **out, int timeout_ms,
			 mfs_diag *diag)
{
	int64_t deadline = timeout_ms >= 0 ? mfs_src_now_ms() + timeout_ms : -1;
	pthread_mutex_lock(&s->mu);
	if (s->held) {
		/* the previous batch's slot is free again */
		s->held = NULL;
		s->qhead = (s->qhead + 1) % s->nslots;
		s->qcount--;
		pthread_cond_broadcast(&s->cv);
	}
	if (s->decision == 0 && s->qcount == 0 && s->cons_valid == 2) {
		/* after an error without mfs_source_skip_file: try again */
		s->decision = 2;
		pthread_cond_broadcast(&s->cv);
	}
	while (s->qcount == 0 && !atomic_load(&s->stop)) {
		/* mfs_source_stop takes no lock (signal handlers): look at the flag now and then */
		long wait_ms = 50;
		if (deadline >= 0) {
			int64_t left = deadline - mfs_src_now_ms();
			if (left <= 0) {
				pthread_mutex_unlock(&s->mu);
				*out = NULL;
				return -MFS_E_AGAIN;
			}
			if (left < wait_ms)
				wait_ms = (long)left;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += wait_ms * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
	}
	if (s->qcount == 0) {
		pthread_mutex_unlock(&s->mu);
		*out = NULL;
		return 0;
	}
	struct slot *sl = &s->slots[s->qhead];
	pthread_mutex_unlock(&s->mu);
	int n = sl->n;
	s->cons_at = sl->where;
	if (n < 0) {
		if (diag)
			*diag = sl->diag;
		/* the error slot is consumed now; the reader waits for a decision */
		pthread_mutex_lock(&s->mu);
		s->qhead = (s->qhead + 1) % s->nslots;
		s->qcount--;
		s->cons_valid = 2;
		pthread_mutex_unlock(&s->mu);
		return n;
	}
	if (n == 0) {
		/* the end: leave the slot in place, so later calls return 0 too */
		s->cons_st = sl->st;
		s->cons_st.events = s->cons_st.events;
		s->cons_valid = 1;
		*out = sl->events;
		return 0;
	}
	s->held = sl;
	s->cons_st = sl->st;
	s->cons_valid = 1;
	*out = sl->events;
	return n;
}
