/*
 * parse.c - records (one line of text) -> events: tsv, csv, dat, ssv, jsonl.
 *
 * This is the hot path of a training run: every line of input passes through
 * mfs_parse_line once. Nothing here allocates or calls into the locale:
 *   - separators are found 8 bytes at a time (SWAR, plain C on a uint64_t;
 *     a byte loop on big-endian targets), and a line is read once, in order;
 *   - a number of at most 19 digits whose decimal exponent fits
 *     the exact powers of ten (|e| <= 22) is computed as one correctly rounded
 *     double operation (m * 10^e or m / 10^e, m < 2^53); anything else is
 *     normalised into a stack buffer and handed to strtod_l with a C locale
 *     made once (not strtod: a program embedding the library may have set a
 *     comma-decimal LC_NUMERIC, and "4.5" would read as 4);
 *   - times that are plain integers never touch floating point (8 digits
 *     at a time where SWAR is available).
 * The jsonl parser checks the full JSON grammar (RFC 8259) of each line in
 * one pass, skipping unknown members, and decodes the string values it keeps
 * in place, inside the caller's mutable line buffer.
 *
 * Reasons for a person are written with snprintf on the error path only;
 * bytes quoted from the input are cut to QUOTE_MAX and escaped so that a
 * reason is always one printable ASCII line.
 */
#include "parse.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ===================================================================== */
/* Reasons                                                               */
/* ===================================================================== */

#define QUOTE_MAX 32                    /* input bytes quoted in a reason */
#define QUOTE_BUF (QUOTE_MAX * 4 + 8)   /* worst case: every byte as \xNN, "..." */

/* Printable, one-line rendering of s[0..n): '"' and '\\' escaped, other
 * bytes outside 0x20..0x7e as \xNN, cut after QUOTE_MAX bytes with "...". */
static const char *quote(char dst[QUOTE_BUF], const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t lim = n > QUOTE_MAX ? QUOTE_MAX : n, o = 0;
	for (size_t i = 0; i < lim; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)c;
		} else if (c >= 0x20 && c < 0x7f) {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	if (n > lim) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = 0;
	return dst;
}

/* Where a reason goes. */
struct err {
	char *buf;
	size_t len;
};

MFS_PRINTF(3, 4)
static int fail_code(const struct err *e, int code, const char *fmt, ...)
{
	if (e->buf && e->len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->buf, e->len, fmt, ap);
		va_end(ap);
	}
	return -code;
}

#define fail(e, ...) fail_code((e), MFS_E_PARSE, __VA_ARGS__)

/* ===================================================================== */
/* Bytes                                                                 */
/* ===================================================================== */

static inline int is_digit(unsigned char c)
{
	return (unsigned)(c - '0') < 10u;
}

/* Spaces tolerated around numeric fields. */
static inline int is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Whitespace that makes a line hold no record. */
static inline int is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c == '\n';
}

static int blank_line(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_space((unsigned char)s[i]))
			return 0;
	return 1;
}

static inline void trim(const char **s, size_t *n)
{
	if (MFS_LIKELY(*n == 0 || (!is_blank((unsigned char)(*s)[0]) &&
				   !is_blank((unsigned char)(*s)[*n - 1]))))
		return;
	const char *p = *s, *e = p + *n;
	while (p < e && is_blank((unsigned char)*p))
		p++;
	while (e > p && is_blank((unsigned char)e[-1]))
		e--;
	*s = p;
	*n = (size_t)(e - p);
}

/*
 * Where the target allows, lines are scanned 8 bytes at a time (SWAR).
 * eq_mask() sets the high bit of every byte of w equal to the byte in pat
 * (pat = byte * ONES), exactly: no carry crosses a byte. digits8() tells
 * whether 8 bytes are all ASCII digits and value8() converts them (the
 * simdjson way). Loads are memcpy'd, so alignment never matters.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && defined(__GNUC__)
#define MFS_SWAR 1
#define ONES UINT64_C(0x0101010101010101)
#define LOW7 UINT64_C(0x7f7f7f7f7f7f7f7f)

static inline uint64_t load8(const void *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
	return w;
}

static inline uint64_t eq_mask(uint64_t w, uint64_t pat)
{
	uint64_t x = w ^ pat;
	return ~(((x & LOW7) + LOW7) | x | LOW7);
}

static inline int digits8(uint64_t w)
{
	return ((w & UINT64_C(0xF0F0F0F0F0F0F0F0)) |
		(((w + UINT64_C(0x0606060606060606)) & UINT64_C(0xF0F0F0F0F0F0F0F0)) >> 4)) ==
	       UINT64_C(0x3333333333333333);
}

static inline uint32_t value8(uint64_t w)
{
	const uint64_t mask = UINT64_C(0x000000FF000000FF);
	const uint64_t mul1 = UINT64_C(0x000F424000000064); /* 100 + (1000000 << 32) */
	const uint64_t mul2 = UINT64_C(0x0000271000000001); /* 1 + (10000 << 32) */
	w -= UINT64_C(0x3030303030303030);
	w = w * 10 + (w >> 8);
	return (uint32_t)(((w & mask) * mul1 + ((w >> 16) & mask) * mul2) >> 32);
}
#else
#define MFS_SWAR 0
#endif

/* ===================================================================== */
/* Numbers                                                               */
/* ===================================================================== */

