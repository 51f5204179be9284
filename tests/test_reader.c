/* test_reader.c - the reader: backends, chunk seams, gzip, positions, io_uring refused, follow. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#ifdef MFS_HAVE_SECCOMP
#include <seccomp.h>
#endif

#include "internal.h"
#include "support.h"
#include "zstd_stage.h"

static void write_zstd(const char *path, const char *data, size_t len, size_t frame_bytes)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	struct mfs_zwriter *w;
	assert_int_equal(mfs_zwriter_open(&w, fd, 3, frame_bytes), 0);
	assert_int_equal(mfs_zwriter_write(w, data, len), 0);
	assert_int_equal(mfs_zwriter_close(w), 0);
	close(fd);
}

/* gzip, as several members when members > 1 */
static void write_gzip(const char *path, const char *data, size_t len, int members)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	size_t per = len / (size_t)members + 1, off = 0;
	while (off < len) {
		size_t n = len - off < per ? len - off : per;
		uLongf cap = compressBound(n) + 64;
		unsigned char *out = malloc(cap);
		z_stream z;
		memset(&z, 0, sizeof z);
		assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
		z.next_in = (Bytef *)(uintptr_t)(data + off);
		z.avail_in = (uInt)n;
		z.next_out = out;
		z.avail_out = (uInt)cap;
		assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
		fwrite(out, 1, z.total_out, f);
		deflateEnd(&z);
		free(out);
		off += n;
	}
	fclose(f);
}

/* A deterministic tsv text of n events with string IDs. */
static char *make_tsv(size_t n, size_t *len)
{
	char *t = malloc(n * 64 + 1);
	size_t l = 0;
	uint64_t x = 12345;
	for (size_t i = 0; i < n; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		l += (size_t)sprintf(t + l, "u%llx\ti%llu\t%d.%d\t%zu\n",
				     (unsigned long long)(x >> 40), (unsigned long long)(x >> 54) % 977,
				     (int)((x >> 33) % 5) + 1, (int)((x >> 20) % 10), i);
	}
	*len = l;
	return t;
}

static char *make_jsonl(const char *tsv, size_t *len)
{
	char *out = malloc(strlen(tsv) * 8 + 1);
	size_t l = 0;
	const char *p = tsv;
	while (*p) {
		char u[64], it[64], r[32];
		unsigned long long t;
		int k = 0;
		sscanf(p, "%63[^\t]\t%63[^\t]\t%31[^\t]\t%llu%n", u, it, r, &t, &k);
		l += (size_t)sprintf(out + l, "{\"userId\":\"%s\",\"x\":{\"a\":[1,2]},\"movieId\":\"%s\",\"rating\":%s,\"ts\":%llu}\n",
				     u, it, r, t);
		p = strchr(p, '\n') + 1;
	}
	*len = l;
	return out;
}

struct opts {
	int io;
	size_t chunk;
	unsigned queue;
	const char *fields;
};

static mfs_source *open_src(const char *const *in, size_t n, const struct opts *o)
{
	mfs_source_config c;
	mfs_source_config_default(&c);
	c.batch = 257;
	c.fields = o->fields;
	mfs_source_config2 c2;
	mfs_source_config2_default(&c2);
	c2.io = o->io;
	c2.chunk = o->chunk;
	c2.queue = o->queue;
	mfs_source *s = NULL;
	mfs_diag d;
	int rc = mfs_source_open2(&s, in, n, &c, &c2, &d);
	assert_int_equal(rc, 0);
	return s;
}

static void append_batch(char **out, size_t *len, size_t *cap, const mfs_event *e, int got)
{
	for (int k = 0; k < got; k++) {
		if (*len + 600 > *cap) {
			*cap *= 2;
			*out = realloc(*out, *cap);
		}
		*len += (size_t)sprintf(*out + *len, "%.*s|%.*s|%g\n", (int)e[k].user_len, e[k].user,
					(int)e[k].item_len, e[k].item, e[k].rating);
	}
}

