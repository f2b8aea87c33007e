#!/usr/bin/env python3
"""Authentication ([auth], docs/security.md) with real clients: a users file
made by `wharfctl user add`, right and wrong passwords, unknown users and
anonymous clients on STOMP (stomp.py, and over WebSocket), MQTT 3.1.1 and 5
(paho, mosquitto_pub, and over WebSocket) and AMQP (python-qpid-proton);
refusals after failure_delay while a good login is served at once; a loop
that hashing does not block; the throttle per address; SIGHUP reloads; and
the principal (JMSXUserID) reaching consumers on other protocols."""
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt
import stomp
from proton import ConnectionException, Message
from proton.utils import BlockingConnection

from amqptest import RawAmqp
from mqtttest import CONNACK, connect_packet, RawMqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from stomptest import Collector, stomp_connect
from test_ha_redirect import closed_port, mqtt_connack
from test_ws import RawWs
from wharftest import WHARFD, Broker, main
from wstest import frame as ws_frame, upgrade_request

TIMEOUT = 20
WHARFCTL = os.environ.get("WHARFCTL") or os.path.join(
    os.path.dirname(os.path.abspath(WHARFD)), "..", "tools", "wharfctl", "wharfctl")
DELAY = 0.6  # failure_delay of the main broker
USERS = {"alice": "alice-secret", "bob": "b0b s3cret:with#odd chars"}


def wharfctl(*args, password=None):
    r = subprocess.run([WHARFCTL, "user"] + list(args), input=password and password + "\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
    return r


def add_user(path, name, password, *extra):
    r = wharfctl("add", name, "--users-file", path, *extra, password=password)
    assert r.returncode == 0, r.stderr
    assert password not in r.stdout + r.stderr


def users_and_rules(prefix, users, rules, groups=None):
    """A new folder with a users file of `users` (name: password; cost 10,
    groups from `groups`) and an ACL file of `rules`: (folder, users file,
    ACL file)."""
    d = tempfile.mkdtemp(prefix=prefix)
    path, acl = os.path.join(d, "users"), os.path.join(d, "acl")
    for u, pw in users.items():
        extra = ["--groups", groups[u]] if groups and u in groups else []
        add_user(path, u, pw, "--cost", "10", *extra)
    with open(acl, "w") as f:
        f.write(rules)
    return d, path, acl


def start(config, schemes):
    """A broker whose listeners come from config; ports by listener scheme
    and order ("stomp", "stomp2" for the second stomp listener...)."""
    b = Broker(protocols=(), config=config)
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = re.findall(r"listening (\S+) \S+:(\d+)$", b.output(), re.M)
        if len(found) >= len(schemes) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    seen = {}
    for scheme, port in found:
        seen[scheme] = seen.get(scheme, 0) + 1
        b.ports[scheme + ("" if seen[scheme] == 1 else str(seen[scheme]))] = int(port)
    assert len(found) >= len(schemes), b.output()
    return b


def auth_broker(config, schemes, top=""):
    """A broker with a users file holding alice (cost 10), config after its
    users_file line and top (global keys) before [auth]: (its folder, the
    users file, the broker)."""
    d = tempfile.mkdtemp(prefix="wharf-auth-")
    users = os.path.join(d, "users")
    add_user(users, "alice", USERS["alice"], "--cost", "10")
    return d, users, start("%s[auth]\nusers_file = %s\n%s" % (top, users, config), schemes)


def stop(b):
    try:
        rc = b.stop()
        assert rc == 0, "wharfd exited with %d:\n%s" % (rc, b.output())
    finally:
        b.cleanup()


# ---- one login per protocol, timed ------------------------------------------

def stomp_raw(port, login=None, passcode=None):
    """(first frame's command line, its headers text, seconds) of a CONNECT."""
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    head = "CONNECT\naccept-version:1.2\nhost:x\n"
    if login is not None:
        head += "login:%s\npasscode:%s\n" % (login, passcode)
    t = time.monotonic()
    s.sendall((head + "\n").encode() + b"\0")
    buf = b""
    while b"\0" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    took = time.monotonic() - t
    s.close()
    text = buf.split(b"\0")[0].decode(errors="replace")
    return text.split("\n")[0], text, took


def stomp_as(port, user):
    """A connected stomp.py connection of user's, and its Collector."""
    return stomp_connect(port, headers={"login": user, "passcode": USERS[user]})


def stomppy(port, login=None, passcode=None):
    """stomp.py: (connected, error message, seconds)."""
    col = Collector()
    conn = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0))
    conn.set_listener("", col)
    t = time.monotonic()
    kw = {"username": login, "passcode": passcode} if login is not None else {}
    conn.connect(wait=False, **kw)
    col.wait_for(lambda: col.connected is not None or col.errors, TIMEOUT, "an answer")
    took = time.monotonic() - t
    err = col.errors[0].headers.get("message") if col.errors else None
    ok = col.connected is not None
    if ok:
        conn.disconnect()
    else:
        col.wait_disconnected()
    return ok, err, took


