#!/usr/bin/env python3
"""MQTT sessions: persistent sessions (3.1.1 clean session 0, 5.0 session
expiry), messages kept while away, in-flight messages resent with DUP,
clean start, session expiry, the bound on an absent session's queue, and
wills (abnormal close, normal DISCONNECT, DISCONNECT 0x04, will delay)."""
import time

from mqtttest import (PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, MqttTestCase, PacketTypes,
                      paho_props, publish_packet)
from wharftest import main


class SessionTest(MqttTestCase):

    # ---- persistent sessions ----

    def check_persistent(self, level, **connect):
        topic = self.topic()
        cid = self.client_id()
        c = self.paho(cid, level=level, clean=False, **connect)
        c.subscribe(topic, 1)
        c.disconnect()
        pub = self.paho(level=4)
        for i in range(20):
            pub.publish(topic, b"away %02d" % i, qos=1)
        back = self.paho(cid, level=level, clean=False, connect=False, **connect)
        present, rc, _ = back.connect()
        # 3.1 has no session present flag: its CONNACK byte is reserved.
        self.assertEqual(present, level != 3, "session present flag")
        back.wait_messages(20)
        back.sync(topic)
        self.assertEqual(back.payloads(), [b"away %02d" % i for i in range(20)])
        self.assertTrue(all(m.qos == 1 for m in back.messages))
        # The subscription is still there for live messages too.
        pub.publish(topic, b"live", qos=1)
        back.wait_payload(b"live")
        back.c.unsubscribe(topic)
        return back

    def test_persistent_session_v311(self):
        self.check_persistent(4)

    def test_persistent_session_v5(self):
        self.check_persistent(5, props=paho_props(PacketTypes.CONNECT, session_expiry=60))

    def test_persistent_session_v31(self):
        self.check_persistent(3)

    def check_inflight_resent(self, level):
        topic = self.topic()
        cid = self.client_id()
        props = [("session_expiry", 60)] if level == 5 else None
        r = self.raw(level=level)
        r.connect(cid, clean=False, props=props)
        r.subscribe([(topic, 1)])
        pub = self.paho(level=4)
        for i in range(3):
            pub.publish(topic, b"m%d" % i, qos=1)
        first = [r.expect(PUBLISH) for _ in range(3)]
        self.assertEqual([(p.payload, p.dup) for p in first],
                         [(b"m0", False), (b"m1", False), (b"m2", False)])
        r.ack(PUBACK, first[0].pid)  # only the first one is settled
        r.ping()
        r.abort()
        pub.publish(topic, b"m3", qos=1)
        r = self.raw(level=level)
        ack = r.connect(cid, clean=False, props=props)
        self.assertTrue(ack.session_present)
        again = [r.expect(PUBLISH) for _ in range(3)]
        self.assertEqual([(p.payload, p.dup, p.pid) for p in again[:2]],
                         [(b"m1", True, first[1].pid), (b"m2", True, first[2].pid)])
        self.assertEqual((again[2].payload, again[2].dup), (b"m3", False))
        for p in again:
            r.ack(PUBACK, p.pid)
        r.sync()
        r.expect_none(PUBLISH, 0.3)
        r.disconnect(0, [("session_expiry", 0)] if level == 5 else None)

    def test_inflight_resent_with_dup_v5(self):
        self.check_inflight_resent(5)

    def test_inflight_resent_with_dup_v311(self):
        self.check_inflight_resent(4)

    def test_qos2_pubrel_resent_after_reconnect(self):
        topic = self.topic()
        cid = self.client_id()
        r = self.raw(level=5)
        r.connect(cid, clean=False, props=[("session_expiry", 60)])
        r.subscribe([(topic, 2)])
        pub = self.paho(level=4)
        pub.publish(topic, b"a", qos=2)
        pub.publish(topic, b"b", qos=2)
        a = r.expect(PUBLISH)
        b = r.expect(PUBLISH)
        r.ack(PUBREC, a.pid)
        r.expect(PUBREL, lambda p: p.pid == a.pid)
        r.abort()  # a: PUBCOMP owed; b: PUBREC owed
        r = self.raw(level=5)
        self.assertTrue(r.connect(cid, clean=False, props=[("session_expiry", 60)])
                        .session_present)
        rel = r.expect(PUBREL, lambda p: p.pid == a.pid)
        self.assertEqual(rel.reason, 0)
        b2 = r.expect(PUBLISH)
        self.assertEqual((b2.payload, b2.pid, b2.dup, b2.qos), (b"b", b.pid, True, 2))
        r.ack(PUBCOMP, a.pid)
        r.ack(PUBREC, b2.pid)
        r.expect(PUBREL, lambda p: p.pid == b2.pid)
        r.ack(PUBCOMP, b2.pid)
        r.sync()
        self.assertEqual([p.payload for p in r.seen if p.type == PUBLISH], [b"b"],
                         "a, whose PUBREC was in, is not sent again")
        r.expect_none(PUBLISH, 0.3)
        r.disconnect(0, [("session_expiry", 0)])

    def test_takeover_resends_inflight(self):
        topic = self.topic()
        cid = self.client_id()
        a = self.raw(level=5)
        a.connect(cid, props=[("session_expiry", 60)])
        a.subscribe([(topic, 1)])
        pub = self.paho(level=4)
        pub.publish(topic, b"unacked", qos=1)
        first = a.expect(PUBLISH)
        b = self.raw(level=5)
        self.assertTrue(b.connect(cid, clean=False, props=[("session_expiry", 60)])
                        .session_present)
        self.assertEqual([(p.name, p.reason) for p in a.wait_closed()], [("DISCONNECT", 0x8E)])
        again = b.expect(PUBLISH)
        self.assertEqual((again.payload, again.pid, again.dup), (b"unacked", first.pid, True))
        b.ack(PUBACK, again.pid)
        pub.publish(topic, b"after", qos=1)
        p = b.expect(PUBLISH)
        self.assertEqual((p.payload, p.dup), (b"after", False))
        b.ack(PUBACK, p.pid)
        b.disconnect(0, [("session_expiry", 0)])

    def test_qos2_incoming_state_survives_reconnect(self):
        """A QoS 2 PUBLISH whose PUBREC was lost is sent again (DUP) on the
        next connection of the session: still routed only once."""
        topic = self.topic()
        sub = self.paho(level=4)
        sub.subscribe(topic, 2)
        cid = self.client_id()
        r = self.raw(level=5)
        r.connect(cid, props=[("session_expiry", 60)])
        r.publish(topic, b"once across connections", qos=2, pid=5)
        r.expect(PUBREC, lambda p: p.pid == 5)
        r.abort()
        r = self.raw(level=5)
        self.assertTrue(r.connect(cid, clean=False, props=[("session_expiry", 60)])
                        .session_present)
        r.publish(topic, b"once across connections", qos=2, pid=5, dup=True)
        self.assertEqual(r.expect(PUBREC, lambda p: p.pid == 5).reason, 0)
        r.ack(PUBREL, 5)
        self.assertEqual(r.expect(PUBCOMP, lambda p: p.pid == 5).reason, 0)
        sub.wait_messages(1)
        sub.sync(topic)
        self.assertEqual(sub.payloads(), [b"once across connections"])
        r.disconnect(0, [("session_expiry", 0)])

    def test_takeover_storm(self):
        topic = self.topic()
        cid = self.client_id()
        pub = self.paho(level=4)
        conns = []
        for i in range(12):
            r = self.raw(level=5 if i % 2 else 4)
            r.connect(cid, clean=(i % 3 == 0), props=[("session_expiry", 30)] if i % 2 else None)
            r.subscribe([(topic, 1)])
            pub.publish(topic, b"%d" % i, qos=1, wait=False)
            conns.append(r)
        for r in conns[:-1]:
            r.wait_closed()
        last = conns[-1]
        self.assertFalse(last.closed)
        pub.publish(topic, b"last", qos=1)
        last.expect(PUBLISH, lambda p: p.payload == b"last")
        last.disconnect(0, [("session_expiry", 0)])

    # ---- clean start, expiry ----

    def test_clean_start_discards_session_v5(self):
        topic = self.topic()
        cid = self.client_id()
        r = self.raw(level=5)
        r.connect(cid, props=[("session_expiry", 60)])
        r.subscribe([(topic, 1)])
        r.disconnect()
        r.wait_closed()
        pub = self.paho(level=4)
        pub.publish(topic, b"lost", qos=1)
        r = self.raw(level=5)
        ack = r.connect(cid, clean=True, props=[("session_expiry", 60)])
        self.assertFalse(ack.session_present)
        pub.publish(topic, b"not subscribed", qos=1)
        r.sync()
        r.expect_none(PUBLISH, 0.5)
        r.disconnect(0, [("session_expiry", 0)])

    def test_clean_session_discards_session_v311(self):
        topic = self.topic()
        cid = self.client_id()
        c = self.paho(cid, level=4, clean=False)
        c.subscribe(topic, 1)
        c.disconnect()
        pub = self.paho(level=4)
        pub.publish(topic, b"lost", qos=1)
        r = self.raw(level=4)
        self.assertFalse(r.connect(cid, clean=True).session_present)
        pub.publish(topic, b"not subscribed", qos=1)
        r.sync()
        r.expect_none(PUBLISH, 0.5)
        r.disconnect()
        r.wait_closed()
        # A clean session is not kept either.
        r = self.raw(level=4)
        self.assertFalse(r.connect(cid, clean=False).session_present)
        r.disconnect()

    def test_session_expiry(self):
        topic = self.topic()
        cid = self.client_id()
        r = self.raw(level=5)
        r.connect(cid, props=[("session_expiry", 1)])
        r.subscribe([(topic, 1)])
        r.disconnect()
        r.wait_closed()
        pub = self.paho(level=4)
        pub.publish(topic, b"queued, then expired with the session", qos=1)
        time.sleep(2.0)
        pub.publish(topic, b"after the session", qos=1)
        r = self.raw(level=5)
        ack = r.connect(cid, clean=False, props=[("session_expiry", 1)])
        self.assertFalse(ack.session_present, "the session outlived its expiry")
        r.sync()
        r.expect_none(PUBLISH, 0.5)
        r.disconnect(0, [("session_expiry", 0)])

    def test_session_expiry_zero_ends_at_disconnect(self):
        topic = self.topic()
        cid = self.client_id()
        r = self.raw(level=5)
        r.connect(cid, clean=False)  # no session expiry: 0
        r.subscribe([(topic, 1)])
        r.disconnect()
        r.wait_closed()
        r = self.raw(level=5)
        self.assertFalse(r.connect(cid, clean=False).session_present)

    # ---- wills ----

    def will_watcher(self, topic):
        w = self.paho(level=4)
        w.subscribe(topic, 1)
        return w

    def test_will_on_abnormal_close_v311_retained(self):
        wt = self.topic("will")
        w = self.will_watcher(wt)
        r = self.raw(level=4)
        r.connect(self.client_id(), will=dict(topic=wt, payload=b"gone", qos=1, retain=True))
        r.ping()
        r.abort()
        m = w.wait_messages(1)[0]
        self.assertEqual((m.topic, m.payload, m.qos, m.retain), (wt, b"gone", 1, False))
        late = self.paho(level=4)
        late.subscribe(wt, 1)
        m = late.wait_messages(1)[0]
        self.assertEqual((m.payload, m.retain), (b"gone", True), "the will was retained")
        late.publish(wt, b"", qos=1, retain=True)
        w.sync(wt)
        self.assertEqual(w.payloads(), [b"gone", b""])

    def test_will_on_abnormal_close_v5_not_retained(self):
        wt = self.topic("will")
        w = self.paho(level=5)
        w.subscribe(wt, 1)
        r = self.raw(level=5)
        r.connect(self.client_id(), will=dict(
            topic=wt, payload=b"v5 gone", qos=1,
            props=[("content_type", "text/plain"), ("user", ("why", "crash"))]))
        r.ping()
        r.close()  # a plain FIN without DISCONNECT is abnormal as well
        m = w.wait_messages(1)[0]
        self.assertEqual((m.payload, m.qos), (b"v5 gone", 1))
        self.assertEqual(m.props.get("content_type"), "text/plain")
        self.assertEqual(m.props.get("user"), [("why", "crash")])
        late = self.paho(level=4)
        late.subscribe(wt, 1)
        late.sync(wt)
        self.assertEqual(late.payloads(), [], "retain was 0")

    def test_no_will_on_normal_disconnect(self):
        wt = self.topic("will")
        w = self.will_watcher(wt)
        for level in (4, 5):
            r = self.raw(level=level)
            r.connect(self.client_id(), will=dict(topic=wt, payload=b"should not", qos=1))
            r.disconnect()
            r.wait_closed()
        c = self.paho(level=5, will=dict(topic=wt, payload=b"paho should not", qos=1))
        c.disconnect()
        time.sleep(0.3)
        w.sync(wt)
        self.assertEqual(w.payloads(), [])

    def test_will_on_disconnect_with_0x04(self):
        wt = self.topic("will")
        w = self.will_watcher(wt)
        r = self.raw(level=5)
        r.connect(self.client_id(), will=dict(topic=wt, payload=b"asked for", qos=1))
        r.disconnect(0x04)
        r.wait_closed()
        self.assertEqual(w.wait_messages(1)[0].payload, b"asked for")

    def test_will_on_keepalive_timeout(self):
        wt = self.topic("will")
        w = self.will_watcher(wt)
        r = self.raw(level=4)
        r.connect(self.client_id(), keepalive=1, will=dict(topic=wt, payload=b"silent", qos=1))
        r.wait_closed(timeout=10)
        self.assertEqual(w.wait_messages(1, timeout=5)[0].payload, b"silent")

    def test_will_on_session_takeover(self):
        wt = self.topic("will")
        w = self.will_watcher(wt)
        cid = self.client_id()
        a = self.raw(level=4)
        a.connect(cid, will=dict(topic=wt, payload=b"taken over", qos=1))
        b = self.raw(level=4)
        b.connect(cid)
        a.wait_closed()
        self.assertEqual(w.wait_messages(1)[0].payload, b"taken over")
        b.disconnect()

    def test_will_on_protocol_error(self):
        wt = self.topic("will")
        w = self.will_watcher(wt)
        for level in (4, 5):
            r = self.raw(level=level)
            r.connect(self.client_id(), will=dict(topic=wt, payload=b"err %d" % level, qos=1))
            r.send(publish_packet("bad/#", b"x", level=level))
            r.wait_closed()
        w.wait_messages(2)
        self.assertEqual(w.payloads(), [b"err 4", b"err 5"])

    def test_will_without_delay_on_persistent_session(self):
        wt = self.topic("will")
        w = self.will_watcher(wt)
        cid = self.client_id()
        r = self.raw(level=5)
        r.connect(cid, props=[("session_expiry", 30)],
                  will=dict(topic=wt, payload=b"right away", qos=1))
        r.ping()
        r.abort()
        self.assertEqual(w.wait_messages(1, timeout=5)[0].payload, b"right away")
        r = self.raw(level=5)
        self.assertTrue(r.connect(cid, clean=False).session_present)
        r.disconnect()

    def test_will_message_expiry_counts_from_publication(self):
        """The will's message expiry interval is its lifetime from when it
        is published (MQTT 5, 3.1.3.2.4), not from CONNECT: a client
        connected longer than the interval still leaves its will."""
        wt = self.topic("will")
        w = self.paho(level=5)
        w.subscribe(wt, 1)
        r = self.raw(level=5)
        r.connect(self.client_id(), will=dict(topic=wt, payload=b"expiring will", qos=1,
                                               props=[("message_expiry", 2)]))
        time.sleep(2.5)
        r.ping()
        r.abort()
        m = w.wait_messages(1, timeout=5)[0]
        self.assertEqual(m.payload, b"expiring will")
        self.assertIn(m.props.get("message_expiry"), (1, 2))

    def test_will_delay_capped_by_session_expiry(self):
        wt = self.topic("will")
        w = self.will_watcher(wt)
        r = self.raw(level=5)
        r.connect(self.client_id(), props=[("session_expiry", 1)],
                  will=dict(topic=wt, payload=b"session ended", qos=1,
                            props=[("will_delay", 30)]))
        r.ping()
        r.abort()
        t0 = time.monotonic()
        w.wait_messages(1, timeout=5)
        self.assertLess(time.monotonic() - t0, 3.5, "not held for the whole will delay")
        self.assertEqual(w.payloads(), [b"session ended"])

    def test_will_delay(self):
        wt = self.topic("will")
        w = self.will_watcher(wt)
        r = self.raw(level=5)
        r.connect(self.client_id(), props=[("session_expiry", 30)],
                  will=dict(topic=wt, payload=b"late", qos=1, props=[("will_delay", 2)]))
        r.ping()
        r.abort()
        t0 = time.monotonic()
        w.wait_messages(1, timeout=10)
        elapsed = time.monotonic() - t0
        self.assertEqual(w.payloads(), [b"late"])
        self.assertGreaterEqual(elapsed, 1.5, "published before the will delay")
        self.assertLess(elapsed, 4.5)

    def test_will_delay_cancelled_by_reconnect(self):
        wt = self.topic("will")
        w = self.will_watcher(wt)
        cid = self.client_id()
        r = self.raw(level=5)
        r.connect(cid, props=[("session_expiry", 30)],
                  will=dict(topic=wt, payload=b"never", qos=1, props=[("will_delay", 1)]))
        r.ping()
        r.abort()
        time.sleep(0.2)
        r = self.raw(level=5)
        self.assertTrue(r.connect(cid, clean=False, props=[("session_expiry", 30)])
                        .session_present)
        time.sleep(1.8)
        w.sync(wt)
        self.assertEqual(w.payloads(), [], "the client came back within the delay")
        r.disconnect(0, [("session_expiry", 0)])
        r.wait_closed()
        time.sleep(0.2)
        w.sync(wt)
        self.assertEqual(w.payloads(), [])

    def test_will_delay_cancelled_by_clean_start_reconnect(self):
        # [MQTT-3.1.3-9]: a new connection for the client id within the
        # delay cancels the will, also when it starts a clean session (the
        # old session's end published it).
        wt = self.topic("will")
        w = self.will_watcher(wt)
        cid = self.client_id()
        r = self.raw(level=5)
        r.connect(cid, props=[("session_expiry", 30)],
                  will=dict(topic=wt, payload=b"never", qos=1, props=[("will_delay", 2)]))
        r.ping()
        r.abort()
        r = self.raw(level=5)
        self.assertFalse(r.connect(cid, clean=True).session_present)
        deadline = time.monotonic() + 3.5  # past the delay
        while time.monotonic() < deadline:
            w.sync(wt)
            self.assertEqual(w.payloads(), [], "will published after a reconnect")
        r.disconnect()

    def test_will_delay_longer_than_session(self):
        wt = self.topic("will")
        w = self.will_watcher(wt)
        r = self.raw(level=5)
        r.connect(self.client_id(),  # session ends with the connection
                  will=dict(topic=wt, payload=b"session over", qos=1, props=[("will_delay", 60)]))
        r.ping()
        r.abort()
        self.assertEqual(w.wait_messages(1, timeout=5)[0].payload, b"session over")


