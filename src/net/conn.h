/* A client connection as protocol adapters see it: bytes in, bytes out, a
 * principal and a deferred close. Adapters never touch the socket or the
 * transport under it (TCP, TLS or WebSocket: net/xprt.h). */
#ifndef WHARF_NET_CONN_H
#define WHARF_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/auth.h"
#include "log.h"

struct evbuffer;
struct event_base;
struct broker;
struct conn;
struct acl_who;

/* What a protocol adapter implements; one table per protocol. */
/* Why the broker ends a connection itself, for proto_ops.shutdown. */
enum conn_end {
	CONN_END_SHUTDOWN, /* the broker stops */
	CONN_END_ADMIN,    /* an administrator closed it (admin API, wharfctl close) */
};

struct proto_ops {
	const char *name;
	/* A new connection: returns the session, or NULL to refuse it. */
	void *(*open)(struct conn *c);
	/* Bytes arrived: consume what forms whole frames from `in`. */
	void (*input)(void *session, struct evbuffer *in);
	/* Output drained below the low-water mark: paused deliveries may resume. */
	void (*drained)(void *session);
	/* The broker ends the connection (why): tell the client in the
	 * protocol's own way. */
	void (*shutdown)(void *session, enum conn_end why);
	/* The connection is gone: release everything and free the session. */
	void (*closed)(void *session);
	/* Optional: whether the adapter holds part of a frame although it
	 * took every byte in (AMQP hands bytes to proton as they come), for
	 * frame_timeout. Without it, bytes left in the input are the part. */
	bool (*mid_frame)(void *session);
	/* Optional: the ACLs were reloaded; the adapter ends the
	 * subscriptions they no longer allow (router_recheck) in the
	 * protocol's way. */
	void (*acl_changed)(void *session);
};

struct broker *conn_broker(const struct conn *c);
struct event_base *conn_base(const struct conn *c);
const char *conn_peer(const struct conn *c);       /* "127.0.0.1:5555" */
const char *conn_protocol(const struct conn *c);   /* "stomp"; "ws" before a WebSocket handshake */
const char *conn_principal(const struct conn *c);  /* "anonymous" until authenticated */
int conn_set_principal(struct conn *c, const char *principal);
/* The client's own name for itself (MQTT client id, STOMP client-id, AMQP
 * container-id): %c in the ACLs. -1 on out of memory. */
int conn_set_client_id(struct conn *c, const char *client_id);
/* Who the connection is, for the router's ACL checks (publish_ctx.who,
 * subscribe_options.who): principal, client id, peer, and the
 * connection's cached decisions and denial log limit. */
struct acl_who *conn_acl_who(struct conn *c);
unsigned long conn_id(const struct conn *c);
/* An audit line (util/audit.h) about c: event, c's protocol, listener,
 * address, id, client id and login mechanism, with `principal` (NULL:
 * none) and `reason` (NULL: none). Logins are audited by
 * conn_authenticate itself; adapters audit what fails before it. */
void conn_audit(struct conn *c, const char *event, const char *principal, const char *reason);
/* A log line about `c`: it carries c's id and address (src/log.h). */
#define conn_log(c, level, ...) log_conn((level), conn_id(c), conn_peer(c), __VA_ARGS__)
/* The transport the client came over: TLS (wss too), WebSocket. */
bool conn_tls(const struct conn *c);
bool conn_websocket(const struct conn *c);

/* Queues bytes to send; -1 on out of memory (the caller closes). */
int conn_write(struct conn *c, const void *data, size_t len);
/* The output buffer, for adding a body by reference. */
struct evbuffer *conn_output(struct conn *c);
/* True once queued output passes the connection's cap (max_connection_output):
 * an adapter stops taking deliveries until `drained` is called. */
bool conn_output_full(const struct conn *c);
/* The input just handed to the adapter held nothing but acknowledgements
 * of what the broker sent (`only`), or something else: the broker may
 * read such a client's next acknowledgements when it is awake for other
 * input rather than wake up for them (net/ackread.c). */
void conn_input_acks_only(struct conn *c, bool only);
/* The adapter waits for c's acknowledgements (its window is full): read
 * what c sent now rather than with a later pass. */
void conn_acks_wanted(struct conn *c);
/* Stops reading the client; resuming hands the adapter what is already
 * buffered (from the event loop). */
void conn_pause_input(struct conn *c, bool paused);
/* Called on the loop with the answer of conn_authenticate. */
typedef void (*conn_auth_fn)(void *session, enum auth_result r);
/* The adapter's handshake carries credentials (user NULL: none): asks the
 * broker's authenticator (auth/auth.h) under the listener's
 * allow_anonymous (with a certificate identity, conn_cert_identified: a
 * user given must be the certificate's and the password is not asked),
 * and calls done(session, result) later from the loop,
 * never inside this call; a refusal comes after [auth] failure_delay.
 * Meanwhile the adapter reads nothing more of the client (it pauses its
 * input or leaves it unread) and answers the handshake once told. On
 * AUTH_OK the principal is the user, or "anonymous" (no user name, or
 * authentication off). The connection owns the request: one at a time;
 * when it closes first, done is not called. The wait does not count
 * against handshake_timeout (it starts again with the answer). -1 on out
 * of memory. The answer is audited: connect or connect_failed, with the
 * mechanism (password, anonymous, certificate) and a refusal's reason. */