static const double pow10_exact[23] = {
	1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* Significant digits kept for strtod in the slow path. A midpoint between two
 * doubles has at most 767 significant decimal digits, so 800 digits plus a
 * non-zero "sticky" digit standing for everything dropped rounds exactly as
 * the full text would. */
#define SLOW_DIGITS 800

/* Exponents are saturated here while scanning: beyond it every value is 0 or inf. */
#define EXP_SAT 1000000000LL

/* The C locale of the slow path's strtod_l, made once (newlocale of "C" does
 * not allocate in glibc; NULL if it failed, and the slow path then fails). */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/*
 * The slow path: rewrite the (already validated) number as
 * [-]0.DDDD[1]e<exp> with at most SLOW_DIGITS significant digits and let
 * strtod_l (C locale: '.' is the decimal point) round it.
 */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int number_slow(const unsigned char *ip, size_t nint, const unsigned char *fp,
		       size_t nfrac, int neg, int64_t exp, double *out)
{
	char buf[SLOW_DIGITS + 32];
	size_t o = 0, kept = 0;
	int64_t point = 0; /* value = 0.DIGITS * 10^point * 10^exp */
	int started = 0, sticky = 0;

	if (neg)
		buf[o++] = '-';
	buf[o++] = '0';
	buf[o++] = '.';
	for (size_t i = 0; i < nint + nfrac; i++) {
		int in_int = i < nint;
		unsigned char d = in_int ? ip[i] : fp[i - nint];
		if (!started && d == '0') {
			if (!in_int)
				point--;
			continue;
		}
		started = 1;
		if (in_int)
			point++;
		if (kept < SLOW_DIGITS) {
			buf[o++] = (char)d;
			kept++;
		} else if (d != '0') {
			sticky = 1;
		}
	}
	if (!started) {
		*out = neg ? -0.0 : 0.0;
		return 0;
	}
	if (sticky)
		buf[o++] = '1';
	int64_t e = point + exp;
	if (e > 100000)
		e = 100000;
	if (e < -100000)
		e = -100000;
	snprintf(buf + o, sizeof buf - o, "e%d", (int)e);
	pthread_once(&c_locale_once, make_c_locale);
	if (c_locale == (locale_t)0)
		return -1;
	char *end;
	double v = strtod_l(buf, &end, c_locale);
	if (*end != '\0' || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int parse_number(const char *s, size_t len, double *out)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	int neg = 0;
	if (p < end && (*p == '+' || *p == '-')) {
		neg = *p == '-';
		p++;
	}

	/* m collects the digits (leading zeros included) while there are at most 19. */
	uint64_t m = 0;
	size_t nd = 0;
	const unsigned char *ip = p;
	while (p < end && is_digit(*p)) {
		if (nd < 19)
			m = m * 10 + (uint64_t)(*p - '0');
		nd++;
		p++;
	}
	size_t nint = (size_t)(p - ip);
	const unsigned char *fp = p;
	size_t nfrac = 0;
	if (p < end && *p == '.') {
		fp = ++p;
		while (p < end && is_digit(*p)) {
			if (nd < 19)
				m = m * 10 + (uint64_t)(*p - '0');
			nd++;
			p++;
		}
		nfrac = (size_t)(p - fp);
	}
	if (nd == 0)
		return -1;

	int64_t exp = 0;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		int eneg = 0;
		if (p < end && (*p == '+' || *p == '-')) {
			eneg = *p == '-';
			p++;
		}
		if (p >= end || !is_digit(*p))
			return -1;
		while (p < end && is_digit(*p)) {
			if (exp < EXP_SAT)
				exp = exp * 10 + (*p - '0');
			p++;
		}
		if (eneg)
			exp = -exp;
	}
	if (p != end)
		return -1;

	if (MFS_LIKELY(nd <= 19)) {
		/* nfrac <= 19 here: one exact power of ten, one rounding. */
		int64_t e10 = exp - (int64_t)nfrac;
		if (m == 0) {
			*out = neg ? -0.0 : 0.0;
			return 0;
		}
		if (m <= (UINT64_C(1) << 53) && e10 >= -22 && e10 <= 22) {
			double v = (double)m;
			v = e10 < 0 ? v / pow10_exact[-e10] : v * pow10_exact[e10];
			*out = neg ? -v : v;
			return 0;
		}
	}
	return number_slow(ip, nint, fp, nfrac, neg, exp, out);
}

int mfs_parse_number(const char *s, size_t len, double *out)
{
	if (!s || !out)
		return -1;
	return parse_number(s, len, out);
}

/* ===================================================================== */
/* Fields shared by every format                                         */
/* ===================================================================== */

static int check_id(const struct err *e, const char *role, size_t n)
{
	if (MFS_UNLIKELY(n == 0))
		return fail(e, "empty %s ID", role);
	if (MFS_UNLIKELY(n > MFS_ID_MAX))
		return fail(e, "%s ID longer than %d bytes", role, MFS_ID_MAX);
	return 0;
}

static int parse_rating(const struct err *e, const char *s, size_t n, float *out)
{
	char q[QUOTE_BUF];
	double v;
	trim(&s, &n);
	if (MFS_UNLIKELY(parse_number(s, n, &v) != 0))
		return fail(e, "rating \"%s\" is not a number", quote(q, s, n));
	float r = (float)v;
	if (MFS_UNLIKELY(isinf(r)))
		return fail(e, "rating \"%s\" is out of range", quote(q, s, n));
	*out = r;
	return 0;
}

/* An empty time (after trimming) is an absent one: 0. */
static int parse_time(const struct err *e, const char *s, size_t n, int64_t *out)
{
	char q[QUOTE_BUF];
	trim(&s, &n);
	if (n == 0) {
		*out = 0;
		return 0;
	}
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	int neg = 0;
	if (*p == '+' || *p == '-') {
		neg = *p == '-';
		p++;
	}
	/* Plain integers: exact; 18 digits cannot overflow, past them check. */
	uint64_t u = 0;
	const unsigned char *d0 = p, *safe = end - p > 18 ? p + 18 : end;
#if MFS_SWAR
	for (uint64_t w; safe - p >= 8 && digits8(w = load8(p)); p += 8)
		u = u * 100000000 + value8(w);
#endif
	while (p < safe && is_digit(*p))
		u = u * 10 + (unsigned)(*p++ - '0');
	if (MFS_UNLIKELY(p == safe && p < end)) {
		uint64_t limit = neg ? UINT64_C(1) << 63 : (UINT64_C(1) << 63) - 1;
		while (p < end && is_digit(*p)) {
			unsigned dg = (unsigned)(*p - '0');
			if (u > (limit - dg) / 10)
				break;
			u = u * 10 + dg;
			p++;
		}
	}
	if (MFS_LIKELY(p == end && p > d0)) {
		*out = neg ? (int64_t)(0 - u) : (int64_t)u;
		return 0;
	}
	if (p > d0 && p < end && is_digit(*p)) { /* stopped by overflow: an integer too big? */
		while (p < end && is_digit(*p))
			p++;
		if (p == end)
			return fail(e, "time \"%s\" is out of range", quote(q, s, n));
	}
	/* A decimal: truncate toward zero. */
	double v;
	if (mfs_parse_number(s, n, &v) != 0)
		return fail(e, "time \"%s\" is not a number", quote(q, s, n));
	v = trunc(v);
	if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0))
		return fail(e, "time \"%s\" is out of range", quote(q, s, n));
	*out = (int64_t)v;
	return 0;
}

