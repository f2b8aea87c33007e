/* A queue's page file: the messages at the tail of a queue that is over
 * its memory limit wait here, in order, instead of in memory, and are read
 * back in the same order as the head drains. Only a cache: the journal
 * keeps what must survive a restart (each entry carries its journal record
 * number), so page files are not synced and are deleted at start-up.
 *
 * File DIR/NAME.page: entries back to back, each
 *     u32 length of what follows, u64 record (0: not stored), the message
 *     (store/msgcodec.h)
 * Event-loop thread only, and it never waits for the file: entries gather
 * in a buffer that goes to the store's I/O thread (store/pageio.h) in
 * large writes, and a read-ahead buffer that thread fills is what gets
 * read. Entries not on disk yet are read straight from memory. The file is
 * truncated, behind the writes before it, whenever everything written was
 * read. */
#ifndef WHARF_STORE_PAGER_H
#define WHARF_STORE_PAGER_H

#include <stddef.h>
#include <stdint.h>

struct message;
struct pageio;
struct pager;

/* A pager writing DIR/NAME.page (created on the first large write; DIR
 * must exist) through io, which it holds until pager_free. NULL on out of
 * memory. */
struct pager *pager_new(struct pageio *io, const char *dir, const char *name);
/* Closes and deletes the file; what it held is gone. Its jobs still at
 * the I/O thread are dropped (waiting for the one running, if any); a
 * purge's scan goes on. NULL is a no-op. */
void pager_free(struct pager *p);
/* ready(arg) runs on the loop, never inside a pager call, once entries can
 * be read again after pager_get said EAGAIN. */
void pager_set_ready_cb(struct pager *p, void (*ready)(void *arg), void *arg);

/* Appends m (not kept: encoded at once). -1 with errno (nothing appended)
 * on out of memory or a file that cannot be created. Past
 * PAGER_MAX_BACKLOG bytes waiting for the disk, it waits for the oldest
 * write: failing instead would put m in memory ahead of older entries,
 * and replay, which fills queues with the loop stopped, needs the writes
 * to go on to stay in bounds. */
int pager_put(struct pager *p, const struct message *m, uint64_t rec);
#define PAGER_MAX_BACKLOG (16u << 20)
/* The oldest entry as a new message (one reference) and its record, or
 * NULL: errno 0 when there is none, EAGAIN while it is being read (the
 * ready callback follows), anything else on a read or write error or
 * damage (the rest of the file is then dropped). */
struct message *pager_get(struct pager *p, uint64_t *rec);
/* Drops every entry. each(arg, rec) hears of each nonzero record: at once
 * for the entries in memory, later on the loop for those read back from
 * the file, even after pager_free (never after the pageio is freed).
 * each NULL: none hears. */
void pager_purge(struct pager *p, void (*each)(void *arg, uint64_t rec), void *arg);
/* Entries written and not read yet. */
size_t pager_count(const struct pager *p);
/* Bytes of the file not read yet. */
uint64_t pager_bytes(const struct pager *p);

#endif