/* All events of s (from now on) as "u|i|r" lines; max_batches 0 = all. */
static char *drain(mfs_source *s, int max_batches)
{
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	out[0] = 0;
	for (int b = 0; max_batches == 0 || b < max_batches; b++) {
		const mfs_event *e;
		mfs_diag d;
		int got = mfs_source_next(s, &e, &d);
		if (got < 0)
			fprintf(stderr, "next: %d %s\n", got, d.reason);
		assert_true(got >= 0);
		if (got == 0)
			break;
		append_batch(&out, &len, &cap, e, got);
	}
	return out;
}

static char *read_with(const char *path, const struct opts *o)
{
	mfs_source *s = open_src(&path, 1, o);
	char *x = drain(s, 0);
	mfs_source_free(s);
	return x;
}

static int have_uring(void)
{
	struct opts o = { MFS_IO_URING, 0, 0, NULL };
	mfs_source_config2 c2;
	mfs_source_config2_default(&c2);
	c2.io = o.io;
	const char *in = "/dev/null";
	mfs_source *s;
	mfs_diag d;
	int rc = mfs_source_open2(&s, &in, 1, NULL, &c2, &d);
	if (rc == 0)
		mfs_source_free(s);
	return rc == 0;
}

static void reader__plain_zstd_gzip_jsonl_identical_for_any_chunk_backend_thread(void **state)
{
	(void)state;
	size_t len, jlen;
	char *tsv = make_tsv(3000, &len);
	char *js = make_jsonl(tsv, &jlen);
	const char *p = mfs_test_path("r.tsv"), *z = mfs_test_path("r.tsv.zst"),
		   *g = mfs_test_path("r.tsv.gz"), *j = mfs_test_path("r.jsonl.gz");
	mfs_write_file(p, tsv, len);
	write_zstd(z, tsv, len, 5000); /* many frames */
	write_gzip(g, tsv, len, 3);    /* three members */
	write_gzip(j, js, jlen, 1);
	struct opts ref = { MFS_IO_PREAD, 0, 0, NULL };
	char *want = read_with(p, &ref);
	assert_int_equal(strlen(want) > 3000 * 10, 1);
	const size_t chunks[] = { 1, 3, 7, 4096, 0 };
	const int ios[] = { MFS_IO_PREAD, MFS_IO_URING };
	int uring = have_uring();
	for (size_t ci = 0; ci < sizeof chunks / sizeof *chunks; ci++)
		for (int ii = 0; ii < 2; ii++)
			for (unsigned q = 0; q <= 2; q += 2) {
				if (ios[ii] == MFS_IO_URING && !uring)
					continue;
				struct opts o = { ios[ii], chunks[ci], q, NULL };
				const char *files[3] = { p, z, g };
				for (int f = 0; f < 3; f++) {
					if (chunks[ci] == 1 && f == 0 && q == 0 && ii == 1)
						continue; /* one byte per io_uring read: slow, covered by pread */
					char *x = read_with(files[f], &o);
					assert_string_equal(x, want);
					free(x);
				}
				struct opts oj = { ios[ii], chunks[ci], q, "user=userId,item=movieId,time=ts" };
				char *x = read_with(j, &oj);
				assert_string_equal(x, want);
				free(x);
			}
	free(want);
	free(tsv);
	free(js);
}

/* Compressed files larger than a few text blocks go through the decode stage (reader thread on). */
static void reader__decode_stage_same_events_as_caller_thread_for_large_files(void **state)
{
	(void)state;
	size_t len;
	char *tsv = make_tsv(250000, &len); /* several MiB of text */
	const char *z = mfs_test_path("big.tsv.zst"), *g = mfs_test_path("big.tsv.gz");
	write_zstd(z, tsv, len, 1u << 20);
	write_gzip(g, tsv, len, 2);
	struct opts ref = { MFS_IO_PREAD, 0, 0, NULL };
	char *want = read_with(z, &ref);
	const int ios[] = { MFS_IO_PREAD, MFS_IO_URING };
	int uring = have_uring();
	for (int ii = 0; ii < 2; ii++) {
		if (ios[ii] == MFS_IO_URING && !uring)
			continue;
		struct opts o = { ios[ii], 65536, 2, NULL };
		char *x = read_with(z, &o);
		assert_string_equal(x, want);
		free(x);
		x = read_with(g, &o);
		assert_string_equal(x, want);
		free(x);
	}
	free(want);
	free(tsv);
}

