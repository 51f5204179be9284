/*
 * kafka_mock.h - the tests' side of the mock Kafka cluster: kafka_mock
 * (tests/kafka_mock_main.c) runs librdkafka's mock cluster in a process of
 * its own and reads commands on its stdin ("topic T N", "produce ...", see
 * that file), answering each with a line that starts with "ok" or an error.
 * Used by test_kafka and test_publish (add support/kafka_mock.c to their
 * SOURCES).
 */
#ifndef MFS_TEST_KAFKA_MOCK_H
#define MFS_TEST_KAFKA_MOCK_H

#include <stdio.h>
#include <sys/types.h>

struct mfs_mock {
	pid_t pid;
	FILE *in, *out;
	char bootstrap[512]; /* the brokers' address list, for --kafka */
};

/* Start the mock program at path. Returns 0, or -1 (the cluster cannot start: skip). */
int mfs_mock_start(struct mfs_mock *mk, const char *path);

/* Quit it and wait for it (a no-op when it was not started). */
void mfs_mock_stop(struct mfs_mock *mk);

/* Send one command; fail the test unless the answer starts with "ok". */
void mfs_mock_cmd(struct mfs_mock *mk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The event count in the name of the newest checkpoint in dir (whole or delta), or 0. */
unsigned long long mfs_newest_checkpoint(const char *dir);

#endif
