/* wharfctl's requests on the replication link (ha/ha_internal.h):
 * PROMOTE, STATUS, FAILOVER and LINK_DROP, each answered with one TEXT
 * frame. */
#include "config.h"
#include "ha/ha.h"
#include "ha/ha_internal.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "ha/auth.h"
#include "ha/failover.h"
#include "ha/frame.h"
#include "ha/mirror.h"
#include "ha/sender.h"
#include "log.h"
#include "net/conn.h"
#include "router/router.h"
#include "store/journal.h"
#include "store/store.h"

int ha_promote(struct ha *ha, uint64_t epoch)
{
	if (ha->b->active)
		return 0;
	ha->next_epoch = epoch ? epoch : ha->epoch.epoch + 1;
	/* Ours from the next record on: the mirror holds whole records. */
	ha->epoch.start = mirror_last_seq(ha->mirror) + 1;
	if (ha->upstream)
		hlink_close(ha->upstream);
	mirror_free(ha->mirror); /* its lock goes: the store takes the directory */
	ha->mirror = NULL;
	if (broker_activate(ha->b) < 0)
		return -1;
	log_info("replication: promoted: active");
	return 0;
}

static void promote(struct ha *ha, char *answer, size_t n)
{
	if (ha->b->active)
		snprintf(answer, n, "already active");
	else if (ha_promote(ha, 0) < 0)
		snprintf(answer, n, "promotion failed: see the log of %s", ha->cfg->node_id);
	else
		snprintf(answer, n, "promoted: active");
}

void ha_status(struct ha *ha, struct ha_status *out)
{
	memset(out, 0, sizeof(*out));
	out->active = ha->b->active;
	out->attaches = ha->attaches;
	out->drops = ha->drops;
	out->refusals = ha->refusals;
	out->in_sync = ha->in_sync;
	out->degraded = ha->degraded;
	out->epoch = ha->epoch.epoch;
	if (out->active && ha->j) {
		out->connected = ha->standby != NULL;
		out->last_seq = journal_durable_last(ha->j);
		if (ha->standby) {
			out->lag_records = out->last_seq > ha->acked ? out->last_seq - ha->acked : 0;
			out->lag_bytes = sender_unsent(ha->standby->sender);
			out->held = journal_gate_held(ha->j);
		}
	} else if (ha->mirror) {
		out->connected = ha->upstream && ha->upstream->state == L_UPSTREAM;
		out->in_sync = out->connected && mirror_last_seq(ha->mirror) >= ha->peer_last;
		out->last_seq = mirror_last_seq(ha->mirror);
		out->lag_records = ha->peer_last > out->last_seq ? ha->peer_last - out->last_seq : 0;
	}
}

static void status_text(struct ha *ha, char *out, size_t n)
{
	struct ha_status st;
	ha_status(ha, &st);
	snprintf(out, n,
		 "role: %s\nnode_id: %s\nepoch: %" PRIu64 "\npeer: %s\nconnected: %s\nin_sync: %s\n"
		 "degraded: %s\n"
		 "last_seq: %" PRIu64 "\nlag_records: %" PRIu64 "\nlag_bytes: %" PRIu64 "\n"
		 "held_confirmations: %" PRIu64 "\nattaches: %" PRIu64 "\ndrops: %" PRIu64 "\nrefusals: %" PRIu64 "\n"
		 "pid: %ld\n",
		 st.active ? "active" : "standby", ha->cfg->node_id, st.epoch, ha->cfg->peer,
		 st.connected ? "yes" : "no", st.in_sync ? "yes" : "no", st.degraded ? "yes" : "no",
		 st.last_seq, st.lag_records, st.lag_bytes, st.held, st.attaches, st.drops, st.refusals,
		 (long)getpid());
}

