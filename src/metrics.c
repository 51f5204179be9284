/* metrics.c - counters of the HTTP server in the Prometheus text format (see metrics.h). */
#include "metrics.h"

#include <string.h>

static const unsigned statuses[MFS_METRICS_STATUSES] = { 200, 400, 404, 405, 413, 414, 429, 500, 503 };
static const double bounds[MFS_METRICS_BUCKETS] = { 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
						    0.002,   0.005,  0.01,    0.025,  0.05,
						    0.1,     0.25,   0.5,     1.0 };
static const char *const names[MFS_EP_N] = { "recommend", "recommend_batch", "similar", "predict",
					     "info",      "healthz",         "metrics", "other" };

const char *mfs_metrics_endpoint(int ep)
{
	return ep >= 0 && ep < MFS_EP_N ? names[ep] : "other";
}

void mfs_metrics_init(struct mfs_metrics *m)
{
	memset(m, 0, sizeof *m);
}

void mfs_metrics_request(struct mfs_metrics *m, int ep, unsigned status, uint64_t ns)
{
	if (ep < 0 || ep >= MFS_EP_N)
		ep = MFS_EP_OTHER;
	int si = MFS_METRICS_STATUSES;
	for (int i = 0; i < MFS_METRICS_STATUSES; i++)
		if (statuses[i] == status)
			si = i;
	atomic_fetch_add_explicit(&m->req[ep][si], 1, memory_order_relaxed);
	int b = 0;
	while (b < MFS_METRICS_BUCKETS && (double)ns * 1e-9 > bounds[b])
		b++;
	atomic_fetch_add_explicit(&m->hist[ep][b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->sum_ns[ep], ns, memory_order_relaxed);
}

static uint64_t get(const atomic_uint_fast64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

int mfs_metrics_format(const struct mfs_metrics *m, const struct mfs_metrics_model *mm,
		       struct mfs_jbuf *o)
{
	mfs_jbuf_puts(o, "# HELP mfstream_http_requests_total HTTP requests answered, by endpoint and status.\n"
			 "# TYPE mfstream_http_requests_total counter\n");
	for (int e = 0; e < MFS_EP_N; e++)
		for (int s = 0; s <= MFS_METRICS_STATUSES; s++) {
			uint64_t v = get(&m->req[e][s]);
			if (!v)
				continue;
			if (s < MFS_METRICS_STATUSES)
				mfs_jbuf_printf(o, "mfstream_http_requests_total{endpoint=\"%s\",status=\"%u\"} %llu\n",
						names[e], statuses[s], (unsigned long long)v);
			else
				mfs_jbuf_printf(o, "mfstream_http_requests_total{endpoint=\"%s\",status=\"other\"} %llu\n",
						names[e], (unsigned long long)v);
		}
	mfs_jbuf_puts(o, "# HELP mfstream_http_request_duration_seconds Time from a request's last byte to its answer queued.\n"
			 "# TYPE mfstream_http_request_duration_seconds histogram\n");
	for (int e = 0; e < MFS_EP_N; e++) {
		uint64_t cum = 0;
		for (int b = 0; b <= MFS_METRICS_BUCKETS; b++)
			cum += get(&m->hist[e][b]);
		if (!cum)
			continue;
		cum = 0;
		for (int b = 0; b < MFS_METRICS_BUCKETS; b++) {
			cum += get(&m->hist[e][b]);
			mfs_jbuf_printf(o, "mfstream_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"%g\"} %llu\n",
					names[e], bounds[b], (unsigned long long)cum);
		}
		cum += get(&m->hist[e][MFS_METRICS_BUCKETS]);
		mfs_jbuf_printf(o, "mfstream_http_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"} %llu\n",
				names[e], (unsigned long long)cum);
		mfs_jbuf_printf(o, "mfstream_http_request_duration_seconds_sum{endpoint=\"%s\"} %.9f\n", names[e],
				(double)get(&m->sum_ns[e]) * 1e-9);
		mfs_jbuf_printf(o, "mfstream_http_request_duration_seconds_count{endpoint=\"%s\"} %llu\n", names[e],
				(unsigned long long)cum);
	}
	mfs_jbuf_printf(o,
			"# HELP mfstream_http_open_connections Connections open now.\n"
			"# TYPE mfstream_http_open_connections gauge\n"
			"mfstream_http_open_connections %llu\n"
			"# HELP mfstream_http_connections_total Connections accepted.\n"
			"# TYPE mfstream_http_connections_total counter\n"
			"mfstream_http_connections_total %llu\n"
			"# HELP mfstream_http_connections_refused_total Connections closed at accept: over the hard limit.\n"
			"# TYPE mfstream_http_connections_refused_total counter\n"
			"mfstream_http_connections_refused_total %llu\n"
			"# HELP mfstream_http_overload_total Requests answered 503 because the connection limit was passed.\n"
			"# TYPE mfstream_http_overload_total counter\n"
			"mfstream_http_overload_total %llu\n",
			(unsigned long long)get(&m->open_conns), (unsigned long long)get(&m->conns_total),
			(unsigned long long)get(&m->conns_refused),
			(unsigned long long)get(&m->conns_overload));
	mfs_jbuf_printf(o,
			"# HELP mfstream_model_loaded 1 when a model is serving.\n"
			"# TYPE mfstream_model_loaded gauge\n"
			"mfstream_model_loaded %d\n"
			"# HELP mfstream_model_refreshes_total Newer models swapped in.\n"
			"# TYPE mfstream_model_refreshes_total counter\n"
			"mfstream_model_refreshes_total %llu\n"
			"# HELP mfstream_model_refresh_failures_total Refreshes that found a newer file and could not load it.\n"
			"# TYPE mfstream_model_refresh_failures_total counter\n"
			"mfstream_model_refresh_failures_total %llu\n"
			"# HELP mfstream_model_load_seconds Time the last model load took (load and index build).\n"
			"# TYPE mfstream_model_load_seconds gauge\n"
			"mfstream_model_load_seconds %.6f\n",
			mm->loaded, (unsigned long long)get(&m->refreshes),
			(unsigned long long)get(&m->refresh_failures), (double)get(&m->load_us) * 1e-6);
	if (mm->loaded)
		mfs_jbuf_printf(o,
				"# HELP mfstream_model_events Events the serving model has learned.\n"
				"# TYPE mfstream_model_events gauge\n"
				"mfstream_model_events %llu\n"
				"# HELP mfstream_model_age_seconds Age of the serving model's file (since its last write).\n"
				"# TYPE mfstream_model_age_seconds gauge\n"
				"mfstream_model_age_seconds %.3f\n"
				"# HELP mfstream_model_retired_pinned Replaced models still pinned by a query.\n"
				"# TYPE mfstream_model_retired_pinned gauge\n"
				"mfstream_model_retired_pinned %llu\n",
				(unsigned long long)mm->events, mm->age_s,
				(unsigned long long)mm->retired_pinned);
	return o->over ? -1 : 0;
}
