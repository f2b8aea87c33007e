#include "config.h"
#include "protocols/stomp/session.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker.h"
#include "log.h"
#include "net/output.h"
#include "protocols/stomp/codec.h"
#include "protocols/stomp/dest.h"
#include "protocols/stomp/durable.h"
#include "router/confirm.h"
#include "router/router.h"
#include "util/buf.h"
#include "util/clock.h"

/* Frames one transaction may hold before COMMIT; past it the client gets an
 * ERROR, so a transaction cannot grow the broker without bound. */
#define STOMP_MAX_TX_FRAMES 10000

enum ack_mode { ACK_AUTO, ACK_CLIENT, ACK_INDIVIDUAL };

struct stomp_session;

struct stomp_sub {
	struct stomp_sub *next;
	struct stomp_session *s;
	unsigned long seq;  /* our number for it, part of every ack id */
	char *id;           /* the client's subscription id */
	enum ack_mode ack;
	enum dest_kind kind;
	char *queue_dest;   /* the SUBSCRIBE's destination, for a queue subscription */
	const char *topic_prefix; /* a topic subscription's MESSAGE destinations start so */
	bool rabbit;        /* asked RabbitMQ's way: redelivered:false on first deliveries */
	char *durable_queue; /* a durable subscription's queue (protocols/stomp/durable.h) */
	struct subscription *rs;
};

struct tx_op {
	struct tx_op *next;
	/* TX_REJECT: a NACK with RabbitMQ's requeue:false */
	enum op_type { TX_SEND, TX_ACK, TX_NACK, TX_REJECT } type;
	/* TX_SEND */
	enum dest_kind kind;
	char *name;
	struct message *msg;
	/* TX_ACK, TX_NACK, TX_REJECT */
	unsigned long sub_seq;
	uint64_t msg_id;
};

/* A RabbitMQ temp queue of this connection (see temp_queue). */
struct stomp_temp {
	struct stomp_temp *next;
	char *name;  /* NAME of the client's /temp-queue/NAME */
	char *queue; /* the router's queue, "wharf.temp.CONN.N" */
};

struct stomp_tx {
	struct stomp_tx *next;
	char *id;
	struct tx_op *ops, **tail;
	size_t nops;
	size_t bytes; /* message_mem_size() of its SENDs */
};

struct stomp_session {
	struct conn *c;
	struct broker *b;
	enum { ST_AWAIT_CONNECT, ST_CONNECTED, ST_DONE } state;
	enum stomp_version version;
	struct stomp_limits lim;
	struct stomp_client_id client_id; /* the CONNECT's client-id, if any */
	size_t need;
	size_t scanned; /* stomp_decode()'s search for the NUL, kept between reads */
	struct stomp_sub *subs;
	unsigned long next_sub_seq;
	struct stomp_temp *temps;
	unsigned long next_temp;
	struct stomp_tx *txs;
	size_t ntxs, tx_bytes; /* open transactions, the bytes of all of them */
	bool paused;
	bool blocked;                 /* a destination is full: input paused */
	bool disconnecting;           /* DISCONNECT read: answer what is pending, close */
	struct router_waiter waiter;
	/* Receipts in the order asked, each after the store has every durable
	 * message sent before it. */
	struct confirm_queue confirms;
	unsigned hb_send_ms, hb_recv_ms;
	int64_t last_rx_ms, last_tx_ms;
	struct event *hb_send_ev, *hb_recv_ev;
	struct buf out;
};

static bool reserved_header(const char *name);

/* ---- output ------------------------------------------------------------- */

static void note_tx(struct stomp_session *s)
{
	if (s->hb_send_ms)
		s->last_tx_ms = clock_mono_ms();
}

static int hdr(struct stomp_session *s, enum stomp_command cmd, const char *name, const char *value)
{
	return stomp_encode_header(&s->out, s->version, cmd, name, value, strlen(value));
}

/* Sends s->out (a frame head) followed by an optional text body. */
static int send_frame(struct stomp_session *s, const char *body)
{
	int rc = 0;
	if (body)
		rc = buf_append_str(&s->out, body);
	if (rc == 0)
		rc = buf_append_char(&s->out, '\0');
	if (rc == 0)
		rc = conn_write(s->c, s->out.data, s->out.len);
	buf_reset(&s->out);
	note_tx(s);
	return rc;
}

/* Sends an ERROR frame and closes after flushing it. STOMP errors end the
 * connection; the broker and every other client carry on. `version`, when
 * given, lists the versions we speak (for a failed negotiation). */
static void send_error_frame(struct stomp_session *s, const char *message, const char *receipt,
			     const char *detail, const char *version)
{
	char len[32];
	if (s->state == ST_DONE)
		return;
	buf_reset(&s->out);
	stomp_encode_command(&s->out, STOMP_CMD_ERROR);
	hdr(s, STOMP_CMD_ERROR, "message", message);
	if (version)
		hdr(s, STOMP_CMD_ERROR, "version", version);
	if (receipt)
		hdr(s, STOMP_CMD_ERROR, "receipt-id", receipt);
	hdr(s, STOMP_CMD_ERROR, "content-type", "text/plain");
	snprintf(len, sizeof(len), "%zu", detail ? strlen(detail) : 0);
	hdr(s, STOMP_CMD_ERROR, "content-length", len);
	stomp_encode_end_headers(&s->out);
	send_frame(s, detail);
	log_info("stomp %s: error: %s%s%s", conn_peer(s->c), message, detail ? ": " : "",
		 detail ? detail : "");
	s->state = ST_DONE;
	conn_close(s->c, true);
}

static void send_error(struct stomp_session *s, const char *message, const char *receipt,
		       const char *detail)
{
	send_error_frame(s, message, receipt, detail, NULL);
}

static int send_receipt(struct stomp_session *s, const char *receipt)
{
	stomp_encode_command(&s->out, STOMP_CMD_RECEIPT);
	hdr(s, STOMP_CMD_RECEIPT, "receipt-id", receipt);
	stomp_encode_end_headers(&s->out);
	return send_frame(s, NULL);
}

