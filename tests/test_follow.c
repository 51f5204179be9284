/*
 * test_follow.c - follow mode on MovieLens 100k: a writer process fills a
 * directory with the 100,000 events of u.data (two Kafka partitions, lines
 * split across writes, zstd frames appended to a growing .zst file, a temp
 * file renamed in); the reader gets every event exactly once. Skips (77)
 * when u.data is absent ($MFS_DATA_DIR/ml-100k).
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "support.h"
#include "zstd_stage.h"

#define ML_EVENTS 100000

static char *udata;
static size_t udata_len;

/* A multiset digest: count, and sums of a 64-bit hash of (user, item, rating) and its square. */
struct digest {
	uint64_t n, sum, sum2;
};

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

static void digest_add(struct digest *g, const char *u, size_t ul, const char *i, size_t il,
		       double rating)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t k = 0; k < ul; k++)
		h = (h ^ (uint8_t)u[k]) * 1099511628211ULL;
	h = (h ^ 0x1f) * 1099511628211ULL;
	for (size_t k = 0; k < il; k++)
		h = (h ^ (uint8_t)i[k]) * 1099511628211ULL;
	h = mix(h ^ (uint64_t)(int64_t)(rating * 1000.0 + 0.5));
	g->n++;
	g->sum += h;
	g->sum2 += h * h;
}

/* The expected digest, straight from the text of u.data (not through the reader). */
static struct digest expected(void)
{
	struct digest g = { 0, 0, 0 };
	const char *p = udata, *end = udata + udata_len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *t1 = memchr(p, '\t', (size_t)(le - p));
		const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(le - t1 - 1)) : NULL;
		if (t1 && t2)
			digest_add(&g, p, (size_t)(t1 - p), t1 + 1, (size_t)(t2 - t1 - 1), atof(t2 + 1));
		p = le + 1;
	}
	return g;
}

static void write_all(int fd, const void *b, size_t n)
{
	if (write(fd, b, n) != (ssize_t)n)
		_exit(2);
}

