#!/usr/bin/env python3
"""STOMP queues: competing consumers, client and client-individual acks,
NACK, redelivery after a consumer leaves, and prefetch."""
import threading
import time

from stomptest import TIMEOUT, Collector, StompTestCase, ack_header, sync
from wharftest import main, wait_until


class StompQueue(StompTestCase):

    # ---- competing consumers ----------------------------------------------

    def competing(self, n_msgs, ack, headers=None, version="1.2"):
        q = self.name()
        consumers = []
        for i in range(3):
            conn_box = []

            def on_message(frame, conn_box=conn_box):
                if ack != "auto":
                    conn_box[0].ack(*ack_header(frame, version))

            lst = Collector(on_message=on_message)
            conn, lst = self.connect(version, listener=lst)
            conn_box.append(conn)
            self.subscribe(conn, lst, q, ack=ack, headers=headers)
            consumers.append((conn, lst))
        prod, plst = self.connect()
        bodies = ["c%05d" % i for i in range(n_msgs)]
        self.send_all(prod, plst, q, bodies)
        wait_until(lambda: sum(l.count() for _, l in consumers) >= n_msgs, TIMEOUT,
                   what="all %d messages across the consumers" % n_msgs)
        got = [lst.bodies() for _, lst in consumers]
        everything = [b for g in got for b in g]
        self.assertEqual(len(everything), n_msgs, "lost or duplicated")
        self.assertEqual(sorted(everything), bodies)
        for i, g in enumerate(got):
            self.assertGreater(len(g), 0, "consumer %d got nothing" % i)
            self.assertEqual(g, sorted(g), "consumer %d saw messages out of order" % i)
        for conn, lst in consumers:
            self.assertEqual(lst.errors, [])
        # Nothing is left behind, nothing comes twice: after the sync no
        # consumer has more, and a fresh consumer sees only a sentinel.
        for conn, lst in consumers:
            sync(conn, lst)
        self.assertEqual(sum(lst.count() for _, lst in consumers), n_msgs)
        for conn, lst in consumers:
            conn.unsubscribe(id=lst.messages[0].headers["subscription"],
                             headers={"receipt": "u"})
            lst.wait_receipt("u")
        self.assert_only_sentinel(q)

    def assert_only_sentinel(self, q, version="1.2"):
        """The queue holds nothing: a new consumer's first message is the
        sentinel sent after it subscribed."""
        conn, lst = self.connect(version)
        self.subscribe(conn, lst, q)
        self.send_all(conn, lst, q, ["sentinel"])
        lst.wait_body("sentinel")
        self.assertEqual(lst.bodies(), ["sentinel"])

    def test_competing_consumers_auto(self):
        self.competing(3000, "auto")

    def test_competing_consumers_client_individual_prefetch_10(self):
        self.competing(3000, "client-individual", {"activemq.prefetchSize": "10"})

    def test_competing_consumers_client_11(self):
        self.competing(600, "client", {"activemq.prefetchSize": "10"}, version="1.1")

    # ---- acks ---------------------------------------------------------------

    def test_client_ack_is_cumulative(self):
        for version in ("1.0", "1.1", "1.2"):
            q = self.name()
            prod, plst = self.connect()
            bodies = ["m%d" % i for i in range(10)]
            self.send_all(prod, plst, q, bodies)
            cons, clst = self.connect(version)
            self.subscribe(cons, clst, q, sub_id="cum", ack="client")
            msgs = clst.wait_messages(10)
            self.assertEqual([m.body for m in msgs], bodies)
            # Ack m5: m0..m5 are done, m6..m9 are not.
            if version == "1.0":
                cons.ack(msgs[5].headers["message-id"])
            else:
                cons.ack(*ack_header(msgs[5], version))
            sync(cons, clst)
            self.assertEqual(clst.errors, [])
            self.close(cons, clst)
            again, alst = self.connect()
            self.subscribe(again, alst, q)
            self.send_all(prod, plst, q, ["sentinel"])
            alst.wait_body("sentinel")
            self.assertEqual(alst.bodies(), bodies[6:] + ["sentinel"], version)
            for m in alst.messages[:4]:
                self.assertEqual(m.headers.get("redelivered"), "true")
            self.assertNotIn("redelivered", alst.messages[-1].headers)

    def test_client_individual_ack(self):
        for version in ("1.1", "1.2"):
            q = self.name()
            prod, plst = self.connect()
            bodies = ["i%d" % i for i in range(10)]
            self.send_all(prod, plst, q, bodies)
            cons, clst = self.connect(version)
            self.subscribe(cons, clst, q, ack="client-individual")
            msgs = clst.wait_messages(10)
            # Ack the even ones, last first: no ack covers another.
            for m in reversed(msgs[::2]):
                cons.ack(*ack_header(m, version))
            sync(cons, clst)
            self.assertEqual(clst.errors, [])
            self.close(cons, clst)
            again, alst = self.connect()
            self.subscribe(again, alst, q)
            self.send_all(prod, plst, q, ["sentinel"])
            alst.wait_body("sentinel")
            self.assertEqual(alst.bodies(), bodies[1::2] + ["sentinel"], version)

    def test_ack_twice_is_an_error(self):
        q = self.name()
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["once"])
        cons, clst = self.connect()
        self.subscribe(cons, clst, q, ack="client-individual")
        m = clst.wait_messages(1)[0]
        cons.ack(m.headers["ack"])
        cons.ack(m.headers["ack"])
        err = clst.wait_error()
        self.assertTrue(err.headers.get("message"))
        clst.wait_disconnected()

    def test_nack_redelivers_to_another_consumer(self):
        q = self.name()
        n = 10
        lock = threading.Lock()
        log = []  # (consumer, body, redelivered)
        consumers = []
        for name in ("A", "B"):
            box = []

            def on_message(frame, name=name, box=box):
                redelivered = frame.headers.get("redelivered") == "true"
                with lock:
                    log.append((name, frame.body, redelivered,
                                frame.headers.get("x-delivery-count")))
                if redelivered:
                    box[0].ack(frame.headers["ack"])
                else:
                    box[0].nack(frame.headers["ack"])

            conn, lst = self.connect(listener=Collector(on_message=on_message))
            box.append(conn)
            self.subscribe(conn, lst, q, ack="client-individual")
            consumers.append((conn, lst))
        prod, plst = self.connect()
        bodies = ["n%d" % i for i in range(n)]
        self.send_all(prod, plst, q, bodies)
        wait_until(lambda: len(log) >= 2 * n, TIMEOUT, what="first and second deliveries")
        for conn, lst in consumers:
            sync(conn, lst)
        with lock:
            entries = list(log)
        self.assertEqual(len(entries), 2 * n, entries)
        for body in bodies:
            first = [e for e in entries if e[1] == body and not e[2]]
            second = [e for e in entries if e[1] == body and e[2]]
            self.assertEqual(len(first), 1, (body, entries))
            self.assertEqual(len(second), 1, (body, entries))
            self.assertNotEqual(first[0][0], second[0][0],
                                "%s was redelivered to the consumer that nacked it" % body)
            self.assertEqual(second[0][3], "1")
        for conn, lst in consumers:
            self.assertEqual(lst.errors, [])
        for conn, lst in consumers:
            self.close(conn, lst)
        self.assert_only_sentinel(q)

    def test_nack_11(self):
        q = self.name()
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["nack-me"])
        cons, clst = self.connect("1.1")
        self.subscribe(cons, clst, q, sub_id="s11", ack="client-individual")
        m = clst.wait_messages(1)[0]
        cons.nack(*ack_header(m, "1.1"))
        # The only consumer gets it back, marked.
        m2 = clst.wait_messages(2)[1]
        self.assertEqual(m2.body, "nack-me")
        self.assertEqual(m2.headers.get("redelivered"), "true")
        cons.ack(*ack_header(m2, "1.1"))
        sync(cons, clst)
        self.assertEqual(clst.errors, [])

    # ---- consumers that leave -------------------------------------------------

    def test_disconnect_with_unacked_redelivers_to_other_consumer(self):
        q = self.name()
        prod, plst = self.connect()
        bodies = ["u%d" % i for i in range(5)]
        a, alst = self.connect()
        self.subscribe(a, alst, q, ack="client-individual")
        self.send_all(prod, plst, q, bodies)
        self.assertEqual([m.body for m in alst.wait_messages(5)], bodies)
        # B arrives while A still holds everything: B gets nothing yet.
        b, blst = self.connect()
        self.subscribe(b, blst, q, ack="client-individual")
        sync(b, blst)
        self.assertEqual(blst.bodies(), [])
        self.close(a, alst)
        msgs = blst.wait_messages(5)
        self.assertEqual([m.body for m in msgs], bodies)
        for m in msgs:
            self.assertEqual(m.headers.get("redelivered"), "true")
        for m in msgs:
            b.ack(m.headers["ack"])
        sync(b, blst)
        self.assertEqual(blst.count(), 5)
        self.close(b, blst)
        self.assert_only_sentinel(q)

    def test_abrupt_close_with_unacked_redelivers(self):
        q = self.name()
        prod, plst = self.connect()
        bodies = ["k%d" % i for i in range(5)]
        self.send_all(prod, plst, q, bodies)
        raw = self.raw("1.2")
        raw.send_frame("SUBSCRIBE", [("destination", q), ("id", "r"), ("ack", "client")])
        frames = raw.read_until(lambda f: f.command == "MESSAGE" and f.body == b"k4")
        self.assertEqual([f.body for f in frames], [b.encode() for b in bodies])
        raw.close()  # no DISCONNECT, no ack
        b, blst = self.connect()
        self.subscribe(b, blst, q)
        msgs = blst.wait_messages(5)
        self.assertEqual([m.body for m in msgs], bodies)
        self.assertTrue(all(m.headers.get("redelivered") == "true" for m in msgs))

    def test_unsubscribe_with_unacked_redelivers(self):
        q = self.name()
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["v0", "v1"])
        a, alst = self.connect()
        sid = self.subscribe(a, alst, q, ack="client")
        alst.wait_messages(2)
        a.unsubscribe(sid, headers={"receipt": "gone"})
        alst.wait_receipt("gone")
        b, blst = self.connect()
        self.subscribe(b, blst, q)
        msgs = blst.wait_messages(2)
        self.assertEqual([m.body for m in msgs], ["v0", "v1"])
        self.assertTrue(all(m.headers.get("redelivered") == "true" for m in msgs))

    def test_abrupt_close_two_subscriptions_same_queue(self):
        """A connection with an auto-ack and a client-ack subscription on one
        queue drops its socket. What the client-ack one held must not be
        handed to the auto-ack one of the same dead connection (and so lost):
        the next consumer gets it."""
        q = self.name()
        raw = self.raw("1.2")
        raw.send_frame("SUBSCRIBE", [("destination", q), ("id", "auto"), ("ack", "auto"),
                                     ("receipt", "s1")])
        raw.wait_receipt("s1")
        raw.send_frame("SUBSCRIBE", [("destination", q), ("id", "held"),
                                     ("ack", "client-individual"), ("receipt", "s2")])
        raw.wait_receipt("s2")
        prod, plst = self.connect()
        bodies = ["h%d" % i for i in range(10)]
        self.send_all(prod, plst, q, bodies)
        frames = raw.read_until(lambda f: f.command == "MESSAGE" and f.body == b"h9")
        by_sub = {}
        for f in frames:
            if f.command == "MESSAGE":
                by_sub.setdefault(f.headers["subscription"], []).append(f.body.decode())
        self.assertEqual(sorted(by_sub), ["auto", "held"], by_sub)
        held = by_sub["held"]
        raw.close()  # abrupt: no DISCONNECT, nothing acked
        b, blst = self.connect()
        self.subscribe(b, blst, q)
        self.send_all(prod, plst, q, ["sentinel"])
        blst.wait_body("sentinel")
        self.assertEqual(blst.bodies(), held + ["sentinel"],
                         "unacked messages of a dropped connection were lost")

    def test_fifo_kept_through_redelivery(self):
        """Messages a leaving consumer held go back in their old place, ahead
        of the ones that were still waiting."""
        q = self.name()
        prod, plst = self.connect()
        bodies = ["o%02d" % i for i in range(12)]
        self.send_all(prod, plst, q, bodies)
        a, alst = self.connect()
        self.subscribe(a, alst, q, ack="client-individual",
                       headers={"activemq.prefetchSize": "5"})
        msgs = alst.wait_messages(5)
        a.ack(msgs[1].headers["ack"])
        a.ack(msgs[3].headers["ack"], receipt="acked")
        alst.wait_receipt("acked")
        # The two acks made room for two more: A now holds o00 o02 o04 o05 o06.
        held = [b for b in alst.bodies() if b not in ("o01", "o03")]
        self.assertEqual(held, ["o00", "o02", "o04", "o05", "o06"])
        self.close(a, alst)
        b, blst = self.connect()
        self.subscribe(b, blst, q)
        expected = [x for i, x in enumerate(bodies) if i not in (1, 3)]
        got = blst.wait_messages(len(expected))
        self.assertEqual([m.body for m in got], expected)
        for m in got:
            self.assertEqual(m.headers.get("redelivered"), "true" if m.body in held else None,
                             m.body)

    def test_slow_consumer_gets_everything_in_order(self):
        """More than the connection's output cap waits in the queue, not in
        memory, and arrives complete once the consumer reads."""
        q = self.name()
        raw = self.raw("1.2", rcvbuf=65536)
        raw.send_frame("SUBSCRIBE", [("destination", q), ("id", "slow"), ("receipt", "s")])
        raw.wait_receipt("s")
        prod = self.raw("1.2")
        n, size = 128, 64 * 1024  # 8 MiB: past the kernel buffers and the 1 MiB output cap
        for i in range(n):
            body = bytes([65 + i % 26]) * size
            prod.send_frame("SEND", [("destination", q), ("n", str(i))], body)
        prod.send_frame("SEND", [("destination", q), ("receipt", "p")], b"end")
        prod.wait_receipt("p")
        frames = raw.read_until(lambda f: f.command == "MESSAGE" and f.body == b"end")
        msgs = [f for f in frames if f.command == "MESSAGE"]
        self.assertEqual([f.headers.get("n") for f in msgs[:-1]], [str(i) for i in range(n)])
        for i, f in enumerate(msgs[:-1]):
            self.assertEqual(f.body, bytes([65 + i % 26]) * size)

    def test_expired_message_is_not_delivered(self):
        q = self.name()
        prod, plst = self.connect()
        now = int(time.time() * 1000)
        prod.send(q, "stale", headers={"expires": str(now - 60000)})
        prod.send(q, "fresh", headers={"expires": str(now + 600000)})
        self.send_all(prod, plst, q, ["forever"])
        cons, clst = self.connect()
        self.subscribe(cons, clst, q)
        clst.wait_body("forever")
        self.assertEqual(clst.bodies(), ["fresh", "forever"])

    def test_message_expiring_while_queued(self):
        q = self.name()
        prod, plst = self.connect()
        soon = int(time.time() * 1000) + 300
        self.send_all(prod, plst, q, ["short-lived"], headers={"expires": str(soon)})
        wait_until(lambda: time.time() * 1000 > soon + 50, 5, what="expiry")
        self.send_all(prod, plst, q, ["after"])
        cons, clst = self.connect()
        self.subscribe(cons, clst, q)
        clst.wait_body("after")
        self.assertEqual(clst.bodies(), ["after"])

    # ---- prefetch ------------------------------------------------------------

    def test_prefetch_1_with_client_ack(self):
        q = self.name()
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["p0", "p1", "p2"])
        cons, clst = self.connect()
        self.subscribe(cons, clst, q, ack="client", headers={"activemq.prefetchSize": "1"})
        m = clst.wait_messages(1)[0]
        sync(cons, clst)
        self.assertEqual(clst.bodies(), ["p0"], "a second message before the first was acked")
        cons.ack(m.headers["ack"])
        m = clst.wait_messages(2)[1]
        sync(cons, clst)
        self.assertEqual(clst.bodies(), ["p0", "p1"])
        cons.ack(m.headers["ack"])
        m = clst.wait_messages(3)[2]
        self.assertEqual(m.body, "p2")
        cons.ack(m.headers["ack"])
        sync(cons, clst)
        self.assertEqual(clst.bodies(), ["p0", "p1", "p2"])
        self.assertEqual(clst.errors, [])

    def test_prefetch_1_shares_between_two_consumers(self):
        """With prefetch 1, a consumer holding a message does not get the
        next one: the other consumer does."""
        q = self.name()
        a, alst = self.connect()
        b, blst = self.connect()
        self.subscribe(a, alst, q, ack="client-individual",
                       headers={"activemq.prefetchSize": "1"})
        self.subscribe(b, blst, q, ack="client-individual",
                       headers={"activemq.prefetchSize": "1"})
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["s0", "s1", "s2"])
        alst.wait_messages(1)
        blst.wait_messages(1)
        sync(a, alst)
        sync(b, blst)
        self.assertEqual(alst.count() + blst.count(), 2)
        a.ack(alst.messages[0].headers["ack"])
        alst.wait_messages(2)
        self.assertEqual(sorted(alst.bodies() + blst.bodies()), ["s0", "s1", "s2"])

    def test_invalid_prefetch_is_an_error(self):
        for bad in ("0", "-1", "abc", "99999999999"):
            conn, lst = self.connect()
            conn.subscribe(self.name(), id="x", ack="client",
                           headers={"activemq.prefetchSize": bad})
            err = lst.wait_error()
            self.assertTrue(err.headers.get("message"), bad)
            lst.wait_disconnected()

    # helpers

    def close(self, conn, lst):
        conn.disconnect()
        lst.wait_disconnected()


if __name__ == "__main__":
    main()
