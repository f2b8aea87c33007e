/* WebSocket transport (RFC 6455) on wslay, between a connection's socket
 * (or TLS) and its protocol adapter: it answers the upgrade handshake,
 * picks the adapter by subprotocol, and turns messages into the plain byte
 * stream the adapter reads, and the adapter's bytes into binary messages
 * (the framing itself is protocols/ws/frame.h). Frame boundaries never
 * reach a codec. */
#ifndef WHARF_NET_WS_H
#define WHARF_NET_WS_H

#include <stddef.h>

struct conn;
struct log_limit;

struct ws_options {
	size_t max_message;        /* largest message a client may send */
	/* Origin values a browser may connect from, space-separated, "*" for
	 * any; NULL: only the listener's own (protocols/ws/origin.h). Not
	 * owned: the broker's config outlives every connection. */
	const char *allowed_origins;
	struct log_limit *origin_log; /* spaces out refusal lines; the broker's */
};

/* Sets up the layer on a new connection, as its transport (net/xprt.h)
 * on top of the TCP or TLS one; the connection frees it. The adapter is
 * chosen once the handshake names a subprotocol. -1 on out of memory. */
int ws_attach(struct conn *c, const struct ws_options *o);

#endif
