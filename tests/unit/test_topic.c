/* Wildcard matching, the topic trie, and topic fan-out through the router. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "router/address.h"
#include "router/queue.h"
#include "router/retain.h"
#include "router/router.h"
#include "router/topic.h"
#include "tap.h"

static void test_validate(void)
{
	ok(address_validate("a.b.c", false) == 0, "plain name");
	ok(address_validate("a..b", false) == 0, "empty level (MQTT a//b)");
	ok(address_validate(".a", false) == 0, "leading empty level (MQTT /a)");
	ok(address_validate("", false) != 0, "empty name refused");
	ok(address_validate("a.*", false) != 0, "wildcard refused in a name");
	ok(address_validate("a.>", false) != 0, "'>' refused in a name");
	ok(address_validate("a.*", true) == 0, "'*' in a pattern");
	ok(address_validate("a.>", true) == 0, "'>' last in a pattern");
	ok(address_validate("a.>.b", true) != 0, "'>' not last refused");
	ok(address_validate("a*b.c>", false) == 0, "'*' and '>' inside a level are plain");
	ok(address_validate("a\nb", false) != 0, "control character refused");
	ok(address_validate("caf\xc3\xa9.t", false) == 0, "UTF-8 allowed");
	ok(address_is_pattern("a.*.c"), "is_pattern *");
	ok(!address_is_pattern("a.b*"), "is_pattern plain");
	char *big = malloc(ADDRESS_MAX_LEN + 2);
	memset(big, 'x', ADDRESS_MAX_LEN + 1);
	big[ADDRESS_MAX_LEN + 1] = '\0';
	ok(address_validate(big, false) != 0, "overlong name refused");
	free(big);
}

static void test_match(void)
{
	static const struct {
		const char *pattern, *name;
		bool want;
	} cases[] = {
		{ "a.b", "a.b", true },
		{ "a.b", "a.c", false },
		{ "a.b", "a.b.c", false },
		{ "a.*", "a.b", true },
		{ "a.*", "a", false },
		{ "a.*", "a.b.c", false },
		{ "a.*.c", "a.b.c", true },
		{ "a.>", "a", true },
		{ "a.>", "a.b", true },
		{ "a.>", "a.b.c", true },
		{ "a.>", "b.a", false },
		{ ">", "x.y", true },
		{ "*", "x", true },
		{ "*", "x.y", false },
		{ ">", "$SYS.broker", false },
		{ "*.broker", "$SYS.broker", false },
		{ "$SYS.>", "$SYS.broker", true },
		{ "$SYS.*", "$SYS.broker", true },
		{ "a..c", "a..c", true },
		{ "a.*.c", "a..c", true },
		{ ".a", ".a", true },
		{ "*.a", ".a", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ok(address_match(cases[i].pattern, cases[i].name) == cases[i].want, "match %s ~ %s = %d",
		   cases[i].pattern, cases[i].name, cases[i].want);
}

struct hits {
	struct queue *q[16];
	size_t n;
};

static void collect(struct queue *q, void *arg)
{
	struct hits *h = arg;
	if (h->n < 16)
		h->q[h->n++] = q;
}

static bool hit(const struct hits *h, const struct queue *q)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->q[i] == q)
			return true;
	return false;
}

static void test_trie(void)
{
	struct topic_tree *t = topic_tree_new();
	struct queue *q1 = queue_new("q1", 0), *q2 = queue_new("q2", 0), *q3 = queue_new("q3", 0),
		     *q4 = queue_new("q4", 0);
	struct topic_binding *b1 = topic_tree_add(t, "sensors.t1", q1);
	struct topic_binding *b2 = topic_tree_add(t, "sensors.*", q2);
	struct topic_binding *b3 = topic_tree_add(t, "sensors.>", q3);
	struct topic_binding *b4 = topic_tree_add(t, ">", q4);
	ok(b1 && b2 && b3 && b4, "bindings added");
	ok(topic_tree_count(t) == 4, "count 4");

	struct hits h = { .n = 0 };
	topic_tree_match(t, "sensors.t1", collect, &h);
	ok(h.n == 4 && hit(&h, q1) && hit(&h, q2) && hit(&h, q3) && hit(&h, q4),
	   "sensors.t1 reaches exact, *, > and root >");
	h.n = 0;
	topic_tree_match(t, "sensors.t1.x", collect, &h);
	ok(h.n == 2 && hit(&h, q3) && hit(&h, q4), "sensors.t1.x reaches only the '>' bindings");
	h.n = 0;
	topic_tree_match(t, "sensors", collect, &h);
	ok(h.n == 2 && hit(&h, q3) && hit(&h, q4), "sensors reaches sensors.> (zero levels)");
	h.n = 0;
	topic_tree_match(t, "other", collect, &h);
	ok(h.n == 1 && hit(&h, q4), "unrelated name reaches only >");
	h.n = 0;
	topic_tree_match(t, "$SYS.x", collect, &h);
	ok(h.n == 0, "$SYS hidden from a root wildcard");

	topic_tree_remove(t, b2);
	topic_tree_remove(t, b4);
	h.n = 0;
	topic_tree_match(t, "sensors.t1", collect, &h);
	ok(h.n == 2 && hit(&h, q1) && hit(&h, q3), "after removal");
	topic_tree_remove(t, b1);
	topic_tree_remove(t, b3);
	ok(topic_tree_count(t) == 0, "empty again");
	h.n = 0;
	topic_tree_match(t, "sensors.t1", collect, &h);
	ok(h.n == 0, "nothing matches an empty tree");

	/* Many unrelated bindings, then one: matching still finds only it. */
	struct topic_binding *many[1000];
	char name[64];
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "fleet.d%d.temp", i);
		many[i] = topic_tree_add(t, name, q1);
	}
	h.n = 0;
	topic_tree_match(t, "fleet.d517.temp", collect, &h);
	ok(h.n == 1, "one of 1000 exact bindings matches");
	for (int i = 0; i < 1000; i++)
		topic_tree_remove(t, many[i]);
	ok(topic_tree_count(t) == 0, "1000 bindings removed");
	topic_tree_free(t);
	queue_free(q1);
	queue_free(q2);
	queue_free(q3);
	queue_free(q4);
}

