/* cli_lines.h - the line formats the query commands read (no I/O, no model: fuzzed). */
#ifndef MFS_CLI_LINES_H
#define MFS_CLI_LINES_H

#include <stddef.h>

/*
 * Split "user item ..." (fields separated by TABs when the line has one, so
 * that IDs may hold spaces, ',' or '::'; else by spaces, ',' or '::'; further
 * fields ignored; the line's end "\n" or "\r\n" is cut off in place).
 * The IDs point into line. Returns 0, or -1 when there are not two IDs.
 */
int cli_split_pair(char *line, char **u, size_t *ul, char **it, size_t *il);

/* A query line of `serve`. */
enum cli_query_op {
	CLI_Q_BLANK = 0, /* an empty line: no answer */
	CLI_Q_RECOMMEND,
	CLI_Q_SIMILAR,
	CLI_Q_PREDICT,
	CLI_Q_INFO,
	CLI_Q_ERROR /* malformed: error says why */
};

#define CLI_Q_K_MAX 10000

struct cli_query {
	int op;
	const char *a, *b; /* recommend: a = user; similar: a = item; predict: a = user, b = item */
	size_t al, bl;
	size_t k;          /* recommend, similar: 1..CLI_Q_K_MAX (default 10) */
	const char *error; /* CLI_Q_ERROR: a static message */
};

/*
 * Parse one query line: "recommend USER [K]", "similar ITEM [K]",
 * "predict USER ITEM", "info". Fields are split at TABs when the line has
 * one (IDs may then hold spaces), else at runs of spaces. The line's end is
 * cut off in place. Returns q->op.
 */
int cli_query_parse(char *line, struct cli_query *q);

#endif