/* ---- destinations ------------------------------------------------------- */

static enum stomp_dialect dialect(const struct stomp_session *s)
{
	return (enum stomp_dialect)s->b->cfg->stomp.dialect;
}

static const struct consumer_ops stomp_consumer_ops;

static void temp_free(struct stomp_temp *t)
{
	free(t->name);
	free(t->queue);
	free(t);
}

/* RabbitMQ's temp queues: reply-to:/temp-queue/NAME on a SEND makes a
 * queue private to this connection (its name is opaque), subscribed at
 * once with ack:auto under the id "/temp-queue/NAME"; the message names
 * that queue as its reply-to, and the queue goes with the connection. The
 * queue's name (the session's), or NULL when it cannot be made. */
static const char *temp_queue(struct stomp_session *s, const char *name)
{
	struct stomp_temp *t;
	for (t = s->temps; t; t = t->next)
		if (!strcmp(t->name, name))
			return t->queue;
	struct stomp_sub *sub = calloc(1, sizeof(*sub));
	struct buf id = BUF_INIT, queue = BUF_INIT, dest = BUF_INIT;
	enum router_err err;
	t = calloc(1, sizeof(*t));
	if (!t || !sub || buf_printf(&id, "/temp-queue/%s", name) < 0 ||
	    buf_printf(&queue, "wharf.temp.%lu.%lu", conn_id(s->c), ++s->next_temp) < 0 ||
	    buf_printf(&dest, "/reply-queue/%s", queue.data) < 0 || !(t->name = strdup(name)))
		goto fail;
	sub->id = id.data;
	sub->queue_dest = dest.data;
	sub->s = s;
	sub->seq = ++s->next_sub_seq;
	sub->ack = ACK_AUTO;
	sub->kind = DEST_QUEUE;
	sub->rabbit = true;
	struct subscribe_options opts = { .consumer.window = s->b->cfg->stomp.prefetch,
					  .consumer.auto_ack = true, .owner = true };
	sub->next = s->subs;
	s->subs = sub;
	sub->rs = router_subscribe(s->b->router, DEST_QUEUE, queue.data, &opts, &stomp_consumer_ops,
				   sub, &err);
	if (!sub->rs) {
		s->subs = sub->next;
		log_info("stomp %s: temp queue %s: %s", conn_peer(s->c), queue.data,
			 router_strerror(err));
		goto fail;
	}
	t->queue = queue.data;
	t->next = s->temps;
	s->temps = t;
	return t->queue;
fail:
	free(sub);
	buf_free(&id);
	buf_free(&queue);
	buf_free(&dest);
	if (t)
		temp_free(t);
	return NULL;
}

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
	const char *temp = dialect(s) != STOMP_DIALECT_ACTIVEMQ && !strncmp(v, "/temp-queue/", 12) &&
				   v[12] ? v + 12 : NULL;
	if (temp) {
		const char *queue = temp_queue(s, temp);
		if (!queue)
			*why = "the reply-to temp queue cannot be made";
		return queue ? set_reply_to(m, ADDR_QUEUE_PREFIX, queue) : -1;
	}
	struct stomp_dest d;
	if (stomp_dest_parse(v, dialect(s), false, &d, why) < 0) {
		*why = "out of memory";
		return message_set(&m->reply_to, v);
	}
	*why = "out of memory";
	int rc = set_reply_to(m, d.kind == DEST_QUEUE ? ADDR_QUEUE_PREFIX : ADDR_TOPIC_PREFIX, d.name);
	stomp_dest_clear(&d);
	return rc;
}

static int reply_to_out(struct stomp_session *s, const char *v)
{
	const char *kind = NULL;
	if (!strncmp(v, ADDR_QUEUE_PREFIX "wharf.temp.", strlen(ADDR_QUEUE_PREFIX "wharf.temp.")) &&
	    dialect(s) != STOMP_DIALECT_ACTIVEMQ)
		kind = "/reply-queue/";
	else if (!strncmp(v, ADDR_QUEUE_PREFIX, strlen(ADDR_QUEUE_PREFIX)))
		kind = "/queue/";
	else if (!strncmp(v, ADDR_TOPIC_PREFIX, strlen(ADDR_TOPIC_PREFIX)))
		kind = "/topic/";
	if (!kind)
		return hdr(s, STOMP_CMD_MESSAGE, "reply-to", v);
	struct buf tmp = BUF_INIT;
	int rc = buf_printf(&tmp, "%s%s", kind, strchr(v, ':') + 3);
	if (rc == 0)
		rc = hdr(s, STOMP_CMD_MESSAGE, "reply-to", tmp.data);
	buf_free(&tmp);
	return rc;
}

/* ---- delivery ----------------------------------------------------------- */

