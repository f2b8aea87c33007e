#ifndef WHARF_UTIL_ERRMSG_H
#define WHARF_UTIL_ERRMSG_H

#include <stdarg.h>
#include <stddef.h>

/* Writes "FILE:LINE: " and the message into err (errlen bytes, always
 * terminated, cut if too long) for the parsers of config, users and ACL
 * files, which all name the place of a mistake. Returns -1, so a parser
 * can `return errmsg_at(...)`. */
int errmsg_at(char *err, size_t errlen, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
int errmsg_vat(char *err, size_t errlen, const char *file, int line, const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));

#endif
