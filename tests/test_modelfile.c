/* test_modelfile.c - save/load round trip, corruption detection, atomic writes. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "model_internal.h"
#include "support.h"

static mfs_model *trained_with2(int optimizer, int ids, uint64_t max_users, uint32_t min_count,
				uint32_t hashes)
{
	mfs_config c;
	mfs_config_default(&c);
	c.dim = 12;
	c.max_users = max_users;
	c.max_items = 300;
	c.optimizer = optimizer;
	c.seed = 99;
	c.ids = ids;
	c.min_count = min_count;
	c.user_hashes = hashes;
	mfs_model *m;
	assert_int_equal(mfs_model_create(&m, &c, NULL), 0);
	char u[32], i[32];
	uint64_t s = 12345;
	for (int k = 0; k < 20000; k++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		int un = snprintf(u, sizeof u, "user:%llu", (unsigned long long)((s >> 33) % 400));
		int in = snprintf(i, sizeof i, "item-%llu", (unsigned long long)((s >> 17) % 250));
		mfs_event e = { u, i, (uint32_t)un, (uint32_t)in, 1.0f + (float)((s >> 45) % 9) / 2, 0 };
		mfs_model_learn(m, &e, 1, NULL);
	}
	return m;
}

static mfs_model *trained_with(int optimizer, int ids, uint64_t max_users, uint32_t min_count)
{
	return trained_with2(optimizer, ids, max_users, min_count, 1);
}

static mfs_model *trained(int optimizer)
{
	return trained_with(optimizer, MFS_IDS_EXACT, 500, 1);
}

static void assert_same_predictions(const mfs_model *a, const mfs_model *b)
{
	mfs_model_info ia, ib;
	mfs_model_info_get(a, &ia);
	mfs_model_info_get(b, &ib);
	assert_int_equal(ia.users, ib.users);
	assert_int_equal(ia.items, ib.items);
	assert_int_equal(ia.events, ib.events);
	assert_int_equal(ia.user_evictions, ib.user_evictions);
	assert_true(ia.mu == ib.mu);
	for (uint32_t u = 0; u < ia.user_rows; u += 7) {
		const char *uid;
		size_t ul;
		if (mfs_model_row(a, MFS_USERS, u, &uid, &ul, NULL) < 0)
			continue; /* hashed mode: an unused row */
		for (uint32_t i = 0; i < ia.item_rows; i += 3) {
			const char *iid;
			size_t il;
			if (mfs_model_row(a, MFS_ITEMS, i, &iid, &il, NULL) < 0)
				continue;
			float pa, pb;
			assert_int_equal(mfs_model_predict(a, uid, ul, iid, il, &pa), 3);
			assert_int_equal(mfs_model_predict(b, uid, ul, iid, il, &pb), 3);
			assert_memory_equal(&pa, &pb, sizeof pa); /* bit-identical */
		}
	}
}

static void model_save_load__round_trip_is_bit_identical(void **state)
{
	(void)state;
	for (int opt = 0; opt < 2; opt++) {
		for (int compress = 0; compress <= 3; compress += 3) {
			mfs_model *m = trained(opt), *l;
			const char *path = mfs_test_path("rt.mfs");
			mfs_save_opts so = { .compress = compress };
			mfs_diag d;
			assert_int_equal(mfs_model_save(m, path, &so, &d), 0);
			assert_int_equal(mfs_model_load(&l, path, NULL, &d), 0);
			assert_same_predictions(m, l);
			/* Learning continues identically after a reload. */
			mfs_event e = { "user:1", "item-2", 6, 6, 4.5f, 0 };
			for (int k = 0; k < 10; k++) {
				mfs_model_learn(m, &e, 1, NULL);
				mfs_model_learn(l, &e, 1, NULL);
			}
			assert_same_predictions(m, l);
			/* Saving the reloaded model gives the same bytes. */
			const char *p2 = mfs_test_path("rt2.mfs");
			assert_int_equal(mfs_model_save(m, path, &so, &d), 0);
			assert_int_equal(mfs_model_save(l, p2, &so, &d), 0);
			size_t n1, n2;
			char *b1 = mfs_read_file(path, &n1), *b2 = mfs_read_file(p2, &n2);
			assert_int_equal(n1, n2);
			assert_memory_equal(b1, b2, n1);
			free(b1);
			free(b2);
			mfs_model_free(m);
			mfs_model_free(l);
		}
	}
}

