#!/usr/bin/env python3
"""STOMP topics: fan-out, wildcards, the concrete destination header,
unsubscribe, non-durable subscriptions, and topic -> queue bindings from the
config file."""
from stomptest import TIMEOUT, StompTestCase, stomp_close, sync
from wharftest import main, wait_until


class StompTopic(StompTestCase):

    def test_fanout_to_10_subscribers(self):
        t = self.name("topic")
        subs = []
        for i in range(10):
            conn, lst = self.connect(("1.0", "1.1", "1.2")[i % 3])
            self.subscribe(conn, lst, t, sub_id="fan-%d" % i)
            subs.append((conn, lst))
        prod, plst = self.connect()
        bodies = ["f%03d" % i for i in range(100)]
        self.send_all(prod, plst, t, bodies)
        for i, (conn, lst) in enumerate(subs):
            lst.wait_messages(100)
            sync(conn, lst)
            self.assertEqual(lst.bodies(), bodies, "subscriber %d" % i)
            for m in lst.messages:
                self.assertEqual(m.headers.get("destination"), t)
                self.assertEqual(m.headers.get("subscription"), "fan-%d" % i)
            self.assertEqual(lst.errors, [])

    def test_two_subscriptions_on_one_connection(self):
        """Each subscription of a connection gets its own copy."""
        t = self.name("topic")
        conn, lst = self.connect()
        self.subscribe(conn, lst, t, sub_id="one")
        self.subscribe(conn, lst, t, sub_id="two")
        self.send_all(conn, lst, t, ["x"])
        msgs = lst.wait_messages(2)
        sync(conn, lst)
        self.assertEqual(lst.count(), 2)
        self.assertEqual(sorted(m.headers["subscription"] for m in msgs), ["one", "two"])

    def publish_and_collect(self, pattern, topics, sentinel_topic):
        conn, lst = self.connect()
        sid = self.subscribe(conn, lst, "/topic/" + pattern)
        prod, plst = self.connect()
        for name in topics:
            prod.send("/topic/" + name, name)
        self.send_all(prod, plst, "/topic/" + sentinel_topic, ["end"])
        lst.wait_body("end")
        for m in lst.messages:
            self.assertEqual(m.headers.get("subscription"), sid)
            # The concrete topic the message was published to, not the pattern.
            self.assertEqual(m.headers.get("destination"), "/topic/" +
                             (m.body if m.body != "end" else sentinel_topic))
        return lst.bodies()[:-1]

    def test_wildcard_star(self):
        got = self.publish_and_collect(
            "sensors.*",
            ["sensors.t1", "sensors.t1.x", "sensors", "sensors.t2", "other.t1", "sensorsx.t1",
             "x.sensors.t1"],
            "sensors.zz")
        self.assertEqual(got, ["sensors.t1", "sensors.t2"])

    def test_wildcard_greater(self):
        got = self.publish_and_collect(
            "sensors.>",
            ["sensors", "sensors.t1", "other.t1", "sensors.t1.x", "sensorsx", "x.sensors",
             "sensors.t1.x.y"],
            "sensors.zz")
        self.assertEqual(got, ["sensors", "sensors.t1", "sensors.t1.x", "sensors.t1.x.y"])

    def test_wildcard_star_in_the_middle(self):
        got = self.publish_and_collect(
            "plant.*.temp",
            ["plant.a.temp", "plant.a.b.temp", "plant.temp", "plant.b.temp", "plant.a.temp.x"],
            "plant.zz.temp")
        self.assertEqual(got, ["plant.a.temp", "plant.b.temp"])

    def test_destination_header_is_concrete_topic(self):
        conn, lst = self.connect()
        sid = self.subscribe(conn, lst, "/topic/sensors.*", sub_id="concrete")
        prod, plst = self.connect()
        self.send_all(prod, plst, "/topic/sensors.t1", ["reading"])
        m = lst.wait_messages(1)[0]
        self.assertEqual(m.headers.get("destination"), "/topic/sensors.t1")
        self.assertEqual(m.headers.get("subscription"), "concrete")
        self.assertEqual(m.body, "reading")

    def test_unsubscribe_stops_delivery(self):
        t = self.name("topic")
        a, alst = self.connect()
        witness, wlst = self.connect()
        sid = self.subscribe(a, alst, t)
        self.subscribe(witness, wlst, t)
        prod, plst = self.connect()
        self.send_all(prod, plst, t, ["before"])
        alst.wait_messages(1)
        a.unsubscribe(sid, headers={"receipt": "unsub"})
        alst.wait_receipt("unsub")
        self.send_all(prod, plst, t, ["after-1", "after-2"])
        wlst.wait_body("after-2")
        sync(a, alst)
        self.assertEqual(alst.bodies(), ["before"])
        self.assertEqual(wlst.bodies(), ["before", "after-1", "after-2"])
        # Subscribing again with the same id works and delivers again.
        self.subscribe(a, alst, t, sub_id=sid)
        self.send_all(prod, plst, t, ["again"])
        alst.wait_body("again")
        self.assertEqual(alst.bodies(), ["before", "again"])

    def test_published_before_subscribe_is_not_received(self):
        t = self.name("topic")
        prod, plst = self.connect()
        self.send_all(prod, plst, t, ["early"])
        conn, lst = self.connect()
        self.subscribe(conn, lst, t)
        self.send_all(prod, plst, t, ["late"])
        lst.wait_body("late")
        sync(conn, lst)
        self.assertEqual(lst.bodies(), ["late"])

    def test_topic_and_queue_of_same_name_are_distinct(self):
        name = self.name("topic")[len("/topic/"):]
        tc, tl = self.connect()
        qc, ql = self.connect()
        self.subscribe(tc, tl, "/topic/" + name)
        self.subscribe(qc, ql, "/queue/" + name)
        prod, plst = self.connect()
        self.send_all(prod, plst, "/topic/" + name, ["to-topic"])
        self.send_all(prod, plst, "/queue/" + name, ["to-queue"])
        tl.wait_body("to-topic")
        ql.wait_body("to-queue")
        sync(tc, tl)
        sync(qc, ql)
        self.assertEqual(tl.bodies(), ["to-topic"])
        self.assertEqual(ql.bodies(), ["to-queue"])

    def test_wildcard_publish_is_refused(self):
        conn, lst = self.connect()
        conn.send("/topic/sensors.*", "nope")
        err = lst.wait_error()
        self.assertTrue(err.headers.get("message"))
        lst.wait_disconnected()


