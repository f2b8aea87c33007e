#!/usr/bin/env python3
"""AMQP 1.0 bad input and refusals (issue 4, "Bad input"; AMQP 1.0 §2.2,
§2.3, §2.4): a wrong protocol header gets an AMQP header back and a close;
garbage after the header, frames past the max frame size and performatives
out of order get a close with an error condition; links to addresses that
cannot be used are refused with an error condition (amqp:not-found when
auto-create is off). Meanwhile a well-behaved proton client keeps sending
and receiving on its own queue and must get every message."""
import signal
import struct
import time
import unittest

from proton import Delivery, Message, uint

from amqptest import (AMQP_HEADER, AMQP_VALUE, ATTACH, BEGIN, CLOSE, DETACH, DISPOSITION, END,
                      HEADER, OPEN, PROPERTIES, SASL_HEADER, TRANSFER, AmqpTestCase,
                      Capabilities, RawAmqp, flow, frame, section, simple_message, transfer)
from wharftest import Broker, main

# A broker closes a bad connection at once; this much is generous under ASan.
CLOSE_TIMEOUT = 2.0

HEADERS_OK = (AMQP_HEADER, SASL_HEADER)


class BadInputTest(AmqpTestCase):
    """Each test misbehaves on raw sockets while a bystander client keeps
    its traffic going; tearDown checks the bystander got everything."""

    def setUp(self):
        super().setUp()
        self.by = self.bystander()

    def tearDown(self):
        try:
            self.by.check(self)
        finally:
            super().tearDown()

    def error_close(self, r, conditions=None):
        """Asserts the broker sends a close (or an end) with an error
        condition, one of `conditions` if given, and then closes the
        socket. Returns the condition name."""
        deadline = time.monotonic() + CLOSE_TIMEOUT
        got = []
        while True:
            f = r.read(max(0.0, deadline - time.monotonic()))
            if f is None:
                self.fail("no close with an error condition (socket closed: %s); read %r"
                          % (r.closed, got))
            got.append(f)
            if f.desc in (CLOSE, END) and f.error():
                break
        name = f.error()[0]
        if conditions:
            self.assertIn(name, conditions, f.error())
        else:
            self.assertTrue(name.startswith("amqp:"), f.error())
        try:
            r.wait_closed(CLOSE_TIMEOUT)
        except AssertionError as e:
            self.fail("sent close %r, then kept the socket open: %s" % (f.error(), e))
        return name

    # ---- the protocol header ----

    def test_http_request_gets_amqp_header_and_close(self):
        r = self.raw()
        r.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        self.assertIn(r.read_header(), HEADERS_OK)
        r.wait_closed(CLOSE_TIMEOUT)

    def test_unsupported_versions_get_amqp_header_and_close(self):
        for bad in (b"AMQP\x00\x02\x00\x00", b"AMQP\x00\x00\x09\x01"):
            r = self.raw()
            r.send(bad)
            self.assertIn(r.read_header(), HEADERS_OK, bad)
            r.wait_closed(CLOSE_TIMEOUT)

    def test_tls_on_plain_port_gets_amqp_header_and_close(self):
        """The AMQP TLS header, or a TLS ClientHello, on the plain port: no
        TLS here, so the broker answers with a header it speaks and closes
        rather than leaving the client waiting."""
        hello = bytes.fromhex("160301002e0100002a0303") + b"\x00" * 32 + b"\x00\x00\x02\x00\x2f\x01\x00"
        for bad in (b"AMQP\x02\x01\x00\x00", hello):
            r = self.raw()
            r.send(bad)
            self.assertIn(r.read_header(CLOSE_TIMEOUT), HEADERS_OK, bad[:8])
            r.wait_closed(CLOSE_TIMEOUT)

    def test_idle_timeout_under_a_second_is_refused(self):
        """A client asking for an idle-time-out of 1 ms would have the
        broker write 2,000 empty frames a second, for ever: it is refused at
        its open with amqp:resource-limit-exceeded; a second is taken."""
        r = self.raw()
        r.open(idle_ms=1)
        self.error_close(r, ("amqp:resource-limit-exceeded",))
        r = self.raw()
        self.assertEqual(r.open(idle_ms=1000).desc, OPEN)

    def test_sasl_anonymous_by_hand(self):
        r = self.raw()
        o = r.open(sasl=True)
        self.assertEqual(o.desc, OPEN)

    # ---- frames ----

    def test_garbage_after_header(self):
        r = self.raw()
        r.send(AMQP_HEADER + b"\x00\x00\x00\x10\x02\x00\x00\x00" + b"\xde\xad\xbe\xef" * 2)
        self.assertEqual(r.read_header(), AMQP_HEADER)
        self.error_close(r, ("amqp:connection:framing-error", "amqp:decode-error"))

    def test_garbage_after_open(self):
        r = self.raw()
        r.open()
        r.send(b"\x00\x00\x00\x0c\x02\x00\x00\x00\xff\xff\xff\xff")
        self.error_close(r, ("amqp:connection:framing-error", "amqp:decode-error"))

    def test_frame_smaller_than_its_header(self):
        r = self.raw()
        r.open()
        r.send(b"\x00\x00\x00\x04\x02\x00\x00\x00")
        self.error_close(r, ("amqp:connection:framing-error",))

    def test_data_offset_inside_frame_header(self):
        r = self.raw()
        r.open()
        r.send(b"\x00\x00\x00\x0c\x01\x00\x00\x00" + b"\x00\x53\x10\x45")
        self.error_close(r, ("amqp:connection:framing-error",))

    def test_frame_over_max_frame_size(self):
        r = self.raw()
        o = r.open()
        max_frame = o.field(2)
        self.assertIsNotNone(max_frame, "the broker sets no max-frame-size in its open")
        self.assertLess(max_frame, 2 ** 32 - 1)
        r.begin()
        r.attach("s", 0, False, self.name("queue"))
        big = simple_message("x" * (max_frame + 100))
        r.send(transfer(0, 0, b"t", big))
        self.error_close(r, ("amqp:connection:framing-error",))

    def test_frame_announcing_2_gib(self):
        """The size field alone is enough to refuse: the broker does not
        wait for (or buffer) the 2 GiB."""
        r = self.raw()
        r.open()
        r.send(struct.pack("!IBBH", 0x7FFFFFFF, 2, 0, 0) + b"\x00" * 64)
        self.error_close(r, ("amqp:connection:framing-error",))

    def test_broker_honours_client_max_frame_size(self):
        """A client that takes frames of at most 512 bytes gets a 20 KiB
        message in transfers that fit, which together are the message."""
        q = self.name("queue")
        message = (section(HEADER, [True]) + section(PROPERTIES, ["big-1"]) +
                   section(AMQP_VALUE, "0123456789abcdef" * 1280))
        r = self.raw()
        r.open(max_frame=512)
        r.begin()
        r.attach("big", 0, True, q)
        r.send(flow(0, 1))
        c = self.client()
        s = c.snd(q)
        c.send_all(s, [message])
        got = []
        deadline = time.monotonic() + 10
        while True:
            f = r.expect(TRANSFER, max(0.1, deadline - time.monotonic()))
            got.append(f)
            if not f.field(5):  # more
                break
        self.assertGreater(len(got), 1)
        self.assertTrue(all(f.size <= 512 for f in got), [f.size for f in got])
        self.assertEqual(b"".join(f.payload for f in got), message)

    # ---- performatives out of order ----

    def test_begin_before_open(self):
        r = self.raw()
        r.send(AMQP_HEADER + frame(BEGIN, [None, uint(0), uint(100), uint(100)]))
        self.assertEqual(r.read_header(), AMQP_HEADER)
        self.error_close(r)

    def test_attach_on_channel_never_begun(self):
        r = self.raw()
        r.open()
        r.begin()
        r.send(frame(ATTACH, ["l", uint(0), False, None, None, None, None, None, None, uint(0)],
                     channel=5))
        self.error_close(r)

    def test_transfer_on_link_never_attached(self):
        r = self.raw()
        r.open()
        r.begin()
        r.send(transfer(7, 0, b"t", simple_message("nowhere")))
        self.error_close(r, ("amqp:session:unattached-handle", "amqp:invalid-field",
                             "amqp:not-allowed"))

    def test_first_frame_of_a_delivery_without_delivery_id(self):
        """A transfer that starts a delivery in several frames without a
        delivery-id: proton 0.37 would abort the broker on it; the client
        gets a close with an error instead."""
        r = self.raw()
        r.open()
        r.begin()
        r.attach("s", 0, False, self.name("queue"))
        r.send(frame(TRANSFER, [uint(0), None, b"t", uint(0), False, True],
                     payload=simple_message("first part")))
        self.error_close(r, ("amqp:invalid-field",))

    def test_first_frame_without_delivery_id_aborted_at_once(self):
        """The same first frame with aborted set (found by fuzz_amqp: proton
        asserts before it looks at `aborted`, and the broker died)."""
        r = self.raw()
        r.open()
        r.begin()
        r.attach("s", 0, False, self.name("queue"))
        r.send(frame(TRANSFER, [uint(0), None, None, None, None, True, None, None, None, True]))
        self.error_close(r, ("amqp:invalid-field",))

    def test_new_delivery_without_id_after_an_aborted_one(self):
        r = self.raw()
        r.open()
        r.begin()
        r.attach("s", 0, False, self.name("queue"))
        r.send(frame(TRANSFER, [uint(0), uint(0), b"t1", uint(0), False, True],
                     payload=simple_message("first part")))
        r.send(frame(TRANSFER, [uint(0), None, None, None, None, False, None, None, None, True]))
        r.send(frame(TRANSFER, [uint(0), None, b"t2", uint(0), False, True],
                     payload=simple_message("again")))
        self.error_close(r, ("amqp:invalid-field",))

    def test_continuation_frames_may_leave_out_the_delivery_id(self):
        """AMQP 1.0 §2.7.5: only the first transfer of a delivery needs its
        delivery-id; one in three frames, the later two without, arrives
        whole, and so does the next delivery."""
        q = self.name("queue")
        whole = simple_message("in three parts " * 20)
        parts = [whole[:40], whole[40:100], whole[100:]]
        r = self.raw()
        r.open()
        r.begin()
        r.attach("s", 0, False, q)
        r.send(frame(TRANSFER, [uint(0), uint(0), b"t1", uint(0), False, True], payload=parts[0]))
        r.send(frame(TRANSFER, [uint(0), None, None, None, None, True], payload=parts[1]))
        r.send(frame(TRANSFER, [uint(0), None, None, None, None, False], payload=parts[2]))
        r.send(transfer(0, 1, b"t2", simple_message("next")))
        d = r.expect(DISPOSITION)
        self.assertEqual(d.field(0), True)  # from the receiver: the outcome
        c = self.client()
        rcv = c.rcv(q, credit=10, auto_accept=True)
        c.wait_received(rcv, 2)
        c.idle(0.3)
        self.assertEqual([x.raw for x in rcv.received], [whole, simple_message("next")])

    def test_aborted_transfer_is_discarded(self):
        q = self.name("queue")
        r = self.raw()
        r.open()
        r.begin()
        r.attach("s", 0, False, q)
        r.send(frame(TRANSFER, [uint(0), uint(0), b"t1", uint(0), False, True],
                     payload=simple_message("first part")))
        r.send(frame(TRANSFER, [uint(0), None, None, None, None, False, None, None, None,
                                True]))
        r.send(transfer(0, 1, b"t2", simple_message("whole")))
        r.expect(DISPOSITION)
        c = self.client()
        rcv = c.rcv(q, credit=10, auto_accept=True)
        c.wait_received(rcv, 1)
        c.idle(0.3)
        self.assertEqual(rcv.bodies(), ["whole"])

    def test_undecodable_message_is_rejected(self):
        """Transfers that are no AMQP message (garbage, a valid section
        followed by garbage, no section at all) are rejected with
        amqp:decode-error and never delivered; the link and the connection
        go on."""
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        bad = [b"\xff\xfe not an AMQP message", simple_message("hello") + b"\xff\xff",
               b"\x40", b""]
        for b in bad:
            s.send(b)
        good = s.send(Message(body="good"))
        c.wait_settled(s)
        outcomes = [(d.remote_state, d.remote.condition and d.remote.condition.name)
                    for d in s.deliveries[:len(bad)]]
        self.assertEqual(good.remote_state, Delivery.ACCEPTED)
        rcv = c.rcv(q, credit=10)
        c.wait_received(rcv, 1)
        c.idle(0.3)
        self.assertEqual(outcomes, [(Delivery.REJECTED, "amqp:decode-error")] * len(bad))
        self.assertEqual([x.raw for x in rcv.received], [Message(body="good").encode()])

    def test_many_bad_connections_at_once(self):
        """Thirty misbehaving connections together: every one gets an AMQP
        header back, and the bystander carries on."""
        bad = [b"GET / HTTP/1.1\r\n\r\n", b"AMQP\x00\x02\x00\x00",
               AMQP_HEADER + b"\x00\x00\x00\x0c\x02\x00\x00\x00\xff\xff\xff\xff",
               AMQP_HEADER + b"\x00\x00\x00\x04\x02\x00\x00\x00",
               SASL_HEADER + b"\x00" * 40]
        conns = []
        for i in range(30):
            r = self.raw()
            r.send(bad[i % len(bad)])
            conns.append(r)
        for r in conns:
            self.assertIn(r.read_header(), HEADERS_OK)
        self.by.wait_progress(10)
        for r in conns:
            r.close()


