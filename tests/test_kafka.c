/*
 * test_kafka.c - train --kafka against librdkafka's mock cluster: exactly once
 * through SIGKILLs (counts per partition), the single-partition model equal to
 * an uninterrupted run byte for byte, injected broker errors and brokers down,
 * malformed messages, and the position blob.
 *
 * The mock cluster lives in a process of its own (kafka_mock, tests/
 * kafka_mock_main.c) driven through a pipe; the learner is the mfstream CLI,
 * killed and restarted. Every wait is for something the learner writes (a
 * checkpoint name, a line on stderr), bounded; no sleep decides a result.
 * Skips (77) when the mock cluster cannot start.
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

#include "kafka_mock.h"
#include "support.h"

#define WAIT_MS 75000 /* the longest any wait may take before the test fails (ASan under load: 30 s was not enough for a --group restart) */

static struct mfs_mock mk;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(void)
{
	usleep(5000);
}

/* Learners still running (a failed assertion leaves one): killed after each test. */
static pid_t running[8];

static void track(pid_t pid, int on)
{
	for (int i = 0; i < 8; i++)
		if (on ? running[i] == 0 : running[i] == pid) {
			running[i] = on ? pid : 0;
			return;
		}
}

static int kill_leftovers(void **state)
{
	(void)state;
	for (int i = 0; i < 8; i++)
		if (running[i] > 0) {
			kill(running[i], SIGKILL);
			waitpid(running[i], NULL, 0);
			running[i] = 0;
		}
	return 0;
}

/* Start train on the mock with extra arguments (NULL-terminated); stdout/stderr to files. */
static pid_t learner(const char *ckdir, const char *out, const char *err, const char *const *extra)
{
	const char *argv[48];
	int n = 0;
	const char *base[] = { MFS_CLI, "train", "--kafka", mk.bootstrap, "--checkpoint-dir", ckdir,
			       "--checkpoint-every", "500", "--dim", "16", "--max-users", "4096",
			       "--max-items", "4096", "--quiet", "--kafka-opt", "notice-ms=300",
			       "--kafka-opt", "reconnect.backoff.max.ms=300" };
	for (size_t i = 0; i < sizeof base / sizeof *base; i++)
		argv[n++] = base[i];
	for (size_t i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int fe = open(err, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fo, 1);
		dup2(fe, 2);
		execv(MFS_CLI, (char *const *)argv);
		_exit(127);
	}
	assert_true(pid > 0);
	track(pid, 1);
	return pid;
}

/* Wait until dir holds a checkpoint of at least events (fail after WAIT_MS). */
static void wait_ckpt(const char *dir, unsigned long long events, pid_t pid)
{
	long long t0 = now_ms();
	while (mfs_newest_checkpoint(dir) < events) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid && (track(pid, 0), 1))
			fail_msg("the learner ended (status %d) before checkpoint %llu", st, events);
		if (now_ms() - t0 > WAIT_MS)
			fail_msg("no checkpoint of %llu events in %s after %d ms (newest %llu)", events,
				 dir, WAIT_MS, mfs_newest_checkpoint(dir));
		nap();
	}
}

/* Wait until file holds text (fail after WAIT_MS). */
static void wait_text(const char *file, const char *text)
{
	long long t0 = now_ms();
	for (;;) {
		char *s = mfs_read_file(file, NULL);
		int found = s && strstr(s, text);
		free(s);
		if (found)
			return;
		if (now_ms() - t0 > WAIT_MS)
			fail_msg("\"%s\" did not appear in %s", text, file);
		nap();
	}
}

