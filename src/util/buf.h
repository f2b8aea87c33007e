/* A growable byte buffer for building small outputs (frame heads, log lines).
 * The buffer owns `data`; buf_free() releases it. Appends never fail silently:
 * they return -1 when memory runs out and leave the buffer as it was. */
#ifndef WHARF_UTIL_BUF_H
#define WHARF_UTIL_BUF_H

#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_append_char(struct buf *b, char c);
/* A string as a 2-byte little-endian length and its bytes (store records);
 * -1 also when it is longer than 65535 bytes. */
int buf_append_str16(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

#endif
