#!/usr/bin/env python3
"""The admin HTTP API ([admin] listen): every endpoint through Python's own
HTTP client, its answers checked against what real stomp.py clients did,
bad requests, and the loopback-only rule."""
import http.client
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.parse

from proton.utils import BlockingConnection, ConnectionClosed

from admintest import ADMIN_CONFIG, Admin, WithAdmin, admin_port
from mqtttest import Paho
from stomptest import StompTestCase, stomp_connect, sync
from test_ha_redirect import standby_config
from wharftest import WHARFD, BrokerTestCase, main, wait_until


def qname(dest):
    """The queue's name in the API for a STOMP destination /queue/NAME."""
    return dest.split("/", 2)[2]


def qpath(name, tail=""):
    return "/api/v1/queues/" + urllib.parse.quote(name, safe="") + tail


class AdminApi(WithAdmin, StompTestCase):

    config = ADMIN_CONFIG

    # ---- health, broker, listeners --------------------------------------

    def test_health(self):
        self.assertEqual(self.api.ok("GET", "/healthz"), {"status": "ok"})
        self.assertEqual(self.api.ok("GET", "/readyz"), {"status": "ready"})

    def test_broker(self):
        conn, lst = self.connect()
        b = self.api.ok("GET", "/api/v1/broker")
        self.assertEqual(b["state"], "active")
        self.assertTrue(b["ready"])
        self.assertRegex(b["version"], r"^\d+\.\d+\.\d+")
        self.assertGreaterEqual(b["connections"], 1)
        self.assertGreaterEqual(b["uptime_seconds"], 0)
        self.assertIn("purged", b["dropped"])

    def test_listeners(self):
        ls = self.api.ok("GET", "/api/v1/listeners")
        urls = [l["url"] for l in ls]
        self.assertIn("stomp://127.0.0.1:%d" % self.port, urls)

    # ---- queues: what clients did, seen through the API ----------------

    def test_depth_consumers_and_dequeued(self):
        dest = self.name()
        q = qname(dest)
        prod, plst = self.connect()
        self.send_all(prod, plst, dest, ["m%d" % i for i in range(5)])
        got = self.api.queue(q)
        self.assertEqual((got["depth"], got["enqueued"], got["consumers"]), (5, 5, 0))
        self.assertEqual(got["bytes"], 10)
        self.assertIsNotNone(got["oldest_message_age_seconds"])
        listed = [x for x in self.api.ok("GET", "/api/v1/queues") if x["name"] == q]
        self.assertEqual(len(listed), 1)
        self.assertEqual(listed[0]["depth"], 5)
        # A consumer that does not ack: the messages are out to it.
        conn, lst = self.connect()
        self.subscribe(conn, lst, dest, ack="client-individual")
        lst.wait_messages(5)
        got = self.api.queue(q)
        self.assertEqual((got["depth"], got["unacked"], got["consumers"]), (0, 5, 1))
        for m in lst.messages:
            conn.ack(m.headers["ack"])
        sync(conn, lst)
        got = self.api.queue(q)
        self.assertEqual((got["unacked"], got["dequeued"], got["delivered"]), (0, 5, 5))

    def test_purge(self):
        dest = self.name()
        q = qname(dest)
        prod, plst = self.connect()
        self.send_all(prod, plst, dest, ["p%d" % i for i in range(5)])
        self.assertEqual(self.api.ok("POST", qpath(q, "/purge")), {"name": q, "purged": 5})
        got = self.api.queue(q)
        self.assertEqual(got["depth"], 0)
        self.assertEqual(got["dropped_by_cause"]["purged"], 5)
        # A consumer gets nothing but what comes after the purge.
        conn, lst = self.connect()
        self.subscribe(conn, lst, dest)
        self.send_all(prod, plst, dest, ["after"])
        lst.wait_messages(1)
        sync(conn, lst)
        self.assertEqual(lst.bodies(), ["after"])
        status, err = self.api.request("POST", qpath("no-such-queue-x", "/purge"))
        self.assertEqual(status, 404)

    def test_create_and_delete(self):
        q = "admin.made.%d" % os.getpid()
        self.assertEqual(self.api.get(qpath(q))[0], 404)
        made = self.api.ok("PUT", qpath(q), want=201)
        self.assertEqual((made["name"], made["depth"]), (q, 0))
        self.api.ok("PUT", qpath(q), want=200)  # there already
        # A client sends to it and a consumer holds it: no delete.
        prod, plst = self.connect()
        self.send_all(prod, plst, "/queue/" + q, ["x"])
        conn, lst = self.connect()
        sub = self.subscribe(conn, lst, "/queue/" + q, ack="client-individual")
        lst.wait_messages(1)
        status, err = self.api.request("DELETE", qpath(q))
        self.assertEqual(status, 409, err)
        self.assertIn("consumers", err["error"])
        conn.unsubscribe(id=sub)
        sync(conn, lst)
        deleted = self.api.ok("DELETE", qpath(q))
        self.assertEqual((deleted["deleted"], deleted["dropped"]), (True, 1))
        self.assertEqual(self.api.get(qpath(q))[0], 404)
        self.assertEqual(self.api.request("DELETE", qpath(q))[0], 404)

    def test_percent_decoded_names(self):
        q = "admin space/slash %d" % os.getpid()
        self.api.ok("PUT", qpath(q), want=201)
        self.assertIn(q, [x["name"] for x in self.api.ok("GET", "/api/v1/queues")])
        self.api.ok("DELETE", qpath(q))

    # ---- send and browse -------------------------------------------------

    def test_send_to_queue(self):
        dest = self.name()
        conn, lst = self.connect()
        self.subscribe(conn, lst, dest)
        body = "h\u00e9llo from the API \u2603"
        sent = self.api.ok("POST", qpath(qname(dest), "/messages"),
                           {"body": body, "headers": {"x-trace": "abc 123",
                                                      "content-type": "text/plain"},
                            "persistent": True}, want=201)
        self.assertEqual((sent["kind"], sent["persistent"]), ("queue", True))
        m = lst.wait_messages(1)[0]
        self.assertEqual(m.body, body)
        self.assertEqual(m.headers["x-trace"], "abc 123")
        self.assertEqual(m.headers["content-type"], "text/plain")
        self.assertEqual(m.headers["persistent"], "true")

    def test_send_to_topic(self):
        dest = self.name("topic")
        conn, lst = self.connect()
        self.subscribe(conn, lst, dest)
        topics = {t["name"]: t for t in self.api.ok("GET", "/api/v1/topics")}
        self.assertEqual(topics[qname(dest)]["subscribers"], 1)
        self.api.ok("POST", "/api/v1/topics/%s/messages" % qname(dest),
                    {"body": "to all", "headers": {"k": "v"}}, want=201)
        m = lst.wait_messages(1)[0]
        self.assertEqual((m.body, m.headers["k"]), ("to all", "v"))

    def test_browse(self):
        dest = self.name()
        q = qname(dest)
        prod, plst = self.connect()
        self.send_all(prod, plst, dest, ["b1", "b2", "b3"], headers={"color": "red"})
        seen = self.api.ok("GET", qpath(q, "/messages?limit=2"))
        self.assertEqual([m["body"] for m in seen], ["b1", "b2"])
        self.assertEqual(seen[0]["headers"]["color"], "red")
        self.assertEqual(len(self.api.ok("GET", qpath(q, "/messages"))), 3)
        self.assertEqual(self.api.queue(q)["depth"], 3)  # nothing taken
        conn, lst = self.connect()
        self.subscribe(conn, lst, dest)
        lst.wait_messages(3)
        self.assertEqual(lst.bodies(), ["b1", "b2", "b3"])
        self.assertEqual(self.api.ok("GET", qpath(q, "/messages")), [])

    # ---- connections -----------------------------------------------------

    def test_connections_and_close(self):
        conn, lst = self.connect()
        dest = self.name()
        self.send_all(conn, lst, dest, ["c1", "c2"])
        local = "%s:%d" % conn.transport.socket.getsockname()[:2]
        mine = [c for c in self.api.ok("GET", "/api/v1/connections") if c["remote"] == local]
        self.assertEqual(len(mine), 1, mine)
        c = mine[0]
        self.assertEqual((c["protocol"], c["messages_in"]), ("stomp", 2))
        self.assertGreater(c["bytes_in"], 0)
        self.assertGreater(c["bytes_out"], 0)
        self.assertEqual(self.api.ok("GET", "/api/v1/connections/%d" % c["id"])["id"], c["id"])
        self.assertEqual(self.api.ok("DELETE", "/api/v1/connections/%d" % c["id"])["closed"],
                         True)
        lst.wait_disconnected()
        self.broker.wait_for_log(r" info conn=%d %s: admin: closing the connection \(stomp\)$"
                                 % (c["id"], re.escape(local)))
        wait_until(lambda: self.api.get("/api/v1/connections/%d" % c["id"])[0] == 404,
                   what="the connection gone from the API")
        self.assertEqual(self.api.request("DELETE", "/api/v1/connections/%d" % c["id"])[0], 404)

    # ---- bad requests ----------------------------------------------------

    def test_bad_requests(self):
        api = self.api
        cases = [
            ("GET", "/nope", None, 404),
            ("GET", "/api/v2/broker", None, 404),
            ("GET", "/api/v1/widgets", None, 404),
            ("GET", "/api/v1/queues/a/b/c", None, 404),
            ("POST", "/api/v1/broker", {}, 405),
            ("PATCH", "/api/v1/queues/x", {}, 405),
            ("DELETE", "/metrics", None, 405),
            ("GET", "/api/v1/queues/x/purge", None, 405),
            ("GET", "/api/v1/connections/abc", None, 400),
            ("GET", "/api/v1/connections/99999999", None, 404),
            ("PUT", "/api/v1/queues/a.*", None, 400),            # a wildcard
            ("PUT", "/api/v1/queues/a%01b", None, 400),          # a control character
            ("PUT", "/api/v1/queues/a%00b", None, 400),          # a NUL
            ("PUT", "/api/v1/queues/%FF", None, 400),            # not UTF-8
            ("PUT", "/api/v1/queues/%24SYS.x", None, 403),       # reserved: $SYS
            ("PUT", "/api/v1/queues/wharf.durable.x", None, 403),
            ("POST", "/api/v1/queues/%24x/messages", {"body": "x"}, 403),
            ("POST", "/api/v1/topics/wharf.durable.x/messages", {"body": "x"}, 403),
            ("POST", "/api/v1/queues/ok.q/messages", {"body": 5}, 400),
            ("POST", "/api/v1/queues/ok.q/messages", {"body": "x", "extra": 1}, 400),
            ("POST", "/api/v1/queues/ok.q/messages", {"headers": {"a": 1}}, 400),
            ("POST", "/api/v1/queues/ok.q/messages", {"headers": {"priority": "x"}}, 400),
            ("POST", "/api/v1/queues/ok.q/messages", [1, 2], 400),
            ("GET", "/api/v1/queues/nope.q/messages", None, 404),
        ]
        for method, path, body, want in cases:
            status, got = api.request(method, path, body)
            self.assertEqual(status, want, "%s %s -> %d %r" % (method, path, status, got))
            self.assertIn("error", got, "%s %s" % (method, path))
        status, got = api.request("POST", "/api/v1/queues/ok.q/messages", raw=b'{"body": ')
        self.assertEqual(status, 400)
        self.assertIn("not a JSON object", got["error"])
        status, got = api.request("POST", "/api/v1/queues/ok.q/messages", raw=b'')
        self.assertEqual(status, 400)
        api.ok("PUT", "/api/v1/queues/ok.q", want=201)
        status, got = api.request("GET", "/api/v1/queues/ok.q/messages?limit=0")
        self.assertEqual(status, 400)
        self.assertEqual(api.post_oversized("/api/v1/queues/ok.q/messages", 2 * 1024 * 1024), 413)
        self.assertEqual(api.queue("ok.q")["depth"], 0)
        self.assertTrue(self.broker.alive())


