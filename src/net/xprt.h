/* The transport under a connection (HAProxy's xprt, Redis's connection
 * type): what net/conn.c asks of the layers between the socket and the
 * adapter without knowing which they are. Plain TCP and TLS are one
 * implementation (net/stream.c: the connection's bufferevent, over the
 * socket or OpenSSL); WebSocket (net/ws.c) sits on that bufferevent.
 * Every op runs on the event loop's thread; none frees the connection. */
#ifndef WHARF_NET_XPRT_H
#define WHARF_NET_XPRT_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct evbuffer;

struct xprt_ops {
	/* Where the adapter writes (conn_output). */
	struct evbuffer *(*output)(struct conn *c);
	/* Bytes queued and not yet taken by the socket: what the output cap
	 * (max_connection_output) counts. */
	size_t (*pending)(const struct conn *c);
	/* Bytes arrived on the socket: hands the adapter what they carry.
	 * Called while closing only with close_handshake, for the client's
	 * answer to the transport's close. */
	void (*read)(struct conn *c);
	/* True when input waits that the adapter has not seen: resuming a
	 * paused connection reads it again. */
	bool (*unread)(const struct conn *c);
	/* True while a frame has started and not ended (frame_timeout). */
	bool (*unfinished)(const struct conn *c);
	/* Sends on what the transport holds back, now; and, if `closing`,
	 * starts its own close after it (`going_away`: the broker stops). */
	void (*flush)(struct conn *c, bool closing, bool going_away);
	/* True once the client owes nothing more for the close. */
	bool (*close_done)(const struct conn *c);
	/* Frees the transport's state (c->xprt_state); the bufferevent is
	 * the connection's, freed by it. */
	void (*free)(struct conn *c);
	/* The transport closes with a handshake of its own (WebSocket): a
	 * closing connection reads on for the client's answer, and does not
	 * linger after a last word. */
	bool close_handshake;
};

/* Plain TCP and TLS: the adapter reads and writes the bufferevent. */
extern const struct xprt_ops xprt_stream;

#endif
