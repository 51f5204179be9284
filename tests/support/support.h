/* support.h - shared fixtures for the CMocka test programs. */
#ifndef MFS_TEST_SUPPORT_H
#define MFS_TEST_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
/* cmocka.h needs the four headers above first. */
#include <cmocka.h>

#include "mfstream.h"

/* Exit code that CTest reads as "skipped". */
#define MFS_SKIP 77

/* A fresh empty directory for this test program under $MFS_TEST_TMP (or /tmp). Never NULL. */
const char *mfs_test_dir(void);

/* path = mfs_test_dir()/name, in a static rotating buffer (8 slots). */
const char *mfs_test_path(const char *name);

/* Write len bytes to path (abort the test on failure). */
void mfs_write_file(const char *path, const void *data, size_t len);

/* Read a whole file, NUL-terminated, malloc'd; *len may be NULL. NULL if missing. */
char *mfs_read_file(const char *path, size_t *len);

/* Fail the test unless files a and b exist and hold the same bytes. */
void mfs_assert_same_file(const char *a, const char *b);

/* Result of running a command. */
struct mfs_run {
	int status; /* exit code, or 128+signal */
	char *out;  /* stdout, NUL-terminated, malloc'd */
	char *err;  /* stderr, NUL-terminated, malloc'd */
};

/*
 * Run argv (argv[0] a path) with optional stdin bytes, capturing stdout and
 * stderr. Returns 0 or -1 if it could not be started.
 */
/* Start argv[0] with its stdin, stdout and stderr on pipes: *in is the write
 * end of its stdin, *out and *err the read ends. Returns the pid, or -1. */
pid_t mfs_spawn(char *const argv[], int *in, int *out, int *err);

/* Whether pid has a handler for sig yet (its SigCgt in /proc/PID/status),
 * asking every 10 ms for up to ms. A signal sent before that takes its default
 * action: a test that sends SIGTERM to a process it just started asks first. */
int mfs_test_catches(pid_t pid, int sig, int ms);

int mfs_run_argv(struct mfs_run *r, char *const argv[], const char *stdin_data, size_t stdin_len);

/* printf-style shell command through /bin/sh -c; captures like mfs_run_argv. */
int mfs_run_sh(struct mfs_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void mfs_run_free(struct mfs_run *r);

/* The number after "\"key\":" in a JSON text, or NAN when absent. */
double mfs_json_number(const char *json, const char *key);

/* Relative comparison: |a-b| <= rtol * max(1, |a|, |b|). */
int mfs_close(double a, double b, double rtol);

/* The MovieLens 100K folder if it exists, else NULL: $MFS_DATA_DIR/ml-100k when
 * MFS_DATA_DIR is set, else the checkout's ../shared/data/ml-100k. */
const char *mfs_ml100k_dir(void);

/* --- a small HTTP/1.1 client for the serving tests ----------------------- */

/* Connect to 127.0.0.1:port or a Unix socket path (retrying for up to 10 s
 * while the server starts). Returns the fd or -1. */
int mfs_connect_tcp(int port);
int mfs_connect_unix(const char *path);

/* An answer: its status, headers and body (NUL-terminated, malloc'd). */
struct mfs_http_answer {
	int status;
	char *head, *body;
	size_t body_len;
};

/*
 * Send one request on fd (keep-alive) and read its answer (Content-Length
 * bodies). body may be NULL. Returns 0, or -1 when the connection failed or
 * closed before a whole answer.
 */
int mfs_http_ask(int fd, const char *method, const char *target, const char *body, size_t body_len,
		 struct mfs_http_answer *a);
void mfs_http_answer_free(struct mfs_http_answer *a);

/* The port of a `serve --listen` from its stderr line {"serving": ..., "listen": "H:P"}, or -1. */
int mfs_serve_port(const char *err);

#endif
