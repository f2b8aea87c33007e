#!/usr/bin/env python3
"""What clients see on a standby (docs/ha.md): a wharfd with [ha] role =
standby whose peer is a closed port, so the active node is not known. Each
protocol answers at its handshake and closes: paho MQTT 5 gets CONNACK 0x88,
paho 3.1.1 return code 3, stomp.py an ERROR frame, python3-qpid-proton a
close with amqp:connection:forced; MQTT and STOMP over WebSocket the same.
With standby_listen = false no client port is open. Hostile bytes on a
standby's ports leave it up.

The answers naming a known active node (MQTT 0x9C with a Server Reference,
STOMP active-host/active-port, AMQP amqp:connection:redirect) are checked
byte for byte in tests/unit/test_redirect.c; end to end they need the
replication link, which hands the standby the active's addresses."""
import os
import random
import socket
import threading
import time
import unittest

import paho.mqtt.client as mqtt
import stomp
from proton import ConnectionException
from proton.utils import BlockingConnection

from stomptest import Collector
from test_hostile import amqp_seeds, mqtt_seed, mutate, stomp_seed, ws_wrap
from wharftest import Broker, BrokerTestCase, main
from wstest import frame as ws_frame, upgrade_request
from test_ws import RawWs

TIMEOUT = 20
SEED = int(os.environ.get("HOSTILE_SEED", str(int(time.time()) & 0xffff)))


def closed_port():
    """A local port nothing listens on (bound, then let go)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def standby_config(extra=""):
    return """
[ha]
role = standby
node_id = standby-1
listen = repl://127.0.0.1:0
peer = repl://127.0.0.1:%d
secret = a-secret-of-more-than-16-chars
%s""" % (closed_port(), extra)


def mqtt_connack(port, protocol, transport="tcp", user=None, password=None,
                 client_id="redirect-test"):
    """The CONNACK code paho gets (a ReasonCodes for 5.0, an int before)."""
    got = []
    done = threading.Event()
    kw = {"protocol": protocol, "transport": transport}
    if protocol != mqtt.MQTTv5:
        kw["clean_session"] = True
    c = mqtt.Client(client_id=client_id, **kw)
    if user is not None:
        c.username_pw_set(user, password)

    def on_connect(client, userdata, flags, rc, properties=None):
        got.append((rc, properties))
        done.set()
    c.on_connect = on_connect
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        assert done.wait(TIMEOUT), "no CONNACK"
    finally:
        c.loop_stop()
        c.socket() and c.socket().close()
    return got[0]


class StandbyTest(BrokerTestCase):
    protocols = ("stomp", "mqtt", "amqp", "ws")
    config = standby_config()

    def test_mqtt5_server_unavailable(self):
        rc, props = mqtt_connack(self.broker.ports["mqtt"], mqtt.MQTTv5)
        self.assertEqual(rc.value, 0x88)
        self.assertFalse(hasattr(props, "ServerReference"))

    def test_mqtt311_return_code_3(self):
        rc, _ = mqtt_connack(self.broker.ports["mqtt"], mqtt.MQTTv311)
        self.assertEqual(rc, 3)

    def test_stomp_error_frame(self):
        col = Collector()
        conn = stomp.Connection12([("127.0.0.1", self.broker.ports["stomp"])], heartbeats=(0, 0))
        conn.set_listener("", col)
        conn.connect(wait=False)
        err = col.wait_error()
        self.assertEqual(err.headers["message"], "standby: the active node is not known")
        self.assertNotIn("active-host", err.headers)
        col.wait_disconnected()

    def test_amqp_close_condition(self):
        with self.assertRaises(ConnectionException) as cm:
            c = BlockingConnection("amqp://127.0.0.1:%d" % self.broker.ports["amqp"],
                                   timeout=TIMEOUT)
            c.close()
        self.assertIn("amqp:connection:forced", str(cm.exception))
        self.assertIn("standby", str(cm.exception))

    def test_mqtt5_over_websocket(self):
        rc, _ = mqtt_connack(self.broker.ports["ws"], mqtt.MQTTv5, transport="websockets")
        self.assertEqual(rc.value, 0x88)

    def test_stomp_over_websocket(self):
        ws = RawWs(self.broker.ports["ws"], upgrade_request(protocols="v12.stomp"))
        self.assertEqual(ws.status, 101)
        ws.send(ws_frame(1, b"CONNECT\naccept-version:1.2\nhost:x\n\n\0"))
        op, payload = ws.read_frame()
        self.assertIn(op, (1, 2))  # text or binary: the broker answers in kind
        self.assertTrue(payload.startswith(
            b"ERROR\nmessage:standby\\c the active node is not known\n"), payload)
        self.assertEqual(ws.close_code(), 1000)

    def test_hostile_input_leaves_it_up(self):
        """Garbage and mutated handshakes on every client port, bounded."""
        rng = random.Random(SEED)
        print("# seed %d" % SEED)
        ports = self.broker.ports
        amqp = amqp_seeds()
        deadline = time.monotonic() + 5
        n = 0
        while time.monotonic() < deadline and n < 400:
            proto = rng.choice(("stomp", "mqtt", "amqp", "ws-mqtt", "ws-stomp", "garbage"))
            if proto == "stomp" or proto == "ws-stomp":
                data = mutate(rng, stomp_seed())
            elif proto in ("mqtt", "ws-mqtt"):
                data = mutate(rng, mqtt_seed(rng))
            elif proto == "amqp":
                data = mutate(rng, rng.choice(amqp))
            else:
                data = os.urandom(rng.randrange(1, 2048))
            if proto.startswith("ws-"):
                port = ports["ws"]
                sub = "v12.stomp" if proto == "ws-stomp" else "mqtt"
                data = upgrade_request(protocols=sub) + ws_wrap(rng, data)
            else:
                port = ports[rng.choice(("stomp", "mqtt", "amqp"))] if proto == "garbage" \
                    else ports[proto]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(data)
                    if rng.random() < 0.5:
                        s.settimeout(0.2)
                        try:
                            s.recv(65536)
                        except OSError:
                            pass
            except OSError:
                pass
            n += 1
        self.assertTrue(self.broker.alive())
        # Still answering the way a standby does.
        rc, _ = mqtt_connack(ports["mqtt"], mqtt.MQTTv311)
        self.assertEqual(rc, 3)


class NoListenTest(unittest.TestCase):
    def test_standby_listen_false(self):
        ports = {p: closed_port() for p in ("stomp", "mqtt", "amqp", "ws")}
        args = []
        for p, n in ports.items():
            args += ["--listen", "%s://127.0.0.1:%d" % (p, n)]
        b = Broker(protocols=(), config=standby_config("standby_listen = false\n"), args=args)
        try:
            b.wait_for_log("no client listeners until this node is active")
            time.sleep(0.3)
            self.assertTrue(b.alive())
            self.assertNotRegex(b.output(), r"listening (stomp|mqtt|amqp|ws)")
            for p, n in ports.items():
                with self.assertRaises(ConnectionRefusedError, msg=p):
                    socket.create_connection(("127.0.0.1", n), timeout=2).close()
            self.assertEqual(b.stop(), 0, b.output())
        finally:
            b.cleanup()


if __name__ == "__main__":
    main()
