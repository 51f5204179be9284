/*
 * http.c - the HTTP/JSON API on libmicrohttpd: settings, listening sockets,
 * the daemons and the public calls; http_routes.c answers each request (the
 * two are the only files that include microhttpd.h).
 *
 * Threads: libmicrohttpd's pool (MFS_HTTP_THREADS event loops on epoll, one
 * daemon per listening socket) runs every callback below; it is started by
 * mfs_http_start and joined by mfs_http_free (MHD_stop_daemon). The pool
 * shares with the caller's threads only the mfs_server (whose views are
 * pinned and released per request), the metrics (atomics) and the attached
 * server pointer (atomic). Nothing here blocks but the top-K computation.
 *
 * A request is answered whole in the callback that sees its last byte: the
 * view is pinned, the answer built into a buffer bounded by the limits, the
 * view released, and only then is the buffer queued, so a client that reads
 * slowly (or never) holds memory it asked for, not a model. libmicrohttpd
 * reads a connection's next request only after its answer is sent, and drops
 * a connection idle for the timeout, which bounds what one client holds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "http_internal.h"

MFS_API int mfs_http_config_create(mfs_http_config **out)
{
	if (!out)
		return -MFS_E_INVAL;
	struct mfs_http_config *c = calloc(1, sizeof *c);
	if (!c)
		return -MFS_E_NOMEM;
	c->threads = 2;
	c->max_conns = 1000;
	c->idle_s = 10;
	c->conn_memory = 32768;
	c->max_body = 1u << 20;
	c->k_max = 1000;
	c->batch_max = 1000;
	c->socket_mode = 0600;
	*out = c;
	return 0;
}

MFS_API void mfs_http_config_free(mfs_http_config *c)
{
	free(c);
}

MFS_API int mfs_http_config_set(mfs_http_config *c, int param, int64_t v)
{
	if (!c)
		return -MFS_E_INVAL;
	struct {
		int p;
		int64_t lo, hi;
	} const r[] = {
		{ MFS_HTTP_THREADS, 1, 64 },
		{ MFS_HTTP_MAX_CONNECTIONS, 1, 1000000 },
		{ MFS_HTTP_IDLE_TIMEOUT_S, 1, 86400 },
		{ MFS_HTTP_CONN_MEMORY, 4096, 16 << 20 },
		{ MFS_HTTP_MAX_BODY, 64, 256 << 20 },
		{ MFS_HTTP_K_MAX, 1, 100000 },
		{ MFS_HTTP_BATCH_MAX, 1, 100000 },
		{ MFS_HTTP_PER_IP, 0, 1000000 },
		{ MFS_HTTP_SOCKET_MODE, 0, 0777 },
	};
	for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
		if (r[i].p != param)
			continue;
		if (v < r[i].lo || v > r[i].hi)
			return -MFS_E_RANGE;
		switch (param) {
		case MFS_HTTP_THREADS: c->threads = (unsigned)v; break;
		case MFS_HTTP_MAX_CONNECTIONS: c->max_conns = (unsigned)v; break;
		case MFS_HTTP_IDLE_TIMEOUT_S: c->idle_s = (unsigned)v; break;
		case MFS_HTTP_CONN_MEMORY: c->conn_memory = (size_t)v; break;
		case MFS_HTTP_MAX_BODY: c->max_body = (size_t)v; break;
		case MFS_HTTP_K_MAX: c->k_max = (size_t)v; break;
		case MFS_HTTP_BATCH_MAX: c->batch_max = (size_t)v; break;
		case MFS_HTTP_PER_IP: c->per_ip = (unsigned)v; break;
		default: c->socket_mode = (unsigned)v; break;
		}
		return 0;
	}
	return -MFS_E_INVAL;
}

/* Split "PORT", "HOST:PORT", "[V6]:PORT" into a socket address. */
static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256] = "127.0.0.1";
	const char *port = s;
	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (!e || e[1] != ':' || (size_t)(e - s - 1) >= sizeof host)
			return -1;
		memcpy(host, s + 1, (size_t)(e - s - 1));
		host[e - s - 1] = 0;
		port = e + 2;
	} else if (strchr(s, ':')) {
		const char *e = strrchr(s, ':');
		if ((size_t)(e - s) >= sizeof host || e == s)
			return -1;
		memcpy(host, s, (size_t)(e - s));
		host[e - s] = 0;
		port = e + 1;
	}
	char *end;
	errno = 0;
	unsigned long p = strtoul(port, &end, 10);
	if (!*port || *end || errno || p > 65535 || port[0] < '0' || port[0] > '9')
		return -1;
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)p);
		*len = sizeof *a4;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)p);
		*len = sizeof *a6;
		return 0;
	}
	return -1;
}

