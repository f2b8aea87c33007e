#!/usr/bin/env python3
"""MQTT <-> STOMP: names ('/' <-> '.', '.' inside a level <-> '/'), bodies,
and the mapping of MQTT 5 properties onto STOMP headers and back
(docs/mapping.md), and a topic -> queue binding read by a STOMP consumer."""
import time

from mqtttest import (PUBACK, PUBLISH, MqttTestCase, PacketTypes, TIMEOUT, mosquitto_pub,
                      paho_props)
from stomptest import RawStomp, new_receipt, stomp_close, stomp_connect
from wharftest import main


def stomp_name(mqtt_topic):
    """The STOMP destination of an MQTT topic, by the documented rule."""
    swapped = "".join({"/": ".", ".": "/"}.get(c, c) for c in mqtt_topic)
    return "/topic/" + swapped


class CrossTest(MqttTestCase):

    def raw_stomp(self, *dests):
        """A raw STOMP 1.2 client subscribed (receipted) to each destination,
        with subscription ids s0, s1, ..."""
        r = RawStomp(self.stomp_port)
        self.on_teardown(r.close)
        r.connect("1.2")
        for i, d in enumerate(dests):
            rid = new_receipt()
            r.send_frame("SUBSCRIBE", [("id", "s%d" % i), ("destination", d), ("ack", "auto"),
                                       ("receipt", rid)])
            r.wait_receipt(rid)
        return r

    def stomp_messages(self, r, n, timeout=TIMEOUT):
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            f = r.read_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                raise AssertionError("got %d of %d STOMP messages: %r" % (len(got), n, got))
            if f.command == "MESSAGE":
                got.append(f)
            elif f.command == "ERROR":
                raise AssertionError("STOMP ERROR: %r" % f)
        return got

    def test_names(self):
        self.assertEqual(stomp_name("sensors/t1"), "/topic/sensors.t1")
        self.assertEqual(stomp_name("v1.2/x"), "/topic/v1/2.x")

    # ---- MQTT -> STOMP ----

    def test_mosquitto_pub_reaches_stomp_topic_and_wildcard(self):
        base = self.topic()
        r = self.raw_stomp(stomp_name(base + "/sensors/t1"), stomp_name(base + "/sensors") + ".*",
                           stomp_name(base) + ".>")
        mosquitto_pub(self.port, base + "/sensors/t1", "21.5 C", qos=1, level=4)
        got = self.stomp_messages(r, 3)
        self.assertEqual(sorted(f.headers["subscription"] for f in got), ["s0", "s1", "s2"])
        for f in got:
            self.assertEqual(f.body, b"21.5 C")
            self.assertEqual(f.headers["destination"], stomp_name(base + "/sensors/t1"))
            self.assertEqual(f.headers.get("persistent"), "true")

    def test_paho_binary_body_intact(self):
        base = self.topic()
        r = self.raw_stomp(stomp_name(base + "/sensors/t1"))
        body = bytes(range(256)) * 40 + b"\x00\x00end"
        p = self.paho(level=4)
        p.publish(base + "/sensors/t1", body, qos=0)
        f = self.stomp_messages(r, 1)[0]
        self.assertEqual(f.body, body)
        self.assertNotIn("persistent", f.headers, "QoS 0 is not durable")

    def test_v5_properties_to_stomp_headers(self):
        base = self.topic()
        r = self.raw_stomp(stomp_name(base) + ".>")
        p = self.paho(level=5)
        props = paho_props(PacketTypes.PUBLISH, content_type="application/json",
                           correlation_data=b"corr-42", response_topic="a/b",
                           message_expiry=600,
                           user=[("x-first", "1"), ("x-second", "two words"),
                                 ("x-first", "again")])
        before = time.time()
        p.publish(base + "/sensors/t1", b'{"t": 21.5}', qos=1, props=props)
        f = self.stomp_messages(r, 1)[0]
        h = f.headers
        self.assertEqual(f.body, b'{"t": 21.5}')
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertEqual(h.get("correlation-id"), "corr-42")
        self.assertEqual(h.get("reply-to"), "/topic/a.b")
        self.assertEqual(h.get("persistent"), "true")
        self.assertEqual(h.get("x-second"), "two words")
        users = [(k, v) for k, v in f.header_list if k.startswith("x-")]
        self.assertEqual(users, [("x-first", "1"), ("x-second", "two words"),
                                 ("x-first", "again")], "order and repeats kept")
        self.assertEqual(h.get("x-first"), "1")
        expires = int(h["expires"]) / 1000.0
        self.assertGreater(expires, before + 590)
        self.assertLess(expires, time.time() + 610)

    def test_user_property_named_like_a_stomp_header(self):
        """MQTT user properties become STOMP headers, but never in place of
        the frame's own: a user property 'content-length' must not make a
        STOMP client (which takes the first of repeated headers) cut the
        body, nor a 'destination' hide the real one."""
        base = self.topic()
        r = self.raw_stomp(stomp_name(base) + ".>")
        p = self.raw(level=5, connect=True)
        p.publish_acked(base + "/a", b"hello world", props=[
            ("user", ("content-length", "2")), ("user", ("destination", "/queue/evil")),
            ("user", ("subscription", "nope")), ("user", ("x-fine", "yes"))])
        p.publish_acked(base + "/b", b"second")
        got = self.stomp_messages(r, 2)
        first, second = got
        self.assertEqual(first.body, b"hello world")
        lengths = [v for k, v in first.header_list if k == "content-length"]
        self.assertEqual(lengths[:1], ["11"], "the first content-length is the frame's own")
        self.assertEqual(first.headers["destination"], stomp_name(base + "/a"))
        self.assertEqual(first.headers["subscription"], "s0")
        self.assertEqual(first.headers.get("x-fine"), "yes")
        self.assertEqual((second.headers["destination"], second.body),
                         (stomp_name(base + "/b"), b"second"))

    def test_response_topic_with_dot(self):
        base = self.topic()
        r = self.raw_stomp(stomp_name(base) + ".>")
        p = self.raw(level=5, connect=True)
        p.publish_acked(base + "/x", b"q", props=[("response_topic", "replies/v1.0")])
        f = self.stomp_messages(r, 1)[0]
        self.assertEqual(f.headers.get("reply-to"), "/topic/replies.v1/0")

    # ---- STOMP -> MQTT ----

    def test_stomp_send_reaches_paho_v5(self):
        base = self.topic()
        sub = self.paho(level=5)
        sub.subscribe(base + "/sensors/+", 2)
        v311 = self.paho(level=4)
        v311.subscribe(base + "/sensors/+", 2)
        conn, lst = stomp_connect(self.stomp_port, "1.2")
        self.on_teardown(lambda: stomp_close(conn, lst))
        expires_ms = int((time.time() + 300) * 1000)
        conn.send(stomp_name(base + "/sensors/t2")[len(""):], b"from stomp \x01\x02",
                  headers={"content-type": "text/plain", "correlation-id": "c-7",
                           "reply-to": "/topic/a.b", "x-user": "u1", "x-other": "o",
                           "persistent": "true", "expires": str(expires_ms),
                           "receipt": "rc1"})
        lst.wait_receipt("rc1")
        conn.send(stomp_name(base + "/sensors/t3"), b"to a queue reply",
                  headers={"reply-to": "/queue/answers", "receipt": "rc2"})
        lst.wait_receipt("rc2")
        m, m2 = sub.wait_messages(2)
        self.assertEqual(m.topic, base + "/sensors/t2")
        self.assertEqual(m.payload, b"from stomp \x01\x02")
        self.assertEqual(m.qos, 1, "STOMP messages have qos 1")
        self.assertEqual(m.props.get("content_type"), "text/plain")
        self.assertEqual(m.props.get("correlation_data"), b"c-7")
        self.assertEqual(m.props.get("response_topic"), "a/b")
        user = m.props.get("user", [])
        self.assertIn(("x-user", "u1"), user)
        self.assertIn(("x-other", "o"), user)
        for k, _ in user:
            self.assertNotIn(k, ("content-type", "correlation-id", "reply-to", "persistent",
                                 "expires", "receipt", "destination", "content-length"),
                             "a STOMP frame header leaked as a user property")
        self.assertTrue(295 <= m.props.get("message_expiry", 0) <= 300, m.props)
        self.assertEqual((m2.topic, m2.payload), (base + "/sensors/t3", b"to a queue reply"))
        self.assertEqual(m2.props.get("response_topic"), "queue://answers")
        a, b = v311.wait_messages(2)
        self.assertEqual((a.topic, a.payload, a.qos), (base + "/sensors/t2",
                                                       b"from stomp \x01\x02", 1))

    def test_stomp_to_raw_mqtt_props(self):
        base = self.topic()
        r = self.raw(level=5, connect=True)
        r.subscribe([(base + "/#", 1)])
        s = RawStomp(self.stomp_port)
        self.on_teardown(s.close)
        s.connect("1.2")
        rid = new_receipt()
        s.send_frame("SEND", [("destination", stomp_name(base + "/k")), ("k2", "v2"),
                              ("k1", "v1"), ("receipt", rid)], b"body")
        s.wait_receipt(rid)
        p = r.expect(PUBLISH)
        r.ack(PUBACK, p.pid)
        self.assertEqual((p.topic, p.payload, p.qos), (base + "/k", b"body", 1))
        self.assertEqual(p.props.get("user"), [("k2", "v2"), ("k1", "v1")])

    def test_stomp_names_mqtt_cannot_carry(self):
        """A STOMP topic whose name is no MQTT topic name ('+' or '#' in a
        level) cannot reach an MQTT subscriber as it is; it must not reach
        it malformed, nor take a place in its in-flight window for ever:
        the messages after it still arrive."""
        base = self.topic()
        r = self.raw(level=5, connect=True, props=[("receive_maximum", 1)])
        r.subscribe([(base + "/#", 1)])
        s = RawStomp(self.stomp_port)
        self.on_teardown(s.close)
        s.connect("1.2")
        for level in ("a+b", "+", "x#", "ok1", "ok2"):
            rid = new_receipt()
            s.send_frame("SEND", [("destination", stomp_name(base) + "." + level),
                                  ("receipt", rid)], level.encode())
            s.wait_receipt(rid)
        got = []
        while len(got) < 2:
            p = r.expect(PUBLISH, timeout=5)
            r.ack(PUBACK, p.pid)
            self.assertNotIn("+", p.topic)
            self.assertNotIn("#", p.topic)
            got.append((p.topic, p.payload))
        self.assertEqual(got, [(base + "/ok1", b"ok1"), (base + "/ok2", b"ok2")])

    # ---- names ----

    def test_dot_inside_level_round_trips(self):
        base = self.topic()
        mqtt_topic = base + "/v1.2/x"
        dest = stomp_name(mqtt_topic)
        self.assertTrue(dest.endswith(".v1/2.x"), dest)
        r = self.raw_stomp(dest)
        sub = self.paho(level=5)
        sub.subscribe(mqtt_topic, 1)
        p = self.paho(level=4)
        p.publish(mqtt_topic, b"from mqtt", qos=1)
        f = self.stomp_messages(r, 1)[0]
        self.assertEqual((f.headers["destination"], f.body), (dest, b"from mqtt"))
        rid = new_receipt()
        r.send_frame("SEND", [("destination", dest), ("receipt", rid)], b"from stomp")
        r.wait_receipt(rid)
        sub.wait_messages(2)
        self.assertEqual([(m.topic, m.payload) for m in sub.messages],
                         [(mqtt_topic, b"from mqtt"), (mqtt_topic, b"from stomp")])
        # And a STOMP wildcard over the MQTT levels.
        w = self.raw_stomp(stomp_name(base) + ".*.x")
        p.publish(mqtt_topic, b"again", qos=1)
        f = self.stomp_messages(w, 1)[0]
        self.assertEqual((f.headers["destination"], f.body), (dest, b"again"))

    def test_stomp_wildcard_sees_mqtt_levels(self):
        base = self.topic()
        r = self.raw_stomp(stomp_name(base) + ".>")
        p = self.paho(level=4)
        for t in ("a", "a/b", "a/b/c", "/lead", "trail/"):
            p.publish(base + "/" + t, t.encode(), qos=1)
        got = self.stomp_messages(r, 5)
        self.assertEqual([(f.headers["destination"], f.body) for f in got],
                         [(stomp_name(base + "/" + t), t.encode())
                          for t in ("a", "a/b", "a/b/c", "/lead", "trail/")])


