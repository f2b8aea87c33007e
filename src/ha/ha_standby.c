/* The standby's side of the replication link (ha/ha_internal.h): its
 * HELLO, the active's WELCOME checked, the shipped frames written into the
 * mirror, and the ACK once they are on disk. */
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

int ha_on_challenge(struct link *l, const struct repl_frame *f)
{
	struct ha *ha = l->ha;
	struct repl_challenge c;
	if (repl_challenge_decode(f, &c) < 0)
		return -1;
	memcpy(l->nonce_a, c.nonce, REPL_NONCE);
	ha_str_copy(l->peer_id, sizeof(l->peer_id), &c.node_id);
	struct repl_hello h = { 0 };
	if (repl_nonce(l->nonce_b) < 0 ||
	    repl_proof(ha->secret, REPL_LABEL_HELLO, l->nonce_a, l->nonce_b, h.proof) < 0)
		return -2;
	memcpy(h.nonce, l->nonce_b, REPL_NONCE);
	h.node_id = (struct repl_str){ ha->cfg->node_id, strlen(ha->cfg->node_id) };
	h.last_seq = mirror_last_seq(ha->mirror);
	h.oldest = mirror_oldest(ha->mirror);
	h.role = REPL_ROLE_STANDBY;
	h.epoch = ha->epoch.epoch;
	uint8_t buf[REPL_FRAME_AUTH];
	size_t n = repl_hello_encode(buf, sizeof(buf), &h);
	if (!n)
		return -2;
	hlink_send(l, buf, n);
	l->state = L_WAIT_WELCOME;
	return 0;
}

int ha_on_welcome(struct link *l, const struct repl_frame *f)
{
	struct ha *ha = l->ha;
	struct repl_welcome w;
	if (repl_welcome_decode(f, &w) < 0)
		return -1;
	if (!repl_proof_ok(ha->secret, REPL_LABEL_WELCOME, l->nonce_b, l->nonce_a, w.proof)) {
		ha_refuse_bad_secret(l);
		return -2;
	}
	ha_str_copy(l->peer_id, sizeof(l->peer_id), &w.node_id);
	if (w.mode == REPL_MODE_CONTROL)
		return -1;
	char adv[REPL_STR_MAX + 1];
	ha_str_copy(adv, sizeof(adv), &w.advertise);
	broker_set_redirect(ha->b, adv);
	uint64_t mine = mirror_last_seq(ha->mirror);
	if (mine > w.last_seq)
		log_warn("replication: discarding %" PRIu64 " records the active %s does not have",
			 mine - w.last_seq, l->peer_id);
	char err[256];
	if (mirror_start(ha->mirror, w.mode, w.from, w.oldest, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -2;
	}
	/* What is left of the journal is the active's history: its epoch. */
	struct ha_epoch e = { w.epoch, w.epoch_start };
	if ((e.epoch != ha->epoch.epoch || e.start != ha->epoch.start) &&
	    ha_epoch_save(ha->b->cfg->data_dir, &e) == 0)
		ha->epoch = e;
	if (w.mode == REPL_MODE_FULL)
		log_info("replication: attached to active %s: full copy", l->peer_id);
	else
		log_info("replication: attached to active %s: catching up from segment %" PRIu64,
			 l->peer_id, w.from);
	ha->peer_last = w.last_seq;
	ha->last_connect_log_ms = 0;
	ha->attaches++;
	l->state = L_UPSTREAM;
	l->ack_due = true;
	return 0;
}

int ha_on_mirror_frame(struct link *l, const struct repl_frame *f)
{
	struct mirror *m = l->ha->mirror;
	char err[256] = "";
	uint64_t v[2];
	int rc;
	switch (f->type) {
	case REPL_SEG_BEGIN:
		if (repl_u64s_decode(f, v, 1) < 0)
			return -1;
		rc = mirror_seg_begin(m, v[0], err, sizeof(err));
		break;
	case REPL_DATA: {
		struct repl_data d;
		if (repl_data_decode(f, &d) < 0)
			return -1;
		rc = mirror_data(m, &d, err, sizeof(err));
		break;
	}
	case REPL_STUB:
		if (repl_u64s_decode(f, v, 2) < 0)
			return -1;
		rc = mirror_stub(m, v[0], v[1], err, sizeof(err));
		break;
	case REPL_DROP:
		if (repl_u64s_decode(f, v, 1) < 0)
			return -1;
		rc = mirror_drop(m, v[0], err, sizeof(err));
		break;
	default:
		return -1;
	}
	if (rc < 0) {
		log_error("%s; dropping the link to start again", err);
		return -2;
	}
	return 0;
}

/* The standby's burst is written: make it durable, then say so. */
int ha_ack_burst(struct link *l)
{
	struct ha *ha = l->ha;
	if (!l->ack_due && !mirror_dirty(ha->mirror))
		return 0;
	char err[256];
	if (mirror_sync(ha->mirror, err, sizeof(err)) < 0) {
		log_error("%s; dropping the link", err);
		return -1;
	}
	l->ack_due = false;
	hlink_send_u64(l, REPL_ACK, mirror_last_seq(ha->mirror));
	return 0;
}