static int encode_message_head(struct stomp_session *s, struct stomp_sub *sub,
			       struct delivery *d, struct message *m)
{
	char num[64];
	int rc = 0;
	rc |= stomp_encode_command(&s->out, STOMP_CMD_MESSAGE);
	if (sub->kind == DEST_QUEUE) {
		rc |= hdr(s, STOMP_CMD_MESSAGE, "destination", sub->queue_dest);
	} else {
		struct buf dest = BUF_INIT;
		rc |= buf_printf(&dest, "%s%s", sub->topic_prefix, m->dest);
		rc |= hdr(s, STOMP_CMD_MESSAGE, "destination", dest.data ? dest.data : "");
		buf_free(&dest);
	}
	snprintf(num, sizeof(num), "ID:wharf-%" PRIu64, m->id);
	rc |= hdr(s, STOMP_CMD_MESSAGE, "message-id", num);
	rc |= hdr(s, STOMP_CMD_MESSAGE, "subscription", sub->id);
	if (sub->ack != ACK_AUTO && s->version == STOMP_V12) {
		snprintf(num, sizeof(num), "%lu-%" PRIu64, sub->seq, m->id);
		rc |= hdr(s, STOMP_CMD_MESSAGE, "ack", num);
	}
	if (m->durable)
		rc |= hdr(s, STOMP_CMD_MESSAGE, "persistent", "true");
	if (m->priority != MESSAGE_DEFAULT_PRIORITY) {
		snprintf(num, sizeof(num), "%u", m->priority);
		rc |= hdr(s, STOMP_CMD_MESSAGE, "priority", num);
	}
	if (m->expiry_ms) {
		snprintf(num, sizeof(num), "%" PRId64, m->expiry_ms);
		rc |= hdr(s, STOMP_CMD_MESSAGE, "expires", num);
	}
	snprintf(num, sizeof(num), "%" PRId64, m->timestamp_ms);
	rc |= hdr(s, STOMP_CMD_MESSAGE, "timestamp", num);
	/* Fields from the publisher that this version cannot carry (a newline
	 * for a 1.0 consumer) are left out rather than failing the delivery. */
	if (m->content_type)
		hdr(s, STOMP_CMD_MESSAGE, "content-type", m->content_type);
	if (m->correlation_id)
		stomp_encode_header(&s->out, s->version, STOMP_CMD_MESSAGE, "correlation-id",
				    m->correlation_id, m->correlation_id_len);
	if (m->reply_to)
		reply_to_out(s, m->reply_to);
	uint32_t count = delivery_count(d);
	if (count > 1) {
		rc |= hdr(s, STOMP_CMD_MESSAGE, "redelivered", "true");
		snprintf(num, sizeof(num), "%" PRIu32, count - 1);
		rc |= hdr(s, STOMP_CMD_MESSAGE, "x-delivery-count", num);
	} else if (sub->rabbit) {
		rc |= hdr(s, STOMP_CMD_MESSAGE, "redelivered", "false");
	}
	for (size_t i = 0; i < m->nprops; i++) {
		/* A property named like a frame header (content-length, ...)
		 * would change how the frame reads: left out. */
		if (reserved_header(m->props[i].name))
			continue;
		stomp_encode_header(&s->out, s->version, STOMP_CMD_MESSAGE, m->props[i].name,
				    m->props[i].value, m->props[i].value_len);
	}
	snprintf(num, sizeof(num), "%zu", m->body_len);
	rc |= hdr(s, STOMP_CMD_MESSAGE, "content-length", num);
	rc |= stomp_encode_end_headers(&s->out);
	return rc ? -1 : 0;
}

static int stomp_deliver(void *ctx, struct delivery *d, struct message *m)
{
	struct stomp_sub *sub = ctx;
	struct stomp_session *s = sub->s;
	if (s->state != ST_CONNECTED || conn_closing(s->c) || conn_output_full(s->c)) {
		s->paused = true;
		return -1;
	}
	buf_reset(&s->out);
	if (encode_message_head(s, sub, d, m) < 0)
		goto fail;
	if (output_message(s->c, s->out.data, s->out.len, m, "", 1) < 0)
		goto fail;
	buf_reset(&s->out);
	note_tx(s);
	return 0;
fail:
	buf_reset(&s->out);
	s->paused = true;
	conn_close(s->c, false);
	return -1;
}

static const struct consumer_ops stomp_consumer_ops = { .deliver = stomp_deliver };

static void stomp_drained(void *session)
{
	struct stomp_session *s = session;
	if (!s->paused || s->state != ST_CONNECTED)
		return;
	s->paused = false;
	for (struct stomp_sub *sub = s->subs; sub && !s->paused; sub = sub->next)
		consumer_set_paused(subscription_consumer(sub->rs), false);
}

/* ---- heart-beats -------------------------------------------------------- */

static void hb_send_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stomp_session *s = arg;
	if (clock_mono_ms() - s->last_tx_ms >= s->hb_send_ms / 2) {
		conn_write(s->c, "\n", 1);
		note_tx(s);
	}
}

static void hb_recv_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stomp_session *s = arg;
	/* While a full destination has us not reading the client, what it
	 * sends (heart-beats too) waits unread: that is not silence. */
	if (s->blocked)
		return;
	/* Half an interval of grace for the network, as the spec suggests. */
	if (clock_mono_ms() - s->last_rx_ms > (int64_t)s->hb_recv_ms * 3 / 2)
		send_error(s, "heart-beat timeout", NULL, "no data received within the heart-beat interval");
}

static int start_timer(struct stomp_session *s, struct event **ev, unsigned ms,
		       event_callback_fn cb)
{
	*ev = event_new(conn_base(s->c), -1, EV_PERSIST, cb, s);
	if (!*ev)
		return -1;
	unsigned period = cb == hb_recv_cb ? ms / 2 : ms;
	struct timeval tv = { period / 1000, (period % 1000) * 1000 };
	return event_add(*ev, &tv);
}

/* ---- frames ------------------------------------------------------------- */

static bool parse_uint(const char *v, unsigned long long max, unsigned long long *out)
{
	if (!v || *v < '0' || *v > '9')
		return false;
	errno = 0;
	char *end;
	*out = strtoull(v, &end, 10);
	return !errno && !*end && *out <= max;
}