MFS_API int mfs_http_config_listen(mfs_http_config *c, const char *addr)
{
	if (!c)
		return -MFS_E_INVAL;
	if (!addr) {
		c->listen[0] = 0;
		return 0;
	}
	struct sockaddr_storage ss;
	socklen_t len;
	if (strlen(addr) >= sizeof c->listen || parse_addr(addr, &ss, &len) < 0)
		return -MFS_E_INVAL;
	strcpy(c->listen, addr);
	return 0;
}

MFS_API int mfs_http_config_queries(mfs_http_config *c, const mfs_query *recommend,
				    const mfs_query *similar)
{
	if (!c)
		return -MFS_E_INVAL;
	c->rq = recommend;
	c->sq = similar;
	return 0;
}

MFS_API int mfs_http_config_titles(mfs_http_config *c, const mfs_titles *t)
{
	if (!c)
		return -MFS_E_INVAL;
	c->titles = t;
	return 0;
}

MFS_API int mfs_http_config_socket(mfs_http_config *c, const char *path)
{
	if (!c)
		return -MFS_E_INVAL;
	if (!path) {
		c->socket[0] = 0;
		return 0;
	}
	/* room for the private directory it is bound in first ("/.sXXXXXX/s") */
	if (!*path || strlen(path) > MFS_HTTP_SOCKET_PATH_MAX)
		return -MFS_E_INVAL;
	strcpy(c->socket, path);
	return 0;
}

static void notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
			enum MHD_ConnectionNotificationCode toe)
{
	(void)c;
	(void)socket_context;
	struct mfs_http *h = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		atomic_fetch_add(&h->mx.open_conns, 1);
		atomic_fetch_add(&h->mx.conns_total, 1);
	} else {
		atomic_fetch_sub(&h->mx.open_conns, 1);
	}
}

static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
	(void)addr;
	(void)len;
	struct mfs_http *h = cls;
	if (atomic_load(&h->mx.open_conns) >= h->hard_conns) {
		atomic_fetch_add(&h->mx.conns_refused, 1);
		return MHD_NO;
	}
	return MHD_YES;
}

static void quiet_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	(void)fmt;
	(void)ap; /* the library never prints */
}

/* --- listening ----------------------------------------------------------------- */

