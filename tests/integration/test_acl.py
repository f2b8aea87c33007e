#!/usr/bin/env python3
"""ACLs ([auth] acl_file, docs/security.md) with real clients: every action
allowed and denied on STOMP (stomp.py and a bare socket), MQTT 3.1.1 and 5
(a bare socket, paho, mosquitto_pub/sub) and AMQP (python-qpid-proton),
each with its protocol's refusal; the same rules across protocols; %u and
%c; groups; $SYS readable only by an explicit rule; MQTT client ids bound
to their user ([auth] mqtt_client_id_prefix); denials logged, and not
without limit; SIGHUP reloads of the rules, a broken file keeping the old
ones."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import paho.mqtt.client as mqtt
from proton import Delivery, Message

from amqptest import Client as AmqpClient
from mqtttest import CONNACK, PUBLISH, RawMqtt
from stomptest import RawStomp
from test_auth import start, stop, users_and_rules
from wharftest import main

TIMEOUT = 20
USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "sysop": "sysop-pw",
         "mallory": "mallory-pw"}
GROUPS = {"alice": "ops", "carol": "ops"}

RULES = """\
# Wharf ACL rules for test_acl.py
deny   mallory  all                       >
allow  @ops     publish,subscribe,create  queue:ops.>
allow  *        publish,subscribe         topic:users.%u.>
allow  *        publish                   topic:clients.%c.>
allow  sysop    subscribe                 topic:$SYS.>
allow  carol    subscribe                 topic:>        # all but $SYS
allow  alice    publish                   topic:news.>
allow  *        subscribe                 topic:news.>
allow  alice    publish,create            queue:nocreate.>
allow  bob      publish                   queue:nocreate.>
allow  *        publish,subscribe,create  queue:open.>
allow  *        publish,subscribe         topic:open.>
deny   bob      subscribe                 topic:secret.>
allow  bob      subscribe                 topic:*.x
"""


def rules_with(extra):
    return extra + RULES


class AclTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir, cls.users, cls.acl = users_and_rules("wharf-acl-", USERS, RULES, GROUPS)
        cls.broker = start("""
