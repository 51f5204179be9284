/* test_parse.c - records -> events: tsv, csv, dat, jsonl, numbers, --fields. */
#include "support.h"

#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                 */
/* ------------------------------------------------------------------------ */

/* The last parsed line lives in an exact-size heap copy, so that ASan sees
 * any read past its end, and the event's IDs can be checked to point into it. */
static char *line_copy;
static size_t line_len;
static mfs_event ev;
static char reason[256];

static int parse_n(int fmt, const struct mfs_fields *f, const char *s, size_t n)
{
	free(line_copy);
	line_copy = malloc(n ? n : 1);
	assert_non_null(line_copy);
	memcpy(line_copy, s, n);
	line_len = n;
	memset(&ev, 0, sizeof ev);
	ev.rating = -12345.0f;
	ev.time = -12345;
	memset(reason, 0, sizeof reason);
	return mfs_parse_line(fmt, f, line_copy, n, &ev, reason, sizeof reason);
}

static int parse(int fmt, const char *s)
{
	return parse_n(fmt, NULL, s, strlen(s));
}

static int teardown(void **state)
{
	(void)state;
	free(line_copy);
	line_copy = NULL;
	return 0;
}

/* An ID equals want[0..wn) and lies inside the parsed line. */
static void check_id(const char *p, uint32_t n, const char *want, size_t wn)
{
	assert_non_null(p);
	assert_true(p >= line_copy && p + n <= line_copy + line_len);
	assert_int_equal(n, wn);
	assert_memory_equal(p, want, wn);
}

#define assert_user(s) check_id(ev.user, ev.user_len, (s), strlen(s))
#define assert_item(s) check_id(ev.item, ev.item_len, (s), strlen(s))

static void assert_event(const char *user, const char *item, double rating, int64_t time)
{
	assert_user(user);
	assert_item(item);
	assert_true(ev.rating == (float)rating);
	assert_int_equal(ev.time, time);
}

static void assert_printable(const char *s)
{
	for (; *s; s++)
		assert_true(*s >= 0x20 && *s < 0x7f);
}

/* Parse must fail with exactly this reason. */
static void expect_error(int fmt, const char *line, const char *why)
{
	int rc = parse(fmt, line);
	if (rc != -MFS_E_PARSE || strcmp(reason, why) != 0)
		print_error("line \"%s\": rc %d reason \"%s\", expected \"%s\"\n", line, rc, reason, why);
	assert_int_equal(rc, -MFS_E_PARSE);
	assert_string_equal(reason, why);
}

/* Parse must fail with a reason containing this text. */
static void expect_error_has(int fmt, const char *line, const char *part)
{
	int rc = parse(fmt, line);
	if (rc != -MFS_E_PARSE || !strstr(reason, part))
		print_error("line \"%s\": rc %d reason \"%s\", expected \"...%s...\"\n", line, rc,
			    reason, part);
	assert_int_equal(rc, -MFS_E_PARSE);
	assert_non_null(strstr(reason, part));
	assert_printable(reason);
}

static double num(const char *s)
{
	double v = -999.0;
	assert_int_equal(mfs_parse_number(s, strlen(s), &v), 0);
	return v;
}

static int num_fails(const char *s, size_t n)
{
	double v = 42.0;
	int rc = mfs_parse_number(s, n, &v);
	assert_true(v == 42.0); /* untouched on failure */
	return rc;
}

/* A seeded generator (splitmix64). */
static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15u);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
	return z ^ (z >> 31);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = 0;
	return s;
}

/* ------------------------------------------------------------------------ */
/* mfs_parse_number                                                         */
/* ------------------------------------------------------------------------ */

static void parse_number__accepts_integers_and_decimals(void **state)
{
	(void)state;
	assert_true(num("3") == 3.0);
	assert_true(num("3.5") == 3.5);
	assert_true(num("-0.25") == -0.25);
	assert_true(num("+4") == 4.0);
	assert_true(num("5.") == 5.0);
	assert_true(num(".5") == 0.5);
	assert_true(num("-.5") == -0.5);
	assert_true(num("007") == 7.0);
	assert_true(num("1e3") == 1000.0);
	assert_true(num("1.5E-2") == 0.015);
	assert_true(num("2e+2") == 200.0);
	assert_true(num("0.1") == 0.1);
	assert_true(num("4.35") == 4.35);
	double z = num("-0");
	assert_true(z == 0.0 && signbit(z));
	assert_true(num("0e999999999999999999999") == 0.0);
}

static void parse_number__rejects_bad_grammar(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",    "-",    "+",    ".",   "-.",  "e5",   "1e",  "1e+",  "1e-", "nan",  "NaN",
		"inf", "-inf", "Infinity", "0x10", "0X1p3", "1 2", " 1", "1 ", "1.2.3", "1,5", "--1",
		"+-1", "1e5.5", "1ee5", "1.e", "3a", "a3", "\t1", "1\r",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (num_fails(bad[i], strlen(bad[i])) != -1)
			print_error("accepted \"%s\"\n", bad[i]);
		assert_int_equal(num_fails(bad[i], strlen(bad[i])), -1);
	}
	/* an embedded NUL is junk, not an end */
	assert_int_equal(num_fails("1\0" "5", 3), -1);
	/* the length bounds the text: "12" is read as "1" */
	double v = 0;
	assert_int_equal(mfs_parse_number("12", 1, &v), 0);
	assert_true(v == 1.0);
	assert_int_equal(mfs_parse_number(NULL, 0, &v), -1);
}

static void parse_number__rejects_overflow_to_inf(void **state)
{
	(void)state;
	assert_int_equal(num_fails("1e999", 5), -1);
	assert_int_equal(num_fails("-1e309", 6), -1);
	assert_int_equal(num_fails("2e308", 5), -1);
	assert_int_equal(num_fails("1e99999999999999999999999", 25), -1);
	char *big = repeat('9', 400);
	assert_int_equal(num_fails(big, 400), -1);
	free(big);
	/* the largest double is fine, underflow is zero, not an error */
	assert_true(num("1.7976931348623157e308") == DBL_MAX);
	assert_true(num("1e-999") == 0.0);
	assert_true(num("4.9406564584124654e-324") == 4.9406564584124654e-324);
}

static void parse_number__rounds_like_strtod(void **state)
{
	(void)state;
	static const char *const cases[] = {
		"9007199254740993", /* 2^53 + 1: a tie, to even */
		"9007199254740995", "3.14159265358979323846264338327950288",
		"123456789012345678901234567890", "2.2250738585072011e-308", "0.30000000000000004",
		"1e22", "1e23", "8.98846567431158e307", "123456789012345678", "1234567890123456789",
		"12345678901234567890", "0.000000000000000000000000000001", "5e-324", "2.5e-324",
		"179769313486231580793728971405301e276", "7.038531e-26", "1.00000000000000011102230246251565404236316680908203125",
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		double want = strtod(cases[i], NULL);
		if (num(cases[i]) != want)
			print_error("%s: %.17g != %.17g\n", cases[i], num(cases[i]), want);
		assert_true(num(cases[i]) == want);
	}
	/* seeded random decimals of every shape the fast path takes and some it does not */
	for (int i = 0; i < 200000; i++) {
		char s[64];
		size_t o = 0;
		uint64_t r = rnd();
		if (r & 1)
			s[o++] = '-';
		int nint = (int)(rnd() % 12), nfrac = (int)(rnd() % 14);
		for (int k = 0; k < nint; k++)
			s[o++] = (char)('0' + rnd() % 10);
		if (nfrac || !nint) {
			s[o++] = '.';
			if (!nint && !nfrac)
				nfrac = 1;
			for (int k = 0; k < nfrac; k++)
				s[o++] = (char)('0' + rnd() % 10);
		}
		if (r & 2)
			o += (size_t)snprintf(s + o, sizeof s - o, "e%d", (int)(rnd() % 61) - 30);
		s[o] = 0;
		double got = 0, want = strtod(s, NULL);
		assert_int_equal(mfs_parse_number(s, o, &got), 0);
		if (got != want || signbit(got) != signbit(want))
			print_error("%s: %.17g != %.17g\n", s, got, want);
		assert_true(got == want && signbit(got) == signbit(want));
	}
}

static void parse_number__handles_very_long_digit_strings(void **state)
{
	(void)state;
	size_t n = (size_t)1 << 20;
	double v = 0;

	/* 1 MiB of leading zeros, then a 1 */
	char *s = repeat('0', n + 1);
	s[n] = '1';
	assert_int_equal(mfs_parse_number(s, n + 1, &v), 0);
	assert_true(v == 1.0);

	/* 0.(2000 zeros)1e2002 == 1 */
	char *t = malloc(4100);
	assert_non_null(t);
	size_t o = 0;
	t[o++] = '0';
	t[o++] = '.';
	memset(t + o, '0', 2000);
	o += 2000;
	t[o++] = '1';
	o += (size_t)sprintf(t + o, "e2001");
	assert_int_equal(mfs_parse_number(t, o, &v), 0);
	assert_true(v == 1.0);

	/* a tie broken by a digit 1000 places later: 2^53+1 rounds to even
	 * (…992), but 2^53+1 plus a tiny bit must round up (…994) */
	o = (size_t)sprintf(t, "9007199254740993.");
	memset(t + o, '0', 1000);
	o += 1000;
	assert_int_equal(mfs_parse_number(t, o, &v), 0);
	assert_true(v == 9007199254740992.0);
	t[o++] = '1';
	assert_int_equal(mfs_parse_number(t, o, &v), 0);
	assert_true(v == 9007199254740994.0);
	free(t);

	/* past the fast path: zeros stay (signed) zeros, tiny values underflow to 0 */
	v = 1;
	assert_int_equal(mfs_parse_number("000000000000000000000000000000", 30, &v), 0);
	assert_true(v == 0.0 && !signbit(v));
	assert_int_equal(mfs_parse_number("-0.0000000000000000000000000000", 31, &v), 0);
	assert_true(v == 0.0 && signbit(v));
	assert_int_equal(mfs_parse_number("12345678901234567890e-200000", 28, &v), 0);
	assert_true(v == 0.0);

	/* 1 MiB of digits overflows */
	memset(s, '7', n);
	assert_int_equal(num_fails(s, n), -1);
	free(s);
}

