/*
 * fuzz_memfd.h - a fuzz input as a file: the library's loaders and readers
 * take paths, so each input is written to a memfd and named by /proc/self/fd.
 */
#ifndef MFS_FUZZ_MEMFD_H
#define MFS_FUZZ_MEMFD_H

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* data[0..size) in a new memfd; path gets its name. Returns the fd (the caller
 * closes it), or -1 when it could not be made (the input is then skipped). */
static inline int fuzz_memfd(const char *name, const uint8_t *data, size_t size, char path[64])
{
	int fd = memfd_create(name, 0);
	if (fd < 0)
		return -1;
	if (size && write(fd, data, size) != (ssize_t)size) {
		close(fd);
		return -1;
	}
	snprintf(path, 64, "/proc/self/fd/%d", fd);
	return fd;
}

#endif
