#!/usr/bin/env python3
"""The audit log ([audit] file, docs/security.md, Audit log) with real
clients: stomp.py, paho-mqtt (3.1.1 and 5) and python-qpid-proton logging in
with right and wrong passwords, and proton with a client certificate (SASL
EXTERNAL); a client id refused by stomp_client_id_prefix; paho refused a subscription and a publish by
the ACLs; a queue a STOMP client creates and an administrator deletes over
HTTP Basic; a connection the administrator closes; a users file changed and
reloaded by SIGHUP; rotation (rename, SIGHUP, a new file). Every line is
parsed as JSON and checked field by field, no password ever appears in the
file, and a flood of 5000 denied publishes makes a bounded number of lines
that still count every denial."""
import base64
import json
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt
from proton import ConnectionException

from admintest import admin_port
from stomptest import stomp_connect
from test_auth import (add_user, amqp_login, paho_connack, start, stomppy, stop, users_and_rules,
                       wharfctl)
from test_certid import Certs, amqp_external
from wharftest import main, wait_until

TIMEOUT = 20
USERS = {"alice": "alice-Secret-1", "bob": "bob-Secret-2", "dave": "dave-Secret-3",
         "erin": "erin-Secret-4"}
WRONG = "not-the-Password-9"
NEW_PASSWORDS = {"carol": "carol-Secret-5", "dave": "dave-Secret-6"}
# Nothing of these may ever be in the audit file.
SECRETS = list(USERS.values()) + list(NEW_PASSWORDS.values()) + [WRONG, "$scrypt$"]

