/* test_checkpoint.c - periodic checkpoints: exact resume after SIGKILL, damage, pruning. */
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model_internal.h"
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

/* The event count in a checkpoint name ("ckpt-N.mfs", "ckpt-N.delta") or in the
 * name of a checkpoint's temporary file (".ckpt-N.mfs.tmp.XXXXXX"); 0 for others. */
static unsigned long long name_events(const char *n, int temp)
{
	if (temp) {
		if (n[0] != '.' || strncmp(n + 1, "ckpt-", 5) != 0 || !strstr(n, ".tmp."))
			return 0;
		return strtoull(n + 6, NULL, 10);
	}
	if (strncmp(n, "ckpt-", 5) != 0 || strstr(n, ".tmp"))
		return 0;
	return strtoull(n + 5, NULL, 10);
}

/* The event count of the newest state in dir: its newest checkpoint, whole or delta. */
static unsigned long long newest_state(const char *dir)
{
	DIR *dp = opendir(dir);
	unsigned long long best = 0;
	struct dirent *e;
	while (dp && (e = readdir(dp)) != NULL) {
		unsigned long long v = name_events(e->d_name, 0);
		if (v > best)
			best = v;
	}
	if (dp)
		closedir(dp);
	return best;
}

/* Temporary files of checkpoint writes in dir. */
static int count_temps(const char *dir)
{
	DIR *dp = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (dp && (e = readdir(dp)) != NULL)
		n += name_events(e->d_name, 1) > 0;
	if (dp)
		closedir(dp);
	return n;
}

/* Wait until no process holds dir's lock (a killed learner's writer may still run). */
static void wait_lock_free(const char *dir)
{
	char p[1300];
	snprintf(p, sizeof p, "%s/LOCK", dir);
	int fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return; /* no learner got that far */
	assert_int_equal(flock(fd, LOCK_EX), 0);
	close(fd); /* ours was the last descriptor: released */
}

/*
 * How a kill is triggered: by what the learner does, never by a clock, so that
 * the same kills happen on a busy machine and an idle one. Every kind acts
 * when the run's first checkpoint write begins (its temporary file appears;
 * inotify queues the event, so none is missed however late the test runs):
 *   KILL_LANDED   the learner is stopped (SIGSTOP) there, its forked writer
 *                 finishes the file, then the learner is killed
 *   KILL_WRITING  the learner is killed there; its writer goes on alone and
 *                 finishes the file (the next run waits for it at the lock)
 *   KILL_GROUP    the learner and its writer (its process group) are killed
 *                 there: the file is left half written, a temporary
 */
enum { KILL_LANDED, KILL_WRITING, KILL_GROUP, KILL_KINDS };

/*
 * Start argv (stderr to errpath) in its own process group and kill it as
 * kind says at its first checkpoint of more than `after` events. Returns the
 * exit status: 128 + SIGKILL when killed, else the run ended without writing
 * such a checkpoint.
 */
static int run_until(char *const argv[], const char *dir, int kind, unsigned long long after,
		     const char *errpath)
{
	int in = inotify_init1(IN_CLOEXEC);
	assert_true(in >= 0);
	assert_true(inotify_add_watch(in, dir, IN_CREATE | IN_MOVED_FROM | IN_DELETE) >= 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0);
		freopen("/dev/null", "w", stdout);
		freopen(errpath, "w", stderr);
		execv(argv[0], argv);
		_exit(127);
	}
	setpgid(pid, pid);
	int st, stopped = 0, killed = 0;
	char temp[256] = "";
	while (!killed) {
		if (!stopped && waitpid(pid, &st, WNOHANG) == pid)
			break; /* ended before its kill point */
		struct pollfd pf = { in, POLLIN, 0 };
		if (poll(&pf, 1, 50) <= 0)
			continue;
		char buf[8192] __attribute__((aligned(8)));
		ssize_t n = read(in, buf, sizeof buf);
		for (ssize_t o = 0; !killed && o < n;) {
			const struct inotify_event *ev = (const void *)(buf + o);
			o += (ssize_t)(sizeof *ev + ev->len);
			if (!ev->len)
				continue;
			if (!temp[0] && (ev->mask & IN_CREATE) && name_events(ev->name, 1) > after) {
				/* the write began */
				snprintf(temp, sizeof temp, "%s", ev->name);
				if (kind == KILL_LANDED) {
					kill(pid, SIGSTOP);
					stopped = 1;
				} else {
					kill(kind == KILL_GROUP ? -pid : pid, SIGKILL);
					killed = 1;
				}
			} else if (stopped && strcmp(ev->name, temp) == 0 &&
				   (ev->mask & (IN_MOVED_FROM | IN_DELETE))) {
				/* renamed into place (or removed by a failed write) */
				kill(pid, SIGKILL);
				killed = 1;
			}
		}
	}
	if (killed)
		waitpid(pid, &st, 0);
	close(in);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * Kill argv `kills` times at seeded points: run k writes its checkpoints
 * every P_k events (--checkpoint-every, a seeded value in [lo, hi] written
 * into the argv slot `every`; likewise --delta-every in the slot `delta`,
 * if not NULL) and is killed, as a seeded kind, at its first one. So each
 * run resumes from the one before and gets P_k events further, the same on
 * any machine. Before each run the temporary files left in dir are counted,
 * and the run must report removing exactly those. *saw_delta (may be NULL)
 * tells whether a delta was ever written. Returns the temporary files the
 * last kill left (the next run removes them).
 */
