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

/* One pass over u.data in time order: prequential RMSE <= 0.940 (measured 0.9396). */
static void movielens__one_pass_prequential_rmse(void **state)
{
	(void)state;
	char data[1200];
	snprintf(data, sizeof data, "%s/u.data", dir);
	char *argv[] = { MFS_CLI, "train", "--quiet", data, NULL };
	double p = train_json("prequential_rmse", argv);
	print_message("u.data one pass: prequential RMSE %.4f\n", p);
	assert_true(p <= 0.940);
}

/*
 * 20 epochs on u1..u5.base, --test uN.test. The target is a mean test RMSE
 * <= 0.905; the defaults reach 0.9046 (seeds 1-3: 0.9048, 0.9049, 0.9046), with
 * the frequency-dependent L2 (freq_alpha, freq_alpha_bias) that lets one
 * setting also keep the single pass <= 0.940. This asserts the target itself.
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
	assert_true(sum / 5 <= 0.905);
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
		cmocka_unit_test(movielens__five_folds_test_rmse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
