#!/usr/bin/env python3
"""Persistent MQTT sessions across a broker restart come back at start-up,
not when the first MQTT client connects: a session's expiry fires, and its
subscriptions keep at most [mqtt] max_queued messages, while only STOMP
clients use the restarted broker."""
from mqtttest import TIMEOUT, PacketTypes, Paho, paho_props
from stomptest import stomp_close, stomp_connect
from test_store import StoreTestCase
from wharftest import Broker, main

CONFIG = """\
[mqtt]
max_queued = 5
"""


class RestartTest(StoreTestCase):

    def setUp(self):
        super().setUp()
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        super().tearDown()

    def start(self):
        b = Broker(("mqtt", "stomp"), CONFIG, args=("--log-level", "debug"),
                   data_dir=self.data_dir)
        self.brokers.append(b)
        return b

    def paho(self, b, cid, expiry):
        p = Paho(b.ports["mqtt"], cid, level=5, clean=False,
                 props=paho_props(PacketTypes.CONNECT, session_expiry=expiry))
        self.clients.append(p)
        return p

    def test_sessions_restored_at_start_up(self):
        b = self.start()
        keep = self.paho(b, "restart-keep", 3600)
        keep.connect()
        keep.subscribe("restart/bound", 1)
        keep.disconnect()
        short = self.paho(b, "restart-short", 2)
        short.connect()
        short.subscribe("restart/short", 1)
        short.disconnect()
        self.stop(b)

        # Only STOMP from here on: the sessions must come back anyway.
        b = self.start()
        conn, lst = stomp_connect(b.stomp_port)
        for i in range(20):
            conn.send("/topic/restart.bound", "m-%02d" % i, headers={"persistent": "true"})
        conn.send("/topic/restart.bound", "last", headers={"persistent": "true",
                                                           "receipt": "sent"})
        lst.wait_receipt("sent")
        stomp_close(conn, lst)
        b.wait_for_log(r"mqtt client restart-short: session expired", timeout=TIMEOUT)
        self.stop(b)

        b = self.start()
        short = self.paho(b, "restart-short", 2)
        present, _, _ = short.connect()
        self.assertFalse(present, "the expired session came back")
        keep = self.paho(b, "restart-keep", 3600)
        present, _, _ = keep.connect()
        self.assertTrue(present)
        # The newest max_queued (5) of the 21, the oldest dropped.
        keep.wait_messages(5)
        keep.sync("restart/bound")
        self.assertEqual(keep.payloads(), [b"m-16", b"m-17", b"m-18", b"m-19", b"last"])
        keep.disconnect()
        short.disconnect()
        self.stop(b)


if __name__ == "__main__":
    main()
