/*
 * test_publish.c - the model topic: chunks of model files and their
 * reassembly on an edge (round trip in any order, damaged, missing and
 * misplaced chunks, gaps in the deltas, the size limit), and against
 * librdkafka's mock cluster: train --publish while a library server refreshes
 * from the topic (broker errors injected on both sides) and ends equal to the
 * learner's final checkpoint; serve --kafka; a publisher whose brokers are
 * gone loses no checkpoint. Skips the mock part (77) when it cannot start.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chunk.h"
#include "model_internal.h"
#include "kafka_mock.h"
#include "support.h"

#define WAIT_MS 75000

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- offline: chunks and the edge ------------------------------------------------ */

static void learn_some(mfs_model *m, uint64_t *s, int n)
{
	char u[32], i[32];
	for (int k = 0; k < n; k++) {
		*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
		int un = snprintf(u, sizeof u, "u%llu", (unsigned long long)((*s >> 33) % 2500));
		int in = snprintf(i, sizeof i, "i%llu", (unsigned long long)((*s >> 17) % 3000));
		mfs_event e = { u, i, (uint32_t)un, (uint32_t)in, 1.0f + (float)((*s >> 45) % 5), 0 };
		mfs_model_learn(m, &e, 1, NULL);
	}
}

struct msgs {
	uint8_t *m[64];
	size_t len[64];
	int n;
};

/* The chunks of the file at path, as the publisher cuts them. */
static void chunk_file(struct msgs *out, const char *path, uint32_t kind, uint64_t snap,
		       uint64_t seq, uint64_t events)
{
	size_t len;
	char *buf = mfs_read_file(path, &len);
	assert_non_null(buf);
	struct mfs_chunk_info ci = { .kind = kind, .snap = snap, .seq = seq, .total = len,
				     .events = events, .write_ns = 1000 + seq };
	ci.count = mfs_chunk_count(len);
	out->n = 0;
	for (uint32_t i = 0; i < ci.count; i++) {
		ci.index = i;
		size_t off = (size_t)i * MFS_CHUNK_PAYLOAD;
		ci.len = (uint32_t)(len - off > MFS_CHUNK_PAYLOAD ? MFS_CHUNK_PAYLOAD : len - off);
		uint8_t *msg = malloc(MFS_CHUNK_HEADER + ci.len);
		assert_non_null(msg);
		memcpy(msg + MFS_CHUNK_HEADER, buf + off, ci.len);
		mfs_chunk_header(msg, &ci, msg + MFS_CHUNK_HEADER);
		assert_true(out->n < 64);
		out->m[out->n] = msg;
		out->len[out->n++] = MFS_CHUNK_HEADER + ci.len;
	}
	free(buf);
}

static void msgs_free(struct msgs *m)
{
	for (int i = 0; i < m->n; i++)
		free(m->m[i]);
	m->n = 0;
}

struct reports {
	int n;
	char last[1024];
};

static void on_bad(void *ctx, const mfs_diag *d)
{
	struct reports *r = ctx;
	r->n++;
	mfs_diag_format(d, r->last, sizeof r->last);
	if (getenv("MFS_TEST_VERBOSE"))
		fprintf(stderr, "report: %s\n", r->last);
}

/* The newest file in dir with this suffix. */
static void newest_file(const char *dir, const char *suffix, char *out, size_t len)
{
	DIR *dp = opendir(dir);
	assert_non_null(dp);
	char best[256] = "";
	struct dirent *e;
	while ((e = readdir(dp)))
		if (strstr(e->d_name, suffix) && strcmp(e->d_name, best) > 0)
			snprintf(best, sizeof best, "%s", e->d_name);
	closedir(dp);
	assert_true(best[0]);
	snprintf(out, len, "%s/%s", dir, best);
}

/* a and b hold the same state: their saved files are equal byte for byte. */
static void assert_same_model(const mfs_model *a, const mfs_model *b)
{
	const char *pa = mfs_test_path("pub_cmp_a.mfs"), *pb = mfs_test_path("pub_cmp_b.mfs");
	assert_int_equal(mfs_model_save(a, pa, NULL, NULL), 0);
	assert_int_equal(mfs_model_save(b, pb, NULL, NULL), 0);
	mfs_assert_same_file(pa, pb);
}