/* The eviction clock is 64-bit in the file too (its high half in a header word old files leave 0). */
static void model_save_load__keeps_a_64_bit_clock(void **state)
{
	(void)state;
	mfs_model *m = trained(1), *l;
	m->tick += UINT64_C(5) << 32;
	const char *path = mfs_test_path("tick.mfs");
	mfs_save_opts so = { .compress = 0 };
	mfs_diag d;
	assert_int_equal(mfs_model_save(m, path, &so, &d), 0);
	assert_int_equal(mfs_model_load(&l, path, NULL, &d), 0);
	assert_true(l->tick == m->tick);
	mfs_model_free(m);
	mfs_model_free(l);
}

static void model_save__compression_shrinks_and_stays_loadable(void **state)
{
	(void)state;
	mfs_model *m = trained(0);
	struct stat a, b;
	mfs_save_opts raw = { .compress = 0 }, z = { .compress = 9 };
	assert_int_equal(mfs_model_save(m, mfs_test_path("raw.mfs"), &raw, NULL), 0);
	assert_int_equal(mfs_model_save(m, mfs_test_path("z.mfs"), &z, NULL), 0);
	stat(mfs_test_path("raw.mfs"), &a);
	stat(mfs_test_path("z.mfs"), &b);
	assert_true(b.st_size < a.st_size);
	mfs_model_free(m);
}

static void corrupt_and_expect(const char *name, long flip_at, long truncate_to, int want)
{
	mfs_model *m = trained(1), *l = NULL;
	const char *path = mfs_test_path(name);
	assert_int_equal(mfs_model_save(m, path, NULL, NULL), 0);
	size_t n;
	char *b = mfs_read_file(path, &n);
	if (flip_at >= 0) {
		long at = flip_at < (long)n ? flip_at : (long)n / 2;
		b[at] ^= 0x10;
	}
	if (truncate_to >= 0)
		n = (size_t)truncate_to < n ? (size_t)truncate_to : n / 2;
	mfs_write_file(path, b, n);
	free(b);
	mfs_diag d;
	memset(&d, 0, sizeof d);
	assert_int_equal(mfs_model_load(&l, path, NULL, &d), -want);
	assert_null(l);
	assert_string_equal(d.path, path);
	assert_true(d.reason[0] != 0);
	mfs_model_free(m);
}

static void model_load__bit_flip_in_a_section_is_corrupt(void **state)
{
	(void)state;
	corrupt_and_expect("flip.mfs", 1000000000L, -1, MFS_E_CORRUPT); /* middle of the file */
}

static void model_load__bit_flip_in_the_header_is_corrupt(void **state)
{
	(void)state;
	corrupt_and_expect("hflip.mfs", 20, -1, MFS_E_CORRUPT);
}

static void model_load__truncated_file_is_corrupt(void **state)
{
	(void)state;
	corrupt_and_expect("trunc.mfs", -1, 1000000000L, MFS_E_CORRUPT);
	corrupt_and_expect("trunc2.mfs", -1, 100, MFS_E_CORRUPT);
}

static void model_load__wrong_magic_and_missing_file(void **state)
{
	(void)state;
	const char *p = mfs_test_path("notamodel.mfs");
	char junk[512];
	memset(junk, 'x', sizeof junk);
	mfs_write_file(p, junk, sizeof junk);
	mfs_model *l = NULL;
	mfs_diag d;
	assert_int_equal(mfs_model_load(&l, p, NULL, &d), -MFS_E_CORRUPT);
	assert_non_null(strstr(d.reason, "magic"));
	assert_int_equal(mfs_model_load(&l, mfs_test_path("absent.mfs"), NULL, &d), -MFS_E_NOTFOUND);
	assert_null(l);
}

