/*
 * bench_http_load - an HTTP/1.1 load client for `mfstream serve --listen`:
 * one thread, epoll, keep-alive connections.
 *
 *   bench_http_load PORT USERS_FILE SECONDS CONNS [RATE] [IDLE] [DEAF]
 *
 * CONNS connections ask GET /v1/recommend?user=U&k=10 (users from the file,
 * in turn). RATE 0: closed loop (each connection asks again as soon as it has
 * its answer: the highest throughput, and with more connections than cores
 * the latency is mostly queueing). RATE > 0: open loop, requests scheduled at
 * RATE per second in all, each sent on a free connection, its latency counted
 * from its scheduled time (so waiting for a connection counts: no coordinated
 * omission). IDLE connections are opened and never send a byte (reopened
 * when the server drops them); DEAF connections send requests and never read.
 * Prints one JSON line: requests, errors, rps, p50/p90/p99/max in ms, idle
 * reconnects, refused connects.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int port;

static int dial(void)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

struct conn {
	int fd;
	int busy;       /* a request is out */
	double t_sched; /* when that request was due (open loop) or sent */
	char buf[65536];
	size_t len;
};

static char **users;
static size_t n_users, next_user;

static int send_req(struct conn *c)
{
	char req[512];
	const char *u = users[next_user++ % n_users];
	int n = snprintf(req, sizeof req, "GET /v1/recommend?user=%s&k=10 HTTP/1.1\r\nHost: b\r\n\r\n", u);
	return send(c->fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s PORT USERS_FILE SECONDS CONNS [RATE] [IDLE] [DEAF]\n", argv[0]);
		return 2;
	}
	port = atoi(argv[1]);
	double secs = atof(argv[3]), rate = argc > 5 ? atof(argv[5]) : 0;
	int nc = atoi(argv[4]), n_idle = argc > 6 ? atoi(argv[6]) : 0, n_deaf = argc > 7 ? atoi(argv[7]) : 0;
	FILE *f = fopen(argv[2], "r");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	char line[512];
	size_t cap = 0;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!*line)
			continue;
		if (n_users == cap) {
			cap = cap ? 2 * cap : 1024;
			users = realloc(users, cap * sizeof *users);
		}
		users[n_users++] = strdup(line);
	}
	fclose(f);
	if (!n_users)
		return 1;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct conn *cs = calloc((size_t)nc, sizeof *cs);
	long refused = 0, reconnects = 0;
	for (int i = 0; i < nc; i++) {
		if ((cs[i].fd = dial()) < 0) {
			refused++;
			continue;
		}
		struct epoll_event e = { EPOLLIN, { .u32 = (uint32_t)i } };
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &e);
	}
	int *idle = calloc((size_t)(n_idle + 1), sizeof *idle);
	for (int i = 0; i < n_idle; i++)
		idle[i] = dial();
	/* deaf clients: pipeline requests until their socket buffers are full */
	int *deaf = calloc((size_t)(n_deaf + 1), sizeof *deaf);
	for (int i = 0; i < n_deaf; i++) {
		deaf[i] = dial();
		for (int j = 0; deaf[i] >= 0 && j < 100000; j++) {
			static const char q[] = "GET /v1/similar?item=i1&k=1000 HTTP/1.1\r\nHost: b\r\n\r\n";
			if (send(deaf[i], q, sizeof q - 1, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)(sizeof q - 1))
				break;
		}
	}
	size_t lat_cap = 1 << 20, n_lat = 0;
	double *lat = malloc(lat_cap * sizeof *lat);
	long errors = 0, done = 0;
	double t0 = now(), end = t0 + secs, next_idle_check = t0 + 0.2;
	uint64_t scheduled = 0; /* open loop: requests due so far */
	/* open loop: requests due but without a free connection yet */
	size_t q_cap = 1 << 16, q_head = 0, q_tail = 0;
	double *due = malloc(q_cap * sizeof *due);
	if (rate <= 0)
		for (int i = 0; i < nc; i++)
			if (cs[i].fd >= 0 && send_req(&cs[i]) == 0) {
				cs[i].busy = 1;
				cs[i].t_sched = now();
			}
	for (;;) {
		double t = now();
		if (t >= end)
			break;
		if (rate > 0) {
			while ((double)scheduled / rate < t - t0 && q_tail - q_head < q_cap) {
				due[q_tail++ % q_cap] = t0 + (double)scheduled / rate;
				scheduled++;
			}
			for (int i = 0; i < nc && q_head < q_tail; i++) {
				if (cs[i].fd < 0 || cs[i].busy)
					continue;
				if (send_req(&cs[i]) == 0) {
					cs[i].busy = 1;
					cs[i].t_sched = due[q_head++ % q_cap];
				}
			}
		}
		if (t >= next_idle_check) { /* reopen idle connections the server dropped */
			next_idle_check = t + 0.2;
			for (int i = 0; i < n_idle; i++) {
				char b;
				ssize_t r = idle[i] >= 0 ? recv(idle[i], &b, 1, MSG_DONTWAIT) : 0;
				if (r == 0 || (r < 0 && errno != EAGAIN)) {
					if (idle[i] >= 0)
						close(idle[i]);
					idle[i] = dial();
					reconnects++;
				}
			}
		}
		struct epoll_event ev[64];
		double wait_ms = rate > 0 ? 0.2 : 50;
		int n = epoll_wait(ep, ev, 64, (int)(wait_ms >= 1 ? wait_ms : 1));
		if (rate > 0 && n == 0)
			continue;
		for (int k = 0; k < n; k++) {
			struct conn *c = &cs[ev[k].data.u32];
			ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
			if (r <= 0) { /* closed by the server: count and reconnect */
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				errors += c->busy;
				c->busy = 0;
				c->len = 0;
				if ((c->fd = dial()) >= 0) {
					struct epoll_event e = { EPOLLIN, { .u32 = ev[k].data.u32 } };
					epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
				}
				continue;
			}
			c->len += (size_t)r;
			c->buf[c->len] = 0;
			char *eoh = strstr(c->buf, "\r\n\r\n");
			if (!eoh)
				continue;
			char *cl = strcasestr(c->buf, "Content-Length:");
			size_t body = cl && cl < eoh ? strtoul(cl + 15, NULL, 10) : 0;
			size_t whole = (size_t)(eoh + 4 - c->buf) + body;
			if (c->len < whole)
				continue;
			double tt = now();
			int st = atoi(c->buf + 9);
			if (st != 200)
				errors++;
			if (n_lat == lat_cap)
				lat = realloc(lat, (lat_cap *= 2) * sizeof *lat);
			lat[n_lat++] = (tt - c->t_sched) * 1e3;
			done++;
			memmove(c->buf, c->buf + whole, c->len - whole);
			c->len -= whole;
			c->busy = 0;
			if (rate <= 0 && send_req(c) == 0) {
				c->busy = 1;
				c->t_sched = tt;
			}
		}
	}
	double el = now() - t0;
	qsort(lat, n_lat, sizeof *lat, cmp_d);
#define PCT(p) (n_lat ? lat[(size_t)((double)(n_lat - 1) * (p) / 100.0)] : 0.0)
	printf("{\"conns\": %d, \"rate\": %.0f, \"idle\": %d, \"deaf\": %d, \"seconds\": %.2f, "
	       "\"requests\": %ld, \"errors\": %ld, \"rps\": %.0f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, "
	       "\"p99_ms\": %.3f, \"max_ms\": %.3f, \"idle_reconnects\": %ld, \"refused\": %ld, "
	       "\"backlog_at_end\": %zu}\n",
	       nc, rate, n_idle, n_deaf, el, done, errors, (double)done / el, PCT(50), PCT(90), PCT(99),
	       n_lat ? lat[n_lat - 1] : 0.0, reconnects, refused, q_tail - q_head);
	return 0;
}
