/* jsonio.c - a bounded JSON writer and the batch-body reader (see jsonio.h). */
#include "jsonio.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- writer --------------------------------------------------------------- */

void mfs_jbuf_init(struct mfs_jbuf *b, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max;
}

void mfs_jbuf_free(struct mfs_jbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static int reserve(struct mfs_jbuf *b, size_t n)
{
	if (b->over)
		return -1;
	if (n > b->max - b->len || b->len + n + 1 < n) {
		b->over = 1;
		return -1;
	}
	if (b->len + n + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < b->len + n + 1)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->over = b->nomem = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

int mfs_jbuf_put(struct mfs_jbuf *b, const char *s, size_t n)
{
	if (reserve(b, n) < 0)
		return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

int mfs_jbuf_puts(struct mfs_jbuf *b, const char *s)
{
	return mfs_jbuf_put(b, s, strlen(s));
}

int mfs_jbuf_printf(struct mfs_jbuf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof tmp)
		return mfs_jbuf_put(b, tmp, (size_t)n);
	if (reserve(b, (size_t)n) < 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

/* The length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs,
 * no surrogates, nothing past U+10FFFF), or 0 when the byte starts none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return len;
}

int mfs_jbuf_str(struct mfs_jbuf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	if (mfs_jbuf_put(b, "\"", 1) < 0)
		return -1;
	size_t i = 0;
	while (i < n) {
		/* a run that needs no change */
		size_t j = i;
		for (;;) {
			if (j == n || u[j] < 0x20 || u[j] == '"' || u[j] == '\\')
				break;
			size_t l = utf8_len(u + j, n - j);
			if (!l)
				break;
			j += l;
		}
		if (j > i && mfs_jbuf_put(b, s + i, j - i) < 0)
			return -1;
		i = j;
		if (i == n)
			break;
		unsigned c = u[i];
		int rc;
		if (c == '"')
			rc = mfs_jbuf_put(b, "\\\"", 2);
		else if (c == '\\')
			rc = mfs_jbuf_put(b, "\\\\", 2);
		else if (c == '\n')
			rc = mfs_jbuf_put(b, "\\n", 2);
		else if (c == '\t')
			rc = mfs_jbuf_put(b, "\\t", 2);
		else if (c < 0x20)
			rc = mfs_jbuf_printf(b, "\\u%04x", c);
		else
			rc = mfs_jbuf_put(b, "\xEF\xBF\xBD", 3); /* U+FFFD for a byte of no character */
		if (rc < 0)
			return -1;
		i++;
	}
	return mfs_jbuf_put(b, "\"", 1);
}

MFS_API size_t mfs_json_quote(char *out, size_t cap, const char *s, size_t len)
{
	struct mfs_jbuf b;
	mfs_jbuf_init(&b, 6 * len + 16); /* "\u00XX" is the longest a byte becomes */
	size_t need = (size_t)-1;
	if (mfs_jbuf_str(&b, s, len) == 0) {
		need = b.len;
		if (cap > 0) {
			size_t n = need < cap ? need : cap - 1;
			memcpy(out, b.p, n);
			out[n] = '\0';
		}
	}
	mfs_jbuf_free(&b);
	return need;
}

char *mfs_jbuf_take(struct mfs_jbuf *b, size_t *len)
{
	if (reserve(b, 0) < 0) {
		mfs_jbuf_free(b);
		return NULL;
	}
	char *p = b->p;
	*len = b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

/* --- reader ----------------------------------------------------------------- */

struct cur {
	const char *s, *e;
	char *arena; /* decoded strings go here (never longer than their JSON) */
	size_t used;
	const char *why;
};

static int fail(struct cur *c, const char *why)
{
	if (!c->why)
		c->why = why;
	return -1;
}

static void ws(struct cur *c)
{
	while (c->s < c->e && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
		c->s++;
}

static int eat(struct cur *c, char ch)
{
	ws(c);
	if (c->s < c->e && *c->s == ch) {
		c->s++;
		return 1;
	}
	return 0;
}

static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char h = p[i];
		unsigned d = h >= '0' && h <= '9'   ? (unsigned)(h - '0')
			     : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
			     : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10)
						    : 16u;
		if (d > 15)
			return -1;
		*v = *v * 16 + d;
	}
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* A string into the arena. Lone surrogates become U+FFFD. */
static int string(struct cur *c, const char **out, size_t *len)
{
	ws(c);
	if (c->s >= c->e || *c->s != '"')
		return fail(c, "expected a string");
	c->s++;
	char *o = c->arena + c->used, *start = o;
	while (c->s < c->e && *c->s != '"') {
		unsigned char ch = (unsigned char)*c->s;
		if (ch < 0x20)
			return fail(c, "control character in a string");
		if (ch != '\\') {
			*o++ = (char)ch;
			c->s++;
			continue;
		}
		if (c->e - c->s < 2)
			return fail(c, "unterminated string");
		char esc = c->s[1];
		c->s += 2;
		switch (esc) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (c->e - c->s < 4 || hex4(c->s, &cp) < 0)
				return fail(c, "bad \\u escape");
			c->s += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF && c->e - c->s >= 6 && c->s[0] == '\\' &&
			    c->s[1] == 'u' && hex4(c->s + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				c->s += 6;
			} else if (cp >= 0xD800 && cp <= 0xDFFF) {
				cp = 0xFFFD;
			}
			o += put_utf8(o, cp);
			break;
		}
		default:
			return fail(c, "bad escape in a string");
		}
	}
	if (c->s >= c->e)
		return fail(c, "unterminated string");
	c->s++;
	*out = start;
	*len = (size_t)(o - start);
	c->used += *len;
	return 0;
}

