/*
 * kafka_mock_main.c - a Kafka mock cluster in a process of its own, for the
 * tests and benchmarks of the Kafka source (the learner under test is another
 * process, which a test kills and restarts).
 *
 * librdkafka's mock cluster (rdkafka_mock.h) speaks the Kafka protocol on
 * loopback: metadata, produce, fetch, consumer groups and offset commits.
 * This program starts one with --brokers N (default 3), prints
 *     bootstrap HOST:PORT[,HOST:PORT...]
 * on stdout, then reads commands on stdin, one a line, and answers each with
 * one line ("ok ..." or "error ..."):
 *     topic NAME PARTITIONS            create a topic
 *     produce TOPIC PART N SEED FIRST  N messages of one JSON-line event each,
 *                                      events FIRST..FIRST+N-1 of the stream SEED
 *     multi TOPIC PART N SEED FIRST    one message holding those N events as lines
 *     bad TOPIC PART TEXT...           one message with TEXT as its payload
 *     dump PATH N SEED FIRST           write those events as lines to PATH (the same
 *                                      stream as a file, for comparisons)
 *     lines TOPIC PART PER N PATH      the next N lines of file PATH (kept open from one
 *                                      call to the next), PER lines a message
 *     fetch-errors N                   the next N Fetch requests fail (retriable)
 *     produce-errors N                 the next N Produce requests fail (retriable)
 *     down / up                        every broker refuses / accepts connections
 *     quit                             (or end of input) stop
 * The events are u.data-like: users 1..943, items 1..1682, ratings 1..5,
 * a function of (SEED, index) alone, so that a test can produce the same
 * stream into one topic or several.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Event i of stream seed as one JSON line (no newline); returns its length. */
static int event_line(char *buf, size_t len, uint64_t seed, uint64_t i)
{
	uint64_t r = mix(seed * 0x100000001b3ULL ^ mix(i));
	unsigned user = 1 + (unsigned)(r % 943), item = 1 + (unsigned)((r >> 16) % 1682);
	unsigned rating = 1 + (unsigned)((r >> 40) % 5);
	return snprintf(buf, len, "{\"user\": \"%u\", \"item\": \"%u\", \"rating\": %u, \"time\": %llu}",
			user, item, rating, (unsigned long long)(874724710 + i));
}

static int failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (m->err) {
		failed++;
		fprintf(stderr, "kafka_mock: delivery failed: %s\n", rd_kafka_err2str(m->err));
	}
}

static int produce(rd_kafka_t *rk, const char *topic, int part, const char *payload, size_t len)
{
	for (;;) {
		rd_kafka_resp_err_t e = rd_kafka_producev(
			rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
			RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
			return 0;
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			fprintf(stderr, "kafka_mock: produce: %s\n", rd_kafka_err2str(e));
			return -1;
		}
		rd_kafka_poll(rk, 10);
	}
}

