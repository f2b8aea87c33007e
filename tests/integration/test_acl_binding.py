#!/usr/bin/env python3
"""What binds a client's standing to its user ([auth], docs/security.md):
STOMP client-ids bound to their user ([auth] stomp_client_id_prefix), so
one user cannot take over another's durable subscription, in ActiveMQ's
way (client-id) and RabbitMQ's (none); and subscriptions the rules no
longer allow after a SIGHUP ended, each protocol its way (STOMP ERROR,
MQTT 5 DISCONNECT 0x87, MQTT 3.1.1 a close, AMQP a detach with
amqp:unauthorized-access), while those still allowed go on; an MQTT
session resumed by another user keeps only what that user may read."""
import os
import shutil
import tempfile
import unittest

from proton.utils import BlockingConnection, LinkDetached

from mqtttest import DISCONNECT, PUBLISH, RawMqtt
from stomptest import RawStomp
from test_auth import add_user, start, stop
from wharftest import main

TIMEOUT = 20
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
RULES = """\
allow * publish,subscribe,create queue:open.>
allow * publish,subscribe topic:news.>
allow alice publish,subscribe topic:private.>
"""


class BindingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="wharf-bind-")
        cls.users = os.path.join(cls.dir, "users")
        cls.acl = os.path.join(cls.dir, "acl")
        for u, pw in USERS.items():
            add_user(cls.users, u, pw, "--cost", "10")
        with open(cls.acl, "w") as f:
            f.write(RULES)
        cls.broker = start("""
[auth]
users_file = %s
acl_file = %s
stomp_client_id_prefix = %%u:
failure_delay = 100ms
[listener s]
url = stomp://127.0.0.1:0
[listener m]
url = mqtt://127.0.0.1:0
[listener a]
url = amqp://127.0.0.1:0
""" % (cls.users, cls.acl), ("stomp", "mqtt", "amqp"))
        cls.ports = cls.broker.ports

    @classmethod
    def tearDownClass(cls):
        stop(cls.broker)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def stomp(self, user, client_id=None):
        s = RawStomp(self.ports["stomp"], timeout=TIMEOUT)
        self.addCleanup(s.close)
        h = [("login", user), ("passcode", USERS[user])]
        if client_id:
            h.append(("client-id", client_id))
        s.send_frame("CONNECT", [("accept-version", "1.2"), ("host", "x")] + h)
        return s, s.read_frame()

    def subscribe(self, s, dest, sub_id, headers=()):
        s.send_frame("SUBSCRIBE", [("destination", dest), ("id", sub_id), ("receipt", sub_id)]
                     + list(headers))
        return s.read_until(lambda f: f.command in ("RECEIPT", "ERROR"))[-1]

    def test_client_id_of_another_user_refused(self):
        s, f = self.stomp("bob", "alice:laptop")
        self.assertEqual(f.command, "ERROR")
        self.assertEqual(f.headers.get("message"), "client id not the user's")
        self.assertIn("a client-id must start with 'bob:'", f.body.decode())
        s.wait_closed()
        self.broker.wait_for_log(r"acl: stomp 127\.0\.0\.1:\d+: user bob denied client id "
                                 r"'alice:laptop': it must start with 'bob:'")
        # Her own id works, and so does a durable subscription under it.
        s, f = self.stomp("alice", "alice:laptop")
        self.assertEqual(f.command, "CONNECTED")
        f = self.subscribe(s, "/topic/news.>", "1",
                           [("activemq.subscriptionName", "feed")])
        self.assertEqual(f.command, "RECEIPT")

    def test_rabbitmq_durable_subscriptions_are_each_users_own(self):
        """Without a client-id a durable subscription is named by its id;
        under the prefix alice's and bob's `d1` are two subscriptions, so
        each gets every message (they would otherwise share one queue)."""
        subs = []
        for user in ("alice", "bob"):
            s, f = self.stomp(user)
            self.assertEqual(f.command, "CONNECTED")
            f = self.subscribe(s, "/topic/news.rabbit", "d1",
                               [("durable", "true"), ("auto-delete", "false")])
            self.assertEqual(f.command, "RECEIPT", f)
            subs.append(s)
        pub, _ = self.stomp("alice")
        for i in range(4):
            pub.send_frame("SEND", [("destination", "/topic/news.rabbit")], b"m%d" % i)
        for s in subs:
            got = [s.read_frame() for _ in range(4)]
            self.assertEqual([(f.command, f.body) for f in got],
                             [("MESSAGE", b"m%d" % i) for i in range(4)])

    def test_reload_ends_subscriptions_no_longer_allowed(self):
        stomp_bob, _ = self.stomp("bob")
        self.assertEqual(self.subscribe(stomp_bob, "/topic/news.hup", "s1").command, "RECEIPT")
        stomp_alice, _ = self.stomp("alice")
        self.assertEqual(self.subscribe(stomp_alice, "/topic/news.hup", "s1").command, "RECEIPT")
        mqtts = {}
        for level in (5, 4):
            m = RawMqtt(self.ports["mqtt"], level=level, timeout=TIMEOUT)
            self.addCleanup(m.close)
            m.connect(client_id="bob:hup%d" % level, username="bob", password=b"bob-pw")
            self.assertEqual(m.subscribe("news/#").codes, [1])
            mqtts[level] = m
        amqp = BlockingConnection("amqp://127.0.0.1:%d" % self.ports["amqp"], user="bob",
                                  password="bob-pw", allowed_mechs="PLAIN", timeout=TIMEOUT)
        self.addCleanup(amqp.close)
        rcv = amqp.create_receiver("topic://news.hup")
        queue_rcv = amqp.create_receiver("open.hup")
        with open(self.acl, "w") as f:
            f.write("deny bob subscribe topic:news.>\n" + RULES)
        try:
            self.broker.proc.send_signal(1)
            self.broker.wait_for_log(r"acl: .* reloaded: 4 rules")
            f = stomp_bob.read_until(lambda f: f.command == "ERROR")[-1]
            self.assertEqual((f.headers.get("message"), f.headers.get("subscription")),
                             ("access refused", "s1"))
            stomp_bob.wait_closed()
            p = mqtts[5].expect(DISCONNECT)
            self.assertEqual(p.reason, 0x87)
            mqtts[5].wait_closed()
            mqtts[4].wait_closed()
            with self.assertRaises(LinkDetached) as e:
                rcv.receive(timeout=TIMEOUT)
            self.assertIn("amqp:unauthorized-access", str(e.exception))
            self.broker.wait_for_log(r"acl: mqtt 127\.0\.0\.1:\d+: user bob client bob:hup5 "
                                     r"denied subscribe on topic news\.>")
            # What the rules still allow goes on: alice's subscription and
            # bob's queue on the same AMQP connection.
            pub, _ = self.stomp("alice")
            pub.send_frame("SEND", [("destination", "/topic/news.hup")], b"after")
            pub.send_frame("SEND", [("destination", "/queue/open.hup")], b"queued")
            f = stomp_alice.read_frame()
            self.assertEqual((f.command, f.body), ("MESSAGE", b"after"))
            msg = queue_rcv.receive(timeout=TIMEOUT)
            self.assertEqual(msg.body, b"queued")
            # A new subscription is refused as any denied one is.
            m = RawMqtt(self.ports["mqtt"], level=5, timeout=TIMEOUT)
            self.addCleanup(m.close)
            m.connect(client_id="bob:hup5", clean=False, username="bob", password=b"bob-pw")
            self.assertEqual(m.subscribe("news/#").codes, [0x87])
            m.publish("news/x", b"x")
            m.expect_none(PUBLISH)
        finally:
            with open(self.acl, "w") as f:
                f.write(RULES)
            self.broker.proc.send_signal(1)
            self.broker.wait_for_log(r"acl: .* reloaded: 3 rules")

    def test_resumed_session_keeps_only_what_its_new_user_may_read(self):
        alice = RawMqtt(self.ports["mqtt"], level=5, timeout=TIMEOUT)
        self.addCleanup(alice.close)
        alice.connect(client_id="shared-device", clean=False, username="alice",
                      password=b"alice-pw", props=[("session_expiry", 300)])
        self.assertEqual(alice.subscribe([("private/#", 1), ("news/shared", 1)]).codes, [1, 1])
        alice.disconnect()
        bob = RawMqtt(self.ports["mqtt"], level=5, timeout=TIMEOUT)
        self.addCleanup(bob.close)
        ack = bob.connect(client_id="shared-device", clean=False, username="bob",
                          password=b"bob-pw")
        self.assertTrue(ack.session_present)
        pub, _ = self.stomp("alice")
        pub.send_frame("SEND", [("destination", "/topic/private.x")], b"alice only")
        pub.send_frame("SEND", [("destination", "/topic/news.shared")], b"for anyone")
        p = bob.expect(PUBLISH)
        self.assertEqual((p.topic, p.payload), ("news/shared", b"for anyone"))
        bob.expect_none(PUBLISH)
        self.broker.wait_for_log(r"acl: mqtt 127\.0\.0\.1:\d+: user bob client shared-device "
                                 r"denied subscribe on topic private\.>")


if __name__ == "__main__":
    main()
