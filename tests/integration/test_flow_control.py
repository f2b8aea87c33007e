#!/usr/bin/env python3
"""A publisher that outruns a slow subscriber is slowed, not dropped
(DESIGN.md §5a): with tiny per-subscription bounds, every confirmed message
still arrives, once, in order. A subscriber whose window of unacknowledged
deliveries is full gets more a quarter of the window at a time."""
import threading
import time
import unittest

import paho.mqtt.client as mqtt
import stomp

from mqtttest import PUBACK, PUBLISH, MqttTestCase, ack_packet
from wharftest import BrokerTestCase, main

TIMEOUT = 60
N = 600


class FlowControlTest(BrokerTestCase):
    protocols = ("mqtt", "stomp")
    config = "topic_max_pending = 20\n[mqtt]\nmax_queued = 20\nmax_inflight = 5\n"

    def test_mqtt_qos1_slow_subscriber_loses_nothing(self):
        got, cond = [], threading.Condition()

        def on_message(client, userdata, msg):
            time.sleep(0.002)  # a slow consumer
            with cond:
                got.append(msg.payload)
                cond.notify_all()

        sub = mqtt.Client("slow-sub", protocol=mqtt.MQTTv311)
        sub.on_message = on_message
        sub.connect("127.0.0.1", self.broker.ports["mqtt"])
        sub.loop_start()
        sub.subscribe("flow/t", qos=1)
        time.sleep(0.3)
        pub = mqtt.Client("fast-pub", protocol=mqtt.MQTTv311)
        pub.connect("127.0.0.1", self.broker.ports["mqtt"])
        pub.loop_start()
        infos = [pub.publish("flow/t", b"%d" % i, qos=1) for i in range(N)]
        for info in infos:
            info.wait_for_publish(TIMEOUT)
            self.assertTrue(info.is_published())
        with cond:
            cond.wait_for(lambda: len(got) >= N, TIMEOUT)
        self.assertEqual(got, [b"%d" % i for i in range(N)])
        for c in (pub, sub):
            c.disconnect()
            c.loop_stop()

    def test_stomp_receipted_topic_messages_to_a_slow_subscriber(self):
        got, cond = [], threading.Condition()
        port = self.broker.ports["stomp"]
        sub = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0))

        class Slow(stomp.ConnectionListener):
            def on_message(self, frame):
                time.sleep(0.002)
                sub.ack(frame.headers["ack"])
                with cond:
                    got.append(frame.body)
                    cond.notify_all()

        sub.set_listener("", Slow())
        sub.connect(wait=True)
        sub.subscribe("/topic/flow.s", id="1", ack="client-individual",
                      headers={"activemq.prefetchSize": "1"})
        time.sleep(0.3)
        pub = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0))
        pub.connect(wait=True)
        for i in range(N):
            pub.send("/topic/flow.s", str(i), headers={"persistent": "true"})
        pub.disconnect(receipt="all-sent")
        with cond:
            cond.wait_for(lambda: len(got) >= N, TIMEOUT)
        self.assertEqual(got, [str(i) for i in range(N)])
        sub.disconnect()


class FullWindowTest(MqttTestCase):
    def test_a_full_window_reopens_a_quarter_at_a_time(self):
        """Receive Maximum 8: one PUBACK frees a slot but brings nothing
        (refilled a slot per ack, a subscriber that fell behind costs the
        broker a wake-up and a write per message); the second brings two.
        Every message arrives once, in order."""
        topic = self.topic()
        sub = self.raw(level=5)
        sub.connect(self.client_id("sub"), keepalive=0, props={"receive_maximum": 8})
        sub.subscribe([(topic, 1)])
        pub = self.paho(level=4, max_inflight=100)
        infos = [pub.publish(topic, b"%d" % i, qos=1, wait=False) for i in range(40)]
        pub.wait_all_published(infos)
        out = [sub.expect(PUBLISH) for _ in range(8)]
        sub.expect_none(PUBLISH, 0.3)
        sub.send(ack_packet(PUBACK, out[0].pid, level=5))
        sub.expect_none(PUBLISH, 0.3)
        sub.send(ack_packet(PUBACK, out[1].pid, level=5))
        out += [sub.expect(PUBLISH) for _ in range(2)]
        sub.expect_none(PUBLISH, 0.3)
        for i in range(2, 40):
            sub.send(ack_packet(PUBACK, out[i].pid, level=5))
            while len(out) < 40 and len(out) < i + 1 + 6:
                out.append(sub.expect(PUBLISH))
        self.assertEqual([p.payload for p in out], [b"%d" % i for i in range(40)])
        sub.expect_none(PUBLISH, 0.3)


if __name__ == "__main__":
    main()