static void model_load__future_version_is_refused(void **state)
{
	(void)state;
	mfs_model *m = trained(0), *l = NULL;
	const char *p = mfs_test_path("v.mfs");
	assert_int_equal(mfs_model_save(m, p, NULL, NULL), 0);
	size_t n;
	char *b = mfs_read_file(p, &n);
	b[8] = 99; /* version field */
	mfs_write_file(p, b, n);
	free(b);
	mfs_diag d;
	assert_int_equal(mfs_model_load(&l, p, NULL, &d), -MFS_E_VERSION);
	mfs_model_free(m);
}

static int count_tmp_files(const char *dir)
{
	DIR *dp = opendir(dir);
	int n = 0;
	struct dirent *e;
	while (dp && (e = readdir(dp)) != NULL)
		if (strstr(e->d_name, ".tmp."))
			n++;
	if (dp)
		closedir(dp);
	return n;
}

static void model_save__failure_leaves_old_file_and_no_temporary(void **state)
{
	(void)state;
	mfs_model *m = trained(0);
	mfs_diag d;
	/* A directory in the way of the rename: the write succeeds, the rename fails. */
	const char *blocked = mfs_test_path("blocked.mfs");
	mkdir(blocked, 0755);
	char inner[1300];
	snprintf(inner, sizeof inner, "%s/keep", blocked);
	mfs_write_file(inner, "x", 1);
	assert_int_equal(mfs_model_save(m, blocked, NULL, &d), -MFS_E_IO);
	assert_string_equal(d.path, blocked);
	assert_int_equal(count_tmp_files(mfs_test_dir()), 0);
	/* A directory that does not exist. */
	assert_int_equal(mfs_model_save(m, mfs_test_path("no/such/dir/m.mfs"), NULL, &d), -MFS_E_IO);
	assert_true(d.os_errno != 0);
	mfs_model_free(m);
}

/* Evictions, admission and hashed mode: everything round-trips, and learning
 * goes on identically after a reload (eviction clock, sketch, ID strings). */
static void model_save_load__round_trip_with_evictions_admission_and_hashing(void **state)
{
	(void)state;
	struct {
		int ids;
		uint64_t users;
		uint32_t min_count, hashes;
	} cases[] = { { MFS_IDS_EXACT, 100, 1, 1 }, { MFS_IDS_EXACT, 150, 3, 1 },
		      { MFS_IDS_HASHED, 128, 1, 1 }, { MFS_IDS_HASHED, 97, 2, 1 },
		      { MFS_IDS_HASHED, 64, 1, 2 } };
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		mfs_model *m = trained_with2(1, cases[k].ids, cases[k].users, cases[k].min_count,
					     cases[k].hashes),
			  *l;
		mfs_model_info info;
		mfs_model_info_get(m, &info);
		if (cases[k].ids == MFS_IDS_EXACT)
			assert_true(info.user_evictions > 0); /* 400 users through <= 150 rows */
		const char *path = mfs_test_path("ev.mfs");
		mfs_diag d;
		assert_int_equal(mfs_model_save(m, path, NULL, &d), 0);
		assert_int_equal(mfs_model_load(&l, path, NULL, &d), 0);
		assert_same_predictions(m, l);
		char u[32];
		for (int j = 0; j < 3000; j++) {
			int n = snprintf(u, sizeof u, "new-user-%d", j % 700);
			mfs_event e = { u, "item-3", (uint32_t)n, 6, 1.0f + (float)(j % 5), 0 };
			mfs_model_learn(m, &e, 1, NULL);
			mfs_model_learn(l, &e, 1, NULL);
		}
		assert_same_predictions(m, l);
		mfs_model_free(m);
		mfs_model_free(l);
	}
}


