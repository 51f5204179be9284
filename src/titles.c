/*
 * titles.c - item ID -> title, from the title files people have.
 *
 * Three formats, decided from the first non-empty line by the first of '|',
 * ',' and TAB in it (a line that starts with '"' is csv):
 *   pipe  id|title|...            MovieLens 100K u.item (Latin-1); fields after
 *                                 the title are ignored
 *   csv   movieId,title[,genres]  MovieLens latest / 25M movies.csv; RFC 4180
 *                                 quotes ("American President, The (1995)",
 *                                 "" for a quote); a quoted field ends on its line
 *   tsv   id<TAB>title            exactly two fields
 * A first line whose title field is "title" (any case) is a header and skipped.
 * IDs and titles are trimmed of spaces and tabs; an ID is 1..MFS_ID_MAX bytes,
 * matched byte for byte (never parsed as a number).
 *
 * Titles come out as valid UTF-8 on one line: bytes that are valid UTF-8 are
 * kept, every other byte is read as Windows-1252 (Latin-1 with printable
 * 0x80-0x9F, as browsers read "latin1"; its five unassigned bytes become
 * U+FFFD), control characters become spaces.
 *
 * A file that is not a title file is refused rather than read as garbage: a
 * NUL byte (binary data), no separator on the first line, no title at all,
 * more malformed lines than titles, or titles that are mostly plain numbers
 * (more than half of 3 or more: u.user's ages, a column of ratings). Fewer malformed lines are skipped and
 * counted (mfs_titles_skipped). An ID given again takes the later title.
 *
 * Storage: one arena of ID bytes and NUL-terminated titles, an entry array in
 * file order, and an open-addressing index on the IDs' XXH3 keys. Nothing is
 * written after loading, so lookups may run from any number of threads.
 */
#include "titles.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define KEY_SEED UINT64_C(0x7469746c65730001) /* any fixed seed: keys never leave the process */

/* What each format expects, for reasons. */
#define EXPECTED                                                                         \
	"expected MovieLens u.item (id|title|...), movies.csv (movieId,title,genres) or " \
	"id<TAB>title lines"

enum tformat { TF_PIPE = 1, TF_CSV, TF_TSV };

static const char *const format_shape[] = {
	[TF_PIPE] = "id|title|...",
	[TF_CSV] = "movieId,title[,genres]",
	[TF_TSV] = "id<TAB>title",
};

struct entry {
	uint64_t key;
	size_t id_off;    /* in the arena */
	size_t title_off; /* in the arena, NUL-terminated */
	uint32_t id_len;
};

struct mfs_titles {
	char *arena;
	size_t arena_len, arena_cap;
	struct entry *e;
	size_t n, cap;
	uint32_t *slot;  /* entry index + 1, 0 = empty; a power of two */
	size_t nslots;
	uint64_t skipped; /* malformed lines */
	mfs_diag first_bad;
	int format;
};

/* ===================================================================== */
/* Text                                                                  */
/* ===================================================================== */

static inline int is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static void trim(const char **s, size_t *n)
{
	const char *p = *s, *e = p + *n;
	while (p < e && is_blank((unsigned char)*p))
		p++;
	while (e > p && is_blank((unsigned char)e[-1]))
		e--;
	*s = p;
	*n = (size_t)(e - p);
}

/* Length of the valid (shortest-form, no surrogate, <= U+10FFFF) UTF-8
 * sequence starting at s[0] (a byte >= 0x80), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0; /* no overlong */
		else if (c == 0xED)
			hi = 0x9F; /* no surrogate */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F; /* <= U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return len;
}

/* Windows-1252 0x80..0x9F; 0 where it assigns nothing. */
static const uint16_t cp1252_high[32] = {
	0x20AC, 0,	0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
	0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0,	0x017D, 0,
	0,	0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
	0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,	0x017E, 0x0178,
};

