/* cli_curve.c - train --curve: the prequential curve of pass 1 as TSV. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "cli.h"

int cli_curve_open(struct cli_curve *c, const char *path, uint64_t every)
{
	memset(c, 0, sizeof *c);
	c->f = fopen(path, "w");
	if (!c->f) {
		cli_error("--curve %s: %s", path, strerror(errno));
		return -1;
	}
	c->path = path;
	c->every = every;
	c->t0 = c->last_t = cli_now();
	fprintf(c->f, "events\tprequential_rmse\tprequential_mae\twindow_rmse\twindow_mae\t"
		      "events_per_s\tseconds\n");
	fflush(c->f);
	return 0;
}

size_t cli_curve_take(struct cli_curve *c, uint64_t seen, size_t n)
{
	if (!c->f)
		return n;
	if (!c->started) { /* the clock starts with learning, not with the model's setup */
		c->started = 1;
		c->t0 = c->last_t = cli_now();
	}
	uint64_t left = c->every - seen % c->every;
	return left < n ? (size_t)left : n;
}

void cli_curve_line(struct cli_curve *c, const mfs_learn_stats *st, int final)
{
	if (!c->f || st->events == c->last_events)
		return;
	/* a line where the count reaches a multiple of every (exactly, on one
	 * thread; at the end of the window that crosses one, on several) */
	uint64_t mark = (st->events + st->unplaced) / c->every;
	if (!final && mark == c->last_mark)
		return;
	c->last_mark = mark;
	double now = cli_now(), n = (double)st->events, w = (double)(st->events - c->last_events);
	fprintf(c->f, "%llu\t%.6f\t%.6f\t%.6f\t%.6f\t%.0f\t%.3f\n", (unsigned long long)st->events,
		sqrt(st->sq_err / n), st->abs_err / n, sqrt((st->sq_err - c->last_sq) / w),
		(st->abs_err - c->last_abs) / w, now > c->last_t ? w / (now - c->last_t) : 0.0,
		now - c->t0);
	fflush(c->f); /* a live plot reads the lines as they come */
	c->last_events = st->events;
	c->last_sq = st->sq_err;
	c->last_abs = st->abs_err;
	c->last_t = now;
}

int cli_curve_close(struct cli_curve *c)
{
	if (!c->f)
		return 0;
	int bad = ferror(c->f);
	if (fclose(c->f) != 0 || bad) {
		cli_error("--curve %s: writing failed: %s", c->path, strerror(errno ? errno : EIO));
		c->f = NULL;
		return -1;
	}
	c->f = NULL;
	return 0;
}
