/* cli_query.c - "predict", "recommend", "similar" and "inspect" on a saved model. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct qopts {
	const char *model, *user, *item, *titles, *kernel;
	uint64_t k;
	int json;
};

/* Common option loop. which: bit 1 user, 2 item, 4 k, 8 titles. Returns -1 to continue, else exit code. */
static int parse_query(const char *cmd, const char *help, int argc, char **argv, struct qopts *q,
		       int which)
{
	static const struct option opts[] = {
		{ "model", required_argument, 0, 'm' }, { "user", required_argument, 0, 'u' },
		{ "item", required_argument, 0, 'i' },	{ "k", required_argument, 0, 'k' },
		{ "titles", required_argument, 0, 't' }, { "kernel", required_argument, 0, 'K' },
		{ "help", no_argument, 0, 'h' },	{ 0, 0, 0, 0 },
	};
	memset(q, 0, sizeof *q);
	q->k = 10;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hm:u:i:k:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'm':
			q->model = optarg;
			break;
		case 'u':
			if (!(which & 1))
				goto unknown;
			q->user = optarg;
			break;
		case 'i':
			if (!(which & 2))
				goto unknown;
			q->item = optarg;
			break;
		case 'k':
			if (!(which & 4))
				goto unknown;
			if (cli_u64(cmd, "-k", optarg, 1, 1000000, &q->k) < 0)
				return EXIT_USAGE;
			break;
		case 't':
			if (!(which & 8))
				goto unknown;
			q->titles = optarg;
			break;
		case 'K':
			q->kernel = optarg;
			break;
		case ':':
			return cli_usage(cmd, "option %s needs a value", argv[optind - 1]);
		default:
		unknown:
			return cli_usage(cmd, "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (!q->model)
		return cli_usage(cmd, "--model PATH is required");
	if ((which & 1) && !q->user)
		return cli_usage(cmd, "--user ID is required");
	if ((which & 2) && !q->item)
		return cli_usage(cmd, "--item ID is required");
	return -1;
}

static void print_id(const mfs_model *m, int side, uint32_t row)
{
	const char *id;
	size_t len;
	if (mfs_model_row(m, side, row, &id, &len, NULL) == 0)
		fwrite(id, 1, len, stdout);
}

static const char recommend_help[] =
	"Usage: mfstream recommend --model PATH --user ID [-k N]\n"
	"\n"
	"The N (default 10) items with the highest predicted rating for a user, best\n"
	"first, as \"item<TAB>score\" lines. Items are ranked by mu + b_user + b_item +\n"
	"p_user.q_item; the score printed is that prediction kept inside the rating\n"
	"range. An unknown user gets the items with the highest mu + b_item.\n"
	"\n"
	"  --model PATH   a model file or a checkpoint directory (newest valid)\n"
	"  --user ID      the user\n"
	"  -k, --k N      how many items (default 10)\n"
	"  --kernel K     auto|scalar|avx2|avx512|neon\n";

int cmd_recommend(int argc, char **argv)
{
	struct qopts q;
	int rc = parse_query("recommend", recommend_help, argc, argv, &q, 1 | 4);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return cli_usage("recommend", "unexpected argument \"%s\"", argv[optind]);
	mfs_model *m;
	if ((rc = cli_load_model(q.model, q.kernel, &m)) != 0)
		return rc;
	mfs_scored *out = malloc(q.k * sizeof *out);
	if (!out) {
		mfs_model_free(m);
		cli_error("out of memory");
		return EXIT_RUNTIME;
	}
	if (mfs_model_find(m, MFS_USERS, q.user, strlen(q.user)) < 0)
		cli_error("note: user \"%s\" is not in the model; recommending by item bias", q.user);
	int n = mfs_model_recommend(m, q.user, strlen(q.user), q.k, out);
	for (int i = 0; i < n; i++) {
		print_id(m, MFS_ITEMS, out[i].row);
		printf("\t%.4f\n", out[i].score);
	}
	free(out);
	mfs_model_free(m);
	return n < 0 ? EXIT_RUNTIME : 0;
}

static const char similar_help[] =
	"Usage: mfstream similar --model PATH --item ID [-k N]\n"
	"\n"
	"The N (default 10) items whose factor rows are closest to ID's by cosine,\n"
	"best first, as \"item<TAB>cosine\" lines.\n"
	"\n"
	"  --model PATH   a model file or a checkpoint directory (newest valid)\n"
	"  --item ID      the item\n"
	"  -k, --k N      how many items (default 10)\n"
	"  --kernel K     auto|scalar|avx2|avx512|neon\n";

int cmd_similar(int argc, char **argv)
{
	struct qopts q;
	int rc = parse_query("similar", similar_help, argc, argv, &q, 2 | 4);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return cli_usage("similar", "unexpected argument \"%s\"", argv[optind]);
	mfs_model *m;
	if ((rc = cli_load_model(q.model, q.kernel, &m)) != 0)
		return rc;
	mfs_scored *out = malloc(q.k * sizeof *out);
	int n = out ? mfs_model_similar(m, q.item, strlen(q.item), q.k, out) : -MFS_E_NOMEM;
	if (n == -MFS_E_NOTFOUND)
		cli_error("item \"%s\" is not in the model", q.item);
	else if (n < 0)
		cli_error("similar: %s", mfs_error_name(n));
	for (int i = 0; i < n; i++) {
		print_id(m, MFS_ITEMS, out[i].row);
		printf("\t%.4f\n", out[i].score);
	}
	free(out);
	mfs_model_free(m);
	return n < 0 ? EXIT_RUNTIME : 0;
}

static const char predict_help[] =
	"Usage: mfstream predict --model PATH [FILE]\n"
	"\n"
	"Read \"user item\" lines (separated by a TAB, spaces, ',' or '::'; further\n"
	"fields ignored) from FILE or standard input and write \"user<TAB>item<TAB>score\".\n"
	"Unknown users or items contribute nothing (mu and the known biases remain).\n"
	"\n"
	"  --model PATH   a model file or a checkpoint directory (newest valid)\n"
	"  --kernel K     auto|scalar|avx2|avx512|neon\n";

/* Split "user item ..." at the first separator; returns 0 or -1. */
static int split_pair(char *line, char **u, size_t *ul, char **it, size_t *il)
{
	size_t len = strlen(line);
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = 0;
	char *p = line;
	while (*p == ' ')
		p++;
	char *s = p;
	while (*s && *s != '\t' && *s != ' ' && *s != ',' && !(s[0] == ':' && s[1] == ':'))
		s++;
	if (!*s || s == p)
		return -1;
	*u = p;
	*ul = (size_t)(s - p);
	s += (s[0] == ':' ? 2 : 1);
	while (*s == ' ')
		s++;
	char *e = s;
	while (*e && *e != '\t' && *e != ' ' && *e != ',' && !(e[0] == ':' && e[1] == ':'))
		e++;
	if (e == s)
		return -1;
	*it = s;
	*il = (size_t)(e - s);
	return 0;
}

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
	while (getline(&line, &cap, f) > 0) {
		ln++;
		char *u, *it;
		size_t ul, il;
		if (split_pair(line, &u, &ul, &it, &il) < 0) {
			if (line[0] && ++bad <= 5)
				cli_error("%s:%llu: expected \"user item\"", path, (unsigned long long)ln);
			continue;
		}
		float p;
		mfs_model_predict(m, u, ul, it, il, &p);
		fwrite(u, 1, ul, stdout);
		putchar('\t');
		fwrite(it, 1, il, stdout);
		printf("\t%.4f\n", p);
	}
	free(line);
	if (f != stdin)
		fclose(f);
	mfs_model_free(m);
	return 0;
}

