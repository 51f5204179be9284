/* test_idmap.c - ID keys -> rows: index, eviction, admission, hashed mode, ID strings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "internal.h"
#include "support.h"

static struct mfs_idmap exact(uint64_t cap, int evict, uint32_t min_count)
{
	struct mfs_idmap m;
	assert_int_equal(mfs_idmap_init(&m, cap, MFS_IDMAP_EXACT, evict, min_count), 0);
	return m;
}

static int64_t get(struct mfs_idmap *m, uint64_t key, uint32_t tick, int *fresh)
{
	char id[32];
	int n = snprintf(id, sizeof id, "id%llu", (unsigned long long)key);
	return mfs_idmap_get(m, key, id, (size_t)n, tick, fresh);
}

static void idmap_get__assigns_rows_in_order_of_first_sight(void **state)
{
	(void)state;
	struct mfs_idmap m = exact(100, 0, 1);
	int fresh;
	assert_int_equal(mfs_idmap_get(&m, 11, "a", 1, 1, &fresh), 0);
	assert_true(fresh);
	assert_int_equal(mfs_idmap_get(&m, 22, "bb", 2, 2, &fresh), 1);
	assert_true(fresh);
	assert_int_equal(mfs_idmap_get(&m, 11, "a", 1, 3, &fresh), 0);
	assert_false(fresh);
	assert_int_equal(m.used, 2);
	assert_int_equal(m.row_len[1], 2);
	assert_memory_equal(m.arena + m.row_off[1], "bb", 2);
	assert_int_equal(mfs_idmap_find(&m, 22), 1);
	assert_int_equal(mfs_idmap_find(&m, 33), -1);
	assert_int_equal(mfs_idmap_seen(&m, 0), 3);
	mfs_idmap_free(&m);
}

static void idmap_get__full_table_without_eviction_is_an_error(void **state)
{
	(void)state;
	struct mfs_idmap m = exact(3, 0, 1);
	int fresh;
	for (uint64_t k = 1; k <= 3; k++)
		assert_int_equal(get(&m, k, (uint32_t)k, &fresh), (int64_t)k - 1);
	assert_int_equal(get(&m, 4, 4, &fresh), -MFS_E_FULL);
	assert_false(fresh);
	assert_int_equal(get(&m, 2, 5, &fresh), 1); /* known keys still resolve */
	mfs_idmap_free(&m);
}

static void idmap_get__full_table_evicts_least_recently_seen(void **state)
{
	(void)state;
	struct mfs_idmap m = exact(8, 1, 1);
	int fresh;
	for (uint64_t k = 1; k <= 8; k++)
		assert_int_equal(get(&m, k, (uint32_t)k, &fresh), (int64_t)k - 1);
	/* touch every ID but key 5 (row 4) again */
	for (uint64_t k = 1; k <= 8; k++)
		if (k != 5)
			get(&m, k, 100 + (uint32_t)k, &fresh);
	assert_int_equal(get(&m, 99, 200, &fresh), 4); /* took the stale row */
	assert_true(fresh);
	assert_int_equal(m.evictions, 1);
	assert_int_equal(mfs_idmap_find(&m, 5), -1);
	assert_int_equal(mfs_idmap_find(&m, 99), 4);
	assert_memory_equal(m.arena + m.row_off[4], "id99", 4);
	for (uint64_t k = 1; k <= 8; k++)
		if (k != 5)
			assert_int_equal(mfs_idmap_find(&m, k), (int64_t)k - 1);
	mfs_idmap_free(&m);
}

/*
 * The 64-bit clock: a slot keeps the low 32 bits of its last tick. Past 2^32
 * events a row unseen since tick 10 would alias to a young age (11); with the
 * sweeps the model makes every MFS_AGE_PERIOD ticks it stays the oldest.
 */
static void idmap_age__ages_do_not_alias_past_2_to_the_32_events(void **state)
{
	(void)state;
	struct mfs_idmap m = exact(8, 1, 1);
	int fresh;
	assert_int_equal(get(&m, 1, 10, &fresh), 0);
	uint64_t t = (UINT64_C(1) << 31) + 100;
	for (uint64_t k = 2; k <= 8; k++)
		get(&m, k, (uint32_t)(t + k), &fresh);
	uint64_t now = (UINT64_C(1) << 32) + 21;
	for (uint64_t s = MFS_AGE_PERIOD; s <= now; s += MFS_AGE_PERIOD)
		mfs_idmap_age(&m, s);
	assert_int_equal(get(&m, 99, (uint32_t)now, &fresh), 0); /* key 1's row */
	assert_true(fresh);
	assert_int_equal(mfs_idmap_find(&m, 1), -1);
	mfs_idmap_free(&m);
}

