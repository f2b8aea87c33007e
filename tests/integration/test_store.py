"""The durable store with real clients and kill -9: what a publisher was told
is safe comes back after a crash, in order, once; what a consumer
acknowledged does not; damage to the journal costs only what it touched;
a full disk refuses durable publishes cleanly and the broker recovers."""

import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from proton import Message
from proton.reactor import DurableSubscription

from amqptest import Client
from mqtttest import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, Paho, RawMqtt, ack_packet, publish_packet
from stomptest import TIMEOUT, new_receipt, on_receipts, stomp_close, stomp_connect
from wharftest import Broker, main, wait_until

QUEUE = "/queue/orders"


def publish_stream(port, n, confirmed, stop, body=lambda i: "m-%06d" % i, size_pad=0):
    """Sends n persistent messages, each with a receipt, without waiting in
    between; records in `confirmed` (a list) each index whose receipt came.
    Ends when done, when the broker goes away, or when `stop` is set."""
    conn, lst = stomp_connect(port)
    rids = {}
    on_receipts(lst, rids, confirmed.append)
    try:
        for i in range(n):
            if stop.is_set():
                break
            rid = "r-%d" % i
            rids[rid] = i
            conn.send(QUEUE, body(i) + "x" * size_pad, headers={"persistent": "true", "receipt": rid})
    except Exception:
        pass  # the broker was killed under us
    return conn, lst


def drain(port, dest=QUEUE, idle=1.0, ack_first=None):
    """Consumes with client-individual acks until nothing comes for `idle`
    seconds; returns the bodies. With ack_first=k, only the first k are
    acknowledged (the last of them with a receipt, waited for) and the
    connection is left open, returned too."""
    got = []
    conn, lst = stomp_connect(port)
    conn.subscribe(dest, id="s", ack="client-individual")
    seen = 0
    last = time.monotonic()
    while time.monotonic() - last < idle:
        time.sleep(0.02)
        with lst.cond:
            msgs = lst.messages[seen:]
        for f in msgs:
            seen += 1
            got.append(f.body)
            last = time.monotonic()
            if ack_first is None or len(got) <= ack_first:
                final = ack_first is not None and len(got) == ack_first
                conn.ack(f.headers["ack"], receipt="acked" if final else None)
        if ack_first is not None and len(got) >= ack_first:
            lst.wait_receipt("acked")
            return got, conn, lst
    stomp_close(conn, lst)
    return got, None, None


class StoreTestCase(unittest.TestCase):
    config = None

    def setUp(self):
        self.brokers = []
        self.data = tempfile.mkdtemp(prefix="wharf-store-")
        self.data_dir = os.path.join(self.data, "data")

    def tearDown(self):
        for b in self.brokers:
            b.cleanup()
        shutil.rmtree(self.data, ignore_errors=True)

    def start(self, protocols=("stomp",), config=None):
        b = Broker(protocols, config if config is not None else self.config,
                   data_dir=self.data_dir)
        self.brokers.append(b)
        return b

    def stop(self, b):
        rc = b.stop()
        self.assertEqual(rc, 0, "wharfd exited with %d:\n%s" % (rc, b.output()))

    def segments(self):
        return sorted(glob.glob(os.path.join(self.data_dir, "journal", "*.wj")))