static void kill_learner(pid_t pid)
{
	int st;
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	track(pid, 0);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/*
 * SIGTERM: the learner checkpoints and exits 0. Returns its stdout. Sent once
 * the learner catches it: the checkpoint waited for may be an older learner's
 * (a SIGKILLed learner's writer finishes its file), so a restarted one may not
 * have set its handler yet.
 */
static char *term_learner(pid_t pid, const char *out)
{
	int st;
	if (!mfs_test_catches(pid, SIGTERM, WAIT_MS))
		fail_msg("the learner (pid %d) set no SIGTERM handler in %d ms", (int)pid, WAIT_MS);
	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	track(pid, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the learner did not exit 0 on SIGTERM (status %d)", st);
	char *s = mfs_read_file(out, NULL);
	assert_non_null(s);
	return s;
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The newest state of dir: its Kafka position's partition entries checked against want. */
static void assert_position(const char *dir, const char *topic, int nparts, const uint64_t *events,
			    const int64_t *offsets, const uint64_t *skipped)
{
	mfs_model *m;
	mfs_diag d;
	assert_int_equal(mfs_checkpoint_load_newest(&m, dir, NULL, NULL, NULL, NULL, 0, &d), 0);
	size_t len;
	const void *pos = mfs_model_position(m, &len);
	int n = mfs_position_kafka_partition(pos, len, 0, NULL);
	assert_int_equal(n, nparts);
	uint64_t total = 0;
	for (int i = 0; i < n; i++) {
		mfs_kafka_partition kp;
		assert_int_equal(mfs_position_kafka_partition(pos, len, (size_t)i, &kp), n);
		assert_int_equal(kp.topic_len, strlen(topic));
		assert_memory_equal(kp.topic, topic, kp.topic_len);
		assert_true(kp.partition >= 0 && kp.partition < nparts);
		int p = kp.partition;
		if (kp.events != events[p] || kp.offset != offsets[p] || kp.skipped != skipped[p])
			fail_msg("partition %d: events %llu offset %lld skipped %llu, produced %llu "
				 "events in %lld messages, %llu malformed",
				 p, (unsigned long long)kp.events, (long long)kp.offset,
				 (unsigned long long)kp.skipped, (unsigned long long)events[p],
				 (long long)offsets[p], (unsigned long long)skipped[p]);
		assert_int_equal(kp.lines, 0);
		print_message("partition %d: produced %llu events in %lld messages (%llu malformed); "
			      "the checkpoint learned %llu, next offset %lld, skipped %llu\n",
			      p, (unsigned long long)events[p], (long long)offsets[p],
			      (unsigned long long)skipped[p], (unsigned long long)kp.events,
			      (long long)kp.offset, (unsigned long long)kp.skipped);
		total += kp.events;
	}
	mfs_model_info mi;
	mfs_model_info_get(m, &mi);
	assert_int_equal(mi.events, total); /* the model learned each event once */
	mfs_model_free(m);
}

/*
 * 3 partitions, single-event and multi-line messages, malformed messages,
 * more events produced while the learner is down, injected Fetch errors; the
 * learner SIGKILLed 6 times at seeded checkpoint counts, then finished with
 * SIGTERM: every event learned exactly once, per partition.
 */
static void train_kafka__sigkill_restarts_learn_every_event_once(void **state)
{
	(void)state;
	const char *dir = mfs_test_path("exact_ck");
	const char *out = mfs_test_path("exact_out"), *err = mfs_test_path("exact_err");
	unlink(err);
	mfs_mock_cmd(&mk, "topic ratings 3");
	uint64_t ev[3] = { 0 }, sk[3] = { 0 }, first = 0, seed = 14;
	int64_t msgs[3] = { 0 };
	/* the stream so far: single-event messages, two multi-line ones, two malformed */
	mfs_mock_cmd(&mk, "produce ratings 0 1500 7 %llu", (unsigned long long)first);
	ev[0] += 1500, msgs[0] += 1500, first += 1500;
	mfs_mock_cmd(&mk, "produce ratings 1 1000 7 %llu", (unsigned long long)first);
	ev[1] += 1000, msgs[1] += 1000, first += 1000;
	mfs_mock_cmd(&mk, "multi ratings 2 700 7 %llu", (unsigned long long)first);
	ev[2] += 700, msgs[2] += 1, first += 700;
	mfs_mock_cmd(&mk, "bad ratings 2 {\"user\": \"1\", \"item\": \"2\", \"rating\": \"x\"}");
	sk[2]++, msgs[2]++;
	mfs_mock_cmd(&mk, "produce ratings 2 300 7 %llu", (unsigned long long)first);
	ev[2] += 300, msgs[2] += 300, first += 300;
	mfs_mock_cmd(&mk, "bad ratings 1 not a record");
	sk[1]++, msgs[1]++;
	const char *const extra[] = { "--topic", "ratings", NULL };
	unsigned long long done = 0;
	for (int kill_no = 0; kill_no < 6; kill_no++) {
		pid_t pid = learner(dir, out, err, extra);
		unsigned long long total = ev[0] + ev[1] + ev[2];
		/* a seeded checkpoint count between the last one and the events produced */
		unsigned long long span = (total - done) / 500;
		unsigned long long target = done + 500 * (1 + rnd(&seed) % (span > 1 ? span - 1 : 1));
		if (kill_no == 2)
			mfs_mock_cmd(&mk, "fetch-errors 6"); /* retried by librdkafka: nothing lost */
		wait_ckpt(dir, target, pid);
		kill_learner(pid);
		done = mfs_newest_checkpoint(dir);
		/* more events while the learner is down, on a seeded partition */
		int p = (int)(rnd(&seed) % 3);
		uint64_t n = 500 + 100 * (rnd(&seed) % 10);
		if (kill_no == 3) {
			mfs_mock_cmd(&mk, "multi ratings %d %llu 7 %llu", p, (unsigned long long)n,
				 (unsigned long long)first);
			msgs[p] += 1;
		} else {
			mfs_mock_cmd(&mk, "produce ratings %d %llu 7 %llu", p, (unsigned long long)n,
				 (unsigned long long)first);
			msgs[p] += (int64_t)n;
		}
		ev[p] += n, first += n;
	}
	/* top up to a multiple of 500, so that a checkpoint falls on the last event */
	uint64_t total = ev[0] + ev[1] + ev[2];
	if (total % 500) {
		uint64_t n = 500 - total % 500;
		mfs_mock_cmd(&mk, "produce ratings 0 %llu 7 %llu", (unsigned long long)n,
			 (unsigned long long)first);
		ev[0] += n, msgs[0] += (int64_t)n, total += n;
	}
	pid_t pid = learner(dir, out, err, extra);
	wait_ckpt(dir, total, pid);
	char *s = term_learner(pid, out);
	assert_position(dir, "ratings", 3, ev, msgs, sk);
	/* the summary of the last run: per partition, lifetime counts and no lag */
	char want[256];
	for (int p = 0; p < 3; p++) {
		snprintf(want, sizeof want,
			 "\"partition\": %d, \"assigned\": true, \"offset\": %lld, \"lag\": 0, "
			 "\"events\": %llu, \"skipped\": %llu}",
			 p, (long long)msgs[p], (unsigned long long)ev[p], (unsigned long long)sk[p]);
		if (!strstr(s, want))
			fail_msg("summary lacks %s: %s", want, s);
	}
	assert_true(mfs_json_number(s, "model_events") == (double)total);
	assert_true(strstr(s, "\"io\": \"kafka\"") != NULL);
	free(s);
	/* malformed messages named by topic, partition and offset */
	char *e = mfs_read_file(err, NULL);
	assert_non_null(e);
	if (!strstr(e, "topic ratings partition 2 offset 1: rating \"x\" is not a number") ||
	    !strstr(e, "topic ratings partition 1 offset 1000:"))
		fail_msg("malformed messages not reported by offset: %s", e);
	free(e);
}

/*
 * One partition: killed 5 times (twice inside a multi-line message) and
 * restarted, the final model equals an uninterrupted run's, byte for byte.
 */
static void train_kafka__one_partition_killed_equals_uninterrupted(void **state)
{
	(void)state;
	mfs_mock_cmd(&mk, "topic one 1");
	mfs_mock_cmd(&mk, "produce one 0 2000 9 0");
	mfs_mock_cmd(&mk, "multi one 0 1700 9 2000");
	mfs_mock_cmd(&mk, "produce one 0 2300 9 3700"); /* 6000 events */
	const char *a = mfs_test_path("one_a"), *b = mfs_test_path("one_b");
	const char *out = mfs_test_path("one_out"), *err = mfs_test_path("one_err");
	const char *sa = mfs_test_path("one_a.mfs"), *sb = mfs_test_path("one_b.mfs");
	const char *const xa[] = { "--topic", "one", "--save", sa, NULL };
	const char *const xb[] = { "--topic", "one", "--save", sb, NULL };
	pid_t pid = learner(a, out, err, xa);
	wait_ckpt(a, 6000, pid);
	free(term_learner(pid, out));
	/* kill points: seeded checkpoint counts, two inside the multi-line message */
	unsigned long long at[5] = { 1000, 2500, 3500, 0, 0 };
	uint64_t seed = 5;
	at[3] = 4000 + 500 * (rnd(&seed) % 2);
	at[4] = 5000 + 500 * (rnd(&seed) % 2);
	for (int i = 0; i < 5; i++) {
		pid = learner(b, out, err, xb);
		wait_ckpt(b, at[i], pid);
		kill_learner(pid);
	}
	pid = learner(b, out, err, xb);
	wait_ckpt(b, 6000, pid);
	char *s = term_learner(pid, out);
	assert_true(strstr(s, "\"resumed\": true") != NULL);
	free(s);
	size_t la, lb;
	char *ma = mfs_read_file(sa, &la), *mb = mfs_read_file(sb, &lb);
	assert_non_null(ma);
	assert_non_null(mb);
	assert_int_equal(la, lb);
	assert_memory_equal(ma, mb, la);
	free(ma);
	free(mb);
	uint64_t ev[1] = { 6000 }, sk[1] = { 0 };
	int64_t msgs[1] = { 2000 + 1 + 2300 };
	assert_position(b, "one", 1, ev, msgs, sk);
}

/*
 * Every broker down while the learner runs: it says so (a notice each
 * period), keeps retrying, and learns what arrives once they are back.
 */
static void train_kafka__brokers_down_are_retried(void **state)
{
	(void)state;
	mfs_mock_cmd(&mk, "topic down 2");
	mfs_mock_cmd(&mk, "produce down 0 1000 3 0");
	const char *dir = mfs_test_path("down_ck");
	const char *out = mfs_test_path("down_out"), *err = mfs_test_path("down_err");
	unlink(err);
	const char *const extra[] = { "--topic", "down", NULL };
	pid_t pid = learner(dir, out, err, extra);
	wait_ckpt(dir, 1000, pid);
	mfs_mock_cmd(&mk, "down");
	wait_text(err, "retrying, learning what arrives");
	mfs_mock_cmd(&mk, "up");
	mfs_mock_cmd(&mk, "produce down 1 1000 3 1000");
	wait_ckpt(dir, 2000, pid);
	/* SIGTERM while the brokers are down: the last checkpoint, exit 0, no hang */
	mfs_mock_cmd(&mk, "down");
	char *s = term_learner(pid, out);
	mfs_mock_cmd(&mk, "up");
	assert_true(mfs_json_number(s, "model_events") == 2000.0);
	free(s);
	uint64_t ev[2] = { 1000, 1000 }, sk[2] = { 0, 0 };
	int64_t msgs[2] = { 1000, 1000 };
	assert_position(dir, "down", 2, ev, msgs, sk);
}

/* --group: static membership; a restart after SIGKILL resumes at the checkpoint. */
static void train_kafka__group_resumes_after_sigkill(void **state)
{
	(void)state;
	mfs_mock_cmd(&mk, "topic grp 2");
	mfs_mock_cmd(&mk, "produce grp 0 1000 4 0");
	mfs_mock_cmd(&mk, "produce grp 1 1000 4 1000");
	const char *dir = mfs_test_path("grp_ck");
	const char *out = mfs_test_path("grp_out"), *err = mfs_test_path("grp_err");
	const char *const extra[] = { "--topic", "grp", "--group", "g1", "--kafka-opt",
				      "session.timeout.ms=6000", NULL };
	pid_t pid = learner(dir, out, err, extra);
	wait_ckpt(dir, 1000, pid);
	kill_learner(pid);
	/* both partitions grow: at least one of them resumes from a checkpointed offset */
	mfs_mock_cmd(&mk, "produce grp 0 500 4 2000");
	mfs_mock_cmd(&mk, "produce grp 1 500 4 2500");
	pid = learner(dir, out, err, extra);
	wait_ckpt(dir, 3000, pid);
	free(term_learner(pid, out));
	uint64_t ev[2] = { 1500, 1500 }, sk[2] = { 0, 0 };
	int64_t msgs[2] = { 1500, 1500 };
	assert_position(dir, "grp", 2, ev, msgs, sk);
}

/* Positions: a Kafka blob round-trips; file and Kafka blobs are not mixed up. */
static void kafka_position__round_trip_and_kinds(void **state)
{
	(void)state;
	mfs_kafka_config *kc;
	mfs_diag d;
	assert_int_equal(mfs_kafka_config_create(&kc), 0);
	assert_int_equal(mfs_kafka_config_set(kc, "brokers", "127.0.0.1:1", &d), 0);
	assert_int_equal(mfs_kafka_config_set(kc, "topics", "a,bb", &d), 0);
	assert_int_equal(mfs_kafka_config_set(kc, "start", "sometime", &d), -MFS_E_INVAL);
	assert_int_equal(mfs_kafka_config_set(kc, "enable.auto.commit", "true", &d), -MFS_E_INVAL);
	assert_int_equal(mfs_kafka_config_set(kc, "no.such.property", "1", &d), -MFS_E_INVAL);
	assert_non_null(strstr(d.reason, "no.such.property"));
	mfs_source *s;
	assert_int_equal(mfs_source_open_kafka(&s, kc, NULL, &d), 0);
	/* a hand-made blob: bb/3 at offset 77, 2 lines into it, 40 events, 1 skipped */
	uint8_t blob[16 + 4 + 2 + 36];
	memset(blob, 0, sizeof blob);
	memcpy(blob, "MFSPOS\x01\x00", 8);
	blob[8] = 2;
	blob[12] = 1;
	blob[16] = 2;
	memcpy(blob + 20, "bb", 2);
	blob[22] = 3;
	blob[26] = 77;
	blob[34] = 2;
	blob[42] = 40;
	blob[50] = 1;
	assert_int_equal(mfs_source_seek(s, blob, sizeof blob, &d), 0);
	uint8_t back[256];
	int n = mfs_source_position(s, back, sizeof back);
	assert_int_equal(n, (int)sizeof blob);
	assert_memory_equal(back, blob, sizeof blob);
	mfs_kafka_partition kp;
	assert_int_equal(mfs_position_kafka_partition(back, (size_t)n, 0, &kp), 1);
	assert_int_equal(kp.partition, 3);
	assert_int_equal(kp.offset, 77);
	assert_int_equal(kp.lines, 2);
	assert_int_equal(kp.events, 40);
	assert_int_equal(kp.skipped, 1);
	/* truncated: corrupt */
	assert_int_equal(mfs_position_kafka_partition(back, (size_t)n - 1, 0, &kp), -MFS_E_CORRUPT);
	/* a file source's blob (version 1) is refused with a reason */
	uint8_t v1[72];
	memset(v1, 0, sizeof v1);
	memcpy(v1, "MFSPOS\x01\x00", 8);
	v1[8] = 1;
	assert_int_equal(mfs_source_seek(s, v1, sizeof v1, &d), -MFS_E_INVAL);
	assert_non_null(strstr(d.reason, "file source"));
	assert_string_equal(mfs_source_io(s), "kafka");
	mfs_source_free(s);
	mfs_kafka_config_free(kc);
	/* and a file source refuses the Kafka blob */
	const char *f = mfs_test_path("pos.tsv");
	mfs_write_file(f, "1\t2\t3\n", 6);
	const char *in[] = { f };
	assert_int_equal(mfs_source_open(&s, in, 1, NULL, &d), 0);
	assert_int_equal(mfs_source_seek(s, blob, sizeof blob, &d), -MFS_E_INVAL);
	assert_non_null(strstr(d.reason, "Kafka"));
	mfs_source_free(s);
}

/* The CLI's usage errors name the option (exit 2). */
static void train_kafka__usage_errors(void **state)
{
	(void)state;
	struct mfs_run r;
	const char *cases[][2] = {
		{ "--kafka 127.0.0.1:1", "--kafka needs --topic" },
		{ "--topic t x.tsv", "--topic needs --kafka" },
		{ "--kafka 127.0.0.1:1 --topic t --kafka-start never", "--kafka-start: must be" },
		{ "--kafka 127.0.0.1:1 --topic t --kafka-opt nonsense", "--kafka-opt: must be KEY=VALUE" },
		{ "--kafka 127.0.0.1:1 --topic t --kafka-opt bogus.prop=1", "bogus.prop" },
		{ "--kafka 127.0.0.1:1 --topic t x.tsv", "not INPUT files" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		assert_int_equal(mfs_run_sh(&r, "%s train %s", MFS_CLI, cases[i][0]), 0);
		if (r.status != 2 || !strstr(r.err, cases[i][1]))
			fail_msg("train %s: status %d, stderr %s", cases[i][0], r.status, r.err);
		mfs_run_free(&r);
	}
}

static int setup(void **state)
{
	(void)state;
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (getenv("MFS_TEST_FILTER")) /* run one test while working on it */
		cmocka_set_test_filter(getenv("MFS_TEST_FILTER"));
	const struct CMUnitTest offline[] = {
		cmocka_unit_test(kafka_position__round_trip_and_kinds),
		cmocka_unit_test(train_kafka__usage_errors),
	};
	int rc = cmocka_run_group_tests_name("kafka_offline", offline, setup, NULL);
	if (mfs_mock_start(&mk, MFS_KAFKA_MOCK) < 0) {
		fprintf(stderr, "test_kafka: the mock cluster did not start: skipped\n");
		mfs_mock_stop(&mk);
		return rc ? rc : MFS_SKIP;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(train_kafka__sigkill_restarts_learn_every_event_once, kill_leftovers),
		cmocka_unit_test_teardown(train_kafka__one_partition_killed_equals_uninterrupted, kill_leftovers),
		cmocka_unit_test_teardown(train_kafka__brokers_down_are_retried, kill_leftovers),
		cmocka_unit_test_teardown(train_kafka__group_resumes_after_sigkill, kill_leftovers),
	};
	rc |= cmocka_run_group_tests_name("kafka_mock", tests, NULL, NULL);
	mfs_mock_stop(&mk);
	return rc;
}
