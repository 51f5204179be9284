/*
 * test_movielens.c - the accuracy bars of MovieLens 100K, with default
 * settings. Skips (77) when ../shared/data/ml-100k is absent ($MFS_DATA_DIR).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static const char *dir;

static double train_json(const char *key, char *const argv[])
{
	struct mfs_run r;
	assert_int_equal(mfs_run_argv(&r, argv, NULL, 0), 0);
	assert_int_equal(r.status, 0);
	double v = mfs_json_number(r.out, key);
	mfs_run_free(&r);
	return v;
}

/*
 * The guards come from measured seeds, not the tuned figure alone: the
 * defaults with --seed 42 (the default), 1, 2, 3, 4, 5, on the scalar and the
 * avx2 kernel (which agree to 6 digits on every seed) give
 *   one pass over u.data:  0.939575 0.939465 0.939593 0.939477 0.939721 0.939708
 *   mean of the 5 folds:   0.90462  0.90484  0.90488  0.90464  0.90483  0.90494
 * A bar 0.0004 above the seed-42 figure (0.940, 0.905) sits inside that
 * spread: anything that moves the trajectory as another seed does (a new
 * summation order, a reordered update) could flip it. Each bar is the worst
 * seed plus a tolerance of 0.0005 (about twice the seeds' spread): 0.9402
 * and 0.9055. Still caught: a sigmoid gradient 5% too small (one pass
 * 0.9405), replay L2 of the factors 30% too weak (folds 0.9060).
 */
#define ONE_PASS_GUARD 0.9402
#define FOLDS_GUARD 0.9055

/* One pass over u.data in time order (measured 0.9396 with the defaults). */
static void movielens__one_pass_prequential_rmse(void **state)
{
	(void)state;
	char data[1200];
	snprintf(data, sizeof data, "%s/u.data", dir);
	char *argv[] = { MFS_CLI, "train", "--quiet", data, NULL };
	double p = train_json("prequential_rmse", argv);
	print_message("u.data one pass: prequential RMSE %.4f\n", p);
	assert_true(p <= ONE_PASS_GUARD);
}

/*
 * 20 epochs on u1..u5.base, --test uN.test. The target was a mean test RMSE
 * <= 0.905; the defaults reach 0.9046 (seeds above), with the
 * frequency-dependent L2 (freq_alpha, freq_alpha_bias) that lets one setting
 * also keep the single pass near 0.940. The guard is FOLDS_GUARD (above).
 */
static void movielens__five_folds_test_rmse(void **state)
{
	(void)state;
	double sum = 0;
	for (int k = 1; k <= 5; k++) {
		char base[1200], test[1200];
		snprintf(base, sizeof base, "%s/u%d.base", dir, k);
		snprintf(test, sizeof test, "%s/u%d.test", dir, k);
		char *argv[] = { MFS_CLI, "train", "--quiet", "--epochs", "20", "--test", test, base, NULL };
		double t = train_json("test_rmse", argv);
		print_message("u%d: test RMSE %.4f\n", k, t);
		sum += t;
	}
	print_message("mean over u1..u5: %.4f\n", sum / 5);
	assert_true(sum / 5 <= FOLDS_GUARD);
}

/* The items of user in a MovieLens file ("user\titem\t..."), as a string "\nI1\nI2\n...\n". */
static char *items_of(const char *path, const char *user)
{
	char *data = mfs_read_file(path, NULL);
	assert_non_null(data);
	size_t cap = 1 << 16, o = 1;
	char *set = malloc(cap);
	set[0] = '\n';
	set[1] = 0;
	for (char *l = strtok(data, "\n"); l; l = strtok(NULL, "\n")) {
		char u[32], i[32];
		if (sscanf(l, "%31[^\t]\t%31[^\t]", u, i) == 2 && strcmp(u, user) == 0 && o + 40 < cap)
			o += (size_t)snprintf(set + o, cap - o, "%s\n", i);
	}
	free(data);
	return set;
}

/* How many ratings item has in a MovieLens file. */
static int ratings_of(const char *path, const char *item)
{
	char *data = mfs_read_file(path, NULL);
	int n = 0;
	for (char *l = strtok(data, "\n"); l; l = strtok(NULL, "\n")) {
		char u[32], i[32];
		n += sscanf(l, "%31[^\t]\t%31[^\t]", u, i) == 2 && strcmp(i, item) == 0;
	}
	free(data);
	return n;
}

/*
 * The README tour: after `train --epochs 20 --test u1.test --save u1.mfs
 * u1.base`, `recommend --user 42 -k 10` returns no item user 42 rated in
 * u1.base (88 of them: the history keeps 128), and `similar --item 98`
 * (Silence of the Lambs) returns films with at least the default 20 ratings.
 */
static void movielens__tour_recommends_unseen_items_and_known_neighbours(void **state)
{
	(void)state;
	char base[1200], test[1200], model[1200];
	snprintf(base, sizeof base, "%s/u1.base", dir);
	snprintf(test, sizeof test, "%s/u1.test", dir);
	snprintf(model, sizeof model, "%s", mfs_test_path("u1.mfs"));
	char *targv[] = { MFS_CLI, "train", "--quiet", "--epochs", "20", "--test", test, "--save",
			  model, base, NULL };
	train_json("test_rmse", targv);
	char *seen = items_of(base, "42");
	struct mfs_run r;
	for (int include = 0; include < 2; include++) {
		char *argv[] = { MFS_CLI, "recommend", "--model", model, "--user", "42", "-k", "10",
				 include ? "--include-seen" : NULL, NULL };
		assert_int_equal(mfs_run_argv(&r, argv, NULL, 0), 0);
		assert_int_equal(r.status, 0);
		int lines = 0, rated = 0;
		for (char *l = strtok(r.out, "\n"); l; l = strtok(NULL, "\n")) {
			char key[40];
			snprintf(key, sizeof key, "\n%.*s\n", (int)strcspn(l, "\t"), l);
			rated += strstr(seen, key) != NULL;
			lines++;
		}
		print_message("recommend --user 42%s: %d of %d rated in u1.base\n",
			      include ? " --include-seen" : "", rated, lines);
		assert_int_equal(lines, 10);
		if (include)
			assert_true(rated > 0); /* there was something to leave out */
		else
			assert_int_equal(rated, 0);
		mfs_run_free(&r);
	}
	free(seen);
	char *sargv[] = { MFS_CLI, "similar", "--model", model, "--item", "98", "-k", "5", NULL };
	assert_int_equal(mfs_run_argv(&r, sargv, NULL, 0), 0);
	assert_int_equal(r.status, 0);
	int lines = 0;
	for (char *l = r.out, *e; (e = strchr(l, '\n')) != NULL; l = e + 1) {
		char item[32];
		assert_int_equal(sscanf(l, "%31[^\t]", item), 1);
		int n = ratings_of(base, item);
		print_message("similar to 98: %s (%d ratings)\n", item, n);
		assert_true(n >= 20);
		lines++;
	}
	assert_int_equal(lines, 5);
	mfs_run_free(&r);
}

int main(void)
{
	dir = mfs_ml100k_dir();
	if (!dir) {
		fprintf(stderr, "skip: MovieLens 100K not found (set MFS_DATA_DIR to the folder holding ml-100k/)\n");
		return MFS_SKIP;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(movielens__one_pass_prequential_rmse),
		cmocka_unit_test(movielens__tour_recommends_unseen_items_and_known_neighbours),
		cmocka_unit_test(movielens__five_folds_test_rmse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