static int bind_tcp(struct mfs_http *h, mfs_diag *d)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (parse_addr(h->cfg.listen, &ss, &len) < 0)
		return mfs_diag_set(d, MFS_E_INVAL, 0, "", 0, 0, "%s: not an address (PORT, HOST:PORT, [V6]:PORT)",
				    h->cfg.listen);
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return mfs_diag_set(d, MFS_E_IO, errno, "", 0, 0, "%s: socket: %s", h->cfg.listen,
				    strerror(errno));
	int one = 1; /* restart over TIME_WAIT; never SO_REUSEPORT: one server per port */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0) {
		int e = errno;
		close(fd);
		return mfs_diag_set(d, MFS_E_IO, e, "", 0, 0, "%s: cannot listen: %s%s", h->cfg.listen,
				    strerror(e),
				    e == EADDRINUSE ? " (another server is listening there)" : "");
	}
	struct sockaddr_storage got;
	socklen_t gl = sizeof got;
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0) {
		if (got.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&got;
			inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
			port = ntohs(a->sin_port);
		} else {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&got;
			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(h->tcp_addr, sizeof h->tcp_addr, got.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
		 host, port);
	return fd;
}

/*
 * Take path.lock, then bind path with mode whatever the umask: the socket is
 * bound in a fresh 0700 directory beside path, chmod'ed there, then renamed
 * onto path (no moment with looser permissions).
 */
static int bind_unix(struct mfs_http *h, mfs_diag *d)
{
	const char *path = h->cfg.socket;
	char lock[sizeof h->cfg.socket + 8], tmpd[sizeof h->cfg.socket + 32], tmps[sizeof tmpd + 8];
	snprintf(lock, sizeof lock, "%s.lock", path);
	int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return mfs_diag_set(d, MFS_E_IO, errno, lock, 0, 0, "cannot open the socket's lock: %s",
				    strerror(errno));
	if (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		char pid[32] = "";
		ssize_t n = pread(lfd, pid, sizeof pid - 1, 0);
		pid[n > 0 ? n : 0] = 0;
		pid[strcspn(pid, "\n")] = 0;
		close(lfd);
		if (e == EWOULDBLOCK)
			return mfs_diag_set(d, MFS_E_IO, e, path, 0, 0,
					    "another server (pid %s) is serving this socket (it holds %s)",
					    pid[0] ? pid : "?", lock);
		return mfs_diag_set(d, MFS_E_IO, e, lock, 0, 0, "cannot lock: %s", strerror(e));
	}
	char pid[32];
	int pl = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(lfd, 0) < 0 || pwrite(lfd, pid, (size_t)pl, 0) != pl) {
		/* the lock holds without its pid: only the message would lack it */
	}
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			close(lfd);
			return mfs_diag_set(d, MFS_E_IO, EEXIST, path, 0, 0,
					    "exists and is not a socket; not replacing it");
		}
		unlink(path); /* a socket left by a server that is gone: we hold the lock */
	}
	char dir[sizeof h->cfg.socket];
	snprintf(dir, sizeof dir, "%s", path);
	char *sl = strrchr(dir, '/');
	if (!sl)
		strcpy(dir, ".");
	else if (sl == dir)
		dir[1] = 0;
	else
		*sl = 0;
	snprintf(tmpd, sizeof tmpd, "%s/.sXXXXXX", dir);
	int fd = -1, e = 0;
	struct sockaddr_un a;
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	if (!mkdtemp(tmpd)) {
		e = errno;
		goto fail;
	}
	snprintf(tmps, sizeof tmps, "%s/s", tmpd);
	if (strlen(tmps) >= sizeof a.sun_path) {
		e = ENAMETOOLONG;
		goto fail_dir;
	}
	strcpy(a.sun_path, tmps);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    chmod(tmps, h->cfg.socket_mode) < 0 || rename(tmps, path) < 0 || listen(fd, 1024) < 0) {
		e = errno;
		unlink(tmps);
		goto fail_dir;
	}
	rmdir(tmpd);
	h->lock_fd = lfd;
	return fd;
fail_dir:
	rmdir(tmpd);
fail:
	if (fd >= 0)
		close(fd);
	close(lfd);
	return mfs_diag_set(d, MFS_E_IO, e, path, 0, 0, "cannot listen: %s", strerror(e));
}

static struct MHD_Daemon *start_daemon(struct mfs_http *h, int fd, int tcp)
{
	struct MHD_OptionItem ops[] = {
		{ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)quiet_log, NULL },
		{ MHD_OPTION_LISTEN_SOCKET, fd, NULL },
		{ MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)h->cfg.threads, NULL },
		/* the real limit is accept_policy's; libmicrohttpd's own splits its
		 * limit over the pool's threads, so it is only a backstop */
		{ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)(2 * h->hard_conns + 64), NULL },
		{ MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)h->cfg.idle_s, NULL },
		{ MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)h->cfg.conn_memory, NULL },
		{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)mfs_http_completed, h },
		{ MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify_conn, h },
		{ tcp && h->cfg.per_ip ? MHD_OPTION_PER_IP_CONNECTION_LIMIT : MHD_OPTION_END,
		  (intptr_t)h->cfg.per_ip, NULL },
		{ MHD_OPTION_END, 0, NULL },
	};
	/* ITC: the pool wakes at once when stopped */
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC;
	return MHD_start_daemon(flags, 0, accept_policy, h, mfs_http_handle, h, MHD_OPTION_ARRAY, ops,
				MHD_OPTION_END);
}

static void note_model_time(struct mfs_http *h, mfs_server *srv);