/* A field of a delimited line. esc: a quoted csv field holding "" pairs. */
struct field {
	const char *p;
	size_t n;
	int esc;
};

#define NFIELDS 4

/* unrated: a line of 2 fields (user, item) is an event of rating 1. */
static int event_from_fields(const struct err *e, const struct field *f, size_t k, int unrated,
			     mfs_event *ev)
{
	int rc;
	if (MFS_UNLIKELY(k < 3 || k > 4) && !(unrated && k == 2))
		return fail(e, unrated ? "expected 2 to 4 fields, found %zu"
				       : "expected 3 or 4 fields, found %zu", k);
	if ((rc = check_id(e, "user", f[0].n)) < 0 || (rc = check_id(e, "item", f[1].n)) < 0)
		return rc;
	if (k == 2)
		ev->rating = 1.0f;
	else if ((rc = parse_rating(e, f[2].p, f[2].n, &ev->rating)) < 0)
		return rc;
	ev->time = 0;
	if (k == 4 && (rc = parse_time(e, f[3].p, f[3].n, &ev->time)) < 0)
		return rc;
	ev->user = f[0].p;
	ev->user_len = (uint32_t)f[0].n;
	ev->item = f[1].p;
	ev->item_len = (uint32_t)f[1].n;
	return 1;
}

/* ===================================================================== */
/* tsv, dat, csv: splitting                                              */
/* ===================================================================== */

#define SEP_AT(q, width)                                                            \
	do {                                                                        \
		if (k < NFIELDS)                                                    \
			f[k] = (struct field){ start, (size_t)((q)-start), 0 };    \
		k++;                                                                \
		start = (q) + (width);                                              \
	} while (0)

/*
 * Split on the byte sep. Returns the number of fields (the first NFIELDS are
 * stored), or SIZE_MAX when stop_on_quote is set and the line holds a '"'.
 */
static inline size_t split_byte(const char *s, size_t n, char sep, int stop_on_quote,
				struct field *f)
{
	const char *p = s, *end = s + n, *start = s;
	size_t k = 0;
#if MFS_SWAR
	const uint64_t ps = ONES * (unsigned char)sep, pq = ONES * '"';
	for (; end - p >= 8; p += 8) {
		uint64_t w = load8(p);
		if (stop_on_quote && eq_mask(w, pq))
			return SIZE_MAX;
		for (uint64_t m = eq_mask(w, ps); m; m &= m - 1)
			SEP_AT(p + (__builtin_ctzll(m) >> 3), 1);
	}
#endif
	for (; p < end; p++) {
		if (stop_on_quote && *p == '"')
			return SIZE_MAX;
		if (*p == sep)
			SEP_AT(p, 1);
	}
	if (k < NFIELDS)
		f[k] = (struct field){ start, (size_t)(end - start), 0 };
	return k + 1;
}

/*
 * Split on runs of blanks (spaces and tabs: LIBMF's "user item rating"
 * lines), ignoring blanks at either end. Returns the field count.
 */
static inline size_t split_ssv(const char *s, size_t n, struct field *f)
{
	const char *p = s, *end = s + n;
	size_t k = 0;
	for (;;) {
		while (p < end && is_blank((unsigned char)*p))
			p++;
		if (p == end)
			return k;
		const char *start = p;
#if MFS_SWAR
		const uint64_t psp = ONES * ' ', ptab = ONES * '\t';
		for (; end - p >= 8; p += 8) {
			uint64_t w = load8(p), m = eq_mask(w, psp) | eq_mask(w, ptab);
			if (m) {
				p += __builtin_ctzll(m) >> 3;
				goto found;
			}
		}
#endif
		while (p < end && !is_blank((unsigned char)*p))
			p++;
#if MFS_SWAR
	found:
#endif
		if (k < NFIELDS)
			f[k] = (struct field){ start, (size_t)(p - start), 0 };
		k++;
	}
}

/* Split on "::", leftmost first ("a:::b" is "a", ":b"). Returns the field count. */
static size_t split_dat(const char *s, size_t n, struct field *f)
{
	const char *p = s, *end = s + n, *start = s, *next = s; /* next: first ':' that may open a "::" */
	size_t k = 0;
#if MFS_SWAR
	const uint64_t pc = ONES * ':';
	for (; end - p >= 8; p += 8) {
		uint64_t w = load8(p);
		for (uint64_t m = eq_mask(w, pc); m; m &= m - 1) {
			const char *q = p + (__builtin_ctzll(m) >> 3);
			if (q >= next && q + 1 < end && q[1] == ':') {
				SEP_AT(q, 2);
				next = q + 2;
			}
		}
	}
#endif
	for (; p < end; p++) {
		if (*p == ':' && p >= next && p + 1 < end && p[1] == ':') {
			SEP_AT(p, 2);
			next = p + 2;
		}
	}
	if (k < NFIELDS)
		f[k] = (struct field){ start, (size_t)(end - start), 0 };
	return k + 1;
}

/*
 * Split a csv line (RFC 4180 quoting: a field that starts with '"' runs to the
 * next lone '"', "" standing for one quote; it must be followed by ',' or the
 * end). A quote inside an unquoted field is an ordinary byte. Returns the
 * number of fields, or -MFS_E_PARSE (reason via e, which may be NULL).
 */
