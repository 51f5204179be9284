/* test_cli.c - the mfstream command line, run as a user would. */
#include <math.h>
#include <poll.h>
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
	RUN(&r, "serve", "--model", "x.mfs", "--refresh-nice", "20");
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--refresh-nice: \"20\" is not 0-19 or idle"));
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
	int caught = mfs_test_catches(pid, SIGTERM, 60000); /* else SIGTERM would kill it */
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
	assert_true(caught);
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

/* --- a child process watched while it runs ------------------------------------ */

struct child {
	pid_t pid;
	int in, out, err; /* our ends; in is -1 unless asked for */
	char obuf[65536], ebuf[65536];
	size_t olen, elen;
};

static void child_start(struct child *c, char *const argv[], int with_stdin)
{
	memset(c, 0, sizeof *c);
	c->pid = mfs_spawn(argv, &c->in, &c->out, &c->err);
	assert_true(c->pid > 0);
	if (!with_stdin) {
		close(c->in);
		c->in = -1;
	}
}

/* Read what the child wrote for up to ms milliseconds (or until needle is in stderr). */
static int child_read(struct child *c, const char *needle, int ms)
{
	for (int waited = 0; waited <= ms; waited += 20) {
		if (needle && strstr(c->ebuf, needle))
			return 1;
		struct pollfd p[2] = { { .fd = c->out, .events = POLLIN }, { .fd = c->err, .events = POLLIN } };
		if (poll(p, 2, 20) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			char *b = i ? c->ebuf : c->obuf;
			size_t *len = i ? &c->elen : &c->olen;
			ssize_t n = read(p[i].fd, b + *len, sizeof c->obuf - 1 - *len);
			if (n > 0) {
				*len += (size_t)n;
				b[*len] = 0;
			}
		}
	}
	return needle ? strstr(c->ebuf, needle) != NULL : 0;
}

/* Wait for the child to exit, reading its output: its exit code (128 + signal),
 * or -1 if it is still running after ms milliseconds (then it is killed). */
static int child_wait(struct child *c, int ms)
{
	int st;
	for (int waited = 0;; waited += 20) {
		child_read(c, NULL, 0);
		pid_t r = waitpid(c->pid, &st, WNOHANG);
		if (r == c->pid)
			break;
		if (waited > ms) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &st, 0);
			st = -1;
			break;
		}
		usleep(20000);
	}
	child_read(c, NULL, 100); /* what is left in the pipes */
	if (c->in >= 0)
		close(c->in);
	close(c->out);
	close(c->err);
	if (st == -1)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* --- labels: the range, out-of-range ratings, true-label scores ----------------- */

/* MovieLens latest-small-like data: half stars, 0.5..5, a CSV with a header. */
static void cli_train__half_stars_detect_their_range_and_score_true_labels(void **state)
{
	(void)state;
	const char *p = mfs_test_path("half.csv");
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("userId,movieId,rating,timestamp\n", f);
	uint64_t x = 12345;
	for (int i = 0; i < 20000; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		fprintf(f, "%u,%u,%.1f,%d\n", (unsigned)(x >> 33) % 600, (unsigned)(x >> 45) % 3000,
			0.5 * (double)(1 + (x >> 20) % 10), 1000 + i);
	}
	fclose(f);
	struct mfs_run r;
	RUN(&r, "train", "--quiet", p);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "\"rating_range\": \"0.5:5\""));
	assert_float_equal(mfs_json_number(r.out, "out_of_range"), 0, 0);
	assert_non_null(strstr(r.err, "rating range 0.5:5 from the first 4096 events (half steps)"));
	mfs_run_free(&r);
	RUN(&r, "scan", p);
	assert_int_equal(r.status, 0);
	assert_float_equal(mfs_json_number(r.out, "rating_min"), 0.5, 0);
	assert_float_equal(mfs_json_number(r.out, "rating_max"), 5, 0);
	assert_float_equal(mfs_json_number(r.out, "rating_step"), 0.5, 0);
	mfs_run_free(&r);
	/* an explicit range is kept: the 0.5s are then out of it */
	RUN(&r, "train", "--quiet", "--rating-range", "1:5", p);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "\"rating_range\": \"1:5\""));
	assert_true(mfs_json_number(r.out, "out_of_range") > 1000);
	assert_null(strstr(r.err, "rating range 1:5 from"));
	mfs_run_free(&r);
}

