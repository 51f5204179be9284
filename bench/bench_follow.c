/*
 * bench_follow - how live is --follow: the latency from a line appended to a
 * followed file to
 *   learned     the event is in a batch the learner has learned (an in-process
 *               learner on the library: mfs_source_next_wait + mfs_model_learn,
 *               the loop `train` runs),
 *   checkpoint  a checkpoint holding it has been renamed into place by
 *               `mfstream train --follow --checkpoint-dir` (watched by inotify),
 *   served      `mfstream serve --model DIR` answers `info` with a model_events
 *               that includes it (asked every millisecond),
 * at several append rates. A writer appends lines every millisecond at the rate
 * asked; the latency of a line at a stage is the time from its append to the
 * first observation at that stage with an event count that includes it.
 * Samples: the last line of each millisecond's append. Prints the median and
 * p99 per stage and rate.
 *
 * Usage: bench_follow MFSTREAM_BINARY [SECONDS_PER_RATE] [CHECKPOINT_EVERY] [RATE...]
 * Defaults: 8 s per rate, checkpoints every 1s, rates 100 10000 1000000.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mfstream.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* (count, time) observations of one stage, in time order */
struct obs {
	uint64_t *count;
	double *t;
	size_t n, cap;
	pthread_mutex_t mu;
};

static void obs_add(struct obs *o, uint64_t count, double t)
{
	pthread_mutex_lock(&o->mu);
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 1024;
		o->count = realloc(o->count, o->cap * sizeof *o->count);
		o->t = realloc(o->t, o->cap * sizeof *o->t);
		if (!o->count || !o->t)
			abort();
	}
	o->count[o->n] = count;
	o->t[o->n] = t;
	o->n++;
	pthread_mutex_unlock(&o->mu);
}

struct run {
	const char *bin, *dir, *file, *ck;
	double rate, secs;
	atomic_int writing, quit;
	struct obs appended, learned, ckpt, served;
};

/* --- the writer: rate lines per second, appended every millisecond ---------- */

static void *writer_main(void *arg)
{
	struct run *r = arg;
	int fd = open(r->file, O_WRONLY | O_APPEND);
	if (fd < 0)
		abort();
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	uint64_t written = 0;
	double t0 = now_s();
	while (now_s() - t0 < r->secs) {
		double due = (now_s() - t0) * r->rate;
		size_t len = 0;
		while ((double)written < due && len + 64 < cap) {
			len += (size_t)snprintf(buf + len, 64, "u%llu\ti%llu\t%d\n",
						(unsigned long long)(written % 20000),
						(unsigned long long)(written * 7919 % 5000),
						(int)(1 + written % 5));
			written++;
		}
		if (len) {
			if (write(fd, buf, len) != (ssize_t)len)
				abort();
			obs_add(&r->appended, written, now_s());
		}
		usleep(1000);
	}
	close(fd);
	free(buf);
	atomic_store(&r->writing, 0);
	return NULL;
}

/* --- stage 1: an in-process learner ------------------------------------------ */

static void *learner_main(void *arg)
{
	struct run *r = arg;
	mfs_config mc;
	mfs_config_default(&mc);
	mc.dim = 32;
	mc.max_users = 1 << 15;
	mc.max_items = 1 << 13;
	mfs_model *m = NULL;
	mfs_diag d;
	if (mfs_model_create(&m, &mc, &d) < 0)
		abort();
	mfs_source_config2 c2;
	mfs_source_config2_default(&c2);
	c2.follow = 1;
	c2.queue = 2;
	mfs_source *s = NULL;
	if (mfs_source_open2(&s, &r->file, 1, NULL, &c2, &d) < 0)
		abort();
	uint64_t total = 0;
	while (!atomic_load(&r->quit)) {
		const mfs_event *ev;
		int n = mfs_source_next_wait(s, &ev, 50, &d);
		if (n <= 0)
			continue;
		mfs_learn_stats st;
		memset(&st, 0, sizeof st);
		mfs_model_learn(m, ev, (size_t)n, &st);
		total += (uint64_t)n;
		obs_add(&r->learned, total, now_s());
	}
	mfs_source_free(s);
	mfs_model_free(m);
	return NULL;
}

/* --- stage 2: checkpoints renamed into place ---------------------------------- */

static void *ckpt_main(void *arg)
{
	struct run *r = arg;
	int fd = inotify_init1(IN_NONBLOCK);
	if (fd < 0 || inotify_add_watch(fd, r->ck, IN_MOVED_TO) < 0)
		abort();
	char buf[8192] __attribute__((aligned(8)));
	while (!atomic_load(&r->quit)) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0) {
			usleep(200);
			continue;
		}
		double t = now_s();
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)p;
			p += sizeof *e + e->len;
			unsigned long long c;
			if (e->len && sscanf(e->name, "ckpt-%llu.", &c) == 1)
				obs_add(&r->ckpt, c, t);
		}
	}
	close(fd);
	return NULL;
}

/* --- stage 3: serve's answers ---------------------------------------------------- */

struct served_io {
	struct run *r;
	int to, from;
};

static void *served_main(void *arg)
{
	struct served_io *io = arg;
	struct run *r = io->r;
	FILE *in = fdopen(io->from, "r");
	char line[4096];
	uint64_t last = 0;
	while (!atomic_load(&r->quit)) {
		if (write(io->to, "info\n", 5) != 5)
			break;
		if (!fgets(line, sizeof line, in))
			break;
		double t = now_s();
		char *p = strstr(line, "\"model_events\":");
		if (p) {
			uint64_t e = strtoull(p + 15, NULL, 10);
			if (e != last)
				obs_add(&r->served, e, t);
			last = e;
		}
		usleep(1000);
	}
	fclose(in);
	return NULL;
}

