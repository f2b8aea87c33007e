#!/usr/bin/env python3
"""MQTT CONNECT / CONNACK: protocol levels 3 (MQIsdp), 4 and 5 with paho and
by hand, CONNACK flags, return codes and 5.0 properties, client
identifiers, keep alive, session take-over, refused CONNECTs."""
import time

from mqtttest import (CONNACK, DISCONNECT, PUBLISH, MqttTestCase, RawMqtt,
                      connect_packet, mstr, packet, u16)
from wharftest import main

CONFIG = """\
[mqtt]
receive_maximum = 50
topic_alias_maximum = 7
max_packet_size = 64KiB
max_keepalive = 30
max_session_expiry = 2m
"""


class ConnectTest(MqttTestCase):
    config = CONFIG

    def roundtrip(self, client, topic, qos=1):
        """A subscribe + publish + receive on one paho client."""
        self.assertEqual(client.subscribe(topic, qos), [qos])
        client.publish(topic, b"hello " + topic.encode(), qos=qos)
        got = client.wait_payload(b"hello " + topic.encode())
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].topic, topic)
        self.assertEqual(got[0].qos, qos)

    def raw_roundtrip(self, r, topic):
        self.assertEqual(r.subscribe([(topic, 0)]).codes, [0])
        r.publish(topic, b"raw " + topic.encode())
        p = r.expect(PUBLISH)
        self.assertEqual((p.topic, p.payload, p.qos), (topic, b"raw " + topic.encode(), 0))

    # ---- the three levels with paho ----

    def test_paho_v31(self):
        c = self.paho(level=3)
        flags, rc, _ = c.connacks[-1]
        self.assertEqual((rc, flags.get("session present")), (0, 0))
        self.roundtrip(c, self.topic())

    def test_paho_v311(self):
        c = self.paho(level=4)
        self.assertEqual(c.connacks[-1][1], 0)
        self.assertEqual(c.connacks[-1][0].get("session present"), 0)
        self.roundtrip(c, self.topic(), qos=2)

    def test_paho_v5(self):
        c = self.paho(level=5, connect=False)
        present, rc, props = c.connect()
        self.assertEqual((present, rc), (False, 0))
        self.assertEqual(props.get("ReceiveMaximum"), 50)
        self.assertEqual(props.get("TopicAliasMaximum"), 7)
        self.assertEqual(props.get("MaximumPacketSize"), 64 * 1024)
        self.roundtrip(c, self.topic(), qos=2)

    # ---- the three levels by hand ----

    def test_raw_v31_mqisdp(self):
        r = self.raw(level=3)
        ack = r.connect(self.client_id())
        self.assertEqual(ack.body, b"\x00\x00", "3.1 CONNACK is two bytes, reserved flags 0")
        self.raw_roundtrip(r, self.topic())

    def test_raw_v311(self):
        r = self.raw(level=4)
        ack = r.connect(self.client_id())
        self.assertEqual(ack.body, b"\x00\x00")
        self.assertEqual(ack.flags, 0)
        self.raw_roundtrip(r, self.topic())

    def test_raw_v5_connack_properties(self):
        r = self.raw(level=5)
        ack = r.connect(self.client_id())
        self.assertEqual(ack.reason, 0)
        self.assertFalse(ack.session_present)
        self.assertEqual(ack.ack_flags, 0)
        p = ack.props
        self.assertEqual(p.get("receive_maximum"), 50)
        self.assertEqual(p.get("topic_alias_maximum"), 7)
        self.assertEqual(p.get("maximum_packet_size"), 65536)
        # Maximum QoS 2, and retain, wildcard, subscription identifiers and
        # shared subscriptions available, are said by leaving them out (the
        # spec's defaults); the client id was given, so none is assigned;
        # no session expiry was asked for.
        for absent in ("maximum_qos", "retain_available", "wildcard_sub_available",
                       "sub_id_available", "shared_sub_available", "assigned_client_id",
                       "session_expiry"):
            self.assertNotIn(absent, p)
        # In the order of the spec's list (3.2.2.3).
        self.assertEqual(list(p), ["receive_maximum", "maximum_packet_size",
                                   "topic_alias_maximum", "server_keep_alive"])
        self.raw_roundtrip(r, self.topic())

    def test_raw_v5_connack_property_order(self):
        r = self.raw(level=5)
        ack = r.connect("", keepalive=0, props=[("session_expiry", 3600)])
        self.assertEqual(list(ack.props), ["session_expiry", "receive_maximum",
                                           "maximum_packet_size", "assigned_client_id",
                                           "topic_alias_maximum", "server_keep_alive"])
        self.assertEqual(ack.props["session_expiry"], 120)
        self.assertEqual(ack.props["server_keep_alive"], 30)

    def test_connack_fits_client_maximum_packet_size(self):
        # 16 bytes: fits 16 (it was 24 before, over a limit of 20).
        r = self.raw(level=5)
        ack = r.connect(self.client_id(), keepalive=10, props=[("maximum_packet_size", 16)])
        self.assertLessEqual(2 + len(ack.body), 16)
        self.assertEqual(ack.props["maximum_packet_size"], 65536)
        r.ping()

    def test_connack_too_large_for_client_closes_without_one(self):
        # [MQTT-3.1.2-24]: nothing larger than the client allows; with no
        # room even for the CONNACK the connection just closes.
        for cid, limit in ((self.client_id(), 15), ("", 20)):
            r = self.raw(level=5)
            r.send(connect_packet(cid, 5, True, 10, [("maximum_packet_size", limit)]))
            self.assertEqual(r.wait_closed(), [], "limit %d" % limit)
        # Nothing of the refused clients stayed: the id connects afresh.
        r = self.raw(level=5)
        self.assertFalse(r.connect(cid or self.client_id(), clean=False).session_present)

    def test_username_password_accepted(self):
        for level in (4, 5):
            r = self.raw(level=level)
            ack = r.connect(self.client_id(), username="alice", password=b"secret\x00\xff")
            self.assertEqual(ack.reason, 0)
            r.ping()

    def test_server_keep_alive(self):
        """[mqtt] max_keepalive = 30 caps what 5.0 clients ask (0 included)
        and says so in CONNACK; below the cap nothing is said."""
        for asked, told in ((0, 30), (100, 30), (30, None), (10, None)):
            r = self.raw(level=5)
            ack = r.connect(self.client_id(), keepalive=asked)
            self.assertEqual(ack.props.get("server_keep_alive"), told, "asked %d" % asked)
            r.disconnect()

    def test_session_expiry_capped(self):
        """[mqtt] max_session_expiry = 2m caps what a 5.0 client asks, and
        CONNACK says what was granted."""
        for asked, told in ((3600, 120), (0xFFFFFFFF, 120), (120, None), (5, None)):
            r = self.raw(level=5)
            ack = r.connect(self.client_id(), props=[("session_expiry", asked)])
            self.assertEqual(ack.props.get("session_expiry"), told, "asked %d" % asked)
            r.disconnect(0, [("session_expiry", 0)])

    # ---- CONNACK session present ----

    def test_session_present_flag_v311(self):
        cid = self.client_id()
        r = self.raw(level=4)
        self.assertFalse(r.connect(cid, clean=False).session_present)
        r.disconnect()
        r.wait_closed()
        r = self.raw(level=4)
        ack = r.connect(cid, clean=False)
        self.assertTrue(ack.session_present)
        self.assertEqual(ack.body, b"\x01\x00")
        r.disconnect()
        r.wait_closed()
        r = self.raw(level=4)
        self.assertFalse(r.connect(cid, clean=True).session_present)
        r.disconnect()
        r.wait_closed()

    def test_session_present_flag_v5(self):
        cid = self.client_id()
        r = self.raw(level=5)
        self.assertFalse(r.connect(cid, clean=True, props=[("session_expiry", 60)]).session_present)
        r.disconnect()
        r.wait_closed()
        r = self.raw(level=5)
        self.assertTrue(r.connect(cid, clean=False, props=[("session_expiry", 60)]).session_present)
        r.disconnect(0, [("session_expiry", 0)])
        r.wait_closed()
        r = self.raw(level=5)
        self.assertFalse(r.connect(cid, clean=False).session_present,
                         "DISCONNECT with session expiry 0 ended the session")
        r.disconnect()

    # ---- client identifiers ----

    def test_empty_client_id_v5_gets_assigned_id(self):
        r1 = self.raw(level=5)
        a1 = r1.connect("")
        r2 = self.raw(level=5)
        a2 = r2.connect("")
        id1 = a1.props.get("assigned_client_id")
        id2 = a2.props.get("assigned_client_id")
        self.assertTrue(id1, "no assigned client identifier in %r" % a1)
        self.assertTrue(id2)
        self.assertNotEqual(id1, id2)
        # Both work side by side (different sessions: no take-over).
        self.raw_roundtrip(r1, self.topic())
        self.raw_roundtrip(r2, self.topic())
        self.assertFalse(r1.closed)

    def test_empty_client_id_v311_clean_session_accepted(self):
        r = self.raw(level=4)
        ack = r.connect("", clean=True)
        self.assertEqual(ack.body, b"\x00\x00")
        self.raw_roundtrip(r, self.topic())

    def test_empty_client_id_v311_without_clean_session_refused(self):
        r = self.raw(level=4)
        ack = r.connect("", clean=False, expect_ok=False)
        self.assertEqual(ack.body, b"\x00\x02", "CONNACK rc 2 (identifier rejected)")
        self.assertEqual(r.wait_closed(), [])

    def test_empty_client_id_v31_refused(self):
        r = self.raw(level=3)
        ack = r.connect("", clean=True, expect_ok=False)
        self.assertEqual(ack.reason, 2)
        r.wait_closed()

    def test_empty_client_id_paho_v311(self):
        c = self.paho(client_id="", level=4)
        self.roundtrip(c, self.topic())

    # ---- keep alive ----

    def test_keepalive_timeout_v5(self):
        r = self.raw(level=5)
        r.connect(self.client_id(), keepalive=1)
        t0 = time.monotonic()
        got = r.wait_closed(timeout=10)
        elapsed = time.monotonic() - t0
        self.assertEqual([(p.type, p.reason) for p in got], [(DISCONNECT, 0x8D)])
        self.assertGreaterEqual(elapsed, 1.0, "closed before 1.5 x keep alive")
        self.assertLess(elapsed, 2.6, "a silent client must go within ~2 s")

    def test_keepalive_timeout_v311(self):
        r = self.raw(level=4)
        r.connect(self.client_id(), keepalive=1)
        t0 = time.monotonic()
        got = r.wait_closed(timeout=10)
        elapsed = time.monotonic() - t0
        self.assertEqual(got, [], "3.1.1 has no DISCONNECT from the server")
        self.assertGreaterEqual(elapsed, 1.0)
        self.assertLess(elapsed, 2.6)

    def test_pingreq_keeps_connection_alive(self):
        r = self.raw(level=5)
        r.connect(self.client_id(), keepalive=1)
        end = time.monotonic() + 3.5
        pings = 0
        while time.monotonic() < end:
            r.ping(timeout=2)
            pings += 1
            time.sleep(0.5)
        self.assertFalse(r.closed, "closed although it pinged every 0.5 s")
        self.assertGreaterEqual(pings, 5)
        # Other traffic counts as well; then silence ends it.
        r.publish(self.topic(), b"x")
        got = r.wait_closed(timeout=10)
        self.assertEqual([(p.type, p.reason) for p in got], [(DISCONNECT, 0x8D)])

    # ---- session take-over ----

    def test_session_takeover_v5(self):
        cid = self.client_id()
        first = self.raw(level=5)
        first.connect(cid)
        topic = self.topic()
        first.subscribe([(topic, 1)])
        second = self.raw(level=5)
        ack = second.connect(cid)
        self.assertEqual(ack.reason, 0)
        got = first.wait_closed(timeout=10)
        self.assertEqual([(p.type, p.reason) for p in got], [(DISCONNECT, 0x8E)])
        self.raw_roundtrip(second, self.topic())
        self.assertFalse(second.closed)

    def test_session_takeover_v311(self):
        cid = self.client_id()
        first = self.raw(level=4)
        first.connect(cid)
        second = self.raw(level=4)
        self.assertEqual(second.connect(cid).reason, 0)
        self.assertEqual(first.wait_closed(timeout=10), [])
        self.raw_roundtrip(second, self.topic())

    def test_session_takeover_paho(self):
        cid = self.client_id()
        first = self.paho(cid, level=5)
        second = self.paho(cid, level=5)
        self.assertEqual(first.wait_disconnected(), 0x8E)
        self.roundtrip(second, self.topic())

    # ---- refused ----

    def test_auth_method_refused(self):
        r = self.raw(level=5)
        ack = r.connect(self.client_id(), props=[("auth_method", "SCRAM-SHA-1"),
                                                 ("auth_data", b"n,,n=user,r=abc")],
                        expect_ok=False)
        self.assertEqual(ack.reason, 0x8C)
        self.assertFalse(ack.session_present)
        r.wait_closed()

    def test_unsupported_level_gets_v311_rc1(self):
        r = RawMqtt(self.port, level=4)
        self.on_teardown(r.close)
        # "MQTT" level 6: answered in the 3.1.1 form, return code 1.
        body = mstr("MQTT") + bytes([6, 0x02]) + u16(0) + mstr(self.client_id())
        r.send(packet(1, 0, body))
        ack = r.expect(CONNACK)
        self.assertEqual(ack.body, b"\x00\x01")
        r.wait_closed()

    def test_levels_0_1_2_255_get_v311_rc1(self):
        # [MQTT-3.1.2-2]: an unsupported level gets CONNACK 0x01, then the
        # close; level 0 too (it was closed without a word).
        for level in (0, 1, 2, 255):
            r = RawMqtt(self.port, level=4)
            self.on_teardown(r.close)
            body = mstr("MQTT") + bytes([level, 0x02]) + u16(0) + mstr(self.client_id())
            r.send(packet(1, 0, body))
            ack = r.expect(CONNACK)
            self.assertEqual(ack.body, b"\x00\x01", "level %d" % level)
            r.wait_closed()

    def test_unsupported_name_level_pair_v5_gets_0x84(self):
        r = self.raw(level=5)
        r.send(connect_packet(self.client_id(), level=5, protocol_name="MQIsdp"))
        ack = r.expect(CONNACK)
        self.assertEqual(ack.reason, 0x84)
        r.wait_closed()

    def test_level_4_with_mqisdp_name_refused(self):
        r = self.raw(level=4)
        r.send(connect_packet(self.client_id(), level=4, protocol_name="MQIsdp"))
        ack = r.expect(CONNACK)
        self.assertEqual(ack.body, b"\x00\x01")
        r.wait_closed()

    def test_broker_serves_after_refusals(self):
        c = self.paho(level=4)
        self.roundtrip(c, self.topic())


if __name__ == "__main__":
    main()