static long split_csv(const struct err *e, const char *s, size_t n, struct field *f)
{
	const char *p = s, *end = s + n;
	size_t k = 0;
	for (;;) {
		struct field cur;
		if (p < end && *p == '"') {
			const char *c = p + 1;
			int esc = 0;
			for (;;) {
				const char *q = memchr(c, '"', (size_t)(end - c));
				if (!q)
					return e ? fail(e, "unterminated quoted field %zu", k + 1)
						 : -MFS_E_PARSE;
				if (q + 1 < end && q[1] == '"') {
					esc = 1;
					c = q + 2;
					continue;
				}
				cur = (struct field){ p + 1, (size_t)(q - p - 1), esc };
				p = q + 1;
				break;
			}
			if (p < end && *p != ',')
				return e ? fail(e, "unexpected character after the closing quote of field %zu",
						k + 1)
					 : -MFS_E_PARSE;
		} else {
			const char *q = memchr(p, ',', (size_t)(end - p));
			const char *fe = q ? q : end;
			cur = (struct field){ p, (size_t)(fe - p), 0 };
			p = fe;
		}
		if (k < NFIELDS)
			f[k] = cur;
		k++;
		if (p == end)
			return (long)k;
		p++; /* the ',' */
	}
}

/* Turn "" into " in place; returns the new length. */
static size_t csv_unescape(char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		s[o++] = s[i];
		if (s[i] == '"')
			i++; /* the second quote of the pair */
	}
	return o;
}

/* ===================================================================== */
/* jsonl                                                                 */
/* ===================================================================== */

#define JSON_DEPTH_MAX 64

enum jtype { J_NONE = 0, J_STRING, J_NUMBER, J_TRUE, J_FALSE, J_NULL, J_OBJECT, J_ARRAY };

struct jp {
	char *base; /* the line, for columns in reasons */
	char *p;
	char *end;
	const struct err *e;
};

MFS_PRINTF(2, 3)
static int jfail(const struct jp *j, const char *fmt, ...)
{
	const struct err *e = j->e;
	if (e->buf && e->len) {
		char what[128];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(what, sizeof what, fmt, ap);
		va_end(ap);
		snprintf(e->buf, e->len, "malformed JSON at column %zu: %s",
			 (size_t)(j->p - j->base) + 1, what);
	}
	return -MFS_E_PARSE;
}

static inline void jws(struct jp *j)
{
	while (j->p < j->end) {
		char c = *j->p;
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		j->p++;
	}
}

static int hex4(const char *s, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned char c = (unsigned char)s[i];
		unsigned d;
		if (is_digit(c))
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (unsigned)((c | 0x20) - 'a' + 10);
		else
			return -1;
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

/*
 * A string; j->p at its opening quote. On success j->p is past the closing
 * quote and *out holds its content: decoded in place when decode is set
 * (the decoded bytes never outgrow the escaped text), the raw text otherwise.
 */
static int json_string_slow(struct jp *j, int decode, struct field *out, char *start, char *s);

#if MFS_SWAR
/* High bit of each byte that ends the plain part of a string: '"', '\\', < 0x20. */
static inline uint64_t string_stops(uint64_t w)
{
	uint64_t ctl = ~(((w & LOW7) + ONES * 0x60) | w) & ~LOW7;
	return eq_mask(w, ONES * '"') | eq_mask(w, ONES * '\\') | ctl;
}
#endif

static inline int json_string(struct jp *j, int decode, struct field *out)
{
	char *start = j->p + 1, *s = start, *end = j->end;
	/* Fast path: up to the first quote, backslash or control byte. */
#if MFS_SWAR
	for (; end - s >= 8; s += 8) {
		uint64_t m = string_stops(load8(s));
		if (m) {
			s += __builtin_ctzll(m) >> 3;
			goto stop;
		}
	}
#endif
	while (s < end && *s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
		s++;
#if MFS_SWAR
stop:
#endif
	if (MFS_LIKELY(s < end && *s == '"')) {
		*out = (struct field){ start, (size_t)(s - start), 0 };
		j->p = s + 1;
		return 0;
	}
	return json_string_slow(j, decode, out, start, s);
}

/* From the first byte that is not plain text (or the end) on: escapes, errors. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int json_string_slow(struct jp *j, int decode, struct field *out, char *start, char *s)
{
	char *end = j->end;
	char *d = s; /* write position when decoding */
	for (;;) {
		if (s >= end) {
			j->p = s;
			return jfail(j, "unterminated string");
		}
		unsigned char c = (unsigned char)*s;
		if (c == '"')
			break;
		if (c < 0x20) {
			j->p = s;
			return jfail(j, "control character \\x%02x in a string", c);
		}
		if (c != '\\') {
			if (decode)
				*d = (char)c;
			d++;
			s++;
			continue;
		}
		if (s + 1 >= end) {
			j->p = s + 1;
			return jfail(j, "unterminated string");
		}
		char x;
		switch (s[1]) {
		case '"': x = '"'; break;
		case '\\': x = '\\'; break;
		case '/': x = '/'; break;
		case 'b': x = '\b'; break;
		case 'f': x = '\f'; break;
		case 'n': x = '\n'; break;
		case 'r': x = '\r'; break;
		case 't': x = '\t'; break;
		case 'u': {
			unsigned cp;
			if (end - s < 6 || hex4(s + 2, &cp) != 0) {
				j->p = s;
				return jfail(j, "bad \\u escape");
			}
			size_t used = 6;
			if (cp >= 0xDC00 && cp <= 0xDFFF) {
				j->p = s;
				return jfail(j, "lone low surrogate \\u%04X", cp);
			}
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				unsigned lo;
				if (end - s < 12 || s[6] != '\\' || s[7] != 'u' || hex4(s + 8, &lo) != 0 ||
				    lo < 0xDC00 || lo > 0xDFFF) {
					j->p = s;
					return jfail(j, "high surrogate \\u%04X without a low one", cp);
				}
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				used = 12;
			}
			char u[4];
			size_t nu;
			if (cp < 0x80) {
				u[0] = (char)cp;
				nu = 1;
			} else if (cp < 0x800) {
				u[0] = (char)(0xC0 | cp >> 6);
				u[1] = (char)(0x80 | (cp & 0x3F));
				nu = 2;
			} else if (cp < 0x10000) {
				u[0] = (char)(0xE0 | cp >> 12);
				u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
				u[2] = (char)(0x80 | (cp & 0x3F));
				nu = 3;
			} else {
				u[0] = (char)(0xF0 | cp >> 18);
				u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
				u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
				u[3] = (char)(0x80 | (cp & 0x3F));
				nu = 4;
			}
			if (decode)
				memcpy(d, u, nu);
			d += nu;
			s += used;
			continue;
		}
		default:
			j->p = s;
			return jfail(j, "bad escape \\%s", quote((char[QUOTE_BUF]){ 0 }, s + 1, 1));
		}
		if (decode)
			*d = x;
		d++;
		s += 2;
	}
	*out = (struct field){ start, decode ? (size_t)(d - start) : (size_t)(s - start), 0 };
	j->p = s + 1;
	return 0;
}

