/* cli_query.c - "predict", "recommend", "similar" and "inspect" on a saved model. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_lines.h"
#include "cli_titles.h"

struct qopts {
	const char *model, *user, *item, *titles, *kernel;
	const char *users, *items, *exclude; /* --users FILE, --items FILE, --exclude FILE */
	uint64_t k;
	int stats;
	int include_seen;    /* --include-seen */
	uint64_t min_events; /* --min-events N */
	int min_events_set;  /* given on the command line */
};

/* Options beyond --model/--kernel/--help a command takes (the `which` bits). */
enum { Q_USER = 1, Q_ITEM = 2, Q_K = 4, Q_TITLES = 8, Q_USERS = 16, Q_ITEMS = 32, Q_EXCLUDE = 64,
       Q_STATS = 128, Q_SEEN = 256, Q_MINEV = 512 };

/* Common option loop. Returns -1 to continue, else an exit code. */
static int parse_query(const char *cmd, const char *help, int argc, char **argv, struct qopts *q,
		       int which)
{
	static const struct option opts[] = {
		{ "model", required_argument, 0, 'm' },	  { "user", required_argument, 0, 'u' },
		{ "item", required_argument, 0, 'i' },	  { "k", required_argument, 0, 'k' },
		{ "titles", required_argument, 0, 't' },  { "kernel", required_argument, 0, 'K' },
		{ "item-meta", required_argument, 0, 't' }, /* serve's name for --titles */
		{ "users", required_argument, 0, 'U' },	  { "items", required_argument, 0, 'I' },
		{ "exclude", required_argument, 0, 'x' }, { "stats", no_argument, 0, 'S' },
		{ "include-seen", no_argument, 0, 'Z' },  { "min-events", required_argument, 0, 'E' },
		{ "help", no_argument, 0, 'h' },	  { 0, 0, 0, 0 },
	};
	memset(q, 0, sizeof *q);
	q->k = 10;
	q->min_events = CLI_MIN_EVENTS;
	int c;
	optind = 1;
	opterr = 0;
	const struct cli_option table[] = {
		CLI_OPT_STR('m', &q->model),	CLI_OPT_STR('K', &q->kernel),
		CLI_OPT_STR('u', &q->user),	CLI_OPT_STR('i', &q->item),
		CLI_OPT_STR('t', &q->titles),	CLI_OPT_STR('U', &q->users),
		CLI_OPT_STR('I', &q->items),	CLI_OPT_STR('x', &q->exclude),
		CLI_OPT_FLAG('S', &q->stats, 1), CLI_OPT_FLAG('Z', &q->include_seen, 1),
		CLI_OPT_NUM('k', CLI_U64, &q->k, 1, 1000000),
	};
	/* the options only some commands take */
	static const struct {
		int id, need;
	} needs[] = { { 'u', Q_USER },	 { 'i', Q_ITEM },    { 'k', Q_K },	 { 't', Q_TITLES },
		      { 'U', Q_USERS },	 { 'I', Q_ITEMS },   { 'x', Q_EXCLUDE }, { 'S', Q_STATS },
		      { 'Z', Q_SEEN },	 { 'E', Q_MINEV } };
	while ((c = cli_getopt(cmd, argc, argv, ":hm:u:i:k:t:", opts)) != -1) {
		for (size_t i = 0; i < sizeof needs / sizeof *needs; i++)
			if (needs[i].id == c && !(which & needs[i].need))
				return cli_usage(cmd, "unknown option \"%s\"", argv[optind - 1]);
		int t = cli_option_apply(cmd, table, sizeof table / sizeof *table, c,
					 c == 'k' ? "-k" : cli_option_name(opts, c), optarg);
		if (t < 0)
			return EXIT_USAGE;
		if (t > 0)
			continue;
		switch (c) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'E':
			if (cli_u64(cmd, "--min-events", optarg, 0, UINT32_MAX, &q->min_events) < 0)
				return EXIT_USAGE;
			q->min_events_set = 1;
			break;
		case CLI_OPT_ERR:
			return EXIT_USAGE;
		default:
			return cli_usage(cmd, "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (!q->model)
		return cli_usage(cmd, "--model PATH is required");
	if ((which & Q_USER) && !!q->user == !!q->users)
		return cli_usage(cmd, "give --user ID or --users FILE (one of them)");
	if ((which & Q_ITEM) && !!q->item == !!q->items)
		return cli_usage(cmd, "give --item ID or --items FILE (one of them)");
	return -1;
}

static void print_id(const mfs_model *m, int side, uint32_t row)
{
	const char *id;
	size_t len;
	if (mfs_model_row(m, side, row, &id, &len, NULL) == 0)
		fwrite(id, 1, len, stdout);
}

/* --titles of the command running (one per process): recommend and similar
 * print a title column when it is set. */
static mfs_titles *shown_titles;

/* The end of an answer line: "\t<title>" with --titles (empty when the item
 * has none, so that every line has the same columns), then the newline. */
static void end_item_line(const mfs_model *m, uint32_t row)
{
	if (shown_titles) {
		const char *title = cli_item_title(shown_titles, m, row);
		putchar('\t');
		if (title)
			fputs(title, stdout);
	}
	putchar('\n');
}

/* Load --titles (before the model: a wrong path fails fast). 0 or an exit code. */
static int titles_open(const struct qopts *q)
{
	return q->titles ? cli_titles_load(q->titles, &shown_titles) : 0;
}

/* Check them against the model. 0 or an exit code. */
static int titles_check(const struct qopts *q, const mfs_model *m)
{
	return shown_titles ? cli_titles_check(q->titles, shown_titles, m) : 0;
}

/* --- queries from a file, one ID per line ------------------------------ */

/* Open FILE ("-": standard input); prints the error. */
static FILE *open_list(const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (!f)
		cli_error("%s: %s", path, strerror(errno));
	return f;
}

/* The next ID of a list: the line without its end, surrounding blanks trimmed.
 * Returns its length (0 for a blank line), or -1 at the end. A line longer
 * than CLI_LINE_MAX is reported as path:line and skipped (an empty ID);
 * *ln counts the lines. */
static ssize_t next_id(FILE *f, const char *path, uint64_t *ln, char **line, size_t *cap, char **id)
{
	ssize_t n = cli_read_line(f, line, cap, CLI_LINE_MAX);
	if (n == CLI_LINE_END)
		return -1;
	++*ln;
	if (n == CLI_LINE_NOMEM) {
		cli_error("%s:%llu: out of memory", path, (unsigned long long)*ln);
		return -1;
	}
	if (n == CLI_LINE_TOO_LONG) {
		cli_error("%s:%llu: line longer than 1 MiB; skipped", path, (unsigned long long)*ln);
		*id = *line;
		return 0;
	}
	char *p = *line;
	while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
		p[--n] = 0;
	while (*p == ' ' || *p == '\t') {
		p++;
		n--;
	}
	*id = p;
	return n;
}

/* --- --exclude: a set of (user, item) pairs ------------------------------ */

/* Open addressing over 64-bit keys of pairs (and a count per user key). */
struct keyset {
	uint64_t *key; /* 0 = empty */
	uint32_t *cnt;
	size_t cap, n;
};

static uint64_t nonzero(uint64_t k)
{
	return k ? k : 1;
}

/* The slot of key (its own or the empty one where it goes). */
static size_t keyset_slot(const struct keyset *s, uint64_t key)
{
	size_t i = (size_t)(key * 0x9E3779B97F4A7C15ull >> 20) & (s->cap - 1);
	while (s->key[i] && s->key[i] != key)
		i = (i + 1) & (s->cap - 1);
	return i;
}

static int keyset_grow(struct keyset *s)
{
	struct keyset g = { NULL, NULL, s->cap ? 2 * s->cap : 1024, s->n };
	g.key = calloc(g.cap, sizeof *g.key);
	g.cnt = calloc(g.cap, sizeof *g.cnt);
	if (!g.key || !g.cnt) {
		free(g.key);
		free(g.cnt);
		return -1;
	}
	for (size_t i = 0; i < s->cap; i++)
		if (s->key[i]) {
			size_t j = keyset_slot(&g, s->key[i]);
			g.key[j] = s->key[i];
			g.cnt[j] = s->cnt[i];
		}
	free(s->key);
	free(s->cnt);
	*s = g;
	return 0;
}

/* Add key (count += 1); returns 1 if it was new, 0 if present, -1 out of memory. */
static int keyset_add(struct keyset *s, uint64_t key)
{
	if (4 * (s->n + 1) > 3 * s->cap && keyset_grow(s) < 0)
		return -1;
	size_t i = keyset_slot(s, key);
	int fresh = s->key[i] == 0;
	s->key[i] = key;
	s->cnt[i]++;
	s->n += fresh;
	return fresh;
}

static uint32_t keyset_count(const struct keyset *s, uint64_t key)
{
	if (!s->cap)
		return 0;
	size_t i = keyset_slot(s, key);
	return s->key[i] ? s->cnt[i] : 0;
}

static void keyset_free(struct keyset *s)
{
	free(s->key);
	free(s->cnt);
}

struct exclude {
	struct keyset pairs, users; /* users: how many pairs each user has */
};

static uint64_t user_key(const char *u, size_t ul)
{
	return nonzero(mfs_hash_id(u, ul, 0x5eedu));
}

static uint64_t pair_key(const char *u, size_t ul, const char *it, size_t il)
{
	return nonzero(mfs_hash_id(it, il, user_key(u, ul)));
}

/* Read "user item" lines; malformed lines are reported (first five) and skipped. */
static int exclude_load(struct exclude *x, const char *path)
{
	memset(x, 0, sizeof *x);
	FILE *f = open_list(path);
	if (!f)
		return EXIT_RUNTIME;
	char *line = NULL;
	size_t cap = 0;
	uint64_t ln = 0, bad = 0;
	int rc = 0;
	ssize_t n;
	while ((n = cli_read_line(f, &line, &cap, CLI_LINE_MAX)) != CLI_LINE_END) {
		ln++;
		char *u, *it;
		size_t ul, il;
		if (n == CLI_LINE_NOMEM) {
			cli_error("%s: out of memory", path);
			rc = EXIT_RUNTIME;
			break;
		}
		if (n == CLI_LINE_TOO_LONG || cli_split_pair(line, &u, &ul, &it, &il) < 0) {
			if ((n == CLI_LINE_TOO_LONG || line[0]) && ++bad <= 5)
				cli_error("%s:%llu: %s; line skipped", path, (unsigned long long)ln,
					  n == CLI_LINE_TOO_LONG ? "line longer than 1 MiB"
								 : "expected \"user item\"");
			continue;
		}
		int fresh = keyset_add(&x->pairs, pair_key(u, ul, it, il));
		if (fresh > 0)
			fresh = keyset_add(&x->users, user_key(u, ul));
		if (fresh < 0) {
			cli_error("%s: out of memory", path);
			rc = EXIT_RUNTIME;
			break;
		}
	}
	if (bad > 5)
		cli_error("%s: %llu malformed lines skipped", path, (unsigned long long)bad);
	free(line);
	if (f != stdin)
		fclose(f);
	return rc;
}

/* --- recommend ----------------------------------------------------------- */

static const char recommend_help[] =
	"Usage: mfstream recommend --model PATH (--user ID | --users FILE) [-k N]\n"
	"                          [--include-seen] [--exclude FILE] [--titles FILE] [--stats]\n"
	"\n"
	"The N (default 10) items with the highest predicted rating for a user, best\n"
	"first, as \"item<TAB>score\" lines. Items are ranked by mu + b_user + b_item +\n"
	"p_user.q_item (every item scored, the best N kept in a heap: no full sort);\n"
	"the score printed is that prediction kept inside the rating range. An unknown\n"
	"(cold) user gets the items with the highest mu + b_item.\n"
	"The items the user has rated are left out: the model remembers the items of\n"
	"each user's most recent events (train --history, default 128 events; a user\n"
	"with more has only the items of its most recent ones left out). They are\n"
	"left out while ranking, so the answer is still the N best of the others.\n"
	"\n"
	"  --model PATH    a model file or a checkpoint directory (newest valid)\n"
	"  --user ID       the user\n"
	"  --users FILE    many users, one ID per line ('-': standard input; lines up to\n"
	"                  1 MiB); prints \"user<TAB>item<TAB>score\" lines, one block per user\n"
	"  -k, --k N       how many items (default 10)\n"
	"  --include-seen  keep the items in the user's history\n"
	"  --exclude FILE  \"user item\" lines (split as predict's): pairs never\n"
	"                  recommended too, e.g. all the items a user has rated when\n"
	"                  they are more than the history holds\n"
	"  --titles FILE   add a title column (empty for an item without one); FILE is\n"
	"                  MovieLens u.item, movies.csv or \"id<TAB>title\" lines (also\n"
	"                  --item-meta FILE, the name serve takes)\n"
	"  --stats         print {\"queries\", \"p50_us\", \"p90_us\", \"p99_us\", \"max_us\", ...}\n"
	"                  on stderr: the time of each query (scoring, selection, exclusion;\n"
	"                  not the printing), measured inside the process\n"
	"  --kernel K      auto|scalar|avx2|avx512|neon\n";

/* Top-k for one user, without excluded pairs; prints it. Returns 0 or -1. */
static int recommend_one(const mfs_view *v, const mfs_query *qy, const char *user, size_t ulen,
			 size_t k, const struct exclude *x, int prefix, mfs_scored *buf,
			 size_t buf_cap, struct cli_latency *lat)
{
	const mfs_model *m = mfs_view_model(v);
	double t0 = lat ? cli_now() : 0;
	size_t want = k, got;
	mfs_scored *res = buf;
	mfs_scored *grown = NULL;
	if (x)
		want += keyset_count(&x->users, user_key(user, ulen));
	if (want > buf_cap && !(res = grown = malloc(want * sizeof *res)))
		return -1;
	int n = mfs_view_recommend_with(v, qy, user, ulen, want, res);
	if (n < 0) {
		free(grown);
		return -1;
	}
	got = 0;
	for (int i = 0; i < n && got < k; i++) {
		if (x) {
			const char *id;
			size_t il;
			mfs_model_row(m, MFS_ITEMS, res[i].row, &id, &il, NULL);
			if (keyset_count(&x->pairs, pair_key(user, ulen, id, il)))
				continue;
		}
		res[got++] = res[i];
	}
	if (lat && cli_latency_add(lat, (cli_now() - t0) * 1e6) < 0) {
		free(grown);
		return -1;
	}
	for (size_t i = 0; i < got; i++) {
		if (prefix) {
			fwrite(user, 1, ulen, stdout);
			putchar('\t');
		}
		print_id(m, MFS_ITEMS, res[i].row);
		printf("\t%.4f", res[i].score);
		end_item_line(m, res[i].row);
	}
	free(grown);
	return 0;
}

int cmd_recommend(int argc, char **argv)
{
	struct qopts q;
	int rc = parse_query("recommend", recommend_help, argc, argv, &q,
			     Q_USER | Q_K | Q_USERS | Q_EXCLUDE | Q_STATS | Q_TITLES | Q_SEEN);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return cli_usage("recommend", "unexpected argument \"%s\"", argv[optind]);
	struct exclude x, *xp = NULL;
	if (q.exclude) {
		if ((rc = exclude_load(&x, q.exclude)) != 0)
			return rc;
		xp = &x;
	}
	FILE *list = NULL;
	mfs_server *srv = NULL;
	const mfs_view *v = NULL;
	const mfs_model *m = NULL;
	mfs_scored *out = NULL;
	mfs_query *qy = NULL;
	struct cli_latency lat = { 0 };
	if (q.users && !(list = open_list(q.users))) {
		rc = EXIT_RUNTIME;
		goto done;
	}
	if ((rc = titles_open(&q)) != 0 || (rc = cli_open_server(q.model, q.kernel, &srv)) != 0)
		goto done;
	v = mfs_server_acquire(srv);
	m = mfs_view_model(v);
	if ((rc = titles_check(&q, m)) != 0 ||
	    (rc = cli_make_query("recommend", m, 1, q.include_seen, 0, 0, &qy)) != 0)
		goto done;
	if (mfs_model_implicit_get(m, NULL) == 1)
		cli_error("note: an implicit-feedback model: scores are logits, not ratings");
	if (!(out = malloc(q.k * sizeof *out))) {
		cli_error("out of memory");
		rc = EXIT_RUNTIME;
		goto done;
	}
	if (q.user) {
		if (mfs_model_find(m, MFS_USERS, q.user, strlen(q.user)) < 0)
			cli_error("note: user \"%s\" is not in the model; recommending by item bias",
				  q.user);
		if (recommend_one(v, qy, q.user, strlen(q.user), q.k, xp, 0, out, q.k,
				  q.stats ? &lat : NULL) < 0)
			rc = EXIT_RUNTIME;
	} else {
		char *line = NULL, *id;
		size_t cap = 0;
		ssize_t n;
		uint64_t cold = 0, ln = 0;
		while (rc == 0 && (n = next_id(list, q.users, &ln, &line, &cap, &id)) >= 0) {
			if (n == 0)
				continue;
			cold += mfs_model_find(m, MFS_USERS, id, (size_t)n) < 0;
			if (recommend_one(v, qy, id, (size_t)n, q.k, xp, 1, out, q.k,
					  q.stats ? &lat : NULL) < 0)
				rc = EXIT_RUNTIME;
		}
		free(line);
		if (cold)
			cli_error("note: %llu users are not in the model; recommended by item bias",
				  (unsigned long long)cold);
	}
	if (rc)
		cli_error("recommend: out of memory");
	fflush(stdout);
	if (q.stats && m)
		cli_latency_print(&lat, m);
done:
	free(out);
	mfs_query_free(qy);
	mfs_server_release(srv, v);
	mfs_server_free(srv);
	if (list && list != stdin)
		fclose(list);
	if (xp) {
		keyset_free(&x.pairs);
		keyset_free(&x.users);
	}
	mfs_titles_free(shown_titles);
	shown_titles = NULL;
	return rc;
}

/* --- similar -------------------------------------------------------------- */

static const char similar_help[] =
	"Usage: mfstream similar --model PATH (--item ID | --items FILE) [-k N]\n"
	"                        [--min-events N] [--titles FILE] [--stats]\n"
	"\n"
	"The N (default 10) items whose factor rows are closest to ID's by cosine,\n"
	"best first, as \"item<TAB>cosine\" lines. Items that learned few events are\n"
	"left out (their few ratings put their rows almost anywhere).\n"
	"\n"
	"  --model PATH    a model file or a checkpoint directory (newest valid)\n"
	"  --item ID       the item\n"
	"  --items FILE    many items, one ID per line ('-': standard input); prints\n"
	"                  \"item<TAB>similar<TAB>cosine\" lines, one block per item\n"
	"  -k, --k N       how many items (default 10)\n"
	"  --min-events N  leave out items that learned fewer than N events in the\n"
	"                  first pass (default " CLI_STR(CLI_MIN_EVENTS) "; 0: none)\n"
	"  --titles FILE   add a title column (see recommend)\n"
	"  --stats         print {\"queries\", \"p50_us\", \"p99_us\", ...} on stderr (see recommend)\n"
	"  --kernel K      auto|scalar|avx2|avx512|neon\n";

/* Returns 0, 1 for an unknown item (reported), -1 out of memory. */
static int similar_one(const mfs_view *v, const mfs_query *qy, const char *item, size_t ilen,
		       size_t k, int prefix, mfs_scored *out, struct cli_latency *lat)
{
	const mfs_model *m = mfs_view_model(v);
	double t0 = lat ? cli_now() : 0;
	int n = mfs_view_similar_with(v, qy, item, ilen, k, out);
	if (n == -MFS_E_NOTFOUND) {
		cli_error("item \"%.*s\" is not in the model", (int)ilen, item);
		return 1;
	}
	if (n < 0)
		return -1;
	if (lat && cli_latency_add(lat, (cli_now() - t0) * 1e6) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (prefix) {
			fwrite(item, 1, ilen, stdout);
			putchar('\t');
		}
		print_id(m, MFS_ITEMS, out[i].row);
		printf("\t%.4f", out[i].score);
		end_item_line(m, out[i].row);
	}
	return 0;
}

int cmd_similar(int argc, char **argv)
{
	struct qopts q;
	int rc = parse_query("similar", similar_help, argc, argv, &q,
			     Q_ITEM | Q_K | Q_ITEMS | Q_STATS | Q_TITLES | Q_MINEV);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return cli_usage("similar", "unexpected argument \"%s\"", argv[optind]);
	FILE *list = NULL;
	mfs_server *srv = NULL;
	const mfs_view *v = NULL;
	const mfs_model *m = NULL;
	mfs_scored *out = NULL;
	mfs_query *qy = NULL;
	struct cli_latency lat = { 0 };
	if (q.items && !(list = open_list(q.items)))
		return EXIT_RUNTIME;
	if ((rc = titles_open(&q)) != 0 || (rc = cli_open_server(q.model, q.kernel, &srv)) != 0)
		goto done;
	v = mfs_server_acquire(srv);
	m = mfs_view_model(v);
	if ((rc = titles_check(&q, m)) != 0 ||
	    (rc = cli_make_query("similar", m, 0, 0, q.min_events, q.min_events_set, &qy)) != 0)
		goto done;
	if (!(out = malloc(q.k * sizeof *out))) {
		cli_error("out of memory");
		rc = EXIT_RUNTIME;
		goto done;
	}
	int r = 0;
	if (q.item) {
		r = similar_one(v, qy, q.item, strlen(q.item), q.k, 0, out, q.stats ? &lat : NULL);
	} else {
		char *line = NULL, *id;
		size_t cap = 0;
		ssize_t n;
		uint64_t unknown = 0, ln = 0;
		while (r >= 0 && (n = next_id(list, q.items, &ln, &line, &cap, &id)) >= 0)
			if (n > 0) {
				r = similar_one(v, qy, id, (size_t)n, q.k, 1, out,
						q.stats ? &lat : NULL);
				unknown += r == 1;
			}
		free(line);
		r = r < 0 ? r : unknown > 0;
	}
	if (r < 0)
		cli_error("similar: out of memory");
	rc = r != 0 ? EXIT_RUNTIME : 0;
	fflush(stdout);
	if (q.stats)
		cli_latency_print(&lat, m);
done:
	free(out);
	mfs_query_free(qy);
	mfs_server_release(srv, v);
	mfs_server_free(srv);
	if (list && list != stdin)
		fclose(list);
	mfs_titles_free(shown_titles);
	shown_titles = NULL;
	return rc;
}

static const char predict_help[] =
	"Usage: mfstream predict --model PATH [FILE]\n"
	"\n"
	"Read \"user item\" lines from FILE or standard input and write\n"
	"\"user<TAB>item<TAB>score\". Fields are separated by TABs when the line has one\n"
	"(IDs may then hold spaces, ',' or '::'), else by spaces, ',' or '::'; further\n"
	"fields are ignored. A line longer than 1 MiB is reported (FILE:LINE) and skipped.\n"
	"Unknown users or items contribute nothing (mu and the known biases remain).\n"
	"\n"
	"  --model PATH   a model file or a checkpoint directory (newest valid)\n"
	"  --kernel K     auto|scalar|avx2|avx512|neon\n";


int cmd_predict(int argc, char **argv)
{
	struct qopts q;
	int rc = parse_query("predict", predict_help, argc, argv, &q, 0);
	if (rc >= 0)
		return rc;
	if (argc - optind > 1)
		return cli_usage("predict", "at most one FILE");
	const char *path = optind < argc ? argv[optind] : "-";
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	if (!f) {
		cli_error("%s: %s", path, strerror(errno));
		return EXIT_RUNTIME;
	}
	mfs_model *m;
	if ((rc = cli_load_model(q.model, q.kernel, &m)) != 0) {
		if (f != stdin)
			fclose(f);
		return rc;
	}
	char *line = NULL;
	size_t cap = 0;
	uint64_t ln = 0, bad = 0;
	ssize_t n;
	while ((n = cli_read_line(f, &line, &cap, CLI_LINE_MAX)) != CLI_LINE_END) {
		ln++;
		char *u, *it;
		size_t ul, il;
		if (n == CLI_LINE_NOMEM) {
			cli_error("%s: out of memory", path);
			rc = EXIT_RUNTIME;
			break;
		}
		if (n == CLI_LINE_TOO_LONG || cli_split_pair(line, &u, &ul, &it, &il) < 0) {
			if ((n == CLI_LINE_TOO_LONG || line[0]) && ++bad <= 5)
				cli_error("%s:%llu: %s; line skipped", path, (unsigned long long)ln,
					  n == CLI_LINE_TOO_LONG ? "line longer than 1 MiB"
								 : "expected \"user item\"");
			continue;
		}
		float p;
		mfs_model_predict(m, u, ul, it, il, &p);
		fwrite(u, 1, ul, stdout);
		putchar('\t');
		fwrite(it, 1, il, stdout);
		printf("\t%.4f\n", p);
	}
	if (bad > 5)
		cli_error("%s: %llu malformed lines skipped", path, (unsigned long long)bad);
	free(line);
	if (f != stdin)
		fclose(f);
	mfs_model_free(m);
	return rc;
}

static const char inspect_help[] =
	"Usage: mfstream inspect --model PATH [--titles FILE] [-k N] [--min-events N]\n"
	"\n"
	"Print a model's settings and counts, and the N (default 10) items with the\n"
	"lowest and the highest bias: the items liked less (or more) than their\n"
	"factors explain, fastbook's reading of the biases. Each line: the bias, the\n"
	"item, the events it learned, its title. With --titles, a MovieLens u.item\n"
	"('|'-separated, Latin-1), movies.csv (movieId,title,genres; RFC 4180\n"
	"quotes) or \"id<TAB>title\" file names them; a file that is not a title file,\n"
	"or names none of the model's items, is an error (exit 1).\n"
	"\n"
	"  --model PATH    a model file or a checkpoint directory (newest valid)\n"
	"  --titles FILE   item titles\n"
	"  -k, --k N       items per list (default 10)\n"
	"  --min-events N  rank only items that learned at least N events in the\n"
	"                  first pass (default " CLI_STR(CLI_MIN_EVENTS) "; 0: all items)\n";

struct biased {
	uint32_t row;
	float bias;
	int64_t events; /* < 0: not counted */
};

static int cmp_bias(const void *a, const void *b)
{
	const struct biased *x = a, *y = b;
	if (x->bias != y->bias)
		return x->bias < y->bias ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

static void print_item_line(const mfs_model *m, const struct biased *b)
{
	const char *id;
	size_t len;
	mfs_model_row(m, MFS_ITEMS, b->row, &id, &len, NULL);
	printf("  %+.4f  ", b->bias);
	fwrite(id, 1, len, stdout);
	if (b->events >= 0)
		printf("  %lld events", (long long)b->events);
	const char *title = cli_item_title(shown_titles, m, b->row);
	if (title)
		printf("  %s", title);
	putchar('\n');
}

int cmd_inspect(int argc, char **argv)
{
	struct qopts q;
	int rc = parse_query("inspect", inspect_help, argc, argv, &q, Q_K | Q_TITLES | Q_MINEV);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return cli_usage("inspect", "unexpected argument \"%s\"", argv[optind]);
	mfs_model *m = NULL;
	if ((rc = titles_open(&q)) != 0 || (rc = cli_load_model(q.model, q.kernel, &m)) != 0 ||
	    (rc = titles_check(&q, m)) != 0) {
		mfs_model_free(m);
		mfs_titles_free(shown_titles);
		shown_titles = NULL;
		return rc;
	}
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	printf("model: dim %u, optimizer %s, range %g:%g (%s), seed %llu\n", info.dim,
	       info.optimizer == MFS_OPT_ADAGRAD ? "adagrad" : "sgd", info.lo, info.hi,
	       info.link == MFS_RANGE_SIGMOID ? "sigmoid" : "clamp", (unsigned long long)info.seed);
	printf("events learned: %llu\n", (unsigned long long)info.events);
	printf("global mean (mu): %.4f\n", info.mu);
	printf("ids: %s%s", info.ids == MFS_IDS_HASHED ? "hashed" : "exact",
	       info.ids == MFS_IDS_HASHED ? (info.user_hashes == 2 ? " (two rows per user)" : "")
	       : info.evict ? " (evicting the least recently seen)" : " (no eviction)");
	if (info.min_count > 1)
		printf(", a row after %u sightings", info.min_count);
	putchar('\n');
	printf("users: %llu of %llu rows, %llu evictions\n", (unsigned long long)info.users,
	       (unsigned long long)info.max_users, (unsigned long long)info.user_evictions);
	printf("items: %llu of %llu rows, %llu evictions\n", (unsigned long long)info.items,
	       (unsigned long long)info.max_items, (unsigned long long)info.item_evictions);
	struct biased *b = malloc((info.item_rows ? info.item_rows : 1) * sizeof *b);
	if (!b) {
		mfs_model_free(m);
		mfs_titles_free(shown_titles);
		shown_titles = NULL;
		cli_error("out of memory");
		return EXIT_RUNTIME;
	}
	uint64_t min_events = q.min_events;
	if (min_events && !info.counts) {
		if (q.min_events_set) {
			cli_error("inspect: --min-events: the model keeps no per-item event counts "
				  "(trained with --freq-alpha 1 --freq-alpha-bias 1)");
			free(b);
			mfs_model_free(m);
			mfs_titles_free(shown_titles);
			shown_titles = NULL;
			return EXIT_RUNTIME;
		}
		min_events = 0;
	}
	uint64_t nb = 0, live = 0;
	for (uint64_t i = 0; i < info.item_rows; i++) {
		b[nb].row = (uint32_t)i;
		if (mfs_model_row(m, MFS_ITEMS, (uint32_t)i, NULL, NULL, &b[nb].bias) < 0)
			continue; /* hashed mode: rows never used are skipped */
		live++;
		b[nb].events = mfs_model_row_events(m, MFS_ITEMS, (uint32_t)i);
		if (b[nb].events >= (int64_t)min_events)
			nb++;
	}
	qsort(b, nb, sizeof *b, cmp_bias);
	uint64_t k = q.k < nb ? q.k : nb;
	if (!info.counts)
		printf("items ranked: all %llu (the model keeps no per-item event counts)\n",
		       (unsigned long long)live);
	else
		printf("items ranked: %llu of %llu, those with at least %llu learned events "
		       "(--min-events)\n",
		       (unsigned long long)nb, (unsigned long long)live,
		       (unsigned long long)min_events);
	printf("lowest item biases (liked less than their factors explain):\n");
	for (uint64_t i = 0; i < k; i++)
		print_item_line(m, &b[i]);
	printf("highest item biases (liked more than their factors explain):\n");
	for (uint64_t i = 0; i < k; i++)
		print_item_line(m, &b[nb - 1 - i]);
	free(b);
	mfs_titles_free(shown_titles);
	shown_titles = NULL;
	mfs_model_free(m);
	return 0;
}