class CrashTest(StoreTestCase):
    def check_after_crash(self, cut, total=3000):
        b = self.start()
        confirmed, stop = [], threading.Event()
        sender = threading.Thread(target=lambda: publish_stream(b.stomp_port, total, confirmed, stop))
        sender.start()
        wait_until(lambda: len(confirmed) >= cut, TIMEOUT, what="%d receipts" % cut)
        b.kill9()
        stop.set()
        sender.join(TIMEOUT)
        safe = list(confirmed)
        self.assertGreaterEqual(len(safe), cut)

        b2 = self.start()
        got, _, _ = drain(b2.stomp_port)
        idx = [int(x.split("-")[1]) for x in got]
        self.assertEqual(idx, sorted(set(idx)), "out of order or duplicated")
        self.assertTrue(set(safe) <= set(idx), "confirmed but lost: %s" % sorted(set(safe) - set(idx))[:10])
        self.assertTrue(all(0 <= i < total for i in idx), "a message never sent")
        # Every message up to the last one that came back was sent before it,
        # and the store keeps a publisher's order: no holes.
        self.assertEqual(idx, list(range(len(idx))))
        self.stop(b2)

    def test_kill9_right_after_the_first_receipt(self):
        self.check_after_crash(1)

    def test_kill9_in_the_middle_of_a_stream(self):
        self.check_after_crash(400)

    def test_kill9_late_in_a_stream(self):
        self.check_after_crash(2000)

    def test_acknowledged_messages_do_not_come_back(self):
        b = self.start()
        conn, lst = stomp_connect(b.stomp_port)
        for i in range(100):
            conn.send(QUEUE, "m-%06d" % i, headers={"persistent": "true", "receipt": "p%d" % i})
        lst.wait_receipt("p99")
        stomp_close(conn, lst)
        got, c2, l2 = drain(b.stomp_port, ack_first=60)
        self.assertEqual(got[:60], ["m-%06d" % i for i in range(60)])
        b.kill9()
        b2 = self.start()
        got, _, _ = drain(b2.stomp_port)
        self.assertEqual(got, ["m-%06d" % i for i in range(60, 100)])
        self.stop(b2)

    def test_transient_messages_are_not_kept(self):
        b = self.start()
        conn, lst = stomp_connect(b.stomp_port)
        conn.send(QUEUE, "durable", headers={"persistent": "true"})
        conn.send(QUEUE, "transient", headers={"receipt": "t"})
        lst.wait_receipt("t")
        b.kill9()
        b2 = self.start()
        got, _, _ = drain(b2.stomp_port)
        self.assertEqual(got, ["durable"])
        self.stop(b2)

    def test_headers_and_binary_bodies_survive(self):
        b = self.start()
        conn, lst = stomp_connect(b.stomp_port)
        body = bytes(range(256)) * 4
        conn.send(QUEUE, body, headers={"persistent": "true", "receipt": "b", "color": "blue",
                                        "content-type": "application/octet-stream",
                                        "correlation-id": "c-1", "reply-to": "/queue/replies"})
        lst.wait_receipt("b")
        b.kill9()
        b2 = self.start()
        conn, lst = stomp_connect(b2.stomp_port, auto_decode=False)
        conn.subscribe(QUEUE, id="s", ack="auto")
        lst.wait_messages(1)
        f = lst.messages[0]
        self.assertEqual(f.body, body)
        self.assertEqual(f.headers["color"], "blue")
        self.assertEqual(f.headers["content-type"], "application/octet-stream")
        self.assertEqual(f.headers["correlation-id"], "c-1")
        self.assertEqual(f.headers["reply-to"], "/queue/replies")
        self.assertEqual(f.headers.get("persistent"), "true")
        stomp_close(conn, lst)
        self.stop(b2)

    def test_amqp_accepted_durable_messages_survive(self):
        b = self.start(("amqp",))
        p = Client(b.ports["amqp"])
        snd = p.snd("orders")
        p.send_all(snd, [Message(body="m-%06d" % i, durable=True) for i in range(500)])  # all accepted
        b.kill9()
        b2 = self.start(("amqp",))
        c = Client(b2.ports["amqp"])
        r = c.rcv("orders", credit=1000, auto_accept=True)
        c.wait_received(r, 500)
        c.idle(0.3)
        self.assertEqual(r.bodies(), ["m-%06d" % i for i in range(500)])
        c.close()
        self.stop(b2)

    def test_mqtt_qos1_into_a_bound_queue_survives(self):
        config = "[topic sensors.>]\nbind = readings\n"
        b = self.start(("stomp", "mqtt"), config)
        p = Paho(b.ports["mqtt"], client_id="dev-1", level=4)
        p.connect()
        for i in range(50):
            p.c.publish("sensors/t1", "r-%03d" % i, qos=1)
        p.wait_for(lambda: len(p.published) == 50, TIMEOUT, "50 PUBACKs")
        b.kill9()
        p.c.loop_stop()
        b2 = self.start(("stomp", "mqtt"), config)
        got, _, _ = drain(b2.stomp_port, "/queue/readings")
        self.assertEqual(got, ["r-%03d" % i for i in range(50)])
        self.stop(b2)


class DeliveryCountTest(StoreTestCase):
    """A message's delivery count outlives a crash: it is written when the
    message is given back (NACK, a consumer gone), docs/durability.md."""
    config = "[queue counted]\nmax_redeliveries = 3\n"

    def deliver_and_nack(self, lst, conn, n):
        """Waits for delivery n (1-based, of one message) and NACKs it with
        a receipt; returns the frame."""
        lst.wait_for(lambda: len(lst.messages) >= n or lst.errors, TIMEOUT, "delivery %d" % n)
        self.assertEqual(lst.errors, [])
        f = lst.messages[n - 1]
        conn.nack(f.headers["ack"], receipt="n%d" % n)
        lst.wait_for(lambda: ("n%d" % n) in lst.receipts, TIMEOUT, "NACK receipt")
        return f

    def test_delivery_count_continues_after_kill9(self):
        b = self.start()
        conn, lst = stomp_connect(b.stomp_port)
        conn.send("/queue/counted", "once", headers={"persistent": "true", "receipt": "p"})
        lst.wait_for(lambda: "p" in lst.receipts, TIMEOUT, "receipt")
        conn.subscribe("/queue/counted", id="s", ack="client-individual")
        self.assertNotIn("redelivered", self.deliver_and_nack(lst, conn, 1).headers)
        self.assertEqual(self.deliver_and_nack(lst, conn, 2).headers.get("x-delivery-count"), "1")
        b.kill9()

        b2 = self.start()
        conn, lst = stomp_connect(b2.stomp_port)
        conn.subscribe("/queue/counted", id="s", ack="client-individual")
        f = self.deliver_and_nack(lst, conn, 1)
        self.assertEqual(f.body, "once")
        self.assertEqual((f.headers.get("redelivered"), f.headers.get("x-delivery-count")),
                         ("true", "2"), "the count started again")
        self.deliver_and_nack(lst, conn, 2)  # the 4th delivery: past max_redeliveries
        stomp_close(conn, lst)
        got, _, _ = drain(b2.stomp_port, dest="/queue/DLQ.counted", idle=0.5)
        self.assertEqual(got, ["once"], "not dead-lettered after 1 + 3 deliveries")
        self.assertEqual(drain(b2.stomp_port, dest="/queue/counted", idle=0.3)[0], [])
        self.stop(b2)


