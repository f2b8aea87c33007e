#include "config.h"
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "log.h"
#include "net/ackread.h"
#include "net/url.h"
#include "net/conn_internal.h"
#include "net/limits.h"
#include "net/protocol.h"
#include "net/stream.h"
#include "net/ws.h"
#include "net/xprt.h"
#include "util/audit.h"
#include "util/clock.h"

/* How long a closing connection may take to flush what it has queued. */
#define CLOSE_FLUSH_MS 5000
/* How long a connection closed with a last word (a protocol's error
 * reason) then reads, and drops, what its client still sends. Closing a
 * socket with unread input sends a reset, which can destroy the reason
 * before a client busy writing reads it. */
#define CLOSE_LINGER_MS 2000


static void broker_conn_added(struct broker *b, struct conn *c);
static void broker_conn_removed(struct broker *b, struct conn *c);

struct broker *conn_broker(const struct conn *c) { return c->b; }
struct event_base *conn_base(const struct conn *c) { return c->b->base; }
const char *conn_peer(const struct conn *c) { return c->peer; }
const char *conn_protocol(const struct conn *c) { return c->proto ? c->proto->name : "ws"; }
const char *conn_principal(const struct conn *c) { return c->principal ? c->principal : "anonymous"; }
unsigned long conn_id(const struct conn *c) { return c->id; }
bool conn_tls(const struct conn *c) { return c->tls; }
bool conn_websocket(const struct conn *c) { return c->xprt != &xprt_stream; }
bool conn_closing(const struct conn *c) { return c->closing; }
void conn_count_msg_in(struct conn *c) { c->counts.msgs_in++; }
void conn_count_msg_out(struct conn *c) { c->counts.msgs_out++; }
const struct conn_counts *conn_counts(const struct conn *c) { return &c->counts; }
long long conn_since_ms(const struct conn *c) { return c->since_ms; }
const char *conn_refusal(const struct conn *c) { return c->refusal; }

const char *conn_subscription_refused(struct conn *c, const char *key, unsigned max)
{
	return limits_subscription_refused(c->b->limits, key, max, c->peer);
}

const char *conn_address_over(struct conn *c)
{
	const char *why = limits_address_over(c->b->limits, c->b->cfg, c->host, c->peer);
	if (!why)
		return NULL;
	snprintf(c->refusal, sizeof(c->refusal), "%s", why);
	return c->refusal;
}

struct evbuffer *conn_output(struct conn *c)
{
	return c->xprt->output(c);
}

int conn_set_principal(struct conn *c, const char *principal)
{
	char *copy = strdup(principal);
	if (!copy)
		return -1;
	acl_denials_told(conn_acl_who(c)); /* the old principal's */
	free(c->principal);
	c->principal = copy;
	acl_who_clear(&c->who); /* decisions were another principal's */
	return 0;
}

int conn_set_client_id(struct conn *c, const char *client_id)
{
	char *copy = client_id ? strdup(client_id) : NULL;
	if (client_id && !copy)
		return -1;
	free(c->client_id);
	c->client_id = copy;
	acl_who_clear(&c->who);
	return 0;
}

struct acl_who *conn_acl_who(struct conn *c)
{
	c->who.user = conn_principal(c);
	c->who.client_id = c->client_id;
	c->who.peer = c->peer;
	c->who.proto = conn_protocol(c);
	c->who.conn = c->id;
	c->who.listener = c->listener;
	c->who.mechanism = c->mechanism;
	return &c->who;
}

void conn_audit(struct conn *c, const char *event, const char *principal, const char *reason)
{
	struct audit_actor actor = { .principal = principal, .mechanism = c->mechanism,
				     .protocol = conn_protocol(c), .listener = c->listener,
				     .remote = c->peer, .client_id = c->client_id, .conn = c->id };
	audit_event(&(struct audit_record){ .event = event, .actor = &actor, .reason = reason });
}

