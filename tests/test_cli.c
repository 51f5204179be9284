/* test_cli.c - the mfstream command line, run as a user would. */
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define RUN(r, ...)                                                  \
	do {                                                         \
		const char *argv_[] = { MFS_CLI, __VA_ARGS__, NULL }; \
		assert_int_equal(mfs_run_argv(r, (char *const *)argv_, NULL, 0), 0); \
	} while (0)

static const char *small_stream(void)
{
	static char path[1200];
	if (!path[0]) {
		snprintf(path, sizeof path, "%s", mfs_test_path("small.tsv"));
		struct mfs_run r;
		RUN(&r, "gen", "--users", "300", "--items", "200", "--events", "30000", "--ids",
		    "string", "--seed", "3", "--output", path);
		assert_int_equal(r.status, 0);
		assert_true(mfs_json_number(r.out, "oracle_rmse") > 0.3);
		mfs_run_free(&r);
	}
	return path;
}

static void cli__help_and_version_exit_zero(void **state)
{
	(void)state;
	struct mfs_run r;
	RUN(&r, "--help");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "train"));
	mfs_run_free(&r);
	RUN(&r, "--version");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "mfstream 0."));
	mfs_run_free(&r);
	const char *cmds[] = { "train", "eval", "predict", "recommend", "similar", "inspect", "gen" };
	for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++) {
		char *argv[] = { MFS_CLI, (char *)cmds[k], "--help", NULL };
		assert_int_equal(mfs_run_argv(&r, argv, NULL, 0), 0);
		assert_int_equal(r.status, 0);
		assert_non_null(strstr(r.out, "Usage: mfstream"));
		mfs_run_free(&r);
	}
}

static void cli__usage_errors_exit_two(void **state)
{
	(void)state;
	struct mfs_run r;
	RUN(&r, "train", "--no-such-option", "x.tsv");
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--no-such-option"));
	mfs_run_free(&r);
	RUN(&r, "frobnicate");
	assert_int_equal(r.status, 2);
	mfs_run_free(&r);
	RUN(&r, "train", "--dim", "zero", small_stream());
	assert_int_equal(r.status, 2);
	mfs_run_free(&r);
	RUN(&r, "train", "--kernel", "sse9", small_stream());
	assert_int_equal(r.status, 2);
	mfs_run_free(&r);
	RUN(&r, "train");
	assert_int_equal(r.status, 2);
	mfs_run_free(&r);
	RUN(&r, "recommend", "--model", "x.mfs");
	assert_int_equal(r.status, 2); /* --user missing */
	mfs_run_free(&r);
}

static void cli_train__missing_file_exits_one_naming_it(void **state)
{
	(void)state;
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "/no/such/ratings.tsv");
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "/no/such/ratings.tsv"));
	assert_string_equal(r.out, ""); /* no summary: nothing was learned */
	mfs_run_free(&r);
}

static void cli_train__malformed_lines_skipped_and_reported(void **state)
{
	(void)state;
	const char *p = mfs_test_path("mixed.tsv");
	const char t[] = "u1\ti1\t4\n"
			 "u2\ti2\tfour\n"
			 "u3\ti3\n"
			 "u1\ti2\t3\n"
			 "u4\ti1\tinf\n"
			 "u2\ti1\t5\n";
	mfs_write_file(p, t, sizeof t - 1);
	struct mfs_run r;
	RUN(&r, "train", "--quiet", p);
	assert_int_equal(r.status, 0);
	assert_float_equal(mfs_json_number(r.out, "events"), 3, 0);
	assert_float_equal(mfs_json_number(r.out, "skipped"), 3, 0);
	char where[1400];
	snprintf(where, sizeof where, "%s:2: rating \"four\" is not a number", p);
	assert_non_null(strstr(r.err, where));
	snprintf(where, sizeof where, "%s:3:", p);
	assert_non_null(strstr(r.err, where));
	snprintf(where, sizeof where, "%s:5:", p);
	assert_non_null(strstr(r.err, where));
	mfs_run_free(&r);
}

