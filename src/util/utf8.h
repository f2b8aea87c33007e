/* UTF-8 as MQTT and AMQP strings require it. */
#ifndef WHARF_UTIL_UTF8_H
#define WHARF_UTIL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Well-formed UTF-8 (RFC 3629: no surrogates, no overlong forms, nothing
 * past U+10FFFF) holding no U+0000. */
bool utf8_valid(const void *s, size_t n);
/* The first n bytes of UTF-8 text were kept (snprintf cut it): how many of
 * them to keep so that it does not end inside a character. */
size_t utf8_whole(const char *s, size_t n);

#endif
