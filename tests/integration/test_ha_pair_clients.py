#!/usr/bin/env python3
"""Real clients against a real pair (docs/ha.md, What clients see on the
standby): a primary and a standby linked and in sync, clients connecting to
the STANDBY's ports.

- paho MQTT 5 gets CONNACK 0x9C with the primary's MQTT HOST:PORT as Server
  Reference; following it, a publish/subscribe round trip works. Over
  WebSocket the reference is the primary's ws address.
- paho MQTT 3.1.1 gets return code 3 (3.1.1 has no redirect).
- python3-qpid-proton's Container sees the close's condition
  amqp:connection:redirect with {hostname, network-host, port}; it does not
  follow it (MessagingHandler reports it in on_connection_error and closes
  the connection, reconnect or not): the test's handler follows it, and
  the message sent there arrives on the primary.
- stomp.py gets an ERROR naming the active node, with active-host and
  active-port; connecting there works.
- After kill -9 of the primary and `wharfctl promote` of the standby, the
  same client code on the standby's ports is served and finds what the
  primary had confirmed (STOMP receipts, MQTT PUBACKs into a bound queue),
  [ha] on_promote has run with WHARF_NODE_ID and WHARF_ROLE=active, and
  /readyz turns from 503 to 200.

rhea (3.0.5, tests/integration/node) is not tested here: it does not follow
amqp:connection:redirect (the condition is fatal to it unless listed in
non_fatal_errors, and even then it reconnects to its own
connection_details, never to the close's info)."""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import paho.mqtt.client as mqtt
import stomp
from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container

from amqptest import Client
from mqtttest import TIMEOUT, Paho
from pairtest import SECRET, Pair
from stomptest import Collector, stomp_close
from test_ha_link import WHARFCTL
from test_store import drain
from wharftest import LISTEN_RE, main, wait_until

PROTOCOLS = ("stomp", "mqtt", "amqp", "ws")
ADMIN = ("[admin]\nlisten = http://127.0.0.1:0\n[topic sensors.>]\nbind = readings\n"
         "[alarm readings]\nmetric = wharf_queue_messages{queue=\"readings\"}\nthreshold = 10\n"
         "period = 1s\n")


def admin_port(broker):
    line = broker.wait_for_log(r"listening admin ")
    return int(LISTEN_RE.search(line).group(3))


def http_status(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=TIMEOUT) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


# ---- the client code, the same before and after promotion -------------------------

def mqtt_follow(port, client_id):
    """An MQTT 5 client that follows one 0x9C Server Reference. Returns the
    connected Paho and what the first CONNACK said: (rc, props dict)."""
    p = Paho(port, client_id=client_id, level=5)
    _, rc, props = p.connect(expect_rc=None)
    if rc != 0x9C:
        return p, (rc, props)
    close_paho(p)
    host, _, ref_port = props["ServerReference"].rpartition(":")
    assert host == "127.0.0.1", props
    q = Paho(int(ref_port), client_id=client_id, level=5)
    q.connect()
    return q, (rc, props)


def _ws_client(p, client_id):
    """paho over WebSocket, reporting to the Paho p's callbacks."""
    c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5, transport="websockets",
                    reconnect_on_failure=False)
    c.on_connect = p._on_connect
    c.on_disconnect = p._on_disconnect
    return c


def close_paho(p):
    try:
        p.c.disconnect()
    except Exception:
        pass
    p.c.loop_stop()


def stomp_follow(port):
    """stomp.py: on an ERROR naming the active node, connects there.
    Returns (conn, listener, the ERROR frame or None)."""
    conn = stomp.Connection12([("127.0.0.1", port)], heartbeats=(0, 0))
    lst = Collector()
    conn.set_listener("c", lst)
    conn.connect(wait=False)
    lst.wait_for(lambda: lst.connected is not None or lst.errors, TIMEOUT, "CONNECTED or ERROR")
    if lst.connected is not None:
        return conn, lst, None
    err = lst.errors[0]
    lst.wait_disconnected()
    conn2 = stomp.Connection12([(err.headers["active-host"], int(err.headers["active-port"]))],
                               heartbeats=(0, 0))
    lst2 = Collector()
    conn2.set_listener("c", lst2)
    conn2.connect(wait=False)
    lst2.wait_for(lambda: lst2.connected is not None or lst2.errors, TIMEOUT, "CONNECTED")
    assert lst2.connected is not None, [dict(e.headers) for e in lst2.errors]
    return conn2, lst2, err