/* ---- the planned switch-over (FAILOVER) ---------------------------------
 *
 * 1. Named queues stop delivering (router_hold_deliveries) while client
 *    input is still read, until every delivery out to a consumer is
 *    acknowledged or HANDOVER_SETTLE_MS passed: what is acknowledged here
 *    is not delivered again by the new active.
 * 2. Client input stops (conn_drain_input): nothing new is written for
 *    clients; output and confirmations go on. Wait, at most
 *    HANDOVER_WAIT_MS, until the standby is attached and in sync, the
 *    arbiter names it in the sync key, nothing is waiting to be written
 *    and its ACK covers the journal's durable end. Else refuse: input and
 *    deliveries resume and wharfctl is told.
 * 3. The gate is turned on at the ACK (nothing above it is confirmed from
 *    here on, whatever ha.sync says) and the lead is given up
 *    (arbiter_resign): the standby is elected within milliseconds and,
 *    promoting itself, closes its link to us.
 * 4. Once the link has gone (or lease_ttl * 2 passed), wharfctl is
 *    answered and, once the answer has gone out, this node restarts
 *    (broker_restart) and joins the new active as its standby. */

static void handover_cb(evutil_socket_t fd, short what, void *arg);

void ha_handover_free(struct ha *ha)
{
	if (ha->handover_ev)
		event_free(ha->handover_ev);
	ha->handover_ev = NULL;
}

static bool standby_has_everything(struct ha *ha)
{
	if (!ha->standby || !ha->in_sync || !failover_standby_named(ha->failover))
		return false;
	uint64_t durable = journal_durable_last(ha->j);
	return journal_next_seq(ha->j) == durable + 1 && ha->acked >= durable;
}

static void handover_answer(struct ha *ha, const char *text)
{
	if (!ha->handover_ctl)
		return;
	hlink_send_text(ha->handover_ctl, text);
	hlink_close_flushed(ha->handover_ctl); /* may free it: clears handover_ctl */
}

static void handover_refuse(struct ha *ha)
{
	log_warn("replication: switch-over refused: standby %s not in sync within %d ms; serving "
		 "again",
		 ha->standby ? ha->standby->peer_id : "(none)", HANDOVER_WAIT_MS);
	conn_drain_input(ha->b, false);
	router_hold_deliveries(ha->b->router, false);
	ha->handover = HANDOVER_NONE;
	event_del(ha->handover_ev);
	handover_answer(ha, "failover refused: standby not in sync");
}

static void handover_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct ha *ha = arg;
	int64_t now = ha_now_ms();
	char text[256];
	switch (ha->handover) {
	case HANDOVER_NONE:
		event_del(ha->handover_ev);
		return;
	case HANDOVER_SETTLE:
		if (!ha->b->active)
			return;
		if (router_unacked(ha->b->router) && now < ha->handover_deadline_ms)
			return;
		conn_drain_input(ha->b, true);
		log_info("replication: switch-over: %zu deliveries left unacknowledged after %" PRId64
			 " ms; client input stopped; waiting for standby %s",
			 router_unacked(ha->b->router), now - ha->handover_since_ms,
			 ha->standby ? ha->standby->peer_id : "(none attached)");
		ha->handover = HANDOVER_WAIT;
		ha->handover_deadline_ms = now + HANDOVER_WAIT_MS;
		return;
	case HANDOVER_WAIT:
		if (!ha->b->active) /* lost the lead meanwhile: restarting anyway */
			return;
		if (!standby_has_everything(ha)) {
			if (now >= ha->handover_deadline_ms)
				handover_refuse(ha);
			return;
		}
		/* Nothing above the standby's ACK is confirmed from here on. */
		journal_gate_advance(ha->j, ha->acked);
		journal_gate(ha->j, true);
		snprintf(ha->handover_to, sizeof(ha->handover_to), "%s", ha->standby->peer_id);
		log_info("replication: switch-over: standby %s has every record (up to %" PRIu64
			 ", after %" PRId64 " ms); giving it the lead",
			 ha->handover_to, ha->acked, now - ha->handover_since_ms);
		ha->handover = HANDOVER_RESIGNED;
		ha->handover_deadline_ms = now + 2 * (int64_t)ha->cfg->lease_ttl_ms;
		failover_resign(ha->failover);
		return;
	case HANDOVER_RESIGNED:
		/* The new active closes its link to us when it promotes; the
		 * revoke is answered (or failed). Bounded either way. */
		if ((!failover_idle(ha->failover) || ha->standby) && now < ha->handover_deadline_ms)
			return;
		if (ha->standby)
			snprintf(text, sizeof(text), "failover: lead given up, but %s did not take over "
				 "within %u ms; %s restarts as a standby", ha->handover_to,
				 2 * ha->cfg->lease_ttl_ms, ha->cfg->node_id);
		else
			snprintf(text, sizeof(text), "failover: %s takes over", ha->handover_to);
		log_info("replication: switch-over: %s; restarting as a standby (%" PRId64 " ms)",
			 text, now - ha->handover_since_ms);
		ha->handover = HANDOVER_ANSWERED;
		ha->handover_deadline_ms = now + 1000;
		handover_answer(ha, text);
		return;
	case HANDOVER_ANSWERED:
		if (ha->handover_ctl && now < ha->handover_deadline_ms)
			return; /* the answer is still going out */
		broker_restart(ha->b);
	}
}

