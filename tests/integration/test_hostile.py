#!/usr/bin/env python3
"""Hostile input on every port at once, while healthy clients check for loss.

Waves of raw connections (STOMP, MQTT and AMQP over TCP, TLS, WebSocket
and WebSocket over TLS, and HTTP on the admin API's TLS listener) open, start a valid session so that the broker has something to
write to them (they subscribe to a topic a flooder keeps publishing to), then
send random and mutated frames in random pieces and either vanish mid-frame
with a TCP reset or close. Meanwhile a STOMP producer and consumer pass
persistent messages through a queue with receipts, and an MQTT QoS 1
publisher and subscriber pass numbered messages through a topic. Afterwards
every healthy message has arrived once, intact and in order, the durable
messages sent before the storm are still in their queue, the broker is up
and answers new clients (the admin API too), and it stops cleanly (no sanitizer report).

The run is bounded: HOSTILE_SECONDS (default 20) of attack; the random seed
is printed and can be fixed with HOSTILE_SEED to replay a failure.
"""
import os
import random
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import sys
import threading
import time
import unittest
import urllib.request

import paho.mqtt.client as mqtt
import stomp

from admintest import admin_port
from wharftest import Broker, main
from wstest import frame as ws_frame, upgrade_request
from mqtttest import connect_packet, publish_packet, subscribe_packet
from stomptest import Collector

SECONDS = float(os.environ.get("HOSTILE_SECONDS", "20"))
TRANSPORTS = {"tcp", "tls", "ws", "wss"}
PROTOCOLS = {"stomp", "mqtt", "amqp", "http"}  # http: the admin API, over TLS
# Narrows the storm when replaying a failure, e.g. "amqp", "mqtt,ws" or "http".
ONLY = set(filter(None, os.environ.get("HOSTILE_ONLY", "").split(",")))
SEED = int(os.environ.get("HOSTILE_SEED", str(int(time.time()) & 0xffff)))
TIMEOUT = 30
WAVE = 100  # connections open at once in a wave
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")

CONFIG = """
[queue healthy.>]
max_length = 100000
"""


def stomp_frame(command, headers, body=b""):
    head = command + "\n" + "".join("%s:%s\n" % kv for kv in headers.items()) + "\n"
    return head.encode() + body + b"\0"


def stomp_seed():
    return (stomp_frame("CONNECT", {"accept-version": "1.2", "host": "x"}) +
            stomp_frame("SUBSCRIBE", {"id": "0", "destination": "/topic/flood.>", "ack": "client"}) +
            stomp_frame("SEND", {"destination": "/queue/junk", "receipt": "r1"}, b"hello") +
            stomp_frame("BEGIN", {"transaction": "t"}) +
            stomp_frame("SEND", {"destination": "/queue/junk", "transaction": "t",
                                 "content-length": "3"}, b"a\0b") +
            stomp_frame("ACK", {"id": "x"}))


def mqtt_seed(rng):
    level = rng.choice((3, 4, 5))
    return (connect_packet("hostile-%d" % rng.randrange(1 << 30), level=level, clean=True,
                           keepalive=30) +
            subscribe_packet(1, [("flood/#", 1)], level=level) +
            publish_packet("junk/t", b"x" * rng.randrange(64), qos=1, pid=2, level=level) +
            publish_packet("junk/t", b"y", qos=2, pid=3, level=level))


def amqp_seeds():
    """Recorded proton client sessions from the fuzz corpus; the first byte
    of each is the fuzzer's piece size, not part of the stream."""
    seeds = []
    d = os.path.join(CORPUS, "amqp")
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            data = f.read()
        if len(data) > 9:
            seeds.append(data[1:])
    return seeds


