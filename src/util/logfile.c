#include "config.h"
#include "util/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static FILE *open_append(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode);
	if (fd < 0)
		return NULL;
	FILE *f = fdopen(fd, "a");
	if (!f) {
		int err = errno;
		close(fd);
		errno = err;
		return NULL;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	return f;
}

int logfile_open(struct logfile *lf, const char *path, mode_t mode)
{
	FILE *f = open_append(path, mode);
	char *copy = f ? strdup(path) : NULL;
	if (!copy) {
		if (f)
			fclose(f);
		return -1;
	}
	logfile_close(lf);
	*lf = (struct logfile){ f, copy, mode };
	return 0;
}

int logfile_reopen(struct logfile *lf)
{
	if (!lf->f)
		return 0;
	FILE *f = open_append(lf->path, lf->mode);
	if (!f)
		return -1;
	fclose(lf->f);
	lf->f = f;
	return 0;
}

void logfile_close(struct logfile *lf)
{
	if (lf->f)
		fclose(lf->f);
	free(lf->path);
	*lf = (struct logfile){ 0 };
}
