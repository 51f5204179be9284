/*
 * bench_kernels.c - the SGD kernels, each ISA against the scalar oracle in the
 * same run.
 *
 * Cases (per kernel the CPU can run, scalar first):
 *   sgd_cache        sgd_step on a few rows that stay in cache
 *   sgd_random       sgd_step on rows drawn at random from two tables far
 *                    larger than the last-level cache
 *   sgd_random_pf    the same with software prefetch of the rows PF_AHEAD events ahead
 *   adagrad_cache / adagrad_random / adagrad_random_pf  at dim 64
 *   score            one user row against 100k rows of dim 64 (rows/s)
 * Rows are laid out as the model does: 64-byte aligned, stride padded to 16
 * floats, kernels called with n = round_up(dim, width).
 *
 * Each figure is the median of several timed runs (CLOCK_MONOTONIC) after a
 * warm-up; best= is the fastest run, a hint of how noisy the machine was.
 * Kernels are interleaved run by run so that the ratio to scalar is measured
 * under the same conditions. Not part of the test run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "kernels.h"

#define MAX_KERNELS 4
#define MAX_RUNS 31
#define PF_AHEAD 8    /* events between a prefetch and the update that uses it */
#define CACHE_ROWS 32 /* rows per table in the in-cache cases */
#define CACHE_EVENTS 4096
#define SCORE_ROWS 100000
#define SCORE_DIM 64

static const size_t dims[] = { 8, 16, 32, 64, 128, 256 };
#define NDIMS (sizeof dims / sizeof dims[0])

struct opts {
	int quick;
	int runs;        /* timed runs of the in-cache and score cases */
	int runs_random; /* timed runs of the large-table cases */
	double target_s;      /* length of one timed run in the calibrated cases */
	size_t random_events; /* events per run in the random cases */
	size_t table_bytes;   /* both random tables together */
	size_t max_rows;      /* rows per random table, at most */
	int no_random;
	int no_huge; /* large tables without MADV_HUGEPAGE */
	const char *only; /* run scalar and this kernel only */
};

static char cpu_model[128] = "unknown";

/* ---- helpers --------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static float rng_float(uint64_t *s, float lo, float hi)
{
	return lo + (hi - lo) * ((float)(rng_next(s) >> 40) * (1.0f / 16777216.0f));
}

static size_t round_up(size_t n, size_t w)
{
	return (n + w - 1) / w * w;
}

static void *xalloc(size_t bytes)
{
	void *p = aligned_alloc(64, round_up(bytes ? bytes : 64, 64));
	if (!p) {
		fprintf(stderr, "bench_kernels: out of memory (%zu bytes)\n", bytes);
		exit(1);
	}
	return p;
}

/*
 * A large table as src/model.c allocates one: an anonymous mapping (page, so
 * 64-byte, aligned) with transparent huge pages asked for unless disabled.
 */
static void *map_table(size_t bytes, int huge)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "bench_kernels: cannot map %zu bytes\n", bytes);
		exit(1);
	}
#ifdef MADV_HUGEPAGE
	if (huge)
		madvise(p, bytes, MADV_HUGEPAGE);
#else
	(void)huge;
#endif
	return p;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof v[0], cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* "model name" from /proc/cpuinfo (aarch64 kernels print "CPU part" instead). */
static void read_cpu_model(void)
{
	static const char *const keys[] = { "model name", "Hardware", "CPU part" };
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	char line[512];
	int found = 3; /* index of the best key seen so far */
	while (found > 0 && fgets(line, sizeof line, f)) {
		for (int k = 0; k < found; k++) {
			if (strncmp(line, keys[k], strlen(keys[k])) != 0)
				continue;
			char *c = strchr(line, ':');
			if (!c)
				break;
			c++;
			while (*c == ' ' || *c == '\t')
				c++;
			c[strcspn(c, "\n")] = '\0';
			snprintf(cpu_model, sizeof cpu_model, "%s%s", k == 2 ? "CPU part " : "", c);
			found = k;
			break;
		}
	}
	fclose(f);
}

/* Keeps the results observable. */
static volatile float sink;

