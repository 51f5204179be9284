/*
 * test_live.c - follow mode is live: what has arrived is handed out (and
 * learned, and checkpointed) without waiting for more input; an idle source
 * gives the caller its turn (-MFS_E_AGAIN); a lingering batch collects what
 * trickles in; batches end on the checkpoint counts, so checkpoints and deltas
 * fall exactly where they were asked for. Every input is generated here.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* n lines "u<i%97>\ti<i%89>\t<1..5>" into path. */
static void write_lines(const char *path, int n)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < n; i++)
		fprintf(f, "u%d\ti%d\t%d\n", i % 97, i % 89, 1 + i % 5);
	assert_int_equal(fclose(f), 0);
}

static mfs_source *open_follow(const char *path, unsigned queue)
{
	mfs_source_config2 c2;
	mfs_source_config2_default(&c2);
	c2.follow = 1;
	c2.queue = queue;
	mfs_source *s = NULL;
	mfs_diag d;
	assert_int_equal(mfs_source_open2(&s, &path, 1, NULL, &c2, &d), 0);
	return s;
}

/* Everything in a 10,000-line file comes out, then the idle source says AGAIN. */
static void all_then_again(unsigned queue)
{
	const char *path = mfs_test_path(queue ? "ten_k_thread.tsv" : "ten_k.tsv");
	write_lines(path, 10000);
	mfs_source *s = open_follow(path, queue);
	long total = 0;
	int again = 0;
	double t0 = now_s();
	while (now_s() - t0 < 20 && !again) {
		const mfs_event *ev;
		mfs_diag d;
		int n = mfs_source_next_wait(s, &ev, 100, &d);
		if (n == -MFS_E_AGAIN) {
			assert_null(ev);
			again = 1;
			break;
		}
		assert_true(n > 0);
		total += n;
	}
	assert_int_equal(total, 10000);
	assert_true(again);
	/* more input after the idle spell is read too */
	FILE *f = fopen(path, "a");
	fprintf(f, "late\tx\t4\n");
	fclose(f);
	int n = 0;
	t0 = now_s();
	while (now_s() - t0 < 20) {
		const mfs_event *ev;
		mfs_diag d;
		n = mfs_source_next_wait(s, &ev, 100, &d);
		if (n > 0) {
			assert_int_equal(n, 1);
			assert_memory_equal(ev[0].user, "late", 4);
			break;
		}
		assert_int_equal(n, -MFS_E_AGAIN);
	}
	assert_int_equal(n, 1);
	mfs_source_free(s);
}

static void live__followed_file_all_events_handed_out_then_again_caller_thread(void **state)
{
	(void)state;
	all_then_again(0);
}

static void live__followed_file_all_events_handed_out_then_again_reader_thread(void **state)
{
	(void)state;
	all_then_again(2);
}

/* Without follow mode next_wait is next: no AGAIN, 0 at the end. */
static void live__next_wait_without_follow_ends_with_zero(void **state)
{
	(void)state;
	const char *path = mfs_test_path("finite.tsv");
	write_lines(path, 10);
	mfs_source *s = NULL;
	mfs_diag d;
	assert_int_equal(mfs_source_open(&s, &path, 1, NULL, &d), 0);
	const mfs_event *ev;
	assert_int_equal(mfs_source_next_wait(s, &ev, 0, &d), 10);
	assert_int_equal(mfs_source_next_wait(s, &ev, 0, &d), 0);
	mfs_source_free(s);
}

struct trickle {
	const char *path;
	int lines;
};

static void *trickle_main(void *arg)
{
	struct trickle *t = arg;
	int fd = open(t->path, O_WRONLY | O_APPEND);
	for (int i = 0; i < t->lines; i++) {
		char l[64];
		int k = snprintf(l, sizeof l, "t%d\ti%d\t3\n", i, i % 7);
		if (write(fd, l, (size_t)k) != k)
			break;
		usleep(1000);
	}
	close(fd);
	return NULL;
}