class KeptStateTest(StoreTestCase):
    """What is not a queued message but must outlive a crash too."""

    def test_retained_messages_survive_and_a_cleared_one_stays_cleared(self):
        b = self.start(("mqtt",))
        p = Paho(b.ports["mqtt"], client_id="pub", level=5)
        p.connect()
        mids = [p.c.publish("plant/%d/state" % i, "state-%d" % i, qos=1, retain=True).mid
                for i in range(20)]
        mids.append(p.c.publish("plant/3/state", b"", qos=1, retain=True).mid)  # clears it
        p.wait_for(lambda: set(mids) <= p.published, TIMEOUT, "PUBACKs")
        b.kill9()
        p.c.loop_stop()
        b2 = self.start(("mqtt",))
        s = Paho(b2.ports["mqtt"], client_id="sub", level=5)
        s.connect()
        s.subscribe("plant/+/state", qos=1)
        s.wait_for(lambda: len(s.messages) >= 19, TIMEOUT, "19 retained messages")
        time.sleep(0.3)
        got = sorted((m.topic, m.payload, m.retain) for m in s.messages)
        want = sorted(("plant/%d/state" % i, b"state-%d" % i, True) for i in range(20) if i != 3)
        self.assertEqual(got, want)
        s.c.disconnect()
        s.c.loop_stop()
        self.stop(b2)

    def test_retained_message_is_on_disk_before_its_puback(self):
        """The PUBACK of a retained QoS 1 message waits for its record: kill -9
        the moment the PUBACK arrives (from paho's own callback) and the
        retained message is there after the restart. Large bodies make the
        write slow enough that an early PUBACK would lose the race."""
        b = self.start(("mqtt",), config="[mqtt]\nmax_packet_size = 16MiB\n")
        p = Paho(b.ports["mqtt"], client_id="pub", level=5)
        p.connect()
        body = bytes(range(256)) * (8 << 12)  # 8 MiB
        killed = threading.Event()

        def on_publish(c, ud, mid):
            b.proc.kill()  # SIGKILL at once, before anything else happens
            killed.set()
            p._on_publish(c, ud, mid)

        p.c.on_publish = on_publish
        p.c.publish("plant/big/state", body, qos=1, retain=True)
        self.assertTrue(killed.wait(TIMEOUT), "no PUBACK")
        b.kill9()
        p.c.loop_stop()
        b2 = self.start(("mqtt",), config="[mqtt]\nmax_packet_size = 16MiB\n")
        s = Paho(b2.ports["mqtt"], client_id="sub", level=5)
        s.connect()
        s.subscribe("plant/+/state", qos=1)
        got = s.wait_messages(1)
        self.assertEqual([(m.topic, len(m.payload), m.retain) for m in got],
                         [("plant/big/state", len(body), True)])
        self.assertEqual(got[0].payload, body)
        s.c.disconnect()
        s.c.loop_stop()
        self.stop(b2)

    def test_amqp_durable_subscription_keeps_collecting_after_a_crash(self):
        """The subscription's binding is kept: what is published after the
        restart, before the subscriber comes back, waits for it."""
        b = self.start(("amqp",))
        c = Client(b.ports["amqp"], container_id="ledger")
        r = c.rcv("topic://payments.eu", credit=10, name="audit", options=DurableSubscription(),
                  auto_accept=True)
        self.assertFalse(r.refused, r.condition)
        p = Client(b.ports["amqp"])
        snd = p.snd("topic://payments.eu")
        p.send_all(snd, [Message(body="before", durable=True)])
        c.wait_received(r, 1)
        r.link.detach()
        c.pump(lambda: r.remote_closed, what="the detach")
        p.send_all(snd, [Message(body="while detached", durable=True)])
        time.sleep(0.2)
        b.kill9()
        b2 = self.start(("amqp",))
        p = Client(b2.ports["amqp"])
        snd = p.snd("topic://payments.eu")
        p.send_all(snd, [Message(body="after the restart", durable=True)])
        time.sleep(0.2)
        c = Client(b2.ports["amqp"], container_id="ledger")
        r = c.rcv("topic://payments.eu", credit=10, name="audit", options=DurableSubscription(),
                  auto_accept=True)
        c.wait_received(r, 2)
        c.idle(0.3)
        self.assertEqual(r.bodies(), ["while detached", "after the restart"])
        r.link.close()
        c.pump(lambda: r.remote_closed, what="the close")
        c.close()
        p.close()
        self.stop(b2)