/* ---- the work ---------------------------------------------------------------- */

struct events {
	uint32_t *u, *i; /* row indexes, n + PF_AHEAD entries (the tail wraps) */
	float *base, *rating;
	size_t n;
};

static void events_make(struct events *e, size_t n, size_t rows_u, size_t rows_i, uint64_t seed)
{
	e->n = n;
	e->u = xalloc((n + PF_AHEAD) * sizeof(uint32_t));
	e->i = xalloc((n + PF_AHEAD) * sizeof(uint32_t));
	e->base = xalloc(n * sizeof(float));
	e->rating = xalloc(n * sizeof(float));
	for (size_t k = 0; k < n; k++) {
		e->u[k] = (uint32_t)(rng_next(&seed) % rows_u);
		e->i[k] = (uint32_t)(rng_next(&seed) % rows_i);
		e->base[k] = rng_float(&seed, 3.0f, 4.0f);
		e->rating[k] = (float)(1 + rng_next(&seed) % 5);
	}
	for (size_t k = 0; k < PF_AHEAD; k++) {
		e->u[n + k] = e->u[k % n];
		e->i[n + k] = e->i[k % n];
	}
}

static void events_free(struct events *e)
{
	free(e->u);
	free(e->i);
	free(e->base);
	free(e->rating);
}

struct tables {
	float *p, *q;         /* rows x stride floats each */
	float *acc_p, *acc_q; /* AdaGrad accumulators, one per row */
	size_t rows, stride, dim;
};

enum step_kind { STEP_SGD, STEP_ADAGRAD };

/*
 * count updates cycling through the events; with prefetch, the rows of event
 * k + PF_AHEAD are prefetched (for write) before event k is applied.
 * Returns seconds.
 */
static double run_steps(const struct mfs_kernels *k, enum step_kind kind, const struct tables *t,
			const struct events *e, size_t count, int prefetch)
{
	const size_t n = round_up(t->dim, k->width), stride = t->stride;
	const size_t lines = (n * sizeof(float) + 63) / 64;
	struct mfs_step s = {
		.lo = 1.0f, .hi = 5.0f, .link = MFS_LINK_CLAMP, .lr = 0.01f, .l2 = 0.02f,
	};
	void (*step)(float *restrict, float *restrict, size_t, struct mfs_step *) =
		kind == STEP_SGD ? k->sgd_step : k->adagrad_step;
	float acc = 0.0f;
	size_t ev = 0;
	const double t0 = now_s();
	for (size_t c = 0; c < count; c++) {
		if (prefetch) {
			const char *pp = (const char *)(t->p + (size_t)e->u[ev + PF_AHEAD] * stride);
			const char *pq = (const char *)(t->q + (size_t)e->i[ev + PF_AHEAD] * stride);
			for (size_t l = 0; l < lines; l++) {
				__builtin_prefetch(pp + 64 * l, 1, 3);
				__builtin_prefetch(pq + 64 * l, 1, 3);
			}
			if (kind == STEP_ADAGRAD) {
				__builtin_prefetch(t->acc_p + e->u[ev + PF_AHEAD], 1, 3);
				__builtin_prefetch(t->acc_q + e->i[ev + PF_AHEAD], 1, 3);
			}
		}
		const uint32_t u = e->u[ev], i = e->i[ev];
		s.base = e->base[ev];
		s.rating = e->rating[ev];
		s.acc_p = t->acc_p + u;
		s.acc_q = t->acc_q + i;
		step(t->p + (size_t)u * stride, t->q + (size_t)i * stride, n, &s);
		acc += s.pred;
		if (++ev == e->n)
			ev = 0;
	}
	const double dt = now_s() - t0;
	sink = acc;
	return dt;
}

