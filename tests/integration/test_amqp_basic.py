#!/usr/bin/env python3
"""AMQP 1.0 with qpid-proton: queues (bare name, queue:// prefix, capability),
FIFO order, competing receivers, credit and drain, the outcomes released /
modified / rejected, pre-settled transfers both ways, topic fan-out and
wildcards, and messages kept intact from one AMQP client to another
(DESIGN.md §3-5, docs/mapping.md, issue 4)."""
import time
import unittest
import uuid

from proton import (Condition, Delivery, Described, Endpoint, Link, Message, symbol, timestamp,
                    ubyte, uint, ulong)
from proton.reactor import AtMostOnce, DurableSubscription

from amqptest import (ACCEPTED, AMQP_SEQUENCE, AMQP_VALUE, APPLICATION_PROPERTIES, DATA,
                      DISPOSITION, FOOTER, HEADER, MESSAGE_ANNOTATIONS, PROPERTIES, TIMEOUT,
                      TRANSFER, AmqpTestCase, Capabilities, RawAmqp, Rcv, Snd, TxEvents,
                      body_sections, flow, frame, section, sections)
from wharftest import main


def numbered(n, prefix="m", **kw):
    return [Message(body="%s-%05d" % (prefix, i), properties={"seq": i}, **kw) for i in range(n)]


