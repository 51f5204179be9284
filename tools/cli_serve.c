/*
 * cli_serve.c - "serve": the HTTP/JSON API (the library's mfs_http, on TCP
 * and/or a Unix socket) and query lines on standard input, answered from the
 * newest model, swapping in newer checkpoints as they appear.
 *
 * Threads: the library's HTTP pool; one thread answering standard input;
 * one that waits for the model path to change (inotify, with a poll as the
 * fallback) and refreshes the server (or opens it, when it started without
 * a model); the main thread waits for SIGINT/SIGTERM or for standard input
 * to end.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_lines.h"
#include "cli_titles.h"

static const char serve_help[] =
	"Usage: mfstream serve --model PATH [--listen [HOST:]PORT] [--socket PATH] [options]\n"
	"\n"
	"Serve recommendations from the newest model over HTTP/JSON and on standard\n"
	"input. PATH is a model file or a checkpoint directory. When a newer checkpoint\n"
	"appears (inotify; a poll every --poll-ms as well) it is read into memory beside\n"
	"the serving model and swapped in between two queries; a damaged or truncated\n"
	"file is reported and the current model keeps serving. Models are copied, not\n"
	"mapped: rewriting or truncating the served file in place cannot crash it.\n"
	"Each refresh prints a JSON line on stderr ({\"refresh\", \"model_events\",\n"
	"\"path\", \"load_ms\", \"lag_ms\": from the file's last write to the swap}).\n"
	"\n"
	"HTTP (with --listen and/or --socket; the same API on both):\n"
	"  GET  /v1/recommend?user=ID[&k=N][&exclude=ID,ID...][&include_seen=1]\n"
	"  POST /v1/recommend   {\"k\": N, \"requests\": [{\"user\": ID, \"k\": N, \"exclude\": [ID...]}, ID...]}\n"
	"  GET  /v1/similar?item=ID[&k=N]    GET /v1/predict?user=ID&item=ID\n"
	"  GET  /v1/info    GET /healthz (503 until a model is loaded)    GET /metrics (Prometheus)\n"
	"Parameters are percent-decoded; answers are UTF-8 JSON; errors are JSON with\n"
	"400 (bad parameter), 404 (route, unknown item), 405, 413 (too large), 503\n"
	"(no model yet, or over --max-connections).\n"
	"\n"
	"recommend leaves out the items in the user's history (see recommend --help;\n"
	"include_seen=1 or --include-seen keeps them); similar ranks the items with at\n"
	"least --min-events learned events.\n"
	"\n"
	"Standard input (unless --no-stdin): one query per line, one JSON line each:\n"
	"  recommend USER [K] | similar ITEM [K] | predict USER ITEM | info\n"
	"Fields are separated by a TAB if the line has one, else by spaces. Lines are\n"
	"limited to 1 MiB (a longer one gets an error and is skipped).\n"
	"\n"
	"  --model PATH          a model file or a checkpoint directory (newest valid)\n"
	"  --kafka BROKERS       instead of --model: models from a model topic that\n"
	"  --model-topic TOPIC   `train --publish BROKERS/TOPIC` writes: boot from its newest\n"
	"                        whole snapshot (waiting up to 30 s for one), then apply the\n"
	"                        deltas as they arrive (each --poll-ms, default 50 here). A\n"
	"                        damaged or missing chunk, or a gap in the deltas, is said and\n"
	"                        the last whole model keeps serving until the next snapshot.\n"
	"                        Refresh lines and info carry lag_ms: the learner's write to\n"
	"                        the swap (also --model kafka://BROKERS/TOPIC)\n"
	"  --listen [HOST:]PORT  HTTP on TCP; a bare PORT is loopback (127.0.0.1); HOST is\n"
	"                        a numeric address (0.0.0.0 or [::] for all); PORT 0 picks\n"
	"                        a free one (printed on stderr). A port in use is an error\n"
	"  --socket PATH         HTTP on a Unix stream socket; PATH.lock (flock, with the\n"
	"                        pid) refuses a second server on the same path\n"
	"  --socket-mode MODE    the socket's permissions, octal (default 0600, whatever\n"
	"                        the umask)\n"
	"  --threads N           HTTP event-loop threads (default 2)\n"
	"  --max-connections N   connections served (default 1000); beyond it requests get\n"
	"                        503 and the connection is closed; beyond N + N/8 (at least\n"
	"                        16 more) connections are closed at accept\n"
	"  --idle-timeout S      drop a connection idle (or not reading) for S s (default 10)\n"
	"  --max-body SIZE       largest POST body (default 1M)\n"
	"  --max-k N             largest k (default 1000; a batch holds at most 1000\n"
	"                        requests and 10000 items in all)\n"
	"  --max-per-ip N        connections from one address (default 0: no limit)\n"
	"  --item-meta FILE      item titles returned beside the IDs (\"title\", null when\n"
	"                        FILE has none): MovieLens u.item, movies.csv or ID<TAB>title\n"
	"                        (also --titles; see recommend --help)\n"
	"  --include-seen        recommend: keep the items in the user's history\n"
	"  --min-events N        similar: leave out items that learned fewer than N events\n"
	"                        (default " CLI_STR(CLI_MIN_EVENTS) "; 0: none)\n"
	"  --poll-ms N           look for a newer model at least this often (default 1000)\n"
	"  --refresh-nice N|idle the nice of the thread that loads new models, 0-19 (default\n"
	"                        19: loads take the CPU the queries leave; never below the\n"
	"                        process's own nice), or idle: SCHED_IDLE, preempted at once\n"
	"                        by a query thread that wakes (but starved while they are\n"
	"                        busy, as by any other work of the machine)\n"
	"  --no-stdin            do not read standard input\n"
	"  --kernel K            auto|scalar|avx2|avx512|neon\n"
	"\n"
	"Without --listen or --socket it runs until standard input ends; otherwise until\n"
	"SIGINT/SIGTERM. Then it prints {\"answers\", \"http_requests\", \"refreshes\",\n"
	"\"model_events\"} and the latency of the recommend lines ({\"queries\", \"p50_us\",\n"
	"...}) on stderr, and exits 0. When listening, it starts without a model (healthz\n"
	"503) if PATH has none yet, and loads the first one that appears.\n";

struct serve {
	_Atomic(mfs_server *) srv; /* NULL until a model loads (listening without one) */
	mfs_http *http;            /* NULL without --listen / --socket */
	const char *model, *kernel;
	int poll_ms;
	int refresh_nice; /* the refresh thread's nice (if above the process's); -1 SCHED_IDLE */
	pthread_mutex_t mu; /* guards lat and queries */
	struct cli_latency lat;
	uint64_t queries;
	atomic_int stop;
	int wake[2];        /* a pipe: the refresher wakes on stop */
	char last_err[1024]; /* the last reason a late open failed (reported once) */
	mfs_query *rq, *sq;  /* the settings of recommend and similar queries */
};

