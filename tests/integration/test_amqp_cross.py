#!/usr/bin/env python3
"""AMQP 1.0 <-> STOMP and MQTT (DESIGN.md §3-4, docs/mapping.md): bodies
(a string amqp-value reaches STOMP as text, a data section as its bytes,
what STOMP and MQTT send reaches AMQP as a data section), properties <->
headers / MQTT 5 properties, names (topic://sensors.t1 <-> sensors/t1), and a
request/reply between an AMQP requester and a STOMP responder through
reply-to."""
import time
import uuid

from proton import Message, ulong

from amqptest import DATA, PROPERTIES, TIMEOUT, AmqpTestCase, body_sections, sections
from mqtttest import PacketTypes, Paho, paho_props
from stomptest import RawStomp, new_receipt
from wharftest import main


class CrossTest(AmqpTestCase):

    # ---- helpers ----

    def stomp(self, *dests):
        """A raw STOMP 1.2 client subscribed (receipted) to each destination,
        subscription ids s0, s1, ..."""
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

    def stomp_send(self, r, dest, body, headers=()):
        rid = new_receipt()
        r.send_frame("SEND", [("destination", dest)] + list(headers) + [("receipt", rid)], body)
        got = r.wait_receipt(rid)
        errors = [f for f in got if f.command == "ERROR"]
        self.assertEqual(errors, [], "STOMP SEND refused")

    def paho(self, level=5):
        p = Paho(self.mqtt_port, "amqp-x-%s" % uuid.uuid4().hex[:8], level)
        self.on_teardown(p.close)
        p.connect()
        return p

    def amqp_send(self, address, *msgs):
        c = self.client()
        s = c.snd(address)
        self.assertFalse(s.refused, s.condition)
        c.send_all(s, msgs)
        return c

    # ---- AMQP -> STOMP ----

    def test_string_body_reaches_stomp_as_text(self):
        q = self.name()
        r = self.stomp("/queue/" + q)
        text = "h\u00e9llo w\u00f6rld \u2713"
        self.amqp_send("queue://" + q, Message(body=text))
        f = self.stomp_messages(r, 1)[0]
        self.assertEqual(f.body, text.encode("utf-8"))
        self.assertEqual(f.headers["destination"], "/queue/" + q)

    def test_data_section_reaches_stomp_as_bytes(self):
        q = self.name()
        r = self.stomp("/queue/" + q)
        body = bytes(range(256)) + b"\x00\x00end"
        self.amqp_send(q, Message(body=body, inferred=True))
        f = self.stomp_messages(r, 1)[0]
        self.assertEqual(f.body, body)
        self.assertEqual(f.headers.get("content-length"), str(len(body)))

    def test_properties_reach_stomp_as_headers(self):
        q = self.name()
        r = self.stomp("/queue/" + q)
        before = time.time()
        self.amqp_send(q, Message(body="with props", content_type="application/json",
                                  correlation_id="corr-1", reply_to="queue://replies.x",
                                  durable=True, priority=7, ttl=600,
                                  properties={"color": "red", "n": 42, "flag": True,
                                              "x-two-words": "two words"}))
        f = self.stomp_messages(r, 1)[0]
        h = f.headers
        self.assertEqual(f.body, b"with props")
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertEqual(h.get("correlation-id"), "corr-1")
        self.assertEqual(h.get("reply-to"), "/queue/replies.x")
        self.assertEqual(h.get("persistent"), "true")
        self.assertEqual(h.get("priority"), "7")
        self.assertEqual(h.get("color"), "red")
        self.assertEqual(h.get("n"), "42")
        self.assertEqual(h.get("flag"), "true")
        self.assertEqual(h.get("x-two-words"), "two words")
        expires = int(h["expires"]) / 1000.0
        self.assertGreater(expires, before + 590)
        self.assertLess(expires, time.time() + 610)

    def test_correlation_ids_reach_stomp_as_text(self):
        q = self.name()
        r = self.stomp("/queue/" + q)
        u = uuid.uuid4()
        self.amqp_send(q, Message(body="a", correlation_id=ulong(42)),
                       Message(body="b", correlation_id=u),
                       Message(body="c", correlation_id=b"bin-id"))
        got = self.stomp_messages(r, 3)
        self.assertEqual([f.headers.get("correlation-id") for f in got],
                         ["42", str(u), "bin-id"])

    def test_topic_reply_to_and_topic_destination(self):
        base = self.name()
        r = self.stomp("/topic/%s.*" % base)
        self.amqp_send("topic://%s.t1" % base, Message(body="t", reply_to="topic://answers.a"))
        f = self.stomp_messages(r, 1)[0]
        self.assertEqual(f.headers["destination"], "/topic/%s.t1" % base)
        self.assertEqual(f.headers.get("reply-to"), "/topic/answers.a")
        self.assertEqual(f.body, b"t")

    def test_bare_reply_to_is_a_queue(self):
        q = self.name()
        r = self.stomp("/queue/" + q)
        self.amqp_send(q, Message(body="x", reply_to="plain-replies"))
        f = self.stomp_messages(r, 1)[0]
        self.assertEqual(f.headers.get("reply-to"), "/queue/plain-replies")

    # ---- STOMP -> AMQP ----

    def test_stomp_headers_arrive_as_properties(self):
        q = self.name()
        c = self.client()
        rcv = c.rcv("queue://" + q, credit=10, auto_accept=True)
        s = self.stomp()
        body = b"from stomp \x00\x01\x02 binary"
        expires_ms = int((time.time() + 300) * 1000)
        self.stomp_send(s, "/queue/" + q, body, [
            ("content-type", "application/octet-stream"), ("correlation-id", "c-9"),
            ("reply-to", "/queue/answers"), ("persistent", "true"), ("priority", "6"),
            ("expires", str(expires_ms)), ("color", "blue"), ("x-other", "o")])
        self.stomp_send(s, "/queue/" + q, "plain text", [("reply-to", "/topic/t.answers")])
        got = c.wait_received(rcv, 2)
        x = got[0]
        self.assertEqual(x.msg.body, body)
        m = x.msg
        self.assertEqual(m.content_type, "application/octet-stream")
        self.assertEqual(m.correlation_id, "c-9")
        self.assertEqual(m.reply_to, "queue://answers")
        self.assertTrue(m.durable)
        self.assertEqual(m.priority, 6)
        self.assertAlmostEqual(m.expiry_time, expires_ms / 1000.0, delta=1)
        self.assertEqual(m.properties.get("color"), "blue")
        self.assertEqual(m.properties.get("x-other"), "o")
        for k in m.properties or {}:
            self.assertNotIn(k, ("content-type", "correlation-id", "reply-to", "persistent",
                                 "priority", "expires", "receipt", "destination",
                                 "content-length"),
                             "a STOMP frame header leaked into application-properties")
        self.assertEqual(m.delivery_count, 0)
        y = got[1]
        self.assertEqual(y.msg.body, b"plain text")
        self.assertEqual(y.msg.reply_to, "topic://t.answers")

    def test_stomp_body_is_a_data_section(self):
        """What STOMP sends reaches AMQP as one data section (not an
        amqp-value holding binary), text or not."""
        q = self.name()
        c = self.client()
        rcv = c.rcv("queue://" + q, credit=10, auto_accept=True)
        s = self.stomp()
        self.stomp_send(s, "/queue/" + q, b"bin \x00\x01")
        self.stomp_send(s, "/queue/" + q, "text", [("content-type", "text/plain")])
        got = c.wait_received(rcv, 2)
        self.assertEqual([body_sections(x.raw) for x in got],
                         [[(DATA, b"bin \x00\x01")], [(DATA, b"text")]])

    def test_stomp_topic_to_amqp_wildcard(self):
        base = self.name()
        c = self.client()
        rcv = c.rcv("topic://%s.*" % base, credit=10, auto_accept=True)
        s = self.stomp()
        for i in range(5):
            self.stomp_send(s, "/topic/%s.t%d" % (base, i), "n%d" % i)
        c.wait_received(rcv, 5)
        c.idle(0.2)
        self.assertEqual(rcv.bodies(), [b"n%d" % i for i in range(5)])

    def test_stomp_message_redelivered_to_amqp_intact(self):
        q = self.name()
        c = self.client()
        rcv = c.rcv(q, credit=1)
        s = self.stomp()
        self.stomp_send(s, "/queue/" + q, b"redeliver me", [("k", "v")])
        x = c.wait_received(rcv, 1)[0]
        rcv.modify(x, failed=True)
        rcv.link.flow(1)
        y = c.wait_received(rcv, 2)[1]
        self.assertEqual(y.msg.body, b"redeliver me")
        self.assertEqual(y.msg.properties, {"k": "v"})
        self.assertEqual(y.msg.delivery_count, 1)
        rcv.accept(y)

    # ---- AMQP <-> MQTT ----

    def test_amqp_to_mqtt(self):
        base = self.name()
        p = self.paho(level=5)
        p.subscribe("%s/sensors/t1" % base, 1)
        plus = self.paho(level=5)
        plus.subscribe("%s/sensors/+" % base, 1)
        v311 = self.paho(level=4)
        v311.subscribe("%s/#" % base, 1)
        self.amqp_send("topic://%s.sensors.t1" % base,
                       Message(body="21.5 C", content_type="text/plain",
                               correlation_id="corr-m", reply_to="topic://replies.a",
                               properties={"unit": "C"}, durable=True, ttl=600),
                       Message(body=b"\x00\x01raw", inferred=True))
        expected = [("%s/sensors/t1" % base, b"21.5 C"), ("%s/sensors/t1" % base, b"\x00\x01raw")]
        self.assertEqual([(m.topic, m.payload) for m in plus.wait_messages(2)], expected)
        got = p.wait_messages(2)
        self.assertEqual([(m.topic, m.payload) for m in got], expected)
        m = [x for x in got if x.payload == b"21.5 C"][0]
        self.assertEqual(m.qos, 1)
        self.assertEqual(m.props.get("content_type"), "text/plain")
        self.assertEqual(m.props.get("correlation_data"), b"corr-m")
        self.assertEqual(m.props.get("response_topic"), "replies/a")
        self.assertIn(("unit", "C"), m.props.get("user", []))
        self.assertEqual(m.props.get("payload_format"), 1, "a string body is UTF-8 text")
        self.assertTrue(595 <= m.props.get("message_expiry", 0) <= 600, m.props)
        raw = [x for x in got if x.payload == b"\x00\x01raw"][0]
        self.assertNotEqual(raw.props.get("payload_format"), 1, "a data section is no text")
        got = v311.wait_messages(2)
        self.assertEqual([(x.topic, x.payload) for x in got],
                         [("%s/sensors/t1" % base, b"21.5 C"),
                          ("%s/sensors/t1" % base, b"\x00\x01raw")])

    def test_mqtt_to_amqp(self):
        base = self.name()
        c = self.client()
        exact = c.rcv("topic://%s.sensors.t1" % base, credit=10, auto_accept=True)
        star = c.rcv("topic://%s.sensors.*" % base, credit=10, auto_accept=True)
        p = self.paho(level=5)
        props = paho_props(PacketTypes.PUBLISH, content_type="application/json",
                           correlation_data=b"corr-7", response_topic="answers/x",
                           user=[("k1", "v1"), ("k2", "v2")])
        p.publish("%s/sensors/t1" % base, b'{"t": 21.5}', qos=1, props=props)
        p.publish("%s/sensors/t2" % base, b"\x00\xffbin", qos=0)
        c.wait_received(exact, 1)
        c.wait_received(star, 2)
        c.idle(0.2)
        self.assertEqual(exact.count(), 1)
        x = exact.received[0]
        self.assertEqual(x.msg.body, b'{"t": 21.5}')
        m = x.msg
        self.assertEqual(m.content_type, "application/json")
        self.assertEqual(m.correlation_id, "corr-7")
        self.assertEqual(m.reply_to, "topic://answers.x")
        self.assertEqual(m.properties, {"k1": "v1", "k2": "v2"})
        self.assertTrue(m.durable, "QoS 1 is durable")
        self.assertEqual(star.bodies(), [b'{"t": 21.5}', b"\x00\xffbin"])
        self.assertEqual([body_sections(y.raw) for y in star.received],
                         [[(DATA, b'{"t": 21.5}')], [(DATA, b"\x00\xffbin")]],
                         "an MQTT payload reaches AMQP as a data section")
        self.assertFalse(star.received[1].msg.durable, "QoS 0 is not durable")

    def test_mqtt_binary_correlation_data_to_amqp(self):
        """MQTT correlation data is bytes: bytes that are no UTF-8 text must
        reach AMQP as they are (a binary correlation-id), not as a
        malformed string."""
        base = self.name()
        c = self.client()
        rcv = c.rcv("topic://%s.x" % base, credit=10, auto_accept=True)
        p = self.paho(level=5)
        corr = b"\xff\xfe\x00\x01"
        p.publish("%s/x" % base, b"body", qos=1,
                  props=paho_props(PacketTypes.PUBLISH, correlation_data=corr))
        x = c.wait_received(rcv, 1)[0]
        try:
            wire = dict(sections(x.raw))[PROPERTIES][5]
        except UnicodeDecodeError as e:
            self.fail("correlation data %r reached AMQP as a string that is no UTF-8 (%s); "
                      "the message cannot be decoded" % (corr, e))
        self.assertEqual(wire, corr)

    def test_names_with_dots_inside_mqtt_levels(self):
        """MQTT v1.2/x is the topic v1/2.x: an AMQP receiver on
        topic://BASE.v1/2.x gets what MQTT publishes to BASE/v1.2/x."""
        base = self.name()
        c = self.client()
        rcv = c.rcv("topic://%s.v1/2.x" % base, credit=10, auto_accept=True)
        p = self.paho(level=4)
        p.publish("%s/v1.2/x" % base, b"dotted", qos=1)
        x = c.wait_received(rcv, 1)[0]
        self.assertEqual(x.msg.body, b"dotted")

    # ---- request / reply ----

    def test_request_reply_with_stomp_responder(self):
        """An AMQP requester sends to queue://requests with reply-to a named
        queue; a STOMP responder answers to the reply-to it reads, with the
        correlation-id; the requester gets each answer, matched."""
        requests = self.name()
        replies = "replies." + self.name()
        responder = self.stomp("/queue/" + requests)
        c = self.client()
        answers = c.rcv("queue://" + replies, credit=10, auto_accept=True)
        s = c.snd("queue://" + requests)
        ids = ["req-%d" % i for i in range(3)]
        for i, cid in enumerate(ids):
            c.send_all(s, [Message(body="question %d" % i, correlation_id=cid,
                                   reply_to="queue://" + replies)])
        for f in self.stomp_messages(responder, 3):
            self.assertEqual(f.headers.get("reply-to"), "/queue/" + replies)
            self.stomp_send(responder, f.headers["reply-to"],
                            b"answer to " + f.body,
                            [("correlation-id", f.headers["correlation-id"])])
        got = c.wait_received(answers, 3)
        c.idle(0.2)
        self.assertEqual([(x.msg.correlation_id, x.body) for x in got],
                         [(cid, b"answer to question %d" % i) for i, cid in enumerate(ids)])

    def test_request_reply_through_dynamic_reply_queue(self):
        requests = self.name()
        responder = self.stomp("/queue/" + requests)
        c = self.client()
        answers = c.rcv(None, credit=10, auto_accept=True, wait=False)
        answers.link.source.dynamic = True
        c.pump(lambda: answers.remote_opened or answers.remote_closed, what="dynamic attach")
        self.assertFalse(answers.remote_closed, answers.condition)
        address = answers.link.remote_source.address
        self.assertTrue(address, "no address for the dynamic source")
        s = c.snd("queue://" + requests)
        c.send_all(s, [Message(body="q", correlation_id="dyn-1", reply_to=address)])
        f = self.stomp_messages(responder, 1)[0]
        self.stomp_send(responder, f.headers["reply-to"], b"a",
                        [("correlation-id", f.headers["correlation-id"])])
        x = c.wait_received(answers, 1)[0]
        self.assertEqual((x.msg.correlation_id, x.body), ("dyn-1", b"a"))
        # a second dynamic source gets an address of its own
        other = c.rcv(None, credit=1, wait=False)
        other.link.source.dynamic = True
        c.pump(lambda: other.remote_opened or other.remote_closed, what="dynamic attach")
        self.assertNotEqual(other.link.remote_source.address, address)
        # the temporary queue goes with its link, and what waited in it
        answers.link.drain(0)  # no credit left: the next reply waits in the queue
        c.pump(lambda: not answers.link.draining(), what="the drain")
        self.stomp_send(responder, f.headers["reply-to"], b"too late",
                        [("correlation-id", "dyn-1")])
        answers.link.close()
        c.pump(lambda: answers.remote_closed, what="the detach")
        late = c.rcv(address, credit=5)
        c.idle(0.3)
        self.assertEqual(late.bodies(), [], "the temporary queue outlived its link")


if __name__ == "__main__":
    main()