struct sink {
	int got;
	char last[64];
};

static int sink_deliver(void *ctx, struct delivery *d, struct message *m)
{
	struct sink *s = ctx;
	s->got++;
	snprintf(s->last, sizeof(s->last), "%s", m->dest);
	return 0;
}

static const struct consumer_ops sink_ops = { .deliver = sink_deliver };

static struct message *msg(const char *body)
{
	struct message *m = message_new();
	uint8_t *b = (uint8_t *)strdup(body);
	message_take_body(m, &b, strlen(body));
	return m;
}

static void test_router_fanout(void)
{
	struct router_options ro = { .topic_max_pending = 100 };
	struct router *r = router_new(&ro);
	struct subscribe_options auto_ack = { .consumer.auto_ack = true };
	struct sink s1 = { 0 }, s2 = { 0 }, sq = { 0 };
	enum router_err err;
	struct subscription *a = router_subscribe(r, DEST_TOPIC, "orders.*", &auto_ack, &sink_ops, &s1, &err);
	struct subscription *b = router_subscribe(r, DEST_TOPIC, "orders.>", &auto_ack, &sink_ops, &s2, &err);
	ok(router_bind(r, "orders.>", "audit") == ROUTER_OK, "bind orders.> -> audit");
	ok(router_bind(r, "orders.eu", "audit") == ROUTER_OK, "bind orders.eu -> audit too");
	struct message *m = msg("x");
	ok(router_publish(r, DEST_TOPIC, "orders.eu", &m, NULL) == ROUTER_OK && m == NULL,
	   "publish takes the message");
	ok(s1.got == 1 && s2.got == 1, "both wildcard subscribers got it");
	is_str(s1.last, "orders.eu", "delivered with the concrete topic");
	struct queue *audit = router_find_queue(r, "audit");
	ok(audit && queue_depth(audit) == 1, "bound queue got it exactly once");
	struct subscription *c = router_subscribe(r, DEST_QUEUE, "audit", &auto_ack, &sink_ops, &sq, &err);
	ok(sq.got == 1, "queue consumer drains the bound queue");

	m = msg("y");
	ok(router_publish(r, DEST_TOPIC, "$SYS.x", &m, NULL) == ROUTER_EFORBIDDEN,
	   "clients cannot publish to $SYS");
	m = msg("y");
	ok(router_publish(r, DEST_TOPIC, "a.*", &m, NULL) == ROUTER_EINVAL,
	   "cannot publish to a pattern");

	ok(router_set_auto_create(r, DEST_QUEUE, "fixed.>", false) == ROUTER_OK, "auto_create off");
	m = msg("z");
	ok(router_publish(r, DEST_QUEUE, "fixed.q", &m, NULL) == ROUTER_ENOTFOUND,
	   "no auto-create gives not found");
	ok(!router_subscribe(r, DEST_QUEUE, "fixed.q", &auto_ack, &sink_ops, &sq, &err) &&
		   err == ROUTER_ENOTFOUND,
	   "subscribe to a forbidden queue fails");

	router_unsubscribe(r, a);
	router_unsubscribe(r, b);
	router_unsubscribe(r, c);
	m = msg("after");
	ok(router_publish(r, DEST_TOPIC, "orders.us", &m, NULL) == ROUTER_OK, "publish with no subscriber");
	ok(s1.got == 1 && s2.got == 1, "unsubscribed: nothing more");
	ok(queue_depth(audit) == 1, "bound queue keeps it");
	router_free(r);
}