/* --item-meta: titles beside the IDs (NULL: none). */
static mfs_titles *item_meta;

static void put_items(FILE *out, const mfs_model *m, const mfs_scored *r, int n)
{
	if (mfs_model_implicit_get(m, NULL) == 1)
		fputs(", \"scores\": \"logit\"", out); /* implicit feedback: logits, not ratings */
	fputs(", \"items\": [", out);
	for (int i = 0; i < n; i++) {
		const char *id = "";
		size_t len = 0;
		mfs_model_row(m, MFS_ITEMS, r[i].row, &id, &len, NULL);
		fputs(i ? ", {\"item\": " : "{\"item\": ", out);
		cli_json_string(out, id, len);
		fprintf(out, ", \"score\": %.4f", r[i].score);
		if (item_meta) {
			const char *t = mfs_titles_get(item_meta, id, len);
			fputs(", \"title\": ", out);
			if (t)
				cli_json_string(out, t, strlen(t));
			else
				fputs("null", out);
		}
		fputc('}', out);
	}
	fputc(']', out);
}

static void answer_error(FILE *out, uint64_t ln, const char *msg)
{
	fprintf(out, "{\"error\": ");
	cli_json_string(out, msg, strlen(msg));
	fprintf(out, ", \"line\": %llu}\n", (unsigned long long)ln);
}

