/* test_http.c - the HTTP/JSON server (mfs_http) driven as a hostile client
 * would: every endpoint, bad parameters, huge requests, percent-encoding, the
 * served file overwritten and truncated under load, idle connections past the
 * limit, a client that never reads, a second server on the same port or
 * socket; and the JSON writer and batch reader on their own. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jsonio.h"
#include "support.h"

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

/* A model of n events over users x items ("u<k>", "i<k>"), plus a few
 * hostile IDs (a space, UTF-8, bytes that are not UTF-8), saved to path. */
static void save_model(const char *path, uint64_t seed, size_t n)
{
	mfs_config cfg;
	mfs_config_default(&cfg);
	cfg.dim = 16;
	cfg.max_users = 4096;
	cfg.max_items = 4096;
	mfs_model *m;
	assert_int_equal(mfs_model_create(&m, &cfg, NULL), 0);
	char ub[32], ib[32];
	for (size_t e = 0; e < n; e++) {
		int ul = snprintf(ub, sizeof ub, "u%u", (unsigned)(lcg(&seed) % 300));
		int il = snprintf(ib, sizeof ib, "i%u", (unsigned)(lcg(&seed) % 1500));
		mfs_event ev = { ub, ib, (uint32_t)ul, (uint32_t)il, (float)(1 + lcg(&seed) % 5), 0 };
		assert_int_equal(mfs_model_learn(m, &ev, 1, NULL), 1);
	}
	static const char *const odd[] = { "caf\xc3\xa9 x", "\xff\xfe-bad", "a,b&c=d" };
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 20; j++) {
			snprintf(ib, sizeof ib, "i%d", j);
			mfs_event ev = { odd[i], ib, (uint32_t)strlen(odd[i]), (uint32_t)strlen(ib), 5.0f, 0 };
			mfs_event ev2 = { ub, odd[i], (uint32_t)strlen(ub), (uint32_t)strlen(odd[i]), 4.0f, 0 };
			assert_int_equal(mfs_model_learn(m, &ev, 1, NULL), 1);
			assert_int_equal(mfs_model_learn(m, &ev2, 1, NULL), 1);
		}
	assert_int_equal(mfs_model_save(m, path, NULL, NULL), 0);
	mfs_model_free(m);
}

struct fixture {
	char model[1024];
	mfs_server *srv;
	mfs_http *h;
	int port;
};

static void start(struct fixture *f, const char *name, int with_model, int max_conns, int idle_s)
{
	snprintf(f->model, sizeof f->model, "%s", mfs_test_path(name));
	save_model(f->model, 1, 20000);
	f->srv = NULL;
	if (with_model)
		assert_int_equal(mfs_server_open(&f->srv, f->model, NULL, NULL, NULL, NULL), 0);
	mfs_http_config *c;
	assert_int_equal(mfs_http_config_create(&c), 0);
	assert_int_equal(mfs_http_config_listen(c, "127.0.0.1:0"), 0);
	if (max_conns)
		assert_int_equal(mfs_http_config_set(c, MFS_HTTP_MAX_CONNECTIONS, max_conns), 0);
	if (idle_s)
		assert_int_equal(mfs_http_config_set(c, MFS_HTTP_IDLE_TIMEOUT_S, idle_s), 0);
	assert_int_equal(mfs_http_config_set(c, MFS_HTTP_MAX_BODY, 4096), 0);
	mfs_diag d;
	assert_int_equal(mfs_http_start(&f->h, f->srv, c, &d), 0);
	mfs_http_config_free(c);
	char a[128];
	assert_true(mfs_http_address(f->h, 0, a, sizeof a) > 0);
	f->port = atoi(strrchr(a, ':') + 1);
	assert_true(f->port > 0);
}

static void stop(struct fixture *f)
{
	mfs_http_free(f->h);
	mfs_server_free(f->srv);
}

/* One request on a fresh connection. */
static int ask1(int port, const char *method, const char *target, const char *body,
		struct mfs_http_answer *a)
{
	int fd = mfs_connect_tcp(port);
	assert_true(fd >= 0);
	int rc = mfs_http_ask(fd, method, target, body, body ? strlen(body) : 0, a);
	close(fd);
	return rc;
}

static int get_status(int port, const char *target)
{
	struct mfs_http_answer a;
	if (ask1(port, "GET", target, NULL, &a) < 0)
		return -1;
	int s = a.status;
	mfs_http_answer_free(&a);
	return s;
}

/* Every byte sequence of s is well-formed UTF-8. */
static int valid_utf8(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		unsigned c = u[i];
		size_t l = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		if (!l || i + l > n || (l == 2 && c < 0xC2))
			return 0;
		for (size_t j = 1; j < l; j++)
			if ((u[i + j] & 0xC0) != 0x80)
				return 0;
		i += l;
	}
	return 1;
}

/* A JSON error answer: status, valid UTF-8, an "error" field. */
static void expect_error(int port, const char *method, const char *target, const char *body,
			 int status)
{
	struct mfs_http_answer a;
	assert_int_equal(ask1(port, method, target, body, &a), 0);
	if (a.status != status)
		fail_msg("%s %s: status %d, not %d: %s", method, target, a.status, status, a.body);
	assert_non_null(strstr(a.body, "\"error\": "));
	assert_non_null(strstr(a.head, "application/json"));
	assert_true(valid_utf8(a.body, a.body_len));
	mfs_http_answer_free(&a);
}