static void cli__train_save_then_query_the_model(void **state)
{
	(void)state;
	const char *model = mfs_test_path("m.mfs");
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--epochs", "3", "--save", model, small_stream());
	assert_int_equal(r.status, 0);
	assert_float_equal(mfs_json_number(r.out, "events"), 30000, 0);
	assert_float_equal(mfs_json_number(r.out, "steps"), 90000, 0);
	assert_true(mfs_json_number(r.out, "users") > 250);
	assert_true(mfs_json_number(r.out, "prequential_rmse") < 1.5);
	assert_non_null(strstr(r.out, "\"kernel\": \""));
	mfs_run_free(&r);

	/* eval on the training data: better than the prequential score */
	RUN(&r, "eval", "--model", model, small_stream());
	assert_int_equal(r.status, 0);
	assert_float_equal(mfs_json_number(r.out, "n"), 30000, 0);
	assert_true(mfs_json_number(r.out, "rmse") < 1.2);
	mfs_run_free(&r);

	/* pick a user and an item from the stream */
	char *data = mfs_read_file(small_stream(), NULL);
	char user[64], item[64];
	assert_int_equal(sscanf(data, "%63[^\t]\t%63[^\t]", user, item), 2);
	free(data);

	RUN(&r, "recommend", "--model", model, "--user", user, "-k", "5");
	assert_int_equal(r.status, 0);
	int lines = 0;
	double prev = INFINITY;
	char top_item[64] = "";
	double top_score = 0;
	for (char *l = strtok(r.out, "\n"); l; l = strtok(NULL, "\n")) {
		char it[64];
		double sc;
		assert_int_equal(sscanf(l, "%63[^\t]\t%lf", it, &sc), 2);
		assert_true(it[0] == 'i'); /* real item IDs, not rows */
		assert_true(sc <= prev && sc >= 1.0 && sc <= 5.0);
		if (!lines) {
			snprintf(top_item, sizeof top_item, "%s", it);
			top_score = sc;
		}
		prev = sc;
		lines++;
	}
	assert_int_equal(lines, 5);
	mfs_run_free(&r);

	/* predict agrees with recommend's top score */
	char line[200];
	snprintf(line, sizeof line, "%s %s\n", user, top_item);
	char *pargv[] = { MFS_CLI, "predict", "--model", (char *)model, NULL };
	assert_int_equal(mfs_run_argv(&r, pargv, line, strlen(line)), 0);
	assert_int_equal(r.status, 0);
	char pu[64], pi[64];
	double ps;
	assert_int_equal(sscanf(r.out, "%63[^\t]\t%63[^\t]\t%lf", pu, pi, &ps), 3);
	assert_string_equal(pu, user);
	assert_string_equal(pi, top_item);
	assert_true(fabs(ps - top_score) < 1e-3);
	mfs_run_free(&r);

	RUN(&r, "similar", "--model", model, "--item", item, "-k", "3");
	assert_int_equal(r.status, 0);
	assert_null(strstr(r.out, item)); /* not itself */
	mfs_run_free(&r);

	RUN(&r, "similar", "--model", model, "--item", "no-such-item");
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "no-such-item"));
	mfs_run_free(&r);

	RUN(&r, "inspect", "--model", model, "-k", "3");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "global mean"));
	assert_non_null(strstr(r.out, "lowest item biases"));
	assert_non_null(strstr(r.out, "highest item biases"));
	mfs_run_free(&r);
}

static void cli_inspect__titles_from_movielens_u_item(void **state)
{
	(void)state;
	const char *data = mfs_test_path("titles.tsv"), *items = mfs_test_path("u.item"),
		   *model = mfs_test_path("t.mfs");
	const char t[] = "1\t1\t5\n2\t1\t5\n3\t1\t4\n1\t2\t1\n2\t2\t1\n3\t2\t2\n";
	const char it[] = "1|Toy Story (1995)|01-Jan-1995||http://x|0|0\n"
			  "2|Caf\xe9 Flop (1996)|01-Jan-1996||http://y|0|0\n";
	mfs_write_file(data, t, sizeof t - 1);
	mfs_write_file(items, it, sizeof it - 1);
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--epochs", "30", "--save", model, data);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	/* each item learned 3 events: below the default minimum support */
	RUN(&r, "inspect", "--model", model, "--titles", items, "-k", "1");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "items ranked: 0 of 2"));
	assert_null(strstr(r.out, "Toy Story"));
	mfs_run_free(&r);
	RUN(&r, "inspect", "--model", model, "--titles", items, "-k", "1", "--min-events", "3");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "items ranked: 2 of 2"));
	assert_non_null(strstr(r.out, "  3 events  "));
	char *low = strstr(r.out, "lowest"), *high = strstr(r.out, "highest");
	assert_non_null(low);
	assert_non_null(high);
	char *flop = strstr(r.out, "Caf\xc3\xa9 Flop"); /* Latin-1 turned into UTF-8 */
	char *toy = strstr(r.out, "Toy Story");
	assert_true(flop && flop > low && flop < high);
	assert_true(toy && toy > high);
	mfs_run_free(&r);
}

