#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir_buf[1024];

const char *mfs_test_dir(void)
{
	if (dir_buf[0])
		return dir_buf;
	const char *base = getenv("MFS_TEST_TMP");
	if (!base || !*base)
		base = "/tmp";
	snprintf(dir_buf, sizeof dir_buf, "%s/mfs-test-XXXXXX", base);
	if (!mkdtemp(dir_buf)) {
		snprintf(dir_buf, sizeof dir_buf, "/tmp/mfs-test-XXXXXX");
		if (!mkdtemp(dir_buf)) {
			perror("mkdtemp");
			abort();
		}
	}
	return dir_buf;
}

const char *mfs_test_path(const char *name)
{
	static char bufs[8][1200];
	static int next;
	char *b = bufs[next++ & 7];
	snprintf(b, sizeof bufs[0], "%s/%s", mfs_test_dir(), name);
	return b;
}

int mfs_test_catches(pid_t pid, int sig, int ms)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	for (int waited = 0; waited <= ms; waited += 10) {
		FILE *f = fopen(path, "r");
		char line[256];
		unsigned long long mask = 0;
		while (f && fgets(line, sizeof line, f))
			if (sscanf(line, "SigCgt: %llx", &mask) == 1)
				break;
		if (f)
			fclose(f);
		if (mask & (1ULL << (sig - 1)))
			return 1;
		usleep(10000);
	}
	return 0;
}

void mfs_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

char *mfs_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *b = malloc(cap + 1);
	size_t got;
	while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			char *nb = realloc(b, cap * 2 + 1);
			if (!nb) {
				free(b);
				b = NULL;
				break;
			}
			b = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (!b)
		return NULL;
	b[n] = 0;
	if (len)
		*len = n;
	return b;
}

struct sink {
	char *buf;
	size_t len, cap;
};

static void sink_add(struct sink *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		while (cap < s->len + n + 1)
			cap *= 2;
		s->buf = realloc(s->buf, cap);
		if (!s->buf)
			abort();
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = 0;
}

