/*
 * test_learner.c - the public mfs_learner: settings by name (and their
 * errors), the same model as `mfstream train` with the same settings, and
 * exact resume after SIGKILL at event-driven moments.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

static const char *events_file(void)
{
	static char path[4096];
	if (!path[0]) {
		snprintf(path, sizeof path, "%s", mfs_test_path("ev.tsv"));
		struct mfs_run r;
		mfs_run_sh(&r, "'%s' gen --events 120000 --users 3000 --items 800 --seed 9 "
			       "--output '%s'", MFS_CLI, path);
		if (r.status != 0)
			fail_msg("gen: %s", r.err);
		mfs_run_free(&r);
	}
	return path;
}

static mfs_learner_config *config(const char *const *kv)
{
	mfs_learner_config *c;
	assert_int_equal(mfs_learner_config_new(&c), 0);
	mfs_diag d;
	for (size_t i = 0; kv[i]; i += 2)
		if (mfs_learner_config_set(c, kv[i], kv[i + 1], &d) != 0)
			fail_msg("%s=%s: %s", kv[i], kv[i + 1], d.reason);
	return c;
}

static void learner__settings_by_name_say_what_is_wrong(void **state)
{
	(void)state;
	mfs_learner_config *c;
	assert_int_equal(mfs_learner_config_new(&c), 0);
	mfs_diag d;
	static const struct {
		const char *name, *value, *says;
	} bad[] = {
		{ "dimension", "8", "no learner setting is called \"dimension\"" },
		{ "dim", "abc", "not a number" },
		{ "dim", "0", "out of range" },
		{ "dim", "8.5", "not a whole number" },
		{ "optimizer", "adam", "sgd or adagrad" },
		{ "rating-range", "5:1", "LO < HI" },
		{ "checkpoint-every", "soon", "events (100000, 100k) or a time" },
		{ "on-checkpoint-error", "maybe", "stop or continue" },
		{ "format", "xml", "not a format" },
		{ "feedback", "both", "explicit or implicit" },
		{ "loss", "hinge", "bpr, logistic or popularity" },
		{ "weight", "double", "none, rating or log1p" },
		{ "neg-beta", "3", "a number 0..2" },
		{ "negatives", "0", "out of range" },
		{ "epochs", "1.5", "not a whole number" },
		{ "eval-k", "2000", "out of range" },
		{ "threads", "65", "out of range 1..64" },
		{ "window", "100", "256..16M" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		memset(&d, 0, sizeof d);
		assert_int_equal(mfs_learner_config_set(c, bad[i].name, bad[i].value, &d),
				 -MFS_E_INVAL);
		if (!strstr(d.reason, bad[i].says))
			fail_msg("%s=%s: \"%s\" does not say \"%s\"", bad[i].name, bad[i].value,
				 d.reason, bad[i].says);
	}
	assert_int_equal(mfs_learner_config_set(c, "dim", "24", &d), 0);
	assert_int_equal(mfs_learner_config_set(c, "max-users", "4k", &d), 0);
	assert_int_equal(mfs_learner_config_set(c, "lr", "0.05", &d), 0);
	assert_int_equal(mfs_learner_config_set(c, "rating-range", "0.5:5", &d), 0);
	const mfs_config *mc = mfs_learner_config_model(c);
	assert_int_equal(mc->dim, 24);
	assert_int_equal(mc->max_users, 4000);
	assert_true(mc->lr == 0.05f && mc->lo == 0.5f && mc->hi == 5.0f);
	mfs_learner_config_free(c);
}

/* The learner's model and train's, factor for factor. */
static void assert_same_tables(const mfs_model *a, const mfs_model *b)
{
	mfs_model_info ia;
	mfs_model_info_get(a, &ia);
	for (int side = 0; side < 2; side++) {
		const float *ra, *rb, *ba, *bb;
		size_t sa, sb;
		int64_t na = mfs_model_table(a, side, &ra, &sa, &ba);
		int64_t nb = mfs_model_table(b, side, &rb, &sb, &bb);
		assert_true(na > 0);
		assert_int_equal(na, nb);
		for (int64_t r = 0; r < na; r++) {
			assert_memory_equal(ra + (size_t)r * sa, rb + (size_t)r * sb,
					    ia.dim * sizeof(float));
			assert_memory_equal(ba + r, bb + r, sizeof(float));
		}
	}
}

