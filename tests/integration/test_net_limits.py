#!/usr/bin/env python3
"""Connection limits: out of file descriptors the broker pauses accepting
instead of spinning, `max_connections` (global and per listener) refuses
the connections past it, `handshake_timeout` closes connections that never
finish their protocol's handshake, and `frame_timeout` those that dribble a
frame."""
import os
import re
import resource
import socket
import time
import unittest

from proton import uint

from admintest import ADMIN_CONFIG, Admin, admin_port
from amqptest import BEGIN, RawAmqp, frame
from pairtest import Pair
from wharftest import Broker, BrokerTestCase, main, wait_until
from wstest import frame as ws_frame, upgrade_request

TIMEOUT = 20
CONNECT = b"CONNECT\naccept-version:1.2\nhost:/\n\n\0"


def cpu_seconds(pid):
    """User plus system CPU time of a process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stomp_connected(port, timeout=5):
    """True if a STOMP CONNECT on a new connection gets CONNECTED."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return False
    try:
        s.sendall(CONNECT)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\0" not in buf and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        return buf.startswith(b"CONNECTED")
    except OSError:
        return False
    finally:
        s.close()


def refused(s, timeout=5):
    """True once the broker closes s without a word."""
    s.settimeout(timeout)
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def answers(api):
    try:
        return api.request("GET", "/healthz")[0] == 200
    except OSError:
        return False


class DescriptorLimit(unittest.TestCase):
    """Issue 11.3: at the descriptor limit the listener pauses accepting."""

    def at_the_limit(self, b, port, name, first=b""):
        """name: the listener's, in its log line (a regex)."""
        # 40 connections to port with descriptors for 10: accepting fails,
        # and for two seconds the broker neither spins nor floods its log.
        pid = b.proc.pid
        used = len(os.listdir("/proc/%d/fd" % pid))
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (used + 10, used + 10))
        clients = []
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            if first:
                s.sendall(first)
            clients.append(s)
        b.wait_for_log(r"listener %s: accept failed: Too many open files" % name)
        lines0 = b.output().count("\n")
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        # Two seconds at the limit, with connections waiting.
        while time.monotonic() - t0 < 2:
            time.sleep(0.1)
        cpu = cpu_seconds(pid) - cpu0
        lines = b.output().count("\n") - lines0
        print("# port %d at the descriptor limit: broker CPU %.2f s in 2 s, %d log lines"
              % (port, cpu, lines))
        self.assertLess(cpu, 0.5, "broker CPU %.2fs in 2s at the descriptor limit" % cpu)
        self.assertLess(lines, 5, "log grew by %d lines in 2s" % lines)
        for s in clients:
            s.close()

    def test_out_of_descriptors_no_busy_loop(self):
        with Broker(protocols=("stomp",)) as b:
            port = b.ports["stomp"]
            self.assertTrue(stomp_connected(port))
            self.at_the_limit(b, port, r"\S+", CONNECT)
            # Descriptors free: the broker accepts again.
            wait_until(lambda: stomp_connected(port, 2), TIMEOUT, what="accepting again")
            self.assertEqual(b.stop(), 0, b.output())

    def test_admin_listener_out_of_descriptors(self):
        """The admin API's listener is libevent's own (evhttp), which
        retried a failing accept at once: 85 % CPU and 10 MB of log a
        second until descriptors came back."""
        with Broker(protocols=("stomp",), config=ADMIN_CONFIG) as b:
            api = Admin(admin_port(b))
            self.assertEqual(api.ok("GET", "/healthz")["status"], "ok")
            self.at_the_limit(b, admin_port(b), "admin")
            wait_until(lambda: answers(api), TIMEOUT, what="the admin API answering again")
            self.assertEqual(b.stop(), 0, b.output())

    def test_replication_listener_out_of_descriptors(self):
        """The pair's link listener ([ha] listen) pauses the same way."""
        with Pair(start_standby=False) as pair:
            self.at_the_limit(pair.primary, pair.repl, "repl")
            self.assertTrue(pair.primary.alive())