static void reader_seek__resumes_at_the_next_record_for_every_codec(void **state)
{
	(void)state;
	size_t len;
	char *tsv = make_tsv(5000, &len);
	const char *p = mfs_test_path("s.tsv"), *z = mfs_test_path("s.tsv.zst"),
		   *g = mfs_test_path("s.tsv.gz");
	mfs_write_file(p, tsv, len);
	write_zstd(z, tsv, len, 3000);
	write_gzip(g, tsv, len, 4);
	const char *files[3] = { p, z, g };
	for (int f = 0; f < 3; f++)
		for (unsigned q = 0; q <= 1; q++) {
			struct opts o = { MFS_IO_AUTO, 1000, q, NULL };
			mfs_source *s = open_src(&files[f], 1, &o);
			char *all = drain(s, 0);
			mfs_source_free(s);
			for (int cut = 1; cut <= 13; cut += 6) {
				s = open_src(&files[f], 1, &o);
				char *head = drain(s, cut);
				int need = mfs_source_position(s, NULL, 0);
				assert_true(need > 0);
				char blob[1024];
				assert_int_equal(mfs_source_position(s, blob, sizeof blob), need);
				mfs_source_where w;
				assert_int_equal(mfs_source_where_get(s, &w), 0);
				assert_string_equal(w.path, files[f]);
				size_t nev = 0;
				for (const char *h = head; *h; h++)
					nev += (size_t)(*h == 10);
				assert_int_equal(w.records, nev);
				mfs_source_free(s);
				s = open_src(&files[f], 1, &o);
				mfs_diag d;
				assert_int_equal(mfs_source_seek(s, blob, (size_t)need, &d), 0);
				char *tail = drain(s, 0);
				mfs_source_free(s);
				size_t hl = strlen(head);
				assert_int_equal(hl + strlen(tail), strlen(all));
				assert_memory_equal(all, head, hl);
				assert_string_equal(all + hl, tail);
				free(head);
				free(tail);
			}
			free(all);
		}
	/* a damaged blob is refused */
	struct opts o = { MFS_IO_AUTO, 0, 0, NULL };
	mfs_source *s = open_src(&files[0], 1, &o);
	char junk[80] = "not a position";
	mfs_diag d;
	assert_int_equal(mfs_source_seek(s, junk, sizeof junk, &d), -MFS_E_CORRUPT);
	mfs_source_free(s);
	free(tsv);
}

static void reader_next__corrupt_and_truncated_gzip_name_file_and_offset(void **state)
{
	(void)state;
	size_t len;
	char *tsv = make_tsv(4000, &len);
	const char *g = mfs_test_path("bad.gz"), *t = mfs_test_path("trunc.gz");
	write_gzip(g, tsv, len, 1);
	size_t glen;
	char *gz = mfs_read_file(g, &glen);
	for (size_t i = glen / 2; i < glen / 2 + 64; i++)
		gz[i] ^= 0x5a;
	mfs_write_file(g, gz, glen);
	write_gzip(t, tsv, len, 1);
	char *tz = mfs_read_file(t, NULL);
	mfs_write_file(t, tz, glen - 100);
	const char *files[2] = { g, t };
	for (int f = 0; f < 2; f++) {
		struct opts o = { MFS_IO_AUTO, 4096, (unsigned)f * 2, NULL };
		mfs_source *s = open_src(&files[f], 1, &o);
		int rc;
		mfs_diag d;
		const mfs_event *e;
		memset(&d, 0, sizeof d);
		while ((rc = mfs_source_next(s, &e, &d)) > 0)
			;
		assert_int_equal(rc, f == 0 ? -MFS_E_CORRUPT : -MFS_E_TRUNCATED);
		assert_string_equal(d.path, files[f]);
		assert_true(d.offset > 0 && d.offset <= glen);
		mfs_source_skip_file(s);
		assert_int_equal(mfs_source_next(s, &e, &d), 0);
		mfs_source_free(s);
	}
	free(gz);
	free(tz);
	free(tsv);
}