MFS_API int mfs_http_start(mfs_http **out, mfs_server *srv, const mfs_http_config *cfg,
			   mfs_diag *diag)
{
	if (!out || !cfg)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, "", 0, 0, "no config");
	if (!cfg->listen[0] && !cfg->socket[0])
		return mfs_diag_set(diag, MFS_E_INVAL, 0, "", 0, 0,
				    "nothing to listen on (give a TCP address or a socket path)");
	struct mfs_http *h = calloc(1, sizeof *h);
	if (!h)
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, "", 0, 0, "out of memory");
	h->cfg = *cfg;
	h->lock_fd = -1;
	if (mfs_query_create(&h->seen_q) < 0 ||
	    mfs_query_set(h->seen_q, MFS_QUERY_INCLUDE_SEEN, 1) < 0) {
		mfs_query_free(h->seen_q);
		free(h);
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, "", 0, 0, "out of memory");
	}
	atomic_init(&h->srv, srv);
	mfs_metrics_init(&h->mx);
	unsigned spare = cfg->max_conns / 8 > 16 ? cfg->max_conns / 8 : 16;
	h->hard_conns = cfg->max_conns + spare;
	int rc = 0;
	if (srv)
		note_model_time(h, srv); /* for mfstream_model_age_seconds */
	if (cfg->listen[0]) {
		int fd = bind_tcp(h, diag);
		if (fd < 0) {
			rc = fd;
			goto fail;
		}
		if (!(h->tcp = start_daemon(h, fd, 1))) {
			close(fd);
			rc = mfs_diag_set(diag, MFS_E_IO, errno, "", 0, 0, "%s: cannot start the HTTP server",
					  h->tcp_addr);
			goto fail;
		}
	}
	if (cfg->socket[0]) {
		int fd = bind_unix(h, diag);
		if (fd < 0) {
			rc = fd;
			goto fail;
		}
		if (!(h->unx = start_daemon(h, fd, 0))) {
			close(fd);
			unlink(cfg->socket);
			rc = mfs_diag_set(diag, MFS_E_IO, errno, cfg->socket, 0, 0,
					  "cannot start the HTTP server");
			goto fail;
		}
	}
	*out = h;
	return 0;
fail:
	mfs_http_free(h);
	return rc;
}

/* The serving model file's time, for mfstream_model_age_seconds. */
static void note_model_time(struct mfs_http *h, mfs_server *srv)
{
	mfs_server_info si;
	struct stat st;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	if (mfs_server_info_get(srv, &si) == 0 && stat(si.path, &st) == 0)
		ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	atomic_store(&h->mx.model_mtime_ms, ms);
}

MFS_API int mfs_http_attach(mfs_http *h, mfs_server *srv)
{
	if (!h || !srv)
		return -MFS_E_INVAL;
	mfs_server *none = NULL;
	note_model_time(h, srv);
	return atomic_compare_exchange_strong(&h->srv, &none, srv) ? 0 : -MFS_E_INVAL;
}

MFS_API int mfs_http_refresh(mfs_http *h, mfs_diag *diag)
{
	mfs_server *srv = h ? atomic_load(&h->srv) : NULL;
	if (!srv)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, "", 0, 0, "no server attached");
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = mfs_server_refresh(srv, diag);
	if (rc == 1) {
		atomic_fetch_add(&h->mx.refreshes, 1);
		atomic_store(&h->mx.load_us, mfs_http_since_ns(&t0) / 1000);
		note_model_time(h, srv);
	} else if (rc < 0 && rc != -MFS_E_NOTFOUND) {
		atomic_fetch_add(&h->mx.refresh_failures, 1);
	}
	return rc;
}

MFS_API int mfs_http_address(const mfs_http *h, int which, char *buf, size_t len)
{
	if (!h)
		return -MFS_E_INVAL;
	if (which == 0 && h->tcp)
		return snprintf(buf, len, "%s", h->tcp_addr);
	if (which == 1 && h->unx)
		return snprintf(buf, len, "%s", h->cfg.socket);
	return -MFS_E_NOTFOUND;
}

MFS_API uint64_t mfs_http_requests(const mfs_http *h)
{
	return h ? atomic_load(&h->answered) : 0;
}

MFS_API void mfs_http_free(mfs_http *h)
{
	if (!h)
		return;
	if (h->tcp)
		MHD_stop_daemon(h->tcp);
	if (h->unx) {
		MHD_stop_daemon(h->unx);
		unlink(h->cfg.socket);
	}
	/* the lock file stays: unlinking it would let a server waiting on the old
	 * inode and one creating a new file both believe they hold the path */
	if (h->lock_fd >= 0)
		close(h->lock_fd);
	mfs_query_free(h->seen_q);
	free(h);
}
