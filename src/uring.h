/*
 * uring.h - chunked sequential file reads with several reads in flight
 * (io_uring). Internal. src/uring.c is the only file that includes liburing.h.
 *
 * A reader keeps `depth` reads of `chunk` bytes in flight ahead of the
 * consumer, into buffers allocated once (and registered with the kernel when
 * it allows), and hands the chunks back in file order. A short read means the
 * end of the file as it is now: the reads beyond it are drained and dropped,
 * and the next call starts again from the end (so a growing file is followed
 * without gaps).
 */
#ifndef MFS_URING_H
#define MFS_URING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mfs_uring;

/*
 * Create a reader (depth >= 1 buffers of chunk bytes). Returns 0, or
 * -MFS_E_UNSUPPORTED when the kernel refuses io_uring (ENOSYS, EPERM from a
 * seccomp filter, kernel.io_uring_disabled), with the errno in *os_errno;
 * -MFS_E_NOMEM.
 */
int mfs_uring_create(struct mfs_uring **out, unsigned depth, size_t chunk, int *os_errno);
void mfs_uring_free(struct mfs_uring *u);

/* Start reading fd (borrowed) at byte offset off; drops any reads in flight. */
void mfs_uring_start(struct mfs_uring *u, int fd, uint64_t off);

/*
 * The next chunk in file order: *buf points into the reader and stays valid
 * until the next call. Returns its length (> 0), 0 at the end of the file, or
 * a negated errno.
 */
ssize_t mfs_uring_next(struct mfs_uring *u, const uint8_t **buf);

/* Whether the buffers are registered with the kernel (fixed reads). */
int mfs_uring_registered(const struct mfs_uring *u);

#endif
