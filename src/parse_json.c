/*
 * parse_json.c - a jsonl record -> an event: the full JSON grammar (RFC 8259)
 * of the line checked in one pass, unknown members skipped, the kept string
 * values decoded in place in the caller's line buffer (see parse.c).
 */
#include "parse_internal.h"
/* ===================================================================== */
/* jsonl                                                                 */
/* ===================================================================== */

#define JSON_DEPTH_MAX 64

enum jtype { J_NONE = 0, J_STRING, J_NUMBER, J_TRUE, J_FALSE, J_NULL, J_OBJECT, J_ARRAY };

struct jp {
	char *base; /* the line, for columns in reasons */
	char *p;
	char *end;
	const struct err *e;
};

MFS_PRINTF(2, 3)
static int jfail(const struct jp *j, const char *fmt, ...)
{
	const struct err *e = j->e;
	if (e->buf && e->len) {
		char what[128];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(what, sizeof what, fmt, ap);
		va_end(ap);
		snprintf(e->buf, e->len, "malformed JSON at column %zu: %s",
			 (size_t)(j->p - j->base) + 1, what);
	}
	return -MFS_E_PARSE;
}

static inline void jws(struct jp *j)
{
	while (j->p < j->end) {
		char c = *j->p;
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		j->p++;
	}
}

static int hex4(const char *s, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned char c = (unsigned char)s[i];
		unsigned d;
		if (is_digit(c))
			d = c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			d = (unsigned)((c | 0x20) - 'a' + 10);
		else
			return -1;
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

/*
 * A string; j->p at its opening quote. On success j->p is past the closing
 * quote and *out holds its content: decoded in place when decode is set
 * (the decoded bytes never outgrow the escaped text), the raw text otherwise.
 */
static int json_string_slow(struct jp *j, int decode, struct field *out, char *start, char *s);

#if MFS_SWAR
/* High bit of each byte that ends the plain part of a string: '"', '\\', < 0x20. */
static inline uint64_t string_stops(uint64_t w)
{
	uint64_t ctl = ~(((w & LOW7) + ONES * 0x60) | w) & ~LOW7;
	return eq_mask(w, ONES * '"') | eq_mask(w, ONES * '\\') | ctl;
}
#endif

static inline int json_string(struct jp *j, int decode, struct field *out)
{
	char *start = j->p + 1, *s = start, *end = j->end;
	/* Fast path: up to the first quote, backslash or control byte. */
#if MFS_SWAR
	for (; end - s >= 8; s += 8) {
		uint64_t m = string_stops(load8(s));
		if (m) {
			s += __builtin_ctzll(m) >> 3;
			goto stop;
		}
	}
#endif
	while (s < end && *s != '"' && *s != '\\' && (unsigned char)*s >= 0x20)
		s++;
#if MFS_SWAR
stop:
#endif
	if (MFS_LIKELY(s < end && *s == '"')) {
		*out = (struct field){ start, (size_t)(s - start), 0 };
		j->p = s + 1;
		return 0;
	}
	return json_string_slow(j, decode, out, start, s);
}

/* From the first byte that is not plain text (or the end) on: escapes, errors. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int json_string_slow(struct jp *j, int decode, struct field *out, char *start, char *s)
{
	char *end = j->end;
	char *d = s; /* write position when decoding */
	for (;;) {
		if (s >= end) {
			j->p = s;
			return jfail(j, "unterminated string");
		}
		unsigned char c = (unsigned char)*s;
		if (c == '"')
			break;
		if (c < 0x20) {
			j->p = s;
			return jfail(j, "control character \\x%02x in a string", c);
		}
		if (c != '\\') {
			if (decode)
				*d = (char)c;
			d++;
			s++;
			continue;
		}
		if (s + 1 >= end) {
			j->p = s + 1;
			return jfail(j, "unterminated string");
		}
		char x;
		switch (s[1]) {
		case '"': x = '"'; break;
		case '\\': x = '\\'; break;
		case '/': x = '/'; break;
		case 'b': x = '\b'; break;
		case 'f': x = '\f'; break;
		case 'n': x = '\n'; break;
		case 'r': x = '\r'; break;
		case 't': x = '\t'; break;
		case 'u': {
			unsigned cp;
			if (end - s < 6 || hex4(s + 2, &cp) != 0) {
				j->p = s;
				return jfail(j, "bad \\u escape");
			}
			size_t used = 6;
			if (cp >= 0xDC00 && cp <= 0xDFFF) {
				j->p = s;
				return jfail(j, "lone low surrogate \\u%04X", cp);
			}
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				unsigned lo;
				if (end - s < 12 || s[6] != '\\' || s[7] != 'u' || hex4(s + 8, &lo) != 0 ||
				    lo < 0xDC00 || lo > 0xDFFF) {
					j->p = s;
					return jfail(j, "high surrogate \\u%04X without a low one", cp);
				}
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				used = 12;
			}
			char u[4];
			size_t nu;
			if (cp < 0x80) {
				u[0] = (char)cp;
				nu = 1;
			} else if (cp < 0x800) {
				u[0] = (char)(0xC0 | cp >> 6);
				u[1] = (char)(0x80 | (cp & 0x3F));
				nu = 2;
			} else if (cp < 0x10000) {
				u[0] = (char)(0xE0 | cp >> 12);
				u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
				u[2] = (char)(0x80 | (cp & 0x3F));
				nu = 3;
			} else {
				u[0] = (char)(0xF0 | cp >> 18);
				u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
				u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
				u[3] = (char)(0x80 | (cp & 0x3F));
				nu = 4;
			}
			if (decode)
				memcpy(d, u, nu);
			d += nu;
			s += used;
			continue;
		}
		default:
			j->p = s;
			return jfail(j, "bad escape \\%s", mfs_parse_quote((char[QUOTE_BUF]){ 0 }, s + 1, 1));
		}
		if (decode)
			*d = x;
		d++;
		s += 2;
	}
	*out = (struct field){ start, decode ? (size_t)(d - start) : (size_t)(s - start), 0 };
	j->p = s + 1;
	return 0;
}