int main(int argc, char **argv)
{
	int brokers = 3;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
			brokers = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: kafka_mock [--brokers N]\n");
			return 2;
		}
	}
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char nb[16];
	snprintf(nb, sizeof nb, "%d", brokers);
	if (rd_kafka_conf_set(conf, "test.mock.num.brokers", nb, err, sizeof err) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "log_level", "2", err, sizeof err) != RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "reconnect.backoff.max.ms", "200", err, sizeof err) !=
		    RD_KAFKA_CONF_OK ||
	    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "kafka_mock: %s\n", err);
		return 77;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (!rk) {
		fprintf(stderr, "kafka_mock: %s\n", err);
		return 77;
	}
	rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(rk);
	if (!mc) {
		fprintf(stderr, "kafka_mock: no mock cluster\n");
		rd_kafka_destroy(rk);
		return 77;
	}
	printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
	fflush(stdout);
	char line[65536], topic[256], text[65536];
	char *buf = malloc(1 << 24);
	if (!buf)
		return 1;
	FILE *lf = NULL; /* the file of "lines", and its path */
	char lpath[65536] = "";
	int per;
	while (fgets(line, sizeof line, stdin)) {
		int part, n;
		unsigned long long seed, first;
		line[strcspn(line, "\n")] = 0;
		if (sscanf(line, "topic %255s %d", topic, &n) == 2) {
			rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topic, n, 1);
			printf(e ? "error %s\n" : "ok\n", rd_kafka_err2str(e));
		} else if (sscanf(line, "produce %255s %d %d %llu %llu", topic, &part, &n, &seed,
				  &first) == 5) {
			int rc = 0;
			for (int i = 0; i < n && rc == 0; i++) {
				int l = event_line(buf, 256, seed, first + (uint64_t)i);
				rc = produce(rk, topic, part, buf, (size_t)l);
				if ((i & 1023) == 0)
					rd_kafka_poll(rk, 0);
			}
			rd_kafka_flush(rk, 60000);
			printf(rc || failed ? "error produce\n" : "ok %d\n", n);
		} else if (sscanf(line, "multi %255s %d %d %llu %llu", topic, &part, &n, &seed,
				  &first) == 5) {
			size_t len = 0;
			for (int i = 0; i < n && len < (1 << 24) - 512; i++) {
				len += (size_t)event_line(buf + len, 256, seed, first + (uint64_t)i);
				buf[len++] = '\n';
			}
			int rc = produce(rk, topic, part, buf, len);
			rd_kafka_flush(rk, 60000);
			printf(rc || failed ? "error produce\n" : "ok %d\n", n);
		} else if (sscanf(line, "bad %255s %d %65535[^\n]", topic, &part, text) == 3) {
			int rc = produce(rk, topic, part, text, strlen(text));
			rd_kafka_flush(rk, 60000);
			printf(rc || failed ? "error produce\n" : "ok 1\n");
		} else if (sscanf(line, "dump %255s %d %llu %llu", topic, &n, &seed, &first) == 4) {
			FILE *f = fopen(topic, "w");
			for (int i = 0; f && i < n; i++) {
				int l = event_line(buf, 256, seed, first + (uint64_t)i);
				buf[l++] = '\n';
				fwrite(buf, 1, (size_t)l, f);
			}
			int bad = !f || fclose(f) != 0;
			printf(bad ? "error dump\n" : "ok %d\n", n);
		} else if (sscanf(line, "lines %255s %d %d %d %4095s", topic, &part, &per, &n, text) == 5 &&
			   per > 0) {
			if (!lf || strcmp(text, lpath) != 0) {
				if (lf)
					fclose(lf);
				lf = fopen(text, "r");
				snprintf(lpath, sizeof lpath, "%s", text);
			}
			int rc = lf ? 0 : -1, sent = 0;
			while (rc == 0 && sent < n) {
				size_t len = 0;
				int k = 0;
				while (k < per && sent + k < n && len < (1 << 24) - 70000 &&
				       fgets(buf + len, 65536, lf)) {
					len += strlen(buf + len);
					k++;
				}
				if (k == 0)
					break; /* the file ended */
				if (per == 1 && len && buf[len - 1] == '\n')
					len--; /* one event a message: no newline, as "produce" */
				rc = produce(rk, topic, part, buf, len);
				sent += k;
				rd_kafka_poll(rk, 0);
			}
			rd_kafka_flush(rk, 60000);
			printf(rc || failed ? "error lines\n" : "ok %d\n", sent);
		} else if (sscanf(line, "produce-errors %d", &n) == 1) {
			rd_kafka_resp_err_t *es = calloc((size_t)n, sizeof *es);
			for (int i = 0; es && i < n; i++)
				es[i] = i % 2 ? RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION
					      : RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT;
			if (es)
				rd_kafka_mock_push_request_errors_array(mc, 0 /* ApiKey Produce */, (size_t)n, es);
			free(es);
			printf("ok\n");
		} else if (sscanf(line, "fetch-errors %d", &n) == 1) {
			rd_kafka_resp_err_t *es = calloc((size_t)n, sizeof *es);
			for (int i = 0; es && i < n; i++)
				es[i] = i % 2 ? RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION
					      : RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT;
			if (es)
				rd_kafka_mock_push_request_errors_array(mc, 1 /* ApiKey Fetch */, (size_t)n, es);
			free(es);
			printf("ok\n");
		} else if (strcmp(line, "down") == 0 || strcmp(line, "up") == 0) {
			for (int b = 1; b <= brokers; b++) {
				if (line[0] == 'd')
					rd_kafka_mock_broker_set_down(mc, b);
				else
					rd_kafka_mock_broker_set_up(mc, b);
			}
			printf("ok\n");
		} else if (strcmp(line, "quit") == 0) {
			break;
		} else {
			printf("error unknown command\n");
		}
		fflush(stdout);
	}
	free(buf);
	if (lf)
		fclose(lf);
	rd_kafka_destroy(rk);
	return 0;
}