struct kill_slots {
	char *every, *delta; /* argv buffers of 24 bytes (delta may be NULL) */
	unsigned long long lo, hi, dlo, dhi;
};

static int kill_plan(char *const argv[], const char *dir, int kills, const struct kill_slots *ks,
		     unsigned seed, int *saw_delta)
{
	int temps = 0, left_total = 0, kinds[KILL_KINDS] = { 0 };
	mkdir(dir, 0755);
	for (int k = 0; k < kills; k++) {
		seed = seed * 1103515245u + 12345u;
		int kind = (int)((k + seed % 2) % KILL_KINDS); /* every kind, in turn */
		snprintf(ks->every, 24, "%llu", ks->lo + (seed >> 8) % (ks->hi - ks->lo + 1));
		if (ks->delta) {
			seed = seed * 1103515245u + 12345u;
			snprintf(ks->delta, 24, "%llu", ks->dlo + (seed >> 8) % (ks->dhi - ks->dlo + 1));
		}
		char errpath[1300];
		snprintf(errpath, sizeof errpath, "%s/run-%d.err", mfs_test_dir(), k);
		unsigned long long from = newest_state(dir);
		int st = run_until(argv, dir, kind, from, errpath);
		if (st != 128 + SIGKILL)
			fail_msg("run %d ended with status %d before its first checkpoint", k, st);
		kinds[kind]++;
		/* what this run found and removed: the temporaries the last kill left */
		size_t n;
		char *err = mfs_read_file(errpath, &n);
		assert_non_null(err);
		char want[128];
		snprintf(want, sizeof want, "removed %d temporary file", temps);
		if (temps > 0 && !strstr(err, want))
			fail_msg("run %d: expected \"%s\" on stderr, got \"%s\"", k, want, err);
		if (temps == 0 && strstr(err, "temporary file"))
			fail_msg("run %d removed temporary files that were not there: %s", k, err);
		free(err);
		wait_lock_free(dir); /* a writer of KILL_WRITING finishes its file */
		temps = count_temps(dir);
		left_total += temps;
		/* a write that was let finish has landed; one killed with its writer has not */
		if (kind != KILL_GROUP && newest_state(dir) <= from)
			fail_msg("run %d (kind %d): no checkpoint past %llu landed", k, kind, from);
		/* (a writer killed while writing leaves its temporary, unless it had
		 * already renamed it when the signal came: timing, so not asserted) */
		if (temps > 1)
			fail_msg("run %d: %d temporaries left by one writer", k, temps);
		DIR *dp = opendir(dir);
		struct dirent *e;
		while (saw_delta && dp && (e = readdir(dp)) != NULL)
			*saw_delta |= strstr(e->d_name, ".delta") != NULL;
		if (dp)
			closedir(dp);
	}
	print_message("%d kills: %d at a landed checkpoint, %d while writing, %d of the writer too;"
		      " %d temporary files left, each removed by the next run\n",
		      kills, kinds[KILL_LANDED], kinds[KILL_WRITING], kinds[KILL_GROUP], left_total);
	return temps;
}

/* Killed with SIGKILL at seeded points of its progress (kill_plan: at a
 * landed checkpoint, while its writer writes, or with its writer), again and
 * again, then let finish: the saved model is byte-identical to an
 * uninterrupted run's, and no temporary file is left. threads (NULL: 1) and
 * window go to --threads and --window. */