/* A non-negative integer up to max. */
static int count(struct cur *c, size_t max, size_t *out, const char *why)
{
	ws(c);
	size_t v = 0;
	const char *p = c->s;
	while (c->s < c->e && *c->s >= '0' && *c->s <= '9') {
		if (v > max)
			return fail(c, why);
		v = v * 10 + (size_t)(*c->s - '0');
		c->s++;
	}
	if (c->s == p || (c->s < c->e && (*c->s == '.' || *c->s == 'e' || *c->s == 'E')))
		return fail(c, "expected a whole number");
	if (v < 1 || v > max)
		return fail(c, why);
	*out = v;
	return 0;
}

static int key_is(const char *k, size_t kl, const char *w)
{
	return kl == strlen(w) && memcmp(k, w, kl) == 0;
}

struct pq {
	size_t user_off, user_len, k, excl0, n_excl; /* excl0: index into the batch's lists */
};

struct st {
	struct pq *q;
	size_t n, cap;
	size_t *exo, *exl; /* exclude IDs: arena offset, length */
	size_t nx, capx;
	size_t items;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 16;
	while (c < need)
		c *= 2;
	void *q = realloc(*p, c * elem);
	if (!q)
		return -1;
	*p = q;
	*cap = c;
	return 0;
}

static int exclude_list(struct cur *c, struct st *st, const struct mfs_batch_limits *lim,
			struct pq *q)
{
	if (!eat(c, '['))
		return fail(c, "\"exclude\" must be an array of item IDs");
	q->excl0 = st->nx;
	if (eat(c, ']'))
		return 0;
	do {
		const char *s;
		size_t l;
		if (string(c, &s, &l) < 0)
			return -1;
		if (l > lim->id_max)
			return fail(c, "an exclude ID is longer than 255 bytes");
		if (st->nx == lim->max_exclude)
			return fail(c, "too many exclude IDs in the batch");
		size_t cx = st->capx;
		if (grow((void **)&st->exo, &cx, st->nx + 1, sizeof *st->exo) < 0 ||
		    grow((void **)&st->exl, &st->capx, st->nx + 1, sizeof *st->exl) < 0)
			return fail(c, "out of memory");
		st->exo[st->nx] = (size_t)(s - c->arena);
		st->exl[st->nx++] = l;
		q->n_excl++;
	} while (eat(c, ','));
	return eat(c, ']') ? 0 : fail(c, "expected ',' or ']' in \"exclude\"");
}

static int request(struct cur *c, struct st *st, const struct mfs_batch_limits *lim, size_t k0)
{
	struct pq q = { 0, 0, 0, st->nx, 0 };
	int have_user = 0;
	ws(c);
	if (c->s < c->e && *c->s == '"') {
		const char *s;
		if (string(c, &s, &q.user_len) < 0)
			return -1;
		q.user_off = (size_t)(s - c->arena);
		have_user = 1;
	} else {
		if (!eat(c, '{'))
			return fail(c, "a request must be an object or a user ID string");
		if (!eat(c, '}')) {
			do {
				const char *k, *s;
				size_t kl;
				if (string(c, &k, &kl) < 0)
					return -1;
				if (!eat(c, ':'))
					return fail(c, "expected ':'");
				if (key_is(k, kl, "user")) {
					if (have_user)
						return fail(c, "\"user\" given twice");
					if (string(c, &s, &q.user_len) < 0)
						return -1;
					q.user_off = (size_t)(s - c->arena);
					have_user = 1;
				} else if (key_is(k, kl, "k")) {
					if (count(c, lim->k_max, &q.k, "k must be a number from 1 to k_max") < 0)
						return -1;
				} else if (key_is(k, kl, "exclude")) {
					if (q.n_excl || exclude_list(c, st, lim, &q) < 0)
						return fail(c, "\"exclude\" given twice");
				} else {
					return fail(c, "unknown field in a request (user, k, exclude)");
				}
			} while (eat(c, ','));
			if (!eat(c, '}'))
				return fail(c, "expected ',' or '}' in a request");
		}
	}
	if (!have_user)
		return fail(c, "a request has no \"user\"");
	if (q.user_len > lim->id_max)
		return fail(c, "a user ID is longer than 255 bytes");
	if (!q.k)
		q.k = k0;
	if (st->n == lim->max_queries)
		return fail(c, "too many requests in the batch");
	if (q.k > lim->max_items - st->items)
		return fail(c, "the batch asks for too many items in all (the sum of k)");
	st->items += q.k;
	if (grow((void **)&st->q, &st->cap, st->n + 1, sizeof *st->q) < 0)
		return fail(c, "out of memory");
	st->q[st->n++] = q;
	return 0;
}

