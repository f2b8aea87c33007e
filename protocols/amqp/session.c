/* AMQP 1.0 connections on qpid-proton's I/O-free engine
 * (pn_connection_driver), fed from our event loop: no proactor, no second
 * loop. Links from the client carry publishes (publish.c); links to it are
 * router subscriptions that deliver against the client's credit (links.c). */
#include "config.h"
#include "protocols/amqp/session.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <proton/codec.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/transport.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "broker.h"
#include "ha/redirect.h"
#include "log.h"
#include "protocols/amqp/internal.h"
#include "protocols/amqp/sasl.h"
#include "util/clock.h"

/* The largest frame a client may send; messages span frames. */
#define AMQP_MAX_FRAME (1024 * 1024)
/* A client silent this long is gone; it hears from us at half of it. */
#define AMQP_IDLE_TIMEOUT_MS 60000
/* The shortest idle-time-out a client may ask of us: the engine sends an
 * empty frame every half of it, and a hostile client asking for 1 ms would
 * have us write 2,000 frames a second, for ever. */
#define AMQP_MIN_PEER_IDLE_MS 1000

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

void amqp_schedule_flush(struct amqp_conn *ac)
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
void amqp_close_with_error(struct amqp_conn *ac, const char *cond, const char *why)
{
	pn_condition_t *tc = pn_transport_condition(ac->driver.transport);
	pn_condition_set_name(tc, cond);
	pn_condition_set_description(tc, why);
	ac->error_closed = true;
	pn_transport_close_tail(ac->driver.transport);
}

/* ---- the engine's events ------------------------------------------------- */

static void put_symbol(pn_data_t *d, const char *s)
{
	pn_data_put_symbol(d, pn_bytes(strlen(s), s));
}

static void put_string(pn_data_t *d, const char *s)
{
	pn_data_put_string(d, pn_bytes(strlen(s), s));
}

/* A node that is not active completes the open, then closes with
 * amqp:connection:redirect and where the active node is (AMQP 1.0
 * §2.8.16: hostname, network-host, port), or amqp:connection:forced when
 * that is not known; the socket closes once they are written. */
static bool redirect(struct amqp_conn *ac, pn_connection_t *pc)
{
	struct redirect_target to;
	if (!broker_redirect_for(ac->c, &to))
		return false;
	pn_connection_set_container(pc, "wharf");
	pn_connection_open(pc);
	pn_condition_t *cond = pn_connection_condition(pc);
	if (to.port) {
		char at[300];
		redirect_target_text(&to, at, sizeof(at));
		pn_condition_set_name(cond, "amqp:connection:redirect");
		pn_condition_set_description(cond, "this node is a standby: connect to the active node");
		pn_data_t *info = pn_condition_info(cond);
		pn_data_put_map(info);
		pn_data_enter(info);
		put_symbol(info, "hostname");
		put_string(info, to.host);
		put_symbol(info, "network-host");
		put_string(info, to.host);
		put_symbol(info, "port");
		pn_data_put_int(info, to.port);
		pn_data_exit(info);
		conn_log(ac->c, LOG_DEBUG, "amqp: standby: client sent to %s", at);
	} else {
		pn_condition_set_name(cond, "amqp:connection:forced");
		pn_condition_set_description(cond, "this node is a standby and the active node is not known");
		conn_log(ac->c, LOG_DEBUG, "amqp: standby: the active node is not known");
	}
	pn_connection_close(pc);
	ac->error_closed = true;
	return true;
}