/* The (user, item) pairs of a tsv stream, as "user\titem" strings. */
struct pairs {
	char **p;
	size_t n;
};

static void pairs_load(struct pairs *ps, const char *path)
{
	char *data = mfs_read_file(path, NULL);
	assert_non_null(data);
	ps->n = 0;
	ps->p = NULL;
	size_t cap = 0;
	for (char *l = strtok(data, "\n"); l; l = strtok(NULL, "\n")) {
		char u[64], i[64];
		if (sscanf(l, "%63[^\t]\t%63[^\t]", u, i) != 2)
			continue;
		if (ps->n == cap) {
			cap = cap ? 2 * cap : 1024;
			ps->p = realloc(ps->p, cap * sizeof *ps->p);
		}
		char b[160];
		snprintf(b, sizeof b, "%s\t%s", u, i);
		ps->p[ps->n++] = strdup(b);
	}
	free(data);
}

static int pairs_has(const struct pairs *ps, const char *u, const char *i)
{
	char b[160];
	snprintf(b, sizeof b, "%s\t%s", u, i);
	for (size_t k = 0; k < ps->n; k++)
		if (strcmp(ps->p[k], b) == 0)
			return 1;
	return 0;
}

/* The events of user u. */
static int pairs_events(const struct pairs *ps, const char *u)
{
	int n = 0;
	size_t ul = strlen(u);
	for (size_t k = 0; k < ps->n; k++)
		n += strncmp(ps->p[k], u, ul) == 0 && ps->p[k][ul] == '\t';
	return n;
}

static void pairs_free(struct pairs *ps)
{
	for (size_t k = 0; k < ps->n; k++)
		free(ps->p[k]);
	free(ps->p);
}

/* Lines "user\titem\tscore" of a --users answer: how many pairs were rated. */
static int rated_answers(const struct pairs *ps, char *out, int *lines)
{
	int rated = 0;
	*lines = 0;
	for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
		char u[64], i[64];
		assert_int_equal(sscanf(l, "%63[^\t]\t%63[^\t]", u, i), 2);
		rated += pairs_has(ps, u, i);
		(*lines)++;
	}
	return rated;
}

/*
 * recommend leaves out every item a user rated (the model's history holds
 * them all when a user has no more events than it keeps), still
 * returns k items; --include-seen and a model trained with --history 0 give
 * rated items back.
 */
static void cli_recommend__leaves_out_what_each_user_rated(void **state)
{
	(void)state;
	const char *model = mfs_test_path("hist.mfs"), *none = mfs_test_path("nohist.mfs");
	const char *users = mfs_test_path("hist-users.txt");
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--epochs", "3", "--save", model, small_stream());
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	struct pairs ps;
	pairs_load(&ps, small_stream());
	/* the first 20 users of the stream with at most 128 events (a user with
	 * more has only the items of its 128 most recent left out) */
	char list[2048] = "";
	size_t o = 0;
	int nu = 0;
	for (size_t k = 0; k < ps.n && nu < 20; k++) {
		char u[64];
		sscanf(ps.p[k], "%63[^\t]", u);
		char key[70];
		snprintf(key, sizeof key, "%s\n", u);
		if (strstr(list, key) && (strstr(list, key) == list || strstr(list, key)[-1] == '\n'))
			continue;
		if (pairs_events(&ps, u) > 128)
			continue;
		o += (size_t)snprintf(list + o, sizeof list - o, "%s", key);
		nu++;
	}
	mfs_write_file(users, list, o);
	int lines;
	RUN(&r, "recommend", "--model", model, "--users", users, "-k", "10");
	assert_int_equal(r.status, 0);
	assert_int_equal(rated_answers(&ps, r.out, &lines), 0);
	assert_int_equal(lines, 20 * 10);
	mfs_run_free(&r);
	RUN(&r, "recommend", "--model", model, "--users", users, "-k", "10", "--include-seen");
	assert_int_equal(r.status, 0);
	int seen_kept = rated_answers(&ps, r.out, &lines);
	print_message("--include-seen: %d of %d answers were rated\n", seen_kept, lines);
	assert_true(seen_kept > 0);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--epochs", "3", "--history", "0", "--save", none, small_stream());
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	RUN(&r, "recommend", "--model", none, "--users", users, "-k", "10");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "keeps no history"));
	assert_true(rated_answers(&ps, r.out, &lines) > 0);
	mfs_run_free(&r);
	RUN(&r, "train", "--history", "5000", small_stream());
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--history"));
	mfs_run_free(&r);
	pairs_free(&ps);
}

