/*
 * metrics.h - the HTTP server's counters and their Prometheus text form.
 * Lock-free (relaxed atomics): any thread counts, any thread formats.
 */
#ifndef MFS_METRICS_H
#define MFS_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "jsonio.h"

enum mfs_endpoint {
	MFS_EP_RECOMMEND = 0,
	MFS_EP_RECOMMEND_BATCH,
	MFS_EP_SIMILAR,
	MFS_EP_PREDICT,
	MFS_EP_INFO,
	MFS_EP_HEALTHZ,
	MFS_EP_METRICS,
	MFS_EP_OTHER, /* unknown routes */
	MFS_EP_N
};

/* The statuses counted one by one; any other lands in "other". */
#define MFS_METRICS_STATUSES 9
/* Latency histogram bounds in seconds (then +Inf). */
#define MFS_METRICS_BUCKETS 14

struct mfs_metrics {
	atomic_uint_fast64_t req[MFS_EP_N][MFS_METRICS_STATUSES + 1];
	atomic_uint_fast64_t hist[MFS_EP_N][MFS_METRICS_BUCKETS + 1];
	atomic_uint_fast64_t sum_ns[MFS_EP_N];
	atomic_uint_fast64_t open_conns, conns_total, conns_refused, conns_overload;
	atomic_uint_fast64_t refreshes, refresh_failures;
	atomic_uint_fast64_t load_us;     /* the last successful load */
	atomic_int_fast64_t model_mtime_ms; /* the serving model's file time (ms since the epoch) */
};

/* The model state a scrape reports (read by the caller from the server). */
struct mfs_metrics_model {
	int loaded;
	uint64_t events, retired_pinned;
	double age_s;
};

void mfs_metrics_init(struct mfs_metrics *m);
/* Count one answered request: its endpoint, HTTP status and time. */
void mfs_metrics_request(struct mfs_metrics *m, int ep, unsigned status, uint64_t ns);
/* The Prometheus text exposition (version 0.0.4) into out. Returns 0 or -1 (full). */
int mfs_metrics_format(const struct mfs_metrics *m, const struct mfs_metrics_model *mm,
		       struct mfs_jbuf *out);
/* The name of an endpoint as a label value. */
const char *mfs_metrics_endpoint(int ep);

#endif