class QueueTest(AmqpTestCase):

    def test_bare_name_is_a_queue(self):
        """A bare address is a queue: the message waits for a receiver that
        comes later, under either spelling."""
        q = self.name()
        c = self.client()
        s = c.snd(q)
        self.assertFalse(s.refused, s.condition)
        c.send_all(s, [Message(body="kept for later")])
        r = c.rcv("queue://" + q, credit=5)
        self.assertFalse(r.refused, r.condition)
        got = c.wait_received(r, 1)
        self.assertEqual(got[0].body, "kept for later")
        r.accept(got[0])
        c.idle(0.3)
        self.assertEqual(r.count(), 1, "delivered once")

    def test_queue_prefix(self):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, [Message(body="one"), Message(body="two")])
        r = c.rcv(q, credit=5, auto_accept=True)
        c.wait_received(r, 2)
        c.idle(0.3)
        self.assertEqual(r.bodies(), ["one", "two"])
        # the broker echoes the address it resolved
        self.assertEqual(r.link.remote_source.address, q)
        self.assertEqual(s.link.remote_target.address, q)

    def test_queue_capability(self):
        """Capability "queue" on a bare name (as Qpid JMS sends it): one
        queue shared by the prefixed and bare spellings."""
        q = self.name()
        c = self.client()
        s = c.snd(q, options=Capabilities("queue"))
        self.assertFalse(s.refused, s.condition)
        c.send_all(s, [Message(body="via capability")])
        r = c.rcv("queue://" + q, credit=5, auto_accept=True)
        self.assertEqual(c.wait_received(r, 1)[0].body, "via capability")
        r2 = c.rcv(q, credit=5, options=Capabilities("queue", array=False), auto_accept=True)
        self.assertFalse(r2.refused, r2.condition)
        c.send_all(s, [Message(body="second")])
        c.pump(lambda: r.count() + r2.count() == 2, what="the second message")
        c.idle(0.3)
        self.assertEqual(sorted(r.bodies() + r2.bodies()), ["second", "via capability"])

    def test_topic_capability(self):
        """Capability "topic" on a bare name makes it the topic of that name,
        not the queue."""
        t = self.name()
        c = self.client()
        r_cap = c.rcv(t, credit=10, options=Capabilities("topic"), auto_accept=True)
        r_pre = c.rcv("topic://" + t, credit=10, auto_accept=True)
        r_queue = c.rcv("queue://" + t, credit=10, auto_accept=True)
        for r in (r_cap, r_pre, r_queue):
            self.assertFalse(r.refused, r.condition)
        s = c.snd(t, options=Capabilities("topic"))
        c.send_all(s, [Message(body="to the topic")])
        c.wait_received(r_cap, 1)
        c.wait_received(r_pre, 1)
        c.idle(0.3)
        self.assertEqual(r_cap.bodies(), ["to the topic"])
        self.assertEqual(r_pre.bodies(), ["to the topic"])
        self.assertEqual(r_queue.bodies(), [], "a topic message reached the queue of that name")

    def test_fifo_1000(self):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, numbered(1000))
        r = c.rcv(q, credit=100, auto_accept=True, keep_window=True)
        c.wait_received(r, 1000)
        c.idle(0.3)
        self.assertEqual(r.bodies(), ["m-%05d" % i for i in range(1000)])
        self.assertEqual([x.msg.properties["seq"] for x in r.received], list(range(1000)))

    def test_competing_receivers(self):
        """Three receivers on their own connections share 3000 messages:
        none lost, none twice, each gets some, each in queue order."""
        q = self.name("queue")
        rcvs = []
        for _ in range(3):
            c = self.client()
            rcvs.append((c, c.rcv(q, credit=10, auto_accept=True, keep_window=True)))
        p = self.client()
        s = p.snd(q)
        p.send_all(s, numbered(3000))
        deadline = time.monotonic() + TIMEOUT
        while sum(r.count() for _, r in rcvs) < 3000:
            if time.monotonic() > deadline:
                self.fail("received %r of 3000" % [r.count() for _, r in rcvs])
            for c, r in rcvs:
                c.idle(0.02)
        for c, r in rcvs:
            c.idle(0.2)
        seqs = [[x.msg.properties["seq"] for x in r.received] for _, r in rcvs]
        every = sorted(x for one in seqs for x in one)
        self.assertEqual(len(every), 3000, "a message was delivered twice")
        self.assertEqual(every, list(range(3000)))
        for one in seqs:
            self.assertGreater(len(one), 0, "a receiver got nothing: %r" % [len(x) for x in seqs])
            self.assertEqual(one, sorted(one), "a receiver got messages out of queue order")

    def test_credit(self):
        """Delivery only against credit: credit 2 gets exactly 2, settling
        them gives no more, more credit brings the rest in order."""
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, numbered(5))
        r = c.rcv(q, credit=2)
        c.wait_received(r, 2)
        c.idle(0.5)
        self.assertEqual(r.bodies(), ["m-00000", "m-00001"])
        self.assertEqual(r.link.credit, 0)
        for x in r.received:
            r.accept(x)
        c.idle(0.5)
        self.assertEqual(r.count(), 2, "settling must not give credit")
        r.link.flow(1)
        c.wait_received(r, 3)
        c.idle(0.3)
        self.assertEqual(r.count(), 3)
        r.link.flow(10)
        c.wait_received(r, 5)
        c.idle(0.3)
        self.assertEqual(r.bodies(), ["m-%05d" % i for i in range(5)])
        self.assertEqual(r.link.credit, 8)

    def test_drain(self):
        """A drain gets what is there, then the broker uses up the rest of
        the credit and the drain completes; nothing comes without credit."""
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, numbered(3))
        r = c.rcv(q)
        r.link.drain(10)
        c.pump(lambda: not r.link.draining(), what="the drain to complete")
        self.assertEqual(r.bodies(), ["m-00000", "m-00001", "m-00002"])
        self.assertEqual(r.link.credit, 0)
        for x in r.received:
            r.accept(x)
        c.send_all(s, numbered(2, "n"))
        c.idle(0.5)
        self.assertEqual(r.count(), 3, "delivered without credit after a drain")
        r.link.flow(1)
        c.wait_received(r, 4)
        c.idle(0.3)
        self.assertEqual(r.bodies()[3:], ["n-00000"])

    def test_drain_empty_queue(self):
        q = self.name("queue")
        c = self.client()
        r = c.rcv(q)
        r.link.drain(5)
        c.pump(lambda: not r.link.draining(), what="the drain of an empty queue to complete")
        self.assertEqual(r.count(), 0)
        self.assertEqual(r.link.credit, 0)
        s = c.snd(q)
        c.send_all(s, [Message(body="later")])
        c.idle(0.5)
        self.assertEqual(r.count(), 0, "delivered without credit after a drain")

    def test_unsettled_go_back_when_link_closes(self):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, numbered(3))
        r = c.rcv(q, credit=3)
        c.wait_received(r, 3)
        r.link.close()
        c.pump(lambda: r.remote_closed, what="the detach")
        c2 = self.client()
        r2 = c2.rcv(q, credit=10, auto_accept=True)
        c2.wait_received(r2, 3)
        c2.idle(0.3)
        self.assertEqual(r2.bodies(), ["m-00000", "m-00001", "m-00002"])

    def test_unsettled_go_back_when_connection_drops(self):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, numbered(3))
        c1 = self.client()
        r = c1.rcv(q, credit=2)
        c1.wait_received(r, 2)
        c1.close()
        r2 = c.rcv(q, credit=10, auto_accept=True)
        c.wait_received(r2, 3)
        c.idle(0.3)
        self.assertEqual(r2.bodies(), ["m-00000", "m-00001", "m-00002"])

    def test_many_sessions_and_links(self):
        """One connection, three sessions, a sender and a receiver on each."""
        c = self.client()
        pairs = []
        for i in range(3):
            ssn = c.conn.session()
            ssn.open()
            q = self.name("queue")
            h_r = self._link_on(c, ssn, q, receiver=True)
            h_s = self._link_on(c, ssn, q, receiver=False)
            pairs.append((q, h_s, h_r))
        for q, h_s, h_r in pairs:
            h_s.send(Message(body="on " + q))
        for q, h_s, h_r in pairs:
            c.wait_received(h_r, 1)
            c.wait_settled(h_s)
        c.idle(0.2)
        for q, h_s, h_r in pairs:
            self.assertEqual(h_r.bodies(), ["on " + q])
            self.assertEqual(h_s.outcomes(), [Delivery.ACCEPTED])

    def _link_on(self, c, ssn, address, receiver):
        h = Rcv(auto_accept=True) if receiver else Snd()
        name = "%s-%s" % ("r" if receiver else "s", uuid.uuid4().hex[:8])
        link = ssn.receiver(name) if receiver else ssn.sender(name)
        if receiver:
            link.source.address = address
            link.target.address = None
        else:
            link.target.address = address
        link.handler = h
        h.link = link
        link.open()
        c.pump(lambda: h.remote_opened or h.remote_closed, what="attach on a second session")
        self.assertFalse(h.remote_closed, h.condition)
        if receiver:
            link.flow(5)
        return h


class HeartbeatTest(AmqpTestCase):

    def test_heartbeats_to_a_client_that_asks(self):
        """A client with an idle-time-out of 1 s hears from the broker more
        often than that, and is not closed for being quiet itself while it
        sends its own empty frames."""
        r = RawAmqp(self.port)
        self.on_teardown(r.close)
        r.open(idle_ms=1000)
        start = last = time.monotonic()
        gaps = []
        while time.monotonic() - start < 2.3:
            f = r.read(0.2)
            now = time.monotonic()
            if f is not None:
                self.assertIsNone(f.desc, "only empty frames expected: %r" % f)
                gaps.append(now - last)
                last = now
            r.send(b"\x00\x00\x00\x08\x02\x00\x00\x00")  # our own heartbeat
            self.assertFalse(r.closed, "the broker closed a live connection")
        self.assertGreaterEqual(len(gaps), 3, gaps)
        self.assertLessEqual(max(gaps), 1.3, gaps)


