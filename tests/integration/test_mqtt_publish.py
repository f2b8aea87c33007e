#!/usr/bin/env python3
"""MQTT PUBLISH: QoS 0/1/2 round trips (paho 3.1.1 and 5.0, mosquitto_pub /
mosquitto_sub), QoS downgrade, the QoS 2 exchange by hand, outgoing flow
control by the client's receive maximum, order, 5.0 properties passed on,
message expiry, topic aliases, retained messages and $SYS."""
import os
import time

from mqtttest import (DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, PacketTypes,
                      MqttTestCase, SubscribeOptions, TIMEOUT, mosquitto_pub, paho_props)
from wharftest import main


class PublishTest(MqttTestCase):

    # ---- round trips ----

    def check_roundtrips(self, level):
        sub = self.paho(level=level)
        pub = self.paho(level=level)
        for qos in (0, 1, 2):
            topic = self.topic("q%d" % qos)
            self.assertEqual(sub.subscribe(topic, qos), [qos])
            payload = bytes(range(256)) + b"qos %d" % qos
            pub.publish(topic, payload, qos=qos)
            got = sub.wait_payload(payload)
            self.assertEqual(len(got), 1)
            self.assertEqual((got[0].topic, got[0].qos, got[0].retain), (topic, qos, False))
        sub.sync(topic)
        self.assertEqual(sub.count(), 3, "each message exactly once")

    def test_roundtrip_paho_v311(self):
        self.check_roundtrips(4)

    def test_roundtrip_paho_v5(self):
        self.check_roundtrips(5)

    def test_roundtrip_paho_v31(self):
        self.check_roundtrips(3)

    def test_mosquitto_pub_to_mosquitto_sub(self):
        for level in (4, 5):
            for qos in (0, 1, 2):
                topic = self.topic("mosq%d-%d" % (level, qos))
                sub = self.mosquitto_sub(topic, qos=qos, level=level)
                mosquitto_pub(self.port, topic, "hello world %d" % qos, qos=qos, level=level)
                mosquitto_pub(self.port, topic, "second", qos=qos, level=level)
                msgs = sub.wait_messages(2)
                self.assertEqual(msgs, [(qos, 0, topic, "hello world %d" % qos),
                                        (qos, 0, topic, "second")])

    def test_mosquitto_pub_to_paho_and_back(self):
        topic = self.topic()
        p = self.paho(level=5)
        p.subscribe(topic, 2)
        mosquitto_pub(self.port, topic, "from mosquitto", qos=2, level=5)
        got = p.wait_payload(b"from mosquitto")
        self.assertEqual(got[0].qos, 2)
        sub = self.mosquitto_sub(topic + "/back", qos=1, level=4)
        p.publish(topic + "/back", b"from paho", qos=1)
        self.assertEqual(sub.wait_messages(1), [(1, 0, topic + "/back", "from paho")])

    def test_large_and_empty_payloads(self):
        topic = self.topic()
        sub = self.paho(level=5)
        sub.subscribe(topic, 1)
        pub = self.paho(level=5)
        big = os.urandom(900 * 1024)
        pub.publish(topic, big, qos=1)
        pub.publish(topic, b"", qos=1)
        pub.publish(topic, b"", qos=0)
        got = sub.wait_messages(3)
        self.assertEqual([m.payload for m in got], [big, b"", b""])

    # ---- QoS downgrade ----

    def test_qos_downgrade(self):
        pub = self.paho(level=4)
        for sub_qos, pub_qos, want in ((1, 2, 1), (0, 2, 0), (0, 1, 0), (2, 1, 1), (2, 0, 0)):
            topic = self.topic("s%dp%d" % (sub_qos, pub_qos))
            sub = self.paho(level=5)
            sub.subscribe(topic, sub_qos)
            pub.publish(topic, b"m", qos=pub_qos)
            got = sub.wait_messages(1)
            self.assertEqual(got[0].qos, want, "sub QoS %d, pub QoS %d" % (sub_qos, pub_qos))

    def test_qos_downgrade_seen_on_the_wire(self):
        topic = self.topic()
        r = self.raw(level=5, connect=True)
        self.assertEqual(r.subscribe([(topic, 1)]).codes, [1])
        pub = self.paho(level=5)
        pub.publish(topic, b"two", qos=2)
        p = r.expect(PUBLISH)
        self.assertEqual((p.qos, p.payload), (1, b"two"))
        self.assertIsNotNone(p.pid)
        r.ack(PUBACK, p.pid)

    # ---- QoS 2 by hand ----

    def check_qos2_resend(self, level):
        topic = self.topic()
        sub = self.paho(level=4)
        sub.subscribe(topic, 2)
        r = self.raw(level=level, connect=True)
        r.publish(topic, b"exactly once", qos=2, pid=7)
        rec = r.expect(PUBREC, lambda p: p.pid == 7)
        self.assertEqual(rec.reason, 0)
        # The PUBREC "got lost": the client sends the PUBLISH again.
        r.publish(topic, b"exactly once", qos=2, pid=7, dup=True)
        rec2 = r.expect(PUBREC, lambda p: p.pid == 7)
        self.assertEqual(rec2.reason, 0)
        r.ack(PUBREL, 7)
        comp = r.expect(PUBCOMP, lambda p: p.pid == 7)
        self.assertEqual(comp.reason, 0)
        # The id is free again: a new message with it is a new message.
        r.publish(topic, b"next", qos=2, pid=7)
        r.expect(PUBREC, lambda p: p.pid == 7)
        r.ack(PUBREL, 7)
        r.expect(PUBCOMP, lambda p: p.pid == 7)
        sub.wait_payload(b"next")
        sub.sync(topic)
        self.assertEqual(sub.payloads(), [b"exactly once", b"next"])

    def test_qos2_resend_before_pubrel_v5(self):
        self.check_qos2_resend(5)

    def test_qos2_resend_before_pubrel_v311(self):
        self.check_qos2_resend(4)

    def test_pubrel_unknown_id(self):
        r = self.raw(level=5, connect=True)
        r.ack(PUBREL, 999)
        comp = r.expect(PUBCOMP, lambda p: p.pid == 999)
        self.assertEqual(comp.reason, 0x92)
        r4 = self.raw(level=4, connect=True)
        r4.ack(PUBREL, 999)
        comp = r4.expect(PUBCOMP, lambda p: p.pid == 999)
        self.assertEqual(comp.body, b"\x03\xe7")
        self.assertFalse(r.closed or r4.closed)
        r.ping()
        r4.ping()

    def test_qos2_outgoing_exchange(self):
        topic = self.topic()
        r = self.raw(level=5, connect=True)
        r.subscribe([(topic, 2)])
        pub = self.paho(level=4)
        pub.publish(topic, b"q2", qos=2)
        p = r.expect(PUBLISH)
        self.assertEqual((p.qos, p.payload, p.dup), (2, b"q2", False))
        r.ack(PUBREC, p.pid)
        rel = r.expect(PUBREL)
        self.assertEqual((rel.pid, rel.reason, rel.flags), (p.pid, 0, 2))
        r.ack(PUBCOMP, p.pid)
        r.sync()
        r.expect_none(PUBLISH, 0.3)

    def test_pubrec_with_error_ends_the_exchange(self):
        """A PUBREC with a reason code of 0x80 or more ends the QoS 2 flow:
        no PUBREL follows, and the packet id (and its in-flight slot) is
        free again (MQTT 5, 4.3.3 and 4.9)."""
        topic = self.topic()
        r = self.raw(level=5, connect=True, props=[("receive_maximum", 1)])
        r.subscribe([(topic, 2)])
        pub = self.paho(level=4)
        pub.publish(topic, b"refused", qos=2)
        pub.publish(topic, b"next", qos=2)
        p = r.expect(PUBLISH)
        self.assertEqual(p.payload, b"refused")
        r.ack(PUBREC, p.pid, 0x97)  # quota exceeded
        n = r.expect(PUBLISH, timeout=5)
        self.assertEqual(n.payload, b"next")
        r.ack(PUBREC, n.pid)
        rel = r.expect(PUBREL)
        self.assertEqual(rel.pid, n.pid, "PUBREL only for the accepted message")
        r.ack(PUBCOMP, n.pid)
        r.sync()
        self.assertEqual([x.pid for x in r.seen if x.type == PUBREL], [n.pid],
                         "a PUBREL was sent after a failing PUBREC")

    def test_client_maximum_packet_size(self):
        topic = self.topic()
        r = self.raw(level=5, connect=True, props=[("maximum_packet_size", 200)])
        r.subscribe([(topic, 1)])
        pub = self.paho(level=5)
        pub.publish(topic, b"small 1", qos=1)
        pub.publish(topic, b"L" * 1000, qos=1)
        pub.publish(topic, b"s" * 150, qos=0)
        pub.publish(topic, b"small 2", qos=1)
        got = []
        while len(got) < 3:
            p = r.expect(PUBLISH)
            got.append(p.payload)
            if p.qos:
                r.ack(PUBACK, p.pid)
        self.assertEqual(got, [b"small 1", b"s" * 150, b"small 2"])
        self.assertTrue(all(len(p.body) + 3 <= 200 for p in r.seen))
        r.sync()
        self.assertFalse(r.closed)

    def test_client_maximum_packet_size_keeps_user_properties(self):
        """A PUBLISH goes with all its user properties unaltered
        (MQTT-3.3.2-17); one too large for the client's maximum packet size
        is discarded (MQTT-3.1.2-25), not sent with its properties cut."""
        topic = self.topic()
        r = self.raw(level=5, connect=True, props=[("maximum_packet_size", 200)])
        r.subscribe([(topic, 1)])
        pub = self.raw(level=5, connect=True)
        pub.publish_acked(topic, b"tagged", props=[("user", ("k", "v" * 300))])
        pub.publish_acked(topic, b"small", props=[("user", ("k", "v"))])
        p = r.expect(PUBLISH)
        r.ack(PUBACK, p.pid)
        r.sync()
        for q in [p] + [x for x in r.inbox if x.type == PUBLISH]:
            if q.payload == b"tagged":
                self.fail("delivered without its user properties: %r" % q)
        self.assertEqual((p.payload, p.props.get("user")), (b"small", [("k", "v")]))

    def test_retained_message_expiry(self):
        topic = self.topic()
        r = self.raw(level=5, connect=True)
        r.publish_acked(topic, b"short-lived", retain=True, props=[("message_expiry", 1)])
        r.publish_acked(topic + "/long", b"long-lived", retain=True,
                        props=[("message_expiry", 100)])
        time.sleep(2.1)
        s = self.raw(level=5, connect=True)
        s.subscribe([(topic, 1), (topic + "/long", 1)])
        p = s.expect(PUBLISH)
        s.ack(PUBACK, p.pid)
        self.assertEqual((p.payload, p.retain), (b"long-lived", True))
        self.assertTrue(96 <= p.props.get("message_expiry", 0) <= 98, p.props)
        s.sync()
        s.expect_none(PUBLISH, 0.3)
        r.publish_acked(topic + "/long", b"", retain=True)

    def test_publish_to_star_level_refused(self):
        base = self.topic()
        sub = self.paho(level=5)
        sub.subscribe(base + "/#", 1)
        r = self.raw(level=5, connect=True)
        self.assertEqual(r.publish_acked(base + "/*", b"x").reason, 0x90)
        self.assertEqual(r.publish_acked(base + "/>/y", b"x").reason, 0x90)
        self.assertEqual(r.publish_acked(base + "/a*b", b"ok").reason, 0)
        sub.wait_messages(1)
        sub.sync(base + "/z")
        self.assertEqual([(m.topic, m.payload) for m in sub.messages], [(base + "/a*b", b"ok")])

    # ---- outgoing flow control ----

    def test_receive_maximum_bounds_inflight_qos1(self):
        topic = self.topic()
        r = self.raw(level=5, connect=True, props=[("receive_maximum", 2)])
        r.subscribe([(topic, 1)])
        pub = self.paho(level=4)
        for i in range(6):
            pub.publish(topic, b"m%d" % i, qos=1)
        first = [r.expect(PUBLISH), r.expect(PUBLISH)]
        self.assertEqual([p.payload for p in first], [b"m0", b"m1"])
        r.expect_none(PUBLISH, 1.0)
        r.ack(PUBACK, first[0].pid)
        third = r.expect(PUBLISH)
        self.assertEqual(third.payload, b"m2")
        r.expect_none(PUBLISH, 0.5)
        got = [third]
        r.ack(PUBACK, first[1].pid)
        r.ack(PUBACK, third.pid)
        while len(got) < 4:
            p = r.expect(PUBLISH)
            got.append(p)
            r.ack(PUBACK, p.pid)
        self.assertEqual([p.payload for p in got], [b"m2", b"m3", b"m4", b"m5"])
        r.sync()
        r.expect_none(PUBLISH, 0.3)

    def test_receive_maximum_counts_qos2_until_pubcomp(self):
        topic = self.topic()
        r = self.raw(level=5, connect=True, props=[("receive_maximum", 1)])
        r.subscribe([(topic, 2)])
        pub = self.paho(level=4)
        pub.publish(topic, b"a", qos=2)
        pub.publish(topic, b"b", qos=2)
        p = r.expect(PUBLISH)
        self.assertEqual(p.payload, b"a")
        r.ack(PUBREC, p.pid)
        r.expect(PUBREL)
        r.expect_none(PUBLISH, 0.7)  # still in flight until PUBCOMP
        r.ack(PUBCOMP, p.pid)
        p2 = r.expect(PUBLISH)
        self.assertEqual(p2.payload, b"b")
        r.ack(PUBREC, p2.pid)
        r.expect(PUBREL)
        r.ack(PUBCOMP, p2.pid)

    # ---- order ----

    def test_order_1000_qos1(self):
        topic = self.topic()
        sub = self.paho(level=4)
        sub.subscribe(topic, 1)
        pub = self.paho(level=4, max_inflight=100)
        infos = [pub.publish(topic, b"%04d" % i, qos=1, wait=False) for i in range(1000)]
        pub.wait_all_published(infos, timeout=30)
        sub.wait_messages(1000, timeout=30)
        sub.sync(topic)
        self.assertEqual(sub.payloads(), [b"%04d" % i for i in range(1000)])

    # ---- 5.0 properties ----

    def test_v5_properties_forwarded(self):
        topic = self.topic()
        sub = self.paho(level=5)
        sub.subscribe(topic, 1)
        pub = self.paho(level=5)
        props = paho_props(PacketTypes.PUBLISH, payload_format=1, content_type="text/plain; x=1",
                           response_topic="reply/to/me", correlation_data=b"\x00corr\xff",
                           message_expiry=3600,
                           user=[("k", "v1"), ("z", "last?"), ("k", "v2"), ("a", ""),
                                 ("k", "v1")])
        pub.publish(topic, "héllo".encode(), qos=1, props=props)
        m = sub.wait_messages(1)[0]
        self.assertEqual(m.payload, "héllo".encode())
        self.assertEqual(m.props.get("payload_format"), 1)
        self.assertEqual(m.props.get("content_type"), "text/plain; x=1")
        self.assertEqual(m.props.get("response_topic"), "reply/to/me")
        self.assertEqual(m.props.get("correlation_data"), b"\x00corr\xff")
        self.assertEqual(m.props.get("user"), [("k", "v1"), ("z", "last?"), ("k", "v2"),
                                               ("a", ""), ("k", "v1")])
        self.assertIn(m.props.get("message_expiry"), (3599, 3600))
        self.assertNotIn("topic_alias", m.props)

    def test_v5_properties_seen_raw(self):
        topic = self.topic()
        r = self.raw(level=5, connect=True)
        r.subscribe([(topic, 1)])
        pub = self.raw(level=5, connect=True)
        pub.publish_acked(topic, b"x", props=[("user", ("b", "1")), ("user", ("a", "2")),
                                              ("user", ("b", "3")), ("content_type", "a/b")])
        p = r.expect(PUBLISH)
        self.assertEqual(p.props.get("user"), [("b", "1"), ("a", "2"), ("b", "3")])
        self.assertEqual(p.props.get("content_type"), "a/b")
        self.assertNotIn("message_expiry", p.props)
        r.ack(PUBACK, p.pid)

    def test_message_expiry_reduced_while_held(self):
        topic = self.topic()
        cid = self.client_id()
        r = self.raw(level=5, connect=True, client_id=cid, props=[("session_expiry", 60)])
        r.subscribe([(topic, 1)])
        r.disconnect()
        r.wait_closed()
        pub = self.raw(level=5, connect=True)
        pub.publish_acked(topic, b"long", props=[("message_expiry", 10)])
        pub.publish_acked(topic, b"short", props=[("message_expiry", 1)])
        pub.publish_acked(topic, b"none")
        time.sleep(2.2)
        r = self.raw(level=5)
        ack = r.connect(cid, clean=False, props=[("session_expiry", 60)])
        self.assertTrue(ack.session_present)
        a = r.expect(PUBLISH)
        r.ack(PUBACK, a.pid)
        b = r.expect(PUBLISH)
        r.ack(PUBACK, b.pid)
        self.assertEqual([a.payload, b.payload], [b"long", b"none"], "the expired one is gone")
        self.assertIn("message_expiry", a.props)
        self.assertLessEqual(a.props["message_expiry"], 8)
        self.assertGreaterEqual(a.props["message_expiry"], 6)
        self.assertNotIn("message_expiry", b.props)
        r.sync()
        r.expect_none(PUBLISH, 0.3)
        r.disconnect(0, [("session_expiry", 0)])

    # ---- topic aliases ----

    def test_topic_alias_from_client(self):
        t1, t2 = self.topic("a1"), self.topic("a2")
        sub = self.raw(level=5, connect=True)
        sub.subscribe([(t1, 0), (t2, 0)])
        r = self.raw(level=5, connect=True)
        r.publish(t1, b"set", props=[("topic_alias", 3)])
        r.publish("", b"reuse", props=[("topic_alias", 3)])
        r.publish_acked("", b"reuse qos1", props=[("topic_alias", 3)])
        r.publish(t2, b"moved", props=[("topic_alias", 3)])
        r.publish_acked("", b"reuse moved", props=[("topic_alias", 3)])
        got = [sub.expect(PUBLISH) for _ in range(5)]
        self.assertEqual([(p.topic, p.payload) for p in got],
                         [(t1, b"set"), (t1, b"reuse"), (t1, b"reuse qos1"), (t2, b"moved"),
                          (t2, b"reuse moved")])
        for p in got:
            self.assertNotIn("topic_alias", p.props)
        self.assertFalse(r.closed)

    def test_topic_alias_over_maximum(self):
        r = self.raw(level=5)
        ack = r.connect(self.client_id())
        amax = ack.props["topic_alias_maximum"]
        r.publish(self.topic(), b"x", props=[("topic_alias", amax + 1)])
        got = r.wait_closed()
        self.assertEqual([(p.type, p.reason) for p in got], [(DISCONNECT, 0x94)])

    def test_topic_alias_unknown(self):
        r = self.raw(level=5, connect=True)
        r.publish("", b"x", props=[("topic_alias", 2)])
        got = r.wait_closed()
        self.assertEqual([(p.type, p.reason) for p in got], [(DISCONNECT, 0x82)])

    # ---- retained ----

    def test_retained_set_replace_clear(self):
        topic = self.topic()
        pub = self.paho(level=4)
        pub.publish(topic, b"v1", qos=1, retain=True)
        s1 = self.paho(level=4)
        s1.subscribe(topic, 1)
        m = s1.wait_messages(1)[0]
        self.assertEqual((m.payload, m.retain), (b"v1", True))
        pub.publish(topic, b"v2", qos=1, retain=True)
        m = s1.wait_messages(2)[1]
        self.assertEqual((m.payload, m.retain), (b"v2", False), "a live delivery is not retained")
        s2 = self.paho(level=4)
        s2.subscribe(topic, 1)
        s2.sync(topic)
        self.assertEqual([(m.payload, m.retain) for m in s2.messages], [(b"v2", True)])
        pub.publish(topic, b"not retained", qos=1, retain=False)
        s2b = self.paho(level=4)
        s2b.subscribe(topic, 1)
        s2b.sync(topic)
        self.assertEqual(s2b.payloads(), [b"v2"], "a plain publish leaves the retained one")
        pub.publish(topic, b"", qos=1, retain=True)
        s3 = self.paho(level=4)
        s3.subscribe(topic, 1)
        s3.sync(topic)
        self.assertEqual(s3.payloads(), [], "an empty retained payload clears it")

    def test_retained_through_wildcards(self):
        base = self.topic()
        pub = self.paho(level=5)
        for t, v in (("a/x/1", b"ax1"), ("a/y/1", b"ay1"), ("a/x/2", b"ax2"), ("b", b"b")):
            pub.publish("%s/%s" % (base, t), v, qos=1, retain=True)
        plus = self.paho(level=5)
        plus.subscribe(base + "/a/+/1", 1)
        hash_ = self.paho(level=5)
        hash_.subscribe(base + "/#", 1)
        plus_all = self.paho(level=5)
        plus_all.subscribe(base + "/+", 1)
        plus.wait_messages(2)
        hash_.wait_messages(4)
        plus_all.wait_messages(1)
        sync_topic = base + "/a/zz/1"
        for c in (plus, hash_):
            c.sync(sync_topic)
        self.assertEqual(sorted((m.topic, m.payload, m.retain) for m in plus.messages),
                         [(base + "/a/x/1", b"ax1", True), (base + "/a/y/1", b"ay1", True)])
        self.assertEqual(sorted(m.payload for m in hash_.messages),
                         [b"ax1", b"ax2", b"ay1", b"b"])
        self.assertTrue(all(m.retain for m in hash_.messages))
        self.assertEqual([(m.topic, m.payload) for m in plus_all.messages], [(base + "/b", b"b")])

    def test_retain_handling(self):
        topic = self.topic()
        pub = self.paho(level=5)
        pub.publish(topic, b"kept", qos=1, retain=True)
        subs = {}
        for rh in (0, 1, 2):
            c = self.paho(level=5)
            c.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=rh))
            subs[rh] = c
        for rh, c in subs.items():
            c.sync(topic)
        self.assertEqual(subs[0].payloads(), [b"kept"])
        self.assertEqual(subs[1].payloads(), [b"kept"])
        self.assertEqual(subs[2].payloads(), [])
        # Subscribing again with the same filter: 0 sends again, 1 and 2 not.
        for rh, c in subs.items():
            c.clear()
            c.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=rh))
            c.sync(topic)
        self.assertEqual(subs[0].payloads(), [b"kept"])
        self.assertEqual(subs[1].payloads(), [])
        self.assertEqual(subs[2].payloads(), [])

    def test_retain_as_published(self):
        topic = self.topic()
        rap = self.paho(level=5)
        rap.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
        plain = self.paho(level=5)
        plain.subscribe(topic, options=SubscribeOptions(qos=1, retainAsPublished=False))
        pub = self.paho(level=5)
        pub.publish(topic, b"r", qos=1, retain=True)
        pub.publish(topic, b"n", qos=1, retain=False)
        self.assertEqual([(m.payload, m.retain) for m in rap.wait_messages(2)],
                         [(b"r", True), (b"n", False)])
        self.assertEqual([(m.payload, m.retain) for m in plain.wait_messages(2)],
                         [(b"r", False), (b"n", False)])
        pub.publish(topic, b"", qos=1, retain=True)

    def test_retained_v311_raw_flag(self):
        topic = self.topic()
        pub = self.raw(level=4, connect=True)
        pub.publish_acked(topic, b"r311", retain=True)
        r = self.raw(level=4, connect=True)
        r.subscribe([(topic, 0)])
        p = r.expect(PUBLISH)
        self.assertEqual((p.payload, p.retain, p.qos), (b"r311", True, 0))


