"""The admin HTTP API from the outside: Python's own HTTP client (urllib,
http.client) against wharfd's [admin] listener, shared by test_admin.py
and test_metrics.py."""
import http.client
import json
import os
import subprocess
import urllib.error
import urllib.request

ADMIN_CONFIG = "[admin]\nlisten = http://127.0.0.1:0\n"

WHARFCTL = os.environ.get("WHARFCTL") or os.path.join(
    os.path.dirname(os.environ.get("WHARFD", "src/wharfd")), "..", "tools", "wharfctl",
    "wharfctl")


def users_admin_config(users, acl, listen, admin_extra=""):
    """A broker with users and ACLs, its admin API at `listen` ([admin]
    keys in admin_extra) and one STOMP listener."""
    return ("[auth]\nusers_file = %s\nacl_file = %s\nfailure_delay = 100ms\n"
            "[admin]\nlisten = %s\n%s[listener s]\nurl = stomp://127.0.0.1:0\n"
            % (users, acl, listen, admin_extra))


def admin_port(broker):
    """The admin listener's port, from its `listening admin HOST:PORT` line."""
    line = broker.wait_for_log(r"listening admin \S+:\d+$")
    return int(line.rsplit(":", 1)[1])


class WithAdmin:
    """Mixed in before a BrokerTestCase whose config has an [admin]
    listener: cls.api talks to it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = Admin(admin_port(cls.broker))


class Admin:
    """Requests to one admin listener; every answer is (status, body), the
    body parsed as JSON when the server says it is JSON."""

    def __init__(self, port, host="127.0.0.1"):
        self.base = "http://%s:%d" % (host, port)

    def request(self, method, path, body=None, raw=None, timeout=10):
        data = raw
        headers = {}
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, self._parse(r.headers, r.read())
        except urllib.error.HTTPError as e:
            return e.code, self._parse(e.headers, e.read())

    @staticmethod
    def _parse(headers, data):
        if (headers.get("Content-Type") or "").startswith("application/json"):
            return json.loads(data)
        return data.decode(errors="replace")

    def get(self, path):
        return self.request("GET", path)

    def ok(self, method, path, body=None, want=200):
        """The request, asserted to answer `want`; returns the body."""
        status, got = self.request(method, path, body)
        if status != want:
            raise AssertionError("%s %s: %d %r (wanted %d)" % (method, path, status, got, want))
        return got

    def queue(self, name):
        return self.ok("GET", "/api/v1/queues/" + urllib.request.quote(name, safe=""))

    def post_oversized(self, path, size):
        """POSTs `size` bytes; returns the status (the server may close
        before reading them all)."""
        host, port = self.base[len("http://"):].rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            c.putrequest("POST", path)
            c.putheader("Content-Type", "application/json")
            c.putheader("Content-Length", str(size))
            c.endheaders()
            try:
                chunk = b" " * 65536
                left = size
                while left > 0:
                    c.send(chunk[:min(left, len(chunk))])
                    left -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return c.getresponse().status
        finally:
            c.close()


class AdminClients(WithAdmin):
    """WithAdmin, and self.ctl() (the wharfctl binary) on the same admin
    port."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin_url = cls.api.base

    def ctl(self, *args, want=0):
        """Runs wharfctl on the admin API, asserting its exit status."""
        r = subprocess.run([WHARFCTL, "--admin", self.admin_url] + list(args),
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, want, "wharfctl %s: %s%s" % (args, r.stdout, r.stderr))
        return r
