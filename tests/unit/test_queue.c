/* Queue dispatch: round-robin, windows, credit, acks, redelivery, order. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "router/queue.h"
#include "tap.h"
#include "util/clock.h"

#define MAXD 4096

struct rec {
	int n;
	uint64_t ids[MAXD];
	struct delivery *ds[MAXD];
	uint32_t counts[MAXD];
	bool refuse;
};

static int rec_deliver(void *ctx, struct delivery *d, struct message *m)
{
	struct rec *r = ctx;
	if (r->refuse)
		return -1;
	if (r->n < MAXD) {
		r->ids[r->n] = m->id;
		r->ds[r->n] = d;
		r->counts[r->n] = delivery_count(d);
	}
	r->n++;
	return 0;
}

static const struct consumer_ops rec_ops = { .deliver = rec_deliver };

static uint64_t next_id;

static void put(struct queue *q, int n)
{
	for (int i = 0; i < n; i++) {
		struct message *m = message_new();
		m->id = ++next_id;
		queue_enqueue(q, m);
		message_unref(m);
	}
}

static void test_round_robin(void)
{
	struct queue *q = queue_new("rr", 0);
	struct consumer_options o = { .auto_ack = true };
	struct rec a = { 0 }, b = { 0 }, c = { 0 };
	struct consumer *ca = queue_consumer_add(q, &o, &rec_ops, &a);
	struct consumer *cb = queue_consumer_add(q, &o, &rec_ops, &b);
	struct consumer *cc = queue_consumer_add(q, &o, &rec_ops, &c);
	next_id = 0;
	put(q, 300);
	ok(a.n == 100 && b.n == 100 && c.n == 100, "300 messages split evenly over 3 consumers");
	bool order = true;
	for (int i = 1; i < a.n; i++)
		order &= a.ids[i] > a.ids[i - 1];
	ok(order, "each consumer sees increasing ids");
	ok(queue_depth(q) == 0 && queue_unacked(q) == 0, "auto-ack leaves nothing behind");
	queue_consumer_remove(ca);
	queue_consumer_remove(cb);
	queue_consumer_remove(cc);
	queue_free(q);
}

static void test_window_and_ack(void)
{
	struct queue *q = queue_new("w", 0);
	struct consumer_options o = { .window = 3 };
	struct rec a = { 0 };
	next_id = 0;
	put(q, 10);
	struct consumer *c = queue_consumer_add(q, &o, &rec_ops, &a);
	ok(a.n == 3, "window of 3: three delivered");
	ok(queue_depth(q) == 7 && queue_unacked(q) == 3, "7 waiting, 3 unacked");
	delivery_ack(a.ds[0], false);
	ok(a.n == 4, "an ack opens the window by one");
	delivery_ack(a.ds[3], true);
	ok(a.n == 7 && consumer_unacked(c) == 3, "a cumulative ack settles all earlier ones");
	ok(queue_stats(q)->acked == 4, "4 acked");
	struct delivery *d = consumer_find_delivery(c, a.ids[5]);
	ok(d == a.ds[5], "find delivery by message id");
	ok(consumer_find_delivery(c, 999) == NULL, "unknown id not found");
	queue_consumer_remove(c);
	ok(queue_depth(q) == 6 && queue_unacked(q) == 0, "unacked return to the queue on removal");
	struct rec b = { 0 };
	struct consumer *c2 = queue_consumer_add(q, &(struct consumer_options){ .auto_ack = true },
						 &rec_ops, &b);
	ok(b.n == 6, "the next consumer gets them all");
	bool order = true;
	for (int i = 0; i < 6; i++)
		order &= b.ids[i] == (uint64_t)(5 + i);
	ok(order, "in their original order");
	ok(b.counts[0] == 2 && b.counts[3] == 1, "redelivered ones carry a delivery count of 2");
	queue_consumer_remove(c2);
	queue_free(q);
}

static void test_nack_goes_elsewhere(void)
{
	struct queue *q = queue_new("n", 0);
	struct consumer_options o = { .window = 10 };
	struct rec a = { 0 }, b = { 0 };
	struct consumer *ca = queue_consumer_add(q, &o, &rec_ops, &a);
	struct consumer *cb = queue_consumer_add(q, &o, &rec_ops, &b);
	next_id = 0;
	put(q, 1);
	ok(a.n == 1 && b.n == 0, "first message to the first consumer");
	delivery_nack(a.ds[0], NACK_FAILED);
	ok(b.n == 1 && b.ids[0] == 1 && b.counts[0] == 2, "a NACKed message goes to the other consumer, count 2");
	delivery_nack(b.ds[0], NACK_RELEASE);
	ok(a.n == 2 && a.counts[1] == 2, "released: count unchanged, back to the first");
	delivery_nack(a.ds[1], NACK_REJECT);
	ok(queue_depth(q) == 0 && queue_unacked(q) == 0 && queue_stats(q)->rejected == 1,
	   "rejected: gone");
	queue_consumer_remove(ca);
	queue_consumer_remove(cb);
	queue_free(q);
}

/* AMQP modified with undeliverable-here: never to that consumer again,
 * and it does not hold up the messages behind it. */