class OutcomeTest(AmqpTestCase):

    def one(self, body="payload", **kw):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, [Message(body=body, **kw)])
        r = c.rcv(q, credit=1)
        first = c.wait_received(r, 1)[0]
        self.assertEqual(first.msg.delivery_count, 0)
        return c, r, first

    def again(self, c, r):
        n = r.count()
        r.link.flow(1)
        return c.wait_received(r, n + 1)[-1]

    def test_released_redelivered_count_unchanged(self):
        c, r, first = self.one(properties={"k": "v"})
        r.release(first)
        x = self.again(c, r)
        self.assertEqual(x.body, "payload")
        self.assertEqual(x.msg.properties, {"k": "v"})
        self.assertEqual(x.msg.delivery_count, 0)
        r.release(x)
        x = self.again(c, r)
        self.assertEqual(x.msg.delivery_count, 0)
        r.accept(x)
        r.link.flow(1)
        c.idle(0.5)
        self.assertEqual(r.count(), 3, "an accepted message came back")

    def test_modified_delivery_failed_counts(self):
        c, r, first = self.one()
        r.modify(first, failed=True)
        x = self.again(c, r)
        self.assertEqual(x.body, "payload")
        self.assertEqual(x.msg.delivery_count, 1)
        r.modify(x, failed=True)
        x = self.again(c, r)
        self.assertEqual(x.msg.delivery_count, 2)
        r.accept(x)
        r.link.flow(1)
        c.idle(0.5)
        self.assertEqual(r.count(), 3)

    def test_modified_without_delivery_failed_is_a_release(self):
        c, r, first = self.one()
        r.modify(first)
        x = self.again(c, r)
        self.assertEqual(x.body, "payload")
        self.assertEqual(x.msg.delivery_count, 0)
        r.modify(x, failed=True)
        x = self.again(c, r)
        r.modify(x)
        x = self.again(c, r)
        self.assertEqual(x.msg.delivery_count, 1, "modified without delivery-failed changed the count")
        r.accept(x)

    def test_modified_undeliverable_here_goes_to_another_link(self):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, [Message(body="not for a")])
        a = c.rcv(q, credit=1)
        x = c.wait_received(a, 1)[0]
        b = c.rcv(q)
        a.modify(x, undeliverable=True)
        a.link.flow(5)
        c.idle(0.5)
        self.assertEqual(a.count(), 1, "undeliverable-here came back to the same link")
        b.link.flow(1)
        got = c.wait_received(b, 1)
        self.assertEqual(got[0].body, "not for a")

    def test_undeliverable_here_does_not_hold_up_the_queue(self):
        """The only link refuses a message as undeliverable here (and
        failed): what comes after still reaches it, and the refused message
        waits for another link, which gets it counted once."""
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, [Message(body="first")])
        a = c.rcv(q, credit=1)
        x = c.wait_received(a, 1)[0]
        a.modify(x, failed=True, undeliverable=True)
        c.send_all(s, [Message(body="second"), Message(body="third")])
        a.link.flow(5)
        c.wait_received(a, 3)
        c.idle(0.5)
        self.assertEqual(a.bodies(), ["first", "second", "third"])
        for y in a.received[1:]:
            a.accept(y)
        b = c.rcv(q, credit=5)
        c.wait_received(b, 1)
        c.idle(0.3)
        self.assertEqual([(g.body, g.msg.delivery_count) for g in b.received], [("first", 1)])
        self.assertEqual(a.count(), 3)

    def test_rejected_is_dropped(self):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, [Message(body="bad"), Message(body="good")])
        r = c.rcv(q, credit=1)
        x = c.wait_received(r, 1)[0]
        self.assertEqual(x.body, "bad")
        r.reject(x, Condition("amqp:internal-error", "cannot process"))
        r.link.flow(5)
        c.wait_received(r, 2)
        other = c.rcv(q, credit=5)
        c.idle(0.5)
        self.assertEqual(r.bodies(), ["bad", "good"])
        self.assertEqual(other.count(), 0, "a rejected message was delivered again")

    def test_redelivery_keeps_properties_and_annotations(self):
        """A message redelivered after modified(delivery-failed) is the one
        sent: every property, application property and annotation, the
        body; only header.delivery-count changes."""
        m = Message(body={"a": 1, "b": [1, 2, "x"], "c": b"\x00\x01"},
                    properties={"k": "v", "n": 42, "f": 1.5, "t": True},
                    annotations={symbol("x-opt-a"): 1, symbol("x-opt-s"): "s"},
                    subject="subj", id=uuid.uuid4(), user_id=b"u", correlation_id=ulong(7),
                    content_type="application/x-test", content_encoding="gzip",
                    reply_to="queue://r", group_id="g", group_sequence=3,
                    reply_to_group_id="rg", creation_time=1700000000.5,
                    expiry_time=4102444800.0, address="somewhere", durable=True, priority=7,
                    ttl=600)
        c, r, first = self.one_msg(m)
        r.modify(first, failed=True)
        x = self.again(c, r)
        self.assertEqual(x.msg.delivery_count, 1)
        before = dict(sections(first.raw))
        after = dict(sections(x.raw))
        for code in (MESSAGE_ANNOTATIONS, PROPERTIES, APPLICATION_PROPERTIES, AMQP_VALUE):
            self.assertEqual(after.get(code), before.get(code), "section 0x%x changed" % code)
        self.assertEqual(after[HEADER][:3], before[HEADER][:3], "durable/priority/ttl changed")

    def test_redelivery_keeps_every_body_section_and_footer(self):
        """A body of several data sections and a footer survive a
        redelivery as they were sent."""
        raw = (section(HEADER, [True]) + section(MESSAGE_ANNOTATIONS, {symbol("x-opt-m"): "mm"}) +
               section(PROPERTIES, ["id-1"]) + section(DATA, b"part one|") +
               section(DATA, b"part two") + section(FOOTER, {symbol("x-opt-f"): "ff"}))
        c, r, first = self.one_msg(raw)
        self.assertEqual(first.raw, raw, "first delivery altered the message")
        r.modify(first, failed=True)
        x = self.again(c, r)
        self.assertEqual(x.msg.delivery_count, 1)
        secs = sections(x.raw)
        self.assertEqual([v for code, v in secs if code == DATA], [b"part one|", b"part two"])
        self.assertEqual([v for code, v in secs if code == FOOTER], [{symbol("x-opt-f"): "ff"}])

    def one_msg(self, m):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, [m])
        r = c.rcv(q, credit=1)
        first = c.wait_received(r, 1)[0]
        self.assertEqual(first.msg.delivery_count, 0)
        return c, r, first