int conn_authenticate(struct conn *c, const char *user, const char *password, size_t len,
		      conn_auth_fn done);

/* After AUTH_LIMITED: which limit, and its value, for the client's
 * error ("max_connections_per_user (10) reached"). */
const char *conn_refusal(const struct conn *c);
/* For a handshake without credentials to check (AMQP without SASL), which
 * conn_authenticate does itself: NULL, or the max_connections_per_address
 * refusal's text (conn_refusal). */
const char *conn_address_over(struct conn *c);
/* A subscription refused past `key` = `max` (max_subscriptions_per_connection):
 * the text for the client's error, "KEY (MAX) reached", valid until the
 * next such call; logged at most every 10 s (net/limits.h). */
const char *conn_subscription_refused(struct conn *c, const char *key, unsigned max);
/* Whether the client's verified certificate is its identity (the
 * listener's cert_identity, and the client sent one): conn_authenticate
 * then takes the user from it and no password (AMQP offers EXTERNAL). */
bool conn_cert_identified(const struct conn *c);

/* The protocol's handshake is done (STOMP CONNECTED, MQTT CONNACK, AMQP
 * open): handshake_timeout no longer applies. */
void conn_handshake_done(struct conn *c);

/* Closes the connection later, from the event loop, never inside the
 * caller's stack: after flushing queued output (bounded by a deadline) if
 * `flush`, else at once. Input stops now. Safe to call more than once. */
void conn_close(struct conn *c, bool flush);
bool conn_closing(const struct conn *c);

/* What one connection carried, for the admin API and metrics: messages
 * published by the client and delivered to it, and bytes read from and
 * queued to its transport (after TLS, WebSocket framing included). */
struct conn_counts {
	unsigned long long msgs_in, msgs_out, bytes_in, bytes_out;
};
/* An adapter counts each message its client publishes (deliveries through
 * output_message are counted there). */
void conn_count_msg_in(struct conn *c);
void conn_count_msg_out(struct conn *c);
const struct conn_counts *conn_counts(const struct conn *c);
/* Wall-clock ms since the epoch when the connection was accepted. */
long long conn_since_ms(const struct conn *c);

/* ---- for the broker and listeners only --------------------------------- */
struct sockaddr;
struct tls_ctx;
struct ws_options;

/* Takes ownership of fd (closed on failure). With tls, the connection runs
 * a TLS handshake first and its principal becomes the verified client
 * certificate's subject. With ws, a WebSocket handshake follows and its
 * subprotocol picks the adapter (proto is then unused). `*listener_count`
 * counts the connection while it lives (see conn_forget_count). NULL if
 * refused. */
struct conn *conn_accept(struct broker *b, const struct proto_ops *proto, struct tls_ctx *tls,
			 const struct ws_options *ws, int fd, const struct sockaddr *peer,
			 int peerlen, size_t max_output, unsigned long *listener_count);
/* The counter given to conn_accept is going away (its listener closes):
 * the connections still counted in it stop touching it. */
void conn_forget_count(struct broker *b, const unsigned long *listener_count);
/* The listener's name, for the audit log; -1 on out of memory. */
int conn_set_listener(struct conn *c, const char *name);
/* The listener's allow_anonymous, for conn_authenticate (default false). */
void conn_set_allow_anonymous(struct conn *c, bool allow);
/* The listener's cert_identity (enum certid_kind), before the TLS
 * handshake ends: a verified client certificate then names the user. */
void conn_set_cert_identity(struct conn *c, int kind);
/* Every connection of the broker: tell them all the broker stops, or free
 * them at once (teardown only, outside any callback). */
void conn_shutdown_all(struct broker *b);
/* Ends c after telling its client why in its protocol (an MQTT 5
 * DISCONNECT, a STOMP ERROR, an AMQP close), output flushed first. */
void conn_end(struct conn *c, enum conn_end why);
/* A planned switch-over: on, no connection's input is read any more (new
 * connections' neither), while output, deliveries and confirmations go
 * on; off, reading resumes where it stopped (b->draining). */
void conn_drain_input(struct broker *b, bool on);
/* For the admin API: calls fn for each connection of b, oldest first (fn
 * may conn_close it, nothing more); the connection numbered id, or NULL. */
void conn_each(struct broker *b, void (*fn)(struct conn *c, void *arg), void *arg);
struct conn *conn_find(struct broker *b, unsigned long id);
/* The ACLs were reloaded: each open connection's adapter re-checks its
 * subscriptions (proto_ops.acl_changed). */
void conn_acl_changed(struct broker *b);
void conn_free_all(struct broker *b);

#endif