static uint64_t events_of(const mfs_model *m)
{
	mfs_model_info mi;
	mfs_model_info_get(m, &mi);
	return mi.events;
}

static void fresh_dir(const char *dir)
{
	struct mfs_run r;
	assert_int_equal(mfs_run_sh(&r, "rm -rf '%s' && mkdir -p '%s'", dir, dir), 0);
	assert_int_equal(r.status, 0);
	mfs_run_free(&r);
}

/* A checkpoint directory: a whole one, then deltas d1 and d2 (names in paths). */
struct chain {
	char dir[4096], full[4096], d1[4096], d2[4096];
	uint64_t ev_full, ev1, ev2;
	mfs_model *m; /* the learner, at d2's state */
};

static void make_chain(struct chain *c, const char *name)
{
	snprintf(c->dir, sizeof c->dir, "%s", mfs_test_path(name));
	fresh_dir(c->dir);
	mfs_config cfg;
	mfs_config_default(&cfg);
	cfg.dim = 32;
	cfg.max_users = 4096;
	cfg.max_items = 4096;
	cfg.seed = 3;
	assert_int_equal(mfs_model_create(&c->m, &cfg, NULL), 0);
	uint64_t s = 1;
	learn_some(c->m, &s, 20000);
	assert_int_equal(mfs_checkpoint_write(c->m, c->dir, NULL, 0, 0, 0, NULL), 0);
	mfs_checkpoint_mark(c->m);
	newest_file(c->dir, ".mfs", c->full, sizeof c->full);
	c->ev_full = events_of(c->m);
	learn_some(c->m, &s, 700);
	assert_int_equal(mfs_checkpoint_write_delta(c->m, c->dir, NULL, 0, 0, 0, NULL), 0);
	mfs_checkpoint_mark(c->m);
	newest_file(c->dir, ".delta", c->d1, sizeof c->d1);
	c->ev1 = events_of(c->m);
	learn_some(c->m, &s, 700);
	assert_int_equal(mfs_checkpoint_write_delta(c->m, c->dir, NULL, 0, 0, 0, NULL), 0);
	mfs_checkpoint_mark(c->m);
	newest_file(c->dir, ".delta", c->d2, sizeof c->d2);
	c->ev2 = events_of(c->m);
}

static void feed(struct mfs_edge *e, const struct msgs *m, int i, struct reports *r)
{
	char where[64];
	snprintf(where, sizeof where, "test chunk %d", i);
	mfs_edge_add(e, m->m[i], m->len[i], where, on_bad, r);
}

struct pick {
	const struct msgs *m;
	int i;
};

/* Chunks of a whole checkpoint and two deltas, all shuffled together, give the
 * directory's newest state; every chunk fed twice changes nothing. */
static void chunks__round_trip_in_any_order(void **state)
{
	(void)state;
	struct chain c;
	make_chain(&c, "pub_rt");
	struct msgs f, a, b;
	chunk_file(&f, c.full, MFS_CHUNK_FULL, 7, 0, c.ev_full);
	chunk_file(&a, c.d1, MFS_CHUNK_DELTA, 7, 1, c.ev1);
	chunk_file(&b, c.d2, MFS_CHUNK_DELTA, 7, 2, c.ev2);
	assert_true(f.n >= 3); /* a whole model of several chunks */
	struct pick all[192];
	int n = 0;
	for (int i = 0; i < f.n; i++)
		all[n++] = (struct pick){ &f, i };
	for (int i = 0; i < a.n; i++)
		all[n++] = (struct pick){ &a, i };
	for (int i = 0; i < b.n; i++)
		all[n++] = (struct pick){ &b, i };
	uint64_t s = 42;
	for (int i = n - 1; i > 0; i--) { /* a seeded shuffle: deltas before their base too */
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		int j = (int)((s >> 33) % (uint64_t)(i + 1));
		struct pick t = all[i];
		all[i] = all[j];
		all[j] = t;
	}
	struct mfs_edge *e;
	assert_int_equal(mfs_edge_create(&e, 1u << 30), 0);
	struct reports r = { 0 };
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < n; i++)
			feed(e, all[i].m, all[i].i, &r);
	assert_int_equal(r.n, 0);
	mfs_model *got;
	uint64_t wns = 0;
	assert_int_equal(mfs_edge_build(e, &got, NULL, &wns, on_bad, &r, NULL), 1);
	assert_int_equal(wns, 1002); /* the newest file's write time: delta 2 */
	mfs_model *want;
	assert_int_equal(mfs_checkpoint_load_newest(&want, c.dir, NULL, NULL, NULL, NULL, 0, NULL), 0);
	assert_int_equal(events_of(got), c.ev2);
	assert_same_model(got, want);
	assert_same_model(got, c.m);
	/* nothing new: no build */
	mfs_model *none = NULL;
	assert_int_equal(mfs_edge_build(e, &none, NULL, &wns, on_bad, &r, NULL), 0);
	assert_null(none);
	struct mfs_edge_stats st;
	mfs_edge_stats_get(e, &st);
	assert_int_equal(st.fulls, 1);
	assert_int_equal(st.deltas, 2);
	assert_int_equal(st.bad_chunks, 0);
	mfs_model_free(got);
	mfs_model_free(want);
	mfs_model_free(c.m);
	mfs_edge_free(e);
	msgs_free(&f);
	msgs_free(&a);
	msgs_free(&b);
}