class SettleModeTest(AmqpTestCase):

    def test_presettled_from_client(self):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q, options=AtMostOnce())
        self.assertFalse(s.refused, s.condition)
        c.send_all(s, numbered(50))
        r = c.rcv(q, credit=100, auto_accept=True)
        c.wait_received(r, 50)
        c.idle(0.3)
        self.assertEqual(r.bodies(), ["m-%05d" % i for i in range(50)])

    def test_presettled_to_client(self):
        """A receiver asking for pre-settled deliveries gets them settled:
        they are gone from the queue without any outcome."""
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, numbered(5))
        r = c.rcv(q, credit=10, options=AtMostOnce())
        self.assertEqual(r.link.remote_snd_settle_mode, Link.SND_SETTLED)
        c.wait_received(r, 5)
        self.assertTrue(all(x.settled_on_arrival for x in r.received), "a delivery came unsettled")
        self.assertEqual(r.bodies(), ["m-%05d" % i for i in range(5)])
        r.link.close()
        c.pump(lambda: r.remote_closed, what="the detach")
        r2 = c.rcv(q, credit=10, auto_accept=True)
        c.idle(0.5)
        self.assertEqual(r2.count(), 0, "a pre-settled delivery came back")

    def test_settle_mode_first_receiver_settles_without_outcome(self):
        """A receiver that settles without any outcome (rcv-settle-mode
        first, no state) consumes the message."""
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, numbered(2))
        r = c.rcv(q, credit=1)
        x = c.wait_received(r, 1)[0]
        x.delivery.settle()
        r.link.flow(1)
        c.wait_received(r, 2)
        r.accept(r.received[1])
        r.link.close()
        c.pump(lambda: r.remote_closed, what="the detach")
        r2 = c.rcv(q, credit=10)
        c.idle(0.5)
        self.assertEqual(r2.count(), 0)


