#!/usr/bin/env python3
"""Bad MQTT input: each gets the reason code MQTT 5 prescribes (DISCONNECT,
or CONNACK for a bad CONNECT) or, before 5.0, a plain close (or a CONNACK
return code where one exists), and the connection closes, while a
well-behaved paho client on the same broker keeps publishing and receiving
QoS 1 throughout, and gets every message."""
import os
import threading
import time

from mqtttest import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, TIMEOUT, MqttBystander,
                      MqttTestCase, RawMqtt, connect_packet, mstr, packet, publish_packet,
                      sub_options, subscribe_packet, u16, varint)
from wharftest import main, raw_exchange

CONFIG = """\
[mqtt]
max_packet_size = 1KiB
receive_maximum = 5
"""


class ErrorsTest(MqttTestCase):
    config = CONFIG

    def setUp(self):
        super().setUp()
        self.bystander = MqttBystander(self.port, self.topic("bystander"))
        self.on_teardown(self.bystander.close)

    def tearDown(self):
        try:
            self.bystander.check(self)
        finally:
            super().tearDown()

    # ---- helpers ----

    def rejected(self, data, reason, level=5, v311_packets=()):
        """Connects at `level`, sends data, and asserts the broker answers
        with DISCONNECT `reason` (5.0) or nothing (before 5.0: or the packets
        in v311_packets), then closes."""
        r = self.raw(level=level, connect=True)
        r.send(data)
        got = r.wait_closed()
        if level == 5:
            self.assertEqual([(p.name, p.reason) for p in got], [("DISCONNECT", reason)],
                             "DISCONNECT 0x%02x expected" % reason)
        else:
            self.assertEqual([p.name for p in got], list(v311_packets))
        return got

    def rejected_both(self, build, reason):
        """build(level) -> bytes; checked at 5.0 and at 3.1.1."""
        self.rejected(build(5), reason, 5)
        self.rejected(build(4), reason, 4)

    def connect_refused(self, data, level, reason=None):
        """A bad CONNECT: 5.0 gets CONNACK `reason`; 3.1.1 a CONNACK with
        return code `reason` when given, else a plain close."""
        r = RawMqtt(self.port, level)
        self.on_teardown(r.close)
        r.send(data)
        got = r.wait_closed()
        if reason is None:
            self.assertEqual(got, [])
        else:
            self.assertEqual([(p.name, p.reason) for p in got], [("CONNACK", reason)])
        return got

    # ---- framing ----

    def test_remaining_length_five_bytes(self):
        self.rejected_both(lambda lv: b"\x30\xff\xff\xff\xff\x7f", 0x81)

    def test_remaining_length_five_bytes_before_connect(self):
        self.connect_refused(b"\x10\xff\xff\xff\xff\x7f", 5)

    def test_packet_over_max_packet_size(self):
        big = b"x" * 4096
        self.rejected_both(lambda lv: publish_packet("big/one", big, qos=1, pid=1, level=lv),
                           0x95)

    def test_max_packet_size_boundary(self):
        r = self.raw(level=5, connect=True)
        head = len(publish_packet("edge", b"", qos=1, pid=1, level=5))
        # The whole packet, fixed header included, may be 1024 bytes: its
        # remaining length takes two bytes here, counted in `head` + 1.
        fits = publish_packet("edge", b"y" * (1024 - head - 1), qos=1, pid=1, level=5)
        self.assertEqual(len(fits), 1024)
        r.send(fits)
        self.assertEqual(r.expect(PUBACK).reason, 0)
        r.send(publish_packet("edge", b"y" * (1024 - head), qos=1, pid=2, level=5))
        got = r.wait_closed()
        self.assertEqual([(p.name, p.reason) for p in got], [("DISCONNECT", 0x95)])

    def test_connect_over_max_packet_size(self):
        data = connect_packet("big-connect", level=5, props=[("user", ("k", "v" * 2000))])
        self.connect_refused(data, 5, 0x95)
        self.connect_refused(connect_packet("c" * 2000, level=4), 4)

    def test_reserved_flags_subscribe(self):
        self.rejected_both(lambda lv: subscribe_packet(1, [("a/b", 1)], level=lv, flags=0), 0x81)

    def test_reserved_flags_pubrel_and_pingreq(self):
        self.rejected_both(lambda lv: packet(6, 0, u16(1)), 0x81)
        self.rejected_both(lambda lv: b"\xc1\x00", 0x81)

    def test_reserved_packet_type_0(self):
        self.rejected_both(lambda lv: b"\x00\x00", 0x81)

    def test_auth_before_v5_and_without_method(self):
        self.rejected(b"\xf0\x00", 0x81, level=4)
        self.rejected(b"\xf0\x02\x18\x00", 0x82, level=5)

    def test_server_packet_from_client(self):
        self.rejected_both(lambda lv: b"\x20\x02\x00\x00", 0x82)  # CONNACK
        self.rejected_both(lambda lv: b"\xd0\x00", 0x82)          # PINGRESP

    def test_trailing_bytes(self):
        self.rejected_both(lambda lv: b"\xc0\x01\x00", 0x81)      # PINGREQ with a body

    # ---- PUBLISH ----

    def test_wildcard_in_topic(self):
        for t in ("a/+/b", "a/#", "+", "#"):
            self.rejected_both(lambda lv: publish_packet(t, b"x", level=lv), 0x90)

    def test_invalid_utf8_in_topic(self):
        for t in (b"a/\xff", b"a/\xc0\xaf", b"a/\xed\xa0\x80", b"a/\x00/b"):
            self.rejected_both(lambda lv: publish_packet(t, b"x", level=lv), 0x81)

    def test_qos3(self):
        def build(lv):
            p = bytearray(publish_packet("a/b", b"x", qos=2, pid=1, level=lv))
            p[0] |= 0x06
            return bytes(p)
        self.rejected_both(build, 0x81)

    def test_dup_on_qos0(self):
        self.rejected_both(lambda lv: publish_packet("a/b", b"x", dup=True, level=lv), 0x82)

    def test_packet_id_zero(self):
        self.rejected_both(lambda lv: publish_packet("a/b", b"x", qos=1, pid=0, level=lv), 0x82)
        self.rejected_both(lambda lv: subscribe_packet(0, [("a/b", 1)], level=lv), 0x82)

    def test_property_not_allowed(self):
        self.rejected(publish_packet("a/b", b"x", props=[("session_expiry", 10)]), 0x82)
        self.rejected(publish_packet("a/b", b"x", props=[("content_type", "a"),
                                                         ("content_type", "b")]), 0x82)
        self.rejected(publish_packet("a/b", b"x", props=[("sub_id", 3)]), 0x82)

    def test_bad_response_topic(self):
        self.rejected(publish_packet("a/b", b"x", props=[("response_topic", "r/#")]), 0x82)
        self.rejected(publish_packet("a/b", b"x", props=[("response_topic", "")]), 0x82)

    def test_unknown_property(self):
        body = mstr("a/b") + varint(2) + b"\x7f\x00" + b"x"
        self.rejected(packet(3, 0, body), 0x81)

    def test_topic_alias_zero(self):
        self.rejected(publish_packet("a/b", b"x", props=[("topic_alias", 0)]), 0x94)

    def test_empty_topic_without_alias(self):
        self.rejected(publish_packet("", b"x"), 0x82)
        self.rejected(publish_packet("", b"x", level=4), 0x82, level=4)

    def test_incoming_receive_maximum_exceeded(self):
        r = self.raw(level=5)
        ack = r.connect(self.client_id())
        self.assertEqual(ack.props.get("receive_maximum"), 5)
        for pid in range(1, 6):
            r.publish("rm/t", b"x", qos=2, pid=pid)
            self.assertEqual(r.expect(PUBREC, lambda p, pid=pid: p.pid == pid).reason, 0)
        r.publish("rm/t", b"x", qos=2, pid=6)
        got = r.wait_closed()
        self.assertEqual([(p.name, p.reason) for p in got], [("DISCONNECT", 0x93)])

    def test_receive_maximum_exceeded_reason_reaches_a_writing_client(self):
        # The client goes on writing after its sixth QoS 2 PUBLISH. Closing
        # on its unread input would reset the connection, which can destroy
        # the DISCONNECT before the client reads it: the broker shuts its
        # write side and drops the input a while (2 s) instead.
        r = self.raw(level=5, connect=True)
        t = self.topic()
        burst = b"".join(publish_packet(t, b"x", qos=2, pid=i) for i in range(1, 7))
        junk = publish_packet(t, b"y" * 1000) * 64
        stop, write_error = threading.Event(), []

        def writer():
            try:
                r.sock.sendall(burst + junk * 16)  # unread when the sixth is refused
                while not stop.is_set():
                    r.sock.sendall(junk)
            except OSError as e:
                write_error.append(e)

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        try:
            reset = False
            while True:
                try:
                    chunk = r.sock.recv(65536)
                except ConnectionResetError:
                    reset = True
                    break
                if not chunk:
                    break
                r.buf += chunk
            got = []
            while True:
                p = r._parse()
                if p is None:
                    break
                got.append((p.name, p.reason))
            ended = time.monotonic()
            self.assertFalse(reset, "reset instead of an orderly end; read %r" % got)
            self.assertEqual(got, [("PUBREC", 0)] * 5 + [("DISCONNECT", 0x93)])
            # The client could go on writing a while after the end (it was
            # reset at once before), but not for ever.
            deadline = ended + 10
            while not write_error and time.monotonic() < deadline:
                th.join(0.05)
            self.assertTrue(write_error, "still connected after 10 s")
            self.assertGreater(time.monotonic() - ended, 1.0, "writes failed at once")
        finally:
            stop.set()
            th.join(TIMEOUT)

    def test_payload_format_invalid(self):
        r = self.raw(level=5, connect=True)
        ack = r.publish_acked("pf/t", b"\xff\xfe", props=[("payload_format", 1)])
        self.assertEqual(ack.reason, 0x99)
        r.ping()  # not a reason to close

    # ---- SUBSCRIBE ----

    def test_subscribe_without_filters(self):
        self.rejected_both(lambda lv: subscribe_packet(1, [], level=lv), 0x82)

    def test_subscribe_qos3_and_reserved_options(self):
        self.rejected(subscribe_packet(1, [("a/b", 3)], level=4), 0x81, level=4)
        self.rejected(subscribe_packet(1, [("a/b", 3)]), 0x82)
        self.rejected(subscribe_packet(1, [("a/b", 0xC1)]), 0x81)
        self.rejected(subscribe_packet(1, [("a/b", sub_options(1, retain_handling=3))]), 0x82)

    def test_subscription_identifier_values(self):
        self.rejected(subscribe_packet(1, [("a/b", 1)], props=[("sub_id", 0)]), 0x82)
        self.rejected(subscribe_packet(1, [("a/b", 1)], props=[("sub_id", 1), ("sub_id", 2)]),
                      0x82)

    def test_no_local_on_shared_subscription(self):
        self.rejected(subscribe_packet(1, [("$share/g/a/b", sub_options(1, no_local=True))]),
                      0x82)

    # ---- acknowledgements that do not match what is in flight ----

    def ack_mismatch(self, level, qos, ack_type, reason=0x82):
        """Receives one message at `qos`, answers with `ack_type`: 5.0 gets
        DISCONNECT `reason`, 3.1.1 a plain close."""
        t = self.topic()
        r = self.raw(level=level, connect=True)
        r.subscribe([(t, 2)])
        self.paho(level=4).publish(t, b"x", qos=qos)
        p = r.expect(PUBLISH)
        self.assertEqual(p.qos, qos)
        r.ack(ack_type, p.pid)
        got = r.wait_closed()
        if level == 5:
            self.assertEqual([(x.name, x.reason) for x in got], [("DISCONNECT", reason)])
        else:
            self.assertEqual(got, [])

    def test_puback_for_qos2_message(self):
        self.ack_mismatch(5, 2, PUBACK)
        self.ack_mismatch(4, 2, PUBACK)

    def test_pubrec_for_qos1_message(self):
        self.ack_mismatch(5, 1, PUBREC)
        self.ack_mismatch(4, 1, PUBREC)

    def test_pubcomp_before_pubrec(self):
        self.ack_mismatch(5, 2, PUBCOMP)
        self.ack_mismatch(4, 2, PUBCOMP)

    def test_acks_for_unknown_ids_are_not_errors(self):
        # A late duplicate PUBACK or PUBCOMP is ignored; an unknown PUBREC
        # gets PUBREL 0x92 and an unknown PUBREL PUBCOMP 0x92.
        r = self.raw(level=5, connect=True)
        r.ack(PUBACK, 4711)
        r.ack(PUBCOMP, 4712)
        r.ack(PUBREC, 4713)
        self.assertEqual(r.expect(PUBREL, lambda p: p.pid == 4713).reason, 0x92)
        r.ack(PUBREL, 4714)
        self.assertEqual(r.expect(PUBCOMP, lambda p: p.pid == 4714).reason, 0x92)
        r.ping()

    # ---- CONNECT ----

    def test_second_connect(self):
        self.rejected_both(lambda lv: connect_packet("again", level=lv), 0x82)

    def test_packet_before_connect(self):
        for data in (b"\xc0\x00", publish_packet("a/b", b"x", level=4),
                     subscribe_packet(1, [("a/b", 1)], level=4), b"\xe0\x00"):
            out, closed = raw_exchange(self.port, data)
            self.assertEqual((out, closed), (b"", True), data)

    def test_garbage_on_connect(self):
        for data in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"CONNECT\naccept-version:1.2\n\n\x00",
                     os.urandom(64), b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"):
            if data[0] >> 4 == 1:
                data = b"\x00" + data  # random bytes that happen to start like a CONNECT
            out, closed = raw_exchange(self.port, data)
            self.assertEqual((out, closed), (b"", True), data)

    def test_bad_connect_flags(self):
        self.connect_refused(connect_packet("bad-flags", level=5, flags_extra=1), 5, 0x81)
        self.connect_refused(connect_packet("bad-flags", level=4, flags_extra=1), 4)
        # Will QoS without a will flag.
        self.connect_refused(connect_packet("bad-will", level=5, flags_extra=0x08), 5, 0x81)
        # Password without user name, before 5.0.
        self.connect_refused(connect_packet("pw", level=4, password=b"x"), 4)

    def test_bad_will_topic(self):
        will = dict(topic="will/#", payload=b"x")
        self.connect_refused(connect_packet("bad-will-topic", level=5, will=will), 5, 0x90)
        self.connect_refused(connect_packet("bad-will-topic", level=4, will=will), 4)

    def test_bad_client_id_utf8(self):
        self.connect_refused(connect_packet(b"id\x00x", level=5), 5, 0x81)
        self.connect_refused(connect_packet(b"id\xff", level=4), 4)

    def test_connect_property_not_allowed(self):
        self.connect_refused(connect_packet("p", level=5, props=[("topic_alias", 1)]), 5, 0x82)
        self.connect_refused(connect_packet("p", level=5, props=[("receive_maximum", 0)]), 5,
                             0x82)

    def test_disconnect_sets_session_expiry_after_zero(self):
        self.rejected(b"\xe0\x07\x00\x05\x11\x00\x00\x00\x3c", 0x82)

    def test_disconnect_bad_reason_code(self):
        self.rejected(b"\xe0\x01\x03", 0x82)

    def test_half_packet_then_close(self):
        r = self.raw(level=5, connect=True)
        r.send(publish_packet("half/t", b"z" * 200, qos=1, pid=1)[:50])
        r.abort()
        r = self.raw(level=4)
        r.send(connect_packet("half", level=4)[:5])
        r.close()


if __name__ == "__main__":
    main()