/* A number (RFC 8259 grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?). */
static inline int json_number(struct jp *j, struct field *out)
{
	char *s = j->p, *p = s, *end = j->end;
	if (p < end && *p == '-')
		p++;
	if (p >= end || !is_digit((unsigned char)*p)) {
		j->p = p;
		return jfail(j, "bad number");
	}
	if (*p == '0') {
		p++;
		if (p < end && is_digit((unsigned char)*p)) {
			j->p = p;
			return jfail(j, "leading zero in a number");
		}
	} else {
		while (p < end && is_digit((unsigned char)*p))
			p++;
	}
	if (p < end && *p == '.') {
		p++;
		if (p >= end || !is_digit((unsigned char)*p)) {
			j->p = p;
			return jfail(j, "no digit after the decimal point");
		}
		while (p < end && is_digit((unsigned char)*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit((unsigned char)*p)) {
			j->p = p;
			return jfail(j, "no digit in the exponent");
		}
		while (p < end && is_digit((unsigned char)*p))
			p++;
	}
	*out = (struct field){ s, (size_t)(p - s), 0 };
	j->p = p;
	return 0;
}

static int json_value(struct jp *j, int depth, int decode, enum jtype *type, struct field *out);

/* An object or array; j->p at '{' or '['. depth is the depth it opens. */
static int json_container(struct jp *j, int depth)
{
	if (depth > JSON_DEPTH_MAX)
		return jfail(j, "nested deeper than %d levels", JSON_DEPTH_MAX);
	int obj = *j->p == '{';
	char close = obj ? '}' : ']';
	enum jtype t;
	struct field f;
	int rc;
	j->p++;
	jws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		if (obj) {
			if (j->p >= j->end || *j->p != '"')
				return jfail(j, "expected a string key");
			if ((rc = json_string(j, 0, &f)) < 0)
				return rc;
			jws(j);
			if (j->p >= j->end || *j->p != ':')
				return jfail(j, "expected ':'");
			j->p++;
			jws(j);
		}
		if ((rc = json_value(j, depth, 0, &t, &f)) < 0)
			return rc;
		jws(j);
		if (j->p >= j->end)
			return jfail(j, obj ? "unterminated object" : "unterminated array");
		if (*j->p == ',') {
			j->p++;
			jws(j);
			continue;
		}
		if (*j->p == close) {
			j->p++;
			return 0;
		}
		return jfail(j, obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

/* Any value; j->p at its first byte. depth is that of the enclosing container. */
static int json_value(struct jp *j, int depth, int decode, enum jtype *type, struct field *out)
{
	static const struct {
		const char *word;
		size_t len;
		enum jtype type;
	} lits[] = { { "true", 4, J_TRUE }, { "false", 5, J_FALSE }, { "null", 4, J_NULL } };
	char *s = j->p;
	int rc;
	if (s >= j->end)
		return jfail(j, "expected a value");
	switch (*s) {
	case '"':
		*type = J_STRING;
		return json_string(j, decode, out);
	case '{':
	case '[':
		*type = *s == '{' ? J_OBJECT : J_ARRAY;
		if ((rc = json_container(j, depth + 1)) < 0)
			return rc;
		*out = (struct field){ s, (size_t)(j->p - s), 0 };
		return 0;
	case 't':
	case 'f':
	case 'n':
		for (size_t i = 0; i < sizeof lits / sizeof lits[0]; i++) {
			if (*s == lits[i].word[0] && (size_t)(j->end - s) >= lits[i].len &&
			    memcmp(s, lits[i].word, lits[i].len) == 0) {
				*type = lits[i].type;
				*out = (struct field){ s, lits[i].len, 0 };
				j->p = s + lits[i].len;
				return 0;
			}
		}
		return jfail(j, "unexpected character '%c'", *s);
	default:
		if (*s == '-' || is_digit((unsigned char)*s)) {
			*type = J_NUMBER;
			return json_number(j, out);
		}
		{
			char q[QUOTE_BUF];
			return jfail(j, "unexpected character \"%s\"", mfs_parse_quote(q, s, 1));
		}
	}
}

enum { ROLE_USER, ROLE_ITEM, ROLE_RATING, ROLE_TIME, ROLE_TYPE, NROLES };

/*
 * Whether a decoded key is the field name (NUL-terminated, at most
 * MFS_FIELD_MAX bytes): 1 the whole name, 2 the part of it before a '.'
 * (the rest is looked for inside the key's value), 0 neither.
 */
static inline int key_match(const struct field *key, const char *name)
{
	if (key->n > MFS_FIELD_MAX || name[0] != (key->n ? key->p[0] : 0))
		return 0;
	for (size_t i = 1; i < key->n; i++)
		if (name[i] != key->p[i] || name[i] == 0)
			return 0;
	return name[key->n] == 0 ? 1 : name[key->n] == '.' ? 2 : 0;
}

/* A name no key can match (it is longer than MFS_FIELD_MAX, and longer keys
 * never match): the roles not looked for inside a nested object, so that the
 * key loop needs no test. */
static const char no_name[] = "\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1"
				 "\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1\1";

/* A value found for a role, and how many of its name's dots were nesting. */
struct jgot {
	enum jtype type;
	unsigned splits;
	struct field v;
};

/*
 * The members of an object; j->p at its '{', depth its own depth. rem[r] is
 * what is left of role r's name to match at this level (no_name: r is not
 * looked for here), splits how many dots of the names were taken as nesting to get
 * here. A key matching a whole remaining name gives its value to the role if
 * no match with fewer splits was found (equal ones: the last wins); a key
 * matching the part before a dot, with an object value, is searched for the
 * rest. Arrays are never entered.
 */
static int json_object_dotted(struct jp *j, int depth, const char *const rem[NROLES],
			      unsigned splits, struct jgot got[NROLES]);

/* dotted 0: no name holds a dot (the common case, compiled apart: no nesting
 * and no splits to compare). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline int json_object(struct jp *j, int depth, const char *const rem[NROLES],
			      unsigned splits, struct jgot got[NROLES], const int dotted)
{
	int rc;
	if (depth > JSON_DEPTH_MAX)
		return jfail(j, "nested deeper than %d levels", JSON_DEPTH_MAX);
	j->p++;
	jws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		struct field key, val;
		enum jtype t;
		if (j->p >= j->end || *j->p != '"')
			return jfail(j, "expected a string key");
		if ((rc = json_string(j, 1, &key)) < 0)
			return rc;
		unsigned whole = 0, inner = 0;
		for (int r = 0; r < NROLES; r++) {
			int m = key_match(&key, rem[r]);
			if (m) {
				if (m == 1)
					whole |= 1u << r;
				else
					inner |= 1u << r;
			}
		}
		jws(j);
		if (j->p >= j->end || *j->p != ':')
			return jfail(j, "expected ':'");
		j->p++;
		jws(j);
		if (j->p < j->end && *j->p == '"') { /* the common cases inline */
			t = J_STRING;
			rc = json_string(j, whole != 0, &val);
		} else if (j->p < j->end && (is_digit((unsigned char)*j->p) || *j->p == '-')) {
			t = J_NUMBER;
			rc = json_number(j, &val);
		} else if (dotted && inner != 0 && j->p < j->end && *j->p == '{') {
			const char *sub[NROLES];
			for (int r = 0; r < NROLES; r++)
				sub[r] = inner & (1u << r) ? rem[r] + key.n + 1 : no_name;
			char *s0 = j->p;
			t = J_OBJECT;
			rc = json_object_dotted(j, depth + 1, sub, splits + 1, got);
			val = (struct field){ s0, (size_t)(j->p - s0), 0 };
		} else {
			rc = json_value(j, depth, whole != 0, &t, &val);
		}
		if (rc < 0)
			return rc;
		if (whole)
			for (int r = 0; r < NROLES; r++) /* a repeated key: the last one wins */
				if ((whole & (1u << r)) && (!dotted || splits <= got[r].splits))
					got[r] = (struct jgot){ t, splits, val };
		jws(j);
		if (j->p >= j->end)
			return jfail(j, "unterminated object");
		if (*j->p == ',') {
			j->p++;
			jws(j);
			continue;
		}
		if (*j->p == '}') {
			j->p++;
			return 0;
		}
		return jfail(j, "expected ',' or '}'");
	}
}

