/* cli_util.c - messages, option values, model loading, evaluation. */
#include <dirent.h>
#include <getopt.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("mfstream: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_diag(const mfs_diag *d)
{
	char buf[1024];
	mfs_diag_format(d, buf, sizeof buf);
	cli_error("%s", buf);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fputs("mfstream: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, "\nTry 'mfstream %s --help'.\n", cmd);
	else
		fprintf(stderr, "\nTry 'mfstream --help'.\n");
	return EXIT_USAGE;
}

int cli_getopt(const char *cmd, int argc, char **argv, const char *optstring,
	       const struct option *opts)
{
	int li = -1;
	int c = getopt_long(argc, argv, optstring, opts, &li);
	char name[80];
	if (c == ':' || (c != -1 && c != '?' && optarg && optarg[0] == '-' && optarg[1] == '-')) {
		/* a value missing, or the next word is another option: name the option */
		if (c == ':')
			snprintf(name, sizeof name, "%s", argv[optind - 1]);
		else if (li >= 0)
			snprintf(name, sizeof name, "--%s", opts[li].name);
		else
			snprintf(name, sizeof name, "-%c", c);
		char *eq = strchr(name, '=');
		if (eq)
			*eq = 0;
		cli_usage(cmd, "%s needs a value", name);
		return CLI_OPT_ERR;
	}
	if (c == '?') {
		const char *w = argv[optind - 1];
		if (optopt && optopt < 256 && !(w[0] == '-' && w[1] == '-'))
			cli_usage(cmd, "unknown option \"-%c\"", optopt);
		else
			cli_usage(cmd, "unknown option \"%s\"", w);
		return CLI_OPT_ERR;
	}
	return c;
}

/* --- option values ----------------------------------------------------- */

/*
 * A decimal number at s: digits with an optional fraction. *end after it.
 * Returns 0, or -1 when there is no digit (or too many).
 */
static int decimal(const char *s, double *v, const char **end)
{
	const char *p = s;
	double x = 0;
	int digits = 0;
	while (*p >= '0' && *p <= '9') {
		x = x * 10 + (*p++ - '0');
		digits++;
	}
	if (*p == '.') {
		double f = 0.1;
		p++;
		while (*p >= '0' && *p <= '9') {
			x += (*p++ - '0') * f;
			f /= 10;
			digits++;
		}
	}
	*end = p;
	*v = x;
	return digits && digits <= 24 ? 0 : -1;
}

int cli_count(const char *cmd, const char *opt, const char *s, uint64_t lo, uint64_t hi,
	      uint64_t *out)
{
	if (!s || !*s || *s == '-' || *s == '+') {
		cli_usage(cmd, "%s: must be a whole number (5000, 5k, 1.5M), got \"%s\"", opt,
			  s ? s : "");
		return -1;
	}
	/* exact for plain digits (seeds use all 64 bits) */
	char *e;
	errno = 0;
	unsigned long long whole = strtoull(s, &e, 10);
	uint64_t v;
	if (!*e && !errno) {
		v = whole;
	} else {
		double x;
		const char *end;
		if (decimal(s, &x, &end) < 0)
			goto bad;
		double mul = 1;
		if (*end == 'k' || *end == 'K')
			mul = 1e3, end++;
		else if (*end == 'M')
			mul = 1e6, end++;
		else if (*end == 'G')
			mul = 1e9, end++;
		else if (*end == 'm' && !end[1]) {
			cli_usage(cmd, "%s: must be a count, got \"%s\" (lower-case m means minutes; "
				  "M is a million)", opt, s);
			return -1;
		}
		if (*end)
			goto bad;
		x *= mul;
		if (x >= 18446744073709551615.0) {
			cli_usage(cmd, "%s: %s is too large", opt, s);
			return -1;
		}
		if (x != floor(x)) {
			cli_usage(cmd, "%s: must be a whole number, got \"%s\" (= %.17g)", opt, s, x);
			return -1;
		}
		v = (uint64_t)x;
	}
	if (v < lo || v > hi) {
		cli_usage(cmd, "%s: must be %llu..%llu, got %s", opt, (unsigned long long)lo,
			  (unsigned long long)hi, s);
		return -1;
	}
	*out = v;
	return 0;
bad:
	cli_usage(cmd, "%s: must be a whole number (5000, 5k, 1.5M), got \"%s\"", opt, s);
	return -1;
}

int cli_u64(const char *cmd, const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	return cli_count(cmd, opt, s, lo, hi, out);
}

/* The unit of a duration at p ("ms", "s", "m", "h"): seconds per unit, or 0. */
static double duration_unit(const char *p)
{
	if (strcmp(p, "ms") == 0)
		return 1e-3;
	if (strcmp(p, "s") == 0)
		return 1;
	if (strcmp(p, "m") == 0)
		return 60;
	if (strcmp(p, "h") == 0)
		return 3600;
	return 0;
}

int cli_duration(const char *cmd, const char *opt, const char *s, double *sec)
{
	double x, unit;
	const char *end;
	if (!s || decimal(s, &x, &end) < 0 || (unit = duration_unit(end)) == 0) {
		cli_usage(cmd, "%s: must be a duration (500ms, 1.5s, 30s, 5m, 2h), got \"%s\"", opt,
			  s ? s : "");
		return -1;
	}
	if (x <= 0) {
		cli_usage(cmd, "%s: must be longer than 0, got \"%s\"", opt, s);
		return -1;
	}
	*sec = x * unit;
	return 0;
}

int cli_period(const char *cmd, const char *opt, const char *s, double *sec, uint64_t *events)
{
	double x;
	const char *end;
	if (s && decimal(s, &x, &end) == 0 && duration_unit(end) > 0) {
		if (cli_duration(cmd, opt, s, sec) < 0)
			return -1;
		*events = 0;
		return 0;
	}
	if (s && decimal(s, &x, &end) == 0 && *end && !strchr("kKMG", *end)) {
		cli_usage(cmd, "%s: must be a duration (500ms, 1.5s, 30s, 5m, 2h) or a count of "
			  "events (50000, 50k, 1.5M), got \"%s\"", opt, s);
		return -1;
	}
	if (cli_count(cmd, opt, s, 1, UINT64_MAX, events) < 0)
		return -1;
	*sec = 0;
	return 0;
}

int cli_size(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-') {
		cli_usage(cmd, "%s: must be a size like 512M or 4G, got \"%s\"", opt, s ? s : "");
		return -1;
	}
	unsigned long long v = strtoull(s, &end, 10);
	int shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (errno || *end || end == s || v == 0 || (shift && v > (UINT64_MAX >> shift))) {
		cli_usage(cmd, "%s: must be a size like 512M or 4G, got \"%s\"", opt, s);
		return -1;
	}
	*out = (uint64_t)v << shift;
	return 0;
}

