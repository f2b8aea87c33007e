/* wharfctl's requests on the replication link (ha/ha_internal.h):
 * PROMOTE and STATUS, each answered with one TEXT frame. */
#include "config.h"
#include "ha/ha.h"
#include "ha/ha_internal.h"

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
		 "role: %s\nnode_id: %s\npeer: %s\nconnected: %s\nin_sync: %s\ndegraded: %s\n"
		 "last_seq: %" PRIu64 "\nlag_records: %" PRIu64 "\nlag_bytes: %" PRIu64 "\n"
		 "held_confirmations: %" PRIu64 "\nattaches: %" PRIu64 "\ndrops: %" PRIu64 "\nrefusals: %" PRIu64 "\n",
		 st.active ? "active" : "standby", ha->cfg->node_id, ha->cfg->peer,
		 st.connected ? "yes" : "no", st.in_sync ? "yes" : "no", st.degraded ? "yes" : "no",
		 st.last_seq, st.lag_records, st.lag_bytes, st.held, st.attaches, st.drops, st.refusals);
}

int ha_on_control(struct link *l, const struct repl_frame *f)
{
	char answer[REPL_STR_MAX];
	if (f->type == REPL_STATUS)
		status_text(l->ha, answer, sizeof(answer));
	else if (f->type == REPL_PROMOTE)
		promote(l->ha, answer, sizeof(answer));
	else
		return -1;
	hlink_send_text(l, answer);
	hlink_close_flushed(l);
	return 1;
}
