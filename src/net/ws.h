/* WebSocket transport (RFC 6455) on wslay, between a connection's socket
 * (or TLS) and its protocol adapter: it answers the upgrade handshake,
 * picks the adapter by subprotocol, and turns messages into the plain byte
 * stream the adapter reads, and the adapter's bytes into binary messages
 * (the framing itself is protocols/ws/frame.h). Frame boundaries never
 * reach a codec. */
#ifndef WHARF_NET_WS_H
#define WHARF_NET_WS_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct evbuffer;

struct ws_options {
	size_t max_message;        /* largest message a client may send */
	const char *allowed_origins; /* space-separated; NULL or "" allows any */
};

/* Sets up the layer on a new connection: the adapter is chosen once the
 * handshake names a subprotocol. -1 on out of memory. */
int ws_attach(struct conn *c, const struct ws_options *o);
void ws_free(struct conn *c);
/* Bytes arrived on the socket. */
void ws_read(struct conn *c);
/* Where the adapter writes: framed into messages from the event loop. */
struct evbuffer *ws_output(struct conn *c);
size_t ws_pending(const struct conn *c);
/* Decoded bytes the adapter has not consumed (it paused its input). */
size_t ws_unread(const struct conn *c);
/* True while a frame has started and not ended: part of a WebSocket frame,
 * or of the adapter's own frame in the decoded bytes. */
bool ws_unfinished(const struct conn *c);
/* Frames what the adapter wrote, now; and, if `closing`, queues a close
 * frame (code 1000, or 1001 when the broker stops) after it. */
void ws_flush(struct conn *c, bool closing, bool going_away);
/* True once nothing more is expected from the client: it answered our
 * close frame, broke the framing, or never finished the handshake. */
bool ws_close_done(const struct conn *c);

#endif