static void sigkill_and_resume(const char *threads, const char *window)
{
	const char *stream = mfs_test_path("stream.tsv"), *ref = mfs_test_path("ref.mfs"),
		   *out = mfs_test_path("out.mfs");
	char dir[1200];
	snprintf(dir, sizeof dir, "%s-%s", mfs_test_path("ckpts"), threads ? threads : "1");
	struct mfs_run r;
	RUN(&r, "gen", "--events", "300000", "--users", "5000", "--items", "1000", "--seed", "4",
	    "--output", stream);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	const char *thr = threads ? threads : "1", *win = window ? window : "65536";
	RUN(&r, "train", "--quiet", "--dim", "16", "--threads", thr, "--window", win, "--save", ref,
	    stream);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);

	char every[24] = "15000";
	char *argv[] = { MFS_CLI, "train", "--quiet", "--dim", "16", "--threads", (char *)thr,
			 "--window", (char *)win, "--checkpoint-dir", dir, "--checkpoint-every",
			 every, "--save", (char *)out, (char *)stream, NULL };
	/* 6 kills, each at the run's first checkpoint, after 5000..40000 of its events */
	struct kill_slots ks = { every, NULL, 5000, 40000, 0, 0 };
	int left = kill_plan(argv, dir, 6, &ks, 12345, NULL);
	assert_true(newest_ckpt(dir) > 0);
	snprintf(every, sizeof every, "15000");
	assert_int_equal(mfs_run_argv(&r, argv, NULL, 0), 0);
	assert_int_equal(r.status, 0);
	assert_true(strstr(r.out, "\"resumed\": true") != NULL);
	assert_float_equal(mfs_json_number(r.out, "stale_temp_removed"), left, 0);
	assert_float_equal(mfs_json_number(r.out, "model_events"), 300000, 0);
	assert_true(mfs_json_number(r.out, "events") < 300000); /* only the rest was read */
	mfs_run_free(&r);
	assert_int_equal(count_temps(dir), 0);
	size_t na, nb;
	char *a = mfs_read_file(ref, &na), *b = mfs_read_file(out, &nb);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na);
	free(a);
	free(b);
}

static void train__sigkill_and_resume_gives_the_uninterrupted_model(void **state)
{
	(void)state;
	sigkill_and_resume(NULL, NULL);
}

/* The same with pass 1 on 2 threads: windows of 2 x 3000 events, counted on
 * the model's clock, so a resumed run (its batches cut elsewhere) learns the
 * windows an uninterrupted one does, and checkpoints fall on their ends. */
static void train__threads_sigkill_and_resume_gives_the_uninterrupted_model(void **state)
{
	(void)state;
	sigkill_and_resume("2", "3000");
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
 * was written stays whole. The final checkpoint fails too: the run exits 1 and
 * says how many events no checkpoint holds. Skipped where tmpfs cannot be
 * mounted. */
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
	/* no users' histories: they alone (1 KiB per user row) would not fit in 2 MiB */
	RUN(&r, "train", "--quiet", "--dim", "64", "--history", "0", "--checkpoint-dir", dir,
	    "--checkpoint-every", "20000", stream);
	int status = r.status;
	double events = mfs_json_number(r.out, "events");
	double failures = mfs_json_number(r.out, "checkpoint_failures");
	double written = mfs_json_number(r.out, "checkpoints");
	double unsaved = mfs_json_number(r.out, "unsaved_events");
	int says = strstr(r.err, "No space left on device") != NULL;
	int lost = strstr(r.err, "the final checkpoint failed: the ") != NULL &&
		   strstr(r.err, " events learned since the newest valid checkpoint") != NULL;
	mfs_run_free(&r);
	struct mfs_run ev;
	RUN(&ev, "eval", "--model", dir, stream);
	umount(mnt);
	assert_int_equal(status, 1); /* the events after the checkpoint that fit are lost */
	assert_float_equal(events, 300000, 0);
	assert_true(failures > 0);
	assert_true(written >= 1);
	assert_true(says);
	assert_true(lost);
	assert_true(unsaved > 0 && unsaved < 300000);
	assert_int_equal(ev.status, 0); /* the checkpoint that fit is whole and loads */
	assert_float_equal(mfs_json_number(ev.out, "n"), 300000, 0);
	mfs_run_free(&ev);
}


/* --- deltas ------------------------------------------------------------------ */

/* n events of a seeded stream (users 0..users-1, items 0..199) into m. */
static void learn_some(mfs_model *m, uint64_t *seed, int n, int users)
{
	char u[32], i[32];
	for (int k = 0; k < n; k++) {
		uint64_t s = *seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
		int un = snprintf(u, sizeof u, "user:%llu", (unsigned long long)((s >> 33) % (uint64_t)users));
		int in = snprintf(i, sizeof i, "item-%llu", (unsigned long long)((s >> 17) % 200));
		mfs_event e = { u, i, (uint32_t)un, (uint32_t)in, 1.0f + (float)((s >> 45) % 9) / 2, 0 };
		mfs_model_learn(m, &e, 1, NULL);
	}
}

