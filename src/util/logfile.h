/* A file lines are appended to and that is opened again by its path for
 * rotation (rename it, SIGHUP, a new file): what the main log (log.h) and
 * the audit log (util/audit.h) share. Line-buffered. Loop thread. */
#ifndef WHARF_UTIL_LOGFILE_H
#define WHARF_UTIL_LOGFILE_H

#include <stdio.h>
#include <sys/types.h>

/* Zeroed: not open. */
struct logfile {
	FILE *f;    /* NULL: not open */
	char *path;
	mode_t mode; /* of the file when created (before the umask) */
};

/* Opens `path` for appending, created with `mode` when missing; -1 with
 * errno set, lf then as it was. What lf had open before is closed. */
int logfile_open(struct logfile *lf, const char *path, mode_t mode);
/* Opens lf's path again; -1 with errno set, lf then keeps the old file. 0
 * when lf is not open. */
int logfile_reopen(struct logfile *lf);
void logfile_close(struct logfile *lf);

#endif
