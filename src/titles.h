/*
 * titles.h - item titles from a buffer (the file-free core of
 * mfs_titles_load, for tests and the fuzz target). Internal.
 */
#ifndef MFS_TITLES_H
#define MFS_TITLES_H

#include <stddef.h>

#include "mfstream.h"

/* Largest title file mfs_titles_load reads. */
#define MFS_TITLES_MAX_BYTES ((size_t)256 << 20)

/*
 * Parse the whole text of a title file (buf[0..len), not NUL-terminated; not
 * modified). name is the file named in diag reasons (may be NULL). Same
 * returns and rules as mfs_titles_load.
 */
int mfs_titles_parse(mfs_titles **out, const char *buf, size_t len, const char *name,
		     mfs_diag *diag);

/* mfs_titles_at is public (mfstream.h). */

#endif