/* ------------------------------------------------------------------------ */
/* tsv                                                                      */
/* ------------------------------------------------------------------------ */

static void parse_tsv__accepts_three_fields(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_TSV, "196\t242\t3"), 1);
	assert_event("196", "242", 3.0, 0);
}

static void parse_tsv__accepts_four_fields_with_time(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_TSV, "196\t242\t3.5\t881250949"), 1);
	assert_event("196", "242", 3.5, 881250949);
	assert_int_equal(parse(MFS_FORMAT_TSV, "a\tb\t-1\t-42"), 1);
	assert_event("a", "b", -1.0, -42);
}

static void parse_tsv__ignores_trailing_cr(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_TSV, "1\t2\t4\t5\r"), 1);
	assert_event("1", "2", 4.0, 5);
	assert_int_equal(parse(MFS_FORMAT_TSV, "1\t2\t4\r"), 1);
	assert_event("1", "2", 4.0, 0);
	/* only at the end: a CR inside an ID is a byte of the ID */
	assert_int_equal(parse(MFS_FORMAT_TSV, "1\r\t2\t4"), 1);
	assert_event("1\r", "2", 4.0, 0);
}

static void parse_tsv__trims_spaces_around_rating_and_time(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_TSV, "u\ti\t 4.5 \t 12 "), 1);
	assert_event("u", "i", 4.5, 12);
}

static void parse_tsv__keeps_id_bytes_verbatim(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_TSV, " u \t\"i\"\t3"), 1);
	assert_event(" u ", "\"i\"", 3.0, 0);
}

static void parse_tsv__accepts_nul_bytes_in_ids(void **state)
{
	(void)state;
	assert_int_equal(parse_n(MFS_FORMAT_TSV, NULL, "a\0b\tc\t1", 7), 1);
	check_id(ev.user, ev.user_len, "a\0b", 3);
	assert_item("c");
}

static void parse_tsv__rejects_missing_fields(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_TSV, "1\t2", "expected 3 or 4 fields, found 2");
	expect_error(MFS_FORMAT_TSV, "hello", "expected 3 or 4 fields, found 1");
}

static void parse_tsv__rejects_too_many_fields(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_TSV, "1\t2\t3\t4\t5", "expected 3 or 4 fields, found 5");
	expect_error(MFS_FORMAT_TSV, "1\t2\t3\t4\t", "expected 3 or 4 fields, found 5");
	expect_error(MFS_FORMAT_TSV, "1\t2\t3\t4\t5\t6\t7", "expected 3 or 4 fields, found 7");
}

static void parse_tsv__rejects_non_numeric_rating(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_TSV, "1\t2\tx", "rating \"x\" is not a number");
	expect_error(MFS_FORMAT_TSV, "1\t2\t\t5", "rating \"\" is not a number");
	expect_error(MFS_FORMAT_TSV, "1\t2\t0x10", "rating \"0x10\" is not a number");
	expect_error(MFS_FORMAT_TSV, "1\t2\t3 stars", "rating \"3 stars\" is not a number");
}

static void parse_tsv__rejects_nan_rating(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_TSV, "1\t2\tnan", "rating \"nan\" is not a number");
	expect_error(MFS_FORMAT_TSV, "1\t2\tNaN\t4", "rating \"NaN\" is not a number");
	expect_error(MFS_FORMAT_TSV, "1\t2\tinf", "rating \"inf\" is not a number");
	expect_error(MFS_FORMAT_TSV, "1\t2\t-Infinity", "rating \"-Infinity\" is not a number");
}

static void parse_tsv__rejects_overflowing_rating(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_TSV, "1\t2\t1e999", "rating \"1e999\" is not a number");
	/* finite as a double, infinite as a float */
	expect_error(MFS_FORMAT_TSV, "1\t2\t1e300", "rating \"1e300\" is out of range");
	assert_int_equal(parse(MFS_FORMAT_TSV, "1\t2\t1e30"), 1);
	assert_true(ev.rating == 1e30f);
}

static void parse_tsv__rejects_non_numeric_time(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_TSV, "1\t2\t3\tyesterday", "time \"yesterday\" is not a number");
	expect_error(MFS_FORMAT_TSV, "1\t2\t3\tnan", "time \"nan\" is not a number");
	expect_error(MFS_FORMAT_TSV, "1\t2\t3\t12:00", "time \"12:00\" is not a number");
}

static void parse_tsv__truncates_decimal_time(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_TSV, "u\ti\t3\t1.9"), 1);
	assert_int_equal(ev.time, 1);
	assert_int_equal(parse(MFS_FORMAT_TSV, "u\ti\t3\t-1.9"), 1);
	assert_int_equal(ev.time, -1);
	assert_int_equal(parse(MFS_FORMAT_TSV, "u\ti\t3\t1.5e3"), 1);
	assert_int_equal(ev.time, 1500);
	assert_int_equal(parse(MFS_FORMAT_TSV, "u\ti\t3\t+7"), 1);
	assert_int_equal(ev.time, 7);
}

static void parse_tsv__rejects_int64_time_overflow(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_TSV, "u\ti\t3\t9223372036854775807"), 1);
	assert_true(ev.time == INT64_MAX);
	assert_int_equal(parse(MFS_FORMAT_TSV, "u\ti\t3\t-9223372036854775808"), 1);
	assert_true(ev.time == INT64_MIN);
	expect_error(MFS_FORMAT_TSV, "u\ti\t3\t9223372036854775808",
		     "time \"9223372036854775808\" is out of range");
	expect_error(MFS_FORMAT_TSV, "u\ti\t3\t-9223372036854775809",
		     "time \"-9223372036854775809\" is out of range");
	expect_error(MFS_FORMAT_TSV, "u\ti\t3\t99999999999999999999999",
		     "time \"99999999999999999999999\" is out of range");
	expect_error(MFS_FORMAT_TSV, "u\ti\t3\t1e19", "time \"1e19\" is out of range");
	expect_error(MFS_FORMAT_TSV, "u\ti\t3\t1e999", "time \"1e999\" is not a number");
}

static void parse_tsv__reads_integer_times_exactly(void **state)
{
	(void)state;
	/* every length from 1 to 19 digits, both signs, against strtoll */
	for (int i = 0; i < 20000; i++) {
		char digits[24], line[64];
		int nd = 1 + i % 19;
		for (int k = 0; k < nd; k++)
			digits[k] = (char)('0' + rnd() % 10);
		digits[nd] = 0;
		if (nd == 19)
			digits[0] = (char)('0' + rnd() % 9); /* stay below 9.3e18 */
		const char *sign = (i / 19) % 3 == 0 ? "-" : (i / 19) % 3 == 1 ? "+" : "";
		snprintf(line, sizeof line, "u\ti\t1\t%s%s", sign, digits);
		char num_text[32];
		snprintf(num_text, sizeof num_text, "%s%s", sign, digits);
		long long want = strtoll(num_text, NULL, 10);
		assert_int_equal(parse(MFS_FORMAT_TSV, line), 1);
		if (ev.time != want)
			print_error("%s: %lld != %lld\n", num_text, (long long)ev.time, want);
		assert_true(ev.time == want);
	}
}

static void parse_tsv__treats_empty_time_as_absent(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_TSV, "u\ti\t3\t"), 1);
	assert_event("u", "i", 3.0, 0);
	assert_int_equal(parse(MFS_FORMAT_TSV, "u\ti\t3\t  \r"), 1);
	assert_event("u", "i", 3.0, 0);
}

static void parse_tsv__returns_zero_for_empty_and_blank_lines(void **state)
{
	(void)state;
	static const char *const blank[] = { "", " ", "\t", "\r", "  \t \r", "\t\t\t" };
	for (size_t i = 0; i < sizeof blank / sizeof blank[0]; i++) {
		assert_int_equal(parse(MFS_FORMAT_TSV, blank[i]), 0);
		assert_int_equal(parse(MFS_FORMAT_CSV, blank[i]), 0);
		assert_int_equal(parse(MFS_FORMAT_DAT, blank[i]), 0);
		assert_int_equal(parse(MFS_FORMAT_JSONL, blank[i]), 0);
	}
	/* a NULL line of length 0 is an empty line */
	assert_int_equal(mfs_parse_line(MFS_FORMAT_TSV, NULL, NULL, 0, &ev, NULL, 0), 0);
}

static void parse_tsv__rejects_empty_ids(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_TSV, "\ti\t3", "empty user ID");
	expect_error(MFS_FORMAT_TSV, "u\t\t3", "empty item ID");
}

static void parse_tsv__rejects_id_longer_than_max(void **state)
{
	(void)state;
	char line[600];
	memset(line, 'u', MFS_ID_MAX);
	strcpy(line + MFS_ID_MAX, "\ti\t1");
	assert_int_equal(parse(MFS_FORMAT_TSV, line), 1);
	assert_int_equal(ev.user_len, MFS_ID_MAX);

	memset(line, 'u', MFS_ID_MAX + 1);
	strcpy(line + MFS_ID_MAX + 1, "\ti\t1");
	expect_error(MFS_FORMAT_TSV, line, "user ID longer than 255 bytes");

	line[0] = 'u';
	line[1] = '\t';
	memset(line + 2, 'i', MFS_ID_MAX + 1);
	strcpy(line + 2 + MFS_ID_MAX + 1, "\t1");
	expect_error(MFS_FORMAT_TSV, line, "item ID longer than 255 bytes");
}

