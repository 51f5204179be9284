/*
 * fuzz_model - model files: bytes -> mfs_model_load (header, section table,
 * every section parser: keys and the ID index, ID strings, rows, AdaGrad
 * state, counts, sketch, position) -> a model used as a server and a learner
 * would (fuzz_models.h). Checksums are not checked in this build
 * (MFS_FUZZ_IGNORE_CHECKSUMS), so mutations reach the parsers. The file is a
 * memfd loaded through its /proc path: mapped, as mfs_model_load maps, or
 * (inputs of odd length) read into memory, as servers load (MFS_LOAD_COPY).
 * Seeds: real models of every mode, written by make_model_seeds (.ci/fuzz.sh).
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_memfd.h"
#include "fuzz_models.h"
#include "model_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = fuzz_memfd("fuzz_model", data, size, path);
	if (fd < 0)
		return 0;
	mfs_model *m = NULL;
	mfs_diag d;
	int rc = mfs_model_load_flags(&m, path, "scalar", size % 2 ? MFS_LOAD_COPY : 0, &d);
	if (rc == 0) {
		fuzz_exercise(m);
		mfs_model_free(m);
	} else if (m != NULL || d.reason[0] == 0) {
		__builtin_trap(); /* a failure must leave *out alone and say why */
	}
	close(fd);
	return 0;
}