def paho_connack(port, user=None, password=None, level=mqtt.MQTTv311, transport="tcp"):
    """The CONNACK code paho gets (an int for 3.1.1, the reason's value for 5)."""
    rc = mqtt_connack(port, level, transport, user, password,
                      client_id="auth-%s" % threading.get_ident())[0]
    return rc.value if hasattr(rc, "value") else rc


def mqtt_raw(port, user=None, password=None, level=5, props=None):
    """(CONNACK reason, seconds) of a CONNECT on a bare socket."""
    m = RawMqtt(port, level=level, timeout=TIMEOUT)
    t = time.monotonic()
    m.sock.sendall(connect_packet(level=level, username=user,
                                  password=password.encode() if password else None,
                                  props=props))
    p = m.expect(CONNACK)
    took = time.monotonic() - t
    m.close()
    return p.reason, took


def amqp_login(port, user=None, password=None):
    """None when in, else the error text."""
    mechs = "PLAIN" if user is not None else "ANONYMOUS"
    try:
        c = BlockingConnection("amqp://127.0.0.1:%d" % port, user=user, password=password,
                               allowed_mechs=mechs, timeout=TIMEOUT)
        c.close()
        return None
    except ConnectionException as e:
        return str(e)


def in_parallel(fns):
    """Runs each fn on a thread of its own; their results in order."""
    out = [None] * len(fns)
    errs = []

    def run(i, fn):
        try:
            out[i] = fn()
        except Exception as e:  # noqa: BLE001 - reported below
            errs.append(e)
    ts = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(TIMEOUT * 2)
    if errs:
        raise errs[0]
    return out


class AuthTest(unittest.TestCase):
    """Listeners without allow_anonymous (the default with a users file)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="wharf-auth-")
        cls.users = os.path.join(cls.dir, "users")
        add_user(cls.users, "alice", USERS["alice"])
        add_user(cls.users, "bob", USERS["bob"], "--groups", "ops,dev", "--cost", "12")
        cls.broker = start("""