/* Load the newest state of dir and save it to path (with its position). */
static void save_newest(const char *dir, const char *path, char *from, size_t from_len,
			mfs_bad_record_fn on_skip, void *ctx)
{
	mfs_model *l;
	mfs_diag d;
	assert_int_equal(mfs_checkpoint_load_newest(&l, dir, NULL, on_skip, ctx, from, from_len, &d), 0);
	assert_int_equal(mfs_model_save(l, path, NULL, &d), 0);
	mfs_model_free(l);
}

struct skips {
	int n;
	char last[1024];
};

static void note_skip(void *ctx, const mfs_diag *d)
{
	struct skips *s = ctx;
	s->n++;
	mfs_diag_format(d, s->last, sizeof s->last);
}

/*
 * The newest whole checkpoint with its deltas applied is the model of a whole
 * checkpoint at the same moment, byte for byte: exact IDs with evictions (keys
 * move between rows), admission (the sketch), hashed IDs with two rows per
 * user; SGD and AdaGrad.
 */
static void checkpoint_deltas__chain_equals_a_whole_checkpoint(void **state)
{
	(void)state;
	struct {
		int ids, opt;
		uint64_t users;
		uint32_t min_count, hashes;
	} cases[] = { { MFS_IDS_EXACT, MFS_OPT_ADAGRAD, 300, 1, 1 },
		      { MFS_IDS_EXACT, MFS_OPT_SGD, 5000, 1, 1 },
		      { MFS_IDS_EXACT, MFS_OPT_ADAGRAD, 250, 2, 1 },
		      { MFS_IDS_HASHED, MFS_OPT_ADAGRAD, 256, 1, 2 },
		      { MFS_IDS_HASHED, MFS_OPT_SGD, 300, 3, 1 } };
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		char dir[1200], ref[1300], out[1300], from[2000];
		snprintf(dir, sizeof dir, "%s/d%zu", mfs_test_path("deltas"), k);
		mkdir(mfs_test_path("deltas"), 0755);
		mkdir(dir, 0755);
		snprintf(ref, sizeof ref, "%s/ref.model", dir);
		snprintf(out, sizeof out, "%s/out.model", dir);
		mfs_config c;
		mfs_config_default(&c);
		c.dim = 12;
		c.max_users = cases[k].users;
		c.max_items = 300;
		c.ids = cases[k].ids;
		c.optimizer = cases[k].opt;
		c.min_count = cases[k].min_count;
		c.user_hashes = cases[k].hashes;
		mfs_model *m;
		mfs_diag d;
		assert_int_equal(mfs_model_create(&m, &c, NULL), 0);
		uint64_t seed = 7 + k;
		/* no mark yet: a delta has nothing to apply on */
		assert_int_equal(mfs_checkpoint_write_delta(m, dir, NULL, 0, 0, 0, &d), -MFS_E_INVAL);
		int space = k == 1 ? 5000 : 400;
		learn_some(m, &seed, 3000, space);
		assert_int_equal(mfs_checkpoint_write(m, dir, "p0", 2, 0, 0, &d), 0);
		mfs_checkpoint_mark(m);
		for (int j = 1; j <= 4; j++) {
			learn_some(m, &seed, 500 * j, space);
			char pos[8];
			snprintf(pos, sizeof pos, "p%d", j);
			assert_int_equal(mfs_checkpoint_write_delta(m, dir, pos, 2, j == 3 ? 3 : 0, 0, &d), 0);
			mfs_checkpoint_mark(m);
		}
		mfs_save_opts so = { .position = "p4", .position_len = 2 };
		assert_int_equal(mfs_model_save(m, ref, &so, &d), 0);
		save_newest(dir, out, from, sizeof from, NULL, NULL);
		assert_non_null(strstr(from, ".delta"));
		mfs_assert_same_file(ref, out);
		/* a delta is smaller than a whole checkpoint when few rows changed */
		if (k == 1) {
			char p0[1400], p1[1400];
			struct stat s0, s1;
			snprintf(p0, sizeof p0, "%s/ckpt-00000000000000003000.mfs", dir);
			snprintf(p1, sizeof p1, "%s/ckpt-00000000000000003500.delta", dir);
			assert_int_equal(stat(p0, &s0), 0);
			assert_int_equal(stat(p1, &s1), 0);
			assert_true(s1.st_size * 2 < s0.st_size);
		}
		/* the chain goes on after a reload: a delta of the loaded model applies */
		mfs_model *l;
		assert_int_equal(mfs_checkpoint_load_newest(&l, dir, NULL, NULL, NULL, NULL, 0, &d), 0);
		learn_some(l, &seed, 700, 400);
		assert_int_equal(mfs_checkpoint_write_delta(l, dir, "p5", 2, 0, 0, &d), 0);
		mfs_save_opts so5 = { .position = "p5", .position_len = 2 };
		assert_int_equal(mfs_model_save(l, ref, &so5, &d), 0);
		save_newest(dir, out, NULL, 0, NULL, NULL);
		mfs_assert_same_file(ref, out);
		/* a delta file is not a model on its own */
		char dp[1400];
		snprintf(dp, sizeof dp, "%s/ckpt-00000000000000004500.delta", dir);
		mfs_model *x = NULL;
		assert_int_equal(mfs_model_load(&x, dp, NULL, &d), -MFS_E_INVAL);
		assert_null(x);
		assert_non_null(strstr(d.reason, "delta"));
		mfs_model_free(l);
		mfs_model_free(m);
	}
}