/* Answer one query line on out. */
static void answer(struct serve *S, char *line, uint64_t ln, FILE *out, mfs_scored *buf)
{
	struct cli_query q;
	int op = cli_query_parse(line, &q);
	if (op == CLI_Q_BLANK)
		return;
	if (op == CLI_Q_ERROR) {
		answer_error(out, ln, q.error);
		goto done;
	}
	mfs_server *srv = atomic_load(&S->srv);
	if (!srv) {
		answer_error(out, ln, "no model loaded yet");
		goto done;
	}
	double t0 = cli_now();
	const mfs_view *v = mfs_server_acquire(srv);
	const mfs_model *m = mfs_view_model(v);
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	if (op == CLI_Q_RECOMMEND) {
		int got = mfs_view_recommend_with(v, S->rq, q.a, q.al, q.k, buf);
		double us = (cli_now() - t0) * 1e6;
		fputs("{\"op\": \"recommend\", \"user\": ", out);
		cli_json_string(out, q.a, q.al);
		fprintf(out, ", \"known\": %s, \"model_events\": %llu",
			mfs_model_find(m, MFS_USERS, q.a, q.al) >= 0 ? "true" : "false",
			(unsigned long long)info.events);
		put_items(out, m, buf, got < 0 ? 0 : got);
		fputs("}\n", out);
		pthread_mutex_lock(&S->mu);
		cli_latency_add(&S->lat, us);
		pthread_mutex_unlock(&S->mu);
	} else if (op == CLI_Q_SIMILAR) {
		int got = mfs_view_similar_with(v, S->sq, q.a, q.al, q.k, buf);
		fputs("{\"op\": \"similar\", \"item\": ", out);
		cli_json_string(out, q.a, q.al);
		fprintf(out, ", \"model_events\": %llu", (unsigned long long)info.events);
		if (got == -MFS_E_NOTFOUND)
			fputs(", \"error\": \"item not in the model\"", out);
		else if (got == -MFS_E_UNSUPPORTED)
			fputs(", \"error\": \"the model keeps no per-item event counts "
			      "(--min-events)\"", out);
		else
			put_items(out, m, buf, got < 0 ? 0 : got);
		fputs("}\n", out);
	} else if (op == CLI_Q_PREDICT) {
		float p = 0.0f;
		int known = mfs_model_predict(m, q.a, q.al, q.b, q.bl, &p);
		fputs("{\"op\": \"predict\", \"user\": ", out);
		cli_json_string(out, q.a, q.al);
		fputs(", \"item\": ", out);
		cli_json_string(out, q.b, q.bl);
		if (mfs_model_implicit_get(m, NULL) == 1)
			fputs(", \"scores\": \"logit\"", out);
		fprintf(out,
			", \"score\": %.4f, \"known_user\": %s, \"known_item\": %s, "
			"\"model_events\": %llu}\n",
			p, known >= 0 && (known & MFS_KNOWN_USER) ? "true" : "false",
			known >= 0 && (known & MFS_KNOWN_ITEM) ? "true" : "false",
			(unsigned long long)info.events);
	} else { /* CLI_Q_INFO */
		mfs_server_info si;
		mfs_server_info_get(srv, &si);
		fprintf(out,
			"{\"op\": \"info\", \"model_events\": %llu, \"users\": %llu, \"items\": %llu, "
			"\"dim\": %u, \"kernel\": \"%s\", \"refreshes\": %llu, \"path\": ",
			(unsigned long long)info.events, (unsigned long long)info.users,
			(unsigned long long)info.items, info.dim, info.kernel,
			(unsigned long long)si.refreshes);
		cli_json_string(out, si.path, strlen(si.path));
		uint64_t wns, lns;
		if (mfs_server_lag(srv, &wns, &lns))
			fprintf(out, ", \"lag_ms\": %.1f", (double)lns / 1e6);
		fputs("}\n", out);
	}
	mfs_server_release(srv, v);
done:
	fflush(out);
	pthread_mutex_lock(&S->mu);
	S->queries++;
	pthread_mutex_unlock(&S->mu);
}

