/* cli_scan.c - "mfstream scan": read, decompress and parse without learning; reader options. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_reader_option(const char *cmd, const char *opt, const char *arg, mfs_source_config2 *c)
{
	if (strcmp(opt, "--io") == 0) {
		int io = mfs_io_parse(arg);
		if (io < 0) {
			cli_usage(cmd, "--io: must be auto, uring or pread, got \"%s\"", arg);
			return -1;
		}
		c->io = io;
	} else if (strcmp(opt, "--follow") == 0) {
		c->follow = 1;
	} else if (strcmp(opt, "--reader-thread") == 0) {
		if (strcmp(arg, "on") == 0)
			c->queue = 4;
		else if (strcmp(arg, "off") == 0)
			c->queue = 0;
		else {
			cli_usage(cmd, "--reader-thread: must be on or off, got \"%s\"", arg);
			return -1;
		}
	}
	return 0;
}

void cli_reader_start(mfs_source *src)
{
	mfs_diag d;
	if (mfs_source_io_fallback(src, &d))
		cli_diag(&d); /* the one notice */
	cli_signals_install();
	cli_stop_source(src);
}

static const char scan_help[] =
	"Usage: mfstream scan [options] INPUT...\n"
	"\n"
	"Read, decompress and parse the inputs as train would, without learning; print\n"
	"{\"events\": ..., \"skipped\": ..., \"bytes\": ..., \"seconds\": ..., ...} on stdout,\n"
	"with the ratings seen: rating_min, rating_max and rating_step (1: whole numbers,\n"
	"0.5: half stars, 0: no common step). Validates files, and measures the reader.\n"
	"Exit 1 if a file could not be read under --on-error stop, or if SIGINT/SIGTERM\n"
	"ended the scan before the end of the input (in --follow they are its end: exit 0).\n"
	"\n"
	"  --format F          auto|tsv|csv|dat|jsonl|ssv (default auto)\n"
	"  --fields SPEC       jsonl field names (see train --help)\n"
	"  --on-error P        skip-file (default) or stop\n"
	"  --io B              auto (default), uring, pread\n"
	"  --follow            keep reading as files grow, until SIGINT/SIGTERM\n"
	"  --reader-thread X   on (default) or off\n"
	"  -h, --help          this text\n";

int cmd_scan(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "format", required_argument, 0, 'f' },  { "fields", required_argument, 0, 'F' },
		{ "on-error", required_argument, 0, 'e' }, { "io", required_argument, 0, 'i' },
		{ "follow", no_argument, 0, 'w' },	  { "reader-thread", required_argument, 0, 't' },
		{ "help", no_argument, 0, 'h' },	  { 0, 0, 0, 0 },
	};
	const char *cmd = "scan", *fields = NULL;
	int format = MFS_FORMAT_AUTO, stop_on_error = 0, c;
	mfs_source_config2 c2;
	mfs_source_config2_default(&c2);
	c2.queue = 4;
	optind = 1;
	opterr = 0;
	static const char *const w_onerr[] = { "skip-file", "stop", NULL };
	static const int v_onerr[] = { 0, 1 };
	const struct cli_option table[] = {
		CLI_OPT_FORMAT('f', &format, 0),
		CLI_OPT_STR('F', &fields),
		CLI_OPT_CHOICE('e', &stop_on_error, w_onerr, v_onerr),
		CLI_OPT_FLAG('w', &c2.follow, 1),
	};
	while ((c = cli_getopt_table(cmd, argc, argv, ":h", opts, table,
				     sizeof table / sizeof *table)) != -1) {
		switch (c) {
		case 'h':
			fputs(scan_help, stdout);
			return 0;
		case 'i':
		case 't':
			if (cli_reader_option(cmd, cli_option_name(opts, c), optarg, &c2) < 0)
				return EXIT_USAGE;
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage(cmd, "no INPUT given (a file, a directory, or '-' for standard input)");
	struct cli_bad bad = { 0 };
	mfs_source_config sc;
	mfs_source_config_default(&sc);
	sc.format = format;
	sc.fields = fields;
	sc.on_bad = cli_on_bad;
	sc.on_bad_ctx = &bad;
	mfs_source *src = NULL;
	mfs_diag d;
	if (mfs_source_open2(&src, (const char *const *)argv + optind, (size_t)(argc - optind), &sc,
			     &c2, &d) < 0) {
		cli_diag(&d);
		return d.code == MFS_E_INVAL ? EXIT_USAGE : EXIT_RUNTIME;
	}
	cli_reader_start(src);
	int rc = 0;
	uint64_t failed = 0;
	float lo = 0, hi = 0, step = 1;
	uint64_t rated = 0;
	double t0 = cli_now();
	for (;;) {
		const mfs_event *ev;
		int n = mfs_source_next(src, &ev, &d);
		if (n < 0) {
			cli_diag(&d);
			failed++;
			if (stop_on_error) {
				rc = EXIT_RUNTIME;
				break;
			}
			mfs_source_skip_file(src);
			continue;
		}
		if (n == 0)
			break;
		/* the ratings seen: their range and step (what train's auto range would see) */
		float a, b, k;
		if (mfs_ratings_range(ev, (size_t)n, &a, &b, &k) == 0) {
			int first = rated == 0;
			lo = first || a < lo ? a : lo;
			hi = first || b > hi ? b : hi;
			step = first || k < step ? k : step;
			rated += (uint64_t)n;
		}
	}
	double secs = cli_now() - t0;
	cli_stop_source(NULL);
	int sig = cli_stop_signal();
	cli_bad_finish(&bad);
	mfs_source_stats st;
	mfs_source_stats_get(src, &st);
	printf("{\"events\": %llu, \"skipped\": %llu, \"bytes\": %llu, \"seconds\": %.3f, "
	       "\"files\": %llu, \"files_failed\": %llu, \"bytes_per_sec\": %.4g, \"io\": \"%s\"",
	       (unsigned long long)st.events, (unsigned long long)st.skipped,
	       (unsigned long long)st.bytes, secs, (unsigned long long)st.files,
	       (unsigned long long)failed, secs > 0 ? (double)st.bytes / secs : 0.0,
	       mfs_source_io(src));
	if (rated)
		printf(", \"rating_min\": %g, \"rating_max\": %g, \"rating_step\": %g", lo, hi, step);
	printf(", \"interrupted\": %s}\n", sig ? "true" : "false");
	fflush(stdout);
	mfs_source_free(src);
	if (rc == 0 && failed && stop_on_error)
		rc = EXIT_RUNTIME;
	if (rc == 0 && sig && !c2.follow) {
		cli_error("interrupted by %s before the end of the input", cli_signal_name(sig));
		rc = EXIT_RUNTIME;
	}
	return rc;
}