class TopicTest(AmqpTestCase):

    def test_fan_out_to_five(self):
        t = self.name("topic")
        rcvs = []
        for _ in range(5):
            c = self.client()
            rcvs.append((c, c.rcv(t, credit=100, auto_accept=True, keep_window=True)))
        p = self.client()
        s = p.snd(t)
        p.send_all(s, numbered(20))
        for c, r in rcvs:
            c.wait_received(r, 20)
        for c, r in rcvs:
            c.idle(0.1)
            self.assertEqual(r.bodies(), ["m-%05d" % i for i in range(20)])

    def test_published_before_subscribing_is_not_received(self):
        t = self.name("topic")
        c = self.client()
        s = c.snd(t)
        c.send_all(s, [Message(body="nobody listens")])
        r = c.rcv(t, credit=10, auto_accept=True)
        c.send_all(s, [Message(body="now")])
        c.wait_received(r, 1)
        c.idle(0.3)
        self.assertEqual(r.bodies(), ["now"])

    def test_wildcards(self):
        base = self.name()
        c = self.client()
        star = c.rcv("topic://%s.*" % base, credit=100, auto_accept=True)
        rest = c.rcv("topic://%s.>" % base, credit=100, auto_accept=True)
        exact = c.rcv("topic://%s.t1" % base, credit=100, auto_accept=True)
        cap = c.rcv("%s.*" % base, credit=100, auto_accept=True, options=Capabilities("topic"))
        for r in (star, rest, exact, cap):
            self.assertFalse(r.refused, r.condition)
        sends = [("%s.t1" % base, "a"), ("%s.t2" % base, "b"), ("%s.t1.x" % base, "c"),
                 (base, "d"), ("other-%s.t1" % base, "e")]
        for name, body in sends:
            s = c.snd("topic://" + name)
            c.send_all(s, [Message(body=body)])
        c.pump(lambda: rest.count() >= 4 and star.count() >= 2 and cap.count() >= 2
               and exact.count() >= 1, what="wildcard deliveries")
        c.idle(0.3)
        self.assertEqual(star.bodies(), ["a", "b"])
        self.assertEqual(cap.bodies(), ["a", "b"])
        self.assertEqual(rest.bodies(), ["a", "b", "c", "d"])
        self.assertEqual(exact.bodies(), ["a"])

    def test_durable_subscription_misses_nothing_across_detach(self):
        t = self.name("topic")
        cid = "durable-" + uuid.uuid4().hex[:8]
        c = self.client(container_id=cid)
        r = c.rcv(t, credit=10, name="sub1", options=DurableSubscription(), auto_accept=True)
        self.assertFalse(r.refused, r.condition)
        p = self.client()
        s = p.snd(t)
        p.send_all(s, [Message(body="while attached")])
        c.wait_received(r, 1)
        r.link.detach()
        c.pump(lambda: r.remote_closed, what="the detach")
        p.send_all(s, [Message(body="while detached 1"), Message(body="while detached 2")])
        r2 = c.rcv(t, credit=10, name="sub1", options=DurableSubscription(), auto_accept=True)
        c.wait_received(r2, 2)
        c.idle(0.3)
        self.assertEqual(r2.bodies(), ["while detached 1", "while detached 2"])
        r2.link.close()  # closed=true removes the subscription
        c.pump(lambda: r2.remote_closed, what="the close")
        p.send_all(s, [Message(body="after the close")])
        r3 = c.rcv(t, credit=10, name="sub1", options=DurableSubscription(), auto_accept=True)
        c.idle(0.5)
        self.assertEqual(r3.bodies(), [])


    def test_durable_subscription_survives_the_connection(self):
        """A durable wildcard subscription keeps what is published while its
        client is away (connection dropped, no detach) and a new connection
        with the same container id and link name resumes it, in order."""
        base = self.name()
        cid = "durable-" + uuid.uuid4().hex[:8]
        c = self.client(container_id=cid)
        r = c.rcv("topic://%s.*" % base, credit=10, name="sub-w", options=DurableSubscription(),
                  auto_accept=True)
        self.assertFalse(r.refused, r.condition)
        c.close()
        p = self.client()
        for i in range(5):
            s = p.snd("topic://%s.t%d" % (base, i))
            p.send_all(s, [Message(body="away %d" % i)])
        c2 = self.client(container_id=cid)
        r2 = c2.rcv("topic://%s.*" % base, credit=10, name="sub-w",
                    options=DurableSubscription(), auto_accept=True)
        c2.wait_received(r2, 5)
        c2.idle(0.3)
        self.assertEqual(r2.bodies(), ["away %d" % i for i in range(5)])
        # another container's link of the same name is another subscription
        c3 = self.client(container_id=cid + "-other")
        r3 = c3.rcv("topic://%s.*" % base, credit=10, name="sub-w",
                    options=DurableSubscription(), auto_accept=True)
        c3.idle(0.3)
        self.assertEqual(r3.bodies(), [])
        r2.link.close()
        c2.pump(lambda: r2.remote_closed, what="the close")
        r3.link.close()
        c3.pump(lambda: r3.remote_closed, what="the close")

    def test_durable_subscriptions_of_similar_container_ids_are_apart(self):
        """Container ids 'x.y' and 'x_y' are two clients: each durable
        subscription gets every message."""
        t = self.name("topic")
        tag = uuid.uuid4().hex[:6]
        rcvs = []
        for cid in ("app.%s" % tag, "app_%s" % tag):
            c = self.client(container_id=cid)
            rcvs.append((c, c.rcv(t, credit=10, name="orders", options=DurableSubscription(),
                                  auto_accept=True)))
        p = self.client()
        s = p.snd(t)
        p.send_all(s, numbered(4))
        for c, r in rcvs:
            c.wait_received(r, 4, timeout=5)
        for c, r in rcvs:
            c.idle(0.2)
            self.assertEqual(r.bodies(), ["m-%05d" % i for i in range(4)])
            r.link.close()
            c.pump(lambda: r.remote_closed, what="the close")

    def test_durable_subscription_attached_to_another_address_starts_afresh(self):
        """The same container and link name on another topic is a new
        subscription, as a JMS durable subscriber that changes topic: the
        old topic's messages no longer collect for it, and what waited
        is dropped."""
        old, new = self.name("old"), self.name("new")
        cid = "durable-" + uuid.uuid4().hex[:8]
        c = self.client(container_id=cid)
        r = c.rcv(old, credit=10, name="moving", options=DurableSubscription(), auto_accept=True)
        self.assertFalse(r.refused, r.condition)
        r.link.detach()
        c.pump(lambda: r.remote_closed, what="the detach")
        p = self.client()
        p.send_all(p.snd(old), [Message(body="for the old topic")])
        r2 = c.rcv(new, credit=10, name="moving", options=DurableSubscription(), auto_accept=True)
        self.assertFalse(r2.refused, r2.condition)
        p.send_all(p.snd(old), [Message(body="old again")])
        p.send_all(p.snd(new), [Message(body="new")])
        c.wait_received(r2, 1)
        c.idle(0.3)
        self.assertEqual(r2.bodies(), ["new"])
        r2.link.close()
        c.pump(lambda: r2.remote_closed, what="the close")

    def test_durable_and_dynamic_queues_are_not_for_others(self):
        """A durable subscription's queue (wharf.durable.*) is its
        subscriber's alone; a dynamic reply queue (wharf.temp.*) takes
        messages from anyone but is consumed by its maker only."""
        t = self.name("topic")
        cid = "durable-" + uuid.uuid4().hex[:8]
        owner = self.client(container_id=cid)
        r = owner.rcv(t, credit=10, name="mine", options=DurableSubscription(), auto_accept=True)
        self.assertFalse(r.refused, r.condition)
        reply = owner.rcv(None, credit=10, auto_accept=True, wait=False)
        reply.link.source.dynamic = True
        owner.pump(lambda: reply.remote_opened or reply.remote_closed, what="dynamic attach")
        temp = reply.link.remote_source.address
        self.assertTrue(temp.startswith("wharf.temp."), temp)
        thief = self.client()
        for address in ("wharf.durable.%s.mine" % cid, temp):
            stolen = thief.rcv(address, credit=10)
            self.assertTrue(stolen.refused, "%s could be consumed by another client" % address)
            self.assertEqual(stolen.condition.name, "amqp:unauthorized-access")
        into = thief.snd("wharf.durable.%s.mine" % cid)
        self.assertTrue(into.refused, "a durable subscription's queue took a message directly")
        thief.send_all(thief.snd(temp), [Message(body="the reply")])
        owner.wait_received(reply, 1)
        self.assertEqual(reply.bodies(), ["the reply"])
        r.link.close()
        owner.pump(lambda: r.remote_closed, what="the close")

    def test_unsettled_durable_messages_come_back_on_resume(self):
        t = self.name("topic")
        cid = "durable-" + uuid.uuid4().hex[:8]
        c = self.client(container_id=cid)
        r = c.rcv(t, credit=10, name="sub-u", options=DurableSubscription())
        p = self.client()
        s = p.snd(t)
        p.send_all(s, numbered(3))
        c.wait_received(r, 3)
        r.accept(r.received[0])
        c.idle(0.2)
        c.close()  # two delivered, never settled
        c2 = self.client(container_id=cid)
        r2 = c2.rcv(t, credit=10, name="sub-u", options=DurableSubscription(), auto_accept=True)
        c2.wait_received(r2, 2)
        c2.idle(0.3)
        self.assertEqual(r2.bodies(), ["m-00001", "m-00002"])
        r2.link.close()
        c2.pump(lambda: r2.remote_closed, what="the close")