class MqttSessionTest(StoreTestCase):
    """Persistent MQTT sessions come back after kill -9 with their
    subscriptions, and keep collecting for their client."""

    def crash_and_resume(self, level, connect_props=None):
        b = self.start(("mqtt",))
        kw = dict(client_id="dev-%d" % level, level=level, clean=False)
        if connect_props:
            kw["props"] = connect_props()
        dev = Paho(b.ports["mqtt"], **kw)
        dev.connect()
        dev.subscribe("alerts/#", qos=1)
        dev.subscribe("other/+", qos=1)
        dev.c.unsubscribe("other/+")
        time.sleep(0.1)
        dev.c.disconnect()
        dev.c.loop_stop()
        pub = Paho(b.ports["mqtt"], client_id="pub", level=4)
        pub.connect()
        mids = [pub.c.publish("alerts/fire/%d" % i, "a-%02d" % i, qos=1).mid for i in range(10)]
        mids.append(pub.c.publish("other/x", "not subscribed", qos=1).mid)
        pub.wait_for(lambda: set(mids) <= pub.published, TIMEOUT, "PUBACKs")
        b.kill9()
        pub.c.loop_stop()

        b2 = self.start(("mqtt",))
        pub = Paho(b2.ports["mqtt"], client_id="pub", level=4)
        pub.connect()
        mids = [pub.c.publish("alerts/flood/%d" % i, "b-%02d" % i, qos=1).mid for i in range(5)]
        pub.wait_for(lambda: set(mids) <= pub.published, TIMEOUT, "PUBACKs")
        dev = Paho(b2.ports["mqtt"], **kw)
        present, _, _ = dev.connect()
        self.assertTrue(present, "session not present after the restart")
        dev.wait_for(lambda: len(dev.messages) >= 15, TIMEOUT, "15 messages")
        time.sleep(0.3)
        self.assertEqual([m.payload.decode() for m in dev.messages],
                         ["a-%02d" % i for i in range(10)] + ["b-%02d" % i for i in range(5)])
        dev.c.disconnect()
        dev.c.loop_stop()
        pub.c.disconnect()
        pub.c.loop_stop()
        return b2

    def test_qos2_publish_resent_after_a_crash_is_not_routed_twice(self):
        """The broker sent PUBREC and died; the client, which did not see
        it, sends the PUBLISH again (DUP): exactly once all the same."""
        config = "[topic meters.>]\nbind = readings\n"
        b = self.start(("stomp", "mqtt"), config)
        raw = RawMqtt(b.ports["mqtt"], level=4)
        raw.connect("meter-9", clean=False)
        raw.publish("meters/9", b"once", qos=2, pid=7)
        raw.expect(PUBREC, lambda p: p.pid == 7)
        b.kill9()
        raw.close()
        b2 = self.start(("stomp", "mqtt"), config)
        raw = RawMqtt(b2.ports["mqtt"], level=4)
        ack = raw.connect("meter-9", clean=False)
        self.assertTrue(ack.session_present)
        raw.publish("meters/9", b"once", qos=2, pid=7, dup=True)
        raw.expect(PUBREC, lambda p: p.pid == 7)
        raw.send(ack_packet(PUBREL, 7, level=4))
        raw.expect(PUBCOMP, lambda p: p.pid == 7)
        raw.close()
        got, _, _ = drain(b2.stomp_port, "/queue/readings")
        self.assertEqual(got, ["once"])
        self.stop(b2)

    def test_qos2_id_reused_after_pubcomp_and_a_crash_is_routed(self):
        """PUBCOMP frees the packet id for a new message, so it comes only
        once the id's removal is on disk: kill -9 the moment it arrives, and
        after the restart a new PUBLISH with the same id is routed, not taken
        for a resend. An 8 MiB message just before the PUBREL keeps the
        journal writer busy, so that an early PUBCOMP would win the race."""
        config = ("[mqtt]\nmax_packet_size = 16MiB\n"
                  "[topic meters.>]\nbind = readings\n[topic bulk.>]\nbind = bulk\n")
        b = self.start(("stomp", "mqtt"), config)
        raw = RawMqtt(b.ports["mqtt"], level=4)
        raw.connect("meter-7", clean=False)
        raw.publish("meters/7", b"first", qos=2, pid=7)
        raw.expect(PUBREC, lambda p: p.pid == 7)
        raw.send(publish_packet("bulk/x", bytes(8 << 20), qos=1, pid=8, level=4) +
                 ack_packet(PUBREL, 7, level=4))
        raw.expect(PUBCOMP, lambda p: p.pid == 7)
        b.kill9()
        raw.close()
        b2 = self.start(("stomp", "mqtt"), config)
        raw = RawMqtt(b2.ports["mqtt"], level=4)
        self.assertTrue(raw.connect("meter-7", clean=False).session_present)
        raw.publish("meters/7", b"second", qos=2, pid=7)
        raw.expect(PUBREC, lambda p: p.pid == 7)
        raw.send(ack_packet(PUBREL, 7, level=4))
        raw.expect(PUBCOMP, lambda p: p.pid == 7)
        raw.close()
        got, _, _ = drain(b2.stomp_port, "/queue/readings")
        self.assertEqual(got, ["first", "second"])
        self.stop(b2)

    # Records wait up to a second for the next write: a confirmation that
    # does not wait for its record loses every race with a kill -9.
    SLOW_WRITES = "sync = batch\nsync_batch_delay = 1s\n"

    def test_qos2_resend_is_acknowledged_once_its_first_copy_is_on_disk(self):
        """A QoS 2 PUBLISH sent again (DUP) before its PUBREC is not routed
        twice, and its PUBREC does not overtake the first copy's record:
        kill -9 on the first PUBREC and the message is there after the
        restart."""
        config = self.SLOW_WRITES + "[topic meters.>]\nbind = readings\n"
        b = self.start(("stomp", "mqtt"), config)
        raw = RawMqtt(b.ports["mqtt"], level=4)
        raw.connect("meter-8", clean=False)
        raw.send(publish_packet("meters/8", b"only", qos=2, pid=9, level=4) +
                 publish_packet("meters/8", b"only", qos=2, pid=9, dup=True, level=4))
        raw.expect(PUBREC, lambda p: p.pid == 9)
        b.kill9()
        raw.close()
        b2 = self.start(("stomp", "mqtt"), config)
        got, _, _ = drain(b2.stomp_port, "/queue/readings")
        self.assertEqual(got, ["only"])
        self.stop(b2)

    def test_refused_qos2_id_is_free_after_a_crash(self):
        """A PUBREC refusing a QoS 2 message (MQTT 5, a full queue) ends the
        flow, so the client may reuse the id at once: the id's removal is on
        disk before that PUBREC. kill -9 on it, and after the restart a new
        PUBLISH with the id is routed, not taken for a resend."""
        config = (self.SLOW_WRITES +
                  "[topic meters.>]\nbind = readings\n[topic other.>]\nbind = other\n"
                  "[queue readings]\nmax_length = 1\noverflow = reject-publish\n")
        b = self.start(("stomp", "mqtt"), config)
        raw = RawMqtt(b.ports["mqtt"], level=5)
        raw.connect("meter-9", clean=False, props=[("session_expiry", 3600)])
        raw.publish("meters/9", b"first", qos=1, pid=1)
        raw.expect(PUBACK, lambda p: p.pid == 1)
        # Behind a message still on its way to disk, the refusal waits its
        # turn: by then the id's record is written, its removal not yet.
        raw.send(publish_packet("other/9", b"queued", qos=1, pid=2) +
                 publish_packet("meters/9", b"refused", qos=2, pid=9))
        rec = raw.expect(PUBREC, lambda p: p.pid == 9)
        b.kill9()
        self.assertGreaterEqual(rec.reason, 0x80)
        raw.close()
        b2 = self.start(("stomp", "mqtt"), config)
        raw = RawMqtt(b2.ports["mqtt"], level=5)
        self.assertTrue(raw.connect("meter-9", clean=False,
                                    props=[("session_expiry", 3600)]).session_present)
        raw.publish("other/9", b"second", qos=2, pid=9)
        raw.expect(PUBREC, lambda p: p.pid == 9)
        raw.send(ack_packet(PUBREL, 9))
        raw.expect(PUBCOMP, lambda p: p.pid == 9)
        raw.close()
        got, _, _ = drain(b2.stomp_port, "/queue/other")
        self.assertEqual(got, ["queued", "second"])
        self.stop(b2)

    def test_subscription_is_on_disk_before_its_suback(self):
        """A persistent session's SUBACK says it is subscribed: kill -9 the
        moment it arrives, and what is published after the restart waits
        for the session and comes when it is back."""
        b = self.start(("mqtt",), self.SLOW_WRITES)
        sub = RawMqtt(b.ports["mqtt"], level=4)
        sub.connect("meter-10", clean=False)
        time.sleep(1.5)  # the session's own record is written
        self.assertEqual(sub.subscribe([("alerts/#", 1)]).codes, [1])
        b.kill9()
        sub.close()
        b2 = self.start(("mqtt",), self.SLOW_WRITES)
        pub = Paho(b2.ports["mqtt"], client_id="pub", level=4)
        pub.connect()
        pub.publish("alerts/fire", b"evacuate", qos=1)
        pub.c.disconnect()
        pub.c.loop_stop()
        sub = RawMqtt(b2.ports["mqtt"], level=4)
        self.assertTrue(sub.connect("meter-10", clean=False).session_present)
        m = sub.expect(PUBLISH)
        self.assertEqual((m.topic, m.payload), ("alerts/fire", b"evacuate"))
        sub.close()
        self.stop(b2)

    def test_mqtt311_persistent_session_survives_kill9(self):
        b = self.crash_and_resume(4)
        self.stop(b)

    def test_mqtt5_session_with_expiry_survives_kill9_and_a_clean_start_ends_it(self):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        def props():
            pr = Properties(PacketTypes.CONNECT)
            pr.SessionExpiryInterval = 3600
            return pr
        b = self.crash_and_resume(5, props)
        # A clean start ends the session: nothing of it comes back.
        dev = Paho(b.ports["mqtt"], client_id="dev-5", level=5, clean=True)
        dev.connect()
        dev.c.disconnect()
        dev.c.loop_stop()
        time.sleep(0.2)
        b.kill9()
        b2 = self.start(("mqtt",))
        dev = Paho(b2.ports["mqtt"], client_id="dev-5", level=5, clean=False, props=props())
        present, _, _ = dev.connect()
        self.assertFalse(present)
        dev.c.disconnect()
        dev.c.loop_stop()
        self.stop(b2)