pid_t mfs_spawn(char *const argv[], int *in, int *out, int *err)
{
	int pi[2], po[2], pe[2];
	if (pipe(pi))
		return -1;
	if (pipe(po)) {
		close(pi[0]), close(pi[1]);
		return -1;
	}
	if (pipe(pe)) {
		close(pi[0]), close(pi[1]), close(po[0]), close(po[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pi[0], 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(pi[0]), close(pi[1]), close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pi[0]), close(po[1]), close(pe[1]);
	if (pid < 0) {
		close(pi[1]), close(po[0]), close(pe[0]);
		return -1;
	}
	*in = pi[1], *out = po[0], *err = pe[0];
	return pid;
}

int mfs_run_argv(struct mfs_run *r, char *const argv[], const char *stdin_data, size_t stdin_len)
{
	int in[2], out[2], err[2];
	memset(r, 0, sizeof *r);
	pid_t pid = mfs_spawn(argv, &in[1], &out[0], &err[0]);
	if (pid < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	struct sink so = { 0 }, se = { 0 };
	sink_add(&so, "", 0);
	sink_add(&se, "", 0);
	size_t off = 0;
	int in_fd = in[1];
	if (!stdin_data || stdin_len == 0) {
		close(in_fd);
		in_fd = -1;
	} else {
		fcntl(in_fd, F_SETFL, O_NONBLOCK);
	}
	int open_fds = 2;
	while (open_fds > 0 || in_fd >= 0) {
		struct pollfd p[3];
		int np = 0;
		p[np++] = (struct pollfd){ .fd = out[0], .events = POLLIN };
		p[np++] = (struct pollfd){ .fd = err[0], .events = POLLIN };
		if (in_fd >= 0)
			p[np++] = (struct pollfd){ .fd = in_fd, .events = POLLOUT };
		if (poll(p, np, -1) < 0 && errno != EINTR)
			break;
		char buf[65536];
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = read(p[i].fd, buf, sizeof buf);
			if (n > 0) {
				sink_add(i == 0 ? &so : &se, buf, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(p[i].fd);
				if (i == 0)
					out[0] = -1;
				else
					err[0] = -1;
				open_fds--;
			}
		}
		if (in_fd >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = write(in_fd, stdin_data + off, stdin_len - off);
			if (n > 0)
				off += (size_t)n;
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				off = stdin_len;
			if (off >= stdin_len) {
				close(in_fd);
				in_fd = -1;
			}
		}
		if (out[0] < 0 && err[0] < 0 && in_fd >= 0) {
			close(in_fd);
			in_fd = -1;
		}
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r->out = so.buf;
	r->err = se.buf;
	return 0;
}

int mfs_run_sh(struct mfs_run *r, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	return mfs_run_argv(r, argv, NULL, 0);
}

void mfs_run_free(struct mfs_run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

double mfs_json_number(const char *json, const char *key)
{
	char pat[128];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = json ? strstr(json, pat) : NULL;
	if (!p)
		return NAN;
	p += strlen(pat);
	while (*p == ' ')
		p++;
	char *end;
	double v = strtod(p, &end);
	return end == p ? NAN : v;
}

int mfs_close(double a, double b, double rtol)
{
	double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
	if (m < 1.0)
		m = 1.0;
	return fabs(a - b) <= rtol * m;
}

const char *mfs_ml100k_dir(void)
{
	static char buf[1024];
	/* read when the test runs: ctest passes the environment through */
	const char *d = getenv("MFS_DATA_DIR");
#ifdef MFS_DEFAULT_DATA_DIR
	if (!d || !*d)
		d = MFS_DEFAULT_DATA_DIR;
#endif
	if (!d || !*d)
		d = "../shared/data";
	snprintf(buf, sizeof buf, "%s/ml-100k", d);
	struct stat st;
	char probe[1100];
	snprintf(probe, sizeof probe, "%s/u.data", buf);
	if (stat(probe, &st) != 0)
		return NULL;
	return buf;
}

/* --- HTTP client ------------------------------------------------------------ */

static int connect_retry(const struct sockaddr *a, socklen_t len, int family)
{
	for (int i = 0; i < 500; i++) {
		int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, a, len) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		usleep(20000);
	}
	return -1;
}

int mfs_connect_tcp(int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return connect_retry((struct sockaddr *)&a, sizeof a, AF_INET);
}

int mfs_connect_unix(const char *path)
{
	struct sockaddr_un a;
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof a.sun_path)
		return -1;
	memcpy(a.sun_path, path, strlen(path) + 1);
	return connect_retry((struct sockaddr *)&a, sizeof a, AF_UNIX);
}

static int write_all_fd(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int mfs_http_ask(int fd, const char *method, const char *target, const char *body, size_t body_len,
		 struct mfs_http_answer *a)
{
	memset(a, 0, sizeof *a);
	char req[8192];
	int n = snprintf(req, sizeof req,
			 "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n\r\n",
			 method, target, body ? body_len : 0);
	if (n < 0 || (size_t)n >= sizeof req) {
		/* a long target: build it on the heap */
		size_t need = strlen(method) + strlen(target) + 128;
		char *big = malloc(need);
		if (!big)
			return -1;
		n = snprintf(big, need, "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n\r\n",
			     method, target, body ? body_len : 0);
		int rc = write_all_fd(fd, big, (size_t)n);
		free(big);
		if (rc < 0)
			return -1;
	} else if (write_all_fd(fd, req, (size_t)n) < 0) {
		return -1;
	}
	if (body && body_len && write_all_fd(fd, body, body_len) < 0)
		return -1;
	size_t cap = 65536, len = 0;
	char *buf = malloc(cap + 1);
	if (!buf)
		return -1;
	char *eoh = NULL;
	size_t want = (size_t)-1;
	for (;;) {
		if (!eoh) {
			buf[len] = 0;
			if ((eoh = strstr(buf, "\r\n\r\n")) != NULL) {
				const char *cl = strcasestr(buf, "Content-Length:");
				want = (size_t)(eoh + 4 - buf) + (cl && cl < eoh ? strtoul(cl + 15, NULL, 10) : 0);
			}
		}
		if (eoh && len >= want)
			break;
		if (len == cap) {
			char *p = realloc(buf, 2 * cap + 1);
			if (!p)
				break;
			buf = p;
			cap *= 2;
			if (eoh)
				eoh = NULL; /* find it again in the moved buffer */
		}
		ssize_t r = recv(fd, buf + len, cap - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(buf);
			return -1;
		}
		len += (size_t)r;
	}
	buf[len] = 0;
	eoh = strstr(buf, "\r\n\r\n");
	a->status = (int)strtol(buf + 9, NULL, 10);
	size_t hl = (size_t)(eoh - buf);
	a->head = strndup(buf, hl);
	a->body_len = want - hl - 4;
	a->body = malloc(a->body_len + 1);
	if (!a->head || !a->body) {
		free(buf);
		mfs_http_answer_free(a);
		return -1;
	}
	memcpy(a->body, eoh + 4, a->body_len);
	a->body[a->body_len] = 0;
	free(buf);
	return 0;
}

void mfs_http_answer_free(struct mfs_http_answer *a)
{
	free(a->head);
	free(a->body);
	memset(a, 0, sizeof *a);
}

int mfs_serve_port(const char *err)
{
	const char *p = err ? strstr(err, "\"listen\": \"") : NULL;
	if (!p)
		return -1;
	p = strchr(p + 11, ':');
	return p ? (int)strtol(p + 1, NULL, 10) : -1;
}

void mfs_assert_same_file(const char *a, const char *b)
{
	size_t na, nb;
	char *x = mfs_read_file(a, &na), *y = mfs_read_file(b, &nb);
	assert_non_null(x);
	assert_non_null(y);
	assert_int_equal(na, nb);
	assert_memory_equal(x, y, na);
	free(x);
	free(y);
}
