/* test_idmap.c - the open-addressing ID index. */
#include <stdio.h>
#include <string.h>

#include "idmap.h"
#include "internal.h"
#include "support.h"

static void idmap_get__assigns_rows_in_order_of_first_sight(void **state)
{
	(void)state;
	struct mfs_idmap m;
	assert_int_equal(mfs_idmap_init(&m, 100), 0);
	int is_new;
	assert_int_equal(mfs_idmap_get(&m, 11, "a", 1, &is_new), 0);
	assert_true(is_new);
	assert_int_equal(mfs_idmap_get(&m, 22, "bb", 2, &is_new), 1);
	assert_true(is_new);
	assert_int_equal(mfs_idmap_get(&m, 11, "a", 1, &is_new), 0);
	assert_false(is_new);
	assert_int_equal(m.used, 2);
	assert_int_equal(m.row_len[1], 2);
	assert_memory_equal(m.arena + m.row_off[1], "bb", 2);
	assert_int_equal(mfs_idmap_find(&m, 22), 1);
	assert_int_equal(mfs_idmap_find(&m, 33), -1);
	mfs_idmap_free(&m);
}

static void idmap_get__full_table_is_an_error(void **state)
{
	(void)state;
	struct mfs_idmap m;
	assert_int_equal(mfs_idmap_init(&m, 3), 0);
	int is_new;
	for (uint64_t k = 1; k <= 3; k++)
		assert_int_equal(mfs_idmap_get(&m, k, "x", 1, &is_new), (int64_t)k - 1);
	assert_int_equal(mfs_idmap_get(&m, 4, "y", 1, &is_new), -MFS_E_FULL);
	assert_false(is_new);
	/* known keys still resolve when full */
	assert_int_equal(mfs_idmap_get(&m, 2, "x", 1, &is_new), 1);
	mfs_idmap_free(&m);
}

static void idmap_find__probes_across_the_wrap_around(void **state)
{
	(void)state;
	struct mfs_idmap m;
	assert_int_equal(mfs_idmap_init(&m, 8), 0); /* 16 slots */
	uint64_t last = m.mask;                      /* keys hashing to the last slot */
	int is_new;
	for (uint64_t j = 0; j < 4; j++)
		assert_int_equal(mfs_idmap_get(&m, last + (j << 8), "k", 1, &is_new), (int64_t)j);
	for (uint64_t j = 0; j < 4; j++)
		assert_int_equal(mfs_idmap_find(&m, last + (j << 8)), (int64_t)j);
	/* slots 0..2 hold the overflow of the chain */
	assert_int_equal(m.slots[0].key, last + (1 << 8));
	assert_int_equal(mfs_idmap_find(&m, last + (9 << 8)), -1);
	mfs_idmap_free(&m);
}

static void idmap__many_ids_all_distinct_and_found(void **state)
{
	(void)state;
	struct mfs_idmap m;
	assert_int_equal(mfs_idmap_init(&m, 50000), 0);
	char id[32];
	int is_new;
	for (int i = 0; i < 50000; i++) {
		int n = snprintf(id, sizeof id, "user-%d", i);
		uint64_t k = mfs_idmap_key(mfs_hash_id(id, (size_t)n, 7));
		assert_int_equal(mfs_idmap_get(&m, k, id, (size_t)n, &is_new), i);
		assert_true(is_new);
	}
	for (int i = 0; i < 50000; i += 97) {
		int n = snprintf(id, sizeof id, "user-%d", i);
		uint64_t k = mfs_idmap_key(mfs_hash_id(id, (size_t)n, 7));
		assert_int_equal(mfs_idmap_find(&m, k), i);
		assert_memory_equal(m.arena + m.row_off[i], id, (size_t)n);
	}
	mfs_idmap_free(&m);
}

static void idmap_key__zero_hash_is_remapped(void **state)
{
	(void)state;
	assert_int_equal(mfs_idmap_key(0), 1);
	assert_int_equal(mfs_idmap_key(5), 5);
}

static void idmap_append__rejects_duplicate_keys(void **state)
{
	(void)state;
	struct mfs_idmap m;
	assert_int_equal(mfs_idmap_init(&m, 4), 0);
	assert_int_equal(mfs_idmap_append(&m, 9, "a", 1), 0);
	assert_int_equal(mfs_idmap_append(&m, 9, "a", 1), -MFS_E_CORRUPT);
	mfs_idmap_free(&m);
}

static void hash_id__is_seeded(void **state)
{
	(void)state;
	assert_true(mfs_hash_id("42", 2, 1) != mfs_hash_id("42", 2, 2));
	assert_true(mfs_hash_id("42", 2, 1) == mfs_hash_id("42", 2, 1));
	/* IDs are bytes, not numbers: "042" and "42" differ */
	assert_true(mfs_hash_id("042", 3, 1) != mfs_hash_id("42", 2, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(idmap_get__assigns_rows_in_order_of_first_sight),
		cmocka_unit_test(idmap_get__full_table_is_an_error),
		cmocka_unit_test(idmap_find__probes_across_the_wrap_around),
		cmocka_unit_test(idmap__many_ids_all_distinct_and_found),
		cmocka_unit_test(idmap_key__zero_hash_is_remapped),
		cmocka_unit_test(idmap_append__rejects_duplicate_keys),
		cmocka_unit_test(hash_id__is_seeded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
