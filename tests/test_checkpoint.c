/* test_checkpoint.c - periodic checkpoints: exact resume after SIGKILL, damage, pruning. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

#define RUN(r, ...)                                                          \
	do {                                                                 \
		const char *argv_[] = { MFS_CLI, __VA_ARGS__, NULL };        \
		assert_int_equal(mfs_run_argv(r, (char *const *)argv_, NULL, 0), 0); \
	} while (0)

static int count_ckpts(const char *dir)
{
	DIR *dp = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (dp && (e = readdir(dp)) != NULL)
		n += strncmp(e->d_name, "ckpt-", 5) == 0;
	if (dp)
		closedir(dp);
	return n;
}

/* The event count of the newest checkpoint in dir (0 when there is none). */
static unsigned long long newest_ckpt(const char *dir)
{
	DIR *dp = opendir(dir);
	unsigned long long best = 0;
	struct dirent *e;
	while (dp && (e = readdir(dp)) != NULL) {
		size_t l = strlen(e->d_name);
		if (strncmp(e->d_name, "ckpt-", 5) != 0 || l < 4 || strcmp(e->d_name + l - 4, ".mfs") != 0)
			continue;
		unsigned long long v = strtoull(e->d_name + 5, NULL, 10);
		if (v > best)
			best = v;
	}
	if (dp)
		closedir(dp);
	return best;
}

/* Start train, SIGKILL it after `ms` milliseconds; returns its exit status (137 when killed). */
static int run_and_kill(char *const argv[], int ms)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		freopen("/dev/null", "w", stdout);
		freopen("/dev/null", "w", stderr);
		execv(argv[0], argv);
		_exit(127);
	}
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	kill(pid, SIGKILL);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Killed with SIGKILL at random moments, again and again, then let finish:
 * the saved model is byte-identical to an uninterrupted run's. */
static void train__sigkill_and_resume_gives_the_uninterrupted_model(void **state)
{
	(void)state;
	const char *stream = mfs_test_path("stream.tsv"), *ref = mfs_test_path("ref.mfs"),
		   *out = mfs_test_path("out.mfs");
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("ckpts"));
	struct mfs_run r;
	RUN(&r, "gen", "--events", "300000", "--users", "5000", "--items", "1000", "--seed", "4",
	    "--output", stream);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	RUN(&r, "train", "--quiet", "--dim", "16", "--save", ref, stream);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	/* kill at random moments within the length of a whole run (slower under sanitizers) */
	int full_ms = (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
	if (full_ms < 20)
		full_ms = 20;

	char *argv[] = { MFS_CLI, "train", "--quiet", "--dim", "16", "--checkpoint-dir", dir,
			 "--checkpoint-every", "15000", "--save", (char *)out, (char *)stream, NULL };
	unsigned seed = 12345;
	int kills = 0, extra = 0;
	unsigned long long last = 0;
	for (int k = 0; k < 40; k++) {
		seed = seed * 1103515245u + 12345u;
		int st = run_and_kill(argv, full_ms / 20 + extra +
						(int)((seed >> 16) % (unsigned)(full_ms / 3)));
		if (st == 0)
			break; /* it finished before the kill */
		assert_int_equal(st, 128 + SIGKILL);
		kills++;
		/* a busy machine can make every run die before its first checkpoint:
		 * wait longer after a run that added none, so the chain always moves on */
		unsigned long long now = newest_ckpt(dir);
		if (now == last)
			extra += full_ms / 5;
		last = now;
	}
	assert_true(kills >= 5);
	assert_true(newest_ckpt(dir) > 0);
	assert_int_equal(mfs_run_argv(&r, argv, NULL, 0), 0);
	assert_int_equal(r.status, 0);
	assert_true(strstr(r.out, "\"resumed\": true") != NULL);
	assert_float_equal(mfs_json_number(r.out, "model_events"), 300000, 0);
	assert_true(mfs_json_number(r.out, "events") < 300000); /* only the rest was read */
	mfs_run_free(&r);
	size_t na, nb;
	char *a = mfs_read_file(ref, &na), *b = mfs_read_file(out, &nb);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	free(a);
	free(b);
}

static void corrupt(const char *path, int truncate)
{
	size_t n;
	char *b = mfs_read_file(path, &n);
	assert_non_null(b);
	if (truncate)
		n /= 2;
	else
		b[n / 2] ^= 0x04;
	mfs_write_file(path, b, n);
	free(b);
}

/* The two newest checkpoints damaged (a flipped bit, a truncation): eval
 * warns about each and uses the newest whole one; train resumes from it. */
