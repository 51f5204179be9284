/*
 * fuzz_source - the reader path: bytes -> codec detection (plain, zstd, gzip)
 * -> decompression across chunk boundaries -> lines -> records.
 *
 * Input: byte 0 picks the chunk size (1..256 bytes, so frames, members and
 * lines are split everywhere), byte 1 the format; the rest is the file. The
 * file is a memfd read through its /proc path with the pread backend. Every
 * error must come back as a code with a diagnostic naming the file; events
 * must have IDs inside the limits and finite ratings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <math.h>

#include "fuzz_memfd.h"
#include "mfstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t chunk = 1 + data[0];
	int format = data[1] % 5;
	data += 2;
	size -= 2;
	char path[64];
	int fd = fuzz_memfd("fuzz", data, size, path);
	if (fd < 0)
		return 0;
	const char *in[1] = { path };
	mfs_source_config c;
	mfs_source_config_default(&c);
	c.format = format;
	c.batch = 7;
	mfs_source_config2 c2;
	mfs_source_config2_default(&c2);
	c2.io = MFS_IO_PREAD;
	c2.chunk = chunk;
	mfs_source *s = NULL;
	mfs_diag d;
	if (mfs_source_open2(&s, in, 1, &c, &c2, &d) == 0) {
		for (int rounds = 0; rounds < 100000; rounds++) {
			const mfs_event *e;
			int n = mfs_source_next(s, &e, &d);
			if (n < 0) {
				if (d.path[0] == 0 || d.reason[0] == 0)
					abort(); /* every failure names the file and why */
				mfs_source_skip_file(s);
				continue;
			}
			if (n == 0)
				break;
			for (int i = 0; i < n; i++) {
				if (e[i].user_len == 0 || e[i].user_len > MFS_ID_MAX || e[i].item_len == 0 ||
				    e[i].item_len > MFS_ID_MAX || !isfinite(e[i].rating))
					abort();
				volatile char sink = e[i].user[e[i].user_len - 1] ^ e[i].item[e[i].item_len - 1];
				(void)sink;
			}
		}
		mfs_source_free(s);
	}
	close(fd);
	return 0;
}
