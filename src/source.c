/*
 * source.c - event files -> batches of events.
 *
 *   inputs (files, directories, "-") -> bytes (read) -> zstd frames (zstd.c)
 *   -> lines -> records (parse.c) -> events
 *
 * Compression is recognised by the magic bytes at the start of each file.
 * Events point into the text buffer; a batch never spans a refill of that
 * buffer, so the pointers stay valid until the next call.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "parse.h"
#include "zstd_stage.h"

#define RAW_CAP (1u << 20)       /* compressed bytes per read */
#define TEXT_CAP (4u << 20)      /* decoded text buffer */
#define LINE_MAX_BYTES (1u << 20) /* a longer line is skipped as malformed */

struct mfs_source {
	mfs_source_config cfg;
	struct mfs_fields fields;
	char **files;
	size_t nfiles, cap_files;
	size_t cur; /* index of the open file, or nfiles when done */

	int fd;         /* -1: no file open */
	int compressed; /* current file is zstd */
	int raw_eof;    /* read() returned 0 */
	int sniffed;    /* first bytes examined */
	uint64_t file_bytes; /* bytes read from the current file */
	uint64_t line_no;
	int format;       /* of the current file; AUTO until decided */
	int seen_record;  /* a record line has been seen (header check) */
	int discarding;   /* inside an over-long line */

	uint8_t *raw;
	size_t raw_len, raw_pos;
	struct mfs_zstream *z;

	char *text;
	size_t text_len, text_pos;

	mfs_event *events;
	mfs_source_stats st;
};

MFS_API void mfs_source_config_default(mfs_source_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->format = MFS_FORMAT_AUTO;
	cfg->batch = 4096;
}

/* --- input listing --------------------------------------------------------- */

static int add_file(struct mfs_source *s, const char *path)
{
	if (s->nfiles == s->cap_files) {
		size_t nc = s->cap_files ? s->cap_files * 2 : 16;
		char **nf = realloc(s->files, nc * sizeof *nf);
		if (!nf)
			return -MFS_E_NOMEM;
		s->files = nf;
		s->cap_files = nc;
	}
	s->files[s->nfiles] = strdup(path);
	if (!s->files[s->nfiles])
		return -MFS_E_NOMEM;
	s->nfiles++;
	return 0;
}

/* Files a Kafka sink has not committed yet, and hidden files. */
static int ignored_name(const char *n)
{
	size_t l = strlen(n);
	return n[0] == '.' || strstr(n, "_tmp") != NULL || (l >= 4 && strcmp(n + l - 4, ".tmp") == 0);
}

/*
 * A Kafka-sink name: "topic+partition+start[+end].ext" or
 * "topic-partition-start.ext". Fills topic length, partition and start offset.
 */
struct kname {
	int kafka;
	size_t topic_len;
	unsigned long long partition, offset;
	const char *name;
};

static int parse_num(const char *p, const char *end, unsigned long long *v)
{
	if (p >= end)
		return 0;
	unsigned long long x = 0;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9' || x > (~0ULL - 9) / 10)
			return 0;
		x = x * 10 + (unsigned)(*p - '0');
	}
	*v = x;
	return 1;
}

static struct kname kafka_name(const char *n)
{
	struct kname k = { .name = n };
	const char *dot = strchr(n, '.');
	const char *end = dot ? dot : n + strlen(n);
	/* topic+partition+start[+end] */
	const char *p1 = memchr(n, '+', (size_t)(end - n));
	if (p1) {
		const char *p2 = memchr(p1 + 1, '+', (size_t)(end - p1 - 1));
		if (p2) {
			const char *p3 = memchr(p2 + 1, '+', (size_t)(end - p2 - 1));
			const char *oend = p3 ? p3 : end;
			unsigned long long e;
			if (parse_num(p1 + 1, p2, &k.partition) && parse_num(p2 + 1, oend, &k.offset) &&
			    (!p3 || parse_num(p3 + 1, end, &e))) {
				k.kafka = 1;
				k.topic_len = (size_t)(p1 - n);
				return k;
			}
		}
	}
	/* topic-partition-start: the last two '-' separated numbers */
	const char *d2 = NULL, *d1 = NULL;
	for (const char *p = end - 1; p >= n; p--) {
		if (*p == '-') {
			if (!d2)
				d2 = p;
			else {
				d1 = p;
				break;
			}
		}
	}
	if (d1 && d2 && d1 > n && parse_num(d1 + 1, d2, &k.partition) &&
	    parse_num(d2 + 1, end, &k.offset)) {
		k.kafka = 1;
		k.topic_len = (size_t)(d1 - n);
	}
	return k;
}