/*
 * A damaged delta (bit flip, truncation) or a missing one ends the chain: the
 * state before it is loaded, and on_skip names the file and the reason.
 */
static void checkpoint_deltas__damaged_or_missing_link_ends_the_chain(void **state)
{
	(void)state;
	char dir[1200], ref[1300], out[1300], p[1400], from[2000];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("dchain"));
	mkdir(dir, 0755);
	snprintf(ref, sizeof ref, "%s/ref.model", dir);
	snprintf(out, sizeof out, "%s/out.model", dir);
	mfs_config c;
	mfs_config_default(&c);
	c.dim = 8;
	c.max_users = 200;
	c.max_items = 300;
	mfs_model *m;
	mfs_diag d;
	assert_int_equal(mfs_model_create(&m, &c, NULL), 0);
	uint64_t seed = 3;
	learn_some(m, &seed, 2000, 300);
	assert_int_equal(mfs_checkpoint_write(m, dir, NULL, 0, 0, 0, &d), 0); /* 2000 */
	mfs_checkpoint_mark(m);
	learn_some(m, &seed, 1000, 300);
	assert_int_equal(mfs_checkpoint_write_delta(m, dir, NULL, 0, 0, 0, &d), 0); /* 3000 */
	mfs_checkpoint_mark(m);
	assert_int_equal(mfs_model_save(m, ref, NULL, &d), 0);
	for (int j = 0; j < 2; j++) { /* 4000, 5000 */
		learn_some(m, &seed, 1000, 300);
		assert_int_equal(mfs_checkpoint_write_delta(m, dir, NULL, 0, 0, 0, &d), 0);
		mfs_checkpoint_mark(m);
	}
	/* a flipped bit in the delta of 4000 */
	snprintf(p, sizeof p, "%s/ckpt-00000000000000004000.delta", dir);
	size_t n;
	char *b = mfs_read_file(p, &n), *orig = malloc(n);
	memcpy(orig, b, n);
	b[n / 2] ^= 0x10;
	mfs_write_file(p, b, n);
	struct skips sk = { 0, "" };
	save_newest(dir, out, from, sizeof from, note_skip, &sk);
	mfs_assert_same_file(ref, out);
	assert_non_null(strstr(from, "ckpt-00000000000000003000.delta"));
	assert_int_equal(sk.n, 1);
	assert_non_null(strstr(sk.last, "ckpt-00000000000000004000.delta"));
	assert_non_null(strstr(sk.last, "checksum"));
	/* truncated */
	mfs_write_file(p, orig, n / 3);
	sk.n = 0;
	save_newest(dir, out, NULL, 0, note_skip, &sk);
	mfs_assert_same_file(ref, out);
	assert_int_equal(sk.n, 1);
	assert_non_null(strstr(sk.last, "ckpt-00000000000000004000.delta"));
	/* missing: the next one does not apply on 3000 */
	unlink(p);
	sk.n = 0;
	save_newest(dir, out, NULL, 0, note_skip, &sk);
	mfs_assert_same_file(ref, out);
	assert_int_equal(sk.n, 1);
	assert_non_null(strstr(sk.last, "ckpt-00000000000000005000.delta"));
	assert_non_null(strstr(sk.last, "missing"));
	/* whole again: the chain is whole once more */
	mfs_write_file(p, orig, n);
	sk.n = 0;
	assert_int_equal(mfs_model_save(m, ref, NULL, &d), 0);
	save_newest(dir, out, NULL, 0, note_skip, &sk);
	mfs_assert_same_file(ref, out);
	assert_int_equal(sk.n, 0);
	/* A run resumed from 3000 (4000 damaged again) writes its own deltas
	 * beside the old ones: the chain follows them past the stale files. */
	mfs_write_file(p, b, n); /* b still has its flipped bit */
	mfs_model *r;
	assert_int_equal(mfs_checkpoint_load_newest(&r, dir, NULL, NULL, NULL, NULL, 0, &d), 0);
	for (int j = 0; j < 2; j++) { /* 3500, then 4500 */
		uint64_t other = 99 + (uint64_t)j;
		learn_some(r, &other, 500 + 500 * j, 300);
		assert_int_equal(mfs_checkpoint_write_delta(r, dir, NULL, 0, 0, 0, &d), 0);
		mfs_checkpoint_mark(r);
		assert_int_equal(mfs_model_save(r, ref, NULL, &d), 0);
		sk.n = 0;
		save_newest(dir, out, from, sizeof from, note_skip, &sk);
		mfs_assert_same_file(ref, out);
		assert_non_null(strstr(from, j == 0 ? "ckpt-00000000000000003500.delta"
						    : "ckpt-00000000000000004500.delta"));
		assert_int_equal(sk.n, 1); /* the damaged 4000; 5000 (another base) quietly */
		assert_non_null(strstr(sk.last, "ckpt-00000000000000004000.delta"));
	}
	mfs_model_free(r);
	free(b);
	free(orig);
	mfs_model_free(m);
}