static void idmap_get__hot_ids_survive_a_flood_of_one_offs(void **state)
{
	(void)state;
	struct mfs_idmap m = exact(1000, 1, 1);
	int fresh;
	uint32_t tick = 0;
	/* 50 hot IDs seen every few events among 200k one-off IDs */
	for (uint64_t k = 0; k < 200000; k++) {
		get(&m, 1000000 + k, ++tick, &fresh);
		if (k % 4 == 0)
			get(&m, 1 + (k / 4) % 50, ++tick, &fresh);
	}
	int survived = 0;
	for (uint64_t h = 1; h <= 50; h++)
		survived += mfs_idmap_find(&m, h) >= 0;
	assert_int_equal(survived, 50);
	assert_true(m.evictions > 190000);
	assert_int_equal(m.used, 1000);
	/* the ID arena never grew past its reservation (32 bytes a row): evicted
	 * IDs were compacted away in place, and the live ones are intact */
	assert_int_equal(m.arena_cap, 32000);
	assert_true(m.arena_len <= m.arena_cap);
	for (uint64_t h = 1; h <= 50; h++) {
		int64_t r = mfs_idmap_find(&m, h);
		char want[32];
		int n = snprintf(want, sizeof want, "id%llu", (unsigned long long)h);
		assert_int_equal(m.row_len[r], n);
		assert_memory_equal(m.arena + m.row_off[r], want, (size_t)n);
	}
	mfs_idmap_free(&m);
}

/* Random inserts, evictions and removals against a plain array model of the map. */
static void idmap_remove__index_stays_consistent_under_churn(void **state)
{
	(void)state;
	struct mfs_idmap m = exact(64, 1, 1); /* 128 slots: long clusters, wrap-around */
	int fresh;
	uint64_t s = 7;
	for (int it = 0; it < 100000; it++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		/* keys with few distinct low bits collide into the same slots */
		uint64_t key = ((s >> 33) % 300 + 1) * 128 + (s >> 60);
		int64_t r = get(&m, key, (uint32_t)it, &fresh);
		assert_true(r >= 0 && r < 64);
		assert_int_equal(m.row_key[r], key);
	}
	/* every row's key maps back to it, and every occupied slot to a row that owns it */
	int occupied = 0;
	for (uint64_t r = 0; r < m.used; r++)
		assert_int_equal(mfs_idmap_find(&m, m.row_key[r]), (int64_t)r);
	for (uint64_t i = 0; i <= m.mask; i++)
		if (m.slots[i].key) {
			occupied++;
			assert_int_equal(m.row_key[m.slots[i].row], m.slots[i].key);
		}
	assert_int_equal(occupied, 64);
	mfs_idmap_free(&m);
}

static void idmap_find__probes_across_the_wrap_around(void **state)
{
	(void)state;
	struct mfs_idmap m = exact(8, 0, 1); /* 16 slots */
	uint64_t last = m.mask;               /* keys whose home is the last slot */
	int fresh;
	for (uint64_t j = 0; j < 4; j++)
		assert_int_equal(get(&m, last + (j << 8), 1, &fresh), (int64_t)j);
	for (uint64_t j = 0; j < 4; j++)
		assert_int_equal(mfs_idmap_find(&m, last + (j << 8)), (int64_t)j);
	assert_int_equal(m.slots[0].key, last + (1 << 8)); /* the chain wrapped */
	/* removing the head of the wrapped chain pulls the rest back */
	assert_int_equal(mfs_idmap_remove(&m, last), 1);
	for (uint64_t j = 1; j < 4; j++)
		assert_int_equal(mfs_idmap_find(&m, last + (j << 8)), (int64_t)j);
	assert_int_equal(m.slots[m.mask].key, last + (1 << 8));
	assert_int_equal(mfs_idmap_remove(&m, last), 0);
	mfs_idmap_free(&m);
}

static void idmap_get__admission_after_min_count_sightings(void **state)
{
	(void)state;
	struct mfs_idmap m = exact(100, 1, 3);
	int fresh;
	assert_int_equal(get(&m, 42, 1, &fresh), -MFS_E_NOTFOUND);
	assert_int_equal(get(&m, 42, 2, &fresh), -MFS_E_NOTFOUND);
	assert_int_equal(m.used, 0);
	assert_int_equal(get(&m, 42, 3, &fresh), 0); /* third sighting: admitted */
	assert_true(fresh);
	assert_int_equal(get(&m, 7, 4, &fresh), -MFS_E_NOTFOUND);
	assert_int_equal(mfs_idmap_sketch_count(&m, 7), 1);
	assert_int_equal(mfs_idmap_sketch_count(&m, 12345), 0);
	mfs_idmap_free(&m);
}

