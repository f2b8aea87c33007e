/* A queue's page file: the messages at the tail of a queue that is over
 * its memory limit wait here, in order, instead of in memory, and are read
 * back in the same order as the head drains. Only a cache: the journal
 * keeps what must survive a restart (each entry carries its journal record
 * number), so page files are not synced and are deleted at start-up.
 *
 * File DIR/NAME.page: entries back to back, each
 *     u32 length of what follows, u64 record (0: not stored), the message
 *     (store/msgcodec.h)
 * Writes gather in a buffer and go out in large writes; reads come in large
 * chunks. The file is truncated whenever everything written was read.
 * Event-loop thread only; blocking file I/O, which the page cache makes
 * cheap for this sequential pattern. */
#ifndef WHARF_STORE_PAGER_H
#define WHARF_STORE_PAGER_H

#include <stddef.h>
#include <stdint.h>

struct message;
struct pager;

/* A pager writing DIR/NAME.page (created on the first put; DIR must
 * exist). NULL on out of memory. */
struct pager *pager_new(const char *dir, const char *name);
/* Closes and deletes the file; what it held is gone. NULL is a no-op. */
void pager_free(struct pager *p);

/* Appends m (not kept: encoded at once). -1 with errno on a write error or
 * out of memory (nothing appended). */
int pager_put(struct pager *p, const struct message *m, uint64_t rec);
/* The oldest entry as a new message (one reference) and its record, or
 * NULL when there is none (errno 0) or on a read error or damage (errno
 * set; the rest of the file is then dropped). */
struct message *pager_get(struct pager *p, uint64_t *rec);
/* Entries written and not read yet. */
size_t pager_count(const struct pager *p);
/* Bytes of the file not read yet. */
uint64_t pager_bytes(const struct pager *p);

#endif