static void on_connect(struct stomp_session *s, struct stomp_frame *f)
{
	const char *accept = stomp_frame_get(f, "accept-version");
	enum stomp_version v = STOMP_V10;
	if (accept) {
		v = STOMP_V_NONE;
		char *copy = strdup(accept);
		char *save = NULL;
		for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
			if (!strcmp(t, "1.2"))
				v = STOMP_V12;
			else if (!strcmp(t, "1.1") && v < STOMP_V11)
				v = STOMP_V11;
			else if (!strcmp(t, "1.0") && v < STOMP_V10)
				v = STOMP_V10;
		}
		free(copy);
	}
	if (v == STOMP_V_NONE) {
		s->version = STOMP_V12;
		send_error_frame(s, "unsupported protocol version", stomp_frame_get(f, "receipt"),
				 "supported versions are 1.0, 1.1 and 1.2", "1.0,1.1,1.2");
		return;
	}
	s->version = v;
	unsigned cx = 0, cy = 0;
	const char *hb = stomp_frame_get(f, "heart-beat");
	if (hb && v >= STOMP_V11 && sscanf(hb, "%u,%u", &cx, &cy) != 2) {
		send_error(s, "malformed heart-beat header", NULL, "expected heart-beat:cx,cy");
		return;
	}
	const char *client_id = stomp_frame_get(f, "client-id");
	if (client_id && *client_id) {
		int rc = stomp_client_id_claim(&s->client_id, s->b, client_id);
		if (rc != 0) {
			send_error(s, rc > 0 ? "client id already in use" : "out of memory",
				   stomp_frame_get(f, "receipt"), rc > 0 ? client_id : NULL);
			return;
		}
	}
	unsigned offer = s->b->cfg->stomp.heartbeat_ms;
	/* We send as often as the client wants to hear from us, but no more
	 * often than we offer; likewise for what we expect to hear. */
	s->hb_send_ms = (cy && offer) ? (cy > offer ? cy : offer) : 0;
	s->hb_recv_ms = (cx && offer) ? (cx > offer ? cx : offer) : 0;
	s->last_rx_ms = s->last_tx_ms = clock_mono_ms();
	if ((s->hb_send_ms && start_timer(s, &s->hb_send_ev, s->hb_send_ms, hb_send_cb) < 0) ||
	    (s->hb_recv_ms && start_timer(s, &s->hb_recv_ev, s->hb_recv_ms, hb_recv_cb) < 0)) {
		send_error(s, "out of memory", NULL, NULL);
		return;
	}
	s->state = ST_CONNECTED;
	conn_handshake_done(s->c);
	char text[64];
	buf_reset(&s->out);
	stomp_encode_command(&s->out, STOMP_CMD_CONNECTED);
	hdr(s, STOMP_CMD_CONNECTED, "version", v == STOMP_V12 ? "1.2" : v == STOMP_V11 ? "1.1" : "1.0");
	hdr(s, STOMP_CMD_CONNECTED, "server", "wharf/" PACKAGE_VERSION);
	snprintf(text, sizeof(text), "wharf-%lu", conn_id(s->c));
	hdr(s, STOMP_CMD_CONNECTED, "session", text);
	if (v >= STOMP_V11) {
		snprintf(text, sizeof(text), "%u,%u", offer, offer);
		hdr(s, STOMP_CMD_CONNECTED, "heart-beat", text);
	}
	stomp_encode_end_headers(&s->out);
	send_frame(s, NULL);
	log_debug("stomp %s: connected, version %d, principal %s", conn_peer(s->c), v,
		  conn_principal(s->c));
}

/* A boolean header: 1 for true, 0 for false, -1 when absent or neither.
 * Any case, as RabbitMQ reads them: stomp.py sends Python's True/False. */
static int header_bool(const struct stomp_frame *f, const char *name)
{
	const char *v = stomp_frame_get(f, name);
	if (v && !strcasecmp(v, "true"))
		return 1;
	if (v && !strcasecmp(v, "false"))
		return 0;
	return -1;
}

