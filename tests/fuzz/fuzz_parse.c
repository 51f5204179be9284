/*
 * fuzz_parse.c - libFuzzer target for src/parse.c.
 *
 * Input: byte 0 picks the operation, byte 1 the jsonl field mapping (bits
 * 0-2) and the size of the reason buffer (bits 3-7), the rest is the line. The line is copied into a
 * heap buffer of exactly its size (and the reason into one of exactly rlen
 * bytes) so that AddressSanitizer reports any read or write past either.
 *
 *   op % 7: 0 detect, then parse with the detected format
 *           1..4 MFS_FORMAT_TSV/CSV/DAT/JSONL, 6 MFS_FORMAT_SSV
 *           5 mfs_parse_number, checked against strtod, and mfs_fields_parse
 *
 * Invariants checked (abort on violation):
 *   - parse_line returns 1, 0 or -MFS_E_PARSE;
 *   - on 1: both IDs are non-empty, at most MFS_ID_MAX bytes, inside the
 *     line buffer; the rating is finite;
 *   - on an error: the reason is NUL-terminated inside rlen, non-empty and
 *     printable ASCII;
 *   - is_header never fires for a line that parses with a numeric rating;
 *   - jsonl with names without dots: the nested-path parser (forced on)
 *     gives the same answer as the flat one, byte for byte;
 *   - mfs_parse_number agrees with strtod, bit for bit, on every text it
 *     accepts, and accepts every finite text over [0-9+-.eE] that strtod
 *     reads in full.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                      \
	do {                                                                          \
		if (!(c)) {                                                           \
			fprintf(stderr, "fuzz_parse: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #c);                                        \
			abort();                                                      \
		}                                                                     \
	} while (0)

static const char *const mappings[] = {
	NULL,
	"user=userId,item=movieId,rating=rating,time=timestamp",
	"user=a,item=a,rating=a,time=a", /* one key feeds every role */
	"time=t,rating=r,item=i,user=u",
	/* dotted paths: a Kafka Connect envelope, overlapping prefixes, odd dots */
	"user=payload.userId,item=payload.movieId,rating=payload.rating,time=payload.timestamp",
	"user=a.b,item=a,rating=a.b.c,time=b.a",
	"user=a.b.c,item=a.b,rating=a..b,time=.",
	"user=u,item=p.i,rating=p.q.r,time=p.q.t",
};
#define NMAPPINGS (sizeof mappings / sizeof mappings[0])

static void check_reason(const char *r, size_t rlen)
{
	if (!r || rlen == 0)
		return;
	size_t n = strnlen(r, rlen);
	CHECK(n < rlen);
	CHECK(n > 0 || rlen == 1);
	for (size_t i = 0; i < n; i++)
		CHECK(r[i] >= 0x20 && r[i] < 0x7f);
}

static int only_number_chars(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789+-.eE", s[i]) || s[i] == 0)
			return 0;
	return 1;
}