static double metric(int port, const char *line_prefix)
{
	struct mfs_http_answer a;
	assert_int_equal(ask1(port, "GET", "/metrics", NULL, &a), 0);
	assert_int_equal(a.status, 200);
	/* the sample line, not the # HELP line that names it too */
	char want[256];
	snprintf(want, sizeof want, "\n%s", line_prefix);
	const char *p = strstr(a.body, want);
	double v = p ? strtod(p + strlen(want), NULL) : NAN;
	mfs_http_answer_free(&a);
	return v;
}

/* --- endpoints -------------------------------------------------------------- */

static void http__every_endpoint_and_healthz_before_a_model(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, "ep.mfs", 0, 0, 0);
	assert_int_equal(get_status(f.port, "/healthz"), 503);
	assert_int_equal(get_status(f.port, "/v1/recommend?user=u1"), 503);
	assert_int_equal(get_status(f.port, "/metrics"), 200);
	assert_int_equal(mfs_server_open(&f.srv, f.model, NULL, NULL, NULL, NULL), 0);
	assert_int_equal(mfs_http_attach(f.h, f.srv), 0);
	assert_int_equal(mfs_http_attach(f.h, f.srv), -MFS_E_INVAL); /* once */

	int fd = mfs_connect_tcp(f.port); /* all on one keep-alive connection */
	assert_true(fd >= 0);
	struct mfs_http_answer a;
	assert_int_equal(mfs_http_ask(fd, "GET", "/healthz", NULL, 0, &a), 0);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.body, "\"status\": \"ok\""));
	mfs_http_answer_free(&a);
	assert_int_equal(mfs_http_ask(fd, "GET", "/v1/recommend?user=u7&k=3", NULL, 0, &a), 0);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.body, "{\"user\": \"u7\", \"known\": true"));
	int items = 0;
	for (const char *p = a.body; (p = strstr(p, "\"item\": ")) != NULL; p++)
		items++;
	assert_int_equal(items, 3);
	mfs_http_answer_free(&a);
	assert_int_equal(mfs_http_ask(fd, "GET", "/v1/similar?item=i5&k=4", NULL, 0, &a), 0);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.body, "\"item\": \"i5\""));
	mfs_http_answer_free(&a);
	assert_int_equal(mfs_http_ask(fd, "GET", "/v1/predict?user=u7&item=i5", NULL, 0, &a), 0);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.body, "\"known_user\": true, \"known_item\": true"));
	double s = mfs_json_number(a.body, "score");
	mfs_http_answer_free(&a);
	float want;
	const mfs_view *v = mfs_server_acquire(f.srv);
	mfs_model_predict(mfs_view_model(v), "u7", 2, "i5", 2, &want);
	mfs_server_release(f.srv, v);
	assert_true(fabs(s - want) < 1e-4);
	assert_int_equal(mfs_http_ask(fd, "GET", "/v1/info", NULL, 0, &a), 0);
	assert_int_equal(a.status, 200);
	assert_float_equal(mfs_json_number(a.body, "model_events"), 20120, 0);
	mfs_http_answer_free(&a);
	const char *batch = "{\"k\": 2, \"requests\": [\"u1\", {\"user\": \"u2\", \"k\": 5, "
			    "\"exclude\": [\"i1\"]}, {\"user\": \"nobody\"}]}";
	assert_int_equal(mfs_http_ask(fd, "POST", "/v1/recommend", batch, strlen(batch), &a), 0);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.body, "\"results\": [{\"user\": \"u1\""));
	assert_non_null(strstr(a.body, "{\"user\": \"nobody\", \"known\": false"));
	items = 0;
	for (const char *p = a.body; (p = strstr(p, "\"item\": ")) != NULL; p++)
		items++;
	assert_int_equal(items, 2 + 5 + 2);
	mfs_http_answer_free(&a);
	assert_int_equal(mfs_http_ask(fd, "GET", "/metrics", NULL, 0, &a), 0);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.head, "text/plain; version=0.0.4"));
	assert_non_null(strstr(a.body, "mfstream_http_requests_total{endpoint=\"recommend\",status=\"200\"} 1\n"));
	assert_non_null(strstr(a.body, "mfstream_http_requests_total{endpoint=\"healthz\",status=\"503\"} 1\n"));
	assert_non_null(strstr(a.body, "mfstream_http_requests_total{endpoint=\"recommend_batch\",status=\"200\"} 1\n"));
	assert_non_null(strstr(a.body, "mfstream_http_request_duration_seconds_bucket{endpoint=\"similar\",le=\"+Inf\"} 1\n"));
	assert_non_null(strstr(a.body, "mfstream_model_events 20120\n"));
	assert_non_null(strstr(a.body, "mfstream_model_age_seconds "));
	assert_non_null(strstr(a.body, "mfstream_http_open_connections 1\n"));
	mfs_http_answer_free(&a);
	close(fd);
	stop(&f);
}