/* Out-of-range ratings: counted, the first reported once with file:line, and
 * the prequential error taken against the true rating. */
static void cli_train__out_of_range_counted_reported_once_scored_true(void **state)
{
	(void)state;
	/* 10000 lines (three batches): out of range at lines 3, 4 and 9000 */
	const char *p = mfs_test_path("oor.tsv");
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	for (int i = 1; i <= 10000; i++)
		fprintf(f, "u%d\ti%d\t%s\n", i % 97, i % 89,
			i == 3 ? "0.5" : i == 4 ? "9" : i == 9000 ? "6" : i % 2 ? "4" : "2");
	fclose(f);
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--rating-range", "1:5", p);
	assert_int_equal(r.status, 0);
	assert_float_equal(mfs_json_number(r.out, "out_of_range"), 3, 0);
	char where[1400];
	snprintf(where, sizeof where, "%s:3: rating 0.5 is outside the rating range 1:5", p);
	assert_non_null(strstr(r.err, where));
	assert_int_equal(count_of(r.err, "is outside the rating range"), 1);
	mfs_run_free(&r);
	/* one event rated 0 in 1:5: predicted mu = 3 before learning; against the
	 * true 0 the error is 3 (against the clamped 1 it would be 2) */
	const char *q = mfs_test_path("zero.tsv");
	mfs_write_file(q, "u\ti\t0\n", 6);
	RUN(&r, "train", "--quiet", "--init-std", "0", "--rating-range", "1:5", q);
	assert_int_equal(r.status, 0);
	assert_float_equal(mfs_json_number(r.out, "prequential_rmse"), 3.0, 1e-4);
	assert_float_equal(mfs_json_number(r.out, "out_of_range"), 1, 0);
	mfs_run_free(&r);
}

/* --curve: a line every N events and one at the end, windows that add up to
 * the running figure, the model unchanged by the cuts, warnings still naming
 * their line. */
static void cli_train__curve_writes_the_prequential_curve(void **state)
{
	(void)state;
	const char *a = mfs_test_path("nocurve.mfs"), *b = mfs_test_path("curve.mfs");
	const char *c = mfs_test_path("curve.tsv");
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--dim", "16", "--save", a, small_stream());
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--dim", "16", "--curve", c, "--curve-every", "7k", "--save",
	    b, small_stream());
	assert_int_equal(r.status, 0);
	double rmse = mfs_json_number(r.out, "prequential_rmse");
	mfs_run_free(&r);
	size_t na, nb;
	char *ma = mfs_read_file(a, &na), *mb = mfs_read_file(b, &nb);
	assert_int_equal(na, nb);
	assert_memory_equal(ma, mb, na);
	free(ma);
	free(mb);
	FILE *f = fopen(c, "r");
	assert_non_null(f);
	char line[512];
	assert_non_null(fgets(line, sizeof line, f));
	assert_string_equal(line, "events\tprequential_rmse\tprequential_mae\twindow_rmse\t"
				  "window_mae\tevents_per_s\tseconds\n");
	static const unsigned long long want[] = { 7000, 14000, 21000, 28000, 30000 };
	unsigned long long ev, prev = 0;
	double run = 0, mae, wr, wm, eps, secs, sq = 0;
	size_t k = 0;
	while (fgets(line, sizeof line, f)) {
		assert_int_equal(sscanf(line, "%llu %lf %lf %lf %lf %lf %lf", &ev, &run, &mae, &wr,
					&wm, &eps, &secs), 7);
		assert_true(k < 5);
		assert_int_equal(ev, want[k++]);
		sq += wr * wr * (double)(ev - prev);
		prev = ev;
	}
	fclose(f);
	assert_int_equal(k, 5);
	assert_float_equal(run, rmse, 1e-6);
	assert_float_equal(sqrt(sq / 30000.0), rmse, 1e-5);
	/* a rating out of range in the second piece of a cut batch: its own line */
	const char *p = mfs_test_path("oor_curve.tsv");
	static const char four[] = "u1\ti1\t4\nu2\ti2\t2\nu3\ti3\t9\nu4\ti4\t3\n";
	mfs_write_file(p, four, strlen(four));
	RUN(&r, "train", "--quiet", "--rating-range", "1:5", "--curve", c, "--curve-every", "2", p);
	assert_int_equal(r.status, 0);
	char where[1400];
	snprintf(where, sizeof where, "%s:3: rating 9 is outside", p);
	assert_non_null(strstr(r.err, where));
	mfs_run_free(&r);
	RUN(&r, "train", "--curve-every", "5", p);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--curve-every needs --curve FILE"));
	mfs_run_free(&r);
	RUN(&r, "train", "--curve", "/nonexistent/dir/c.tsv", p);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "--curve /nonexistent/dir/c.tsv: No such file"));
	mfs_run_free(&r);
}

