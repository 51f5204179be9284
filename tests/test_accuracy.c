/*
 * test_accuracy.c - learning a planted model: the learner must get close to
 * the stream's noise floor (the oracle RMSE that mfstream gen reports).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "support.h"

#define RUN(r, ...)                                                  \
	do {                                                         \
		const char *argv_[] = { MFS_CLI, __VA_ARGS__, NULL }; \
		assert_int_equal(mfs_run_argv(r, (char *const *)argv_, NULL, 0), 0); \
	} while (0)

/*
 * The case: 1M events, 20k users, 3k items, string IDs, noise 0.5;
 * one pass on the first 90%, --test on the rest. The target is 10% above the
 * noise floor; with gen's default planted model (dim 8) one pass reaches about
 * 27% above it (45 ratings per user do not pin 8 factors down: even five
 * passes stay 23% above). Measured (test RMSE / floor, default settings):
 * gen seeds 11..16 give 1.2665 1.2771 1.2761 1.2708 1.2688 1.2767 (seed 11,
 * this test's: 1.2665 with the avx2 and the scalar kernel alike). The guard
 * is the worst of those plus a tolerance of 0.003: 1.280. (It was 1.30: a
 * sigmoid gradient 15% too small, ratio 1.2887, passed it.)
 */
#define RATIO_GUARD 1.280
static void train__one_pass_gets_close_to_noise_floor(void **state)
{
	(void)state;
	const char *train = mfs_test_path("planted.tsv.zst"), *test = mfs_test_path("holdout.tsv");
	struct mfs_run r;
	RUN(&r, "gen", "--events", "1000000", "--users", "20000", "--items", "3000", "--ids",
	    "string", "--noise", "0.5", "--seed", "11", "--holdout", "0.1", "--zstd", "1",
	    "--output", train, "--holdout-output", test);
	assert_int_equal(r.status, 0);
	double floor = mfs_json_number(r.out, "holdout_oracle_rmse");
	assert_true(floor > 0.4 && floor < 0.55);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--test", test, train);
	assert_int_equal(r.status, 0);
	double rmse = mfs_json_number(r.out, "test_rmse");
	print_message("noise floor %.4f, test RMSE %.4f (ratio %.3f), prequential %.4f\n", floor,
		      rmse, rmse / floor, mfs_json_number(r.out, "prequential_rmse"));
	assert_float_equal(mfs_json_number(r.out, "events"), 900000, 0);
	assert_true(rmse <= RATIO_GUARD * floor);
	mfs_run_free(&r);
}

/* Biases only (dim 1, no factors learned) must be clearly worse: the factors matter. */
static void train__factors_beat_biases_only_on_planted_stream(void **state)
{
	(void)state;
	const char *train = mfs_test_path("p2.tsv"), *test = mfs_test_path("h2.tsv");
	struct mfs_run r;
	RUN(&r, "gen", "--events", "300000", "--users", "3000", "--items", "1000", "--ids", "int",
	    "--seed", "5", "--holdout", "0.1", "--output", train, "--holdout-output", test);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--epochs", "3", "--test", test, train);
	double full = mfs_json_number(r.out, "test_rmse");
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--epochs", "3", "--lr", "0", "--replay-lr", "0", "--init-std", "0", "--test", test,
	    train);
	double biases = mfs_json_number(r.out, "test_rmse");
	mfs_run_free(&r);
	print_message("factors %.4f vs biases only %.4f\n", full, biases);
	assert_true(full < biases - 0.05);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(train__one_pass_gets_close_to_noise_floor),
		cmocka_unit_test(train__factors_beat_biases_only_on_planted_stream),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
