/* cli_lines.c - the line formats the query commands read (see cli_lines.h). */
#include "cli_lines.h"

#include <stdlib.h>
#include <string.h>

/* Cut "\n", "\r\n" (and stray '\r's) off the end of line. */
static size_t chomp(char *line)
{
	size_t len = strlen(line);
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = 0;
	return len;
}

/* A field separator: a TAB when the line has one (IDs may then hold spaces,
 * ',' or "::"), else a space, ',' or "::". */
static int is_sep(const char *s, int tab)
{
	if (tab)
		return *s == '\t';
	return *s == ' ' || *s == ',' || (s[0] == ':' && s[1] == ':');
}

int cli_split_pair(char *line, char **u, size_t *ul, char **it, size_t *il)
{
	chomp(line);
	int tab = strchr(line, '\t') != NULL;
	char *p = line;
	while (*p == ' ')
		p++;
	char *s = p;
	while (*s && !is_sep(s, tab))
		s++;
	if (!*s || s == p)
		return -1;
	*u = p;
	*ul = (size_t)(s - p);
	s += (s[0] == ':' ? 2 : 1);
	while (*s == ' ')
		s++;
	char *e = s;
	while (*e && !is_sep(e, tab))
		e++;
	if (e == s)
		return -1;
	*it = s;
	*il = (size_t)(e - s);
	return 0;
}

/* Split line into fields: by TAB when it has one, else by spaces. Returns the
 * count, or max + 1 when there are more than max. */
static int split_fields(char *line, const char **f, size_t *fl, int max)
{
	int tab = strchr(line, '\t') != NULL, n = 0;
	char *p = line;
	for (;;) {
		if (!tab)
			while (*p == ' ')
				p++;
		if (!*p)
			return n;
		if (n == max)
			return max + 1;
		char *e = p;
		while (*e && (tab ? *e != '\t' : *e != ' '))
			e++;
		f[n] = p;
		fl[n++] = (size_t)(e - p);
		if (!*e)
			return n;
		p = e + 1;
	}
}

static int parse_k(const char *s, size_t len, size_t *k)
{
	size_t v = 0;
	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (size_t)(s[i] - '0');
	}
	if (v < 1 || v > CLI_Q_K_MAX)
		return -1;
	*k = v;
	return 0;
}

static int fail(struct cli_query *q, const char *why)
{
	q->error = why;
	return q->op = CLI_Q_ERROR;
}

int cli_query_parse(char *line, struct cli_query *q)
{
	memset(q, 0, sizeof *q);
	q->k = 10;
	chomp(line);
	const char *f[3];
	size_t fl[3];
	int n = split_fields(line, f, fl, 3);
	if (n == 0)
		return q->op = CLI_Q_BLANK;
#define IS(w) (fl[0] == sizeof(w) - 1 && memcmp(f[0], w, fl[0]) == 0)
	if (IS("recommend") || IS("similar")) {
		int op = IS("recommend") ? CLI_Q_RECOMMEND : CLI_Q_SIMILAR;
		if (n < 2 || fl[1] == 0)
			return fail(q, "expected an ID");
		if (n > 3)
			return fail(q, "too many fields");
		if (n == 3 && parse_k(f[2], fl[2], &q->k) < 0)
			return fail(q, "K must be a number from 1 to 10000");
		q->a = f[1];
		q->al = fl[1];
		return q->op = op;
	}
	if (IS("predict")) {
		if (n != 3 || fl[1] == 0 || fl[2] == 0)
			return fail(q, "expected: predict USER ITEM");
		q->a = f[1];
		q->al = fl[1];
		q->b = f[2];
		q->bl = fl[2];
		return q->op = CLI_Q_PREDICT;
	}
	if (IS("info"))
		return n == 1 ? (q->op = CLI_Q_INFO) : fail(q, "info takes no arguments");
#undef IS
	return fail(q, "unknown query (recommend, similar, predict, info)");
}
