/*
 * source_lines.c - decoded text -> lines -> records -> one batch of events.
 *
 * Splits lines, decides the format and header, parses records (parse.c),
 * moves from file to file, parks growing files in follow mode, and tells
 * where the next unread record is.
 */
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "source_internal.h"

/* Close the open file (and end its decode session). */
static void close_file(struct mfs_source *s)
{
	mfs_src_dec_stop(s);
	if (s->fd > 0)
		close(s->fd);
	s->fd = -1;
	s->raw = NULL;
	s->raw_len = s->raw_pos = 0;
	s->text_len = s->text_pos = 0;
	s->eof = 0;
	s->discarding = 0;
	s->skip = 0;
	s->nbounds = 0;
}

static void report_bad(struct mfs_source *s, const char *reason)
{
	s->st.skipped++;
	s->records++;
	if (s->cfg.on_bad) {
		mfs_diag d;
		mfs_diag_set(&d, MFS_E_PARSE, 0, mfs_src_path(s), s->line_no, 0, "%s", reason);
		s->cfg.on_bad(s->cfg.on_bad_ctx, &d);
	}
}

/* Handle one complete line (NUL-terminated in place). Returns 1 if *ev was filled. */
static int take_line(struct mfs_source *s, char *line, size_t len, mfs_event *ev)
{
	char why[256];
	s->line_no++;
	if (s->format == MFS_FORMAT_AUTO) {
		size_t k = 0;
		while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
			k++;
		if (k == len)
			return 0; /* blank lines before the first record */
		int f = mfs_parse_detect(line, len);
		if (f < 0) {
			report_bad(s, "cannot tell the format of this line (use --format)");
			return 0;
		}
		s->format = f;
	}
	if (!s->seen_record) {
		size_t k = 0;
		while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
			k++;
		if (k == len)
			return 0;
		s->seen_record = 1;
		if (mfs_parse_is_header(s->format, line, len))
			return 0;
	}
	int r = mfs_parse_line(s->format, &s->fields, line, len, ev, why, sizeof why);
	if (r < 0) {
		report_bad(s, why);
		return 0;
	}
	if (r > 0) {
		s->records++;
		size_t k = (size_t)(ev - s->events);
		s->evloc[k].path = mfs_src_path(s);
		s->evloc[k].line = s->line_no;
	}
	return r;
}

/* The file at cur reached its end for now: finish it, or park it (follow). */
static int end_of_file(struct mfs_source *s, int truncated, mfs_diag *d)
{
	struct fent *f = &s->files[s->cur];
	if (s->cfg2.follow && s->is_reg) {
		mfs_src_rescan(s);
		if (!mfs_src_file_complete(s, s->cur)) {
			f->pos = mfs_src_file_pos(s);
			f->parked = 1;
			close_file(s);
			s->cur++;
			return 0;
		}
	}
	if (truncated && !s->read_stopped) {
		uint64_t off = s->dec_active ? s->dec_read_off : s->read_off;
		return mfs_diag_set(d, MFS_E_TRUNCATED, 0, mfs_src_path(s), 0, off,
				    "%s stream is truncated at compressed byte %llu",
				    s->codec == CODEC_GZIP ? "gzip" : "zstd", (unsigned long long)off);
	}
	return 1;
}

static void finish_file(struct mfs_source *s)
{
	if (s->cur < s->nfiles) {
		s->files[s->cur].done = 1;
		s->files[s->cur].parked = 0;
		s->files[s->cur].pos = mfs_src_file_pos(s);
	}
	close_file(s);
	s->cur++;
}

/*
 * Copy the IDs of events[nstash..n) into the stash, so that the batch outlives
 * a refill or a reopen of the text buffer (follow mode lingers over both).
 */
static void stash_ids(struct mfs_source *s, size_t n)
{
	char *a = s->stash;
	if (s->nstash > 0) {
		const mfs_event *l = &s->events[s->nstash - 1];
		a = (char *)l->item + l->item_len;
	}
	for (size_t k = s->nstash; k < n; k++) {
		mfs_event *e = &s->events[k];
		memcpy(a, e->user, e->user_len);
		e->user = a;
		a += e->user_len;
		memcpy(a, e->item, e->item_len);
		e->item = a;
		a += e->item_len;
	}
	s->nstash = n;
}

