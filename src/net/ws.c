#include "config.h"
#include "net/ws.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"
#include "net/conn_internal.h"
#include "net/protocol.h"
#include "net/xprt.h"
#include "protocols/ws/frame.h"
#include "protocols/ws/handshake.h"
#include "protocols/ws/origin.h"
#include "util/loglimit.h"

/* The most a client may send before its request is complete. */
#define WS_MAX_REQUEST 8192
/* A page may retry in a loop: one line about refused origins at most this
 * often. */
#define ORIGIN_LOG_EVERY_MS 10000

struct ws {
	struct conn *c;
	struct ws_framer *framer;     /* NULL until the handshake is done */
	struct evbuffer *in;          /* decoded message bytes, for the adapter */
	struct evbuffer *out;         /* what the adapter wrote, not framed yet */
	struct event *flush_ev;       /* frames ws->out later in the loop's pass */
	struct ws_options opts;
};

static void data_cb(void *arg, const uint8_t *data, size_t len)
{
	struct ws *ws = arg;
	evbuffer_add(ws->in, data, len);
}

static int send_cb(void *arg, const uint8_t *data, size_t len)
{
	struct ws *ws = arg;
	return bufferevent_write(ws->c->bev, data, len) < 0 ? -1 : 0;
}

/* Feeds the framer what the socket holds, chunk by chunk without copying,
 * leaving in place what it does not take. -1 when the framing broke. */
static int feed(struct ws *ws)
{
	struct evbuffer *raw = bufferevent_get_input(ws->c->bev);
	size_t len;
	while ((len = evbuffer_get_contiguous_space(raw)) > 0) {
		const uint8_t *p = evbuffer_pullup(raw, (ev_ssize_t)len);
		size_t used = 0;
		if (ws_framer_recv(ws->framer, p, len, &used) < 0)
			return -1;
		evbuffer_drain(raw, used);
		if (used < len)
			break;
	}
	return 0;
}

static void ws_flush(struct conn *c, bool closing, bool going_away)
{
	struct ws *ws = c->xprt_state;
	if (!ws->framer)
		return;
	size_t len = evbuffer_get_length(ws->out);
	const uint8_t *data = len ? evbuffer_pullup(ws->out, -1) : NULL;
	if (ws_framer_send(ws->framer, data, len) < 0)
		log_info("ws %s: cannot queue a message", c->peer);
	evbuffer_drain(ws->out, len);
	if (closing)
		ws_framer_close(ws->framer, going_away ? 1001 : 1000);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	ws_flush(arg, false, false);
}

/* Every write of one loop pass goes out as one message: flush_cb runs after
 * the events already active. Not an evbuffer deferred callback: one pending
 * when the connection is freed holds the buffer and runs on nothing (or,
 * if the loop ends first, leaks), and libevent cannot cancel it. */
static void out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct ws *ws = arg;
	if (info->n_added)
		event_active(ws->flush_ev, 0, 0);
}

static bool ws_unfinished(const struct conn *c)
{
	const struct ws *ws = c->xprt_state;
	return evbuffer_get_length(ws->in) || (ws->framer && ws_framer_in_frame(ws->framer));
}

/* Answers status and closes, without a log line. */
static void http_refuse(struct conn *c, int status, const char *why)
{
	const char *text = status == 400 ? "Bad Request" : status == 403 ? "Forbidden"
			 : status == 405 ? "Method Not Allowed" : status == 426 ? "Upgrade Required"
			 : status == 431 ? "Request Header Fields Too Large" : "Error";
	char resp[512];
	int n = snprintf(resp, sizeof(resp),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			 "%sConnection: close\r\n\r\n%s\n",
			 status, text, strlen(why) + 1,
			 status == 426 ? "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" : "", why);
	bufferevent_write(c->bev, resp, n > 0 && (size_t)n < sizeof(resp) ? (size_t)n : 0);
	conn_close(c, true);
}

static void http_error(struct conn *c, int status, const char *why)
{
	log_info("ws %s: handshake refused: %d %s", c->peer, status, why);
	http_refuse(c, status, why);
}

/* Requests without Origin come from programs, not browsers (MQTT.js in
 * Node, paho-mqtt send their own or none): a page in a browser cannot
 * leave it out, and only pages borrow a user's network position. */
static bool origin_allowed(const struct ws *ws, const struct ws_request *req)
{
	const char *list = ws->opts.allowed_origins;
	if (!req->has_origin)
		return true;
	return list ? ws_origin_listed(list, req->origin) : ws_same_origin(req->origin, req->host);
}

