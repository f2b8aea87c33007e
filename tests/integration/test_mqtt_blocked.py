#!/usr/bin/env python3
"""An MQTT publisher to a full destination has its PUBACKs held (flow
control), and only it: a publisher to a destination with room gets its
PUBACKs at once, even when they are released after the other one has
filled its destination (the store confirming a durable message). A 3.1.1
publisher with more in flight than receive_maximum is slowed by its
socket, not disconnected (it was told no limit)."""
import threading
import time

from mqtttest import TIMEOUT, MqttTestCase, publish_packet
from stomptest import stomp_close, stomp_connect
from wharftest import main

CONFIG = """\
[topic full.>]
bind = fullq

[topic free.>]
bind = freeq

[topic slow.>]
bind = slowq

[queue fullq]
max_length = 2
overflow = block

[queue slowq]
max_length = 5
overflow = block

[mqtt]
receive_maximum = 10
"""


class BlockedTest(MqttTestCase):
    config = CONFIG

    def test_full_destination_holds_only_its_own_publishers_acks(self):
        slow = self.paho(level=5)
        infos = [slow.publish("full/x", b"%d" % i, qos=1, wait=False) for i in range(4)]
        # The queue is full from the second message on: those acks wait.
        slow.wait_for(lambda: infos[0].mid in slow.published, TIMEOUT, "first PUBACK")
        # Another client keeps hitting the full queue (QoS 0, dropped
        # there), so publishes that fill it come between the free
        # publisher's message and its store confirmation.
        stop = threading.Event()
        hammer = self.raw(level=4, connect=True)
        burst = publish_packet("full/y", b"h") * 200

        def hit():
            while not stop.is_set() and hammer.send(burst):
                stop.wait(0.001)

        th = threading.Thread(target=hit, daemon=True)
        th.start()
        try:
            free = self.paho(level=5)
            for i in range(30):
                # Each within 5 s: before, the first one waited for the
                # full queue to drain (never), then came DISCONNECT 0x93.
                free.publish("free/y", b"%d" % i, qos=1, timeout=5)
            self.assertEqual(free.disconnects, [])
        finally:
            stop.set()
            th.join(TIMEOUT)
        # The full queue's publisher is still held.
        self.assertFalse(all(i.mid in slow.published for i in infos))


    def test_mqtt311_publisher_past_receive_maximum_is_slowed_not_dropped(self):
        # 100 in flight against a queue of 5 and receive_maximum 10: before,
        # the eleventh held PUBACK ended the connection (0x93 is MQTT 5's;
        # a 3.1.1 client was never told the limit).
        pub = self.paho(level=4, max_inflight=100)
        infos = [pub.publish("slow/a", b"m-%03d" % i, qos=1, wait=False) for i in range(100)]
        time.sleep(1.5)
        self.assertEqual(pub.disconnects, [])
        self.assertLess(len(pub.published), 100)  # held: the queue is full
        conn, lst = stomp_connect(self.stomp_port)
        try:
            conn.subscribe("/queue/slowq", id="s", ack="auto")
            lst.wait_messages(100)
            self.assertEqual(lst.bodies(), ["m-%03d" % i for i in range(100)])
        finally:
            stomp_close(conn, lst)
        pub.wait_for(lambda: all(i.mid in pub.published for i in infos), TIMEOUT,
                     "every PUBACK")
        self.assertEqual(pub.disconnects, [])

    def test_mqtt311_client_that_also_subscribes_is_still_disconnected(self):
        # Its input cannot be paused: the acks of what it consumes would
        # wait behind what it sent.
        pub = self.paho(level=4, max_inflight=100)
        pub.subscribe("elsewhere/t", qos=1)
        for i in range(100):
            pub.publish("slow/b", b"%d" % i, qos=1, wait=False)
        pub.wait_for(lambda: pub.disconnects, TIMEOUT, "the disconnect")
        conn, lst = stomp_connect(self.stomp_port)
        try:  # empty the queue for the other tests
            conn.subscribe("/queue/slowq", id="s", ack="auto")
            lst.wait_messages(5)
        finally:
            stomp_close(conn, lst)


if __name__ == "__main__":
    main()