class AmqpSend(MessagingHandler):
    """A proton Container client (reconnect on, its default) that sends one
    message to `address`. On a close with amqp:connection:redirect it
    records the condition and, as an application must, connects to the
    info's network-host and port itself."""

    def __init__(self, port, address, body):
        super().__init__()
        self.urls = ["amqp://127.0.0.1:%d" % port]
        self.address, self.body = address, body
        self.redirects = []    # (condition name, info dict) of each redirect
        self.errors = []
        self.accepted = None   # the URL whose node accepted the message
        self.sent = False

    def on_start(self, event):
        self.container = event.container
        self._open(self.urls[0])

    def _open(self, url):
        self.url = url
        conn = self.container.connect(url)
        self.container.create_sender(conn, self.address)

    def on_sendable(self, event):
        if not self.sent:
            self.sent = True
            event.sender.send(Message(body=self.body, durable=True))

    def on_accepted(self, event):
        self.accepted = self.url
        event.connection.close()

    def on_connection_error(self, event):
        cond = event.connection.remote_condition
        if cond.name == "amqp:connection:redirect":
            info = {str(k): v for k, v in (cond.info or {}).items()}
            self.redirects.append((cond.name, info))
            event.connection.close()
            if len(self.redirects) == 1:
                self._open("amqp://%s:%d" % (info["network-host"], int(info["port"])))
            return
        self.errors.append((cond.name, cond.description))
        event.connection.close()

    def on_transport_error(self, event):
        cond = event.transport.condition
        self.errors.append((cond.name if cond else None, cond.description if cond else None))


def amqp_follow(port, address, body):
    h = AmqpSend(port, address, body)
    c = Container(h)
    t = threading.Thread(target=c.run, daemon=True)
    t.start()
    t.join(TIMEOUT)
    if t.is_alive():
        c.stop()
        raise AssertionError("proton client did not finish: redirects %r errors %r"
                             % (h.redirects, h.errors))
    return h


def start_pair(**ha):
    pair = Pair(protocols=PROTOCOLS, globals=ADMIN, **ha)
    pair.wait_in_sync()
    return pair


def stop_pair(pair):
    """Both nodes that still run stop cleanly (no sanitizer report),
    the standby first."""
    try:
        for n in (pair.standby, pair.primary):
            if n.alive():
                rc = n.stop()
                if rc != 0:
                    raise AssertionError("wharfd exited with %d:\n%s" % (rc, n.output()))
    finally:
        pair.cleanup()