QUEUE_CONFIG = """\
[mqtt]
max_queued = 10
"""


class QueueBoundTest(MqttTestCase):
    config = QUEUE_CONFIG

    def check_bound(self, level, qos):
        topic = self.topic()
        cid = self.client_id()
        props = [("session_expiry", 60)] if level == 5 else None
        r = self.raw(level=level)
        r.connect(cid, clean=False, props=props)
        r.subscribe([(topic, 1)])
        r.disconnect()
        r.wait_closed()
        pub = self.raw(level=5, connect=True)
        for i in range(30):
            if qos:
                pub.publish_acked(topic, b"%02d" % i, qos=qos)
            else:
                pub.publish(topic, b"%02d" % i)
        pub.ping()
        r = self.raw(level=level)
        self.assertTrue(r.connect(cid, clean=False, props=props).session_present)
        got = []
        for _ in range(10):
            p = r.expect(PUBLISH)
            got.append(p.payload)
            if p.qos:
                r.ack(PUBACK, p.pid)
        r.sync()
        r.expect_none(PUBLISH, 0.5)
        self.assertEqual(got, [b"%02d" % i for i in range(20, 30)],
                         "the newest max_queued messages, the oldest dropped")
        r.disconnect(0, [("session_expiry", 0)] if level == 5 else None)

    def test_absent_session_queue_bounded_qos1_v311(self):
        self.check_bound(4, 1)

    def test_absent_session_queue_bounded_qos1_v5(self):
        self.check_bound(5, 1)

    def test_absent_session_queue_bounded_qos0(self):
        self.check_bound(5, 0)


if __name__ == "__main__":
    main()
