/* test_titles.c - item titles: u.item, movies.csv, id<TAB>title, and files that are not. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "titles.h"

/* Load text written to a file; the table, or NULL with d filled. */
static mfs_titles *load_text(const char *name, const char *text, size_t len, int *rc, mfs_diag *d)
{
	const char *path = mfs_test_path(name);
	mfs_write_file(path, text, len);
	mfs_titles *t = NULL;
	memset(d, 0, sizeof *d);
	*rc = mfs_titles_load(&t, path, d);
	return t;
}

static mfs_titles *load_ok(const char *name, const char *text)
{
	int rc;
	mfs_diag d;
	mfs_titles *t = load_text(name, text, strlen(text), &rc, &d);
	if (rc != 0)
		fprintf(stderr, "unexpected failure: %s: %s\n", d.path, d.reason);
	assert_int_equal(rc, 0);
	assert_non_null(t);
	return t;
}

/* Loading must fail with code, the reason holding want (and naming the file). */
static void load_fails(const char *name, const char *text, size_t len, int code, const char *want)
{
	int rc;
	mfs_diag d;
	mfs_titles *t = load_text(name, text, len, &rc, &d);
	assert_int_equal(rc, -code);
	assert_null(t);
	assert_int_equal(d.code, code);
	assert_non_null(strstr(d.path, name));
	if (!strstr(d.reason, want))
		fprintf(stderr, "reason \"%s\" lacks \"%s\"\n", d.reason, want);
	assert_non_null(strstr(d.reason, want));
}

static const char *get(const mfs_titles *t, const char *id)
{
	return mfs_titles_get(t, id, strlen(id));
}

/* Every entry's title is valid UTF-8 (strictly: no overlong form, surrogate,
 * or code point above U+10FFFF) without control characters. */
static int clean_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p, cp, n;
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7F)
				return 0;
			p++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			n = 2, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 3, cp = c & 0x07;
		else
			return 0;
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		p += n + 1;
	}
	return 1;
}

static void all_clean(const mfs_titles *t)
{
	for (size_t i = 0; i < mfs_titles_count(t); i++) {
		const char *id, *title;
		size_t n;
		assert_int_equal(mfs_titles_at(t, i, &id, &n, &title), 0);
		assert_true(n >= 1 && n <= MFS_ID_MAX);
		assert_ptr_equal(mfs_titles_get(t, id, n), title); /* the index finds every entry */
		assert_true(title[0] != 0);
		assert_true(clean_utf8(title));
	}
}

static void titles_load__movies_csv_with_rfc4180_quotes(void **state)
{
	(void)state;
	const char text[] =
		"movieId,title,genres\n"
		"1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
		"11,\"American President, The (1995)\",Comedy|Drama|Romance\n"
		"1041,\"Secrets & Lies (1996)\",Drama\n"
		"3606,\"\"\"Great Performances\"\" Cats (1998)\",Musical\n"
		"5,\"Fat, \"\"Funny\"\", Father\"\r\n"
		"6,Heat (1995)\n"
		"\"q\"\"7\",\"Quoted ID\"\n";
	mfs_titles *t = load_ok("movies.csv", text);
	assert_int_equal(mfs_titles_count(t), 7);
	assert_int_equal(mfs_titles_skipped(t, NULL), 0);
	assert_string_equal(get(t, "q\"7"), "Quoted ID"); /* a quoted ID, "" unescaped */
	assert_string_equal(get(t, "1"), "Toy Story (1995)");
	assert_string_equal(get(t, "11"), "American President, The (1995)");
	assert_string_equal(get(t, "1041"), "Secrets & Lies (1996)");
	assert_string_equal(get(t, "3606"), "\"Great Performances\" Cats (1998)");
	assert_string_equal(get(t, "5"), "Fat, \"Funny\", Father");
	assert_string_equal(get(t, "6"), "Heat (1995)");
	assert_null(get(t, "movieId")); /* the header is not a title */
	assert_null(get(t, "2"));
	all_clean(t);
	mfs_titles_free(t);
}