/* Headers that are the frame's own, not user properties. */
static bool reserved_header(const char *name)
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
	m->durable = header_bool(f, "persistent") == 1;
	if ((v = stomp_frame_get(f, "priority"))) {
		if (!parse_uint(v, 9, &n)) {
			*why = "priority must be 0 to 9";
			goto fail;
		}
		m->priority = (uint8_t)n;
	}
	if ((v = stomp_frame_get(f, "expires"))) {
		if (!parse_uint(v, INT64_MAX, &n)) {
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
		if (reserved_header(h->name) || stomp_frame_get(f, h->name) != h->value)
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

static void reply_router_error(struct stomp_session *s, enum router_err err, const char *dest,
			       const char *receipt)
{
	send_error(s, router_strerror(err), receipt, dest);
}

static struct stomp_tx *find_tx(struct stomp_session *s, const char *id)
{
	for (struct stomp_tx *t = s->txs; t; t = t->next)
		if (!strcmp(t->id, id))
			return t;
	return NULL;
}

/* The transaction a frame names, or NULL; on a bad name sends ERROR and
 * sets *failed. */
static struct stomp_tx *frame_tx(struct stomp_session *s, struct stomp_frame *f, bool *failed)
{
	const char *id = stomp_frame_get(f, "transaction");
	*failed = false;
	if (!id)
		return NULL;
	struct stomp_tx *t = find_tx(s, id);
	if (!t) {
		send_error(s, "unknown transaction", stomp_frame_get(f, "receipt"), id);
		*failed = true;
	} else if (t->nops >= STOMP_MAX_TX_FRAMES) {
		send_error(s, "transaction too large", stomp_frame_get(f, "receipt"),
			   "a transaction holds at most 10000 frames");
		*failed = true;
	}
	return t;
}

static void tx_add(struct stomp_session *s, struct stomp_tx *t, struct tx_op *op)
{
	*t->tail = op;
	t->tail = &op->next;
	t->nops++;
	if (op->msg) {
		size_t n = message_mem_size(op->msg);
		t->bytes += n;
		s->tx_bytes += n;
	}
}

static void tx_op_free(struct tx_op *op)
{
	message_unref(op->msg);
	free(op->name);
	free(op);
}

/* A destination filled up: stop reading this client until it drains. A
 * client that also consumes on this connection must not depend on this
 * connection's acks to drain it (use a second connection, as with
 * RabbitMQ's flow control). */
static void block_if_full(struct stomp_session *s)
{
	if (!router_last_blocked(s->b->router) || s->blocked)
		return;
	s->blocked = true;
	conn_pause_input(s->c, true);
	router_wait_room(s->b->router, &s->waiter);
}

static void room_cb(struct router_waiter *w)
{
	struct stomp_session *s = (struct stomp_session *)((char *)w - offsetof(struct stomp_session, waiter));
	s->blocked = false;
	s->last_rx_ms = clock_mono_ms();
	conn_pause_input(s->c, false);
}

enum receipt_kind {
	RECEIPT_PLAIN,      /* once everything before it is confirmed */
	RECEIPT_SYNC,       /* also once the acks before it are on disk */
	RECEIPT_LAST,       /* the DISCONNECT's (may be NULL): then close */
};

static void queue_receipt(struct stomp_session *s, const char *receipt, enum receipt_kind kind)
{
	if (confirmq_empty(&s->confirms) && kind == RECEIPT_PLAIN) {
		send_receipt(s, receipt);
		return;
	}
	struct confirm *e = confirmq_push(&s->confirms);
	if (!e || (receipt && !(e->text = strdup(receipt)))) {
		if (e)
			confirmq_ready(&s->confirms, e, ROUTER_ENOMEM);
		else
			send_error(s, "out of memory", receipt, NULL);
		return;
	}
	e->tag = kind == RECEIPT_LAST;
	if (kind == RECEIPT_SYNC)
		confirmq_sync(&s->confirms, e);
	else
		confirmq_ready(&s->confirms, e, ROUTER_OK);
}

static void release_confirm(void *ctx, struct confirm *e)
{
	struct stomp_session *s = ctx;
	if (s->state == ST_DONE && !s->disconnecting)
		return; /* an ERROR ended the connection */
	if (e->err != ROUTER_OK) {
		s->disconnecting = false;
		s->state = ST_CONNECTED;
		send_error(s, router_strerror(e->err), e->text, NULL);
		return;
	}
	if (e->text)
		send_receipt(s, e->text);
	if (e->tag) /* the DISCONNECT's */
		conn_close(s->c, true);
}

/* Publishes m; a durable message's outcome (and the receipt, if asked) waits
 * for the store. Returns -1 after an error reply, 0 when the caller is to
 * send the receipt, 1 when it is queued. */
static int publish(struct stomp_session *s, enum dest_kind kind, const char *name,
		   struct message **m, const char *receipt)
{
	if (!(*m)->durable) {
		enum router_err err = router_publish(s->b->router, kind, name, m, false);
		if (err != ROUTER_OK) {
			reply_router_error(s, err, name, receipt);
			return -1;
		}
		block_if_full(s);
		return 0;
	}
	struct confirm *e = confirmq_push(&s->confirms);
	if (!e || (receipt && !(e->text = strdup(receipt)))) {
		message_unref(*m);
		*m = NULL;
		if (e)
			confirmq_ready(&s->confirms, e, ROUTER_ENOMEM);
		else
			send_error(s, "out of memory", receipt, NULL);
		return -1;
	}
	enum router_err err = confirmq_publish(&s->confirms, e, kind, name, m, false);
	if (err != ROUTER_OK && err != ROUTER_PENDING)
		return -1; /* the error went out in order */
	block_if_full(s);
	return 1;
}

static int send_to(struct stomp_session *s, struct stomp_frame *f, enum dest_kind kind,
		   const char *name, const char *receipt)
{
	const char *why;
	bool failed;
	struct stomp_tx *t = frame_tx(s, f, &failed);
	if (failed)
		return -1;
	struct message *m = message_from_send(s, f, &why);
	if (!m) {
		send_error(s, why, receipt, NULL);
		return -1;
	}
	m->origin = conn_id(s->c);
	if (t && s->tx_bytes + message_mem_size(m) > s->b->cfg->max_transaction_bytes) {
		char text[128];
		snprintf(text, sizeof(text),
			 "the open transactions of a connection hold at most %zu bytes of messages",
			 s->b->cfg->max_transaction_bytes);
		message_unref(m);
		send_error(s, "transaction too large", receipt, text);
		return -1;
	}
	if (t) {
		struct tx_op *op = calloc(1, sizeof(*op));
		if (!op || !(op->name = strdup(name))) {
			free(op);
			message_unref(m);
			send_error(s, "out of memory", receipt, NULL);
			return -1;
		}
		op->type = TX_SEND;
		op->kind = kind;
		op->msg = m;
		tx_add(s, t, op);
		return 0;
	}
	return publish(s, kind, name, &m, receipt);
}

/* The frame's destination in *d (for the caller to clear); false after an
 * ERROR. pattern: a SUBSCRIBE's, which may hold wildcards. */
static bool frame_dest(struct stomp_session *s, struct stomp_frame *f, bool pattern,
		       struct stomp_dest *d)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	const char *dest = stomp_frame_get(f, "destination");
	const char *why;
	if (!dest) {
		send_error(s, "missing destination header", receipt, NULL);
		return false;
	}
	if (stomp_dest_parse(dest, dialect(s), pattern, d, &why) < 0) {
		send_error(s, "invalid destination", receipt, why);
		return false;
	}
	return true;
}

static int on_send(struct stomp_session *s, struct stomp_frame *f)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	struct stomp_dest d;
	if (!frame_dest(s, f, false, &d))
		return -1;
	int rc = 0;
	/* A reply to a requester that has gone: dropped, as RabbitMQ does,
	 * rather than making a queue no one will read. */
	if (d.reply && !router_has_queue(s->b->router, d.name))
		log_debug("stomp %s: reply to %s dropped: no such queue", conn_peer(s->c), d.name);
	else
		rc = send_to(s, f, d.kind, d.name, receipt);
	stomp_dest_clear(&d);
	return rc;
}

static struct stomp_sub *find_sub(struct stomp_session *s, const char *id)
{
	for (struct stomp_sub *sub = s->subs; sub; sub = sub->next)
		if (!strcmp(sub->id, id))
			return sub;
	return NULL;
}

/* What a SUBSCRIBE or UNSUBSCRIBE says of a durable subscription. ActiveMQ
 * names one with activemq.subscriptionName (or durable-subscription-name);
 * RabbitMQ asks with durable:true (persistent:true in its older plugin) and
 * auto-delete:false, and names it by its x-queue-name header, or else the
 * frame's id. Its durable:true alone
 * on a SUBSCRIBE makes a queue deleted with its last subscriber, which is
 * what a plain subscription is here; on an UNSUBSCRIBE it ends the durable
 * subscription, as there. False when the frame asks for none; *name is NULL
 * when it asks RabbitMQ's way without an id; *rabbit says it asked so. */
