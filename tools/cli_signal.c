/*
 * cli_signal.c - SIGINT and SIGTERM for train and scan.
 *
 * The first signal sets a flag that lives as long as the process (every phase
 * of a run looks at it: reading, passes 2..N, --test) and stops the source
 * registered at that moment, if any, so that a read waiting for input (--follow,
 * an idle pipe) returns. The handler reaches the source through an atomic
 * pointer and a count of handlers running: cli_stop_source(NULL) clears the
 * pointer and waits for a handler that has loaded it, so a source is never
 * stopped after it is freed. A second signal ends the process at once (the
 * default action): files are written atomically, so it never leaves a torn
 * model or checkpoint.
 */
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static atomic_int stop_signal; /* the first signal's number, or 0 (lock-free: handler-safe) */
static _Atomic(mfs_source *) stop_src;
static atomic_int in_handler;

static void on_signal(int sig)
{
	if (atomic_exchange(&stop_signal, sig)) {
		/* the second: the default action, now */
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	atomic_fetch_add(&in_handler, 1);
	mfs_source *s = atomic_load(&stop_src);
	if (s)
		mfs_source_stop(s); /* an atomic store: safe in a handler */
	atomic_fetch_sub(&in_handler, 1);
}

void cli_signals_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGTERM);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cli_stop_signal(void)
{
	return atomic_load(&stop_signal);
}

void cli_stop_source(mfs_source *src)
{
	atomic_store(&stop_src, src);
	if (src && atomic_load(&stop_signal))
		mfs_source_stop(src); /* a signal came before: stop at once */
	if (!src)
		while (atomic_load(&in_handler))
			; /* a handler on another thread holds the old pointer: a few instructions */
}

const char *cli_signal_name(int sig)
{
	return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}