#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int json_object_dotted(struct jp *j, int depth, const char *const rem[NROLES],
			      unsigned splits, struct jgot got[NROLES])
{
	return json_object(j, depth, rem, splits, got, 1);
}

/*
 * The top-level keys of the object on line, quoted and comma-separated into
 * buf (cut with "..." when they do not fit): the reason for a missing field
 * names what there is, so that --fields can be written from it. Error path
 * only. Returns 0, or -1 when the object cannot be walked again (a key the
 * failed parse decoded in place): then buf says nothing.
 */
static int object_keys(char *line, size_t len, char *buf, size_t blen)
{
	const struct err quiet = { NULL, 0 };
	struct jp j = { line, line, line + len, &quiet };
	size_t o = 0;
	buf[0] = 0;
	jws(&j);
	if (j.p >= j.end || *j.p != '{')
		return -1;
	j.p++;
	jws(&j);
	if (j.p < j.end && *j.p == '}')
		return 0;
	for (int k = 0;; k++) {
		struct field key, val;
		enum jtype t;
		char q[QUOTE_BUF];
		if (j.p >= j.end || *j.p != '"' || json_string(&j, 0, &key) < 0)
			goto fail;
		for (size_t i = 0; i < key.n; i++)
			if ((unsigned char)key.p[i] < 0x20)
				goto fail; /* decoded in place: not the key as written */
		if (o + 8 < blen) {
			int w = snprintf(buf + o, blen - o, "%s\"%s\"", k ? ", " : "",
					 mfs_parse_quote(q, key.p, key.n));
			if (w < 0 || o + (size_t)w + 8 >= blen) {
				snprintf(buf + o, blen - o, "%s...", k ? ", " : "");
				o = blen; /* full: walk on without writing */
			} else {
				o += (size_t)w;
			}
		}
		jws(&j);
		if (j.p >= j.end || *j.p != ':')
			goto fail;
		j.p++;
		jws(&j);
		if (json_value(&j, 1, 0, &t, &val) < 0)
			goto fail;
		jws(&j);
		if (j.p < j.end && *j.p == '}')
			return 0;
		if (j.p >= j.end || *j.p != ',')
			goto fail;
		j.p++;
		jws(&j);
	}
fail:
	buf[0] = 0;
	return -1;
}