/* Parse "item": "ID", "score": S pairs of an answer. */
static int parse_items(const char *body, char ids[][32], double *scores, int max)
{
	int n = 0;
	for (const char *p = body; n < max && (p = strstr(p, "{\"item\": \"")) != NULL;) {
		p += 10;
		const char *e = strchr(p, '"');
		snprintf(ids[n], 32, "%.*s", (int)(e - p), p);
		scores[n++] = mfs_json_number(e, "score");
		p = e;
	}
	return n;
}

/* Top-10 over HTTP is `mfstream recommend`'s, line for line (both leaving out
 * the user's history; with include_seen=1 and --include-seen both keeping
 * it), and then brute force's scores rank by rank (every item predicted,
 * sorted). */
static void http__top10_equals_recommend_and_brute_force(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, "top.mfs", 1, 0, 0);
	const mfs_view *v = mfs_server_acquire(f.srv);
	const mfs_model *m = mfs_view_model(v);
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	float *all = malloc(info.item_rows * sizeof *all);
	assert_non_null(all);
	char prev[10][32];
	int differ = 0;
	for (int u = 0; u < 24; u++) {
		char user[32], target[96];
		int seen = u % 2; /* even: the history left out (the default); odd: kept */
		snprintf(user, sizeof user, u >= 22 ? "cold%d" : "u%d", (u / 2) * 23);
		snprintf(target, sizeof target, "/v1/recommend?user=%s&k=10%s", user,
			 seen ? "&include_seen=1" : "");
		struct mfs_http_answer a;
		assert_int_equal(ask1(f.port, "GET", target, NULL, &a), 0);
		assert_int_equal(a.status, 200);
		char ids[10][32];
		double sc[10];
		assert_int_equal(parse_items(a.body, ids, sc, 10), 10);
		/* the command line's answer */
		struct mfs_run r;
		char *argv[] = { MFS_CLI, "recommend", "--model", f.model, "--user", user, "-k", "10",
				 seen ? "--include-seen" : NULL, NULL };
		assert_int_equal(mfs_run_argv(&r, argv, NULL, 0), 0);
		assert_int_equal(r.status, 0);
		char expect[4096] = "";
		for (int i = 0; i < 10; i++) {
			char line[400];
			snprintf(line, sizeof line, "%s\t%.4f\n", ids[i], sc[i]);
			strcat(expect, line);
		}
		assert_string_equal(r.out, expect);
		mfs_run_free(&r);
		mfs_http_answer_free(&a);
		if (!seen) {
			memcpy(prev, ids, sizeof prev);
			continue;
		}
		for (int i = 0; i < 10; i++) /* the history made a difference somewhere */
			differ += strcmp(prev[i], ids[i]) != 0;
		/* brute force */
		size_t n = 0;
		for (uint64_t row = 0; row < info.item_rows; row++) {
			const char *id;
			size_t len;
			if (mfs_model_row(m, MFS_ITEMS, (uint32_t)row, &id, &len, NULL) < 0)
				continue;
			mfs_model_predict(m, user, strlen(user), id, len, &all[n++]);
		}
		for (int i = 0; i < 10; i++) { /* the i-th best, by selection */
			size_t best = i;
			for (size_t j = (size_t)i; j < n; j++)
				if (all[j] > all[best])
					best = j;
			float t = all[i];
			all[i] = all[best];
			all[best] = t;
			assert_true(fabs(sc[i] - all[i]) < 1e-4);
		}
	}
	assert_true(differ > 0);
	free(all);
	mfs_server_release(f.srv, v);
	stop(&f);
}

/* --- bad requests ------------------------------------------------------------ */

static void http__bad_parameters_are_json_errors(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, "bad.mfs", 1, 0, 0);
	int p = f.port;
	expect_error(p, "GET", "/v1/recommend", NULL, 400);              /* no user */
	expect_error(p, "GET", "/v1/recommend?user=", NULL, 400);        /* empty */
	expect_error(p, "GET", "/v1/recommend?user=u1&k=0", NULL, 400);
	expect_error(p, "GET", "/v1/recommend?user=u1&k=1001", NULL, 400);
	expect_error(p, "GET", "/v1/recommend?user=u1&k=ten", NULL, 400);
	expect_error(p, "GET", "/v1/recommend?user=u1&k=-1", NULL, 400);
	expect_error(p, "GET", "/v1/recommend?user=u1&user=u2", NULL, 400); /* twice */
	expect_error(p, "GET", "/v1/recommend?user=u1&color=red", NULL, 400);
	expect_error(p, "GET", "/v1/similar?user=u1", NULL, 400);
	expect_error(p, "GET", "/v1/similar?item=nope", NULL, 404);      /* unknown item */
	expect_error(p, "GET", "/v1/predict?user=u1", NULL, 400);
	expect_error(p, "GET", "/v2/recommend?user=u1", NULL, 404);
	expect_error(p, "GET", "/", NULL, 404);
	expect_error(p, "DELETE", "/v1/recommend?user=u1", NULL, 405);
	expect_error(p, "PUT", "/healthz", NULL, 405);
	char big[600];
	memset(big, 'x', sizeof big);
	memcpy(big, "/v1/recommend?user=", 19);
	big[sizeof big - 1] = 0; /* a 580-byte ID */
	expect_error(p, "GET", big, NULL, 400);
	/* batch bodies */
	expect_error(p, "POST", "/v1/recommend", "", 400);
	expect_error(p, "POST", "/v1/recommend", "[1, 2]", 400);
	expect_error(p, "POST", "/v1/recommend", "{\"requests\": [\"u1\"", 400);
	expect_error(p, "POST", "/v1/recommend", "{\"requests\": [{\"usr\": \"u1\"}]}", 400);
	expect_error(p, "POST", "/v1/recommend", "{\"requests\": [{\"user\": 7}]}", 400);
	expect_error(p, "POST", "/v1/recommend", "{\"k\": 0, \"requests\": [\"u1\"]}", 400);
	expect_error(p, "POST", "/v1/recommend", "{\"requests\": [\"u1\"]} trailing", 400);
	expect_error(p, "POST", "/v1/recommend", "{\"requests\": [\"\\ud800\\u12\"]}", 400);
	/* the server still answers, and the errors were counted */
	assert_int_equal(get_status(p, "/v1/recommend?user=u1"), 200);
	assert_true(metric(p, "mfstream_http_requests_total{endpoint=\"recommend\",status=\"400\"} ") >= 8);
	stop(&f);
}

