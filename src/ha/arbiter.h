/* The pair's arbiter: which of the two nodes may be active, decided by a
 * lease-held key in etcd (v3 API through its JSON gateway, over libevent's
 * HTTP client on the broker's loop; nothing here blocks). docs/ha.md.
 *
 * Keys, for pair P (values are plain text):
 *   /wharf/P/leader  the active node's node_id, attached to its lease
 *   /wharf/P/epoch   the activation epoch, decimal, incremented by every
 *                    election in the same transaction that takes the leader key
 *   /wharf/P/last    the node_id of the last node elected (same transaction)
 *   /wharf/P/sync    the node_id of the active's standby while it is in sync
 *                    (arbiter_set_sync; written only under the leader's lease)
 *
 * Who may campaign. A standby that was not in sync lacks records its
 * active confirmed alone: it must not take over. So a node takes a free
 * leader key only when it was the last active (`last` names it), or was
 * that active's standby in sync (`sync` names it), or when neither key
 * exists (a new pair). Otherwise it waits, reading again like a follower,
 * for the last active to come back (or for `wharfctl promote`, which does
 * not ask the arbiter). The election's transaction also checks that
 * `last` and `sync` are as read. The active records its standby in `sync`
 * when the standby gets in sync, and clears it (waiting for etcd's answer)
 * before it confirms anything alone.
 *
 * Campaign. The arbiter reads both keys. If a leader holds the key it reports
 * cbs->follower, reads again every lease_ttl/4 (a poll of /v3/kv/range: the
 * rule), and keeps a watch on the key open on a second connection, which
 * only makes it read again as soon as the key changes (a resign hands over
 * in milliseconds, a dead leader's expired lease a poll period sooner); a
 * watch that fails is opened again by the next read. If the key is free it
 * grants a lease and runs one transaction: if the leader key does not exist
 * (create_revision 0) and the epoch key is as read (same mod_revision, or
 * create_revision 0 when absent), put leader = node_id with the lease and
 * epoch = epoch + 1; else read both keys. Success reports cbs->elected with
 * the new epoch. A lease left over (a lost race, a txn whose answer was lost)
 * is revoked before the next step.
 *
 * Lease length. etcd leases are whole seconds: the TTL asked for is
 * lease_ttl rounded up to a second, at least 1 s (etcd may grant more: it
 * raises a TTL to its minimum, 2 s with default timings; more is only
 * safer, the arbiter's own deadline below uses lease_ttl as configured).
 *
 * Timing, "never two actives". While leader the arbiter sends a keep-alive
 * every T/3 (T = lease_ttl). etcd starts a lease's TTL again when it
 * *receives* a keep-alive (or the grant), which is after we sent it, so the
 * lease cannot expire in etcd before S + T, S being the send time of the last
 * keep-alive (or grant) that succeeded. The other node can only be elected
 * once the lease has expired. The arbiter declares cbs->lost at S + T - M,
 * M = T/4 (its own timer, whatever the pending request is doing), or at once
 * when etcd answers that the lease is gone. So the node stops being active at
 * least M before another can be elected, as long as the loop is not stalled
 * for M and the clocks' rates differ by less than M/T (25%). Keep-alives at
 * T/3 give two tries before the deadline at 3T/4. A caller that must not
 * confirm a write after the deadline even when its loop was stalled checks
 * arbiter_is_leader(), which compares the deadline with the clock.
 *
 * Failures. Every request has a timeout (T/3 for keep-alives, T for the
 * rest; the watch, a long request, only libevent's idle timeout); a failed campaign step retries after T/4, doubling up to
 * max(T, 1 s); the first failure of a run and then at most one line every
 * 30 s are logged, and the recovery once. After a lost lease the arbiter
 * revokes that lease when etcd answers again (it may still live there after
 * a restart of etcd), then campaigns again if it was campaigning.
 *
 * Callbacks run on the loop, never inside the call that started the work;
 * a callback may call any arbiter function except arbiter_free. */
#ifndef WHARF_HA_ARBITER_H
#define WHARF_HA_ARBITER_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct arbiter;

/* Each may be NULL. */
struct arbiter_cbs {
	/* This node holds the leader key: it may become active at epoch. */
	void (*elected)(void *arg, uint64_t epoch);
	/* Another node holds it; node_id is borrowed for the call. Reported
	 * when the leader seen changes, not on every poll. */
	void (*follower)(void *arg, const char *node_id);
	/* This node was leader and must stop accepting writes now: the lease
	 * could not be renewed in time, or etcd says it expired. The arbiter
	 * goes on campaigning (it was, since it was leader). */
	void (*lost)(void *arg);
	/* A keep-alive sent at sent_ms
	 * (clock_mono_ms()) succeeded; the deadline is now sent_ms + T - M. */
	void (*renewed)(void *arg, int64_t sent_ms);
};

/* url: etcd://HOST:PORT. pair, node_id: copied. cbs: copied; arg is passed
 * to each callback. lease_ttl_ms: T above, at least 4 ms. NULL with a reason
 * logged on a bad url or out of memory. Does nothing until
 * arbiter_campaign(). */
struct arbiter *arbiter_new(struct event_base *base, const char *url, const char *pair,
			    const char *node_id, unsigned lease_ttl_ms, const struct arbiter_cbs *cbs,
			    void *arg);
/* Drops any request in flight, without callbacks and without revoking the
 * lease (a node that stops holding it lets it expire; to hand over at once,
 * arbiter_resign() first and run the loop until arbiter_idle()). */
void arbiter_free(struct arbiter *a);

/* Starts campaigning (no-op while campaigning or leader). */
void arbiter_campaign(struct arbiter *a);
/* Planned switch-over: this node stops being leader at once (no lost
 * callback: the caller asked; stop writes before calling), the lease is
 * revoked so the other node can be elected without waiting for the TTL, and
 * the arbiter stops campaigning. Also stops a campaign that is not leader. */
void arbiter_resign(struct arbiter *a);

/* The leader names its standby in sync (standby), or nobody (NULL), in
 * the sync key; done(arg, ok) runs once etcd has it (ok) or this node no
 * longer leads (not ok). A failure while leading is tried again every
 * lease_ttl/4. A newer call replaces one in flight: only its done runs. */
void arbiter_set_sync(struct arbiter *a, const char *standby, void (*done)(void *arg, bool ok),
		      void *arg);
/* Leader, and the deadline above not passed (checked against the clock). */
bool arbiter_is_leader(const struct arbiter *a);
/* The epoch this node was elected at while leader; else the last epoch read
 * from etcd (0: none seen). */
uint64_t arbiter_epoch(const struct arbiter *a);
/* The leader's node_id as last seen (this node's own while leader), NULL
 * when unknown or none. Valid until the next return to the loop. */
const char *arbiter_leader(const struct arbiter *a);
/* No request in flight and nothing scheduled: after arbiter_resign(), the
 * revoke has been answered or has failed. */
bool arbiter_idle(const struct arbiter *a);

#endif
