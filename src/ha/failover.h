/* Automatic failover ([ha] role = auto): the arbiter (ha/arbiter.h) says
 * which node may be active. Elected, a standby promotes itself at the
 * arbiter's epoch; an active that loses the lead stops serving at once
 * and starts again as a standby (it re-executes itself: nothing of the
 * old active stays in the process); and the active keeps the arbiter's
 * `sync` key naming its standby only while every confirmation waits for
 * that standby, so that a standby that missed something never takes over.
 *
 * Owned by struct ha (ha_new creates it when an arbiter is configured);
 * loop thread. */
#ifndef WHARF_HA_FAILOVER_H
#define WHARF_HA_FAILOVER_H

#include <stdbool.h>

struct ha;
struct failover;

/* Starts campaigning. NULL with a logged reason. */
struct failover *failover_new(struct ha *ha);
void failover_free(struct failover *f);

/* The active's standby is in sync: the arbiter names it. */
void failover_in_sync(struct failover *f, const char *standby);
/* The active's standby went. Returns true when held confirmations may go
 * out now; false when they wait until the arbiter no longer names that
 * standby (ha_gate_release is called then). */
bool failover_standby_gone(struct failover *f);

/* The arbiter has written this node's standby in the sync key: the
 * standby may be elected when this node gives up the lead. */
bool failover_standby_named(const struct failover *f);
/* A planned switch-over (ha/ha_control.c): gives up the lead at once
 * (arbiter_resign: the lease is revoked, the standby is elected within
 * milliseconds); this node stops campaigning and must restart. */
void failover_resign(struct failover *f);
/* The revoke has been answered (or has failed). */
bool failover_idle(const struct failover *f);

#endif
