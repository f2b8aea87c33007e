#!/usr/bin/env python3
"""Connection and subscription limits (docs/operations.md, "Connection
limits") with real clients: max_connections_per_user across protocols
(STOMP ERROR naming the limit, MQTT 5 CONNACK 0x97 with a reason string,
3.1.1 CONNACK 3, AMQP open refused with amqp:resource-limit-exceeded),
max_connections_per_address the same way, max_new_connections_per_address
(a flood is closed unread, a client gets in again a second later), and
max_subscriptions_per_connection on STOMP (ERROR), AMQP (receiver link
refused) and MQTT (SUBACK 0x97, 0x80 before 5.0)."""
import os
import shutil
import socket
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
import stomp
from proton import Message, Timeout
from proton.utils import BlockingConnection, LinkDetached

from mqtttest import PUBACK, PUBLISH, RawMqtt
from stomptest import stomp_close, stomp_connect
from test_auth import USERS, add_user, amqp_login, stomppy
from test_ha_redirect import mqtt_connack
from wharftest import BrokerTestCase, main, wait_until

TIMEOUT = 20


def mqtt_refusal(port, level, user=None):
    """(CONNACK code as an int, reason string or None) of a paho login."""
    rc, props = mqtt_connack(port, level, user=user, password=USERS.get(user),
                             client_id="limits-%d" % threading.get_ident())
    why = getattr(props, "ReasonString", None) if props is not None else None
    return (rc.value if hasattr(rc, "value") else rc), why


class Held:
    """STOMP connections held open for a test; closed at its end."""

    def __init__(self, test, port):
        self.port = port
        self.conns = []
        test.addCleanup(self.close_all)

    def open(self, user=None):
        headers = {"login": user, "passcode": USERS[user]} if user else None
        self.conns.append(stomp_connect(self.port, headers=headers))

    def close_one(self):
        stomp_close(*self.conns.pop())

    def close_all(self):
        while self.conns:
            self.close_one()


def eventually(pred, what):
    """Closed connections are counted out once the broker has freed them,
    a moment after the client saw the close."""
    wait_until(pred, TIMEOUT, interval=0.05, what=what)


class UserLimitTest(BrokerTestCase):
    protocols = ("stomp", "mqtt", "amqp")

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="wharf-limits-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        users = os.path.join(cls.dir, "users")
        for name in ("alice", "bob"):
            add_user(users, name, USERS[name], "--cost", "10")
        cls.config = ("max_connections_per_user = 2\n[auth]\nusers_file = %s\n"
                      "failure_delay = 50ms\n" % users)
        super().setUpClass()

    def hold_alice(self):
        """Alice's two connections, one STOMP and one MQTT: the limit counts
        them across protocols."""
        held = Held(self, self.broker.ports["stomp"])
        eventually(lambda: stomppy(self.broker.ports["stomp"], "alice", USERS["alice"])[0],
                   "alice free of connections")
        held.open("alice")
        c = mqtt.Client(client_id="alice-held", protocol=mqtt.MQTTv311, clean_session=True)
        c.username_pw_set("alice", USERS["alice"])
        connected = threading.Event()
        c.on_connect = lambda *a: connected.set()
        c.connect("127.0.0.1", self.broker.ports["mqtt"])
        c.loop_start()
        self.addCleanup(lambda: (c.disconnect(), c.loop_stop()))
        self.assertTrue(connected.wait(TIMEOUT))
        return held

    def test_stomp(self):
        held = self.hold_alice()
        ok, err, _ = stomppy(self.broker.ports["stomp"], "alice", USERS["alice"])
        self.assertFalse(ok)
        self.assertEqual(err, "max_connections_per_user (2) reached")
        self.assertTrue(stomppy(self.broker.ports["stomp"], "bob", USERS["bob"])[0])
        held.close_one()
        eventually(lambda: stomppy(self.broker.ports["stomp"], "alice", USERS["alice"])[0],
                   "alice let in again")

    def test_mqtt5(self):
        self.hold_alice()
        code, why = mqtt_refusal(self.broker.ports["mqtt"], mqtt.MQTTv5, "alice")
        self.assertEqual(code, 0x97)
        self.assertEqual(why, "max_connections_per_user (2) reached")
        self.assertEqual(mqtt_refusal(self.broker.ports["mqtt"], mqtt.MQTTv5, "bob")[0], 0)

    def test_mqtt311(self):
        self.hold_alice()
        self.assertEqual(mqtt_refusal(self.broker.ports["mqtt"], mqtt.MQTTv311, "alice")[0], 3)

    def test_amqp(self):
        self.hold_alice()
        err = amqp_login(self.broker.ports["amqp"], "alice", USERS["alice"])
        self.assertIn("amqp:resource-limit-exceeded", err)
        self.assertIn("max_connections_per_user (2) reached", err)
        self.assertIsNone(amqp_login(self.broker.ports["amqp"], "bob", USERS["bob"]))

    def test_refusal_logged(self):
        self.hold_alice()
        stomppy(self.broker.ports["stomp"], "alice", USERS["alice"])
        self.broker.wait_for_log(r"user alice: login refused: max_connections_per_user \(2\) reached")