int conn_set_listener(struct conn *c, const char *name)
{
	free(c->listener);
	c->listener = strdup(name);
	return c->listener ? 0 : -1;
}

int conn_write(struct conn *c, const void *data, size_t len)
{
	return evbuffer_add(conn_output(c), data, len);
}

bool conn_output_full(const struct conn *c)
{
	return c->xprt->pending(c) >= c->max_output;
}

void conn_pause_input(struct conn *c, bool paused)
{
	if (c->closing)
		return;
	c->input_paused = paused;
	if (paused || c->b->draining) {
		stream_reading(c, false);
		/* What waits now waits for us, not for the client. */
		evtimer_del(c->frame_ev);
	} else {
		stream_reading(c, true);
		/* What arrived before the pause is read again, from the loop:
		 * socket bytes, or over WebSocket what was decoded already. */
		if (c->xprt->unread(c))
			bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
	}
}

void conn_input_acks_only(struct conn *c, bool only)
{
	ackread_acks_only(c, only);
}

void conn_acks_wanted(struct conn *c)
{
	ackread_wanted(c);
}

void conn_set_allow_anonymous(struct conn *c, bool allow)
{
	c->allow_anonymous = allow;
}

void conn_set_cert_identity(struct conn *c, int kind)
{
	c->cert_kind = kind;
}

bool conn_cert_identified(const struct conn *c)
{
	return c->cert_seen;
}

static void timer_start(struct event *ev, unsigned ms);

/* A user logged in: counted against max_connections_per_user (the
 * connection's earlier login, if any, no more). */
static enum auth_result count_login(struct conn *c, const char *user)
{
	char *copy = user ? strdup(user) : NULL;
	if (user && !copy)
		return AUTH_ERROR;
	limits_logout(c->b->limits, c->login_user);
	free(c->login_user);
	c->login_user = NULL;
	const char *why = limits_login(c->b->limits, c->b->cfg, user, c->peer);
	if (why) {
		free(copy);
		snprintf(c->refusal, sizeof(c->refusal), "%s", why);
		return AUTH_LIMITED;
	}
	c->login_user = copy;
	return AUTH_OK;
}

static void auth_answer(void *arg, enum auth_result r, const char *reason)
{
	struct conn *c = arg;
	c->auth_req = NULL;
	/* The rest of the handshake (AMQP: the open after SASL) is the
	 * client's again. */
	if (c->b->cfg->handshake_timeout_ms)
		timer_start(c->handshake_ev, c->b->cfg->handshake_timeout_ms);
	const char *user = c->auth_user && auth_enabled(c->b->auth) ? c->auth_user : NULL;
	if (c->cert_seen)
		user = c->cert_user;
	c->mechanism = c->cert_seen ? "certificate" : user ? "password" : "anonymous";
	if (r == AUTH_OK)
		r = count_login(c, user);
	if (r == AUTH_OK && conn_set_principal(c, user ? user : "anonymous") < 0)
		r = AUTH_ERROR;
	if (r == AUTH_LIMITED)
		reason = c->refusal;
	else if (r == AUTH_ERROR)
		reason = "out of memory";
	if (r == AUTH_OK)
		conn_audit(c, "connect", conn_principal(c), NULL);
	else
		conn_audit(c, "connect_failed", user ? user : "anonymous", reason);
	free(c->auth_user);
	c->auth_user = NULL;
	c->auth_done(c->session, r);
}

static void refuse_cb(evutil_socket_t fd, short what, void *arg)
{
	auth_answer(arg, AUTH_LIMITED, NULL);
}

/* One connection too many from its address: refused before its
 * credentials cost a check, from the loop as every answer. */
static int refuse_address(struct conn *c, conn_auth_fn done)
{
	struct timeval now = { 0, 0 };
	if (!c->refuse_ev && !(c->refuse_ev = evtimer_new(c->b->base, refuse_cb, c)))
		return -1;
	c->auth_done = done;
	evtimer_add(c->refuse_ev, &now);
	evtimer_del(c->handshake_ev);
	return 0;
}

