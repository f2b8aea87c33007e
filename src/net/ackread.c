/* A subscriber's acknowledgements, read when the broker is awake anyway.
 *
 * A QoS 1 subscriber answers every delivery with a PUBACK some tens of
 * microseconds later. Read as it comes, each one wakes the loop from
 * epoll_wait: with 1,000 devices publishing a few messages a second to one
 * subscriber, half of the broker's wake-ups were for PUBACKs, and the
 * sleep and wake-up are the biggest single cost of a message on these
 * machines (bench/results/2026-12-04-clients.md). Mosquitto, slower per
 * message, finds the PUBACK already there when it next polls.
 *
 * So a connection whose input has been nothing but such acknowledgements,
 * a few at a time (the adapter says so, conn_input_acks_only), while other
 * connections keep the broker busy, gets a receive low-water mark
 * (SO_RCVLOWAT): the kernel no longer wakes the loop for a few bytes from
 * it (it still does for its end or an error, and once LOWAT bytes wait).
 * Instead it is read at the end of every READ_EVERY-th loop pass that read
 * another connection's input, and of every pass while the adapter waits
 * for its acknowledgements, having used up the deliveries the client may
 * leave unacknowledged (conn_acks_wanted), until something is read. When
 * no such pass comes for IDLE_MS, laziness gains nothing: every
 * connection is read and made eager again. Anything but acknowledgements
 * in its input makes a connection eager once read; it is read IDLE_MS
 * after its last read at the latest.
 */
#include "config.h"
#include "net/ackread.h"

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "broker.h"
#include "log.h"
#include "net/conn_internal.h"
#include "util/clock.h"

/* Read lazily at most this many connections at once: each costs a read
 * per busy pass. */
#define LAZY_MAX 16
/* Another connection's input this recent makes the loop busy enough. */
#define BUSY_MS 2
/* No busy pass for this long: every connection is read eagerly again. */
#define IDLE_MS 5
/* A lazy connection is read every READ_EVERY busy passes: one device
 * message a pass, its subscriber's PUBACKs are then read 8 at a time. */
#define READ_EVERY 8
/* Bytes that wake the loop anyway (512 MQTT PUBACKs). */
#define LOWAT 2048
/* A client that sends its acknowledgements a few at a time (libmosquitto,
 * paho: one a write) costs a wake-up each; one that sends them in bulk
 * (a pipelining client) does not, and reading it lazily only makes its
 * acknowledgements late (wharf-bench QoS 1: p50 latency 114 -> 244 us).
 * At most FEW bytes in the read that makes a connection lazy, and more
 * than BULK a pass since its last read makes it eager again. */
#define FEW 64
#define BULK 512

static const struct timeval idle_tv = { 0, IDLE_MS * 1000 };

struct ackread {
	struct event *pass_ev;   /* reads the lazy ones at the end of a pass */
	struct event *idle_ev;   /* IDLE_MS without a pass: all eager */
	struct conn *lazy[LAZY_MAX];
	unsigned n;
	/* The two connections that gave input last (different ones), and
	 * when: is another than c keeping the loop busy? */
	unsigned long recent_id[2];
	int64_t recent_ms[2];
};

/* Only queues the reads: they run later in the pass, so a->lazy does not
 * change under this loop. every: passes between reads (1: read all now);
 * slow passes do not make a read later than IDLE_MS. */
static void read_lazy(struct ackread *a, unsigned every)
{
	int64_t now = clock_mono_ms();
	for (unsigned i = 0; i < a->n; i++) {
		struct conn *c = a->lazy[i];
		if (++c->ack_passes < every && now - c->ack_read_ms < IDLE_MS && !c->ack_wanted)
			continue;
		if (!c->closing && event_pending(c->read_ev, EV_READ, NULL))
			event_active(c->read_ev, EV_READ, 1);
	}
}

static void pass_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ackread *a = arg;
	read_lazy(a, READ_EVERY);
	if (a->n)
		evtimer_add(a->idle_ev, &idle_tv);
}