static int cmp_names(const void *a, const void *b)
{
	const char *na = *(const char *const *)a, *nb = *(const char *const *)b;
	struct kname ka = kafka_name(na), kb = kafka_name(nb);
	if (ka.kafka && kb.kafka) {
		size_t l = ka.topic_len < kb.topic_len ? ka.topic_len : kb.topic_len;
		int c = memcmp(na, nb, l);
		if (c == 0 && ka.topic_len != kb.topic_len)
			c = ka.topic_len < kb.topic_len ? -1 : 1;
		if (c)
			return c;
		if (ka.partition != kb.partition)
			return ka.partition < kb.partition ? -1 : 1;
		if (ka.offset != kb.offset)
			return ka.offset < kb.offset ? -1 : 1;
	}
	return strcmp(na, nb);
}

static int add_dir(struct mfs_source *s, const char *dir, mfs_diag *d, int depth)
{
	if (depth > 16)
		return mfs_diag_set(d, MFS_E_INVAL, 0, dir, 0, 0, "directories nested too deeply");
	DIR *dp = opendir(dir);
	if (!dp)
		return mfs_diag_set(d, MFS_E_IO, errno, dir, 0, 0, "cannot read directory: %s",
				    strerror(errno));
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(dp)) != NULL) {
		if (ignored_name(e->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof *nn);
			if (!nn) {
				rc = -MFS_E_NOMEM;
				goto out;
			}
			names = nn;
		}
		names[n] = strdup(e->d_name);
		if (!names[n]) {
			rc = -MFS_E_NOMEM;
			goto out;
		}
		n++;
	}
	qsort(names, n, sizeof *names, cmp_names);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		struct stat st;
		if (stat(path, &st) < 0)
			continue; /* vanished (a sink renamed it): not an input any more */
		if (S_ISDIR(st.st_mode))
			rc = add_dir(s, path, d, depth + 1);
		else if (S_ISREG(st.st_mode))
			rc = add_file(s, path);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(dp);
	if (rc == -MFS_E_NOMEM)
		mfs_diag_set(d, MFS_E_NOMEM, 0, dir, 0, 0, "out of memory");
	return rc;
}

MFS_API void mfs_source_free(mfs_source *s)
{
	if (!s)
		return;
	if (s->fd > 0)
		close(s->fd);
	for (size_t i = 0; i < s->nfiles; i++)
		free(s->files[i]);
	free(s->files);
	mfs_zstream_free(s->z);
	free(s->raw);
	free(s->text);
	free(s->events);
	free(s);
}

MFS_API int mfs_source_open(mfs_source **out, const char *const *inputs, size_t n_inputs,
			    const mfs_source_config *cfg, mfs_diag *diag)
{
	if (!out || (!inputs && n_inputs))
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "no inputs");
	struct mfs_source *s = calloc(1, sizeof *s);
	if (!s)
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
	int rc = 0;
	s->fd = -1;
	if (cfg)
		s->cfg = *cfg;
	else
		mfs_source_config_default(&s->cfg);
	if (s->cfg.batch == 0)
		s->cfg.batch = 4096;
	if (s->cfg.format < MFS_FORMAT_AUTO || s->cfg.format > MFS_FORMAT_JSONL) {
		rc = mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "unknown format %d", s->cfg.format);
		goto out;
	}
	char why[256];
	if (mfs_fields_parse(&s->fields, s->cfg.fields, why, sizeof why) < 0) {
		rc = mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "%s", why);
		goto out;
	}
	for (size_t i = 0; i < n_inputs && rc == 0; i++) {
		const char *in = inputs[i];
		if (strcmp(in, "-") == 0) {
			rc = add_file(s, "-");
			continue;
		}
		struct stat st;
		if (stat(in, &st) < 0) {
			int e = errno;
			rc = mfs_diag_set(diag, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, in, 0, 0,
					  "%s", strerror(e));
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			rc = add_dir(s, in, diag, 0);
		} else {
			/* Fail now, before anything is learned, if it cannot be read. */
			int fd = open(in, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				int e = errno;
				rc = mfs_diag_set(diag, MFS_E_IO, e, in, 0, 0, "%s", strerror(e));
				goto out;
			}
			close(fd);
			rc = add_file(s, in);
		}
	}
	if (rc < 0) {
		if (rc == -MFS_E_NOMEM)
			mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		goto out;
	}
	s->raw = malloc(RAW_CAP);
	s->text = malloc(TEXT_CAP + 1);
	s->events = malloc(s->cfg.batch * sizeof *s->events);
	if (!s->raw || !s->text || !s->events || mfs_zstream_create(&s->z) < 0) {
		rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, NULL, 0, 0, "out of memory");
		goto out;
	}
	s->cur = 0;
	*out = s;
	return 0;