static bool durable_request(struct stomp_frame *f, const char **name, bool *rabbit)
{
	*rabbit = false;
	*name = stomp_frame_get(f, "activemq.subscriptionName");
	if (!*name)
		*name = stomp_frame_get(f, "durable-subscription-name");
	if (*name)
		return true;
	int durable = header_bool(f, "durable");
	if (durable < 0)
		durable = header_bool(f, "persistent");
	if (durable != 1 ||
	    (f->command == STOMP_CMD_SUBSCRIBE && header_bool(f, "auto-delete") != 0))
		return false;
	*name = stomp_frame_get(f, "x-queue-name");
	if (!*name)
		*name = stomp_frame_get(f, "id");
	*rabbit = true;
	return true;
}

/* The queue of this client's durable subscription `name` (for the caller to
 * free), or NULL after an ERROR. RabbitMQ has no client-id: a subscription
 * asked its way without one is named by its id alone, as there, so that
 * its clients need no change. */
static char *durable_queue_of(struct stomp_session *s, const char *name, bool rabbit,
			      const char *receipt)
{
	if (!name) {
		send_error(s, "missing id header", receipt, "a durable subscription is named by its id");
		return NULL;
	}
	if (!*name) {
		send_error(s, "empty durable subscription name", receipt, NULL);
		return NULL;
	}
	if (!s->client_id.id && !rabbit) {
		send_error(s, "durable subscription needs a client-id", receipt,
			   "send a client-id header on CONNECT: with the subscription name it "
			   "names the durable subscription");
		return NULL;
	}
	const char *cid = s->client_id.id ? s->client_id.id : "";
	char *q = stomp_durable_queue(cid, name);
	if (!q) {
		bool long_ = strlen(cid) + strlen(name) > STOMP_DURABLE_MAX_NAME;
		send_error(s, long_ ? "client-id and subscription name too long" : "out of memory",
			   receipt, long_ ? "they may have 2000 bytes together" : NULL);
	}
	return q;
}

static struct stomp_sub **find_durable(struct stomp_session *s, const char *queue)
{
	for (struct stomp_sub **pp = &s->subs; *pp; pp = &(*pp)->next)
		if ((*pp)->durable_queue && !strcmp((*pp)->durable_queue, queue))
			return pp;
	return NULL;
}

/* The window a SUBSCRIBE asks for: ActiveMQ's activemq.prefetchSize or
 * RabbitMQ's prefetch-count (0 there: no limit, here the largest window).
 * False after an ERROR. */
static bool sub_window(struct stomp_session *s, struct stomp_frame *f, const char *receipt,
		       unsigned *window, bool *rabbit)
{
	const char *prefetch = stomp_frame_get(f, "activemq.prefetchSize");
	const char *count = dialect(s) != STOMP_DIALECT_ACTIVEMQ ? stomp_frame_get(f, "prefetch-count")
								  : NULL;
	unsigned long long n;
	*window = s->b->cfg->stomp.prefetch;
	if (prefetch) {
		if (!parse_uint(prefetch, 1000000, &n) || n == 0) {
			send_error(s, "invalid activemq.prefetchSize", receipt, "expected 1 to 1000000");
			return false;
		}
		*window = (unsigned)n;
	} else if (count) {
		if (!parse_uint(count, 1000000, &n)) {
			send_error(s, "invalid prefetch-count", receipt, "expected 0 to 1000000");
			return false;
		}
		*window = n ? (unsigned)n : 1000000;
		*rabbit = true;
	}
	return true;
}

static bool subscribe_to(struct stomp_session *s, struct stomp_frame *f, const char *dest,
			 const struct stomp_dest *d, const char *id, const char *receipt)
{
	const char *ack = stomp_frame_get(f, "ack");
	enum dest_kind kind = d->kind;
	const char *name = d->name;
	bool rabbit_style = d->rabbit || dialect(s) == STOMP_DIALECT_RABBITMQ;
	struct subscribe_options opts = { 0 };
	if (!sub_window(s, f, receipt, &opts.consumer.window, &rabbit_style))
		return false;
	enum ack_mode mode = ACK_AUTO;
	if (!ack || !strcmp(ack, "auto"))
		mode = ACK_AUTO;
	else if (!strcmp(ack, "client"))
		mode = ACK_CLIENT;
	else if (!strcmp(ack, "client-individual") && s->version >= STOMP_V11)
		mode = ACK_INDIVIDUAL;
	else {
		send_error(s, "invalid ack mode", receipt, ack);
		return false;
	}
	opts.consumer.auto_ack = mode == ACK_AUTO;
	const char *durable_name;
	bool rabbit = false;
	char *dq = NULL;
	bool fresh = false;
	enum router_err err;
	/* On a queue the durable headers ask for nothing more: a queue keeps
	 * its messages anyway. */
	if (kind == DEST_TOPIC && durable_request(f, &durable_name, &rabbit)) {
		if (!(dq = durable_queue_of(s, durable_name, rabbit, receipt)))
			return false;
		if (find_durable(s, dq)) {
			send_error(s, "durable subscription already active", receipt, durable_name);
			free(dq);
			return false;
		}
		if ((err = stomp_durable_keep(s->b, dq, name, &fresh)) != ROUTER_OK) {
			free(dq);
			reply_router_error(s, err, dest, receipt);
			return false;
		}
		opts.durable_queue = dq;
	}
	struct stomp_sub *sub = calloc(1, sizeof(*sub));
	if (!sub || !(sub->id = strdup(id)) ||
	    (kind == DEST_QUEUE && !(sub->queue_dest = strdup(dest)))) {
		if (sub)
			free(sub->id);
		free(sub);
		if (fresh)
			stomp_durable_end(s->b, dq);
		free(dq);
		send_error(s, "out of memory", receipt, NULL);
		return false;
	}
	sub->durable_queue = dq;
	sub->topic_prefix = d->out_prefix;
	sub->rabbit = rabbit_style || rabbit;
	sub->s = s;
	sub->seq = ++s->next_sub_seq;
	sub->ack = mode;
	sub->kind = kind;
	/* Linked before subscribing: the router may deliver at once. */
	sub->next = s->subs;
	s->subs = sub;
	sub->rs = router_subscribe(s->b->router, kind, name, &opts, &stomp_consumer_ops, sub, &err);
	if (!sub->rs) {
		s->subs = sub->next;
		if (fresh)
			stomp_durable_end(s->b, dq);
		free(sub->durable_queue);
		free(sub->queue_dest);
		free(sub->id);
		free(sub);
		reply_router_error(s, err, dest, receipt);
		return false;
	}
	return true;
}

