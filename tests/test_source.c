/* test_source.c - files -> events: formats, zstd, buffers, directories, bad input. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "support.h"
#include "zstd_stage.h"

static void write_zstd(const char *path, const char *data, size_t len, size_t frame_bytes)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	struct mfs_zwriter *w;
	assert_int_equal(mfs_zwriter_open(&w, fd, 3, frame_bytes), 0);
	/* feed in odd pieces so that frames end at arbitrary places */
	size_t off = 0, step = 7777;
	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		assert_int_equal(mfs_zwriter_write(w, data + off, n), 0);
		off += n;
	}
	assert_int_equal(mfs_zwriter_close(w), 0);
	close(fd);
}

struct bad_log {
	int n;
	uint64_t lines[16];
	char reasons[16][256];
	char path[512];
};

static void on_bad(void *ctx, const mfs_diag *d)
{
	struct bad_log *b = ctx;
	if (b->n < 16) {
		b->lines[b->n] = d->line;
		snprintf(b->reasons[b->n], 256, "%s", d->reason);
		snprintf(b->path, sizeof b->path, "%s", d->path);
	}
	b->n++;
}

/* Read all events of inputs into a digest string "u|i|r\n..." (malloc'd). */
static char *read_all(const char *const *inputs, size_t n, int format, struct bad_log *bad,
		      mfs_source_stats *st)
{
	mfs_source_config c;
	mfs_source_config_default(&c);
	c.format = format;
	c.on_bad = on_bad;
	c.on_bad_ctx = bad;
	c.batch = 333;
	mfs_source *s;
	mfs_diag d;
	assert_int_equal(mfs_source_open(&s, inputs, n, &c, &d), 0);
	size_t cap = 1 << 20, len = 0;
	char *out = malloc(cap);
	out[0] = 0;
	for (;;) {
		const mfs_event *e;
		int got = mfs_source_next(s, &e, &d);
		assert_true(got >= 0);
		if (got == 0)
			break;
		for (int k = 0; k < got; k++) {
			if (len + 600 > cap) {
				cap *= 2;
				out = realloc(out, cap);
			}
			len += (size_t)sprintf(out + len, "%.*s|%.*s|%g\n", (int)e[k].user_len, e[k].user,
					       (int)e[k].item_len, e[k].item, e[k].rating);
		}
	}
	if (st)
		mfs_source_stats_get(s, st);
	mfs_source_free(s);
	return out;
}

static char *make_tsv(int lines, size_t *len)
{
	size_t cap = (size_t)lines * 48 + 1;
	char *b = malloc(cap);
	size_t n = 0;
	for (int k = 0; k < lines; k++)
		n += (size_t)sprintf(b + n, "user%07d\titem-%05d\t%d.5\t%d\n", k % 9973, k % 1777,
				     1 + k % 4, 880000000 + k);
	*len = n;
	return b;
}

static void source__plain_zstd_and_multiframe_give_identical_events(void **state)
{
	(void)state;
	size_t len;
	/* > 4 MiB of text so lines cross the 1 MiB read and 4 MiB text buffers */
	char *tsv = make_tsv(200000, &len);
	assert_true(len > (5u << 20));
	const char *plain = mfs_test_path("big.tsv");
	const char *z1 = mfs_test_path("big.tsv.zst");
	const char *zn = mfs_test_path("big-frames.zst");
	mfs_write_file(plain, tsv, len);
	write_zstd(z1, tsv, len, 0);
	write_zstd(zn, tsv, len, 100000); /* dozens of frames */
	struct bad_log b0 = { 0 }, b1 = { 0 }, b2 = { 0 };
	mfs_source_stats st;
	char *a = read_all(&plain, 1, MFS_FORMAT_AUTO, &b0, &st);
	assert_int_equal(st.events, 200000);
	assert_int_equal(st.skipped, 0);
	char *b = read_all(&z1, 1, MFS_FORMAT_AUTO, &b1, NULL);
	char *c = read_all(&zn, 1, MFS_FORMAT_TSV, &b2, &st);
	assert_true(st.bytes < len); /* compressed bytes were counted */
	assert_string_equal(a, b);
	assert_string_equal(a, c);
	assert_int_equal(b0.n + b1.n + b2.n, 0);
	free(a);
	free(b);
	free(c);
	free(tsv);
}

