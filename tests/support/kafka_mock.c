/* kafka_mock.c - driving the mock Kafka cluster's process (see kafka_mock.h). */
#include "kafka_mock.h"

#include <dirent.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

int mfs_mock_start(struct mfs_mock *mk, const char *path)
{
	int to[2], from[2];
	if (pipe(to) < 0 || pipe(from) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		close(to[1]);
		close(from[0]);
		execl(path, path, (char *)NULL);
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	mk->pid = pid;
	mk->in = fdopen(to[1], "w");
	mk->out = fdopen(from[0], "r");
	char line[1024];
	if (!mk->in || !mk->out || !fgets(line, sizeof line, mk->out) ||
	    sscanf(line, "bootstrap %511s", mk->bootstrap) != 1)
		return -1;
	return 0;
}

void mfs_mock_stop(struct mfs_mock *mk)
{
	if (!mk->pid)
		return;
	fprintf(mk->in, "quit\n");
	fclose(mk->in);
	fclose(mk->out);
	waitpid(mk->pid, NULL, 0);
	mk->pid = 0;
}

void mfs_mock_cmd(struct mfs_mock *mk, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(mk->in, fmt, ap);
	va_end(ap);
	fputc('\n', mk->in);
	fflush(mk->in);
	char line[1024];
	assert_non_null(fgets(line, sizeof line, mk->out));
	if (strncmp(line, "ok", 2) != 0)
		fail_msg("kafka_mock: %s", line);
}

unsigned long long mfs_newest_checkpoint(const char *dir)
{
	DIR *d = opendir(dir);
	unsigned long long best = 0;
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		unsigned long long v;
		char ext[16];
		if (sscanf(e->d_name, "ckpt-%20llu.%15s", &v, ext) == 2 && v > best &&
		    (strcmp(ext, "mfs") == 0 || strcmp(ext, "delta") == 0))
			best = v;
	}
	closedir(d);
	return best;
}