/* IDs are percent-decoded (MHD's argument parsing); answers stay UTF-8 JSON. */
static void http__percent_encoding_and_utf8(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, "pct.mfs", 1, 0, 0);
	struct mfs_http_answer a;
	/* "café x": UTF-8 and a space */
	assert_int_equal(ask1(f.port, "GET", "/v1/recommend?user=caf%C3%A9%20x&k=2", NULL, &a), 0);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.body, "{\"user\": \"caf\xc3\xa9 x\", \"known\": true"));
	mfs_http_answer_free(&a);
	assert_int_equal(ask1(f.port, "GET", "/v1/recommend?user=caf%C3%A9+x&k=2", NULL, &a), 0);
	assert_non_null(strstr(a.body, "\"known\": true")); /* '+' is a space */
	mfs_http_answer_free(&a);
	/* reserved characters, encoded */
	assert_int_equal(ask1(f.port, "GET", "/v1/recommend?user=a%2Cb%26c%3Dd&k=2", NULL, &a), 0);
	assert_non_null(strstr(a.body, "{\"user\": \"a,b&c=d\", \"known\": true"));
	mfs_http_answer_free(&a);
	/* bytes that are not UTF-8 (and a NUL) come back as U+FFFD, valid JSON */
	assert_int_equal(ask1(f.port, "GET", "/v1/recommend?user=%FF%FE-bad&k=50", NULL, &a), 0);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.body, "{\"user\": \"\xef\xbf\xbd\xef\xbf\xbd-bad\", \"known\": true"));
	assert_true(valid_utf8(a.body, a.body_len));
	mfs_http_answer_free(&a);
	assert_int_equal(ask1(f.port, "GET", "/v1/predict?user=x%00y&item=%FF%FE-bad", NULL, &a), 0);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.body, "\"user\": \"x\\u0000y\""));
	assert_non_null(strstr(a.body, "\"known_item\": true"));
	assert_true(valid_utf8(a.body, a.body_len));
	mfs_http_answer_free(&a);
	/* an item ID that is not UTF-8, echoed by similar */
	assert_int_equal(ask1(f.port, "GET", "/v1/similar?item=%FF%FE-bad&k=5", NULL, &a), 0);
	assert_int_equal(a.status, 200);
	assert_non_null(strstr(a.body, "{\"item\": \"\xef\xbf\xbd\xef\xbf\xbd-bad\", \"model_events\""));
	assert_true(valid_utf8(a.body, a.body_len));
	mfs_http_answer_free(&a);
	/* exclude: split at ',', repeatable; the excluded items are gone */
	char ids[10][32], ids2[10][32];
	double sc[10];
	assert_int_equal(ask1(f.port, "GET", "/v1/recommend?user=u3&k=4", NULL, &a), 0);
	assert_int_equal(parse_items(a.body, ids, sc, 4), 4);
	mfs_http_answer_free(&a);
	char t[256];
	snprintf(t, sizeof t, "/v1/recommend?user=u3&k=4&exclude=%s%%2C%s&exclude=%s", ids[0], ids[2],
		 ids[3]);
	assert_int_equal(ask1(f.port, "GET", t, NULL, &a), 0);
	assert_int_equal(a.status, 200);
	assert_int_equal(parse_items(a.body, ids2, sc, 4), 4);
	assert_string_equal(ids2[0], ids[1]);
	for (int i = 0; i < 4; i++)
		assert_true(strcmp(ids2[i], ids[0]) && strcmp(ids2[i], ids[2]) && strcmp(ids2[i], ids[3]));
	mfs_http_answer_free(&a);
	/* the same through curl, a real client, when it is installed */
	struct mfs_run r;
	if (mfs_run_sh(&r, "command -v curl") == 0 && r.status == 0) {
		mfs_run_free(&r);
		assert_int_equal(mfs_run_sh(&r, "curl -sS --get --data-urlencode 'user=caf\xc3\xa9 x' "
						"--data-urlencode k=2 http://127.0.0.1:%d/v1/recommend",
					    f.port),
				 0);
		assert_int_equal(r.status, 0);
		assert_non_null(strstr(r.out, "\"known\": true"));
	}
	mfs_run_free(&r);
	stop(&f);
}

