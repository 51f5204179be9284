/* error.c - the error table and diagnostics. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

static const char *const names[MFS_E_MAX_CODE] = {
	[MFS_E_OK] = "MFS_E_OK",
	[MFS_E_NOMEM] = "MFS_E_NOMEM",
	[MFS_E_INVAL] = "MFS_E_INVAL",
	[MFS_E_IO] = "MFS_E_IO",
	[MFS_E_PARSE] = "MFS_E_PARSE",
	[MFS_E_CORRUPT] = "MFS_E_CORRUPT",
	[MFS_E_VERSION] = "MFS_E_VERSION",
	[MFS_E_FULL] = "MFS_E_FULL",
	[MFS_E_UNSUPPORTED] = "MFS_E_UNSUPPORTED",
	[MFS_E_NOTFOUND] = "MFS_E_NOTFOUND",
	[MFS_E_RANGE] = "MFS_E_RANGE",
	[MFS_E_TRUNCATED] = "MFS_E_TRUNCATED",
	[MFS_E_AGAIN] = "MFS_E_AGAIN",
	[MFS_E_BUSY] = "MFS_E_BUSY",
};

MFS_API const char *mfs_error_name(int code)
{
	if (code < 0)
		code = -code;
	if (code >= MFS_E_MAX_CODE || !names[code])
		return "MFS_E_UNKNOWN";
	return names[code];
}

int mfs_diag_set(mfs_diag *d, int code, int os_errno, const char *path, uint64_t line,
		 uint64_t offset, const char *fmt, ...)
{
	if (d) {
		memset(d, 0, sizeof *d);
		d->code = code;
		d->os_errno = os_errno;
		if (path)
			snprintf(d->path, sizeof d->path, "%s", path);
		d->line = line;
		d->offset = offset;
		if (fmt) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(d->reason, sizeof d->reason, fmt, ap);
			va_end(ap);
		}
	}
	return -code;
}

void mfs_diag_report(mfs_bad_record_fn fn, void *ctx, int code, const char *where, uint64_t line,
		     const char *fmt, ...)
{
	if (!fn)
		return;
	mfs_diag d;
	mfs_diag_set(&d, code, 0, where, line, 0, NULL);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d.reason, sizeof d.reason, fmt, ap);
	va_end(ap);
	fn(ctx, &d);
}

MFS_API int mfs_diag_format(const mfs_diag *d, char *buf, size_t len)
{
	if (!d)
		return snprintf(buf, len, "unknown error");
	const char *reason = d->reason[0] ? d->reason : mfs_error_name(d->code);
	if (d->path[0] && d->line)
		return snprintf(buf, len, "%s:%llu: %s", d->path, (unsigned long long)d->line, reason);
	if (d->path[0] && d->offset)
		return snprintf(buf, len, "%s: byte offset %llu: %s", d->path,
				(unsigned long long)d->offset, reason);
	if (d->path[0])
		return snprintf(buf, len, "%s: %s", d->path, reason);
	return snprintf(buf, len, "%s", reason);
}

void *mfs_alloc_aligned(size_t size)
{
	size_t rounded = (size + 63) & ~(size_t)63;
	if (rounded == 0)
		rounded = 64;
	void *p = aligned_alloc(64, rounded);
	if (p)
		memset(p, 0, rounded);
	return p;
}

#define MFS_HUGE ((size_t)2 << 20)

void *mfs_alloc_huge(size_t size)
{
	size_t len = (size + MFS_HUGE - 1) & ~(MFS_HUGE - 1);
	if (len == 0)
		len = MFS_HUGE;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* (fuzz builds only: every input makes a model, and zeroing a 2 MiB page
	 * per table would be most of the time) */
#if defined(MADV_HUGEPAGE) && !defined(MFS_FUZZ_NO_HUGE_PAGES)
	madvise(p, len, MADV_HUGEPAGE);
#endif
	return p;
}

void mfs_free_huge(void *p, size_t size)
{
	size_t len = (size + MFS_HUGE - 1) & ~(MFS_HUGE - 1);
	if (p)
		munmap(p, len ? len : MFS_HUGE);
}