/* Lines appended one per millisecond: a 100 ms linger gathers them into few batches. */
static int batches_of_trickle(const char *name, unsigned linger, unsigned queue, double *secs)
{
	const char *path = mfs_test_path(name);
	mfs_write_file(path, "", 0);
	mfs_source *s = open_follow(path, queue);
	assert_int_equal(mfs_source_set_linger(s, linger), 0);
	struct trickle t = { path, 300 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, trickle_main, &t), 0);
	int total = 0, batches = 0;
	double t0 = now_s();
	while (total < t.lines && now_s() - t0 < 30) {
		const mfs_event *ev;
		mfs_diag d;
		int n = mfs_source_next_wait(s, &ev, 50, &d);
		if (n == -MFS_E_AGAIN)
			continue;
		assert_true(n > 0);
		/* the IDs of a lingering batch stay intact over the refills */
		for (int k = 0; k < n; k++) {
			char want[32];
			int wl = snprintf(want, sizeof want, "t%d", total + k);
			assert_int_equal(ev[k].user_len, (size_t)wl);
			assert_memory_equal(ev[k].user, want, (size_t)wl);
		}
		total += n;
		batches++;
	}
	*secs = now_s() - t0;
	pthread_join(th, NULL);
	mfs_source_free(s);
	assert_int_equal(total, t.lines);
	return batches;
}

static void live__linger_gathers_a_trickle_into_few_batches(void **state)
{
	(void)state;
	/*
	 * 300 lines over >= 300 ms (longer on a busy machine), each batch lingers
	 * 100 ms: at most secs / 0.1 + 1 batches; without the linger about one per
	 * line.
	 */
	double secs;
	int b = batches_of_trickle("trickle_sync.tsv", 100, 0, &secs);
	if (b > secs / 0.1 + 3)
		fail_msg("%d batches in %.2f s", b, secs);
	assert_true(b < 100);
	b = batches_of_trickle("trickle_thread.tsv", 100, 2, &secs);
	if (b > secs / 0.1 + 3)
		fail_msg("%d batches in %.2f s", b, secs);
	assert_true(b < 100);
	assert_int_equal(mfs_source_set_linger(NULL, 1), -MFS_E_INVAL);
}

/* With align 1000, no batch crosses a multiple of 1000. */
static void live__align_cuts_batches_at_multiples(void **state)
{
	(void)state;
	const char *path = mfs_test_path("align.tsv");
	write_lines(path, 7777);
	for (unsigned queue = 0; queue <= 2; queue += 2) {
		mfs_source_config2 c2;
		mfs_source_config2_default(&c2);
		c2.queue = queue;
		mfs_source *s = NULL;
		mfs_diag d;
		assert_int_equal(mfs_source_open2(&s, &path, 1, NULL, &c2, &d), 0);
		assert_int_equal(mfs_source_set_align(s, 1000), 0);
		long total = 0;
		int ends_on_multiple = 0;
		const mfs_event *ev;
		int n;
		while ((n = mfs_source_next(s, &ev, &d)) > 0) {
			assert_true(total / 1000 == (total + n - 1) / 1000);
			total += n;
			ends_on_multiple += total % 1000 == 0;
		}
		assert_int_equal(n, 0);
		assert_int_equal(total, 7777);
		assert_int_equal(ends_on_multiple, 7);
		mfs_source_free(s);
	}
}