/* --keep counts whole checkpoints; deltas go with their base. */
static void checkpoint_write__keep_prunes_deltas_with_their_base(void **state)
{
	(void)state;
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("dkeep"));
	mkdir(dir, 0755);
	mfs_config c;
	mfs_config_default(&c);
	c.dim = 4;
	c.max_users = 50;
	c.max_items = 50;
	mfs_model *m;
	assert_int_equal(mfs_model_create(&m, &c, NULL), 0);
	uint64_t seed = 1;
	for (int k = 0; k < 3; k++) { /* whole at 100, 400, 700; deltas between */
		learn_some(m, &seed, 100, 40);
		assert_int_equal(mfs_checkpoint_write(m, dir, NULL, 0, 0, 2, NULL), 0);
		mfs_checkpoint_mark(m);
		for (int j = 0; j < 2; j++) {
			learn_some(m, &seed, 100, 40);
			assert_int_equal(mfs_checkpoint_write_delta(m, dir, NULL, 0, 0, 2, NULL), 0);
			mfs_checkpoint_mark(m);
		}
	}
	/* kept: 400.mfs 500.delta 600.delta 700.mfs 800.delta 900.delta */
	assert_int_equal(count_ckpts(dir), 6);
	char p[1400];
	struct stat st;
	snprintf(p, sizeof p, "%s/ckpt-00000000000000000300.delta", dir);
	assert_int_not_equal(stat(p, &st), 0);
	snprintf(p, sizeof p, "%s/ckpt-00000000000000000500.delta", dir);
	assert_int_equal(stat(p, &st), 0);
	mfs_model_free(m);
}