log_level = debug
[auth]
users_file = %s
failure_delay = %dms
max_failures_per_address = 1000
[listener s]
url = stomp://127.0.0.1:0
[listener m]
url = mqtt://127.0.0.1:0
[listener a]
url = amqp://127.0.0.1:0
[listener w]
url = ws://127.0.0.1:0
""" % (cls.users, DELAY * 1000), ("stomp", "mqtt", "amqp", "ws"))
        cls.ports = cls.broker.ports

    @classmethod
    def tearDownClass(cls):
        stop(cls.broker)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_users_file_holds_no_password(self):
        with open(self.users) as f:
            text = f.read()
        for pw in USERS.values():
            self.assertNotIn(pw, text)
        self.assertIn("alice:$scrypt$", text)
        self.assertEqual(stat.S_IMODE(os.stat(self.users).st_mode), 0o600)
        r = wharfctl("list", "--users-file", self.users)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split("\n")[:2], ["alice", "bob\tops,dev"])
        self.assertNotIn("$scrypt$", r.stdout)
        r = wharfctl("add", "alice", "--users-file", self.users, password="x")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("exists", r.stderr)

    def test_stomp(self):
        port = self.ports["stomp"]
        self.assertEqual(stomppy(port, "alice", USERS["alice"])[:2], (True, None))
        self.assertEqual(stomppy(port, "bob", USERS["bob"])[:2], (True, None))
        results = in_parallel([lambda: stomppy(port, "alice", "wrong"),
                               lambda: stomppy(port, "nobody", "x"),
                               lambda: stomppy(port)])
        for ok, err, took in results:
            self.assertFalse(ok)
            self.assertEqual(err, "authentication failed")
            self.assertGreaterEqual(took, DELAY - 0.01)
        log = self.broker.output()
        self.assertRegex(log, r"auth: stomp 127\.0\.0\.1:\d+: user alice refused: wrong password")
        self.assertRegex(log, r"user nobody refused: unknown user")
        self.assertIn("user (anonymous) refused: anonymous login not allowed", log)
        self.assertNotIn("wrong\n", log.replace("wrong password", ""))

    def test_mqtt(self):
        port = self.ports["mqtt"]
        v3, v5 = mqtt.MQTTv311, mqtt.MQTTv5
        cases = [(v3, "alice", USERS["alice"], 0), (v3, "alice", "bad", 4),
                 (v3, "who", "bad", 4), (v3, None, None, 5),
                 (v5, "bob", USERS["bob"], 0), (v5, "bob", "bad", 0x86),
                 (v5, None, None, 0x87)]
        got = in_parallel([lambda c=c: paho_connack(port, c[1], c[2], c[0]) for c in cases])
        self.assertEqual(got, [c[3] for c in cases])
        # MQTT 5 enhanced authentication is refused as a bad method.
        self.assertEqual(mqtt_raw(port, "alice", USERS["alice"],
                                  props=[("auth_method", "SCRAM-SHA-1")])[0], 0x8C)
        # A name that would forge a log line is logged harmless.
        self.assertEqual(mqtt_raw(port, "evil\nauth: forged", "x")[0], 0x86)
        self.broker.wait_for_log(r"user evil\?auth:\?forged refused: unknown user")
        # mosquitto_pub: in with the password, refused without.
        base = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "auth/x", "-m", "hi"]
        r = subprocess.run(base + ["-u", "alice", "-P", USERS["alice"]], timeout=TIMEOUT,
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run(base + ["-u", "alice", "-P", "nope"], timeout=TIMEOUT,
                           capture_output=True)
        self.assertNotEqual(r.returncode, 0)

    def test_amqp(self):
        port = self.ports["amqp"]
        self.assertIsNone(amqp_login(port, "alice", USERS["alice"]))
        self.assertIsNone(amqp_login(port, "bob", USERS["bob"]))
        t = time.monotonic()
        errs = in_parallel([lambda: amqp_login(port, "alice", "bad"),
                            lambda: amqp_login(port, "ghost", "bad"),
                            lambda: amqp_login(port)])
        self.assertGreaterEqual(time.monotonic() - t, DELAY - 0.01)
        for e in errs:
            self.assertIsNotNone(e)
            self.assertIn("amqp:unauthorized-access", e)  # sasl-outcome code 1 (auth)
            self.assertIn("Authentication failed", e)

    def test_amqp_sasl_outcome_code(self):
        """PLAIN with a wrong password: sasl-outcome code 1 (auth), after the delay."""
        r = RawAmqp(self.ports["amqp"])
        t = time.monotonic()
        offered, out = r.sasl("PLAIN", b"\0alice\0wrong")
        self.assertGreaterEqual(time.monotonic() - t, DELAY - 0.01)
        self.assertEqual(set(offered), {"PLAIN", "ANONYMOUS"})
        self.assertEqual(out.field(0), 1)
        r.close()
        r = RawAmqp(self.ports["amqp"])
        self.assertEqual(r.sasl("PLAIN", b"\0alice\0" + USERS["alice"].encode())[1].field(0), 0)
        r.close()

    def test_amqp_without_sasl_refused(self):
        """A client that skips SASL gets no open: with users, SASL is the way in."""
        r = RawAmqp(self.ports["amqp"])
        with self.assertRaises(AssertionError):
            r.open()
        r.close()

    def test_websocket(self):
        port = self.ports["ws"]
        self.assertEqual(paho_connack(port, "alice", USERS["alice"], transport="websockets"), 0)
        self.assertEqual(paho_connack(port, "alice", "bad", mqtt.MQTTv5, transport="websockets"),
                         0x86)
        for login, pw, want in (("alice", USERS["alice"], b"CONNECTED\n"),
                                ("alice", "bad", b"ERROR\nmessage:authentication failed\n")):
            ws = RawWs(port, upgrade_request(protocols="v12.stomp"))
            self.assertEqual(ws.status, 101)
            ws.send(ws_frame(1, ("CONNECT\naccept-version:1.2\nhost:x\nlogin:%s\npasscode:%s\n\n\0"
                                 % (login, pw)).encode()))
            op, payload = ws.read_frame()
            self.assertTrue(payload.startswith(want), payload)
            ws.s.close()

    def test_refusal_waits_while_a_good_login_is_served_at_once(self):
        port = self.ports["stomp"]
        stomp_raw(port, "alice", USERS["alice"])  # in the cache from now on
        bad, good = in_parallel([lambda: stomp_raw(port, "alice", "wrong"),
                                 lambda: (time.sleep(0.1), stomp_raw(port, "alice", USERS["alice"]))[1]])
        self.assertEqual(bad[0], "ERROR")
        self.assertGreaterEqual(bad[2], DELAY - 0.01)
        self.assertEqual(good[0], "CONNECTED")
        self.assertLess(good[2], 0.2)

    def test_hashing_does_not_block_the_loop(self):
        """20 wrong passwords (each a whole scrypt) in parallel: a healthy
        client's round trips stay within ~100 ms of what they were."""
        port = self.ports["stomp"]
        conn, col = stomp_as(port, "alice")
        conn.subscribe("/queue/auth.rtt", id="1")

        def rtt(i):
            n = col.count()
            t = time.monotonic()
            conn.send("/queue/auth.rtt", "m%d" % i)
            col.wait_for(lambda: col.count() > n, TIMEOUT, "the message back")
            return time.monotonic() - t
        base = max(rtt(i) for i in range(10))
        done = threading.Event()
        worst = []

        def measure():
            i = 100
            while not done.is_set():
                worst.append(rtt(i))
                i += 1
                time.sleep(0.01)
        m = threading.Thread(target=measure)
        m.start()
        t = time.monotonic()
        results = in_parallel([lambda: mqtt_raw(self.ports["mqtt"], "alice", "wrong%d" % i)
                               for i in range(20)])
        done.set()
        m.join()
        conn.disconnect()
        self.assertTrue(all(r[0] == 0x86 for r in results), results)
        self.assertGreaterEqual(time.monotonic() - t, DELAY - 0.01)
        self.assertGreater(len(worst), 10)
        self.assertLess(max(worst), base + 0.1, "round trips %r, before %.3f" % (worst, base))

    def test_principal_reaches_other_protocols(self):
        """JMSXUserID: the publisher's user, whatever the client sent."""
        port = self.ports["stomp"]
        conn, col = stomp_as(port, "bob")
        conn.subscribe("/topic/auth.principal", id="1")
        time.sleep(0.2)
        c = mqtt.Client(protocol=mqtt.MQTTv5)
        c.username_pw_set("alice", USERS["alice"])
        c.connect("127.0.0.1", self.ports["mqtt"])
        c.loop_start()
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("JMSXUserID", "mallory")
        c.publish("auth/principal", b"from mqtt", qos=1, properties=props).wait_for_publish(TIMEOUT)
        c.loop_stop()
        c.disconnect()
        col.wait_messages(1)
        self.assertEqual(col.messages[0].headers.get("JMSXUserID"), "alice")
        # STOMP to AMQP: bob's name in the application properties.
        amqp = BlockingConnection("amqp://127.0.0.1:%d" % self.ports["amqp"], user="alice",
                                  password=USERS["alice"], allowed_mechs="PLAIN", timeout=TIMEOUT)
        rcv = amqp.create_receiver("auth.principal.q")
        conn.send("/queue/auth.principal.q", "from stomp", headers={"JMSXUserID": "mallory"})
        msg = rcv.receive(timeout=TIMEOUT)
        rcv.accept()
        self.assertEqual(msg.properties.get("JMSXUserID"), "bob")
        # AMQP to STOMP, the client's own JMSXUserID replaced.
        snd = amqp.create_sender("auth.principal.q2")
        snd.send(Message(body="from amqp", properties={"JMSXUserID": "mallory"}))
        conn.subscribe("/queue/auth.principal.q2", id="2")
        col.wait_messages(2)
        self.assertEqual(col.messages[1].headers.get("JMSXUserID"), "alice")
        amqp.close()
        conn.disconnect()

    def test_sighup_reload(self):
        port = self.ports["stomp"]
        old, col = stomp_as(port, "alice")
        old.subscribe("/queue/auth.hup", id="1")
        self.assertEqual(stomppy(port, "carol", "carol-pw")[:2], (False, "authentication failed"))
        add_user(self.users, "carol", "carol-pw", "--cost", "10")
        with open(self.users) as f:
            good = f.read()
        self.broker.proc.send_signal(1)
        self.broker.wait_for_log(r"auth: users file .* reloaded: 3 users")
        self.assertEqual(stomppy(port, "carol", "carol-pw")[:2], (True, None))
        old.send("/queue/auth.hup", "still here")
        col.wait_messages(1)
        # A broken file: the old users stay, the mistake is logged with its line.
        with open(self.users, "a") as f:
            f.write("dave has no hash\n")
        try:
            self.broker.proc.send_signal(1)
            line = self.broker.wait_for_log(r"users file not reloaded")
            self.assertIn("%s:4:" % self.users, line)
            self.assertEqual(stomppy(port, "carol", "carol-pw")[:2], (True, None))
            self.assertEqual(stomppy(port, "alice", USERS["alice"])[:2], (True, None))
        finally:
            with open(self.users, "w") as f:
                f.write(good)
        old.send("/queue/auth.hup", "still here 2")
        col.wait_messages(2)
        old.disconnect()