static void source__formats_crlf_header_and_missing_newline(void **state)
{
	(void)state;
	const char *tsv = mfs_test_path("a.tsv"), *csv = mfs_test_path("a.csv"),
		   *dat = mfs_test_path("a.dat");
	const char t[] = "1\t10\t4\t100\r\n\r\n2\t20\t3.5\r\n3\t30\t5";
	const char c[] = "userId,movieId,rating,timestamp\n1,10,4,100\n2,20,3.5,7\n3,30,5,8\n";
	const char d[] = "1::10::4::100\n2::20::3.5::1\n3::30::5::2\n";
	mfs_write_file(tsv, t, sizeof t - 1);
	mfs_write_file(csv, c, sizeof c - 1);
	mfs_write_file(dat, d, sizeof d - 1);
	const char *want = "1|10|4\n2|20|3.5\n3|30|5\n";
	struct bad_log b = { 0 };
	char *x = read_all(&tsv, 1, MFS_FORMAT_AUTO, &b, NULL);
	assert_string_equal(x, want);
	free(x);
	x = read_all(&csv, 1, MFS_FORMAT_AUTO, &b, NULL);
	assert_string_equal(x, want);
	free(x);
	x = read_all(&dat, 1, MFS_FORMAT_AUTO, &b, NULL);
	assert_string_equal(x, want);
	free(x);
	assert_int_equal(b.n, 0);
	/* several files in one source, read in the order given */
	const char *all[3] = { dat, csv, tsv };
	x = read_all(all, 3, MFS_FORMAT_AUTO, &b, NULL);
	assert_int_equal(strlen(x), 3 * strlen(want));
	free(x);
}

static void source__malformed_lines_are_skipped_counted_and_located(void **state)
{
	(void)state;
	const char *p = mfs_test_path("bad.tsv");
	const char t[] = "1\t10\t4\n"
			 "2\t20\tx\n"    /* line 2: not a number */
			 "3\t30\n"       /* line 3: missing field */
			 "4\t40\tnan\n"  /* line 4: NaN */
			 "5\t50\t3\n";
	mfs_write_file(p, t, sizeof t - 1);
	struct bad_log b = { 0 };
	mfs_source_stats st;
	char *x = read_all(&p, 1, MFS_FORMAT_AUTO, &b, &st);
	assert_string_equal(x, "1|10|4\n5|50|3\n");
	assert_int_equal(st.skipped, 3);
	assert_int_equal(b.n, 3);
	assert_int_equal(b.lines[0], 2);
	assert_int_equal(b.lines[1], 3);
	assert_int_equal(b.lines[2], 4);
	assert_non_null(strstr(b.reasons[0], "\"x\""));
	assert_string_equal(b.path, p);
	free(x);
}

static void source__over_long_line_is_skipped_and_counting_goes_on(void **state)
{
	(void)state;
	const char *p = mfs_test_path("long.tsv");
	size_t big = (2u << 20) + 5;
	char *t = malloc(big + 64);
	size_t n = (size_t)sprintf(t, "1\t10\t4\n");
	memset(t + n, 'a', big);
	n += big;
	n += (size_t)sprintf(t + n, "\t1\t2\n2\t20\tq\n3\t30\t2\n");
	mfs_write_file(p, t, n);
	free(t);
	struct bad_log b = { 0 };
	mfs_source_stats st;
	char *x = read_all(&p, 1, MFS_FORMAT_TSV, &b, &st);
	assert_string_equal(x, "1|10|4\n3|30|2\n");
	assert_int_equal(st.skipped, 2);
	assert_int_equal(b.lines[0], 2);
	assert_non_null(strstr(b.reasons[0], "longer"));
	assert_int_equal(b.lines[1], 3);
	free(x);
}