static bool on_subscribe(struct stomp_session *s, struct stomp_frame *f)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	const char *dest = stomp_frame_get(f, "destination");
	const char *id = stomp_frame_get(f, "id");
	struct stomp_dest d;
	if (!frame_dest(s, f, true, &d))
		return false;
	if (!id && s->version < STOMP_V11)
		id = dest; /* 1.0: the destination names the subscription */
	bool ok = false;
	if (!id)
		send_error(s, "missing id header", receipt, NULL);
	else if (find_sub(s, id))
		send_error(s, "subscription id already in use", receipt, id);
	else
		ok = subscribe_to(s, f, dest, &d, id, receipt);
	stomp_dest_clear(&d);
	return ok;
}

static void sub_free(struct stomp_session *s, struct stomp_sub *sub)
{
	router_unsubscribe(s->b->router, sub->rs);
	free(sub->durable_queue);
	free(sub->queue_dest);
	free(sub->id);
	free(sub);
}

static struct stomp_sub *unlink_sub(struct stomp_sub **pp)
{
	struct stomp_sub *sub = *pp;
	*pp = sub->next;
	return sub;
}

/* A plain UNSUBSCRIBE detaches a durable subscription, as a disconnect
 * does; one with the headers that made it durable (RabbitMQ's durable:true
 * alone is enough) ends it. */
static bool on_unsubscribe(struct stomp_session *s, struct stomp_frame *f)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	const char *id = stomp_frame_get(f, "id");
	const char *durable_name;
	bool rabbit;
	bool durable = durable_request(f, &durable_name, &rabbit);
	if (!id && s->version == STOMP_V10)
		id = stomp_frame_get(f, "destination");
	if (!id && !durable) {
		send_error(s, "missing id header", receipt, NULL);
		return false;
	}
	char *dq = NULL;
	if (durable && !(dq = durable_queue_of(s, durable_name, rabbit, receipt)))
		return false;
	struct stomp_sub **pp = NULL;
	if (id)
		for (pp = &s->subs; *pp && strcmp((*pp)->id, id); pp = &(*pp)->next)
			;
	bool had = pp && *pp;
	if (had) {
		struct stomp_sub *sub = unlink_sub(pp);
		/* The one named by id ends whatever named its queue (an
		 * x-queue-name the UNSUBSCRIBE need not repeat). */
		if (durable && sub->durable_queue) {
			free(dq);
			dq = sub->durable_queue;
			sub->durable_queue = NULL;
		}
		sub_free(s, sub);
	}
	if (!durable) {
		if (!had)
			send_error(s, "no such subscription", receipt, id);
		return had;
	}
	/* Named by the header alone, the subscription may be consumed here
	 * under another id; the queue goes only once no one consumes it. */
	if ((pp = find_durable(s, dq)))
		sub_free(s, unlink_sub(pp));
	enum router_err err = stomp_durable_end(s->b, dq);
	free(dq);
	/* RabbitMQ's headers on a subscription that was not durable: it is
	 * gone, which is all they ask. */
	if (err == ROUTER_ENOTFOUND && had)
		err = ROUTER_OK;
	if (err == ROUTER_ENOTFOUND)
		send_error(s, "no such durable subscription", receipt, durable_name);
	else if (err != ROUTER_OK)
		reply_router_error(s, err, durable_name, receipt);
	return err == ROUTER_OK;
}

static bool parse_msg_id(const char *v, uint64_t *id)
{
	unsigned long long n;
	if (!v || strncmp(v, "ID:wharf-", 9) != 0 || !parse_uint(v + 9, UINT64_MAX, &n))
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
		if (errno || *end != '-' || !parse_uint(end + 1, UINT64_MAX, &n))
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
	struct stomp_sub *sub = find_sub(s, subid);
	*sub_seq = sub ? sub->seq : (unsigned long)-1;
	return true;
}

/* Applies an ACK, NACK or rejecting NACK; false if no outstanding
 * delivery matches. */
static bool apply_ack(struct stomp_session *s, unsigned long sub_seq, uint64_t msg_id,
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

static bool on_ack(struct stomp_session *s, struct stomp_frame *f, bool nack)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	unsigned long sub_seq;
	uint64_t msg_id;
	if (!ack_target(s, f, &sub_seq, &msg_id)) {
		send_error(s, nack ? "malformed NACK" : "malformed ACK", receipt,
			   s->version == STOMP_V12 ? "expected the id header of the MESSAGE's ack header"
						   : "expected message-id and subscription headers");
		return false;
	}
	/* RabbitMQ's requeue:false: to the dead-letter queue, or dropped, as
	 * the queue's policy says, never back to the queue. */
	enum op_type type = !nack ? TX_ACK
		: dialect(s) != STOMP_DIALECT_ACTIVEMQ && header_bool(f, "requeue") == 0 ? TX_REJECT
		: TX_NACK;
	bool failed;
	struct stomp_tx *t = frame_tx(s, f, &failed);
	if (failed)
		return false;
	if (t) {
		struct tx_op *op = calloc(1, sizeof(*op));
		if (!op) {
			send_error(s, "out of memory", receipt, NULL);
			return false;
		}
		op->type = type;
		op->sub_seq = sub_seq;
		op->msg_id = msg_id;
		tx_add(s, t, op);
		return true;
	}
	if (!apply_ack(s, sub_seq, msg_id, type)) {
		send_error(s, "no outstanding message with that id", receipt,
			   "it was acknowledged already, or never delivered to this subscription");
		return false;
	}
	return true;
}

static void tx_free(struct stomp_tx *t)
{
	while (t->ops) {
		struct tx_op *op = t->ops;
		t->ops = op->next;
		tx_op_free(op);
	}
	free(t->id);
	free(t);
}

