/* cli_titles.h - --titles FILE for recommend, similar and inspect. */
#ifndef MFS_CLI_TITLES_H
#define MFS_CLI_TITLES_H

#include "mfstream.h"

/*
 * Load a title file (mfs_titles_load). A file that is not a title file is an
 * error; a few malformed lines are one warning. Returns 0, or EXIT_RUNTIME
 * after printing the reason.
 */
int cli_titles_load(const char *path, mfs_titles **out);

/*
 * Check that the titles are those of m's items: none of them found is an
 * error naming the file and what was expected (the IDs m was trained on, in
 * the file's first column); fewer than half found is a note. Returns 0, or
 * EXIT_RUNTIME after printing the reason.
 */
int cli_titles_check(const char *path, const mfs_titles *t, const mfs_model *m);

/* The title of item row of m, or NULL (no titles, or none for it). */
const char *cli_item_title(const mfs_titles *t, const mfs_model *m, uint32_t row);

#endif