/* A number (RFC 8259 grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?). */
static inline int json_number(struct jp *j, struct field *out)
{
	char *s = j->p, *p = s, *end = j->end;
	if (p < end && *p == '-')
		p++;
	if (p >= end || !is_digit((unsigned char)*p)) {
		j->p = p;
		return jfail(j, "bad number");
	}
	if (*p == '0') {
		p++;
		if (p < end && is_digit((unsigned char)*p)) {
			j->p = p;
			return jfail(j, "leading zero in a number");
		}
	} else {
		while (p < end && is_digit((unsigned char)*p))
			p++;
	}
	if (p < end && *p == '.') {
		p++;
		if (p >= end || !is_digit((unsigned char)*p)) {
			j->p = p;
			return jfail(j, "no digit after the decimal point");
		}
		while (p < end && is_digit((unsigned char)*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit((unsigned char)*p)) {
			j->p = p;
			return jfail(j, "no digit in the exponent");
		}
		while (p < end && is_digit((unsigned char)*p))
			p++;
	}
	*out = (struct field){ s, (size_t)(p - s), 0 };
	j->p = p;
	return 0;
}

static int json_value(struct jp *j, int depth, int decode, enum jtype *type, struct field *out);

/* An object or array; j->p at '{' or '['. depth is the depth it opens. */
static int json_container(struct jp *j, int depth)
{
	if (depth > JSON_DEPTH_MAX)
		return jfail(j, "nested deeper than %d levels", JSON_DEPTH_MAX);
	int obj = *j->p == '{';
	char close = obj ? '}' : ']';
	enum jtype t;
	struct field f;
	int rc;
	j->p++;
	jws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		if (obj) {
			if (j->p >= j->end || *j->p != '"')
				return jfail(j, "expected a string key");
			if ((rc = json_string(j, 0, &f)) < 0)
				return rc;
			jws(j);
			if (j->p >= j->end || *j->p != ':')
				return jfail(j, "expected ':'");
			j->p++;
			jws(j);
		}
		if ((rc = json_value(j, depth, 0, &t, &f)) < 0)
			return rc;
		jws(j);
		if (j->p >= j->end)
			return jfail(j, obj ? "unterminated object" : "unterminated array");
		if (*j->p == ',') {
			j->p++;
			jws(j);
			continue;
		}
		if (*j->p == close) {
			j->p++;
			return 0;
		}
		return jfail(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

/* Any value; j->p at its first byte. depth is that of the enclosing container. */
static int json_value(struct jp *j, int depth, int decode, enum jtype *type, struct field *out)
{
	static const struct {
		const char *word;
		size_t len;
		enum jtype type;
	} lits[] = { { "true", 4, J_TRUE }, { "false", 5, J_FALSE }, { "null", 4, J_NULL } };
	char *s = j->p;
	int rc;
	if (s >= j->end)
		return jfail(j, "expected a value");
	switch (*s) {
	case '"':
		*type = J_STRING;
		return json_string(j, decode, out);
	case '{':
	case '[':
		*type = *s == '{' ? J_OBJECT : J_ARRAY;
		if ((rc = json_container(j, depth + 1)) < 0)
			return rc;
		*out = (struct field){ s, (size_t)(j->p - s), 0 };
		return 0;
	case 't':
	case 'f':
	case 'n':
		for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
			if (*s == lits[i].word[0] && (size_t)(j->end - s) >= lits[i].len &&
			    memcmp(s, lits[i].word, lits[i].len) == 0) {
				*type = lits[i].type;
				*out = (struct field){ s, lits[i].len, 0 };
				j->p = s + lits[i].len;
				return 0;
			}
		}
		return jfail(j, "unexpected character '%c'", *s);
	default:
		if (*s == '-' || is_digit((unsigned char)*s)) {
			*type = J_NUMBER;
			return json_number(j, out);
		}
		{
			char q[QUOTE_BUF];
			return jfail(j, "unexpected character \"%s\"", quote(q, s, 1));
		}
	}
}

enum { ROLE_USER, ROLE_ITEM, ROLE_RATING, ROLE_TIME, ROLE_TYPE, NROLES };

static const struct mfs_fields default_fields = { "user", "item", "rating", "time", "", 0, 0, 0,
						  { { 0 } }, { 0 } };

/*
 * Whether a decoded key is the field name (NUL-terminated, at most
 * MFS_FIELD_MAX bytes): 1 the whole name, 2 the part of it before a '.'
 * (the rest is looked for inside the key's value), 0 neither.
 */
static inline int key_match(const struct field *key, const char *name)
{
	if (key->n > MFS_FIELD_MAX || name[0] != (key->n ? key->p[0] : 0))
		return 0;
	for (size_t i = 1; i < key->n; i++)
		if (name[i] != key->p[i] || name[i] == 0)
			return 0;
	return name[key->n] == 0 ? 1 : name[key->n] == '.' ? 2 : 0;
}

/* A name no key can match (it is longer than MFS_FIELD_MAX, and longer keys
 * never match): the roles not looked for inside a nested object, so that the
 * key loop needs no test. */
static const char no_name[] = "\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1"
				 "\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1";

/* A value found for a role, and how many of its name's dots were nesting. */
struct jgot {
	enum jtype type;
	unsigned splits;
	struct field v;
};

/*
 * The members of an object; j->p at its '{', depth its own depth. rem[r] is
 * what is left of role r's name to match at this level (no_name: r is not
 * looked for here), splits how many dots of the names were taken as nesting to get
 * here. A key matching a whole remaining name gives its value to the role if
 * no match with fewer splits was found (equal ones: the last wins); a key
 * matching the part before a dot, with an object value, is searched for the
 * rest. Arrays are never entered.
 */
static int json_object_dotted(struct jp *j, int depth, const char *const rem[NROLES],
			      unsigned splits, struct jgot got[NROLES]);

/* dotted 0: no name holds a dot (the common case, compiled apart: no nesting
 * and no splits to compare). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int json_object(struct jp *j, int depth, const char *const rem[NROLES],
			      unsigned splits, struct jgot got[NROLES], const int dotted)
{
	int rc;
	if (depth > JSON_DEPTH_MAX)
		return jfail(j, "nested deeper than %d levels", JSON_DEPTH_MAX);
	j->p++;
	jws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		struct field key, val;
		enum jtype t;
		if (j->p >= j->end || *j->p != '"')
			return jfail(j, "expected a string key");
		if ((rc = json_string(j, 1, &key)) < 0)
			return rc;
		unsigned whole = 0, inner = 0;
		for (int r = 0; r < NROLES; r++) {
			int m = key_match(&key, rem[r]);
			if (m) {
				if (m == 1)
					whole |= 1u << r;
				else
					inner |= 1u << r;
			}
		}
		jws(j);
		if (j->p >= j->end || *j->p != ':')
			return jfail(j, "expected ':'");
		j->p++;
		jws(j);
		if (j->p < j->end && *j->p == '"') { /* the common cases inline */
			t = J_STRING;
			rc = json_string(j, whole != 0, &val);
		} else if (j->p < j->end && (is_digit((unsigned char)*j->p) || *j->p == '-')) {
			t = J_NUMBER;
			rc = json_number(j, &val);
		} else if (dotted && inner != 0 && j->p < j->end && *j->p == '{') {
			const char *sub[NROLES];
			for (int r = 0; r < NROLES; r++)
				sub[r] = inner & (1u << r) ? rem[r] + key.n + 1 : no_name;
			char *s0 = j->p;
			t = J_OBJECT;
			rc = json_object_dotted(j, depth + 1, sub, splits + 1, got);
			val = (struct field){ s0, (size_t)(j->p - s0), 0 };
		} else {
			rc = json_value(j, depth, whole != 0, &t, &val);
		}
		if (rc < 0)
			return rc;
		if (whole)
			for (int r = 0; r < NROLES; r++) /* a repeated key: the last one wins */
				if ((whole & (1u << r)) && (!dotted || splits <= got[r].splits))
					got[r] = (struct jgot){ t, splits, val };
		jws(j);
		if (j->p >= j->end)
			return jfail(j, "unterminated object");
		if (*j->p == ',') {
			j->p++;
			jws(j);
			continue;
		}
		if (*j->p == '}') {
			j->p++;
			return 0;
		}
		return jfail(j, "expected ',' or '}'");
	}
}