class ShutdownTest(unittest.TestCase):
    """A broker of its own, stopped in the test."""

    def test_shutdown_closes_with_connection_forced(self):
        with Broker(("amqp",)) as b:
            r = RawAmqp(b.ports["amqp"])
            try:
                r.open()
                r.begin()
                b.proc.send_signal(signal.SIGTERM)
                frames = r.wait_closed(10)
            finally:
                r.close()
            self.assertEqual(b.proc.wait(20), 0, b.output())
            closes = [f for f in frames if f.desc == CLOSE]
            self.assertEqual(len(closes), 1, frames)
            self.assertEqual(closes[0].error() and closes[0].error()[0], "amqp:connection:forced",
                             closes[0])


class LinkRefusalTest(AmqpTestCase):

    def assert_refused(self, h, conditions=None):
        self.assertTrue(h.refused, "the link was not refused")
        self.assertIsNotNone(h.condition, "refused without an error condition")
        if conditions:
            self.assertIn(h.condition.name, conditions, h.condition)
        else:
            self.assertTrue(h.condition.name.startswith("amqp:"), h.condition)

    def test_sender_to_wildcard_refused(self):
        c = self.client()
        for address in ("topic://a.*", "topic://a.>", "queue://a.*", "a.>"):
            s = c.snd(address)
            self.assert_refused(s, ("amqp:invalid-field", "amqp:not-allowed"))
        self.usable(c)

    def test_receiver_from_queue_wildcard_refused(self):
        c = self.client()
        for address in ("queue://a.*", "queue://a.>", "a.*"):
            r = c.rcv(address)
            self.assert_refused(r, ("amqp:invalid-field", "amqp:not-allowed"))
        self.usable(c)

    def test_invalid_names_refused(self):
        c = self.client()
        for address in ("queue://bad\x01name", "topic://bad\x7fname", "queue://"):
            s = c.snd(address)
            self.assert_refused(s)
            r = c.rcv(address)
            self.assert_refused(r)
        self.usable(c)

    def test_refusing_attach_has_null_terminus(self):
        """AMQP 1.0 §2.6.3: an endpoint that cannot create its terminus
        answers with an attach whose source (for the broker sending) or
        target (for the broker receiving) is null, then a detach with the
        error."""
        r = RawAmqp(self.port)
        self.on_teardown(r.close)
        r.open()
        r.begin()
        a = r.attach("s", 0, False, "topic://a.*")   # the broker would receive
        self.assertIsNone(a.field(6), "target of the refusing attach: %r" % a)
        d = r.expect(DETACH)
        self.assertTrue(d.error(), d)
        a = r.attach("r", 1, True, "queue://a.*")    # the broker would send
        self.assertIsNone(a.field(5), "source of the refusing attach: %r" % a)
        d = r.expect(DETACH)
        self.assertTrue(d.error(), d)

    def test_publish_to_reserved_name_refused(self):
        """Clients cannot publish under $SYS: the link is refused or each
        transfer rejected with amqp:unauthorized-access."""
        c = self.client()
        s = c.snd("topic://$SYS.broker.fake")
        if s.refused:
            self.assert_refused(s, ("amqp:unauthorized-access",))
        else:
            d = s.send(Message(body="forged"))
            c.wait_settled(s)
            self.assertEqual(d.remote_state, Delivery.REJECTED)
            self.assertEqual(d.remote.condition and d.remote.condition.name,
                             "amqp:unauthorized-access")
        self.usable(c)

    def usable(self, c):
        """After refusals the same connection still sends and receives."""
        q = self.name("queue")
        s = c.snd(q)
        self.assertFalse(s.refused, s.condition)
        c.send_all(s, [Message(body="still fine")])
        r = c.rcv(q, credit=1, auto_accept=True)
        self.assertEqual(c.wait_received(r, 1)[0].body, "still fine")