static void source__directory_order_kafka_names_and_temp_files(void **state)
{
	(void)state;
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("kafka"));
	mkdir(dir, 0755);
	struct {
		const char *name, *body;
	} files[] = {
		{ "ratings+1+0000000100.tsv", "p1b\ti\t1\n" },
		{ "ratings+0+0000000010.tsv", "p0b\ti\t1\n" },
		{ "ratings+0+0000000002.tsv", "p0a\ti\t1\n" },
		{ "ratings+1+0000000007.tsv", "p1a\ti\t1\n" },
		{ "ratings+0+0000000020.tsv_tmp", "tmp\ti\t1\n" },
		{ ".hidden.tsv", "hidden\ti\t1\n" },
		{ "partial.tmp", "partial\ti\t1\n" },
	};
	for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
		char p[1400];
		snprintf(p, sizeof p, "%s/%s", dir, files[k].name);
		mfs_write_file(p, files[k].body, strlen(files[k].body));
	}
	const char *in = dir;
	struct bad_log b = { 0 };
	char *x = read_all(&in, 1, MFS_FORMAT_AUTO, &b, NULL);
	/* partition 0 by numeric offset (2 < 10), then partition 1 (7 < 100) */
	assert_string_equal(x, "p0a|i|1\np0b|i|1\np1a|i|1\np1b|i|1\n");
	free(x);
}

static void source__dash_kafka_names_sort_by_offset_not_text(void **state)
{
	(void)state;
	char dir[1200];
	snprintf(dir, sizeof dir, "%s", mfs_test_path("kafka2"));
	mkdir(dir, 0755);
	const char *names[] = { "events-0-900.tsv", "events-0-1000.tsv", "events-0-95.tsv" };
	const char *bodies[] = { "b\ti\t1\n", "c\ti\t1\n", "a\ti\t1\n" };
	for (int k = 0; k < 3; k++) {
		char p[1400];
		snprintf(p, sizeof p, "%s/%s", dir, names[k]);
		mfs_write_file(p, bodies[k], strlen(bodies[k]));
	}
	const char *in = dir;
	struct bad_log b = { 0 };
	char *x = read_all(&in, 1, MFS_FORMAT_AUTO, &b, NULL);
	assert_string_equal(x, "a|i|1\nb|i|1\nc|i|1\n");
	free(x);
}

static void source_open__missing_input_names_it(void **state)
{
	(void)state;
	const char *in[2] = { mfs_test_path("a.tsv"), "/no/such/file.tsv" };
	mfs_write_file(in[0], "1\t2\t3\n", 6);
	mfs_source *s = NULL;
	mfs_diag d;
	assert_int_equal(mfs_source_open(&s, in, 2, NULL, &d), -MFS_E_NOTFOUND);
	assert_null(s);
	assert_string_equal(d.path, "/no/such/file.tsv");
}

