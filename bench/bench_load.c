/*
 * bench_load - model load time, mapped (mfs_model_load) against read into
 * memory (MFS_LOAD_COPY, what servers use so that a file rewritten in place
 * cannot fault them), and a whole server open / refresh (load + int8 index).
 * Usage: bench_load MODEL [RUNS]   (the file warm in the page cache; median of RUNS)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model_internal.h"

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s MODEL [RUNS]\n", argv[0]);
		return 2;
	}
	int runs = argc > 2 ? atoi(argv[2]) : 9;
	double *t[3];
	for (int k = 0; k < 3; k++)
		t[k] = calloc((size_t)runs, sizeof(double));
	mfs_diag d;
	for (int r = -1; r < runs; r++) { /* one warm-up */
		for (int k = 0; k < 3; k++) {
			double t0 = now();
			if (k < 2) {
				mfs_model *m;
				if (mfs_model_load_flags(&m, argv[1], NULL, k ? MFS_LOAD_COPY : 0, &d) < 0) {
					fprintf(stderr, "%s: %s\n", argv[1], d.reason);
					return 1;
				}
				/* a server then reads every item row once (its int8 index): touch them */
				volatile float s = 0;
				for (uint64_t i = 0; i < table_rows(&m->item); i++)
					s += mfs_row(&m->item, i, m->stride)[0];
				mfs_model_free(m);
			} else {
				mfs_server *s;
				if (mfs_server_open(&s, argv[1], NULL, NULL, NULL, &d) < 0)
					return 1;
				mfs_server_free(s);
			}
			if (r >= 0)
				t[k][r] = (now() - t0) * 1e3;
		}
	}
	static const char *const names[3] = { "mapped (mfs_model_load)", "copied (MFS_LOAD_COPY)",
					      "server open (copied + int8 index)" };
	mfs_model *m;
	mfs_model_load(&m, argv[1], NULL, NULL);
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	printf("model: %llu users, %llu items, dim %u\n", (unsigned long long)info.users,
	       (unsigned long long)info.items, info.dim);
	mfs_model_free(m);
	for (int k = 0; k < 3; k++) {
		qsort(t[k], (size_t)runs, sizeof(double), cmp);
		printf("%-36s median %7.1f ms  min %7.1f  max %7.1f  (%d runs)\n", names[k],
		       t[k][runs / 2], t[k][0], t[k][runs - 1], runs);
	}
	return 0;
}