def vm_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s for %d" % (key, pid))


class PagingTest(StoreTestCase):
    """A queue past queue_memory_limit keeps its tail on disk: memory stays
    flat however deep it gets, and everything drains in order, also after
    a crash."""

    config = "queue_memory_limit = 256KiB\n"

    def fill(self, port, start, n, pad=1000):
        conn, lst = stomp_connect(port)
        for i in range(start, start + n):
            h = {"persistent": "true"}
            if i % 500 == 499 or i == start + n - 1:
                h["receipt"] = "p%d" % i
            conn.send(QUEUE, "m-%06d" % i + "x" * pad, headers=h)
            if i % 500 == 499:
                lst.wait_receipt("p%d" % i)
        lst.wait_receipt("p%d" % (start + n - 1))
        stomp_close(conn, lst)

    def test_deep_queue_pages_and_drains_in_order_across_a_crash(self):
        # ASan keeps freed memory in quarantine; keep it small so that peak
        # RSS says what the broker holds.
        saved = os.environ.get("ASAN_OPTIONS")
        os.environ["ASAN_OPTIONS"] = (saved + ":" if saved else "") + "quarantine_size_mb=4"
        try:
            b = self.start()
        finally:
            if saved is None:
                del os.environ["ASAN_OPTIONS"]
            else:
                os.environ["ASAN_OPTIONS"] = saved
        pid = b.proc.pid
        self.fill(b.stomp_port, 0, 10000)
        first = vm_kib(pid, "VmHWM")
        self.fill(b.stomp_port, 10000, 30000)
        grown = vm_kib(pid, "VmHWM") - first
        pages = glob.glob(os.path.join(self.data_dir, "paging", "*.page"))
        self.assertTrue(pages and os.path.getsize(pages[0]) > 20 * 1024 * 1024,
                        "no page file holds the queue's tail: %s" % pages)
        # 30 MiB more in the queue; the broker grows by a fraction of it.
        self.assertLess(grown, 12 * 1024, "peak RSS grew %d KiB for 30 MiB queued" % grown)
        got, c, l = drain(b.stomp_port, ack_first=15000)
        self.assertEqual([int(x[2:8]) for x in got[:15000]], list(range(15000)))
        stomp_close(c, l)
        b.kill9()
        b2 = self.start()
        # Replay pages too: the 25,000 messages left are not all in memory.
        pages = glob.glob(os.path.join(self.data_dir, "paging", "*.page"))
        self.assertTrue(pages and os.path.getsize(pages[0]) > 15 * 1024 * 1024,
                        "replay did not page: %s" % pages)
        got, _, _ = drain(b2.stomp_port)
        self.assertEqual([int(x[2:8]) for x in got], list(range(15000, 40000)))
        self.assertEqual([os.path.getsize(f) for f in pages], [0],
                         "the page file still holds something once the queue drained")
        self.stop(b2)

    def test_queues_below_their_own_limit_page_past_broker_memory_limit(self):
        """Three queues, each far below queue_memory_limit, together past
        broker_memory_limit: they page, and drain in order."""
        b = self.start(config="queue_memory_limit = 64MiB\nbroker_memory_limit = 512KiB\n")
        conn, lst = stomp_connect(b.stomp_port)
        for i in range(3000):
            h = {"persistent": "true"}
            if i % 500 == 499:
                h["receipt"] = "p%d" % i
            conn.send("/queue/shared.%d" % (i % 3), "m-%06d" % i + "x" * 1000, headers=h)
            if i % 500 == 499:
                lst.wait_receipt("p%d" % i)
        stomp_close(conn, lst)
        pages = [f for f in glob.glob(os.path.join(self.data_dir, "paging", "*.page"))
                 if os.path.getsize(f) > 256 * 1024]
        self.assertEqual(len(pages), 3, "not every queue paged")
        for k in range(3):
            got, _, _ = drain(b.stomp_port, dest="/queue/shared.%d" % k, idle=0.5)
            self.assertEqual([int(x[2:8]) for x in got], list(range(k, 3000, 3)))
        self.stop(b)