/*
 * A model big enough for its tables to be mapped from the file: it predicts
 * as the original, stays valid after its file is replaced by rename and then
 * deleted, learns on identically (its first step copies the mapped tables),
 * and saves the same bytes. The big sections sit at page offsets.
 */
static void model_load__mapped_tables_survive_replace_and_unlink(void **state)
{
	(void)state;
	for (int opt = 0; opt < 2; opt++) {
		mfs_model *m = trained_with(opt, MFS_IDS_EXACT, 20000, 1), *l, *l2;
		/* more users: a rows section of several pages */
		char u[32];
		for (int j = 0; j < 6000; j++) {
			int n = snprintf(u, sizeof u, "many-%d", j);
			mfs_event e = { u, "item-7", (uint32_t)n, 6, 1.0f + (float)(j % 5), 0 };
			mfs_model_learn(m, &e, 1, NULL);
		}
		const char *path = mfs_test_path("map.mfs"), *other = mfs_test_path("map2.mfs");
		mfs_diag d;
		assert_int_equal(mfs_model_save(m, path, NULL, &d), 0);
		/* the rows section (6400 rows x 64 bytes) starts at a page boundary */
		size_t n;
		unsigned char *b = (unsigned char *)mfs_read_file(path, &n);
		uint32_t ns = b[132] | (uint32_t)b[133] << 8;
		int aligned = 0;
		for (uint32_t i = 0; i < ns; i++) {
			const unsigned char *e = b + 256 + 48 * i;
			uint64_t off = 0, raw = 0;
			for (int k = 7; k >= 0; k--) {
				off = off << 8 | e[8 + k];
				raw = raw << 8 | e[24 + k];
			}
			if (e[0] == 4) /* user rows */
				aligned = off % 4096 == 0 && raw >= 6400 * 64;
		}
		free(b);
		assert_true(aligned);
		assert_int_equal(mfs_model_load(&l, path, NULL, &d), 0);
		/* replace the file by rename, then delete it: l does not notice */
		mfs_model *z = trained_with(opt, MFS_IDS_EXACT, 20000, 1);
		assert_int_equal(mfs_model_save(z, other, NULL, &d), 0);
		mfs_model_free(z);
		assert_int_equal(rename(other, path), 0);
		assert_int_equal(mfs_model_load(&l2, path, NULL, &d), 0); /* the new one */
		unlink(path);
		assert_same_predictions(m, l);
		mfs_model_free(l2);
		for (int j = 0; j < 3000; j++) {
			int un = snprintf(u, sizeof u, "many-%d", (j * 7) % 9000);
			mfs_event e = { u, "item-9", (uint32_t)un, 6, 1.0f + (float)(j % 4), 0 };
			mfs_model_learn(m, &e, 1, NULL);
			mfs_model_learn(l, &e, 1, NULL);
		}
		assert_same_predictions(m, l);
		const char *p1 = mfs_test_path("map-a.mfs"), *p2 = mfs_test_path("map-b.mfs");
		assert_int_equal(mfs_model_save(m, p1, NULL, &d), 0);
		assert_int_equal(mfs_model_save(l, p2, NULL, &d), 0);
		size_t n1, n2;
		char *b1 = mfs_read_file(p1, &n1), *b2 = mfs_read_file(p2, &n2);
		assert_int_equal(n1, n2);
		assert_memory_equal(b1, b2, n1);
		free(b1);
		free(b2);
		mfs_model_free(m);
		mfs_model_free(l);
	}
}

