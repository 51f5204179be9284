/*
 * bench_ids - the cost of turning an ID key into a row, per event, for exact
 * tables of 1M, 10M and 100M rows: probes one by one, and in batches whose
 * slots are prefetched first (what mfs_model_learn does). Median of 5 runs.
 *
 * Usage: bench_ids [--quick] [--max-rows N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "idmap.h"
#include "internal.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static uint64_t key_of(uint64_t i)
{
	return mfs_idmap_key(mfs_hash_id(&i, sizeof i, 1));
}

#define BATCH 1024
#define RUNS 5

int main(int argc, char **argv)
{
	uint64_t max_rows = 100000000ULL, lookups = 20000000ULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			max_rows = 10000000ULL;
			lookups = 5000000ULL;
		} else if (strcmp(argv[i], "--max-rows") == 0 && i + 1 < argc) {
			max_rows = strtoull(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "usage: bench_ids [--quick] [--max-rows N]\n");
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	char cpu[128] = "unknown";
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "model name", 10) == 0) {
			char *c = strchr(line, ':');
			snprintf(cpu, sizeof cpu, "%.100s", c ? c + 2 : line);
			cpu[strcspn(cpu, "\n")] = 0;
			break;
		}
	if (f)
		fclose(f);
	uint64_t *keys = malloc(BATCH * sizeof *keys);
	for (uint64_t rows = 1000000; rows <= max_rows; rows *= 10) {
		struct mfs_idmap m;
		if (mfs_idmap_init(&m, rows, MFS_IDMAP_EXACT, 1, 1) < 0) {
			fprintf(stderr, "bench_ids: cannot allocate %llu rows\n", (unsigned long long)rows);
			return 1;
		}
		int fresh;
		for (uint64_t i = 0; i < rows; i++)
			mfs_idmap_get(&m, key_of(i), "x", 1, 0, &fresh);
		double plain[RUNS], pf[RUNS];
		uint64_t sink = 0, s = 12345;
		for (int r = 0; r < RUNS; r++) {
			for (int mode = 0; mode < 2; mode++) {
				double t0 = now();
				for (uint64_t done = 0; done < lookups; done += BATCH) {
					for (int j = 0; j < BATCH; j++) {
						s = s * 6364136223846793005ULL + 1442695040888963407ULL;
						keys[j] = key_of((s >> 20) % rows);
						if (mode)
							mfs_idmap_prefetch(&m, keys[j]);
					}
					for (int j = 0; j < BATCH; j++)
						sink += (uint64_t)mfs_idmap_get(&m, keys[j], "x", 1, 1, &fresh);
				}
				double ns = (now() - t0) * 1e9 / (double)lookups;
				(mode ? pf : plain)[r] = ns;
			}
		}
		qsort(plain, RUNS, sizeof(double), cmp_d);
		qsort(pf, RUNS, sizeof(double), cmp_d);
		printf("bench_ids rows=%-10llu case=lookup         ns/event=%6.1f (hash + probe, median of %d) cpu=\"%s\"\n",
		       (unsigned long long)rows, plain[RUNS / 2], RUNS, cpu);
		printf("bench_ids rows=%-10llu case=lookup_prefetch ns/event=%6.1f vs_no_prefetch=%.2fx sink=%llu\n",
		       (unsigned long long)rows, pf[RUNS / 2], plain[RUNS / 2] / pf[RUNS / 2],
		       (unsigned long long)(sink & 1));
		fflush(stdout);
		mfs_idmap_free(&m);
	}
	free(keys);
	return 0;
}