RULES = """\
allow  alice  all                 >
allow  bob    publish,subscribe   topic:open.>
"""
# Each on a listener named by its first letter.
PROTOCOLS = ("stomp", "mqtt", "amqp")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REMOTE_RE = re.compile(r"^127\.0\.0\.1:\d+$")
# The fields a line may have, as docs/security.md lists them (and the
# details of the events that have some).
FIELDS = {"time", "event", "principal", "mechanism", "protocol", "listener", "remote",
          "client_id", "conn", "destination", "kind", "action", "reason",
          "file", "users", "rules", "added", "removed", "changed", "count", "window_s",
          "dropped", "purged", "to", "moved", "closed_conn", "closed_protocol",
          "closed_remote", "closed_principal", "requested_client_id", "suppressed",
          "session", "session_user"}


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class AuditTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir, cls.users, cls.acl = users_and_rules("wharf-audit-", USERS, RULES)
        cls.broker = start("""
log_level = info
[auth]
users_file = %s
acl_file = %s
failure_delay = 100ms
max_failures_per_address = 1000
stomp_client_id_prefix = %%u:
[audit]
file = audit.log
[admin]
listen = http://127.0.0.1:0
""" % (cls.users, cls.acl) + "".join("[listener %s]\nurl = %s://127.0.0.1:0\n" % (p[0], p)
                                      for p in PROTOCOLS), PROTOCOLS)
        cls.ports = cls.broker.ports
        cls.admin = admin_port(cls.broker)
        # Relative: in the data directory.
        cls.path = os.path.join(cls.broker.data_dir, "audit.log")

    @classmethod
    def tearDownClass(cls):
        stop(cls.broker)
        shutil.rmtree(cls.dir, ignore_errors=True)

    # ---- reading the file ---------------------------------------------------

    def lines(self, path=None):
        """Every line of the audit file, parsed; each checked for what every
        line has, and the file for secrets."""
        with open(path or self.path, encoding="utf-8") as f:
            text = f.read()
        for s in SECRETS:
            self.assertNotIn(s, text)
        out = []
        for raw in text.splitlines():
            e = json.loads(raw)
            self.assertIsInstance(e, dict, raw)
            self.assertRegex(e["time"], TIME_RE)
            self.assertIsInstance(e["event"], str)
            self.assertEqual(set(e) - FIELDS, set(), raw)
            if "remote" in e:
                self.assertRegex(e["remote"], REMOTE_RE)
            if "conn" in e:
                self.assertIsInstance(e["conn"], int)
            out.append(e)
        return out

    def mark(self):
        return len(self.lines())

    def wait_line(self, since, what, **fields):
        """The first line after `since` lines whose fields are `fields`."""
        found = []

        def seen():
            found[:] = [e for e in self.lines()[since:]
                        if all(e.get(k) == v for k, v in fields.items())]
            return found
        wait_until(seen, TIMEOUT, what=what)
        return found[0]

    def assert_fields(self, e, **want):
        for k, v in want.items():
            self.assertEqual(e.get(k), v, "%s in %r" % (k, e))

    def admin_request(self, method, path, user="alice", password=None, body=None):
        headers = {"Authorization": basic(user, password or USERS[user])}
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.admin, path),
                                     method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def stomp_alice(self):
        """alice's stomp.py connection and its Collector."""
        return stomp_connect(self.ports["stomp"],
                             headers={"login": "alice", "passcode": USERS["alice"]})

    def connections(self):
        status, body = self.admin_request("GET", "/api/v1/connections")
        self.assertEqual(status, 200)
        return body

    # ---- the file -------------------------------------------------------------

    def test_file_in_the_data_dir_mode_0600(self):
        wait_until(lambda: os.path.exists(self.path), TIMEOUT, what="the audit file")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.broker.wait_for_log(r"audit log: %s$" % re.escape(self.path))

    # ---- logins ---------------------------------------------------------------

    def test_stomp_logins(self):
        n = self.mark()
        conn, col = self.stomp_alice()
        try:
            e = self.wait_line(n, "stomp connect", event="connect", protocol="stomp")
            self.assert_fields(e, principal="alice", mechanism="password", listener="s")
            self.assertNotIn("reason", e)
            # conn and remote are the ones the admin API shows.
            mine = [c for c in self.connections() if c["id"] == e["conn"]]
            self.assertEqual(len(mine), 1, e)
            self.assert_fields(mine[0], protocol="stomp", principal="alice", remote=e["remote"])
        finally:
            conn.disconnect()
        ok, err, _ = stomppy(self.ports["stomp"], "alice", WRONG)
        self.assertFalse(ok)
        e = self.wait_line(n, "stomp wrong password", event="connect_failed", protocol="stomp")
        self.assert_fields(e, principal="alice", mechanism="password", listener="s",
                           reason="wrong password")
        self.assertIsInstance(e["conn"], int)
        ok, err, _ = stomppy(self.ports["stomp"], "nobody", WRONG)
        self.assertFalse(ok)
        e = self.wait_line(n, "stomp unknown user", event="connect_failed", principal="nobody")
        self.assert_fields(e, protocol="stomp", reason="unknown user", mechanism="password")

    def test_mqtt_logins(self):
        n = self.mark()
        self.assertEqual(paho_connack(self.ports["mqtt"], "alice", USERS["alice"], mqtt.MQTTv5), 0)
        e = self.wait_line(n, "mqtt connect", event="connect", protocol="mqtt")
        self.assert_fields(e, principal="alice", mechanism="password", listener="m")
        # The client id paho sent (test_auth.paho_connack's).
        self.assertRegex(e["client_id"], r"^auth-\d+$")
        self.assertNotEqual(paho_connack(self.ports["mqtt"], "alice", WRONG, mqtt.MQTTv311), 0)
        e = self.wait_line(n, "mqtt refused", event="connect_failed", protocol="mqtt")
        self.assert_fields(e, principal="alice", mechanism="password", listener="m",
                           reason="wrong password")
        self.assertRegex(e["client_id"], r"^auth-\d+$")
        self.assertNotEqual(paho_connack(self.ports["mqtt"], None, None, mqtt.MQTTv5), 0)
        e = self.wait_line(n, "mqtt anonymous refused", event="connect_failed",
                           protocol="mqtt", principal="anonymous")
        self.assert_fields(e, mechanism="anonymous",
                           reason="anonymous login not allowed on this listener")

    def test_amqp_sasl_plain(self):
        n = self.mark()
        self.assertIsNone(amqp_login(self.ports["amqp"], "alice", USERS["alice"]))
        e = self.wait_line(n, "amqp connect", event="connect", protocol="amqp")
        self.assert_fields(e, principal="alice", mechanism="password", listener="a")
        self.assertIsNotNone(amqp_login(self.ports["amqp"], "alice", WRONG))
        e = self.wait_line(n, "amqp refused", event="connect_failed", protocol="amqp")
        self.assert_fields(e, principal="alice", mechanism="password", listener="a",
                           reason="wrong password")

    # ---- the ACLs ---------------------------------------------------------------

    def paho_as(self, user, client_id, clean=True):
        """A paho 3.1.1 client logged in as user, connected."""
        c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311, clean_session=clean)
        c.username_pw_set(user, USERS[user])
        connected = threading.Event()
        c.on_connect = lambda *a: connected.set()
        c.connect("127.0.0.1", self.ports["mqtt"])
        c.loop_start()
        self.addCleanup(c.loop_stop)
        self.assertTrue(connected.wait(TIMEOUT), user + "'s CONNACK")
        return c

    def test_acl_denied_subscribe_and_publish(self):
        n = self.mark()
        c = self.paho_as("bob", "bob-denied")
        subacked = threading.Event()
        granted = []

        def on_subscribe(client, userdata, mid, qos):
            granted.extend(qos)
            subacked.set()
        c.on_subscribe = on_subscribe
        c.subscribe("secret/plans", qos=1)
        self.assertTrue(subacked.wait(TIMEOUT))
        self.assertEqual(granted, [0x80])
        e = self.wait_line(n, "subscribe denied", event="acl_denied", action="subscribe")
        self.assert_fields(e, principal="bob", protocol="mqtt", listener="m",
                           client_id="bob-denied", destination="secret.plans", kind="topic",
                           mechanism="password", reason="no rule allows it")
        c.publish("secret/plans", b"x", qos=1).wait_for_publish(TIMEOUT)
        e = self.wait_line(n, "publish denied", event="acl_denied", action="publish")
        self.assert_fields(e, principal="bob", protocol="mqtt", client_id="bob-denied",
                           destination="secret.plans", kind="topic")
        c.disconnect()

    def test_client_id_not_the_users(self):
        n = self.mark()
        with self.assertRaises(AssertionError):
            stomp_connect(self.ports["stomp"], headers={"login": "alice",
                                                        "passcode": USERS["alice"],
                                                        "client-id": "bob:orders"})
        e = self.wait_line(n, "client id denied", event="acl_denied", action="client_id")
        self.assert_fields(e, principal="alice", protocol="stomp", listener="s",
                           mechanism="password", requested_client_id="bob:orders",
                           client_id="bob:orders",
                           reason="a client id must start with 'alice:'")
        login = self.wait_line(n, "its login", event="connect", conn=e["conn"])
        self.assert_fields(login, principal="alice", client_id="bob:orders")

    def test_a_flood_of_denials_is_bounded_and_counted(self):
        n = self.mark()
        c = self.paho_as("bob", "bob-flood")
        t = time.monotonic()
        for _ in range(5000):
            c.publish("secret/flood", b"x", qos=0)
        # Allowed, acknowledged: every publish before it was read.
        c.publish("open/after", b"x", qos=1).wait_for_publish(TIMEOUT)
        took = time.monotonic() - t
        c.disconnect()
        # The count of those left out is told when the connection goes.
        summary = self.wait_line(n, "the suppressed count", event="acl_denials_suppressed",
                                 client_id="bob-flood")
        mine = [e for e in self.lines()[n:] if e.get("conn") == summary["conn"]]
        denied = [e for e in mine if e["event"] == "acl_denied"]
        told = [e for e in mine if e["event"] == "acl_denials_suppressed"]
        windows = 1 + int(took // 10)
        self.assertGreaterEqual(len(denied), 1)
        self.assertLessEqual(len(denied), 5 * windows, "at most 5 lines per 10 s")
        self.assertLessEqual(len(told), windows)
        for e in denied:
            self.assert_fields(e, destination="secret.flood", action="publish", principal="bob")
        for e in told:
            self.assert_fields(e, principal="bob", protocol="mqtt", window_s=10)
        self.assertEqual(len(denied) + sum(e["count"] for e in told), 5000,
                         "every denial counted")

    # ---- destinations and the admin API -------------------------------------

    def test_queue_created_by_a_client_deleted_by_the_admin(self):
        n = self.mark()
        conn, col = self.stomp_alice()
        conn.send("/queue/audit.made", "x", headers={"receipt": "r1"})
        col.wait_for(lambda: col.receipts, TIMEOUT, "the receipt")
        conn.disconnect()
        e = self.wait_line(n, "queue created", event="destination_created",
                           destination="audit.made")
        self.assert_fields(e, kind="queue", principal="alice", protocol="stomp",
                           mechanism="password", listener="s")
        self.assertIsInstance(e["conn"], int)
        # A second publish creates nothing.
        self.assertEqual(len([x for x in self.lines()[n:]
                              if x["event"] == "destination_created"]), 1)

        status, _ = self.admin_request("DELETE", "/api/v1/queues/audit.made", password=WRONG)
        self.assertEqual(status, 401)
        e = self.wait_line(n, "admin refused", event="connect_failed", protocol="admin")
        self.assert_fields(e, principal="alice", mechanism="basic", listener="admin",
                           reason="wrong password")
        status, body = self.admin_request("DELETE", "/api/v1/queues/audit.made")
        self.assertEqual((status, body["dropped"]), (200, 1))
        e = self.wait_line(n, "queue deleted", event="destination_deleted")
        self.assert_fields(e, destination="audit.made", kind="queue", principal="alice",
                           mechanism="basic", protocol="admin", listener="admin", dropped=1)
        self.assertNotIn("conn", e)

        status, _ = self.admin_request("PUT", "/api/v1/queues/audit.admin")
        self.assertEqual(status, 201)
        self.assertEqual(self.admin_request("POST", "/api/v1/queues/audit.admin/purge")[0], 200)
        e = self.wait_line(n, "admin created", event="destination_created",
                           destination="audit.admin")
        self.assert_fields(e, principal="alice", mechanism="basic", protocol="admin")
        e = self.wait_line(n, "purged", event="queue_purged", destination="audit.admin")
        self.assert_fields(e, principal="alice", purged=0, kind="queue")
        status, _ = self.admin_request("POST", "/api/v1/queues/audit.admin/messages",
                                       body={"body": "x"})
        self.assertEqual(status, 201)
        status, body = self.admin_request("POST", "/api/v1/queues/audit.admin/move",
                                          body={"to": "audit.moved"})
        self.assertEqual((status, body["moved"]), (200, 1))
        e = self.wait_line(n, "moved", event="messages_moved", destination="audit.admin")
        self.assert_fields(e, principal="alice", mechanism="basic", to="audit.moved", moved=1)

        # bob may not administer the broker.
        self.assertEqual(self.admin_request("GET", "/api/v1/connections", "bob")[0], 403)
        e = self.wait_line(n, "admin denied", event="acl_denied", protocol="admin")
        self.assert_fields(e, principal="bob", mechanism="basic", action="admin",
                           destination=">")
        # Asked again and again: a line a second at most.
        t = time.monotonic()
        for _ in range(30):
            self.assertEqual(self.admin_request("GET", "/api/v1/connections", "bob")[0], 403)
        took = time.monotonic() - t
        denials = [x for x in self.lines()[n:]
                   if x["event"] == "acl_denied" and x["protocol"] == "admin"]
        self.assertLessEqual(len(denials), 2 + int(took), denials)
        self.assertLessEqual(sum(1 + x.get("suppressed", 0) for x in denials), 31)

    def test_admin_closes_a_connection(self):
        n = self.mark()
        conn, col = self.stomp_alice()
        login = self.wait_line(n, "stomp connect", event="connect", protocol="stomp")
        status, _ = self.admin_request("DELETE", "/api/v1/connections/%d" % login["conn"])
        self.assertEqual(status, 200)
        col.wait_disconnected()
        e = self.wait_line(n, "closed", event="connection_closed")
        self.assert_fields(e, principal="alice", mechanism="basic", protocol="admin",
                           closed_conn=login["conn"], closed_protocol="stomp",
                           closed_principal="alice", closed_remote=login["remote"])

    def test_admin_deletes_a_session(self):
        n = self.mark()
        c = self.paho_as("alice", "audit-session", clean=False)
        gone = threading.Event()
        c.on_disconnect = lambda *a: gone.set()
        c.disconnect()
        self.assertTrue(gone.wait(TIMEOUT), "paho's disconnect")
        wait_until(lambda: not self.admin_request("GET", "/api/v1/sessions/audit-session")[1]
                   .get("connected", True), what="the session detached")
        status, _ = self.admin_request("DELETE", "/api/v1/sessions/audit-session")
        self.assertEqual(status, 200)
        e = self.wait_line(n, "session deleted", event="session_deleted")
        self.assert_fields(e, principal="alice", mechanism="basic", protocol="admin",
                           session="audit-session", session_user="alice")

    # ---- reloads and rotation -------------------------------------------------

    def test_users_changed_and_reloaded(self):
        n = self.mark()
        add_user(self.users, "carol", NEW_PASSWORDS["carol"], "--cost", "10")
        r = wharfctl("passwd", "dave", "--cost", "10", "--users-file", self.users,
                     password=NEW_PASSWORDS["dave"])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = wharfctl("del", "erin", "--users-file", self.users)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.users) as f:
            kept = f.readlines()
        self.broker.proc.send_signal(signal.SIGHUP)
        e = self.wait_line(n, "the users' reload", event="user_change")
        self.assert_fields(e, file=self.users, added=["carol"], removed=["erin"],
                           changed=["dave"], users=4)
        for k in ("principal", "conn", "reason"):
            self.assertNotIn(k, e)
        e = self.wait_line(n, "the rules' reload", event="config_reload")
        self.assert_fields(e, file=self.acl, rules=2)
        # The new password works; the audit names its login.
        self.assertIsNone(amqp_login(self.ports["amqp"], "carol", NEW_PASSWORDS["carol"]))
        self.wait_line(n, "carol's login", event="connect", principal="carol")
        # A broken file: the old users stay, the reason is audited.
        with open(self.users, "a") as f:
            f.write("broken line\n")
        try:
            self.broker.proc.send_signal(signal.SIGHUP)
            e = self.wait_line(n, "the failed reload", event="user_change",
                               reason="%s:%d: expected NAME:HASH[:GROUPS]"
                               % (self.users, len(kept) + 1))
            self.assertNotIn("added", e)
        finally:
            with open(self.users, "w") as f:
                f.writelines(kept)

    def test_rotation_on_sighup(self):
        n = self.mark()
        self.assertIsNone(amqp_login(self.ports["amqp"], "alice", USERS["alice"]))
        self.wait_line(n, "a login", event="connect", protocol="amqp")
        os.rename(self.path, self.path + ".1")
        try:
            self.broker.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: os.path.exists(self.path), TIMEOUT, what="a new audit file")
            self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
            before = self.lines(self.path + ".1")
            self.assertIsNone(amqp_login(self.ports["amqp"], "bob", USERS["bob"]))
            e = self.wait_line(0, "bob's login in the new file", event="connect",
                               principal="bob")
            self.assert_fields(e, protocol="amqp", mechanism="password")
            self.assertEqual(self.lines(self.path + ".1"), before, "the old file is left alone")
        finally:
            # The rest of the tests read one file.
            with open(self.path + ".1") as f:
                old = f.read()
            with open(self.path) as f:
                new = f.read()
            with open(self.path + ".1", "w") as f:
                f.write(old + new)
            os.rename(self.path + ".1", self.path)
            reloads = len([e for e in self.lines() if e["event"] == "config_reload"])
            self.broker.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: len([e for e in self.lines() if e["event"] == "config_reload"])
                       > reloads, TIMEOUT, what="the merged file reopened")