static void learner__learns_what_train_learns(void **state)
{
	(void)state;
	const char *in = events_file();
	const char *kv[] = { "dim", "16", "seed", "7", "rating-range", "1:5", NULL };
	mfs_learner_config *c = config(kv);
	mfs_learner *l;
	mfs_diag d;
	const char *inputs[] = { in };
	assert_int_equal(mfs_learner_open(&l, c, inputs, 1, &d), 0);
	mfs_learner_config_free(c);
	assert_int_equal(mfs_learner_run(l, NULL, &d), 0);
	mfs_learner_stats st;
	mfs_learner_stats_get(l, &st);
	assert_int_equal(st.events, 120000);
	assert_false(st.resumed);

	const char *saved = mfs_test_path("train.mfs");
	struct mfs_run r;
	mfs_run_sh(&r, "'%s' train '%s' --dim 16 --seed 7 --rating-range 1:5 --save '%s' --quiet",
		   MFS_CLI, in, saved);
	if (r.status != 0)
		fail_msg("train: %s", r.err);
	double rmse = mfs_json_number(r.out, "prequential_rmse");
	mfs_run_free(&r);
	mfs_model *t;
	assert_int_equal(mfs_model_load(&t, saved, NULL, &d), 0);
	assert_same_tables(mfs_learner_model(l), t);
	assert_true(mfs_close(st.rmse, rmse, 1e-5));
	mfs_model_free(t);
	assert_int_equal(mfs_learner_close(l, NULL, &d), 0);
}

/* What the report callback saw: pass-1 reports at exact counts, and the passes. */
struct seen {
	uint64_t at_every; /* pass-1 reports that fell on a multiple of every */
	uint64_t off_every;
	unsigned last_pass;
	uint64_t every;
};

static int seen_report(void *ctx, mfs_learner *l, unsigned pass, const mfs_learn_stats *st)
{
	(void)l;
	struct seen *s = ctx;
	if (pass == 1) {
		if ((st->events + st->unplaced) % s->every == 0)
			s->at_every++;
		else
			s->off_every++;
	}
	assert_true(pass >= s->last_pass); /* passes in order */
	s->last_pass = pass;
	return 0;
}

/*
 * Passes 2..N, the range of the first batch and the reports: the learner's
 * model equals train --epochs 3 --rating-range auto, byte for byte in the
 * saved file; a report falls on every multiple of `every` events.
 */
static void learner__replays_as_train_epochs_and_reports_on_the_count(void **state)
{
	(void)state;
	const char *in = events_file();
	const char *kv[] = { "dim", "16", "seed", "7", "rating-range", "auto", "epochs", "3", NULL };
	mfs_learner_config *c = config(kv);
	struct seen s = { .every = 7000 };
	mfs_learner_config_on_report(c, s.every, seen_report, &s);
	mfs_learner *l;
	mfs_diag d;
	const char *inputs[] = { in };
	assert_int_equal(mfs_learner_open(&l, c, inputs, 1, &d), 0);
	mfs_learner_config_free(c);
	assert_int_equal(mfs_learner_run(l, NULL, &d), 0);
	assert_int_equal(s.at_every, 120000 / 7000); /* 17 of them, cut inside batches */
	assert_true(s.off_every > 0);                /* and one after each batch */
	assert_int_equal(mfs_learner_replay(l, &d), 3);
	assert_int_equal(s.last_pass, 3);
	mfs_learner_stats st;
	mfs_learner_stats_get(l, &st);
	assert_int_equal(st.steps, 3 * 120000);
	const char *mine = mfs_test_path("replayed.mfs"), *theirs = mfs_test_path("epochs.mfs");
	assert_int_equal(mfs_learner_save(l, mine, 0, &d), 0);
	assert_int_equal(mfs_learner_close(l, NULL, &d), 0);
	struct mfs_run r;
	mfs_run_sh(&r, "'%s' train '%s' --dim 16 --seed 7 --epochs 3 --save '%s' --quiet", MFS_CLI,
		   in, theirs);
	if (r.status != 0)
		fail_msg("train: %s", r.err);
	mfs_run_free(&r);
	mfs_assert_same_file(mine, theirs);
}