static const char inspect_help[] =
	"Usage: mfstream inspect --model PATH [--titles FILE] [-k N]\n"
	"\n"
	"Print a model's settings and counts, and the N (default 10) items with the\n"
	"lowest and the highest bias: the items liked less (or more) than their\n"
	"factors explain, fastbook's reading of the biases. With --titles, a MovieLens\n"
	"u.item ('|'-separated, Latin-1) or movies.csv (id,title,...) names them.\n"
	"\n"
	"  --model PATH   a model file or a checkpoint directory (newest valid)\n"
	"  --titles FILE  item titles\n"
	"  -k, --k N      items per list (default 10)\n";

struct titles {
	char **id, **title;
	size_t n, cap;
};

static char *latin1_to_utf8(const char *s, size_t len)
{
	char *o = malloc(2 * len + 1), *p = o;
	if (!o)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80) {
			*p++ = (char)c;
		} else {
			*p++ = (char)(0xC0 | (c >> 6));
			*p++ = (char)(0x80 | (c & 0x3F));
		}
	}
	*p = 0;
	return o;
}

static int valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		int n = *p < 0x80 ? 0 : (*p >> 5) == 6 ? 1 : (*p >> 4) == 14 ? 2 : (*p >> 3) == 30 ? 3 : -1;
		if (n < 0)
			return 0;
		p++;
		for (int i = 0; i < n; i++, p++)
			if ((*p & 0xC0) != 0x80)
				return 0;
	}
	return 1;
}