out:
	mfs_source_free(s);
	return rc;
}

static const char *cur_path(const struct mfs_source *s)
{
	return s->cur < s->nfiles ? s->files[s->cur] : "";
}

static void close_file(struct mfs_source *s)
{
	if (s->fd > 0)
		close(s->fd);
	s->fd = -1;
	s->raw_len = s->raw_pos = 0;
	s->text_len = s->text_pos = 0;
	s->raw_eof = 0;
	s->compressed = 0;
	s->sniffed = 0;
	s->discarding = 0;
}

MFS_API void mfs_source_skip_file(mfs_source *s)
{
	if (!s || s->cur >= s->nfiles)
		return;
	close_file(s);
	s->cur++;
}

static int open_file(struct mfs_source *s, mfs_diag *d)
{
	const char *p = s->files[s->cur];
	if (strcmp(p, "-") == 0) {
		s->fd = 0;
	} else {
		s->fd = open(p, O_RDONLY | O_CLOEXEC);
		if (s->fd < 0) {
			int e = errno;
			s->fd = -1;
			return mfs_diag_set(d, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, p, 0, 0, "%s",
					    strerror(e));
		}
		posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	}
	s->st.files++;
	s->file_bytes = 0;
	s->line_no = 0;
	s->format = s->cfg.format;
	s->seen_record = 0;
	mfs_zstream_reset(s->z);
	return 0;
}

/* Read more raw bytes into dst (cap bytes). Returns bytes, 0 at EOF, or <0. */
static ssize_t read_some(struct mfs_source *s, void *dst, size_t cap, mfs_diag *d)
{
	for (;;) {
		ssize_t r = read(s->fd, dst, cap);
		if (r >= 0) {
			s->file_bytes += (uint64_t)r;
			s->st.bytes += (uint64_t)r;
			return r;
		}
		if (errno == EINTR)
			continue;
		int e = errno;
		return mfs_diag_set(d, MFS_E_IO, e, cur_path(s), 0, s->file_bytes, "read failed: %s",
				    strerror(e));
	}
}

/*
 * Append decoded text after text[text_len]. Returns 1 if bytes were added,
 * 0 at the end of the file, <0 on error.
 */