/* A flipped bit in a mapped section is caught by its checksum, like a read one. */
static void model_load__bit_flip_in_a_mapped_section_is_corrupt(void **state)
{
	(void)state;
	mfs_model *m = trained_with(0, MFS_IDS_EXACT, 20000, 1), *l = NULL;
	char u[32];
	for (int j = 0; j < 6000; j++) {
		int n = snprintf(u, sizeof u, "many-%d", j);
		mfs_event e = { u, "item-7", (uint32_t)n, 6, 3.0f, 0 };
		mfs_model_learn(m, &e, 1, NULL);
	}
	const char *path = mfs_test_path("mapflip.mfs");
	assert_int_equal(mfs_model_save(m, path, NULL, NULL), 0);
	size_t n;
	char *b = mfs_read_file(path, &n);
	b[n - 1000] ^= 0x01; /* in the item rows or the user rows, both mapped */
	mfs_write_file(path, b, n);
	free(b);
	mfs_diag d;
	assert_int_equal(mfs_model_load(&l, path, NULL, &d), -MFS_E_CORRUPT);
	assert_null(l);
	assert_non_null(strstr(d.reason, "checksum"));
	mfs_model_free(m);
}

/* The history of a user as item IDs, most recent first, joined by ','. */
static void history_string(const mfs_model *m, const char *u, char *buf, size_t cap)
{
	uint32_t rows[MFS_HISTORY_MAX];
	int n = mfs_model_history(m, u, strlen(u), rows, MFS_HISTORY_MAX);
	assert_true(n >= 0);
	size_t o = 0;
	buf[0] = 0;
	for (int j = 0; j < n && o < cap; j++) {
		const char *id;
		size_t len;
		assert_int_equal(mfs_model_row(m, MFS_ITEMS, rows[j], &id, &len, NULL), 0);
		o += (size_t)snprintf(buf + o, cap - o, "%s%.*s", j ? "," : "", (int)len, id);
	}
}

/* The users' histories are saved with the model and loaded back whole, so
 * a reloaded model leaves out the same items. */
static void model_save_load__histories_round_trip(void **state)
{
	(void)state;
	for (int z = 0; z <= 3; z += 3) {
		mfs_model *m = trained_with(1, MFS_IDS_EXACT, 300, 1), *l; /* 400 users: evictions */
		const char *path = mfs_test_path("hist.mfs");
		mfs_save_opts so = { .compress = z };
		mfs_diag d;
		assert_int_equal(mfs_model_save(m, path, &so, &d), 0);
		assert_int_equal(mfs_model_load(&l, path, NULL, &d), 0);
		mfs_model_info info;
		mfs_model_info_get(l, &info);
		assert_int_equal(info.history, 128);
		int nonempty = 0;
		for (uint32_t r = 0; r < info.user_rows; r++) {
			const char *uid;
			size_t ul;
			assert_int_equal(mfs_model_row(m, MFS_USERS, r, &uid, &ul, NULL), 0);
			char u[64], a[8192], b[8192];
			snprintf(u, sizeof u, "%.*s", (int)ul, uid);
			history_string(m, u, a, sizeof a);
			history_string(l, u, b, sizeof b);
			assert_string_equal(a, b);
			nonempty += a[0] != 0;
		}
		assert_int_equal(nonempty, (int)info.user_rows);
		mfs_model_free(m);
		mfs_model_free(l);
	}
}

/* A file written by 0.2.0 (before histories: no history sections) loads, as
 * a model without a history, and answers as it did then. */
static void model_load__file_of_0_2_0_loads_without_history(void **state)
{
	(void)state;
	mfs_model *m;
	mfs_diag d;
	assert_int_equal(mfs_model_load(&m, MFS_SOURCE_DIR "/tests/data/model-0.2.0.mfs", NULL, &d),
			 0);
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	assert_int_equal(info.history, 0);
	assert_int_equal(info.events, 7);
	assert_int_equal(mfs_model_history(m, "u1", 2, NULL, 0), 0);
	/* 0.2.0 answered: i1 4.1824, i2 3.7240, i4 3.3535, i3 3.3272 */
	const char *want[] = { "i1", "i2", "i4", "i3" };
	const float score[] = { 4.1824f, 3.7240f, 3.3535f, 3.3272f };
	mfs_scored top[8];
	assert_int_equal(mfs_model_recommend(m, "u1", 2, 8, top), 4);
	for (int j = 0; j < 4; j++) {
		const char *id;
		size_t len;
		mfs_model_row(m, MFS_ITEMS, top[j].row, &id, &len, NULL);
		assert_int_equal(len, 2);
		assert_memory_equal(id, want[j], 2);
		assert_float_equal(top[j].score, score[j], 1e-4);
	}
	mfs_model_free(m);
}

