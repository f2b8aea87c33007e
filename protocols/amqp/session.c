/* AMQP 1.0 connections on qpid-proton's I/O-free engine
 * (pn_connection_driver), fed from our event loop: no proactor, no second
 * loop. Links from the client carry publishes; links to it are router
 * subscriptions that deliver against the client's credit. */
#include "config.h"
#include "protocols/amqp/session.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/transport.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "protocols/amqp/mapping.h"
#include "protocols/amqp/sasl.h"
#include "router/router.h"
#include "util/buf.h"
#include "util/clock.h"

/* Credit each incoming link holds; topped up when half is used. */
#define AMQP_LINK_CREDIT 500
/* The largest frame a client may send; messages span frames. */
#define AMQP_MAX_FRAME (1024 * 1024)
/* A client silent this long is gone; it hears from us at half of it. */
#define AMQP_IDLE_TIMEOUT_MS 60000

struct amqp_link;

struct amqp_conn {
	struct conn *c;
	struct broker *b;
	pn_connection_driver_t driver;
	struct event *flush_ev;     /* output made outside the driver's events */
	struct event *tick_ev;      /* the engine's idle-timeout deadlines */
	struct amqp_link *links;
	struct buf scratch;
	unsigned long next_temp;
	bool done;
	bool header_checked;        /* the first bytes were looked at for TLS */
	bool remote_opened;         /* the client's open has come */
	bool error_closed;          /* we sent close with an error: hang up once written */
	struct router_waiter waiter;  /* some link's destination is full */
};

struct amqp_link {
	struct amqp_link *next;
	struct amqp_conn *ac;
	pn_link_t *link;
	enum dest_kind kind;
	char *name;
	struct subscription *rs;    /* links to the client only */
	uint64_t next_tag;
	bool temporary;             /* a dynamic source's queue: deleted with the link */
	bool starved;               /* credit withheld: its destination is full */
	char *durable_queue;        /* a durable topic subscription's queue, or NULL */
};

/* ---- output -------------------------------------------------------------- */

static void flush(struct amqp_conn *ac)
{
	for (;;) {
		pn_bytes_t out = pn_connection_driver_write_buffer(&ac->driver);
		if (!out.size)
			break;
		if (conn_write(ac->c, out.start, out.size) < 0) {
			conn_close(ac->c, false);
			return;
		}
		pn_connection_driver_write_done(&ac->driver, out.size);
	}
	/* Once the engine reads no more (the client closed, or sent what it
	 * cannot parse: it may then stop without closing its write side), or
	 * we closed with an error (a client that misbehaves is not waited
	 * for), what the engine wrote goes out and the connection closes. */
	if (!ac->done && (ac->error_closed || pn_connection_driver_finished(&ac->driver) ||
			  pn_connection_driver_read_closed(&ac->driver))) {
		ac->done = true;
		conn_close(ac->c, true);
	}
}

static void run(struct amqp_conn *ac);

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	run(arg);
}

static void schedule_flush(struct amqp_conn *ac)
{
	if (!event_pending(ac->flush_ev, EV_TIMEOUT, NULL))
		event_active(ac->flush_ev, EV_TIMEOUT, 0);
}

/* Ends the connection for something the client did: an open (unless ours
 * went out) and a close with the condition, then the socket closes once they
 * are written. The engine sends a close of its own making only after the
 * client's open, so the error goes through the engine's error path, which
 * sends it at once whatever the state; the engine adds "(connection
 * aborted)" to the description. */
static void close_with_error(struct amqp_conn *ac, const char *cond, const char *why)
{
	pn_condition_t *tc = pn_transport_condition(ac->driver.transport);
	pn_condition_set_name(tc, cond);
	pn_condition_set_description(tc, why);
	ac->error_closed = true;
	pn_transport_close_tail(ac->driver.transport);
}

/* ---- deliveries to the client ---------------------------------------------- */