/* Raw bytes on a fresh connection; the status of the answer, or -1 when the
 * server closed without one. */
static int raw_status(int port, const char *req, size_t len)
{
	int fd = mfs_connect_tcp(port);
	assert_true(fd >= 0);
	size_t off = 0;
	while (off < len) {
		ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* the server may close before reading it all */
		off += (size_t)w;
	}
	char buf[4096];
	ssize_t n, got = 0;
	while (got < (ssize_t)sizeof buf - 1 && (n = recv(fd, buf + got, sizeof buf - 1 - (size_t)got, 0)) > 0)
		got += n;
	close(fd);
	if (got < 12)
		return -1;
	buf[got] = 0;
	return atoi(buf + 9);
}

static void http__huge_requests_are_refused(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, "huge.mfs", 1, 0, 0);
	/* a URL larger than the per-connection memory (32 KiB): libmicrohttpd's own
	 * answer (414), and the connection is closed */
	size_t n = 200000;
	char *req = malloc(n + 64);
	assert_non_null(req);
	int l = snprintf(req, n + 64, "GET /v1/recommend?user=");
	memset(req + l, 'a', n - (size_t)l);
	strcpy(req + n, " HTTP/1.1\r\nHost: x\r\n\r\n");
	int s = raw_status(f.port, req, strlen(req));
	assert_true(s == 414 || s == 413 || s == 431);
	/* a header as large */
	l = snprintf(req, n + 64, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
	memset(req + l, 'b', n - (size_t)l);
	strcpy(req + n, "\r\n\r\n");
	s = raw_status(f.port, req, strlen(req));
	assert_true(s == 431 || s == 413);
	/* a body announced larger than --max-body (4096 here): 413 JSON at once */
	static const char big_cl[] = "POST /v1/recommend HTTP/1.1\r\nHost: x\r\n"
				     "Content-Length: 1000000000\r\n\r\n{";
	assert_int_equal(raw_status(f.port, big_cl, sizeof big_cl - 1), 413);
	/* a chunked body that grows past it: read to its end (up to a bound), then 413 */
	struct mfs_http_answer a;
	int fd = mfs_connect_tcp(f.port);
	static const char head[] = "POST /v1/recommend HTTP/1.1\r\nHost: x\r\n"
				   "Transfer-Encoding: chunked\r\n\r\n";
	assert_int_equal(send(fd, head, sizeof head - 1, MSG_NOSIGNAL), (ssize_t)(sizeof head - 1));
	char chunk[1100];
	int cl = snprintf(chunk, sizeof chunk, "400\r\n");
	memset(chunk + cl, ' ', 1024);
	memcpy(chunk + cl + 1024, "\r\n", 2);
	for (int i = 0; i < 8; i++)
		if (send(fd, chunk, (size_t)cl + 1026, MSG_NOSIGNAL) <= 0)
			break;
	assert_int_equal(send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL), 5);
	char buf[2048];
	ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
	assert_true(got > 12);
	buf[got] = 0;
	assert_int_equal(atoi(buf + 9), 413);
	assert_non_null(strstr(buf, "\"error\": "));
	close(fd);
	/* and one much larger is cut off: the connection is closed without reading it all */
	fd = mfs_connect_tcp(f.port);
	assert_int_equal(send(fd, head, sizeof head - 1, MSG_NOSIGNAL), (ssize_t)(sizeof head - 1));
	int closed = 0;
	for (int i = 0; i < 100000 && !closed; i++)
		closed = send(fd, chunk, (size_t)cl + 1026, MSG_NOSIGNAL) <= 0;
	assert_true(closed);
	close(fd);
	/* a body where none is read */
	expect_error(f.port, "GET", "/v1/info", "{}", 413);
	/* still serving */
	assert_int_equal(ask1(f.port, "GET", "/v1/info", NULL, &a), 0);
	assert_int_equal(a.status, 200);
	mfs_http_answer_free(&a);
	free(req);
	stop(&f);
}

/* --- the served file rewritten in place and truncated while queried ---------- */

struct hammer {
	int port;
	atomic_int stop;
	atomic_long ok, bad;
	double events_a, events_b;
};