static void parse_tsv__survives_a_1mib_line(void **state)
{
	(void)state;
	size_t n = (size_t)1 << 20;
	char *line = malloc(n + 16);
	assert_non_null(line);

	memset(line, 'u', n);
	memcpy(line + n, "\ti\t3", 5);
	expect_error(MFS_FORMAT_TSV, line, "user ID longer than 255 bytes");

	/* a 1 MiB rating: quoted, cut to a short printable reason */
	memcpy(line, "u\ti\t", 4);
	memset(line + 4, 'x', n);
	line[n + 4] = 0;
	expect_error(MFS_FORMAT_TSV, line,
		     "rating \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\" is not a number");

	/* a 1 MiB line of tabs: 1 MiB + 1 fields */
	memset(line, '\t', n);
	line[n] = 'x';
	line[n + 1] = 0;
	int rc = parse(MFS_FORMAT_TSV, line);
	assert_int_equal(rc, -MFS_E_PARSE);
	char want[64];
	snprintf(want, sizeof want, "expected 3 or 4 fields, found %zu", n + 1);
	assert_string_equal(reason, want);
	free(line);
}

static void parse_tsv__quotes_unprintable_bytes_in_reason(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_TSV, "u\ti\t\x01" "a\"b\\\xc3\xa9",
		     "rating \"\\x01a\\\"b\\\\\\xc3\\xa9\" is not a number");
	expect_error(MFS_FORMAT_TSV, "u\ti\t3\t\x7f", "time \"\\x7f\" is not a number");
}

/* ------------------------------------------------------------------------ */
/* mfs_parse_line in general                                                */
/* ------------------------------------------------------------------------ */

static void parse_line__never_overflows_a_small_reason(void **state)
{
	(void)state;
	char small[9];
	memset(small, '#', sizeof small);
	char line[] = "u\ti\tnot-a-number";
	assert_int_equal(mfs_parse_line(MFS_FORMAT_TSV, NULL, line, strlen(line), &ev, small, 8),
			 -MFS_E_PARSE);
	assert_string_equal(small, "rating ");
	assert_int_equal(small[8], '#');
	/* no event to fill */
	assert_int_equal(mfs_parse_line(MFS_FORMAT_TSV, NULL, line, strlen(line), NULL, small, 8),
			 -MFS_E_INVAL);
	/* no reason buffer at all */
	assert_int_equal(mfs_parse_line(MFS_FORMAT_TSV, NULL, line, strlen(line), &ev, NULL, 0),
			 -MFS_E_PARSE);
	char json[] = "{\"user\":";
	assert_int_equal(mfs_parse_line(MFS_FORMAT_JSONL, NULL, json, strlen(json), &ev, NULL, 0),
			 -MFS_E_PARSE);
}

static void parse_line__rejects_unknown_format(void **state)
{
	(void)state;
	assert_int_equal(parse(99, "u\ti\t3"), -MFS_E_INVAL);
	assert_int_equal(parse(MFS_FORMAT_AUTO, "u\ti\t3"), -MFS_E_INVAL);
	assert_true(reason[0] != 0);
}

static void parse_line__keeps_invariants_on_random_bytes(void **state)
{
	(void)state;
	static const char alphabet[] = "\t,:\"{}[]\\u0123456789.eE+-ntrfal \r\x01\xc3";
	struct mfs_fields f;
	assert_int_equal(mfs_fields_parse(&f, NULL, NULL, 0), 0);
	for (int i = 0; i < 100000; i++) {
		char s[48];
		size_t n = rnd() % sizeof s;
		for (size_t k = 0; k < n; k++)
			s[k] = alphabet[rnd() % (sizeof alphabet - 1)];
		int fmt = 1 + (int)(rnd() % MFS_FORMAT_LAST);
		int rc = parse_n(fmt, &f, s, n);
		assert_true(rc == 1 || rc == 0 || rc == -MFS_E_PARSE);
		if (rc == 1) {
			assert_true(ev.user_len >= 1 && ev.user_len <= MFS_ID_MAX);
			assert_true(ev.item_len >= 1 && ev.item_len <= MFS_ID_MAX);
			assert_true(ev.user >= line_copy && ev.user + ev.user_len <= line_copy + n);
			assert_true(ev.item >= line_copy && ev.item + ev.item_len <= line_copy + n);
			assert_true(isfinite(ev.rating));
		} else if (rc < 0) {
			assert_true(reason[0] != 0);
			assert_printable(reason);
		}
	}
}

/* A random ID of 1..40 bytes from alphabet, with no "::" and no ':' at either end. */
static size_t random_id(char *id, const char *alphabet)
{
	size_t n, al = strlen(alphabet);
	do {
		n = 1 + rnd() % 40;
		for (size_t k = 0; k < n; k++)
			id[k] = alphabet[rnd() % al];
		id[n] = 0;
	} while (strstr(id, "::") || id[0] == ':' || id[n - 1] == ':');
	return n;
}

/* csv-quote s into out ("a,b" -> "\"a,b\"", quotes doubled). */
static void csv_quote(char *out, const char *s)
{
	*out++ = '"';
	for (; *s; s++) {
		if (*s == '"')
			*out++ = '"';
		*out++ = *s;
	}
	*out++ = '"';
	*out = 0;
}

static void parse_line__splits_random_ids_at_every_offset(void **state)
{
	(void)state;
	/* IDs of every length put the separators at every offset of the 8-byte
	 * words the splitter scans; the IDs must come back byte for byte. */
	for (int i = 0; i < 30000; i++) {
		char u[48], it[48], qu[300], qi[300], line[800];
		int fmt = 1 + i % 4, with_time = (i / 4) % 2;
		const char *alpha = fmt == MFS_FORMAT_TSV   ? "ab:, \"x\x01"
				    : fmt == MFS_FORMAT_DAT ? "ab:,\t \"x"
							    : "ab:,\t \"x";
		random_id(u, alpha);
		random_id(it, alpha);
		switch (fmt) {
		case MFS_FORMAT_TSV:
			snprintf(line, sizeof line, "%s\t%s\t4.5%s", u, it, with_time ? "\t77" : "");
			break;
		case MFS_FORMAT_DAT:
			snprintf(line, sizeof line, "%s::%s::4.5%s", u, it, with_time ? "::77" : "");
			break;
		case MFS_FORMAT_CSV: /* quoted only where needed: both splitters run */
			if (strpbrk(u, ",\""))
				csv_quote(qu, u);
			else
				strcpy(qu, u);
			if (strpbrk(it, ",\""))
				csv_quote(qi, it);
			else
				strcpy(qi, it);
			snprintf(line, sizeof line, "%s,%s,4.5%s", qu, qi, with_time ? ",77" : "");
			break;
		default: {
			/* jsonl: the same IDs, escaped where JSON needs it */
			char *o = qu;
			for (const char *c = u; *c; c++) {
				if (*c == '"' || *c == '\\')
					*o++ = '\\';
				if ((unsigned char)*c < 0x20)
					o += sprintf(o, "\\u%04x", *c);
				else
					*o++ = *c;
			}
			*o = 0;
			o = qi;
			for (const char *c = it; *c; c++) {
				if (*c == '"' || *c == '\\')
					*o++ = '\\';
				if ((unsigned char)*c < 0x20)
					o += sprintf(o, "\\u%04x", *c);
				else
					*o++ = *c;
			}
			*o = 0;
			snprintf(line, sizeof line, "{\"user\":\"%s\",\"item\":\"%s\",\"rating\":4.5%s}",
				 qu, qi, with_time ? ",\"time\":77" : "");
		}
		}
		int rc = parse(fmt, line);
		if (rc != 1)
			print_error("format %d line \"%s\": %s\n", fmt, line, reason);
		assert_int_equal(rc, 1);
		assert_event(u, it, 4.5, with_time ? 77 : 0);
	}
}

/* ------------------------------------------------------------------------ */
/* csv                                                                      */
/* ------------------------------------------------------------------------ */

static void parse_csv__accepts_movielens_lines(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_CSV, "1,31,2.5,1260759144"), 1);
	assert_event("1", "31", 2.5, 1260759144);
	assert_int_equal(parse(MFS_FORMAT_CSV, "1,31,2.5"), 1);
	assert_event("1", "31", 2.5, 0);
	assert_int_equal(parse(MFS_FORMAT_CSV, "1,31,2.5,1260759144\r"), 1);
	assert_event("1", "31", 2.5, 1260759144);
	assert_int_equal(parse(MFS_FORMAT_CSV, "u,i, 4 , 9 \r"), 1);
	assert_event("u", "i", 4.0, 9);
}

static void parse_csv__accepts_quoted_fields(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_CSV, "\"a,b\",\"x\"\"y\",\"4\",\"7\""), 1);
	assert_event("a,b", "x\"y", 4.0, 7);
	assert_int_equal(parse(MFS_FORMAT_CSV, "\"\"\"\",i,3"), 1);
	assert_event("\"", "i", 3.0, 0);
	/* a quote inside an unquoted field is a byte */
	assert_int_equal(parse(MFS_FORMAT_CSV, "a\"b,i,3"), 1);
	assert_event("a\"b", "i", 3.0, 0);
	/* a quoted separator does not count as a field */
	assert_int_equal(parse(MFS_FORMAT_CSV, "\"a,b,c,d\",\"i\",1"), 1);
	assert_event("a,b,c,d", "i", 1.0, 0);
}

static void parse_csv__rejects_malformed_quotes(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_CSV, "\"abc,i,3", "unterminated quoted field 1");
	expect_error(MFS_FORMAT_CSV, "u,\"i,3\"\"", "unterminated quoted field 2");
	expect_error(MFS_FORMAT_CSV, "\"a\"b,i,3",
		     "unexpected character after the closing quote of field 1");
	expect_error(MFS_FORMAT_CSV, "\"\",i,3", "empty user ID");
}