static int amqp_deliver(void *ctx, struct delivery *d, struct message *m)
{
	struct amqp_link *al = ctx;
	struct amqp_conn *ac = al->ac;
	if (ac->done || conn_closing(ac->c) || conn_output_full(ac->c) || pn_link_credit(al->link) <= 0)
		return -1;
	if (amqp_message_encode(m, delivery_count(d) - 1, &ac->scratch) < 0)
		return -1;
	uint64_t tag = ++al->next_tag;
	pn_delivery_t *pd = pn_delivery(al->link, pn_dtag((const char *)&tag, sizeof(tag)));
	pn_link_send(al->link, ac->scratch.data, ac->scratch.len);
	pn_link_advance(al->link);
	schedule_flush(ac);
	if (pn_link_snd_settle_mode(al->link) == PN_SND_SETTLED) {
		pn_delivery_settle(pd);
		return 1;
	}
	pn_delivery_set_context(pd, d);
	return 0;
}

static const struct consumer_ops amqp_consumer_ops = { .deliver = amqp_deliver };

static void link_credit_changed(struct amqp_link *al)
{
	struct consumer *c = subscription_consumer(al->rs);
	consumer_set_credit(c, (unsigned)(pn_link_credit(al->link) > 0 ? pn_link_credit(al->link) : 0));
	if (pn_link_get_drain(al->link)) {
		/* Whatever is left after dispatch goes back, as drain asks. */
		pn_link_drained(al->link);
		consumer_set_credit(c, 0);
	}
}

/* The client's outcome for a delivery it got from us. */
static void outcome(pn_delivery_t *pd)
{
	struct delivery *d = pn_delivery_get_context(pd);
	if (!d)
		return;
	pn_delivery_set_context(pd, NULL);
	uint64_t state = pn_delivery_remote_state(pd);
	pn_disposition_t *disp = pn_delivery_remote(pd);
	switch (state) {
	case PN_RELEASED:
		delivery_nack(d, NACK_RELEASE);
		break;
	case PN_MODIFIED: {
		enum nack_outcome how = pn_disposition_is_failed(disp) ? NACK_FAILED : NACK_RELEASE;
		if (pn_disposition_is_undeliverable(disp))
			delivery_nack_elsewhere(d, how); /* not to this link again */
		else
			delivery_nack(d, how);
		break;
	}
	case PN_REJECTED:
		delivery_nack(d, NACK_REJECT);
		break;
	default: /* accepted, or settled with no outcome (settle mode first) */
		delivery_ack(d, false);
		break;
	}
	pn_delivery_settle(pd);
}

/* ---- links --------------------------------------------------------------- */

/* Frees the link's state. `closed`: the client closed the link for good
 * (a durable subscription ends); else it only detached or went away. */
static void link_free(struct amqp_conn *ac, struct amqp_link *al, bool closed)
{
	for (struct amqp_link **pp = &ac->links; *pp; pp = &(*pp)->next) {
		if (*pp == al) {
			*pp = al->next;
			break;
		}
	}
	if (al->rs) {
		/* Deliveries still unsettled go back to their queue. */
		for (pn_delivery_t *pd = pn_unsettled_head(al->link); pd; pd = pn_unsettled_next(pd))
			pn_delivery_set_context(pd, NULL);
		router_unsubscribe(ac->b->router, al->rs);
	}
	if (al->temporary)
		router_delete_queue(ac->b->router, al->name);
	if (al->durable_queue && closed) {
		router_unbind(ac->b->router, al->name, al->durable_queue);
		router_delete_queue(ac->b->router, al->durable_queue);
	}
	pn_link_set_context(al->link, NULL);
	free(al->durable_queue);
	free(al->name);
	free(al);
}

/* The queue that keeps a durable topic subscription while its link is
 * detached: named for the client's container id and the link's name. */
static char *durable_queue_name(pn_link_t *link)
{
	const char *container = pn_connection_remote_container(
		pn_session_connection(pn_link_session(link)));
	const char *parts[] = { container ? container : "", pn_link_name(link) };
	struct buf b = BUF_INIT;
	if (buf_append_str(&b, "wharf.durable") < 0)
		return NULL;
	for (size_t i = 0; i < 2; i++) {
		if (buf_append_char(&b, '.') < 0) {
			buf_free(&b);
			return NULL;
		}
		for (const char *c = parts[i]; *c; c++) {
			/* One level each, plain characters only; the escape keeps
			 * distinct ids distinct ("a.b" and "a_b"). */
			bool plain = *c != '.' && *c != '*' && *c != '>' && *c != '_' &&
				     (unsigned char)*c >= 0x20 && *c != 0x7f;
			int rc = plain ? buf_append_char(&b, *c)
				       : buf_printf(&b, "_%02x", (unsigned char)*c);
			if (rc < 0) {
				buf_free(&b);
				return NULL;
			}
		}
	}
	return b.data;
}