#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int json_object_dotted(struct jp *j, int depth, const char *const rem[NROLES],
			      unsigned splits, struct jgot got[NROLES])
{
	return json_object(j, depth, rem, splits, got, 1);
}

/*
 * The top-level keys of the object on line, quoted and comma-separated into
 * buf (cut with "..." when they do not fit): the reason for a missing field
 * names what there is, so that --fields can be written from it. Error path
 * only. Returns 0, or -1 when the object cannot be walked again (a key the
 * failed parse decoded in place): then buf says nothing.
 */
static int object_keys(char *line, size_t len, char *buf, size_t blen)
{
	const struct err quiet = { NULL, 0 };
	struct jp j = { line, line, line + len, &quiet };
	size_t o = 0;
	buf[0] = 0;
	jws(&j);
	if (j.p >= j.end || *j.p != '{')
		return -1;
	j.p++;
	jws(&j);
	if (j.p < j.end && *j.p == '}')
		return 0;
	for (int k = 0;; k++) {
		struct field key, val;
		enum jtype t;
		char q[QUOTE_BUF];
		if (j.p >= j.end || *j.p != '"' || json_string(&j, 0, &key) < 0)
			goto fail;
		for (size_t i = 0; i < key.n; i++)
			if ((unsigned char)key.p[i] < 0x20)
				goto fail; /* decoded in place: not the key as written */
		if (o + 8 < blen) {
			int w = snprintf(buf + o, blen - o, "%s\"%s\"", k ? ", " : "",
					 quote(q, key.p, key.n));
			if (w < 0 || o + (size_t)w + 8 >= blen) {
				snprintf(buf + o, blen - o, "%s...", k ? ", " : "");
				o = blen; /* full: walk on without writing */
			} else {
				o += (size_t)w;
			}
		}
		jws(&j);
		if (j.p >= j.end || *j.p != ':')
			goto fail;
		j.p++;
		jws(&j);
		if (json_value(&j, 1, 0, &t, &val) < 0)
			goto fail;
		jws(&j);
		if (j.p < j.end && *j.p == '}')
			return 0;
		if (j.p >= j.end || *j.p != ',')
			goto fail;
		j.p++;
		jws(&j);
	}
fail:
	buf[0] = 0;
	return -1;
}

