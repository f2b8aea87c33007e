/* Queue policies: priorities, message groups, TTL and retention, overflow,
 * dead-lettering; how [queue PATTERN] rules combine; the router's side
 * (reject-publish refusals, dead-letter queues). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "router/group.h"
#include "router/policy.h"
#include "router/queue.h"
#include "router/router.h"
#include "tap.h"
#include "util/clock.h"

#define MAXD 256

struct rec {
	int n;
	uint64_t ids[MAXD];
	struct delivery *ds[MAXD];
};

static int rec_deliver(void *ctx, struct delivery *d, struct message *m)
{
	struct rec *r = ctx;
	if (r->n < MAXD) {
		r->ids[r->n] = m->id;
		r->ds[r->n] = d;
	}
	r->n++;
	return 0;
}

static const struct consumer_ops rec_ops = { .deliver = rec_deliver };

static struct message *msg(uint64_t id, uint8_t priority, const char *group)
{
	struct message *m = message_new();
	m->id = id;
	m->priority = priority;
	m->timestamp_ms = clock_wall_ms();
	if (group)
		message_add_prop(m, MESSAGE_GROUP_PROP, group, strlen(group));
	return m;
}

static void put(struct queue *q, struct message *m)
{
	queue_enqueue(q, m);
	message_unref(m);
}

static bool ids_are(const struct rec *r, const uint64_t *want, int n)
{
	if (r->n != n)
		return false;
	for (int i = 0; i < n; i++)
		if (r->ids[i] != want[i])
			return false;
	return true;
}

static void test_priorities(void)
{
	struct queue *q = queue_new("p", 0);
	static const uint8_t prios[] = { 1, 5, 9, 5, 1, 0 };
	for (int i = 0; i < 6; i++)
		put(q, msg((uint64_t)i + 1, prios[i], NULL));
	struct rec a = { 0 };
	struct consumer *c = queue_consumer_add(q, &(struct consumer_options){ .window = 6 },
						&rec_ops, &a);
	static const uint64_t want[] = { 3, 2, 4, 1, 5, 6 };
	ok(ids_are(&a, want, 6), "highest priority first, FIFO within a priority");
	/* 2 (priority 5) failed: it goes back before 4, behind nothing of 9. */
	delivery_nack(a.ds[1], NACK_FAILED);
	put(q, msg(7, 5, NULL));
	delivery_nack(a.ds[0], NACK_FAILED);
	ok(a.n == 8 && a.ids[6] == 2 && a.ids[7] == 3, "redelivered ones go back to their place");
	queue_consumer_remove(c);
	queue_free(q);

	q = queue_new("fifo", 0);
	struct queue_limits l = { .priorities = false };
	queue_set_limits(q, &l);
	for (int i = 0; i < 6; i++)
		put(q, msg((uint64_t)i + 1, prios[i], NULL));
	struct rec b = { 0 };
	c = queue_consumer_add(q, &(struct consumer_options){ .auto_ack = true }, &rec_ops, &b);
	static const uint64_t fifo[] = { 1, 2, 3, 4, 5, 6 };
	ok(ids_are(&b, fifo, 6), "priorities off: plain FIFO");
	queue_consumer_remove(c);
	queue_free(q);
}

static void test_groups(void)
{
	struct queue *q = queue_new("g", 0);
	struct rec a = { 0 }, b = { 0 };
	struct consumer_options o = { .window = 100 };
	struct consumer *ca = queue_consumer_add(q, &o, &rec_ops, &a);
	struct consumer *cb = queue_consumer_add(q, &o, &rec_ops, &b);
	/* x, y, x, y, ...: round-robin alone would give each consumer both. */
	for (int i = 0; i < 20; i++)
		put(q, msg((uint64_t)i + 1, 4, i % 2 ? "y" : "x"));
	put(q, msg(21, 4, NULL));
	put(q, msg(22, 4, NULL));
	bool a_x = true, b_y = true;
	for (int i = 0; i < a.n; i++)
		a_x &= a.ids[i] > 20 || a.ids[i] % 2 == 1;
	for (int i = 0; i < b.n; i++)
		b_y &= b.ids[i] > 20 || b.ids[i] % 2 == 0;
	ok(a.n == 11 && b.n == 11 && a_x && b_y,
	   "each group pinned to one consumer; ungrouped ones still round-robin");

	/* a goes: its unacked x messages, and the pin, move to b, in order. */
	queue_consumer_remove(ca);
	bool order = b.n == 22; /* its 10 x and one ungrouped come back */
	for (int i = 11, want = 1; order && i < b.n; i++)
		if (b.ids[i] <= 20) {
			order = b.ids[i] == (uint64_t)want;
			want += 2;
		}
	ok(order, "the pin moves with the first consumer's going; x comes again in order");
	struct rec c2 = { 0 };
	struct consumer *cc = queue_consumer_add(q, &o, &rec_ops, &c2);
	put(q, msg(23, 4, "x"));
	ok(b.n == 23 && b.ids[22] == 23 && c2.n == 0, "a new consumer does not take a pinned group");
	queue_consumer_remove(cb);
	queue_consumer_remove(cc);
	queue_free(q);
}

