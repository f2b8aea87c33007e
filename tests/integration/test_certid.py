#!/usr/bin/env python3
"""Certificate identity ([listener] cert_identity, docs/security.md) with
real clients: stomp.py and paho over TLS with a client certificate and no
password, python-qpid-proton with SASL EXTERNAL; the user taken from the
CN, the SAN email or the SAN DNS name; a login that is not the
certificate's user, a certificate whose user is not in the users file and
a certificate of a CA the broker does not trust refused; the ACL and
JMSXUserID applying to the certificate's user; and without a users file
the certificate's name as the principal (a client without a certificate
still logs in as before).

Certificates are made here with the openssl command (test_tls.py's
helpers): a CA, a server certificate, and client certificates with a CN
and SAN email and DNS names."""
import itertools
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt
import stomp
from proton import ConnectionException, Message, SSLDomain
from proton.utils import BlockingConnection

from stomptest import Collector
from test_auth import DELAY, USERS, add_user, start, stop
from test_tls import make_ca, make_cert
from wharftest import WHARFD, main
import subprocess

TIMEOUT = 20
CLIENT_IDS = itertools.count()


class Certs:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wharf-certid-")
        make_ca(self.dir, "ca")
        make_ca(self.dir, "otherca")
        make_cert(self.dir, "server", "ca", "localhost")
        make_cert(self.dir, "alice", "ca", "alice",
                  san="email:carol@example.com,DNS:dave.devices")
        make_cert(self.dir, "mallory", "ca", "mallory", san="email:mallory@example.com")
        make_cert(self.dir, "forged", "otherca", "alice")
        make_cert(self.dir, "twocn", "ca", "alice/CN=carol@example.com")

    def path(self, name):
        return os.path.join(self.dir, name)


def tls_context(certs, who=None):
    ctx = ssl.create_default_context(cafile=certs.path("ca.crt"))
    if who:
        ctx.load_cert_chain(certs.path(who + ".crt"), certs.path(who + ".key"))
    return ctx


def stomp_tls(certs, port, who, login=None, passcode=None):
    """stomp.py over TLS with who's certificate: (connection or None, Collector,
    error message)."""
    for _ in range(3):
        conn, col, err = stomp_tls_once(certs, port, who, login, passcode)
        # stomp.py now and then ends its receiver right after the TLS
        # handshake, without closing the socket or sending its CONNECT
        # (seen without cert_identity too): that attempt is not an answer.
        if err != "closed" or col.errors:
            break
    return conn, col, err


def stomp_tls_once(certs, port, who, login, passcode):
    col = Collector()
    conn = stomp.Connection12([("localhost", port)], heartbeats=(0, 0))
    kw = {"ca_certs": certs.path("ca.crt")}
    if who:
        kw.update(key_file=certs.path(who + ".key"), cert_file=certs.path(who + ".crt"))
    conn.set_ssl(for_hosts=[("localhost", port)], **kw)
    conn.set_listener("", col)
    creds = {"username": login, "passcode": passcode or ""} if login is not None else {}
    try:
        conn.connect(wait=False, **creds)
    except (stomp.exception.StompException, OSError):
        return None, col, "connect failed"
    col.wait_for(lambda: col.connected is not None or col.errors or col.disconnected,
                 TIMEOUT, "an answer")
    if col.connected is not None:
        return conn, col, None
    col.wait_disconnected()
    if not col.errors:
        conn.disconnect()
    return None, col, col.errors[0].headers.get("message") if col.errors else "closed"


def paho_tls(certs, port, who, level=mqtt.MQTTv311, user=None):
    """The CONNACK code paho gets with who's certificate, and the client
    (connected, looping) when it is 0."""
    got = []
    done = threading.Event()
    # A client id of its own each time: a client left connected by one test
    # would otherwise be taken over by the next one, and paho's loop would
    # reconnect it and take the session back in the middle of that test.
    c = mqtt.Client(client_id="certid-%d" % next(CLIENT_IDS), protocol=level)
    c.tls_set_context(tls_context(certs, who))
    if user:
        c.username_pw_set(user)

    def on_connect(client, userdata, flags, rc, props=None):
        got.append(rc.value if hasattr(rc, "value") else rc)
        done.set()
    c.on_connect = on_connect
    c.on_disconnect = lambda *a: done.set()
    deadline = time.monotonic() + TIMEOUT
    try:
        # Looped here, not on paho's thread: a refused certificate is an
        # SSL error that would end that thread without a callback.
        c.connect("localhost", port)
        while not done.is_set() and time.monotonic() < deadline:
            c.loop(0.1)
    except OSError:
        return None, None
    if not got or got[0] != 0:
        c.disconnect()
        return (got[0] if got else None), None
    c.loop_start()
    return 0, c


