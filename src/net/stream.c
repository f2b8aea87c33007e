/* The transport of plain TCP and TLS connections (net/xprt.h): the
 * adapter reads and writes the connection's bufferevent itself, which is
 * a socket or an OpenSSL one, so both are the same here. The socket-side
 * work (direct writes, TLS events) stays in net/conn.c, which owns the
 * bufferevent. */
#include "config.h"
#include "net/xprt.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "net/conn_internal.h"

static struct evbuffer *stream_output(struct conn *c)
{
	return bufferevent_get_output(c->bev);
}

static size_t stream_pending(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

static void stream_read(struct conn *c)
{
	c->proto->input(c->session, bufferevent_get_input(c->bev));
}

/* Whatever the adapter left in the input is a frame it has started. */
static bool stream_unread(const struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
}

static void stream_flush(struct conn *c, bool closing, bool going_away)
{
	/* Nothing held back: the output is the socket's. */
}

static bool stream_close_done(const struct conn *c)
{
	return true;
}

static void stream_free(struct conn *c)
{
	/* No state of its own. */
}

const struct xprt_ops xprt_stream = {
	.output = stream_output,
	.pending = stream_pending,
	.read = stream_read,
	.unread = stream_unread,
	.unfinished = stream_unread,
	.flush = stream_flush,
	.close_done = stream_close_done,
	.free = stream_free,
};