class AutoCreateOffTest(AmqpTestCase):
    config = "[queue fixed.>]\nauto_create = false\n"

    def test_sender_to_missing_queue_refused_not_found(self):
        c = self.client()
        for address in ("fixed.q", "queue://fixed.q"):
            s = c.snd(address)
            self.assertTrue(s.refused, "attach of a sender to %s was not refused" % address)
            self.assertEqual(s.condition and s.condition.name, "amqp:not-found")

    def test_nothing_reaches_missing_queue(self):
        """However the broker says no (refused link, rejected transfer),
        it says amqp:not-found and the queue does not come to be."""
        c = self.client()
        s = c.snd("fixed.q2")
        if s.refused:
            self.assertEqual(s.condition.name, "amqp:not-found")
        else:
            d = s.send(Message(body="lost?"))
            c.wait_settled(s)
            self.assertEqual(d.remote_state, Delivery.REJECTED)
            self.assertEqual(d.remote.condition and d.remote.condition.name, "amqp:not-found")
        r = c.rcv("fixed.q2")
        self.assertTrue(r.refused, "the queue was created")
        self.assertEqual(r.condition.name, "amqp:not-found")

    def test_receiver_from_missing_queue_refused_not_found(self):
        c = self.client()
        for address, opts in (("fixed.q3", None), ("queue://fixed.q3", None),
                              ("fixed.q3", Capabilities("queue"))):
            r = c.rcv(address, options=opts)
            self.assertTrue(r.refused, address)
            self.assertEqual(r.condition.name, "amqp:not-found")

    def test_relay_to_missing_queue_rejected_not_found(self):
        c = self.client()
        s = c.snd(None)
        self.assertFalse(s.refused, s.condition)
        d = s.send(Message(body="lost?", address="fixed.q4"))
        ok = s.send(Message(body="ok", address="free.q4"))
        c.wait_settled(s)
        self.assertEqual(d.remote_state, Delivery.REJECTED)
        self.assertEqual(d.remote.condition and d.remote.condition.name, "amqp:not-found")
        self.assertEqual(ok.remote_state, Delivery.ACCEPTED)
        r = c.rcv("fixed.q4")
        self.assertTrue(r.refused, "the queue was created")

    def test_other_names_still_created(self):
        c = self.client()
        s = c.snd("free.q")
        self.assertFalse(s.refused, s.condition)
        c.send_all(s, [Message(body="ok")])
        r = c.rcv("free.q", credit=1, auto_accept=True)
        self.assertEqual(c.wait_received(r, 1)[0].body, "ok")


if __name__ == "__main__":
    main()
