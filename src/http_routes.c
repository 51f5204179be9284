/*
 * http_routes.c - one HTTP request, from its first callback to its answer:
 * the route, the query parameters or the batch body, the top-K through the
 * serving views, the JSON answer (bounded by ANSWER_MAX), and its metrics.
 * Runs on libmicrohttpd's pool threads (see http.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "jsonio.h"

/* --- answers ----------------------------------------------------------------- */

/* One request's state, from its first callback to its completion. */
struct req {
	struct timespec t0;
	int ep;
	unsigned status;
	uint64_t ns; /* first callback to answer queued */
	struct mfs_jbuf body;
	int body_over;
	size_t dropped; /* body bytes past the limit, read and dropped */
};

static enum MHD_Result queue(struct mfs_http *h, struct MHD_Connection *c, struct req *r,
			     unsigned status, char *buf, size_t len, const char *ctype, int close)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
					r->ep == MFS_EP_RECOMMEND ? "GET, HEAD, POST" : "GET, HEAD");
	if (close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ok = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	r->status = status;
	r->ns = mfs_http_since_ns(&r->t0);
	(void)h;
	return ok;
}

static enum MHD_Result json_error(struct mfs_http *h, struct MHD_Connection *c, struct req *r,
				  unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static enum MHD_Result json_error(struct mfs_http *h, struct MHD_Connection *c, struct req *r,
				  unsigned status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct mfs_jbuf b;
	mfs_jbuf_init(&b, 4096);
	mfs_jbuf_puts(&b, "{\"error\": ");
	mfs_jbuf_str(&b, msg, strlen(msg));
	mfs_jbuf_printf(&b, ", \"status\": %u}\n", status);
	size_t len;
	char *p = mfs_jbuf_take(&b, &len);
	if (!p)
		return MHD_NO;
	/* an answer before the whole body was read ends the connection */
	int close = status == MHD_HTTP_CONTENT_TOO_LARGE || status == MHD_HTTP_SERVICE_UNAVAILABLE;
	return queue(h, c, r, status, p, len, "application/json", close);
}

/* Queue b (a built answer) as 200, or the error its overflow calls for. */
static enum MHD_Result answer(struct mfs_http *h, struct MHD_Connection *c, struct req *r,
			      struct mfs_jbuf *b, const char *ctype)
{
	if (b->nomem) {
		mfs_jbuf_free(b);
		return json_error(h, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	if (b->over) {
		mfs_jbuf_free(b);
		return json_error(h, c, r, MHD_HTTP_CONTENT_TOO_LARGE,
				  "the answer would pass %u bytes: ask for fewer items", ANSWER_MAX);
	}
	size_t len;
	char *p = mfs_jbuf_take(b, &len);
	if (!p)
		return json_error(h, c, r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	return queue(h, c, r, MHD_HTTP_OK, p, len, ctype, 0);
}

/* The query parameters of a GET. */
#define MAX_EXCL_PARAMS 64
struct params {
	const char *user, *item, *k, *seen_s;
	size_t user_len, item_len, k_len, seen_len;
	int seen; /* include_seen=1 */
	const char *excl[MAX_EXCL_PARAMS];
	size_t excl_len[MAX_EXCL_PARAMS];
	size_t n_excl;
	unsigned allow; /* bits: 1 user, 2 item, 4 k, 8 exclude */
	const char *bad; /* a static reason, or NULL */
	char bad_key[64];
};

static enum MHD_Result param_iter(void *cls, enum MHD_ValueKind kind, const char *key,
				  size_t key_size, const char *value, size_t value_size)
{
	(void)kind;
	struct params *p = cls;
	if (p->bad)
		return MHD_NO;
	if (!value) {
		value = "";
		value_size = 0;
	}
#define KEY(w) (key_size == sizeof(w) - 1 && memcmp(key, w, key_size) == 0)
	const char **slot = NULL;
	size_t *slot_len = NULL;
	unsigned bit = 0;
	if (KEY("user")) {
		slot = &p->user, slot_len = &p->user_len, bit = 1;
	} else if (KEY("item")) {
		slot = &p->item, slot_len = &p->item_len, bit = 2;
	} else if (KEY("k")) {
		slot = &p->k, slot_len = &p->k_len, bit = 4;
	} else if (KEY("include_seen")) {
		slot = &p->seen_s, slot_len = &p->seen_len, bit = 16;
	} else if (KEY("exclude") && (p->allow & 8)) {
		if (p->n_excl == MAX_EXCL_PARAMS) {
			p->bad = "too many exclude parameters";
			return MHD_NO;
		}
		p->excl[p->n_excl] = value;
		p->excl_len[p->n_excl++] = value_size;
		return MHD_YES;
	}
#undef KEY
	if (!slot || !(p->allow & bit)) {
		p->bad = "unknown parameter";
		snprintf(p->bad_key, sizeof p->bad_key, "%.*s", (int)(key_size < 48 ? key_size : 48), key);
		return MHD_NO;
	}
	if (*slot) {
		p->bad = "parameter given twice";
		snprintf(p->bad_key, sizeof p->bad_key, "%.*s", (int)key_size, key);
		return MHD_NO;
	}
	*slot = value;
	*slot_len = value_size;
	return MHD_YES;
}

/* Parse k (absent: 10). Returns 0 or -1. */
static int parse_k(const char *s, size_t len, size_t max, size_t *k)
{
	*k = 10 < max ? 10 : max;
	if (!s)
		return 0;
	size_t v = 0;
	if (len == 0 || len > 9)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (size_t)(s[i] - '0');
	}
	if (v < 1 || v > max)
		return -1;
	*k = v;
	return 0;
}

/* ', "title": "..."' (null when the file has none for id), with titles only. */
static void put_title(struct mfs_jbuf *b, const mfs_titles *t, const char *id, size_t len)
{
	if (!t)
		return;
	const char *title = mfs_titles_get(t, id, len);
	mfs_jbuf_puts(b, ", \"title\": ");
	if (title)
		mfs_jbuf_str(b, title, strlen(title));
	else
		mfs_jbuf_puts(b, "null");
}

static void put_items(struct mfs_jbuf *b, const mfs_titles *t, const mfs_model *m,
		      const mfs_scored *s, size_t n)
{
	mfs_jbuf_puts(b, "[");
	for (size_t i = 0; i < n; i++) {
		const char *id = "";
		size_t len = 0;
		mfs_model_row(m, MFS_ITEMS, s[i].row, &id, &len, NULL);
		mfs_jbuf_puts(b, i ? ", {\"item\": " : "{\"item\": ");
		mfs_jbuf_str(b, id, len);
		mfs_jbuf_printf(b, ", \"score\": %.4f", s[i].score);
		put_title(b, t, id, len);
		mfs_jbuf_puts(b, "}");
	}
	mfs_jbuf_puts(b, "]");
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * One user's top-k without the excluded items, as a JSON object into b.
 * rows/scored are scratch of at least k + n_excl entries. Returns 0 or a
 * negative code.
 */
static int recommend_into(struct mfs_jbuf *b, const mfs_titles *t, const mfs_query *q,
			  const mfs_view *v, const char *user, size_t ul,
			  size_t k, const char *const *ex, const size_t *exl, size_t n_ex,
			  uint32_t *rows, mfs_scored *sc)
{
	const mfs_model *m = mfs_view_model(v);
	size_t nr = 0;
	for (size_t i = 0; i < n_ex; i++) {
		int64_t r = mfs_model_find(m, MFS_ITEMS, ex[i], exl[i]);
		if (r >= 0)
			rows[nr++] = (uint32_t)r;
	}
	qsort(rows, nr, sizeof *rows, cmp_u32);
	int got = mfs_view_recommend_with(v, q, user, ul, k + nr, sc);
	if (got < 0)
		return got;
	size_t n = 0;
	for (int i = 0; i < got && n < k; i++)
		if (!nr || !bsearch(&sc[i].row, rows, nr, sizeof *rows, cmp_u32))
			sc[n++] = sc[i];
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	mfs_jbuf_puts(b, "{\"user\": ");
	mfs_jbuf_str(b, user, ul);
	mfs_jbuf_printf(b, ", \"known\": %s, \"model_events\": %llu, %s\"items\": ",
			mfs_model_find(m, MFS_USERS, user, ul) >= 0 ? "true" : "false",
			(unsigned long long)info.events,
			mfs_model_implicit_get(m, NULL) == 1 ? "\"scores\": \"logit\", " : "");
	put_items(b, t, m, sc, n);
	mfs_jbuf_puts(b, "}");
	return 0;
}

/* Split the exclude parameters at ',' into ids (at most max). Returns the count or -1. */
static long split_excl(const struct params *p, const char **ids, size_t *lens, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n_excl; i++) {
		const char *s = p->excl[i], *e = s + p->excl_len[i];
		while (s < e) {
			const char *c = memchr(s, ',', (size_t)(e - s));
			if (!c)
				c = e;
			if (c > s) {
				if (n == max || c - s > MFS_ID_MAX)
					return -1;
				ids[n] = s;
				lens[n++] = (size_t)(c - s);
			}
			s = c + 1;
		}
	}
	return (long)n;
}

static enum MHD_Result get_recommend(struct mfs_http *h, struct MHD_Connection *c, struct req *r,
				     mfs_server *srv, struct params *p)
{
	size_t k;
	if (!p->user)
		return json_error(h, c, r, 400, "missing parameter: user");
	if (p->user_len == 0 || p->user_len > MFS_ID_MAX)
		return json_error(h, c, r, 400, "user must be 1 to %d bytes", MFS_ID_MAX);
	if (parse_k(p->k, p->k_len, h->cfg.k_max, &k) < 0)
		return json_error(h, c, r, 400, "k must be a whole number from 1 to %zu", h->cfg.k_max);
	size_t cap = h->cfg.k_max;
	const char **ids = malloc(cap * sizeof *ids);
	size_t *lens = malloc(cap * sizeof *lens);
	uint32_t *rows = malloc(cap * sizeof *rows);
	mfs_scored *sc = malloc((k + cap) * sizeof *sc);
	enum MHD_Result ok;
	if (!ids || !lens || !rows || !sc) {
		ok = json_error(h, c, r, 500, "out of memory");
		goto out;
	}
	long nx = split_excl(p, ids, lens, cap);
	if (nx < 0) {
		ok = json_error(h, c, r, 400, "exclude: at most %zu IDs of 1 to %d bytes", cap, MFS_ID_MAX);
		goto out;
	}
	struct mfs_jbuf b;
	mfs_jbuf_init(&b, ANSWER_MAX);
	const mfs_view *v = mfs_server_acquire(srv);
	const mfs_query *q = p->seen ? h->seen_q : h->cfg.rq;
	int rc = recommend_into(&b, h->cfg.titles, q, v, p->user, p->user_len, k, ids, lens,
				(size_t)nx, rows, sc);
	mfs_server_release(srv, v);
	mfs_jbuf_puts(&b, "\n");
	if (rc < 0) {
		mfs_jbuf_free(&b);
		ok = json_error(h, c, r, 500, "%s", mfs_error_name(rc));
	} else {
		ok = answer(h, c, r, &b, "application/json");
	}
out:
	free(ids);
	free(lens);
	free(rows);
	free(sc);
	return ok;
}

static enum MHD_Result get_similar(struct mfs_http *h, struct MHD_Connection *c, struct req *r,
				   mfs_server *srv, struct params *p)
{
	size_t k;
	if (!p->item)
		return json_error(h, c, r, 400, "missing parameter: item");
	if (p->item_len == 0 || p->item_len > MFS_ID_MAX)
		return json_error(h, c, r, 400, "item must be 1 to %d bytes", MFS_ID_MAX);
	if (parse_k(p->k, p->k_len, h->cfg.k_max, &k) < 0)
		return json_error(h, c, r, 400, "k must be a whole number from 1 to %zu", h->cfg.k_max);
	mfs_scored *sc = malloc(k * sizeof *sc);
	if (!sc)
		return json_error(h, c, r, 500, "out of memory");
	struct mfs_jbuf b;
	mfs_jbuf_init(&b, ANSWER_MAX);
	const mfs_view *v = mfs_server_acquire(srv);
	const mfs_model *m = mfs_view_model(v);
	int got = mfs_view_similar_with(v, h->cfg.sq, p->item, p->item_len, k, sc);
	if (got >= 0) {
		mfs_model_info info;
		mfs_model_info_get(m, &info);
		mfs_jbuf_puts(&b, "{\"item\": ");
		mfs_jbuf_str(&b, p->item, p->item_len);
		put_title(&b, h->cfg.titles, p->item, p->item_len);
		mfs_jbuf_printf(&b, ", \"model_events\": %llu, %s\"items\": ",
				(unsigned long long)info.events,
				mfs_model_implicit_get(m, NULL) == 1 ? "\"scores\": \"logit\", " : "");
		put_items(&b, h->cfg.titles, m, sc, (size_t)got);
		mfs_jbuf_puts(&b, "}\n");
	}
	mfs_server_release(srv, v);
	free(sc);
	if (got < 0) {
		mfs_jbuf_free(&b);
		if (got == -MFS_E_NOTFOUND)
			return json_error(h, c, r, 404, "item not in the model");
		if (got == -MFS_E_UNSUPPORTED)
			return json_error(h, c, r, 500, "the serving model keeps no per-item event "
							"counts for the minimum support (serve --min-events 0)");
		return json_error(h, c, r, 500, "%s", mfs_error_name(got));
	}
	return answer(h, c, r, &b, "application/json");
}

static enum MHD_Result get_predict(struct mfs_http *h, struct MHD_Connection *c, struct req *r,
				   mfs_server *srv, struct params *p)
{
	if (!p->user || !p->item)
		return json_error(h, c, r, 400, "missing parameter: %s", p->user ? "item" : "user");
	if (p->user_len == 0 || p->user_len > MFS_ID_MAX || p->item_len == 0 ||
	    p->item_len > MFS_ID_MAX)
		return json_error(h, c, r, 400, "user and item must be 1 to %d bytes", MFS_ID_MAX);
	struct mfs_jbuf b;
	mfs_jbuf_init(&b, ANSWER_MAX);
	const mfs_view *v = mfs_server_acquire(srv);
	const mfs_model *m = mfs_view_model(v);
	float s = 0.0f;
	int known = mfs_model_predict(m, p->user, p->user_len, p->item, p->item_len, &s);
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	mfs_server_release(srv, v);
	mfs_jbuf_puts(&b, "{\"user\": ");
	mfs_jbuf_str(&b, p->user, p->user_len);
	mfs_jbuf_puts(&b, ", \"item\": ");
	mfs_jbuf_str(&b, p->item, p->item_len);
	put_title(&b, h->cfg.titles, p->item, p->item_len);
	if (mfs_model_implicit_get(m, NULL) == 1)
		mfs_jbuf_puts(&b, ", \"scores\": \"logit\"");
	mfs_jbuf_printf(&b, ", \"score\": %.4f, \"known_user\": %s, \"known_item\": %s, "
			    "\"model_events\": %llu}\n",
			s, known >= 0 && (known & MFS_KNOWN_USER) ? "true" : "false",
			known >= 0 && (known & MFS_KNOWN_ITEM) ? "true" : "false",
			(unsigned long long)info.events);
	return answer(h, c, r, &b, "application/json");
}

static enum MHD_Result get_info(struct mfs_http *h, struct MHD_Connection *c, struct req *r,
				mfs_server *srv)
{
	struct mfs_jbuf b;
	mfs_jbuf_init(&b, ANSWER_MAX);
	const mfs_view *v = mfs_server_acquire(srv);
	mfs_model_info info;
	mfs_model_info_get(mfs_view_model(v), &info);
	mfs_server_release(srv, v);
	mfs_server_info si;
	mfs_server_info_get(srv, &si);
	mfs_jbuf_printf(&b,
			"{\"model_events\": %llu, \"users\": %llu, \"items\": %llu, \"dim\": %u, "
			"\"kernel\": \"%s\", \"refreshes\": %llu, \"path\": ",
			(unsigned long long)info.events, (unsigned long long)info.users,
			(unsigned long long)info.items, info.dim, info.kernel,
			(unsigned long long)si.refreshes);
	mfs_jbuf_str(&b, si.path, strlen(si.path));
	uint64_t wns, lns;
	if (mfs_server_lag(srv, &wns, &lns)) /* a Kafka model topic: the learner's write to the swap */
		mfs_jbuf_printf(&b, ", \"lag_ms\": %.1f", (double)lns / 1e6);
	mfs_jbuf_puts(&b, "}\n");
	return answer(h, c, r, &b, "application/json");
}

static double model_age_s(const struct mfs_http *h)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t ms = atomic_load(&h->mx.model_mtime_ms);
	return ((double)now.tv_sec * 1e3 + (double)now.tv_nsec / 1e6 - (double)ms) / 1e3;
}

static enum MHD_Result get_metrics(struct mfs_http *h, struct MHD_Connection *c, struct req *r,
				   mfs_server *srv)
{
	struct mfs_metrics_model mm = { 0 };
	if (srv) {
		mfs_server_info si;
		mfs_server_info_get(srv, &si);
		mm.loaded = 1;
		mm.events = si.events;
		mm.retired_pinned = si.retired_pinned;
		mm.age_s = model_age_s(h);
	}
	struct mfs_jbuf b;
	mfs_jbuf_init(&b, 1u << 20);
	mfs_metrics_format(&h->mx, &mm, &b);
	return answer(h, c, r, &b, "text/plain; version=0.0.4; charset=utf-8");
}

static enum MHD_Result post_recommend(struct mfs_http *h, struct MHD_Connection *c, struct req *r,
				      mfs_server *srv)
{
	struct mfs_batch_limits lim = { 10 < h->cfg.k_max ? 10 : h->cfg.k_max, h->cfg.k_max,
					h->cfg.batch_max, 10 * h->cfg.batch_max,
					10 * h->cfg.batch_max, MFS_ID_MAX };
	struct mfs_batch bt;
	const char *why = NULL;
	if (mfs_batch_parse(r->body.p ? r->body.p : "", r->body.len, &lim, &bt, &why) < 0) {
		mfs_batch_free(&bt);
		return json_error(h, c, r, 400, "body: %s", why);
	}
	size_t kmax = 0, xmax = 0;
	for (size_t i = 0; i < bt.n; i++) {
		kmax = bt.q[i].k > kmax ? bt.q[i].k : kmax;
		xmax = bt.q[i].n_excl > xmax ? bt.q[i].n_excl : xmax;
	}
	uint32_t *rows = malloc((xmax ? xmax : 1) * sizeof *rows);
	mfs_scored *sc = malloc((kmax + xmax + 1) * sizeof *sc);
	if (!rows || !sc) {
		free(rows);
		free(sc);
		mfs_batch_free(&bt);
		return json_error(h, c, r, 500, "out of memory");
	}
	struct mfs_jbuf b;
	mfs_jbuf_init(&b, ANSWER_MAX);
	const mfs_view *v = mfs_server_acquire(srv);
	mfs_model_info info;
	mfs_model_info_get(mfs_view_model(v), &info);
	mfs_jbuf_printf(&b, "{\"model_events\": %llu, \"results\": [", (unsigned long long)info.events);
	int rc = 0;
	for (size_t i = 0; i < bt.n && rc == 0 && !b.over; i++) {
		if (i)
			mfs_jbuf_puts(&b, ", ");
		const struct mfs_batch_query *q = &bt.q[i];
		rc = recommend_into(&b, h->cfg.titles, h->cfg.rq, v, q->user, q->user_len, q->k,
				    q->excl, q->excl_len, q->n_excl, rows, sc);
	}
	mfs_server_release(srv, v);
	mfs_jbuf_puts(&b, "]}\n");
	free(rows);
	free(sc);
	mfs_batch_free(&bt);
	if (rc < 0) {
		mfs_jbuf_free(&b);
		return json_error(h, c, r, 500, "%s", mfs_error_name(rc));
	}
	return answer(h, c, r, &b, "application/json");
}

static int route(const char *url)
{
	static const struct {
		const char *path;
		int ep;
	} routes[] = {
		{ "/v1/recommend", MFS_EP_RECOMMEND }, { "/v1/similar", MFS_EP_SIMILAR },
		{ "/v1/predict", MFS_EP_PREDICT },     { "/v1/info", MFS_EP_INFO },
		{ "/healthz", MFS_EP_HEALTHZ },        { "/metrics", MFS_EP_METRICS },
	};
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (strcmp(url, routes[i].path) == 0)
			return routes[i].ep;
	return MFS_EP_OTHER;
}

enum MHD_Result mfs_http_handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **req_cls)
{
	(void)version;
	struct mfs_http *h = cls;
	struct req *r = *req_cls;
	int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	int post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	/*
	 * The first call comes with the headers. libmicrohttpd closes a
	 * connection whose answer is queued then (before the body), so only the
	 * answers that should end the connection are given there: overload, a
	 * body announced too large, a body sent where none is read. Everything
	 * else is answered in the last call, and the connection is kept.
	 */
	if (!r) {
		if (!(r = calloc(1, sizeof *r)))
			return MHD_NO;
		*req_cls = r;
		clock_gettime(CLOCK_MONOTONIC, &r->t0);
		r->ep = route(url);
		if (post && r->ep == MFS_EP_RECOMMEND)
			r->ep = MFS_EP_RECOMMEND_BATCH;
		mfs_jbuf_init(&r->body, h->cfg.max_body);
		if (atomic_load(&h->mx.open_conns) > h->cfg.max_conns) {
			atomic_fetch_add(&h->mx.conns_overload, 1);
			return json_error(h, c, r, 503, "server overloaded: too many connections, retry later");
		}
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_TRANSFER_ENCODING);
		int has_body = (cl && strtoull(cl, NULL, 10) > 0) || te;
		if (r->ep == MFS_EP_RECOMMEND_BATCH && cl && strtoull(cl, NULL, 10) > h->cfg.max_body)
			return json_error(h, c, r, 413, "body larger than %zu bytes", h->cfg.max_body);
		if (has_body && r->ep != MFS_EP_RECOMMEND_BATCH) {
			if (r->ep == MFS_EP_OTHER)
				return json_error(h, c, r, 404, "no such route");
			if (!get)
				return json_error(h, c, r, 405, "method %s is not allowed here", method);
			return json_error(h, c, r, 413, "this request takes no body");
		}
		return MHD_YES;
	}
	if (*upload_size) {
		/* libmicrohttpd cannot answer in the middle of a body: past the
		 * limit the rest is read and dropped, up to as much again (then
		 * 413), and a body larger still ends the connection unanswered */
		if (!r->body_over && mfs_jbuf_put(&r->body, upload, *upload_size) < 0)
			r->body_over = 1;
		if (r->body_over && (r->dropped += *upload_size) > h->cfg.max_body)
			return MHD_NO;
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->status) /* answered already */
		return MHD_YES;
	if (r->body_over)
		return json_error(h, c, r, 413, "body larger than %zu bytes", h->cfg.max_body);
	if (r->ep == MFS_EP_OTHER)
		return json_error(h, c, r, 404, "no such route (GET /v1/recommend, POST "
					       "/v1/recommend, /v1/similar, /v1/predict, "
					       "/v1/info, /healthz, /metrics)");
	if (!get && r->ep != MFS_EP_RECOMMEND_BATCH)
		return json_error(h, c, r, 405, "method %s is not allowed here", method);
	mfs_server *srv = atomic_load(&h->srv);
	if (r->ep == MFS_EP_METRICS)
		return get_metrics(h, c, r, srv);
	if (!srv)
		return json_error(h, c, r, 503, "no model loaded yet");
	if (r->ep == MFS_EP_HEALTHZ) {
		mfs_server_info si;
		mfs_server_info_get(srv, &si);
		struct mfs_jbuf b;
		mfs_jbuf_init(&b, 4096);
		mfs_jbuf_printf(&b, "{\"status\": \"ok\", \"model_events\": %llu}\n",
				(unsigned long long)si.events);
		return answer(h, c, r, &b, "application/json");
	}
	if (r->ep == MFS_EP_INFO)
		return get_info(h, c, r, srv);
	if (r->ep == MFS_EP_RECOMMEND_BATCH)
		return post_recommend(h, c, r, srv);
	struct params p;
	memset(&p, 0, sizeof p);
	p.allow = r->ep == MFS_EP_RECOMMEND ? 1 | 4 | 8 | 16 : r->ep == MFS_EP_SIMILAR ? 2 | 4 : 1 | 2;
	MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, param_iter, &p);
	if (p.bad)
		return json_error(h, c, r, 400, "%s: %s", p.bad, p.bad_key[0] ? p.bad_key : "exclude");
	if (p.seen_s) {
		if (p.seen_len == 1 && (p.seen_s[0] == '0' || p.seen_s[0] == '1'))
			p.seen = p.seen_s[0] == '1';
		else
			return json_error(h, c, r, 400, "include_seen must be 0 or 1");
	}
	if (r->ep == MFS_EP_RECOMMEND)
		return get_recommend(h, c, r, srv, &p);
	if (r->ep == MFS_EP_SIMILAR)
		return get_similar(h, c, r, srv, &p);
	if (r->ep == MFS_EP_PREDICT)
		return get_predict(h, c, r, srv, &p);
	return json_error(h, c, r, 404, "no such route");
}

void mfs_http_completed(void *cls, struct MHD_Connection *c, void **req_cls,
		      enum MHD_RequestTerminationCode toe)
{
	(void)c;
	(void)toe;
	struct mfs_http *h = cls;
	struct req *r = *req_cls;
	if (!r)
		return;
	if (r->status) {
		mfs_metrics_request(&h->mx, r->ep, r->status, r->ns);
		atomic_fetch_add(&h->answered, 1);
	}
	mfs_jbuf_free(&r->body);
	free(r);
	*req_cls = NULL;
}

