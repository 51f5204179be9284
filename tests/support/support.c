#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

int mfs_run_argv(struct mfs_run *r, char *const argv[], const char *stdin_data, size_t stdin_len)
{
	int in[2], out[2], err[2];
	memset(r, 0, sizeof *r);
	if (pipe(in) || pipe(out) || pipe(err))
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		close(err[0]);
		close(err[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
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
	const char *d = getenv("MFS_DATA_DIR");
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
