/*
 * cli_gen.c - "mfstream gen": a synthetic rating stream from a planted model.
 *
 * The planted model has the shape mfstream learns: rating = mu + b_u + b_i +
 * p_u.q_i + noise, kept inside [lo, hi]. Since the truth is known, gen reports
 * the oracle RMSE (the truth's error on the written ratings): the noise floor
 * no learner can beat on average. Built on the public API alone: the
 * library's deterministic RNG and zstd writer are in mfstream.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char gen_help[] =
	"Usage: mfstream gen [options]\n"
	"\n"
	"Write a synthetic rating stream drawn from a planted biased-MF model and\n"
	"print {\"events\":..., \"oracle_rmse\":...} (the noise floor) as JSON on\n"
	"stderr, or on stdout when --output is given.\n"
	"\n"
	"  --users N         users (default 20000)\n"
	"  --active-users N  churn: at any moment only a window of N users is active; the\n"
	"                    window slides over all --users during the stream (new users\n"
	"                    arrive, old ones leave). Default: all users active\n"
	"  --items N         items (default 3000)\n"
	"  --events N        events (default 1000000; k/M/G suffixes)\n"
	"  --dim K           planted factor width (default 8)\n"
	"  --noise F         std of the Gaussian rating noise (default 0.5)\n"
	"  --signal F        std of the planted p.q term (default 0.6)\n"
	"  --zipf S          item popularity ~ 1/rank^S (default 1.0; 0 = uniform)\n"
	"  --user-zipf S     user activity ~ 1/rank^S (default 0.5)\n"
	"  --ids int|string  IDs as numbers (1, 2, ...) or opaque strings (u3f9a..., i07c2...)\n"
	"                    (default string)\n"
	"  --format F        tsv (default), csv (with header), dat, jsonl or ssv (spaces)\n"
	"  --rating-range LO:HI  ratings are kept inside (default 1:5)\n"
	"  --seed N          default 1\n"
	"  --output FILE     write the stream here (default: standard output)\n"
	"  --holdout F       the last fraction F of the events goes to --holdout-output\n"
	"  --holdout-output FILE\n"
	"  --zstd N          compress the output(s) with zstd level N (1..19; default: plain)\n"
	"  --frame-bytes N   with --zstd, end a zstd frame every N input bytes (many frames)\n"
	"  --feedback implicit  interactions instead of ratings (rating column 1): a user\n"
	"                    picks item i with probability proportional to zipf(i) *\n"
	"                    sigmoid(b_i + p_u.q_i) (rejection sampling from the zipf law);\n"
	"                    --signal defaults to 2 then\n"
	"  --truth FILE      --feedback implicit: the planted ranking, the 10 items each of\n"
	"                    the first --truth-users users (default 1000) is likeliest to\n"
	"                    pick, as user<TAB>item<TAB>rank lines\n"
	"  --truth-users N\n"
	"  -h, --help        this text\n";

struct out {
	int fd;
	struct mfs_zwriter *zw;
	char *buf;
	size_t len, cap;
	const char *path;
};

static int out_flush(struct out *o)
{
	if (o->len == 0)
		return 0;
	int rc = 0;
	if (o->zw) {
		rc = mfs_zwriter_write(o->zw, o->buf, o->len);
	} else {
		size_t off = 0;
		while (off < o->len) {
			ssize_t w = write(o->fd, o->buf + off, o->len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rc = -1;
				break;
			}
			off += (size_t)w;
		}
	}
	o->len = 0;
	if (rc < 0) {
		cli_error("%s: write failed: %s", o->path, strerror(errno));
		return -1;
	}
	return 0;
}

static int out_open(struct out *o, const char *path, int level, size_t frame_bytes)
{
	memset(o, 0, sizeof *o);
	o->path = path ? path : "<stdout>";
	o->fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : 1;
	if (o->fd < 0) {
		cli_error("%s: %s", path, strerror(errno));
		return -1;
	}
	o->cap = 1 << 20;
	o->buf = malloc(o->cap);
	if (!o->buf || (level > 0 && mfs_zwriter_open(&o->zw, o->fd, level, frame_bytes) < 0)) {
		cli_error("%s: cannot set up the writer", o->path);
		return -1;
	}
	return 0;
}

static int out_close(struct out *o)
{
	int rc = out_flush(o);
	if (o->zw && mfs_zwriter_close(o->zw) < 0 && rc == 0) {
		cli_error("%s: write failed: %s", o->path, strerror(errno));
		rc = -1;
	}
	if (o->fd > 1 && close(o->fd) < 0 && rc == 0) {
		cli_error("%s: %s", o->path, strerror(errno));
		rc = -1;
	}
	free(o->buf);
	return rc;
}

/* Cumulative distribution of 1/rank^s over n ranks. */
static double *zipf_cdf(uint64_t n, double s)
{
	double *c = malloc(n * sizeof *c);
	if (!c)
		return NULL;
	double acc = 0.0;
	for (uint64_t i = 0; i < n; i++) {
		acc += s > 0 ? pow((double)(i + 1), -s) : 1.0;
		c[i] = acc;
	}
	for (uint64_t i = 0; i < n; i++)
		c[i] /= acc;
	return c;
}

