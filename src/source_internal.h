/*
 * source_internal.h - the reader's state, shared by its stages (not public).
 *
 * A file source moves bytes through one stage per file, in this order:
 *   source_list.c    inputs -> the files to read (directories, follow mode, inotify)
 *   source_fetch.c   the open file -> raw bytes (io_uring or pread/read), codec sniffing
 *   source_decode.c  raw bytes -> text (zstd / gzip / plain), on a decode thread or not
 *   source_lines.c   text -> lines -> records -> one batch of events, restart positions
 *   source_queue.c   the reader thread: batches made ahead, handed over through a queue
 *   source.c         the public calls (open, next, position, seek, stats) and Kafka dispatch
 */
#ifndef MFS_SOURCE_INTERNAL_H
#define MFS_SOURCE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "files.h"
#include "internal.h"
#include "parse.h"

struct mfs_uring;
struct mfs_zstream;
struct mfs_gzstream;
struct mfs_ksrc;

#define CHUNK_DEFAULT (1u << 20)  /* compressed bytes per read */
#define TEXT_CAP (4u << 20)       /* decoded text buffer */
#define LINE_MAX_BYTES (1u << 20) /* a longer line is skipped as malformed */
#define NBOUND 64                 /* frame boundaries remembered */
#define NBLK 3                    /* decode stage: text blocks in the ring */
#define BLK_HEAD LINE_MAX_BYTES   /* room before a block's text for the previous partial line */
#define BLK_DATA (TEXT_CAP - BLK_HEAD) /* decoded bytes per block */

enum { CODEC_UNKNOWN = -1, CODEC_PLAIN = 0, CODEC_ZSTD = 1, CODEC_GZIP = 2 };
enum { BE_URING = 0, BE_PREAD = 1 };

/* A restart point inside one file. */
struct fpos {
	uint64_t coff;   /* compressed offset of a frame start (== doff for plain) */
	uint64_t dframe; /* decompressed offset of that frame start */
	uint64_t doff;   /* decompressed offset of the next unread record */
	uint64_t line_no, records;
	int codec, format, seen_record;
};

/* A position as the consumer sees it (struct fpos of a file, by path). */
struct snap {
	const char *path;
	int done;
	struct fpos pos;
};

struct fent {
	char *path;
	int input;  /* index of the input it came from */
	int dir;    /* came from a directory listing */
	int done;   /* every record read */
	int parked; /* follow mode: waiting for more at pos */
	struct fpos pos;
};

struct bound {
	uint64_t c, d;
};

/* A watched directory of a directory input. */
struct wdir {
	int wd;
	char *path;
	int input, depth;
};


/* Where an event of a batch was read (mfs_source_event_line). */
struct evloc {
	const char *path; /* a file's path (lives as long as the source) */
	uint64_t line;
};

/*
 * Decode stage (with a reader thread, for compressed regular files): a second
 * thread reads and decompresses the open file into a ring of text blocks while
 * the reader thread splits and parses lines. Blocks are filled, taken and
 * released strictly in order. Each block leaves BLK_HEAD bytes in front of its
 * text, where the reader copies the partial line left over from the block
 * before, so lines stay contiguous without moving the whole buffer.
 */
struct dblk {
	char *buf;         /* BLK_HEAD + BLK_DATA + 1 */
	size_t len;        /* decoded bytes at buf + BLK_HEAD */
	uint64_t doff;     /* decompressed offset of buf[BLK_HEAD] */
	struct bound b[NBOUND];
	int nb;
	uint64_t bytes;    /* compressed bytes read while filling it */
	uint64_t read_off; /* file offset of the next read after it */
	int end;           /* the end of the file as it is now */
	int truncated;     /* ... and it falls inside a frame */
	int err;           /* < 0: a read or decode error (diag) */
	mfs_diag diag;
};
struct mfs_source {
	struct mfs_ksrc *ks; /* a Kafka source (kafka.c): the calls below dispatch to it */
	mfs_source_config cfg;
	mfs_source_config2 cfg2;
	struct mfs_fields fields;
	char **inputs;
	size_t ninputs;
	struct fent *files;
	size_t nfiles, cap_files;
	size_t cur; /* index of the open (or next) file */
	int need_sort;
	size_t nsorted;        /* files[0..nsorted) are in order */
	struct mfs_iset known; /* every file listed, by (device, inode) */
	struct mfs_pmap newest; /* the newest file of each partition */
	struct mfs_iset dirs;  /* directories listed in the current scan */
	char **dir_paths;      /* ... their paths (dirs borrows them) */
	size_t ndir_paths, cap_dir_paths;
	struct wdir *wds;      /* follow mode: watched directories */
	size_t nwds, cap_wds;
	int ino_full;          /* inotify cannot tell everything: list the directories */
	int64_t last_list;     /* when they were last listed (ms) */
	int growable; /* an input is a directory or a regular file: follow mode can wait on it */

	int be;                /* BE_URING or BE_PREAD */
	int fallback_errno;    /* io was AUTO and io_uring refused */
	int fell_back;
	struct mfs_uring *ring;

