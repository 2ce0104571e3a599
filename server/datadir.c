/*
 * The data directory's lock (see datadir.h). A flock on a file inside the directory: the
 * kernel drops it when the process dies, even by kill -9, so a crash never leaves a stale
 * lock behind, and the pid written into the file is only for the message of the loser.
 */
#include "datadir.h"

#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Room for the path of the lock file; data dirs longer than this are refused. */
#define DATADIR_LOCK_PATH_MAX 4096
/* Room for a pid written as decimal text with its newline (a pid fits in 10 digits). */
#define DATADIR_PID_TEXT_MAX 24

/* The other owner's pid from the lock file, 0 when it has not written one (yet). */
static unsigned long long owner_pid(int fd)
{
	char text[DATADIR_PID_TEXT_MAX];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	uint64_t pid = 0;
	size_t len;

	if (n <= 0)
		return 0;
	len = (size_t)n;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	if (!dh_parse_u64n(text, len, &pid))
		return 0;
	return pid;
}

enum dh_err dh_datadir_lock(const char *dir, struct dh_error *err)
{
	char path[DATADIR_LOCK_PATH_MAX], text[DATADIR_PID_TEXT_MAX];
	unsigned long long other;
	enum dh_err rc = DH_OK;
	int fd, n;

	if (mkdir(dir, 0750) != 0 && errno != EEXIST)
		return dh_error_set(err, DH_E_IO, "Cannot create data dir %s: %s", dir,
				    strerror(errno));
	n = snprintf(path, sizeof(path), "%s/%s", dir, DH_DATADIR_LOCK_NAME);
	if (n < 0 || (size_t)n >= sizeof(path))
		return dh_error_set(err, DH_E_INVALID, "Data dir path too long");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return dh_error_set(err, DH_E_IO, "Cannot open %s: %s", path, strerror(errno));
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK) {
			char who[DATADIR_PID_TEXT_MAX + 8] = "";
			other = owner_pid(fd);
			if (other)
				snprintf(who, sizeof(who), " (pid %llu)", other);
			rc = dh_error_set(
				err, DH_E_BUSY,
				"Data dir %s is in use by another devicehubd%s; stop it first or use another --data-dir",
				dir, who);
		} else {
			rc = dh_error_set(err, DH_E_IO, "Cannot lock %s: %s", path,
					  strerror(errno));
		}
		close(fd);
		return rc;
	}
	n = snprintf(text, sizeof(text), "%lld\n", (long long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != (ssize_t)n) {
		rc = dh_error_set(err, DH_E_IO, "Cannot write %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	/* fd stays open, and so the lock held, for the life of the process */
	return DH_OK;
}