def http_seeds():
    """Admin API requests: reads, changes, a body, a chunked body."""
    host = b"Host: 127.0.0.1\r\n"
    return [b"GET /api/v1/queues HTTP/1.1\r\n" + host + b"\r\n",
            b"PUT /api/v1/queues/junk.admin HTTP/1.1\r\n" + host + b"Content-Length: 0\r\n\r\n",
            b"POST /api/v1/queues/junk.admin/messages HTTP/1.1\r\n" + host +
            b"Content-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"body\":\"hello\"}",
            b"POST /api/v1/queues/junk.admin/messages HTTP/1.1\r\n" + host +
            b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"body\":\"hello\"}\r\n0\r\n\r\n",
            b"GET /console/ HTTP/1.1\r\n" + host + b"\r\n",
            b"GET /metrics HTTP/1.1\r\n" + host + b"Connection: keep-alive\r\n\r\n" * 3,
            b"DELETE /api/v1/sessions/x%00y HTTP/1.1\r\n" + host + b"\r\n"]


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randrange(1, 8)):
        op = rng.randrange(6)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[pos:pos] = os.urandom(rng.randrange(1, 16))
        elif op == 2 and data:
            del data[pos:pos + rng.randrange(1, 16)]
        elif op == 3:
            data[pos:pos] = bytes([rng.choice((0, 0xff, 0x7f, 0x80))]) * rng.randrange(1, 8)
        elif op == 4 and data:
            start = rng.randrange(len(data))
            data[pos:pos] = data[start:start + rng.randrange(1, 64)]
        elif op == 5:
            del data[pos:]
    return bytes(data)


def ws_wrap(rng, stream):
    """The stream cut into masked binary frames, some fragmented, and now and
    then a frame header that is itself mangled."""
    out = b""
    pos = 0
    while pos < len(stream):
        n = rng.randrange(1, 300)
        chunk = stream[pos:pos + n]
        pos += n
        f = ws_frame(2 if rng.random() < 0.9 else rng.choice((0, 1, 8, 9, 3)), chunk,
                     fin=rng.random() < 0.9)
        if rng.random() < 0.05:
            f = mutate(rng, f)
        out += f
    return out