class AddressLimitTest(BrokerTestCase):
    protocols = ("stomp", "mqtt", "amqp")
    config = "max_connections_per_address = 3\n"

    def hold(self):
        held = Held(self, self.broker.ports["stomp"])
        for _ in range(3):
            eventually(lambda: self.try_hold(held), "a connection held")
        return held

    def try_hold(self, held):
        try:
            held.open()
            return True
        except AssertionError:
            return False

    def test_stomp(self):
        held = self.hold()
        ok, err, _ = stomppy(self.broker.ports["stomp"])
        self.assertFalse(ok)
        self.assertEqual(err, "max_connections_per_address (3) reached")
        held.close_one()
        eventually(lambda: stomppy(self.broker.ports["stomp"])[0], "let in again")

    def test_mqtt(self):
        self.hold()
        code, why = mqtt_refusal(self.broker.ports["mqtt"], mqtt.MQTTv5)
        self.assertEqual((code, why), (0x97, "max_connections_per_address (3) reached"))
        self.assertEqual(mqtt_refusal(self.broker.ports["mqtt"], mqtt.MQTTv311)[0], 3)

    def test_amqp(self):
        self.hold()
        err = amqp_login(self.broker.ports["amqp"])
        self.assertIn("amqp:resource-limit-exceeded", err)
        self.assertIn("max_connections_per_address (3) reached", err)


def stomp_in(port):
    """Whether stomp.py gets in; a connection closed at once, unread, may
    already fail its CONNECT's write."""
    try:
        stomp_close(*stomp_connect(port))
        return True
    except (AssertionError, OSError, stomp.exception.NotConnectedException):
        return False


class NewConnectionRateTest(BrokerTestCase):
    protocols = ("stomp",)
    config = "max_new_connections_per_address = 5\n"

    def test_flood_closed_unread_then_let_in(self):
        port = self.broker.ports["stomp"]
        eventually(lambda: stomp_in(port), "a first login")
        # A flood: sockets that would each cost a handshake.
        socks = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
                 for _ in range(30)]
        closed = 0
        for s in socks:
            s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            closed += not data
            s.close()
        # At most the bucket (5) and what refilled meanwhile got an answer.
        self.assertGreaterEqual(closed, 20)
        self.assertFalse(stomp_in(port))
        self.broker.wait_for_log(
            r"connection from 127\.0\.0\.1 refused: max_new_connections_per_address \(5 per second\)")
        # The bucket refills within a second.
        eventually(lambda: stomp_in(port), "let in again")


class SubscriptionLimitTest(BrokerTestCase):
    protocols = ("stomp", "mqtt", "amqp")
    config = "max_subscriptions_per_connection = 3\n"

    def test_stomp(self):
        conn, col = stomp_connect(self.broker.ports["stomp"])
        for i in range(3):
            conn.subscribe("/topic/lim.%d" % i, id=str(i), headers={"receipt": "r%d" % i})
        col.wait_for(lambda: len(col.receipts) == 3, TIMEOUT, "3 receipts")
        conn.subscribe("/queue/lim.4", id="4")
        col.wait_for(lambda: col.errors, TIMEOUT, "ERROR")
        self.assertEqual(col.errors[0].headers.get("message"),
                         "max_subscriptions_per_connection (3) reached")
        stomp_close(conn, col)
        self.broker.wait_for_log(
            r"subscription refused: max_subscriptions_per_connection \(3\) reached")

    def test_amqp(self):
        c = BlockingConnection("amqp://127.0.0.1:%d" % self.broker.ports["amqp"], timeout=TIMEOUT)
        try:
            for i in range(3):
                c.create_receiver("lim.amqp.%d" % i)
            with self.assertRaises(LinkDetached) as cm:
                c.create_receiver("lim.amqp.4")
            self.assertIn("amqp:resource-limit-exceeded", str(cm.exception))
            self.assertIn("max_subscriptions_per_connection (3) reached", str(cm.exception))
            # Senders are not subscriptions.
            c.create_sender("lim.amqp.0")
        finally:
            c.close()

    def test_mqtt_global_knob(self):
        for level, refused in ((mqtt.MQTTv5, 0x97), (mqtt.MQTTv311, 0x80)):
            got = []
            done = threading.Event()
            c = mqtt.Client(client_id="lim-%d" % level, protocol=level)
            c.on_subscribe = lambda cl, ud, mid, codes, props=None: (got.append(
                [getattr(x, "value", x) for x in codes]), done.set())
            c.connect("127.0.0.1", self.broker.ports["mqtt"])
            c.loop_start()
            try:
                c.subscribe([("lim/%d" % i, 1) for i in range(5)])
                self.assertTrue(done.wait(TIMEOUT))
                self.assertEqual(got[0], [1, 1, 1, refused, refused])
            finally:
                c.disconnect()
                c.loop_stop()


