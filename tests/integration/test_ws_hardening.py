#!/usr/bin/env python3
"""The WebSocket layer under hostile and careless clients: connections
aborted mid-frame while the broker writes to them, floods of tiny
fragments, and frames left decoded while input was paused. The broker must
stay up and a healthy client keep working."""
import os
import random
import socket
import struct
import threading
import time
import unittest

import stomp

from wharftest import Broker, main, wait_until
from wstest import frame, upgrade_request

TIMEOUT = 20
def ws_open(port, protocol, timeout=TIMEOUT):
    """A socket past the upgrade; the bytes read after the 101 response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(upgrade_request(protocol))
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError("no handshake answer")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, rest


def abort(s):
    """Closes with a reset (SO_LINGER 0): whatever the broker still writes fails."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    except OSError:
        pass


def stomp_frame(command, headers=(), body=b""):
    h = "".join("%s:%s\n" % kv for kv in headers)
    return ("%s\n%s\n" % (command, h)).encode() + body + b"\0"


MQTT_CONNECT = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04rawc"
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"


def stomp_connected_over_ws(port):
    s, rest = ws_open(port, "v12.stomp")
    s.sendall(frame(2, stomp_frame("CONNECT", [("accept-version", "1.2")])))
    out, _ = read_frames(s, bytearray(rest), lambda d: b"CONNECTED" in d, 10)
    s.close()
    return out.startswith(b"CONNECTED")


def mutate(data, rng):
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if b:
            b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


class WsAbortStress(unittest.TestCase):
    """Issue 11.1: output queued for a connection that is freed in the same
    loop turn must not be framed after the free."""

    def test_aborts_mid_frame_while_broker_writes(self):
        rng = random.Random(11)
        with Broker(protocols=("ws", "stomp")) as b:
            port = b.ports["ws"]
            # A healthy subscriber over plain STOMP, and a publisher that
            # keeps the broker writing to every WebSocket subscriber.
            healthy = stomp.Connection([("127.0.0.1", b.ports["stomp"])])
            got = []
            healthy.set_listener("", type("L", (stomp.ConnectionListener,), {
                "on_message": lambda self, f: got.append(f.body)})())
            healthy.connect(wait=True)
            healthy.subscribe("/topic/ok", id="1", ack="auto")
            pub = socket.create_connection(("127.0.0.1", b.ports["stomp"]), timeout=TIMEOUT)
            pub.sendall(stomp_frame("CONNECT", [("accept-version", "1.2")]))
            body = b"x" * 3000
            send = stomp_frame("SEND", [("destination", "/topic/flood"),
                                        ("content-length", str(len(body)))], body)
            # A batch of bad STOMP connections first, as in the report.
            for _ in range(50):
                s, _ = ws_open(port, "v12.stomp")
                s.sendall(frame(2, stomp_frame("CONNECT", [("accept-version", "1.2")]) +
                                stomp_frame("SUBSCRIBE", [("destination", "/topic/flood"),
                                                          ("id", "1")]) +
                                b"NOT-A-COMMAND\n\n\0"))
                pub.sendall(send)
                abort(s)
            # The broker keeps writing to the subscribers as they go.
            stop_pub = threading.Event()

            def publish():
                while not stop_pub.is_set():
                    pub.sendall(send * 4)
                    time.sleep(0.0005)
            t = threading.Thread(target=publish)
            t.start()
            for round_ in range(4):
                socks = []
                for i in range(100):
                    proto = ("v12.stomp", "mqtt", "amqp")[i % 3]
                    s, _ = ws_open(port, proto)
                    if proto == "v12.stomp" and i % 2:
                        s.sendall(frame(2, stomp_frame("CONNECT", [("accept-version", "1.2")]) +
                                        stomp_frame("SUBSCRIBE", [("destination", "/topic/flood"),
                                                                  ("id", "1")])))
                    elif proto == "v12.stomp":
                        # Receipts the store confirms after the client is gone.
                        s.sendall(frame(2, stomp_frame("CONNECT", [("accept-version", "1.2")]) +
                                        b"".join(stomp_frame("SEND", [
                                            ("destination", "/queue/stress"),
                                            ("persistent", "true"), ("receipt", str(n))], b"p")
                                            for n in range(60))))
                    elif proto == "mqtt":
                        s.sendall(frame(2, mutate(MQTT_CONNECT, rng) if i % 2 else MQTT_CONNECT))
                    else:
                        s.sendall(frame(2, AMQP_HEADER + os.urandom(rng.randint(1, 64))))
                    socks.append(s)
                rng.shuffle(socks)
                for s in socks:
                    # Half a frame, then gone.
                    try:
                        s.sendall(frame(2, b"SEND\ndestination:/topic/flood\n\nzz\0")[:7])
                    except OSError:
                        pass
                    abort(s)
                self.assertTrue(b.alive(), b.output())
            stop_pub.set()
            t.join()
            pub.close()
            healthy.send("/topic/ok", "still here")
            wait_until(lambda: got == ["still here"], TIMEOUT, what="the healthy client's message")
            healthy.disconnect()
            self.assertEqual(b.stop(), 0, b.output())