class FlowControlTest(AmqpTestCase):
    """A publisher that outruns a subscriber gets no more credit; nothing
    it had accepted is lost (docs/operations.md, flow control)."""

    config = "topic_max_pending = 20\n"

    def test_publisher_slowed_by_full_subscription(self):
        self.check_slowed(link_target=self.name("topic"))

    def test_anonymous_relay_to_a_slow_subscription_slows_the_sender(self):
        """Flow control holds on a relay link as on any other."""
        self.check_slowed(link_target=None)

    def check_slowed(self, link_target):
        """Publishes to a topic whose subscriber gives no credit, on a link
        to the topic or (link_target None) an anonymous relay link."""
        t = link_target or self.name("topic")
        c = self.client()
        r = c.rcv(t, credit=0)
        p = self.client()
        s = p.snd(link_target)
        total = 2000
        for m in numbered(total, address=None if link_target else t):
            s.send(m)
        p.idle(1.5)
        accepted = sum(1 for d in s.deliveries if d.remote_state == Delivery.ACCEPTED)
        self.assertLess(accepted, total, "the publisher was never slowed")
        self.assertLessEqual(accepted, 20 + 500, "more than one credit window past the bound")
        self.assertLessEqual(s.link.credit, 0, "the publisher still has credit")
        self.assertTrue(all(d.remote_state in (0, Delivery.ACCEPTED) for d in s.deliveries),
                        "a transfer was refused instead of held back")
        # the subscriber catches up: everything arrives, in order, once
        r.link.flow(total)
        deadline = time.monotonic() + TIMEOUT
        while r.count() < total or not s.all_settled():
            if time.monotonic() > deadline:
                self.fail("received %d of %d; %d accepted" % (
                    r.count(), total,
                    sum(1 for d in s.deliveries if d.remote_state == Delivery.ACCEPTED)))
            c.idle(0.05)
            p.idle(0.05)
        c.idle(0.3)
        self.assertEqual(s.outcomes(), [Delivery.ACCEPTED] * total)
        self.assertEqual(r.bodies(), ["m-%05d" % i for i in range(total)])

    def test_presettled_publisher_not_slowed_excess_dropped(self):
        """Pre-settled transfers are at most once (DESIGN.md §5a, as MQTT
        QoS 0): past a full subscription they are dropped, and the
        publisher keeps its credit."""
        t = self.name("topic")
        c = self.client()
        r = c.rcv(t, credit=0)
        p = self.client()
        s = p.snd(t, options=AtMostOnce())
        total = 2000
        p.send_all(s, numbered(total))
        self.assertGreater(s.link.credit, 0, "the pre-settled publisher was slowed")
        # the broker reads a connection's frames in order: once this is
        # accepted, it has routed every pre-settled transfer before it
        sync = p.snd(self.name("queue"))
        p.send_all(sync, [Message(body="sync")])
        r.link.flow(total)
        c.wait_received(r, 20)
        c.idle(0.5)
        self.assertEqual(r.bodies(), ["m-%05d" % i for i in range(20)])


