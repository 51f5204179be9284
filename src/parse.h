/*
 * parse.h - records (one line of text) -> events. Internal.
 *
 * Formats: tsv, csv, dat (MovieLens "::"), ssv (LIBMF's space-separated), jsonl. A line never includes its
 * '\n'; a trailing '\r' (CRLF files) is accepted and ignored by every parser.
 * The line buffer is mutable: the jsonl parser unescapes string IDs in place,
 * and the event's user/item pointers point into the line.
 */
#ifndef MFS_PARSE_H
#define MFS_PARSE_H

#include <stddef.h>

#include "mfstream.h"

/*
 * jsonl field names (NUL-terminated, at most MFS_FIELD_MAX bytes each). A
 * name with dots is also a path into nested objects (see mfs_parse_line).
 * dotted: some name holds a '.' (set by mfs_fields_parse).
 */
#define MFS_FIELD_MAX 63
/* Event types of a type=FIELD spec, each with its weight (weight:NAME=W entries). */
#define MFS_TYPES_MAX 16
#define MFS_TYPE_MAX 31
struct mfs_fields {
	char user[MFS_FIELD_MAX + 1];
	char item[MFS_FIELD_MAX + 1];
	char rating[MFS_FIELD_MAX + 1];
	char time[MFS_FIELD_MAX + 1];
	char type[MFS_FIELD_MAX + 1]; /* "" unless given: the event-type field */
	int dotted;
	int unrated; /* "unrated": the rating may be missing (2-field lines, JSON without it): 1 */
	int ntypes;
	char tname[MFS_TYPES_MAX][MFS_TYPE_MAX + 1];
	float tweight[MFS_TYPES_MAX];
};

/*
 * Parse a --fields spec "user=userId,item=movieId,rating=rating,time=ts"
 * (any subset, any order) onto the defaults "user","item","rating","time".
 * type=FIELD names an event-type field: the rating is then the weight of the
 * event's type, given by weight:TYPE=W entries (W a number >= 0); an event of
 * a type without a weight is a malformed record ("unknown event type").
 * The entry "unrated" (no '=') makes the rating optional, for implicit
 * feedback: a delimited line of 2 fields, or a JSON object without the
 * rating field, is an event of rating 1.
 * spec NULL or "" keeps the defaults. Returns 0 or -MFS_E_INVAL with a reason
 * written to reason (NUL-terminated, rlen bytes at most).
 */
int mfs_fields_parse(struct mfs_fields *f, const char *spec, char *reason, size_t rlen);

/* The highest MFS_FORMAT_* value. */
#define MFS_FORMAT_LAST MFS_FORMAT_SSV

/*
 * Decide the format of a file from its first non-empty line (line, len as
 * above): '{' -> jsonl, a TAB -> tsv, "::" -> dat, ',' -> csv, else 3 or 4
 * fields between spaces -> ssv.
 * Returns MFS_FORMAT_* or -MFS_E_PARSE when none fits.
 */
int mfs_parse_detect(const char *line, size_t len);

/*
 * Parse one line. Returns 1 and fills *ev for a record; 0 for a line that
 * holds no record (empty or only whitespace); -MFS_E_PARSE for a malformed
 * record, with a reason for a person in reason (e.g. `rating "x" is not a
 * number`, `missing item field`, `user ID longer than 255 bytes`).
 * Rules: IDs are non-empty byte strings of at most MFS_ID_MAX bytes, never
 * parsed as numbers; rating is a finite decimal number (no nan/inf/hex,
 * no overflow to inf); time is optional (0 when absent), an integer or a
 * decimal (truncated). tsv/csv/dat/ssv: 3 or 4 fields, more is an error. ssv
 * fields are separated by runs of spaces or tabs (blanks at either end are
 * ignored), as LIBMF reads them. csv
 * fields may be double-quoted ("a,b" with "" for a quote). jsonl: a JSON
 * object; the full JSON grammar is checked; unknown fields and nested values
 * are skipped; IDs may be strings or numbers (the number's text is the ID);
 * the rating may be a number or a string holding a number; time likewise.
 * A field name with dots is matched as a whole key first, then split at its
 * dots into keys of nested objects: "payload.userId" is {"payload.userId": 1}
 * or {"payload": {"userId": 1}}, and a key at any level may hold dots
 * ({"payload": {"user.id": 1}} for "payload.user.id"). The match that splits
 * the name fewest times wins, among equal ones the last in the line. Arrays
 * are never entered (no "items.0").
 */
int mfs_parse_line(int format, const struct mfs_fields *f, char *line, size_t len,
		   mfs_event *ev, char *reason, size_t rlen);

/*
 * Whether the line looks like a csv/tsv/dat header rather than a record
 * (its rating field is not a number, e.g. "userId,movieId,rating,timestamp").
 * The source calls it for the first record line of a file only.
 */
int mfs_parse_is_header(int format, const char *line, size_t len);

/* Parse a finite decimal number in s[0..len); 0 and *out, or -1. */
int mfs_parse_number(const char *s, size_t len, double *out);

#endif
