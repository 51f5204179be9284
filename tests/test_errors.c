/* test_errors.c - the error table and diagnostics formatting. */
#include <string.h>

#include "internal.h"
#include "support.h"

static void error_name__names_every_code(void **state)
{
	(void)state;
	assert_string_equal(mfs_error_name(0), "MFS_E_OK");
	assert_string_equal(mfs_error_name(-MFS_E_IO), "MFS_E_IO");
	assert_string_equal(mfs_error_name(MFS_E_CORRUPT), "MFS_E_CORRUPT");
	for (int c = 1; c < MFS_E_MAX_CODE; c++)
		assert_true(strncmp(mfs_error_name(-c), "MFS_E_", 6) == 0 &&
			    strcmp(mfs_error_name(-c), "MFS_E_UNKNOWN") != 0);
}

static void error_name__unknown_code_is_a_static_string(void **state)
{
	(void)state;
	assert_string_equal(mfs_error_name(9999), "MFS_E_UNKNOWN");
	assert_string_equal(mfs_error_name(-9999), "MFS_E_UNKNOWN");
}

static void error_codes__are_pinned(void **state)
{
	(void)state;
	/* Appending is allowed, renumbering is not: these values are ABI. */
	assert_int_equal(MFS_E_NOMEM, 1);
	assert_int_equal(MFS_E_INVAL, 2);
	assert_int_equal(MFS_E_IO, 3);
	assert_int_equal(MFS_E_PARSE, 4);
	assert_int_equal(MFS_E_CORRUPT, 5);
	assert_int_equal(MFS_E_VERSION, 6);
	assert_int_equal(MFS_E_FULL, 7);
	assert_int_equal(MFS_E_UNSUPPORTED, 8);
	assert_int_equal(MFS_E_NOTFOUND, 9);
	assert_int_equal(MFS_E_RANGE, 10);
	assert_int_equal(MFS_E_TRUNCATED, 11);
	assert_int_equal(MFS_E_AGAIN, 12);
	assert_int_equal(MFS_E_BUSY, 13);
}

static void diag_format__file_line_reason(void **state)
{
	(void)state;
	mfs_diag d;
	char buf[256];
	assert_int_equal(mfs_diag_set(&d, MFS_E_PARSE, 0, "data/part-3.tsv", 10422, 0,
				      "rating \"%s\" is not a number", "x"),
			 -MFS_E_PARSE);
	mfs_diag_format(&d, buf, sizeof buf);
	assert_string_equal(buf, "data/part-3.tsv:10422: rating \"x\" is not a number");
	mfs_diag_set(&d, MFS_E_CORRUPT, 0, "a.zst", 0, 4096, "bad frame");
	mfs_diag_format(&d, buf, sizeof buf);
	assert_string_equal(buf, "a.zst: byte offset 4096: bad frame");
	mfs_diag_set(&d, MFS_E_IO, 2, "m.mfs", 0, 0, "cannot open");
	mfs_diag_format(&d, buf, sizeof buf);
	assert_string_equal(buf, "m.mfs: cannot open");
	assert_int_equal(d.os_errno, 2);
}

static void diag_format__truncates_safely(void **state)
{
	(void)state;
	mfs_diag d;
	char buf[8];
	mfs_diag_set(&d, MFS_E_IO, 0, "a-long-path-name", 1, 0, "reason");
	int n = mfs_diag_format(&d, buf, sizeof buf);
	assert_true(n > 7);
	assert_int_equal(strlen(buf), 7);
	assert_null(NULL); /* mfs_diag_set(NULL, ...) is allowed: */
	assert_int_equal(mfs_diag_set(NULL, MFS_E_IO, 0, NULL, 0, 0, "x"), -MFS_E_IO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(error_name__names_every_code),
		cmocka_unit_test(error_name__unknown_code_is_a_static_string),
		cmocka_unit_test(error_codes__are_pinned),
		cmocka_unit_test(diag_format__file_line_reason),
		cmocka_unit_test(diag_format__truncates_safely),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
