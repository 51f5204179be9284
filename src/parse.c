/*
 * parse.c - records (one line of text) -> events: tsv, csv, dat, ssv (jsonl
 * is parse_json.c), and the locale-independent number parser.
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
#include "parse_internal.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Printable, one-line rendering of s[0..n): '"' and '\\' escaped, other
 * bytes outside 0x20..0x7e as \xNN, cut after QUOTE_MAX bytes with "...". */
const char *mfs_parse_quote(char dst[QUOTE_BUF], const char *s, size_t n)
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

/* Significant digits kept for strtod in the slow path. A midpoint between two
 * doubles has at most 767 significant decimal digits, so 800 digits plus a
 * non-zero "sticky" digit standing for everything dropped rounds exactly as
 * the full text would. */
#define SLOW_DIGITS 800


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
int mfs_parse_number_slow(const unsigned char *ip, size_t nint, const unsigned char *fp,
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

int mfs_parse_number(const char *s, size_t len, double *out)
{
	if (!s || !out)
		return -1;
	return parse_number(s, len, out);
}

/* ===================================================================== */
/* Fields shared by every format                                         */
/* ===================================================================== */

int mfs_parse_check_id(const struct err *e, const char *role, size_t n)
{
	if (MFS_UNLIKELY(n == 0))
		return fail(e, "empty %s ID", role);
	if (MFS_UNLIKELY(n > MFS_ID_MAX))
		return fail(e, "%s ID longer than %d bytes", role, MFS_ID_MAX);
	return 0;
}

int mfs_parse_rating(const struct err *e, const char *s, size_t n, float *out)
{
	char q[QUOTE_BUF];
	double v;
	trim(&s, &n);
	if (MFS_UNLIKELY(parse_number(s, n, &v) != 0))
		return fail(e, "rating \"%s\" is not a number", mfs_parse_quote(q, s, n));
	float r = (float)v;
	if (MFS_UNLIKELY(isinf(r)))
		return fail(e, "rating \"%s\" is out of range", mfs_parse_quote(q, s, n));
	*out = r;
	return 0;
}

/* An empty time (after trimming) is an absent one: 0. */
int mfs_parse_time(const struct err *e, const char *s, size_t n, int64_t *out)
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
			return fail(e, "time \"%s\" is out of range", mfs_parse_quote(q, s, n));
	}
	/* A decimal: truncate toward zero. */
	double v;
	if (mfs_parse_number(s, n, &v) != 0)
		return fail(e, "time \"%s\" is not a number", mfs_parse_quote(q, s, n));
	v = trunc(v);
	if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0))
		return fail(e, "time \"%s\" is out of range", mfs_parse_quote(q, s, n));
	*out = (int64_t)v;
	return 0;
}

/* unrated: a line of 2 fields (user, item) is an event of rating 1. */
int mfs_parse_event_fields(const struct err *e, const struct field *f, size_t k, int unrated,
			     mfs_event *ev)
{
	int rc;
	if (MFS_UNLIKELY(k < 3 || k > 4) && !(unrated && k == 2))
		return fail(e, unrated ? "expected 2 to 4 fields, found %zu"
				       : "expected 3 or 4 fields, found %zu", k);
	if ((rc = mfs_parse_check_id(e, "user", f[0].n)) < 0 || (rc = mfs_parse_check_id(e, "item", f[1].n)) < 0)
		return rc;
	if (k == 2)
		ev->rating = 1.0f;
	else if ((rc = mfs_parse_rating(e, f[2].p, f[2].n, &ev->rating)) < 0)
		return rc;
	ev->time = 0;
	if (k == 4 && (rc = mfs_parse_time(e, f[3].p, f[3].n, &ev->time)) < 0)
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

/* The field names when none are given. */
static const struct mfs_fields default_fields = { "user", "item", "rating", "time", "", 0, 0, 0,
						  { { 0 } }, { 0 } };

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
		return mfs_parse_event_fields(&e, fl, k, f && f->unrated, ev);
	case MFS_FORMAT_DAT:
		k = split_dat(line, len, fl);
		return mfs_parse_event_fields(&e, fl, k, f && f->unrated, ev);
	case MFS_FORMAT_SSV:
		k = split_ssv(line, len, fl);
		return mfs_parse_event_fields(&e, fl, k, f && f->unrated, ev);
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
		return mfs_parse_event_fields(&e, fl, k, f && f->unrated, ev);
	case MFS_FORMAT_JSONL:
		return mfs_parse_jsonl(&e, f ? f : &default_fields, line, len, ev);
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
					 mfs_parse_quote(q, p, n));
		size_t klen = (size_t)(eq - p);
		const char *name = eq + 1;
		size_t nlen = n - klen - 1;
		char *dst;
		const char *role;
		if (klen > 7 && memcmp(p, "weight:", 7) == 0) {
			/* an event type's weight */
			if (klen - 7 > MFS_TYPE_MAX)
				return fail_code(&e, MFS_E_INVAL, "event type \"%s\" longer than %d bytes",
						 mfs_parse_quote(q, p + 7, klen - 7), MFS_TYPE_MAX);
			if (t.ntypes == MFS_TYPES_MAX)
				return fail_code(&e, MFS_E_INVAL, "more than %d event types", MFS_TYPES_MAX);
			snprintf(t.tname[t.ntypes], MFS_TYPE_MAX + 1, "%.*s", (int)(klen - 7), p + 7);
			double wd = 0; /* the locale-independent parser, as for ratings */
			if (nlen == 0 || mfs_parse_number(name, nlen, &wd) < 0 || !(wd >= 0.0) ||
			    !isfinite((float)wd)) {
				char q2[QUOTE_BUF];
				return fail_code(&e, MFS_E_INVAL,
						 "weight \"%s\" of event type \"%s\" is not a number >= 0",
						 mfs_parse_quote(q, name, nlen), mfs_parse_quote(q2, p + 7, klen - 7));
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
					 mfs_parse_quote(q, p, klen));
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
				 mfs_parse_quote(q, t.type, strlen(t.type)));
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

