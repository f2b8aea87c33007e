/* Non-blocking client connections on the libevent loop.
 *
 * Input is read into one shared buffer and parsed in place; only a partial
 * frame left at the end is copied into the connection's own buffer, so an
 * idle connection holds no buffer at all. Output is appended to a linear
 * buffer and written with one write() per flush: protocols batch everything
 * a callback produces (acks, a burst of publishes) into one system call. */
#include "config.h"
#include "wb.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK (256 * 1024)
#define MIN_ROOM (64 * 1024)

static uint8_t shared_in[READ_CHUNK];

/* ---- plain TCP ----------------------------------------------------------- */

static ssize_t tcp_read(struct wb_conn *c, void *buf, size_t len)
{
	return read(c->fd, buf, len);
}

static ssize_t tcp_write(struct wb_conn *c, const void *buf, size_t len)
{
	return send(c->fd, buf, len, MSG_NOSIGNAL);
}

const struct wb_transport wb_tcp = { .name = "tcp", .read = tcp_read, .write = tcp_write };

/* ---- buffers ------------------------------------------------------------- */

int wb_buf_room(struct wb_buf *b, size_t n)
{
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->cap - b->len >= n)
		return 0;
	if (b->off) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= n)
			return 0;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n)
		cap *= 2;
	uint8_t *d = realloc(b->data, cap);
	if (!d)
		return -1;
	b->data = d;
	b->cap = cap;
	return 0;
}