/* --- resume: settings compared with the checkpoint's ------------------------------- */

static void cli_train__resume_refuses_a_changed_shape_and_names_it(void **state)
{
	(void)state;
	char ck[1200];
	snprintf(ck, sizeof ck, "%s", mfs_test_path("resume_ck"));
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--dim", "8", "--checkpoint-dir", ck, small_stream());
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--dim", "16", "--ids", "hashed", "--rating-range", "0.5:5",
	    "--checkpoint-dir", ck, small_stream());
	assert_int_equal(r.status, 2);
	char want[1400];
	snprintf(want, sizeof want, "--dim 16 but the checkpoint in %s has dim 8", ck);
	assert_non_null(strstr(r.err, want));
	assert_non_null(strstr(r.err, "--ids hashed but the checkpoint"));
	assert_non_null(strstr(r.err, "--rating-range 0.5:5 but the checkpoint"));
	assert_string_equal(r.out, "");
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--max-users", "64", "--checkpoint-dir", ck, small_stream());
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--max-users 64 but the checkpoint"));
	mfs_run_free(&r);
	/* defaults do not refuse it (the checkpoint's dim is not the default); the
	 * same value given does not either; a learning rate is taken and said */
	RUN(&r, "train", "--quiet", "--checkpoint-dir", ck, small_stream());
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "\"resumed\": true"));
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--dim", "8", "--lr", "0.05", "--checkpoint-dir", ck,
	    small_stream());
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.err, "resuming with --lr 0.05"));
	mfs_run_free(&r);
}

/* --- signals ------------------------------------------------------------------- */

/* SIGINT in pass 2..N: the passes stop, the model learned so far is saved, the
 * summary says so, exit 1 (the run did not finish). */
static void cli_train__sigint_during_epochs_stops_and_says_interrupted(void **state)
{
	(void)state;
	const char *model = mfs_test_path("int.mfs");
	char *argv[] = { MFS_CLI, "train", "--progress", "--epochs", "100000", "--save",
			 (char *)model, (char *)small_stream(), NULL };
	struct child c;
	child_start(&c, argv, 0);
	int replaying = child_read(&c, "epoch 3 ", 120000); /* in the replayed passes */
	int labels = strstr(c.ebuf, "training RMSE") && strstr(c.ebuf, "prequential RMSE");
	if (replaying)
		kill(c.pid, SIGINT);
	/* 100000 passes would take hours: still running after a minute means it
	 * did not stop (and it is killed before any assert) */
	int status = child_wait(&c, replaying ? 60000 : 0);
	assert_true(replaying);
	assert_true(labels);
	assert_int_equal(status, 1);
	assert_non_null(strstr(c.obuf, "\"interrupted\": true"));
	assert_non_null(strstr(c.obuf, "\"interrupted_during\": \"epoch "));
	assert_non_null(strstr(c.ebuf, "interrupted by SIGINT during epoch"));
	double epochs = mfs_json_number(c.obuf, "epochs");
	assert_true(epochs >= 2 && epochs < 100000);
	assert_float_equal(mfs_json_number(c.obuf, "model_events"), 30000, 0);
	struct stat st;
	assert_int_equal(stat(model, &st), 0); /* what was learned is saved */
}

/* SIGTERM while reading an idle pipe ends the run at once: exit 0 with
 * --follow (its normal end), 1 without (the input did not end). */