static void on_event(struct amqp_conn *ac, pn_event_t *e)
{
	pn_connection_t *pc = pn_event_connection(e);
	switch (pn_event_type(e)) {
	case PN_CONNECTION_REMOTE_OPEN:
		ac->remote_opened = true;
		if (ac->error_closed || redirect(ac, pc))
			break;
		pn_millis_t idle = pn_transport_get_remote_idle_timeout(ac->driver.transport);
		if (idle && idle < AMQP_MIN_PEER_IDLE_MS) {
			char why[96];
			snprintf(why, sizeof(why), "idle-time-out of %u ms: at least %u ms", (unsigned)idle,
				 AMQP_MIN_PEER_IDLE_MS);
			amqp_close_with_error(ac, "amqp:resource-limit-exceeded", why);
			break;
		}
		if (ac->limited || (!ac->authenticated && conn_address_over(ac->c))) {
			amqp_close_with_error(ac, "amqp:resource-limit-exceeded", conn_refusal(ac->c));
			break;
		}
		/* No SASL (only without users: authentication off): anonymous,
		 * whatever else the connection knows of its client. */
		if (!ac->authenticated && conn_set_principal(ac->c, "anonymous") < 0) {
			amqp_close_with_error(ac, "amqp:internal-error", "out of memory");
			break;
		}
		if (!ac->authenticated)
			conn_audit(ac->c, "connect", "anonymous", NULL);
		if (conn_set_client_id(ac->c, pn_connection_remote_container(pc)) < 0) {
			amqp_close_with_error(ac, "amqp:internal-error", "out of memory");
			break;
		}
		conn_handshake_done(ac->c);
		pn_connection_set_container(pc, "wharf");
		/* Clients (Qpid JMS) look for it before they use a sender
		 * without target address for every destination. */
		pn_data_put_symbol(pn_connection_offered_capabilities(pc),
				   pn_bytes(strlen("ANONYMOUS-RELAY"), "ANONYMOUS-RELAY"));
		pn_connection_open(pc);
		break;
	case PN_CONNECTION_REMOTE_CLOSE:
		pn_connection_close(pc);
		break;
	case PN_SESSION_REMOTE_OPEN:
		/* The engine takes a begin whenever it comes; events arrive in
		 * frame order, so one before the open is caught here. */
		if (!ac->remote_opened) {
			amqp_close_with_error(ac, "amqp:illegal-state", "begin before open");
			break;
		}
		if (!ac->error_closed)
			pn_session_open(pn_event_session(e));
		break;
	case PN_SESSION_REMOTE_CLOSE:
		pn_session_close(pn_event_session(e));
		break;
	case PN_LINK_REMOTE_OPEN:
		/* None on a connection closing with an error (a standby's
		 * redirect among them): the begin was not answered either. */
		if (!ac->error_closed)
			amqp_link_open(ac, pn_event_link(e));
		break;
	case PN_LINK_REMOTE_DETACH:
	case PN_LINK_REMOTE_CLOSE: {
		pn_link_t *link = pn_event_link(e);
		struct amqp_link *al = pn_link_get_context(link);
		if (al) {
			amqp_link_free(ac, al, pn_event_type(e) == PN_LINK_REMOTE_CLOSE);
			amqp_unacked_freed(ac);
		}
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
			amqp_link_credit_changed(al);
		break;
	}
	case PN_DELIVERY: {
		pn_delivery_t *pd = pn_event_delivery(e);
		if (pn_link_is_receiver(pn_delivery_link(pd)))
			amqp_receive(ac, pd);
		else if (pn_delivery_updated(pd) || pn_delivery_remote_state(pd) ||
			 pn_delivery_settled(pd))
			amqp_outcome(ac, pd);
		break;
	}
	case PN_TRANSPORT_TAIL_CLOSED:
		/* The engine stops reading without a word when a frame's body
		 * does not decode; the client hears why. A close it sent, or an
		 * error the engine reports itself, needs nothing more. */
		if (!(pn_connection_state(ac->driver.connection) & PN_REMOTE_CLOSED) &&
		    !pn_condition_is_set(pn_transport_condition(ac->driver.transport)) &&
		    !ac->error_closed)
			amqp_close_with_error(ac, "amqp:decode-error", "a frame that does not decode");
		break;
	case PN_TRANSPORT_ERROR: {
		pn_condition_t *cond = pn_transport_condition(pn_event_transport(e));
		conn_log(ac->c, LOG_INFO, "amqp: %s: %s", pn_condition_get_name(cond),
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
		/* At least a millisecond: a deadline already due must not make
		 * a timer that fires again at once. */
		int64_t ms = next > now ? (int64_t)(next - now) : 1;
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
	ac->waiter.room = amqp_room;
	if (pn_connection_driver_init(&ac->driver, NULL, NULL) != 0) {
		free(ac);
		return NULL;
	}
	pn_transport_set_server(ac->driver.transport);
	amqp_sasl_install(ac->driver.transport, ac);
	/* With users, a client that skips SASL is refused (ANONYMOUS is the
	 * way in where the listener allows it). */
	pn_transport_require_auth(ac->driver.transport, ac->b->cfg->auth.users_file != NULL);
	pn_transport_set_idle_timeout(ac->driver.transport, AMQP_IDLE_TIMEOUT_MS);
	/* A frame announcing more is a framing error, not a reason to buffer. */
	pn_transport_set_max_frame(ac->driver.transport, AMQP_MAX_FRAME);
	confirmq_init(&ac->confirms, ac->b->router, amqp_release_outcome, ac);
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
	conn_log(ac->c, LOG_INFO, "amqp: TLS on a plain AMQP port");
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
	while (evbuffer_get_length(in) && !ac->done && !ac->authenticating) {
		pn_rwbytes_t rb = pn_connection_driver_read_buffer(&ac->driver);
		if (!rb.size)
			break; /* the engine stopped reading (closed, or an error) */
		int n = evbuffer_remove(in, rb.start, rb.size);
		if (n <= 0)
			break;
		const char *why;
		if (amqp_guard_scan(&ac->guard, (const uint8_t *)rb.start, (size_t)n, &why) < 0) {
			/* The engine never sees these bytes: it would abort. */
			amqp_close_with_error(ac, "amqp:invalid-field", why);
			run(ac);
			break;
		}
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

static void amqp_shutdown(void *session, enum conn_end why)
{
	struct amqp_conn *ac = session;
	pn_condition_t *cond = pn_connection_condition(ac->driver.connection);
	pn_condition_set_name(cond, "amqp:connection:forced");
	pn_condition_set_description(cond, why == CONN_END_ADMIN ? "closed by an administrator"
								: "broker shutting down");
	pn_connection_close(ac->driver.connection);
	run(ac);
}

static void amqp_closed(void *session)
{
	struct amqp_conn *ac = session;
	router_cancel_wait(&ac->waiter);
	confirmq_clear(&ac->confirms);
	while (ac->links)
		amqp_link_free(ac, ac->links, false);
	event_free(ac->flush_ev);
	event_free(ac->tick_ev);
	pn_connection_driver_destroy(&ac->driver);
	buf_free(&ac->scratch);
	amqp_guard_free(&ac->guard);
	free(ac);
}

static bool amqp_mid_frame(void *session)
{
	struct amqp_conn *ac = session;
	return amqp_guard_mid_frame(&ac->guard);
}

static void amqp_acl_changed(void *session)
{
	amqp_links_acl_changed(session);
}

const struct proto_ops amqp_proto = {
	.name = "amqp",
	.open = amqp_open,
	.input = amqp_input,
	.drained = amqp_drained,
	.shutdown = amqp_shutdown,
	.closed = amqp_closed,
	.mid_frame = amqp_mid_frame,
	.acl_changed = amqp_acl_changed,
};