static int count_ckpt(const char *dir, const char *name)
{
	char p[1400];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

/*
 * train --follow on a 10,000-line file with a checkpoint every second: the
 * checkpoint of all 10,000 events is written while the stream sits idle,
 * without SIGTERM and without more input.
 */
static void live__train_follow_checkpoints_what_arrived_while_idle(void **state)
{
	(void)state;
	const char *in = mfs_test_path("live_in.tsv");
	write_lines(in, 10000);
	const char *ck = mfs_test_path("live_ck");
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execl(MFS_CLI, MFS_CLI, "train", "--follow", "--quiet", "--dim", "8",
		      "--checkpoint-dir", ck, "--checkpoint-every", "1s", in, (char *)NULL);
		_exit(127);
	}
	int found = 0;
	double t0 = now_s();
	while (!found && now_s() - t0 < 30) {
		usleep(50 * 1000);
		found = count_ckpt(ck, "ckpt-00000000000000010000.mfs");
	}
	int st;
	assert_int_equal(waitpid(pid, &st, WNOHANG), 0); /* still following */
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(found);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* --checkpoint-every 50000 --delta-every 10000 over 100,000 events: exactly there. */
static void live__checkpoint_cadence_exact_under_a_fast_stream(void **state)
{
	(void)state;
	const char *in = mfs_test_path("cadence.tsv");
	write_lines(in, 100000);
	const char *ck = mfs_test_path("cadence_ck");
	struct mfs_run r;
	assert_int_equal(mfs_run_sh(&r, "'%s' train --quiet --dim 8 --checkpoint-dir '%s' "
				    "--checkpoint-every 50000 --delta-every 10000 --keep 10 '%s'",
				    MFS_CLI, ck, in),
			 0);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	static const char *const want[] = {
		"ckpt-00000000000000010000.mfs",   "ckpt-00000000000000020000.delta",
		"ckpt-00000000000000030000.delta", "ckpt-00000000000000040000.delta",
		"ckpt-00000000000000050000.mfs",   "ckpt-00000000000000060000.delta",
		"ckpt-00000000000000070000.delta", "ckpt-00000000000000080000.delta",
		"ckpt-00000000000000090000.delta", "ckpt-00000000000000100000.mfs",
	};
	for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
		if (!count_ckpt(ck, want[k]))
			fail_msg("missing %s", want[k]);
	}
	DIR *d = opendir(ck);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, "ckpt-", 5) == 0;
	closedir(d);
	assert_int_equal(n, 10);
}

static void *fifo_writer(void *arg)
{
	int fd = open((const char *)arg, O_WRONLY);
	if (fd < 0)
		return NULL;
	if (write(fd, "p1\ti1\t4\n", 9) != 9)
		return NULL;
	usleep(1500 * 1000); /* the pipe stays open, quiet */
	close(fd);
	return NULL;
}

/* A pipe in follow mode: a line is handed out at once, not when the next one comes. */
static void live__follow_pipe_line_handed_out_without_waiting_for_more(void **state)
{
	(void)state;
	const char *path = mfs_test_path("live.fifo");
	assert_int_equal(mkfifo(path, 0600), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, fifo_writer, (void *)path), 0);
	mfs_source *s = open_follow(path, 0);
	double t0 = now_s();
	int n = 0;
	while (n == 0 && now_s() - t0 < 5) {
		const mfs_event *ev;
		mfs_diag d;
		n = mfs_source_next_wait(s, &ev, 50, &d);
		if (n == -MFS_E_AGAIN)
			n = 0;
	}
	double dt = now_s() - t0;
	assert_int_equal(n, 1);
	if (dt > 1.2)
		fail_msg("the line came out after %.2f s: it waited for the writer", dt);
	mfs_source_free(s);
	pthread_join(th, NULL);
}

/* A directory with a symlink loop and a hard link: each file once, no error. */
static void live__directory_links_and_loops_read_once(void **state)
{
	(void)state;
	char dir[1200], sub[1300], p[1400], q[1400];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("links"));
	snprintf(sub, sizeof sub, "%s/a", dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mkdir(sub, 0755), 0);
	snprintf(p, sizeof p, "%s/x.tsv", sub);
	write_lines(p, 10);
	snprintf(q, sizeof q, "%s/hard.tsv", dir);
	assert_int_equal(link(p, q), 0);
	snprintf(q, sizeof q, "%s/up", sub);
	assert_int_equal(symlink("..", q), 0);
	const char *in = dir;
	mfs_source *s = NULL;
	mfs_diag d;
	assert_int_equal(mfs_source_open(&s, &in, 1, NULL, &d), 0);
	const mfs_event *ev;
	int n, total = 0;
	while ((n = mfs_source_next(s, &ev, &d)) > 0)
		total += n;
	assert_int_equal(n, 0);
	assert_int_equal(total, 10);
	mfs_source_free(s);
}