static void refuse_link(pn_link_t *link, const char *cond, const char *why)
{
	/* A refusing attach carries a null terminus, then the detach says why. */
	pn_terminus_set_type(pn_link_source(link), PN_UNSPECIFIED);
	pn_terminus_set_type(pn_link_target(link), PN_UNSPECIFIED);
	pn_condition_set_name(pn_link_condition(link), cond);
	pn_condition_set_description(pn_link_condition(link), why);
	pn_link_open(link);
	pn_link_close(link);
}

static const char *router_condition(enum router_err err)
{
	switch (err) {
	case ROUTER_ENOTFOUND: return "amqp:not-found";
	case ROUTER_EFORBIDDEN: return "amqp:unauthorized-access";
	case ROUTER_EINVAL: return "amqp:invalid-field";
	default: return "amqp:internal-error";
	}
}

static void link_open(struct amqp_conn *ac, pn_link_t *link)
{
	bool to_client = pn_link_is_sender(link);
	pn_terminus_t *remote = to_client ? pn_link_remote_source(link) : pn_link_remote_target(link);
	if (!to_client && pn_terminus_get_type(remote) == PN_COORDINATOR) {
		refuse_link(link, "amqp:not-implemented", "transactions are not supported");
		return;
	}
	const char *address = pn_terminus_get_address(remote);
	if ((!address || !*address) && !(to_client && pn_terminus_is_dynamic(remote))) {
		refuse_link(link, "amqp:not-implemented",
			    to_client ? "a source needs an address, or to be dynamic"
				      : "anonymous relay links are not supported yet");
		return;
	}
	char temp[96];
	bool dynamic = to_client && pn_terminus_is_dynamic(remote);
	enum dest_kind kind = DEST_QUEUE;
	const char *name = temp;
	if (dynamic)
		snprintf(temp, sizeof(temp), "wharf.temp.%lu.%lu", conn_id(ac->c), ++ac->next_temp);
	else
		name = amqp_destination(address, remote, &kind);
	bool pattern = kind == DEST_TOPIC && to_client;
	if (address_validate(name, pattern) != 0) {
		refuse_link(link, "amqp:invalid-field", "invalid address");
		return;
	}
	struct amqp_link *al = calloc(1, sizeof(*al));
	if (!al || !(al->name = strdup(name))) {
		free(al);
		refuse_link(link, "amqp:resource-limit-exceeded", "out of memory");
		return;
	}
	al->ac = ac;
	al->link = link;
	al->kind = kind;
	al->temporary = dynamic;
	pn_terminus_copy(pn_link_source(link), pn_link_remote_source(link));
	pn_terminus_copy(pn_link_target(link), pn_link_remote_target(link));
	if (dynamic)
		pn_terminus_set_address(pn_link_source(link), temp);
	pn_link_set_context(link, al);
	al->next = ac->links;
	ac->links = al;
	if (to_client) {
		pn_link_set_snd_settle_mode(link, pn_link_remote_snd_settle_mode(link));
		struct subscribe_options so = { .consumer = { .credit_mode = true } };
		enum router_err err = ROUTER_OK;
		bool durable = kind == DEST_TOPIC && pn_terminus_get_durability(remote) != PN_NONDURABLE &&
			       pn_terminus_get_expiry_policy(remote) == PN_EXPIRE_NEVER;
		if (durable) {
			/* A queue bound to the pattern keeps what arrives while the
			 * link is detached; the link consumes from it. */
			al->durable_queue = durable_queue_name(link);
			err = al->durable_queue ? router_bind(ac->b->router, name, al->durable_queue)
						: ROUTER_ENOMEM;
		}
		log_debug("amqp %s: link '%s' from %s%s%s", conn_peer(ac->c), pn_link_name(link), name,
			  durable ? ", durable in " : "", durable ? al->durable_queue : "");
		if (err == ROUTER_OK)
			al->rs = router_subscribe(ac->b->router, durable ? DEST_QUEUE : kind,
						  durable ? al->durable_queue : name, &so,
						  &amqp_consumer_ops, al, &err);
		if (!al->rs) {
			link_free(ac, al, false);
			refuse_link(link, router_condition(err), router_strerror(err));
			return;
		}
		pn_link_open(link);
	} else {
		enum router_err err = router_may_publish(ac->b->router, kind, name);
		if (err != ROUTER_OK) {
			link_free(ac, al, false);
			refuse_link(link, router_condition(err), router_strerror(err));
			return;
		}
		pn_link_open(link);
		pn_link_flow(link, AMQP_LINK_CREDIT);
	}
}

