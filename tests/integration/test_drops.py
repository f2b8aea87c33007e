#!/usr/bin/env python3
"""Messages let go undelivered are visible: a subscriber that stops reading
loses QoS 0 messages at its bound, a drop-head queue loses its oldest, and
an expired message goes; each is logged once per drop_log_interval with
its destination and cause, and counted under $SYS/broker/messages/dropped/
(and Mosquitto's $SYS/broker/publish/messages/dropped) for any client."""
import threading

import paho.mqtt.client as mqtt
import stomp

from wharftest import BrokerTestCase, main
from mqtttest import RawMqtt, connect_packet, subscribe_packet, SUBACK, CONNACK
from stomptest import Collector

TIMEOUT = 20

CONFIG = """
topic_max_pending = 10
max_connection_output = 4096
drop_log_interval = 300ms

[mqtt]
sys_interval = 100ms
max_queued = 10

[queue dh]
max_length = 5
overflow = drop-head

[queue ttl]
ttl = 50ms
"""


class SysWatcher:
    """An MQTT client reading the $SYS drop counters."""

    def __init__(self, port):
        self.values = {}
        self.cond = threading.Condition()
        self.c = mqtt.Client(client_id="sys-watcher", protocol=mqtt.MQTTv311)
        self.c.on_message = self.on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe([("$SYS/broker/messages/dropped/#", 0),
                          ("$SYS/broker/publish/messages/dropped", 0)])

    def on_message(self, client, userdata, msg):
        with self.cond:
            self.values[msg.topic] = int(msg.payload)
            self.cond.notify_all()

    def wait(self, topic, pred):
        with self.cond:
            ok = self.cond.wait_for(lambda: topic in self.values and pred(self.values[topic]),
                                    TIMEOUT)
            self.assert_ok = ok
            return self.values.get(topic)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


class DropsTest(BrokerTestCase):
    protocols = ("stomp", "mqtt")
    config = CONFIG

    def stomp(self):
        c = stomp.Connection12([("127.0.0.1", self.broker.ports["stomp"])])
        col = Collector()
        c.set_listener("", col)
        c.connect(wait=True)
        self.addCleanup(c.disconnect)
        return c, col

    def test_full_subscriber_drops_are_logged_and_counted(self):
        sys = SysWatcher(self.broker.ports["mqtt"])
        self.addCleanup(sys.close)
        # A subscriber that never reads: its window and socket fill, then
        # its queue of topic_max_pending, then QoS 0 messages go.
        stuck = RawMqtt(self.broker.ports["mqtt"], level=4, rcvbuf=4096)
        self.addCleanup(stuck.close)
        stuck.send(connect_packet("stuck", level=4))
        stuck.expect(CONNACK)
        stuck.send(subscribe_packet(1, [("drops/#", 0)], level=4))
        stuck.expect(SUBACK)
        pub = mqtt.Client(client_id="flood", protocol=mqtt.MQTTv311)
        pub.connect("127.0.0.1", self.broker.ports["mqtt"])
        pub.loop_start()
        self.addCleanup(pub.loop_stop)
        for i in range(5000):
            pub.publish("drops/x", b"d" * 1024, qos=0)
        line = self.broker.wait_for_log(
            r"subscription drops\.>: \d+ messages dropped in the last 1 s \(full \d+\)",
            TIMEOUT)
        self.assertIn("warn", line)
        n = sys.wait("$SYS/broker/messages/dropped/full", lambda v: v > 0)
        self.assertTrue(sys.assert_ok, "no $SYS count of full drops: %r" % sys.values)
        total = sys.wait("$SYS/broker/publish/messages/dropped", lambda v: v >= n)
        self.assertTrue(sys.assert_ok, "no $SYS total: %r" % sys.values)
        self.assertGreaterEqual(total, n)

    def test_drop_head_and_expiry_are_logged_and_counted(self):
        sys = SysWatcher(self.broker.ports["mqtt"])
        self.addCleanup(sys.close)
        c, col = self.stomp()
        for i in range(10):
            c.send("/queue/dh", "m%d" % i, receipt="r%d" % i)
        col.wait_receipt("r9")
        self.broker.wait_for_log(
            r"dh: 5 messages dropped in the last 1 s \(drop-head 5\)", TIMEOUT)
        sys.wait("$SYS/broker/messages/dropped/drop-head", lambda v: v == 5)
        self.assertTrue(sys.assert_ok, "drop-head count: %r" % sys.values)
        # STOMP reads the same count.
        s, scol = self.stomp()
        s.subscribe("/topic/$SYS.broker.messages.dropped.drop-head", id="sys")
        self.assertEqual(scol.wait_messages(1)[0].body, "5")
        # What is left is the newest five.
        c.subscribe("/queue/dh", id="1")
        msgs = col.wait_messages(5)
        self.assertEqual([m.body for m in msgs], ["m%d" % i for i in range(5, 10)])

        c.send("/queue/ttl", "gone", receipt="t")
        col.wait_receipt("t")
        self.broker.wait_for_log(r"ttl: 1 messages dropped in the last 1 s \(expired 1\)",
                                 TIMEOUT)
        sys.wait("$SYS/broker/messages/dropped/expired", lambda v: v >= 1)
        self.assertTrue(sys.assert_ok, "expired count: %r" % sys.values)


if __name__ == "__main__":
    main()