struct filler {
	const char *dir;
	int files;
};

/* files of 5 lines each, written under a hidden name and renamed in (as sinks do) */
static void *filler_main(void *arg)
{
	struct filler *f = arg;
	for (int i = 0; i < f->files; i++) {
		char tmp[1400], fin[1400];
		snprintf(tmp, sizeof tmp, "%s/.f%05d.tsv", f->dir, i);
		snprintf(fin, sizeof fin, "%s/f%05d.tsv", f->dir, i);
		FILE *o = fopen(tmp, "w");
		if (!o)
			return NULL;
		for (int j = 0; j < 5; j++)
			fprintf(o, "f%d\ti%d\t%d\n", i, j, 1 + j);
		fclose(o);
		if (rename(tmp, fin) != 0)
			return NULL;
		if (i == f->files / 2) {
			/* a loop appears while following: nothing is read twice through it */
			char lp[1400];
			snprintf(lp, sizeof lp, "%s/loop", f->dir);
			if (symlink(".", lp) != 0)
				return NULL;
		}
	}
	return NULL;
}

/*
 * Follow a directory while 3,000 files arrive (and a symlink loop): every
 * event once. Linear in the files: the old rescans compared every name with
 * every known file at every file end.
 */
static void live__follow_many_new_files_and_a_loop_each_event_once(void **state)
{
	(void)state;
	const char *dir = mfs_test_path("many");
	assert_int_equal(mkdir(dir, 0755), 0);
	for (unsigned queue = 0; queue <= 2; queue += 2) {
		char sub[1300];
		snprintf(sub, sizeof sub, "%s/q%u", dir, queue);
		assert_int_equal(mkdir(sub, 0755), 0);
		const char *in = sub;
		mfs_source_config2 c2;
		mfs_source_config2_default(&c2);
		c2.follow = 1;
		c2.queue = queue;
		mfs_source *s = NULL;
		mfs_diag d;
		assert_int_equal(mfs_source_open2(&s, &in, 1, NULL, &c2, &d), 0);
		struct filler f = { sub, 3000 };
		pthread_t th;
		assert_int_equal(pthread_create(&th, NULL, filler_main, &f), 0);
		long total = 0;
		double t0 = now_s(), done_at = 0;
		while (now_s() - t0 < 60) {
			const mfs_event *ev;
			int n = mfs_source_next_wait(s, &ev, 50, &d);
			if (n > 0)
				total += n;
			else
				assert_int_equal(n, -MFS_E_AGAIN);
			if (total >= 15000 && !done_at)
				done_at = now_s();
			if (done_at && now_s() - done_at > 0.5)
				break; /* and nothing more comes through the loop */
		}
		pthread_join(th, NULL);
		mfs_source_free(s);
		assert_int_equal(total, 15000);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(live__followed_file_all_events_handed_out_then_again_caller_thread),
		cmocka_unit_test(live__followed_file_all_events_handed_out_then_again_reader_thread),
		cmocka_unit_test(live__next_wait_without_follow_ends_with_zero),
		cmocka_unit_test(live__linger_gathers_a_trickle_into_few_batches),
		cmocka_unit_test(live__align_cuts_batches_at_multiples),
		cmocka_unit_test(live__train_follow_checkpoints_what_arrived_while_idle),
		cmocka_unit_test(live__checkpoint_cadence_exact_under_a_fast_stream),
		cmocka_unit_test(live__directory_links_and_loops_read_once),
		cmocka_unit_test(live__follow_pipe_line_handed_out_without_waiting_for_more),
		cmocka_unit_test(live__follow_many_new_files_and_a_loop_each_event_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