/*
 * A damaged chunk is reported and skipped (its file never completes); a
 * missing chunk of delta 1 with delta 2 complete is a gap, reported, and the
 * edge keeps the last whole model; chunks that pass their own checks but sit
 * in the wrong place make a file that does not load: reported, the model
 * stays; the next whole snapshot recovers. A declared total over the limit is
 * refused.
 */
static void chunks__damage_and_gaps_keep_the_last_whole_model(void **state)
{
	(void)state;
	struct chain c;
	make_chain(&c, "pub_dmg");
	struct msgs f, a, b;
	chunk_file(&f, c.full, MFS_CHUNK_FULL, 10, 0, c.ev_full);
	chunk_file(&a, c.d1, MFS_CHUNK_DELTA, 10, 1, c.ev1);
	chunk_file(&b, c.d2, MFS_CHUNK_DELTA, 10, 2, c.ev2);
	struct mfs_edge *e;
	assert_int_equal(mfs_edge_create(&e, 1u << 30), 0);
	struct reports r = { 0 };
	mfs_model *m = NULL;
	uint64_t wns;
	/* a flipped payload byte: the chunk is refused, the snapshot incomplete */
	f.m[1][MFS_CHUNK_HEADER + 100] ^= 0x40;
	for (int i = 0; i < f.n; i++)
		feed(e, &f, i, &r);
	assert_int_equal(r.n, 1);
	assert_non_null(strstr(r.last, "payload checksum mismatch"));
	assert_non_null(strstr(r.last, "test chunk 1"));
	assert_int_equal(mfs_edge_build(e, &m, NULL, &wns, on_bad, &r, NULL), 0);
	f.m[1][MFS_CHUNK_HEADER + 100] ^= 0x40; /* the producer's retry brings it intact */
	feed(e, &f, 1, &r);
	assert_int_equal(mfs_edge_build(e, &m, NULL, &wns, on_bad, &r, NULL), 1);
	assert_int_equal(events_of(m), c.ev_full);
	mfs_model_free(m);
	/* delta 1 loses a chunk, delta 2 arrives whole: a gap, reported once */
	for (int i = 1; i < a.n; i++)
		feed(e, &a, i, &r);
	for (int i = 0; i < b.n; i++)
		feed(e, &b, i, &r);
	r.n = 0;
	m = NULL;
	assert_int_equal(mfs_edge_build(e, &m, NULL, &wns, on_bad, &r, NULL), 0);
	assert_null(m);
	assert_int_equal(r.n, 1);
	assert_non_null(strstr(r.last, "delta 1 is missing or damaged"));
	assert_int_equal(mfs_edge_build(e, &m, NULL, &wns, on_bad, &r, NULL), 0);
	assert_int_equal(r.n, 1); /* once */
	/* the missing chunk comes late: both deltas apply */
	feed(e, &a, 0, &r);
	assert_int_equal(mfs_edge_build(e, &m, NULL, &wns, on_bad, &r, NULL), 1);
	assert_int_equal(events_of(m), c.ev2);
	assert_same_model(m, c.m);
	mfs_model_free(m);

	/* a newer snapshot whose first two chunks trade places (each re-signed,
	 * so every chunk check passes): the file fails the model's own checks */
	struct msgs g;
	const char *p2 = mfs_test_path("pub_dmg_whole.mfs");
	assert_int_equal(mfs_model_save(c.m, p2, NULL, NULL), 0);
	chunk_file(&g, p2, MFS_CHUNK_FULL, 11, 0, c.ev2);
	assert_true(g.n >= 2);
	uint8_t *tmp = malloc(MFS_CHUNK_PAYLOAD);
	assert_non_null(tmp);
	memcpy(tmp, g.m[0] + MFS_CHUNK_HEADER, MFS_CHUNK_PAYLOAD);
	memcpy(g.m[0] + MFS_CHUNK_HEADER, g.m[1] + MFS_CHUNK_HEADER, MFS_CHUNK_PAYLOAD);
	memcpy(g.m[1] + MFS_CHUNK_HEADER, tmp, MFS_CHUNK_PAYLOAD);
	free(tmp);
	for (int i = 0; i < 2; i++) {
		struct mfs_chunk_info ci;
		const uint8_t *pl;
		const char *why;
		ci.kind = MFS_CHUNK_FULL;
		ci.snap = 11;
		ci.seq = 0;
		ci.index = (uint32_t)i;
		ci.count = (uint32_t)g.n;
		ci.total = mfs_get64(g.m[i] + 40);
		ci.events = c.ev2;
		ci.write_ns = 1000;
		ci.len = MFS_CHUNK_PAYLOAD;
		mfs_chunk_header(g.m[i], &ci, g.m[i] + MFS_CHUNK_HEADER);
		assert_int_equal(mfs_chunk_parse(g.m[i], g.len[i], &ci, &pl, &why), 0);
	}
	r.n = 0;
	for (int i = 0; i < g.n; i++)
		feed(e, &g, i, &r);
	assert_int_equal(r.n, 0); /* every chunk is fine on its own */
	m = NULL;
	assert_int_equal(mfs_edge_build(e, &m, NULL, &wns, on_bad, &r, NULL), 0);
	assert_null(m);
	assert_int_equal(r.n, 1);
	assert_non_null(strstr(r.last, "snapshot 11"));
	msgs_free(&g);
	/* the next whole snapshot, intact, serves */
	chunk_file(&g, p2, MFS_CHUNK_FULL, 12, 0, c.ev2);
	for (int i = g.n; i-- > 0;)
		feed(e, &g, i, &r);
	assert_int_equal(mfs_edge_build(e, &m, NULL, &wns, on_bad, &r, NULL), 1);
	assert_same_model(m, c.m);
	mfs_model_free(m);
	/* stale: an older snapshot's chunks change nothing */
	for (int i = 0; i < f.n; i++)
		feed(e, &f, i, &r);
	assert_int_equal(mfs_edge_build(e, &m, NULL, &wns, on_bad, &r, NULL), 0);
	msgs_free(&g);
	mfs_edge_free(e);

	/* over the limit: refused from its first chunk */
	assert_int_equal(mfs_edge_create(&e, 1000), 0);
	r.n = 0;
	feed(e, &f, 0, &r);
	assert_int_equal(r.n, 1);
	assert_non_null(strstr(r.last, "over the limit"));
	mfs_edge_free(e);
	/* not a chunk at all, and a truncated one */
	assert_int_equal(mfs_edge_create(&e, 1u << 30), 0);
	r.n = 0;
	mfs_edge_add(e, "hello", 5, "x", on_bad, &r);
	mfs_edge_add(e, f.m[0], f.len[0] - 1, "y", on_bad, &r);
	assert_int_equal(r.n, 2);
	assert_non_null(strstr(r.last, "impossible sizes"));
	mfs_edge_free(e);
	msgs_free(&f);
	msgs_free(&a);
	msgs_free(&b);
	mfs_model_free(c.m);
}