/* Answer every line of in on out until in ends or the server stops; lines
 * are bounded (CLI_LINE_MAX): a longer one is answered with an error. */
static void answer_stream(struct serve *S, FILE *in, FILE *out)
{
	mfs_scored *buf = malloc(CLI_Q_K_MAX * sizeof *buf);
	if (!buf) {
		cli_error("serve: out of memory");
		return;
	}
	char *line = NULL;
	size_t cap = 0;
	uint64_t ln = 0;
	ssize_t n;
	while (!S->stop && (n = cli_read_line(in, &line, &cap, CLI_LINE_MAX)) != CLI_LINE_END) {
		ln++;
		if (n == CLI_LINE_NOMEM) {
			answer_error(out, ln, "out of memory");
			break;
		}
		if (n == CLI_LINE_TOO_LONG) {
			answer_error(out, ln, "line longer than 1 MiB; skipped");
			fflush(out);
		} else {
			answer(S, line, ln, out, buf);
		}
		if (ferror(out))
			break; /* the reader went away */
	}
	free(line);
	free(buf);
}

static double file_age_ms(const char *path)
{
	struct stat st;
	struct timespec now;
	if (stat(path, &st) < 0 || clock_gettime(CLOCK_REALTIME, &now) < 0)
		return -1.0;
	return (double)(now.tv_sec - st.st_mtim.tv_sec) * 1e3 +
	       (double)(now.tv_nsec - st.st_mtim.tv_nsec) / 1e6;
}

static void print_refresh(mfs_server *srv, double t0)
{
	mfs_server_info si;
	mfs_server_info_get(srv, &si);
	fprintf(stderr, "{\"refresh\": %llu, \"model_events\": %llu, \"path\": ",
		(unsigned long long)si.refreshes, (unsigned long long)si.events);
	cli_json_string(stderr, si.path, strlen(si.path));
	/* the lag: from the learner's write (Kafka: the time in the chunks; a file:
	 * its mtime) to now, when the model serves */
	uint64_t wns, lns;
	int kafka = mfs_server_lag(srv, &wns, &lns);
	fprintf(stderr, ", \"load_ms\": %.1f, \"lag_ms\": %.1f}\n", (cli_now() - t0) * 1e3,
		kafka ? (double)lns / 1e6 : file_age_ms(si.path));
}

static void refresh_now(struct serve *S)
{
	mfs_diag d;
	double t0 = cli_now();
	mfs_server *srv = atomic_load(&S->srv);
	int rc = S->http ? mfs_http_refresh(S->http, &d) : mfs_server_refresh(srv, &d);
	if (rc < 0 && rc != -MFS_E_NOTFOUND) {
		mfs_server_info si;
		mfs_server_info_get(srv, &si);
		cli_diag(&d);
		cli_error("serve: the model of %llu events keeps serving",
			  (unsigned long long)si.events);
	} else if (rc == 1) {
		print_refresh(srv, t0);
	}
}

/* Listening without a model: try to open one (quietly while there is none). */
static void open_late(struct serve *S)
{
	mfs_server *srv;
	mfs_diag d;
	double t0 = cli_now();
	int rc = mfs_server_open(&srv, S->model, S->kernel, cli_warn_skip, NULL, &d);
	if (rc < 0) {
		char msg[1024];
		mfs_diag_format(&d, msg, sizeof msg);
		if (rc != -MFS_E_NOTFOUND && strcmp(msg, S->last_err) != 0)
			cli_diag(&d); /* once per reason, not at every poll */
		snprintf(S->last_err, sizeof S->last_err, "%s", msg);
		return;
	}
	atomic_store(&S->srv, srv);
	mfs_http_attach(S->http, srv);
	print_refresh(srv, t0);
}