class MaxConnections(unittest.TestCase):
    def test_global_max_connections(self):
        with Broker(protocols=("stomp", "mqtt"), config="max_connections = 3\n") as b:
            held = [socket.create_connection(("127.0.0.1", b.ports["stomp"]), timeout=TIMEOUT)
                    for _ in range(2)]
            held.append(socket.create_connection(("127.0.0.1", b.ports["mqtt"]), timeout=TIMEOUT))
            for s in held[:2]:
                s.sendall(CONNECT)
                self.assertTrue(s.recv(4096).startswith(b"CONNECTED"))
            extra = [socket.create_connection(("127.0.0.1", b.ports[p]), timeout=TIMEOUT)
                     for p in ("stomp", "stomp", "stomp", "mqtt")]
            for s in extra:
                self.assertTrue(refused(s))
                s.close()
            # A line per listener, not per refusal: the rest are counted. The
            # refusals are all seen (above), but the two listeners' lines may
            # reach the log file a moment apart.
            lines = lambda: len(re.findall("max_connections \\(3\\) reached", b.output()))
            wait_until(lambda: lines() >= 2, TIMEOUT, what="a refusal line per listener")
            self.assertEqual(lines(), 2)
            held.pop().close()
            wait_until(lambda: stomp_connected(b.ports["stomp"], 2), TIMEOUT,
                       what="a free connection slot")
            for s in held:
                s.close()
            self.assertEqual(b.stop(), 0, b.output())

    def test_listener_max_connections(self):
        config = ("[listener small]\nurl = stomp://127.0.0.1:0\nmax_connections = 1\n"
                  "[listener big]\nurl = mqtt://127.0.0.1:0\n")
        with Broker(protocols=(), config=config) as b:
            ports = {}
            for proto in ("stomp", "mqtt"):
                line = b.wait_for_log(r"listening %s 127\.0\.0\.1:\d+" % proto)
                ports[proto] = int(line.rsplit(":", 1)[1])
            first = socket.create_connection(("127.0.0.1", ports["stomp"]), timeout=TIMEOUT)
            first.sendall(CONNECT)
            self.assertTrue(first.recv(4096).startswith(b"CONNECTED"))
            second = socket.create_connection(("127.0.0.1", ports["stomp"]), timeout=TIMEOUT)
            self.assertTrue(refused(second))
            second.close()
            b.wait_for_log(r"listener small: connection refused: max_connections \(1\) reached")
            # The other listener has no limit of its own.
            others = [socket.create_connection(("127.0.0.1", ports["mqtt"]), timeout=TIMEOUT)
                      for _ in range(3)]
            for s in others:
                s.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")
                self.assertEqual(s.recv(4)[:1], b"\x20")
                s.close()
            first.close()
            self.assertEqual(b.stop(), 0, b.output())


MQTT_CONNECT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
AMQP_HEADER = b"AMQP\x00\x01\x00\x00"


def closed_within(s, seconds, drip=None):
    """Seconds until the broker closes s (reading and dropping what it
    sends), sending `drip` every 0.3 s meanwhile; None if still open."""
    start = time.monotonic()
    s.settimeout(0.3)
    while time.monotonic() - start < seconds:
        try:
            if not s.recv(65536):
                return time.monotonic() - start
        except socket.timeout:
            pass
        except ConnectionResetError:
            return time.monotonic() - start
        if drip:
            try:
                s.sendall(drip)
            except OSError:
                return time.monotonic() - start
    return None


def ws_connect(port, protocol):
    s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    s.sendall(upgrade_request(protocol))
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    assert buf.startswith(b"HTTP/1.1 101"), buf
    return s