static void fuzz_number(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	CHECK(s);
	memcpy(s, data, size);
	s[size] = 0;

	double v = 0;
	int rc = mfs_parse_number(s, size, &v);
	CHECK(rc == 0 || rc == -1);
	char *end;
	double want = strtod(s, &end);
	int full = end == s + size && size > 0;
	if (rc == 0) {
		CHECK(isfinite(v));
		CHECK(full);
		CHECK(v == want && signbit(v) == signbit(want));
	} else if (full && isfinite(want) && only_number_chars(s, size)) {
		CHECK(!"strtod reads a finite number that mfs_parse_number rejects");
	}

	struct mfs_fields f;
	char reason[64];
	rc = mfs_fields_parse(&f, s, reason, sizeof reason);
	CHECK(rc == 0 || rc == -MFS_E_INVAL);
	if (rc == 0) {
		CHECK(strnlen(f.user, sizeof f.user) <= MFS_FIELD_MAX);
		CHECK(strnlen(f.item, sizeof f.item) <= MFS_FIELD_MAX);
		CHECK(strnlen(f.rating, sizeof f.rating) <= MFS_FIELD_MAX);
		CHECK(strnlen(f.time, sizeof f.time) <= MFS_FIELD_MAX);
		CHECK(strnlen(f.type, sizeof f.type) <= MFS_FIELD_MAX);
		CHECK(f.dotted == (strchr(f.user, '.') || strchr(f.item, '.') ||
				   strchr(f.rating, '.') || strchr(f.time, '.') ||
				   strchr(f.type, '.')));
	} else {
		check_reason(reason, sizeof reason);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	int op = data[0] % 7;
	unsigned sel = data[1];
	data += 2;
	size -= 2;

	if (op == 5) {
		fuzz_number(data, size);
		return 0;
	}

	struct mfs_fields f;
	CHECK(mfs_fields_parse(&f, mappings[sel % NMAPPINGS], NULL, 0) == 0);
	/* reason buffer: none, tiny, or roomy */
	size_t rlen = (sel >> 3) % 4 == 0 ? 0 : (sel >> 3) % 4 == 1 ? 1 + (sel >> 5) : 256;

	char *line = malloc(size ? size : 1);
	char *reason = rlen ? malloc(rlen) : NULL;
	CHECK(line && (rlen == 0 || reason));
	memcpy(line, data, size);

	int fmt = op == 6 ? MFS_FORMAT_SSV : op;
	if (op == 0) {
		fmt = mfs_parse_detect(line, size);
		CHECK(fmt == -MFS_E_PARSE || (fmt >= MFS_FORMAT_TSV && fmt <= MFS_FORMAT_LAST));
		if (fmt < 0)
			goto out;
	}

	int header = mfs_parse_is_header(fmt, line, size);
	CHECK(header == 0 || header == 1);
	if (fmt == MFS_FORMAT_JSONL)
		CHECK(header == 0);

	mfs_event ev;
	memset(&ev, 0, sizeof ev);
	if (reason)
		memset(reason, 0x5a, rlen);
	int rc = mfs_parse_line(fmt, &f, line, size, &ev, reason, rlen);
	CHECK(rc == 1 || rc == 0 || rc == -MFS_E_PARSE);
	if (rc == 1) {
		CHECK(ev.user && ev.item);
		CHECK(ev.user_len >= 1 && ev.user_len <= MFS_ID_MAX);
		CHECK(ev.item_len >= 1 && ev.item_len <= MFS_ID_MAX);
		CHECK(ev.user >= line && ev.user + ev.user_len <= line + size);
		CHECK(ev.item >= line && ev.item + ev.item_len <= line + size);
		CHECK(isfinite(ev.rating));
		/* a line that yields an event has a numeric rating: not a header */
		CHECK(header == 0);
	} else if (rc < 0) {
		check_reason(reason, rlen);
	}
	if (fmt == MFS_FORMAT_JSONL && !f.dotted) {
		/* the same line through the nested-path parser: the same answer */
		struct mfs_fields g = f;
		g.dotted = 1;
		char *copy = malloc(size ? size : 1), why[256], why2[256];
		CHECK(copy);
		memcpy(copy, data, size);
		mfs_event e2;
		memset(&e2, 0, sizeof e2);
		int rc2 = mfs_parse_line(fmt, &g, copy, size, &e2, why2, sizeof why2);
		CHECK(rc2 == rc);
		if (rc == 1) {
			CHECK(e2.user_len == ev.user_len && e2.item_len == ev.item_len);
			CHECK(e2.user - copy == ev.user - line && e2.item - copy == ev.item - line);
			CHECK(memcmp(e2.user, ev.user, ev.user_len) == 0);
			CHECK(memcmp(e2.item, ev.item, ev.item_len) == 0);
			CHECK(memcmp(&e2.rating, &ev.rating, sizeof ev.rating) == 0);
			CHECK(e2.time == ev.time);
		} else if (rc < 0) {
			memcpy(copy, data, size);
			CHECK(mfs_parse_line(fmt, &f, copy, size, &e2, why, sizeof why) == rc);
			CHECK(strcmp(why, why2) == 0);
		}
		free(copy);
	}
out:
	free(reason);
	free(line);
	return 0;
}