static int refill(struct mfs_source *s, mfs_diag *d)
{
	/* Keep the unconsumed tail (a partial line) at the front. */
	if (s->text_pos > 0) {
		memmove(s->text, s->text + s->text_pos, s->text_len - s->text_pos);
		s->text_len -= s->text_pos;
		s->text_pos = 0;
	}
	size_t room = TEXT_CAP - s->text_len;
	if (room == 0)
		return 1; /* the caller handles a line that fills the buffer */
	if (!s->sniffed) {
		/* Decide compression from the first bytes of the file. */
		ssize_t r = read_some(s, s->raw, RAW_CAP, d);
		if (r < 0)
			return (int)r;
		s->raw_len = (size_t)r;
		s->raw_pos = 0;
		s->sniffed = 1;
		if (r == 0) {
			s->raw_eof = 1;
			return 0;
		}
		/* Short reads from a pipe: get at least 4 bytes to see the magic. */
		while (s->raw_len < 4) {
			r = read_some(s, s->raw + s->raw_len, RAW_CAP - s->raw_len, d);
			if (r < 0)
				return (int)r;
			if (r == 0)
				break;
			s->raw_len += (size_t)r;
		}
		s->compressed = mfs_zstd_magic(s->raw, s->raw_len);
	}
	if (!s->compressed) {
		/* Plain text: bytes go straight into the text buffer. */
		if (s->raw_pos < s->raw_len) {
			size_t n = s->raw_len - s->raw_pos;
			if (n > room)
				n = room;
			memcpy(s->text + s->text_len, s->raw + s->raw_pos, n);
			s->raw_pos += n;
			s->text_len += n;
			return 1;
		}
		if (s->raw_eof)
			return 0;
		ssize_t r = read_some(s, s->text + s->text_len, room, d);
		if (r < 0)
			return (int)r;
		if (r == 0) {
			s->raw_eof = 1;
			return 0;
		}
		s->text_len += (size_t)r;
		return 1;
	}
	/* zstd */
	for (;;) {
		size_t before = s->text_len;
		if (s->raw_pos < s->raw_len || mfs_zstream_mid_frame(s->z)) {
			const char *why = NULL;
			int rc = mfs_zstream_run(s->z, s->raw, s->raw_len, &s->raw_pos, s->text,
						 TEXT_CAP, &s->text_len, &why);
			if (rc < 0) {
				uint64_t off = s->file_bytes - (s->raw_len - s->raw_pos);
				return mfs_diag_set(d, MFS_E_CORRUPT, 0, cur_path(s), 0, off,
						    "corrupt zstd data near compressed byte %llu: %s",
						    (unsigned long long)off, why);
			}
			if (s->text_len > before)
				return 1;
		}
		if (s->raw_eof) {
			if (mfs_zstream_mid_frame(s->z))
				return mfs_diag_set(d, MFS_E_TRUNCATED, 0, cur_path(s), 0,
						    s->file_bytes,
						    "zstd stream is truncated at compressed byte %llu",
						    (unsigned long long)s->file_bytes);
			return 0;
		}
		ssize_t r = read_some(s, s->raw, RAW_CAP, d);
		if (r < 0)
			return (int)r;
		s->raw_len = (size_t)r;
		s->raw_pos = 0;
		if (r == 0)
			s->raw_eof = 1;
	}
}

static void report_bad(struct mfs_source *s, const char *reason)
{
	s->st.skipped++;
	if (s->cfg.on_bad) {
		mfs_diag d;
		mfs_diag_set(&d, MFS_E_PARSE, 0, cur_path(s), s->line_no, 0, "%s", reason);
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
	return r;
}

MFS_API int mfs_source_next(mfs_source *s, const mfs_event **out, mfs_diag *diag)
{
	if (!s || !out)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, NULL, 0, 0, "NULL argument");
	size_t n = 0;
	while (n < s->cfg.batch) {
		if (s->fd < 0) {
			if (s->cur >= s->nfiles)
				break;
			int rc = open_file(s, diag);
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
		/* No complete line: hand out what we have before the buffer moves. */
		if (n > 0)
			break;
		if (avail >= LINE_MAX_BYTES && !s->discarding) {
			s->line_no++;
			report_bad(s, "line longer than 1048576 bytes");
			s->line_no--; /* counted again when its end is reached */
			s->discarding = 1;
		}
		if (s->discarding) {
			s->text_pos = s->text_len; /* drop the over-long line's bytes */
		}
		int rc = refill(s, diag);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			/* End of file: a last line without '\n'. */
			avail = s->text_len - s->text_pos;
			if (avail > 0 && !s->discarding) {
				char *line = s->text + s->text_pos;
				line[avail] = 0;
				s->text_pos = s->text_len;
				if (take_line(s, line, avail, &s->events[n]))
					n++;
			}
			close_file(s);
			s->cur++;
		}
	}
	s->st.events += n;
	*out = s->events;
	return (int)n;
}

MFS_API void mfs_source_stats_get(const mfs_source *s, mfs_source_stats *st)
{
	if (s && st)
		*st = s->st;
}