static void cli_train__sigterm_on_an_idle_stdin_pipe_does_not_hang(void **state)
{
	(void)state;
	for (int follow = 0; follow < 2; follow++)
		for (int thread = 0; thread < 2; thread++) {
			char *argv[] = { MFS_CLI, "train", "--progress", "--reader-thread",
					 thread ? "on" : "off", "-", follow ? "--follow" : NULL, NULL };
			struct child c;
			child_start(&c, argv, 1);
			int wrote = write(c.in, "u1\ti1\t4\n", 8) == 8; /* then nothing more */
			/* the handler is set (with --follow and no reader thread nothing is
			 * printed while the read waits: ask the kernel) */
			int learned = wrote && mfs_test_catches(c.pid, SIGTERM, 60000) &&
				      (follow || child_read(&c, "1 events", 60000));
			if (learned)
				kill(c.pid, SIGTERM);
			/* the pipe stays open: still running after 30 s means it waits for it */
			int status = child_wait(&c, learned ? 30000 : 0);
			assert_true(learned);
			assert_int_equal(status, follow ? 0 : 1);
			/* with --follow the one event may still have waited for more */
			assert_true(mfs_json_number(c.obuf, "events") == 1 ||
				    (follow && mfs_json_number(c.obuf, "events") == 0));
			assert_non_null(strstr(c.obuf, "\"interrupted\": true"));
			if (!follow)
				assert_non_null(strstr(c.obuf, "\"interrupted_during\": \"reading\""));
		}
}

/* --- paths, conflicts, option values --------------------------------------------- */

static void cli_train__output_paths_are_checked_before_learning(void **state)
{
	(void)state;
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--save", "/nonexistent/dir/m.mfs", small_stream());
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "--save /nonexistent/dir/m.mfs"));
	assert_string_equal(r.out, ""); /* refused before anything was learned */
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--test", "/no/such/test.tsv", small_stream());
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "/no/such/test.tsv"));
	assert_string_equal(r.out, "");
	mfs_run_free(&r);
	char under_file[1300];
	snprintf(under_file, sizeof under_file, "%s/ck", small_stream()); /* a file is no directory */
	RUN(&r, "train", "--quiet", "--checkpoint-dir", under_file, small_stream());
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "--checkpoint-dir"));
	assert_string_equal(r.out, "");
	mfs_run_free(&r);
}

static void cli_train__conflicting_options_are_usage_errors(void **state)
{
	(void)state;
	static const char *const cases[][5] = {
		{ "--epochs", "2", "--follow", "-", "--epochs 2 and --follow" }, /* stdin: ends */
		{ "--epochs", "2", "--checkpoint-dir", "ck_conflict", "--checkpoint-dir and --epochs 2" },
		{ "--keep", "2", NULL, NULL, "--keep needs --checkpoint-dir" },
		{ "--delta-every", "10s", NULL, NULL, "--delta-every needs --checkpoint-dir" },
		{ "--memory", "64M", "--max-users", "100", "--memory and --max-users" },
		{ "--compress", "3", NULL, NULL, "--compress needs --save" },
		{ "--replay-lr", "0.01", NULL, NULL, "--replay-lr sets passes 2..N" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *argv[10] = { MFS_CLI, "train", "--quiet" };
		int n = 3;
		for (int k = 0; k < 4 && cases[i][k]; k++)
			argv[n++] = (char *)cases[i][k];
		int dash = strcmp(argv[n - 1], "-") == 0;
		if (!dash)
			argv[n++] = (char *)small_stream();
		argv[n] = NULL;
		struct mfs_run r;
		assert_int_equal(mfs_run_argv(&r, argv, dash ? "a\tb\t4\n" : NULL, dash ? 6 : 0), 0);
		if (r.status != 2 || !strstr(r.err, cases[i][4]))
			print_error("case %zu: status %d, stderr %s\n", i, r.status, r.err);
		assert_int_equal(r.status, 2);
		assert_non_null(strstr(r.err, cases[i][4]));
		assert_string_equal(r.out, "");
		mfs_run_free(&r);
	}
}

static void cli__option_values_are_named_and_parsed_one_way(void **state)
{
	(void)state;
	struct mfs_run r;
	RUN(&r, "train", "--lr", "-1", small_stream());
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "mfstream: --lr: must be >= 0, got -1"));
	mfs_run_free(&r);
	RUN(&r, "train", small_stream(), "--lr");
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--lr needs a value"));
	mfs_run_free(&r);
	RUN(&r, "train", "--lr", "--quiet", small_stream());
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--lr needs a value"));
	mfs_run_free(&r);
	RUN(&r, "recommend", "--model", "m.mfs", "--user", "1", "-k");
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "-k needs a value"));
	mfs_run_free(&r);
	/* durations and counts, for every option that takes them */
	char ck[1200];
	snprintf(ck, sizeof ck, "%s", mfs_test_path("periods"));
	static const char *const good[] = { "500ms", "1.5s", "30s", "5m", "2h", "5000", "5k", "1.5M" };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		RUN(&r, "train", "--quiet", "--dim", "4", "--checkpoint-dir", ck, "--checkpoint-every",
		    good[i], "--delta-every", good[i], "--max-users", "1.5k", small_stream());
		if (r.status != 0)
			print_error("--checkpoint-every %s: %s\n", good[i], r.err);
		assert_int_equal(r.status, 0);
		mfs_run_free(&r);
	}
	static const char *const bad[] = { "5mm", "1.5", "-3s", "0s", "10x", "1.5k5" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		RUN(&r, "train", "--quiet", "--checkpoint-dir", ck, "--checkpoint-every", bad[i],
		    small_stream());
		assert_int_equal(r.status, 2);
		assert_non_null(strstr(r.err, "--checkpoint-every"));
		mfs_run_free(&r);
	}
	RUN(&r, "train", "--max-users", "5m", small_stream());
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "lower-case m means minutes"));
	mfs_run_free(&r);
	RUN(&r, "train", "--max-users", "1.2345k", small_stream());
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--max-users: must be a whole number"));
	mfs_run_free(&r);
	/* help CMD is CMD --help */
	struct mfs_run h;
	RUN(&r, "help", "train");
	RUN(&h, "train", "--help");
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, h.out);
	assert_non_null(strstr(r.out, "--rating-range"));
	mfs_run_free(&r);
	mfs_run_free(&h);
}