static size_t put_utf8(char *d, unsigned cp)
{
	if (cp < 0x800) {
		d[0] = (char)(0xC0 | cp >> 6);
		d[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	d[0] = (char)(0xE0 | cp >> 12);
	d[1] = (char)(0x80 | (cp >> 6 & 0x3F));
	d[2] = (char)(0x80 | (cp & 0x3F));
	return 3;
}

/*
 * Copy a title into d (room for 3 * n + 1 bytes) as one line of valid UTF-8
 * (see the top of the file), turning "" into " when quoted is set, trimmed of
 * the spaces at either end. Returns its length; d is NUL-terminated.
 */
static size_t clean_title(char *d, const char *src, size_t n, int quoted)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0, i = 0;
	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) {
			if (c == '"' && quoted && i + 1 < n && s[i + 1] == '"')
				i++;
			d[o++] = c < 0x20 || c == 0x7F ? ' ' : (char)c;
			i++;
			continue;
		}
		size_t len = utf8_seq(s + i, n - i);
		if (len) {
			memcpy(d + o, s + i, len);
			o += len;
			i += len;
			continue;
		}
		unsigned cp = c >= 0xA0 ? c : cp1252_high[c - 0x80];
		o += put_utf8(d + o, cp ? cp : 0xFFFD);
		i++;
	}
	size_t b = 0;
	while (b < o && d[b] == ' ')
		b++;
	while (o > b && d[o - 1] == ' ')
		o--;
	memmove(d, d + b, o - b);
	o -= b;
	d[o] = 0;
	return o;
}

/* ===================================================================== */
/* Lines                                                                 */
/* ===================================================================== */

struct span {
	const char *p;
	size_t n;
	int quoted; /* a quoted csv field: "" pairs in it */
};

/* The first two fields and the field count of a csv line (RFC 4180 quotes).
 * Returns the count, or -1 with why set. */
static long split_csv(const char *s, size_t n, struct span f[2], const char **why)
{
	const char *p = s, *end = s + n;
	long k = 0;
	for (;;) {
		struct span cur;
		const char *q = p;
		while (q < end && is_blank((unsigned char)*q))
			q++;
		if (q < end && *q == '"') {
			const char *c = q + 1;
			for (;;) {
				const char *e = memchr(c, '"', (size_t)(end - c));
				if (!e) {
					*why = "unterminated quoted field";
					return -1;
				}
				if (e + 1 < end && e[1] == '"') {
					c = e + 2;
					continue;
				}
				cur = (struct span){ q + 1, (size_t)(e - q - 1), 1 };
				p = e + 1;
				break;
			}
			while (p < end && is_blank((unsigned char)*p))
				p++;
			if (p < end && *p != ',') {
				*why = "text after the closing quote of a field";
				return -1;
			}
		} else {
			const char *c = memchr(p, ',', (size_t)(end - p));
			const char *fe = c ? c : end;
			cur = (struct span){ p, (size_t)(fe - p), 0 };
			p = fe;
		}
		if (k < 2)
			f[k] = cur;
		k++;
		if (p == end)
			return k;
		p++; /* the ',' */
	}
}

/* The first two fields and the count of a line split at sep. */
static long split_at(const char *s, size_t n, char sep, struct span f[2])
{
	const char *p = s, *end = s + n;
	long k = 0;
	for (;;) {
		const char *c = memchr(p, sep, (size_t)(end - p));
		const char *fe = c ? c : end;
		if (k < 2)
			f[k] = (struct span){ p, (size_t)(fe - p), 0 };
		k++;
		if (!c)
			return k;
		p = c + 1;
	}
}

/* The length of an ID once a quoted one's "" pairs are one quote each. */
static size_t id_length(const struct span *id)
{
	size_t n = id->n;
	if (id->quoted)
		for (size_t i = 0; i < id->n; i++)
			if (id->p[i] == '"') {
				n--;
				i++; /* the second quote of the pair */
			}
	return n;
}

/* Copy an ID into d (id_length bytes), "" pairs of a quoted one made one quote. */
static size_t copy_id(char *d, const struct span *id)
{
	if (!id->quoted) {
		memcpy(d, id->p, id->n);
		return id->n;
	}
	size_t o = 0;
	for (size_t i = 0; i < id->n; i++) {
		d[o++] = id->p[i];
		if (id->p[i] == '"')
			i++; /* the second quote of the pair */
	}
	return o;
}