static void idmap_hashed__collisions_share_a_row(void **state)
{
	(void)state;
	struct mfs_idmap m;
	assert_int_equal(mfs_idmap_init(&m, 10, MFS_IDMAP_HASHED, 0, 1), 0);
	int fresh;
	uint64_t a = 0x1000000000000000ULL, b = 0x1000000000000001ULL; /* same row */
	assert_int_equal(mfs_idmap_hashed_row(&m, a), mfs_idmap_hashed_row(&m, b));
	int64_t ra = mfs_idmap_get(&m, a, "alpha", 5, 1, &fresh);
	assert_true(fresh);
	int64_t rb = mfs_idmap_get(&m, b, "beta", 4, 2, &fresh);
	assert_false(fresh); /* shared, not re-initialised */
	assert_int_equal(ra, rb);
	assert_memory_equal(m.arena + m.row_off[ra], "beta", 4); /* last ID seen */
	assert_int_equal(m.used, 1);
	/* a key of another row */
	int64_t rc = mfs_idmap_get(&m, 0xF000000000000000ULL, "gamma", 5, 3, &fresh);
	assert_true(rc != ra && fresh);
	assert_int_equal(mfs_idmap_find(&m, 0x5000000000000000ULL), -1); /* untouched row */
	mfs_idmap_free(&m);
}

static void idmap__many_ids_all_distinct_and_found(void **state)
{
	(void)state;
	struct mfs_idmap m = exact(50000, 0, 1);
	char id[32];
	int fresh;
	for (int i = 0; i < 50000; i++) {
		int n = snprintf(id, sizeof id, "user-%d", i);
		uint64_t k = mfs_idmap_key(mfs_hash_id(id, (size_t)n, 7));
		assert_int_equal(mfs_idmap_get(&m, k, id, (size_t)n, 1, &fresh), i);
		assert_true(fresh);
	}
	for (int i = 0; i < 50000; i += 97) {
		int n = snprintf(id, sizeof id, "user-%d", i);
		uint64_t k = mfs_idmap_key(mfs_hash_id(id, (size_t)n, 7));
		assert_int_equal(mfs_idmap_find(&m, k), i);
		assert_memory_equal(m.arena + m.row_off[i], id, (size_t)n);
	}
	mfs_idmap_free(&m);
}

static void idmap_append__rejects_duplicate_keys(void **state)
{
	(void)state;
	struct mfs_idmap m = exact(4, 0, 1);
	assert_int_equal(mfs_idmap_append(&m, 9, "a", 1), 0);
	assert_int_equal(mfs_idmap_append(&m, 9, "a", 1), -MFS_E_CORRUPT);
	mfs_idmap_free(&m);
}

static void hash_id__is_seeded_and_bytewise(void **state)
{
	(void)state;
	assert_true(mfs_hash_id("42", 2, 1) != mfs_hash_id("42", 2, 2));
	assert_true(mfs_hash_id("42", 2, 1) == mfs_hash_id("42", 2, 1));
	assert_true(mfs_hash_id("042", 3, 1) != mfs_hash_id("42", 2, 1)); /* not numbers */
	assert_int_equal(mfs_idmap_key(0), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(idmap_get__assigns_rows_in_order_of_first_sight),
		cmocka_unit_test(idmap_get__full_table_without_eviction_is_an_error),
		cmocka_unit_test(idmap_get__full_table_evicts_least_recently_seen),
		cmocka_unit_test(idmap_age__ages_do_not_alias_past_2_to_the_32_events),
		cmocka_unit_test(idmap_get__hot_ids_survive_a_flood_of_one_offs),
		cmocka_unit_test(idmap_remove__index_stays_consistent_under_churn),
		cmocka_unit_test(idmap_find__probes_across_the_wrap_around),
		cmocka_unit_test(idmap_get__admission_after_min_count_sightings),
		cmocka_unit_test(idmap_hashed__collisions_share_a_row),
		cmocka_unit_test(idmap__many_ids_all_distinct_and_found),
		cmocka_unit_test(idmap_append__rejects_duplicate_keys),
		cmocka_unit_test(hash_id__is_seeded_and_bytewise),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
