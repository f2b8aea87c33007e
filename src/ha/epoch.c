#include "config.h"
#include "ha/epoch.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define FILE_NAME "ha-epoch"

int ha_epoch_load(const char *dir, struct ha_epoch *out)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/" FILE_NAME, dir);
	*out = (struct ha_epoch){ 0 };
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		log_error("replication: cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	int n = fscanf(f, "%" SCNu64 " %" SCNu64, &out->epoch, &out->start);
	fclose(f);
	if (n != 2) {
		log_error("replication: %s is damaged (expected \"EPOCH START\"); remove it to take "
			  "a full copy from the active",
			  path);
		return -1;
	}
	return 0;
}

int ha_epoch_save(const char *dir, const struct ha_epoch *e)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/" FILE_NAME, dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	char line[64];
	int len = snprintf(line, sizeof(line), "%" PRIu64 " %" PRIu64 "\n", e->epoch, e->start);
	bool ok = fd >= 0 && write(fd, line, (size_t)len) == len && fsync(fd) == 0;
	if (fd >= 0 && close(fd) < 0)
		ok = false;
	if (ok && rename(tmp, path) < 0)
		ok = false;
	if (ok) {
		int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	if (!ok) {
		log_error("replication: cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

uint64_t ha_epoch_keep(const struct ha_epoch *mine, uint64_t theirs, uint64_t last)
{
	if (theirs == mine->epoch)
		return last;
	if (theirs + 1 == mine->epoch && mine->start)
		return last < mine->start ? last : mine->start - 1;
	return 0;
}