int mfs_parse_jsonl(const struct err *e, const struct mfs_fields *f, char *line, size_t len,
		       mfs_event *ev)
{
	const int typed = f->type[0] != 0;
	const char *const names[NROLES] = { f->user, f->item, typed ? no_name : f->rating, f->time,
					    typed ? f->type : no_name };
	struct jgot got[NROLES];
	struct jp j = { line, line, line + len, e };
	char q[QUOTE_BUF];
	int rc;

	for (int r = 0; r < NROLES; r++)
		got[r] = (struct jgot){ J_NONE, UINT32_MAX, { NULL, 0, 0 } };
	jws(&j);
	if (j.p >= j.end || *j.p != '{')
		return jfail(&j, "expected a JSON object");
	rc = f->dotted ? json_object_dotted(&j, 1, names, 0, got) : json_object(&j, 1, names, 0, got, 0);
	if (rc < 0)
		return rc;
	jws(&j);
	if (j.p != j.end)
		return jfail(&j, "unexpected text after the object");

	static const char *const role_name[NROLES] = { "user", "item", "rating", "time", "type" };
	for (int r = 0; r < NROLES; r++) {
		if (r != ROLE_TIME && r != (typed ? ROLE_RATING : ROLE_TYPE) &&
		    !(r == ROLE_RATING && f->unrated) && got[r].type == J_NONE) {
			char keys[160];
			int walked = object_keys(line, len, keys, sizeof keys) == 0;
			return fail(e, "missing \"%s\" field (%s%s%sname the fields with --fields "
				    "%s=KEY,...)",
				    mfs_parse_quote(q, names[r], strnlen(names[r], MFS_FIELD_MAX + 1)),
				    !walked ? "" : keys[0] ? "the object has the keys " : "the object has no keys",
				    walked ? keys : "", walked ? "; " : "", role_name[r]);
		}
	}
	for (int r = ROLE_USER; r <= ROLE_ITEM; r++) {
		if (got[r].type != J_STRING && got[r].type != J_NUMBER)
			return fail(e, "%s ID \"%s\" is not a string or a number", role_name[r],
				    mfs_parse_quote(q, got[r].v.p, got[r].v.n));
		if ((rc = mfs_parse_check_id(e, role_name[r], got[r].v.n)) < 0)
			return rc;
	}
	struct field *v = &got[ROLE_RATING].v;
	if (typed) {
		/* the rating is the weight of the event's type */
		v = &got[ROLE_TYPE].v;
		if (got[ROLE_TYPE].type != J_STRING && got[ROLE_TYPE].type != J_NUMBER)
			return fail(e, "event type \"%s\" is not a string", mfs_parse_quote(q, v->p, v->n));
		int t = 0;
		while (t < f->ntypes && !(strlen(f->tname[t]) == v->n &&
					  memcmp(f->tname[t], v->p, v->n) == 0))
			t++;
		if (t == f->ntypes)
			return fail(e, "unknown event type \"%s\" (no weight for it in --weights)",
				    mfs_parse_quote(q, v->p, v->n));
		ev->rating = f->tweight[t];
	} else if (got[ROLE_RATING].type == J_NONE) {
		ev->rating = 1.0f; /* unrated (checked above): an interaction weighs 1 */
	} else {
		if (got[ROLE_RATING].type != J_STRING && got[ROLE_RATING].type != J_NUMBER)
			return fail(e, "rating \"%s\" is not a number", mfs_parse_quote(q, v->p, v->n));
		if ((rc = mfs_parse_rating(e, v->p, v->n, &ev->rating)) < 0)
			return rc;
	}
	ev->time = 0;
	v = &got[ROLE_TIME].v;
	switch (got[ROLE_TIME].type) {
	case J_NONE:
	case J_NULL:
		break;
	case J_STRING:
	case J_NUMBER:
		if ((rc = mfs_parse_time(e, v->p, v->n, &ev->time)) < 0)
			return rc;
		break;
	default:
		return fail(e, "time \"%s\" is not a number", mfs_parse_quote(q, v->p, v->n));
	}
	ev->user = got[ROLE_USER].v.p;
	ev->user_len = (uint32_t)got[ROLE_USER].v.n;
	ev->item = got[ROLE_ITEM].v.p;
	ev->item_len = (uint32_t)got[ROLE_ITEM].v.n;
	return 1;
}

/* ===================================================================== */
/* The interface                                                         */
/* ===================================================================== */