class CheckConfigTest(unittest.TestCase):
    def test_check_config_reads_the_users_file(self):
        d = tempfile.mkdtemp(prefix="wharf-auth-")
        try:
            users, conf = os.path.join(d, "users"), os.path.join(d, "wharf.conf")
            add_user(users, "alice", USERS["alice"], "--cost", "10")
            with open(conf, "w") as f:
                f.write("[auth]\nusers_file = %s\n" % users)
            r = subprocess.run([WHARFD, "-c", conf, "--check-config"], capture_output=True,
                               text=True, timeout=TIMEOUT)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(users, "a") as f:
                f.write("no hash here\n")
            r = subprocess.run([WHARFD, "-c", conf, "--check-config"], capture_output=True,
                               text=True, timeout=TIMEOUT)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("%s:2:" % users, r.stderr)
            # wharfctl reads the file from the config, and refuses to write a broken one.
            r = wharfctl("list", "--config", conf)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("%s:2:" % users, r.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_wharfctl_passwd_and_del(self):
        d = tempfile.mkdtemp(prefix="wharf-auth-")
        try:
            users, conf = os.path.join(d, "users"), os.path.join(d, "wharf.conf")
            with open(conf, "w") as f:
                f.write("[auth]\nusers_file = %s\n" % users)
            add_user(users, "alice", "one", "--cost", "10", "--groups", "ops")
            with open(users) as f:
                before = f.read()
            r = wharfctl("passwd", "alice", "--config", conf, "--cost", "10", password="two")
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(users) as f:
                after = f.read()
            self.assertNotEqual(before, after)
            self.assertTrue(after.startswith("alice:$scrypt$ln=10,") and after.endswith(":ops\n"),
                            after)
            self.assertEqual(wharfctl("passwd", "zed", "--config", conf, password="x").returncode, 1)
            self.assertEqual(wharfctl("del", "alice", "--config", conf).returncode, 0)
            self.assertEqual(wharfctl("list", "--config", conf).stdout, "")
            self.assertNotEqual(wharfctl("add", "bad:name", "--users-file", users,
                                         password="x").returncode, 0)
        finally:
            shutil.rmtree(d, ignore_errors=True)


class AnonymousTest(unittest.TestCase):
    """Listeners with allow_anonymous = true beside a users file; a
    handshake_timeout shorter than failure_delay (the wait for the
    authenticator is not the client's)."""

    @classmethod
    def setUpClass(cls):
        cls.dir, cls.users, cls.broker = auth_broker("""
failure_delay = 600ms
[listener s]
url = stomp://127.0.0.1:0
allow_anonymous = true
[listener m]
url = mqtt://127.0.0.1:0
allow_anonymous = true
[listener a]
url = amqp://127.0.0.1:0
allow_anonymous = true
""", ("stomp", "mqtt", "amqp"), top="handshake_timeout = 400ms\n")

    @classmethod
    def tearDownClass(cls):
        stop(cls.broker)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_anonymous_in_and_bad_passwords_out(self):
        p = self.broker.ports
        self.assertEqual(stomppy(p["stomp"])[:2], (True, None))
        ok, err, took = stomppy(p["stomp"], "alice", "bad")
        self.assertEqual((ok, err), (False, "authentication failed"))
        self.assertGreaterEqual(took, 0.59)
        self.assertEqual(paho_connack(p["mqtt"]), 0)
        self.assertEqual(paho_connack(p["mqtt"], None, None, mqtt.MQTTv5), 0)
        self.assertEqual(paho_connack(p["mqtt"], "alice", "bad"), 4)
        self.assertIsNone(amqp_login(p["amqp"]))
        self.assertIsNone(amqp_login(p["amqp"], "alice", USERS["alice"]))
        self.assertIn("unauthorized-access", amqp_login(p["amqp"], "alice", "bad"))

    def test_anonymous_messages_carry_no_user(self):
        p = self.broker.ports
        conn, col = stomp_connect(p["stomp"])
        conn.subscribe("/queue/anon.q", id="1")
        conn.send("/queue/anon.q", "x", headers={"JMSXUserID": "mallory"})
        col.wait_messages(1)
        self.assertNotIn("JMSXUserID", col.messages[0].headers)
        conn.disconnect()


class ThrottleTest(unittest.TestCase):
    """Past max_failures_per_address, even the right password is refused
    until the window ends."""

    def test_throttle(self):
        d, _, b = auth_broker("""
failure_delay = 100ms
max_failures_per_address = 3
failure_window = 3s
[listener s]
url = stomp://127.0.0.1:0
""", ("stomp",))
        try:
            port = b.ports["stomp"]
            t0 = time.monotonic()
            for _ in range(3):
                self.assertEqual(stomp_raw(port, "alice", "bad")[0], "ERROR")
            cmd, _, took = stomp_raw(port, "alice", USERS["alice"])
            self.assertEqual(cmd, "ERROR")
            self.assertGreaterEqual(took, 0.09)
            self.assertEqual(stomp_raw(port, "alice", USERS["alice"])[0], "ERROR")
            self.assertEqual(len(re.findall("refused unchecked", b.output())), 1)
            self.assertIn("too many failures from this address", b.output())
            time.sleep(max(0, 3.1 - (time.monotonic() - t0)))
            self.assertEqual(stomp_raw(port, "alice", USERS["alice"])[0], "CONNECTED")
        finally:
            stop(b)
            shutil.rmtree(d, ignore_errors=True)


class StandbyTest(unittest.TestCase):
    """A standby answers with where to go before any authentication."""

    def test_redirect_before_authentication(self):
        d, _, b = auth_broker("""
[ha]
role = standby
node_id = b
listen = repl://127.0.0.1:0
peer = repl://127.0.0.1:%d
secret = a-secret-of-more-than-16-chars
[listener s]
url = stomp://127.0.0.1:0
[listener a]
url = amqp://127.0.0.1:0
""" % closed_port(), ("stomp", "amqp"))
        try:
            cmd, text, took = stomp_raw(b.ports["stomp"])
            self.assertEqual(cmd, "ERROR")
            self.assertIn("standby", text)
            self.assertLess(took, 0.5)
            err = amqp_login(b.ports["amqp"], "alice", "bad")
            self.assertIn("amqp:connection:forced", err)
        finally:
            stop(b)
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