BIND_CONFIG = """\
[topic sensors.>]
bind = telemetry
"""


class BindingTest(MqttTestCase):
    config = BIND_CONFIG

    def test_topic_to_queue_binding(self):
        # Published before any consumer exists: the bound queue keeps them.
        mosquitto_pub(self.port, "sensors/t1", "m0", qos=1, level=4)
        p = self.paho(level=5)
        p.publish("sensors/t2", b"m1", qos=1)
        p.publish("other/t1", b"not bound", qos=1)
        p.publish("sensors", b"m2", qos=0)
        r = RawStomp(self.stomp_port)
        self.on_teardown(r.close)
        r.connect("1.2")
        rid = new_receipt()
        r.send_frame("SUBSCRIBE", [("id", "q"), ("destination", "/queue/telemetry"),
                                   ("ack", "client-individual"), ("receipt", rid)])
        # What the queue held may come before the RECEIPT.
        early = [f for f in r.wait_receipt(rid) if f.command == "MESSAGE"]
        p.publish("sensors/floor1/t3", b"m3", qos=2)
        got = []
        while len(got) < 4:
            f = early.pop(0) if early else r.read_frame(TIMEOUT)
            self.assertIsNotNone(f, "got only %r" % got)
            if f.command != "MESSAGE":
                continue
            got.append(f)
            r.send_frame("ACK", [("id", f.headers["ack"])])
        self.assertEqual([f.body for f in got], [b"m0", b"m1", b"m2", b"m3"])
        self.assertTrue(all(f.headers["destination"] == "/queue/telemetry" for f in got))
        # Nothing else: a receipt round trip, then no MESSAGE was pending.
        rid = new_receipt()
        r.send_frame("DISCONNECT", [("receipt", rid)])
        rest = r.wait_receipt(rid)
        self.assertEqual([f for f in rest if f.command == "MESSAGE"], [])


if __name__ == "__main__":
    main()