/* A transfer from the client: route it and settle it with the outcome. */
static void receive(struct amqp_conn *ac, pn_delivery_t *pd)
{
	pn_link_t *link = pn_delivery_link(pd);
	struct amqp_link *al = pn_link_get_context(link);
	if (!pn_delivery_readable(pd) || pn_delivery_partial(pd))
		return;
	size_t size = pn_delivery_pending(pd);
	buf_reset(&ac->scratch);
	if (buf_reserve(&ac->scratch, size) < 0) {
		close_with_error(ac, "amqp:resource-limit-exceeded", "out of memory");
		return;
	}
	ssize_t n = pn_link_recv(link, ac->scratch.data, size);
	pn_link_advance(link);
	const char *why = NULL;
	struct message *m = n >= 0 ? amqp_message_decode(ac->scratch.data, (size_t)n, &why) : NULL;
	bool m_ok = m != NULL;
	/* Pre-settled: the client will not hear whether it arrived, so it is
	 * sent at most once: dropped at a full destination, never slowed, not
	 * kept across a restart (durable implies qos >= 1). */
	bool at_most_once = pn_delivery_settled(pd);
	enum router_err err = ROUTER_EINVAL;
	if (m && al) {
		m->origin = conn_id(ac->c);
		if (at_most_once) {
			m->qos = 0;
			m->durable = false;
		}
		err = router_publish(ac->b->router, al->kind, al->name, &m, false);
	}
	message_unref(m);
	if (!at_most_once) {
		if (err == ROUTER_OK) {
			pn_delivery_update(pd, PN_ACCEPTED);
		} else {
			pn_condition_t *cond = pn_disposition_condition(pn_delivery_local(pd));
			pn_condition_set_name(cond, m_ok ? router_condition(err) : "amqp:decode-error");
			pn_condition_set_description(cond, m_ok ? router_strerror(err) : why);
			pn_delivery_update(pd, PN_REJECTED);
		}
	}
	pn_delivery_settle(pd);
	if (al && err == ROUTER_OK && !at_most_once && router_last_blocked(ac->b->router)) {
		/* The destination is full: the publisher gets no more credit
		 * until it drains, which is how AMQP slows a sender. */
		al->starved = true;
		router_wait_room(ac->b->router, &ac->waiter);
	} else if (!(al && al->starved) && pn_link_credit(link) < AMQP_LINK_CREDIT / 2) {
		pn_link_flow(link, AMQP_LINK_CREDIT - pn_link_credit(link));
	}
}

static void room_cb(struct router_waiter *w)
{
	struct amqp_conn *ac = (struct amqp_conn *)((char *)w - offsetof(struct amqp_conn, waiter));
	for (struct amqp_link *al = ac->links; al; al = al->next) {
		if (!al->starved)
			continue;
		al->starved = false;
		pn_link_flow(al->link, AMQP_LINK_CREDIT - pn_link_credit(al->link));
	}
	schedule_flush(ac);
}

/* ---- the engine's events ------------------------------------------------- */