static void source_next__corrupt_zstd_is_reported_then_next_file_read(void **state)
{
	(void)state;
	size_t len;
	char *tsv = make_tsv(50000, &len);
	const char *bad = mfs_test_path("corrupt.zst"), *good = mfs_test_path("good.tsv");
	write_zstd(bad, tsv, len, 100000); /* many frames: the damage is in a middle one */
	size_t zn;
	char *z = mfs_read_file(bad, &zn);
	for (size_t k = zn / 2; k < zn / 2 + 64; k++)
		z[k] ^= 0x5a;
	mfs_write_file(bad, z, zn);
	mfs_write_file(good, "x\ty\t3\n", 6);
	free(z);
	free(tsv);
	const char *in[2] = { bad, good };
	mfs_source *s;
	mfs_diag d;
	assert_int_equal(mfs_source_open(&s, in, 2, NULL, &d), 0);
	int got, errors = 0, events = 0, last_good = 0;
	const mfs_event *e;
	for (;;) {
		got = mfs_source_next(s, &e, &d);
		if (got < 0) {
			errors++;
			assert_int_equal(d.code, MFS_E_CORRUPT);
			assert_string_equal(d.path, bad);
			assert_true(d.offset > 0 && d.offset <= zn / 2 + 64);
			assert_non_null(strstr(d.reason, "zstd"));
			mfs_source_skip_file(s);
			continue;
		}
		if (got == 0)
			break;
		events += got;
		if (e[got - 1].user_len == 1 && e[got - 1].user[0] == 'x')
			last_good = 1;
	}
	assert_int_equal(errors, 1);
	assert_true(last_good);
	assert_true(events < 50001);
	mfs_source_free(s);
}

static void source_next__truncated_zstd_is_reported(void **state)
{
	(void)state;
	size_t len;
	char *tsv = make_tsv(20000, &len);
	const char *p = mfs_test_path("cut.zst");
	write_zstd(p, tsv, len, 0);
	size_t zn;
	char *z = mfs_read_file(p, &zn);
	mfs_write_file(p, z, zn - 10);
	free(z);
	free(tsv);
	mfs_source *s;
	mfs_diag d;
	assert_int_equal(mfs_source_open(&s, &p, 1, NULL, &d), 0);
	const mfs_event *e;
	int got, saw_error = 0;
	while ((got = mfs_source_next(s, &e, &d)) != 0) {
		if (got < 0) {
			assert_int_equal(d.code, MFS_E_TRUNCATED);
			assert_non_null(strstr(d.reason, "truncated"));
			saw_error = 1;
			mfs_source_skip_file(s);
		}
	}
	assert_true(saw_error);
	mfs_source_free(s);
}

static void source__empty_file_and_blank_lines_give_no_events(void **state)
{
	(void)state;
	const char *p = mfs_test_path("empty.tsv"), *q = mfs_test_path("blank.tsv");
	mfs_write_file(p, "", 0);
	mfs_write_file(q, "\n\n  \n", 5);
	const char *in[2] = { p, q };
	struct bad_log b = { 0 };
	mfs_source_stats st;
	char *x = read_all(in, 2, MFS_FORMAT_AUTO, &b, &st);
	assert_string_equal(x, "");
	assert_int_equal(st.skipped, 0);
	assert_int_equal(st.files, 2);
	free(x);
}

/* Compressions the reader cannot decode are refused by their magic bytes, named;
 * text that merely starts like one ("BZh9" as an ID) is read as text. */
static void source_next__foreign_compression_is_refused_by_name(void **state)
{
	(void)state;
	static const struct {
		const char *name, *file;
		const char *bytes;
		size_t len;
	} k[] = {
		{ "bzip2", "x.bz2", "BZh91AY&SY\x01\x02\x03", 13 },
		{ "xz", "x.xz", "\xfd" "7zXZ\x00\x00\x04", 8 },
		{ "lz4", "x.lz4", "\x04\x22\x4d\x18\x64\x40", 6 },
		{ "zip", "x.zip", "PK\x03\x04\x14\x00", 6 },
		{ "7z", "x.7z", "7z\xbc\xaf\x27\x1c\x00\x04", 8 },
	};
	for (int thread = 0; thread < 2; thread++)
		for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
			const char *p = mfs_test_path(k[i].file);
			mfs_write_file(p, k[i].bytes, k[i].len);
			mfs_source_config c;
			mfs_source_config_default(&c);
			mfs_source_config2 c2;
			mfs_source_config2_default(&c2);
			c2.queue = thread ? 2 : 0;
			mfs_source *s;
			mfs_diag d;
			assert_int_equal(mfs_source_open2(&s, &p, 1, &c, &c2, &d), 0);
			const mfs_event *e;
			memset(&d, 0, sizeof d);
			assert_int_equal(mfs_source_next(s, &e, &d), -MFS_E_UNSUPPORTED);
			char want[64];
			snprintf(want, sizeof want, "%s-compressed", k[i].name);
			assert_non_null(strstr(d.reason, want));
			assert_string_equal(d.path, p);
			mfs_source_skip_file(s);
			assert_int_equal(mfs_source_next(s, &e, &d), 0);
			mfs_source_free(s);
		}
	const char *t = mfs_test_path("bzh.tsv");
	mfs_write_file(t, "BZh9\titem\t4\n", 12);
	struct bad_log b = { 0 };
	mfs_source_stats st;
	char *x = read_all(&t, 1, MFS_FORMAT_AUTO, &b, &st);
	assert_string_equal(x, "BZh9|item|4\n");
	free(x);
}

