/* The active's side of the replication link (ha/ha_internal.h): a
 * standby's HELLO checked and answered (where it starts), its ACKs moving
 * the journal's replica gate, the journal's tap driving the sender. */
#include "config.h"
#include "ha/ha.h"
#include "ha/ha_internal.h"
#include "ha/failover.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "ha/auth.h"
#include "ha/frame.h"
#include "ha/mirror.h"
#include "ha/sender.h"
#include "log.h"
#include "store/journal.h"
#include "store/store.h"

static void tap_cb(void *arg)
{
	struct ha *ha = arg;
	if (!ha->standby)
		return;
	if (!ha->unacked_since_ms && ha->acked < journal_durable_last(ha->j))
		ha->unacked_since_ms = ha_now_ms();
	sender_kick(ha->standby->sender);
	if (sender_error(ha->standby->sender) < 0)
		ha_drop_standby(ha, "cannot ship the journal");
}

void ha_activated(struct ha *ha)
{
	if (!ha || !ha->b->store)
		return;
	ha->j = store_journal(ha->b->store);
	journal_set_tap(ha->j, tap_cb, ha);
	/* A promotion starts an epoch (ha_promote set it, with its start); a
	 * primary's first start, epoch 1 from the first record. */
	struct ha_epoch e = ha->epoch;
	if (ha->next_epoch)
		e.epoch = ha->next_epoch;
	else if (!e.epoch)
		e = (struct ha_epoch){ 1, 1 };
	ha->next_epoch = 0;
	if (e.epoch == ha->epoch.epoch && e.start == ha->epoch.start)
		return;
	ha->epoch = e;
	log_info("replication: %s active at epoch %" PRIu64 " (from record %" PRIu64 ")",
		 ha->cfg->node_id, e.epoch, e.start);
	char text[48];
	int n = snprintf(text, sizeof(text), "%" PRIu64 " %" PRIu64, e.epoch, e.start);
	if (ha_epoch_save(ha->b->cfg->data_dir, &e) < 0 ||
	    store_put(ha->b->store, "ha/epoch", text, (size_t)n) < 0)
		log_warn("replication: epoch %" PRIu64 " not recorded everywhere", e.epoch);
}

int ha_on_ack(struct link *l, const struct repl_frame *f)
{
	struct ha *ha = l->ha;
	uint64_t seq;
	if (repl_u64s_decode(f, &seq, 1) < 0)
		return -1;
	bool advanced = seq > ha->acked;
	if (advanced)
		ha->acked = seq;
	uint64_t durable = journal_durable_last(ha->j);
	/* the stall clock restarts only when the ACK moves */
	if (ha->acked >= durable)
		ha->unacked_since_ms = 0;
	else if (advanced || !ha->unacked_since_ms)
		ha->unacked_since_ms = ha_now_ms();
	if (ha->in_sync) {
		if (ha->replicated)
			journal_gate_advance(ha->j, ha->acked);
	} else if (ha->acked >= durable || (ha->sync_mark && ha->acked >= ha->sync_mark)) {
		/* At the durable end, or at the end as it was when all of it
		 * had been put on the link: under a steady load the ACK may
		 * never meet the moving end exactly. From now on every
		 * confirmation above the ACK waits for the next one. */
		ha->in_sync = true;
		ha->degraded = false;
		log_info("replication: standby %s in sync", l->peer_id);
		failover_in_sync(ha->failover, l->peer_id);
		if (ha->replicated) {
			journal_gate_advance(ha->j, ha->acked);
			journal_gate(ha->j, true);
		}
	} else if (!ha->sync_mark && sender_unsent(l->sender) == 0 &&
		   evbuffer_get_length(bufferevent_get_output(l->bev)) <= REPL_CHUNK) {
		ha->sync_mark = durable;
	}
	return 0;
}