static void tables_init(struct tables *t, size_t rows, size_t dim, float *p, float *q,
			float *acc_p, float *acc_q, uint64_t seed)
{
	t->rows = rows;
	t->dim = dim;
	t->stride = round_up(dim, 16);
	t->p = p;
	t->q = q;
	t->acc_p = acc_p;
	t->acc_q = acc_q;
	for (size_t r = 0; r < rows; r++) {
		for (size_t c = 0; c < t->stride; c++) {
			p[r * t->stride + c] = c < dim ? rng_float(&seed, -0.1f, 0.1f) : 0.0f;
			q[r * t->stride + c] = c < dim ? rng_float(&seed, -0.1f, 0.1f) : 0.0f;
		}
		acc_p[r] = 1.0f;
		acc_q[r] = 1.0f;
	}
}

/* ---- reporting ------------------------------------------------------------------ */

/* ns: median of the runs; best: the fastest run; ratio: scalar median / this median. */
static void report(const char *kernel, size_t dim, const char *cas, double ns, double best,
		   double scalar_ns, const char *unit)
{
	printf("bench_kernels kernel=%-6s dim=%-3zu case=%-17s ns/%s=%8.2f %ss/s=%8.2fM "
	       "vs_scalar=%5.2fx best=%.2f cpu=\"%s\"\n",
	       kernel, dim, cas, unit, ns, unit, 1e3 / ns, scalar_ns / ns, best, cpu_model);
	fflush(stdout);
}

/* Median and best of each kernel's runs, one line each. */
static void report_all(const struct mfs_kernels *const *ks, int nk, double (*ns)[MAX_RUNS],
		       int runs, size_t dim, const char *cas, const char *unit)
{
	double med[MAX_KERNELS];
	for (int j = 0; j < nk; j++) {
		med[j] = median(ns[j], runs); /* sorts: ns[j][0] is the best */
		report(ks[j]->name, dim, cas, med[j], ns[j][0], med[0], unit);
	}
}

/* ---- cases ------------------------------------------------------------------------- */

struct kset {
	const struct mfs_kernels *k[MAX_KERNELS];
	int n;
};

/* In-cache steps: calibrate count per kernel to about target_s, then median of runs. */
static void case_cache(const struct opts *o, const struct kset *ks, enum step_kind kind,
		       size_t dim, const char *name)
{
	struct tables t;
	struct events e;
	const size_t stride = round_up(dim, 16);
	float *p = xalloc(CACHE_ROWS * stride * sizeof(float));
	float *q = xalloc(CACHE_ROWS * stride * sizeof(float));
	float *ap = xalloc(CACHE_ROWS * sizeof(float)), *aq = xalloc(CACHE_ROWS * sizeof(float));
	events_make(&e, CACHE_EVENTS, CACHE_ROWS, CACHE_ROWS, 1000 + dim);
	size_t count[MAX_KERNELS];
	double ns[MAX_KERNELS][MAX_RUNS];
	for (int j = 0; j < ks->n; j++) {
		tables_init(&t, CACHE_ROWS, dim, p, q, ap, aq, 7 + dim);
		size_t c = 1000;
		double dt;
		while ((dt = run_steps(ks->k[j], kind, &t, &e, c, 0)) < o->target_s / 8)
			c *= 2;
		count[j] = (size_t)((double)c * o->target_s / dt) + 1;
	}
	for (int r = 0; r < o->runs; r++)
		for (int j = 0; j < ks->n; j++) {
			tables_init(&t, CACHE_ROWS, dim, p, q, ap, aq, 7 + dim);
			ns[j][r] = run_steps(ks->k[j], kind, &t, &e, count[j], 0) * 1e9 /
				   (double)count[j];
		}
	report_all(ks->k, ks->n, ns, o->runs, dim, name, "update");
	events_free(&e);
	free(p);
	free(q);
	free(ap);
	free(aq);
}

struct big {
	float *p, *q, *acc_p, *acc_q;
	size_t floats_per_table, max_rows;
};

