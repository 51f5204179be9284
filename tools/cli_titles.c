/* cli_titles.c - --titles FILE: load it, check it names the model's items. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_titles.h"

int cli_titles_load(const char *path, mfs_titles **out)
{
	mfs_diag d;
	if (mfs_titles_load(out, path, &d) < 0) {
		cli_diag(&d);
		return EXIT_RUNTIME;
	}
	uint64_t skipped = mfs_titles_skipped(*out, &d);
	if (skipped) {
		char buf[1024];
		mfs_diag_format(&d, buf, sizeof buf);
		cli_error("warning: %s", buf);
		if (skipped > 1)
			cli_error("warning: %s: %llu malformed lines skipped in all", path,
				  (unsigned long long)skipped);
	}
	return 0;
}

/* Up to two IDs, quoted, for a message: "1", "50". */
static void some_ids(char *buf, size_t len, const char *a, size_t an, const char *b, size_t bn)
{
	int n = snprintf(buf, len, "\"%.*s\"", (int)(an > 40 ? 40 : an), a);
	if (b && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ", \"%.*s\"", (int)(bn > 40 ? 40 : bn), b);
}

int cli_titles_check(const char *path, const mfs_titles *t, const mfs_model *m)
{
	mfs_model_info info;
	mfs_model_info_get(m, &info);
	uint64_t items = 0, found = 0;
	const char *mid[2] = { NULL, NULL };
	size_t mlen[2] = { 0, 0 };
	for (uint64_t r = 0; r < info.item_rows; r++) {
		const char *id;
		size_t len;
		if (mfs_model_row(m, MFS_ITEMS, (uint32_t)r, &id, &len, NULL) != 0)
			continue; /* hashed mode: a row never used */
		if (items < 2) {
			mid[items] = id;
			mlen[items] = len;
		}
		items++;
		found += mfs_titles_get(t, id, len) != NULL;
	}
	if (items == 0 || 2 * found >= items)
		return 0;
	if (found) {
		cli_error("note: %s has titles for %llu of the model's %llu items", path,
			  (unsigned long long)found, (unsigned long long)items);
		return 0;
	}
	char model_ids[128], file_ids[128];
	some_ids(model_ids, sizeof model_ids, mid[0], mlen[0], mid[1], mlen[1]);
	const char *f0, *f1 = NULL;
	size_t n0, n1 = 0;
	mfs_titles_at(t, 0, &f0, &n0, NULL); /* a loaded table has at least one */
	if (mfs_titles_at(t, 1, &f1, &n1, NULL) != 0)
		f1 = NULL;
	some_ids(file_ids, sizeof file_ids, f0, n0, f1, n1);
	cli_error("%s: none of the model's %llu items has a title in it (item IDs in the model: "
		  "%s; in the file: %s); expected a title file whose first column holds the item "
		  "IDs the model was trained on",
		  path, (unsigned long long)items, model_ids, file_ids);
	return EXIT_RUNTIME;
}

const char *cli_item_title(const mfs_titles *t, const mfs_model *m, uint32_t row)
{
	const char *id;
	size_t len;
	if (!t || mfs_model_row(m, MFS_ITEMS, row, &id, &len, NULL) != 0)
		return NULL;
	return mfs_titles_get(t, id, len);
}