static void test_nack_elsewhere(void)
{
	struct queue *q = queue_new("ne", 0);
	struct consumer_options o = { .window = 1 };
	struct rec a = { 0 }, b = { 0 };
	next_id = 0;
	put(q, 1);
	struct consumer *ca = queue_consumer_add(q, &o, &rec_ops, &a);
	ok(a.n == 1 && a.ids[0] == 1, "the only consumer gets message 1");
	delivery_nack_elsewhere(a.ds[0], NACK_FAILED);
	ok(a.n == 1 && queue_depth(q) == 1, "refused: it waits rather than coming back");
	put(q, 1);
	ok(a.n == 2 && a.ids[1] == 2, "the message behind it goes to the consumer that refused");
	delivery_ack(a.ds[1], false);
	ok(a.n == 2 && queue_depth(q) == 1, "with room again, the refused message still stays away");
	struct consumer *cb = queue_consumer_add(q, &o, &rec_ops, &b);
	ok(b.n == 1 && b.ids[0] == 1 && b.counts[0] == 2,
	   "a new consumer gets it, counted as failed once");
	delivery_nack_elsewhere(b.ds[0], NACK_RELEASE);
	ok(a.n == 2 && b.n == 1 && queue_depth(q) == 1, "refused by both: it goes to neither");
	struct rec c = { 0 };
	struct consumer *cc = queue_consumer_add(q, &o, &rec_ops, &c);
	ok(c.n == 1 && c.ids[0] == 1 && c.counts[0] == 2, "a third consumer gets it, count kept");
	delivery_nack(c.ds[0], NACK_RELEASE);
	ok(c.n == 2 && a.n == 2 && b.n == 1, "a plain release may come back to the same consumer");
	delivery_ack(c.ds[1], false);
	ok(queue_depth(q) == 0 && queue_unacked(q) == 0, "nothing left");
	queue_consumer_remove(ca);
	queue_consumer_remove(cb);
	queue_consumer_remove(cc);
	queue_free(q);
}

static void test_credit_and_pause(void)
{
	struct queue *q = queue_new("c", 0);
	struct consumer_options o = { .auto_ack = true, .credit_mode = true };
	struct rec a = { 0 };
	struct consumer *c = queue_consumer_add(q, &o, &rec_ops, &a);
	next_id = 0;
	put(q, 5);
	ok(a.n == 0, "no credit, no delivery");
	consumer_add_credit(c, 2);
	ok(a.n == 2 && consumer_credit(c) == 0, "two credits, two deliveries");
	a.refuse = true;
	consumer_add_credit(c, 10);
	ok(a.n == 2 && queue_depth(q) == 3, "a refused delivery goes back");
	a.refuse = false;
	consumer_set_paused(c, false);
	ok(a.n == 5, "unpaused: the rest arrive");
	bool order = true;
	for (int i = 0; i < 5; i++)
		order &= a.ids[i] == (uint64_t)(i + 1);
	ok(order, "in order despite the refusal");
	queue_consumer_remove(c);
	queue_free(q);
}

static int rooms;

static void room(void *arg)
{
	rooms++;
}

static void put_qos(struct queue *q, int n, uint8_t qos)
{
	for (int i = 0; i < n; i++) {
		struct message *m = message_new();
		m->id = ++next_id;
		m->qos = qos;
		queue_enqueue(q, m);
		message_unref(m);
	}
}

static void test_block_overflow(void)
{
	struct queue *q = queue_new("b", 4);
	queue_set_room_cb(q, room, NULL);
	next_id = 0;
	rooms = 0;
	put_qos(q, 3, 1);
	ok(!queue_full(q), "under the bound: not full");
	put_qos(q, 3, 1);
	ok(queue_full(q) && queue_depth(q) == 6, "confirmed messages past the bound are kept; full");
	put_qos(q, 2, 0);
	ok(queue_depth(q) == 6 && queue_stats(q)->dropped == 2, "at-most-once ones are dropped, counted");
	struct rec a = { 0 };
	struct consumer *c = queue_consumer_add(q, &(struct consumer_options){ .window = 3 }, &rec_ops, &a);
	ok(queue_full(q) && rooms == 0, "3 taken, 3 waiting: still full");
	delivery_ack(a.ds[0], false);
	ok(!queue_full(q) && rooms == 1, "drained to half: room called once");
	queue_consumer_remove(c);
	queue_free(q);
}