static void titles_load__u_item_latin1_becomes_utf8(void **state)
{
	(void)state;
	const char text[] =
		"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy|0|0|0|1\n"
		"543|Mis\xe9rables, Les (1995)|01-Jan-1995||http://x|0|1\n"
		"1633|\xc1 k\xf6ldum klaka (Cold Fever) (1994)|08-Mar-1996||http://y|0\n"
		"7|Already UTF-8: Caf\xc3\xa9|x\n"
		"8|Windows-1252 \x93quotes\x94 \x80 and \x81|x\n"
		"9|Half \xc3 a sequence|x\n"
		"10|Surrogate \xed\xa0\x80 overlong \xe0\x80\xaf too big \xf4\x90\x80\x80|x\n";
	mfs_titles *t = load_ok("u.item", text);
	assert_int_equal(mfs_titles_count(t), 7);
	assert_string_equal(get(t, "1"), "Toy Story (1995)");
	assert_string_equal(get(t, "543"), "Mis\xc3\xa9rables, Les (1995)");
	assert_string_equal(get(t, "1633"), "\xc3\x81 k\xc3\xb6ldum klaka (Cold Fever) (1994)");
	assert_string_equal(get(t, "7"), "Already UTF-8: Caf\xc3\xa9");
	assert_string_equal(get(t, "8"),
			    "Windows-1252 \xe2\x80\x9cquotes\xe2\x80\x9d \xe2\x82\xac and \xef\xbf\xbd");
	assert_string_equal(get(t, "9"), "Half \xc3\x83 a sequence");
	/* not UTF-8 (a surrogate, an overlong form, above U+10FFFF): byte by byte */
	assert_string_equal(get(t, "10"), "Surrogate \xc3\xad\xc2\xa0\xe2\x82\xac overlong "
					  "\xc3\xa0\xe2\x82\xac\xc2\xaf too big "
					  "\xc3\xb4\xef\xbf\xbd\xe2\x82\xac\xe2\x82\xac");
	all_clean(t);
	mfs_titles_free(t);
}

static void titles_load__plain_tsv_trims_and_cleans(void **state)
{
	(void)state;
	const char text[] = "\xef\xbb\xbf" /* a byte-order mark */
			    "item_id\tTitle\n"
			    "  a1 \t  The Matrix (1999)  \r\n"
			    "\n"
			    "b2\tBell\x07 and\x1b tab\n"
			    "01\tzero one\n";
	mfs_titles *t = load_ok("titles.tsv", text);
	assert_int_equal(mfs_titles_count(t), 3);
	assert_string_equal(get(t, "a1"), "The Matrix (1999)");
	assert_string_equal(get(t, "b2"), "Bell  and  tab");
	assert_string_equal(get(t, "01"), "zero one");
	assert_null(get(t, "1")); /* IDs are bytes: "01" is not "1" */
	assert_null(get(t, "item_id"));
	all_clean(t);
	mfs_titles_free(t);
}

static void titles_load__later_line_of_an_id_wins(void **state)
{
	(void)state;
	mfs_titles *t = load_ok("dup.tsv", "1\tfirst\n2\ttwo\n1\tsecond\n");
	assert_int_equal(mfs_titles_count(t), 2);
	assert_string_equal(get(t, "1"), "second");
	const char *id;
	size_t n;
	assert_int_equal(mfs_titles_at(t, 0, &id, &n, NULL), 0); /* keeps its first place */
	assert_int_equal(n, 1);
	assert_memory_equal(id, "1", 1);
	assert_int_equal(mfs_titles_at(t, 2, NULL, NULL, NULL), -MFS_E_RANGE);
	mfs_titles_free(t);
}

static void titles_load__a_few_malformed_lines_are_skipped_and_counted(void **state)
{
	(void)state;
	const char text[] = "1,One\n"
			    "2,\"Unterminated\n"
			    "3,Three\n"
			    ",No ID\n"
			    "4,Four,genres,extra\n"
			    "5,Five\n"
			    "6,  \n"
			    "7,Seven\n"
			    "8,Eight\n";
	mfs_titles *t = load_ok("some-bad.csv", text);
	assert_int_equal(mfs_titles_count(t), 5);
	mfs_diag d;
	assert_int_equal(mfs_titles_skipped(t, &d), 4);
	assert_int_equal(d.line, 2);
	assert_non_null(strstr(d.path, "some-bad.csv"));
	assert_non_null(strstr(d.reason, "unterminated"));
	assert_non_null(strstr(d.reason, "movieId,title"));
	assert_null(get(t, "4"));
	assert_null(get(t, "6"));
	assert_string_equal(get(t, "8"), "Eight");
	mfs_titles_free(t);
}

static void titles_load__many_ids_are_all_found(void **state)
{
	(void)state;
	size_t n = 50000, cap = n * 32, len = 0;
	char *text = malloc(cap);
	assert_non_null(text);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "%zu|Movie number %zu|x\n", i * 7, i);
	int rc;
	mfs_diag d;
	mfs_titles *t = load_text("many.item", text, len, &rc, &d);
	assert_int_equal(rc, 0);
	assert_int_equal(mfs_titles_count(t), n);
	char id[32], want[48];
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof id, "%zu", i * 7);
		snprintf(want, sizeof want, "Movie number %zu", i);
		const char *got = get(t, id);
		assert_non_null(got);
		assert_string_equal(got, want);
		snprintf(id, sizeof id, "%zu", i * 7 + 1);
		assert_null(get(t, id));
	}
	mfs_titles_free(t);
	free(text);
}