/* --- nothing learned, failures that decide the exit status ------------------------- */

static void cli_train__nothing_learned_from_input_exits_one_with_the_reason(void **state)
{
	(void)state;
	struct mfs_run r;
	/* not a rating file */
	const char *junk = mfs_test_path("junk.bin");
	char bytes[3000];
	for (size_t i = 0; i < sizeof bytes; i++)
		bytes[i] = (char)(i * 7 % 251 + 1);
	mfs_write_file(junk, bytes, sizeof bytes);
	RUN(&r, "train", "--quiet", junk);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "nothing learned: all "));
	assert_float_equal(mfs_json_number(r.out, "events"), 0, 0);
	mfs_run_free(&r);
	/* compressions that are not read, named by their magic */
	const char *bz = mfs_test_path("r.tsv.bz2"), *xz = mfs_test_path("r.tsv.xz");
	mfs_write_file(bz, "BZh91AY&SY\x12\x34\x56", 13);
	mfs_write_file(xz, "\xfd" "7zXZ\x00\x00\x04\xe6", 9);
	RUN(&r, "train", "--quiet", bz, xz);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "bzip2-compressed"));
	assert_non_null(strstr(r.err, "xz-compressed"));
	assert_non_null(strstr(r.err, "nothing learned: 2 input files could not be read"));
	mfs_run_free(&r);
	/* JSON whose keys --fields does not name: the keys it has are named */
	const char *js = mfs_test_path("k.jsonl");
	const char j[] = "{\"userId\": 1, \"movieId\": 2, \"rating\": 4, \"timestamp\": 5}\n";
	mfs_write_file(js, j, sizeof j - 1);
	RUN(&r, "train", "--quiet", js);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "\"userId\", \"movieId\", \"rating\", \"timestamp\""));
	assert_non_null(strstr(r.err, "--fields"));
	mfs_run_free(&r);
	RUN(&r, "train", "--quiet", "--fields", "user=userId,item=movieId", js);
	assert_int_equal(r.status, 0);
	assert_float_equal(mfs_json_number(r.out, "events"), 1, 0);
	mfs_run_free(&r);
	/* an empty directory */
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("emptydir"));
	mkdir(dir, 0755);
	RUN(&r, "train", "--quiet", dir);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, "holds no file to read"));
	mfs_run_free(&r);
	/* an empty file is no failure (a resume with nothing new reads the same) */
	const char *empty = mfs_test_path("empty.tsv");
	mfs_write_file(empty, "", 0);
	RUN(&r, "train", "--quiet", empty);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
}