class MemoryReturnTest(StoreTestCase):
    """Memory freed by a big drain goes back to the OS (malloc_trim), and is
    logged. glibc's allocator only: under ASan the sanitizer's own allocator
    decides, so the test runs against a build without it."""
    config = "queue_memory_limit = 1GiB\n"

    def test_rss_comes_down_after_a_big_drain(self):
        b = self.start()
        with open("/proc/%d/maps" % b.proc.pid) as f:
            if "libasan" in f.read():
                self.skipTest("ASan's allocator, not glibc's")
        conn, lst = stomp_connect(b.stomp_port)
        for i in range(150000):  # about 200 MiB waiting in memory
            h = {"receipt": "p%d" % i} if i % 5000 == 4999 else {}
            conn.send(QUEUE, "m-%06d" % i + "x" * 1024, headers=h)
            if i % 5000 == 4999:
                lst.wait_receipt("p%d" % i)
        stomp_close(conn, lst)
        full = vm_kib(b.proc.pid, "VmRSS")
        self.assertGreater(full, 150 * 1024, "the queue did not fill memory")
        got, _, _ = drain(b.stomp_port, idle=0.5)
        self.assertEqual(len(got), 150000)
        wait_until(lambda: vm_kib(b.proc.pid, "VmRSS") < 64 * 1024, 30,
                   what="RSS under 64 MiB after the drain (was %d MiB full)" % (full >> 10))
        b.wait_for_log(r"returned \d+ MiB to the OS")
        self.stop(b)