/* ID and title of a line. Returns 0, or -1 with a reason in why (wl bytes). */
static int split_line(int format, const char *s, size_t n, struct span *id, struct span *title,
		      char *why, size_t wl)
{
	struct span f[2];
	const char *w = NULL;
	long k;
	switch (format) {
	case TF_PIPE:
		k = split_at(s, n, '|', f);
		if (k < 2) {
			snprintf(why, wl, "no '|' after the ID");
			return -1;
		}
		break;
	case TF_TSV:
		k = split_at(s, n, '\t', f);
		if (k != 2) {
			snprintf(why, wl, "%ld field%s", k, k == 1 ? "" : "s");
			return -1;
		}
		break;
	default:
		k = split_csv(s, n, f, &w);
		if (k < 0) {
			snprintf(why, wl, "%s", w);
			return -1;
		}
		if (k < 2 || k > 3) {
			snprintf(why, wl, "%ld field%s", k, k == 1 ? "" : "s");
			return -1;
		}
		break;
	}
	*id = f[0];
	*title = f[1];
	if (!id->quoted)
		trim(&id->p, &id->n);
	if (!title->quoted)
		trim(&title->p, &title->n);
	if (id->n == 0) {
		snprintf(why, wl, "empty item ID");
		return -1;
	}
	if (id_length(id) > MFS_ID_MAX) {
		snprintf(why, wl, "item ID longer than %d bytes", MFS_ID_MAX);
		return -1;
	}
	return 0;
}

/* Decide the format from a line: the first of '|', ',' and TAB; 0 if none. */
static int detect(const char *s, size_t n)
{
	const char *p = s, *end = s + n;
	while (p < end && is_blank((unsigned char)*p) && *p != '\t')
		p++;
	if (p < end && *p == '"')
		return TF_CSV;
	for (; p < end; p++) {
		if (*p == '|')
			return TF_PIPE;
		if (*p == ',')
			return TF_CSV;
		if (*p == '\t')
			return TF_TSV;
	}
	return 0;
}

/* ===================================================================== */
/* The table                                                             */
/* ===================================================================== */

static uint64_t key_of(const char *id, size_t len)
{
	return mfs_hash_id(id, len, KEY_SEED);
}

/* The slot of id: its entry's, or the empty one where it goes. */
static size_t find_slot(const mfs_titles *t, uint64_t key, const char *id, size_t len)
{
	size_t mask = t->nslots - 1, i = (size_t)key & mask;
	for (;; i = (i + 1) & mask) {
		uint32_t s = t->slot[i];
		if (!s)
			return i;
		const struct entry *e = &t->e[s - 1];
		if (e->key == key && e->id_len == len && memcmp(t->arena + e->id_off, id, len) == 0)
			return i;
	}
}

static int grow_slots(mfs_titles *t)
{
	size_t n = t->nslots ? 2 * t->nslots : 1024;
	uint32_t *s = calloc(n, sizeof *s);
	if (!s)
		return -1;
	free(t->slot);
	t->slot = s;
	t->nslots = n;
	for (size_t i = 0; i < t->n; i++) {
		size_t j = (size_t)t->e[i].key & (n - 1);
		while (s[j])
			j = (j + 1) & (n - 1);
		s[j] = (uint32_t)(i + 1);
	}
	return 0;
}

static char *arena_reserve(mfs_titles *t, size_t need)
{
	if (t->arena_cap - t->arena_len < need) {
		size_t cap = t->arena_cap ? t->arena_cap : 65536;
		while (cap - t->arena_len < need)
			cap *= 2;
		char *a = realloc(t->arena, cap);
		if (!a)
			return NULL;
		t->arena = a;
		t->arena_cap = cap;
	}
	return t->arena + t->arena_len;
}

/* Add or replace id's title. 1 added, 0 empty title (nothing stored), -1 no memory. */
static int add(mfs_titles *t, const struct span *id, const struct span *title)
{
	/* room for the ID, the title at 3 bytes per byte (Windows-1252 to UTF-8), NUL */
	char *a = arena_reserve(t, id->n + 3 * title->n + 1);
	if (!a)
		return -1;
	size_t idl = copy_id(a, id);
	size_t tl = clean_title(a + idl, title->p, title->n, title->quoted);
	if (tl == 0)
		return 0;
	if (4 * (t->n + 1) > 3 * t->nslots && grow_slots(t) < 0)
		return -1;
	uint64_t key = key_of(a, idl);
	size_t s = find_slot(t, key, a, idl);
	if (t->slot[s]) { /* again: the later title, the ID's first place */
		t->e[t->slot[s] - 1].title_off = t->arena_len + idl;
		t->arena_len += idl + tl + 1;
		return 1;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 1024;
		struct entry *e = realloc(t->e, cap * sizeof *e);
		if (!e)
			return -1;
		t->e = e;
		t->cap = cap;
	}
	if (t->n >= UINT32_MAX - 1)
		return -1;
	t->e[t->n] = (struct entry){ key, t->arena_len, t->arena_len + idl, (uint32_t)idl };
	t->slot[s] = (uint32_t)++t->n;
	t->arena_len += idl + tl + 1;
	return 1;
}