/* io_uring refused for real: a child with a seccomp filter on io_uring_setup. */
static void reader_open__io_uring_refused_by_seccomp_falls_back_to_pread(void **state)
{
	(void)state;
#ifndef MFS_HAVE_SECCOMP
	skip();
#else
	if (!have_uring())
		skip();
	size_t len;
	char *tsv = make_tsv(2000, &len);
	const char *z = mfs_test_path("f.tsv.zst");
	write_zstd(z, tsv, len, 4000);
	struct opts ref = { MFS_IO_PREAD, 0, 0, NULL };
	char *want = read_with(z, &ref);
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
		if (!ctx || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(io_uring_setup), 0) ||
		    seccomp_load(ctx))
			_exit(3);
		mfs_source_config2 c2;
		mfs_source_config2_default(&c2);
		c2.io = MFS_IO_URING;
		mfs_source *s;
		mfs_diag d;
		if (mfs_source_open2(&s, &z, 1, NULL, &c2, &d) != -MFS_E_UNSUPPORTED || d.os_errno != EPERM)
			_exit(4);
		c2.io = MFS_IO_AUTO;
		c2.queue = 2;
		if (mfs_source_open2(&s, &z, 1, NULL, &c2, &d) != 0)
			_exit(5);
		if (strcmp(mfs_source_io(s), "pread") != 0 || !mfs_source_io_fallback(s, &d) ||
		    d.os_errno != EPERM)
			_exit(6);
		char *x = drain(s, 0);
		mfs_source_free(s);
		size_t xl = strlen(x);
		if (write(pfd[1], x, xl) != (ssize_t)xl)
			_exit(7);
		_exit(0);
	}
	close(pfd[1]);
	size_t cap = strlen(want) + 4096, got = 0;
	char *buf = calloc(1, cap + 1);
	ssize_t r;
	while ((r = read(pfd[0], buf + got, cap - got)) > 0)
		got += (size_t)r;
	close(pfd[0]);
	int st;
	waitpid(pid, &st, 0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_string_equal(buf, want);
	free(buf);
	free(want);
	free(tsv);
#endif
}

/*
 * Follow mode: a writer process fills a directory (two partitions, a line split
 * across two writes, zstd frames appended, a temp file renamed in); every event
 * arrives exactly once.
 */
