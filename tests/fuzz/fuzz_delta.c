/*
 * fuzz_delta - delta checkpoints: bytes -> mfs_model_apply_delta on a base
 * model (the row lists, keys moved between rows, ID strings, rows, AdaGrad
 * state, counts, sketch, header state, position) -> the model used as a
 * server and a learner would. Input: byte 0 picks the base model
 * (fuzz_models.h: each built once, saved to a memfd, and loaded afresh for
 * every input); the rest is the delta file (a memfd, through its /proc path). Checksums are not checked in this build
 * (MFS_FUZZ_IGNORE_CHECKSUMS). A delta that fails untouched must leave the
 * model as it was; one that fails after it touched the model (*touched) is
 * discarded, as mfs_checkpoint_load_newest does.
 * Seeds: deltas of every base, raw and compressed, from make_model_seeds.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_memfd.h"
#include "fuzz_models.h"
#include "model_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write b into the memfd at path (mfs_model_save renames a temporary into
 * place, which a /proc path cannot take: save beside, copy in), free b. */
static int mfs_model_save_fd_free(mfs_model *b, const char *path)
{
	char tmp[] = "/tmp/fuzz_delta_base.XXXXXX";
	int t = mkstemp(tmp), rc = -1;
	if (t >= 0 && mfs_model_save(b, tmp, NULL, NULL) == 0) {
		int out = open(path, O_WRONLY);
		char buf[65536];
		ssize_t n;
		rc = out < 0 ? -1 : 0;
		int in = open(tmp, O_RDONLY);
		while (rc == 0 && (n = read(in, buf, sizeof buf)) > 0)
			if (write(out, buf, (size_t)n) != n)
				rc = -1;
		close(in);
		if (out >= 0)
			close(out);
	}
	if (t >= 0) {
		close(t);
		unlink(tmp);
	}
	mfs_model_free(b);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int k = data[0] % FUZZ_BASES;
	data++;
	size--;
	char path[64];
	int fd = fuzz_memfd("fuzz_delta", data, size, path);
	if (fd < 0)
		return 0;
	/* the bases, built once: loading one is far cheaper than learning it */
	static char base[FUZZ_BASES][64];
	if (!base[k][0]) {
		uint64_t seed;
		mfs_model *b = fuzz_base_model(k, &seed);
		int bfd = memfd_create("fuzz_delta_base", 0);
		snprintf(base[k], sizeof base[k], "/proc/self/fd/%d", bfd);
		if (!b || bfd < 0 || mfs_model_save_fd_free(b, base[k]) < 0)
			__builtin_trap();
	}
	mfs_model *m = NULL;
	if (mfs_model_load(&m, base[k], "scalar", NULL) < 0)
		__builtin_trap();
	uint64_t before = mfs_model_state_id(m);
	int touched = 0, other = 0;
	mfs_diag d;
	int rc = mfs_model_apply_delta(m, path, 0, &touched, &other, &d);
	if (rc == 0) {
		fuzz_exercise(m);
	} else {
		if (d.reason[0] == 0 || (!touched && mfs_model_state_id(m) != before))
			__builtin_trap(); /* a refused delta says why and changes nothing */
		if (!touched)
			fuzz_exercise(m); /* untouched: still a whole model */
	}
	mfs_model_free(m);
	close(fd);
	return 0;
}