int cli_float(const char *cmd, const char *opt, const char *s, float *out)
{
	char *end;
	errno = 0;
	double v = s ? strtod(s, &end) : 0.0;
	if (!s || !*s || errno || *end || !isfinite(v)) {
		cli_usage(cmd, "%s: must be a number, got \"%s\"", opt, s ? s : "");
		return -1;
	}
	*out = (float)v;
	return 0;
}

int cli_float_in(const char *cmd, const char *opt, const char *s, int bounds, float lo, float hi,
		 float *out)
{
	float v;
	if (cli_float(cmd, opt, s, &v) < 0)
		return -1;
	int bad = ((bounds & CLI_GT) && !(v > lo)) || ((bounds & CLI_GE) && !(v >= lo)) ||
		  ((bounds & CLI_LE) && !(v <= hi));
	if (bad) {
		char want[96];
		if ((bounds & (CLI_GT | CLI_GE)) && (bounds & CLI_LE))
			snprintf(want, sizeof want, "between %g and %g", lo, hi);
		else if (bounds & CLI_GT)
			snprintf(want, sizeof want, "> %g", lo);
		else if (bounds & CLI_GE)
			snprintf(want, sizeof want, ">= %g", lo);
		else
			snprintf(want, sizeof want, "<= %g", hi);
		cli_usage(cmd, "%s: must be %s, got %s", opt, want, s);
		return -1;
	}
	*out = v;
	return 0;
}

int cli_range(const char *cmd, const char *opt, const char *s, float *lo, float *hi)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	if (!colon) {
		cli_usage(cmd, "%s: must be LO:HI (like 1:5 or 0.5:5), got \"%s\"", opt, s ? s : "");
		return -1;
	}
	char a[64], b[64];
	snprintf(a, sizeof a, "%.*s", (int)(colon - s), s);
	snprintf(b, sizeof b, "%s", colon + 1);
	char *e1, *e2;
	double x = strtod(a, &e1), y = strtod(b, &e2);
	if (!*a || !*b || *e1 || *e2 || !isfinite(x) || !isfinite(y) || !(x < y)) {
		cli_usage(cmd, "%s: must be LO:HI with LO < HI, got \"%s\"", opt, s);
		return -1;
	}
	*lo = (float)x;
	*hi = (float)y;
	return 0;
}