static void cli_eval__no_rated_pairs_exits_one(void **state)
{
	(void)state;
	const char *model = mfs_test_path("ev.mfs"), *bad = mfs_test_path("ev_bad.tsv");
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--save", model, small_stream());
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
	mfs_write_file(bad, "not a rating\n", 13);
	RUN(&r, "eval", "--model", model, bad);
	assert_int_equal(r.status, 1);
	assert_string_equal(r.out, "");
	assert_non_null(strstr(r.err, "no rated pairs to score"));
	mfs_run_free(&r);
}

/* The checkpoint directory replaced by a file while a run goes on: the final
 * checkpoint fails, the run exits 1 saying how many events no checkpoint holds.
 * With --on-checkpoint-error stop a failed periodic one ends the run itself. */
static void cli_train__failed_checkpoints_decide_the_exit_status(void **state)
{
	(void)state;
	for (int stop = 0; stop < 2; stop++) {
		char in[1200], ck[1200], moved[1300], p[1400];
		snprintf(in, sizeof in, "%s", mfs_test_path(stop ? "ckfail_in_stop" : "ckfail_in"));
		snprintf(ck, sizeof ck, "%s", mfs_test_path(stop ? "ckfail_stop" : "ckfail"));
		snprintf(moved, sizeof moved, "%s.moved", ck);
		mkdir(in, 0755);
		snprintf(p, sizeof p, "%s/a+0+0000000000.tsv", in);
		mfs_write_file(p, "u1\ti1\t4\nu2\ti2\t5\nu3\ti1\t3\n", 24);
		char *argv[] = { MFS_CLI, "train", "--quiet", "--follow", "--dim", "4", "--checkpoint-dir",
				 ck, "--checkpoint-every", "1", stop ? "--on-checkpoint-error" : in,
				 stop ? "stop" : NULL, in, NULL };
		struct child c;
		child_start(&c, argv, 0);
		char first[1400];
		snprintf(first, sizeof first, "%s/ckpt-00000000000000000003.mfs", ck);
		struct stat st;
		int waited = 0;
		while (stat(first, &st) != 0 && waited < 60000) {
			usleep(20000);
			waited += 20;
		}
		int started = stat(first, &st) == 0;
		usleep(100000); /* the writer has renamed it; let it exit */
		int replaced = started && rename(ck, moved) == 0;
		if (replaced)
			mfs_write_file(ck, "a file", 6);
		if (!replaced)
			child_wait(&c, 0);
		assert_true(started);
		assert_true(replaced);
		int status = -1;
		for (int k = 1; k < 300 && status < 0; k++) {
			/* more events: more checkpoints, which fail */
			snprintf(p, sizeof p, "%s/a+0+%010d.tsv", in, 3 * k);
			mfs_write_file(p, "u4\ti1\t2\nu5\ti2\t1\nu1\ti2\t4\n", 24);
			if (!stop && k == 5)
				kill(c.pid, SIGTERM);
			int r = 0;
			pid_t w = waitpid(c.pid, &r, WNOHANG);
			if (w == c.pid)
				status = WIFEXITED(r) ? WEXITSTATUS(r) : 128 + WTERMSIG(r);
			child_read(&c, NULL, 100);
		}
		if (status < 0)
			status = child_wait(&c, 30000);
		else
			child_wait(&c, 0); /* reaped: collect the output */
		assert_int_equal(status, 1);
		assert_non_null(strstr(c.ebuf, "the final checkpoint failed: the "));
		assert_non_null(strstr(c.ebuf, "events learned since the newest valid checkpoint"));
		assert_true(mfs_json_number(c.obuf, "unsaved_events") > 0);
		if (stop)
			assert_non_null(strstr(c.ebuf, "--on-checkpoint-error is stop"));
		else
			assert_non_null(strstr(c.obuf, "\"interrupted\": true"));
	}
}

/* model_events and inspect count events, not SGD steps */
static void cli_train__model_events_count_events_not_steps(void **state)
{
	(void)state;
	const char *model = mfs_test_path("steps.mfs");
	struct mfs_run r;
	RUN(&r, "train", "--quiet", "--epochs", "3", "--save", model, small_stream());
	assert_int_equal(r.status, 0);
	assert_float_equal(mfs_json_number(r.out, "steps"), 90000, 0);
	assert_float_equal(mfs_json_number(r.out, "model_events"), 30000, 0);
	assert_float_equal(mfs_json_number(r.out, "epochs"), 3, 0);
	mfs_run_free(&r);
	RUN(&r, "inspect", "--model", model);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "events learned: 30000\n"));
	mfs_run_free(&r);
}

