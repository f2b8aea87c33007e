#!/usr/bin/python3
"""What a hostile client costs the broker (issue 11): each attack runs
against a fresh wharfd of its own, and the table gives the broker's peak
RSS (VmHWM), its CPU seconds during the attack and what the attacker saw.
Give several binaries to compare them in one run (before/after a change):

    bench/attacks.py --wharfd OLD/src/wharfd --wharfd build/src/wharfd [--only NAME,...]

Attacks (every loop is bounded; all traffic is to 127.0.0.1):
  ws-fragments     4 WebSocket connections, each one message in 1,200,000
                   one-byte continuation frames
  slow-handshake   2,000 connections that send nothing or half a frame,
                   then a byte every 5 s; how many are still open after 15 s
  subscribe-40k    one MQTT SUBSCRIBE with 40,000 filters, while another
                   client pings: time to the SUBACK, the longest ping
  stomp-tx         200 transactional 4 MiB SENDs that are never committed
  queued-1byte     500,000 persistent one-byte messages in one queue:
                   RSS per queued message
  sasl-init        100,000 AMQP sasl-init frames on one connection
  fd-limit         a broker with 256 descriptors and 400 connections
                   arriving: its CPU seconds over 5 s, and its log's size
"""

import argparse
import os
import resource
import shutil
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
    return -1


class Wharfd(benchlib.Wharfd):
    """A broker to attack, with at most nofile descriptors if nofile."""

    def __init__(self, binary, protocols, config="", nofile=None):
        pre = None
        if nofile:
            pre = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        super().__init__(binary, protocols, config, prefix="wharf-attack-", preexec=pre)

    def hwm(self):
        return status(self.proc.pid, "VmHWM")

    def cpu(self):
        return benchlib.cpu_seconds(self.proc.pid)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        size = os.path.getsize(self.log)
        shutil.rmtree(self.dir, ignore_errors=True)
        return size


def connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_by_peer(s, wait=0.5):
    s.settimeout(wait)
    try:
        while True:
            if not s.recv(65536):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def send_all(s, data):
    """False once the broker has closed the connection."""
    try:
        s.sendall(data)
        return True
    except OSError:
        return False


# ---- attacks: each returns a one-line outcome --------------------------------

def ws_frame(opcode, payload, fin):
    head = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)])
    return head + b"\0\0\0\0" + payload  # a zero mask leaves the payload as it is