int mfs_batch_parse(const char *body, size_t len, const struct mfs_batch_limits *lim,
		    struct mfs_batch *out, const char **why)
{
	memset(out, 0, sizeof *out);
	struct cur c = { body, body + len, malloc(len + 1), 0, NULL };
	struct st st = { 0 };
	size_t k0 = lim->k_default;
	const char *reqs = NULL; /* where "requests" starts: parsed after "k" is known */
	int rc = -1;
	if (!c.arena) {
		fail(&c, "out of memory");
		goto out;
	}
	out->arena = c.arena;
	if (!eat(&c, '{')) {
		fail(&c, "the body must be a JSON object");
		goto out;
	}
	if (!eat(&c, '}')) {
		do {
			const char *k;
			size_t kl;
			if (string(&c, &k, &kl) < 0)
				goto out;
			if (!eat(&c, ':')) {
				fail(&c, "expected ':'");
				goto out;
			}
			if (key_is(k, kl, "k")) {
				if (count(&c, lim->k_max, &k0, "k must be a number from 1 to k_max") < 0)
					goto out;
			} else if (key_is(k, kl, "requests")) {
				if (reqs) {
					fail(&c, "\"requests\" given twice");
					goto out;
				}
				ws(&c);
				reqs = c.s;
				if (c.s == c.e || *c.s != '[') {
					fail(&c, "\"requests\" must be an array");
					goto out;
				}
				/* skip it for now: a later "k" is its default */
				int depth = 0, in_str = 0;
				for (; c.s < c.e; c.s++) {
					char ch = *c.s;
					if (in_str) {
						if (ch == '\\')
							c.s++;
						else if (ch == '"')
							in_str = 0;
					} else if (ch == '"') {
						in_str = 1;
					} else if (ch == '[' || ch == '{') {
						if (++depth > 8) {
							fail(&c, "nested too deep");
							goto out;
						}
					} else if (ch == ']' || ch == '}') {
						if (--depth == 0) {
							c.s++;
							break;
						}
					}
				}
				if (depth != 0 || c.s > c.e) {
					fail(&c, "\"requests\" is not closed");
					goto out;
				}
			} else {
				fail(&c, "unknown field (k, requests)");
				goto out;
			}
		} while (eat(&c, ','));
		if (!eat(&c, '}')) {
			fail(&c, "expected ',' or '}'");
			goto out;
		}
	}
	ws(&c);
	if (c.s != c.e) {
		fail(&c, "text after the JSON object");
		goto out;
	}
	if (!reqs) {
		fail(&c, "no \"requests\" array");
		goto out;
	}
	c.s = reqs;
	if (!eat(&c, '[')) {
		fail(&c, "\"requests\" must be an array");
		goto out;
	}
	if (!eat(&c, ']')) {
		do {
			if (request(&c, &st, lim, k0) < 0)
				goto out;
		} while (eat(&c, ','));
		if (!eat(&c, ']')) {
			fail(&c, "expected ',' or ']' in \"requests\"");
			goto out;
		}
	}
	out->q = calloc(st.n ? st.n : 1, sizeof *out->q);
	out->excl = malloc((st.nx ? st.nx : 1) * sizeof *out->excl);
	out->excl_len = malloc((st.nx ? st.nx : 1) * sizeof *out->excl_len);
	if (!out->q || !out->excl || !out->excl_len) {
		fail(&c, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < st.nx; i++) {
		out->excl[i] = c.arena + st.exo[i];
		out->excl_len[i] = st.exl[i];
	}
	for (size_t i = 0; i < st.n; i++) {
		struct mfs_batch_query *q = &out->q[i];
		q->user = c.arena + st.q[i].user_off;
		q->user_len = st.q[i].user_len;
		q->k = st.q[i].k;
		q->excl = out->excl + st.q[i].excl0;
		q->excl_len = out->excl_len + st.q[i].excl0;
		q->n_excl = st.q[i].n_excl;
	}
	out->n = st.n;
	rc = 0;
out:
	free(st.q);
	free(st.exo);
	free(st.exl);
	if (rc < 0)
		*why = c.why ? c.why : "malformed JSON";
	return rc;
}

void mfs_batch_free(struct mfs_batch *b)
{
	free(b->q);
	free(b->arena);
	free(b->excl);
	free(b->excl_len);
	memset(b, 0, sizeof *b);
}