class UnackedLimitTest(BrokerTestCase):
    """Past max_unacked_per_connection dispatch to the connection pauses
    (as RabbitMQ's prefetch for a whole channel) and goes on as the client
    acknowledges; nothing is refused or lost."""
    protocols = ("stomp", "mqtt", "amqp")
    config = "max_unacked_per_connection = 4\n"

    def send_stomp(self, dest, n):
        conn, col = stomp_connect(self.broker.ports["stomp"])
        for i in range(n):
            conn.send(dest, "m%d" % i, receipt="s%d" % i)
        col.wait_for(lambda: len(col.receipts) == n, TIMEOUT, "receipts")
        stomp_close(conn, col)

    def test_stomp_over_two_subscriptions(self):
        self.send_stomp("/queue/unacked.a", 5)
        self.send_stomp("/queue/unacked.b", 5)
        conn, col = stomp_connect(self.broker.ports["stomp"])
        conn.subscribe("/queue/unacked.a", id="a", ack="client-individual")
        conn.subscribe("/queue/unacked.b", id="b", ack="client-individual")
        col.wait_for(lambda: len(col.messages) >= 4, TIMEOUT, "4 messages")
        deadline = time.monotonic() + 0.3  # a fifth would be here by then
        while time.monotonic() < deadline:
            self.assertEqual(len(col.messages), 4)
            time.sleep(0.02)
        for f in list(col.messages[:2]):
            conn.ack(f.headers["ack"])
        col.wait_for(lambda: len(col.messages) >= 6, TIMEOUT, "2 more after 2 acks")
        for f in list(col.messages[2:]):
            conn.ack(f.headers["ack"])
        col.wait_for(lambda: len(col.messages) == 10, TIMEOUT, "all 10 as acks come")
        for f in list(col.messages[6:]):
            conn.ack(f.headers["ack"])
        stomp_close(conn, col)

    def test_mqtt_inflight_capped(self):
        sub = RawMqtt(self.broker.ports["mqtt"], level=4, timeout=TIMEOUT)
        self.addCleanup(sub.close)
        sub.connect("unacked-sub")
        sub.subscribe([("unacked/m", 1)])
        pub = RawMqtt(self.broker.ports["mqtt"], level=4, timeout=TIMEOUT)
        self.addCleanup(pub.close)
        pub.connect("unacked-pub")
        for i in range(6):
            pub.publish_acked("unacked/m", b"m%d" % i)
        got = [sub.expect(PUBLISH) for _ in range(4)]
        sub.expect_none(PUBLISH, wait=0.3)
        sub.ack(PUBACK, got[0].pid)
        got.append(sub.expect(PUBLISH))
        self.assertEqual([p.payload for p in got], [b"m%d" % i for i in range(5)])

    def test_amqp(self):
        url = "amqp://127.0.0.1:%d" % self.broker.ports["amqp"]
        c = BlockingConnection(url, timeout=TIMEOUT)
        try:
            snd = c.create_sender("unacked.amqp")
            for i in range(6):
                snd.send(Message(body="m%d" % i))
            rcv = c.create_receiver("unacked.amqp", credit=100)
            got = [rcv.receive(TIMEOUT).body for _ in range(4)]
            with self.assertRaises(Timeout):
                rcv.receive(0.3)
            for _ in range(2):
                rcv.accept()  # the oldest unsettled: room for one more
                got.append(rcv.receive(TIMEOUT).body)
            self.assertEqual(got, ["m%d" % i for i in range(6)])
            for _ in range(4):
                rcv.accept()
        finally:
            c.close()


if __name__ == "__main__":
    main()