static void buf_release(struct wb_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

/* ---- the connection ------------------------------------------------------ */

static void fail(struct wb_conn *c, const char *why)
{
	if (!c->open)
		return;
	if (c->err)
		why = c->err;
	wb_conn_close(c);
	c->ops->on_close(c, why);
}

static void arm_write(struct wb_conn *c, bool on)
{
	if (on == c->write_armed)
		return;
	if (on)
		event_add(c->ev_write, NULL);
	else
		event_del(c->ev_write);
	c->write_armed = on;
}

void wb_conn_flush(struct wb_conn *c)
{
	if (!c->open || c->connecting)
		return;
	while (c->out.len > c->out.off) {
		ssize_t n = c->tp->write(c, c->out.data + c->out.off, c->out.len - c->out.off);
		if (n > 0) {
			c->out.off += (size_t)n;
			c->bytes_out += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		fail(c, n < 0 ? strerror(errno) : "write returned 0");
		return;
	}
	if (c->out.off == c->out.len) {
		c->out.off = c->out.len = 0;
		if (c->lean && c->out.data)
			buf_release(&c->out);
	}
	bool held = false; /* bytes the transport layer still holds (WebSocket frames) */
	if (c->tp->flush) {
		int r = c->tp->flush(c);
		if (r < 0) {
			fail(c, strerror(errno));
			return;
		}
		held = r == 0;
	}
	arm_write(c, c->out.len > c->out.off || c->producing || held);
}

/* TLS and WebSocket handshakes run on the connection's events until done. */
static void handshake(struct wb_conn *c)
{
	errno = 0;
	int r = c->tp->handshake(c);
	if (r < 0) {
		fail(c, errno ? strerror(errno) : "handshake failed");
		return;
	}
	if (r == 0) {
		arm_write(c, c->want_write);
		return;
	}
	c->handshaking = false;
	arm_write(c, false);
	c->ops->on_connect(c);
	wb_conn_flush(c);
}

/* Takes effect at the next wb_conn_flush(), which every caller reaches
 * (on_read and on_write flush after their callbacks). */
void wb_conn_set_producing(struct wb_conn *c, bool on)
{
	c->producing = on;
}

uint8_t *wb_conn_reserve(struct wb_conn *c, size_t n)
{
	if (wb_buf_room(&c->out, n) < 0)
		return NULL;
	return c->out.data + c->out.len;
}

void wb_conn_commit(struct wb_conn *c, size_t n)
{
	c->out.len += n;
	if (c->frame_writes)
		wb_conn_flush(c);
}

int wb_conn_append(struct wb_conn *c, const void *data, size_t n)
{
	uint8_t *p = wb_conn_reserve(c, n);
	if (!p)
		return -1;
	memcpy(p, data, n);
	wb_conn_commit(c, n);
	return 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct wb_conn *c = arg;
	if (c->handshaking) {
		handshake(c);
		return;
	}
	bool shared = c->in.len == c->in.off;
	uint8_t *dst;
	size_t room;
	if (shared) {
		c->in.off = c->in.len = 0;
		dst = shared_in;
		room = sizeof shared_in;
	} else {
		if (wb_buf_room(&c->in, MIN_ROOM) < 0) {
			fail(c, "out of memory");
			return;
		}
		dst = c->in.data + c->in.len;
		room = c->in.cap - c->in.len;
	}
	ssize_t n = c->tp->read(c, dst, room);
	if (n == 0) {
		fail(c, "connection closed by the broker");
		return;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		fail(c, strerror(errno));
		return;
	}
	c->bytes_in += (uint64_t)n;
	const uint8_t *data;
	size_t len;
	if (shared) {
		data = dst;
		len = (size_t)n;
	} else {
		c->in.len += (size_t)n;
		data = c->in.data + c->in.off;
		len = c->in.len - c->in.off;
	}
	c->busy = true;
	size_t used = c->ops->on_input(c, data, len);
	c->busy = false;
	if (!c->open) {
		buf_release(&c->in);
		return;
	}
	if (shared) {
		if (used < len) {
			if (wb_buf_room(&c->in, len - used) < 0) {
				fail(c, "out of memory");
				return;
			}
			memcpy(c->in.data + c->in.len, data + used, len - used);
			c->in.len += len - used;
		}
	} else {
		c->in.off += used;
		if (c->in.off == c->in.len) {
			c->in.off = c->in.len = 0;
			if (c->in.cap > MIN_ROOM * 4 || c->lean)
				buf_release(&c->in);
		}
	}
	wb_conn_flush(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct wb_conn *c = arg;
	if (c->connecting) {
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			fail(c, strerror(err));
			return;
		}
		c->connecting = false;
		event_add(c->ev_read, NULL);
		if (c->tp->open && c->tp->open(c) < 0) {
			fail(c, strerror(errno));
			return;
		}
		c->handshaking = c->tp->handshake != NULL;
		if (c->handshaking) {
			handshake(c);
			return;
		}
		arm_write(c, false);
		c->ops->on_connect(c);
		wb_conn_flush(c);
		return;
	}
	if (c->handshaking) {
		handshake(c);
		return;
	}
	wb_conn_flush(c);
	if (!c->open || c->out.len > c->out.off)
		return;
	if (c->producing)
		c->ops->on_writable(c);
	wb_conn_flush(c);
}

static int watch(struct wb_conn *c, struct event_base *base, int fd, const struct wb_conn_ops *ops,
		 const struct wb_transport *tp)
{
	c->ops = ops;
	c->tp = tp;
	c->fd = fd;
	c->ev_read = event_new(base, c->fd, EV_READ | EV_PERSIST, on_read, c);
	c->ev_write = event_new(base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
	if (c->ev_read && c->ev_write)
		return 0;
	if (c->ev_read)
		event_free(c->ev_read);
	if (c->ev_write)
		event_free(c->ev_write);
	c->ev_read = c->ev_write = NULL;
	errno = ENOMEM;
	return -1;
}

int wb_conn_open(struct wb_conn *c, struct event_base *base, const struct sockaddr_in *sa,
		 const struct wb_conn_ops *ops, const struct wb_transport *tp)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (watch(c, base, fd, ops, tp) < 0 ||
	    (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0 && errno != EINPROGRESS)) {
		int e = errno;
		wb_conn_close(c); /* closes fd */
		errno = e;
		return -1;
	}
	c->open = true;
	c->connecting = true;
	event_add(c->ev_write, NULL);
	c->write_armed = true;
	return 0;
}

int wb_conn_adopt(struct wb_conn *c, struct event_base *base, int fd,
		  const struct wb_conn_ops *ops, const struct wb_transport *tp)
{
	if (fd < 0 || watch(c, base, fd, ops, tp) < 0)
		return -1;
	c->open = true;
	event_add(c->ev_read, NULL);
	c->ops->on_connect(c);
	wb_conn_flush(c);
	return 0;
}

void wb_conn_close(struct wb_conn *c)
{
	if (c->ev_read)
		event_free(c->ev_read);
	if (c->ev_write)
		event_free(c->ev_write);
	c->ev_read = c->ev_write = NULL;
	if (c->tp && c->tp->close && c->fd >= 0)
		c->tp->close(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->open = c->write_armed = c->handshaking = false;
	if (!c->busy) /* else on_read releases it once the parser is done */
		buf_release(&c->in);
	buf_release(&c->out);
}
