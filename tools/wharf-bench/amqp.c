/* An AMQP 1.0 client on qpid-proton's connection driver, fed from the tool's
 * own event loop (no proactor): SASL ANONYMOUS (or PLAIN with a user in the
 * URL), one session, one link per connection. Publishers send unsettled
 * transfers (the broker's accepted outcome is the confirmation; other
 * outcomes count as rejected) or pre-settled ones, with header.durable for
 * --persistent (and, on a queue, a durable terminus); they publish only
 * against the broker's credit. Subscribers
 * grant --prefetch credit, topped up at half, and accept and settle each
 * delivery (or take them pre-settled).
 *
 * The message is encoded by hand once per publisher (header, one data
 * section) and the payload rebuilt in place for each transfer; incoming
 * messages are walked section by section to find the body. Each client owns
 * its struct amqp_state (c->ps) and the driver in it. */
#include "config.h"
#include "wb.h"

#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH_EVERY 32         /* transfers encoded before the frames move to the socket buffer */
#define DEFAULT_CREDIT 1000

struct amqp_state {
	pn_connection_driver_t d;
	bool driver_ok;
	pn_link_t *link;
	uint8_t *msg;              /* publishers: the encoded message, payload at payload_off */
	size_t msg_len, payload_off;
	unsigned unflushed;
	uint8_t *rbuf;             /* subscribers: one delivery's bytes */
	size_t rcap;
	unsigned credit;
};

static struct amqp_state *st(const struct wb_client *c)
{
	return c->ps;
}

/* ---- output ---------------------------------------------------------------- */

static void amqp_flush(struct wb_client *c)
{
	struct amqp_state *s = st(c);
	s->unflushed = 0;
	while (c->conn.open) {
		pn_bytes_t b = pn_connection_driver_write_buffer(&s->d);
		if (!b.size)
			break;
		if (wb_conn_append(&c->conn, b.start, b.size) < 0) {
			wb_fail(c, "out of memory");
			return;
		}
		pn_connection_driver_write_done(&s->d, b.size);
	}
}

/* ---- message encoding -------------------------------------------------------- */

static size_t put_binary_head(uint8_t *p, size_t len)
{
	if (len < 256) {
		p[0] = 0xa0;
		p[1] = (uint8_t)len;
		return 2;
	}
	p[0] = 0xb0;
	p[1] = (uint8_t)(len >> 24);
	p[2] = (uint8_t)(len >> 16);
	p[3] = (uint8_t)(len >> 8);
	p[4] = (uint8_t)len;
	return 5;
}

static int build_message(struct wb_client *c)
{
	struct amqp_state *s = st(c);
	const struct wb_opts *o = c->run->o;
	/* header {durable: true}: described list8 of one boolean */
	static const uint8_t durable[] = { 0x00, 0x53, 0x70, 0xc0, 0x02, 0x01, 0x41 };
	s->msg = malloc(sizeof durable + 8 + o->size);
	if (!s->msg)
		return -1;
	size_t n = 0;
	if (o->persistent) {
		memcpy(s->msg, durable, sizeof durable);
		n = sizeof durable;
	}
	s->msg[n++] = 0x00;
	s->msg[n++] = 0x53;
	s->msg[n++] = 0x75; /* data section */
	n += put_binary_head(s->msg + n, o->size);
	s->payload_off = n;
	s->msg_len = n + o->size;
	return 0;
}

/* ---- message decoding -------------------------------------------------------- */

/* The size of the encoded value at p (constructor included), 0 if malformed
 * or cut short. Described values (sections) are handled by the caller. */
static size_t value_size(const uint8_t *p, size_t len)
{
	if (!len)
		return 0;
	uint8_t t = p[0];
	size_t n;
	switch (t >> 4) {
	case 0x4: n = 1; break;
	case 0x5: n = 2; break;
	case 0x6: n = 3; break;
	case 0x7: n = 5; break;
	case 0x8: n = 9; break;
	case 0x9: n = 17; break;
	case 0xa: case 0xc: case 0xe:
		if (len < 2)
			return 0;
		n = 2 + p[1];
		break;
	case 0xb: case 0xd: case 0xf:
		if (len < 5)
			return 0;
		n = 5 + ((size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4]);
		break;
	default:
		return 0;
	}
	return n <= len ? n : 0;
}