static void test_group_waits_others_go(void)
{
	struct queue *q = queue_new("gw", 0);
	struct rec a = { 0 }, b = { 0 };
	struct consumer *ca = queue_consumer_add(q, &(struct consumer_options){ .window = 1 },
						 &rec_ops, &a);
	put(q, msg(1, 4, "x")); /* a takes x and is full */
	struct consumer *cb = queue_consumer_add(q, &(struct consumer_options){ .window = 10 },
						 &rec_ops, &b);
	put(q, msg(2, 4, "x"));
	put(q, msg(3, 4, "y"));
	put(q, msg(4, 4, NULL));
	ok(a.n == 1 && b.n == 2 && b.ids[0] == 3 && b.ids[1] == 4,
	   "x waits for its busy consumer; the messages behind it go to another");
	delivery_ack(a.ds[0], false);
	ok(a.n == 2 && a.ids[1] == 2, "x goes to its consumer once it has room");
	queue_consumer_remove(ca);
	queue_consumer_remove(cb);
	queue_free(q);
}

static void test_groups_bounded(void)
{
	struct groups *gs = groups_new();
	int owner;
	char name[32];
	for (int i = 0; i < GROUPS_MAX_IDLE + 50; i++) {
		snprintf(name, sizeof(name), "g%d", i);
		struct group *g = groups_ref(gs, name);
		g->owner = &owner;
		groups_unref(gs, g);
	}
	ok(groups_count(gs) == GROUPS_MAX_IDLE, "idle pins forgotten past the bound");
	groups_unpin(gs, &owner);
	ok(groups_count(gs) == 0, "a consumer's going forgets its idle pins");
	groups_free(gs);
}

static int deaths[3];
static uint64_t dead_ids[16];
static int ndead;

static int dead_cb(void *arg, struct queue *q, struct message *m, enum queue_death why)
{
	deaths[why]++;
	if (ndead < 16)
		dead_ids[ndead++] = m->id;
	return 0;
}

static void test_expiry(void)
{
	int64_t now = clock_wall_ms();
	struct queue *q = queue_new("t", 0);
	struct queue_limits l = { .ttl_ms = 1000, .retention_ms = 60000, .priorities = true };
	queue_set_limits(q, &l);
	struct message *m = msg(1, 4, NULL);
	m->timestamp_ms = now - 2000; /* past the queue's ttl */
	put(q, m);
	m = msg(2, 4, NULL);
	m->timestamp_ms = now - 2000;
	m->expiry_ms = now + 10000; /* its own expiry wins over the ttl */
	put(q, m);
	m = msg(3, 4, NULL);
	m->timestamp_ms = now - 61000; /* past retention, whatever its own expiry */
	m->expiry_ms = now + 10000;
	put(q, m);
	put(q, msg(4, 4, NULL));
	struct rec a = { 0 };
	struct consumer *c = queue_consumer_add(q, &(struct consumer_options){ .auto_ack = true },
						&rec_ops, &a);
	static const uint64_t want[] = { 2, 4 };
	ok(ids_are(&a, want, 2), "ttl for messages without expiry, retention for all");
	ok(queue_stats(q)->expired == 2 && queue_stats(q)->dropped == 2, "expired ones counted");
	queue_consumer_remove(c);

	/* An idle queue: the sweep drops expired heads of every priority and
	 * stops at the first that is not. */
	for (int i = 0; i < 3; i++) {
		m = msg((uint64_t)10 + i, i == 1 ? 9 : 4, NULL);
		m->timestamp_ms = now - 2000;
		put(q, m);
	}
	put(q, msg(13, 4, NULL));
	m = msg(14, 4, NULL);
	m->timestamp_ms = now - 2000;
	put(q, m);
	queue_expire(q, clock_wall_ms());
	ok(queue_depth(q) == 2 && queue_stats(q)->expired == 5,
	   "the sweep drops expired heads, by priority; one behind a live head waits");
	queue_purge(q);
	queue_free(q);

	/* dead_letter_expired hands them to the dead-letter callback. */
	q = queue_new("t2", 0);
	l.dead_letter_expired = true;
	queue_set_limits(q, &l);
	queue_set_dead_letter_cb(q, dead_cb, NULL);
	memset(deaths, 0, sizeof(deaths));
	m = msg(20, 4, NULL);
	m->timestamp_ms = now - 2000;
	put(q, m);
	queue_expire(q, clock_wall_ms());
	ok(deaths[QUEUE_DEATH_EXPIRED] == 1 && queue_stats(q)->dead_lettered == 1 &&
		   queue_depth(q) == 0,
	   "expired and dead_letter_expired: to the dead-letter queue");
	queue_free(q);
}