class Attacker:
    """One hostile connection's script, run on a thread of its own."""

    def __init__(self, rng, ports, stats):
        self.rng = rng
        self.ports = ports
        self.stats = stats

    def payload(self, proto):
        rng = self.rng
        if proto == "http":
            seed = rng.choice(http_seeds())
        elif proto == "stomp":
            seed = stomp_seed()
        elif proto == "mqtt":
            seed = mqtt_seed(rng)
        else:
            seed = rng.choice(amqp_seeds())
        kind = rng.randrange(4)
        if kind == 0:
            return os.urandom(rng.randrange(1, 4096))
        valid_prefix = seed[:rng.randrange(len(seed) // 2, len(seed) + 1)]
        if kind == 1:
            return valid_prefix  # cut off mid-frame
        return valid_prefix + mutate(rng, seed) * rng.randrange(1, 4)

    def run(self):
        rng = self.rng
        proto = rng.choice(sorted(ONLY & PROTOCOLS) or sorted(PROTOCOLS))
        transport = "tls" if proto == "http" else rng.choice(sorted(ONLY & TRANSPORTS) or
                                                             sorted(TRANSPORTS))
        over_ws = transport in ("ws", "wss")
        tls = transport in ("tls", "wss")
        if proto == "http":
            port = self.ports["admin"]
        else:
            port = self.ports[transport if over_ws else proto + ("s" if tls else "")]
        data = self.payload(proto)
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            self.stats["refused"] += 1
            return
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            if tls and rng.random() < 0.1:
                s.sendall(os.urandom(rng.randrange(1, 600)))  # garbage where TLS belongs
            elif tls:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(s)
            if over_ws:
                sub = {"stomp": "v12.stomp", "mqtt": "mqtt", "amqp": "amqp"}[proto]
                req = upgrade_request(sub)
                if rng.random() < 0.1:
                    req = mutate(rng, req)
                s.sendall(req)
                data = ws_wrap(rng, data)
            pos = 0
            while pos < len(data):
                n = rng.randrange(1, 2048)
                s.sendall(data[pos:pos + n])
                pos += n
                if rng.random() < 0.3:
                    time.sleep(rng.random() * 0.02)
            # Let the broker answer (and keep writing the flood) a moment.
            linger = time.monotonic() + rng.random() * 0.3
            try:
                while time.monotonic() < linger:
                    s.settimeout(max(0.001, linger - time.monotonic()))
                    if not s.recv(65536):
                        break
            except (socket.timeout, OSError):
                pass
            if rng.random() < 0.7:
                # A reset, mid-frame or mid-write: no FIN, no goodbye.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.stats["done"] += 1
        except (OSError, ssl.SSLError):
            self.stats["reset by broker"] += 1
        finally:
            s.close()


class Flooder(threading.Thread):
    """Keeps publishing QoS 0 messages to flood/... so the broker is
    writing to the attackers when they vanish; bounded by the stop event."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port = port
        self.stop = stop

    def run(self):
        c = mqtt.Client(client_id="flooder", protocol=mqtt.MQTTv311)
        c.connect("127.0.0.1", self.port)
        c.loop_start()
        i = 0
        while not self.stop.is_set():
            c.publish("flood/%d" % (i % 8), b"f" * 512, qos=0)
            i += 1
            if i % 50 == 0:
                time.sleep(0.005)
        c.loop_stop()
        c.disconnect()


class HealthyMqtt:
    """A QoS 1 publisher and subscriber on one topic: numbered messages, each
    timed from publish to arrival."""

    def __init__(self, port):
        self.got = []
        self.latency = []
        self.sent_at = {}
        self.cond = threading.Condition()
        self.sub = mqtt.Client(client_id="healthy-sub", protocol=mqtt.MQTTv311)
        self.sub.on_message = self.on_message
        subscribed = threading.Event()
        self.sub.on_subscribe = lambda *a: subscribed.set()
        self.sub.connect("127.0.0.1", port)
        self.sub.loop_start()
        self.sub.subscribe("healthy/t", qos=1)
        assert subscribed.wait(TIMEOUT), "healthy MQTT subscriber got no SUBACK"
        self.pub = mqtt.Client(client_id="healthy-pub", protocol=mqtt.MQTTv311)
        self.pub.connect("127.0.0.1", port)
        self.pub.loop_start()

    def on_message(self, client, userdata, msg):
        n = int(msg.payload)
        with self.cond:
            self.got.append(n)
            self.latency.append(time.monotonic() - self.sent_at[n])
            self.cond.notify_all()

    def publish(self, n):
        self.sent_at[n] = time.monotonic()
        self.pub.publish("healthy/t", str(n).encode(), qos=1)

    def wait(self, count):
        deadline = time.monotonic() + TIMEOUT
        with self.cond:
            while len(self.got) < count and time.monotonic() < deadline:
                self.cond.wait(0.2)

    def close(self):
        for c in (self.pub, self.sub):
            c.loop_stop()
            c.disconnect()


class HostileTest(unittest.TestCase):
    def test_storm_on_every_port_loses_nothing(self):
        rng = random.Random(SEED)
        print("# HOSTILE_SEED=%d HOSTILE_SECONDS=%g" % (SEED, SECONDS), file=sys.stderr)
        certdir = tempfile.mkdtemp(prefix="wharf-hostile-")
        self.addCleanup(shutil.rmtree, certdir, True)
        cert, key = os.path.join(certdir, "c.pem"), os.path.join(certdir, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=localhost"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        admin = "[admin]\nlisten = https://127.0.0.1:0\ntls_cert = %s\ntls_key = %s\n" % (cert, key)
        with Broker(("stomp", "mqtt", "amqp", "ws", "stomps", "mqtts", "amqps", "wss"),
                    CONFIG + admin, args=["--tls-cert", cert, "--tls-key", key]) as b:
            ports = dict(b.ports, admin=admin_port(b))
            # Durable messages stored before the storm.
            before = stomp.Connection12([("127.0.0.1", ports["stomp"])])
            col_before = Collector()
            before.set_listener("", col_before)
            before.connect(wait=True)
            for i in range(50):
                before.send("/queue/healthy.kept", "kept-%d" % i, persistent="true",
                            receipt="k%d" % i)
            col_before.wait_for(lambda: len(col_before.receipts) >= 50, what="50 receipts")
            before.disconnect()

            # Healthy STOMP consumer and producer on a queue, with receipts.
            consumer = stomp.Connection12([("127.0.0.1", ports["stomp"])], heartbeats=(0, 0))
            col_c = Collector()
            consumer.set_listener("", col_c)
            consumer.connect(wait=True)
            consumer.subscribe("/queue/healthy.q", id="1", ack="client-individual")
            producer = stomp.Connection12([("127.0.0.1", ports["stomp"])])
            col_p = Collector()
            producer.set_listener("", col_p)
            producer.connect(wait=True)
            healthy_mqtt = HealthyMqtt(ports["mqtt"])

            stop = threading.Event()
            flooder = Flooder(ports["mqtt"], stop)
            flooder.start()
            stats = {"done": 0, "refused": 0, "reset by broker": 0}
            sent = 0
            deadline = time.monotonic() + SECONDS
            acked = set()
            while time.monotonic() < deadline:
                wave = [threading.Thread(target=Attacker(random.Random(rng.random()), ports,
                                                         stats).run, daemon=True)
                        for _ in range(WAVE)]
                for t in wave:
                    t.start()
                # The healthy clients work while the wave is on.
                for _ in range(10):
                    producer.send("/queue/healthy.q", "m-%d" % sent, persistent="true",
                                  receipt="s%d" % sent)
                    healthy_mqtt.publish(sent)
                    sent += 1
                for t in wave:
                    t.join(TIMEOUT)
                self.assertTrue(b.alive(), "wharfd died under hostile input:\n" + b.output()[-4000:])
                for f in list(col_c.messages):
                    if f.headers["ack"] not in acked:
                        consumer.ack(f.headers["ack"])
                        acked.add(f.headers["ack"])
            stop.set()
            flooder.join(TIMEOUT)
            print("# %d hostile connections: %r; %d healthy messages each way" %
                  (sum(stats.values()), stats, sent), file=sys.stderr)

            col_p.wait_for(lambda: len(col_p.receipts) >= sent, what="%d receipts" % sent)
            col_c.wait_messages(sent)
            bodies = [f.body for f in col_c.messages]
            self.assertEqual(bodies, ["m-%d" % i for i in range(sent)],
                             "STOMP: lost, doubled or reordered under attack")
            healthy_mqtt.wait(sent)
            self.assertEqual(healthy_mqtt.got, list(range(sent)),
                             "MQTT: lost, doubled or reordered under attack")
            lat = sorted(healthy_mqtt.latency)
            p99 = lat[int(len(lat) * 0.99) - 1] if lat else 0
            print("# MQTT QoS 1 latency under attack: p50 %.1f ms, p99 %.1f ms, max %.1f ms" %
                  (lat[len(lat) // 2] * 1000, p99 * 1000, lat[-1] * 1000), file=sys.stderr)
            # Generous (ASan, two shared CPUs): a stall of seconds is a freeze.
            self.assertLess(lat[-1], 5.0, "a healthy client waited %.1f s" % lat[-1])
            for f in col_c.messages:
                if f.headers["ack"] not in acked:
                    consumer.ack(f.headers["ack"])
            healthy_mqtt.close()
            producer.disconnect()
            consumer.disconnect()

            # What was stored before the storm is all there, in order.
            after = stomp.Connection12([("127.0.0.1", ports["stomp"])])
            col_a = Collector()
            after.set_listener("", col_a)
            after.connect(wait=True)
            after.subscribe("/queue/healthy.kept", id="k", ack="auto")
            col_a.wait_messages(50)
            self.assertEqual([f.body for f in col_a.messages], ["kept-%d" % i for i in range(50)])
            after.disconnect()
            api = ssl.create_default_context(cafile=cert)
            for method, path in (("PUT", "/api/v1/queues/healthy.admin"),
                                 ("GET", "/api/v1/queues/healthy.admin")):
                req = urllib.request.Request("https://localhost:%d%s" % (ports["admin"], path),
                                             method=method)
                with urllib.request.urlopen(req, timeout=TIMEOUT, context=api) as r:
                    self.assertIn(r.status, (200, 201), path)

            self.assertTrue(b.alive(), b.output()[-4000:])
            rc = b.stop()
            self.assertEqual(rc, 0, "wharfd did not stop cleanly:\n" + b.output()[-8000:])


if __name__ == "__main__":
    main()