static struct stomp_tx *tx_unlink(struct stomp_session *s, const char *id)
{
	for (struct stomp_tx **pp = &s->txs; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->id, id)) {
			struct stomp_tx *t = *pp;
			*pp = t->next;
			s->ntxs--;
			s->tx_bytes -= t->bytes;
			return t;
		}
	}
	return NULL;
}

static bool on_transaction(struct stomp_session *s, struct stomp_frame *f)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	const char *id = stomp_frame_get(f, "transaction");
	if (!id) {
		send_error(s, "missing transaction header", receipt, NULL);
		return false;
	}
	if (f->command == STOMP_CMD_BEGIN) {
		if (find_tx(s, id)) {
			send_error(s, "transaction already begun", receipt, id);
			return false;
		}
		if (s->ntxs >= s->b->cfg->max_transactions) {
			char why[96];
			snprintf(why, sizeof(why), "a connection may have at most %zu open at once",
				 s->b->cfg->max_transactions);
			send_error(s, "too many open transactions", receipt, why);
			return false;
		}
		struct stomp_tx *t = calloc(1, sizeof(*t));
		if (!t || !(t->id = strdup(id))) {
			free(t);
			send_error(s, "out of memory", receipt, NULL);
			return false;
		}
		t->tail = &t->ops;
		t->next = s->txs;
		s->txs = t;
		s->ntxs++;
		return true;
	}
	struct stomp_tx *t = tx_unlink(s, id);
	if (!t) {
		send_error(s, "unknown transaction", receipt, id);
		return false;
	}
	int rc = 0;
	if (f->command == STOMP_CMD_COMMIT) {
		/* Acks of messages redelivered elsewhere since are moot, not errors.
		 * The COMMIT's receipt waits behind the durable messages. */
		for (struct tx_op *op = t->ops; op && rc >= 0; op = op->next) {
			if (op->type == TX_SEND)
				rc = publish(s, op->kind, op->name, &op->msg, NULL);
			else
				apply_ack(s, op->sub_seq, op->msg_id, op->type);
		}
	}
	tx_free(t);
	return rc >= 0;
}

static void on_frame(struct stomp_session *s, struct stomp_frame *f)
{
	const char *receipt = stomp_frame_get(f, "receipt");
	bool ok;
	if (s->state == ST_AWAIT_CONNECT) {
		if (f->command != STOMP_CMD_CONNECT && f->command != STOMP_CMD_STOMP) {
			send_error(s, "expected CONNECT", receipt, NULL);
			return;
		}
		on_connect(s, f);
		return;
	}
	switch (f->command) {
	case STOMP_CMD_SEND: {
		int rc = on_send(s, f);
		if (rc != 0)
			return; /* failed, or its receipt is queued */
		ok = true;
		break;
	}
	case STOMP_CMD_SUBSCRIBE: ok = on_subscribe(s, f); break;
	case STOMP_CMD_UNSUBSCRIBE: ok = on_unsubscribe(s, f); break;
	case STOMP_CMD_ACK: ok = on_ack(s, f, false); break;
	case STOMP_CMD_NACK:
		if (s->version == STOMP_V10) {
			send_error(s, "NACK needs STOMP 1.1 or later", receipt, NULL);
			return;
		}
		ok = on_ack(s, f, true);
		break;
	case STOMP_CMD_BEGIN:
	case STOMP_CMD_COMMIT:
	case STOMP_CMD_ABORT: ok = on_transaction(s, f); break;
	case STOMP_CMD_DISCONNECT:
		s->state = ST_DONE;
		if (!confirmq_empty(&s->confirms)) {
			s->disconnecting = true;
			queue_receipt(s, receipt, RECEIPT_LAST);
			return;
		}
		if (receipt)
			send_receipt(s, receipt);
		conn_close(s->c, true);
		return;
	case STOMP_CMD_CONNECT:
	case STOMP_CMD_STOMP:
		send_error(s, "already connected", receipt, NULL);
		return;
	default:
		send_error(s, "unexpected frame", receipt, stomp_command_name(f->command));
		return;
	}
	/* A receipt for an ack says the message will not come back; one for a
	 * durable subscription's start or end, that a crash will not undo it. */
	const char *durable_name;
	bool rabbit;
	bool sync = f->command == STOMP_CMD_ACK || f->command == STOMP_CMD_NACK ||
		    f->command == STOMP_CMD_COMMIT ||
		    ((f->command == STOMP_CMD_SUBSCRIBE || f->command == STOMP_CMD_UNSUBSCRIBE) &&
		     durable_request(f, &durable_name, &rabbit));
	if (ok && receipt && s->state == ST_CONNECTED)
		queue_receipt(s, receipt, sync ? RECEIPT_SYNC : RECEIPT_PLAIN);
}

/* ---- connection callbacks ----------------------------------------------- */

static void *stomp_open(struct conn *c)
{
	struct stomp_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->c = c;
	s->b = conn_broker(c);
	s->waiter.room = room_cb;
	confirmq_init(&s->confirms, s->b->router, release_confirm, s);
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
	while (off < len && s->state != ST_DONE && !s->blocked) {
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
			send_error(s, err, NULL, NULL);
			break;
		}
		off += used;
		if (st == STOMP_DECODE_FRAME) {
			on_frame(s, f);
			stomp_frame_free(f);
		}
	}
	evbuffer_drain(in, off);
}

static void stomp_shutdown(void *session)
{
	struct stomp_session *s = session;
	send_error(s, "broker shutting down", NULL, NULL);
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
	while (s->subs) {
		struct stomp_sub *sub = s->subs;
		s->subs = sub->next;
		sub_free(s, sub);
	}
	while (s->txs) {
		struct stomp_tx *t = s->txs;
		s->txs = t->next;
		tx_free(t);
	}
	while (s->temps) {
		struct stomp_temp *t = s->temps;
		s->temps = t->next;
		router_delete_queue(s->b->router, t->queue);
		temp_free(t);
	}
	if (s->hb_send_ev)
		event_free(s->hb_send_ev);
	if (s->hb_recv_ev)
		event_free(s->hb_recv_ev);
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
};