static void parse_csv__rejects_wrong_field_counts(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_CSV, "a,b", "expected 3 or 4 fields, found 2");
	expect_error(MFS_FORMAT_CSV, "a,b,c,d,e", "expected 3 or 4 fields, found 5");
	expect_error(MFS_FORMAT_CSV, "1,2,3,4,", "expected 3 or 4 fields, found 5");
}

static void parse_csv__rejects_bad_numbers(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_CSV, "1,2,NaN", "rating \"NaN\" is not a number");
	expect_error(MFS_FORMAT_CSV, "1,2,\"inf\"", "rating \"inf\" is not a number");
	expect_error(MFS_FORMAT_CSV, "1,2,1e999,5", "rating \"1e999\" is not a number");
	expect_error(MFS_FORMAT_CSV, "1,2,3,soon", "time \"soon\" is not a number");
}

/* ------------------------------------------------------------------------ */
/* dat                                                                      */
/* ------------------------------------------------------------------------ */

static void parse_dat__accepts_movielens_lines(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_DAT, "1::1193::5::978300760"), 1);
	assert_event("1", "1193", 5.0, 978300760);
	assert_int_equal(parse(MFS_FORMAT_DAT, "1::1193::5"), 1);
	assert_event("1", "1193", 5.0, 0);
	assert_int_equal(parse(MFS_FORMAT_DAT, "1::1193::5::978300760\r"), 1);
	assert_event("1", "1193", 5.0, 978300760);
}

static void parse_dat__keeps_single_colons_in_ids(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_DAT, "a:b::c:::: 3 "), -MFS_E_PARSE);
	assert_int_equal(parse(MFS_FORMAT_DAT, "a:b::c:d::3:"), -MFS_E_PARSE);
	assert_string_equal(reason, "rating \"3:\" is not a number");
	assert_int_equal(parse(MFS_FORMAT_DAT, "a:b::c:d:: 3 "), 1);
	assert_event("a:b", "c:d", 3.0, 0);
	/* leftmost "::" splits: "a:::b" is "a" and ":b" */
	assert_int_equal(parse(MFS_FORMAT_DAT, "a:::b::3"), 1);
	assert_event("a", ":b", 3.0, 0);
}

static void parse_dat__rejects_wrong_field_counts(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_DAT, "1::2", "expected 3 or 4 fields, found 2");
	expect_error(MFS_FORMAT_DAT, "1::2::3::4::5", "expected 3 or 4 fields, found 5");
	expect_error(MFS_FORMAT_DAT, "1\t2\t3", "expected 3 or 4 fields, found 1");
}

static void parse_dat__rejects_bad_numbers(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_DAT, "1::2::five", "rating \"five\" is not a number");
	expect_error(MFS_FORMAT_DAT, "1::2::-inf::3", "rating \"-inf\" is not a number");
	expect_error(MFS_FORMAT_DAT, "1::2::5::x", "time \"x\" is not a number");
	expect_error(MFS_FORMAT_DAT, "::2::5", "empty user ID");
}

/* ------------------------------------------------------------------------ */
/* jsonl                                                                    */
/* ------------------------------------------------------------------------ */

static void parse_jsonl__accepts_string_ids(void **state)
{
	(void)state;
	assert_int_equal(
		parse(MFS_FORMAT_JSONL, "{\"user\":\"u1\",\"item\":\"i1\",\"rating\":4.5,\"time\":100}"), 1);
	assert_event("u1", "i1", 4.5, 100);
}

static void parse_jsonl__accepts_numeric_ids(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_JSONL, "{\"user\":196,\"item\":-1.5e3,\"rating\":3}"), 1);
	assert_event("196", "-1.5e3", 3.0, 0);
}

static void parse_jsonl__time_is_optional(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":1}"), 1);
	assert_event("u", "i", 1.0, 0);
	assert_int_equal(
		parse(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":1,\"time\":null}"), 1);
	assert_event("u", "i", 1.0, 0);
	assert_int_equal(
		parse(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":1,\"time\":1.7e9}"), 1);
	assert_event("u", "i", 1.0, 1700000000);
	expect_error(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":1,\"time\":true}",
		     "time \"true\" is not a number");
	expect_error(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":1,\"time\":1e30}",
		     "time \"1e30\" is out of range");
}

static void parse_jsonl__decodes_escapes_in_ids(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_JSONL,
			       "{\"user\":\"a\\\"b\\\\c\\nd\\u00e9\\ud83d\\ude00\\/\\t\\b\\f\\r\","
			       "\"item\":\"\\u20AC\",\"rating\":1}"),
			 1);
	assert_user("a\"b\\c\nd\xc3\xa9\xf0\x9f\x98\x80/\t\b\f\r");
	assert_item("\xe2\x82\xac");
	/* the decoded ID starts where the string did */
	assert_ptr_equal(ev.user, line_copy + 9);
}

static void parse_jsonl__accepts_nul_escape_in_id(void **state)
{
	(void)state;
	assert_int_equal(
		parse(MFS_FORMAT_JSONL, "{\"user\":\"\\u0000x\",\"item\":\"i\",\"rating\":1}"), 1);
	check_id(ev.user, ev.user_len, "\0x", 2);
}

static void parse_jsonl__ignores_unknown_fields_and_nested_values(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_JSONL,
			       "{\"meta\":{\"a\":[1,2,{\"b\":null}],\"c\":\"}\\\"\"},\"user\":\"u\","
			       "\"x\":[true,false,[],{}],\"item\":\"i\",\"rating\":2,"
			       "\"extra\":\"\\u1234\",\"n\":-0.5e-3}"),
			 1);
	assert_event("u", "i", 2.0, 0);
	/* a nested "user" is not the top-level one */
	expect_error_has(MFS_FORMAT_JSONL, "{\"x\":{\"user\":\"u\"},\"item\":\"i\",\"rating\":2}",
		     "missing \"user\" field (");
}

static void parse_jsonl__uses_custom_field_names(void **state)
{
	(void)state;
	struct mfs_fields f;
	assert_int_equal(
		mfs_fields_parse(&f, "user=userId,item=movieId,rating=stars,time=ts", NULL, 0), 0);
	const char *line = "{\"userId\":\"7\",\"movieId\":\"9\",\"stars\":\"4.5\",\"ts\":\"12\","
			   "\"user\":\"no\",\"rating\":1}";
	assert_int_equal(parse_n(MFS_FORMAT_JSONL, &f, line, strlen(line)), 1);
	assert_event("7", "9", 4.5, 12);
	line = "{\"user\":\"u\",\"movieId\":\"9\",\"stars\":1}";
	assert_int_equal(parse_n(MFS_FORMAT_JSONL, &f, line, strlen(line)), -MFS_E_PARSE);
	assert_non_null(strstr(reason, "missing \"userId\" field ("));
	line = "{\"userId\":\"u\",\"movieId\":\"9\",\"rating\":1}";
	assert_int_equal(parse_n(MFS_FORMAT_JSONL, &f, line, strlen(line)), -MFS_E_PARSE);
	assert_non_null(strstr(reason, "missing \"stars\" field ("));
}

static void parse_jsonl__accepts_rating_and_time_as_strings(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_JSONL,
			       "{\"user\":\"u\",\"item\":\"i\",\"rating\":\"4.5\",\"time\":\"123\"}"),
			 1);
	assert_event("u", "i", 4.5, 123);
	assert_int_equal(parse(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":\" 4 \"}"),
			 1);
	assert_event("u", "i", 4.0, 0);
	/* a string holds the lenient grammar, a bare number the JSON one */
	assert_int_equal(parse(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":\".5\"}"),
			 1);
	assert_true(ev.rating == 0.5f);
	expect_error(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":\"abc\"}",
		     "rating \"abc\" is not a number");
	expect_error(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":\"NaN\"}",
		     "rating \"NaN\" is not a number");
	expect_error(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":\"\"}",
		     "rating \"\" is not a number");
}

static void parse_jsonl__rejects_non_numeric_ratings(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":true}",
		     "rating \"true\" is not a number");
	expect_error(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":null}",
		     "rating \"null\" is not a number");
	expect_error(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":[1]}",
		     "rating \"[1]\" is not a number");
	expect_error(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":1e999}",
		     "rating \"1e999\" is not a number");
	expect_error(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":1e300}",
		     "rating \"1e300\" is out of range");
}

static void parse_jsonl__names_the_missing_field(void **state)
{
	(void)state;
	expect_error_has(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"rating\":1}", "missing \"item\" field (");
	expect_error_has(MFS_FORMAT_JSONL, "{\"item\":\"i\",\"rating\":1}", "missing \"user\" field (");
	expect_error_has(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\"}", "missing \"rating\" field (");
	expect_error_has(MFS_FORMAT_JSONL, "{}", "missing \"user\" field (");
	expect_error_has(MFS_FORMAT_JSONL, " { } ", "missing \"user\" field (");
}

/* The reason for a missing field names the keys the object has, for --fields. */
static void parse_jsonl__missing_field_names_the_keys_there_are(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_JSONL, "{\"userId\": 1, \"movieId\": 2, \"rating\": 4, \"ts\": {\"a\": 1}}",
		     "missing \"user\" field (the object has the keys \"userId\", \"movieId\", "
		     "\"rating\", \"ts\"; name the fields with --fields user=KEY,...)");
	expect_error(MFS_FORMAT_JSONL, " { } ",
		     "missing \"user\" field (the object has no keys; name the fields with --fields "
		     "user=KEY,...)");
	/* many keys: cut with "...", the reason still fits */
	char line[4096];
	size_t o = (size_t)snprintf(line, sizeof line, "{\"user\":\"u\"");
	for (int k = 0; k < 100; k++)
		o += (size_t)snprintf(line + o, sizeof line - o, ",\"key_number_%d\":%d", k, k);
	snprintf(line + o, sizeof line - o, "}");
	expect_error_has(MFS_FORMAT_JSONL, line, "\"key_number_1\", ");
	expect_error_has(MFS_FORMAT_JSONL, line, ", ...; name the fields with --fields item=KEY,...)");
	/* a key decoded in place cannot be named as written: no list, the hint stays */
	expect_error(MFS_FORMAT_JSONL, "{\"user\\u0000\":\"u\",\"item\":\"i\",\"rating\":3}",
		     "missing \"user\" field (name the fields with --fields user=KEY,...)");
}

