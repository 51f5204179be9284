/* mfstream.c - the command line: a thin client of libmfstream. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"Usage: mfstream COMMAND [options] [args]\n"
	"\n"
	"Learn a biased matrix-factorisation recommender from a stream of rating\n"
	"events, one SGD step per event, and query the saved model.\n"
	"\n"
	"Commands:\n"
	"  train [options] INPUT...     learn from events; INPUT is a file, a directory or '-'\n"
	"  eval --model PATH TEST...    RMSE/MAE of a saved model on rated pairs\n"
	"       [--metric hr@10,...]   or ranking metrics on held-out pairs\n"
	"  predict --model PATH [FILE]  read \"user item\" lines, write \"user<TAB>item<TAB>score\"\n"
	"  recommend --model PATH (--user ID | --users FILE) [-k N]\n"
	"  similar --model PATH (--item ID | --items FILE) [-k N]\n"
	"  serve --model PATH [--socket PATH]  answer queries, refreshing as checkpoints land\n"
	"  inspect --model PATH [--titles FILE]\n"
	"  gen [options]                write a synthetic stream from a planted model\n"
	"  scan [options] INPUT...      read and parse without learning (validate, benchmark)\n"
	"\n"
	"Run 'mfstream COMMAND --help' (or 'mfstream help COMMAND') for the options of a\n"
	"command. Options: --help, --version.\n"
	"Exit status: 0 success, 1 runtime failure, 2 usage error.\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	char *help_argv[4];
	if (strcmp(cmd, "help") == 0 && argc >= 3) {
		/* "mfstream help CMD" is "mfstream CMD --help" */
		help_argv[0] = argv[0];
		help_argv[1] = argv[2];
		help_argv[2] = "--help";
		help_argv[3] = NULL;
		cmd = argv[2];
		argc = 3;
		argv = help_argv;
	} else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("mfstream %s\n", MFS_VERSION_STRING);
		return 0;
	}
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "train", cmd_train },	    { "eval", cmd_eval },	{ "predict", cmd_predict },
		{ "recommend", cmd_recommend }, { "similar", cmd_similar }, { "inspect", cmd_inspect },
		{ "gen", cmd_gen },	    { "scan", cmd_scan },	{ "serve", cmd_serve },
	};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(cmd, cmds[i].name) == 0)
			return cmds[i].fn(argc - 1, argv + 1);
	return cli_usage(NULL, "unknown command \"%s\"", cmd);
}