class SlowConsumerTest(AmqpTestCase):
    """A receiver with plenty of credit that stops reading: the broker holds
    what it cannot write in the queue, not in its output buffer, and
    resumes when the client reads again."""

    config = "max_connection_output = 65536\n"

    def test_receiver_that_stops_reading_gets_everything_later(self):
        q = self.name("queue")
        total, pad = 2000, "x" * 4096
        r = RawAmqp(self.port, rcvbuf=16384)
        self.on_teardown(r.close)
        r.open()
        r.begin(window=100000)
        r.attach("slow", 0, True, q)
        r.send(flow(0, total, window=100000))
        p = self.client()
        s = p.snd(q)
        # 8 MiB: more than the socket buffers and max_connection_output
        p.send_all(s, [Message(body="%05d %s" % (i, pad)) for i in range(total)])
        bodies = []
        deadline = time.monotonic() + TIMEOUT
        while len(bodies) < total:
            f = r.read(max(0.1, deadline - time.monotonic()))
            if f is None:
                self.fail("got %d of %d messages (closed=%s)" % (len(bodies), total, r.closed))
            if f.desc == TRANSFER:
                self.assertFalse(f.field(5), "a 4 KiB message split in frames")
                bodies.append(dict(sections(f.payload))[AMQP_VALUE])
        self.assertEqual([b[:5] for b in bodies], ["%05d" % i for i in range(total)])
        self.assertTrue(all(b[6:] == pad for b in bodies))
        r.send(frame(DISPOSITION, [True, uint(0), uint(total - 1), True,
                                   Described(ulong(ACCEPTED), [])]))
        c = self.client()
        again = c.rcv(q, credit=10)
        c.idle(0.3)
        self.assertEqual(again.count(), 0, "settled messages came back")


class SaslTest(AmqpTestCase):

    def test_plain_and_anonymous_offered(self):
        r = RawAmqp(self.port)
        self.on_teardown(r.close)
        offered, out = r.sasl("ANONYMOUS")
        self.assertIn("PLAIN", offered)
        self.assertIn("ANONYMOUS", offered)
        self.assertEqual(out.field(0), 0)

    def test_plain_client_sends_and_receives(self):
        c = self.client(user="alice", password="secret", allowed_mechs="PLAIN")
        q = self.name("queue")
        s = c.snd(q)
        c.send_all(s, [Message(body="as alice")])
        r = c.rcv(q, credit=1, auto_accept=True)
        self.assertEqual(c.wait_received(r, 1)[0].body, "as alice")

    def test_bad_sasl_fails_and_closes(self):
        """A malformed PLAIN response, an empty identity or a mechanism not
        offered gets outcome auth (1); the broker then closes."""
        for mech, resp in (("PLAIN", b"no separators"), ("PLAIN", b"\x00\x00pw"),
                           ("CRAM-MD5", b"x")):
            r = RawAmqp(self.port)
            self.on_teardown(r.close)
            _, out = r.sasl(mech, resp)
            self.assertEqual(out.field(0), 1, (mech, resp, out))
            r.wait_closed(2.0)