/* The body of an AMQP message: its first data section, or an amqp-value
 * holding binary or a string. */
static bool find_body(const uint8_t *p, size_t len, const uint8_t **body, size_t *blen)
{
	size_t pos = 0;
	while (pos + 3 <= len) {
		if (p[pos] != 0x00)
			return false;
		uint64_t code;
		size_t dl;
		if (p[pos + 1] == 0x53) {
			code = p[pos + 2];
			dl = 2;
		} else if (p[pos + 1] == 0x80 && pos + 10 <= len) {
			code = 0;
			for (int i = 0; i < 8; i++)
				code = code << 8 | p[pos + 2 + i];
			dl = 9;
		} else {
			return false; /* symbolic descriptors: not used for sections */
		}
		pos += 1 + dl;
		size_t vs = value_size(p + pos, len - pos);
		if (!vs)
			return false;
		uint8_t t = p[pos];
		if (code == 0x75 || (code == 0x77 && (t == 0xa0 || t == 0xb0 || t == 0xa1 || t == 0xb1))) {
			size_t h = t >> 4 == 0xa ? 2 : 5;
			*body = p + pos + h;
			*blen = vs - h;
			return true;
		}
		pos += vs;
	}
	return false;
}

/* ---- lifecycle ----------------------------------------------------------------- */

static const char *address(const struct wb_opts *o, char *buf, size_t len)
{
	/* a name with a scheme or a slash is a full address (RabbitMQ: /queue/NAME) */
	if (strchr(o->dest, '/') || o->kind == WB_QUEUE)
		snprintf(buf, len, "%s", o->dest);
	else
		snprintf(buf, len, "topic://%s", o->dest);
	return buf;
}

static int amqp_init(struct wb_client *c)
{
	const struct wb_opts *o = c->run->o;
	struct amqp_state *s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	c->ps = s;
	if (pn_connection_driver_init(&s->d, NULL, NULL) != 0)
		return -1;
	s->driver_ok = true;
	s->credit = o->prefetch ? o->prefetch : DEFAULT_CREDIT;
	if (c->role == WB_PUB) {
		c->confirms = !o->presettled;
		return build_message(c);
	}
	return 0;
}

static void amqp_free(struct wb_client *c)
{
	struct amqp_state *s = st(c);
	if (!s)
		return;
	if (s->driver_ok)
		pn_connection_driver_destroy(&s->d);
	free(s->msg);
	free(s->rbuf);
	free(s);
	c->ps = NULL;
}

static void amqp_start(struct wb_client *c)
{
	struct amqp_state *s = st(c);
	const struct wb_opts *o = c->run->o;
	pn_connection_t *conn = s->d.connection;
	pn_transport_t *t = s->d.transport;
	pn_sasl_t *sasl = pn_sasl(t);
	if (o->has_user) {
		pn_connection_set_user(conn, o->user);
		pn_connection_set_password(conn, o->has_pass ? o->pass : "");
		pn_sasl_set_allow_insecure_mechs(sasl, true);
		pn_sasl_allowed_mechs(sasl, "PLAIN");
	} else {
		pn_sasl_allowed_mechs(sasl, "ANONYMOUS");
	}
	pn_connection_set_container(conn, c->id);
	pn_connection_set_hostname(conn, o->host);
	if (pn_connection_driver_bind(&s->d) != 0) {
		wb_fail(c, "cannot bind the AMQP transport");
		return;
	}
	pn_connection_open(conn);
	if (c->role != WB_IDLE) {
		pn_session_t *ssn = pn_session(conn);
		pn_session_open(ssn);
		char addr[300];
		address(o, addr, sizeof addr);
		if (c->role == WB_PUB) {
			s->link = pn_sender(ssn, c->id);
			pn_terminus_set_address(pn_link_target(s->link), addr);
			pn_terminus_set_address(pn_link_source(s->link), c->id);
		} else {
			s->link = pn_receiver(ssn, c->id);
			pn_terminus_set_address(pn_link_source(s->link), addr);
			pn_terminus_set_address(pn_link_target(s->link), c->id);
		}
		/* --persistent on a queue: the queue's end of the link is a durable
		 * terminus, which is how a broker that declares the queue on attach
		 * (RabbitMQ's /queue/NAME) is asked for a durable one. Not on a
		 * topic, where it would ask for a durable subscription. */
		if (o->persistent && o->kind == WB_QUEUE)
			pn_terminus_set_durability(c->role == WB_PUB ? pn_link_target(s->link)
								      : pn_link_source(s->link),
						   PN_CONFIGURATION);
		pn_link_set_snd_settle_mode(s->link, o->presettled ? PN_SND_SETTLED : PN_SND_UNSETTLED);
		pn_link_set_rcv_settle_mode(s->link, PN_RCV_FIRST);
		pn_link_open(s->link);
	}
	amqp_flush(c);
}

