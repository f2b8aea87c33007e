/* The socket side of the TCP and TLS transport (net/stream.c), for
 * net/conn.c: the connection's bufferevent, over the socket or OpenSSL,
 * with direct writes on plain TCP. What the layers above ask of it is its
 * struct xprt_ops (net/xprt.h). Event loop thread only. */
#ifndef WHARF_NET_STREAM_H
#define WHARF_NET_STREAM_H

#include <stdbool.h>

struct conn;
struct tls_ctx;

/* Makes c->bev on fd, a TLS one (server side, handshake first) with tls,
 * and for plain TCP c->flush_ev and c->read_ev. Takes fd: the bufferevent closes it, or
 * it is closed here on failure. -1 on out of memory, with nothing left to
 * free. */
int stream_open(struct conn *c, int fd, struct tls_ctx *tls);
/* Starts reading, and writing where libevent writes (TLS). */
void stream_start(struct conn *c);
/* Reads the socket or stops (pausing input, closing): what
 * bufferevent_enable/disable(EV_READ) do for a bufferevent that reads. */
void stream_reading(struct conn *c, bool on);
/* libevent's write callback ran: plain TCP writes directly again once
 * its output is empty. */
void stream_written(struct conn *c);
/* The TLS handshake is done: the client certificate's subject, if any,
 * becomes the principal. */
void stream_tls_connected(struct conn *c);
/* Logs why the socket ended (BEV_EVENT_EOF or _ERROR in `what`), with the
 * TLS error if there is one. */
void stream_log_end(struct conn *c, short what);
/* Frees the bufferevent (closing the socket), c->flush_ev and c->read_ev. */
void stream_close(struct conn *c);

#endif