/* MFS_DATA_DIR is read when the tests run, not fixed when they are built */
static void support__ml100k_dir_follows_mfs_data_dir(void **state)
{
	(void)state;
	char d[1200], m[1300], u[1400];
	snprintf(d, sizeof d, "%s", mfs_test_path("datadir"));
	snprintf(m, sizeof m, "%s/ml-100k", d);
	snprintf(u, sizeof u, "%s/u.data", m);
	mkdir(d, 0755);
	mkdir(m, 0755);
	mfs_write_file(u, "1\t1\t5\t0\n", 8);
	const char *old = getenv("MFS_DATA_DIR");
	char *keep = old ? strdup(old) : NULL;
	setenv("MFS_DATA_DIR", d, 1);
	const char *got = mfs_ml100k_dir();
	assert_non_null(got);
	assert_string_equal(got, m);
	setenv("MFS_DATA_DIR", "/no/such/data", 1);
	assert_null(mfs_ml100k_dir());
	if (keep)
		setenv("MFS_DATA_DIR", keep, 1);
	else
		unsetenv("MFS_DATA_DIR");
	free(keep);
}

/*
 * --threads 2 for the replay passes: the saved model is the same byte for
 * byte on every run, its accuracy that of --threads 1, and a bad count is a
 * usage error naming the option.
 */
static void cli_train__threads_replay_is_deterministic(void **state)
{
	(void)state;
	char m1[1200], m2[1200], m3[1200];
	snprintf(m1, sizeof m1, "%s", mfs_test_path("thr1.mfs"));
	snprintf(m2, sizeof m2, "%s", mfs_test_path("thr2a.mfs"));
	snprintf(m3, sizeof m3, "%s", mfs_test_path("thr2b.mfs"));
	struct mfs_run r;
	double rmse[3];
	const char *out[3] = { m1, m2, m3 }, *thr[3] = { "1", "2", "2" };
	for (int k = 0; k < 3; k++) {
		RUN(&r, "train", "--quiet", "--dim", "16", "--epochs", "4", "--threads", thr[k],
		    "--test", small_stream(), "--save", out[k], small_stream());
		assert_int_equal(r.status, 0);
		rmse[k] = mfs_json_number(r.out, "test_rmse");
		mfs_run_free(&r);
	}
	size_t l2, l3;
	char *b2 = mfs_read_file(m2, &l2), *b3 = mfs_read_file(m3, &l3);
	assert_true(l2 == l3 && memcmp(b2, b3, l2) == 0);
	free(b2);
	free(b3);
	assert_true(rmse[1] > 0.0 && fabs(rmse[1] - rmse[0]) < 0.01 * rmse[0]);
	RUN(&r, "train", "--threads", "0", small_stream());
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "--threads"));
	mfs_run_free(&r);
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
		cmocka_unit_test(cli_train__half_stars_detect_their_range_and_score_true_labels),
		cmocka_unit_test(cli_train__out_of_range_counted_reported_once_scored_true),
		cmocka_unit_test(cli_train__curve_writes_the_prequential_curve),
		cmocka_unit_test(cli_train__resume_refuses_a_changed_shape_and_names_it),
		cmocka_unit_test(cli_train__sigint_during_epochs_stops_and_says_interrupted),
		cmocka_unit_test(cli_train__sigterm_on_an_idle_stdin_pipe_does_not_hang),
		cmocka_unit_test(cli_train__output_paths_are_checked_before_learning),
		cmocka_unit_test(cli_train__conflicting_options_are_usage_errors),
		cmocka_unit_test(cli__option_values_are_named_and_parsed_one_way),
		cmocka_unit_test(cli_train__nothing_learned_from_input_exits_one_with_the_reason),
		cmocka_unit_test(cli_eval__no_rated_pairs_exits_one),
		cmocka_unit_test(cli_train__failed_checkpoints_decide_the_exit_status),
		cmocka_unit_test(cli_train__model_events_count_events_not_steps),
		cmocka_unit_test(support__ml100k_dir_follows_mfs_data_dir),
		cmocka_unit_test(cli_train__threads_replay_is_deterministic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