/* Lines [0, a) grow ev+0+0.tsv, [a, b) go as zstd frames to ev+1+0.tsv.zst, [b, end) temp + rename. */
static void writer(const char *dir, const char *tsv, size_t len)
{
	char p0[600], p1[600], tmp[600], p1b[600];
	snprintf(p0, sizeof p0, "%s/ml+0+0.tsv", dir);
	snprintf(p1, sizeof p1, "%s/ml+1+0.tsv.zst", dir);
	snprintf(tmp, sizeof tmp, "%s/ml+1+70000.tsv.zst.tmp", dir);
	snprintf(p1b, sizeof p1b, "%s/ml+1+70000.tsv.zst", dir);
	size_t a = len / 2, b = 0, lines = 0;
	while (tsv[a - 1] != '\n')
		a++;
	for (size_t k = 0; k < len && lines < 70000; k++)
		if (tsv[k] == '\n' && ++lines == 70000)
			b = k + 1;
	if (b <= a)
		_exit(7);
	int f0 = open(p0, O_WRONLY | O_CREAT | O_APPEND, 0644);
	int f1 = open(p1, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (f0 < 0 || f1 < 0)
		_exit(1);
	size_t off0 = 0, off1 = a;
	while (off0 < a || off1 < b) {
		if (off0 < a) {
			size_t n = a - off0 < 4093 ? a - off0 : 4093; /* ends mid-line */
			write_all(f0, tsv + off0, n);
			off0 += n;
		}
		if (off1 < b) {
			size_t n = b - off1 < 6000 ? b - off1 : 6000;
			void *c;
			size_t cl;
			if (mfs_zstd_compress(tsv + off1, n, 1, &c, &cl) < 0)
				_exit(3);
			/* a frame in two writes: the reader sees half a frame for a while */
			write_all(f1, c, cl / 2);
			usleep(1000);
			write_all(f1, (char *)c + cl / 2, cl - cl / 2);
			free(c);
			off1 += n;
		}
		usleep(2000);
	}
	close(f0);
	close(f1);
	int ft = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	struct mfs_zwriter *w;
	if (ft < 0 || mfs_zwriter_open(&w, ft, 1, 20000) < 0 ||
	    mfs_zwriter_write(w, tsv + b, len - b) < 0 || mfs_zwriter_close(w) < 0)
		_exit(5);
	close(ft);
	if (rename(tmp, p1b) < 0)
		_exit(6);
	_exit(0);
}

static void *stop_later(void *arg)
{
	usleep(300 * 1000);
	mfs_source_stop(arg);
	return NULL;
}

/* An empty directory (left over files of an earlier run removed). */
static const char *fresh_dir(const char *name)
{
	const char *dir = mfs_test_path(name);
	mkdir(dir, 0755);
	DIR *dp = opendir(dir);
	assert_non_null(dp);
	struct dirent *e;
	while ((e = readdir(dp)) != NULL) {
		char p[1200];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(dp);
	return dir;
}

static void follow_ml100k(const char *name, unsigned queue)
{
	const char *dir = fresh_dir(name);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		writer(dir, udata, udata_len);
	mfs_source_config c;
	mfs_source_config_default(&c);
	c.batch = 512;
	mfs_source_config2 c2;
	mfs_source_config2_default(&c2);
	c2.follow = 1;
	c2.queue = queue;
	c2.poll_ms = 20;
	mfs_source *s;
	mfs_diag d;
	assert_int_equal(mfs_source_open2(&s, &dir, 1, &c, &c2, &d), 0);
	struct digest got = { 0, 0, 0 };
	pthread_t stopper;
	int stopping = 0;
	time_t t0 = time(NULL);
	for (;;) {
		const mfs_event *e;
		int n = mfs_source_next(s, &e, &d);
		if (n < 0)
			fprintf(stderr, "next: %s: %s\n", d.path, d.reason);
		assert_true(n >= 0);
		if (n == 0)
			break;
		for (int k = 0; k < n; k++)
			digest_add(&got, e[k].user, e[k].user_len, e[k].item, e[k].item_len, e[k].rating);
		/* all there (or too late): stop soon, still counting anything read twice */
		if (!stopping && (got.n >= ML_EVENTS || time(NULL) - t0 > 20)) {
			assert_int_equal(pthread_create(&stopper, NULL, stop_later, s), 0);
			stopping = 1;
		}
	}
	if (stopping)
		pthread_join(stopper, NULL);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	mfs_source_stats sst;
	mfs_source_stats_get(s, &sst);
	mfs_source_free(s);
	struct digest want = expected();
	assert_int_equal(want.n, ML_EVENTS);
	assert_int_equal(got.n, ML_EVENTS);
	assert_int_equal(sst.skipped, 0);
	assert_true(got.sum == want.sum);
	assert_true(got.sum2 == want.sum2);
}

static void follow__ml100k_directory_being_filled_every_event_once_reader_thread(void **state)
{
	(void)state;
	follow_ml100k("follow_ml_thread", 2);
}

static void follow__ml100k_directory_being_filled_every_event_once_caller_thread(void **state)
{
	(void)state;
	follow_ml100k("follow_ml_sync", 0);
}

int main(void)
{
	const char *dir = mfs_ml100k_dir();
	if (!dir) {
		fprintf(stderr, "test_follow: ml-100k/u.data not found (MFS_DATA_DIR): skipped\n");
		return MFS_SKIP;
	}
	char path[1200];
	snprintf(path, sizeof path, "%s/u.data", dir);
	FILE *f = fopen(path, "rb");
	if (!f)
		return MFS_SKIP;
	fseek(f, 0, SEEK_END);
	long l = ftell(f);
	fseek(f, 0, SEEK_SET);
	udata = malloc((size_t)l + 1);
	udata_len = fread(udata, 1, (size_t)l, f);
	fclose(f);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(follow__ml100k_directory_being_filled_every_event_once_reader_thread),
		cmocka_unit_test(follow__ml100k_directory_being_filled_every_event_once_caller_thread),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	free(udata);
	return rc;
}