/* A title that is only a number ("24", "-3.5"): what a column of ages, counts
 * or ratings holds, rarely a film's name. */
static int is_number(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	int digits = 0, dot = 0;
	for (; *s; s++) {
		if (*s >= '0' && *s <= '9')
			digits++;
		else if (*s == '.' && !dot)
			dot = 1;
		else
			return 0;
	}
	return digits > 0;
}

static int is_header_title(const struct span *title)
{
	static const char word[] = "title";
	if (title->n != 5)
		return 0;
	for (size_t i = 0; i < 5; i++)
		if ((title->p[i] | 0x20) != word[i])
			return 0;
	return 1;
}

/* ===================================================================== */
/* The interface                                                         */
/* ===================================================================== */

int mfs_titles_parse(mfs_titles **out, const char *buf, size_t len, const char *name,
		     mfs_diag *diag)
{
	if (!out || (!buf && len))
		return mfs_diag_set(diag, MFS_E_INVAL, 0, name, 0, 0, "no output or no text");
	const char *nul = len ? memchr(buf, 0, len) : NULL;
	if (nul)
		return mfs_diag_set(diag, MFS_E_PARSE, 0, name, 0, 0,
				    "not a title file: binary data (a NUL byte at offset %zu); %s",
				    (size_t)(nul - buf), EXPECTED);

	mfs_titles *t = calloc(1, sizeof *t);
	if (!t)
		return mfs_diag_set(diag, MFS_E_NOMEM, 0, name, 0, 0, "out of memory");
	int rc = 0;
	const char *p = buf, *end = buf + len;
	if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) /* a UTF-8 byte-order mark */
		p += 3;
	uint64_t ln = 0, records = 0, first_bad = 0;
	char why[160], first_why[160] = "";
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *s = p;
		size_t n = (size_t)(le - p);
		p = nl ? nl + 1 : end;
		ln++;
		if (n && s[n - 1] == '\r')
			n--;
		const char *b = s;
		size_t bn = n;
		trim(&b, &bn);
		if (bn == 0)
			continue;
		if (!t->format) {
			t->format = detect(s, n);
			if (!t->format) {
				rc = mfs_diag_set(diag, MFS_E_PARSE, 0, name, 0, 0,
						  "not a title file: line %llu has no '|', ',' or TAB; %s",
						  (unsigned long long)ln, EXPECTED);
				goto out;
			}
		}
		struct span id, title;
		int ok = split_line(t->format, s, n, &id, &title, why, sizeof why);
		if (ok == 0 && records == 0 && is_header_title(&title)) {
			records++;
			continue;
		}
		records++;
		if (ok == 0) {
			int a = add(t, &id, &title);
			if (a < 0) {
				rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, name, 0, 0, "out of memory");
				goto out;
			}
			if (a == 0) {
				snprintf(why, sizeof why, "empty title");
				ok = -1;
			}
		}
		if (ok < 0) {
			if (!t->skipped++) {
				first_bad = ln;
				snprintf(first_why, sizeof first_why, "%s", why);
				mfs_diag_set(&t->first_bad, MFS_E_PARSE, 0, name, ln, 0,
					     "%s (expected %s); line skipped", why,
					     format_shape[t->format]);
			}
		}
	}
	if (t->n == 0 && t->skipped == 0) {
		rc = mfs_diag_set(diag, MFS_E_PARSE, 0, name, 0, 0, "no titles in it; %s", EXPECTED);
		goto out;
	}
	if (t->skipped > t->n || t->n == 0) { /* most lines are not titles */
		rc = mfs_diag_set(diag, MFS_E_PARSE, 0, name, 0, 0,
				  "not a title file: %llu of %llu lines are not %s (line %llu: %s); %s",
				  (unsigned long long)t->skipped,
				  (unsigned long long)(t->skipped + t->n), format_shape[t->format],
				  (unsigned long long)first_bad, first_why, EXPECTED);
		goto out;
	}
	/* u.user (id|age|...), a ratings file cut to two columns: numbers, not titles */
	size_t numbers = 0, first_number = 0;
	for (size_t i = t->n; i-- > 0;)
		if (is_number(t->arena + t->e[i].title_off)) {
			numbers++;
			first_number = i;
		}
	if (t->n >= 3 && 2 * numbers > t->n) {
		const struct entry *e = &t->e[first_number];
		rc = mfs_diag_set(diag, MFS_E_PARSE, 0, name, 0, 0,
				  "not a title file: %zu of its %zu titles are numbers (such as "
				  "\"%.32s\"); %s",
				  numbers, t->n, t->arena + e->title_off, EXPECTED);
		goto out;
	}
	*out = t;
	return 0;
