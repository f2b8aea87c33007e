/* ACK and NACK frames: which delivery they name in each version, and
 * applying them (now, or at a transaction's COMMIT). */
#include "config.h"
#include "protocols/stomp/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"

static bool parse_msg_id(const char *v, uint64_t *id)
{
	unsigned long long n;
	if (!v || strncmp(v, "ID:wharf-", 9) != 0 || !stomp_parse_uint(v + 9, UINT64_MAX, &n))
		return false;
	*id = n;
	return true;
}

/* Which subscription and message an ACK or NACK names: 1.2 by the `id`
 * header (our ack id), 1.1 by message-id and subscription, 1.0 by
 * message-id alone. Returns false if the frame names none well-formed. */
static bool ack_target(struct stomp_session *s, struct stomp_frame *f, unsigned long *sub_seq,
		       uint64_t *msg_id)
{
	if (s->version == STOMP_V12) {
		const char *id = stomp_frame_get(f, "id");
		char *end;
		unsigned long long n;
		if (!id || !(*id >= '0' && *id <= '9'))
			return false;
		errno = 0;
		*sub_seq = strtoul(id, &end, 10);
		if (errno || *end != '-' || !stomp_parse_uint(end + 1, UINT64_MAX, &n))
			return false;
		*msg_id = n;
		return true;
	}
	if (!parse_msg_id(stomp_frame_get(f, "message-id"), msg_id))
		return false;
	const char *subid = stomp_frame_get(f, "subscription");
	if (!subid) {
		if (s->version >= STOMP_V11)
			return false;
		*sub_seq = 0; /* 1.0: any subscription that has it */
		return true;
	}
	struct stomp_sub *sub = stomp_find_sub(s, subid);
	*sub_seq = sub ? sub->seq : (unsigned long)-1;
	return true;
}

/* Applies an ACK, NACK or rejecting NACK; false if no outstanding
 * delivery matches. */
bool stomp_apply_ack(struct stomp_session *s, unsigned long sub_seq, uint64_t msg_id,
		     enum op_type type)
{
	for (struct stomp_sub *sub = s->subs; sub; sub = sub->next) {
		if ((sub_seq && sub->seq != sub_seq) || sub->ack == ACK_AUTO)
			continue;
		struct delivery *d = consumer_find_delivery(subscription_consumer(sub->rs), msg_id);
		if (!d)
			continue;
		if (type == TX_ACK)
			delivery_ack(d, sub->ack == ACK_CLIENT);
		else
			delivery_nack(d, type == TX_REJECT ? NACK_REJECT : NACK_FAILED);
		return true;
	}
	return false;
}

bool stomp_on_ack(struct stomp_session *s, struct stomp_frame *f, bool nack)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	unsigned long sub_seq;
	uint64_t msg_id;
	if (!ack_target(s, f, &sub_seq, &msg_id)) {
		stomp_send_error(s, nack ? "malformed NACK" : "malformed ACK", receipt,
				 s->version == STOMP_V12 ? "expected the id header of the MESSAGE's ack header"
							 : "expected message-id and subscription headers");
		return false;
	}
	/* RabbitMQ's requeue:false: to the dead-letter queue, or dropped, as
	 * the queue's policy says, never back to the queue. */
	enum op_type type = !nack ? TX_ACK
		: stomp_dialect_of(s) != STOMP_DIALECT_ACTIVEMQ && stomp_header_bool(f, "requeue") == 0
			? TX_REJECT
		: TX_NACK;
	bool failed;
	struct stomp_tx *t = stomp_frame_tx(s, f, &failed);
	if (failed)
		return false;
	if (t) {
		struct tx_op *op = calloc(1, sizeof(*op));
		if (!op) {
			stomp_send_error(s, "out of memory", receipt, NULL);
			return false;
		}
		op->type = type;
		op->sub_seq = sub_seq;
		op->msg_id = msg_id;
		stomp_tx_add(s, t, op);
		return true;
	}
	if (!stomp_apply_ack(s, sub_seq, msg_id, type)) {
		stomp_send_error(s, "no outstanding message with that id", receipt,
				 "it was acknowledged already, or never delivered to this subscription");
		return false;
	}
	stomp_unacked_changed(s);
	return true;
}
