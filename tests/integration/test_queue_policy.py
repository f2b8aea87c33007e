#!/usr/bin/env python3
"""Queue policies from [queue PATTERN] sections, over STOMP: TTL, retention
(with the sweep of an idle queue), max_length with reject-publish and
drop-head, the dead-letter queue after max_redeliveries NACKs, priority
order, and message groups shared by two consumers."""
import itertools
import time

from stomptest import (TIMEOUT, Collector, StompTestCase, ack_header, new_receipt, stomp_close,
                       sync)
from wharftest import main, wait_until

CONFIG = """
[queue ttl.>]
ttl = 1s

[queue ret.>]
retention = 1s
dead_letter_expired = true

[queue rej.>]
max_length = 2
overflow = reject-publish

[queue drop.>]
max_length = 2
overflow = drop-head

[queue redo.>]
max_redeliveries = 2
"""

_n = itertools.count(1)


def qname(stem):
    return "/queue/%s.%d" % (stem, next(_n))


class QueuePolicy(StompTestCase):
    config = CONFIG

    def drain(self, dest, n, ack="auto", headers=None):
        """Subscribes, sends a sentinel behind what is there, and returns the
        bodies that came before it (at most n)."""
        conn, lst = self.connect()
        self.subscribe(conn, lst, dest, ack=ack, headers=headers)
        self.send_all(conn, lst, dest, ["sentinel"])
        lst.wait_body("sentinel")
        bodies = lst.bodies()
        stomp_close(conn, lst)
        return bodies[:bodies.index("sentinel")][:n + 1]

    def test_ttl_expires_messages_without_their_own(self):
        q = qname("ttl")
        conn, lst = self.connect()
        self.send_all(conn, lst, q, ["old"])
        far = str(int(time.time() * 1000) + 60000)
        self.send_all(conn, lst, q, ["own-expiry"], headers={"expires": far})
        time.sleep(1.5)
        self.send_all(conn, lst, q, ["fresh"])
        self.assertEqual(self.drain(q, 3), ["own-expiry", "fresh"])

    def test_retention_sweeps_an_idle_queue_into_its_dlq(self):
        q = qname("ret")
        conn, lst = self.connect()
        far = str(int(time.time() * 1000) + 60000)
        self.send_all(conn, lst, q, ["kept-too-long"],
                      headers={"expires": far, "persistent": "true", "k": "v"})
        # Nobody ever consumes q: only the sweep can move it.
        dlq = "/queue/DLQ." + q[len("/queue/"):]
        dconn, dlst = self.connect()
        self.subscribe(dconn, dlst, dlq)
        msgs = dlst.wait_messages(1, timeout=TIMEOUT)
        m = msgs[0]
        self.assertEqual(m.body, "kept-too-long")
        self.assertEqual(m.headers.get("x-death-reason"), "expired")
        self.assertEqual(m.headers.get("x-original-destination"), q[len("/queue/"):])
        self.assertEqual(m.headers.get("k"), "v")
        self.assertEqual(m.headers.get("persistent"), "true")
        self.assertNotIn("expires", m.headers)
        self.assertEqual(self.drain(q, 1), [])

    def test_max_length_reject_publish(self):
        q = qname("rej")
        conn, lst = self.connect()
        self.send_all(conn, lst, q, ["a", "b"])
        rid = new_receipt()
        conn.send(q, "c", headers={"receipt": rid})
        err = lst.wait_error()
        self.assertEqual(err.headers.get("message"), "queue full")
        self.assertNotIn(rid, lst.receipts)
        self.assertEqual(self.drain(q, 3), ["a", "b"])
        # Room again once drained.
        conn2, lst2 = self.connect()
        self.send_all(conn2, lst2, q, ["d"])
        self.assertEqual(self.drain(q, 2), ["d"])

    def test_max_length_drop_head(self):
        q = qname("drop")
        conn, lst = self.connect()
        self.send_all(conn, lst, q, ["1", "2", "3", "4"])
        self.assertEqual(self.drain(q, 4), ["3", "4"])

    def test_dlq_after_max_redeliveries(self):
        q = qname("redo")
        conn, lst = self.connect()
        self.send_all(conn, lst, q, ["poison", "next"],
                      headers={"persistent": "true", "app": "x1"})
        nacks = []

        def on_message(frame):
            if frame.body == "poison":
                nacks.append(frame.headers.get("x-delivery-count", "0"))
                cconn.nack(*ack_header(frame, "1.2"))

        clst = Collector(on_message=on_message)
        cconn, clst = self.connect(listener=clst)
        self.subscribe(cconn, clst, q, ack="client-individual",
                       headers={"activemq.prefetchSize": "1"})
        clst.wait_body("next")
        # Delivered once and redelivered twice, then no more.
        self.assertEqual(nacks, ["0", "1", "2"])
        dlq = "/queue/DLQ." + q[len("/queue/"):]
        dconn, dlst = self.connect()
        self.subscribe(dconn, dlst, dlq)
        m = dlst.wait_messages(1)[0]
        self.assertEqual(m.body, "poison")
        self.assertEqual(m.headers.get("x-death-reason"), "max-redeliveries")
        self.assertEqual(m.headers.get("x-original-destination"), q[len("/queue/"):])
        self.assertEqual(m.headers.get("app"), "x1")
        self.assertEqual(m.headers.get("persistent"), "true")
        sync(dconn, dlst)
        self.assertEqual(dlst.count(), 1)

    def test_priority_order(self):
        q = qname("prio")
        conn, lst = self.connect()
        sent = [("p1-a", 1), ("p9-a", 9), ("p4-a", 4), ("p9-b", 9), ("p1-b", 1), ("p0", 0),
                ("p4-b", 4)]
        for body, p in sent:
            conn.send(q, body, headers={"priority": str(p)})
        self.send_all(conn, lst, "/queue/unrelated-%d" % next(_n), ["x"])  # a round trip
        self.assertEqual(self.drain(q, len(sent)),
                         ["p9-a", "p9-b", "p4-a", "p4-b", "p1-a", "p1-b", "p0"])

    def test_message_groups_two_consumers(self):
        q = qname("grp")
        consumers = []
        for _ in range(2):
            c, l = self.connect()
            self.subscribe(c, l, q, ack="client-individual",
                           headers={"activemq.prefetchSize": "100"})
            consumers.append((c, l))
        prod, plst = self.connect()
        groups = ["A", "B", "C", "D"]
        bodies = ["%s-%02d" % (groups[i % 4], i) for i in range(40)]
        for b in bodies:
            prod.send(q, b, headers={"JMSXGroupID": b[0]})
        self.send_all(prod, plst, q, ["tail"])
        wait_until(lambda: sum(l.count() for _, l in consumers) == 41, TIMEOUT,
                   what="every message")
        owner = {}
        for i, (_, l) in enumerate(consumers):
            seen = [m for m in l.messages if m.body != "tail"]
            for m in seen:
                self.assertEqual(m.headers.get("JMSXGroupID"), m.body[0])
                self.assertEqual(owner.setdefault(m.body[0], i), i,
                                 "group %s went to both consumers" % m.body[0])
            mine = [m.body for m in seen]
            self.assertEqual(mine, sorted(mine, key=lambda b: int(b[2:])), "out of order")
        self.assertEqual(len(owner), 4)
        self.assertEqual(set(owner.values()), {0, 1}, "both consumers get groups")
        # The first consumer goes without acking: its groups move to the
        # other, which gets them again, in order, then new ones too.
        gone = [g for g, i in owner.items() if i == 0]
        c0, l0 = consumers[0]
        _, l1 = consumers[1]
        # Counted first: the moved groups may reach the other consumer
        # before the disconnect's own confirmation reaches the test.
        before = l1.count()
        c0.disconnect()
        l0.wait_disconnected()
        want = [b for b in bodies if b[0] in gone]
        wait_until(lambda: l1.count() >= before + len(want), TIMEOUT, what="the moved groups")
        for b in [g + "-new" for g in gone]:
            prod.send(q, b, headers={"JMSXGroupID": b[0]})
        self.send_all(prod, plst, q, ["tail2"])
        l1.wait_body("tail2")
        moved = [m.body for m in l1.messages[before:] if m.body[0] in gone]
        self.assertEqual(moved, want + [g + "-new" for g in gone])


if __name__ == "__main__":
    main()
