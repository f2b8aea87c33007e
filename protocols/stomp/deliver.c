/* Deliveries from the router as MESSAGE frames, and their pause while the
 * connection's output is full. */
#include "config.h"
#include "protocols/stomp/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "conf.h"
#include "net/conn.h"
#include "net/output.h"

/* A message's reply-to header, back from the protocol-neutral form
 * (send.c's reply_to_in). */
static int reply_to_out(struct stomp_session *s, const char *v)
{
	const char *kind = NULL;
	if (!strncmp(v, ADDR_QUEUE_PREFIX "wharf.temp.", strlen(ADDR_QUEUE_PREFIX "wharf.temp.")) &&
	    stomp_dialect_of(s) != STOMP_DIALECT_ACTIVEMQ)
		kind = "/reply-queue/";
	else if (!strncmp(v, ADDR_QUEUE_PREFIX, strlen(ADDR_QUEUE_PREFIX)))
		kind = "/queue/";
	else if (!strncmp(v, ADDR_TOPIC_PREFIX, strlen(ADDR_TOPIC_PREFIX)))
		kind = "/topic/";
	if (!kind)
		return stomp_hdr(s, STOMP_CMD_MESSAGE, "reply-to", v);
	struct buf tmp = BUF_INIT;
	int rc = buf_printf(&tmp, "%s%s", kind, strchr(v, ':') + 3);
	if (rc == 0)
		rc = stomp_hdr(s, STOMP_CMD_MESSAGE, "reply-to", tmp.data);
	buf_free(&tmp);
	return rc;
}

static int encode_message_head(struct stomp_session *s, struct stomp_sub *sub,
			       struct delivery *d, struct message *m)
{
	char num[64];
	int rc = 0;
	rc |= stomp_encode_command(&s->out, STOMP_CMD_MESSAGE);
	if (sub->kind == DEST_QUEUE) {
		rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "destination", sub->queue_dest);
	} else {
		struct buf dest = BUF_INIT;
		rc |= buf_printf(&dest, "%s%s", sub->topic_prefix, m->dest);
		rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "destination", dest.data ? dest.data : "");
		buf_free(&dest);
	}
	snprintf(num, sizeof(num), "ID:wharf-%" PRIu64, m->id);
	rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "message-id", num);
	rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "subscription", sub->id);
	if (sub->ack != ACK_AUTO && s->version == STOMP_V12) {
		snprintf(num, sizeof(num), "%lu-%" PRIu64, sub->seq, m->id);
		rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "ack", num);
	}
	if (m->durable)
		rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "persistent", "true");
	if (m->priority != MESSAGE_DEFAULT_PRIORITY) {
		snprintf(num, sizeof(num), "%u", m->priority);
		rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "priority", num);
	}
	if (m->expiry_ms) {
		snprintf(num, sizeof(num), "%" PRId64, m->expiry_ms);
		rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "expires", num);
	}
	snprintf(num, sizeof(num), "%" PRId64, m->timestamp_ms);
	rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "timestamp", num);
	/* Fields from the publisher that this version cannot carry (a newline
	 * for a 1.0 consumer) are left out rather than failing the delivery. */
	if (m->content_type)
		stomp_hdr(s, STOMP_CMD_MESSAGE, "content-type", m->content_type);
	if (m->correlation_id)
		stomp_encode_header(&s->out, s->version, STOMP_CMD_MESSAGE, "correlation-id",
				    m->correlation_id, m->correlation_id_len);
	if (m->reply_to)
		reply_to_out(s, m->reply_to);
	uint32_t count = delivery_count(d);
	if (count > 1) {
		rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "redelivered", "true");
		snprintf(num, sizeof(num), "%" PRIu32, count - 1);
		rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "x-delivery-count", num);
	} else if (sub->rabbit) {
		rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "redelivered", "false");
	}
	for (size_t i = 0; i < m->nprops; i++) {
		/* A property named like a frame header (content-length, ...)
		 * would change how the frame reads: left out. */
		if (stomp_reserved_header(m->props[i].name))
			continue;
		stomp_encode_header(&s->out, s->version, STOMP_CMD_MESSAGE, m->props[i].name,
				    m->props[i].value, m->props[i].value_len);
	}
	snprintf(num, sizeof(num), "%zu", m->body_len);
	rc |= stomp_hdr(s, STOMP_CMD_MESSAGE, "content-length", num);
	rc |= stomp_encode_end_headers(&s->out);
	return rc ? -1 : 0;
}

static int stomp_deliver(void *ctx, struct delivery *d, struct message *m)
{
	struct stomp_sub *sub = ctx;
	struct stomp_session *s = sub->s;
	if (s->state != ST_CONNECTED || conn_closing(s->c) || conn_output_full(s->c) ||
	    (sub->ack != ACK_AUTO && s->unacked >= s->b->cfg->max_unacked_per_connection)) {
		s->paused = true;
		return -1;
	}
	buf_reset(&s->out);
	if (encode_message_head(s, sub, d, m) < 0)
		goto fail;
	if (output_message(s->c, s->out.data, s->out.len, m, "", 1) < 0)
		goto fail;
	buf_reset(&s->out);
	stomp_note_tx(s);
	if (sub->ack != ACK_AUTO)
		s->unacked++;
	return 0;
fail:
	buf_reset(&s->out);
	s->paused = true;
	conn_close(s->c, false);
	return -1;
}

const struct consumer_ops stomp_consumer_ops = { .deliver = stomp_deliver };

void stomp_unacked_changed(struct stomp_session *s)
{
	s->unacked = 0;
	for (const struct stomp_sub *sub = s->subs; sub; sub = sub->next)
		if (sub->ack != ACK_AUTO && sub->rs)
			s->unacked += consumer_unacked(subscription_consumer(sub->rs));
	stomp_drained(s);
}

void stomp_drained(void *session)
{
	struct stomp_session *s = session;
	if (!s->paused || s->state != ST_CONNECTED)
		return;
	s->paused = false;
	for (struct stomp_sub *sub = s->subs; sub && !s->paused; sub = sub->next)
		consumer_set_paused(subscription_consumer(sub->rs), false);
}