/* "a, b or c" of a NULL-terminated list. */
static void one_of(const char *const *names, char *buf, size_t len)
{
	size_t n = 0, o = 0;
	while (names[n])
		n++;
	buf[0] = '\0';
	for (size_t i = 0; i < n && o < len; i++) {
		int w = snprintf(buf + o, len - o, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ",
				 names[i]);
		if (w < 0)
			break;
		o += (size_t)w;
	}
}

int cli_option_apply(const char *cmd, const struct cli_option *t, size_t n, int id,
		     const char *name, const char *arg)
{
	const struct cli_option *o = NULL;
	for (size_t i = 0; i < n && !o; i++)
		if (t[i].id == id)
			o = &t[i];
	if (!o)
		return 0;
	uint64_t v;
	int rc = 0;
	switch (o->kind) {
	case CLI_STR:
		*(const char **)o->p = arg;
		break;
	case CLI_FLAG:
		*(int *)o->p = o->n;
		break;
	case CLI_U64:
		rc = cli_u64(cmd, name, arg, o->lo, o->hi, (uint64_t *)o->p);
		break;
	case CLI_U32:
	case CLI_UINT:
	case CLI_INT:
		rc = cli_u64(cmd, name, arg, o->lo, o->hi, &v);
		if (rc == 0 && o->kind == CLI_U32)
			*(uint32_t *)o->p = (uint32_t)v;
		else if (rc == 0 && o->kind == CLI_UINT)
			*(unsigned *)o->p = (unsigned)v;
		else if (rc == 0)
			*(int *)o->p = (int)v;
		break;
	case CLI_F32:
		rc = cli_float_in(cmd, name, arg, o->n, o->flo, o->fhi, (float *)o->p);
		break;
	case CLI_CHOICE:
	case CLI_WORD: {
		size_t i = 0;
		while (o->names[i] && strcmp(o->names[i], arg) != 0)
			i++;
		if (!o->names[i]) {
			char list[256];
			one_of(o->names, list, sizeof list);
			cli_usage(cmd, "%s: must be %s, got \"%s\"", name, list, arg);
			return -1;
		}
		if (o->kind == CLI_CHOICE)
			*(int *)o->p = o->values[i];
		else
			*(const char **)o->p = arg;
		break;
	}
	case CLI_PERIOD:
		rc = cli_period(cmd, name, arg, (double *)o->p, (uint64_t *)o->p2);
		break;
	case CLI_SIZE:
		rc = cli_size(cmd, name, arg, (uint64_t *)o->p);
		break;
	case CLI_FORMAT: {
		int f = mfs_format_parse(arg);
		if (f < 0 || (o->n && f == MFS_FORMAT_AUTO)) {
			cli_usage(cmd, "%s: must be %stsv, csv, dat, jsonl or ssv, got \"%s\"", name,
				  o->n ? "" : "auto, ", arg);
			return -1;
		}
		*(int *)o->p = f;
		break;
	}
	case CLI_KV:
		if (!strchr(arg, '=') || arg[0] == '=') {
			cli_usage(cmd, "%s: must be KEY=VALUE, got \"%s\"", name, arg);
			return -1;
		}
		/* fall through */
	case CLI_LIST:
		((const char **)o->p)[(*(size_t *)o->p2)++] = arg;
		break;
	}
	return rc < 0 ? -1 : 1;
}

int cli_getopt_table(const char *cmd, int argc, char **argv, const char *optstring,
		     const struct option *opts, const struct cli_option *t, size_t n)
{
	for (;;) {
		int c = cli_getopt(cmd, argc, argv, optstring, opts);
		if (c < 0)
			return c;
		int r = cli_option_apply(cmd, t, n, c, cli_option_name(opts, c), optarg);
		if (r < 0)
			return CLI_OPT_ERR;
		if (r == 0)
			return c;
	}
}

const char *cli_option_name(const struct option *opts, int id)
{
	static char buf[80];
	for (const struct option *o = opts; o->name; o++)
		if (o->val == id) {
			snprintf(buf, sizeof buf, "--%s", o->name);
			return buf;
		}
	return "?";
}

