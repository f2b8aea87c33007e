#!/usr/bin/env python3
"""WebSocket transport: MQTT over ws with paho and MQTT.js, STOMP over ws
with stompjs, AMQP over ws with rhea, wss, and every kind of bad handshake
and frame, each closed the way RFC 6455 says while other clients carry on."""
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import unittest

import paho.mqtt.client as mqtt
import stomp

from wharftest import Broker, main
from wstest import frame, upgrade_request

TIMEOUT = 20
NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
class RawWs:
    def __init__(self, port, request):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.s.sendall(request)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else 0
        self.headers = head.decode(errors="replace")

    def send(self, data):
        self.s.sendall(data)

    def read_frame(self):
        """(opcode, payload), or None once the broker has closed."""
        def need(n):
            while len(self.buf) < n:
                try:
                    chunk = self.s.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    return False
                if not chunk:
                    return False
                self.buf += chunk
            return True
        if not need(2):
            return None
        op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        pos = 2
        if n == 126:
            if not need(4):
                return None
            n, pos = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            if not need(10):
                return None
            n, pos = struct.unpack(">Q", self.buf[2:10])[0], 10
        if not need(pos + n):
            return None
        payload, self.buf = self.buf[pos:pos + n], self.buf[pos + n:]
        return op, payload

    def close_code(self):
        """Reads until the broker's close frame; returns its status code."""
        while True:
            f = self.read_frame()
            if f is None:
                return None
            if f[0] == 0x8:
                return struct.unpack(">H", f[1][:2])[0] if len(f[1]) >= 2 else 0

    def closed(self):
        while True:
            f = self.read_frame()
            if f is None:
                return True

    def close(self):
        self.s.close()


MQTT_CONNECT = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04rawc"


class Collector:
    def __init__(self):
        self.got = []
        self.cond = threading.Condition()

    def add(self, item):
        with self.cond:
            self.got.append(item)
            self.cond.notify_all()

    def wait(self, n):
        with self.cond:
            self.cond.wait_for(lambda: len(self.got) >= n, TIMEOUT)
            return list(self.got)


def paho(port, cid, transport="websockets", tls_ca=None):
    col = Collector()
    c = mqtt.Client(client_id=cid, transport=transport, protocol=mqtt.MQTTv311)
    if tls_ca:
        c.tls_set(ca_certs=tls_ca)
    c.on_message = lambda cl, u, m: col.add((m.topic, m.payload))
    c.connect("localhost" if tls_ca else "127.0.0.1", port)
    c.loop_start()
    return c, col


def stop(c):
    c.disconnect()
    c.loop_stop()


def node_available():
    return shutil.which("node") and os.path.isdir(os.path.join(NODE_DIR, "node_modules"))


class WsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.broker = Broker(protocols=("ws", "mqtt", "stomp"), config="ws_max_message = 64KiB\n")
        cls.bystander, cls.bcol = paho(cls.broker.ports["mqtt"], "bystander", transport="tcp")
        cls.bystander.subscribe("bystander/#", qos=1)
        cls.sent = 0

    @classmethod
    def tearDownClass(cls):
        try:
            stop(cls.bystander)
            rc = cls.broker.stop()
            assert rc == 0, "wharfd exited with %d:\n%s" % (rc, cls.broker.output())
        finally:
            cls.broker.cleanup()

    def setUp(self):
        self.ws = self.broker.ports["ws"]

    def tearDown(self):
        # Whatever the test did, another client still gets its messages.
        type(self).sent += 1
        n = type(self).sent
        self.bystander.publish("bystander/t", b"%d" % n, qos=1).wait_for_publish(TIMEOUT)
        got = self.bcol.wait(n)
        self.assertEqual([p for _, p in got], [b"%d" % i for i in range(1, n + 1)])
        self.assertTrue(self.broker.alive())

    # ---- clients that work -------------------------------------------------

    def test_paho_over_ws_to_tcp_and_back(self):
        sub, col = paho(self.ws, "ws-sub")
        try:
            sub.subscribe("ws/#", qos=1)
            time.sleep(0.3)
            tcp, _ = paho(self.broker.ports["mqtt"], "tcp-pub", transport="tcp")
            for i in range(50):
                tcp.publish("ws/a", b"tcp %d" % i, qos=1).wait_for_publish(TIMEOUT)
            sub.publish("ws/b", b"from ws", qos=1).wait_for_publish(TIMEOUT)
            got = col.wait(51)
            self.assertEqual(got, [("ws/a", b"tcp %d" % i) for i in range(50)] + [("ws/b", b"from ws")])
            stop(tcp)
        finally:
            stop(sub)

    def test_large_message_in_many_frames(self):
        sub, col = paho(self.ws, "ws-big")
        try:
            sub.subscribe("big/t", qos=1)
            time.sleep(0.3)
            body = bytes(range(256)) * 200  # 51 KiB, under ws_max_message
            tcp, _ = paho(self.broker.ports["mqtt"], "big-pub", transport="tcp")
            tcp.publish("big/t", body, qos=1).wait_for_publish(TIMEOUT)
            self.assertEqual(col.wait(1), [("big/t", body)])
            stop(tcp)
        finally:
            stop(sub)

    @unittest.skipUnless(node_available(), "node and tests/integration/node/node_modules needed")
    def test_mqtt_js_over_ws(self):
        p = subprocess.Popen(["node", "mqtt_ws_sub.js", "ws://127.0.0.1:%d" % self.ws, "js/#", "3"],
                             cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.stdout.readline().strip(), "ready")
        for i in range(3):
            subprocess.run(["mosquitto_pub", "-p", str(self.broker.ports["mqtt"]), "-t", "js/t",
                            "-m", "hello %d" % i, "-q", "1", "-V", "mqttv5", "-D", "publish",
                            "user-property", "k", "v%d" % i], check=True, timeout=10)
        out, err = p.communicate(timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0, err)
        msgs = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([m["payload"] for m in msgs], ["hello 0", "hello 1", "hello 2"])
        self.assertEqual([m["user"] for m in msgs], [{"k": "v%d" % i} for i in range(3)])

    @unittest.skipUnless(node_available(), "node and tests/integration/node/node_modules needed")
    def test_stompjs_over_ws(self):
        p = subprocess.Popen(["node", "stomp_ws_sub.js", "ws://127.0.0.1:%d" % self.ws,
                              "/topic/js.stomp", "2"],
                             cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.stdout.readline().strip(), "ready")
        conn = stomp.Connection12([("127.0.0.1", self.broker.ports["stomp"])], heartbeats=(0, 0))
        conn.connect(wait=True)
        conn.send("/topic/js.stomp", "first", headers={"x-k": "1"})
        conn.send("/topic/js.stomp", "second")
        out, err = p.communicate(timeout=TIMEOUT)
        conn.disconnect()
        self.assertEqual(p.returncode, 0, err)
        msgs = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([m["body"] for m in msgs], ["first", "second"])
        self.assertEqual(msgs[0]["headers"]["x-k"], "1")

    @unittest.skipUnless(node_available(), "node and tests/integration/node/node_modules needed")
    def test_rhea_amqp_over_ws(self):
        p = subprocess.Popen(["node", "amqp_ws.js", "ws://127.0.0.1:%d" % self.ws, "ws.amqp", "1"],
                             cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        own = [json.loads(p.stdout.readline()) for _ in range(2)]
        self.assertEqual(own, [{"body": "from rhea %d" % i, "properties": {"origin": "rhea"}}
                               for i in range(2)])
        self.assertEqual(p.stdout.readline().strip(), "ready")
        conn = stomp.Connection12([("127.0.0.1", self.broker.ports["stomp"])], heartbeats=(0, 0))
        conn.connect(wait=True)
        conn.send("/queue/ws.amqp", "from stomp", headers={"x-k": "1"})
        out, err = p.communicate(timeout=TIMEOUT)
        conn.disconnect()
        self.assertEqual(p.returncode, 0, err)
        msgs = [json.loads(line) for line in out.splitlines()]
        self.assertEqual([m["body"] for m in msgs], ["from stomp"])
        self.assertEqual(msgs[0]["properties"].get("x-k"), "1")

    def test_fragmented_and_coalesced_packets(self):
        ws = RawWs(self.ws, upgrade_request())
        self.assertEqual(ws.status, 101)
        self.assertIn("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", ws.headers)
        self.assertIn("Sec-WebSocket-Protocol: mqtt", ws.headers)
        # CONNECT split over two frames (continuation), then PINGREQ and a
        # SUBSCRIBE in one frame: frame boundaries mean nothing to MQTT.
        ws.send(frame(0x2, MQTT_CONNECT[:5], fin=False) + frame(0x0, MQTT_CONNECT[5:]))
        op, data = ws.read_frame()
        self.assertEqual((op, data), (0x2, b"\x20\x02\x00\x00"))
        ws.send(frame(0x2, b"\xc0\x00" + b"\x82\x06\x00\x01\x00\x01a\x00"))
        seen = b""
        while len(seen) < 7:
            op, data = ws.read_frame()
            seen += data
        self.assertEqual(seen, b"\xd0\x00" + b"\x90\x03\x00\x01\x00")
        ws.send(frame(0x9, b"are you there"))
        self.assertEqual(ws.read_frame(), (0xA, b"are you there"))
        ws.send(frame(0x8, struct.pack(">H", 1000)))
        self.assertEqual(ws.close_code(), 1000)
        ws.close()

    # ---- bad handshakes ----------------------------------------------------

    def status_of(self, request):
        ws = RawWs(self.ws, request)
        status = ws.status
        self.assertTrue(ws.closed())
        ws.close()
        return status

    def test_plain_http_request(self):
        self.assertEqual(self.status_of(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 426)

    def test_missing_key(self):
        self.assertEqual(self.status_of(upgrade_request(key=None)), 400)

    def test_bad_key(self):
        self.assertEqual(self.status_of(upgrade_request(key="short")), 400)

    def test_wrong_version(self):
        self.assertEqual(self.status_of(upgrade_request(version="8")), 426)

    def test_unknown_subprotocol(self):
        self.assertEqual(self.status_of(upgrade_request(protocols="xmpp")), 400)

    def test_no_subprotocol(self):
        self.assertEqual(self.status_of(upgrade_request(protocols=None)), 400)

    def test_oversized_headers(self):
        self.assertEqual(self.status_of(upgrade_request(extra="X-Pad: %s\r\n" % ("a" * 9000))), 431)

    def test_post_refused(self):
        self.assertEqual(self.status_of(upgrade_request().replace(b"GET", b"POST", 1)), 405)

    def first_answer(self, offered, picked, opcode, payload):
        """Offers subprotocols, checks the one picked, sends one message and
        returns the broker's first message."""
        ws = RawWs(self.ws, upgrade_request(protocols=offered))
        self.assertEqual(ws.status, 101)
        self.assertIn("Sec-WebSocket-Protocol: " + picked, ws.headers)
        ws.send(frame(opcode, payload))
        answer = ws.read_frame()
        ws.close()
        return answer

    def test_stomp_subprotocol_preference(self):
        op, data = self.first_answer("v10.stomp, v12.stomp", "v10.stomp", 0x1,
                                     b"CONNECT\naccept-version:1.2\nhost:x\n\n\x00")
        self.assertTrue(data.startswith(b"CONNECTED\nversion:1.2\n"), data)

    def test_amqp_subprotocol(self):
        op, data = self.first_answer("AMQPWSB10, amqp", "amqp", 0x2, b"AMQP\x00\x01\x00\x00")
        self.assertEqual((op, data[:8]), (0x2, b"AMQP\x00\x01\x00\x00"))

    # ---- bad frames --------------------------------------------------------

    def opened(self, protocols="mqtt"):
        ws = RawWs(self.ws, upgrade_request(protocols=protocols))
        self.assertEqual(ws.status, 101)
        return ws

    def test_unmasked_client_frame(self):
        ws = self.opened()
        ws.send(frame(0x2, MQTT_CONNECT, mask=False))
        self.assertEqual(ws.close_code(), 1002)
        ws.close()

    def test_frame_headers_no_client_may_send(self):
        """A control frame over 125 bytes, a fragmented control frame, a
        length not in its shortest form: each gets close code 1002."""
        for raw in (bytes([0x89, 0x80 | 126]) + struct.pack(">H", 126) + b"\0" * 4 + b"x" * 126,
                    bytes([0x09, 0x80 | 1]) + b"\0" * 4 + b"x",
                    bytes([0x82, 0x80 | 126]) + struct.pack(">H", 5) + b"\0" * 4 + b"hello"):
            ws = self.opened()
            ws.send(raw)
            self.assertEqual(ws.close_code(), 1002, raw[:4].hex())
            ws.close()

    def test_oversized_message(self):
        ws = self.opened()
        ws.send(frame(0x2, b"\x00" * (70 * 1024)))
        self.assertEqual(ws.close_code(), 1009)
        ws.close()

    def test_invalid_close_code(self):
        ws = self.opened()
        ws.send(frame(0x8, struct.pack(">H", 999)))
        self.assertEqual(ws.close_code(), 1002)
        ws.close()

    def test_text_frame_for_mqtt(self):
        ws = self.opened()
        ws.send(frame(0x1, MQTT_CONNECT))
        self.assertEqual(ws.close_code(), 1003)
        ws.close()

    def test_garbage_inside_frames_gets_the_protocol_error(self):
        ws = self.opened(protocols="v12.stomp")
        ws.send(frame(0x2, b"HELLO\n\n\x00"))
        op, data = ws.read_frame()
        self.assertTrue(data.startswith(b"ERROR\n"), data)
        self.assertEqual(ws.close_code(), 1000)
        ws.close()


class OriginTest(unittest.TestCase):
    def test_origin_not_allowed(self):
        with Broker(protocols=("ws",), config="ws_allowed_origins = https://app.example\n") as b:
            ws = RawWs(b.ports["ws"], upgrade_request(extra="Origin: https://evil.example\r\n"))
            self.assertEqual(ws.status, 403)
            self.assertTrue(ws.closed())
            ws = RawWs(b.ports["ws"], upgrade_request(extra="Origin: https://app.example\r\n"))
            self.assertEqual(ws.status, 101)
            ws.close()
            self.assertEqual(b.stop(), 0, b.output())


class WssTest(unittest.TestCase):
    def test_mqtt_over_wss(self):
        d = os.path.join(os.environ.get("TMPDIR", "/tmp"), "wharf-wss-%d" % os.getpid())
        os.makedirs(d, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem",
                        "-out", "c.pem", "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost"],
                       cwd=d, check=True, capture_output=True)
        try:
            with Broker(protocols=("wss",), args=["--tls-cert", os.path.join(d, "c.pem"),
                                                  "--tls-key", os.path.join(d, "k.pem")]) as b:
                c, col = paho(b.ports["wss"], "wss-client", tls_ca=os.path.join(d, "c.pem"))
                c.subscribe("s/t", qos=1)
                time.sleep(0.3)
                c.publish("s/t", b"over wss", qos=1).wait_for_publish(TIMEOUT)
                self.assertEqual(col.wait(1), [("s/t", b"over wss")])
                stop(c)
                self.assertEqual(b.stop(), 0, b.output())
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