/* A history whose ring position is impossible (fill beyond the ring), with
 * checksums that agree, is refused rather than trusted. */
static void model_load__impossible_history_is_corrupt(void **state)
{
	(void)state;
	mfs_model *m = trained(0), *l = NULL;
	const char *p = mfs_test_path("badhist.mfs");
	assert_int_equal(mfs_model_save(m, p, NULL, NULL), 0);
	mfs_model_free(m);
	size_t n;
	uint8_t *b = (uint8_t *)mfs_read_file(p, &n);
	uint32_t ns;
	memcpy(&ns, b + 132, 4);
	uint8_t *t = b + 256, *e = NULL;
	for (uint32_t i = 0; i < ns; i++) {
		uint32_t tag;
		memcpy(&tag, t + 48 * i, 4);
		if (tag == 26) /* SEC_USER_HPOS */
			e = t + 48 * i;
	}
	assert_non_null(e);
	uint64_t off, len;
	memcpy(&off, e + 8, 8);
	memcpy(&len, e + 16, 8);
	uint32_t w = (uint32_t)129 << 16; /* 129 slots filled of a 128-item ring */
	memcpy(b + off, &w, 4);
	uint64_t sum = mfs_checksum(b + off, len);
	memcpy(e + 32, &sum, 8);
	sum = mfs_checksum(t, 48 * (size_t)ns);
	memcpy(t + 48 * ns, &sum, 8);
	mfs_write_file(p, b, n);
	free(b);
	mfs_diag d;
	assert_int_equal(mfs_model_load(&l, p, NULL, &d), -MFS_E_CORRUPT);
	assert_null(l);
	assert_non_null(strstr(d.reason, "history"));
}

/* --- crafted files: valid checksums, hostile structure -------------------------- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The table entry of section tag in a model file's bytes (NULL if absent). */
static uint8_t *entry_of(uint8_t *b, uint32_t tag)
{
	uint32_t ns = le32(b + 132);
	for (uint32_t i = 0; i < ns; i++)
		if (le32(b + 256 + 48 * i) == tag)
			return b + 256 + 48 * i;
	return NULL;
}

/* Recompute every checksum (sections inside the file, table, header), as a
 * crafted file would carry them: the loader must refuse it for its structure. */
static void reseal(uint8_t *b, size_t n)
{
	uint32_t ns = le32(b + 132);
	for (uint32_t i = 0; i < ns; i++) {
		uint8_t *e = b + 256 + 48 * i;
		uint64_t off = le64(e + 8), stored = le64(e + 16);
		if (off <= n && stored <= n - off)
			put_le64(e + 32, mfs_checksum(b + off, stored));
	}
	put_le64(b + 256 + 48 * ns, mfs_checksum(b + 256, 48 * (size_t)ns));
	put_le64(b + 248, mfs_checksum(b, 248));
}

/* Move section tag to the end of the file at an offset that is 4 bytes past
 * a 64-byte boundary (its bytes unchanged). Returns the new length. */
static size_t move_unaligned(uint8_t **b, size_t n, uint32_t tag)
{
	uint8_t *e = entry_of(*b, tag);
	assert_non_null(e);
	uint64_t off = le64(e + 8), stored = le64(e + 16);
	size_t at = ((n + 63) & ~(size_t)63) + 4;
	*b = realloc(*b, at + stored);
	assert_non_null(*b);
	memset(*b + n, 0, at - n);
	memcpy(*b + at, *b + off, stored);
	put_le64(entry_of(*b, tag) + 8, at);
	reseal(*b, at + stored);
	return at + stored;
}