/* AnonHugePages (bytes) of the mapping that holds p (/proc/self/smaps), -1 if unknown. */
static long long huge_bytes_at(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -1;
	char line[512];
	int in = 0;
	long long kb = -1;
	uintptr_t a = (uintptr_t)p;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char c;
		if (sscanf(line, "%lx-%lx %c", &lo, &hi, &c) == 3) {
			in = a >= lo && a < hi;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %lld kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

/*
 * While a forked writer shares the tables, every huge page the learner
 * writes is split; mfs_model_regroup_pages merges them back: the user rows'
 * mapping has fewer huge-page bytes after the writes and more after the
 * call, which reports what it collapsed, and the model's bytes are
 * unchanged. Skipped without transparent huge pages or MADV_COLLAPSE.
 */
static void model_regroup_pages__merges_split_pages_and_keeps_the_model(void **state)
{
	(void)state;
	char thp[128] = "";
	FILE *tf = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	if (!tf || !fgets(thp, sizeof thp, tf) || strstr(thp, "[never]")) {
		if (tf)
			fclose(tf);
		print_message("transparent huge pages are off\n");
		skip();
	}
	fclose(tf);
	mfs_config c;
	mfs_config_default(&c);
	c.dim = 64;
	c.max_users = 100000;
	c.max_items = 1000;
	mfs_model *m;
	assert_int_equal(mfs_model_create(&m, &c, NULL), 0);
	uint64_t seed = 5;
	learn_some(m, &seed, 60000, 50000); /* 50000 user rows: 12.8 MB */
	long long h0 = huge_bytes_at(m->user.rows);
	if (h0 <= 0) {
		print_message("the user rows got no huge pages (%lld)\n", h0);
		mfs_model_free(m);
		skip();
	}
	/* a writer shares the pages; the learner writes rows all over them */
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	learn_some(m, &seed, 20000, 50000);
	kill(child, SIGKILL);
	int st;
	waitpid(child, &st, 0);
	long long h1 = huge_bytes_at(m->user.rows);
	const char *a = mfs_test_path("rg-a.mfs"), *b = mfs_test_path("rg-b.mfs");
	assert_int_equal(mfs_model_save(m, a, NULL, NULL), 0);
	int64_t got = mfs_model_regroup_pages(m);
	if (got == -MFS_E_UNSUPPORTED) {
		print_message("no MADV_COLLAPSE (Linux < 6.1)\n");
		mfs_model_free(m);
		skip();
	}
	long long h2 = huge_bytes_at(m->user.rows);
	print_message("user rows in huge pages: %lld bytes, %lld after the writes, %lld after "
		      "regrouping (%lld collapsed)\n",
		      h0, h1, h2, (long long)got);
	assert_true(h1 < h0); /* the writes split pages */
	assert_true(got > 0);
	assert_true(h2 > h1);
	assert_int_equal(mfs_model_save(m, b, NULL, NULL), 0);
	mfs_assert_same_file(a, b);
	assert_int_equal(mfs_model_regroup_pages(NULL), -MFS_E_INVAL);
	mfs_model_free(m);
}

/* Killed again and again (kill_plan) with deltas between whole checkpoints:
 * the resumed runs end with the uninterrupted run's model, byte for byte. */
static void train__sigkill_and_resume_with_deltas(void **state)
{
	(void)state;
	const char *stream = mfs_test_path("dstream.tsv"), *ref = mfs_test_path("dref.mfs"),
		   *out = mfs_test_path("dout.mfs");
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("dckpts"));
	struct mfs_run r;
	RUN(&r, "gen", "--events", "300000", "--users", "5000", "--items", "1000", "--seed", "5",
	    "--output", stream);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--dim", "16", "--max-users", "3000", "--save", ref, stream);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	/* 3000 user rows for 5000 users: evictions, so deltas move keys between rows */
	char every[24] = "60000", delta[24] = "10000";
	char *argv[] = { MFS_CLI, "train", "--quiet", "--dim", "16", "--max-users", "3000",
			 "--checkpoint-dir", dir, "--checkpoint-every", every, "--delta-every",
			 delta, "--keep", "2", "--save", (char *)out, (char *)stream, NULL };
	int saw_delta = 0;
	/* each run killed at its first write: a delta after 3000..15000 of its events,
	 * or a whole one after 10000..40000 when that comes first (and in run 0) */
	struct kill_slots ks = { every, delta, 10000, 40000, 3000, 15000 };
	int left = kill_plan(argv, dir, 6, &ks, 777, &saw_delta);
	assert_true(saw_delta);
	snprintf(every, sizeof every, "60000");
	snprintf(delta, sizeof delta, "10000");
	assert_int_equal(mfs_run_argv(&r, argv, NULL, 0), 0);
	assert_int_equal(r.status, 0);
	assert_true(strstr(r.out, "\"resumed\": true") != NULL);
	assert_float_equal(mfs_json_number(r.out, "stale_temp_removed"), left, 0);
	assert_float_equal(mfs_json_number(r.out, "model_events"), 300000, 0);
	mfs_run_free(&r);
	assert_int_equal(count_temps(dir), 0);
	mfs_assert_same_file(ref, out);
}

/* --- the directory's lock ------------------------------------------------------ */

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/*
 * One learner per directory: a second lock (here, or a train run) is refused
 * naming the holder's pid; a forked child that exits does not release it; the
 * lock of a killed process is taken over; a writer left by a dead learner is
 * waited for; temporary files of dead writers are removed and counted.
 */
static void checkpoint_lock__one_learner_per_directory(void **state)
{
	(void)state;
	char dir[1200], p[1400], keep1[1400], keep2[1400], marker[1400];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("lockdir"));
	mkdir(dir, 0755);
	/* a dead writer's leftovers, and names that are not ours to remove */
	const char *temps[] = { ".ckpt-00000000000000001000.mfs.tmp.Ab3xYz",
				".ckpt-00000000000000002000.delta.tmp.QQ0000" };
	for (int i = 0; i < 2; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, temps[i]);
		mfs_write_file(p, "x", 1);
	}
	snprintf(keep1, sizeof keep1, "%s/.model.mfs.tmp.Ab3xYz", dir);
	mfs_write_file(keep1, "x", 1);
	snprintf(keep2, sizeof keep2, "%s/ckpt-00000000000000000500.tmp", dir);
	mfs_write_file(keep2, "x", 1);
	mfs_lock *a = NULL, *b = NULL;
	mfs_diag d;
	assert_int_equal(mfs_checkpoint_lock(&a, dir, &d), 2);
	assert_non_null(a);
	for (int i = 0; i < 2; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, temps[i]);
		assert_false(exists(p));
	}
	assert_true(exists(keep1));
	assert_true(exists(keep2));
	/* a second lock, even in this process, is refused with the holder's pid */
	char pid[32];
	snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
	assert_int_equal(mfs_checkpoint_lock(&b, dir, &d), -MFS_E_BUSY);
	assert_null(b);
	assert_non_null(strstr(d.reason, pid));
	/* and a learner exits 1 saying so, before it learns anything */
	const char *stream = mfs_test_path("lock.tsv");
	mfs_write_file(stream, "u1\ti1\t4\nu2\ti2\t3\n", 16);
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--dim", "4", "--checkpoint-dir", dir, stream);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, pid));
	assert_non_null(strstr(r.err, "one learner per directory"));
	assert_string_equal(r.out, "");
	mfs_run_free(&r);
	/* a forked child (a checkpoint writer) that exits leaves the lock held */
	pid_t c = fork();
	assert_true(c >= 0);
	if (c == 0)
		_exit(0);
	int st;
	waitpid(c, &st, 0);
	assert_int_equal(mfs_checkpoint_lock(&b, dir, &d), -MFS_E_BUSY);
	mfs_checkpoint_unlock(a);
	/* the lock of a process killed with SIGKILL is free: the next one takes it */
	int ready[2];
	assert_int_equal(pipe(ready), 0);
	c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		mfs_lock *x;
		char ok = mfs_checkpoint_lock(&x, dir, NULL) >= 0 ? 'y' : 'n';
		if (write(ready[1], &ok, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	char ok = 0;
	assert_int_equal(read(ready[0], &ok, 1), 1);
	assert_int_equal(ok, 'y');
	assert_int_equal(mfs_checkpoint_lock(&b, dir, &d), -MFS_E_BUSY);
	kill(c, SIGKILL);
	waitpid(c, &st, 0);
	assert_int_equal(mfs_checkpoint_lock(&b, dir, &d), 0);
	mfs_checkpoint_unlock(b);
	b = NULL;
	/* a learner that died while its forked writer still writes: the lock
	 * waits for the writer (which leaves a marker just before it exits) */
	snprintf(marker, sizeof marker, "%s/writer-done", mfs_test_dir());
	c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		mfs_lock *x;
		if (mfs_checkpoint_lock(&x, dir, NULL) < 0)
			_exit(1);
		pid_t w = fork();
		if (w == 0) {
			/* the writer: outlives its parent, then finishes */
			struct timespec ts = { 0, 300 * 1000000L };
			nanosleep(&ts, NULL);
			FILE *f = fopen(marker, "w");
			if (f)
				fclose(f);
			_exit(0);
		}
		char y = 'y';
		if (write(ready[1], &y, 1) != 1)
			_exit(1);
		_exit(0); /* the learner dies (no unlock) */
	}
	assert_int_equal(read(ready[0], &ok, 1), 1);
	waitpid(c, &st, 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(mfs_checkpoint_lock(&b, dir, &d), 0);
	assert_true(exists(marker)); /* taken only once the writer had finished */
	mfs_checkpoint_unlock(b);
	close(ready[0]);
	close(ready[1]);
	/* free again: train runs, and says it removed nothing */
	RUN(&r, "train", "--quiet", "--dim", "4", "--checkpoint-dir", dir, stream);
	assert_int_equal(r.status, 0);
	assert_float_equal(mfs_json_number(r.out, "stale_temp_removed"), 0, 0);
	mfs_run_free(&r);
	assert_int_equal(mfs_checkpoint_lock(&b, NULL, &d), -MFS_E_INVAL);
	mfs_checkpoint_unlock(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(train__sigkill_and_resume_gives_the_uninterrupted_model),
		cmocka_unit_test(train__threads_sigkill_and_resume_gives_the_uninterrupted_model),
		cmocka_unit_test(checkpoints__damaged_newest_are_skipped),
		cmocka_unit_test(checkpoint_write__keeps_the_newest_n),
		cmocka_unit_test(train__checkpoint_enospc_keeps_the_previous_one_and_goes_on),
		cmocka_unit_test(checkpoint_deltas__chain_equals_a_whole_checkpoint),
		cmocka_unit_test(checkpoint_deltas__damaged_or_missing_link_ends_the_chain),
		cmocka_unit_test(checkpoint_write__keep_prunes_deltas_with_their_base),
		cmocka_unit_test(model_regroup_pages__merges_split_pages_and_keeps_the_model),
		cmocka_unit_test(train__sigkill_and_resume_with_deltas),
		cmocka_unit_test(checkpoint_lock__one_learner_per_directory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