/* similar --min-events: no answer learned fewer events than asked; 0 lets all in. */
static void cli_similar__min_events_leaves_out_rare_items(void **state)
{
	(void)state;
	const char *data = mfs_test_path("rare.tsv"), *model = mfs_test_path("rare.mfs");
	/* items a and b rated by 30 users each, c by 30, "rare" by 2 */
	char buf[8192];
	size_t o = 0;
	for (int u = 0; u < 30; u++)
		o += (size_t)snprintf(buf + o, sizeof buf - o, "u%d\ta\t%d\nu%d\tb\t%d\nu%d\tc\t%d\n", u,
				      1 + u % 5, u, 1 + u % 5, u, 5 - u % 5);
	o += (size_t)snprintf(buf + o, sizeof buf - o, "u1\trare\t1\nu2\trare\t2\n");
	mfs_write_file(data, buf, o);
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--epochs", "20", "--dim", "8", "--save", model, data);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	RUN(&r, "similar", "--model", model, "--item", "a", "-k", "5");
	assert_int_equal(r.status, 0);
	assert_null(strstr(r.out, "rare"));
	assert_non_null(strstr(r.out, "b\t"));
	mfs_run_free(&r);
	RUN(&r, "similar", "--model", model, "--item", "a", "-k", "5", "--min-events", "0");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "rare\t"));
	mfs_run_free(&r);
	RUN(&r, "similar", "--model", model, "--item", "a", "--min-events", "-3");
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--min-events"));
	mfs_run_free(&r);
	RUN(&r, "recommend", "--model", model, "--user", "u1", "--min-events", "3");
	assert_int_equal(r.status, 2); /* recommend takes no --min-events */
	mfs_run_free(&r);
}

static void cli_train__stdin_and_zstd_give_the_same_model(void **state)
{
	(void)state;
	const char *zst = mfs_test_path("small.tsv.zst");
	struct mfs_run r;
	RUN(&r, "gen", "--users", "300", "--items", "200", "--events", "30000", "--ids", "string",
	    "--seed", "3", "--zstd", "3", "--frame-bytes", "50000", "--output", zst);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", small_stream());
	double plain = mfs_json_number(r.out, "prequential_rmse");
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", zst);
	assert_int_equal(r.status, 0);
	assert_true(mfs_json_number(r.out, "prequential_rmse") == plain);
	mfs_run_free(&r);
	size_t n;
	char *bytes = mfs_read_file(zst, &n);
	char *argv[] = { MFS_CLI, "train", "--quiet", "-", NULL };
	assert_int_equal(mfs_run_argv(&r, argv, bytes, n), 0);
	assert_int_equal(r.status, 0);
	assert_true(mfs_json_number(r.out, "prequential_rmse") == plain);
	mfs_run_free(&r);
	free(bytes);
}

static void cli_eval__corrupt_model_is_refused(void **state)
{
	(void)state;
	const char *model = mfs_test_path("c.mfs");
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--save", model, small_stream());
	mfs_run_free(&r);
	size_t n;
	char *b = mfs_read_file(model, &n);
	b[n / 2] ^= 1;
	mfs_write_file(model, b, n);
	free(b);
	RUN(&r, "eval", "--model", model, small_stream());
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "checksum"));
	assert_non_null(strstr(r.err, model));
	mfs_run_free(&r);
}

static void cli__model_directory_uses_newest_valid_file(void **state)
{
	(void)state;
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("ckpts"));
	char cmd[4000];
	snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
	struct mfs_run r;
	assert_int_equal(mfs_run_sh(&r, "%s", cmd), 0);
	mfs_run_free(&r);
	char a[1300], b[1300];
	snprintf(a, sizeof a, "%s/ckpt-0001.mfs", dir);
	snprintf(b, sizeof b, "%s/ckpt-0002.mfs", dir);
	RUN(&r, "train", "--quiet", "--save", a, small_stream());
	mfs_run_free(&r);
	mfs_write_file(b, "garbage that is not a model", 27);
	RUN(&r, "eval", "--model", dir, small_stream());
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "ckpt-0002.mfs"));
	assert_non_null(strstr(r.err, "warning"));
	assert_true(mfs_json_number(r.out, "n") == 30000);
	mfs_run_free(&r);
}

