#!/usr/bin/env python3
"""The admin API over TLS ([admin] listen = https://, docs/admin-api.md):
curl and Python's ssl module check the broker's certificate and log in
with HTTP Basic; wharfctl does the same with --cacert and --user (the
password from $WHARFCTL_PASSWORD or --password-file) and refuses a
certificate its CA did not sign; the web console is served too, and a
change must come from an https:// page of this listener (Origin); plain
HTTP gets nothing from the TLS port; a SIGHUP loads a new certificate; the config refuses https without
a certificate, and a non-loopback admin address unless it is https with
users (or allow_remote)."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import unittest

from admintest import admin_port, users_admin_config
from test_auth import WHARFCTL, add_user, start, stop
from test_tls import certs
from wharftest import WHARFD, main, wait_until

TIMEOUT = 20
PASSWORD = "ops-secret"


def served_cn(port):
    """The CN of the certificate the admin port shows, verified against ca.crt."""
    ctx = ssl.create_default_context(cafile=certs().path("ca.crt"))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            return subject["commonName"]


class AdminTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="wharf-admin-tls-")
        cls.users = os.path.join(cls.dir, "users")
        add_user(cls.users, "ops", PASSWORD, "--cost", "10")
        cls.cert = os.path.join(cls.dir, "admin.crt")
        cls.key = os.path.join(cls.dir, "admin.key")
        shutil.copy(certs().path("server.crt"), cls.cert)
        shutil.copy(certs().path("server.key"), cls.key)
        acl = os.path.join(cls.dir, "acl")
        with open(acl, "w") as f:
            f.write("allow ops all >\n")
        cls.broker = start(users_admin_config(cls.users, acl, "https://127.0.0.1:0",
                                              "tls_cert = %s\ntls_key = %s\n"
                                              % (cls.cert, cls.key)), ("stomp",))
        cls.port = admin_port(cls.broker)
        cls.url = "https://127.0.0.1:%d" % cls.port

    @classmethod
    def tearDownClass(cls):
        stop(cls.broker)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def curl(self, *args):
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", *args],
                           capture_output=True, text=True, timeout=TIMEOUT)
        body, _, code = r.stdout.rpartition("\n")
        return r.returncode, code, body

    def wharfctl(self, *args, password=PASSWORD, env_password=True):
        env = dict(os.environ)
        env.pop("WHARFCTL_PASSWORD", None)
        if env_password and password is not None:
            env["WHARFCTL_PASSWORD"] = password
        return subprocess.run([WHARFCTL, "--admin", self.url, *args], capture_output=True,
                              text=True, timeout=TIMEOUT, env=env)

    def test_console_and_the_origin_rule_over_https(self):
        ca, login = ("--cacert", certs().path("ca.crt")), ("-u", "ops:" + PASSWORD)
        rc, code, body = self.curl(*ca, *login, self.url + "/console/")
        self.assertEqual((rc, code), (0, "200"))
        self.assertIn("<title>Wharf console</title>", body)
        queue = self.url + "/api/v1/queues/tls.origin"
        self.assertEqual(self.curl(*ca, *login, "-X", "PUT", queue)[1], "201")
        for origin, want in (("http://127.0.0.1:%d" % self.port, "403"),
                             ("https://evil.example", "403"), (self.url, "200")):
            rc, code, body = self.curl(*ca, *login, "-X", "POST", "-H", "Origin: " + origin,
                                       queue + "/purge")
            self.assertEqual(code, want, "%s: %s" % (origin, body))

    def test_curl_with_the_ca_and_a_login(self):
        rc, code, body = self.curl("--cacert", certs().path("ca.crt"), "-u", "ops:" + PASSWORD,
                                   self.url + "/api/v1/broker")
        self.assertEqual((rc, code), (0, "200"), body)
        self.assertIn("version", json.loads(body))
        rc, code, _ = self.curl("--cacert", certs().path("ca.crt"), "-u", "ops:wrong",
                                self.url + "/api/v1/broker")
        self.assertEqual((rc, code), (0, "401"))
        rc, _, _ = self.curl("--cacert", certs().path("otherca.crt"), "-u", "ops:" + PASSWORD,
                             self.url + "/api/v1/broker")
        self.assertNotEqual(rc, 0, "a certificate from another CA was trusted")

    def test_plain_http_gets_no_answer(self):
        rc, code, _ = self.curl("http://127.0.0.1:%d/api/v1/broker" % self.port)
        self.assertTrue(rc != 0 or code != "200", "plain HTTP served on the TLS port")

    def test_wharfctl_over_https(self):
        r = self.wharfctl("--cacert", certs().path("ca.crt"), "--user", "ops", "--json", "broker")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("version", json.loads(r.stdout))
        self.assertNotIn(PASSWORD, r.stdout + r.stderr)
        pw = os.path.join(self.dir, "pw")
        with open(pw, "w") as f:
            f.write(PASSWORD + "\n")
        r = self.wharfctl("--cacert", certs().path("ca.crt"), "--user", "ops", "--password-file",
                          pw, "queue", "create", "over-tls", env_password=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.wharfctl("--cacert", certs().path("ca.crt"), "--user", "ops", "queues")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("over-tls", r.stdout)

    def test_wharfctl_refusals(self):
        r = self.wharfctl("--cacert", certs().path("ca.crt"), "--user", "ops", "broker",
                          password="wrong")
        self.assertEqual(r.returncode, 1)
        self.assertIn("authentication failed", r.stdout + r.stderr)
        r = self.wharfctl("--cacert", certs().path("otherca.crt"), "--user", "ops", "broker")
        self.assertEqual(r.returncode, 1, "a certificate from another CA was trusted")
        r = self.wharfctl("--cacert", certs().path("ca.crt"), "broker")
        self.assertEqual(r.returncode, 1, "served without a login")
        r = self.wharfctl("--cacert", certs().path("ca.crt"), "--user", "ops", "broker",
                          password=None)
        self.assertEqual(r.returncode, 2, "--user without a password is a usage mistake")

    def test_sighup_loads_a_new_certificate(self):
        self.assertEqual(served_cn(self.port), "localhost")
        shutil.copy(certs().path("server2.crt"), self.cert)
        shutil.copy(certs().path("server2.key"), self.key)
        try:
            self.broker.proc.send_signal(1)
            wait_until(lambda: "admin: TLS certificate reloaded" in self.broker.output(), 10,
                       what="the reload's log line")
            self.assertEqual(served_cn(self.port), "reloaded.localhost")
        finally:
            shutil.copy(certs().path("server.crt"), self.cert)
            shutil.copy(certs().path("server.key"), self.key)


class AdminTlsConfigTest(unittest.TestCase):
    def check(self, text):
        d = tempfile.mkdtemp(prefix="wharf-admin-tls-conf-")
        try:
            conf = os.path.join(d, "wharf.conf")
            with open(conf, "w") as f:
                f.write(text)
            return subprocess.run([WHARFD, "--check-config", "-c", conf], capture_output=True,
                                  text=True, timeout=TIMEOUT)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_https_needs_a_certificate(self):
        r = self.check("[admin]\nlisten = https://127.0.0.1:8443\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("needs tls_cert and tls_key", r.stderr + r.stdout)

    def test_other_hosts_need_https_and_users(self):
        r = self.check("[admin]\nlisten = http://192.0.2.1:8161\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("https:// with [auth] users_file", r.stderr + r.stdout)
        r = self.check("[admin]\nlisten = https://192.0.2.1:8443\ntls_cert = %s\ntls_key = %s\n"
                       % (certs().path("server.crt"), certs().path("server.key")))
        self.assertNotEqual(r.returncode, 0, "https without users accepted for other hosts")
        users = tempfile.NamedTemporaryFile(delete=False)
        users.close()
        try:
            r = self.check("[auth]\nusers_file = %s\n[admin]\nlisten = https://192.0.2.1:8443\n"
                           "tls_cert = %s\ntls_key = %s\n"
                           % (users.name, certs().path("server.crt"), certs().path("server.key")))
            self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        finally:
            os.unlink(users.name)


if __name__ == "__main__":
    main()