static void test_overflow(void)
{
	struct queue *q = queue_new("o", 0);
	struct queue_limits l = { .max_length = 2, .overflow = QUEUE_REJECT, .priorities = true };
	queue_set_limits(q, &l);
	struct message *m = msg(1, 4, NULL);
	ok(queue_accepts(q, m), "reject-publish: room at first");
	put(q, m);
	put(q, msg(2, 4, NULL));
	m = msg(3, 4, NULL);
	ok(!queue_accepts(q, m) && !queue_full(q), "reject-publish: refused at max_length, not blocking");
	message_unref(m);
	queue_purge(q);
	queue_free(q);

	q = queue_new("ob", 0);
	l = (struct queue_limits){ .max_bytes = 10, .overflow = QUEUE_DROP_HEAD, .priorities = true };
	queue_set_limits(q, &l);
	for (int i = 0; i < 4; i++) {
		m = msg((uint64_t)i + 1, i == 0 ? 9 : 4, NULL);
		message_set_bytes((char **)&m->body, &m->body_len, "abcd", 4);
		put(q, m);
	}
	struct rec a = { 0 };
	struct consumer *c = queue_consumer_add(q, &(struct consumer_options){ .auto_ack = true },
						&rec_ops, &a);
	static const uint64_t want[] = { 1, 4 };
	ok(ids_are(&a, want, 2) && queue_stats(q)->dropped == 2,
	   "drop-head on max_bytes: the oldest of the lowest priority go");
	queue_consumer_remove(c);
	queue_free(q);
}

static void test_dead_letter(void)
{
	struct queue *q = queue_new("d", 0);
	struct queue_limits l = { .max_redeliveries = 2, .priorities = true };
	queue_set_limits(q, &l);
	queue_set_dead_letter_cb(q, dead_cb, NULL);
	memset(deaths, 0, sizeof(deaths));
	ndead = 0;
	put(q, msg(1, 4, NULL));
	put(q, msg(2, 4, NULL));
	struct rec a = { 0 };
	struct consumer *c = queue_consumer_add(q, &(struct consumer_options){ .window = 1 },
						&rec_ops, &a);
	for (int i = 0; i < 3; i++)
		delivery_nack(a.ds[a.n - 1], NACK_FAILED);
	ok(a.n == 4 && a.ids[0] == 1 && a.ids[1] == 1 && a.ids[2] == 1 && a.ids[3] == 2,
	   "delivered 1 + max_redeliveries times, then no more");
	ok(deaths[QUEUE_DEATH_MAX_REDELIVERIES] == 1 && dead_ids[0] == 1,
	   "then dead-lettered as max-redeliveries");
	delivery_nack(a.ds[3], NACK_RELEASE);
	delivery_nack(a.ds[4], NACK_REJECT);
	ok(deaths[QUEUE_DEATH_REJECTED] == 1 && dead_ids[1] == 2 && queue_depth(q) == 0,
	   "a released one comes again; a rejected one is dead-lettered");
	put(q, msg(3, 4, NULL));
	delivery_nack(a.ds[5], NACK_FAILED);
	delivery_nack(a.ds[6], NACK_FAILED);
	queue_consumer_remove(c);
	ok(deaths[QUEUE_DEATH_MAX_REDELIVERIES] == 2 && dead_ids[2] == 3,
	   "a consumer going counts as a failed delivery too");
	ok(queue_stats(q)->dead_lettered == 3 && queue_stats(q)->rejected == 1, "counted");
	queue_free(q);
}