static void load_expect(const char *path, const void *b, size_t n, const char *why)
{
	mfs_write_file(path, b, n);
	mfs_model *l = NULL;
	mfs_diag d;
	memset(&d, 0, sizeof d);
	assert_int_equal(mfs_model_load(&l, path, NULL, &d), -MFS_E_CORRUPT);
	assert_null(l);
	if (!strstr(d.reason, why))
		fail_msg("%s: reason \"%s\", expected it to say \"%s\"", path, d.reason, why);
}

/*
 * Files whose checksums are all valid but whose structure is hostile are
 * refused with a reason before any section is read: an unaligned section
 * offset (its parser would load u32/u64 through a misaligned pointer), a
 * header asking for a 4 GiB admission sketch the file does not hold, a
 * compressed section claiming 4 GiB, overlapping or repeated sections,
 * unknown flags.
 */
static void model_load__crafted_structure_is_refused_before_use(void **state)
{
	(void)state;
	mfs_model *m = trained_with(MFS_OPT_ADAGRAD, MFS_IDS_EXACT, 500, 2);
	const char *path = mfs_test_path("craft.mfs"), *zpath = mfs_test_path("craftz.mfs");
	mfs_save_opts z = { .compress = 3 };
	assert_int_equal(mfs_model_save(m, path, NULL, NULL), 0);
	assert_int_equal(mfs_model_save(m, zpath, &z, NULL), 0);
	size_t n, zn;
	uint8_t *orig = (uint8_t *)mfs_read_file(path, &n), *zorig = (uint8_t *)mfs_read_file(zpath, &zn);
	const char *out = mfs_test_path("crafted.mfs");
	/* untouched but resealed: loads (the crafting itself is sound) */
	uint8_t *b = malloc(n);
	memcpy(b, orig, n);
	reseal(b, n);
	mfs_write_file(out, b, n);
	mfs_model *l = NULL;
	assert_int_equal(mfs_model_load(&l, out, NULL, NULL), 0);
	mfs_model_free(l);
	/* the seen ticks (u32) and the keys (u64) at offsets 4 bytes off alignment */
	uint32_t tags[] = { 7 /* user seen */, 11 /* item keys */ };
	for (int k = 0; k < 2; k++) {
		memcpy(b, orig, n);
		size_t bn = move_unaligned(&b, n, tags[k]);
		load_expect(out, b, bn, "impossible offset");
	}
	/* a header asking for 2^30 user rows of capacity: a 4 GiB sketch (min count 2) */
	b = realloc(b, n);
	memcpy(b, orig, n);
	put_le64(b + 32, 1ULL << 30);
	reseal(b, n);
	load_expect(out, b, n, "needs 4294967296");
	/* a compressed section whose entry claims 4 GiB */
	uint8_t *zb = malloc(zn);
	memcpy(zb, zorig, zn);
	uint8_t *e = entry_of(zb, 2 /* user IDs */);
	assert_true(le32(e + 4) & 1); /* zstd */
	put_le64(e + 24, 1ULL << 32);
	reseal(zb, zn);
	load_expect(out, zb, zn, "another size");
	/* two sections on the same bytes, a section twice, unknown flags */
	memcpy(b, orig, n);
	memcpy(entry_of(b, 3) + 8, entry_of(b, 1) + 8, 8);
	reseal(b, n);
	load_expect(out, b, n, "overlap");
	memcpy(b, orig, n);
	entry_of(b, 13)[0] = 12; /* item bias tagged as item IDs */
	reseal(b, n);
	load_expect(out, b, n, "twice");
	memcpy(b, orig, n);
	entry_of(b, 4)[4] |= 2;
	reseal(b, n);
	load_expect(out, b, n, "unknown flags");
	free(b);
	free(zb);
	free(orig);
	free(zorig);
	mfs_model_free(m);
}

