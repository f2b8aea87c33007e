#!/usr/bin/env python3
"""A subscriber whose input is only acknowledgements, while other clients
keep the broker busy, is read when the broker is awake anyway
(net/ackread.c, docs/architecture.md): its PUBACKs no longer wake the
broker one by one. What a user checks stays true: with a window of 5 a
subscriber still gets every message once and in order (its PUBACKs are
read, or the window would stall), with a window of 1 it gets the next
message as soon as the broker is awake for others, a PUBLISH or PINGREQ of its own is
answered at once, when it vanishes its will goes out at once, and
subscribers made lazy by the dozen and leaving every way leave the broker
up.

The busy broker is a raw QoS 0 publisher sending to a topic of its own
every millisecond for the test's length; the log (at debug) says when a
connection is read that way and when it is read as input comes again."""
import random
import threading
import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtttest import PINGRESP, PUBACK, PUBLISH, MqttTestCase, RawMqtt, ack_packet
from wharftest import main

LAZY = r"conn=%d .*: acknowledgements read with other input"
EAGER = r"conn=%d .*: acknowledgements read as they come again"


class Busy(threading.Thread):
    """Another client's input every millisecond, until stopped (at most
    60 s)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.raw = RawMqtt(port, level=4)
        self.raw.connect("ackread-busy", keepalive=0)
        self.halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + 60
        while not self.halt.is_set() and time.monotonic() < deadline:
            self.raw.publish("busy/x", b"b", qos=0)
            time.sleep(0.001)

    def stop(self):
        self.halt.set()
        self.join(10)
        self.raw.close()


def conn_id(broker, client_id):
    """The connection id of the MQTT client that logged in as client_id."""
    line = broker.wait_for_log(r"conn=\d+ .*connected as '%s'" % client_id)
    return int(line.split("conn=")[1].split()[0])


class AckReadTest(MqttTestCase):
    config = "log_level = debug\n"

    def setUp(self):
        super().setUp()
        self.busy = Busy(self.port)
        self.busy.start()
        self.on_teardown(self.busy.stop)

    def lazy_raw_subscriber(self, topic, will=None):
        """A raw subscriber that has acked deliveries until the broker reads
        it with other input; returns (client, connection id)."""
        cid = self.client_id("sub")
        sub = self.raw(level=4)
        sub.connect(cid, keepalive=0, will=will)
        sub.subscribe([(topic, 1)])
        cid_n = conn_id(self.broker, cid)
        pub = self.paho(level=4)
        for i in range(20):
            pub.publish(topic, b"warm-%d" % i, qos=1)
            p = sub.expect(PUBLISH)
            sub.send(ack_packet(PUBACK, p.pid, level=4))
        self.broker.wait_for_log(LAZY % cid_n)
        return sub, cid_n

    def test_small_window_subscriber_gets_everything_once_in_order(self):
        topic = self.topic()
        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = 5
        sub = self.paho(self.client_id("sub"), level=5, props=props)
        sub.subscribe(topic, 1)
        n = conn_id(self.broker, sub.c._client_id.decode())
        pub = self.paho(level=5, max_inflight=100)
        infos = [pub.publish(topic, b"%d" % i, qos=1, wait=False) for i in range(2000)]
        pub.wait_all_published(infos)
        sub.wait_messages(2000)
        self.assertEqual(sub.payloads(), [b"%d" % i for i in range(2000)])
        self.broker.wait_for_log(LAZY % n)

    def test_a_full_window_is_read_at_the_next_pass(self):
        """A lazy subscriber with Receive Maximum 1 gets each next message
        when the broker is next awake for other input (every millisecond
        here), not at the next lazy read (8 passes or 5 ms later): the
        broker waits for that PUBACK. Median time from a PUBACK to the
        next PUBLISH, over 200 messages (5 ms without that rule)."""
        topic = self.topic()
        cid = self.client_id("sub")
        sub = self.raw(level=5)
        sub.connect(cid, keepalive=0, props={"receive_maximum": 1})
        sub.subscribe([(topic, 1)])
        n = conn_id(self.broker, cid)
        pub = self.paho(level=4, max_inflight=1000)
        infos = [pub.publish(topic, b"%d" % i, qos=1, wait=False) for i in range(220)]
        gaps, got = [], []
        p = sub.expect(PUBLISH)
        for i in range(220):
            got.append(p.payload)
            sub.send(ack_packet(PUBACK, p.pid, level=5))
            t = time.monotonic()
            if i == 219:
                break
            p = sub.expect(PUBLISH)
            if i >= 20:  # lazy by then: the first ones are read as they come
                gaps.append(time.monotonic() - t)
        pub.wait_all_published(infos)
        self.assertEqual(got, [b"%d" % i for i in range(220)])
        self.broker.wait_for_log(LAZY % n, timeout=1)
        gap = sorted(gaps)[len(gaps) // 2]
        print("# PUBACK to next PUBLISH, window 1: median %.2f ms" % (gap * 1000))
        self.assertLess(gap, 0.0025)

    def test_own_publish_and_ping_answered_at_once(self):
        topic = self.topic()
        sub, n = self.lazy_raw_subscriber(topic + "/in")
        watcher = self.paho(level=4)
        watcher.subscribe(topic + "/out", 1)
        t = time.monotonic()
        sub.publish_acked(topic + "/out", b"from the subscriber", qos=1)
        took = time.monotonic() - t
        self.assertEqual(watcher.wait_messages(1)[0].payload, b"from the subscriber")
        self.broker.wait_for_log(EAGER % n)
        print("# a lazy subscriber's QoS 1 PUBLISH acknowledged in %.1f ms" % (took * 1000))
        # Lazy again after more acknowledgements; a PINGREQ is answered.
        pub = self.paho(level=4)
        for i in range(20):
            pub.publish(topic + "/in", b"again-%d" % i, qos=1)
            sub.send(ack_packet(PUBACK, sub.expect(PUBLISH).pid, level=4))
        sub.send(b"\xc0\x00")
        sub.expect(PINGRESP)

    def test_vanished_subscriber_leaves_its_will_at_once(self):
        topic = self.topic()
        watcher = self.paho(level=4)
        watcher.subscribe(topic + "/will", 1)
        sub, _ = self.lazy_raw_subscriber(topic + "/in",
                                          will={"topic": topic + "/will", "payload": b"gone",
                                                "qos": 1})
        t = time.monotonic()
        sub.abort()
        self.assertEqual(watcher.wait_messages(1)[0].payload, b"gone")
        print("# will of a lazy subscriber after %.1f ms" % ((time.monotonic() - t) * 1000))

    def test_lazy_subscribers_come_and_go(self):
        """More subscribers than may be lazy at once (16), each acking a
        while, then leaving by a reset, a DISCONNECT or a malformed packet
        while a QoS 1 publisher keeps sending: the broker stays up (and,
        under ASan, stops cleanly at the end of the class)."""
        topic = self.topic()
        stop = time.monotonic() + 8
        done = {"cycles": 0}

        def publisher():
            pub = self.paho(level=4, max_inflight=1000)
            i = 0
            while time.monotonic() < stop:
                pub.publish("%s/%d" % (topic, i % 8), b"m", qos=1, wait=False)
                i += 1
                time.sleep(0.0005)

        def subscriber(n):
            rnd = random.Random(n)
            while time.monotonic() < stop:
                sub = RawMqtt(self.port, level=4, timeout=2)
                try:
                    sub.connect("%s-%d" % (self.client_id("s"), n), keepalive=0)
                    sub.subscribe([("%s/%d" % (topic, n % 8), 1)])
                    for _ in range(rnd.randrange(5, 100)):
                        p = sub.expect(PUBLISH, timeout=2)
                        sub.send(ack_packet(PUBACK, p.pid, level=4))
                    how = rnd.randrange(3)
                    if how == 0:
                        sub.abort()
                    elif how == 1:
                        sub.send(b"\xe0\x00")  # DISCONNECT
                    else:
                        sub.send(b"\x40\x7f\x00")  # a PUBACK that never ends
                    done["cycles"] += 1
                except (AssertionError, OSError):
                    pass  # the publisher ended first
                finally:
                    sub.close()

        threads = [threading.Thread(target=publisher)] + [
            threading.Thread(target=subscriber, args=(n,)) for n in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        lazy = self.broker.output().count("acknowledgements read with other input")
        print("# %d subscribers came and went; %d times made lazy" % (done["cycles"], lazy))
        self.assertGreater(lazy, 16)
        self.assertTrue(self.broker.alive())


if __name__ == "__main__":
    main()
