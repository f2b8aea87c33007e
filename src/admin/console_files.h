/* The web console's files, embedded in wharfd at build time
 * (src/admin/console/embed.sh writes console_files.c from
 * src/admin/console/). */
#ifndef WHARF_ADMIN_CONSOLE_FILES_H
#define WHARF_ADMIN_CONSOLE_FILES_H

#include <stddef.h>

struct console_file {
	const char *name; /* the base name: "index.html" */
	const unsigned char *data;
	size_t len;
};

/* Every file, ended by one whose name is NULL; static, never freed. */
extern const struct console_file admin_console_files[];

#endif