class CertificateTest(unittest.TestCase):
    """SASL EXTERNAL with a client certificate's CN; the audit file at an
    absolute path."""

    def test_certificate_logins(self):
        certs = Certs()
        d = tempfile.mkdtemp(prefix="wharf-audit-")
        self.addCleanup(shutil.rmtree, d, True)
        self.addCleanup(shutil.rmtree, certs.dir, True)
        users = os.path.join(d, "users")
        add_user(users, "alice", USERS["alice"], "--cost", "10")
        path = os.path.join(d, "audit.jsonl")
        b = start("""
[auth]
users_file = %s
failure_delay = 100ms
[audit]
file = %s
[listener tls]
url = amqps://127.0.0.1:0
cert_identity = cn
tls_cert = %s
tls_key = %s
tls_ca = %s
tls_client_cert = required
""" % (users, path, certs.path("server.crt"), certs.path("server.key"), certs.path("ca.crt")),
            ("amqps",))
        try:
            amqp_external(certs, b.ports["amqps"], "alice").close()
            with self.assertRaises(ConnectionException):
                amqp_external(certs, b.ports["amqps"], "mallory")
        finally:
            stop(b)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            lines = [json.loads(line) for line in f]
        want = [{"event": "connect", "principal": "alice"},
                {"event": "connect_failed", "principal": "mallory",
                 "reason": "the certificate's user is not in the users file"}]
        self.assertEqual(len(lines), 2, lines)
        for e, w in zip(lines, want):
            self.assertEqual({k: e.get(k) for k in w}, w)
            self.assertEqual((e["mechanism"], e["protocol"], e["listener"]),
                             ("certificate", "amqp", "tls"))
            self.assertRegex(e["remote"], REMOTE_RE)


class AuditOffTest(unittest.TestCase):
    def test_no_file_without_the_key(self):
        b = start("[listener s]\nurl = stomp://127.0.0.1:0\n", ("stomp",))
        try:
            ok, _, _ = stomppy(b.ports["stomp"])
            self.assertTrue(ok)
            self.assertEqual([f for f in os.listdir(b.data_dir) if "audit" in f], [])
        finally:
            stop(b)


if __name__ == "__main__":
    main()