/* Random rows from the big tables: every kernel, without and with prefetch. */
static void case_random(const struct opts *o, const struct kset *ks, struct big *b,
			enum step_kind kind, size_t dim, const char *name, const char *name_pf)
{
	struct tables t = {
		.p = b->p, .q = b->q, .acc_p = b->acc_p, .acc_q = b->acc_q,
		.dim = dim, .stride = round_up(dim, 16),
	};
	t.rows = b->floats_per_table / t.stride;
	if (t.rows > b->max_rows)
		t.rows = b->max_rows;
	struct events e;
	events_make(&e, o->random_events, t.rows, t.rows, 2000 + dim);
	double ns[2][MAX_KERNELS][MAX_RUNS];
	for (int pf = 0; pf < 2; pf++)
		for (int j = 0; j < ks->n; j++) /* warm-up */
			run_steps(ks->k[j], kind, &t, &e, e.n / 4, pf);
	for (int r = 0; r < o->runs_random; r++)
		for (int pf = 0; pf < 2; pf++)
			for (int j = 0; j < ks->n; j++)
				ns[pf][j][r] =
					run_steps(ks->k[j], kind, &t, &e, e.n, pf) * 1e9 / (double)e.n;
	for (int pf = 0; pf < 2; pf++)
		report_all(ks->k, ks->n, ns[pf], o->runs_random, dim, pf ? name_pf : name,
			   "update");
	events_free(&e);
}

static void case_score(const struct opts *o, const struct kset *ks)
{
	const size_t dim = SCORE_DIM, stride = round_up(dim, 16);
	float *rows = xalloc(SCORE_ROWS * stride * sizeof(float));
	float *u = xalloc(stride * sizeof(float)), *out = xalloc(SCORE_ROWS * sizeof(float));
	uint64_t seed = 99;
	for (size_t i = 0; i < SCORE_ROWS * stride; i++)
		rows[i] = (i % stride) < dim ? rng_float(&seed, -0.1f, 0.1f) : 0.0f;
	for (size_t i = 0; i < stride; i++)
		u[i] = i < dim ? rng_float(&seed, -0.1f, 0.1f) : 0.0f;
	size_t reps[MAX_KERNELS];
	double ns[MAX_KERNELS][MAX_RUNS];
	for (int j = 0; j < ks->n; j++) {
		const struct mfs_kernels *k = ks->k[j];
		const size_t n = round_up(dim, k->width);
		size_t c = 1;
		double dt;
		for (;;) {
			double t0 = now_s();
			for (size_t r = 0; r < c; r++)
				k->score(u, rows, stride, n, SCORE_ROWS, out);
			dt = now_s() - t0;
			if (dt >= o->target_s / 8)
				break;
			c *= 2;
		}
		reps[j] = (size_t)((double)c * o->target_s / dt) + 1;
	}
	for (int r = 0; r < o->runs; r++)
		for (int j = 0; j < ks->n; j++) {
			const struct mfs_kernels *k = ks->k[j];
			const size_t n = round_up(dim, k->width);
			double t0 = now_s();
			for (size_t x = 0; x < reps[j]; x++)
				k->score(u, rows, stride, n, SCORE_ROWS, out);
			ns[j][r] = (now_s() - t0) * 1e9 / ((double)reps[j] * SCORE_ROWS);
			sink = out[SCORE_ROWS / 2];
		}
	report_all(ks->k, ks->n, ns, o->runs, dim, "score_100k", "row");
	free(rows);
	free(u);
	free(out);
}

