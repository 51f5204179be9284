/*
 * cli_serve.c - "serve": answer query lines from the newest model, on
 * standard input and a Unix socket, swapping in newer checkpoints as they
 * appear.
 *
 * Threads: one per input (standard input, each socket connection) answering
 * its lines; one that waits for the model path to change (inotify, with a
 * poll as the fallback) and refreshes the server; the main thread waits for
 * SIGINT/SIGTERM or for standard input to end.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_lines.h"

#define MAX_CONNS 256

static const char serve_help[] =
	"Usage: mfstream serve --model PATH [--socket PATH] [--poll-ms N] [--no-stdin]\n"
	"                      [--include-seen] [--min-events N]\n"
	"\n"
	"Answer query lines from the newest model, one JSON line per query:\n"
	"  recommend USER [K]   the K (default 10) best items for USER, leaving out the\n"
	"                       items in USER's history (see recommend --help); an\n"
	"                       unknown user gets the items with the highest mu + b_item\n"
	"  similar ITEM [K]     the K items closest to ITEM by cosine, among the items\n"
	"                       with at least --min-events learned events\n"
	"  predict USER ITEM    the predicted rating\n"
	"  info                 the model serving: its events, file, refreshes\n"
	"Fields are separated by a TAB if the line has one (IDs may then hold spaces),\n"
	"else by spaces. Every answer names the model it came from (\"model_events\").\n"
	"A malformed line gets {\"error\": ..., \"line\": N}.\n"
	"\n"
	"PATH is a model file or a checkpoint directory. When a newer checkpoint\n"
	"appears (inotify; a poll every --poll-ms as well) it is loaded beside the\n"
	"serving model and swapped in between two queries: no answer comes from a\n"
	"half-loaded model, and a damaged checkpoint is reported and ignored while the\n"
	"current model keeps serving. Each refresh prints a JSON line on stderr\n"
	"({\"refresh\", \"model_events\", \"path\", \"load_ms\", \"lag_ms\": from the file's\n"
	"last write to the swap}).\n"
	"\n"
	"  --model PATH    a model file or a checkpoint directory (newest valid)\n"
	"  --socket PATH   also answer on this Unix stream socket (any number of\n"
	"                  clients, each its own connection; a stale socket file is\n"
	"                  replaced, any other file is an error)\n"
	"  --poll-ms N     look for a newer model at least this often (default 1000)\n"
	"  --no-stdin      do not read standard input (with --socket)\n"
	"  --include-seen  recommend: keep the items in the user's history\n"
	"  --min-events N  similar: leave out items that learned fewer than N events\n"
	"                  (default " CLI_STR(CLI_MIN_EVENTS) "; 0: none)\n"
	"  --kernel K      auto|scalar|avx2|avx512|neon\n"
	"\n"
	"Runs until standard input ends (without --socket) or SIGINT/SIGTERM; then\n"
	"prints {\"answers\", \"refreshes\", \"model_events\"} and the latency of the\n"
	"recommend queries ({\"queries\", \"p50_us\", \"p99_us\", ...}, measured from the\n"
	"pin of the model to the selected items) on stderr, and exits 0.\n";

struct serve {
	mfs_server *srv;
	const char *model;
	int poll_ms;
	pthread_mutex_t mu; /* guards lat and queries */
	struct cli_latency lat;
	uint64_t queries;
	atomic_int stop;
	int wake[2]; /* a pipe: the refresher wakes on stop */
	int conns;   /* open socket connections (under mu) */
	mfs_query *rq, *sq; /* the settings of recommend and similar queries */
};

static void put_items(FILE *out, const mfs_model *m, const mfs_scored *r, int n)
{
	fputs(", \"items\": [", out);
	for (int i = 0; i < n; i++) {
		const char *id = "";
		size_t len = 0;
		mfs_model_row(m, MFS_ITEMS, r[i].row, &id, &len, NULL);
		fputs(i ? ", {\"item\": " : "{\"item\": ", out);
		cli_json_string(out, id, len);
		fprintf(out, ", \"score\": %.4f}", r[i].score);
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
	double t0 = cli_now();
	const mfs_view *v = mfs_server_acquire(S->srv);
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
		fprintf(out,
			", \"score\": %.4f, \"known_user\": %s, \"known_item\": %s, "
			"\"model_events\": %llu}\n",
			p, known >= 0 && (known & MFS_KNOWN_USER) ? "true" : "false",
			known >= 0 && (known & MFS_KNOWN_ITEM) ? "true" : "false",
			(unsigned long long)info.events);
	} else { /* CLI_Q_INFO */
		mfs_server_info si;
		mfs_server_info_get(S->srv, &si);
		fprintf(out,
			"{\"op\": \"info\", \"model_events\": %llu, \"users\": %llu, \"items\": %llu, "
			"\"dim\": %u, \"kernel\": \"%s\", \"refreshes\": %llu, \"path\": ",
			(unsigned long long)info.events, (unsigned long long)info.users,
			(unsigned long long)info.items, info.dim, info.kernel,
			(unsigned long long)si.refreshes);
		cli_json_string(out, si.path, strlen(si.path));
		fputs("}\n", out);
	}
	mfs_server_release(S->srv, v);
done:
	fflush(out);
	pthread_mutex_lock(&S->mu);
	S->queries++;
	pthread_mutex_unlock(&S->mu);
}