static int parse_jsonl(const struct err *e, const struct mfs_fields *f, char *line, size_t len,
		       mfs_event *ev)
{
	const int typed = f->type[0] != 0;
	const char *const names[NROLES] = { f->user, f->item, typed ? no_name : f->rating, f->time,
					    typed ? f->type : no_name };
	struct jgot got[NROLES];
	struct jp j = { line, line, line + len, e };
	char q[QUOTE_BUF];
	int rc;

	for (int r = 0; r < NROLES; r++)
		got[r] = (struct jgot){ J_NONE, UINT32_MAX, { NULL, 0, 0 } };
	jws(&j);
	if (j.p >= j.end || *j.p != '{')
		return jfail(&j, "expected a JSON object");
	rc = f->dotted ? json_object_dotted(&j, 1, names, 0, got) : json_object(&j, 1, names, 0, got, 0);
	if (rc < 0)
		return rc;
	jws(&j);
	if (j.p != j.end)
		return jfail(&j, "unexpected text after the object");

	static const char *const role_name[NROLES] = { "user", "item", "rating", "time", "type" };
	for (int r = 0; r < NROLES; r++) {
		if (r != ROLE_TIME && r != (typed ? ROLE_RATING : ROLE_TYPE) &&
		    !(r == ROLE_RATING && f->unrated) && got[r].type == J_NONE) {
			char keys[160];
			int walked = object_keys(line, len, keys, sizeof keys) == 0;
			return fail(e, "missing \"%s\" field (%s%s%sname the fields with --fields "
				    "%s=KEY,...)",
				    quote(q, names[r], strnlen(names[r], MFS_FIELD_MAX + 1)),
				    !walked ? "" : keys[0] ? "the object has the keys " : "the object has no keys",
				    walked ? keys : "", walked ? "; " : "", role_name[r]);
		}
	}
	for (int r = ROLE_USER; r <= ROLE_ITEM; r++) {
		if (got[r].type != J_STRING && got[r].type != J_NUMBER)
			return fail(e, "%s ID \"%s\" is not a string or a number", role_name[r],
				    quote(q, got[r].v.p, got[r].v.n));
		if ((rc = check_id(e, role_name[r], got[r].v.n)) < 0)
			return rc;
	}
	struct field *v = &got[ROLE_RATING].v;
	if (typed) {
		/* the rating is the weight of the event's type */
		v = &got[ROLE_TYPE].v;
		if (got[ROLE_TYPE].type != J_STRING && got[ROLE_TYPE].type != J_NUMBER)
			return fail(e, "event type \"%s\" is not a string", quote(q, v->p, v->n));
		int t = 0;
		while (t < f->ntypes && !(strlen(f->tname[t]) == v->n &&
					  memcmp(f->tname[t], v->p, v->n) == 0))
			t++;
		if (t == f->ntypes)
			return fail(e, "unknown event type \"%s\" (no weight for it in --weights)",
				    quote(q, v->p, v->n));
		ev->rating = f->tweight[t];
	} else if (got[ROLE_RATING].type == J_NONE) {
		ev->rating = 1.0f; /* unrated (checked above): an interaction weighs 1 */
	} else {
		if (got[ROLE_RATING].type != J_STRING && got[ROLE_RATING].type != J_NUMBER)
			return fail(e, "rating \"%s\" is not a number", quote(q, v->p, v->n));
		if ((rc = parse_rating(e, v->p, v->n, &ev->rating)) < 0)
			return rc;
	}
	ev->time = 0;
	v = &got[ROLE_TIME].v;
	switch (got[ROLE_TIME].type) {
	case J_NONE:
	case J_NULL:
		break;
	case J_STRING:
	case J_NUMBER:
		if ((rc = parse_time(e, v->p, v->n, &ev->time)) < 0)
			return rc;
		break;
	default:
		return fail(e, "time \"%s\" is not a number", quote(q, v->p, v->n));
	}
	ev->user = got[ROLE_USER].v.p;
	ev->user_len = (uint32_t)got[ROLE_USER].v.n;
	ev->item = got[ROLE_ITEM].v.p;
	ev->item_len = (uint32_t)got[ROLE_ITEM].v.n;
	return 1;
}

/* ===================================================================== */
/* The interface                                                         */
/* ===================================================================== */

int mfs_parse_line(int format, const struct mfs_fields *f, char *line, size_t len,
		   mfs_event *ev, char *reason, size_t rlen)
{
	const struct err e = { reason, rlen };
	struct field fl[NFIELDS];
	size_t k;

	if (!ev || (!line && len))
		return fail_code(&e, MFS_E_INVAL, "no line or no event");
	if (len && line[len - 1] == '\r')
		len--;
	if (len == 0 || (is_space((unsigned char)line[0]) && blank_line(line, len)))
		return 0;

	switch (format) {
	case MFS_FORMAT_TSV:
		k = split_byte(line, len, '\t', 0, fl);
		return event_from_fields(&e, fl, k, f && f->unrated, ev);
	case MFS_FORMAT_DAT:
		k = split_dat(line, len, fl);
		return event_from_fields(&e, fl, k, f && f->unrated, ev);
	case MFS_FORMAT_SSV:
		k = split_ssv(line, len, fl);
		return event_from_fields(&e, fl, k, f && f->unrated, ev);
	case MFS_FORMAT_CSV:
		k = split_byte(line, len, ',', 1, fl);
		if (MFS_UNLIKELY(k == SIZE_MAX)) { /* quotes: the full RFC 4180 splitter */
			long n = split_csv(&e, line, len, fl);
			if (n < 0)
				return (int)n;
			k = (size_t)n;
			for (size_t i = 0; i < NFIELDS && i < k; i++)
				if (fl[i].esc)
					fl[i].n = csv_unescape((char *)fl[i].p, fl[i].n);
		}
		return event_from_fields(&e, fl, k, f && f->unrated, ev);
	case MFS_FORMAT_JSONL:
		return parse_jsonl(&e, f ? f : &default_fields, line, len, ev);
	default:
		return fail_code(&e, MFS_E_INVAL, "unknown format %d", format);
	}
}

int mfs_parse_is_header(int format, const char *line, size_t len)
{
	struct field fl[NFIELDS];
	long k;
	double v;

	if (!line)
		return 0;
	if (len && line[len - 1] == '\r')
		len--;
	if (len == 0 || blank_line(line, len))
		return 0;
	switch (format) {
	case MFS_FORMAT_TSV:
		k = (long)split_byte(line, len, '\t', 0, fl);
		break;
	case MFS_FORMAT_DAT:
		k = (long)split_dat(line, len, fl);
		break;
	case MFS_FORMAT_SSV:
		k = (long)split_ssv(line, len, fl);
		break;
	case MFS_FORMAT_CSV:
		k = split_csv(NULL, line, len, fl);
		break;
	default:
		return 0;
	}
	if (k < 3 || k > 4)
		return 0;
	const char *s = fl[2].p;
	size_t n = fl[2].n;
	trim(&s, &n);
	return mfs_parse_number(s, n, &v) != 0;
}