INFLIGHT_CONFIG = """\
[mqtt]
max_inflight = 3
"""


class InflightTest(MqttTestCase):
    """[mqtt] max_inflight bounds what is in flight to a client that
    allows more (receive maximum 65535 by default, or 3.1.1)."""
    config = INFLIGHT_CONFIG

    def check_window(self, level, props=None):
        topic = self.topic()
        r = self.raw(level=level, connect=True, props=props)
        r.subscribe([(topic, 1)])
        pub = self.paho(level=4)
        for i in range(8):
            pub.publish(topic, b"%d" % i, qos=1)
        got = [r.expect(PUBLISH) for _ in range(3)]
        r.expect_none(PUBLISH, 0.7)
        for p in got:
            r.ack(PUBACK, p.pid)
        while len(got) < 8:
            p = r.expect(PUBLISH)
            got.append(p)
            r.ack(PUBACK, p.pid)
        self.assertEqual([p.payload for p in got], [b"%d" % i for i in range(8)])

    def test_max_inflight_v311(self):
        self.check_window(4)

    def test_max_inflight_v5_larger_receive_maximum(self):
        self.check_window(5, [("receive_maximum", 50)])


SYS_CONFIG = """\
[mqtt]
sys_interval = 1s
"""


class SysTest(MqttTestCase):
    config = SYS_CONFIG

    def test_sys_topics_published(self):
        c = self.paho(level=4)
        c.subscribe("$SYS/broker/#", 0)
        want = ["$SYS/broker/version", "$SYS/broker/uptime", "$SYS/broker/clients/connected",
                "$SYS/broker/messages/received", "$SYS/broker/messages/sent",
                "$SYS/broker/bytes/received", "$SYS/broker/bytes/sent",
                "$SYS/broker/retained messages/count"]

        def latest():
            return dict((m.topic, m.payload) for m in c.messages)
        c.wait_for(lambda: all(t in latest() for t in want), 5, "every $SYS topic")
        n = c.count()
        # Published again every second, not retained then.
        c.wait_for(lambda: sum(1 for m in c.messages[n:] if not m.retain and
                               m.topic == "$SYS/broker/uptime") >= 1, 4, "a periodic uptime")
        got = latest()
        self.assertTrue(got["$SYS/broker/version"].startswith(b"wharf "), got)
        self.assertRegex(got["$SYS/broker/uptime"].decode(), r"^\d+ seconds$")
        self.assertGreaterEqual(int(got["$SYS/broker/clients/connected"]), 1)
        for t in want[3:]:
            self.assertRegex(got[t].decode(), r"^\d+$", t)

    def test_sys_clients_connected_counts(self):
        w = self.paho(level=4)
        w.subscribe("$SYS/broker/clients/connected", 0)

        def latest():
            vals = [m.payload for m in w.messages]
            return int(vals[-1]) if vals else None
        w.wait_for(lambda: latest() == 1, 5, "clients/connected 1, have %r" % latest())
        cid = self.client_id()
        a = self.raw(level=5, connect=True, client_id=cid)
        b = self.raw(level=4, connect=True)
        c = self.paho(level=3)
        w.wait_for(lambda: latest() == 4, 5, "clients/connected 4")
        a2 = self.raw(level=5, connect=True, client_id=cid)  # takes a's place
        a.wait_closed()
        b.abort()
        c.disconnect()
        w.wait_for(lambda: latest() == 2, 5, "clients/connected 2")
        a2.disconnect()

    def test_hash_does_not_match_sys(self):
        c = self.paho(level=5)
        c.subscribe("#", 0)
        p = self.paho(level=5)
        p.subscribe("+/broker/#", 0)
        s = self.paho(level=5)
        s.subscribe("$SYS/broker/uptime", 0)
        s.wait_messages(2, timeout=5)  # retained, then at least one period
        topic = self.topic()
        c.sync(topic)
        self.assertFalse([m.topic for m in c.messages if m.topic.startswith("$")])
        self.assertFalse([m.topic for m in p.messages if m.topic.startswith("$")])

    def test_publish_to_sys_refused(self):
        watcher = self.paho(level=4)
        watcher.subscribe("$SYS/#", 0)
        r = self.raw(level=5, connect=True)
        ack = r.publish_acked("$SYS/x", b"fake", qos=1)
        self.assertEqual(ack.reason, 0x87)
        rec = r.publish_acked("$SYS/broker/version", b"fake", qos=2)
        self.assertEqual(rec.reason, 0x87)
        r.publish("$SYS/y", b"fake", qos=0, retain=True)
        r4 = self.raw(level=4, connect=True)
        r4.publish_acked("$SYS/z", b"fake", qos=1)
        time.sleep(1.2)  # at least one $SYS period
        r.ping()
        self.assertFalse(r.closed)
        topics = set(m.topic for m in watcher.messages)
        payloads = set(m.payload for m in watcher.messages)
        self.assertIn("$SYS/broker/uptime", topics)
        self.assertNotIn(b"fake", payloads)
        for t in ("$SYS/x", "$SYS/y", "$SYS/z"):
            self.assertNotIn(t, topics)
        late = self.paho(level=4)
        late.subscribe("$SYS/y", 0)
        late.subscribe("$SYS/broker/version", 0)
        late.wait_messages(1)
        time.sleep(0.2)
        self.assertNotIn(b"fake", late.payloads())