static void test_rules(void)
{
	struct policy_rule *rules = NULL;
	struct queue_policy a = { .set = POLICY_TTL | POLICY_MAX_LENGTH,
				  .limits = { .ttl_ms = 1000, .max_length = 5 } };
	struct queue_policy b = { .set = POLICY_TTL | POLICY_RETENTION | POLICY_DEAD_LETTER_QUEUE,
				  .limits = { .ttl_ms = 2000, .retention_ms = 3000 },
				  .dead_letter_queue = "dead" };
	struct queue_policy loop = { .set = POLICY_DEAD_LETTER_QUEUE, .dead_letter_queue = "loop" };
	policy_add(&rules, "orders.eu", &a);
	policy_add(&rules, "orders.>", &b);
	policy_add(&rules, "loop", &loop);
	struct queue_limits l;
	policy_limits(rules, "orders.eu", &l);
	ok(l.ttl_ms == 1000 && l.max_length == 5 && l.retention_ms == 3000 && l.priorities,
	   "each field from the first matching rule that sets it");
	policy_limits(rules, "other", &l);
	ok(l.ttl_ms == 0 && l.retention_ms == POLICY_DEFAULT_RETENTION_MS && l.priorities &&
		   l.overflow == QUEUE_BLOCK,
	   "defaults: 4 days' retention, priorities on");
	char *d = policy_dead_letter_queue(rules, "orders.us");
	is_str(d, "dead", "a rule's dead_letter_queue");
	free(d);
	d = policy_dead_letter_queue(rules, "other");
	is_str(d, "DLQ.other", "DLQ.<name> by default");
	free(d);
	ok(policy_dead_letter_queue(rules, "DLQ.other") == NULL &&
		   policy_dead_letter_queue(rules, "loop") == NULL,
	   "none for a DLQ. queue, nor into itself");
	policy_free(rules);
}

static int noop_deliver(void *ctx, struct delivery *d, struct message *m)
{
	struct delivery **out = ctx;
	*out = d;
	return 0;
}

static const struct consumer_ops noop_ops = { .deliver = noop_deliver };

static const char *prop(const struct message *m, const char *name)
{
	for (size_t i = 0; i < m->nprops; i++)
		if (!strcmp(m->props[i].name, name))
			return m->props[i].value;
	return NULL;
}

static void test_router(void)
{
	struct router *r = router_new(&(struct router_options){ .topic_max_pending = 100 });
	struct queue_policy p = { .set = POLICY_MAX_LENGTH | POLICY_OVERFLOW,
				  .limits = { .max_length = 1, .overflow = QUEUE_REJECT } };
	ok(router_set_queue_policy(r, "small", &p) == ROUTER_OK, "policy added");
	struct message *m = message_new();
	ok(router_publish(r, DEST_QUEUE, "small", &m, NULL) == ROUTER_OK, "first publish fits");
	m = message_new();
	ok(router_publish(r, DEST_QUEUE, "small", &m, NULL) == ROUTER_EFULL,
	   "reject-publish: the publisher hears ROUTER_EFULL");
	ok(queue_depth(router_find_queue(r, "small")) == 1, "and the queue kept only the first");

	m = message_new();
	message_set_bytes((char **)&m->body, &m->body_len, "poison", 6);
	message_add_prop(m, "k", "v", 1);
	router_publish(r, DEST_QUEUE, "work", &m, NULL);
	struct delivery *d = NULL;
	enum router_err err;
	struct subscription *s = router_subscribe(r, DEST_QUEUE, "work",
						  &(struct subscribe_options){ .consumer.window = 1 },
						  &noop_ops, &d, &err);
	delivery_nack(d, NACK_REJECT);
	struct queue *dlq = router_find_queue(r, "DLQ.work");
	ok(dlq && queue_depth(dlq) == 1, "a rejected message lands in DLQ.work");
	struct delivery *dd = NULL;
	struct subscription *ds = router_subscribe(r, DEST_QUEUE, "DLQ.work",
						   &(struct subscribe_options){ .consumer.window = 1 },
						   &noop_ops, &dd, &err);
	const struct message *dm = dd ? delivery_message(dd) : NULL;
	ok(dm && dm->body_len == 6 && !memcmp(dm->body, "poison", 6) && prop(dm, "k"),
	   "with its body and properties");
	is_str(dm ? prop(dm, "x-death-reason") : NULL, "rejected", "x-death-reason");
	is_str(dm ? prop(dm, "x-original-destination") : NULL, "work", "x-original-destination");
	ok(dm && dm->dest && !strcmp(dm->dest, "DLQ.work"), "its destination is the DLQ");
	router_unsubscribe(r, ds);
	router_unsubscribe(r, s);
	router_free(r);
}

int main(void)
{
	test_priorities();
	test_groups();
	test_group_waits_others_go();
	test_groups_bounded();
	test_expiry();
	test_overflow();
	test_dead_letter();
	test_rules();
	test_router();
	return tap_done();
}
