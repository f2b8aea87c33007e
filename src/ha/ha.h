/* The node's side of the active/standby pair (docs/ha.md): the replication
 * link's listener, the standby's connection to its active and its mirror of
 * the journal, the active's sender and replica gate, heartbeats and the
 * timeouts that drop a half-alive link, and the control requests
 * (PROMOTE, STATUS) that wharfctl sends.
 *
 * Thread: the broker's event loop, like everything else in wharfd (the
 * standby's mirror blocks it on its own fsyncs; it serves no clients).
 * Owned by the broker: ha_new in broker_init when [ha] role is set,
 * ha_free in broker_free before the store closes. */
#ifndef WHARF_HA_HA_H
#define WHARF_HA_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct ha;

/* Starts listening on [ha] listen (logging `listening repl HOST:PORT`)
 * and, on a node that is not active yet, opens the journal's mirror and
 * starts connecting to the peer. NULL with a logged reason. */
struct ha *ha_new(struct broker *b);
/* The broker is stopping (its loop still runs a while): the standby stops
 * trying to reach its peer, a name lookup under way ends now, so that
 * libevent's resolver can release it from the loop. NULL is a no-op. */
void ha_stop(struct ha *ha);
/* Drops the links (the gate is turned off first: held confirmations go
 * out), closes the mirror. NULL is a no-op. */
void ha_free(struct ha *ha);
/* Makes this standby the active node at `epoch` (0: one more than the
 * last it knew; the arbiter's otherwise): drops its link to the old
 * active, closes the mirror (the journal is whole records, as at a
 * restart) and calls broker_activate. 0 when active (also when it already was), -1 with
 * a logged reason. */
int ha_promote(struct ha *ha, uint64_t epoch);
/* broker_activate opened the store: this node ships its journal to a
 * standby from now on. */
void ha_activated(struct ha *ha);

struct ha_status {
	bool active, connected, in_sync, degraded;
	uint64_t last_seq;       /* active: durable; standby: mirrored */
	uint64_t lag_records;    /* records the standby has not acknowledged */
	uint64_t lag_bytes;      /* active: durable bytes not sent yet */
	uint64_t held;           /* active: confirmations waiting for the standby */
	uint64_t attaches;       /* active: standbys attached; standby: times attached */
	uint64_t drops;          /* active: standbys dropped; standby: links lost */
	uint64_t refusals;       /* peers refused (bad secret, TLS, busy) */
	uint64_t epoch;          /* of the history this node holds (ha/epoch.h) */
};
void ha_status(struct ha *ha, struct ha_status *out);

#endif