static void cli_train__follow_stdin_ends_at_eof(void **state)
{
	(void)state;
	struct mfs_run r;
	const char *in = "a\tb\t4\nc\td\t3\n";
	char *argv[] = { MFS_CLI, "train", "--quiet", "--follow", "-", NULL };
	assert_int_equal(mfs_run_argv(&r, argv, in, strlen(in)), 0);
	assert_int_equal(r.status, 0);
	assert_float_equal(mfs_json_number(r.out, "events"), 2, 0);
	mfs_run_free(&r);
}

/* --follow on a directory: files written while it runs are learned; SIGTERM
 * ends the run with exit 0 and the summary. */
static void cli_train__follow_directory_then_sigterm_exits_zero(void **state)
{
	(void)state;
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("follow"));
	mkdir(dir, 0755);
	int out[2];
	assert_int_equal(pipe(out), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(out[1], 1);
		close(out[0]);
		close(out[1]);
		execl(MFS_CLI, MFS_CLI, "train", "--quiet", "--follow", dir, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	char p[1400], tmp[1400];
	snprintf(tmp, sizeof tmp, "%s/events+0+0000000000.tsv_tmp", dir);
	snprintf(p, sizeof p, "%s/events+0+0000000000.tsv", dir);
	usleep(300000);
	mfs_write_file(tmp, "u1\ti1\t4\nu2\ti2\t5\nu3\ti1\t3\n", 24);
	assert_int_equal(rename(tmp, p), 0); /* a sink commits its file */
	snprintf(p, sizeof p, "%s/events+0+0000000003.tsv", dir);
	mfs_write_file(p, "u1\ti2\t2\n", 8);
	usleep(1500000); /* inotify wakes the reader at once; this is slack for a loaded machine */
	kill(pid, SIGTERM);
	char buf[4096];
	size_t n = 0;
	ssize_t got;
	while ((got = read(out[0], buf + n, sizeof buf - 1 - n)) > 0)
		n += (size_t)got;
	buf[n] = 0;
	close(out[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_float_equal(mfs_json_number(buf, "events"), 4, 0);
}

/* --titles: movies.csv with RFC 4180 quotes, in recommend, similar and inspect. */
static void cli_titles__movies_csv_names_items_in_every_query(void **state)
{
	(void)state;
	const char *data = mfs_test_path("mc.tsv"), *movies = mfs_test_path("movies.csv"),
		   *model = mfs_test_path("mc.mfs");
	char t[4096];
	size_t n = 0;
	for (int u = 0; u < 20; u++) /* item 11 liked by all, 3606 by none */
		n += (size_t)snprintf(t + n, sizeof t - n, "u%d\t11\t5\nu%d\t3606\t1\nu%d\t7\t3\n",
				      u, u, u);
	mfs_write_file(data, t, n);
	const char mc[] = "movieId,title,genres\n"
			  "11,\"American President, The (1995)\",Comedy|Drama|Romance\n"
			  "3606,\"\"\"Great Performances\"\" Cats (1998)\",Musical\n";
	mfs_write_file(movies, mc, sizeof mc - 1);
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--epochs", "10", "--save", model, data);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);

	/* u1 rated all three: --include-seen, or nothing is left to recommend */
	RUN(&r, "recommend", "--model", model, "--user", "u1", "-k", "3", "--titles", movies,
	    "--include-seen");
	assert_int_equal(r.status, 0);
	/* item<TAB>score<TAB>title; item 7 has no title: an empty last column */
	assert_true(strncmp(r.out, "11\t", 3) == 0);
	assert_non_null(strstr(r.out, "\tAmerican President, The (1995)\n"));
	assert_non_null(strstr(r.out, "\t\"Great Performances\" Cats (1998)\n"));
	char *seven = strstr(r.out, "\n7\t");
	assert_non_null(seven);
	seven = strchr(seven + 3, '\t');
	assert_non_null(seven);
	assert_true(seven[1] == '\n'); /* "7<TAB>score<TAB>" then the line ends */
	assert_null(strstr(r.out, "\"\"")); /* no doubled quotes left */
	mfs_run_free(&r);

	RUN(&r, "similar", "--model", model, "--item", "7", "-k", "2", "--titles", movies);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "\tAmerican President, The (1995)\n"));
	mfs_run_free(&r);

	RUN(&r, "inspect", "--model", model, "--titles", movies, "-k", "1");
	assert_int_equal(r.status, 0);
	char *high = strstr(r.out, "highest");
	assert_non_null(high);
	assert_non_null(strstr(high, "11  20 events  American President, The (1995)"));
	mfs_run_free(&r);
}

/* --titles on a file that is not a title file, or not this model's: exit 1
 * naming the file and what was expected, nothing on stdout. */
static void cli_titles__wrong_file_is_an_error_naming_it(void **state)
{
	(void)state;
	const char *data = mfs_test_path("wt.tsv"), *model = mfs_test_path("wt.mfs"),
		   *other = mfs_test_path("other-titles.tsv");
	const char t[] = "1\t10\t5\n2\t10\t4\n1\t20\t2\n2\t30\t3\n";
	mfs_write_file(data, t, sizeof t - 1);
	mfs_write_file(other, "tt1\tFoo\ntt2\tBar\n", 16);
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--save", model, data);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	char want[1400];

	/* the ratings themselves: three TAB fields a line */
	RUN(&r, "recommend", "--model", model, "--user", "1", "--titles", data);
	assert_int_equal(r.status, 1);
	snprintf(want, sizeof want, "%s: not a title file: 4 of 4 lines are not id<TAB>title", data);
	assert_non_null(strstr(r.err, want));
	assert_non_null(strstr(r.err, "expected MovieLens u.item"));
	assert_string_equal(r.out, "");
	mfs_run_free(&r);

	/* titles of other items */
	RUN(&r, "similar", "--model", model, "--item", "10", "--titles", other);
	assert_int_equal(r.status, 1);
	snprintf(want, sizeof want, "%s: none of the model's 3 items has a title in it", other);
	assert_non_null(strstr(r.err, want));
	assert_non_null(strstr(r.err, "\"tt1\""));
	assert_string_equal(r.out, "");
	mfs_run_free(&r);

	RUN(&r, "inspect", "--model", model, "--titles", MFS_CLI); /* a binary */
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "binary data"));
	assert_string_equal(r.out, "");
	mfs_run_free(&r);

	RUN(&r, "inspect", "--model", model, "--titles", "/no/such/u.item");
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "/no/such/u.item"));
	mfs_run_free(&r);
}