/* --- the mock cluster ----------------------------------------------------------------- */

static struct mfs_mock mk;

static pid_t learner_pid;

static int kill_leftovers(void **state)
{
	(void)state;
	if (learner_pid > 0) {
		kill(learner_pid, SIGKILL);
		waitpid(learner_pid, NULL, 0);
		learner_pid = 0;
	}
	return 0;
}

static pid_t spawn(const char *const *argv, const char *out, const char *err)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(fo, 1);
		dup2(fe, 2);
		execv(MFS_CLI, (char *const *)argv);
		_exit(127);
	}
	assert_true(pid > 0);
	learner_pid = pid;
	return pid;
}

static void wait_ckpt(const char *dir, unsigned long long events, pid_t pid)
{
	long long t0 = now_ms();
	while (mfs_newest_checkpoint(dir) < events) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid && (learner_pid = 0, 1))
			fail_msg("the learner ended (status %d) before checkpoint %llu", st, events);
		if (now_ms() - t0 > WAIT_MS)
			fail_msg("no checkpoint of %llu events in %s (newest %llu)", events, dir,
				 mfs_newest_checkpoint(dir));
		usleep(5000);
	}
}

static char *term(pid_t pid, const char *out)
{
	int st;
	if (!mfs_test_catches(pid, SIGTERM, WAIT_MS))
		fail_msg("the learner (pid %d) set no SIGTERM handler in %d ms", (int)pid, WAIT_MS);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	learner_pid = 0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the learner did not exit 0 on SIGTERM (status %d)", st);
	char *s = mfs_read_file(out, NULL);
	assert_non_null(s);
	return s;
}