static bool amqp_can_publish(const struct wb_client *c)
{
	return pn_link_credit(st(c)->link) > 0;
}

static int amqp_publish(struct wb_client *c, uint64_t seq, uint64_t ts, bool last)
{
	struct amqp_state *s = st(c);
	const struct wb_opts *o = c->run->o;
	pn_delivery_t *d = pn_delivery(s->link, pn_dtag((const char *)&seq, sizeof seq));
	if (!d) {
		wb_fail(c, "out of memory");
		return -1;
	}
	wb_payload_build(s->msg + s->payload_off, o->size, c->run->run_id, c->index, seq, ts);
	if (pn_link_send(s->link, (const char *)s->msg, s->msg_len) < 0) {
		wb_fail(c, "proton refused the transfer");
		return -1;
	}
	pn_link_advance(s->link);
	if (o->presettled)
		pn_delivery_settle(d);
	if (++s->unflushed >= FLUSH_EVERY || last || c->conn.frame_writes)
		amqp_flush(c);
	return 0;
}

/* Unsettled: the last outcome says the broker has everything. Pre-settled:
 * the broker answers the link's detach after the transfers before it. */
static void amqp_finish(struct wb_client *c)
{
	if (c->confirms) {
		amqp_flush(c);
		wb_on_finished(c);
		return;
	}
	pn_link_close(st(c)->link);
	amqp_flush(c);
}

/* Idle-timeout frames the broker asked for in its open. */
static void amqp_ping(struct wb_client *c)
{
	pn_transport_tick(st(c)->d.transport, (int64_t)(wb_now_ns() / 1000000));
	amqp_flush(c);
}

static void amqp_disconnect(struct wb_client *c)
{
	pn_connection_close(st(c)->d.connection);
	amqp_flush(c);
}

/* ---- events ------------------------------------------------------------------- */

static void fail_condition(struct wb_client *c, const char *what, pn_condition_t *cond)
{
	if (cond && pn_condition_is_set(cond))
		wb_fail(c, "%s: %s: %s", what, pn_condition_get_name(cond),
			pn_condition_get_description(cond) ? pn_condition_get_description(cond) : "");
	else
		wb_fail(c, "%s", what);
}

static void on_sender_delivery(struct wb_client *c, pn_delivery_t *d)
{
	uint64_t state = pn_delivery_remote_state(d);
	if (!pn_delivery_settled(d) && (!state || state == PN_RECEIVED))
		return;
	pn_delivery_settle(d);
	wb_on_confirm(c, 1, state && state != PN_ACCEPTED);
}

static void on_receiver_delivery(struct wb_client *c, pn_delivery_t *d)
{
	struct amqp_state *s = st(c);
	if (!pn_delivery_readable(d) || pn_delivery_partial(d))
		return;
	size_t n = pn_delivery_pending(d);
	if (n > s->rcap) {
		uint8_t *b = realloc(s->rbuf, n);
		if (!b) {
			wb_fail(c, "out of memory");
			return;
		}
		s->rbuf = b;
		s->rcap = n;
	}
	ssize_t got = pn_link_recv(s->link, (char *)s->rbuf, n);
	pn_link_advance(s->link);
	const uint8_t *body;
	size_t blen;
	if (got >= 0 && find_body(s->rbuf, (size_t)got, &body, &blen))
		wb_on_message(c, body, blen);
	else
		wb_on_message(c, s->rbuf, 0); /* counted as corrupted */
	if (!pn_delivery_settled(d))
		pn_delivery_update(d, PN_ACCEPTED);
	pn_delivery_settle(d);
	int credit = pn_link_credit(s->link);
	if (credit <= (int)s->credit / 2)
		pn_link_flow(s->link, (int)s->credit - credit);
}