static void titles_load__refuses_files_that_are_not_title_files(void **state)
{
	(void)state;
	/* a ratings file (u.data): four TAB fields on every line */
	const char udata[] = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n";
	load_fails("u.data", udata, sizeof udata - 1, MFS_E_PARSE,
		   "3 of 3 lines are not id<TAB>title (line 1: 4 fields)");
	/* ratings.csv: four comma fields */
	const char ratings[] = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.0,964981247\n";
	load_fails("ratings.csv", ratings, sizeof ratings - 1, MFS_E_PARSE,
		   "not a title file: 3 of 3 lines are not movieId,title[,genres]");
	load_fails("prose.txt", "Just some words\nand more words\n", 31, MFS_E_PARSE,
		   "line 1 has no '|', ',' or TAB; expected MovieLens u.item");
	load_fails("binary", "ELF\x02\x01\x01\x00\x00|,\t", 11, MFS_E_PARSE,
		   "binary data (a NUL byte at offset 6)");
	load_fails("empty.csv", "", 0, MFS_E_PARSE, "no titles in it");
	load_fails("blank.csv", "\n  \r\n\n", 6, MFS_E_PARSE, "no titles in it");
	/* one good line among many bad ones is still not a title file */
	const char mostly[] = "1|One\nx\ny\nz\n";
	load_fails("mostly-bad.item", mostly, sizeof mostly - 1, MFS_E_PARSE,
		   "3 of 4 lines are not id|title|... (line 2: no '|' after the ID)");

	/* u.user: id|age|gender|occupation|zip parses, but its "titles" are ages */
	const char uuser[] = "1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n"
			     "4|24|M|technician|43537\n5|Not a number|F|other|15213\n";
	load_fails("u.user", uuser, sizeof uuser - 1, MFS_E_PARSE,
		   "4 of its 5 titles are numbers (such as \"24\")");

	mfs_titles *t = (mfs_titles *)1;
	mfs_diag d;
	assert_int_equal(mfs_titles_load(&t, "/no/such/movies.csv", &d), -MFS_E_NOTFOUND);
	assert_ptr_equal(t, (mfs_titles *)1); /* *out untouched on failure */
	assert_string_equal(d.path, "/no/such/movies.csv");
	assert_int_equal(mfs_titles_load(&t, mfs_test_dir(), &d), -MFS_E_IO);
	assert_non_null(strstr(d.reason, "directory"));
	assert_int_equal(mfs_titles_load(NULL, "x", NULL), -MFS_E_INVAL);
}

static void titles_load__some_titles_may_be_numbers(void **state)
{
	(void)state;
	mfs_titles *t = load_ok("years.tsv", "1\t1917\n2\t2012\n3\tHeat\n4\tUp\n");
	assert_string_equal(get(t, "1"), "1917");
	mfs_titles_free(t);
	t = load_ok("two.tsv", "1\t1917\n2\t2012\n"); /* too few to judge */
	assert_int_equal(mfs_titles_count(t), 2);
	mfs_titles_free(t);
}

static void titles_get__null_and_empty_are_safe(void **state)
{
	(void)state;
	assert_null(mfs_titles_get(NULL, "1", 1));
	assert_int_equal(mfs_titles_count(NULL), 0);
	assert_int_equal(mfs_titles_skipped(NULL, NULL), 0);
	mfs_titles_free(NULL);
	mfs_titles *t = load_ok("one.tsv", "1\tOne\n");
	assert_null(mfs_titles_get(t, "", 0));
	assert_null(mfs_titles_get(t, NULL, 0));
	assert_null(mfs_titles_get(t, "1", 0));
	assert_string_equal(mfs_titles_get(t, "12", 1), "One"); /* id_len bytes only */
	mfs_diag d;
	d.line = 99;
	assert_int_equal(mfs_titles_skipped(t, &d), 0);
	assert_int_equal(d.line, 0);
	mfs_titles_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(titles_load__movies_csv_with_rfc4180_quotes),
		cmocka_unit_test(titles_load__u_item_latin1_becomes_utf8),
		cmocka_unit_test(titles_load__plain_tsv_trims_and_cleans),
		cmocka_unit_test(titles_load__later_line_of_an_id_wins),
		cmocka_unit_test(titles_load__a_few_malformed_lines_are_skipped_and_counted),
		cmocka_unit_test(titles_load__many_ids_are_all_found),
		cmocka_unit_test(titles_load__refuses_files_that_are_not_title_files),
		cmocka_unit_test(titles_load__some_titles_may_be_numbers),
		cmocka_unit_test(titles_get__null_and_empty_are_safe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