out:
	mfs_titles_free(t);
	return rc;
}

MFS_API int mfs_titles_load(mfs_titles **out, const char *path, mfs_diag *diag)
{
	if (!out || !path)
		return mfs_diag_set(diag, MFS_E_INVAL, 0, path, 0, 0, "no output or no path");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return mfs_diag_set(diag, e == ENOENT ? MFS_E_NOTFOUND : MFS_E_IO, e, path, 0, 0,
				    "cannot open: %s", strerror(e));
	}
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		rc = mfs_diag_set(diag, MFS_E_IO, EISDIR, path, 0, 0, "is a directory, not a title file");
		goto out;
	}
	for (;;) {
		if (len == cap) {
			if (cap > MFS_TITLES_MAX_BYTES) {
				rc = mfs_diag_set(diag, MFS_E_RANGE, 0, path, 0, 0,
						  "larger than %zu MiB: not a title file",
						  MFS_TITLES_MAX_BYTES >> 20);
				goto out;
			}
			size_t ncap = cap ? 2 * cap : 65536;
			if (ncap > MFS_TITLES_MAX_BYTES + 1) /* one byte more tells it is too big */
				ncap = MFS_TITLES_MAX_BYTES + 1;
			char *nb = realloc(buf, ncap);
			if (!nb) {
				rc = mfs_diag_set(diag, MFS_E_NOMEM, 0, path, 0, 0, "out of memory");
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t got = read(fd, buf + len, cap - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = errno;
			rc = mfs_diag_set(diag, MFS_E_IO, e, path, 0, 0, "cannot read: %s", strerror(e));
			goto out;
		}
		if (got == 0)
			break;
		/* binary data is refused at its first NUL, not after reading all of it */
		const char *nul = memchr(buf + len, 0, (size_t)got);
		len += (size_t)got;
		if (nul)
			break;
	}
	rc = mfs_titles_parse(out, buf, len, path, diag);
out:
	free(buf);
	close(fd);
	return rc;
}

MFS_API const char *mfs_titles_get(const mfs_titles *t, const char *id, size_t id_len)
{
	if (!t || !t->n || (!id && id_len))
		return NULL;
	uint32_t s = t->slot[find_slot(t, key_of(id, id_len), id, id_len)];
	return s ? t->arena + t->e[s - 1].title_off : NULL;
}

MFS_API size_t mfs_titles_count(const mfs_titles *t)
{
	return t ? t->n : 0;
}

MFS_API uint64_t mfs_titles_skipped(const mfs_titles *t, mfs_diag *first)
{
	if (!t)
		return 0;
	if (first) {
		if (t->skipped)
			*first = t->first_bad;
		else
			memset(first, 0, sizeof *first);
	}
	return t->skipped;
}

MFS_API int mfs_titles_at(const mfs_titles *t, size_t i, const char **id, size_t *id_len,
		  const char **title)
{
	if (!t || i >= t->n)
		return -MFS_E_RANGE;
	const struct entry *e = &t->e[i];
	if (id)
		*id = t->arena + e->id_off;
	if (id_len)
		*id_len = e->id_len;
	if (title)
		*title = t->arena + e->title_off;
	return 0;
}

MFS_API void mfs_titles_free(mfs_titles *t)
{
	if (!t)
		return;
	free(t->arena);
	free(t->e);
	free(t->slot);
	free(t);
}