static void on_link_open(struct wb_client *c, pn_link_t *l)
{
	struct amqp_state *s = st(c);
	bool sender = pn_link_is_sender(l);
	pn_terminus_t *t = sender ? pn_link_remote_target(l) : pn_link_remote_source(l);
	if (pn_terminus_get_type(t) == PN_UNSPECIFIED)
		return; /* refused: the detach with the reason follows */
	if (!sender)
		pn_link_flow(l, (int)s->credit);
	wb_on_ready(c);
}

static void on_event(struct wb_client *c, pn_event_t *e)
{
	switch (pn_event_type(e)) {
	case PN_CONNECTION_REMOTE_OPEN:
		if (c->role == WB_IDLE)
			wb_on_ready(c);
		break;
	case PN_LINK_REMOTE_OPEN:
		on_link_open(c, pn_event_link(e));
		break;
	case PN_LINK_FLOW:
		if (pn_link_is_sender(pn_event_link(e)))
			wb_on_credit(c);
		break;
	case PN_DELIVERY: {
		pn_delivery_t *d = pn_event_delivery(e);
		if (pn_link_is_sender(pn_delivery_link(d)))
			on_sender_delivery(c, d);
		else
			on_receiver_delivery(c, d);
		break;
	}
	case PN_LINK_REMOTE_CLOSE:
	case PN_LINK_REMOTE_DETACH: {
		pn_link_t *l = pn_event_link(e);
		pn_condition_t *cond = pn_link_remote_condition(l);
		if (c->role == WB_PUB && c->finishing && !c->confirms &&
		    !(cond && pn_condition_is_set(cond))) {
			wb_on_finished(c);
			break;
		}
		fail_condition(c, "the broker detached the link", cond);
		break;
	}
	case PN_SESSION_REMOTE_CLOSE:
		fail_condition(c, "the broker ended the session",
			       pn_session_remote_condition(pn_event_session(e)));
		break;
	case PN_CONNECTION_REMOTE_CLOSE:
		fail_condition(c, "the broker closed the connection",
			       pn_connection_remote_condition(pn_event_connection(e)));
		break;
	case PN_TRANSPORT_ERROR:
		fail_condition(c, "AMQP transport error", pn_transport_condition(pn_event_transport(e)));
		break;
	default:
		break;
	}
}

static void process(struct wb_client *c)
{
	struct amqp_state *s = st(c);
	pn_event_t *e;
	while (c->conn.open && (e = pn_connection_driver_next_event(&s->d)))
		on_event(c, e);
}

static size_t amqp_input(struct wb_client *c, const uint8_t *data, size_t len)
{
	struct amqp_state *s = st(c);
	size_t used = 0;
	while (used < len && c->conn.open) {
		pn_rwbytes_t rb = pn_connection_driver_read_buffer(&s->d);
		if (!rb.size)
			break;
		size_t n = rb.size < len - used ? rb.size : len - used;
		memcpy(rb.start, data + used, n);
		pn_connection_driver_read_done(&s->d, n);
		used += n;
		process(c);
	}
	if (!c->conn.open)
		return len;
	amqp_flush(c);
	if (used < len && pn_connection_driver_read_closed(&s->d))
		wb_fail(c, "the AMQP engine stopped reading");
	return used;
}

const struct wb_proto wb_amqp = {
	.name = "amqp",
	.default_port = 5672,
	.init = amqp_init,
	.free = amqp_free,
	.start = amqp_start,
	.input = amqp_input,
	.can_publish = amqp_can_publish,
	.publish = amqp_publish,
	.finish = amqp_finish,
	.ping = amqp_ping,
	.disconnect = amqp_disconnect,
	.flush = amqp_flush,
};
