/*
 * make_model_seeds - the seed corpora of fuzz_model and fuzz_delta, written at
 * fuzz time (.ci/fuzz.sh) rather than committed: for every base model of
 * fuzz_models.h a whole model raw and zstd-compressed (with a reader
 * position), and a delta of the rows learned after it, raw and compressed,
 * prefixed with the byte that makes fuzz_delta rebuild that base.
 *
 *   make_model_seeds MODEL_DIR DELTA_DIR
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_models.h"
#include "model_internal.h"

static int copy_prefixed(const char *from, const char *to, int prefix)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	int rc = in && out ? 0 : -1;
	if (rc == 0 && prefix >= 0)
		rc = fputc(prefix, out) == EOF ? -1 : 0;
	char buf[65536];
	size_t n;
	while (rc == 0 && in && (n = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			rc = -1;
	if (in)
		fclose(in);
	if (out && fclose(out) != 0)
		rc = -1;
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: make_model_seeds MODEL_DIR DELTA_DIR\n");
		return 2;
	}
	for (int i = 1; i < 3; i++)
		if (mkdir(argv[i], 0755) < 0 && errno != EEXIST) {
			perror(argv[i]);
			return 1;
		}
	char path[4096], tmp[4096];
	int files = 0;
	for (int k = 0; k < FUZZ_BASES; k++) {
		uint64_t seed;
		mfs_model *m = fuzz_base_model(k, &seed);
		if (!m) {
			fprintf(stderr, "make_model_seeds: base %d cannot be made\n", k);
			return 1;
		}
		for (int z = 0; z < 2; z++) {
			mfs_save_opts so = { .compress = z ? 3 : 0, .position = "pos:0123456789",
					     .position_len = 14 };
			snprintf(path, sizeof path, "%s/base%d%s.mfs", argv[1], k, z ? "-zstd" : "");
			mfs_diag d;
			if (mfs_model_save(m, path, &so, &d) < 0) {
				fprintf(stderr, "make_model_seeds: %s: %s\n", path, d.reason);
				return 1;
			}
			files++;
		}
		mfs_checkpoint_mark(m);
		fuzz_learn(m, &seed, 150);
		for (int z = 0; z < 2; z++) {
			mfs_save_opts so = { .compress = z ? 3 : 0, .position = "pos:9876543210",
					     .position_len = 14 };
			snprintf(tmp, sizeof tmp, "%s/.delta%d.tmp", argv[2], k);
			mfs_diag d;
			if (mfs_model_save_delta(m, tmp, &so, &d) < 0) {
				fprintf(stderr, "make_model_seeds: %s: %s\n", tmp, d.reason);
				return 1;
			}
			snprintf(path, sizeof path, "%s/delta%d%s", argv[2], k, z ? "-zstd" : "");
			if (copy_prefixed(tmp, path, k) < 0 || remove(tmp) < 0) {
				fprintf(stderr, "make_model_seeds: %s: cannot write\n", path);
				return 1;
			}
			files++;
		}
		mfs_model_free(m);
	}
	printf("make_model_seeds: %d files\n", files);
	return 0;
}