/* Parse a jsonl line with a --fields spec. */
static int parse_fields(const char *spec, const char *line)
{
	struct mfs_fields f;
	char why[128];
	if (mfs_fields_parse(&f, spec, why, sizeof why) != 0)
		fail_msg("bad spec %s: %s", spec, why);
	return parse_n(MFS_FORMAT_JSONL, &f, line, strlen(line));
}

static void parse_jsonl__follows_dotted_paths_into_nested_objects(void **state)
{
	(void)state;
	const char *spec = "user=payload.userId,item=payload.movieId,rating=payload.rating,"
			   "time=payload.ts";
	assert_int_equal(parse_fields(spec, "{\"payload\":{\"userId\":7,\"movieId\":\"m9\","
					    "\"rating\":4.5,\"ts\":12}}"),
			 1);
	assert_event("7", "m9", 4.5, 12);
	/* deeper, mixed with a top-level field, keys escaped */
	assert_int_equal(parse_fields("user=a.b.c,item=i,rating=r.v",
				      "{\"r\":{\"v\":\"2\"},\"x\":{\"c\":1},\"\\u0061\":{\"z\":[1,{}],"
				      "\"b\":{\"c\":\"deep\\u0021\"}},\"i\":\"it\"}"),
			 1);
	assert_event("deep!", "it", 2.0, 0);
	/* a name without dots still means a top-level key only */
	expect_error_has(MFS_FORMAT_JSONL, "{\"x\":{\"user\":\"u\"},\"item\":\"i\",\"rating\":2}",
		     "missing \"user\" field (");
	assert_int_equal(parse_fields(spec, "{\"payload\":{\"movieId\":1,\"rating\":3}}"),
			 -MFS_E_PARSE);
	assert_non_null(strstr(reason, "missing \"payload.userId\" field ("));
	/* the nested objects are still checked as JSON */
	assert_int_equal(parse_fields(spec, "{\"payload\":{\"userId\":1,,\"movieId\":2}}"),
			 -MFS_E_PARSE);
	assert_string_equal(reason, "malformed JSON at column 24: expected a string key");
}

static void parse_jsonl__reads_a_kafka_connect_envelope(void **state)
{
	(void)state;
	/* JsonConverter with schemas.enable=true: the schema, then the record */
	const char *line =
		"{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int32\",\"optional\":false,"
		"\"field\":\"userId\"},{\"type\":\"int32\",\"optional\":false,\"field\":\"movieId\"},"
		"{\"type\":\"double\",\"optional\":false,\"field\":\"rating\"},{\"type\":\"int64\","
		"\"optional\":false,\"field\":\"timestamp\"}],\"optional\":false,\"name\":\"ratings\"},"
		"\"payload\":{\"userId\":1,\"movieId\":31,\"rating\":2.5,\"timestamp\":1260759144}}";
	assert_int_equal(parse_fields("user=payload.userId,item=payload.movieId,"
				      "rating=payload.rating,time=payload.timestamp",
				      line),
			 1);
	assert_event("1", "31", 2.5, 1260759144);
}

static void parse_jsonl__dotted_keys_match_whole_names_first(void **state)
{
	(void)state;
	const char *spec = "user=a.b.c,item=i,rating=r";
	/* the whole name as one key wins over nesting, before or after it */
	assert_int_equal(parse_fields(spec, "{\"a.b.c\":\"whole\",\"a\":{\"b\":{\"c\":\"nested\"}},"
					    "\"i\":1,\"r\":1}"),
			 1);
	assert_user("whole");
	assert_int_equal(parse_fields(spec, "{\"a\":{\"b\":{\"c\":\"nested\"}},\"a.b.c\":\"whole\","
					    "\"i\":1,\"r\":1}"),
			 1);
	assert_user("whole");
	/* keys holding a dot at any level; the fewest splits win */
	assert_int_equal(parse_fields(spec, "{\"a\":{\"b.c\":\"one split\"},\"i\":1,\"r\":1}"), 1);
	assert_user("one split");
	assert_int_equal(parse_fields(spec, "{\"a.b\":{\"c\":\"one split\"},\"i\":1,\"r\":1}"), 1);
	assert_user("one split");
	assert_int_equal(parse_fields(spec, "{\"a.b\":{\"c\":\"one\"},\"a\":{\"b\":{\"c\":\"two\"}},"
					    "\"i\":1,\"r\":1}"),
			 1);
	assert_user("one");
	assert_int_equal(parse_fields(spec, "{\"a\":{\"b\":{\"c\":\"two\"}},\"a.b\":{\"c\":\"one\"},"
					    "\"i\":1,\"r\":1}"),
			 1);
	assert_user("one");
	/* equal splits: the last one */
	assert_int_equal(parse_fields(spec, "{\"a\":{\"b\":{\"c\":\"first\"}},\"a\":{\"b\":{\"c\":"
					    "\"last\"}},\"i\":1,\"r\":1}"),
			 1);
	assert_user("last");
}

static void parse_jsonl__dotted_paths_do_not_enter_arrays_or_end_at_objects(void **state)
{
	(void)state;
	assert_int_equal(parse_fields("user=items.0,item=i,rating=r",
				      "{\"items\":[\"u\"],\"i\":1,\"r\":1}"),
			 -MFS_E_PARSE);
	assert_non_null(strstr(reason, "missing \"items.0\" field ("));
	assert_int_equal(parse_fields("user=p.u,item=i,rating=r",
				      "{\"p\":[{\"u\":\"x\"}],\"i\":1,\"r\":1}"),
			 -MFS_E_PARSE);
	assert_non_null(strstr(reason, "missing \"p.u\" field ("));
	/* a path that ends at an object, or goes past a scalar */
	assert_int_equal(parse_fields("user=p,item=p.i,rating=r",
				      "{\"p\":{\"i\":\"it\"},\"r\":1}"),
			 -MFS_E_PARSE);
	assert_non_null(strstr(reason, "user ID \"{"));
	assert_non_null(strstr(reason, "is not a string or a number"));
	assert_int_equal(parse_fields("user=u.x,item=i,rating=r", "{\"u\":\"s\",\"i\":1,\"r\":1}"),
			 -MFS_E_PARSE);
	assert_non_null(strstr(reason, "missing \"u.x\" field ("));
}

static void parse_jsonl__last_duplicate_key_wins(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_JSONL, "{\"user\":\"a\",\"item\":\"i\",\"rating\":1,"
						 "\"user\":\"b\\u0041\",\"rating\":2}"),
			 1);
	assert_event("bA", "i", 2.0, 0);
}

static void parse_jsonl__matches_decoded_keys(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_JSONL,
			       "{\"us\\u0065r\":\"u\",\"\\u0069tem\":\"i\",\"rat\\u0069ng\":3}"),
			 1);
	assert_event("u", "i", 3.0, 0);
	/* a key with a NUL is not "user" */
	expect_error_has(MFS_FORMAT_JSONL, "{\"user\\u0000\":\"u\",\"item\":\"i\",\"rating\":3}",
		     "missing \"user\" field (");
}

static void parse_jsonl__accepts_json_whitespace(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_JSONL, " \t{ \"user\" :\t\"u\" ,\r\"item\":\"i\" , "
						 "\"rating\" : 1 } \t\r"),
			 1);
	assert_event("u", "i", 1.0, 0);
}

static void parse_jsonl__checks_id_types_and_lengths(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_JSONL, "{\"user\":true,\"item\":\"i\",\"rating\":1}",
		     "user ID \"true\" is not a string or a number");
	expect_error(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":{\"a\":1},\"rating\":1}",
		     "item ID \"{\\\"a\\\":1}\" is not a string or a number");
	expect_error(MFS_FORMAT_JSONL, "{\"user\":\"\",\"item\":\"i\",\"rating\":1}", "empty user ID");

	/* the limit counts decoded bytes: 127 x "\u00e9" = 254 bytes, 128 x = 256 */
	char line[2048];
	for (int k = 127; k <= 128; k++) {
		size_t o = (size_t)sprintf(line, "{\"user\":\"");
		for (int i = 0; i < k; i++)
			o += (size_t)sprintf(line + o, "\\u00e9");
		sprintf(line + o, "\",\"item\":\"i\",\"rating\":1}");
		if (k == 127) {
			assert_int_equal(parse(MFS_FORMAT_JSONL, line), 1);
			assert_int_equal(ev.user_len, 254);
		} else {
			expect_error(MFS_FORMAT_JSONL, line, "user ID longer than 255 bytes");
		}
	}
	/* 200 escapes "\n": 400 bytes of text, 200 of ID */
	size_t o = (size_t)sprintf(line, "{\"user\":\"");
	for (int i = 0; i < 200; i++)
		o += (size_t)sprintf(line + o, "\\n");
	sprintf(line + o, "\",\"item\":\"i\",\"rating\":1}");
	assert_int_equal(parse(MFS_FORMAT_JSONL, line), 1);
	assert_int_equal(ev.user_len, 200);
	assert_int_equal(ev.user[199], '\n');
}