static void set_lowat(struct conn *c, int bytes)
{
	setsockopt(bufferevent_getfd(c->bev), SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes));
}

static void leave(struct ackread *a, struct conn *c)
{
	for (unsigned i = 0; i < a->n; i++) {
		if (a->lazy[i] == c) {
			a->lazy[i] = a->lazy[--a->n];
			break;
		}
	}
	c->ack_lazy = false;
}

static void make_eager(struct ackread *a, struct conn *c)
{
	leave(a, c);
	set_lowat(c, 1);
	log_conn(LOG_DEBUG, c->id, c->peer, "acknowledgements read as they come again");
}

static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ackread *a = arg;
	/* Read once more, then the kernel wakes the loop for them again (and
	 * for what came meanwhile: setting the mark signals waiting input). */
	read_lazy(a, 1);
	while (a->n)
		make_eager(a, a->lazy[0]);
}

static struct ackread *ackread_get(struct broker *b)
{
	if (b->ackread)
		return b->ackread;
	struct ackread *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->pass_ev = event_new(b->base, -1, 0, pass_cb, a);
	a->idle_ev = evtimer_new(b->base, idle_cb, a);
	if (!a->pass_ev || !a->idle_ev) {
		if (a->pass_ev)
			event_free(a->pass_ev);
		free(a);
		return NULL;
	}
	b->ackread = a;
	return a;
}

void ackread_input(struct conn *c, size_t bytes)
{
	c->last_read = bytes;
	struct ackread *a = c->b->ackread;
	if (!a)
		return;
	if (c->ack_lazy) {
		unsigned passes = c->ack_passes ? c->ack_passes : 1;
		c->ack_passes = 0;
		c->ack_wanted = false;
		c->ack_read_ms = clock_mono_ms();
		if (bytes > (size_t)BULK * passes) {
			/* Acknowledgements in bulk: each read is worth its wake-up. */
			make_eager(a, c);
			return;
		}
	}
	if (!c->ack_lazy) {
		if (a->recent_id[0] != c->id) {
			a->recent_id[1] = a->recent_id[0];
			a->recent_ms[1] = a->recent_ms[0];
			a->recent_id[0] = c->id;
		}
		a->recent_ms[0] = clock_mono_ms();
	}
	if (a->n && !c->ack_lazy)
		event_active(a->pass_ev, EV_TIMEOUT, 1);
}

void ackread_acks_only(struct conn *c, bool only)
{
	if (!c->read_ev || c->closing)
		return; /* TLS: OpenSSL reads the socket */
	if (!only) {
		if (c->ack_lazy)
			make_eager(c->b->ackread, c);
		return;
	}
	if (c->ack_lazy || c->last_read > FEW)
		return;
	struct ackread *a = ackread_get(c->b);
	if (!a || a->n == LAZY_MAX)
		return;
	int other = a->recent_id[0] == c->id ? 1 : 0;
	if (!a->recent_id[other] || clock_mono_ms() - a->recent_ms[other] > BUSY_MS)
		return;
	c->ack_lazy = true;
	c->ack_wanted = false;
	c->ack_passes = 0;
	c->ack_read_ms = clock_mono_ms();
	a->lazy[a->n++] = c;
	set_lowat(c, LOWAT);
	evtimer_add(a->idle_ev, &idle_tv);
	log_conn(LOG_DEBUG, c->id, c->peer, "acknowledgements read with other input");
}

void ackread_wanted(struct conn *c)
{
	struct ackread *a = c->b->ackread;
	if (!a || !c->ack_lazy)
		return;
	c->ack_wanted = true;
	event_active(a->pass_ev, EV_TIMEOUT, 1);
}

void ackread_remove(struct conn *c)
{
	struct ackread *a = c->b->ackread;
	if (a && c->ack_lazy)
		leave(a, c);
}

void ackread_free(struct broker *b)
{
	struct ackread *a = b->ackread;
	if (!a)
		return;
	event_free(a->pass_ev);
	event_free(a->idle_ev);
	free(a);
	b->ackread = NULL;
}