int conn_authenticate(struct conn *c, const char *user, const char *password, size_t len,
		      conn_auth_fn done)
{
	if (c->auth_req || c->closing)
		return -1;
	if (conn_address_over(c))
		return refuse_address(c, done);
	if (user && !(c->auth_user = strdup(user)))
		return -1;
	c->auth_done = done;
	if (c->cert_seen)
		c->auth_req = auth_request_cert(c->b->auth, conn_protocol(c), c->peer, c->cert_user,
						user, auth_answer, c);
	else
		c->auth_req = auth_request(c->b->auth, conn_protocol(c), c->peer, user, password,
					   len, c->allow_anonymous, auth_answer, c);
	if (!c->auth_req) {
		free(c->auth_user);
		c->auth_user = NULL;
		return -1;
	}
	/* Waiting for the authenticator (a queue of checks before this one
	 * after a failover) is not the client's slowness. */
	evtimer_del(c->handshake_ev);
	return 0;
}

void conn_handshake_done(struct conn *c)
{
	evtimer_del(c->handshake_ev);
}

static void timer_start(struct event *ev, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(ev, &tv);
}

static void handshake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	log_conn(LOG_INFO, c->id, c->peer, "no %s handshake within handshake_timeout (%u ms): closed",
		 conn_protocol(c), c->b->cfg->handshake_timeout_ms);
	conn_close(c, false);
}

static void frame_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	log_conn(LOG_INFO, c->id, c->peer, "a %s frame not finished within frame_timeout (%u ms): closed",
		 conn_protocol(c), c->b->cfg->frame_timeout_ms);
	conn_close(c, false);
}

/* A frame that has started (bytes the adapter left for later, or over
 * WebSocket part of a frame) must be whole within frame_timeout, counted
 * from its first bytes: a client that sends a byte now and then cannot
 * hold a connection for ever. */
static void frame_check(struct conn *c)
{
	unsigned ms = c->b->cfg->frame_timeout_ms;
	bool started = c->xprt->unfinished(c);
	if (!started && c->session && c->proto->mid_frame)
		started = c->proto->mid_frame(c->session);
	if (!started || c->input_paused || c->closing || !ms)
		evtimer_del(c->frame_ev);
	else if (!evtimer_pending(c->frame_ev, NULL))
		timer_start(c->frame_ev, ms);
}

static void conn_free(struct conn *c)
{
	auth_cancel(c->auth_req);
	free(c->auth_user);
	limits_logout(c->b->limits, c->login_user);
	free(c->login_user);
	limits_closed(c->b->limits, c->host);
	if (c->refuse_ev)
		event_free(c->refuse_ev);
	if (c->session)
		c->proto->closed(c->session);
	log_conn(LOG_DEBUG, c->id, c->peer, "closed");
	acl_denials_told(conn_acl_who(c));
	c->xprt->free(c);
	broker_conn_removed(c->b, c);
	stream_close(c);
	event_free(c->close_ev);
	if (c->handshake_ev)
		event_free(c->handshake_ev);
	if (c->frame_ev)
		event_free(c->frame_ev);
	free(c->principal);
	free(c->client_id);
	free(c->cert_user);
	free(c->listener);
	acl_who_clear(&c->who);
	free(c);
}

static void schedule_free(struct conn *c, int ms)
{
	timer_start(c->close_ev, (unsigned)ms);
}

static void close_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	if (c->lingering && c->session) {
		/* The session ends now as on any close; only the socket stays,
		 * its write side shut, its input read and dropped. */
		c->proto->closed(c->session);
		c->session = NULL;
		if (shutdown(bufferevent_getfd(c->bev), SHUT_WR) == 0) {
			stream_reading(c, true);
			schedule_free(c, CLOSE_LINGER_MS);
			return;
		}
	}
	conn_free(c);
}