/* LIBMF's space-separated lines, recognised by --format auto: the same model as tsv. */
static void cli_train__space_separated_input_learns_as_tsv_does(void **state)
{
	(void)state;
	const char *ssv = mfs_test_path("small.ssv");
	struct mfs_run r;
	RUN(&r, "gen", "--users", "300", "--items", "200", "--events", "30000", "--ids", "string",
	    "--seed", "3", "--format", "ssv", "--output", ssv);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	size_t n;
	char *text = mfs_read_file(ssv, &n);
	assert_non_null(text);
	assert_null(memchr(text, '\t', n));
	free(text);
	RUN(&r, "train", "--quiet", small_stream());
	double tsv_rmse = mfs_json_number(r.out, "prequential_rmse");
	mfs_run_free(&r);
	const char *fmts[] = { "auto", "ssv" };
	for (int i = 0; i < 2; i++) {
		RUN(&r, "train", "--quiet", "--format", fmts[i], ssv);
		assert_int_equal(r.status, 0);
		assert_float_equal(mfs_json_number(r.out, "events"), 30000, 0);
		assert_float_equal(mfs_json_number(r.out, "skipped"), 0, 0);
		assert_true(mfs_json_number(r.out, "prequential_rmse") == tsv_rmse);
		mfs_run_free(&r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cli__help_and_version_exit_zero),
		cmocka_unit_test(cli__usage_errors_exit_two),
		cmocka_unit_test(cli_train__missing_file_exits_one_naming_it),
		cmocka_unit_test(cli_train__malformed_lines_skipped_and_reported),
		cmocka_unit_test(cli__train_save_then_query_the_model),
		cmocka_unit_test(cli_inspect__titles_from_movielens_u_item),
		cmocka_unit_test(cli_recommend__leaves_out_what_each_user_rated),
		cmocka_unit_test(cli_similar__min_events_leaves_out_rare_items),
		cmocka_unit_test(cli_train__stdin_and_zstd_give_the_same_model),
		cmocka_unit_test(cli_eval__corrupt_model_is_refused),
		cmocka_unit_test(cli__model_directory_uses_newest_valid_file),
		cmocka_unit_test(cli_train__follow_stdin_ends_at_eof),
		cmocka_unit_test(cli_train__follow_directory_then_sigterm_exits_zero),
		cmocka_unit_test(cli_titles__movies_csv_names_items_in_every_query),
		cmocka_unit_test(cli_titles__wrong_file_is_an_error_naming_it),
		cmocka_unit_test(cli_train__space_separated_input_learns_as_tsv_does),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
