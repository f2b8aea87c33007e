/* The STOMP session: the session object and its connection callbacks, the
 * input loop and dispatch by command, ERROR frames and receipts on the
 * wire, and what reading a frame's headers takes. The commands themselves
 * are in connect.c, send.c, subscribe.c, ack.c and tx.c; deliveries in
 * deliver.c (internal.h). */
#include "config.h"
#include "protocols/stomp/session.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker.h"
#include "log.h"
#include "protocols/stomp/internal.h"

/* ---- output ------------------------------------------------------------- */

/* Sends s->out (a frame head) followed by an optional text body. */
int stomp_send_frame(struct stomp_session *s, const char *body)
{
	int rc = 0;
	if (body)
		rc = buf_append_str(&s->out, body);
	if (rc == 0)
		rc = buf_append_char(&s->out, '\0');
	if (rc == 0)
		rc = conn_write(s->c, s->out.data, s->out.len);
	buf_reset(&s->out);
	stomp_note_tx(s);
	return rc;
}

void stomp_send_error_frame(struct stomp_session *s, const char *message, const char *receipt,
			    const char *detail, const char *const *extra)
{
	char len[32];
	if (s->state == ST_DONE)
		return;
	buf_reset(&s->out);
	stomp_encode_command(&s->out, STOMP_CMD_ERROR);
	stomp_hdr(s, STOMP_CMD_ERROR, "message", message);
	for (size_t i = 0; extra && extra[i]; i += 2)
		stomp_hdr(s, STOMP_CMD_ERROR, extra[i], extra[i + 1]);
	if (receipt)
		stomp_hdr(s, STOMP_CMD_ERROR, "receipt-id", receipt);
	stomp_hdr(s, STOMP_CMD_ERROR, "content-type", "text/plain");
	snprintf(len, sizeof(len), "%zu", detail ? strlen(detail) : 0);
	stomp_hdr(s, STOMP_CMD_ERROR, "content-length", len);
	stomp_encode_end_headers(&s->out);
	stomp_send_frame(s, detail);
	conn_log(s->c, LOG_INFO, "stomp: error: %s%s%s", message, detail ? ": " : "",
		 detail ? detail : "");
	s->state = ST_DONE;
	conn_close(s->c, true);
}

void stomp_send_error(struct stomp_session *s, const char *message, const char *receipt,
		      const char *detail)
{
	stomp_send_error_frame(s, message, receipt, detail, NULL);
}

int stomp_send_receipt(struct stomp_session *s, const char *receipt)
{
	stomp_encode_command(&s->out, STOMP_CMD_RECEIPT);
	stomp_hdr(s, STOMP_CMD_RECEIPT, "receipt-id", receipt);
	stomp_encode_end_headers(&s->out);
	return stomp_send_frame(s, NULL);
}

/* ---- frames ------------------------------------------------------------- */

enum stomp_dialect stomp_dialect_of(const struct stomp_session *s)
{
	return (enum stomp_dialect)s->b->cfg->stomp.dialect;
}

bool stomp_parse_uint(const char *v, unsigned long long max, unsigned long long *out)
{
	if (!v || *v < '0' || *v > '9')
		return false;
	errno = 0;
	char *end;
	*out = strtoull(v, &end, 10);
	return !errno && !*end && *out <= max;
}

/* A boolean header: 1 for true, 0 for false, -1 when absent or neither.
 * Any case, as RabbitMQ reads them: stomp.py sends Python's True/False. */
int stomp_header_bool(const struct stomp_frame *f, const char *name)
{
	const char *v = stomp_frame_get(f, name);
	if (v && !strcasecmp(v, "true"))
		return 1;
	if (v && !strcasecmp(v, "false"))
		return 0;
	return -1;
}

/* Headers that are the frame's own, not user properties. */
bool stomp_reserved_header(const char *name)
{
	static const char *const names[] = {
		"destination", "transaction", "receipt", "content-length", "content-type",
		"persistent", "priority", "expires", "reply-to", "correlation-id", "message-id",
		"subscription", "ack", "timestamp", "redelivered", "x-delivery-count", NULL,
	};
	for (size_t i = 0; names[i]; i++)
		if (!strcmp(name, names[i]))
			return true;
	return false;
}

void stomp_send_router_error(struct stomp_session *s, enum router_err err, const char *dest,
			     const char *receipt)
{
	stomp_send_error(s, router_strerror(err), receipt, dest);
}

/* The frame's destination in *d (for the caller to clear); false after an
 * ERROR. pattern: a SUBSCRIBE's, which may hold wildcards. */
bool stomp_frame_dest(struct stomp_session *s, struct stomp_frame *f, bool pattern,
		      struct stomp_dest *d)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	const char *dest = stomp_frame_get(f, "destination");
	const char *why;
	if (!dest) {
		stomp_send_error(s, "missing destination header", receipt, NULL);
		return false;
	}
	if (stomp_dest_parse(dest, stomp_dialect_of(s), pattern, d, &why) < 0) {
		stomp_send_error(s, "invalid destination", receipt, why);
		return false;
	}
	return true;
}

/* ---- dispatch ----------------------------------------------------------- */