/* One batch, in the caller's thread. */
int mfs_src_next_sync(struct mfs_source *s, mfs_diag *diag)
{
	size_t n = 0, limit = s->cfg.batch;
	int progress = 0;
	int64_t linger_end = -1;
	s->nstash = 0;
	if (s->align) {
		uint64_t left = s->align - (s->st.events + s->align_phase) % s->align;
		if (left < limit)
			limit = (size_t)left;
	}
	while (n < limit) {
		if (atomic_load(&s->stop))
			break;
		if (s->fd < 0) {
			while (s->cur < s->nfiles && s->files[s->cur].done)
				s->cur++;
			if (s->cur >= s->nfiles) {
				if (!s->cfg2.follow || !s->growable)
					break;
				/*
				 * The end of one round over the files: look again, maybe
				 * wait. Events in hand wait at most the linger for more;
				 * with none, wait until input comes (or the deadline).
				 */
				int64_t wait = s->cfg2.poll_ms, t = mfs_src_now_ms();
				if (n > 0) {
					if (linger_end < 0)
						linger_end = t + s->linger_ms;
					if (t >= linger_end)
						break;
					wait = linger_end - t;
				} else if (s->deadline) {
					if (t >= s->deadline) {
						s->timed_out = 1;
						break;
					}
					if (s->deadline - t < wait)
						wait = s->deadline - t;
				}
				mfs_src_rescan(s);
				if (s->need_sort && mfs_src_sort_files(s) < 0)
					return mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0,
							    "out of memory");
				if (!progress)
					mfs_src_follow_wait(s, wait);
				progress = 0;
				s->cur = 0;
				continue;
			}
			int rc = mfs_src_open_file(s, diag);
			if (rc < 0)
				return rc;
		}
		/* Complete lines in the buffer. */
		char *base = s->text + s->text_pos;
		size_t avail = s->text_len - s->text_pos;
		char *nl = memchr(base, '\n', avail);
		if (nl) {
			size_t len = (size_t)(nl - base);
			s->text_pos += len + 1;
			progress = 1;
			if (s->discarding) {
				s->discarding = 0;
				s->line_no++;
				continue;
			}
			*nl = 0;
			if (take_line(s, base, len, &s->events[n]))
				n++;
			continue;
		}
		/*
		 * No complete line: hand out what we have before the buffer moves,
		 * or (follow mode, linger not over) keep the batch in the stash and
		 * read on.
		 */
		if (n > 0) {
			/* a pipe's read blocks until more comes: no linger there */
			if (!s->stash || !s->is_reg || (linger_end >= 0 && mfs_src_now_ms() >= linger_end))
				break;
			stash_ids(s, n);
		}
		if (avail >= LINE_MAX_BYTES && !s->discarding) {
			s->line_no++;
			report_bad(s, "line longer than 1048576 bytes");
			s->line_no--; /* counted again when its end is reached */
			s->discarding = 1;
		}
		if (s->discarding)
			s->text_pos = s->text_len; /* drop the over-long line's bytes */
		int truncated;
		int rc = mfs_src_refill(s, &truncated, diag);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			rc = end_of_file(s, truncated, diag);
			if (rc < 0)
				return rc;
			if (rc == 0)
				continue; /* parked: wait for more */
			/* End of a complete file: a last line without '\n'. */
			avail = s->text_len - s->text_pos;
			if (avail > 0 && !s->discarding && !s->read_stopped) {
				char *line = s->text + s->text_pos;
				line[avail] = 0;
				s->text_pos = s->text_len;
				if (take_line(s, line, avail, &s->events[n]))
					n++;
			}
			finish_file(s);
			progress = 1;
		}
	}
	s->st.events += n;
	s->sync_n = n;
	return (int)n;
}

/* Where the next unread record is, in the reading thread's view. */
static void where_now(const struct mfs_source *s, size_t *file, struct fpos *p)
{
	if (s->fd >= 0) {
		*file = s->cur;
		*p = mfs_src_file_pos(s);
		return;
	}
	/* the first file not done, else the last file (done) */
	for (size_t i = 0; i < s->nfiles; i++)
		if (!s->files[i].done) {
			*file = i;
			*p = s->files[i].pos;
			if (p->codec == CODEC_UNKNOWN)
				p->coff = p->dframe = p->doff = 0;
			return;
		}
	*file = s->nfiles ? s->nfiles - 1 : 0;
	if (s->nfiles)
		*p = s->files[*file].pos;
	else
		memset(p, 0, sizeof *p);
}

/* --- positions ------------------------------------------------------------- */

struct snap mfs_src_snap_now(const struct mfs_source *s)
{
	struct snap x = { "", 0, { 0 } };
	size_t i;
	where_now(s, &i, &x.pos);
	if (i < s->nfiles) {
		x.path = s->files[i].path;
		x.done = s->fd < 0 && s->files[i].done;
	}
	return x;
}

/* Abandon the open (failed) file and go on with the next one. */
void mfs_src_skip_file_sync(struct mfs_source *s)
{
	if (s->cur >= s->nfiles)
		return;
	s->files[s->cur].done = 1;
	s->files[s->cur].parked = 0;
	close_file(s);
	s->cur++;
}