static void writer(const char *dir, const char *tsv, size_t len)
{
	char p0[600], p1[600], tmp[600], p1b[600];
	snprintf(p0, sizeof p0, "%s/ev+0+0.tsv", dir);
	snprintf(p1, sizeof p1, "%s/ev+1+0.tsv.zst", dir);
	snprintf(tmp, sizeof tmp, "%s/ev+1+1000.tsv.zst.tmp", dir);
	snprintf(p1b, sizeof p1b, "%s/ev+1+1000.tsv.zst", dir);
	/* lines of tsv: [0, a) to p0 (growing), [a, b) to p1 as frames, [b, end) temp+rename */
	size_t a = len / 3, b = 2 * len / 3;
	while (tsv[a - 1] != '\n')
		a++;
	while (tsv[b - 1] != '\n')
		b++;
	int f0 = open(p0, O_WRONLY | O_CREAT | O_APPEND, 0644);
	int f1 = open(p1, O_WRONLY | O_CREAT | O_APPEND, 0644);
	size_t off0 = 0, off1 = a;
	while (off0 < a || off1 < b) {
		if (off0 < a) {
			size_t n = a - off0 < 997 ? a - off0 : 997; /* ends mid-line */
			if (write(f0, tsv + off0, n) != (ssize_t)n)
				_exit(2);
			off0 += n;
		}
		if (off1 < b) {
			size_t n = b - off1 < 1500 ? b - off1 : 1500;
			void *c;
			size_t cl;
			if (mfs_zstd_compress(tsv + off1, n, 1, &c, &cl) < 0)
				_exit(3);
			/* a frame in two writes: the reader sees half a frame for a while */
			if (write(f1, c, cl / 2) != (ssize_t)(cl / 2))
				_exit(4);
			usleep(2000);
			if (write(f1, (char *)c + cl / 2, cl - cl / 2) != (ssize_t)(cl - cl / 2))
				_exit(4);
			free(c);
			off1 += n;
		}
		usleep(3000);
	}
	close(f0);
	close(f1);
	int ft = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	struct mfs_zwriter *w;
	if (mfs_zwriter_open(&w, ft, 1, 0) < 0 || mfs_zwriter_write(w, tsv + b, len - b) < 0 ||
	    mfs_zwriter_close(w) < 0)
		_exit(5);
	close(ft);
	if (rename(tmp, p1b) < 0)
		_exit(6);
	_exit(0);
}

