/* The floor of the suite: a minimal MQTT relay that forwards every QoS 0
 * PUBLISH, byte for byte, from the socket it came in on to each subscribed
 * socket, and answers only what a client needs to get going (CONNACK,
 * SUBACK, PINGRESP). No topics, no sessions, no copies beyond the output
 * buffers: what it spends per message is what any broker must spend on the
 * system calls and the loop, so no broker can beat it.
 *
 *   cc -O2 -o relay bench/relay.c && ./relay    (prints "listening mqtt 127.0.0.1:PORT")
 *
 * One thread, epoll, level-triggered. A subscriber whose output passes
 * HIGH bytes stops the publishers from being read until it drains (the
 * publishers are slowed, never dropped). Every connection owns its buffers;
 * everything is freed when the connection closes. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXCONN 256
#define READ_SIZE (256 * 1024)
#define HIGH (1 << 20)

struct buf {
	uint8_t *data;
	size_t off, len, cap;
};

struct conn {
	int fd;
	bool used, open, sub, paused;
	struct buf in, out;
};

static struct conn conns[MAXCONN];
static int top; /* slots in use are below this */
static int ep;
static bool backlog; /* some subscriber is above HIGH: publishers are not read */

static int append(struct buf *b, const void *p, size_t n)
{
	if (b->off == b->len)
		b->off = b->len = 0;
	if (b->cap - b->len < n) {
		if (b->off) {
			memmove(b->data, b->data + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
		}
		size_t cap = b->cap ? b->cap : 65536;
		while (cap - b->len < n)
			cap *= 2;
		uint8_t *d = realloc(b->data, cap);
		if (!d)
			return -1;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static void watch(struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void close_conn(struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in.data);
	free(c->out.data);
	memset(c, 0, sizeof *c);
}

static void set_backlog(bool on)
{
	if (on == backlog)
		return;
	backlog = on;
	for (int i = 0; i < top; i++) {
		struct conn *c = &conns[i];
		if (c->open && !c->sub) {
			c->paused = on;
			watch(c, (on ? 0 : EPOLLIN) | (c->out.len > c->out.off ? EPOLLOUT : 0));
		}
	}
}

static void update_backlog(void)
{
	bool high = false;
	for (int i = 0; i < top && !high; i++)
		high = conns[i].open && conns[i].sub && conns[i].out.len - conns[i].out.off > HIGH;
	set_backlog(high);
}

static int flush(struct conn *c)
{
	while (c->out.off < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out.off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			break;
		return -1;
	}
	watch(c, (c->paused ? 0 : EPOLLIN) | (c->out.off < c->out.len ? EPOLLOUT : 0));
	return 0;
}

static void reply(struct conn *c, const uint8_t *p, size_t n)
{
	if (append(&c->out, p, n) < 0)
		c->open = false;
}

/* Handles the packets in c->in; PUBLISH runs go to every subscriber. */
static void handle(struct conn *c)
{
	struct buf *b = &c->in;
	size_t pos = b->off, run = pos;
	bool forwarded = false;
	while (b->len - pos >= 2) {
		uint32_t rl = 0;
		size_t i = 1;
		for (int shift = 0;; shift += 7, i++) {
			if (pos + i >= b->len || shift > 21)
				goto incomplete;
			rl |= (uint32_t)(b->data[pos + i] & 0x7f) << shift;
			if (!(b->data[pos + i] & 0x80))
				break;
		}
		size_t total = i + 1 + rl;
		if (b->len - pos < total)
			break;
		uint8_t type = b->data[pos] >> 4;
		if (type != 3 && run < pos) { /* end of a run of PUBLISH packets */
			for (int k = 0; k < top; k++)
				if (conns[k].open && conns[k].sub)
					reply(&conns[k], b->data + run, pos - run);
			forwarded = true;
		}
		const uint8_t *body = b->data + pos + i + 1;
		if (type == 1) {
			static const uint8_t connack[] = { 0x20, 0x02, 0x00, 0x00 };
			reply(c, connack, sizeof connack);
		} else if (type == 8 && rl >= 2) {
			uint8_t suback[] = { 0x90, 0x03, body[0], body[1], 0x00 };
			c->sub = true;
			reply(c, suback, sizeof suback);
		} else if (type == 12) {
			static const uint8_t pingresp[] = { 0xd0, 0x00 };
			reply(c, pingresp, sizeof pingresp);
		} else if (type == 14) {
			c->open = false;
		}
		pos += total;
		if (type != 3)
			run = pos;
	}
incomplete:
	if (run < pos) {
		for (int k = 0; k < top; k++)
			if (conns[k].open && conns[k].sub)
				reply(&conns[k], b->data + run, pos - run);
		forwarded = true;
	}
	b->off = pos;
	if (forwarded) {
		for (int k = 0; k < top; k++)
			if (conns[k].open && conns[k].sub && flush(&conns[k]) < 0)
				conns[k].open = false;
		update_backlog();
	}
}

static void on_readable(struct conn *c)
{
	uint8_t tmp[READ_SIZE];
	ssize_t n = read(c->fd, tmp, sizeof tmp);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		c->open = false;
		return;
	}
	if (n < 0)
		return;
	if (append(&c->in, tmp, (size_t)n) < 0) {
		c->open = false;
		return;
	}
	handle(c);
	if (c->open && flush(c) < 0)
		c->open = false;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 1024) < 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) < 0) {
		perror("relay");
		return 1;
	}
	fprintf(stderr, "listening mqtt 127.0.0.1:%d\n", ntohs(sa.sin_port));
	ep = epoll_create1(0);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) {
				int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
				if (fd < 0)
					continue;
				int slot = 0;
				while (slot < MAXCONN && conns[slot].used)
					slot++;
				if (slot == MAXCONN) {
					close(fd);
					continue;
				}
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
				c = &conns[slot];
				*c = (struct conn){ .fd = fd, .used = true, .open = true, .paused = backlog };
				if (slot >= top)
					top = slot + 1;
				struct epoll_event cev = { .events = backlog ? 0 : EPOLLIN, .data.ptr = c };
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
				continue;
			}
			if (!c->open)
				continue;
			if (evs[i].events & EPOLLOUT && flush(c) < 0)
				c->open = false;
			if (c->open && evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				on_readable(c);
			if (c->sub && c->open)
				update_backlog();
		}
		for (int k = 0; k < top; k++)
			if (conns[k].used && !conns[k].open)
				close_conn(&conns[k]);
	}
}