static void on_event(struct amqp_conn *ac, pn_event_t *e)
{
	pn_connection_t *pc = pn_event_connection(e);
	switch (pn_event_type(e)) {
	case PN_CONNECTION_REMOTE_OPEN:
		ac->remote_opened = true;
		if (ac->error_closed)
			break;
		pn_connection_set_container(pc, "wharf");
		pn_connection_open(pc);
		break;
	case PN_CONNECTION_REMOTE_CLOSE:
		pn_connection_close(pc);
		break;
	case PN_SESSION_REMOTE_OPEN:
		/* The engine takes a begin whenever it comes; events arrive in
		 * frame order, so one before the open is caught here. */
		if (!ac->remote_opened) {
			close_with_error(ac, "amqp:illegal-state", "begin before open");
			break;
		}
		if (!ac->error_closed)
			pn_session_open(pn_event_session(e));
		break;
	case PN_SESSION_REMOTE_CLOSE:
		pn_session_close(pn_event_session(e));
		break;
	case PN_LINK_REMOTE_OPEN:
		link_open(ac, pn_event_link(e));
		break;
	case PN_LINK_REMOTE_DETACH:
	case PN_LINK_REMOTE_CLOSE: {
		pn_link_t *link = pn_event_link(e);
		struct amqp_link *al = pn_link_get_context(link);
		if (al)
			link_free(ac, al, pn_event_type(e) == PN_LINK_REMOTE_CLOSE);
		if (pn_event_type(e) == PN_LINK_REMOTE_CLOSE)
			pn_link_close(link);
		else
			pn_link_detach(link);
		/* Freed now, so the client may attach a link of the same name
		 * again (a durable subscription resuming). */
		pn_link_free(link);
		break;
	}
	case PN_LINK_FLOW: {
		pn_link_t *link = pn_event_link(e);
		struct amqp_link *al = pn_link_get_context(link);
		if (al && al->rs)
			link_credit_changed(al);
		break;
	}
	case PN_DELIVERY: {
		pn_delivery_t *pd = pn_event_delivery(e);
		if (pn_link_is_receiver(pn_delivery_link(pd)))
			receive(ac, pd);
		else if (pn_delivery_updated(pd) || pn_delivery_remote_state(pd) ||
			 pn_delivery_settled(pd))
			outcome(pd);
		break;
	}
	case PN_TRANSPORT_TAIL_CLOSED:
		/* The engine stops reading without a word when a frame's body
		 * does not decode; the client hears why. A close it sent, or an
		 * error the engine reports itself, needs nothing more. */
		if (!(pn_connection_state(ac->driver.connection) & PN_REMOTE_CLOSED) &&
		    !pn_condition_is_set(pn_transport_condition(ac->driver.transport)) &&
		    !ac->error_closed)
			close_with_error(ac, "amqp:decode-error", "a frame that does not decode");
		break;
	case PN_TRANSPORT_ERROR: {
		pn_condition_t *cond = pn_transport_condition(pn_event_transport(e));
		log_info("amqp %s: %s: %s", conn_peer(ac->c), pn_condition_get_name(cond),
			 pn_condition_get_description(cond));
		break;
	}
	default:
		break;
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	run(arg);
}

/* Heart-beats both ways: the engine says when it next needs the clock. */
static void tick(struct amqp_conn *ac)
{
	pn_timestamp_t now = clock_mono_ms();
	pn_timestamp_t next = pn_transport_tick(ac->driver.transport, now);
	if (next && !ac->done) {
		int64_t ms = next > now ? (int64_t)(next - now) : 0;
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
		evtimer_add(ac->tick_ev, &tv);
	}
}

static void run(struct amqp_conn *ac)
{
	pn_event_t *e;
	tick(ac);
	/* Writing can raise events of its own (the transport closing), and
	 * the driver is finished only once they are handled too. */
	do {
		while ((e = pn_connection_driver_next_event(&ac->driver)))
			on_event(ac, e);
		flush(ac);
	} while (!ac->done && pn_connection_driver_has_event(&ac->driver));
}

/* ---- connection callbacks ------------------------------------------------ */

static void *amqp_open(struct conn *c)
{
	struct amqp_conn *ac = calloc(1, sizeof(*ac));
	if (!ac)
		return NULL;
	ac->c = c;
	ac->b = conn_broker(c);
	ac->waiter.room = room_cb;
	if (pn_connection_driver_init(&ac->driver, NULL, NULL) != 0) {
		free(ac);
		return NULL;
	}
	pn_transport_set_server(ac->driver.transport);
	amqp_sasl_install(ac->driver.transport, c);
	pn_transport_require_auth(ac->driver.transport, false);
	pn_transport_set_idle_timeout(ac->driver.transport, AMQP_IDLE_TIMEOUT_MS);
	/* A frame announcing more is a framing error, not a reason to buffer. */
	pn_transport_set_max_frame(ac->driver.transport, AMQP_MAX_FRAME);
	ac->flush_ev = event_new(conn_base(c), -1, 0, flush_cb, ac);
	ac->tick_ev = evtimer_new(conn_base(c), tick_cb, ac);
	if (!ac->flush_ev || !ac->tick_ev || pn_connection_driver_bind(&ac->driver) != 0) {
		if (ac->flush_ev)
			event_free(ac->flush_ev);
		if (ac->tick_ev)
			event_free(ac->tick_ev);
		pn_connection_driver_destroy(&ac->driver);
		free(ac);
		return NULL;
	}
	return ac;
}

/* Whether the first bytes are a TLS handshake or the AMQP TLS header:
 * 1 yes, 0 no, -1 too few bytes to tell. */
static int tls_start(const unsigned char *p, size_t n)
{
	static const char amqp_tls[] = "AMQP\x02";
	if (n == 0)
		return -1;
	if (p[0] == 0x16) /* a TLS record of type handshake */
		return 1;
	size_t k = n < 5 ? n : 5;
	if (memcmp(p, amqp_tls, k) != 0)
		return 0;
	return n < 5 ? -1 : 1;
}

/* The engine would start a TLS layer of its own for a client that speaks
 * TLS here; this port has none (TLS is the listener's), so the client gets
 * the header we speak and a close (AMQP 1.0 §2.2), not a stalled handshake. */
static bool refuse_tls(struct amqp_conn *ac, struct evbuffer *in)
{
	static const char amqp_header[8] = { 'A', 'M', 'Q', 'P', 0, 1, 0, 0 };
	unsigned char first[5];
	ev_ssize_t n = evbuffer_copyout(in, first, sizeof(first));
	int tls = tls_start(first, n > 0 ? (size_t)n : 0);
	if (tls < 0)
		return true; /* wait for more */
	ac->header_checked = true;
	if (!tls)
		return false;
	log_info("amqp %s: TLS on a plain AMQP port", conn_peer(ac->c));
	evbuffer_drain(in, evbuffer_get_length(in));
	ac->done = true;
	conn_close(ac->c, conn_write(ac->c, amqp_header, sizeof(amqp_header)) == 0);
	return true;
}

static void amqp_input(void *session, struct evbuffer *in)
{
	struct amqp_conn *ac = session;
	if (!ac->header_checked && refuse_tls(ac, in))
		return;
	while (evbuffer_get_length(in) && !ac->done) {
		pn_rwbytes_t rb = pn_connection_driver_read_buffer(&ac->driver);
		if (!rb.size)
			break; /* the engine stopped reading (closed, or an error) */
		int n = evbuffer_remove(in, rb.start, rb.size);
		if (n <= 0)
			break;
		pn_connection_driver_read_done(&ac->driver, (size_t)n);
		run(ac);
	}
	if (evbuffer_get_length(in) && pn_connection_driver_read_closed(&ac->driver))
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void amqp_drained(void *session)
{
	struct amqp_conn *ac = session;
	for (struct amqp_link *al = ac->links; al; al = al->next)
		if (al->rs)
			consumer_set_paused(subscription_consumer(al->rs), false);
}

static void amqp_shutdown(void *session)
{
	struct amqp_conn *ac = session;
	pn_condition_t *cond = pn_connection_condition(ac->driver.connection);
	pn_condition_set_name(cond, "amqp:connection:forced");
	pn_condition_set_description(cond, "broker shutting down");
	pn_connection_close(ac->driver.connection);
	run(ac);
}

static void amqp_closed(void *session)
{
	struct amqp_conn *ac = session;
	router_cancel_wait(&ac->waiter);
	while (ac->links)
		link_free(ac, ac->links, false);
	event_free(ac->flush_ev);
	event_free(ac->tick_ev);
	pn_connection_driver_destroy(&ac->driver);
	buf_free(&ac->scratch);
	free(ac);
}

const struct proto_ops amqp_proto = {
	.name = "amqp",
	.open = amqp_open,
	.input = amqp_input,
	.drained = amqp_drained,
	.shutdown = amqp_shutdown,
	.closed = amqp_closed,
};