static void checkpoints__damaged_newest_are_skipped(void **state)
{
	(void)state;
	char dir[1200], a[1200], b[1200], c[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("ck2"));
	snprintf(a, sizeof a, "%s", mfs_test_path("part-a.tsv"));
	snprintf(b, sizeof b, "%s", mfs_test_path("part-b.tsv"));
	snprintf(c, sizeof c, "%s", mfs_test_path("part-c.tsv"));
	struct mfs_run r;
	const char *parts[3] = { a, b, c }, *seeds[3] = { "2", "3", "4" };
	for (int k = 0; k < 3; k++) {
		RUN(&r, "gen", "--events", "20000", "--users", "500", "--items", "300", "--seed",
		    seeds[k], "--output", parts[k]);
		assert_int_equal(r.status, 0);
		mfs_run_free(&r);
	}
	/* three runs over growing inputs, each resuming and ending with a checkpoint:
	 * ckpt-...20000, 40000, 60000 */
	RUN(&r, "train", "--quiet", "--dim", "8", "--checkpoint-dir", dir, "--checkpoint-every",
	    "1000000000", a);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--dim", "8", "--checkpoint-dir", dir, "--checkpoint-every",
	    "1000000000", a, b);
	assert_float_equal(mfs_json_number(r.out, "events"), 20000, 0);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--dim", "8", "--checkpoint-dir", dir, "--checkpoint-every",
	    "1000000000", a, b, c);
	assert_float_equal(mfs_json_number(r.out, "model_events"), 60000, 0);
	mfs_run_free(&r);
	char p1[1400], p2[1400];
	snprintf(p1, sizeof p1, "%s/ckpt-00000000000000060000.mfs", dir);
	snprintf(p2, sizeof p2, "%s/ckpt-00000000000000040000.mfs", dir);
	corrupt(p1, 0);
	corrupt(p2, 1);
	RUN(&r, "eval", "--model", dir, c);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "ckpt-00000000000000060000.mfs"));
	assert_non_null(strstr(r.err, "ckpt-00000000000000040000.mfs"));
	assert_non_null(strstr(r.err, "warning"));
	assert_float_equal(mfs_json_number(r.out, "n"), 20000, 0);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--dim", "8", "--checkpoint-dir", dir, a, b, c);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "resuming from"));
	assert_non_null(strstr(r.err, "ckpt-00000000000000020000.mfs"));
	assert_float_equal(mfs_json_number(r.out, "events"), 40000, 0);
	assert_float_equal(mfs_json_number(r.out, "model_events"), 60000, 0);
	mfs_run_free(&r);
}

static void checkpoint_write__keeps_the_newest_n(void **state)
{
	(void)state;
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("ck3"));
	mkdir(dir, 0755);
	mfs_config c;
	mfs_config_default(&c);
	c.dim = 4;
	c.max_users = 10;
	c.max_items = 10;
	mfs_model *m;
	assert_int_equal(mfs_model_create(&m, &c, NULL), 0);
	for (int k = 0; k < 6; k++) {
		mfs_event e = { "u", "i", 1, 1, 4.0f, 0 };
		mfs_model_learn(m, &e, 1, NULL);
		assert_int_equal(mfs_checkpoint_write(m, dir, "pos", 3, 0, 2, NULL), 0);
	}
	assert_int_equal(count_ckpts(dir), 2);
	mfs_model *l;
	char path[2000];
	assert_int_equal(mfs_checkpoint_load_newest(&l, dir, NULL, NULL, NULL, path, sizeof path, NULL), 0);
	assert_non_null(strstr(path, "ckpt-00000000000000000006.mfs"));
	size_t plen;
	const void *pos = mfs_model_position(l, &plen);
	assert_int_equal(plen, 3);
	assert_memory_equal(pos, "pos", 3);
	mfs_model_free(l);
	mfs_model_free(m);
	/* an empty directory has none */
	char empty[1300];
	snprintf(empty, sizeof empty, "%s/empty", dir);
	mkdir(empty, 0755);
	mfs_diag d;
	assert_int_equal(mfs_checkpoint_load_newest(&l, empty, NULL, NULL, NULL, NULL, 0, &d),
			 -MFS_E_NOTFOUND);
}

/* A full disk: a 2 MiB tmpfs holds one checkpoint; later writes fail with
 * ENOSPC, are reported and counted, learning goes on, and the checkpoint that
 * was written stays whole. Skipped where tmpfs cannot be mounted. */
static void train__checkpoint_enospc_keeps_the_previous_one_and_goes_on(void **state)
{
	(void)state;
	char mnt[1200], dir[1300];
	snprintf(mnt, sizeof mnt, "%s", mfs_test_path("small-fs"));
	mkdir(mnt, 0755);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m") != 0)
		skip();
	snprintf(dir, sizeof dir, "%s/ck", mnt);
	const char *stream = mfs_test_path("s3.tsv");
	struct mfs_run r;
	RUN(&r, "gen", "--events", "300000", "--users", "5000", "--items", "1000", "--seed", "4",
	    "--output", stream);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--dim", "64", "--checkpoint-dir", dir, "--checkpoint-every",
	    "20000", stream);
	int status = r.status;
	double events = mfs_json_number(r.out, "events");
	double failures = mfs_json_number(r.out, "checkpoint_failures");
	double written = mfs_json_number(r.out, "checkpoints");
	int says = strstr(r.err, "No space left on device") != NULL;
	mfs_run_free(&r);
	struct mfs_run ev;
	RUN(&ev, "eval", "--model", dir, stream);
	umount(mnt);
	assert_int_equal(status, 0);
	assert_float_equal(events, 300000, 0);
	assert_true(failures > 0);
	assert_true(written >= 1);
	assert_true(says);
	assert_int_equal(ev.status, 0); /* the checkpoint that fit is whole and loads */
	assert_float_equal(mfs_json_number(ev.out, "n"), 300000, 0);
	mfs_run_free(&ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(train__sigkill_and_resume_gives_the_uninterrupted_model),
		cmocka_unit_test(checkpoints__damaged_newest_are_skipped),
		cmocka_unit_test(checkpoint_write__keeps_the_newest_n),
		cmocka_unit_test(train__checkpoint_enospc_keeps_the_previous_one_and_goes_on),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
