/* cli.h - shared pieces of the mfstream command line. */
#ifndef MFS_CLI_H
#define MFS_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "mfstream.h"

/* Exit codes (SPEC): 0 success, 1 runtime failure, 2 usage error. */
#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* "mfstream: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "mfstream: <diag as path:line: reason>" on stderr. */
void cli_diag(const mfs_diag *d);
/* A usage error: "mfstream: <message>", a hint to run "mfstream CMD --help"; returns EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * getopt_long (optstring starting with ':') with the usage errors of every
 * command printed: a missing value, or a value that is the next option
 * ("--lr needs a value"), an unknown option. Returns the option, -1 at the
 * end, or CLI_OPT_ERR after printing the error.
 */
#define CLI_OPT_ERR (-2)
int cli_getopt(const char *cmd, int argc, char **argv, const char *optstring,
	       const struct option *opts);

/*
 * Option value parsers: 0 on success, else print a usage error naming the
 * option ("--lr: must be > 0, got -1") and return -1.
 *
 * Counts: digits, or a decimal with a suffix k or K (1e3), M (1e6), G (1e9):
 * 5000, 5k, 1.5M; the result must be whole. cli_u64 is cli_count.
 * Durations: a decimal and a unit ms, s, m (minutes), h: 500ms, 1.5s, 30s, 5m, 2h.
 * Periods (--checkpoint-every, --delta-every): a duration or a count; case
 * tells 5m (minutes) from 5M (a million events).
 */
int cli_count(const char *cmd, const char *opt, const char *s, uint64_t lo, uint64_t hi,
	      uint64_t *out);