double cli_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void warn_skip(void *ctx, const mfs_diag *d)
{
	(void)ctx;
	char buf[1024];
	mfs_diag_format(d, buf, sizeof buf);
	cli_error("warning: skipping %s", buf);
}

int cli_load_model(const char *path, const char *kernel, mfs_model **out)
{
	struct stat st;
	mfs_diag d;
	if (stat(path, &st) < 0) {
		cli_error("%s: %s", path, strerror(errno));
		return EXIT_RUNTIME;
	}
	int rc = S_ISDIR(st.st_mode)
			 /* a checkpoint directory: the newest checkpoint that is whole */
			 ? mfs_checkpoint_load_newest(out, path, kernel, warn_skip, NULL, NULL, 0, &d)
			 : mfs_model_load(out, path, kernel, &d);
	if (rc < 0) {
		cli_diag(&d);
		return EXIT_RUNTIME;
	}
	return 0;
}

int cli_open_server(const char *path, const char *kernel, mfs_server **out)
{
	mfs_diag d;
	if (mfs_server_open(out, path, kernel, warn_skip, NULL, &d) < 0) {
		cli_diag(&d);
		return EXIT_RUNTIME;
	}
	return 0;
}

int cli_make_query(const char *cmd, const mfs_model *m, int recommend, int include_seen,
		   uint64_t min_events, int set, mfs_query **out)
{
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	if (recommend && !include_seen && info.history == 0)
		cli_error("note: the model keeps no history of what users rated (trained with "
			  "--history 0, or saved before models kept one): rated items are not "
			  "left out; --exclude FILE can");
	if (min_events > 0 && !info.counts) {
		if (set) {
			cli_error("%s: --min-events: the model keeps no per-item event counts "
				  "(trained with --freq-alpha 1 --freq-alpha-bias 1)", cmd);
			return EXIT_RUNTIME;
		}
		cli_error("note: the model keeps no per-item event counts: rarely rated items are "
			  "not left out (--min-events)");
		min_events = 0;
	}
	if (mfs_query_create(out) < 0) {
		cli_error("out of memory");
		return EXIT_RUNTIME;
	}
	mfs_query_set(*out, MFS_QUERY_INCLUDE_SEEN, include_seen);
	mfs_query_set(*out, MFS_QUERY_MIN_EVENTS, (int64_t)min_events);
	return 0;
}

void cli_warn_skip(void *ctx, const mfs_diag *d)
{
	warn_skip(ctx, d);
}

#define BAD_SHOWN 5

void cli_on_bad(void *ctx, const mfs_diag *d)
{
	struct cli_bad *b = ctx;
	if (b->count++ == 0)
		b->first = *d;
	if (b->shown < BAD_SHOWN) {
		b->shown++;
		cli_diag(d);
	}
}

void cli_bad_finish(const struct cli_bad *b)
{
	if (b->count > b->shown)
		cli_error("%llu more malformed records skipped",
			  (unsigned long long)(b->count - b->shown));
}

int cli_each_event(const char *const *inputs, size_t n, int format, const char *fields,
		   int (*fn)(void *ctx, const mfs_event *e), void *ctx, struct cli_bad *bad,
		   int *interrupted)
{
	mfs_source_config sc;
	mfs_source_config_default(&sc);
	memset(bad, 0, sizeof *bad);
	*interrupted = 0;
	sc.format = format;
	sc.fields = fields;
	sc.on_bad = cli_on_bad;
	sc.on_bad_ctx = bad;
	mfs_source *src;
	mfs_diag d;
	if (mfs_source_open(&src, inputs, n, &sc, &d) < 0) {
		cli_diag(&d);
		return EXIT_RUNTIME;
	}
	int rc = 0;
	/* a signal before (the end of a --follow run) is not this one's to act on */
	int watch = !cli_stop_signal();
	if (watch)
		cli_stop_source(src);
	while (rc == 0) {
		const mfs_event *e;
		int got = mfs_source_next(src, &e, &d);
		if (got < 0) {
			cli_diag(&d);
			rc = EXIT_RUNTIME;
			break;
		}
		if (got == 0)
			break;
		for (int i = 0; i < got && rc == 0; i++)
			if (fn(ctx, &e[i]) < 0)
				rc = EXIT_RUNTIME;
	}
	if (watch) {
		cli_stop_source(NULL);
		*interrupted = cli_stop_signal() != 0;
	}
	cli_bad_finish(bad);
	mfs_source_free(src);
	return rc;
}