/* ---- main --------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench_kernels [--quick] [--kernel NAME] [--no-random] [--no-hugepages] [--help]\n"
		"  Times the SGD kernels of every ISA this CPU runs against the scalar oracle:\n"
		"  sgd_step at dim 8..256 with rows in cache and rows drawn at random from\n"
		"  tables larger than the last-level cache (with and without software\n"
		"  prefetch), adagrad_step at dim 64, score over 100k rows at dim 64.\n"
		"  One line per case: kernel, dim, case, ns and rate, ratio to scalar\n"
		"  measured in the same run (median of the runs), CPU model.\n"
		"  --quick      short run (smaller tables, shorter runs)\n"
		"  --kernel N   scalar and N only (avx2, avx512, neon)\n"
		"  --no-random  skip the large-table cases (they allocate up to ~3 GiB)\n"
		"  --no-hugepages  large tables without MADV_HUGEPAGE (more TLB misses)\n");
}

int main(int argc, char **argv)
{
	struct opts o = {
		.quick = 0, .runs = 21, .runs_random = 7, .target_s = 0.01, .random_events = 500000,
		.table_bytes = (size_t)3 << 30, .max_rows = (size_t)4 << 20,
	};
	for (int a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--quick") == 0) {
			o.quick = 1;
		} else if (strcmp(argv[a], "--no-random") == 0) {
			o.no_random = 1;
		} else if (strcmp(argv[a], "--no-hugepages") == 0) {
			o.no_huge = 1;
		} else if (strcmp(argv[a], "--kernel") == 0 && a + 1 < argc) {
			o.only = argv[++a];
			if (strcmp(o.only, "avx2") != 0 && strcmp(o.only, "avx512") != 0 &&
			    strcmp(o.only, "neon") != 0 && strcmp(o.only, "scalar") != 0) {
				fprintf(stderr, "bench_kernels: unknown kernel '%s'\n", o.only);
				return 2;
			}
		} else if (strcmp(argv[a], "--help") == 0 || strcmp(argv[a], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "bench_kernels: unknown argument '%s'\n", argv[a]);
			usage(stderr);
			return 2;
		}
	}
	if (o.quick) {
		o.runs = 11;
		o.runs_random = 5;
		o.target_s = 0.003;
		o.random_events = 100000;
		o.table_bytes = (size_t)512 << 20;
	}
	read_cpu_model();

	struct kset ks = { .n = 0 };
	static const char *const names[] = { "scalar", "avx2", "avx512", "neon" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (o.only && i > 0 && strcmp(o.only, names[i]) != 0)
			continue;
		const struct mfs_kernels *k = mfs_kernels_get(names[i]);
		if (k)
			ks.k[ks.n++] = k;
		else
			printf("bench_kernels kernel=%s not available on this CPU/build, skipped\n",
			       names[i]);
	}
	printf("bench_kernels cpu=\"%s\" %s: median of %d runs (large tables: %d), "
	       "kernels interleaved run by run\n",
	       cpu_model, o.quick ? "quick" : "full", o.runs, o.runs_random);

	for (size_t d = 0; d < NDIMS; d++)
		case_cache(&o, &ks, STEP_SGD, dims[d], "sgd_cache");
	case_cache(&o, &ks, STEP_ADAGRAD, 64, "adagrad_cache");
	case_score(&o, &ks);

	if (!o.no_random) {
		struct big b;
		b.floats_per_table = o.table_bytes / 2 / sizeof(float);
		b.max_rows = o.max_rows;
		b.p = map_table(b.floats_per_table * sizeof(float), !o.no_huge);
		b.q = map_table(b.floats_per_table * sizeof(float), !o.no_huge);
		b.acc_p = xalloc(b.max_rows * sizeof(float));
		b.acc_q = xalloc(b.max_rows * sizeof(float));
		/* small values everywhere: whatever the dim, every row is a plausible row */
		uint64_t seed = 5;
		for (size_t i = 0; i < b.floats_per_table; i++) {
			b.p[i] = rng_float(&seed, -0.1f, 0.1f);
			b.q[i] = rng_float(&seed, -0.1f, 0.1f);
		}
		for (size_t i = 0; i < b.max_rows; i++)
			b.acc_p[i] = b.acc_q[i] = 1.0f;
		printf("bench_kernels random tables: 2 x %.0f MiB%s\n",
		       (double)b.floats_per_table * sizeof(float) / (1 << 20),
		       o.no_huge ? "" : " (MADV_HUGEPAGE, as src/model.c)");
		for (size_t d = 0; d < NDIMS; d++)
			case_random(&o, &ks, &b, STEP_SGD, dims[d], "sgd_random", "sgd_random_pf");
		case_random(&o, &ks, &b, STEP_ADAGRAD, 64, "adagrad_random", "adagrad_random_pf");
		munmap(b.p, b.floats_per_table * sizeof(float));
		munmap(b.q, b.floats_per_table * sizeof(float));
		free(b.acc_p);
		free(b.acc_q);
	}
	if (!isfinite(sink))
		fprintf(stderr, "bench_kernels: warning: non-finite prediction (diverged?)\n");
	return 0;
}