int cli_u64(const char *cmd, const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
int cli_duration(const char *cmd, const char *opt, const char *s, double *sec);
/* Either *sec > 0 and *events = 0, or *events > 0 and *sec = 0. */
int cli_period(const char *cmd, const char *opt, const char *s, double *sec, uint64_t *events);
int cli_float(const char *cmd, const char *opt, const char *s, float *out);
/* A number within bounds: CLI_GT (> lo) or CLI_GE (>= lo), and/or CLI_LE (<= hi). */
enum { CLI_GT = 1, CLI_GE = 2, CLI_LE = 4 };
int cli_float_in(const char *cmd, const char *opt, const char *s, int bounds, float lo, float hi,
		 float *out);
/* A byte size: digits with an optional K/M/G/T suffix (powers of 1024). */
int cli_size(const char *cmd, const char *opt, const char *s, uint64_t *out);
int cli_range(const char *cmd, const char *opt, const char *s, float *lo, float *hi);

double cli_now(void); /* CLOCK_MONOTONIC seconds */

/*
 * Options from a table (cli_option): what an option's argument is and where
 * it goes, so that a command's getopt loop is a lookup, not a case per
 * option. The checks and messages are the helpers' above ("--dim: ...").
 */
enum cli_kind {
	CLI_STR,    /* const char **p = the argument */
	CLI_FLAG,   /* int *p = n (no argument) */
	CLI_U64,    /* uint64_t *p, lo..hi (k/M/G suffixes) */
	CLI_U32,    /* uint32_t *p, lo..hi */
	CLI_UINT,   /* unsigned *p, lo..hi */
	CLI_INT,    /* int *p, lo..hi */
	CLI_F32,    /* float *p within lo/hi by bounds (CLI_GE, ...) */
	CLI_CHOICE, /* int *p = values[i] of the name given (names: NULL-terminated) */
	CLI_WORD,   /* const char **p = the argument, one of names */
	CLI_PERIOD, /* double *p seconds, or uint64_t *p2 events */
	CLI_SIZE,   /* uint64_t *p bytes (K/M/G/T) */
	CLI_LIST,   /* const char **p array, size_t *p2 its length: appended */
	CLI_KV,     /* as CLI_LIST, each KEY=VALUE */
	CLI_FORMAT, /* int *p = MFS_FORMAT_* (n 1: auto not allowed) */
};

struct cli_option {
	int id;            /* the getopt value */
	enum cli_kind kind;
	void *p, *p2;
	uint64_t lo, hi;   /* the integer kinds' range */
	float flo, fhi;    /* CLI_F32's */
	int n;             /* CLI_FLAG's value; CLI_F32's bounds */
	const char *const *names;
	const int *values;
};

/* Table rows: a number of kind (CLI_U64, CLI_U32, CLI_UINT, CLI_INT, CLI_SIZE)
 * within lo..hi; a float within bounds; a string; a flag set to n; a choice
 * of names mapped to values. */
#define CLI_OPT_NUM(id, kind, ptr, lo, hi) { id, kind, ptr, NULL, lo, hi, 0, 0, 0, NULL, NULL }
#define CLI_OPT_F32(id, ptr, bounds, lo, hi) \
	{ id, CLI_F32, ptr, NULL, 0, 0, lo, hi, bounds, NULL, NULL }
#define CLI_OPT_STR(id, ptr) { id, CLI_STR, (void *)(ptr), NULL, 0, 0, 0, 0, 0, NULL, NULL }
#define CLI_OPT_FLAG(id, ptr, n) { id, CLI_FLAG, ptr, NULL, 0, 0, 0, 0, n, NULL, NULL }
#define CLI_OPT_CHOICE(id, ptr, w, v) { id, CLI_CHOICE, ptr, NULL, 0, 0, 0, 0, 0, w, v }
#define CLI_OPT_FORMAT(id, ptr, no_auto) { id, CLI_FORMAT, ptr, NULL, 0, 0, 0, 0, no_auto, NULL, NULL }

/*
 * If the table has option id, apply arg to it (name: "--dim", for messages)
 * and return 1, or -1 after saying what is wrong (a usage error); 0 when the
 * table does not have id.
 */
int cli_option_apply(const char *cmd, const struct cli_option *t, size_t n, int id,
		     const char *name, const char *arg);

/*
 * cli_getopt with a table: the options the table has are applied (and the
 * loop goes on); returns the next option it does not have, -1 at the end, or
 * CLI_OPT_ERR after a usage error was said (a bad value too).
 */
int cli_getopt_table(const char *cmd, int argc, char **argv, const char *optstring,
		     const struct option *opts, const struct cli_option *t, size_t n);

/* The long name of getopt value id in opts ("--dim"), in a static buffer. */
const char *cli_option_name(const struct option *opts, int id);

/*
 * Load --model PATH: a model file, or a directory of checkpoints (the newest
 * valid one: corrupt ones are reported and skipped). Returns 0 or EXIT_RUNTIME
 * after printing the reason.
 */
int cli_load_model(const char *path, const char *kernel, mfs_model **out);

/* Open --model PATH for serving (model file or checkpoint directory), as
 * cli_load_model. Returns 0 or EXIT_RUNTIME after printing the reason. */
int cli_open_server(const char *path, const char *kernel, mfs_server **out);
/* "warning: skipping <diag>" on stderr: the on_skip of checkpoint loading. */
void cli_warn_skip(void *ctx, const mfs_diag *d);

/* Bad-record reporter for sources: prints the first few, counts all, keeps the first. */
struct cli_bad {
	uint64_t count;
	uint64_t shown;
	mfs_diag first;
};
void cli_on_bad(void *ctx, const mfs_diag *d);
void cli_bad_finish(const struct cli_bad *b);

/* Read inputs (as train reads them: format, fields) and call fn on every
 * event until it returns < 0; malformed records are reported and counted in
 * bad. Returns 0 or EXIT_RUNTIME (the source failed, or fn did). A signal
 * (cli_signals_install) stops it early: then *interrupted is set. */
int cli_each_event(const char *const *inputs, size_t n, int format, const char *fields,
		   int (*fn)(void *ctx, const mfs_event *e), void *ctx, struct cli_bad *bad,
		   int *interrupted);

/* Score a model on rated pairs from inputs. Returns 0 or EXIT_RUNTIME. A
 * signal (cli_signals_install) stops it early: then interrupted is set. */
struct cli_eval {
	uint64_t n;
	double sq, ab;
	uint64_t skipped;
	mfs_diag first_bad; /* the first malformed record, if skipped */
	int interrupted;
};
int cli_evaluate(const mfs_model *m, const char *const *inputs, size_t n, int format,
		 const char *fields, struct cli_eval *ev);

/* eval --metric (cli_rank.c): ranking metrics (hr@K, ndcg@K, recall@K, comma
 * separated in spec) on held-out pairs, printed as JSON. Returns 0,
 * EXIT_USAGE (a bad spec: said) or EXIT_RUNTIME (no pair to rank, errors). */
int cli_rank_eval(const mfs_model *m, const char *const *inputs, size_t n_inputs, int format,
		  const char *fields, const char *spec);

/* Per-query latencies (--stats): add one in microseconds (0, or -1 out of
 * memory); print {"queries", "p50_us", "p90_us", "p99_us", "max_us",
 * "mean_us", and the model's items, dim, kernel} on stderr and free them. */
struct cli_latency {
	double *us;
	size_t n, cap;
};
int cli_latency_add(struct cli_latency *l, double us);
void cli_latency_print(struct cli_latency *l, const mfs_model *m);

/*
 * Minimum support of similar and inspect (and serve's similar): items that
 * learned fewer events are left out of the ranking (--min-events, 0: none).
 * Chosen on MovieLens 100K (README.md): rarely rated films, whose few
 * ratings put their factor rows anywhere, stay out of Silence of the Lambs'
 * neighbours.
 */
#define CLI_MIN_EVENTS 20

/* A macro's value as a string literal (for help texts). */
#define CLI_STR_(x) #x
#define CLI_STR(x) CLI_STR_(x)

/*
 * The query of --include-seen (recommend) and --min-events N (given: set
 * 1) for model m, into *out. Says, once, what m cannot do: no history (seen
 * items are not left out: a note), no per-item counts (the default minimum
 * is dropped with a note; one given is an error). Returns 0, or EXIT_RUNTIME
 * after printing why.
 */
int cli_make_query(const char *cmd, const mfs_model *m, int recommend, int include_seen,
		   uint64_t min_events, int set, mfs_query **out);

/*
 * Read one line of f into *buf (grown as needed, NUL-terminated, without its
 * '\n'): its length, or CLI_LINE_END at the end of f, CLI_LINE_TOO_LONG for
 * a line longer than max bytes (read up to its end and dropped: memory stays
 * bounded), CLI_LINE_NOMEM.
 */
#define CLI_LINE_MAX (1u << 20) /* the same 1 MiB as training's input lines */
#define CLI_LINE_END (-1)
#define CLI_LINE_TOO_LONG (-2)
#define CLI_LINE_NOMEM (-3)
ssize_t cli_read_line(FILE *f, char **buf, size_t *cap, size_t max);

/* Print s as a JSON string (quoted, escaped) to f. */
void cli_json_string(FILE *f, const char *s, size_t len);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_similar(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_scan(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Reader options shared by train and scan (cli_scan.c): --io, --follow, --reader-thread.
 * 0, or a usage error printed and -1. */
int cli_reader_option(const char *cmd, const char *opt, const char *arg, mfs_source_config2 *c);
/* Print the io_uring fallback notice if any; SIGINT/SIGTERM stop src after its
 * batch (cli_signals_install, cli_stop_source). */
void cli_reader_start(mfs_source *src);

/*
 * Signals (cli_signal.c). cli_signals_install: SIGINT/SIGTERM set a flag kept
 * for the life of the process, and stop the source given to cli_stop_source;
 * a second signal ends the process (default action). cli_stop_signal: the
 * first signal's number, or 0. cli_stop_source(src): the source a signal
 * stops (stopped at once if a signal came already); cli_stop_source(NULL)
 * before freeing it. (The library's forked checkpoint writer ignores both.)
 */
void cli_signals_install(void);
int cli_stop_signal(void);
void cli_stop_source(mfs_source *src);
const char *cli_signal_name(int sig);

/*
 * train --curve (cli_curve.c): the prequential curve as TSV, one line every
 * `every` events of pass 1 and one at the end: events, running and windowed
 * (since the previous line) RMSE and MAE, events/s of the window, seconds.
 * cli_curve_open writes the header (-1: said); cli_curve_take: how many of
 * the n events next may be learned before a line is due (seen: the events
 * consumed so far, learned or unplaced); cli_curve_line: a line if one is due
 * (or final and events since the last); cli_curve_close: -1 if a write failed
 * (said). A curve with f NULL does nothing.
 */
struct cli_curve {
	FILE *f;
	const char *path;
	uint64_t every, last_events;
	uint64_t last_mark; /* the multiple of every the last line passed */
	double last_sq, last_abs, t0, last_t;
	int started;
};
int cli_curve_open(struct cli_curve *c, const char *path, uint64_t every);
size_t cli_curve_take(struct cli_curve *c, uint64_t seen, size_t n);
void cli_curve_line(struct cli_curve *c, const mfs_learn_stats *st, int final);
int cli_curve_close(struct cli_curve *c);

#endif
