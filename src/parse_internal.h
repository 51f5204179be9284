/*
 * parse_internal.h - what the record parsers share (parse.c: numbers, ids,
 * the delimited formats, dispatch; parse_json.c: jsonl): reasons, byte and
 * SWAR helpers, the number fast path (inline: it is the hot path of both),
 * a field, and the calls that cross the two files. Internal.
 */
#ifndef MFS_PARSE_INTERNAL_H
#define MFS_PARSE_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "parse.h"

/* ===================================================================== */
/* Reasons                                                               */
/* ===================================================================== */

#define QUOTE_MAX 32                    /* input bytes quoted in a reason */
#define QUOTE_BUF (QUOTE_MAX * 4 + 8)   /* worst case: every byte as \xNN, "..." */


/* Where a reason goes. */
struct err {
	char *buf;
	size_t len;
};

MFS_PRINTF(3, 4)
static inline int fail_code(const struct err *e, int code, const char *fmt, ...)
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

static inline int blank_line(const char *s, size_t n)
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

/* A field of a delimited line. esc: a quoted csv field holding "" pairs. */
struct field {
	const char *p;
	size_t n;
	int esc;
};

#define NFIELDS 4

const char *mfs_parse_quote(char dst[QUOTE_BUF], const char *s, size_t n);
int mfs_parse_number_slow(const unsigned char *ip, size_t nint, const unsigned char *fp,
		       size_t nfrac, int neg, int64_t exp, double *out);
int mfs_parse_check_id(const struct err *e, const char *role, size_t n);
int mfs_parse_rating(const struct err *e, const char *s, size_t n, float *out);
int mfs_parse_time(const struct err *e, const char *s, size_t n, int64_t *out);
int mfs_parse_event_fields(const struct err *e, const struct field *f, size_t k, int unrated,
			     mfs_event *ev);
int mfs_parse_jsonl(const struct err *e, const struct mfs_fields *f, char *line, size_t len,
		       mfs_event *ev);

/* Exponents are saturated here while scanning: beyond it every value is 0 or inf. */
#define EXP_SAT 1000000000LL

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
	return mfs_parse_number_slow(ip, nint, fp, nfrac, neg, exp, out);
}

#endif
