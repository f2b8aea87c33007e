/* The transport of plain TCP and TLS connections: the connection's
 * bufferevent, over the socket or OpenSSL (net/stream.h), and its struct
 * xprt_ops (net/xprt.h), by which the adapter reads and writes that
 * bufferevent itself, whichever it is. */
#include "config.h"
#include "net/stream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "auth/certid.h"
#include "broker.h"
#include "log.h"
#include "net/ackread.h"
#include "net/conn_internal.h"
#include "net/tls.h"
#include "net/xprt.h"

/* ---- the socket side, for net/conn.c ------------------------------------ */

/* Plain TCP output. A socket bufferevent with EV_WRITE enabled arms EPOLLOUT
 * (epoll_ctl) as soon as output is added, writes it on the loop's next pass
 * and disarms it (epoll_ctl) once empty: two system calls and one more pass
 * per burst, which at a few thousand messages a second per connection is
 * most of what the broker spends outside the kernel's TCP. Instead, EV_WRITE
 * stays disabled while the socket keeps up: adding output activates
 * flush_ev, which runs after the events already active in this pass (so the
 * output of a whole read is written at once) and writes directly. Only what
 * the socket does not take is left to libevent (EV_WRITE enabled until
 * stream_written sees the output empty), and so are errors. */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	c->flush_queued = false;
	if (c->closing || (bufferevent_get_enabled(c->bev) & EV_WRITE))
		return;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (!evbuffer_get_length(out))
		return;
	/* A socket bufferevent keeps its output's start frozen but for its own
	 * writes; this is one of them. */
	evbuffer_unfreeze(out, 1);
	int n = evbuffer_write(out, bufferevent_getfd(c->bev));
	evbuffer_freeze(out, 1);
	if (n < 0 || evbuffer_get_length(out)) {
		/* EAGAIN, a short write or an error: libevent's write path
		 * goes on, and reports errors through conn.c's event callback. */
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	/* All written: what conn.c's write callback does after libevent's. */
	if (c->session && c->proto->drained)
		c->proto->drained(c->session);
}

static void output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;
	c->counts.bytes_out += info->n_added;
	if (!c->flush_ev || !info->n_added || c->flush_queued || c->closing ||
	    (bufferevent_get_enabled(c->bev) & EV_WRITE))
		return;
	c->flush_queued = true;
	event_active(c->flush_ev, EV_WRITE, 1);
}

/* Plain TCP input. A socket bufferevent asks the kernel how much waits
 * (an ioctl, FIONREAD) before each read and reads at most 4 KiB (libevent
 * 2.1): two system calls per wake-up, and a wake-up per 4 KiB of a burst.
 * Instead the socket is read here, up to READ_MAX at once, straight into
 * the bufferevent's input, and conn.c's callbacks run as libevent would
 * run them: the read callback after data, the event callback at the end
 * of the stream or on an error. 16 KiB: at 64 KiB a pipelining publisher
 * ran ahead of its queue's consumers (STOMP 1 KiB through a queue: p50
 * latency 8 -> 290 ms, peak RSS 7 -> 47 MiB), at 8 KiB nothing gained on
 * 16 (bench/clients.py). */
#define READ_MAX (16 * 1024)

static void read_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec v[2];
	/* A socket bufferevent keeps its input's end frozen but for its own
	 * reads; this is one of them. */
	evbuffer_unfreeze(in, 0);
	int nv = evbuffer_reserve_space(in, READ_MAX, v, 2);
	ssize_t n = -1;
	if (nv > 0) {
		struct iovec iov[2];
		for (int i = 0; i < nv; i++)
			iov[i] = (struct iovec){ v[i].iov_base, v[i].iov_len };
		n = readv(fd, iov, nv);
	} else {
		errno = ENOMEM;
	}
	if (n > 0) {
		size_t left = (size_t)n;
		int used = 0;
		for (; used < nv && left; used++) {
			if (v[used].iov_len > left)
				v[used].iov_len = left;
			left -= v[used].iov_len;
		}
		evbuffer_commit_space(in, v, used);
	}
	evbuffer_freeze(in, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		event_del(c->read_ev);
		bufferevent_trigger_event(c->bev, BEV_EVENT_READING | (n ? BEV_EVENT_ERROR : BEV_EVENT_EOF),
					  0);
		return;
	}
	ackread_input(c, (size_t)n);
	bufferevent_trigger(c->bev, EV_READ, 0);
}