/* A standby proved the secret: decide where it starts and go. */
static int attach_standby(struct link *l, const struct repl_hello *h, struct repl_welcome *w)
{
	struct ha *ha = l->ha;
	if (!ha->b->active || !ha->j) {
		log_warn("replication: standby %s (%s) refused: this node is not active", l->peer_id,
			 l->addr);
		ha->refusals++;
		return -1;
	}
	int64_t held = ha->link_held_until_ms - ha_now_ms();
	if (held > 0) {
		log_info("replication: standby %s (%s) refused: the link is held down for %" PRId64
			 " ms more (wharfctl link-drop)", l->peer_id, l->addr, held);
		ha->refusals++;
		return -1;
	}
	if (ha->standby) {
		log_warn("replication: standby %s (%s) refused: standby %s is attached already",
			 l->peer_id, l->addr, ha->standby->peer_id);
		ha->refusals++;
		return -1;
	}
	l->sender = sender_new(ha->b->base, ha->j, ha->journal_dir, bufferevent_get_output(l->bev));
	if (!l->sender || sender_start(l->sender, h->last_seq, w) < 0) {
		log_error("replication: out of memory attaching standby %s", l->peer_id);
		return -1;
	}
	ha->standby = l;
	ha->attaches++;
	l->state = L_STANDBY;
	ha->in_sync = false;
	ha->sync_mark = 0;
	if (w->mode == REPL_MODE_FULL)
		ha->acked = 0;
	else
		ha->acked = h->last_seq < w->from ? h->last_seq : w->from - 1;
	uint64_t behind = w->last_seq > ha->acked ? w->last_seq - ha->acked : 0;
	ha->unacked_since_ms = behind ? ha_now_ms() : 0;
	if (w->mode == REPL_MODE_FULL && h->last_seq > w->last_seq)
		log_info("replication: standby %s catching up, %" PRIu64 " records behind (full copy; "
			 "it holds %" PRIu64 " records this node does not)",
			 l->peer_id, behind, h->last_seq - w->last_seq);
	else if (w->mode == REPL_MODE_FULL)
		log_info("replication: standby %s catching up, %" PRIu64 " records behind (full copy)",
			 l->peer_id, behind);
	else
		log_info("replication: standby %s catching up, %" PRIu64 " records behind (from "
			 "segment %" PRIu64 ")", l->peer_id, behind, w->from);
	return 0;
}

int ha_on_hello(struct link *l, const struct repl_frame *f)
{
	struct ha *ha = l->ha;
	struct repl_hello h;
	if (repl_hello_decode(f, &h) < 0)
		return -1;
	if (!repl_proof_ok(ha->secret, REPL_LABEL_HELLO, l->nonce_a, h.nonce, h.proof)) {
		ha_refuse_bad_secret(l);
		return -2;
	}
	memcpy(l->nonce_b, h.nonce, REPL_NONCE);
	ha_str_copy(l->peer_id, sizeof(l->peer_id), &h.node_id);
	if (h.role == REPL_ROLE_STANDBY && h.epoch > ha->epoch.epoch) {
		log_error("replication: standby %s (%s) has seen epoch %" PRIu64 ", newer than this "
			  "node's %" PRIu64 ": another node was made active since; this one should not "
			  "serve (restart it as a standby)",
			  l->peer_id, l->addr, h.epoch, ha->epoch.epoch);
		ha->refusals++;
		return -2;
	}
	/* What of the standby's journal is our history (ha/epoch.h). */
	h.last_seq = ha_epoch_keep(&ha->epoch, h.epoch, h.last_seq);
	struct repl_welcome w = { 0 };
	if (repl_proof(ha->secret, REPL_LABEL_WELCOME, l->nonce_b, l->nonce_a, w.proof) < 0)
		return -2;
	w.node_id = (struct repl_str){ ha->cfg->node_id, strlen(ha->cfg->node_id) };
	w.epoch = ha->epoch.epoch;
	w.epoch_start = ha->epoch.start;
	/* Where the standby sends clients: this node's own listeners. */
	char adv[REPL_STR_MAX + 1];
	if (broker_advertise(ha->b, adv, sizeof(adv)) < 0) {
		log_warn("replication: ha.advertise (or the listeners' URLs) is over %u bytes; the "
			 "standby cannot redirect clients",
			 REPL_STR_MAX);
		adv[0] = '\0';
	}
	w.advertise = (struct repl_str){ adv, strlen(adv) };
	if (h.role == REPL_ROLE_CONTROL) {
		w.mode = REPL_MODE_CONTROL;
		l->state = L_CONTROL;
	} else if (attach_standby(l, &h, &w) < 0) {
		return -2;
	}
	uint8_t buf[REPL_FRAME_AUTH];
	size_t n = repl_welcome_encode(buf, sizeof(buf), &w);
	if (!n)
		return -2;
	hlink_send(l, buf, n); /* the sender has queued nothing yet */
	if (l->sender)
		sender_kick(l->sender);
	return 0;
}
