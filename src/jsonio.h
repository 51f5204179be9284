/*
 * jsonio.h - JSON for the HTTP server: a bounded writer whose strings are
 * always valid UTF-8 (invalid bytes become U+FFFD), and the reader of the
 * request bodies it accepts (POST /v1/recommend). No I/O, no HTTP library:
 * tested and fuzzed on their own.
 */
#ifndef MFS_JSONIO_H
#define MFS_JSONIO_H

#include <stddef.h>
#include <stdint.h>

#include "mfstream.h"

/* A growing output buffer that refuses to grow past max bytes. */
struct mfs_jbuf {
	char *p;
	size_t len, cap, max;
	int over; /* 1 once a write would pass max (or malloc failed: nomem) */
	int nomem;
};

void mfs_jbuf_init(struct mfs_jbuf *b, size_t max);
void mfs_jbuf_free(struct mfs_jbuf *b);
/* Append bytes as they are. Returns 0, or -1 (and sets over) when they do not fit. */
int mfs_jbuf_put(struct mfs_jbuf *b, const char *s, size_t n);
int mfs_jbuf_puts(struct mfs_jbuf *b, const char *s);
int mfs_jbuf_printf(struct mfs_jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s as a quoted JSON string: '"', '\\' and control bytes escaped, every
 * byte that is not part of well-formed UTF-8 replaced by U+FFFD. */
int mfs_jbuf_str(struct mfs_jbuf *b, const char *s, size_t n);
/* Give the bytes to the caller (malloc'd, NUL-terminated; the buffer is reset). */
char *mfs_jbuf_take(struct mfs_jbuf *b, size_t *len);

/* One query of a batch: the user, its k, the items it must not be given. */
struct mfs_batch_query {
	const char *user;
	size_t user_len;
	size_t k;
	const char **excl;
	size_t *excl_len;
	size_t n_excl;
};

struct mfs_batch {
	struct mfs_batch_query *q;
	size_t n;
	char *arena; /* decoded strings */
	const char **excl;
	size_t *excl_len;
};

/* What a batch may hold. */
struct mfs_batch_limits {
	size_t k_default, k_max;
	size_t max_queries;  /* queries in one batch */
	size_t max_items;    /* the sum of k over the batch */
	size_t max_exclude;  /* exclude IDs over the batch */
	size_t id_max;       /* longest ID in bytes */
};

/*
 * Parse a batch body:
 *   {"k": 10, "requests": [{"user": "42", "k": 5, "exclude": ["50", "1"]}, "43", ...]}
 * ("k" optional at both levels; a request may be just the user's ID string).
 * Strings may use every JSON escape (\uXXXX and surrogate pairs become UTF-8).
 * Returns 0, or -1 with a static reason in *why (malformed JSON, unknown
 * field, a limit passed). out is freed with mfs_batch_free in every case.
 */
int mfs_batch_parse(const char *body, size_t len, const struct mfs_batch_limits *lim,
		    struct mfs_batch *out, const char **why);
void mfs_batch_free(struct mfs_batch *b);

#endif