static void *hammer_main(void *arg)
{
	struct hammer *hm = arg;
	int fd = mfs_connect_tcp(hm->port);
	while (!atomic_load(&hm->stop)) {
		struct mfs_http_answer a;
		if (fd < 0 || mfs_http_ask(fd, "GET", "/v1/recommend?user=u5&k=10", NULL, 0, &a) < 0) {
			if (fd >= 0)
				close(fd);
			fd = mfs_connect_tcp(hm->port);
			atomic_fetch_add(&hm->bad, 1);
			continue;
		}
		double ev = mfs_json_number(a.body, "model_events");
		if (a.status == 200 && (ev == hm->events_a || ev == hm->events_b))
			atomic_fetch_add(&hm->ok, 1);
		else
			atomic_fetch_add(&hm->bad, 1);
		mfs_http_answer_free(&a);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void http__served_file_overwritten_and_truncated_under_queries(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, "cur.mfs", 1, 0, 0); /* 20120 events */
	const char *other = mfs_test_path("other.mfs");
	save_model(other, 2, 30000); /* 30120 events */
	struct hammer hm = { f.port, 0, 0, 0, 20120, 30120 };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &hm), 0);
	const char *cur = f.model;
	struct mfs_run r0;
	assert_int_equal(mfs_run_sh(&r0, "cp %s %s", cur, mfs_test_path("keep.mfs")), 0);
	mfs_run_free(&r0);
	int swapped = 0, failed = 0;
	for (int i = 0; i < 25; i++) {
		struct mfs_run r;
		/* in place, as cp does: truncate, then write */
		assert_int_equal(mfs_run_sh(&r, "cp %s %s", i % 2 ? mfs_test_path("keep.mfs") : other, cur), 0);
		mfs_run_free(&r);
		mfs_diag d;
		int rc = mfs_http_refresh(f.h, &d);
		swapped += rc == 1;
		/* and truncated to nothing */
		assert_int_equal(mfs_run_sh(&r, ": > %s", cur), 0);
		mfs_run_free(&r);
		rc = mfs_http_refresh(f.h, &d);
		assert_true(rc < 0);
		failed++;
		usleep(20000);
	}
	atomic_store(&hm.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_true(atomic_load(&hm.ok) > 0);
	assert_int_equal(atomic_load(&hm.bad), 0);
	assert_true(swapped > 0);
	/* the failures were counted, the last whole model serves */
	assert_true(metric(f.port, "mfstream_model_refresh_failures_total ") >= failed);
	assert_int_equal(get_status(f.port, "/v1/recommend?user=u5"), 200);
	assert_int_equal(get_status(f.port, "/healthz"), 200);
	stop(&f);
}

/* --- connections ---------------------------------------------------------------- */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void http__idle_connections_above_the_limit(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, "idle.mfs", 1, 8, 1); /* 8 served, hard limit 24, idle timeout 1 s */
	int fds[40];
	for (int i = 0; i < 40; i++)
		fds[i] = mfs_connect_tcp(f.port); /* connected (the kernel accepts), never a byte */
	usleep(200000);
	/* a new client: an answer at once (a 503 while over the limit, or refused at
	 * accept), never a wait for the idle ones */
	double t0 = now_s();
	int s = get_status(f.port, "/v1/recommend?user=u1");
	assert_true(s == 503 || s == -1 || s == 200);
	assert_true(now_s() - t0 < 0.9);
	/* the idle ones are dropped after the timeout: then it is served */
	int served = 0;
	for (int i = 0; i < 60 && !served; i++) {
		served = get_status(f.port, "/v1/recommend?user=u1") == 200;
		if (!served)
			usleep(100000);
	}
	assert_true(served);
	assert_true(now_s() - t0 < 5.0);
	double refused = metric(f.port, "mfstream_http_connections_refused_total ");
	double over = metric(f.port, "mfstream_http_overload_total ");
	assert_true(refused + over > 0);
	for (int i = 0; i < 40; i++) {
		char b;
		if (fds[i] >= 0) {
			assert_true(recv(fds[i], &b, 1, 0) <= 0); /* closed by the server */
			close(fds[i]);
		}
	}
	stop(&f);
}

static long rss_kb(void)
{
	char *s = mfs_read_file("/proc/self/status", NULL);
	const char *p = s ? strstr(s, "VmRSS:") : NULL;
	long v = p ? atol(p + 6) : 0;
	free(s);
	return v;
}

/* A client that pipelines requests and never reads: it holds the memory of
 * its answers in flight, never a model; it is dropped after the idle timeout
 * while another client is served throughout. */
static void http__client_that_never_reads_is_dropped(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, "deaf.mfs", 1, 0, 1);
	const char *other = mfs_test_path("deaf2.mfs");
	save_model(other, 3, 25000);
	struct mfs_run r0;
	assert_int_equal(mfs_run_sh(&r0, "cp %s %s.keep", f.model, f.model), 0);
	mfs_run_free(&r0);
	long rss0 = rss_kb();
	int deaf = mfs_connect_tcp(f.port);
	assert_true(deaf >= 0);
	static const char q[] = "GET /v1/similar?item=i3&k=1000 HTTP/1.1\r\nHost: x\r\n\r\n";
	int sent = 0;
	for (; sent < 20000; sent++) { /* until the socket buffers are full */
		ssize_t w = send(deaf, q, sizeof q - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < (ssize_t)(sizeof q - 1))
			break;
	}
	assert_true(sent > 10);
	/* refreshes meanwhile: no replaced model stays pinned */
	for (int i = 0; i < 5; i++) {
		struct mfs_run r;
		assert_int_equal(mfs_run_sh(&r, "cp %s %s.tmp && mv %s.tmp %s", i % 2 ? mfs_test_path("deaf.mfs.keep") : other,
					    f.model, f.model, f.model), 0);
		mfs_run_free(&r);
		assert_int_equal(mfs_http_refresh(f.h, NULL), 1);
		/* a query computing now pins its view for that long; a stalled
		 * client pins nothing */
		mfs_server_info si;
		for (int w = 0; w < 100; w++) {
			mfs_server_info_get(f.srv, &si);
			if (si.retired_pinned == 0)
				break;
			usleep(10000);
		}
		assert_int_equal(si.retired_pinned, 0);
		assert_int_equal(get_status(f.port, "/v1/recommend?user=u1"), 200);
	}
	assert_true(rss_kb() - rss0 < 64 * 1024);
	/* dropped: the connection count falls back (the metrics client is the only one) */
	double open = 2;
	for (int i = 0; i < 50 && open > 1; i++) {
		usleep(100000);
		open = metric(f.port, "mfstream_http_open_connections ");
	}
	assert_float_equal(open, 1, 0);
	close(deaf);
	stop(&f);
}

