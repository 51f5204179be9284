/*
 * http_internal.h - what the HTTP server's two files share (not public):
 * http.c (settings, listening sockets, the daemons, the public calls) and
 * http_routes.c (one request: routes, parameters, answers).
 */
#ifndef MFS_HTTP_INTERNAL_H
#define MFS_HTTP_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/un.h>
#include <time.h>

#include <microhttpd.h>

#include "internal.h"
#include "metrics.h"

#define MFS_HTTP_SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 13)

/* The largest answer built (bytes); beyond it a request gets 413. The limits
 * on k and batches keep real answers far below it. */
#define ANSWER_MAX (16u << 20)

struct mfs_http_config {
	unsigned threads, max_conns, idle_s, per_ip, socket_mode;
	size_t conn_memory, max_body, k_max, batch_max;
	char listen[256]; /* "" for none */
	char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const mfs_titles *titles; /* borrowed; NULL: no "title" fields */
	const mfs_query *rq, *sq; /* borrowed: recommend's and similar's settings (NULL: defaults) */
};

struct mfs_http {
	struct mfs_http_config cfg;
	_Atomic(mfs_server *) srv;
	struct MHD_Daemon *tcp, *unx;
	mfs_query *seen_q;             /* recommend with include_seen=1 */
	int lock_fd;                   /* the socket's path.lock, flock'd */
	char tcp_addr[300];
	unsigned hard_conns;
	struct mfs_metrics mx;
	atomic_uint_fast64_t answered;
};

static inline uint64_t mfs_http_since_ns(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)((t.tv_sec - t0->tv_sec) * 1000000000LL + (t.tv_nsec - t0->tv_nsec));
}

/* libmicrohttpd's access handler and completion callback (http_routes.c); cls is the mfs_http. */
enum MHD_Result mfs_http_handle(void *cls, struct MHD_Connection *c, const char *url,
				const char *method, const char *version, const char *upload,
				size_t *upload_size, void **req_cls);
void mfs_http_completed(void *cls, struct MHD_Connection *c, void **req_cls,
			enum MHD_RequestTerminationCode toe);

#endif
