#!/usr/bin/env python3
"""An MQTT publisher to a full destination has its PUBACKs held (flow
control), and only it: a publisher to a destination with room gets its
PUBACKs at once, even when they are released after the other one has
filled its destination (the store confirming a durable message)."""
import threading

from mqtttest import TIMEOUT, MqttTestCase, publish_packet
from wharftest import main

CONFIG = """\
[topic full.>]
bind = fullq

[topic free.>]
bind = freeq

[queue fullq]
max_length = 2
overflow = block
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


if __name__ == "__main__":
    main()