/* --- one server per port and per socket ------------------------------------------ */

static void http__second_server_on_the_same_port_or_socket(void **state)
{
	(void)state;
	struct fixture f;
	start(&f, "two.mfs", 1, 0, 0);
	mfs_http_config *c;
	assert_int_equal(mfs_http_config_create(&c), 0);
	char addr[64];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", f.port);
	assert_int_equal(mfs_http_config_listen(c, addr), 0);
	mfs_http *h2 = NULL;
	mfs_diag d;
	assert_int_equal(mfs_http_start(&h2, f.srv, c, &d), -MFS_E_IO);
	assert_non_null(strstr(d.reason, addr));
	assert_non_null(strstr(d.reason, "in use"));
	/* the command line says the same, exit 1 */
	struct mfs_run r;
	/* (bounded: a second server that wrongly started would run until killed) */
	assert_int_equal(mfs_run_sh(&r, "timeout 10 %s serve --model %s --listen %s --no-stdin", MFS_CLI,
				    f.model, addr), 0);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, addr));
	mfs_run_free(&r);
	/* a Unix socket: the second is refused naming the first's pid */
	char sock[128];
	snprintf(sock, sizeof sock, "/tmp/mfs-test-http-%d.sock", (int)getpid());
	unlink(sock);
	assert_int_equal(mfs_http_config_listen(c, NULL), 0);
	assert_int_equal(mfs_http_config_socket(c, sock), 0);
	assert_int_equal(mfs_http_config_set(c, MFS_HTTP_SOCKET_MODE, 0660), 0);
	mode_t old = umask(0);
	mfs_http *hs = NULL;
	assert_int_equal(mfs_http_start(&hs, f.srv, c, &d), 0);
	umask(old);
	struct stat st;
	assert_int_equal(stat(sock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0660);
	char pid[32];
	snprintf(pid, sizeof pid, "pid %d", (int)getpid());
	assert_int_equal(mfs_run_sh(&r, "timeout 10 %s serve --model %s --socket %s --no-stdin", MFS_CLI,
				    f.model, sock), 0);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.err, pid));
	mfs_run_free(&r);
	int fd = mfs_connect_unix(sock); /* the first still serves */
	struct mfs_http_answer a;
	assert_int_equal(mfs_http_ask(fd, "GET", "/healthz", NULL, 0, &a), 0);
	assert_int_equal(a.status, 200);
	mfs_http_answer_free(&a);
	close(fd);
	mfs_http_free(hs);
	assert_true(stat(sock, &st) < 0);
	/* with the first gone, a second takes over the path */
	assert_int_equal(mfs_http_start(&hs, f.srv, c, &d), 0);
	mfs_http_free(hs);
	char lock[160];
	snprintf(lock, sizeof lock, "%s.lock", sock);
	unlink(lock);
	mfs_http_config_free(c);
	stop(&f);
}

/* --- the JSON pieces on their own -------------------------------------------------- */

static void jsonio__strings_are_utf8_and_batches_are_bounded(void **state)
{
	(void)state;
	struct mfs_jbuf b;
	mfs_jbuf_init(&b, 1024);
	/* overlong, surrogate, truncated, past U+10FFFF: each bad byte one U+FFFD */
	static const char in[] = "ok \xc3\xa9 \xc0\xaf \xed\xa0\x80 \xe2\x82 \xf4\x90\x80\x80 \"\\\n\x01";
	assert_int_equal(mfs_jbuf_str(&b, in, sizeof in - 1), 0);
	assert_string_equal(b.p, "\"ok \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
				 "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
				 "\\\"\\\\\\n\\u0001\"");
	mfs_jbuf_free(&b);
	mfs_jbuf_init(&b, 8); /* bounded */
	assert_int_equal(mfs_jbuf_puts(&b, "12345678"), 0);
	assert_int_equal(mfs_jbuf_puts(&b, "9"), -1);
	assert_true(b.over);
	mfs_jbuf_free(&b);

	struct mfs_batch_limits lim = { 10, 100, 3, 150, 4, 255 };
	struct mfs_batch bt;
	const char *why;
	static const char good[] = "{\"requests\": [\"a\\u00e9\\ud83d\\ude00\", {\"k\": 5, "
				   "\"user\": \"b\", \"exclude\": [\"x\", \"y\"]}], \"k\": 7}";
	assert_int_equal(mfs_batch_parse(good, sizeof good - 1, &lim, &bt, &why), 0);
	assert_int_equal(bt.n, 2);
	assert_int_equal(bt.q[0].k, 7); /* the top-level k, even when it comes last */
	assert_int_equal(bt.q[0].user_len, 7);
	assert_memory_equal(bt.q[0].user, "a\xc3\xa9\xf0\x9f\x98\x80", 7);
	assert_int_equal(bt.q[1].k, 5);
	assert_int_equal(bt.q[1].n_excl, 2);
	assert_memory_equal(bt.q[1].excl[1], "y", 1);
	mfs_batch_free(&bt);
	static const char *const bad[] = {
		"{\"requests\": [\"a\", \"b\", \"c\", \"d\"]}",            /* > 3 queries */
		"{\"requests\": [{\"user\": \"a\", \"k\": 101}]}",         /* k > max */
		"{\"requests\": [{\"user\": \"a\", \"k\": 100}, {\"user\": \"b\", \"k\": 51}]}", /* items */
		"{\"requests\": [{\"user\": \"a\", \"exclude\": [\"1\",\"2\",\"3\",\"4\",\"5\"]}]}",
		"{\"requests\": \"a\"}", "{\"requests\": [[[[[[[[[[\"a\"]]]]]]]]]]}",
		"{\"requests\": [\"a\"], \"requests\": [\"b\"]}", "{\"requests\": [\"a\x01\"]}",
		"{\"requests\": [{\"user\": \"a\", \"k\": 1.5}]}", "{\"requests\": [\"\\x\"]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why = NULL;
		if (mfs_batch_parse(bad[i], strlen(bad[i]), &lim, &bt, &why) == 0)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(why);
		mfs_batch_free(&bt);
	}
}

