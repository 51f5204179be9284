/*
 * fuzz_lines.c - libFuzzer target for tools/cli_lines.c: the query lines of
 * `serve` and the "user item" lines of predict and recommend --exclude.
 *
 * Input: byte 0 picks the parser (even: cli_query_parse, odd: cli_split_pair),
 * the rest is the line, copied NUL-terminated into a heap buffer of exactly
 * its size so that AddressSanitizer reports any access past it.
 *
 * Invariants checked (abort on violation):
 *   - the op is one of the enum; an error carries a non-empty message;
 *   - returned IDs are non-empty, lie inside the line, hold no field
 *     separator (TAB; a space too when the line has no TAB), and K is 1..10000;
 *   - split_pair's IDs are non-empty, inside the line and hold no separator.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_lines.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                      \
	do {                                                                          \
		if (!(c)) {                                                           \
			fprintf(stderr, "fuzz_lines: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #c);                                        \
			abort();                                                      \
		}                                                                     \
	} while (0)

static void inside(const char *buf, size_t n, const char *p, size_t len)
{
	CHECK(len > 0);
	CHECK(p >= buf && p + len <= buf + n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n = size - 1;
	char *line = malloc(n + 1);
	if (!line)
		return 0;
	memcpy(line, data + 1, n);
	line[n] = 0;
	size_t len = strlen(line); /* the line ends at its first NUL, as getline's does for us */
	int tab = memchr(line, '\t', len) != NULL;
	if (data[0] % 2 == 0) {
		struct cli_query q;
		int op = cli_query_parse(line, &q);
		CHECK(op == q.op && op >= CLI_Q_BLANK && op <= CLI_Q_ERROR);
		if (op == CLI_Q_ERROR)
			CHECK(q.error && q.error[0]);
		if (op == CLI_Q_RECOMMEND || op == CLI_Q_SIMILAR || op == CLI_Q_PREDICT) {
			inside(line, len, q.a, q.al);
			CHECK(!memchr(q.a, '\t', q.al) && (tab || !memchr(q.a, ' ', q.al)));
		}
		if (op == CLI_Q_PREDICT) {
			inside(line, len, q.b, q.bl);
			CHECK(!memchr(q.b, '\t', q.bl) && (tab || !memchr(q.b, ' ', q.bl)));
		}
		if (op == CLI_Q_RECOMMEND || op == CLI_Q_SIMILAR)
			CHECK(q.k >= 1 && q.k <= CLI_Q_K_MAX);
	} else {
		char *u, *it;
		size_t ul, il;
		if (cli_split_pair(line, &u, &ul, &it, &il) == 0) {
			inside(line, len, u, ul);
			inside(line, len, it, il);
			CHECK(u + ul <= it);
			/* a line with a TAB splits at TABs only (IDs may hold ' ' and ','),
			 * else at ' ', ',' and "::" */
			for (size_t i = 0; i < ul; i++)
				CHECK(u[i] != '\t' && (tab || (u[i] != ' ' && u[i] != ',')));
			for (size_t i = 0; i < il; i++)
				CHECK(it[i] != '\t' && (tab || (it[i] != ' ' && it[i] != ',')));
		}
	}
	free(line);
	return 0;
}