static void parse_jsonl__rejects_malformed_json(void **state)
{
	(void)state;
	static const struct {
		const char *line, *why;
	} cases[] = {
		{ "{\"user\":\"u", "column 11: unterminated string" },
		{ "{\"user\":\"u\\", "unterminated string" },
		{ "{\"user\":\"u\\x\",\"item\":\"i\",\"rating\":1}", "column 11: bad escape \\x" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":1,}", "column 35: expected a string key" },
		{ "{\"user\" \"u\",\"item\":\"i\",\"rating\":1}", "column 9: expected ':'" },
		{ "{\"user\":\"u\" \"item\":\"i\",\"rating\":1}", "expected ',' or '}'" },
		{ "{user:\"u\",\"item\":\"i\",\"rating\":1}", "column 2: expected a string key" },
		{ "{'user':'u'}", "expected a string key" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":1} x", "column 36: unexpected text after the object" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":1}{}", "unexpected text after the object" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":1", "unterminated object" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":", "expected a value" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":01}", "leading zero in a number" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":-}", "bad number" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":1.}", "no digit after the decimal point" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":.5}", "unexpected character \".\"" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":+1}", "unexpected character \"+\"" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":1e}", "no digit in the exponent" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":NaN}", "unexpected character \"N\"" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":tru}", "unexpected character 't'" },
		{ "{\"user\":\"u\",\"item\":\"i\",\"rating\":nul}", "unexpected character 'n'" },
		{ "{\"user\":\"a\tb\",\"item\":\"i\",\"rating\":1}", "control character \\x09 in a string" },
		{ "{\"user\":\"\\ud800\",\"item\":\"i\",\"rating\":1}", "high surrogate \\uD800 without a low one" },
		{ "{\"user\":\"\\ud800\\u0041\",\"item\":\"i\",\"rating\":1}", "without a low one" },
		{ "{\"user\":\"\\udc00\",\"item\":\"i\",\"rating\":1}", "lone low surrogate" },
		{ "{\"user\":\"\\u12\",\"item\":\"i\",\"rating\":1}", "bad \\u escape" },
		{ "{\"user\":\"\\u12G4\",\"item\":\"i\",\"rating\":1}", "bad \\u escape" },
		{ "{\"x\":[1,],\"user\":\"u\",\"item\":\"i\",\"rating\":1}", "column 9: unexpected character \"]\"" },
		{ "{\"x\":[1 2],\"user\":\"u\",\"item\":\"i\",\"rating\":1}", "expected ',' or ']'" },
		{ "{\"x\":{\"a\"},\"user\":\"u\",\"item\":\"i\",\"rating\":1}", "expected ':'" },
		{ "{\"x\":[", "expected a value" },
		{ "{\"x\":[1", "unterminated array" },
		{ "{\"x\":{\"a\":1", "unterminated object" },
		{ "{\"x\":{1:2},\"user\":\"u\",\"item\":\"i\",\"rating\":1}", "column 7: expected a string key" },
		{ "{\"x\":{\"a\\q\":2},\"user\":\"u\",\"item\":\"i\",\"rating\":1}", "bad escape \\q" },
		{ "[1,2]", "column 1: expected a JSON object" },
		{ "\"user\"", "expected a JSON object" },
		{ "user,item,rating", "expected a JSON object" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		expect_error_has(MFS_FORMAT_JSONL, cases[i].line, cases[i].why);
	/* every grammar failure says it is JSON */
	expect_error_has(MFS_FORMAT_JSONL, "{\"user\":01}", "malformed JSON at column 10: ");
}

static void parse_jsonl__rejects_deep_nesting(void **state)
{
	(void)state;
	char line[512];
	/* 63 arrays inside the object: depth 64, the limit */
	size_t o = (size_t)sprintf(line, "{\"a\":");
	for (int i = 0; i < 63; i++)
		line[o++] = '[';
	for (int i = 0; i < 63; i++)
		line[o++] = ']';
	sprintf(line + o, ",\"user\":\"u\",\"item\":\"i\",\"rating\":1}");
	assert_int_equal(parse(MFS_FORMAT_JSONL, line), 1);

	o = (size_t)sprintf(line, "{\"a\":");
	for (int i = 0; i < 64; i++)
		line[o++] = '[';
	for (int i = 0; i < 64; i++)
		line[o++] = ']';
	sprintf(line + o, ",\"user\":\"u\",\"item\":\"i\",\"rating\":1}");
	expect_error_has(MFS_FORMAT_JSONL, line, "nested deeper than 64 levels");

	/* 10000 '[' and 10000 '{"a":': an error, not a stack overflow */
	char *deep = malloc(60000);
	assert_non_null(deep);
	o = (size_t)sprintf(deep, "{\"a\":");
	memset(deep + o, '[', 10000);
	deep[o + 10000] = 0;
	expect_error_has(MFS_FORMAT_JSONL, deep, "nested deeper than 64 levels");
	o = 0;
	for (int i = 0; i < 10000; i++)
		o += (size_t)sprintf(deep + o, "{\"a\":");
	expect_error_has(MFS_FORMAT_JSONL, deep, "nested deeper than 64 levels");
	memset(deep, '[', 10000);
	deep[10000] = 0;
	expect_error_has(MFS_FORMAT_JSONL, deep, "expected a JSON object");
	free(deep);
}

static void parse_jsonl__survives_a_1mib_string(void **state)
{
	(void)state;
	size_t n = (size_t)1 << 20;
	char *line = malloc(n + 64);
	assert_non_null(line);
	size_t o = (size_t)sprintf(line, "{\"user\":\"");
	memset(line + o, 'u', n);
	o += n;
	sprintf(line + o, "\",\"item\":\"i\",\"rating\":1}");
	expect_error(MFS_FORMAT_JSONL, line, "user ID longer than 255 bytes");
	/* unterminated */
	line[o] = 0;
	expect_error_has(MFS_FORMAT_JSONL, line, "unterminated string");
	free(line);
}

/* ------------------------------------------------------------------------ */
/* ssv: LIBMF's space-separated "user item rating [time]"                     */
/* ------------------------------------------------------------------------ */

static void parse_ssv__accepts_libmf_lines(void **state)
{
	(void)state;
	assert_int_equal(parse(MFS_FORMAT_SSV, "1 2 3"), 1);
	assert_event("1", "2", 3.0, 0);
	assert_int_equal(parse(MFS_FORMAT_SSV, "196 242 3.5 881250949"), 1);
	assert_event("196", "242", 3.5, 881250949);
	/* runs of spaces, blanks at either end, a CR, a TAB among the spaces */
	assert_int_equal(parse(MFS_FORMAT_SSV, "   u1    i1  4  \r"), 1);
	assert_event("u1", "i1", 4.0, 0);
	assert_int_equal(parse(MFS_FORMAT_SSV, "a\tb \t 2 \t7"), 1);
	assert_event("a", "b", 2.0, 7);
	assert_int_equal(parse(MFS_FORMAT_SSV, "a,b c:d -1e-1"), 1);
	assert_event("a,b", "c:d", -0.1, 0);
	assert_int_equal(parse(MFS_FORMAT_SSV, "    "), 0);
	assert_int_equal(parse(MFS_FORMAT_SSV, ""), 0);
}

static void parse_ssv__rejects_wrong_field_counts_and_bad_numbers(void **state)
{
	(void)state;
	expect_error(MFS_FORMAT_SSV, "1 2", "expected 3 or 4 fields, found 2");
	expect_error(MFS_FORMAT_SSV, "  onlyone  ", "expected 3 or 4 fields, found 1");
	expect_error(MFS_FORMAT_SSV, "1 2 3 4 5", "expected 3 or 4 fields, found 5");
	expect_error(MFS_FORMAT_SSV, "u i x", "rating \"x\" is not a number");
	expect_error(MFS_FORMAT_SSV, "u i 4 noon", "time \"noon\" is not a number");
	char *id = repeat('a', MFS_ID_MAX + 1);
	char line[600];
	snprintf(line, sizeof line, "%s i 4", id);
	expect_error(MFS_FORMAT_SSV, line, "user ID longer than 255 bytes");
	free(id);
}

static void parse_ssv__splits_random_ids_at_every_offset(void **state)
{
	(void)state;
	/* IDs of 1..40 bytes and runs of 1..3 blanks put every separator at every
	 * offset of the 8-byte words the splitter scans. */
	static const char blanks[] = " \t";
	for (int i = 0; i < 30000; i++) {
		char u[48], it[48], line[400], *o = line;
		random_id(u, "ab:,\"x\x01{");
		random_id(it, "ab:,\"x\x01{");
		const char *fields[4] = { u, it, "4.5", "77" };
		int nf = 3 + i % 2;
		for (int f = 0; f < nf; f++) {
			int b = f > 0 ? 1 + (int)(rnd() % 3) : (int)(rnd() % 3); /* leading: 0..2 */
			while (b-- > 0)
				*o++ = blanks[rnd() % 2];
			o += sprintf(o, "%s", fields[f]);
		}
		for (int b = (int)(rnd() % 3); b > 0; b--)
			*o++ = blanks[rnd() % 2];
		*o = 0;
		assert_int_equal(parse(MFS_FORMAT_SSV, line), 1);
		assert_event(u, it, 4.5, nf == 4 ? 77 : 0);
	}
}

/* ------------------------------------------------------------------------ */
/* mfs_parse_detect, mfs_parse_is_header                                    */
/* ------------------------------------------------------------------------ */

static int detect(const char *s)
{
	return mfs_parse_detect(s, strlen(s));
}

static void parse_detect__recognises_each_format(void **state)
{
	(void)state;
	assert_int_equal(detect("{\"user\":\"a,b\\t::\"}"), MFS_FORMAT_JSONL);
	assert_int_equal(detect("  \t{\"user\":1}"), MFS_FORMAT_JSONL);
	assert_int_equal(detect("196\t242\t3\t881250949"), MFS_FORMAT_TSV);
	assert_int_equal(detect("user\titem\trating"), MFS_FORMAT_TSV);
	assert_int_equal(detect("1::1193::5::978300760"), MFS_FORMAT_DAT);
	assert_int_equal(detect("a,b::c::3"), MFS_FORMAT_DAT);
	assert_int_equal(detect("1,31,2.5,1260759144"), MFS_FORMAT_CSV);
	assert_int_equal(detect("userId,movieId,rating,timestamp\r"), MFS_FORMAT_CSV);
	assert_int_equal(detect("a:b,c,1"), MFS_FORMAT_CSV);
}

static void parse_detect__recognises_libmf_space_separated_lines(void **state)
{
	(void)state;
	assert_int_equal(detect("1 2 3"), MFS_FORMAT_SSV);
	assert_int_equal(detect("196 242 3 881250949"), MFS_FORMAT_SSV);
	assert_int_equal(detect("  1   2   3.5  \r"), MFS_FORMAT_SSV);
	assert_int_equal(detect("user item rating"), MFS_FORMAT_SSV); /* a header */
	assert_int_equal(detect("a:b c d"), MFS_FORMAT_SSV);
	/* the other formats keep their lines, spaces or not */
	assert_int_equal(detect("1 2\t3"), MFS_FORMAT_TSV);
	assert_int_equal(detect("u 1\ti 2\t3\t4"), MFS_FORMAT_TSV);
	assert_int_equal(detect("1, 2, 3"), MFS_FORMAT_CSV);
	assert_int_equal(detect("\"a b\",\"c d\",3"), MFS_FORMAT_CSV);
	assert_int_equal(detect("a b::c d::3"), MFS_FORMAT_DAT);
	assert_int_equal(detect("{\"user\": 1, \"item\": 2, \"rating\": 3}"), MFS_FORMAT_JSONL);
	/* two or five words are no record */
	assert_int_equal(detect("1 2"), -MFS_E_PARSE);
	assert_int_equal(detect("1 2 3 4 5"), -MFS_E_PARSE);
}

static void parse_detect__rejects_unrecognised_lines(void **state)
{
	(void)state;
	assert_int_equal(detect("plain words"), -MFS_E_PARSE);
	assert_int_equal(detect("a:b:c"), -MFS_E_PARSE);
	assert_int_equal(detect(""), -MFS_E_PARSE);
	assert_int_equal(detect("   "), -MFS_E_PARSE);
	assert_int_equal(mfs_parse_detect(NULL, 0), -MFS_E_PARSE);
	/* the length bounds the line */
	assert_int_equal(mfs_parse_detect("ab,c", 2), -MFS_E_PARSE);
}

static int is_header(int fmt, const char *s)
{
	return mfs_parse_is_header(fmt, s, strlen(s));
}

static void parse_is_header__true_for_movielens_headers(void **state)
{
	(void)state;
	assert_true(is_header(MFS_FORMAT_CSV, "userId,movieId,rating,timestamp"));
	assert_true(is_header(MFS_FORMAT_CSV, "userId,movieId,rating,timestamp\r"));
	assert_true(is_header(MFS_FORMAT_CSV, "\"userId\",\"movieId\",\"rating\""));
	assert_true(is_header(MFS_FORMAT_TSV, "user\titem\trating"));
	assert_true(is_header(MFS_FORMAT_SSV, "  user  item rating time"));
	assert_true(is_header(MFS_FORMAT_DAT, "UserID::MovieID::Rating::Timestamp"));
}

static void parse_is_header__false_for_data_and_other_lines(void **state)
{
	(void)state;
	assert_false(is_header(MFS_FORMAT_CSV, "1,31,2.5,1260759144"));
	assert_false(is_header(MFS_FORMAT_CSV, "user,item, 4 "));
	assert_false(is_header(MFS_FORMAT_CSV, "\"u\",\"i\",\"4\""));
	assert_false(is_header(MFS_FORMAT_TSV, "196\t242\t3\t881250949"));
	assert_false(is_header(MFS_FORMAT_DAT, "1::1193::5::978300760"));
	assert_false(is_header(MFS_FORMAT_SSV, "196 242 3 881250949"));
	assert_false(is_header(MFS_FORMAT_SSV, "user item"));
	/* wrong field count, blank, jsonl, unknown format */
	assert_false(is_header(MFS_FORMAT_CSV, "userId,movieId"));
	assert_false(is_header(MFS_FORMAT_CSV, "a,b,c,d,e"));
	assert_false(is_header(MFS_FORMAT_CSV, ""));
	assert_false(is_header(MFS_FORMAT_CSV, "  \r"));
	assert_false(is_header(MFS_FORMAT_JSONL, "{\"user\":\"u\",\"item\":\"i\",\"rating\":\"x\"}"));
	assert_false(is_header(MFS_FORMAT_AUTO, "userId,movieId,rating,timestamp"));
	assert_false(mfs_parse_is_header(MFS_FORMAT_CSV, NULL, 0));
}

/* ------------------------------------------------------------------------ */
/* mfs_fields_parse, format names                                           */
/* ------------------------------------------------------------------------ */

static void assert_fields(const struct mfs_fields *f, const char *u, const char *i,
			  const char *r, const char *t)
{
	assert_string_equal(f->user, u);
	assert_string_equal(f->item, i);
	assert_string_equal(f->rating, r);
	assert_string_equal(f->time, t);
}

static void fields_parse__keeps_defaults_for_null_and_empty(void **state)
{
	(void)state;
	struct mfs_fields f;
	memset(&f, 'z', sizeof f);
	assert_int_equal(mfs_fields_parse(&f, NULL, NULL, 0), 0);
	assert_fields(&f, "user", "item", "rating", "time");
	memset(&f, 'z', sizeof f);
	assert_int_equal(mfs_fields_parse(&f, "", NULL, 0), 0);
	assert_fields(&f, "user", "item", "rating", "time");
}

static void fields_parse__applies_any_subset_in_any_order(void **state)
{
	(void)state;
	struct mfs_fields f;
	assert_int_equal(mfs_fields_parse(&f, "user=userId,item=movieId,rating=rating,time=timestamp",
					  NULL, 0),
			 0);
	assert_fields(&f, "userId", "movieId", "rating", "timestamp");
	assert_int_equal(mfs_fields_parse(&f, "time=ts,user=uid", NULL, 0), 0);
	assert_fields(&f, "uid", "item", "rating", "ts");
	/* a later entry for the same role wins; '=' may appear in a name */
	assert_int_equal(mfs_fields_parse(&f, "item=a,item=b=c", NULL, 0), 0);
	assert_fields(&f, "user", "b=c", "rating", "time");
	char name63[80];
	memset(name63, 'n', 63);
	strcpy(name63 + 63, "");
	char spec[100];
	snprintf(spec, sizeof spec, "rating=%s", name63);
	assert_int_equal(mfs_fields_parse(&f, spec, NULL, 0), 0);
	assert_string_equal(f.rating, name63);
}

static void expect_fields_error(const char *spec, const char *why)
{
	struct mfs_fields f;
	char r[256] = "";
	assert_int_equal(mfs_fields_parse(&f, "user=keep", NULL, 0), 0);
	assert_int_equal(mfs_fields_parse(&f, spec, r, sizeof r), -MFS_E_INVAL);
	assert_string_equal(r, why);
	/* untouched on failure */
	assert_fields(&f, "keep", "item", "rating", "time");
}

static void fields_parse__rejects_bad_specs(void **state)
{
	(void)state;
	expect_fields_error("usr=a", "unknown field \"usr\" in --fields (expected user, item, rating, time, type)");
	expect_fields_error("user=a,score=b",
			    "unknown field \"score\" in --fields (expected user, item, rating, time, type)");
	expect_fields_error("user", "missing '=' in --fields entry \"user\" (expected role=name)");
	expect_fields_error("user=", "empty name for user in --fields");
	expect_fields_error("user=a,", "empty entry in --fields");
	expect_fields_error(",user=a", "empty entry in --fields");
	expect_fields_error("user=a,,item=b", "empty entry in --fields");
	char spec[100];
	snprintf(spec, sizeof spec, "time=%064d", 0);
	expect_fields_error(spec, "name for time in --fields longer than 63 bytes");
	/* event-type weights: the type's bytes are quoted, the weight read as ratings are */
	expect_fields_error("type=t,weight:\x1b[2J=x",
			    "weight \"x\" of event type \"\\x1b[2J\" is not a number >= 0");
	expect_fields_error("type=t,weight:buy=-1", "weight \"-1\" of event type \"buy\" is not a number >= 0");
	expect_fields_error("type=t,weight:buy=1e99",
			    "weight \"1e99\" of event type \"buy\" is not a number >= 0");
	expect_fields_error("type=\x01", "type=\\x01 in --fields needs weights (--weights TYPE=W,...)");
	/* a NULL reason is fine */
	struct mfs_fields f;
	assert_int_equal(mfs_fields_parse(&f, "bogus", NULL, 0), -MFS_E_INVAL);
	assert_int_equal(mfs_fields_parse(NULL, "user=a", NULL, 0), -MFS_E_INVAL);
}

/* "unrated" (implicit feedback): a record without its rating weighs 1; without it, an error. */
static void fields_parse__unrated_makes_the_rating_optional(void **state)
{
	(void)state;
	struct mfs_fields f, plain;
	mfs_event e;
	char why[128];
	assert_int_equal(mfs_fields_parse(&f, "unrated", NULL, 0), 0);
	assert_int_equal(f.unrated, 1);
	assert_int_equal(mfs_fields_parse(&plain, NULL, NULL, 0), 0);
	assert_int_equal(plain.unrated, 0);
	char l1[] = "u1\ti1";
	assert_int_equal(mfs_parse_line(MFS_FORMAT_TSV, &f, l1, strlen(l1), &e, why, sizeof why), 1);
	assert_true(e.rating == 1.0f && e.user_len == 2 && e.item_len == 2);
	char l2[] = "u1\ti1\t3.5";
	assert_int_equal(mfs_parse_line(MFS_FORMAT_TSV, &f, l2, strlen(l2), &e, why, sizeof why), 1);
	assert_true(e.rating == 3.5f); /* present: the weight */
	char l3[] = "u1,i1";
	assert_int_equal(mfs_parse_line(MFS_FORMAT_CSV, &f, l3, strlen(l3), &e, why, sizeof why), 1);
	char l4[] = "u1\ti1";
	assert_true(mfs_parse_line(MFS_FORMAT_TSV, &plain, l4, strlen(l4), &e, why, sizeof why) < 0);
	assert_string_equal(why, "expected 3 or 4 fields, found 2");
	char l5[] = "u1";
	assert_true(mfs_parse_line(MFS_FORMAT_TSV, &f, l5, strlen(l5), &e, why, sizeof why) < 0);
	assert_string_equal(why, "expected 2 to 4 fields, found 1");
	char j1[] = "{\"user\": \"a\", \"item\": \"x\"}";
	assert_int_equal(mfs_parse_line(MFS_FORMAT_JSONL, &f, j1, strlen(j1), &e, why, sizeof why), 1);
	assert_true(e.rating == 1.0f);
	char j2[] = "{\"user\": \"a\", \"item\": \"x\"}";
	assert_true(mfs_parse_line(MFS_FORMAT_JSONL, &plain, j2, strlen(j2), &e, why, sizeof why) < 0);
}

static void format_parse__maps_names_both_ways(void **state)
{
	(void)state;
	static const char *const names[] = { "auto", "tsv", "csv", "dat", "jsonl", "ssv" };
	static const int values[] = { MFS_FORMAT_AUTO, MFS_FORMAT_TSV, MFS_FORMAT_CSV,
				      MFS_FORMAT_DAT, MFS_FORMAT_JSONL, MFS_FORMAT_SSV };
	for (int i = 0; i < 6; i++) {
		assert_int_equal(mfs_format_parse(names[i]), values[i]);
		assert_string_equal(mfs_format_name(values[i]), names[i]);
	}
	assert_int_equal(mfs_format_parse("TSV"), -MFS_E_INVAL);
	assert_int_equal(mfs_format_parse("json"), -MFS_E_INVAL);
	assert_int_equal(mfs_format_parse(""), -MFS_E_INVAL);
	assert_int_equal(mfs_format_parse(NULL), -MFS_E_INVAL);
	assert_string_equal(mfs_format_name(6), "unknown");
	assert_string_equal(mfs_format_name(-1), "unknown");
}

/*
 * A comma-decimal LC_NUMERIC for this process, as an embedding application
 * may set: an installed de_DE/fr_FR, else one built with localedef under the
 * test directory (LC_NUMERIC only, about a second) and found through
 * LOCPATH. NULL when neither works (the test is then skipped).
 */
static const char *set_comma_locale(void)
{
	static const char *const names[] = { "de_DE.UTF-8", "fr_FR.UTF-8", "de_DE.utf8",
					     "fr_FR.utf8" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (setlocale(LC_NUMERIC, names[i]))
			return names[i];
	char src[1300], dir[1300];
	snprintf(src, sizeof src, "%s", mfs_test_path("comma.locale"));
	snprintf(dir, sizeof dir, "%s", mfs_test_path("locales"));
	static const char def[] = "LC_NUMERIC\ndecimal_point \"<U002C>\"\n"
				  "thousands_sep \"<U002E>\"\ngrouping 3;3\nEND LC_NUMERIC\n";
	mfs_write_file(src, def, sizeof def - 1);
	struct mfs_run r;
	/* -c: the other categories are missing on purpose (exit 1, files written) */
	if (mfs_run_sh(&r, "mkdir -p '%s' && localedef -c -i '%s' -f UTF-8 '%s/xx_COMMA.UTF-8'",
		       dir, src, dir) != 0)
		return NULL;
	mfs_run_free(&r);
	setenv("LOCPATH", dir, 1);
	return setlocale(LC_NUMERIC, "xx_COMMA.UTF-8") ? "xx_COMMA.UTF-8 (localedef)" : NULL;
}

/* Numbers read the same whatever LC_NUMERIC the embedding program set: the
 * slow path (more than 19 digits, or an exponent beyond the exact powers)
 * too, which hands a normalised text to a C-locale strtod. */
static void parse_number__ignores_a_comma_decimal_locale(void **state)
{
	(void)state;
	const char *loc = set_comma_locale();
	if (!loc) {
		print_message("no comma-decimal locale (none installed, localedef failed)\n");
		skip();
	}
	/* the locale really changes what strtod reads, or this test proves nothing */
	char *end;
	double probe = strtod("4.5", &end);
	if (probe == 4.5) {
		setlocale(LC_NUMERIC, "C");
		print_message("%s does not change strtod\n", loc);
		skip();
	}
	static const struct {
		const char *s;
		double want;
	} cases[] = {
		{ "4.5", 4.5 },
		{ "4.50000000000000000000000001", 4.5 },         /* 28 digits: slow path */
		{ "0.000000000000000000000000045e26", 4.5 },     /* leading zeros count */
		{ "-3.25e30", -3.25e30 },                        /* exponent past 10^22 */
		{ "1234567890123456789012.5", 1234567890123456789012.5 },
	};
	double got[sizeof cases / sizeof cases[0]];
	int rc[sizeof cases / sizeof cases[0]];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		rc[i] = mfs_parse_number(cases[i].s, strlen(cases[i].s), &got[i]);
	int line = parse_n(MFS_FORMAT_TSV, NULL, "u\ti\t4.50000000000000000000000001",
			   strlen("u\ti\t4.50000000000000000000000001"));
	float rating = ev.rating;
	setlocale(LC_NUMERIC, "C");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(rc[i], 0);
		assert_true(got[i] == cases[i].want);
	}
	assert_int_equal(line, 1);
	assert_true(rating == 4.5f);
}

#define T(f) cmocka_unit_test_teardown(f, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(parse_number__accepts_integers_and_decimals),
		T(parse_number__rejects_bad_grammar),
		T(parse_number__rejects_overflow_to_inf),
		T(parse_number__rounds_like_strtod),
		T(parse_number__handles_very_long_digit_strings),
		T(parse_number__ignores_a_comma_decimal_locale),
		T(parse_tsv__accepts_three_fields),
		T(parse_tsv__accepts_four_fields_with_time),
		T(parse_tsv__ignores_trailing_cr),
		T(parse_tsv__trims_spaces_around_rating_and_time),
		T(parse_tsv__keeps_id_bytes_verbatim),
		T(parse_tsv__accepts_nul_bytes_in_ids),
		T(parse_tsv__rejects_missing_fields),
		T(parse_tsv__rejects_too_many_fields),
		T(parse_tsv__rejects_non_numeric_rating),
		T(parse_tsv__rejects_nan_rating),
		T(parse_tsv__rejects_overflowing_rating),
		T(parse_tsv__rejects_non_numeric_time),
		T(parse_tsv__truncates_decimal_time),
		T(parse_tsv__rejects_int64_time_overflow),
		T(parse_tsv__reads_integer_times_exactly),
		T(parse_tsv__treats_empty_time_as_absent),
		T(parse_tsv__returns_zero_for_empty_and_blank_lines),
		T(parse_tsv__rejects_empty_ids),
		T(parse_tsv__rejects_id_longer_than_max),
		T(parse_tsv__survives_a_1mib_line),
		T(parse_tsv__quotes_unprintable_bytes_in_reason),
		T(parse_line__never_overflows_a_small_reason),
		T(parse_line__rejects_unknown_format),
		T(parse_line__keeps_invariants_on_random_bytes),
		T(parse_line__splits_random_ids_at_every_offset),
		T(parse_csv__accepts_movielens_lines),
		T(parse_csv__accepts_quoted_fields),
		T(parse_csv__rejects_malformed_quotes),
		T(parse_csv__rejects_wrong_field_counts),
		T(parse_csv__rejects_bad_numbers),
		T(parse_dat__accepts_movielens_lines),
		T(parse_dat__keeps_single_colons_in_ids),
		T(parse_dat__rejects_wrong_field_counts),
		T(parse_dat__rejects_bad_numbers),
		T(parse_jsonl__accepts_string_ids),
		T(parse_jsonl__accepts_numeric_ids),
		T(parse_jsonl__time_is_optional),
		T(parse_jsonl__decodes_escapes_in_ids),
		T(parse_jsonl__accepts_nul_escape_in_id),
		T(parse_jsonl__ignores_unknown_fields_and_nested_values),
		T(parse_jsonl__uses_custom_field_names),
		T(parse_jsonl__accepts_rating_and_time_as_strings),
		T(parse_jsonl__rejects_non_numeric_ratings),
		T(parse_jsonl__names_the_missing_field),
		T(parse_jsonl__follows_dotted_paths_into_nested_objects),
		T(parse_jsonl__reads_a_kafka_connect_envelope),
		T(parse_jsonl__dotted_keys_match_whole_names_first),
		T(parse_jsonl__dotted_paths_do_not_enter_arrays_or_end_at_objects),
		T(parse_jsonl__last_duplicate_key_wins),
		T(parse_jsonl__matches_decoded_keys),
		T(parse_jsonl__missing_field_names_the_keys_there_are),
		T(parse_jsonl__accepts_json_whitespace),
		T(parse_jsonl__checks_id_types_and_lengths),
		T(parse_jsonl__rejects_malformed_json),
		T(parse_jsonl__rejects_deep_nesting),
		T(parse_jsonl__survives_a_1mib_string),
		T(parse_ssv__accepts_libmf_lines),
		T(parse_ssv__rejects_wrong_field_counts_and_bad_numbers),
		T(parse_ssv__splits_random_ids_at_every_offset),
		T(parse_detect__recognises_each_format),
		T(parse_detect__recognises_libmf_space_separated_lines),
		T(parse_detect__rejects_unrecognised_lines),
		T(parse_is_header__true_for_movielens_headers),
		T(parse_is_header__false_for_data_and_other_lines),
		T(fields_parse__keeps_defaults_for_null_and_empty),
		T(fields_parse__applies_any_subset_in_any_order),
		T(fields_parse__rejects_bad_specs),
		T(fields_parse__unrated_makes_the_rating_optional),
		T(format_parse__maps_names_both_ways),
	};
	return cmocka_run_group_tests_name("parse", tests, NULL, NULL);
}