/* All queued output is written: the connection goes, from the loop. After
 * a last word (`linger`) its socket first lingers (close_cb): the client
 * reads the end after the reason, and its input is dropped until it
 * closes too or CLOSE_LINGER_MS pass. Not over WebSocket, whose close
 * handshake does this, nor while the broker stops. */
static void output_done(struct conn *c, bool linger)
{
	c->flushing = false;
	c->lingering = linger && !c->xprt->close_handshake && !c->b->stopping;
	schedule_free(c, 0);
}

void conn_close(struct conn *c, bool flush)
{
	if (c->closing && !(c->flushing && !flush))
		return;
	c->closing = true;
	auth_cancel(c->auth_req); /* the answer has no one to go to */
	c->auth_req = NULL;
	free(c->auth_user);
	c->auth_user = NULL;
	if (c->refuse_ev)
		evtimer_del(c->refuse_ev);
	stream_reading(c, false);
	if (c->handshake_ev)
		evtimer_del(c->handshake_ev);
	if (c->frame_ev)
		evtimer_del(c->frame_ev);
	c->xprt->flush(c, flush, c->b->stopping);
	bool await_close = flush && !c->xprt->close_done(c);
	if (await_close)
		stream_reading(c, true); /* for the client's close frame */
	if (flush && (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0 || await_close)) {
		/* write_cb (or, over WebSocket, the client's close frame) frees
		 * once the output is empty; the timer caps the wait. */
		c->flushing = true;
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		bufferevent_enable(c->bev, EV_WRITE); /* libevent writes the rest */
		schedule_free(c, CLOSE_FLUSH_MS);
		return;
	}
	output_done(c, flush);
}

/* Frees a flushing connection once all is sent (and, over WebSocket, the
 * client has answered the close frame). */
static void flushed_check(struct conn *c)
{
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 && c->xprt->close_done(c))
		output_done(c, true);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (c->closing && c->flushing && c->xprt->close_handshake) {
		c->xprt->read(c); /* for the client's answer to our close */
		flushed_check(c);
		return;
	}
	if (c->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (c->b->draining) {
		/* a switch-over: the bytes wait (conn_drain_input) */
		stream_reading(c, false);
		evtimer_del(c->frame_ev);
		return;
	}
	size_t before = evbuffer_get_length(in);
	c->xprt->read(c);
	size_t after = evbuffer_get_length(in);
	if (before > after)
		c->counts.bytes_in += before - after;
	frame_check(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	if (c->flushing) {
		flushed_check(c);
		return;
	}
	stream_written(c);
	if (!c->closing && c->session && c->proto->drained)
		c->proto->drained(c->session);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	if ((what & BEV_EVENT_CONNECTED) && c->tls) {
		stream_tls_connected(c);
		return;
	}
	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && c->lingering) {
		c->lingering = false; /* the client has closed its side too */
		schedule_free(c, 0);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		stream_log_end(c, what);
		c->flushing = false;
		conn_close(c, false);
	}
}