/* --item-meta: titles beside the IDs, over HTTP and on serve's standard input. */
static void http__item_meta_titles_beside_ids(void **state)
{
	(void)state;
	const char *meta = mfs_test_path("titles.tsv");
	static const char tsv[] = "i1\tToy Story (1995)\ni2\tCaf\xc3\xa9 \"Noir\"\n"
				  "i3\tSeven (a.k.a. Se7en) (1995)\n";
	mfs_write_file(meta, tsv, sizeof tsv - 1);
	mfs_titles *t;
	assert_int_equal(mfs_titles_load(&t, meta, NULL), 0);
	struct fixture f;
	snprintf(f.model, sizeof f.model, "%s", mfs_test_path("meta.mfs"));
	save_model(f.model, 1, 20000);
	assert_int_equal(mfs_server_open(&f.srv, f.model, NULL, NULL, NULL, NULL), 0);
	mfs_http_config *c;
	assert_int_equal(mfs_http_config_create(&c), 0);
	assert_int_equal(mfs_http_config_listen(c, "127.0.0.1:0"), 0);
	assert_int_equal(mfs_http_config_titles(c, t), 0);
	assert_int_equal(mfs_http_start(&f.h, f.srv, c, NULL), 0);
	mfs_http_config_free(c);
	char a[128];
	assert_true(mfs_http_address(f.h, 0, a, sizeof a) > 0);
	f.port = atoi(strrchr(a, ':') + 1);
	struct mfs_http_answer an;
	assert_int_equal(get_status(f.port, "/v1/similar?item=i2&k=1500"), 400);
	assert_int_equal(ask1(f.port, "GET", "/v1/similar?item=i2&k=1000", NULL, &an), 0);
	assert_int_equal(an.status, 200);
	assert_non_null(strstr(an.body, "{\"item\": \"i2\", \"title\": \"Caf\xc3\xa9 \\\"Noir\\\"\", "));
	assert_non_null(strstr(an.body, "\"title\": null}")); /* items the file lacks */
	mfs_http_answer_free(&an);
	assert_int_equal(ask1(f.port, "GET", "/v1/similar?item=i1&k=2", NULL, &an), 0);
	assert_non_null(strstr(an.body, "{\"item\": \"i1\", \"title\": \"Toy Story (1995)\", "));
	mfs_http_answer_free(&an);
	assert_int_equal(ask1(f.port, "GET", "/v1/predict?user=u1&item=i3", NULL, &an), 0);
	assert_non_null(strstr(an.body, "\"item\": \"i3\", \"title\": \"Seven (a.k.a. Se7en) (1995)\""));
	mfs_http_answer_free(&an);
	stop(&f);
	mfs_titles_free(t);
	/* the command line: serve --item-meta on standard input */
	char *argv[] = { MFS_CLI, "serve", "--model", f.model, "--item-meta", (char *)meta, NULL };
	struct mfs_run r;
	static const char q[] = "similar i1 1000\n";
	assert_int_equal(mfs_run_argv(&r, argv, q, sizeof q - 1), 0);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "\"score\": "));
	assert_non_null(strstr(r.out, ", \"title\": null}"));
	mfs_run_free(&r);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(jsonio__strings_are_utf8_and_batches_are_bounded),
		cmocka_unit_test(http__every_endpoint_and_healthz_before_a_model),
		cmocka_unit_test(http__top10_equals_recommend_and_brute_force),
		cmocka_unit_test(http__bad_parameters_are_json_errors),
		cmocka_unit_test(http__percent_encoding_and_utf8),
		cmocka_unit_test(http__huge_requests_are_refused),
		cmocka_unit_test(http__served_file_overwritten_and_truncated_under_queries),
		cmocka_unit_test(http__idle_connections_above_the_limit),
		cmocka_unit_test(http__client_that_never_reads_is_dropped),
		cmocka_unit_test(http__second_server_on_the_same_port_or_socket),
		cmocka_unit_test(http__item_meta_titles_beside_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