static void *refresh_main(void *arg)
{
	struct serve *S = arg;
	/* A refresh reads and indexes a whole model (a few hundred ms of CPU at
	 * 100k items): at nice 19 (on Linux a thread's nice is its own) it takes
	 * what the query threads leave, instead of a core they are waiting for. */
	errno = 0;
	int nice_now = getpriority(PRIO_PROCESS, 0); /* 0: this thread */
	if (S->refresh_nice < 0) {
		struct sched_param sp = { 0 };
		pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	} else if (errno == 0 && S->refresh_nice > nice_now) {
		setpriority(PRIO_PROCESS, (id_t)gettid(), S->refresh_nice);
	}
	struct stat st;
	int dir = stat(S->model, &st) == 0 && S_ISDIR(st.st_mode);
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (in >= 0) {
		/* a file is replaced by rename: watch its directory */
		char parent[PATH_MAX];
		snprintf(parent, sizeof parent, "%s", S->model);
		if (!dir) {
			char *sl = strrchr(parent, '/');
			if (!sl)
				strcpy(parent, ".");
			else if (sl == parent)
				parent[1] = 0;
			else
				*sl = 0;
		}
		if (inotify_add_watch(in, parent, IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE) < 0) {
			close(in);
			in = -1;
		}
	}
	while (!S->stop) {
		struct pollfd p[2] = { { S->wake[0], POLLIN, 0 }, { in, POLLIN, 0 } };
		int r = poll(p, in >= 0 ? 2 : 1, S->poll_ms);
		if (S->stop)
			break;
		if (r > 0 && in >= 0 && (p[1].revents & POLLIN)) {
			char ev[4096];
			while (read(in, ev, sizeof ev) > 0)
				;
		}
		if (atomic_load(&S->srv))
			refresh_now(S);
		else
			open_late(S);
	}
	if (in >= 0)
		close(in);
	return NULL;
}

struct stdin_arg {
	struct serve *S;
	atomic_int done;
};

static void *stdin_main(void *arg)
{
	struct stdin_arg *a = arg;
	answer_stream(a->S, stdin, stdout);
	atomic_store(&a->done, 1);
	kill(getpid(), SIGUSR1); /* wake the main thread */
	return NULL;
}

/* Octal permission bits. */
static int parse_mode(const char *s, unsigned *mode)
{
	char *e;
	errno = 0;
	unsigned long v = strtoul(s, &e, 8);
	if (!*s || *e || errno || v > 0777)
		return -1;
	*mode = (unsigned)v;
	return 0;
}