struct conn *conn_accept(struct broker *b, const struct proto_ops *proto, struct tls_ctx *tls,
			 const struct ws_options *ws, int fd, const struct sockaddr *peer, int peerlen,
			 size_t max_output, unsigned long *listener_count)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return NULL;
	}
	c->b = b;
	c->id = ++b->next_conn_id;
	c->xprt = &xprt_stream; /* ws_attach puts WebSocket on top */
	c->proto = proto;
	c->max_output = max_output;
	url_format_addr(peer, c->peer, sizeof(c->peer));
	auth_peer_host(c->peer, c->host, sizeof(c->host));
	c->since_ms = clock_wall_ms();
	/* Refused before any work is spent on it (TLS, reading). */
	if (!limits_accept(b->limits, b->cfg, c->host)) {
		close(fd);
		free(c);
		return NULL;
	}
	if (stream_open(c, fd, tls) < 0) {
		limits_closed(b->limits, c->host);
		free(c);
		return NULL;
	}
	if (!(c->close_ev = evtimer_new(b->base, close_cb, c))) {
		limits_closed(b->limits, c->host);
		stream_close(c);
		free(c);
		return NULL;
	}
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	/* write_cb runs when output falls to half the cap: paused deliveries resume. */
	bufferevent_setwatermark(c->bev, EV_WRITE, max_output / 2, 0);
	broker_conn_added(b, c);
	c->listener_count = listener_count;
	++*listener_count;
	c->handshake_ev = evtimer_new(b->base, handshake_cb, c);
	c->frame_ev = evtimer_new(b->base, frame_cb, c);
	if (!c->handshake_ev || !c->frame_ev) {
		conn_close(c, false);
		return NULL;
	}
	if (b->cfg->handshake_timeout_ms)
		timer_start(c->handshake_ev, b->cfg->handshake_timeout_ms);
	/* Over WebSocket the adapter comes with the handshake's subprotocol. */
	if (ws ? ws_attach(c, ws) < 0 : !(c->session = proto->open(c))) {
		conn_close(c, false);
		return NULL;
	}
	stream_start(c);
	log_conn(LOG_DEBUG, c->id, c->peer, "opened (%s%s)", ws ? "ws" : proto->name,
		  c->tls ? ", tls" : "");
	return c;
}

void conn_shutdown_all(struct broker *b)
{
	struct conn *c;
	TAILQ_FOREACH(c, &b->conns, link) {
		if (!c->closing)
			conn_end(c, CONN_END_SHUTDOWN);
	}
}

void conn_end(struct conn *c, enum conn_end why)
{
	if (c->session && c->proto->shutdown)
		c->proto->shutdown(c->session, why);
	conn_close(c, true);
}

void conn_drain_input(struct broker *b, bool on)
{
	b->draining = on;
	struct conn *c;
	TAILQ_FOREACH(c, &b->conns, link) {
		if (c->closing || c->input_paused)
			continue;
		if (on) {
			stream_reading(c, false);
			evtimer_del(c->frame_ev);
		} else {
			conn_pause_input(c, false);
		}
	}
}

void conn_each(struct broker *b, void (*fn)(struct conn *c, void *arg), void *arg)
{
	struct conn *c;
	TAILQ_FOREACH(c, &b->conns, link)
		fn(c, arg);
}

void conn_acl_changed(struct broker *b)
{
	struct conn *c;
	TAILQ_FOREACH(c, &b->conns, link)
		if (c->session && !c->closing && c->proto->acl_changed)
			c->proto->acl_changed(c->session);
}

struct conn *conn_find(struct broker *b, unsigned long id)
{
	struct conn *c;
	TAILQ_FOREACH(c, &b->conns, link)
		if (c->id == id)
			return c;
	return NULL;
}

void conn_free_all(struct broker *b)
{
	struct conn *c;
	while ((c = TAILQ_FIRST(&b->conns)))
		conn_free(c);
	ackread_free(b);
}

static void broker_conn_added(struct broker *b, struct conn *c)
{
	TAILQ_INSERT_TAIL(&b->conns, c, link);
	b->nconns++;
}

static void broker_conn_removed(struct broker *b, struct conn *c)
{
	TAILQ_REMOVE(&b->conns, c, link);
	b->nconns--;
	for (size_t i = 0; c->proto && protocols[i] && i < PROTOCOLS_MAX; i++) {
		if (protocols[i]->ops != c->proto)
			continue;
		struct conn_counts *g = &b->conns_gone[i];
		g->msgs_in += c->counts.msgs_in;
		g->msgs_out += c->counts.msgs_out;
		g->bytes_in += c->counts.bytes_in;
		g->bytes_out += c->counts.bytes_out;
		b->conns_closed[i]++;
	}
	if (c->listener_count)
		--*c->listener_count;
}

void conn_forget_count(struct broker *b, const unsigned long *listener_count)
{
	struct conn *c;
	TAILQ_FOREACH(c, &b->conns, link)
		if (c->listener_count == listener_count)
			c->listener_count = NULL;
}