static pid_t spawn(char *const argv[], int *to, int *from)
{
	int a[2], b[2];
	if (to && pipe(a) < 0)
		abort();
	if (from && pipe(b) < 0)
		abort();
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(to ? a[0] : null, 0);
		dup2(from ? b[1] : null, 1);
		dup2(null, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	if (to) {
		close(a[0]);
		*to = a[1];
	}
	if (from) {
		close(b[1]);
		*from = b[0];
	}
	return pid;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Latencies of the appended samples at one stage: median and p99 in ms. */
static void report(const char *stage, double rate, const struct obs *ap, const struct obs *st)
{
	double *lat = malloc((ap->n + 1) * sizeof *lat);
	size_t n = 0, j = 0, missed = 0;
	for (size_t i = 0; i < ap->n; i++) {
		while (j < st->n && (st->count[j] < ap->count[i] || st->t[j] < ap->t[i]))
			j++;
		if (j == st->n) {
			missed++;
			continue;
		}
		lat[n++] = (st->t[j] - ap->t[i]) * 1000.0;
	}
	if (!n) {
		printf("bench_follow rate=%.0f/s stage=%-10s no sample reached it\n", rate, stage);
		free(lat);
		return;
	}
	qsort(lat, n, sizeof *lat, cmp_d);
	printf("bench_follow rate=%.0f/s stage=%-10s samples=%zu median_ms=%.2f p99_ms=%.2f "
	       "max_ms=%.2f not_reached=%zu\n",
	       rate, stage, n, lat[n / 2], lat[(size_t)((double)(n - 1) * 0.99)], lat[n - 1],
	       missed);
	free(lat);
}

static void run_rate(const char *bin, const char *base, double rate, double secs,
		     const char *every)
{
	struct run r;
	memset(&r, 0, sizeof r);
	char dir[512], file[600], ck[600];
	snprintf(dir, sizeof dir, "%s/rate-%.0f", base, rate);
	snprintf(file, sizeof file, "%s/events.tsv", dir);
	snprintf(ck, sizeof ck, "%s/ck", dir);
	char cmd[1400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, ck);
	if (system(cmd) != 0)
		abort();
	/* a first line, so that serve has a checkpoint to start from */
	FILE *f = fopen(file, "w");
	fprintf(f, "seed\tseed\t3\n");
	fclose(f);
	r.bin = bin;
	r.file = file;
	r.ck = ck;
	r.rate = rate;
	r.secs = secs;
	pthread_mutex_init(&r.appended.mu, NULL);
	pthread_mutex_init(&r.learned.mu, NULL);
	pthread_mutex_init(&r.ckpt.mu, NULL);
	pthread_mutex_init(&r.served.mu, NULL);
	atomic_store(&r.writing, 1);

	pthread_t ckt;
	pthread_create(&ckt, NULL, ckpt_main, &r);
	char *targv[] = { (char *)bin, "train", "--follow", "--quiet", "--dim", "32",
			  "--max-users", "32768", "--max-items", "8192", "--checkpoint-dir", ck,
			  "--checkpoint-every", (char *)every, file, NULL };
	pid_t trainer = spawn(targv, NULL, NULL);
	char first[700];
	snprintf(first, sizeof first, "%s/ckpt-00000000000000000001.mfs", ck);
	double tw = now_s();
	while (access(first, F_OK) != 0 && now_s() - tw < 30)
		usleep(1000);
	char *sargv[] = { (char *)bin, "serve", "--model", ck, "--poll-ms", "100", NULL };
	struct served_io io = { &r, -1, -1 };
	pid_t server = spawn(sargv, &io.to, &io.from);
	usleep(300 * 1000);
	/* counts from here on: the seed line is event 1 in the learner's files */
	pthread_t lt, st, wt;
	pthread_create(&lt, NULL, learner_main, &r);
	pthread_create(&st, NULL, served_main, &io);
	usleep(300 * 1000);
	pthread_create(&wt, NULL, writer_main, &r);
	pthread_join(wt, NULL);
	sleep(3); /* the last checkpoints and refreshes */
	atomic_store(&r.quit, 1);
	kill(trainer, SIGTERM);
	kill(server, SIGTERM);
	close(io.to);
	pthread_join(lt, NULL);
	pthread_join(st, NULL);
	pthread_join(ckt, NULL);
	waitpid(trainer, NULL, 0);
	waitpid(server, NULL, 0);
	/* the learner counts the seed line too; train's checkpoints and serve's counts as well */
	for (size_t i = 0; i < r.appended.n; i++)
		r.appended.count[i] += 1;
	report("learned", rate, &r.appended, &r.learned);
	report("checkpoint", rate, &r.appended, &r.ckpt);
	report("served", rate, &r.appended, &r.served);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_follow MFSTREAM_BINARY [SECONDS] [CHECKPOINT_EVERY] "
				"[RATE...]\n");
		return 2;
	}
	double secs = argc > 2 ? atof(argv[2]) : 8;
	const char *every = argc > 3 ? argv[3] : "1s";
	const char *base = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "/tmp/mfstream-bench";
	char b[512];
	snprintf(b, sizeof b, "%s/follow", base);
	printf("bench_follow seconds_per_rate=%.0f checkpoint_every=%s linger_ms=5 (default) "
	       "serve --poll-ms 100 (inotify wakes it first)\n",
	       secs, every);
	static const double rates[] = { 100, 10000, 1000000 };
	if (argc > 4)
		for (int i = 4; i < argc; i++)
			run_rate(argv[1], b, atof(argv[i]), secs, every);
	else
		for (size_t i = 0; i < 3; i++)
			run_rate(argv[1], b, rates[i], secs, every);
	return 0;
}