class SlowSubscriberTest(MqttTestCase):
    config = "[mqtt]\nsys_interval = 100ms\n"

    def dropped_full(self, watcher):
        """$SYS/broker/messages/dropped/full once it has stopped moving."""
        last = None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            time.sleep(0.5)
            v = watcher.payloads("$SYS/broker/messages/dropped/full")
            if v and v[-1] == last:
                return int(last)
            last = v[-1] if v else last
        self.fail("the $SYS drop count never settled")

    def test_slow_subscriber_qos0(self):
        """A subscriber that stops reading: the broker holds a bounded
        queue for it (at most once: what finds it full is dropped and
        counted, as Mosquitto does), neither client is disconnected, and
        once the subscriber reads again it gets messages in order, none
        twice; every message is either delivered or counted as dropped."""
        watcher = self.paho(level=4)
        watcher.subscribe("$SYS/broker/messages/dropped/#", qos=0)
        before = self.dropped_full(watcher)
        topic = self.topic()
        r = self.raw(level=5, connect=True, rcvbuf=4096)
        r.subscribe([(topic, 0)])
        pub = self.raw(level=5, connect=True)
        n = 3000
        body = b"z" * 1000
        for i in range(n):
            pub.publish(topic, b"%05d" % i + body)
        pub.sync()
        self.assertFalse(pub.closed)
        got = []
        while True:
            p = r.read(timeout=2)
            if p is None:
                break
            if p.type == PUBLISH:
                got.append(int(p.payload[:5]))
        self.assertFalse(r.closed, "the slow subscriber was disconnected")
        self.assertEqual(got, sorted(set(got)), "in order, none twice")
        self.assertGreaterEqual(len(got), 1000)
        # Not stuck: what comes after the drain is delivered.
        pub.publish(topic, b"%05d" % n + body)
        p = r.read(timeout=TIMEOUT)
        self.assertIsNotNone(p, "a message after the drain never came")
        self.assertEqual(int(p.payload[:5]), n)
        self.assertEqual(len(got) + self.dropped_full(watcher) - before, n,
                         "delivered and counted as dropped add up to what was sent")


if __name__ == "__main__":
    main()