/* Room for the connections: raise the soft file limit to the hard one. */
static void raise_nofile(uint64_t conns)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < conns + conns / 8 + 64)
		cli_error("serve: note: the file limit (%llu) is below --max-connections and its "
			  "margin; connections past it are refused at accept",
			  (unsigned long long)rl.rlim_cur);
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, 0, 'm' },	      { "socket", required_argument, 0, 's' },
		{ "poll-ms", required_argument, 0, 'p' },     { "no-stdin", no_argument, 0, 'n' },
		{ "kernel", required_argument, 0, 'K' },      { "help", no_argument, 0, 'h' },
		{ "listen", required_argument, 0, 'l' },      { "socket-mode", required_argument, 0, 'M' },
		{ "threads", required_argument, 0, 'T' },     { "max-connections", required_argument, 0, 'C' },
		{ "idle-timeout", required_argument, 0, 'I' }, { "max-body", required_argument, 0, 'B' },
		{ "max-k", required_argument, 0, 'k' },       { "max-per-ip", required_argument, 0, 'P' },
		{ "item-meta", required_argument, 0, 't' },   { "titles", required_argument, 0, 't' },
		{ "include-seen", no_argument, 0, 'Z' },      { "min-events", required_argument, 0, 'E' },
		{ "refresh-nice", required_argument, 0, 'N' },
		{ "kafka", required_argument, 0, 'A' },	      { "model-topic", required_argument, 0, 'O' },
		{ 0, 0, 0, 0 },
	};
	const char *model = NULL, *sock = NULL, *kernel = NULL, *listen = NULL, *meta = NULL;
	uint64_t poll_ms = 1000, threads = 2, conns = 1000, idle = 10, body = 1u << 20, kmax = 1000,
		 per_ip = 0;
	uint64_t min_events = CLI_MIN_EVENTS, refresh_nice = 19;
	unsigned mode = 0600;
	int no_stdin = 0, c, include_seen = 0, min_events_set = 0, poll_set = 0;
	const char *kafka = NULL, *model_topic = NULL;
	static char kafka_url[8192];
	optind = 1;
	opterr = 0;
	const struct cli_option table[] = {
		CLI_OPT_STR('m', &model),
		CLI_OPT_STR('s', &sock),
		CLI_OPT_STR('l', &listen),
		CLI_OPT_STR('t', &meta),
		CLI_OPT_STR('A', &kafka),
		CLI_OPT_STR('O', &model_topic),
		CLI_OPT_STR('K', &kernel),
		CLI_OPT_FLAG('Z', &include_seen, 1),
		CLI_OPT_FLAG('n', &no_stdin, 1),
		CLI_OPT_NUM('T', CLI_U64, &threads, 1, 64),
		CLI_OPT_NUM('C', CLI_U64, &conns, 1, 1000000),
		CLI_OPT_NUM('I', CLI_U64, &idle, 1, 86400),
		CLI_OPT_NUM('B', CLI_SIZE, &body, 0, 0),
		CLI_OPT_NUM('k', CLI_U64, &kmax, 1, 100000),
		CLI_OPT_NUM('P', CLI_U64, &per_ip, 0, 1000000),
	};
	while ((c = cli_getopt_table("serve", argc, argv, ":hm:", opts, table,
				     sizeof table / sizeof *table)) != -1) {
		switch (c) {
		case 'h':
			fputs(serve_help, stdout);
			return 0;
		case 'N':
			if (strcmp(optarg, "idle") == 0) {
				refresh_nice = UINT64_MAX;
			} else {
				char *e;
				errno = 0;
				refresh_nice = strtoull(optarg, &e, 10);
				if (!*optarg || *e || errno || refresh_nice > 19 || *optarg == '-')
					return cli_usage("serve", "--refresh-nice: \"%s\" is not 0-19 or idle",
							 optarg);
			}
			break;
		case 'E':
			if (cli_u64("serve", "--min-events", optarg, 0, UINT32_MAX, &min_events) < 0)
				return EXIT_USAGE;
			min_events_set = 1;
			break;
		case 'M':
			if (parse_mode(optarg, &mode) < 0)
				return cli_usage("serve", "--socket-mode: \"%s\" is not an octal mode (0000-0777)",
						 optarg);
			break;
		case 'p':
			if (cli_u64("serve", "--poll-ms", optarg, 10, 3600000, &poll_ms) < 0)
				return EXIT_USAGE;
			poll_set = 1;
			break;
		case CLI_OPT_ERR:
			return EXIT_USAGE;
		default:
			return cli_usage("serve", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (body < 64 || body > (256u << 20))
		return cli_usage("serve", "--max-body must be from 64 bytes to 256M");
	if (optind < argc)
		return cli_usage("serve", "unexpected argument \"%s\"", argv[optind]);
	if (kafka || model_topic) {
		if (model)
			return cli_usage("serve", "--model and --kafka: one source of models");
		if (!kafka || !model_topic)
			return cli_usage("serve", "%s", kafka ? "--kafka needs --model-topic TOPIC"
							      : "--model-topic needs --kafka BROKERS");
		if (strchr(model_topic, '/') || snprintf(kafka_url, sizeof kafka_url, "kafka://%s/%s",
							 kafka, model_topic) >= (int)sizeof kafka_url)
			return cli_usage("serve", "--model-topic: \"%s\" is not a topic name", model_topic);
		model = kafka_url;
		if (!poll_set)
			poll_ms = 50; /* a refresh only takes what has arrived: cheap when idle */
	}
	if (!model)
		return cli_usage("serve", "--model PATH (or --kafka BROKERS --model-topic TOPIC) is "
				 "required");
	if (no_stdin && !sock && !listen)
		return cli_usage("serve", "--no-stdin needs --listen or --socket");

	if (meta && cli_titles_load(meta, &item_meta) != 0)
		return EXIT_RUNTIME;
	mfs_http_config *hc = NULL;
	if (listen || sock) {
		if (mfs_http_config_create(&hc) < 0) {
			cli_error("serve: out of memory");
			return EXIT_RUNTIME;
		}
		if (listen && mfs_http_config_listen(hc, listen) < 0) {
			mfs_http_config_free(hc);
			return cli_usage("serve", "--listen: \"%s\" is not [HOST:]PORT (HOST numeric, "
					 "[V6] in brackets)", listen);
		}
		if (sock && mfs_http_config_socket(hc, sock) < 0) {
			mfs_http_config_free(hc);
			return cli_usage("serve", "--socket: \"%s\" is empty or longer than 95 bytes", sock);
		}
		mfs_http_config_set(hc, MFS_HTTP_THREADS, (int64_t)threads);
		mfs_http_config_set(hc, MFS_HTTP_MAX_CONNECTIONS, (int64_t)conns);
		mfs_http_config_set(hc, MFS_HTTP_IDLE_TIMEOUT_S, (int64_t)idle);
		mfs_http_config_set(hc, MFS_HTTP_MAX_BODY, (int64_t)body);
		mfs_http_config_set(hc, MFS_HTTP_K_MAX, (int64_t)kmax);
		mfs_http_config_set(hc, MFS_HTTP_PER_IP, (int64_t)per_ip);
		mfs_http_config_set(hc, MFS_HTTP_SOCKET_MODE, (int64_t)mode);
		mfs_http_config_titles(hc, item_meta);
	}

	static struct serve S; /* static: reachable from every thread until exit */
	S.model = model;
	S.kernel = kernel;
	S.poll_ms = (int)poll_ms;
	S.refresh_nice = refresh_nice == UINT64_MAX ? -1 : (int)refresh_nice;
	pthread_mutex_init(&S.mu, NULL);
	if (pipe(S.wake) < 0) {
		cli_error("serve: %s", strerror(errno));
		mfs_http_config_free(hc);
		return EXIT_RUNTIME;
	}
	/* signals go to the main thread only; SIGPIPE (a client gone) is ignored */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	mfs_server *srv = NULL;
	mfs_diag d;
	int rc = mfs_server_open(&srv, model, kernel, cli_warn_skip, NULL, &d);
	if (rc < 0 && (!hc || rc == -MFS_E_UNSUPPORTED || rc == -MFS_E_INVAL)) {
		cli_diag(&d);
		mfs_http_config_free(hc);
		return EXIT_RUNTIME;
	}
	if (rc < 0) {
		cli_diag(&d);
		mfs_diag_format(&d, S.last_err, sizeof S.last_err);
		cli_error("serve: no model yet: /healthz answers 503 until one loads from %s", model);
		srv = NULL;
	}
	if (srv && item_meta) { /* titles of another model's items are an error */
		const mfs_view *v = mfs_server_acquire(srv);
		int bad = cli_titles_check(meta, item_meta, mfs_view_model(v));
		mfs_server_release(srv, v);
		if (bad) {
			mfs_server_free(srv);
			mfs_http_config_free(hc);
			return bad;
		}
	}
	if (srv) { /* what the model can leave out (history, per-item counts) */
		const mfs_view *v = mfs_server_acquire(srv);
		const mfs_model *m = mfs_view_model(v);
		rc = cli_make_query("serve", m, 1, include_seen, 0, 0, &S.rq);
		if (rc == 0)
			rc = cli_make_query("serve", m, 0, 0, min_events, min_events_set, &S.sq);
		mfs_server_release(srv, v);
		if (rc) {
			mfs_query_free(S.rq);
			mfs_server_free(srv);
			mfs_http_config_free(hc);
			return rc;
		}
		if (hc)
			mfs_http_config_queries(hc, S.rq, S.sq);
	}
	atomic_store(&S.srv, srv);
	if (hc) {
		raise_nofile(conns);
		rc = mfs_http_start(&S.http, srv, hc, &d);
		mfs_http_config_free(hc);
		if (rc < 0) {
			cli_diag(&d);
			mfs_server_free(srv);
			return EXIT_RUNTIME;
		}
	}
	{
		fprintf(stderr, "{\"serving\": ");
		if (srv) {
			mfs_server_info si;
			mfs_server_info_get(srv, &si);
			cli_json_string(stderr, si.path, strlen(si.path));
			fprintf(stderr, ", \"model_events\": %llu", (unsigned long long)si.events);
		} else {
			fputs("null", stderr);
		}
		char a[512];
		if (mfs_http_address(S.http, 0, a, sizeof a) > 0) {
			fputs(", \"listen\": ", stderr);
			cli_json_string(stderr, a, strlen(a));
		}
		if (mfs_http_address(S.http, 1, a, sizeof a) > 0) {
			fputs(", \"socket\": ", stderr);
			cli_json_string(stderr, a, strlen(a));
		}
		fputs("}\n", stderr);
		fflush(stderr);
	}

	pthread_t rt, st;
	struct stdin_arg sa = { &S, 0 };
	atomic_init(&sa.done, 0);
	int have_rt = pthread_create(&rt, NULL, refresh_main, &S) == 0;
	int have_st = !no_stdin && pthread_create(&st, NULL, stdin_main, &sa) == 0;
	if (!have_rt || (!no_stdin && !have_st))
		cli_error("serve: cannot start a thread; serving with what started");
	for (;;) {
		int sig = 0;
		sigwait(&set, &sig);
		if (sig == SIGINT || sig == SIGTERM)
			break;
		if (sig == SIGUSR1 && atomic_load(&sa.done) && !S.http)
			break; /* standard input ended and nothing else listens */
	}
	atomic_store(&S.stop, 1);
	ssize_t w = write(S.wake[1], "x", 1);
	(void)w;
	if (have_rt)
		pthread_join(rt, NULL);
	uint64_t http_requests = mfs_http_requests(S.http);
	mfs_http_free(S.http); /* joins the pool: no HTTP request runs past here */
	srv = atomic_load(&S.srv);
	fflush(stdout);
	pthread_mutex_lock(&S.mu);
	mfs_server_info si = { 0 };
	if (srv)
		mfs_server_info_get(srv, &si);
	fprintf(stderr,
		"{\"answers\": %llu, \"http_requests\": %llu, \"refreshes\": %llu, \"model_events\": %llu}\n",
		(unsigned long long)S.queries, (unsigned long long)http_requests,
		(unsigned long long)si.refreshes, (unsigned long long)si.events);
	if (srv) {
		const mfs_view *v = mfs_server_acquire(srv);
		cli_latency_print(&S.lat, mfs_view_model(v));
		mfs_server_release(srv, v);
	}
	pthread_mutex_unlock(&S.mu);
	/* the standard-input thread may still be inside a query (or a read):
	 * leave without freeing what it uses */
	if ((have_st && atomic_load(&sa.done)) || !have_st) {
		if (have_st)
			pthread_join(st, NULL);
		mfs_server_free(srv);
		mfs_titles_free(item_meta);
		item_meta = NULL;
		mfs_query_free(S.rq);
		mfs_query_free(S.sq);
	}
	fflush(stderr);
	return 0;
}