/* Implicit feedback by name; a checkpoint of the other feedback is refused, not resumed. */
static void learner__implicit_by_name_and_its_checkpoint_kept_apart(void **state)
{
	(void)state;
	const char *in = events_file();
	const char *dir = mfs_test_path("implicit_ck");
	const char *kv[] = { "feedback", "implicit", "dim", "8", "negatives", "4", "loss", "bpr",
			     "weight", "none", "eval-k", "5", "checkpoint-dir", dir, NULL };
	mfs_learner_config *c = config(kv);
	mfs_learner *l;
	mfs_diag d;
	const char *inputs[] = { in };
	assert_int_equal(mfs_learner_open(&l, c, inputs, 1, &d), 0);
	assert_int_equal(mfs_learner_run(l, NULL, &d), 0);
	mfs_learn_stats st;
	mfs_rank_stats rk;
	mfs_learner_pass_stats(l, &st, &rk);
	assert_int_equal(st.events, 120000);
	assert_int_equal(rk.k, 5);
	assert_true(rk.ranked > 0 && rk.hits > 0);
	mfs_implicit_config ic;
	assert_int_equal(mfs_model_implicit_get(mfs_learner_model(l), &ic), 1);
	assert_int_equal(ic.negatives, 4);
	assert_int_equal(mfs_learner_close(l, NULL, &d), 0);
	assert_int_equal(mfs_learner_config_set(c, "feedback", "explicit", &d), 0);
	assert_int_equal(mfs_learner_open(&l, c, inputs, 1, &d), -MFS_E_INVAL);
	if (!strstr(d.reason, "learned implicit feedback, not explicit"))
		fail_msg("%s", d.reason);
	mfs_learner_config_free(c);
}

static uint64_t newest(const char *dir)
{
	DIR *dp = opendir(dir);
	unsigned long long best = 0, v;
	struct dirent *e;
	while (dp && (e = readdir(dp)))
		if (sscanf(e->d_name, "ckpt-%llu.mfs", &v) == 1 && strstr(e->d_name, ".tmp") == NULL &&
		    v > best)
			best = v;
	if (dp)
		closedir(dp);
	return best;
}

/* Learn in to the end in dir with checkpoints every 10k events (a delta every 5k). */
static void learn_all(const char *in, const char *dir)
{
	const char *kv[] = { "dim", "16", "seed", "7", "rating-range", "1:5", "checkpoint-dir", dir,
			     "checkpoint-every", "10k", "delta-every", "5000", NULL };
	mfs_learner_config *c = config(kv);
	mfs_learner *l;
	mfs_diag d;
	const char *inputs[] = { in };
	if (mfs_learner_open(&l, c, inputs, 1, &d) != 0)
		fail_msg("open: %s", d.reason);
	mfs_learner_config_free(c);
	if (mfs_learner_run(l, NULL, &d) != 0)
		fail_msg("run: %s", d.reason);
	assert_int_equal(mfs_learner_close(l, NULL, &d), 0);
}

static void learner__resumes_exactly_after_sigkill(void **state)
{
	(void)state;
	const char *in = events_file();
	char whole[4096], killed[4096];
	snprintf(whole, sizeof whole, "%s", mfs_test_path("whole"));
	snprintf(killed, sizeof killed, "%s", mfs_test_path("killed"));
	learn_all(in, whole);
	/* killed right after checkpoints 20k, 50k and 90k appear */
	const uint64_t at[] = { 20000, 50000, 90000 };
	for (size_t k = 0; k < sizeof at / sizeof *at; k++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			learn_all(in, killed);
			_exit(0);
		}
		while (newest(killed) < at[k]) {
			int st;
			if (waitpid(pid, &st, WNOHANG) == pid)
				fail_msg("the learner ended before checkpoint %llu",
					 (unsigned long long)at[k]);
			usleep(2000);
		}
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	learn_all(in, killed);
	char a[4200], b[4200];
	snprintf(a, sizeof a, "%s/ckpt-%020llu.mfs", whole, 120000ull);
	snprintf(b, sizeof b, "%s/ckpt-%020llu.mfs", killed, 120000ull);
	mfs_assert_same_file(a, b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(learner__settings_by_name_say_what_is_wrong),
		cmocka_unit_test(learner__learns_what_train_learns),
		cmocka_unit_test(learner__replays_as_train_epochs_and_reports_on_the_count),
		cmocka_unit_test(learner__implicit_by_name_and_its_checkpoint_kept_apart),
		cmocka_unit_test(learner__resumes_exactly_after_sigkill),
	};
	return cmocka_run_group_tests_name("learner", tests, NULL, NULL);
}