class DiskUseTest(StoreTestCase):
    config = "journal_segment_size = 64KiB\n"

    def test_a_queue_in_steady_state_keeps_disk_use_bounded(self):
        b = self.start()
        prod, pl = stomp_connect(b.stomp_port)
        cons, cl = stomp_connect(b.stomp_port)
        cons.subscribe(QUEUE, id="s", ack="client-individual")
        most = 0
        for rnd in range(20):
            for i in range(100):
                h = {"persistent": "true"}
                if i == 99:
                    h["receipt"] = "r%d" % rnd
                prod.send(QUEUE, "%d-%d" % (rnd, i) + "x" * 1000, headers=h)
            pl.wait_receipt("r%d" % rnd)
            cl.wait_messages(100 * (rnd + 1))
            for f in cl.messages[100 * rnd:]:
                cons.ack(f.headers["ack"])
            most = max(most, len(self.segments()))
        # 2,000 messages of 1 KiB went through 64 KiB segments: ~30 written
        # in all, a handful on disk at any time.
        wait_until(lambda: len(self.segments()) <= 3, TIMEOUT, what="segments released")
        self.assertLessEqual(most, 8)
        stomp_close(prod, pl)
        stomp_close(cons, cl)
        self.stop(b)


class DamageTest(StoreTestCase):
    config = "journal_segment_size = 16KiB\n"

    def fill(self, n=60, pad=1000):
        b = self.start()
        conn, lst = stomp_connect(b.stomp_port)
        for i in range(n):
            conn.send(QUEUE, "m-%06d" % i + "x" * pad,
                      headers={"persistent": "true", "receipt": "p%d" % i})
        lst.wait_receipt("p%d" % (n - 1))
        b.kill9()

    def restart_and_drain(self, config=None):
        b = self.start(config=config)
        got, _, _ = drain(b.stomp_port)
        return b, [int(x[2:8]) for x in got]

    def test_truncated_last_segment_loses_only_the_torn_record(self):
        self.fill()
        last = self.segments()[-1]
        with open(last, "r+b") as f:
            f.truncate(os.path.getsize(last) - 10)
        b, idx = self.restart_and_drain()
        self.assertEqual(idx, list(range(59)))
        b.wait_for_log("torn")
        self.stop(b)

    def test_flipped_byte_quarantines_one_record_and_the_broker_starts(self):
        self.fill()
        seg = self.segments()[1]
        with open(seg, "r+b") as f:
            f.seek(16 + 600)  # inside the first record after the header
            c = f.read(1)
            f.seek(16 + 600)
            f.write(bytes([c[0] ^ 0xFF]))
        b, idx = self.restart_and_drain()
        lost = sorted(set(range(60)) - set(idx))
        self.assertEqual(idx, sorted(idx))
        self.assertEqual(len(lost), 1, "lost %s" % lost)
        b.wait_for_log("quarantine")
        self.assertTrue(glob.glob(os.path.join(self.data_dir, "quarantine", "*.bad")))
        self.stop(b)

    def test_deleted_segment_in_the_middle_loses_only_its_messages(self):
        self.fill()
        segs = self.segments()
        self.assertGreater(len(segs), 3)
        os.unlink(segs[1])
        b, idx = self.restart_and_drain()
        lost = sorted(set(range(60)) - set(idx))
        self.assertEqual(idx, sorted(idx))
        self.assertTrue(0 < len(lost) < 20, "lost %s" % lost)
        self.assertEqual(lost, list(range(lost[0], lost[-1] + 1)), "one run of messages")
        b.wait_for_log("missing")
        self.stop(b)

    def test_refuse_stops_the_broker_with_the_place(self):
        self.fill()
        seg = self.segments()[1]
        with open(seg, "r+b") as f:
            f.seek(16 + 600)
            c = f.read(1)
            f.seek(16 + 600)
            f.write(bytes([c[0] ^ 0xFF]))
        with self.assertRaises(RuntimeError) as cm:
            self.start(config=self.config + "on_corruption = refuse\n")
        self.assertIn(os.path.basename(seg), str(cm.exception))


