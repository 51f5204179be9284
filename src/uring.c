/* uring.c - read-ahead over io_uring: the only file that includes liburing.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <liburing.h>

#include "internal.h"
#include "uring.h"

#define MFS_URING_MAX 64

struct slot {
	uint64_t off;
	int inflight; /* submitted, completion not seen yet */
	int done;     /* completion seen, res valid */
	int res;
};

struct mfs_uring {
	struct io_uring ring;
	unsigned depth;
	size_t chunk;
	uint8_t *mem;
	int fixed;
	int fd;
	uint64_t next_off; /* offset of the next read to submit */
	unsigned head;     /* slot the consumer gets next */
	unsigned queued;   /* slots submitted or done, from head on */
	int held;          /* the consumer holds slot head-1 (its buffer) */
	struct slot s[MFS_URING_MAX];
};

int mfs_uring_create(struct mfs_uring **out, unsigned depth, size_t chunk, int *os_errno)
{
	*os_errno = 0;
	if (depth < 1 || depth > MFS_URING_MAX || chunk == 0 || chunk > (1u << 30))
		return -MFS_E_INVAL;
	struct mfs_uring *u = calloc(1, sizeof *u);
	if (!u)
		return -MFS_E_NOMEM;
	int rc = io_uring_queue_init(depth * 2, &u->ring, 0);
	if (rc < 0) {
		*os_errno = -rc;
		free(u);
		return rc == -ENOMEM ? -MFS_E_NOMEM : -MFS_E_UNSUPPORTED;
	}
	u->mem = mfs_alloc_aligned(chunk * depth);
	if (!u->mem) {
		io_uring_queue_exit(&u->ring);
		free(u);
		return -MFS_E_NOMEM;
	}
	u->depth = depth;
	u->chunk = chunk;
	u->fd = -1;
	/* Registered buffers save the kernel a page walk per read; not essential. */
	struct iovec iov[MFS_URING_MAX];
	for (unsigned i = 0; i < depth; i++) {
		iov[i].iov_base = u->mem + (size_t)i * chunk;
		iov[i].iov_len = chunk;
	}
	u->fixed = io_uring_register_buffers(&u->ring, iov, depth) == 0;
	*out = u;
	return 0;
}

int mfs_uring_registered(const struct mfs_uring *u)
{
	return u->fixed;
}

static void reap_one(struct mfs_uring *u, int wait)
{
	struct io_uring_cqe *cqe;
	int rc;
	do {
		rc = wait ? io_uring_wait_cqe(&u->ring, &cqe) : io_uring_peek_cqe(&u->ring, &cqe);
	} while (rc == -EINTR);
	if (rc < 0)
		return;
	unsigned i = (unsigned)io_uring_cqe_get_data64(cqe);
	if (i < u->depth) {
		u->s[i].res = cqe->res;
		u->s[i].inflight = 0;
		u->s[i].done = 1;
	}
	io_uring_cqe_seen(&u->ring, cqe);
}

/* Wait for every read in flight and forget them all. */
static void drain(struct mfs_uring *u)
{
	for (;;) {
		int any = 0;
		for (unsigned i = 0; i < u->depth; i++)
			any |= u->s[i].inflight;
		if (!any)
			break;
		reap_one(u, 1);
	}
	for (unsigned i = 0; i < u->depth; i++)
		u->s[i].done = 0;
	u->queued = 0;
	u->held = 0;
}

void mfs_uring_free(struct mfs_uring *u)
{
	if (!u)
		return;
	drain(u);
	io_uring_queue_exit(&u->ring);
	free(u->mem);
	free(u);
}

void mfs_uring_start(struct mfs_uring *u, int fd, uint64_t off)
{
	drain(u);
	u->fd = fd;
	u->next_off = off;
}

static int submit_one(struct mfs_uring *u, unsigned i)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe)
		return -EBUSY;
	uint8_t *buf = u->mem + (size_t)i * u->chunk;
	if (u->fixed)
		io_uring_prep_read_fixed(sqe, u->fd, buf, (unsigned)u->chunk, u->s[i].off, (int)i);
	else
		io_uring_prep_read(sqe, u->fd, buf, (unsigned)u->chunk, u->s[i].off);
	io_uring_sqe_set_data64(sqe, i);
	u->s[i].inflight = 1;
	u->s[i].done = 0;
	return 0;
}

/* Fill every free slot with a read (one io_uring_enter for all of them). */
static int top_up(struct mfs_uring *u)
{
	unsigned want = u->depth - (u->held ? 1u : 0u);
	int n = 0;
	while (u->queued < want) {
		unsigned i = (u->head + u->queued) % u->depth;
		u->s[i].off = u->next_off;
		if (submit_one(u, i) < 0)
			break;
		u->next_off += u->chunk;
		u->queued++;
		n++;
	}
	if (n) {
		int rc;
		do
			rc = io_uring_submit(&u->ring);
		while (rc == -EINTR);
		if (rc < 0)
			return rc;
	}
	return 0;
}

ssize_t mfs_uring_next(struct mfs_uring *u, const uint8_t **buf)
{
	u->held = 0; /* the previous chunk's buffer is free again */
	int rc = top_up(u);
	if (rc < 0) {
		drain(u);
		return rc;
	}
	if (u->queued == 0)
		return -EIO;
	unsigned i = u->head;
	while (!u->s[i].done)
		reap_one(u, 1);
	int res = u->s[i].res;
	if (res == -EINTR || res == -EAGAIN) {
		/* Resubmit this read and everything after it from its offset. */
		uint64_t off = u->s[i].off;
		drain(u);
		u->next_off = off;
		return mfs_uring_next(u, buf);
	}
	if (res < 0 || (size_t)res < u->chunk) {
		/* End of file as it is now (or an error): drop the reads beyond it. */
		uint64_t off = u->s[i].off + (res > 0 ? (uint64_t)res : 0);
		u->s[i].done = 0;
		u->head = (i + 1) % u->depth;
		u->queued--;
		u->held = 1;
		unsigned hold = i;
		/* drain() forgets every slot; keep the buffer of slot i for the caller */
		for (;;) {
			int any = 0;
			for (unsigned k = 0; k < u->depth; k++)
				any |= u->s[k].inflight;
			if (!any)
				break;
			reap_one(u, 1);
		}
		for (unsigned k = 0; k < u->depth; k++)
			u->s[k].done = 0;
		u->queued = 0;
		u->head = (hold + 1) % u->depth;
		u->held = 1;
		u->next_off = off;
		if (res < 0)
			return res;
		*buf = u->mem + (size_t)hold * u->chunk;
		return res;
	}
	u->s[i].done = 0;
	u->head = (i + 1) % u->depth;
	u->queued--;
	u->held = 1;
	*buf = u->mem + (size_t)i * u->chunk;
	return res;
}