static int failover_request(struct link *l)
{
	struct ha *ha = l->ha;
	char answer[256];
	if (!ha->failover)
		snprintf(answer, sizeof(answer), "failover needs role = auto; use promote");
	else if (!ha->b->active || !ha->j)
		snprintf(answer, sizeof(answer), "failover refused: %s is not active; ask the active "
			 "node", ha->cfg->node_id);
	else if (ha->handover)
		snprintf(answer, sizeof(answer), "failover refused: a switch-over is in progress");
	else if (!ha->handover_ev &&
		 !(ha->handover_ev = event_new(ha->b->base, -1, EV_PERSIST, handover_cb, ha)))
		snprintf(answer, sizeof(answer), "failover refused: out of memory");
	else
		answer[0] = '\0';
	if (answer[0]) {
		hlink_send_text(l, answer);
		hlink_close_flushed(l);
		return 1;
	}
	int64_t now = ha_now_ms();
	ha->handover = HANDOVER_SETTLE;
	ha->handover_ctl = l;
	ha->handover_since_ms = now;
	ha->handover_deadline_ms = now + HANDOVER_SETTLE_MS;
	bufferevent_disable(l->bev, EV_READ); /* it asks nothing more */
	router_hold_deliveries(ha->b->router, true);
	log_info("replication: switch-over asked: queues hold their deliveries; waiting for the "
		 "%zu out to consumers to be acknowledged", router_unacked(ha->b->router));
	struct timeval tick = { 0, HANDOVER_TICK_MS * 1000 };
	event_add(ha->handover_ev, &tick);
	return 1;
}

/* The drill's link cut (LINK_DROP): the active drops its standby exactly
 * as when the link fails (ha_drop_standby: degraded, the arbiter's sync key
 * cleared before anything is confirmed alone) and, for hold_ms, refuses it
 * back, as a partition that lasts would; then the standby catches up. */
static void link_drop(struct ha *ha, uint64_t hold_ms, char *answer, size_t n)
{
	if (!ha->b->active || !ha->j) {
		snprintf(answer, n, "link-drop refused: %s is not active; ask the active node",
			 ha->cfg->node_id);
		return;
	}
	if (ha->handover) {
		snprintf(answer, n, "link-drop refused: a switch-over is in progress");
		return;
	}
	if (!ha->standby) {
		snprintf(answer, n, "link-drop refused: no standby attached to %s", ha->cfg->node_id);
		return;
	}
	if (hold_ms > LINK_HOLD_MAX_MS)
		hold_ms = LINK_HOLD_MAX_MS;
	snprintf(answer, n, "link dropped: standby %s detached, refused for %" PRIu64 " ms; %s "
		 "runs alone, degraded, until it is in sync again", ha->standby->peer_id, hold_ms,
		 ha->cfg->node_id);
	ha->link_held_until_ms = ha_now_ms() + (int64_t)hold_ms;
	ha_drop_standby(ha, "dropped by wharfctl link-drop");
}

int ha_on_control(struct link *l, const struct repl_frame *f)
{
	char answer[REPL_STR_MAX];
	uint64_t hold_ms;
	if (f->type == REPL_FAILOVER)
		return failover_request(l);
	if (f->type == REPL_STATUS)
		status_text(l->ha, answer, sizeof(answer));
	else if (f->type == REPL_PROMOTE)
		promote(l->ha, answer, sizeof(answer));
	else if (f->type == REPL_LINK_DROP && repl_u64s_decode(f, &hold_ms, 1) == 0)
		link_drop(l->ha, hold_ms, answer, sizeof(answer));
	else
		return -1;
	hlink_send_text(l, answer);
	hlink_close_flushed(l);
	return 1;
}