static uint64_t zipf_draw(const double *c, uint64_t n, struct mfs_rng *r)
{
	double u = mfs_rng_uniform(r);
	uint64_t lo = 0, hi = n - 1;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (c[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Write an ID: "123" or an opaque string like "u3f9a07c2". */
static int put_id(char *b, char prefix, uint64_t idx, int strings)
{
	if (!strings)
		return sprintf(b, "%llu", (unsigned long long)(idx + 1));
	uint64_t x = (idx + 1) * 0x9E3779B97F4A7C15ULL;
	x ^= x >> 29;
	return sprintf(b, "%c%010llx", prefix, (unsigned long long)(x & 0xFFFFFFFFFFULL));
}

struct scored_item {
	double w;
	uint64_t item;
};

static int by_weight_desc(const void *a, const void *b)
{
	const struct scored_item *x = a, *y = b;
	return x->w > y->w ? -1 : x->w < y->w ? 1 : (x->item > y->item) - (x->item < y->item);
}

/*
 * --truth: for each of the first n users, the 10 items it is likeliest to
 * pick, zipf(rank of i) * sigmoid(b_i + p_u.q_i), best first.
 */
static int write_truth(const char *path, const float *P, const float *Q, const float *BI,
		       const double *icdf, const uint64_t *iperm, uint64_t users, uint64_t items,
		       uint64_t dim, uint64_t n, int strings)
{
	FILE *f = fopen(path, "w");
	double *pmf = malloc(items * sizeof *pmf);
	struct scored_item *s = malloc(items * sizeof *s);
	if (!f || !pmf || !s) {
		cli_error("--truth %s: %s", path, f ? "out of memory" : strerror(errno));
		if (f)
			fclose(f);
		free(pmf);
		free(s);
		return -1;
	}
	for (uint64_t r = 0; r < items; r++)
		pmf[iperm[r]] = icdf[r] - (r ? icdf[r - 1] : 0.0);
	for (uint64_t u = 0; u < n && u < users; u++) {
		for (uint64_t i = 0; i < items; i++) {
			double dot = 0.0;
			for (uint64_t k = 0; k < dim; k++)
				dot += (double)P[u * dim + k] * Q[i * dim + k];
			s[i].w = pmf[i] / (1.0 + exp(-(BI[i] + dot)));
			s[i].item = i;
		}
		qsort(s, items, sizeof *s, by_weight_desc);
		char ub[32], ib[32];
		put_id(ub, 'u', u, strings);
		for (uint64_t r = 0; r < 10 && r < items; r++) {
			put_id(ib, 'i', s[r].item, strings);
			fprintf(f, "%s\t%s\t%llu\n", ub, ib, (unsigned long long)r);
		}
	}
	free(pmf);
	free(s);
	if (fclose(f) != 0) {
		cli_error("--truth %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

int cmd_gen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "users", required_argument, 0, 'U' },	  { "items", required_argument, 0, 'I' },
		{ "events", required_argument, 0, 'E' },  { "dim", required_argument, 0, 'D' },
		{ "noise", required_argument, 0, 'N' },	  { "signal", required_argument, 0, 'S' },
		{ "zipf", required_argument, 0, 'Z' },	  { "user-zipf", required_argument, 0, 'Y' },
		{ "ids", required_argument, 0, 'i' },	  { "format", required_argument, 0, 'f' },
		{ "rating-range", required_argument, 0, 'r' }, { "seed", required_argument, 0, 's' },
		{ "output", required_argument, 0, 'o' },  { "holdout", required_argument, 0, 'H' },
		{ "holdout-output", required_argument, 0, 'O' }, { "zstd", required_argument, 0, 'z' },
		{ "frame-bytes", required_argument, 0, 'B' }, { "help", no_argument, 0, 'h' },
		{ "active-users", required_argument, 0, 'A' },
		{ "feedback", required_argument, 0, 'F' }, { "truth", required_argument, 0, 'T' },
		{ "truth-users", required_argument, 0, 'W' },
		{ 0, 0, 0, 0 },
	};
	const char *cmd = "gen";
	uint64_t users = 20000, items = 3000, events = 1000000, dim = 8, seed = 1, level = 0,
		 frame_bytes = 0, active = 0, truth_users = 1000;
	int implicit = 0, signal_given = 0;
	const char *truth_path = NULL;
	float noise = 0.5f, signal = 0.6f, zipf = 1.0f, uzipf = 0.5f, lo = 1.0f, hi = 5.0f,
	      holdout = 0.0f;
	int strings = 1, format = MFS_FORMAT_TSV, c;
	const char *output = NULL, *houtput = NULL;
	optind = 1;
	opterr = 0;
	static const char *const w_feedback[] = { "explicit", "implicit", NULL },
				 *const w_ids[] = { "int", "string", NULL };
	static const int v_01[] = { 0, 1 };
	const struct cli_option table[] = {
		CLI_OPT_NUM('U', CLI_U64, &users, 1, 1ULL << 32),
		CLI_OPT_NUM('A', CLI_U64, &active, 1, 1ULL << 32),
		CLI_OPT_NUM('I', CLI_U64, &items, 1, 1ULL << 32),
		CLI_OPT_NUM('E', CLI_U64, &events, 0, 1ULL << 40),
		CLI_OPT_NUM('D', CLI_U64, &dim, 1, 1024),
		CLI_OPT_NUM('W', CLI_U64, &truth_users, 1, 1ULL << 32),
		CLI_OPT_NUM('s', CLI_U64, &seed, 0, UINT64_MAX),
		CLI_OPT_NUM('z', CLI_U64, &level, 1, 19),
		CLI_OPT_NUM('B', CLI_U64, &frame_bytes, 1, 1ULL << 40),
		CLI_OPT_F32('N', &noise, 0, 0, 0),
		CLI_OPT_F32('Z', &zipf, 0, 0, 0),
		CLI_OPT_F32('Y', &uzipf, 0, 0, 0),
		CLI_OPT_F32('H', &holdout, CLI_GE, 0, 0),
		CLI_OPT_CHOICE('F', &implicit, w_feedback, v_01),
		CLI_OPT_CHOICE('i', &strings, w_ids, v_01),
		CLI_OPT_STR('T', &truth_path),
		CLI_OPT_STR('o', &output),
		CLI_OPT_STR('O', &houtput),
		CLI_OPT_FORMAT('f', &format, 1),
	};
	while ((c = cli_getopt_table(cmd, argc, argv, ":h", opts, table,
				     sizeof table / sizeof *table)) != -1) {
		switch (c) {
		case 'h':
			fputs(gen_help, stdout);
			return 0;
		case 'S':
			if (cli_float(cmd, "--signal", optarg, &signal) < 0)
				return EXIT_USAGE;
			signal_given = 1;
			break;
		case 'r':
			if (cli_range(cmd, "--rating-range", optarg, &lo, &hi) < 0)
				return EXIT_USAGE;
			break;
		case CLI_OPT_ERR:
			return EXIT_USAGE;
		default:
			return cli_usage(cmd, "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (holdout >= 1.0f)
		return cli_usage(cmd, "--holdout must be in [0, 1)");
	if (optind < argc)
		return cli_usage(cmd, "unexpected argument \"%s\"", argv[optind]);
	if (active == 0 || active > users)
		active = users;
	if (holdout > 0.0f && !houtput)
		return cli_usage(cmd, "--holdout needs --holdout-output FILE");
	if (truth_path && !implicit)
		return cli_usage(cmd, "--truth needs --feedback implicit");
	if (implicit && !signal_given)
		signal = 2.0f;
	if (truth_users > users)
		truth_users = users;
	if (noise < 0.0f || signal < 0.0f || zipf < 0.0f || uzipf < 0.0f)
		return cli_usage(cmd, "--noise, --signal and --zipf must be >= 0");

	/* The planted model. */
	struct mfs_rng rng;
	mfs_rng_seed(&rng, seed);
	double mu = lo + 0.6 * (hi - lo);
	double fstd = sqrt((double)signal / sqrt((double)dim));
	float *P = malloc(users * dim * sizeof *P), *Q = malloc(items * dim * sizeof *Q);
	float *BU = malloc(users * sizeof *BU), *BI = malloc(items * sizeof *BI);
	double *icdf = zipf_cdf(items, zipf), *ucdf = zipf_cdf(active, uzipf);
	uint64_t *uperm = malloc(users * sizeof *uperm), *iperm = malloc(items * sizeof *iperm);
	if (!P || !Q || !BU || !BI || !icdf || !ucdf || !uperm || !iperm) {
		cli_error("out of memory for %llu users and %llu items", (unsigned long long)users,
			  (unsigned long long)items);
		return EXIT_RUNTIME;
	}
	for (uint64_t i = 0; i < users * dim; i++)
		P[i] = (float)(mfs_rng_normal(&rng) * fstd);
	for (uint64_t i = 0; i < items * dim; i++)
		Q[i] = (float)(mfs_rng_normal(&rng) * fstd);
	for (uint64_t i = 0; i < users; i++)
		BU[i] = (float)(mfs_rng_normal(&rng) * 0.1 * (hi - lo));
	for (uint64_t i = 0; i < items; i++)
		BI[i] = (float)(mfs_rng_normal(&rng) * 0.12 * (hi - lo));
	/* Popularity rank -> ID: shuffled so that popular IDs are not the small ones. */
	for (uint64_t i = 0; i < users; i++)
		uperm[i] = i;
	for (uint64_t i = 0; i < items; i++)
		iperm[i] = i;
	for (uint64_t i = users; i > 1; i--) {
		uint64_t j = mfs_rng_below(&rng, i), t = uperm[i - 1];
		uperm[i - 1] = uperm[j];
		uperm[j] = t;
	}
	for (uint64_t i = items; i > 1; i--) {
		uint64_t j = mfs_rng_below(&rng, i), t = iperm[i - 1];
		iperm[i - 1] = iperm[j];
		iperm[j] = t;
	}

	struct out o, ho;
	int have_ho = holdout > 0.0f;
	if (out_open(&o, output, (int)level, frame_bytes) < 0 ||
	    (have_ho && out_open(&ho, houtput, (int)level, frame_bytes) < 0))
		return EXIT_RUNTIME;
	uint64_t n_train = have_ho ? events - (uint64_t)llround((double)events * holdout) : events;
	double sq = 0.0, sq_ho = 0.0;
	if (format == MFS_FORMAT_CSV) {
		o.len += (size_t)sprintf(o.buf, "userId,movieId,rating,timestamp\n");
		if (have_ho)
			ho.len += (size_t)sprintf(ho.buf, "userId,movieId,rating,timestamp\n");
	}
	for (uint64_t e = 0; e < events; e++) {
		/* the active window starts at a user that moves from 0 to users - active */
		uint64_t start = active < users ? (uint64_t)((double)e / (double)(events ? events : 1) *
							     (double)(users - active)) : 0;
		uint64_t u = uperm[start + zipf_draw(ucdf, active, &rng)];
		uint64_t it = iperm[zipf_draw(icdf, items, &rng)];
		double dot = 0.0;
		for (uint64_t k = 0; k < dim; k++)
			dot += (double)P[u * dim + k] * Q[it * dim + k];
		if (implicit) /* accept the zipf draw with probability sigmoid(b_i + p.q) */
			for (int tries = 0; tries < 1000 && mfs_rng_uniform(&rng) >= 1.0 / (1.0 + exp(-(BI[it] + dot)));
			     tries++) {
				it = iperm[zipf_draw(icdf, items, &rng)];
				dot = 0.0;
				for (uint64_t k = 0; k < dim; k++)
					dot += (double)P[u * dim + k] * Q[it * dim + k];
			}
		double truth = mu + BU[u] + BI[it] + dot;
		double r = truth + mfs_rng_normal(&rng) * noise;
		if (implicit)
			r = truth = 1.0; /* an interaction: weight 1 */
		if (truth < lo)
			truth = lo;
		if (truth > hi)
			truth = hi;
		if (r < lo)
			r = lo;
		if (r > hi)
			r = hi;
		r = round(r * 1000.0) / 1000.0; /* as printed */
		struct out *w = e < n_train ? &o : &ho;
		if (e < n_train)
			sq += (r - truth) * (r - truth);
		else
			sq_ho += (r - truth) * (r - truth);
		if (w->cap - w->len < 1024 && out_flush(w) < 0)
			return EXIT_RUNTIME;
		char ub[32], ib[32];
		put_id(ub, 'u', u, strings);
		put_id(ib, 'i', it, strings);
		long long t = 1700000000LL + (long long)e;
		char *p = w->buf + w->len;
		switch (format) {
		case MFS_FORMAT_CSV:
			w->len += (size_t)sprintf(p, "%s,%s,%.3f,%lld\n", ub, ib, r, t);
			break;
		case MFS_FORMAT_DAT:
			w->len += (size_t)sprintf(p, "%s::%s::%.3f::%lld\n", ub, ib, r, t);
			break;
		case MFS_FORMAT_SSV:
			w->len += (size_t)sprintf(p, "%s %s %.3f %lld\n", ub, ib, r, t);
			break;
		case MFS_FORMAT_JSONL:
			if (strings)
				w->len += (size_t)sprintf(p,
							  "{\"user\":\"%s\",\"item\":\"%s\",\"rating\":%.3f,\"time\":%lld}\n",
							  ub, ib, r, t);
			else
				w->len += (size_t)sprintf(p,
							  "{\"user\":%s,\"item\":%s,\"rating\":%.3f,\"time\":%lld}\n",
							  ub, ib, r, t);
			break;
		default:
			w->len += (size_t)sprintf(p, "%s\t%s\t%.3f\t%lld\n", ub, ib, r, t);
		}
	}
	if (out_close(&o) < 0 || (have_ho && out_close(&ho) < 0))
		return EXIT_RUNTIME;
	if (truth_path && write_truth(truth_path, P, Q, BI, icdf, iperm, users, items, dim, truth_users,
				 strings) < 0)
		return EXIT_RUNTIME;
	FILE *js = output ? stdout : stderr;
	fprintf(js, "{\"events\": %llu, \"users\": %llu, \"items\": %llu, \"dim\": %llu, "
		    "\"noise\": %g, \"oracle_rmse\": %.6f",
		(unsigned long long)events, (unsigned long long)users, (unsigned long long)items,
		(unsigned long long)dim, noise,
		events ? sqrt((sq + sq_ho) / (double)events) : 0.0);
	if (have_ho)
		fprintf(js, ", \"train_events\": %llu, \"holdout_events\": %llu, "
			    "\"train_oracle_rmse\": %.6f, \"holdout_oracle_rmse\": %.6f",
			(unsigned long long)n_train, (unsigned long long)(events - n_train),
			n_train ? sqrt(sq / (double)n_train) : 0.0,
			events > n_train ? sqrt(sq_ho / (double)(events - n_train)) : 0.0);
	fprintf(js, "}\n");
	free(P);
	free(Q);
	free(BU);
	free(BI);
	free(icdf);
	free(ucdf);
	free(uperm);
	free(iperm);
	return 0;
}