def amqp_external(certs, port, who, mechs="EXTERNAL"):
    """A BlockingConnection over TLS with who's certificate and SASL mechs."""
    dom = SSLDomain(SSLDomain.MODE_CLIENT)
    dom.set_trusted_ca_db(certs.path("ca.crt"))
    dom.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
    if who:
        dom.set_credentials(certs.path(who + ".crt"), certs.path(who + ".key"), None)
    return BlockingConnection("amqps://localhost:%d" % port, ssl_domain=dom,
                              allowed_mechs=mechs, timeout=TIMEOUT)


class CertIdentityTest(unittest.TestCase):
    """A users file with alice, carol@example.com and dave.devices (group
    devs), ACL rules, and one TLS listener per protocol and identity kind."""

    @classmethod
    def setUpClass(cls):
        cls.certs = Certs()
        d = cls.dir = tempfile.mkdtemp(prefix="wharf-certid-")
        cls.users = os.path.join(d, "users")
        add_user(cls.users, "alice", USERS["alice"], "--cost", "10")
        add_user(cls.users, "carol@example.com", "carol-pw", "--cost", "10")
        add_user(cls.users, "dave.devices", "dave-pw", "--cost", "10", "--groups", "devs")
        acl = os.path.join(d, "acl")
        with open(acl, "w") as f:
            f.write("allow alice all queue:alice.>\n"
                    "allow alice publish,subscribe topic:shared.>\n"
                    "allow carol@example.com all queue:carol.>\n"
                    "allow @devs publish,subscribe topic:dev.>\n")
        c = cls.certs
        tls = "tls_cert = %s\ntls_key = %s\ntls_ca = %s\ntls_client_cert = required\n" % (
            c.path("server.crt"), c.path("server.key"), c.path("ca.crt"))
        cls.broker = start(("log_level = debug\n" + tls + """
[auth]
users_file = %s
acl_file = %s
failure_delay = %dms
max_failures_per_address = 1000
[listener s]
url = stomps://127.0.0.1:0
cert_identity = cn
[listener m]
url = mqtts://127.0.0.1:0
cert_identity = cn
[listener a]
url = amqps://127.0.0.1:0
cert_identity = cn
[listener se]
url = stomps://127.0.0.1:0
cert_identity = san-email
[listener md]
url = mqtts://127.0.0.1:0
cert_identity = san-dns
""") % (cls.users, acl, DELAY * 1000), ("stomps", "mqtts", "amqps", "stomps2", "mqtts2"))
        cls.ports = cls.broker.ports

    @classmethod
    def tearDownClass(cls):
        stop(cls.broker)
        shutil.rmtree(cls.dir, ignore_errors=True)
        shutil.rmtree(cls.certs.dir, ignore_errors=True)

    def test_stomp_certificate_is_the_login(self):
        port = self.ports["stomps"]
        conn, col, err = stomp_tls(self.certs, port, "alice")
        self.assertIsNone(err)
        self.assertEqual(col.connected.headers.get("user-name", "alice"), "alice")
        conn.subscribe("/queue/alice.in", id="1")
        conn.send("/queue/alice.in", "from alice's certificate",
                  headers={"JMSXUserID": "mallory"})
        col.wait_messages(1)
        self.assertEqual(col.messages[0].body, "from alice's certificate")
        self.assertEqual(col.messages[0].headers.get("JMSXUserID"), "alice")
        # The ACL holds for the certificate's user.
        conn.subscribe("/queue/carol.in", id="2")
        self.assertEqual(col.wait_error().headers.get("message"), "access refused")
        col.wait_disconnected()
        self.broker.wait_for_log(r"acl: stomp 127\.0\.0\.1:\d+: user alice denied subscribe "
                                 r"on queue carol\.in")

    def test_stomp_login_must_be_the_certificates_user(self):
        port = self.ports["stomps"]
        conn, _, err = stomp_tls(self.certs, port, "alice", login="alice")
        self.assertIsNone(err, "the certificate's own user, no passcode needed")
        conn.disconnect()
        t = time.monotonic()
        conn, _, err = stomp_tls(self.certs, port, "alice", login="carol@example.com",
                                 passcode="carol-pw")
        self.assertIsNone(conn)
        self.assertEqual(err, "authentication failed")
        self.assertGreaterEqual(time.monotonic() - t, DELAY - 0.01)
        self.broker.wait_for_log(r"auth: stomp 127\.0\.0\.1:\d+: user alice refused: "
                                 r"the login is not the certificate's user")

    def test_certificate_user_must_be_in_the_users_file(self):
        conn, _, err = stomp_tls(self.certs, self.ports["stomps"], "mallory")
        self.assertIsNone(conn)
        self.assertEqual(err, "authentication failed")
        self.assertEqual(paho_tls(self.certs, self.ports["mqtts"], "mallory")[0], 4)
        self.assertEqual(paho_tls(self.certs, self.ports["mqtts"], "mallory",
                                  level=mqtt.MQTTv5)[0], 0x86)
        self.broker.wait_for_log(r"user mallory refused: the certificate's user is not in the "
                                 r"users file")
        # Two CNs: which is the user would be a guess.
        conn, _, err = stomp_tls(self.certs, self.ports["stomps"], "twocn")
        self.assertIsNone(conn)
        self.assertEqual(err, "authentication failed")
        self.broker.wait_for_log(r"auth: stomp 127\.0\.0\.1:\d+: user \(anonymous\) refused: "
                                 r"the certificate names no user")

    def test_absent_or_untrusted_certificate_refused(self):
        for who in (None, "forged"):
            conn, _, err = stomp_tls(self.certs, self.ports["stomps"], who)
            self.assertIsNone(conn, who)
            self.assertEqual(paho_tls(self.certs, self.ports["mqtts"], who)[0], None, who)
            with self.assertRaises(Exception, msg=who):
                amqp_external(self.certs, self.ports["amqps"], who).close()
        self.assertTrue(self.broker.alive())

    def test_mqtt_certificate_is_the_login(self):
        rc, c = paho_tls(self.certs, self.ports["mqtts"], "alice", level=mqtt.MQTTv5)
        self.assertEqual(rc, 0)
        got = []
        ev = threading.Event()

        def on_message(client, userdata, msg):
            props = dict(getattr(msg.properties, "UserProperty", []))
            got.append((msg.payload, props.get("JMSXUserID")))
            ev.set()
        c.on_message = on_message
        c.subscribe("shared/t", qos=1)
        time.sleep(0.3)
        c.publish("shared/t", b"mqtt with a certificate", qos=1).wait_for_publish(TIMEOUT)
        ev.wait(TIMEOUT)
        self.assertEqual(got, [(b"mqtt with a certificate", "alice")])
        # Denied by the ACL: SUBACK 0x87 for alice's certificate.
        acked = []
        sev = threading.Event()
        c.on_subscribe = lambda cl, u, mid, codes, props=None: (acked.extend(codes), sev.set())
        c.subscribe("dev/x", qos=1)
        sev.wait(TIMEOUT)
        self.assertEqual([getattr(r, "value", r) for r in acked], [0x87])
        c.loop_stop()
        c.disconnect()
        # A user name that is not the certificate's is refused (0x04 in 3.1.1).
        self.assertEqual(paho_tls(self.certs, self.ports["mqtts"], "alice", user="dave.devices")[0],
                         4)
        rc, c = paho_tls(self.certs, self.ports["mqtts"], "alice", user="alice")
        self.assertEqual(rc, 0)
        c.loop_stop()
        c.disconnect()

    def test_amqp_sasl_external(self):
        port = self.ports["amqps"]
        conn = amqp_external(self.certs, port, "alice")
        rcv = conn.create_receiver("alice.amqp")
        snd = conn.create_sender("alice.amqp")
        snd.send(Message(body=b"over EXTERNAL", properties={"JMSXUserID": "mallory"}))
        msg = rcv.receive(timeout=TIMEOUT)
        rcv.accept()
        self.assertEqual(msg.body, b"over EXTERNAL")
        self.assertEqual(msg.properties.get("JMSXUserID"), "alice")
        with self.assertRaises(Exception) as e:
            conn.create_receiver("carol.amqp")
        self.assertIn("unauthorized-access", str(e.exception))
        conn.close()
        with self.assertRaises(ConnectionException) as e:
            amqp_external(self.certs, port, "mallory").close()
        self.assertIn("unauthorized-access", str(e.exception))
        # PLAIN over a certificate: the login must be the certificate's user.
        dom = SSLDomain(SSLDomain.MODE_CLIENT)
        dom.set_trusted_ca_db(self.certs.path("ca.crt"))
        dom.set_credentials(self.certs.path("alice.crt"), self.certs.path("alice.key"), None)
        with self.assertRaises(ConnectionException):
            BlockingConnection("amqps://localhost:%d" % port, ssl_domain=dom, user="carol@example.com",
                               password="carol-pw", allowed_mechs="PLAIN", timeout=TIMEOUT).close()

    def test_san_email_and_san_dns(self):
        conn, col, err = stomp_tls(self.certs, self.ports["stomps2"], "alice")
        self.assertIsNone(err)
        conn.subscribe("/queue/carol.in", id="1")
        conn.send("/queue/carol.in", "as carol")
        col.wait_messages(1)
        self.assertEqual(col.messages[0].headers.get("JMSXUserID"), "carol@example.com")
        conn.disconnect()
        rc, c = paho_tls(self.certs, self.ports["mqtts2"], "alice", level=mqtt.MQTTv5)
        self.assertEqual(rc, 0)
        acked = []
        sev = threading.Event()
        c.on_subscribe = lambda cl, u, mid, codes, props=None: (acked.extend(codes), sev.set())
        c.subscribe([("dev/sensors", 1), ("shared/t", 1)])
        sev.wait(TIMEOUT)
        # dave.devices is in @devs: dev/ allowed, alice's shared/ not.
        self.assertEqual([getattr(r, "value", r) for r in acked], [1, 0x87])
        c.loop_stop()
        c.disconnect()
        # mallory's certificate has an email but no DNS name.
        self.assertEqual(paho_tls(self.certs, self.ports["mqtts2"], "mallory")[0], 4)
        self.broker.wait_for_log(r"user \(anonymous\) refused: the certificate names no user")