static int cmp_lines(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort the lines of a digest, so that two digests compare as multisets. */
static char *sorted(char *x)
{
	size_t n = 0, cap = 1024, xl = strlen(x);
	char **v = malloc(cap * sizeof *v);
	for (char *l = strtok(x, "\n"); l; l = strtok(NULL, "\n")) {
		if (n == cap)
			v = realloc(v, (cap *= 2) * sizeof *v);
		v[n++] = l;
	}
	qsort(v, n, sizeof *v, cmp_lines);
	size_t tl = xl + n + 1;
	char *out = malloc(tl + 1), *o = out;
	for (size_t i = 0; i < n; i++)
		o += sprintf(o, "%s\n", v[i]);
	*o = 0;
	free(v);
	return out;
}

static void reader_follow__directory_being_filled_gives_every_event_once(void **state)
{
	(void)state;
	size_t len;
	char *tsv = make_tsv(6000, &len);
	const char *dir = mfs_test_path("follow");
	mkdir(dir, 0755);
	/* the expected events, through the reader (same formatting) */
	const char *whole = mfs_test_path("whole.tsv");
	mfs_write_file(whole, tsv, len);
	struct opts ref = { MFS_IO_PREAD, 0, 0, NULL };
	char *want_raw = read_with(whole, &ref);
	char *want = sorted(want_raw);
	/* the partition files exist (empty) before the reader starts */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		writer(dir, tsv, len);
	mfs_source_config c;
	mfs_source_config_default(&c);
	c.batch = 100;
	mfs_source_config2 c2;
	mfs_source_config2_default(&c2);
	c2.follow = 1;
	c2.queue = 2;
	c2.poll_ms = 20;
	mfs_source *s;
	mfs_diag d;
	assert_int_equal(mfs_source_open2(&s, &dir, 1, &c, &c2, &d), 0);
	size_t cap = 1 << 16, got = 0, events = 0;
	char *out = malloc(cap);
	out[0] = 0;
	int writer_done = 0;
	double t0 = (double)time(NULL);
	while (events < 6000 && (double)time(NULL) - t0 < 30) {
		const mfs_event *e;
		int n = mfs_source_next(s, &e, &d);
		assert_true(n >= 0);
		append_batch(&out, &got, &cap, e, n);
		events += (size_t)n;
		if (!writer_done) {
			int st;
			if (waitpid(pid, &st, WNOHANG) == pid) {
				assert_true(WIFEXITED(st));
				assert_int_equal(WEXITSTATUS(st), 0);
				writer_done = 1;
			}
		}
	}
	/* nothing more arrives; stop ends the wait */
	mfs_source_stop(s);
	const mfs_event *e;
	assert_int_equal(mfs_source_next(s, &e, &d), 0);
	mfs_source_free(s);
	if (!writer_done)
		waitpid(pid, NULL, 0);
	assert_int_equal(events, 6000);
	char *have = sorted(out);
	assert_string_equal(have, want);
	free(have);
	free(out);
	free(want);
	free(want_raw);
	free(tsv);
}

static void *stop_later(void *src)
{
	usleep(150000);
	mfs_source_stop(src);
	return NULL;
}

/*
 * With the reader thread on, the position after a stop (from another thread,
 * as a signal handler does, while the caller waits in mfs_source_next) and
 * after an error counts exactly the records handed out: a checkpoint taken
 * then resumes after the last event learned, no more, no less.
 */
static void reader_position__after_stop_and_error_counts_records_handed_out(void **state)
{
	(void)state;
	size_t len;
	char *tsv = make_tsv(30000, &len);
	const char *p = mfs_test_path("pos.tsv"), *bad = mfs_test_path("pos-bad.zst");
	mfs_write_file(p, tsv, len);
	static const char junk[] = "\x28\xb5\x2f\xfd garbage that is not a zstd frame";
	mfs_write_file(bad, junk, sizeof junk - 1);
	free(tsv);
	for (int it = 0; it < 4; it++) {
		mfs_source_config c;
		mfs_source_config_default(&c);
		c.batch = 512;
		mfs_source_config2 c2;
		mfs_source_config2_default(&c2);
		c2.queue = 3;
		c2.chunk = 4096;
		c2.follow = 1;
		c2.poll_ms = 20;
		mfs_source *s;
		mfs_diag d;
		const char *in[1] = { p };
		assert_int_equal(mfs_source_open2(&s, in, 1, &c, &c2, &d), 0);
		pthread_t t;
		pthread_create(&t, NULL, stop_later, s);
		const mfs_event *e;
		uint64_t got = 0;
		int n;
		while ((n = mfs_source_next(s, &e, &d)) > 0)
			got += (uint64_t)n; /* then waits in follow mode until the stop */
		pthread_join(t, NULL);
		mfs_source_where w;
		assert_int_equal(mfs_source_where_get(s, &w), 0);
		assert_int_equal(w.records, got);
		mfs_source_free(s);
	}
	/* an error on the second input: the position still names a real place */
	mfs_source_config c;
	mfs_source_config_default(&c);
	mfs_source_config2 c2;
	mfs_source_config2_default(&c2);
	c2.queue = 3;
	const char *in2[2] = { p, bad };
	mfs_source *s;
	mfs_diag d;
	assert_int_equal(mfs_source_open2(&s, in2, 2, &c, &c2, &d), 0);
	const mfs_event *e;
	int n, errors = 0;
	while ((n = mfs_source_next(s, &e, &d)) != 0) {
		if (n < 0) {
			errors++;
			mfs_source_where w;
			assert_int_equal(mfs_source_where_get(s, &w), 0);
			assert_non_null(w.path);
			char buf[8192];
			assert_true(mfs_source_position(s, buf, sizeof buf) > 0);
			mfs_source_skip_file(s);
		}
	}
	assert_int_equal(errors, 1);
	mfs_source_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reader__plain_zstd_gzip_jsonl_identical_for_any_chunk_backend_thread),
		cmocka_unit_test(reader__decode_stage_same_events_as_caller_thread_for_large_files),
		cmocka_unit_test(reader_seek__resumes_at_the_next_record_for_every_codec),
		cmocka_unit_test(reader_next__corrupt_and_truncated_gzip_name_file_and_offset),
		cmocka_unit_test(reader_open__io_uring_refused_by_seccomp_falls_back_to_pread),
		cmocka_unit_test(reader_follow__directory_being_filled_gives_every_event_once),
		cmocka_unit_test(reader_position__after_stop_and_error_counts_records_handed_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