/* Answers the upgrade request; true once the adapter is attached. */
static bool handshake(struct conn *c)
{
	struct ws *ws = c->xprt_state;
	struct evbuffer *raw = bufferevent_get_input(c->bev);
	size_t len = evbuffer_get_length(raw), used = 0;
	size_t look = len < WS_MAX_REQUEST ? len : WS_MAX_REQUEST;
	const char *data = (const char *)evbuffer_pullup(raw, (ev_ssize_t)look);
	struct ws_request req;
	int status = 0;
	const char *why = NULL;
	enum ws_hs_status st = ws_handshake_parse(data, look, WS_MAX_REQUEST, &req, &used, &status, &why);
	if (st == WS_HS_NEED_MORE)
		return false;
	if (st == WS_HS_ERROR) {
		http_error(c, status, why);
		return false;
	}
	evbuffer_drain(raw, used);
	if (!origin_allowed(ws, &req)) {
		unsigned long held;
		if (log_limit_pass(ws->opts.origin_log, ORIGIN_LOG_EVERY_MS, &held))
			log_warn("ws %s: origin %s not allowed (host %s): HTTP 403 (%lu more refused since the last such line)",
				 c->peer, req.origin, req.host, held);
		http_refuse(c, 403, "origin not allowed");
		return false;
	}
	/* The client's order decides among the subprotocols of every
	 * protocol in the registry. */
	const char *subs[PROTOCOL_SUBPROTOCOLS_MAX + 1];
	protocol_subprotocols(subs);
	const char *sub = ws_pick_protocol(req.protocols, subs);
	if (!sub) {
		char offer[256], reason[300];
		protocol_subprotocols_text(offer, sizeof(offer));
		snprintf(reason, sizeof(reason), "no supported subprotocol: offer %s", offer);
		http_error(c, 400, reason);
		return false;
	}
	const struct protocol *proto = protocol_by_subprotocol(sub);
	char accept[29];
	ws_accept_value(req.key, accept);
	char resp[256];
	int n = snprintf(resp, sizeof(resp),
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
			 "Sec-WebSocket-Protocol: %s\r\n\r\n",
			 accept, sub);
	struct ws_framer_config fc = {
		.max_message = ws->opts.max_message,
		.text_refused = proto->ws_text_refused,
		.on_data = data_cb,
		.on_send = send_cb,
		.arg = ws,
	};
	ws->framer = ws_framer_new(&fc);
	if (!ws->framer) {
		conn_close(c, false);
		return false;
	}
	bufferevent_write(c->bev, resp, (size_t)n);
	c->proto = proto->ops;
	c->session = c->proto->open(c);
	if (!c->session) {
		conn_close(c, false);
		return false;
	}
	log_conn(LOG_DEBUG, c->id, c->peer, "WebSocket open, subprotocol %s", sub);
	return true;
}

static bool ws_close_done(const struct conn *c)
{
	const struct ws *ws = c->xprt_state;
	return !ws->framer || ws_framer_close_received(ws->framer) ||
	       !ws_framer_reading(ws->framer);
}

static void ws_read(struct conn *c)
{
	struct ws *ws = c->xprt_state;
	if (c->closing) {
		/* Only the client's answer to our close frame matters now. */
		if (ws->framer && feed(ws) == 0)
			ws_framer_send(ws->framer, NULL, 0);
		evbuffer_drain(ws->in, evbuffer_get_length(ws->in));
		return;
	}
	if (!ws->framer && !handshake(c))
		return;
	if (feed(ws) < 0) {
		/* A frame header no client may send: the framer's close frame
		 * (1002) goes out before the socket closes. */
		conn_close(c, true);
		return;
	}
	if (evbuffer_get_length(ws->in) && !c->closing)
		c->proto->input(c->session, ws->in);
	ws_flush(c, false, false);
	if (!ws_framer_reading(ws->framer) && !c->closing) {
		/* The client closed, or broke the framing (the framer queued
		 * the close frame with its code). */
		log_conn(LOG_DEBUG, c->id, c->peer, "WebSocket closed (code %u)", ws_framer_close_code(ws->framer));
		conn_close(c, true);
	}
}

static void ws_free(struct conn *c)
{
	struct ws *ws = c->xprt_state;
	ws_framer_free(ws->framer);
	evbuffer_free(ws->in);
	event_free(ws->flush_ev); /* a flush still pending in this pass goes too */
	evbuffer_free(ws->out);
	free(ws);
	c->xprt_state = NULL;
}

static struct evbuffer *ws_output(struct conn *c)
{
	struct ws *ws = c->xprt_state;
	return ws->out;
}

/* What the socket has not taken, and what is not framed yet. */
static size_t ws_pending(const struct conn *c)
{
	const struct ws *ws = c->xprt_state;
	return xprt_stream.pending(c) + evbuffer_get_length(ws->out);
}

/* Socket bytes not decoded yet, or decoded bytes the adapter left. */
static bool ws_unread(const struct conn *c)
{
	const struct ws *ws = c->xprt_state;
	return xprt_stream.unread(c) || evbuffer_get_length(ws->in) > 0;
}

/* On the TCP or TLS bufferevent: the stream transport's socket side, with
 * messages framed on it. */
static const struct xprt_ops xprt_ws = {
	.output = ws_output,
	.pending = ws_pending,
	.read = ws_read,
	.unread = ws_unread,
	.unfinished = ws_unfinished,
	.flush = ws_flush,
	.close_done = ws_close_done,
	.free = ws_free,
	.close_handshake = true,
};

int ws_attach(struct conn *c, const struct ws_options *o)
{
	struct ws *ws = calloc(1, sizeof(*ws));
	if (!ws)
		return -1;
	ws->c = c;
	ws->opts = *o;
	ws->in = evbuffer_new();
	ws->out = evbuffer_new();
	ws->flush_ev = event_new(c->b->base, -1, 0, flush_cb, c);
	if (!ws->in || !ws->out || !ws->flush_ev || !evbuffer_add_cb(ws->out, out_cb, ws)) {
		if (ws->in)
			evbuffer_free(ws->in);
		if (ws->out)
			evbuffer_free(ws->out);
		if (ws->flush_ev)
			event_free(ws->flush_ev);
		free(ws);
		return -1;
	}
	c->xprt = &xprt_ws;
	c->xprt_state = ws;
	return 0;
}