def local_address():
    """An address of this machine outside 127.0.0.0/8, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # no packet is sent
        addr = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if addr.startswith("127.") else addr


class AdminCloseEachProtocol(WithAdmin, BrokerTestCase):
    """DELETE /api/v1/connections/ID tells each client why in its protocol:
    MQTT 5 DISCONNECT 0x98 (administrative action, and the will goes out),
    a STOMP ERROR, an AMQP close amqp:connection:forced that proton sees
    at once (without it proton's close() waited out its timeout)."""

    protocols = ("stomp", "mqtt", "amqp")
    config = ADMIN_CONFIG

    def close_the(self, protocol, skip=()):
        """Closes the one connection of `protocol` not in skip (ids);
        returns its id."""
        ids = [c["id"] for c in self.api.ok("GET", "/api/v1/connections")
               if c["protocol"] == protocol and c["id"] not in skip]
        self.assertEqual(len(ids), 1, ids)
        self.assertTrue(self.api.ok("DELETE", "/api/v1/connections/%d" % ids[0])["closed"])
        return ids[0]

    def ids(self, protocol):
        return [c["id"] for c in self.api.ok("GET", "/api/v1/connections")
                if c["protocol"] == protocol]

    def test_mqtt_v5_hears_administrative_action_and_its_will_goes_out(self):
        port = self.broker.ports["mqtt"]
        watcher = Paho(port, "admin-close-watcher")
        watcher.connect()
        watcher.subscribe("admin-close/will", 1)
        others = self.ids("mqtt")
        p = Paho(port, "admin-closed", will={"topic": "admin-close/will", "payload": b"gone"})
        p.connect()
        try:
            self.close_the("mqtt", skip=others)
            p.wait_for(lambda: p.disconnects, what="the DISCONNECT")
            self.assertEqual(p.disconnects, [0x98])
            self.assertEqual([m.payload for m in watcher.wait_messages(1)], [b"gone"])
        finally:
            p.close()
            watcher.close()

    def test_stomp_gets_an_error(self):
        conn, lst = stomp_connect(self.broker.ports["stomp"])
        self.close_the("stomp")
        err = lst.wait_error()
        self.assertEqual(err.headers.get("message"), "closed by an administrator")
        lst.wait_disconnected()

    def test_amqp_gets_a_close_it_can_answer(self):
        bc = BlockingConnection("amqp://127.0.0.1:%d" % self.broker.ports["amqp"], timeout=20)
        rcv = bc.create_receiver("admin-close-q")
        self.close_the("amqp")
        t0 = time.monotonic()
        with self.assertRaises(ConnectionClosed) as ctx:
            rcv.receive(timeout=10)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(ctx.exception.connection.remote_condition.name,
                         "amqp:connection:forced")
        t0 = time.monotonic()
        bc.close()
        self.assertLess(time.monotonic() - t0, 5, "close() waited for an answer")


class AdminLoopbackOnly(StompTestCase):
    """Bound to every address, the admin listener still serves loopback
    clients only (127.0.0.0/8 and ::1) while allow_remote is false."""

    config = "[admin]\nlisten = http://0.0.0.0:0\n"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin_port = admin_port(cls.broker)

    def test_loopback_served(self):
        for host in ("127.0.0.1", "127.0.0.2"):
            self.assertEqual(Admin(self.admin_port, host).get("/healthz")[0], 200, host)

    def test_remote_refused(self):
        addr = local_address()
        if not addr:
            self.skipTest("this machine has no address outside 127.0.0.0/8")
        status, got = Admin(self.admin_port, addr).get("/api/v1/broker")
        self.assertEqual(status, 403, got)
        self.assertIn("loopback", got["error"])
        self.assertEqual(Admin(self.admin_port, addr).get("/metrics")[0], 403)

    def test_dns_rebinding_host_refused(self):
        """Without users, a request naming another host than localhost or
        an IP address (a page an attacker's DNS pointed at 127.0.0.1) is
        refused; localhost, 127.0.0.1 and ::1 are served."""
        def get(host):
            c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
            try:
                c.request("GET", "/api/v1/broker", headers={"Host": host})
                r = c.getresponse()
                return r.status, r.read().decode()
            finally:
                c.close()

        for host in ("localhost:%d" % self.admin_port, "127.0.0.1:%d" % self.admin_port,
                     "[::1]:%d" % self.admin_port, "LOCALHOST"):
            self.assertEqual(get(host)[0], 200, host)
        for host in ("evil.example:%d" % self.admin_port, "evil.example", "localhost.evil.example",
                     "127.0.0.1.nip.io"):
            status, body = get(host)
            self.assertEqual(status, 403, host)
            self.assertIn("localhost or an IP address", body)

    def test_remote_address_needs_allow_remote(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "w.conf")
            with open(path, "w") as f:
                f.write("[admin]\nlisten = http://192.0.2.1:8161\n")
            r = subprocess.run([WHARFD, "-c", path, "--check-config"], capture_output=True,
                               text=True, timeout=20)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("not a loopback address", r.stderr)
            with open(path, "a") as f:
                f.write("allow_remote = true\n")
            r = subprocess.run([WHARFD, "-c", path, "--check-config"], capture_output=True,
                               text=True, timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)


class AdminOnStandby(BrokerTestCase):
    """A standby answers health and broker questions and refuses the rest
    with 503: its router is not the pair's."""

    config = standby_config() + ADMIN_CONFIG

    def test_standby(self):
        api = Admin(admin_port(self.broker))
        self.assertEqual(api.get("/healthz")[0], 200)
        status, got = api.get("/readyz")
        self.assertEqual(status, 503)
        self.assertEqual(got["status"], "not ready")
        self.assertIn("standby", got["reason"])
        b = api.ok("GET", "/api/v1/broker")
        self.assertEqual((b["state"], b["role"], b["ready"]), ("standby", "standby", False))
        for method, path in (("GET", "/api/v1/queues"), ("PUT", "/api/v1/queues/x"),
                             ("GET", "/api/v1/connections"), ("GET", "/api/v1/topics")):
            status, got = api.request(method, path)
            self.assertEqual(status, 503, path)
            self.assertIn("standby", got["error"])
        text = api.get("/metrics")[1]
        self.assertIn("\nwharf_active 0\n", text)
        self.assertIn("\nwharf_ready 0\n", text)


class AdminOff(StompTestCase):
    """Without [admin] there is no admin listener, and the client port
    speaks no HTTP."""

    def test_no_admin_listener(self):
        self.assertNotIn("listening admin", self.broker.output())
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(b"GET /api/v1/broker HTTP/1.0\r\n\r\n")
            data = s.recv(4096)
        except OSError:
            data = b""
        finally:
            s.close()
        self.assertNotIn(b"HTTP/1.", data[:16])


if __name__ == "__main__":
    main()
