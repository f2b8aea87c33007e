/* The active side of the replication link (docs/ha.md, "Replication
 * link"): ships the journal's segment files to the standby from where it
 * stands to the durable end, then follows the journal as it grows, rolls
 * over and releases segments.
 *
 * Thread: the event loop. It never blocks the loop for long: at most one
 * pread() of REPL_CHUNK bytes per loop turn, and nothing while the link's
 * output holds REPL_HIGH_WATER bytes (the link calls sender_kick() when it
 * drains). The journal and the output buffer are borrowed: both outlive
 * the sender. */
#ifndef WHARF_HA_SENDER_H
#define WHARF_HA_SENDER_H

#include <stdint.h>

#include "ha/frame.h"

struct event_base;
struct evbuffer;
struct journal;
struct sender;

#define REPL_CHUNK (1u << 20)
#define REPL_HIGH_WATER (8u << 20)

/* journal_dir: DIR/journal of the journal `j`. NULL on out of memory. */
struct sender *sender_new(struct event_base *base, struct journal *j, const char *journal_dir,
			  struct evbuffer *out);
void sender_free(struct sender *s);

/* Decides where the standby (holding records up to standby_last) starts,
 * and fills w's mode, from, oldest and last_seq. */
int sender_start(struct sender *s, uint64_t standby_last, struct repl_welcome *w);
/* Ships what it may now, and schedules itself again if more is ready. */
void sender_kick(struct sender *s);
/* -1 once shipping failed (logged): the link is to be dropped. */
int sender_error(const struct sender *s);
/* Bytes durable on the active that have not been put on the link yet. */
uint64_t sender_unsent(struct sender *s);

#endif
