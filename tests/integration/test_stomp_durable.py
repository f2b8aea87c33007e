#!/usr/bin/env python3
"""STOMP durable topic subscriptions (docs/stomp.md), as ActiveMQ clients ask
for them (client-id on CONNECT, activemq.subscriptionName or
durable-subscription-name on SUBSCRIBE) and as RabbitMQ clients do
(durable:true, auto-delete:false and the id): what arrives while the
subscriber is away waits for it, in order, also across a kill -9 of the
broker; a plain UNSUBSCRIBE or a disconnect detaches, an UNSUBSCRIBE with
the durable headers ends the subscription; wildcards; MQTT and AMQP
publishers; the errors."""
import threading
import time
import uuid

from proton import Message

from amqptest import Client
from mqtttest import Paho
from stomptest import TIMEOUT, RawStomp, StompTestCase, new_receipt, stomp_close, stomp_connect
from test_store import StoreTestCase
from wharftest import main

AMQ = (("activemq.subscriptionName", "audit"),)
AMQ_NEW = (("durable-subscription-name", "audit"),)
RABBIT = (("durable", "true"), ("auto-delete", "false"))


def client_id():
    return "cid-" + uuid.uuid4().hex[:10]


def messages(frames):
    return [f for f in frames if f.command == "MESSAGE"]


def bodies(frames):
    return [f.body.decode() for f in frames]


class Durable:
    """Durable subscriber cycles on raw connections, for a test case with a
    stomp port; every MESSAGE read is kept in self.got."""

    def __init__(self, tc, port, cid, dest, style=AMQ, sub_id="d", ack="auto", version="1.2"):
        self.tc, self.port, self.cid, self.dest = tc, port, cid, dest
        self.style, self.sub_id, self.ack, self.version = style, sub_id, ack, version
        self.r = None
        self.got = []

    def attach(self):
        """Connects and subscribes; returns the frames up to the receipt."""
        self.r = RawStomp(self.port)
        self.r.connect(self.version, headers=[("client-id", self.cid)] if self.cid else [])
        return self.subscribe()

    def subscribe(self, dest=None):
        rid = new_receipt()
        self.r.send_frame("SUBSCRIBE", [("id", self.sub_id), ("destination", dest or self.dest),
                                        ("ack", self.ack)] + list(self.style) + [("receipt", rid)])
        return self.keep(self.r.wait_receipt(rid))

    def keep(self, frames):
        errors = [f for f in frames if f.command == "ERROR"]
        self.tc.assertEqual(errors, [])
        self.got += messages(frames)
        return frames

    def read(self, n):
        """Reads until n messages have arrived in all."""
        while len(self.got) < n:
            f = self.r.read_frame()
            self.tc.assertIsNotNone(f, "only %d of %d messages: %r"
                                    % (len(self.got), n, bodies(self.got)[-5:]))
            self.keep([f])
        return self.got

    def sync(self):
        """Everything the broker sent before now has been read."""
        rid = new_receipt()
        self.r.send_frame("BEGIN", [("transaction", rid)])
        self.r.send_frame("ABORT", [("transaction", rid), ("receipt", rid)])
        self.keep(self.r.wait_receipt(rid))

    def unsubscribe(self, headers=()):
        rid = new_receipt()
        self.r.send_frame("UNSUBSCRIBE", [("id", self.sub_id)] + list(headers) + [("receipt", rid)])
        self.keep(self.r.wait_receipt(rid))

    def detach(self):
        """DISCONNECT with a receipt: what came before it is kept."""
        rid = new_receipt()
        self.r.send_frame("DISCONNECT", [("receipt", rid)])
        self.keep(self.r.wait_receipt(rid))
        self.r.wait_closed()
        self.r.close()
        self.r = None

    def ack_all(self, frames):
        """client-individual acks, the last with a receipt (waited for)."""
        for i, f in enumerate(frames):
            h = [("id", f.headers["ack"])]
            rid = None
            if i == len(frames) - 1:
                rid = new_receipt()
                h.append(("receipt", rid))
            self.r.send_frame("ACK", h)
        if rid:
            self.keep(self.r.wait_receipt(rid))

    def only_new(self, publish):
        """Attaches again: what publish(bodies) sends now is all that comes."""
        self.got = []
        self.attach()
        publish(["fresh"])
        self.read(1)
        self.sync()
        self.tc.assertEqual(bodies(self.got), ["fresh"])

    def close(self):
        if self.r:
            self.r.close()


