/* fuzz_jsonio - the HTTP server's batch-body reader and JSON string writer on
 * arbitrary bytes: no crash, no over-read, and every string written is valid
 * UTF-8 JSON (checked here byte by byte). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonio.h"

/* The writer's output is a quoted string of well-formed UTF-8, no raw controls. */
static void check_string(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	if (n < 2 || u[0] != '"' || u[n - 1] != '"')
		abort();
	for (size_t i = 1; i + 1 < n;) {
		unsigned c = u[i];
		if (c < 0x20)
			abort();
		size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		if (!l || i + l > n - 1 || (l == 2 && c < 0xC2))
			abort();
		for (size_t j = 1; j < l; j++)
			if ((u[i + j] & 0xC0) != 0x80)
				abort();
		i += l;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mfs_batch_limits lim = { 10, 100, 20, 200, 50, 255 };
	struct mfs_batch b;
	const char *why = NULL;
	if (mfs_batch_parse((const char *)data, size, &lim, &b, &why) == 0) {
		size_t items = 0, excl = 0;
		for (size_t i = 0; i < b.n; i++) {
			if (b.q[i].k < 1 || b.q[i].k > lim.k_max || b.q[i].user_len > lim.id_max)
				abort();
			items += b.q[i].k;
			excl += b.q[i].n_excl;
		}
		if (b.n > lim.max_queries || items > lim.max_items || excl > lim.max_exclude)
			abort();
	} else if (!why) {
		abort();
	}
	mfs_batch_free(&b);
	struct mfs_jbuf j;
	mfs_jbuf_init(&j, 6 * size + 16);
	if (mfs_jbuf_str(&j, (const char *)data, size) != 0)
		abort();
	check_string(j.p, j.len);
	mfs_jbuf_free(&j);
	return 0;
}