/*
 * train --kafka --publish with deltas while a library server follows the
 * model topic (3 partitions: chunks spread by key); Produce and Fetch errors
 * injected meanwhile. The server ends on a model equal to the learner's final
 * checkpoint, byte for byte, and reports the lag; serve --kafka boots on it.
 */
static void publish__server_follows_train_to_its_final_checkpoint(void **state)
{
	(void)state;
	mfs_mock_cmd(&mk, "topic pr 1");
	mfs_mock_cmd(&mk, "topic prm 3");
	mfs_mock_cmd(&mk, "produce pr 0 4000 11 0");
	const char *dir = mfs_test_path("pub_ck");
	fresh_dir(dir);
	const char *out = mfs_test_path("pub_out"), *err = mfs_test_path("pub_err");
	char target[600];
	snprintf(target, sizeof target, "%s/prm", mk.bootstrap);
	const char *argv[] = { MFS_CLI, "train", "--kafka", mk.bootstrap, "--topic", "pr",
			       "--checkpoint-dir", dir, "--checkpoint-every", "2000",
			       "--delta-every", "500", "--publish", target,
			       "--publish-full-every", "3", "--dim", "32", "--max-users", "4096",
			       "--max-items", "4096", "--quiet", NULL };
	pid_t pid = spawn(argv, out, err);
	wait_ckpt(dir, 4000, pid);
	char url[700];
	snprintf(url, sizeof url, "kafka://%s/prm", mk.bootstrap);
	mfs_server *srv;
	mfs_diag d;
	struct reports r = { 0 };
	assert_int_equal(mfs_server_open(&srv, url, NULL, on_bad, &r, &d), 0);
	mfs_server_info si;
	mfs_server_info_get(srv, &si);
	assert_true(si.events >= 500); /* what was delivered when it opened */
	mfs_mock_cmd(&mk, "produce-errors 6");
	mfs_mock_cmd(&mk, "fetch-errors 6");
	mfs_mock_cmd(&mk, "produce pr 0 3000 11 4000");
	wait_ckpt(dir, 7000, pid);
	uint64_t seen_refresh = 0;
	long long t0 = now_ms();
	/* refreshes while the learner runs: each a whole model of the chain */
	while (now_ms() - t0 < WAIT_MS) {
		int rc = mfs_server_refresh(srv, &d);
		assert_true(rc >= 0);
		mfs_server_info_get(srv, &si);
		seen_refresh = si.refreshes;
		if (si.events == 7000)
			break;
		usleep(20000);
	}
	char *s = term(pid, out);
	assert_true(mfs_json_number(s, "model_events") == 7000.0);
	assert_non_null(strstr(s, "\"failures\": 0"));
	if (si.events != 7000) {
		const char *pub = strstr(s, "\"published\"");
		fail_msg("the edge serves %llu events, not 7000 (last report: %s; learner: %.300s)",
			 (unsigned long long)si.events, r.last, pub ? pub : s);
	}
	free(s);
	assert_true(seen_refresh >= 1);
	uint64_t wns, lns;
	assert_int_equal(mfs_server_lag(srv, &wns, &lns), 1);
	assert_true(wns > 0);
	assert_true(lns > 0 && lns < 60ull * 1000000000ull);
	mfs_server_refresh(srv, &d);
	mfs_model *want;
	assert_int_equal(mfs_checkpoint_load_newest(&want, dir, NULL, NULL, NULL, NULL, 0, NULL), 0);
	const mfs_view *v = mfs_server_acquire(srv);
	assert_same_model(mfs_view_model(v), want);
	mfs_server_release(srv, v);
	mfs_model_free(want);
	mfs_server_free(srv);

	/* serve --kafka boots from the topic and answers info with the lag */
	struct mfs_run run;
	mfs_run_sh(&run, "echo info | '%s' serve --kafka '%s' --model-topic prm", MFS_CLI,
		   mk.bootstrap);
	if (run.status != 0 || !strstr(run.out, "\"model_events\": 7000") ||
	    !strstr(run.out, "\"lag_ms\""))
		fail_msg("serve --kafka: status %d, out %s, err %s", run.status, run.out, run.err);
	mfs_run_free(&run);
}