int stream_open(struct conn *c, int fd, struct tls_ctx *tls)
{
	struct event_base *base = c->b->base;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (tls) {
		SSL *ssl = tls_ctx_ssl_new(tls);
		if (ssl) {
			c->tls = true;
			c->bev = bufferevent_openssl_socket_new(base, fd, ssl,
								BUFFEREVENT_SSL_ACCEPTING,
								BEV_OPT_CLOSE_ON_FREE);
			if (c->bev)
				bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
			else
				SSL_free(ssl);
		}
	} else {
		c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!c->tls) {
		c->flush_ev = event_new(base, -1, 0, flush_cb, c);
		c->read_ev = event_new(base, fd, EV_READ | EV_PERSIST, read_ev_cb, c);
		if (!c->read_ev && c->flush_ev) {
			event_free(c->flush_ev);
			c->flush_ev = NULL;
		}
	}
	if (c->bev && c->flush_ev) {
		/* A new bufferevent has EV_WRITE enabled: flush_cb writes instead. */
		bufferevent_disable(c->bev, EV_WRITE);
		if (!evbuffer_add_cb(bufferevent_get_output(c->bev), output_cb, c)) {
			event_free(c->flush_ev);
			c->flush_ev = NULL;
		}
	}
	/* TLS: output_cb only counts the bytes (net/conn.h, conn_counts). */
	if (c->bev && c->tls)
		evbuffer_add_cb(bufferevent_get_output(c->bev), output_cb, c);
	if (!c->bev || (!c->tls && !c->flush_ev)) {
		if (c->bev)
			bufferevent_free(c->bev);
		else
			close(fd);
		if (c->flush_ev)
			event_free(c->flush_ev);
		if (c->read_ev)
			event_free(c->read_ev);
		c->bev = NULL;
		c->flush_ev = c->read_ev = NULL;
		return -1;
	}
	return 0;
}

void stream_start(struct conn *c)
{
	if (c->tls)
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	stream_reading(c, true);
}

void stream_reading(struct conn *c, bool on)
{
	if (!c->read_ev) {
		if (on)
			bufferevent_enable(c->bev, EV_READ);
		else
			bufferevent_disable(c->bev, EV_READ);
	} else if (on) {
		event_add(c->read_ev, NULL);
	} else {
		event_del(c->read_ev);
	}
}

void stream_written(struct conn *c)
{
	/* Plain TCP: once libevent has written a backlog out, writes are
	 * direct again (flush_cb), with no EPOLLOUT armed. */
	if (c->flush_ev && !c->closing && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		bufferevent_disable(c->bev, EV_WRITE);
}

void stream_tls_connected(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	char *subject = tls_peer_subject(ssl);
	log_conn(LOG_DEBUG, c->id, c->peer, "TLS %s established%s%s", SSL_get_version(ssl),
		  subject ? ", client " : "", subject ? subject : "");
	if (subject) {
		free(c->principal);
		c->principal = subject;
	}
	X509 *cert = c->cert_kind ? SSL_get1_peer_certificate(ssl) : NULL;
	if (cert) {
		c->cert_seen = true;
		c->cert_user = certid_name(cert, c->cert_kind);
		X509_free(cert);
	}
}

void stream_log_end(struct conn *c, short what)
{
	unsigned long tls_err = c->tls ? bufferevent_get_openssl_error(c->bev) : 0;
	char buf[256];
	if (tls_err)
		log_conn(LOG_INFO, c->id, c->peer, "TLS error: %s", tls_last_error(tls_err, buf, sizeof(buf)));
	else
		log_conn(LOG_DEBUG, c->id, c->peer, "%s", (what & BEV_EVENT_EOF) ? "peer closed" : "socket error");
	while (c->tls && bufferevent_get_openssl_error(c->bev))
		; /* the rest of the error queue says nothing more */
}

void stream_close(struct conn *c)
{
	ackread_remove(c);
	if (c->read_ev)
		event_free(c->read_ev); /* before the socket it watches is closed */
	bufferevent_free(c->bev);
	if (c->flush_ev)
		event_free(c->flush_ev);
}

/* ---- the transport, for the layers above -------------------------------- */


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