	/* the open file */
	int fd;          /* -1: no file open */
	int is_reg;      /* regular file (else read(2)) */
	int codec;
	int eof;         /* the backend returned 0 */
	uint64_t read_off;  /* file offset of the next read */
	uint64_t line_no, records;
	int format;      /* of the current file; AUTO until decided */
	int seen_record; /* a record line has been seen (header check) */
	int discarding;  /* inside an over-long line */
	int read_stopped; /* a pipe read gave up on mfs_source_stop: its end is not the input's */
	uint64_t skip;   /* decoded bytes still to drop (resuming mid-frame) */

	const uint8_t *raw;
	uint8_t *own_raw;
	size_t raw_cap;
	size_t raw_len, raw_pos;
	uint64_t raw_off; /* file offset of raw[0] */
	struct mfs_zstream *z;
	struct mfs_gzstream *gz;

	char *text;
	size_t text_len, text_pos;
	uint64_t text_doff; /* decompressed offset of text[0] */
	struct bound bounds[NBOUND];
	int nbounds;

	mfs_event *events;
	struct evloc *evloc; /* beside events: file and line of each */
	size_t sync_n;       /* events in the last batch next_sync made */
	mfs_source_stats st;

	atomic_int stop;
	int ino_fd;
	unsigned linger_ms; /* follow: a partial batch waits this long for more */
	uint64_t align;     /* no batch crosses a multiple of align events (0: off) */
	uint64_t align_phase; /* counted from align_phase events before the open */
	int64_t deadline;   /* next_sync in the caller's thread: give up waiting then (0: never) */
	int timed_out;      /* ... and it did */
	char *stash;        /* follow: IDs of a lingering batch, copied out of the text buffer */
	size_t nstash;      /* events of the batch in progress whose IDs are in stash */

	/* reader thread */
	int threaded, started;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct slot *slots;
	unsigned nslots, qhead, qcount;
	int decision; /* after an error slot: 0 waiting, 1 skip file, 2 retry */
	int quit;
	int prod_done;
	struct slot *held;
	mfs_source_stats cons_st;
	struct mfs_source_where cons_where;
	struct fpos cons_pos;
	size_t cons_file;
	int cons_valid;
	struct snap cons_at; /* consumer: where the last slot handed out ends (a copy) */

	/* decode stage (see struct dblk); d_* under dmu, dec_* reader thread only */
	int dec_ok;          /* the stage thread runs */
	int dec_active;      /* a session for the open file */
	int dec_end, dec_trunc, dec_err;
	uint64_t dec_read_off; /* read_off as of the last block taken (read_off is the stage's) */
	mfs_diag dec_diag;
	char *own_text;      /* text when no block is held */
	struct dblk *text_blk; /* the block text points into, or NULL */
	struct dblk blk[NBLK];
	pthread_t dth;
	pthread_mutex_t dmu;
	pthread_cond_t dcv;
	int d_run, d_cancel, d_quit;
	const char *d_path;
	uint64_t d_doff;
	uint64_t produced, consumed, released;
};

/* A batch made ahead by the reader thread (source_queue.c). */
struct slot {
	mfs_event *events;
	struct evloc *loc;
	char *arena;
	int n; /* events, or a negative error code */
	mfs_diag diag;
	struct snap where;
	mfs_source_stats st;
};

static inline int64_t mfs_src_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The path of the open (or next) file, "" past the last. */
static inline const char *mfs_src_path(const struct mfs_source *s)
{
	return s->cur < s->nfiles ? s->files[s->cur].path : "";
}

/* source_list.c */
int mfs_src_add_file(struct mfs_source *s, const char *path, const struct stat *st, int input,
		     int dir);
int mfs_src_add_dir(struct mfs_source *s, const char *dir, mfs_diag *d, int depth, int input);
int mfs_src_sort_files(struct mfs_source *s);
void mfs_src_rescan(struct mfs_source *s);
int mfs_src_file_complete(const struct mfs_source *s, size_t i);
void mfs_src_follow_wait(struct mfs_source *s, int64_t ms);

/* source_fetch.c */
void mfs_src_push_bound(struct mfs_source *s, uint64_t c, uint64_t d);
struct fpos mfs_src_file_pos(const struct mfs_source *s);
int mfs_src_open_file(struct mfs_source *s, mfs_diag *d);
ssize_t mfs_src_fetch_raw(struct mfs_source *s, const char *path, mfs_diag *d);
ssize_t mfs_src_fetch(struct mfs_source *s, mfs_diag *d);
int mfs_src_sniff(struct mfs_source *s, mfs_diag *d);

/* source_decode.c */
int mfs_src_refill(struct mfs_source *s, int *truncated, mfs_diag *d);
void mfs_src_dec_stop(struct mfs_source *s);
void mfs_src_dec_quit(struct mfs_source *s);

/* source_lines.c */
int mfs_src_next_sync(struct mfs_source *s, mfs_diag *diag);
struct snap mfs_src_snap_now(const struct mfs_source *s);
void mfs_src_skip_file_sync(struct mfs_source *s);

/* source_queue.c */
int mfs_src_start_thread(struct mfs_source *s);
void mfs_src_stop_thread(struct mfs_source *s);
int mfs_src_next_threaded(struct mfs_source *s, const mfs_event **out, int timeout_ms,
			  mfs_diag *diag);

#endif