int mfs_parse_detect(const char *line, size_t len)
{
	if (!line)
		return -MFS_E_PARSE;
	const char *p = line, *end = line + len;
	while (p < end && is_space((unsigned char)*p))
		p++;
	if (p == end)
		return -MFS_E_PARSE;
	if (*p == '{')
		return MFS_FORMAT_JSONL;
	if (memchr(line, '\t', len))
		return MFS_FORMAT_TSV;
	for (const char *c = line; (c = memchr(c, ':', (size_t)(end - c))) != NULL; c++)
		if (c + 1 < end && c[1] == ':')
			return MFS_FORMAT_DAT;
	if (memchr(line, ',', len))
		return MFS_FORMAT_CSV;
	struct field fl[NFIELDS];
	size_t k = split_ssv(line, len, fl); /* no TAB here: fields between spaces */
	if (k == 3 || k == 4)
		return MFS_FORMAT_SSV;
	return -MFS_E_PARSE;
}

int mfs_fields_parse(struct mfs_fields *f, const char *spec, char *reason, size_t rlen)
{
	const struct err e = { reason, rlen };
	struct mfs_fields t = default_fields;
	char q[QUOTE_BUF];

	if (!f)
		return fail_code(&e, MFS_E_INVAL, "no fields");
	for (const char *p = spec; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		const char *eq = memchr(p, '=', n);
		if (n == 0)
			return fail_code(&e, MFS_E_INVAL, "empty entry in --fields");
		if (n == 7 && memcmp(p, "unrated", 7) == 0) {
			/* implicit feedback: the rating is optional */
			t.unrated = 1;
			p = comma ? comma + 1 : p + n;
			if (comma && !*p)
				return fail_code(&e, MFS_E_INVAL, "empty entry in --fields");
			continue;
		}
		if (!eq)
			return fail_code(&e, MFS_E_INVAL,
					 "missing '=' in --fields entry \"%s\" (expected role=name)",
					 quote(q, p, n));
		size_t klen = (size_t)(eq - p);
		const char *name = eq + 1;
		size_t nlen = n - klen - 1;
		char *dst;
		const char *role;
		if (klen > 7 && memcmp(p, "weight:", 7) == 0) {
			/* an event type's weight */
			if (klen - 7 > MFS_TYPE_MAX)
				return fail_code(&e, MFS_E_INVAL, "event type \"%s\" longer than %d bytes",
						 quote(q, p + 7, klen - 7), MFS_TYPE_MAX);
			if (t.ntypes == MFS_TYPES_MAX)
				return fail_code(&e, MFS_E_INVAL, "more than %d event types", MFS_TYPES_MAX);
			snprintf(t.tname[t.ntypes], MFS_TYPE_MAX + 1, "%.*s", (int)(klen - 7), p + 7);
			double wd = 0; /* the locale-independent parser, as for ratings */
			if (nlen == 0 || mfs_parse_number(name, nlen, &wd) < 0 || !(wd >= 0.0) ||
			    !isfinite((float)wd)) {
				char q2[QUOTE_BUF];
				return fail_code(&e, MFS_E_INVAL,
						 "weight \"%s\" of event type \"%s\" is not a number >= 0",
						 quote(q, name, nlen), quote(q2, p + 7, klen - 7));
			}
			t.tweight[t.ntypes++] = (float)wd;
			p = comma ? comma + 1 : p + n;
			if (comma && !*p)
				return fail_code(&e, MFS_E_INVAL, "empty entry in --fields");
			continue;
		}
		if (klen == 4 && memcmp(p, "user", 4) == 0)
			dst = t.user, role = "user";
		else if (klen == 4 && memcmp(p, "item", 4) == 0)
			dst = t.item, role = "item";
		else if (klen == 6 && memcmp(p, "rating", 6) == 0)
			dst = t.rating, role = "rating";
		else if (klen == 4 && memcmp(p, "time", 4) == 0)
			dst = t.time, role = "time";
		else if (klen == 4 && memcmp(p, "type", 4) == 0)
			dst = t.type, role = "type";
		else
			return fail_code(&e, MFS_E_INVAL,
					 "unknown field \"%s\" in --fields (expected user, item, rating, time, type)",
					 quote(q, p, klen));
		if (nlen == 0)
			return fail_code(&e, MFS_E_INVAL, "empty name for %s in --fields", role);
		if (nlen > MFS_FIELD_MAX)
			return fail_code(&e, MFS_E_INVAL, "name for %s in --fields longer than %d bytes",
					 role, MFS_FIELD_MAX);
		memcpy(dst, name, nlen);
		dst[nlen] = 0;
		p = comma ? comma + 1 : p + n;
		if (comma && !*p)
			return fail_code(&e, MFS_E_INVAL, "empty entry in --fields");
	}
	if (t.type[0] && t.ntypes == 0)
		return fail_code(&e, MFS_E_INVAL, "type=%s in --fields needs weights (--weights TYPE=W,...)",
				 quote(q, t.type, strlen(t.type)));
	t.dotted = strchr(t.user, '.') || strchr(t.item, '.') || strchr(t.rating, '.') ||
		   strchr(t.time, '.') || strchr(t.type, '.');
	*f = t;
	return 0;
}

/* ===================================================================== */
/* Format names (public)                                                 */
/* ===================================================================== */

static const char *const format_names[] = {
	[MFS_FORMAT_AUTO] = "auto", [MFS_FORMAT_TSV] = "tsv", [MFS_FORMAT_CSV] = "csv",
	[MFS_FORMAT_DAT] = "dat",   [MFS_FORMAT_JSONL] = "jsonl", [MFS_FORMAT_SSV] = "ssv",
};

MFS_API int mfs_format_parse(const char *name)
{
	if (name)
		for (int i = 0; i < (int)(sizeof format_names / sizeof format_names[0]); i++)
			if (strcmp(name, format_names[i]) == 0)
				return i;
	return -MFS_E_INVAL;
}

MFS_API const char *mfs_format_name(int format)
{
	if (format < 0 || format >= (int)(sizeof format_names / sizeof format_names[0]))
		return "unknown";
	return format_names[format];
}