static int load_titles(const char *path, struct titles *t)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		cli_error("%s: %s", path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		char *sep = strchr(line, '|');
		char *title, *tend;
		if (sep) { /* u.item: id|title|... */
			title = sep + 1;
			tend = strchr(title, '|');
			if (!tend)
				tend = line + len;
		} else if ((sep = strchr(line, ',')) != NULL) { /* movies.csv: id,title,genres */
			title = sep + 1;
			if (*title == '"') {
				title++;
				tend = strstr(title, "\",");
				if (!tend)
					tend = line + len;
			} else {
				tend = strrchr(title, ',');
				if (!tend || tend == title)
					tend = line + len;
			}
		} else {
			continue;
		}
		if (t->n == t->cap) {
			t->cap = t->cap ? 2 * t->cap : 1024;
			t->id = realloc(t->id, t->cap * sizeof *t->id);
			t->title = realloc(t->title, t->cap * sizeof *t->title);
			if (!t->id || !t->title)
				break;
		}
		t->id[t->n] = strndup(line, (size_t)(sep - line));
		char *raw = strndup(title, (size_t)(tend - title));
		if (raw && !valid_utf8(raw)) {
			char *u = latin1_to_utf8(raw, strlen(raw));
			free(raw);
			raw = u;
		}
		t->title[t->n] = raw;
		if (t->id[t->n] && t->title[t->n])
			t->n++;
	}
	free(line);
	fclose(f);
	return 0;
}

static const char *title_of(const struct titles *t, const char *id, size_t len)
{
	for (size_t i = 0; i < t->n; i++)
		if (strlen(t->id[i]) == len && memcmp(t->id[i], id, len) == 0)
			return t->title[i];
	return NULL;
}

struct biased {
	uint32_t row;
	float bias;
};

static int cmp_bias(const void *a, const void *b)
{
	const struct biased *x = a, *y = b;
	if (x->bias != y->bias)
		return x->bias < y->bias ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

static void print_item_line(const mfs_model *m, const struct titles *t, const struct biased *b)
{
	const char *id;
	size_t len;
	mfs_model_row(m, MFS_ITEMS, b->row, &id, &len, NULL);
	printf("  %+.4f  ", b->bias);
	fwrite(id, 1, len, stdout);
	const char *title = t->n ? title_of(t, id, len) : NULL;
	if (title)
		printf("  %s", title);
	putchar('\n');
}

int cmd_inspect(int argc, char **argv)
{
	struct qopts q;
	int rc = parse_query("inspect", inspect_help, argc, argv, &q, 4 | 8);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return cli_usage("inspect", "unexpected argument \"%s\"", argv[optind]);
	struct titles t;
	memset(&t, 0, sizeof t);
	if (q.titles && load_titles(q.titles, &t) < 0)
		return EXIT_RUNTIME;
	mfs_model *m;
	if ((rc = cli_load_model(q.model, q.kernel, &m)) != 0)
		return rc;
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
		cli_error("out of memory");
		return EXIT_RUNTIME;
	}
	uint64_t nb = 0;
	for (uint64_t i = 0; i < info.item_rows; i++) {
		b[nb].row = (uint32_t)i;
		if (mfs_model_row(m, MFS_ITEMS, (uint32_t)i, NULL, NULL, &b[nb].bias) == 0)
			nb++; /* hashed mode: rows never used are skipped */
	}
	qsort(b, nb, sizeof *b, cmp_bias);
	uint64_t k = q.k < nb ? q.k : nb;
	printf("lowest item biases (liked less than their factors explain):\n");
	for (uint64_t i = 0; i < k; i++)
		print_item_line(m, &t, &b[i]);
	printf("highest item biases (liked more than their factors explain):\n");
	for (uint64_t i = 0; i < k; i++)
		print_item_line(m, &t, &b[nb - 1 - i]);
	free(b);
	for (size_t i = 0; i < t.n; i++) {
		free(t.id[i]);
		free(t.title[i]);
	}
	free(t.id);
	free(t.title);
	mfs_model_free(m);
	return 0;
}