static void test_slow_topic_subscriber(void)
{
	struct router_options ro = { .topic_max_pending = 5 };
	struct router *r = router_new(&ro);
	struct subscribe_options opts = { .consumer.window = 1 };
	struct sink s = { 0 };
	enum router_err err;
	struct subscription *sub = router_subscribe(r, DEST_TOPIC, "t", &opts, &sink_ops, &s, &err);
	for (int i = 0; i < 20; i++) {
		struct message *m = msg("m");
		router_publish(r, DEST_TOPIC, "t", &m, NULL);
	}
	struct queue *q = consumer_queue(subscription_consumer(sub));
	ok(s.got == 1, "window of one: one delivered");
	ok(queue_depth(q) == 5, "a slow subscriber holds at most topic_max_pending");
	ok(queue_stats(q)->dropped == 14, "the oldest were dropped and counted");
	router_unsubscribe(r, sub);
	router_free(r);
}

static void count_msg(struct message *m, void *arg)
{
	(*(int *)arg)++;
}

static int retained_matching(struct retain_store *rs, const char *pattern)
{
	int n = 0;
	retain_match(rs, pattern, count_msg, &n);
	return n;
}

static void test_retain_store(void)
{
	struct retain_store *rs = retain_new();
	const char *names[] = { "a", "a.b", "a.b.c", "a.x", "b", "$SYS.up", "a..c" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct message *m = msg("v");
		ok(retain_set(rs, names[i], m) == 0, "retain %s", names[i]);
		message_unref(m);
	}
	ok(retain_count(rs) == 7, "7 retained");
	ok(retained_matching(rs, "a.b") == 1, "exact");
	ok(retained_matching(rs, "a.*") == 2, "a.* matches a.b and a.x");
	ok(retained_matching(rs, "a.>") == 5, "a.> matches a, a.b, a.b.c, a.x, a..c");
	ok(retained_matching(rs, ">") == 6, "> matches all but $SYS");
	ok(retained_matching(rs, "*") == 2, "* matches a and b");
	ok(retained_matching(rs, "$SYS.>") == 1, "$SYS.> matches $SYS.up");
	ok(retained_matching(rs, "a.*.c") == 2, "a.*.c matches a.b.c and a..c");
	struct message *empty = message_new();
	ok(retain_set(rs, "a.b", empty) == 0 && retain_count(rs) == 6, "an empty body clears");
	ok(retain_set(rs, "never.set", empty) == 0 && retain_count(rs) == 6, "clearing nothing is fine");
	message_unref(empty);
	struct message *m = msg("new");
	retain_set(rs, "a", m);
	message_unref(m);
	ok(retain_count(rs) == 6 && retained_matching(rs, "a") == 1, "replace keeps one");
	retain_free(rs);
}

static void test_share_groups(void)
{
	struct router_options ro = { .topic_max_pending = 100 };
	struct router *r = router_new(&ro);
	struct subscribe_options so = { .consumer.auto_ack = true, .share_group = "g" };
	struct sink a = { 0 }, b = { 0 }, solo = { 0 };
	enum router_err err;
	struct subscription *sa = router_subscribe(r, DEST_TOPIC, "s.>", &so, &sink_ops, &a, &err);
	struct subscription *sb = router_subscribe(r, DEST_TOPIC, "s.>", &so, &sink_ops, &b, &err);
	struct subscribe_options own = { .consumer.auto_ack = true, .retained = true };
	struct subscription *ss = router_subscribe(r, DEST_TOPIC, "s.>", &own, &sink_ops, &solo, &err);
	for (int i = 0; i < 10; i++) {
		struct message *m = msg("x");
		router_publish(r, DEST_TOPIC, "s.t", &m, NULL);
	}
	ok(a.got == 5 && b.got == 5, "a share group splits 10 messages 5/5");
	ok(solo.got == 10, "a plain subscriber on the same pattern gets all 10");
	router_unsubscribe(r, sa);
	struct message *m = msg("y");
	m->retain = true;
	router_publish(r, DEST_TOPIC, "s.t", &m, NULL);
	ok(b.got == 6 && solo.got == 11, "after one member leaves, the other gets the rest");
	router_unsubscribe(r, sb);
	ok(router_stats(r)->retained == 1, "retained counted");
	struct sink late = { 0 };
	struct subscription *sl = router_subscribe(r, DEST_TOPIC, "s.*", &own, &sink_ops, &late, &err);
	ok(late.got == 1, "a new subscriber gets the retained message");
	router_unsubscribe(r, ss);
	router_unsubscribe(r, sl);
	router_free(r);
}

int main(void)
{
	test_retain_store();
	test_share_groups();
	test_validate();
	test_match();
	test_trie();
	test_router_fanout();
	test_slow_topic_subscriber();
	return tap_done();
}
