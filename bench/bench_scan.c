/*
 * bench_scan - the in-process top-K scan of a served model (mfs_server_open,
 * then mfs_view_recommend per user), with the memory floor beside it.
 *
 *   bench_scan MODEL USERS_FILE [K] [ROUNDS]      (defaults 10, 5)
 *
 * Each round asks every user of the file once (one warm-up round first) and
 * prints p50/p90/p99/max of the per-query wall time and the mean thread CPU
 * time, so that a busy machine (preempted queries) shows as wall >> cpu, the
 * rows bounded and rescored per query (the scan's counters, serve.c) and the
 * rows bounded by the slowest 1% (more rows read, or only preempted). Then:
 *   - bytes a query streams: the int8 rows and their per-row terms
 *   - read bandwidth of one thread: a buffer the size of the index read over
 *     and over (what a query sees in steady state, partly from the last-level
 *     cache), and a 512 MiB buffer (DRAM), with the time those bytes take.
 * Not part of the test run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_internal.h"

static double now(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sum a buffer of 64-bit words (the compiler vectorises it): a read stream. */
static uint64_t read_all(const uint64_t *p, size_t words)
{
	uint64_t a = 0, b = 0, c = 0, d = 0;
	for (size_t i = 0; i + 4 <= words; i += 4) {
		a += p[i];
		b += p[i + 1];
		c += p[i + 2];
		d += p[i + 3];
	}
	return a + b + c + d;
}

/* GB/s of reading bytes (rounded to 32) `reps` times, best of 5. */
static double bandwidth(size_t bytes, int reps)
{
	size_t words = bytes / 8 & ~(size_t)3;
	uint64_t *p = malloc(words * 8);
	if (!p)
		return 0.0;
	for (size_t i = 0; i < words; i++)
		p[i] = i;
	volatile uint64_t sink = 0;
	double best = 1e9;
	for (int t = 0; t < 5; t++) {
		double t0 = now(CLOCK_MONOTONIC);
		for (int r = 0; r < reps; r++)
			sink += read_all(p, words);
		double s = (now(CLOCK_MONOTONIC) - t0) / reps;
		best = s < best ? s : best;
	}
	(void)sink;
	free(p);
	return (double)words * 8 / best / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s MODEL USERS_FILE [K] [ROUNDS]\n", argv[0]);
		return 2;
	}
	size_t k = argc > 3 ? (size_t)atoi(argv[3]) : 10;
	int rounds = argc > 4 ? atoi(argv[4]) : 5;
	FILE *f = fopen(argv[2], "r");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	size_t n = 0, cap = 0;
	char **users = NULL, line[512];
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!line[0])
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			users = realloc(users, cap * sizeof *users);
		}
		users[n++] = strdup(line);
	}
	fclose(f);
	if (!n || k == 0 || k > 1000)
		return 2;
	mfs_diag d;
	mfs_server *s;
	if (mfs_server_open(&s, argv[1], NULL, NULL, NULL, &d) < 0) {
		fprintf(stderr, "%s: %s\n", argv[1], d.reason);
		return 1;
	}
	const mfs_view *v = mfs_server_acquire(s);
	const mfs_model *m = mfs_view_model(v);
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	uint64_t live = 0;
	for (uint64_t r = 0; r < table_rows(&m->item); r++)
		live += row_live(&m->item, r);
	mfs_scored out[1000];
	double *wall = malloc(n * sizeof *wall);
	struct slow {
		double us;
		uint64_t bounded;
	} *per = malloc(n * sizeof *per);
	printf("model: %llu items (%llu live), dim %u, kernel %s, k %zu, %zu users\n",
	       (unsigned long long)info.items, (unsigned long long)live, info.dim, m->k->name, k, n);
	printf("%-6s %9s %9s %9s %9s %9s  %s\n", "round", "p50_us", "p90_us", "p99_us", "max_us",
	       "cpu_mean", "bounded/q rescored/q bounded/q_of_slowest_1%");
	for (int r = -1; r < rounds; r++) {
		double c0 = now(CLOCK_THREAD_CPUTIME_ID);
		struct mfs_scan_counts sc0, sc1;
		mfs_scan_counts_get(&sc0);
		for (size_t i = 0; i < n; i++) {
			struct mfs_scan_counts a, b;
			mfs_scan_counts_get(&a);
			double t0 = now(CLOCK_MONOTONIC);
			if (mfs_view_recommend(v, users[i], strlen(users[i]), k, out) < 0)
				return 1;
			wall[i] = (now(CLOCK_MONOTONIC) - t0) * 1e6;
			mfs_scan_counts_get(&b);
			per[i] = (struct slow){ wall[i], b.bounded - a.bounded };
		}
		double cpu = (now(CLOCK_THREAD_CPUTIME_ID) - c0) * 1e6 / (double)n;
		mfs_scan_counts_get(&sc1);
		if (r < 0)
			continue;
		qsort(wall, n, sizeof *wall, cmp_d);
		/* the rows the slowest 1% bounded: slow because they read more, or preempted */
		double slow_rows = 0.0;
		size_t n_slow = 0;
		for (size_t i = 0; i < n; i++)
			if (per[i].us >= wall[n * 99 / 100]) {
				slow_rows += (double)per[i].bounded;
				n_slow++;
			}
		printf("%-6d %9.1f %9.1f %9.1f %9.1f %9.1f  %.0f %.1f %.0f\n", r, wall[n / 2],
		       wall[n * 9 / 10], wall[n * 99 / 100], wall[n - 1], cpu,
		       (double)(sc1.bounded - sc0.bounded) / (double)n,
		       (double)(sc1.rescored - sc0.rescored) / (double)n,
		       n_slow ? slow_rows / (double)n_slow : 0.0);
	}
	struct mfs_scan_counts sc;
	mfs_scan_counts_get(&sc);
	size_t np = (info.dim + 15u) & ~15u;
	double per_row = (double)np + 5 * 4; /* int8 row; scale, bias, err, norm, rsum */
	double bytes = (double)sc.bounded / (double)sc.queries * per_row;
	double idx = (double)live * per_row;
	double bw_idx = bandwidth((size_t)idx, 20), bw_dram = bandwidth((size_t)512 << 20, 1);
	printf("index: %.2f MB (%.0f bytes a row with its terms); a query streams %.2f MB\n",
	       idx / 1e6, per_row, bytes / 1e6);
	printf("read bandwidth, one thread: index-sized buffer %.1f GB/s (%.0f us for a query's "
	       "bytes), 512 MiB %.1f GB/s (%.0f us)\n",
	       bw_idx, bytes / bw_idx / 1e3, bw_dram, bytes / bw_dram / 1e3);
	mfs_server_release(s, v);
	mfs_server_free(s);
	for (size_t i = 0; i < n; i++)
		free(users[i]);
	free(users);
	free(wall);
	free(per);
	return 0;
}