def read_frames(s, buf, want, timeout=TIMEOUT):
    """Reads server frames until `want(payloads)` is true; the payloads so far."""
    got = b""
    deadline = time.monotonic() + timeout
    s.settimeout(0.2)
    while not want(got) and time.monotonic() < deadline:
        while len(buf) >= 2:
            n, pos = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, pos = struct.unpack(">H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, pos = struct.unpack(">Q", buf[2:10])[0], 10
            if len(buf) < pos + n:
                break
            if buf[0] & 0x0F == 8:
                return got, True
            got += buf[pos:pos + n]
            buf = buf[pos + n:]
        if want(got):
            break
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            return got, True
        buf += chunk
    return got, False


class WsFreedWithOutputQueued(unittest.TestCase):
    """Issue 11.1, made likely: a heart-beat every millisecond writes to
    connections that are closing, so a write often lands in the loop turn
    that frees one."""

    def test_heartbeats_to_closing_connections(self):
        config = "[stomp]\nheartbeat = 1ms\n"
        with Broker(protocols=("ws", "stomp"), config=config) as b:
            port = b.ports["ws"]
            for round_ in range(3):
                socks = []
                for i in range(100):
                    s, _ = ws_open(port, "v12.stomp")
                    s.sendall(frame(2, stomp_frame("CONNECT", [("accept-version", "1.2"),
                                                               ("heart-beat", "1,1")])))
                    socks.append(s)
                time.sleep(0.05)
                for i, s in enumerate(socks):
                    if i % 2:
                        s.sendall(frame(8, struct.pack(">H", 1000)))  # a close frame
                    abort(s)
                self.assertTrue(b.alive(), b.output())
            self.assertTrue(stomp_connected_over_ws(port))
            self.assertEqual(b.stop(), 0, b.output())


class WsFlowControl(unittest.TestCase):
    """Issue 16.5: frames decoded from one WebSocket message while the
    destination was full are read once input resumes."""

    def test_stomp_receipt_after_blocked_burst(self):
        config = "[queue small]\nmax_length = 3\noverflow = block\n"
        with Broker(protocols=("ws", "stomp"), config=config) as b:
            s, rest = ws_open(b.ports["ws"], "v12.stomp")
            n = 40
            burst = stomp_frame("CONNECT", [("accept-version", "1.2"), ("host", "/")])
            for i in range(n):
                hdrs = [("destination", "/queue/small")]
                if i == n - 1:
                    hdrs.append(("receipt", "last"))
                burst += stomp_frame("SEND", hdrs, b"m%d" % i)
            # All of it in one WebSocket message: the frames past the
            # bound wait decoded in the broker while input is paused.
            s.sendall(frame(2, burst))
            got = []
            consumer = stomp.Connection12([("127.0.0.1", b.ports["stomp"])], heartbeats=(0, 0))
            consumer.set_listener("", type("L", (stomp.ConnectionListener,), {
                "on_message": lambda self, f: got.append(f.body)})())
            consumer.connect(wait=True)
            consumer.subscribe("/queue/small", id="1", ack="auto")
            out, closed = read_frames(s, bytearray(rest), lambda d: b"receipt-id:last" in d, 10)
            self.assertIn(b"receipt-id:last", out, "no receipt; closed=%s" % closed)
            wait_until(lambda: len(got) == n, TIMEOUT, what="all %d messages" % n)
            self.assertEqual(got, ["m%d" % i for i in range(n)])
            consumer.disconnect()
            s.close()
            self.assertEqual(b.stop(), 0, b.output())


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def close_code(s, buf, timeout=10):
    """Reads server frames until the close frame; its code, or None."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        while len(buf) >= 2 and len(buf) >= 2 + (buf[1] & 0x7F) and (buf[1] & 0x7F) < 126:
            op, n = buf[0] & 0x0F, buf[1] & 0x7F
            payload, buf = buf[2:2 + n], buf[2 + n:]
            if op == 8:
                return struct.unpack(">H", payload[:2])[0] if n >= 2 else 1005
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            return None
        if not chunk:
            return None
        buf += chunk
    return None


class WsFragments(unittest.TestCase):
    """Issue 11.5: tiny continuation frames cost what they carry, and a
    message has at most 4096 of them."""

    def test_flood_of_one_byte_fragments(self):
        with Broker(protocols=("ws",)) as b:
            s, rest = ws_open(b.ports["ws"], "v12.stomp")
            rss0 = rss_kib(b.proc.pid)
            key = b"\0\0\0\0"  # a zero mask: the payload goes as it is
            one = bytes([0x00, 0x81]) + key + b"x"
            batch = bytes([0x02, 0x81]) + key + b"S" + one * 9999
            sent = 0
            try:
                s.sendall(batch)
                sent += 10000
                for _ in range(29):  # 300,000 frames in all
                    s.sendall(one * 10000)
                    sent += 10000
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertEqual(close_code(s, bytearray(rest)), 1009)
            grown = rss_kib(b.proc.pid) - rss0
            print("# %d one-byte fragments sent; broker RSS grew by %d KiB" % (sent, grown))
            self.assertLess(grown, 16 * 1024, "RSS grew by %d KiB" % grown)
            s.close()
            self.assertEqual(b.stop(), 0, b.output())

    def test_fragments_cost_counts_against_max_message(self):
        # 64 KiB: 1-byte fragments at 17 bytes each reach it before 4096.
        with Broker(protocols=("ws",), config="ws_max_message = 64KiB\n") as b:
            s, rest = ws_open(b.ports["ws"], "v12.stomp")
            key = b"\0\0\0\0"
            one = bytes([0x00, 0x81]) + key + b"x"
            try:
                s.sendall(bytes([0x02, 0x81]) + key + b"S" + one * 3999)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertEqual(close_code(s, bytearray(rest)), 1009)
            s.close()
            self.assertEqual(b.stop(), 0, b.output())

    def test_message_in_many_fragments_arrives_whole(self):
        with Broker(protocols=("ws",)) as b:
            s, rest = ws_open(b.ports["ws"], "v12.stomp")
            data = (stomp_frame("CONNECT", [("accept-version", "1.2"), ("host", "/")]) +
                    stomp_frame("SEND", [("destination", "/queue/frag"), ("receipt", "r1")],
                                b"y" * 2000))
            key = b"\0\0\0\0"
            frames = bytes([0x02, 0x81]) + key + data[:1]
            for i in range(1, len(data)):
                fin = 0x80 if i == len(data) - 1 else 0
                frames += bytes([fin, 0x81]) + key + data[i:i + 1]
            s.sendall(frames)
            out, closed = read_frames(s, bytearray(rest), lambda d: b"receipt-id:r1" in d, 10)
            self.assertIn(b"receipt-id:r1", out, "closed=%s" % closed)
            s.close()
            self.assertEqual(b.stop(), 0, b.output())


if __name__ == "__main__":
    main()