class NoUsersFileTest(unittest.TestCase):
    """Without a users file the certificate's name is the principal; with
    tls_client_cert = optional a client without one is anonymous as before."""

    @classmethod
    def setUpClass(cls):
        cls.certs = c = Certs()
        cls.broker = start("""
tls_cert = %s
tls_key = %s
tls_ca = %s
tls_client_cert = optional
[listener s]
url = stomps://127.0.0.1:0
cert_identity = cn
""" % (c.path("server.crt"), c.path("server.key"), c.path("ca.crt")), ("stomps",))

    @classmethod
    def tearDownClass(cls):
        stop(cls.broker)
        shutil.rmtree(cls.certs.dir, ignore_errors=True)

    def test_principal_from_certificate(self):
        port = self.broker.ports["stomps"]
        anon, acol, err = stomp_tls(self.certs, port, None)
        self.assertIsNone(err)
        anon.subscribe("/topic/who", id="1")
        time.sleep(0.2)
        conn, _, err = stomp_tls(self.certs, port, "mallory")
        self.assertIsNone(err)
        conn.send("/topic/who", "from mallory's certificate")
        anon.send("/topic/who", "from nobody")
        acol.wait_messages(2)
        by_body = {m.body: m.headers.get("JMSXUserID") for m in acol.messages}
        self.assertEqual(by_body, {"from mallory's certificate": "mallory", "from nobody": None})
        conn.disconnect()
        anon.disconnect()

    def test_check_config(self):
        d = tempfile.mkdtemp(prefix="wharf-certid-")
        try:
            conf = os.path.join(d, "wharf.conf")
            for body, why in [
                    ("tls_cert = a\ntls_key = b\n[listener s]\nurl = stomps://127.0.0.1:0\n"
                     "cert_identity = cn\n", "cert_identity needs tls_client_cert"),
                    ("[listener s]\nurl = stomps://127.0.0.1:0\ncert_identity = uid\n",
                     "cert_identity: 'uid' is not none, cn, san-email or san-dns")]:
                with open(conf, "w") as f:
                    f.write(body)
                r = subprocess.run([WHARFD, "--check-config", "--config", conf],
                                   capture_output=True, text=True, timeout=TIMEOUT)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(why, r.stderr + r.stdout)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