class MessageTest(AmqpTestCase):
    """AMQP -> AMQP: what one client sends another receives intact."""

    def roundtrip(self, msgs):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, msgs)
        r = c.rcv(q, credit=len(msgs), auto_accept=True)
        c.wait_received(r, len(msgs))
        return r.received

    def test_body_types(self):
        cases = [
            (Message(body={"k": "v", "n": 1, "nested": {"l": [1, 2.5, None, True]}}),
             AMQP_VALUE, {"k": "v", "n": 1, "nested": {"l": [1, 2.5, None, True]}}),
            (Message(body=[1, "two", b"\x03", [4]]), AMQP_VALUE, [1, "two", b"\x03", [4]]),
            (Message(body="h\u00e9llo \u2713"), AMQP_VALUE, "h\u00e9llo \u2713"),
            (Message(body=""), AMQP_VALUE, ""),
            (Message(body=b"\x00\x01\xff binary"), AMQP_VALUE, b"\x00\x01\xff binary"),
            (Message(body=b"\x00\x01\xff data" * 100, inferred=True), DATA,
             b"\x00\x01\xff data" * 100),
            (Message(body=b"", inferred=True), DATA, b""),
            (Message(body=[1, "a", [2]], inferred=True), AMQP_SEQUENCE, [1, "a", [2]]),
            (Message(body=12345), AMQP_VALUE, 12345),
        ]
        got = self.roundtrip([m for m, _, _ in cases])
        for (m, code, value), x in zip(cases, got):
            bs = body_sections(x.raw)
            self.assertEqual(bs, [(code, value)], "body of %r" % (m.body,))
            self.assertEqual(x.msg.body, value)

    def test_properties_and_annotations_intact(self):
        mid = uuid.uuid4()
        m = Message(body="p", id=mid, user_id=b"user", address="to-here", subject="subj",
                    reply_to="queue://replies", correlation_id="corr-1",
                    content_type="application/json", content_encoding="utf-8",
                    expiry_time=4102444800.0, creation_time=1700000000.25, group_id="g1",
                    group_sequence=9, reply_to_group_id="rg1", durable=True, priority=8,
                    ttl=3600, properties={"s": "text", "i": 7, "l": ulong(2 ** 40), "b": False,
                                          "d": 2.5, "bin": b"\x00\xff", "ts": timestamp(1700000000000),
                                          "sym": symbol("sym")},
                    annotations={symbol("x-opt-jms-msg-type"): ubyte(5),
                                 symbol("x-opt-custom"): "kept"})
        x = self.roundtrip([m])[0]
        g = x.msg
        self.assertEqual(g.id, mid)
        self.assertEqual(g.user_id, b"user")
        self.assertEqual(g.address, "to-here")
        self.assertEqual(g.subject, "subj")
        self.assertEqual(g.reply_to, "queue://replies")
        self.assertEqual(g.correlation_id, "corr-1")
        self.assertEqual(g.content_type, "application/json")
        self.assertEqual(g.content_encoding, "utf-8")
        self.assertEqual(g.expiry_time, 4102444800.0)
        self.assertEqual(g.creation_time, 1700000000.25)
        self.assertEqual((g.group_id, g.group_sequence, g.reply_to_group_id), ("g1", 9, "rg1"))
        self.assertTrue(g.durable)
        self.assertEqual(g.priority, 8)
        self.assertEqual(g.ttl, 3600)
        self.assertEqual(g.properties, m.properties)
        self.assertEqual(type(g.properties["l"]), ulong)
        self.assertEqual(type(g.properties["sym"]), symbol)
        self.assertEqual(g.annotations, m.annotations)
        self.assertEqual(g.body, "p")
        self.assertEqual(g.delivery_count, 0)

    def test_correlation_id_types(self):
        ids = ["text-id", ulong(42), uuid.uuid4(), b"\x00\x01binary"]
        got = self.roundtrip([Message(body=i, correlation_id=cid) for i, cid in enumerate(ids)])
        self.assertEqual([x.msg.correlation_id for x in got], ids)
        # the AMQP type on the wire (proton's getter turns a ulong into int)
        wire = [dict(sections(x.raw))[PROPERTIES][5] for x in got]
        self.assertEqual([type(w) for w in wire], [type(i) for i in ids])

    def test_large_message_split_in_frames(self):
        """1 MiB each way with a client max-frame-size of 4096: the broker
        reassembles the transfer and splits its own to fit."""
        q = self.name("queue")
        body = bytes(range(256)) * 4096
        c = self.client(max_frame_size=4096)
        s = c.snd(q)
        c.send_all(s, [Message(body=body, inferred=True)])
        r = c.rcv(q, credit=1, auto_accept=True)
        x = c.wait_received(r, 1)[0]
        self.assertEqual(body_sections(x.raw), [(DATA, body)])

    def test_ttl_expired_not_delivered(self):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, [Message(body="short", ttl=0.2), Message(body="long", ttl=600),
                       Message(body="past", expiry_time=time.time() - 10),
                       Message(body="none")])
        time.sleep(0.5)
        r = c.rcv(q, credit=10, auto_accept=True)
        c.wait_received(r, 2)
        c.idle(0.3)
        self.assertEqual(r.bodies(), ["long", "none"])

    def test_anonymous_relay(self):
        q = self.name("queue")
        t = self.name("topic")
        c = self.client()
        r_q = c.rcv(q, credit=5, auto_accept=True)
        r_t = c.rcv(t, credit=5, auto_accept=True)
        s = c.snd(None)
        self.assertFalse(s.refused, s.condition)
        c.send_all(s, [Message(body="to q", address=q), Message(body="to t", address=t)])
        c.wait_received(r_q, 1)
        c.wait_received(r_t, 1)
        self.assertEqual((r_q.bodies(), r_t.bodies()), (["to q"], ["to t"]))

    def test_anonymous_relay_offered(self):
        """The broker's open offers ANONYMOUS-RELAY (Qpid JMS looks for it
        before it uses one sender for every destination)."""
        caps = self.client().conn.remote_offered_capabilities
        if hasattr(caps, "elements"):
            caps = caps.elements
        elif not isinstance(caps, (list, tuple)):
            caps = [caps]
        self.assertIn(symbol("ANONYMOUS-RELAY"), caps)

    def test_anonymous_relay_destinations_and_refusals(self):
        """Each message goes where its to says, a bare name being a queue;
        one with no to, a bad one or a reserved one is rejected with its
        condition, and the link carries on."""
        bare = self.name()
        q = self.name("queue")
        c = self.client()
        r_bare = c.rcv(bare, credit=5, auto_accept=True)
        r_q = c.rcv(q, credit=5, auto_accept=True)
        s = c.snd(None)
        self.assertFalse(s.refused, s.condition)
        msgs = [Message(body="bare", address=bare), Message(body="nowhere"),
                Message(body="bad", address="queue://bad\x01name"),
                Message(body="forged", address="topic://$SYS.broker.fake"),
                Message(body="prefixed", address=q), Message(body="bare again", address=bare)]
        for m in msgs:
            s.send(m)
        c.wait_settled(s)
        outcomes = [(d.remote_state, d.remote.condition and d.remote.condition.name)
                    for d in s.deliveries]
        self.assertEqual(outcomes, [(Delivery.ACCEPTED, None),
                                    (Delivery.REJECTED, "amqp:not-found"),
                                    (Delivery.REJECTED, "amqp:invalid-field"),
                                    (Delivery.REJECTED, "amqp:unauthorized-access"),
                                    (Delivery.ACCEPTED, None), (Delivery.ACCEPTED, None)])
        c.wait_received(r_bare, 2)
        c.wait_received(r_q, 1)
        c.idle(0.3)
        self.assertEqual((r_bare.bodies(), r_q.bodies()), (["bare", "bare again"], ["prefixed"]))

    def test_transaction_commit_and_abort(self):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        for outcome in ("commit", "abort"):
            h = TxEvents()
            tx = c.bc.container.declare_transaction(c.conn, handler=h)
            ctrl = tx.txn_ctrl
            c.pump(lambda: h.events or ctrl.state & Endpoint.REMOTE_CLOSED, what="the declare")
            self.assertFalse(ctrl.state & Endpoint.REMOTE_CLOSED,
                             "coordinator link refused: %s" % ctrl.remote_condition)
            self.assertEqual(h.events, ["declared"])
            tx.send(s.link, Message(body=outcome))
            getattr(tx, outcome)()
            c.pump(lambda: len(h.events) > 1, what="the discharge")
            self.assertEqual(h.events[1], "committed" if outcome == "commit" else "aborted")
        r = c.rcv(q, credit=5, auto_accept=True)
        c.wait_received(r, 1)
        c.idle(0.3)
        self.assertEqual(r.bodies(), ["commit"])


if __name__ == "__main__":
    main()