@unittest.skipUnless(os.geteuid() == 0, "mounting a small tmpfs needs root")
class FullDiskTest(StoreTestCase):
    config = "journal_segment_size = 64KiB\n"

    def setUp(self):
        super().setUp()
        os.makedirs(self.data_dir)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", self.data_dir],
                           capture_output=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: %s" % r.stderr.decode().strip())

    def tearDown(self):
        for b in self.brokers:
            b.cleanup()
        subprocess.run(["umount", "-l", self.data_dir], capture_output=True)
        super().tearDown()

    def test_full_disk_refuses_durable_publishes_and_recovers(self):
        b = self.start()
        conn, lst = stomp_connect(b.stomp_port)
        sent = 0
        for i in range(200):  # 200 x 8 KiB: more than the 1 MiB disk
            conn.send(QUEUE, "m-%06d" % i + "x" * 8192, headers={"persistent": "true", "receipt": "p%d" % i})
            sent += 1
            lst.wait_for(lambda: ("p%d" % i) in lst.receipts or lst.errors, TIMEOUT, "receipt or error")
            if lst.errors:
                break
        self.assertTrue(lst.errors, "the disk never filled")
        err = lst.errors[0]
        self.assertIn("store", err.headers.get("message", ""))
        self.assertEqual(err.headers.get("receipt-id"), "p%d" % (sent - 1))
        stored = sent - 1
        self.assertTrue(b.alive())
        # Other clients carry on; draining the queue frees the disk.
        got, _, _ = drain(b.stomp_port)
        self.assertEqual([int(x[2:8]) for x in got][:stored], list(range(stored)))
        time.sleep(0.5)
        conn, lst = stomp_connect(b.stomp_port)
        conn.send(QUEUE, "after", headers={"persistent": "true", "receipt": "after"})
        lst.wait_for(lambda: "after" in lst.receipts or lst.errors, TIMEOUT, "receipt")
        self.assertEqual(lst.errors, [], "still refused once space returned")
        stomp_close(conn, lst)
        b.kill9()
        b2 = self.start()
        got, _, _ = drain(b2.stomp_port)
        self.assertEqual(got, ["after"])
        self.stop(b2)

    def fill_until_refused(self, port, size):
        """Persistent messages of `size` bytes until the store refuses one;
        returns how many were stored."""
        conn, lst = stomp_connect(port)
        for i in range(4 * 1024 * 1024 // size):
            conn.send(QUEUE, "m-%06d" % i + "x" * size, headers={"persistent": "true", "receipt": "p%d" % i})
            lst.wait_for(lambda: ("p%d" % i) in lst.receipts or lst.errors, TIMEOUT, "receipt or error")
            if lst.errors:
                self.assertIn("store", lst.errors[0].headers.get("message", ""))
                return i
        self.fail("the disk never filled")

    def test_full_disk_consumer_acking_with_receipts_drains_it(self):
        """With the default 64 MiB segments the whole 1 MiB disk is one
        segment: a consumer that wants a receipt for each ACK still drains
        it (acks use space kept in reserve), the dead segment goes, and
        durable publishes are confirmed again."""
        b = self.start(config="")
        stored = self.fill_until_refused(b.stomp_port, 512)
        conn, lst = stomp_connect(b.stomp_port)
        conn.subscribe(QUEUE, id="s", ack="client-individual")
        # The refused message is in the queue too (delivery does not wait
        # for the disk, docs/durability.md): all of them are acked.
        for n in range(stored + 1):
            lst.wait_for(lambda: len(lst.messages) > n or lst.errors, TIMEOUT, "message %d" % n)
            self.assertEqual(lst.errors, [])
            f = lst.messages[n]
            self.assertEqual(int(f.body[2:8]), n)
            conn.ack(f.headers["ack"], receipt="a%d" % n)
            lst.wait_for(lambda: ("a%d" % n) in lst.receipts or lst.errors, TIMEOUT, "ack receipt")
            self.assertEqual(lst.errors, [], "ACK %d refused" % n)
        stomp_close(conn, lst)
        deadline = time.monotonic() + TIMEOUT
        while True:
            conn, lst = stomp_connect(b.stomp_port)
            conn.send(QUEUE, "after" + "x" * 65536, headers={"persistent": "true", "receipt": "after"})
            lst.wait_for(lambda: "after" in lst.receipts or lst.errors, TIMEOUT, "receipt")
            ok = not lst.errors
            stomp_close(conn, lst)
            if ok:
                break
            self.assertLess(time.monotonic(), deadline, "durable publishes still refused")
            time.sleep(0.05)
        b.kill9()
        b2 = self.start(config="")
        got, _, _ = drain(b2.stomp_port)
        self.assertEqual([x[:5] for x in got], ["after"])
        self.stop(b2)


if __name__ == "__main__":
    main()