/* Brokers that never answer: publishing fails, is said and counted, and every
 * checkpoint is still written; the run's status is its learning's. */
static void publish__brokers_gone_lose_no_checkpoint(void **state)
{
	(void)state;
	const char *in = mfs_test_path("pub_gone.jsonl");
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "dump %s 3000 5 0", in);
	mfs_mock_cmd(&mk, "%s", cmd);
	const char *dir = mfs_test_path("pub_gone_ck");
	struct mfs_run run;
	mfs_run_sh(&run,
		   "rm -rf '%s' && mkdir -p '%s' && '%s' train '%s' --checkpoint-dir '%s' "
		   "--checkpoint-every 1000 --dim 8 --publish 127.0.0.1:9/m "
		   "--publish-opt message.timeout.ms=300 --publish-opt socket.connection.setup.timeout.ms=1000",
		   dir, dir, MFS_CLI, in, dir);
	if (run.status != 0)
		fail_msg("status %d: %s", run.status, run.err);
	assert_true(mfs_newest_checkpoint(dir) == 3000);
	assert_non_null(strstr(run.out, "\"published\""));
	assert_true(strstr(run.out, "\"failures\": 0") == NULL);
	assert_non_null(strstr(run.err, "not delivered"));
	mfs_run_free(&run);
}

static void publish__usage_errors(void **state)
{
	(void)state;
	static const struct {
		const char *args, *says;
	} cases[] = {
		{ "train x --publish b:1/t", "--publish needs --checkpoint-dir" },
		{ "train x --checkpoint-dir . --publish notopic", "must be BROKERS/TOPIC" },
		{ "train x --publish-full-every 3", "needs --publish" },
		{ "train x --checkpoint-dir . --publish b:1/t --publish-opt nokey", "KEY=VALUE" },
		{ "serve --kafka b:1", "--kafka needs --model-topic" },
		{ "serve --model-topic t", "--model-topic needs --kafka" },
		{ "serve --model m --kafka b:1 --model-topic t", "one source of models" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct mfs_run r;
		mfs_run_sh(&r, "'%s' %s", MFS_CLI, cases[i].args);
		if (r.status != 2 || !strstr(r.err, cases[i].says))
			fail_msg("%s: status %d, stderr %s", cases[i].args, r.status, r.err);
		mfs_run_free(&r);
	}
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (getenv("MFS_TEST_FILTER"))
		cmocka_set_test_filter(getenv("MFS_TEST_FILTER"));
	const struct CMUnitTest offline[] = {
		cmocka_unit_test(chunks__round_trip_in_any_order),
		cmocka_unit_test(chunks__damage_and_gaps_keep_the_last_whole_model),
		cmocka_unit_test(publish__usage_errors),
	};
	int rc = cmocka_run_group_tests_name("publish_offline", offline, NULL, NULL);
	if (mfs_mock_start(&mk, MFS_KAFKA_MOCK) < 0) {
		fprintf(stderr, "test_publish: the mock cluster did not start: skipped\n");
		mfs_mock_stop(&mk);
		return rc ? rc : MFS_SKIP;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(publish__server_follows_train_to_its_final_checkpoint,
					  kill_leftovers),
		cmocka_unit_test_teardown(publish__brokers_gone_lose_no_checkpoint, kill_leftovers),
	};
	rc |= cmocka_run_group_tests_name("publish_mock", tests, NULL, NULL);
	mfs_mock_stop(&mk);
	return rc;
}