log_level = info
[auth]
users_file = %s
acl_file = %s
mqtt_client_id_prefix = %%u-
failure_delay = 100ms
max_failures_per_address = 1000
[listener s]
url = stomp://127.0.0.1:0
[listener m]
url = mqtt://127.0.0.1:0
[listener a]
url = amqp://127.0.0.1:0
""" % (cls.users, cls.acl), ("stomp", "mqtt", "amqp"))
        cls.ports = cls.broker.ports
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        stop(cls.broker)
        shutil.rmtree(cls.dir, ignore_errors=True)

    # ---- clients ----------------------------------------------------------

    def stomp(self, user):
        s = RawStomp(self.ports["stomp"], timeout=TIMEOUT)
        self.addCleanup(s.close)
        s.connect(headers=[("login", user), ("passcode", USERS[user])])
        return s

    def stomp_try(self, user, command, dest, body=b"x"):
        """The frame a SEND or SUBSCRIBE with a receipt gets: RECEIPT or ERROR."""
        s = self.stomp(user)
        h = [("destination", dest), ("receipt", "r1")]
        if command == "SUBSCRIBE":
            h.append(("id", "1"))
        s.send_frame(command, h, body if command == "SEND" else b"")
        return s.read_until(lambda f: f.command in ("RECEIPT", "ERROR"))[-1]

    def assert_stomp_refused(self, user, command, dest):
        f = self.stomp_try(user, command, dest)
        self.assertEqual(f.command, "ERROR", "%s %s %s was not refused" % (user, command, dest))
        self.assertEqual(f.headers.get("message"), "access refused")

    def assert_stomp_allowed(self, user, command, dest):
        f = self.stomp_try(user, command, dest)
        self.assertEqual(f.command, "RECEIPT", "%s %s %s: %r" % (user, command, dest, f))

    def mqtt(self, user, level=5, client_id=None, expect_ok=True, will=None):
        AclTest.n += 1
        m = RawMqtt(self.ports["mqtt"], level=level, timeout=TIMEOUT)
        self.addCleanup(m.close)
        ack = m.connect(client_id=client_id or "%s-t%d" % (user, AclTest.n), username=user,
                        password=USERS[user].encode(), expect_ok=expect_ok, will=will)
        return (m, ack) if not expect_ok else m

    def amqp(self, user, container_id=None):
        c = AmqpClient(self.ports["amqp"], user=user, password=USERS[user],
                       allowed_mechs="PLAIN", container_id=container_id)
        self.addCleanup(c.close)
        return c

    # ---- STOMP ------------------------------------------------------------

    def test_stomp_publish_and_subscribe(self):
        self.assert_stomp_allowed("alice", "SEND", "/topic/news.stomp")
        self.assert_stomp_refused("bob", "SEND", "/topic/news.stomp")
        self.assert_stomp_allowed("bob", "SUBSCRIBE", "/topic/news.stomp")
        self.assert_stomp_refused("bob", "SUBSCRIBE", "/topic/secret.stomp")
        self.assert_stomp_refused("bob", "SUBSCRIBE", "/topic/secret.>")
        self.assert_stomp_refused("mallory", "SUBSCRIBE", "/topic/news.stomp")
        self.broker.wait_for_log(
            r"acl: stomp 127\.0\.0\.1:\d+: user bob denied publish on topic news\.stomp")

    def test_stomp_queue_create_and_groups(self):
        # @ops may publish, consume and create under ops.; bob is not in ops.
        self.assert_stomp_allowed("alice", "SEND", "/queue/ops.stomp")
        self.assert_stomp_allowed("carol", "SUBSCRIBE", "/queue/ops.stomp")
        self.assert_stomp_refused("bob", "SEND", "/queue/ops.stomp")
        self.assert_stomp_refused("bob", "SUBSCRIBE", "/queue/ops.stomp")
        # bob may publish to nocreate.* queues that exist, but not create one.
        self.assert_stomp_refused("bob", "SEND", "/queue/nocreate.stomp")
        self.broker.wait_for_log(r"user bob denied create on queue nocreate\.stomp")
        self.assert_stomp_allowed("alice", "SEND", "/queue/nocreate.stomp")
        self.assert_stomp_allowed("bob", "SEND", "/queue/nocreate.stomp")

    # ---- MQTT 5 -----------------------------------------------------------

    def test_mqtt5_reason_codes(self):
        bob = self.mqtt("bob")
        self.assertEqual(bob.publish_acked("news/m5", b"x", qos=1).reason, 0x87)
        self.assertEqual(bob.publish_acked("news/m5", b"x", qos=2).reason, 0x87)
        self.assertEqual(bob.publish_acked("open/m5", b"x", qos=1).reason, 0)
        ack = bob.subscribe([("news/#", 1), ("secret/m5", 1), ("users/bob/#", 1),
                             ("users/alice/#", 1), ("users/+/inbox", 1)])
        self.assertEqual(ack.codes, [1, 0x87, 1, 0x87, 0x87])
        bob.ping()  # still connected: denials do not end the connection

    def test_mqtt_partly_readable_filter(self):
        """A wildcard filter is granted only when one rule allows all of it."""
        carol = self.mqtt("carol")
        self.assertEqual(carol.subscribe([("#", 1), ("$SYS/#", 1)]).codes, [1, 0x87])
        bob = self.mqtt("bob")
        # bob may read everything but secret.>: # would read some of it.
        self.assertEqual(bob.subscribe([("#", 1), ("+/x", 1), ("news/#", 1), ("secret/+", 1)]).codes,
                         [0x87, 0x87, 1, 0x87])

    # ---- MQTT 3.1.1 -------------------------------------------------------

    def test_mqtt311_suback_and_dropped_publish(self):
        reader = self.mqtt("alice", level=4)
        self.assertEqual(reader.subscribe([("news/m3", 1), ("$SYS/#", 1)]).codes, [1, 0x80])
        bob = self.mqtt("bob", level=4)
        # No reason code in 3.1.1: the flow completes, the message is dropped.
        self.assertEqual(bob.publish_acked("news/m3", b"dropped", qos=1).type, 4)  # PUBACK
        rec = bob.publish_acked("news/m3", b"dropped2", qos=2)
        self.assertEqual(rec.type, 5)  # PUBREC
        bob.publish("news/m3", b"dropped0", qos=0)
        bob.ping()
        alice = self.mqtt("alice", level=4)
        alice.publish_acked("news/m3", b"kept", qos=1)
        p = reader.expect(PUBLISH)
        self.assertEqual(p.payload, b"kept")
        reader.expect_none(PUBLISH, wait=0.3)

    def test_mosquitto_clients(self):
        port = str(self.ports["mqtt"])
        base = ["-h", "127.0.0.1", "-p", port, "-u", "bob", "-P", USERS["bob"]]
        sub = subprocess.Popen(["mosquitto_sub"] + base + ["-i", "bob-msub", "-t", "users/bob/#",
                                                             "-C", "1", "-W", "15", "-V", "mqttv5"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # mosquitto_sub subscribed
        r = subprocess.run(["mosquitto_pub"] + base + ["-i", "bob-mpub", "-t", "users/bob/x",
                                                        "-m", "mine", "-q", "1"],
                           capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        out, err = sub.communicate(timeout=TIMEOUT)
        self.assertEqual(out.strip(), "mine", err)
        # Another's tree: mosquitto_pub 5.0 with QoS 1 hears 0x87.
        r = subprocess.run(["mosquitto_pub"] + base + ["-i", "bob-mpub2", "-t", "users/alice/x",
                                                        "-m", "theirs", "-q", "1", "-V", "mqttv5"],
                           capture_output=True, text=True, timeout=TIMEOUT)
        self.assertIn("Not authorized", r.stderr + r.stdout)

    # ---- AMQP -------------------------------------------------------------

    def test_amqp_links_and_transfers(self):
        bob = self.amqp("bob")
        s = bob.snd("topic://news.amqp")
        self.assertTrue(s.refused)
        self.assertEqual(s.condition.name, "amqp:unauthorized-access")
        r = bob.rcv("ops.amqp")
        self.assertTrue(r.refused)
        self.assertEqual(r.condition.name, "amqp:unauthorized-access")
        r = bob.rcv("topic://news.amqp", credit=5)
        self.assertFalse(r.refused, r.condition)
        # The anonymous relay: each transfer to where bob may not is rejected.
        relay = bob.snd(None)
        for m in (Message(body="no", address="topic://news.amqp"),
                  Message(body="yes", address="topic://open.amqp")):
            relay.send(m)
        bob.wait_settled(relay)
        outcomes = [(d.remote_state, d.remote.condition and d.remote.condition.name)
                    for d in relay.deliveries]
        self.assertEqual(outcomes, [(Delivery.REJECTED, "amqp:unauthorized-access"),
                                    (Delivery.ACCEPTED, None)])
        # alice may publish there; bob's receiver gets it.
        alice = self.amqp("alice")
        alice.send_all(alice.snd("topic://news.amqp"), [Message(body="news")])
        bob.wait_received(r, 1)

    def test_amqp_create(self):
        bob = self.amqp("bob")
        s = bob.snd("queue://nocreate.amqp")
        self.assertTrue(s.refused, "bob created a queue")
        self.assertEqual(s.condition.name, "amqp:unauthorized-access")
        alice = self.amqp("alice")
        alice.send_all(alice.snd("queue://nocreate.amqp"), [Message(body="made")])
        s = bob.snd("queue://nocreate.amqp")
        self.assertFalse(s.refused, s.condition)
        bob.send_all(s, [Message(body="bob's")])

    def test_stomp_client_id_substitution(self):
        s = RawStomp(self.ports["stomp"], timeout=TIMEOUT)
        self.addCleanup(s.close)
        s.connect(headers=[("login", "bob"), ("passcode", USERS["bob"]), ("client-id", "st1")])
        s.send_frame("SEND", [("destination", "/topic/clients.st1.t"), ("receipt", "a")], b"x")
        self.assertEqual(s.read_until(lambda f: f.command in ("RECEIPT", "ERROR"))[-1].command,
                         "RECEIPT")
        s.send_frame("SEND", [("destination", "/topic/clients.st2.t"), ("receipt", "b")], b"x")
        f = s.read_until(lambda f: f.command in ("RECEIPT", "ERROR"))[-1]
        self.assertEqual((f.command, f.headers.get("message")), ("ERROR", "access refused"))

    def test_amqp_container_id_substitution(self):
        c = self.amqp("bob", container_id="dev7")
        self.assertFalse(c.snd("topic://clients.dev7.t").refused)
        self.assertTrue(c.snd("topic://clients.dev8.t").refused)

    # ---- across protocols -------------------------------------------------

    def test_cross_protocol(self):
        # bob is denied secret.x over MQTT, and over STOMP and AMQP too.
        bob = self.mqtt("bob")
        self.assertEqual(bob.subscribe([("secret/x", 1)]).codes, [0x87])
        self.assert_stomp_refused("bob", "SUBSCRIBE", "/topic/secret.x")
        self.assertTrue(self.amqp("bob").rcv("topic://secret.x").refused)
        # A queue bob cannot read over STOMP he cannot read over AMQP.
        self.assert_stomp_allowed("alice", "SEND", "/queue/ops.cross")
        self.assert_stomp_refused("bob", "SUBSCRIBE", "/queue/ops.cross")
        r = self.amqp("bob").rcv("queue://ops.cross", credit=1)
        self.assertTrue(r.refused)
        self.assertEqual(r.condition.name, "amqp:unauthorized-access")
        # ... and carol (ops) gets alice's message over AMQP.
        c = self.amqp("carol")
        r = c.rcv("queue://ops.cross", credit=1, auto_accept=True)
        self.assertEqual(c.wait_received(r, 1)[0].body, b"x")

    # ---- %u, %c -----------------------------------------------------------

    def test_user_and_client_substitution(self):
        alice, bob = self.mqtt("alice"), self.mqtt("bob")
        self.assertEqual(alice.subscribe([("users/alice/#", 1)]).codes, [1])
        self.assertEqual(bob.publish_acked("users/alice/inbox", b"x").reason, 0x87)
        self.assertEqual(alice.publish_acked("users/alice/inbox", b"mine").reason, 0)
        self.assertEqual(alice.expect(PUBLISH).payload, b"mine")
        dev = self.mqtt("bob", client_id="bob-dev1")
        self.assertEqual(dev.publish_acked("clients/bob-dev1/t", b"x").reason, 0)
        self.assertEqual(dev.publish_acked("clients/bob-dev2/t", b"x").reason, 0x87)

    # ---- $SYS -------------------------------------------------------------

    def test_sys_only_with_an_explicit_rule(self):
        carol = self.mqtt("carol")
        self.assertEqual(carol.subscribe([("#", 1)]).codes, [1])
        sysop = self.mqtt("sysop")
        self.assertEqual(sysop.subscribe([("$SYS/#", 0)]).codes, [0])
        p = sysop.expect(PUBLISH)  # retained $SYS messages at once
        self.assertTrue(p.topic.startswith("$SYS/"), p.topic)
        self.assertEqual(carol.subscribe([("$SYS/#", 0)]).codes, [0x87])
        self.assert_stomp_refused("carol", "SUBSCRIBE", "/topic/$SYS.>")
        carol.expect_none(PUBLISH, wait=0.3)  # # did not bring $SYS's retained messages

    # ---- MQTT client ids --------------------------------------------------

    def test_session_takeover_by_another_user_refused(self):
        alice = self.mqtt("alice", client_id="alice-phone")
        _, ack = self.mqtt("bob", client_id="alice-phone", expect_ok=False)
        self.assertEqual(ack.reason, 0x85)
        _, ack = self.mqtt("bob", level=4, client_id="alice-phone", expect_ok=False)
        self.assertEqual(ack.reason, 0x02)
        alice.ping()  # alice keeps her session
        self.broker.wait_for_log(r"user bob denied client id 'alice-phone'")
        # paho, 3.1.1: refused with 2 (identifier rejected).
        c = mqtt.Client(client_id="alice-phone", protocol=mqtt.MQTTv311)
        c.username_pw_set("bob", USERS["bob"])
        got = []
        c.on_connect = lambda cl, ud, flags, rc: got.append(rc)
        c.connect("127.0.0.1", self.ports["mqtt"])
        deadline = time.monotonic() + TIMEOUT
        while not got and time.monotonic() < deadline:
            c.loop(0.1)
        self.assertEqual(got, [2])
        # Her own new connection takes it over, as MQTT says.
        self.mqtt("alice", client_id="alice-phone")
        alice.wait_closed()

    def test_will_to_a_denied_topic_refuses_the_connect(self):
        _, ack = self.mqtt("bob", expect_ok=False, will={"topic": "news/will", "payload": b"x"})
        self.assertEqual(ack.reason, 0x87)
        _, ack = self.mqtt("bob", level=4, expect_ok=False,
                           will={"topic": "news/will", "payload": b"x"})
        self.assertEqual(ack.reason, 0x05)
        self.mqtt("bob", will={"topic": "users/bob/will", "payload": b"x"})

    # ---- the log ----------------------------------------------------------

    def test_denials_logged_with_a_limit(self):
        bob = self.mqtt("bob", client_id="bob-flood")
        for _ in range(40):
            bob.publish("news/flood", b"x", qos=0)
        bob.ping()
        log = self.broker.output()
        lines = re.findall(r"user bob client bob-flood denied publish on topic news\.flood", log)
        self.assertGreaterEqual(len(lines), 1)
        self.assertLessEqual(len(lines), 5)

    # ---- reload -----------------------------------------------------------

    def test_sighup_reload(self):
        bob = self.mqtt("bob")
        self.assertEqual(bob.publish_acked("news/hup", b"x").reason, 0x87)
        with open(self.acl, "w") as f:
            f.write(rules_with("allow bob publish topic:news.hup\n"))
        try:
            self.broker.proc.send_signal(1)
            self.broker.wait_for_log(r"acl: .* reloaded: 15 rules")
            # The open connection's cached decision is gone with the old rules.
            self.assertEqual(bob.publish_acked("news/hup", b"x").reason, 0)
            # A broken file: the old rules stay, the mistake logged with its line.
            with open(self.acl, "a") as f:
                f.write("allow bob fly news.>\n")
            self.broker.proc.send_signal(1)
            line = self.broker.wait_for_log(r"acl: rules not reloaded")
            self.assertIn("%s:17:" % self.acl, line)
            self.assertEqual(bob.publish_acked("news/hup", b"x").reason, 0)
        finally:
            with open(self.acl, "w") as f:
                f.write(RULES)
            self.broker.proc.send_signal(1)
            self.broker.wait_for_log(r"acl: .* reloaded: 14 rules")


class CheckConfigTest(unittest.TestCase):
    def test_check_config_reads_the_rules(self):
        from wharftest import WHARFD
        d = tempfile.mkdtemp(prefix="wharf-acl-")
        try:
            acl, conf = os.path.join(d, "acl"), os.path.join(d, "wharf.conf")
            with open(acl, "w") as f:
                f.write("allow * publish >\nallow bob publsh x\n")
            with open(conf, "w") as f:
                f.write("[auth]\nacl_file = %s\n" % acl)
            r = subprocess.run([WHARFD, "--config", conf, "--check-config"], capture_output=True,
                               text=True, timeout=TIMEOUT)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("%s:2: 'publsh': unknown action" % acl, r.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
