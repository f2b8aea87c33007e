/* The standby's copy of the active's journal directory (docs/ha.md,
 * "Replication link"): the same segment files, byte for byte, and the same
 * .released stand-ins, so that promotion is opening the store as at a
 * restart. It holds DIR/journal/lock (flock) from mirror_open to
 * mirror_free, so no journal_open can happen on the directory meanwhile.
 *
 * Thread: the standby's event loop. Its writes and fdatasync()s block that
 * loop: a standby serves no clients, and the active waits for the ACK that
 * follows the sync anyway. Pure file I/O: no sockets, no libevent. */
#ifndef WHARF_HA_MIRROR_H
#define WHARF_HA_MIRROR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ha/frame.h"

struct mirror;

/* Opens (creating) data_dir/journal, takes its lock, cuts a torn tail off
 * the newest segment and finds the last record. NULL with a reason in err. */
struct mirror *mirror_open(const char *data_dir, char *err, size_t errlen);
/* Syncs and closes what is open, and drops the lock. NULL is a no-op. */
void mirror_free(struct mirror *m);

/* The last record it holds (0: none), and the first number of its oldest
 * segment or stand-in (0: none). */
uint64_t mirror_last_seq(const struct mirror *m);
uint64_t mirror_oldest(const struct mirror *m);

/* The active's WELCOME: FULL deletes every segment and stand-in; CATCHUP
 * deletes those numbered `from` or above and those below `oldest`. Returns
 * the number of segment files and stand-ins deleted, or -1 with err. */
long mirror_start(struct mirror *m, uint8_t mode, uint64_t from, uint64_t oldest, char *err,
		  size_t errlen);
/* One frame each; 0, or -1 with a reason in err (the link is then dropped:
 * a chunk that is not whole records numbered on from the last, an offset
 * that is not the end of the file, an I/O error). */
int mirror_seg_begin(struct mirror *m, uint64_t first, char *err, size_t errlen);
int mirror_data(struct mirror *m, const struct repl_data *d, char *err, size_t errlen);
int mirror_stub(struct mirror *m, uint64_t first, uint64_t next, char *err, size_t errlen);
int mirror_drop(struct mirror *m, uint64_t first, char *err, size_t errlen);
/* Whether anything changed since the last mirror_sync. */
bool mirror_dirty(const struct mirror *m);
/* fdatasync()s the segment written since the last call and the directory
 * if files came or went: after it, mirror_last_seq() is durable. 0 or -1
 * with err. */
int mirror_sync(struct mirror *m, char *err, size_t errlen);

#endif
