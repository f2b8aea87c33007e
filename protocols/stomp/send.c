/* SEND frames: the message a SEND describes (reply-to, temp queues),
 * publishing it, the receipts that wait for the store, and a full
 * destination's back-pressure on the publisher. */
#include "config.h"
#include "protocols/stomp/internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "net/conn.h"

/* ---- reply-to ----------------------------------------------------------- */

static int set_reply_to(struct message *m, const char *prefix, const char *name)
{
	struct buf b = BUF_INIT;
	if (buf_printf(&b, "%s%s", prefix, name) < 0) {
		buf_free(&b);
		return -1;
	}
	free(m->reply_to);
	m->reply_to = b.data;
	return 0;
}

/* Reply-to is kept protocol-neutral in the message (queue://, topic://);
 * anything else is carried as the client wrote it. -1 with *why set. */
static int reply_to_in(struct stomp_session *s, struct message *m, const char *v,
		       const char **why)
{
	const char *temp = stomp_dialect_of(s) != STOMP_DIALECT_ACTIVEMQ &&
					   !strncmp(v, "/temp-queue/", 12) && v[12] ? v + 12 : NULL;
	if (temp) {
		const char *queue = stomp_temp_queue(s, temp);
		if (!queue)
			*why = "the reply-to temp queue cannot be made";
		return queue ? set_reply_to(m, ADDR_QUEUE_PREFIX, queue) : -1;
	}
	struct stomp_dest d;
	if (stomp_dest_parse(v, stomp_dialect_of(s), false, &d, why) < 0) {
		*why = "out of memory";
		return message_set(&m->reply_to, v);
	}
	*why = "out of memory";
	int rc = set_reply_to(m, d.kind == DEST_QUEUE ? ADDR_QUEUE_PREFIX : ADDR_TOPIC_PREFIX, d.name);
	stomp_dest_clear(&d);
	return rc;
}

/* Builds the message a SEND frame describes; takes the frame's body.
 * Returns NULL with *why set on a bad header or out of memory. */
static struct message *message_from_send(struct stomp_session *s, struct stomp_frame *f,
					 const char **why)
{
	struct message *m = message_new();
	unsigned long long n;
	const char *v;
	*why = "out of memory";
	if (!m)
		return NULL;
	/* STOMP frames are acknowledged (receipts, acks): at least once. */
	m->qos = 1;
	m->durable = stomp_header_bool(f, "persistent") == 1;
	if ((v = stomp_frame_get(f, "priority"))) {
		if (!stomp_parse_uint(v, 9, &n)) {
			*why = "priority must be 0 to 9";
			goto fail;
		}
		m->priority = (uint8_t)n;
	}
	if ((v = stomp_frame_get(f, "expires"))) {
		if (!stomp_parse_uint(v, INT64_MAX, &n)) {
			*why = "expires must be milliseconds since the epoch";
			goto fail;
		}
		m->expiry_ms = (int64_t)n;
	}
	if ((v = stomp_frame_get(f, "content-type")) && message_set(&m->content_type, v) < 0)
		goto fail;
	if ((v = stomp_frame_get(f, "correlation-id")) &&
	    message_set_bytes(&m->correlation_id, &m->correlation_id_len, v, strlen(v)) < 0)
		goto fail;
	if ((v = stomp_frame_get(f, "reply-to")) && reply_to_in(s, m, v, why) < 0)
		goto fail;
	for (size_t i = 0; i < f->nheaders; i++) {
		const struct stomp_header *h = &f->headers[i];
		if (stomp_reserved_header(h->name) || stomp_frame_get(f, h->name) != h->value)
			continue; /* a repeated header: the first one counts */
		if (message_add_prop(m, h->name, h->value, h->value_len) < 0)
			goto fail;
	}
	message_take_body(m, &f->body, f->body_len);
	return m;
fail:
	message_unref(m);
	return NULL;
}

/* ---- publishing and receipts -------------------------------------------- */

/* A destination filled up: stop reading this client until it drains. A
 * client that also consumes on this connection must not depend on this
 * connection's acks to drain it (use a second connection, as with
 * RabbitMQ's flow control). */
static void block_if_full(struct stomp_session *s, const struct publish_ctx *pc)
{
	if (!pc->blocked || s->blocked)
		return;
	s->blocked = true;
	conn_pause_input(s->c, true);
	router_wait_room(s->b->router, &s->waiter);
}

void stomp_room(struct router_waiter *w)
{
	struct stomp_session *s = (struct stomp_session *)((char *)w - offsetof(struct stomp_session, waiter));
	s->blocked = false;
	s->last_rx_ms = clock_mono_ms();
	conn_pause_input(s->c, false);
}