static void test_expiry_and_bound(void)
{
	struct queue *q = queue_new("e", 3);
	queue_set_overflow(q, QUEUE_DROP_HEAD);
	next_id = 0;
	put(q, 5);
	ok(queue_depth(q) == 3 && queue_stats(q)->dropped == 2, "bounded queue drops the oldest");
	struct message *m = message_new();
	m->id = 100;
	m->expiry_ms = clock_wall_ms() - 1;
	queue_enqueue(q, m);
	message_unref(m);
	struct rec a = { 0 };
	struct consumer *c = queue_consumer_add(q, &(struct consumer_options){ .auto_ack = true },
						&rec_ops, &a);
	ok(a.n == 2 && a.ids[0] == 4 && a.ids[1] == 5, "expired message is not delivered");
	queue_consumer_remove(c);
	queue_free(q);
}

static uint64_t browsed[8];
static uint32_t browsed_counts[8];
static size_t nbrowsed;

static void browse_cb(const struct message *m, uint32_t count, void *arg)
{
	(void)arg;
	browsed[nbrowsed] = m->id;
	browsed_counts[nbrowsed++] = count;
}

/* What the admin API reads: browse in delivery order without taking, the
 * bodies' bytes, the oldest timestamp, drops by cause. */
static void test_admin_snapshots(void)
{
	struct queue *q = queue_new("adm", 0);
	ok(queue_oldest_ms(q) == 0 && queue_bytes(q) == 0, "empty: no oldest, no bytes");
	/* The router stamps in order; each priority's head is its oldest. */
	int64_t stamps[] = { 3000, 5000, 4000 };
	uint8_t prios[] = { 4, 4, 9 };
	uint64_t first = next_id + 1;
	for (int i = 0; i < 3; i++) {
		struct message *m = message_new();
		m->id = ++next_id;
		m->timestamp_ms = stamps[i];
		m->priority = prios[i];
		uint8_t *body = malloc(10);
		memset(body, 'x', 10);
		message_take_body(m, &body, 10);
		queue_enqueue(q, m);
		message_unref(m);
	}
	ok(queue_bytes(q) == 30, "bytes: the bodies (%zu)", queue_bytes(q));
	ok(queue_oldest_ms(q) == 3000, "oldest: the oldest of the priorities' heads (%lld)",
	   (long long)queue_oldest_ms(q));
	nbrowsed = 0;
	size_t n = queue_browse(q, 2, browse_cb, NULL);
	ok(n == 2 && browsed[0] == first + 2 && browsed[1] == first && browsed_counts[0] == 0,
	   "browse: highest priority first, limit kept");
	ok(queue_depth(q) == 3, "browse takes nothing");
	queue_purge(q);
	ok(queue_depth(q) == 0 && queue_drops(q)[DROP_PURGED] == 3 && queue_stats(q)->dropped == 3,
	   "purge: counted by cause");
	nbrowsed = 0;
	ok(queue_browse(q, 5, browse_cb, NULL) == 0, "browse of an empty queue");
	queue_free(q);
}

/* A switch-over's hold: nothing new goes out, acks still come in. */
static void test_hold(void)
{
	struct queue *q = queue_new("h", 0);
	bool hold = false;
	queue_set_hold(q, &hold);
	struct consumer_options o = { .window = 2 };
	struct rec a = { 0 };
	next_id = 0;
	put(q, 5);
	struct consumer *c = queue_consumer_add(q, &o, &rec_ops, &a);
	ok(a.n == 2 && queue_unacked(q) == 2, "two out before the hold");
	hold = true;
	delivery_ack(a.ds[0], false);
	delivery_ack(a.ds[1], false);
	put(q, 1);
	ok(a.n == 2 && queue_unacked(q) == 0 && queue_depth(q) == 4,
	   "held: acks settle, nothing new is delivered");
	hold = false;
	queue_dispatch(q);
	ok(a.n == 4 && a.ids[2] == 3, "released: deliveries go on in order");
	queue_consumer_remove(c);
	queue_free(q);
}

int main(void)
{
	test_admin_snapshots();
	test_round_robin();
	test_window_and_ack();
	test_nack_goes_elsewhere();
	test_nack_elsewhere();
	test_credit_and_pause();
	test_expiry_and_bound();
	test_block_overflow();
	test_hold();
	return tap_done();
}
