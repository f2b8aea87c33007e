#include "config.h"
#include "util/errmsg.h"

#include <stdio.h>

int errmsg_vat(char *err, size_t errlen, const char *file, int line, const char *fmt, va_list ap)
{
	int n = snprintf(err, errlen, "%s:%d: ", file, line);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	return -1;
}

int errmsg_at(char *err, size_t errlen, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	errmsg_vat(err, errlen, file, line, fmt, ap);
	va_end(ap);
	return -1;
}