void stomp_queue_receipt(struct stomp_session *s, const char *receipt,
			 enum receipt_kind kind)
{
	if (confirmq_empty(&s->confirms) && kind == RECEIPT_PLAIN) {
		stomp_send_receipt(s, receipt);
		return;
	}
	struct confirm *e = confirmq_push(&s->confirms);
	if (!e || (receipt && !(e->text = strdup(receipt)))) {
		if (e)
			confirmq_ready(&s->confirms, e, ROUTER_ENOMEM);
		else
			stomp_send_error(s, "out of memory", receipt, NULL);
		return;
	}
	e->tag = kind == RECEIPT_LAST;
	if (kind == RECEIPT_SYNC)
		confirmq_sync(&s->confirms, e);
	else
		confirmq_ready(&s->confirms, e, ROUTER_OK);
}

void stomp_release_confirm(void *ctx, struct confirm *e)
{
	struct stomp_session *s = ctx;
	if (s->state == ST_DONE && !s->disconnecting)
		return; /* an ERROR ended the connection */
	if (e->err != ROUTER_OK) {
		s->disconnecting = false;
		s->state = ST_CONNECTED;
		stomp_send_error(s, router_strerror(e->err), e->text, NULL);
		return;
	}
	if (e->text)
		stomp_send_receipt(s, e->text);
	if (e->tag) /* the DISCONNECT's */
		conn_close(s->c, true);
}

/* Publishes m; a durable message's outcome (and the receipt, if asked) waits
 * for the store. Returns -1 after an error reply, 0 when the caller is to
 * send the receipt, 1 when it is queued. */
int stomp_publish(struct stomp_session *s, enum dest_kind kind, const char *name,
		  struct message **m, const char *receipt)
{
	conn_count_msg_in(s->c);
	struct publish_ctx pc = { .principal = conn_principal(s->c), .who = conn_acl_who(s->c) };
	if (!(*m)->durable) {
		enum router_err err = router_publish(s->b->router, kind, name, m, &pc);
		if (err != ROUTER_OK) {
			stomp_send_router_error(s, err, name, receipt);
			return -1;
		}
		block_if_full(s, &pc);
		return 0;
	}
	struct confirm *e = confirmq_push(&s->confirms);
	if (!e || (receipt && !(e->text = strdup(receipt)))) {
		message_unref(*m);
		*m = NULL;
		if (e)
			confirmq_ready(&s->confirms, e, ROUTER_ENOMEM);
		else
			stomp_send_error(s, "out of memory", receipt, NULL);
		return -1;
	}
	enum router_err err = confirmq_publish(&s->confirms, e, kind, name, m, &pc);
	if (err != ROUTER_OK && err != ROUTER_PENDING)
		return -1; /* the error went out in order */
	block_if_full(s, &pc);
	return 1;
}

/* ---- SEND --------------------------------------------------------------- */

static int send_to(struct stomp_session *s, struct stomp_frame *f, enum dest_kind kind,
		   const char *name, const char *receipt)
{
	const char *why;
	bool failed;
	struct stomp_tx *t = stomp_frame_tx(s, f, &failed);
	if (failed)
		return -1;
	struct message *m = message_from_send(s, f, &why);
	if (!m) {
		stomp_send_error(s, why, receipt, NULL);
		return -1;
	}
	m->origin = conn_id(s->c);
	if (t && s->tx_bytes + message_mem_size(m) > s->b->cfg->max_transaction_bytes) {
		char text[128];
		snprintf(text, sizeof(text),
			 "the open transactions of a connection hold at most %zu bytes of messages",
			 s->b->cfg->max_transaction_bytes);
		message_unref(m);
		stomp_send_error(s, "transaction too large", receipt, text);
		return -1;
	}
	if (t) {
		struct tx_op *op = calloc(1, sizeof(*op));
		if (!op || !(op->name = strdup(name))) {
			free(op);
			message_unref(m);
			stomp_send_error(s, "out of memory", receipt, NULL);
			return -1;
		}
		op->type = TX_SEND;
		op->kind = kind;
		op->msg = m;
		stomp_tx_add(s, t, op);
		return 0;
	}
	return stomp_publish(s, kind, name, &m, receipt);
}

int stomp_on_send(struct stomp_session *s, struct stomp_frame *f)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	struct stomp_dest d;
	if (!stomp_frame_dest(s, f, false, &d))
		return -1;
	int rc = 0;
	/* A reply to a requester that has gone: dropped, as RabbitMQ does,
	 * rather than making a queue no one will read. */
	if (d.reply && !router_has_queue(s->b->router, d.name))
		conn_log(s->c, LOG_DEBUG, "stomp: reply to %s dropped: no such queue", d.name);
	else
		rc = send_to(s, f, d.kind, d.name, receipt);
	stomp_dest_clear(&d);
	return rc;
}
