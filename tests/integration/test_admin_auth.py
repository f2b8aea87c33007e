#!/usr/bin/env python3
"""The admin API's users ([auth] users_file, docs/admin-api.md): HTTP Basic
against the users file with urllib and curl, 401 with WWW-Authenticate
without or with wrong credentials, health probes open; the ACLs' `browse`
for reading one destination and `admin` for changing it or for the broker
as a whole (MQTT sessions included), 403 with a JSON error otherwise;
`[admin] allow_anonymous` on loopback."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.request

from admintest import admin_port, users_admin_config
from mqtttest import Paho
from test_auth import add_user, start, stop
from wharftest import main, wait_until

TIMEOUT = 20
USERS = {"root": "root-pw", "ops": "ops-pw", "viewer": "viewer-pw"}
RULES = """\
allow root     all     >
allow ops      admin   queue:ops.>
allow ops      browse  queue:ops.>
allow viewer   browse  queue:>
allow anonymous browse queue:public.>
"""


class AdminAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="wharf-admin-auth-")
        users, acl = os.path.join(cls.dir, "users"), os.path.join(cls.dir, "acl")
        for u, pw in USERS.items():
            add_user(users, u, pw, "--cost", "10")
        with open(acl, "w") as f:
            f.write(RULES)
        cls.broker = start(users_admin_config(users, acl, "http://127.0.0.1:0",
                                              "allow_anonymous = true\n[listener m]\n"
                                              "url = mqtt://127.0.0.1:0\n"),
                           ("admin", "mqtt", "stomp"))
        cls.base = "http://127.0.0.1:%d" % admin_port(cls.broker)

    @classmethod
    def tearDownClass(cls):
        stop(cls.broker)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def call(self, method, path, user=None, password=None):
        """(status, body (parsed when JSON), headers)."""
        req = urllib.request.Request(self.base + path, method=method)
        if user is not None:
            token = base64.b64encode(("%s:%s" % (user, password or USERS[user])).encode())
            req.add_header("Authorization", "Basic " + token.decode())
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                return r.status, self.parse(r.headers, r.read()), r.headers
        except urllib.error.HTTPError as e:
            return e.code, self.parse(e.headers, e.read()), e.headers

    @staticmethod
    def parse(headers, data):
        json_body = (headers.get("Content-Type") or "").startswith("application/json")
        return json.loads(data) if json_body else data.decode()

    def test_basic_authentication(self):
        status, body, headers = self.call("GET", "/api/v1/broker", "ops", "wrong")
        self.assertEqual((status, body), (401, {"error": "authentication failed"}))
        self.assertIn('Basic realm="wharf"', headers.get("WWW-Authenticate"))
        status, body, _ = self.call("GET", "/api/v1/broker", "nobody", "x")
        self.assertEqual(status, 401)
        status, _, _ = self.call("GET", "/api/v1/broker", "root")
        self.assertEqual(status, 200)
        # curl's --user, as an operator would.
        out = subprocess.run(["curl", "-s", "-w", "\\n%{http_code}", "--user", "root:root-pw",
                              self.base + "/api/v1/queues"], capture_output=True, text=True,
                             timeout=TIMEOUT)
        body, code = out.stdout.rsplit("\n", 1)
        self.assertEqual(code, "200")
        self.assertIsInstance(json.loads(body), list)
        self.broker.wait_for_log(r"auth: admin 127\.0\.0\.1:\d+: user ops refused: wrong password")
        # Health probes need no password.
        self.assertEqual(self.call("GET", "/healthz")[0], 200)

    def test_admin_and_browse_actions(self):
        self.assertEqual(self.call("PUT", "/api/v1/queues/ops.jobs", "ops")[0], 201)
        self.assertEqual(self.call("GET", "/api/v1/queues/ops.jobs", "ops")[0], 200)
        self.assertEqual(self.call("GET", "/api/v1/queues/ops.jobs/messages", "viewer")[0], 200)
        status, body, _ = self.call("POST", "/api/v1/queues/ops.jobs/purge", "viewer")
        self.assertEqual((status, body), (403, {"error": "access refused: admin on queue ops.jobs"}))
        status, body, _ = self.call("PUT", "/api/v1/queues/other.q", "ops")
        self.assertEqual((status, body), (403, {"error": "access refused: admin on queue other.q"}))
        self.assertEqual(self.call("GET", "/api/v1/queues/other.q", "ops")[0], 403)
        # The broker as a whole needs admin over everything.
        for path in ("/api/v1/queues", "/api/v1/connections", "/api/v1/alarms", "/metrics"):
            self.assertEqual(self.call("GET", path, "ops")[0], 403, path)
            self.assertEqual(self.call("GET", path, "root")[0], 200, path)
        self.assertEqual(self.call("DELETE", "/api/v1/queues/ops.jobs", "ops")[0], 200)
        self.broker.wait_for_log(r"admin: user viewer denied admin on queue ops\.jobs")
        self.broker.wait_for_log(r"admin: 127\.0\.0\.1:\d+ user ops DELETE /api/v1/queues/ops\.jobs")

    def test_sessions(self):
        """An MQTT session shows who connected it; listing and ending
        sessions is the broker as a whole: admin over everything."""
        c = Paho(self.broker.ports["mqtt"], "auth-sessions", level=4, clean=False,
                 username="viewer", password=USERS["viewer"])
        try:
            c.connect()
            status, body, _ = self.call("GET", "/api/v1/sessions/auth-sessions", "root")
            self.assertEqual((status, body["user"]), (200, "viewer"))
            for method, path in (("GET", "/api/v1/sessions"),
                                 ("GET", "/api/v1/sessions/auth-sessions"),
                                 ("DELETE", "/api/v1/sessions/auth-sessions")):
                self.assertEqual(self.call(method, path, "ops")[0], 403, path)
                self.assertEqual(self.call(method, path, "viewer")[0], 403, path)
        finally:
            c.close()
        wait_until(lambda: not self.call("GET", "/api/v1/sessions/auth-sessions",
                                         "root")[1]["connected"], what="the client gone")
        self.assertEqual(self.call("DELETE", "/api/v1/sessions/auth-sessions", "root")[0], 200)

    def test_anonymous_on_loopback(self):
        self.assertEqual(self.call("PUT", "/api/v1/queues/public.news", "root")[0], 201)
        self.assertEqual(self.call("GET", "/api/v1/queues/public.news")[0], 200)
        status, body, _ = self.call("DELETE", "/api/v1/queues/public.news")
        self.assertEqual((status, body),
                         (403, {"error": "access refused: admin on queue public.news"}))


class AdminNoAnonymousTest(unittest.TestCase):
    def test_credentials_required(self):
        d = tempfile.mkdtemp(prefix="wharf-admin-auth-")
        users = os.path.join(d, "users")
        add_user(users, "root", USERS["root"], "--cost", "10")
        b = start("[auth]\nusers_file = %s\n[admin]\nlisten = http://127.0.0.1:0\n"
                  "[listener s]\nurl = stomp://127.0.0.1:0\n" % users, ("stomp",))
        try:
            base = "http://127.0.0.1:%d" % admin_port(b)
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(base + "/api/v1/queues", timeout=TIMEOUT)
            self.assertEqual(e.exception.code, 401)
            self.assertEqual(json.loads(e.exception.read()), {"error": "authentication required"})
            # Without an acl_file every user may do everything.
            req = urllib.request.Request(base + "/api/v1/queues")
            req.add_header("Authorization", "Basic " + base64.b64encode(b"root:root-pw").decode())
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                self.assertEqual(r.status, 200)
        finally:
            stop(b)
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