/* Every event of a batch knows its file and line, across files, malformed and
 * blank lines, with and without the reader thread. */
static void source_event_line__names_file_and_line_of_each_event(void **state)
{
	(void)state;
	const char *a = mfs_test_path("lines_a.tsv"), *b = mfs_test_path("lines_b.tsv");
	mfs_write_file(a, "u1\ti1\t4\nbad line\n\nu2\ti2\t3\n", 26);
	mfs_write_file(b, "u3\ti3\t5\n", 8);
	const char *in[2] = { a, b };
	for (int thread = 0; thread < 2; thread++) {
		mfs_source_config c;
		mfs_source_config_default(&c);
		mfs_source_config2 c2;
		mfs_source_config2_default(&c2);
		c2.queue = thread ? 2 : 0;
		mfs_source *s;
		assert_int_equal(mfs_source_open2(&s, in, 2, &c, &c2, NULL), 0);
		const mfs_event *e;
		const char *path;
		uint64_t line;
		assert_int_equal(mfs_source_event_line(s, 0, &path, &line), -MFS_E_RANGE);
		static const uint64_t want_line[3] = { 1, 4, 1 };
		static const char *const want_id[3] = { "u1", "u2", "u3" };
		int k = 0, n;
		while ((n = mfs_source_next(s, &e, NULL)) > 0) {
			for (int i = 0; i < n; i++, k++) {
				assert_true(k < 3);
				assert_memory_equal(e[i].user, want_id[k], 2);
				assert_int_equal(mfs_source_event_line(s, (size_t)i, &path, &line), 0);
				assert_string_equal(path, k < 2 ? a : b);
				assert_int_equal(line, want_line[k]);
			}
			assert_int_equal(mfs_source_event_line(s, (size_t)n, &path, &line),
					 -MFS_E_RANGE);
		}
		assert_int_equal(k, 3);
		assert_int_equal(mfs_source_next(s, &e, NULL), 0);
		mfs_source_free(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(source__plain_zstd_and_multiframe_give_identical_events),
		cmocka_unit_test(source__formats_crlf_header_and_missing_newline),
		cmocka_unit_test(source__malformed_lines_are_skipped_counted_and_located),
		cmocka_unit_test(source__over_long_line_is_skipped_and_counting_goes_on),
		cmocka_unit_test(source__directory_order_kafka_names_and_temp_files),
		cmocka_unit_test(source__dash_kafka_names_sort_by_offset_not_text),
		cmocka_unit_test(source_open__missing_input_names_it),
		cmocka_unit_test(source_next__corrupt_zstd_is_reported_then_next_file_read),
		cmocka_unit_test(source_next__truncated_zstd_is_reported),
		cmocka_unit_test(source__empty_file_and_blank_lines_give_no_events),
		cmocka_unit_test(source_next__foreign_compression_is_refused_by_name),
		cmocka_unit_test(source_event_line__names_file_and_line_of_each_event),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