def ws_open(port, sub):
    s = connect(port)
    s.sendall(("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: %s\r\n\r\n" % sub).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    return s


def attack_ws_fragments(w):
    frames = 1200000
    chunk = ws_frame(0, b"x", False) * 10000
    results = []

    def one():
        s = ws_open(w.ports["ws"], "mqtt")
        sent = 0
        ok = send_all(s, ws_frame(2, b"\x10", False))
        while ok and sent < frames:
            ok = send_all(s, chunk)
            sent += 10000
        results.append((sent, not ok or closed_by_peer(s)))
        s.close()

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    closed = sum(1 for _, c in results if c)
    return "%d of 4 connections closed by the broker, after %s frames" % (
        closed, "/".join(str(n) for n, _ in results))


def attack_slow_handshake(w):
    socks = []
    ports = [w.ports[p] for p in ("stomp", "mqtt", "amqp", "ws")]
    partial = [b"CONNECT\naccept-", b"\x10\x20\x00\x04MQ", b"AMQP\x00\x01", b"GET / HTTP/1.1\r\nHo"]
    for i in range(2000):
        try:
            s = connect(ports[i % 4])
        except OSError:
            break
        if i % 2:
            send_all(s, partial[i % 4])
        socks.append(s)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for s in socks:
            send_all(s, b"\n" if s.fileno() % 2 else b"")
        time.sleep(5)
    still = sum(1 for s in socks if not closed_by_peer(s, 0.001))
    for s in socks:
        s.close()
    return "%d of %d still open after 15 s" % (still, len(socks))


def mqtt_str(t):
    b = t.encode()
    return struct.pack(">H", len(b)) + b


def mqtt_packet(ptype, flags, body):
    n, enc = len(body), b""
    while True:
        d, n = n % 128, n // 128
        enc += bytes([d | (0x80 if n else 0)])
        if not n:
            break
    return bytes([ptype << 4 | flags]) + enc + body


def mqtt_connect(port, cid):
    s = connect(port, 60)
    s.sendall(mqtt_packet(1, 0, mqtt_str("MQTT") + bytes([4, 2]) + struct.pack(">H", 60) +
                          mqtt_str(cid)))
    s.recv(4)
    return s


def attack_subscribe_40k(w):
    pinger = mqtt_connect(w.ports["mqtt"], "pinger")
    big = mqtt_connect(w.ports["mqtt"], "big")
    body = struct.pack(">H", 1) + b"".join(mqtt_str("f/%d/+/x" % i) + b"\x01" for i in range(40000))
    worst, done = [0.0], threading.Event()

    def ping():
        while not done.is_set():
            t = time.monotonic()
            pinger.sendall(b"\xc0\x00")
            pinger.recv(2)
            worst[0] = max(worst[0], time.monotonic() - t)
            time.sleep(0.01)

    t = threading.Thread(target=ping)
    t.start()
    start = time.monotonic()
    big.sendall(mqtt_packet(8, 2, body))
    got = b""
    while True:
        chunk = big.recv(65536)
        if not chunk:
            break
        got += chunk
        if len(got) >= 4 and got[0] == 0x90:
            need = 1 + 3 + 40002  # a 3-byte remaining length
            if len(got) >= need:
                break
    took = time.monotonic() - start
    granted = sum(1 for b in got[6:] if b in (0, 1, 2)) if got else 0
    done.set()
    t.join()
    return "SUBACK after %.2f s (%d of 40000 granted); longest ping meanwhile %.0f ms" % (
        took, granted, worst[0] * 1000)


def attack_stomp_tx(w):
    s = connect(w.ports["stomp"])
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0BEGIN\ntransaction:t\n\n\0")
    body = b"x" * (4 << 20)
    sent = 0
    for i in range(200):
        frame = (b"SEND\ndestination:/queue/tx\ntransaction:t\ncontent-length:%d\n\n" % len(body)
                 + body + b"\0")
        if not send_all(s, frame):
            break
        sent += 1
    closed = closed_by_peer(s, 2)
    s.close()
    return "%d SENDs of 4 MiB taken, %s" % (sent, "then closed" if closed else "connection open")


def attack_queued_1byte(w):
    s = connect(w.ports["stomp"])
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
    n, batch = 500000, 1000
    frame = b"SEND\ndestination:/queue/small\npersistent:true\n\nx\0"
    rss0 = status(w.proc.pid, "VmRSS")
    buf = b""
    for i in range(n // batch):
        s.sendall(frame * (batch - 1) + b"SEND\ndestination:/queue/small\npersistent:true\n"
                  b"receipt:r%d\n\nx\0" % i)
        while b"receipt-id:r%d\n" % i not in buf:
            buf = buf[-256:] + s.recv(65536)
    rss = status(w.proc.pid, "VmRSS")
    s.close()
    return "%d messages waiting: RSS %d MiB (%d bytes each)" % (
        n, rss, (rss - rss0) * 1048576 // n)


def attack_sasl_init(w):
    s = connect(w.ports["amqp"])
    fields = b"\x01\xa3\x09ANONYMOUS"  # a list of one field: the mechanism
    body = b"\x00\x53\x41\xc0" + bytes([len(fields)]) + fields
    init = struct.pack(">IBBH", 8 + len(body), 2, 1, 0) + body
    sent = 0
    ok = send_all(s, b"AMQP\x03\x01\x00\x00")
    while ok and sent < 100000:
        ok = send_all(s, init * 1000)
        sent += 1000
    closed = not ok or closed_by_peer(s, 1)
    s.close()
    return "%d sasl-init frames sent, %s" % (sent, "closed" if closed else "connection open")


def attack_fd_limit(w):
    socks = []
    cpu0 = w.cpu()
    start = time.monotonic()
    for i in range(400):
        try:
            socks.append(connect(w.ports["stomp"], 1))
        except OSError:
            pass
    time.sleep(max(0, 5 - (time.monotonic() - start)))
    cpu = w.cpu() - cpu0
    for s in socks:
        s.close()
    return "%.2f CPU s in 5 s" % cpu


ATTACKS = {
    "ws-fragments": (attack_ws_fragments, ("ws",), "", None),
    "slow-handshake": (attack_slow_handshake, ("stomp", "mqtt", "amqp", "ws"), "", None),
    "subscribe-40k": (attack_subscribe_40k, ("mqtt",), "", None),
    "stomp-tx": (attack_stomp_tx, ("stomp",), "[stomp]\nmax_frame_size = 8MiB\n", None),
    "queued-1byte": (attack_queued_1byte, ("stomp",), "sync = never\n", None),
    "sasl-init": (attack_sasl_init, ("amqp",), "", None),
    "fd-limit": (attack_fd_limit, ("stomp",), "", 256),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wharfd", action="append", required=True)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    names = [n for n in ATTACKS if not args.only or n in args.only.split(",")]
    print("| attack | binary | peak RSS MiB | CPU s | log KiB | broker | outcome |")
    print("|---|---|---:|---:|---:|---|---|")
    for name in names:
        fn, protos, config, nofile = ATTACKS[name]
        for binary in args.wharfd:
            w = Wharfd(binary, protos, config, nofile)
            cpu0 = w.cpu()
            try:
                outcome = fn(w)
            except Exception as e:  # the attack's own failure is an outcome too
                outcome = "attack stopped: %r" % (e,)
            hwm, cpu, alive = w.hwm(), w.cpu() - cpu0, w.alive()
            log = w.stop()
            print("| %s | %s | %d | %.2f | %d | %s | %s |" % (
                name, binary, hwm, cpu, log // 1024, "up" if alive else "DIED", outcome))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
