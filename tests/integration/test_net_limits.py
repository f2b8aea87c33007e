#!/usr/bin/env python3
"""Connection limits: out of file descriptors the broker pauses accepting
instead of spinning, `max_connections` (global and per listener) refuses
the connections past it, and `handshake_timeout` closes connections that
never finish their protocol's handshake."""
import os
import re
import resource
import socket
import time
import unittest

from wharftest import Broker, main, wait_until

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


class DescriptorLimit(unittest.TestCase):
    """Issue 11.3: at the descriptor limit the listener pauses accepting."""

    def test_out_of_descriptors_no_busy_loop(self):
        with Broker(protocols=("stomp",)) as b:
            pid = b.proc.pid
            port = b.ports["stomp"]
            self.assertTrue(stomp_connected(port))
            used = len(os.listdir("/proc/%d/fd" % pid))
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (used + 10, used + 10))
            clients = []
            for _ in range(40):
                s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
                s.sendall(CONNECT)
                clients.append(s)
            b.wait_for_log("accept failed: Too many open files")
            lines0 = b.output().count("\n")
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            # Two seconds at the limit, with connections waiting.
            while time.monotonic() - t0 < 2:
                time.sleep(0.1)
            cpu = cpu_seconds(pid) - cpu0
            lines = b.output().count("\n") - lines0
            self.assertLess(cpu, 0.5, "broker CPU %.2fs in 2s at the descriptor limit" % cpu)
            self.assertLess(lines, 5, "log grew by %d lines in 2s" % lines)
            for s in clients:
                s.close()
            # Descriptors free: the broker accepts again.
            wait_until(lambda: stomp_connected(port, 2), TIMEOUT, what="accepting again")
            self.assertEqual(b.stop(), 0, b.output())


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
            b.wait_for_log(r"listener \S+: connection refused: max_connections \(3\) reached")
            # A line per listener, not per refusal: the rest are counted.
            self.assertEqual(len(re.findall("max_connections \\(3\\) reached", b.output())), 2)
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


if __name__ == "__main__":
    main()