/* Answer every line of in on out until in ends or the server stops. */
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
	while (!S->stop && getline(&line, &cap, in) > 0) {
		ln++;
		answer(S, line, ln, out, buf);
		if (ferror(out))
			break; /* the client went away */
	}
	free(line);
	free(buf);
}

struct conn {
	struct serve *S;
	int fd;
};

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct serve *S = c->S;
	int fd2 = dup(c->fd);
	FILE *in = fdopen(c->fd, "r"), *out = fd2 >= 0 ? fdopen(fd2, "w") : NULL;
	if (in && out)
		answer_stream(S, in, out);
	if (in)
		fclose(in);
	else
		close(c->fd);
	if (out)
		fclose(out);
	else if (fd2 >= 0)
		close(fd2);
	free(c);
	pthread_mutex_lock(&S->mu);
	S->conns--;
	pthread_mutex_unlock(&S->mu);
	return NULL;
}

struct listener {
	struct serve *S;
	int fd;
};

static void *accept_main(void *arg)
{
	struct listener *L = arg;
	while (!L->S->stop) {
		int fd = accept4(L->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
				usleep(10000);
				continue;
			}
			break; /* the socket was shut down */
		}
		pthread_mutex_lock(&L->S->mu);
		int full = L->S->conns >= MAX_CONNS;
		if (!full)
			L->S->conns++;
		pthread_mutex_unlock(&L->S->mu);
		struct conn *c = full ? NULL : malloc(sizeof *c);
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (c) {
			c->S = L->S;
			c->fd = fd;
		}
		if (!c || pthread_create(&t, &at, conn_main, c) != 0) {
			static const char busy[] = "{\"error\": \"server busy\", \"line\": 0}\n";
			ssize_t w = write(fd, busy, sizeof busy - 1);
			(void)w;
			close(fd);
			free(c);
			if (!full) {
				pthread_mutex_lock(&L->S->mu);
				L->S->conns--;
				pthread_mutex_unlock(&L->S->mu);
			}
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

/* Listen on a Unix socket at path: a stale socket file is replaced. */
static int listen_unix(const char *path)
{
	struct sockaddr_un a;
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof a.sun_path) {
		cli_error("%s: socket path is too long (at most %zu bytes)", path,
			  sizeof a.sun_path - 1);
		return -1;
	}
	strcpy(a.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			cli_error("%s: exists and is not a socket; not replacing it", path);
			return -1;
		}
		unlink(path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0) {
		cli_error("%s: cannot listen: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
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

static void refresh_now(struct serve *S)
{
	mfs_diag d;
	double t0 = cli_now();
	int rc = mfs_server_refresh(S->srv, &d);
	if (rc < 0 && rc != -MFS_E_NOTFOUND) {
		cli_diag(&d);
	} else if (rc == 1) {
		mfs_server_info si;
		mfs_server_info_get(S->srv, &si);
		fprintf(stderr, "{\"refresh\": %llu, \"model_events\": %llu, \"path\": ",
			(unsigned long long)si.refreshes, (unsigned long long)si.events);
		cli_json_string(stderr, si.path, strlen(si.path));
		fprintf(stderr, ", \"load_ms\": %.1f, \"lag_ms\": %.1f}\n", (cli_now() - t0) * 1e3,
			file_age_ms(si.path));
	}
}

/* Wait for the model path to change; refresh. */
static void *refresh_main(void *arg)
{
	struct serve *S = arg;
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
		refresh_now(S);
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

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, 0, 'm' },	  { "socket", required_argument, 0, 's' },
		{ "poll-ms", required_argument, 0, 'p' }, { "no-stdin", no_argument, 0, 'n' },
		{ "kernel", required_argument, 0, 'K' },  { "help", no_argument, 0, 'h' },
		{ "include-seen", no_argument, 0, 'Z' },  { "min-events", required_argument, 0, 'E' },
		{ 0, 0, 0, 0 },
	};
	const char *model = NULL, *sock = NULL, *kernel = NULL;
	uint64_t poll_ms = 1000, min_events = CLI_MIN_EVENTS;
	int no_stdin = 0, c, include_seen = 0, min_events_set = 0;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hm:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(serve_help, stdout);
			return 0;
		case 'm':
			model = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'p':
			if (cli_u64("serve", "--poll-ms", optarg, 10, 3600000, &poll_ms) < 0)
				return EXIT_USAGE;
			break;
		case 'n':
			no_stdin = 1;
			break;
		case 'K':
			kernel = optarg;
			break;
		case 'Z':
			include_seen = 1;
			break;
		case 'E':
			if (cli_u64("serve", "--min-events", optarg, 0, UINT32_MAX, &min_events) < 0)
				return EXIT_USAGE;
			min_events_set = 1;
			break;
		case ':':
			return cli_usage("serve", "option %s needs a value", argv[optind - 1]);
		default:
			return cli_usage("serve", "unknown option \"%s\"", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage("serve", "unexpected argument \"%s\"", argv[optind]);
	if (!model)
		return cli_usage("serve", "--model PATH is required");
	if (no_stdin && !sock)
		return cli_usage("serve", "--no-stdin needs --socket PATH");

	static struct serve S; /* static: reachable from every thread until exit */
	S.model = model;
	S.poll_ms = (int)poll_ms;
	pthread_mutex_init(&S.mu, NULL);
	if (pipe(S.wake) < 0) {
		cli_error("serve: %s", strerror(errno));
		return EXIT_RUNTIME;
	}
	int rc = cli_open_server(model, kernel, &S.srv);
	if (rc)
		return rc;
	{
		const mfs_view *v = mfs_server_acquire(S.srv);
		const mfs_model *m = mfs_view_model(v);
		rc = cli_make_query("serve", m, 1, include_seen, 0, 0, &S.rq);
		if (rc == 0)
			rc = cli_make_query("serve", m, 0, 0, min_events, min_events_set, &S.sq);
		mfs_server_release(S.srv, v);
		if (rc) {
			mfs_query_free(S.rq);
			mfs_server_free(S.srv);
			return rc;
		}
	}
	int lfd = -1;
	if (sock && (lfd = listen_unix(sock)) < 0) {
		mfs_server_free(S.srv);
		return EXIT_RUNTIME;
	}
	{
		mfs_server_info si;
		mfs_server_info_get(S.srv, &si);
		fprintf(stderr, "{\"serving\": ");
		cli_json_string(stderr, si.path, strlen(si.path));
		fprintf(stderr, ", \"model_events\": %llu%s", (unsigned long long)si.events,
			sock ? ", \"socket\": " : "");
		if (sock)
			cli_json_string(stderr, sock, strlen(sock));
		fputs("}\n", stderr);
	}
	/* signals go to the main thread only; SIGPIPE (a client gone) is ignored */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	pthread_t rt, at, st;
	struct listener L = { &S, lfd };
	struct stdin_arg sa = { &S, 0 };
	atomic_init(&sa.done, 0);
	int have_rt = pthread_create(&rt, NULL, refresh_main, &S) == 0;
	int have_at = lfd >= 0 && pthread_create(&at, NULL, accept_main, &L) == 0;
	int have_st = !no_stdin && pthread_create(&st, NULL, stdin_main, &sa) == 0;
	if (!have_rt || (lfd >= 0 && !have_at) || (!no_stdin && !have_st))
		cli_error("serve: cannot start a thread; serving with what started");
	for (;;) {
		int sig = 0;
		sigwait(&set, &sig);
		if (sig == SIGINT || sig == SIGTERM)
			break;
		if (sig == SIGUSR1 && atomic_load(&sa.done) && lfd < 0)
			break; /* standard input ended and there is no socket */
	}
	atomic_store(&S.stop, 1);
	ssize_t w = write(S.wake[1], "x", 1);
	(void)w;
	if (have_rt)
		pthread_join(rt, NULL);
	if (lfd >= 0) {
		shutdown(lfd, SHUT_RDWR);
		if (have_at)
			pthread_join(at, NULL);
		close(lfd);
		unlink(sock);
	}
	fflush(stdout);
	pthread_mutex_lock(&S.mu);
	mfs_server_info si;
	mfs_server_info_get(S.srv, &si);
	fprintf(stderr, "{\"answers\": %llu, \"refreshes\": %llu, \"model_events\": %llu}\n",
		(unsigned long long)S.queries, (unsigned long long)si.refreshes,
		(unsigned long long)si.events);
	const mfs_view *v = mfs_server_acquire(S.srv);
	cli_latency_print(&S.lat, mfs_view_model(v));
	mfs_server_release(S.srv, v);
	/* connection and standard-input threads may still be inside a query:
	 * leave without freeing what they use */
	int idle = S.conns == 0;
	pthread_mutex_unlock(&S.mu);
	if (have_st && atomic_load(&sa.done) && idle) {
		pthread_join(st, NULL);
		mfs_server_free(S.srv);
	}
	fflush(stderr);
	return 0;
}