/* A delta whose row list sits at an unaligned offset (valid checksums) is
 * refused before it is read, and the model it would apply on is untouched. */
static void model_apply_delta__unaligned_section_is_refused(void **state)
{
	(void)state;
	char dir[1200], p[1400], base[1400];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("craftd"));
	mkdir(dir, 0755);
	mfs_model *m = trained(MFS_OPT_ADAGRAD);
	mfs_diag d;
	assert_int_equal(mfs_checkpoint_write(m, dir, NULL, 0, 0, 0, &d), 0);
	mfs_checkpoint_mark(m);
	snprintf(base, sizeof base, "%s/ckpt-00000000000000020000.mfs", dir);
	char u[16];
	for (int k = 0; k < 50; k++) {
		snprintf(u, sizeof u, "new%d", k);
		mfs_event ev = { u, "item-1", (uint32_t)strlen(u), 6, 4.0f, 0 };
		mfs_model_learn(m, &ev, 1, NULL);
	}
	assert_int_equal(mfs_checkpoint_write_delta(m, dir, NULL, 0, 0, 0, &d), 0);
	snprintf(p, sizeof p, "%s/ckpt-00000000000000020050.delta", dir);
	size_t n;
	uint8_t *b = (uint8_t *)mfs_read_file(p, &n);
	assert_non_null(b);
	mfs_model *l;
	int touched, other;
	/* resealed as it is, it applies */
	reseal(b, n);
	mfs_write_file(p, b, n);
	assert_int_equal(mfs_model_load(&l, base, NULL, &d), 0);
	assert_int_equal(mfs_model_apply_delta(l, p, 0, &touched, &other, &d), 0);
	mfs_model_free(l);
	uint32_t tags[] = { 9 /* user row list */, 11 /* item keys */, 15 /* item acc */ };
	for (int k = 0; k < 3; k++) {
		uint8_t *c = malloc(n);
		memcpy(c, b, n);
		size_t cn = move_unaligned(&c, n, tags[k]);
		mfs_write_file(p, c, cn);
		free(c);
		assert_int_equal(mfs_model_load(&l, base, NULL, &d), 0);
		assert_int_equal(mfs_model_apply_delta(l, p, 0, &touched, &other, &d), -MFS_E_CORRUPT);
		assert_int_equal(touched, 0);
		assert_non_null(strstr(d.reason, "impossible offset"));
		mfs_model_free(l);
	}
	free(b);
	mfs_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(model_save_load__round_trip_is_bit_identical),
		cmocka_unit_test(model_save_load__keeps_a_64_bit_clock),
		cmocka_unit_test(model_save__compression_shrinks_and_stays_loadable),
		cmocka_unit_test(model_save_load__round_trip_with_evictions_admission_and_hashing),
		cmocka_unit_test(model_load__bit_flip_in_a_section_is_corrupt),
		cmocka_unit_test(model_load__bit_flip_in_the_header_is_corrupt),
		cmocka_unit_test(model_load__truncated_file_is_corrupt),
		cmocka_unit_test(model_load__wrong_magic_and_missing_file),
		cmocka_unit_test(model_load__future_version_is_refused),
		cmocka_unit_test(model_save__failure_leaves_old_file_and_no_temporary),
		cmocka_unit_test(model_load__mapped_tables_survive_replace_and_unlink),
		cmocka_unit_test(model_load__bit_flip_in_a_mapped_section_is_corrupt),
		cmocka_unit_test(model_save_load__histories_round_trip),
		cmocka_unit_test(model_load__file_of_0_2_0_loads_without_history),
		cmocka_unit_test(model_load__impossible_history_is_corrupt),
		cmocka_unit_test(model_load__crafted_structure_is_refused_before_use),
		cmocka_unit_test(model_apply_delta__unaligned_section_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