class HandshakeTimeout(BrokerTestCase):
    """Issue 11.4: connections that never finish their handshake, or dribble
    a frame, are closed; clients that did their handshake stay."""

    protocols = ("stomp", "mqtt", "amqp", "ws")
    config = "handshake_timeout = 1s\nframe_timeout = 1s\n"

    def conn(self, proto):
        return socket.create_connection(("127.0.0.1", self.broker.ports[proto]), timeout=TIMEOUT)

    def assert_closed(self, s, what, drip=None):
        t = closed_within(s, 8, drip)
        s.close()
        self.assertIsNotNone(t, "%s: still open after 8 s" % what)
        self.assertTrue(0.5 < t < 4, "%s: closed after %.1f s, the timeout is 1 s" % (what, t))

    def test_silent_connections_closed(self):
        for proto in ("stomp", "mqtt", "amqp", "ws"):
            self.assert_closed(self.conn(proto), proto)
        self.broker.wait_for_log(r"no stomp handshake within handshake_timeout \(1000 ms\): closed")

    def test_half_frame_then_a_byte_now_and_then(self):
        for proto, start, drip in (("stomp", b"CONNECT\naccept-ver", b"x"),
                                   ("mqtt", MQTT_CONNECT[:5], b""),
                                   ("amqp", AMQP_HEADER[:3], b""),
                                   ("ws", upgrade_request("mqtt")[:40], b"X")):
            s = self.conn(proto)
            s.sendall(start)
            self.assert_closed(s, proto, drip or None)

    def test_over_websocket_upgrade_but_no_protocol_handshake(self):
        for sub in ("mqtt", "v12.stomp", "amqp"):
            self.assert_closed(ws_connect(self.broker.ports["ws"], sub), "ws " + sub)

    def test_frame_dribbled_after_handshake(self):
        s = self.conn("stomp")
        s.sendall(CONNECT)
        self.assertTrue(s.recv(4096).startswith(b"CONNECTED"))
        s.sendall(b"SEND\ndestination:/queue/slow\n\nab")
        self.assert_closed(s, "stomp SEND", b"c")
        m = self.conn("mqtt")
        m.sendall(MQTT_CONNECT)
        self.assertEqual(m.recv(4)[:1], b"\x20")
        m.sendall(b"\x30\x7f\x00\x03a/b")
        self.assert_closed(m, "mqtt PUBLISH", b"z")
        # AMQP: proton takes partial frames in, the broker still sees one.
        a = RawAmqp(self.broker.ports["amqp"])
        a.open("dribbler")
        a.send(frame(BEGIN, [None, uint(0), uint(100), uint(100)])[:9])
        self.assert_closed(a.sock, "amqp begin", b"\x00")
        self.broker.wait_for_log(r"a stomp frame not finished within frame_timeout \(1000 ms\)")
        self.broker.wait_for_log(r"a amqp frame not finished within frame_timeout \(1000 ms\)")
        # Over WebSocket: a WebSocket frame that never ends.
        w = ws_connect(self.broker.ports["ws"], "mqtt")
        w.sendall(ws_frame(2, MQTT_CONNECT))
        w.settimeout(TIMEOUT)
        self.assertEqual(w.recv(6)[2:3], b"\x20")
        # A 125-byte frame of which only the start comes, then a byte now and then.
        w.sendall(bytes([0x82, 0x80 | 125]) + os.urandom(4) + b"\x30")
        self.assert_closed(w, "ws frame", b"\x00")

    def test_clients_past_the_handshake_stay(self):
        s = self.conn("stomp")
        s.sendall(CONNECT)
        self.assertTrue(s.recv(4096).startswith(b"CONNECTED"))
        m = self.conn("mqtt")
        m.sendall(MQTT_CONNECT)
        self.assertEqual(m.recv(4)[:1], b"\x20")
        w = ws_connect(self.broker.ports["ws"], "mqtt")
        w.sendall(ws_frame(2, MQTT_CONNECT))
        w.settimeout(TIMEOUT)
        self.assertEqual(w.recv(6)[2:3], b"\x20")
        # Idle past both timeouts (whole frames only), then still served.
        for c in (s, m, w):
            self.assertIsNone(closed_within(c, 2.5))
        s.sendall(b"SEND\ndestination:/queue/ok\nreceipt:r1\n\nhi\0")
        s.settimeout(TIMEOUT)
        self.assertIn(b"receipt-id:r1", s.recv(4096))
        m.sendall(b"\xc0\x00")  # PINGREQ
        self.assertEqual(m.recv(2), b"\xd0\x00")
        w.sendall(ws_frame(2, b"\xc0\x00"))
        self.assertEqual(w.recv(4)[2:], b"\xd0\x00")
        for c in (s, m, w):
            c.close()


if __name__ == "__main__":
    main()