class TopicBindings(StompTestCase):
    config = "[topic orders.>]\nbind = audit billing\n"

    def setUp(self):
        super().setUp()
        self.drain()

    def test_topic_to_queue_binding(self):
        audit, alst = self.connect()
        billing, blst = self.connect("1.1")
        watcher, wlst = self.connect()
        self.subscribe(audit, alst, "/queue/audit")
        self.subscribe(billing, blst, "/queue/billing")
        self.subscribe(watcher, wlst, "/topic/orders.>")
        prod, plst = self.connect()
        bodies = ["order-%d" % i for i in range(5)]
        self.send_all(prod, plst, "/topic/orders.eu", bodies)
        for conn, lst, dest in ((audit, alst, "/queue/audit"), (billing, blst, "/queue/billing"),
                                (watcher, wlst, "/topic/orders.eu")):
            lst.wait_messages(5)
            sync(conn, lst)
            self.assertEqual(lst.bodies(), bodies, dest)
            for m in lst.messages:
                self.assertEqual(m.headers.get("destination"), dest)

    def test_binding_fills_queue_without_consumers(self):
        prod, plst = self.connect()
        self.send_all(prod, plst, "/topic/orders.us.west", ["kept"], headers={"x-k": "v"})
        for q in ("/queue/audit", "/queue/billing"):
            conn, lst = self.connect()
            self.subscribe(conn, lst, q)
            m = lst.wait_messages(1)[0]
            sync(conn, lst)
            self.assertEqual(lst.bodies(), ["kept"])
            self.assertEqual(m.headers.get("x-k"), "v")
            self.assertEqual(m.headers.get("destination"), q)

    def test_unbound_topic_does_not_reach_queues(self):
        prod, plst = self.connect()
        self.send_all(prod, plst, "/topic/other.eu", ["not-for-queues"])
        self.send_all(prod, plst, "/topic/ordersx", ["not-either"])
        self.send_all(prod, plst, "/topic/orders.eu", ["for-queues"])
        for q in ("/queue/audit", "/queue/billing"):
            conn, lst = self.connect()
            self.subscribe(conn, lst, q)
            lst.wait_body("for-queues")
            sync(conn, lst)
            self.assertEqual(lst.bodies(), ["for-queues"], q)

    def test_bound_queue_competing_consumers(self):
        a, alst = self.connect()
        b, blst = self.connect()
        self.subscribe(a, alst, "/queue/audit")
        self.subscribe(b, blst, "/queue/audit")
        prod, plst = self.connect()
        bodies = ["c%02d" % i for i in range(20)]
        self.send_all(prod, plst, "/topic/orders.fr", bodies)
        wait_until(lambda: alst.count() + blst.count() >= 20, TIMEOUT, what="20 messages")
        sync(a, alst)
        sync(b, blst)
        self.assertEqual(sorted(alst.bodies() + blst.bodies()), bodies)

    def drain(self):
        """Empties the bound queues so that each test starts clean."""
        for q in ("/queue/audit", "/queue/billing"):
            conn, lst = self.connect()
            self.subscribe(conn, lst, q)
            self.send_all(conn, lst, q, ["drain"])
            lst.wait_body("drain")
            stomp_close(conn, lst)


if __name__ == "__main__":
    main()