static void on_frame(struct stomp_session *s, struct stomp_frame *f)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	bool ok;
	if (s->state == ST_AWAIT_CONNECT) {
		if (f->command != STOMP_CMD_CONNECT && f->command != STOMP_CMD_STOMP) {
			stomp_send_error(s, "expected CONNECT", receipt, NULL);
			return;
		}
		stomp_on_connect(s, f);
		return;
	}
	switch (f->command) {
	case STOMP_CMD_SEND: {
		int rc = stomp_on_send(s, f);
		if (rc != 0)
			return; /* failed, or its receipt is queued */
		ok = true;
		break;
	}
	case STOMP_CMD_SUBSCRIBE: ok = stomp_on_subscribe(s, f); break;
	case STOMP_CMD_UNSUBSCRIBE: ok = stomp_on_unsubscribe(s, f); break;
	case STOMP_CMD_ACK: ok = stomp_on_ack(s, f, false); break;
	case STOMP_CMD_NACK:
		if (s->version == STOMP_V10) {
			stomp_send_error(s, "NACK needs STOMP 1.1 or later", receipt, NULL);
			return;
		}
		ok = stomp_on_ack(s, f, true);
		break;
	case STOMP_CMD_BEGIN:
	case STOMP_CMD_COMMIT:
	case STOMP_CMD_ABORT: ok = stomp_on_transaction(s, f); break;
	case STOMP_CMD_DISCONNECT:
		s->state = ST_DONE;
		if (!confirmq_empty(&s->confirms)) {
			s->disconnecting = true;
			stomp_queue_receipt(s, receipt, RECEIPT_LAST);
			return;
		}
		if (receipt)
			stomp_send_receipt(s, receipt);
		conn_close(s->c, true);
		return;
	case STOMP_CMD_CONNECT:
	case STOMP_CMD_STOMP:
		stomp_send_error(s, "already connected", receipt, NULL);
		return;
	default:
		stomp_send_error(s, "unexpected frame", receipt, stomp_command_name(f->command));
		return;
	}
	/* A receipt for an ack says the message will not come back; one for a
	 * durable subscription's start or end, that a crash will not undo it. */
	const char *durable_name;
	bool rabbit;
	bool sync = f->command == STOMP_CMD_ACK || f->command == STOMP_CMD_NACK ||
		    f->command == STOMP_CMD_COMMIT ||
		    ((f->command == STOMP_CMD_SUBSCRIBE || f->command == STOMP_CMD_UNSUBSCRIBE) &&
		     stomp_durable_request(f, &durable_name, &rabbit));
	if (ok && receipt && s->state == ST_CONNECTED)
		stomp_queue_receipt(s, receipt, sync ? RECEIPT_SYNC : RECEIPT_PLAIN);
}

/* ---- connection callbacks ----------------------------------------------- */

static void *stomp_open(struct conn *c)
{
	struct stomp_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->c = c;
	s->b = conn_broker(c);
	s->waiter.room = stomp_room;
	confirmq_init(&s->confirms, s->b->router, stomp_release_confirm, s);
	const struct stomp_config *sc = &s->b->cfg->stomp;
	s->lim.max_frame_size = sc->max_frame_size;
	s->lim.max_headers = sc->max_headers;
	s->lim.max_header_length = sc->max_header_length;
	return s;
}

static void stomp_input(void *session, struct evbuffer *in)
{
	struct stomp_session *s = session;
	size_t len = evbuffer_get_length(in);
	s->last_rx_ms = clock_mono_ms();
	if (len < s->need)
		return;
	const uint8_t *data = evbuffer_pullup(in, -1);
	size_t off = 0;
	s->need = 0;
	while (off < len && s->state != ST_DONE && !s->blocked && !s->authenticating) {
		struct stomp_frame *f = NULL;
		size_t used = 0, need = 0;
		const char *err = NULL;
		enum stomp_decode_status st =
			stomp_decode(data + off, len - off, s->version, &s->lim, &f, &used, &need,
				     &s->scanned, &err);
		if (st == STOMP_DECODE_NEED_MORE) {
			s->need = need;
			break;
		}
		if (st == STOMP_DECODE_ERROR) {
			stomp_send_error(s, err, NULL, NULL);
			break;
		}
		if (st == STOMP_DECODE_FRAME) {
			on_frame(s, f);
			stomp_frame_free(f);
			if (s->authenticating) {
				s->scanned = 0; /* the CONNECT is decoded again */
				break;
			}
		}
		off += used;
	}
	evbuffer_drain(in, off);
}

static void stomp_shutdown(void *session, enum conn_end why)
{
	struct stomp_session *s = session;
	stomp_send_error(s, why == CONN_END_ADMIN ? "closed by an administrator"
						  : "broker shutting down", NULL, NULL);
}

/* The ACLs were reloaded: a subscription they no longer allow ends the
 * connection with an ERROR, as a denied SUBSCRIBE would. */
static void stomp_acl_changed(void *session)
{
	struct stomp_session *s = session;
	if (s->state != ST_CONNECTED)
		return;
	for (struct stomp_sub *sub = s->subs; sub; sub = sub->next) {
		if (sub->rs && !router_recheck(s->b->router, sub->rs, conn_acl_who(s->c))) {
			const char *const extra[] = { "subscription", sub->id, NULL };
			stomp_send_error_frame(s, "access refused", NULL,
					       "the access rules no longer allow this subscription",
					       extra);
			return;
		}
	}
}

static void stomp_closed(void *session)
{
	struct stomp_session *s = session;
	/* Unsubscribing below hands unacked messages back to their queues; none
	 * may come back to this session's other subscriptions. */
	s->state = ST_DONE;
	router_cancel_wait(&s->waiter);
	confirmq_clear(&s->confirms);
	stomp_client_id_release(&s->client_id);
	stomp_subs_free(s);
	stomp_txs_free(s);
	stomp_temps_free(s);
	stomp_heartbeat_free(s);
	buf_free(&s->out);
	free(s);
}

const struct proto_ops stomp_proto = {
	.name = "stomp",
	.open = stomp_open,
	.input = stomp_input,
	.drained = stomp_drained,
	.shutdown = stomp_shutdown,
	.closed = stomp_closed,
	.acl_changed = stomp_acl_changed,
};
