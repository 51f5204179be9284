/*
 * fuzz_titles.c - libFuzzer target for src/titles.c (mfs_titles_parse).
 *
 * Input: the whole text of a title file. It is copied into a heap buffer of
 * exactly its size, so that AddressSanitizer reports any read past it.
 *
 * Invariants checked (abort on violation):
 *   - the parse returns 0 or -MFS_E_PARSE (-MFS_E_NOMEM is not expected at
 *     these sizes); on failure the reason is non-empty printable ASCII;
 *   - on success: at least one title, fewer malformed lines than titles;
 *     every entry's ID is 1..MFS_ID_MAX bytes found in the input (with its
 *     quotes doubled if it came from a quoted csv field), the index
 *     finds it (mfs_titles_get returns that entry's title), and its title is
 *     non-empty, strictly valid UTF-8 with no control character and no space
 *     at either end;
 *   - an ID that is not in the table (the entry's ID with a byte appended)
 *     is only found if the input holds it too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "titles.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                       \
	do {                                                                           \
		if (!(c)) {                                                            \
			fprintf(stderr, "fuzz_titles: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #c);                                         \
			abort();                                                       \
		}                                                                      \
	} while (0)

static void check_printable(const char *r)
{
	CHECK(r[0] != 0);
	for (; *r; r++)
		CHECK(*r >= 0x20 && *r < 0x7f);
}

/* Strict UTF-8, no controls, no space at the ends. */
static void check_title(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	CHECK(n > 0 && p[0] != ' ' && p[n - 1] != ' ');
	while (*p) {
		unsigned c = *p, cp, k;
		if (c < 0x80) {
			CHECK(c >= 0x20 && c != 0x7F);
			p++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			k = 1, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			k = 2, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			k = 3, cp = c & 0x07;
		else
			CHECK(!"bad UTF-8 lead byte");
		for (unsigned i = 1; i <= k; i++) {
			CHECK((p[i] & 0xC0) == 0x80);
			cp = cp << 6 | (p[i] & 0x3F);
		}
		CHECK(!(k == 2 && cp < 0x800) && !(k == 3 && cp < 0x10000));
		CHECK(cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF));
		p += k + 1;
	}
}

/* Whether text[0..n) holds needle[0..m) somewhere. */
static int contains(const char *text, size_t n, const char *needle, size_t m)
{
	if (m > n)
		return 0;
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(text + i, needle, m) == 0)
			return 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	CHECK(buf);
	memcpy(buf, data, size);
	mfs_titles *t = NULL;
	mfs_diag d;
	int rc = mfs_titles_parse(&t, buf, size, "fuzz.txt", &d);
	CHECK(rc == 0 || rc == -MFS_E_PARSE);
	if (rc < 0) {
		CHECK(t == NULL);
		CHECK(d.code == MFS_E_PARSE);
		check_printable(d.reason);
		free(buf);
		return 0;
	}
	size_t n = mfs_titles_count(t);
	mfs_diag first;
	uint64_t skipped = mfs_titles_skipped(t, &first);
	CHECK(n >= 1 && skipped <= n);
	if (skipped) {
		CHECK(first.line >= 1);
		check_printable(first.reason);
	}
	for (size_t i = 0; i < n; i++) {
		const char *id, *title;
		size_t len;
		CHECK(mfs_titles_at(t, i, &id, &len, &title) == 0);
		CHECK(len >= 1 && len <= MFS_ID_MAX);
		/* the ID is in the input as it is, or csv-quoted with its quotes doubled */
		char quoted[2 * MFS_ID_MAX];
		size_t qn = 0;
		for (size_t k = 0; k < len; k++) {
			quoted[qn++] = id[k];
			if (id[k] == '"')
				quoted[qn++] = '"';
		}
		CHECK(contains(buf, size, id, len) || contains(buf, size, quoted, qn));
		CHECK(mfs_titles_get(t, id, len) == title);
		check_title(title);
		char longer[MFS_ID_MAX + 2];
		memcpy(longer, id, len);
		longer[len] = 'z';
		if (mfs_titles_get(t, longer, len + 1) && !memchr(id, '"', len))
			CHECK(contains(buf, size, longer, len + 1));
	}
	CHECK(mfs_titles_at(t, n, NULL, NULL, NULL) == -MFS_E_RANGE);
	mfs_titles_free(t);
	free(buf);
	return 0;
}