class RedirectTest(unittest.TestCase):
    """One pair for every test: nothing here changes the broker's state
    except the messages the round trips consume themselves."""

    @classmethod
    def setUpClass(cls):
        cls.pair = start_pair()
        cls.a, cls.b = cls.pair.primary, cls.pair.standby

    @classmethod
    def tearDownClass(cls):
        stop_pair(cls.pair)

    def test_mqtt5_use_another_server_then_round_trip(self):
        p, (rc, props) = mqtt_follow(self.b.ports["mqtt"], "r-mqtt5")
        try:
            self.assertEqual(rc, 0x9C)
            self.assertEqual(props["ServerReference"], "127.0.0.1:%d" % self.a.ports["mqtt"])
            self.assertEqual(p.port, self.a.ports["mqtt"])
            p.subscribe("redirect/t", qos=1)
            p.publish("redirect/t", b"hello via the reference", qos=1)
            self.assertEqual(p.wait_payload(b"hello via the reference")[0].qos, 1)
        finally:
            close_paho(p)

    def test_mqtt311_server_unavailable(self):
        p = Paho(self.b.ports["mqtt"], client_id="r-mqtt311", level=4)
        try:
            _, rc, _ = p.connect(expect_rc=None)
            self.assertEqual(rc, 3)
            p.wait_disconnected()
        finally:
            close_paho(p)

    def test_mqtt5_over_websocket_gets_the_ws_address(self):
        p = Paho(self.b.ports["ws"], client_id="r-ws", level=5)
        p.c = _ws_client(p, "r-ws")
        try:
            _, rc, props = p.connect(expect_rc=None)
            self.assertEqual(rc, 0x9C)
            self.assertEqual(props["ServerReference"], "127.0.0.1:%d" % self.a.ports["ws"])
        finally:
            close_paho(p)

    def test_stomp_error_names_the_active_then_connect_there(self):
        conn, lst, err = stomp_follow(self.b.ports["stomp"])
        try:
            at = "127.0.0.1:%d" % self.a.ports["stomp"]
            self.assertEqual(err.headers["message"], "standby: the active node is " + at)
            self.assertEqual(err.headers["active-host"], "127.0.0.1")
            self.assertEqual(err.headers["active-port"], str(self.a.ports["stomp"]))
            conn.subscribe("/queue/redirect.stomp", id="s")
            conn.send("/queue/redirect.stomp", "via active-host")
            lst.wait_body("via active-host")
        finally:
            stomp_close(conn, lst)

    def test_proton_reports_the_redirect_and_does_not_follow_it(self):
        h = amqp_follow(self.b.ports["amqp"], "redirect.amqp", "via network-host")
        self.assertEqual(h.errors, [])
        self.assertEqual(len(h.redirects), 1, h.redirects)
        name, info = h.redirects[0]
        self.assertEqual(name, "amqp:connection:redirect")
        self.assertEqual(info, {"hostname": "127.0.0.1", "network-host": "127.0.0.1",
                                "port": self.a.ports["amqp"]})
        # it was this handler, not proton, that went to the primary
        self.assertEqual(h.accepted, "amqp://127.0.0.1:%d" % self.a.ports["amqp"])
        c = Client(self.a.ports["amqp"])
        try:
            r = c.rcv("redirect.amqp", credit=1)
            self.assertEqual(c.wait_received(r, 1)[0].body, "via network-host")
        finally:
            c.close()

    def test_proton_alone_stops_at_the_redirect(self):
        """Left to itself, a proton Container connection with reconnect on
        (its default) reports the redirect once and ends: MessagingHandler
        closes the connection after on_connection_error, so proton neither
        follows the info nor tries its own URLs again."""
        got = []
        url = "amqp://127.0.0.1:%d" % self.b.ports["amqp"]

        class Alone(MessagingHandler):
            def on_start(self, event):
                self.conn = event.container.connect(urls=[url])
                event.container.create_sender(self.conn, "redirect.alone")
                self.timer = event.container.schedule(1.5, self)

            def on_connection_error(self, event):
                got.append(event.connection.remote_condition.name)

            def on_sendable(self, event):
                got.append("sendable")

            def on_timer_task(self, event):
                self.conn.close()

        c = Container(Alone())
        t = threading.Thread(target=c.run, daemon=True)
        t.start()
        t.join(TIMEOUT)
        self.assertFalse(t.is_alive())
        self.assertEqual(got, ["amqp:connection:redirect"])

    def test_readyz(self):
        self.assertEqual(http_status(admin_port(self.b), "/readyz"), 503)
        self.assertEqual(http_status(admin_port(self.a), "/readyz"), 200)

    def test_pair_state_in_the_admin_api_and_metrics(self):
        def get(node, path):
            url = "http://127.0.0.1:%d%s" % (admin_port(node), path)
            with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
                return r.read().decode()
        a = json.loads(get(self.a, "/api/v1/pair"))
        b = json.loads(get(self.b, "/api/v1/pair"))
        self.assertEqual((a["node"], a["state"], a["in_sync"], a["connected"]),
                         ("a", "active", True, True))
        self.assertEqual((b["node"], b["state"], b["connected"]), ("b", "standby", True))
        self.assertEqual(a["epoch"], 1)
        self.assertEqual(b["epoch"], 1)
        metrics = get(self.a, "/metrics")
        self.assertIn("\nwharf_ha_in_sync 1\n", metrics)
        self.assertIn("\nwharf_ha_epoch 1\n", metrics)
        self.assertIn("\nwharf_active 0\n", get(self.b, "/metrics"))
        # Alarms run on the active node only (docs/operations.md, Alarms).
        self.assertEqual([x["name"] for x in json.loads(get(self.a, "/api/v1/alarms"))],
                         ["readings"])
        self.assertEqual(http_status(admin_port(self.b), "/api/v1/alarms"), 503)
        self.assertNotIn("wharf_alarm_state", get(self.b, "/metrics"))


class PromoteTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wharf-hook-")
        self.env_file = os.path.join(self.tmp, "promoted.env")
        hook = os.path.join(self.tmp, "on_promote.sh")
        with open(hook, "w") as f:
            f.write("#!/bin/sh\nenv > %s.part && mv %s.part %s\n"
                    % (self.env_file, self.env_file, self.env_file))
        self.pair = start_pair(extra="on_promote = /bin/sh %s\n" % hook)
        self.a, self.b = self.pair.primary, self.pair.standby

    def tearDown(self):
        stop_pair(self.pair)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def wharfctl(self, port, cmd):
        path = os.path.join(self.tmp, "secret")
        with open(path, "w") as f:
            f.write(SECRET + "\n")
        return subprocess.run([WHARFCTL, "--peer", "repl://127.0.0.1:%d" % port, "--secret-file",
                               path, cmd], capture_output=True, text=True, timeout=30)

    def test_same_clients_served_after_promote(self):
        a, b = self.a, self.b
        self.assertEqual(http_status(admin_port(b), "/readyz"), 503)
        # Redirected from b to a, the clients send, and a confirms.
        conn, lst, err = stomp_follow(b.ports["stomp"])
        self.assertIsNotNone(err)
        rids = []
        for i in range(50):
            rids.append("r-%d" % i)
            conn.send("/queue/promote.stomp", "s-%03d" % i,
                      headers={"persistent": "true", "receipt": rids[-1]})
        for r in rids:
            lst.wait_receipt(r)
        stomp_close(conn, lst)
        m, (rc, _) = mqtt_follow(b.ports["mqtt"], "dev-1")
        self.assertEqual(rc, 0x9C)
        infos = [m.c.publish("sensors/t1", "q-%03d" % i, qos=1) for i in range(50)]
        m.wait_all_published(infos)
        h = amqp_follow(b.ports["amqp"], "promote.amqp", "a-000")
        self.assertEqual(len(h.redirects), 1)
        self.assertEqual(h.accepted, "amqp://127.0.0.1:%d" % a.ports["amqp"])
        # kill -9 right after the last confirmation, then promote b
        self.pair.kill9_primary()
        close_paho(m)
        self.assertFalse(os.path.exists(self.env_file))
        r = self.wharfctl(self.pair.standby_repl, "promote")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        b.wait_for_log(r"replication: promoted: active")
        # The same client code, on b's ports: served, no redirect.
        conn, lst, err = stomp_follow(b.ports["stomp"])
        self.assertIsNone(err)
        stomp_close(conn, lst)
        m, (rc, _) = mqtt_follow(b.ports["mqtt"], "dev-2")
        self.assertEqual(rc, 0)
        self.assertEqual(m.port, b.ports["mqtt"])
        m.subscribe("after/promote", qos=1)
        m.publish("after/promote", b"served by b", qos=1)
        m.wait_payload(b"served by b")
        close_paho(m)
        h = amqp_follow(b.ports["amqp"], "promote.amqp", "a-001")
        self.assertEqual(h.redirects, [])
        self.assertEqual(h.accepted, "amqp://127.0.0.1:%d" % b.ports["amqp"])
        # b's alarms run from its promotion: 50 readings are over 10.
        def alarm():
            url = "http://127.0.0.1:%d/api/v1/alarms/readings" % admin_port(b)
            with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
                return json.loads(r.read())
        wait_until(lambda: alarm()["state"] == "ALARM", TIMEOUT, 0.1, "b's alarm")
        self.assertEqual(alarm()["value"], 50)
        b.wait_for_log(r"alarm readings: INSUFFICIENT_DATA -> ALARM: ")
        # What a confirmed is on b.
        got, _, _ = drain(b.ports["stomp"], "/queue/promote.stomp")
        self.assertEqual(got, ["s-%03d" % i for i in range(50)])
        got, _, _ = drain(b.ports["stomp"], "/queue/readings")
        self.assertEqual(got, ["q-%03d" % i for i in range(50)])
        got, _, _ = drain(b.ports["stomp"], "/queue/promote.amqp")
        self.assertEqual(got, ["a-000", "a-001"])
        # on_promote ran with the node's id and role; b is ready now.
        wait_until(lambda: os.path.exists(self.env_file), TIMEOUT, what="on_promote's env file")
        with open(self.env_file) as f:
            env = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
        self.assertEqual(env.get("WHARF_NODE_ID"), "b")
        self.assertEqual(env.get("WHARF_ROLE"), "active")
        b.wait_for_log(r"on_promote '.*' \(pid \d+\) exited with status 0")
        self.assertEqual(http_status(admin_port(b), "/readyz"), 200)


if __name__ == "__main__":
    main()