struct eval_ctx {
	const mfs_model *m;
	struct cli_eval *ev;
};

static int eval_one(void *ctx, const mfs_event *e)
{
	struct eval_ctx *c = ctx;
	float p;
	mfs_model_predict(c->m, e->user, e->user_len, e->item, e->item_len, &p);
	double err = (double)e->rating - p;
	c->ev->sq += err * err;
	c->ev->ab += fabs(err);
	c->ev->n++;
	return 0;
}

int cli_evaluate(const mfs_model *m, const char *const *inputs, size_t n, int format,
		 const char *fields, struct cli_eval *ev)
{
	memset(ev, 0, sizeof *ev);
	struct eval_ctx c = { m, ev };
	struct cli_bad bad;
	int rc = cli_each_event(inputs, n, format, fields, eval_one, &c, &bad, &ev->interrupted);
	ev->skipped = bad.count;
	ev->first_bad = bad.first;
	return rc;
}

void cli_json_string(FILE *f, const char *s, size_t len)
{
	/* the library's writer: escaped, and bytes that are not UTF-8 become U+FFFD */
	char small[512];
	size_t need = mfs_json_quote(small, sizeof small, s, len);
	if (need < sizeof small) {
		fwrite(small, 1, need, f);
		return;
	}
	char *big = need != (size_t)-1 ? malloc(need + 1) : NULL;
	if (big && mfs_json_quote(big, need + 1, s, len) == need)
		fwrite(big, 1, need, f);
	else
		fputs("\"\"", f);
	free(big);
}

/* --- per-query latency (--stats) --------------------------------------- */

int cli_latency_add(struct cli_latency *l, double us)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 1024;
		double *p = realloc(l->us, cap * sizeof *p);
		if (!p)
			return -1;
		l->us = p;
		l->cap = cap;
	}
	l->us[l->n++] = us;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The nearest-rank percentile p (0..100) of sorted v[0..n). */
static double percentile(const double *v, size_t n, double p)
{
	size_t r = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (r < 1)
		r = 1;
	if (r > n)
		r = n;
	return v[r - 1];
}

void cli_latency_print(struct cli_latency *l, const mfs_model *m)
{
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	double p50 = 0, p90 = 0, p99 = 0, mx = 0, sum = 0;
	if (l->n) {
		qsort(l->us, l->n, sizeof *l->us, cmp_double);
		p50 = percentile(l->us, l->n, 50);
		p90 = percentile(l->us, l->n, 90);
		p99 = percentile(l->us, l->n, 99);
		mx = l->us[l->n - 1];
		for (size_t i = 0; i < l->n; i++)
			sum += l->us[i];
	}
	fprintf(stderr,
		"{\"queries\": %zu, \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, "
		"\"max_us\": %.1f, \"mean_us\": %.1f, \"items\": %llu, \"dim\": %u, \"kernel\": \"%s\"}\n",
		l->n, p50, p90, p99, mx, l->n ? sum / (double)l->n : 0.0,
		(unsigned long long)info.items, info.dim, info.kernel);
	free(l->us);
	l->us = NULL;
	l->n = l->cap = 0;
}

/* --- bounded lines ----------------------------------------------------- */

ssize_t cli_read_line(FILE *f, char **buf, size_t *cap, size_t max)
{
	size_t n = 0;
	int c, over = 0, any = 0;
	flockfile(f);
	while ((c = getc_unlocked(f)) != EOF) {
		any = 1;
		if (c == '\n')
			break;
		if (over)
			continue;
		if (n == max) {
			over = 1; /* skip to the line's end without keeping it */
			continue;
		}
		if (n + 1 >= *cap) {
			size_t nc = *cap ? 2 * *cap : 256;
			if (nc > max + 1)
				nc = max + 1;
			char *p = realloc(*buf, nc);
			if (!p) {
				funlockfile(f);
				return CLI_LINE_NOMEM;
			}
			*buf = p;
			*cap = nc;
		}
		(*buf)[n++] = (char)c;
	}
	funlockfile(f);
	if (!any)
		return CLI_LINE_END;
	if (over)
		return CLI_LINE_TOO_LONG;
	if (!*buf && !(*buf = malloc(*cap = 1)))
		return CLI_LINE_NOMEM;
	(*buf)[n] = 0;
	return (ssize_t)n;
}