class DurableTest(StompTestCase):
    protocols = ("stomp", "mqtt", "amqp")

    def durable(self, dest, style=AMQ, **kw):
        d = Durable(self, self.port, client_id(), dest, style, **kw)
        self.addCleanup(d.close)
        return d

    def publish(self, dest, bodies_, persistent=True):
        conn, lst = self.connect()
        self.send_all(conn, lst, dest, bodies_,
                      headers={"persistent": "true"} if persistent else None)

    def check_kept_while_away(self, style, version="1.2"):
        t = self.name("topic")
        d = self.durable(t, style, version=version)
        d.attach()
        self.publish(t, ["live"])
        d.read(1)
        d.detach()
        away = ["away-%03d" % i for i in range(50)]
        self.publish(t, away[:25])
        self.publish(t, away[25:], persistent=False)
        d.got = []
        d.attach()
        d.read(50)
        d.sync()
        self.assertEqual(bodies(d.got), away)
        for f in d.got:
            self.assertEqual(f.headers["destination"], t)
            self.assertEqual(f.headers["subscription"], "d")
        self.assertEqual([f.headers.get("persistent") for f in d.got],
                         ["true"] * 25 + [None] * 25)

    def test_activemq_subscription_name_keeps_what_arrives_while_away(self):
        self.check_kept_while_away(AMQ)

    def test_durable_subscription_name_keeps_what_arrives_while_away(self):
        self.check_kept_while_away(AMQ_NEW, "1.1")

    def test_rabbitmq_durable_and_auto_delete_false_keep_what_arrives_while_away(self):
        self.check_kept_while_away(RABBIT)

    def test_rabbitmq_older_persistent_header_works_too(self):
        self.check_kept_while_away((("persistent", "true"), ("auto-delete", "false")))

    def test_rabbitmq_durable_without_auto_delete_false_goes_with_its_subscriber(self):
        # RabbitMQ deletes such a queue with its last subscriber.
        t = self.name("topic")
        d = self.durable(t, (("durable", "true"),))
        d.attach()
        d.detach()
        self.publish(t, ["lost"])
        d.only_new(lambda b: self.publish(t, b))

    def test_misses_nothing_across_detaches(self):
        t = self.name("topic")
        d = self.durable(t)
        d.attach()
        n = 3000
        errors = []

        def produce():
            try:
                conn, lst = stomp_connect(self.port)
                for i in range(n):
                    conn.send(t, "m-%05d" % i,
                              headers={"persistent": "true"} if i % 2 else {})
                    if i % 100 == 99:
                        time.sleep(0.02)  # a stream, so detaches fall inside it
                rid = new_receipt()
                conn.send(t, "end", headers={"receipt": rid})
                lst.wait_receipt(rid)
                stomp_close(conn, lst)
            except Exception as e:  # reported below
                errors.append(e)

        th = threading.Thread(target=produce)
        th.start()
        for cycle in range(8):
            d.read((cycle + 1) * n // 10)
            if cycle % 2:
                d.detach()
                d.attach()
            else:
                d.unsubscribe()
                d.subscribe()
        th.join(TIMEOUT * 3)
        self.assertEqual(errors, [])
        d.read(n + 1)
        d.sync()
        self.assertEqual(bodies(d.got), ["m-%05d" % i for i in range(n)] + ["end"])

    def test_client_acknowledgements_work_as_for_any_subscription(self):
        t = self.name("topic")
        d = self.durable(t, ack="client-individual")
        d.attach()
        d.detach()
        self.publish(t, ["a", "b", "c", "d"])
        d.attach()
        first = d.read(4)
        d.ack_all(first[:2])
        d.detach()  # c and d delivered, not acknowledged
        self.publish(t, ["e"])
        d.got = []
        d.attach()
        d.read(3)
        d.sync()
        self.assertEqual(bodies(d.got), ["c", "d", "e"])
        self.assertEqual([f.headers.get("redelivered") for f in d.got], ["true", "true", None])
        d.ack_all(d.got)
        d.detach()
        d.only_new(lambda b: self.publish(t, b))

    def test_plain_unsubscribe_detaches(self):
        t = self.name("topic")
        d = self.durable(t)
        d.attach()
        d.unsubscribe()
        self.publish(t, ["x", "y"])
        d.subscribe()
        d.read(2)
        self.assertEqual(bodies(d.got), ["x", "y"])

    def check_ended(self, d, t):
        """Nothing published before now reaches a new subscription of d."""
        self.publish(t, ["gone"])
        d.only_new(lambda b: self.publish(t, b))

    def test_activemq_unsubscribe_with_the_name_ends_it(self):
        t = self.name("topic")
        d = self.durable(t)
        d.attach()
        self.publish(t, ["unread"])
        d.unsubscribe(AMQ)
        d.detach()
        self.check_ended(d, t)

    def test_rabbitmq_unsubscribe_with_durable_and_auto_delete_false_ends_it(self):
        t = self.name("topic")
        d = self.durable(t, RABBIT)
        d.attach()
        d.detach()
        self.publish(t, ["unread"])
        d.attach()
        d.read(1)
        d.unsubscribe(RABBIT)
        d.detach()
        self.check_ended(d, t)

    def test_ended_from_a_later_connection_without_subscribing(self):
        t = self.name("topic")
        d = self.durable(t)
        d.attach()
        d.detach()
        self.publish(t, ["unread"])
        r = self.raw(headers=[("client-id", d.cid)])
        rid = new_receipt()
        r.send_frame("UNSUBSCRIBE", list(AMQ) + [("receipt", rid)])
        self.assertEqual([f.command for f in r.wait_receipt(rid)], ["RECEIPT"])
        r.close()
        self.check_ended(d, t)

    def test_ending_one_that_does_not_exist_is_an_error(self):
        r = self.raw(headers=[("client-id", client_id())])
        r.send_frame("UNSUBSCRIBE", [("id", "x"), ("activemq.subscriptionName", "nope")])
        f = r.read_frame()
        self.assertEqual(f.command, "ERROR")
        self.assertEqual(f.headers["message"], "no such durable subscription")
        r.wait_closed()

    def test_rabbitmq_style_without_client_id_is_named_by_its_id(self):
        """RabbitMQ clients send no client-id: as there, the subscription's
        id names it, so they need no change."""
        t = self.name("topic")
        d = Durable(self, self.port, None, t, RABBIT, sub_id="rabbit-" + client_id())
        self.addCleanup(d.close)
        d.attach()
        d.close()
        self.publish(t, ["a1", "a2", "a3"])
        d.attach()
        d.read(3)
        d.sync()
        self.assertEqual(bodies(d.got), ["a1", "a2", "a3"])

    def test_an_activemq_durable_subscribe_without_client_id_is_an_error(self):
        for style in (AMQ, AMQ_NEW):
            r = self.raw()
            r.send_frame("SUBSCRIBE", [("id", "s"), ("destination", self.name("topic"))]
                         + list(style))
            f = r.read_frame()
            self.assertEqual(f.command, "ERROR", style)
            self.assertEqual(f.headers["message"], "durable subscription needs a client-id")
            self.assertIn(b"client-id", f.body)
            r.wait_closed()

    def test_no_other_client_reads_a_durable_subscriptions_queue(self):
        t = self.name("topic")
        d = self.durable(t)
        d.attach()
        d.close()
        q = "/queue/$stomp.%s.%s" % (d.cid.encode().hex(), "audit".encode().hex())
        r = self.raw()
        r.send_frame("SUBSCRIBE", [("id", "thief"), ("destination", q)])
        f = r.read_frame()
        self.assertEqual(f.command, "ERROR")
        self.assertEqual(f.headers["message"], "destination reserved for the broker")
        r.wait_closed()

    def test_durable_headers_on_a_queue_change_nothing(self):
        q = self.name("queue")
        r = self.raw()
        rid = new_receipt()
        r.send_frame("SUBSCRIBE", [("id", "s"), ("destination", q), ("receipt", rid)] + list(AMQ))
        self.assertEqual([f.command for f in r.wait_receipt(rid)], ["RECEIPT"])

    def test_a_second_connection_with_the_same_client_id_is_refused(self):
        cid = client_id()
        r1 = self.raw(headers=[("client-id", cid)])
        r2 = RawStomp(self.port)
        self._raws.append(r2)
        r2.send_frame("CONNECT", [("accept-version", "1.2"), ("host", "h"), ("client-id", cid)])
        f = r2.read_frame()
        self.assertEqual(f.command, "ERROR")
        self.assertEqual(f.headers["message"], "client id already in use")
        r2.wait_closed()
        rid = new_receipt()
        r1.send_frame("DISCONNECT", [("receipt", rid)])
        r1.wait_receipt(rid)
        r1.wait_closed()
        self.raw(headers=[("client-id", cid)])  # free again

    def test_one_durable_subscription_twice_on_a_connection_is_an_error(self):
        t = self.name("topic")
        d = self.durable(t)
        d.attach()
        d.r.send_frame("SUBSCRIBE", [("id", "other"), ("destination", t)] + list(AMQ))
        f = d.r.read_frame()
        self.assertEqual(f.command, "ERROR")
        self.assertEqual(f.headers["message"], "durable subscription already active")

    def test_wildcard_durable_subscription(self):
        base = self.name("topic")
        d = self.durable(base + ".>")
        d.attach()
        d.detach()
        conn, lst = self.connect()
        for dest in (base + ".a", base + ".b.c", base + "x.a", base + ".d"):
            self.send_all(conn, lst, dest, [dest], headers={"persistent": "true"})
        d.attach()
        d.read(3)
        d.sync()
        self.assertEqual(bodies(d.got), [base + ".a", base + ".b.c", base + ".d"])
        self.assertEqual([f.headers["destination"] for f in d.got], bodies(d.got))

    def test_subscribing_again_to_another_topic_starts_afresh(self):
        t1, t2 = self.name("topic"), self.name("topic")
        d = self.durable(t1)
        d.attach()
        d.detach()
        self.publish(t1, ["old"])
        d.dest = t2
        d.attach()
        self.publish(t1, ["not any more"])
        self.publish(t2, ["new"])
        d.read(1)
        d.sync()
        self.assertEqual(bodies(d.got), ["new"])

    def test_mqtt_and_amqp_publishers_reach_it_while_away(self):
        t = self.name("topic", "cross.durable")
        d = self.durable(t)
        d.attach()
        d.detach()
        topic = t[len("/topic/"):]
        p = Paho(self.broker.ports["mqtt"], "durable-pub-" + uuid.uuid4().hex[:6], 4)
        self.addCleanup(p.close)
        p.connect()
        for i in range(3):
            p.publish(topic.replace(".", "/"), "mqtt-%d" % i, qos=1)
        c = Client(self.broker.ports["amqp"])
        self.addCleanup(c.close)
        s = c.snd("topic://" + topic)
        c.send_all(s, [Message(body="amqp-%d" % i, durable=True) for i in range(3)])
        d.attach()
        d.read(6)
        d.sync()
        self.assertEqual(bodies(d.got), ["mqtt-0", "mqtt-1", "mqtt-2", "amqp-0", "amqp-1", "amqp-2"])
        self.assertEqual([f.headers.get("persistent") for f in d.got], ["true"] * 6)


class DurableRestartTest(StoreTestCase):
    """kill -9 of the broker, then a start on the same data directory."""

    def publish(self, b, dest, bodies_, persistent=True):
        conn, lst = stomp_connect(b.stomp_port)
        for i, body in enumerate(bodies_):
            h = {"persistent": "true"} if persistent else {}
            if i == len(bodies_) - 1:
                h["receipt"] = "last"
            conn.send(dest, body, headers=h)
        lst.wait_receipt("last")
        stomp_close(conn, lst)

    def test_survives_kill9_and_keeps_collecting_after_it(self):
        t = "/topic/billing.events"
        cid = client_id()
        b = self.start()
        d = Durable(self, b.stomp_port, cid, t, RABBIT, ack="client-individual")
        d.attach()
        self.publish(b, t, ["before-000"])
        d.read(1)  # delivered, not acknowledged: it comes back
        d.detach()
        before = ["before-%03d" % i for i in range(1, 300)]
        self.publish(b, t, before)
        self.publish(b, t, ["transient"], persistent=False)
        b.kill9()

        b2 = self.start()
        after = ["after-%03d" % i for i in range(100)]
        self.publish(b2, t, after)
        d.port = b2.stomp_port
        d.got = []
        d.attach()
        d.read(400)
        d.sync()
        self.assertEqual(bodies(d.got), ["before-000"] + before + after)
        d.ack_all(d.got)
        d.detach()
        b2.kill9()

        b3 = self.start()
        d.port = b3.stomp_port
        d.only_new(lambda b: self.publish(b3, t, b))
        d.detach()
        self.stop(b3)

    def test_an_ended_subscription_stays_ended_after_kill9(self):
        t = "/topic/billing.*"
        cid = client_id()
        b = self.start()
        d = Durable(self, b.stomp_port, cid, t)
        d.attach()
        d.detach()
        self.publish(b, "/topic/billing.x", ["unread"])
        d.attach()
        d.read(1)
        d.unsubscribe(AMQ)
        d.detach()
        b.kill9()

        b2 = self.start()
        self.publish(b2, "/topic/billing.y", ["gone"])
        d.port = b2.stomp_port
        d.only_new(lambda b: self.publish(b2, "/topic/billing.z", b))
        d.detach()
        self.stop(b2)


if __name__ == "__main__":
    main()
