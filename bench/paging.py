#!/usr/bin/python3
"""Paging demonstration (issue 6): N persistent 1 KiB messages into one queue
with no consumer, then drained in order; prints the broker's peak RSS
(VmHWM) after the fill and after the drain, and checks that every message
came back once, in order.

    bench/paging.py [--count 2000000] [--size 1024] [--restart] [--wharfd build/src/wharfd]

It starts its own wharfd on a free 127.0.0.1 port with a temporary data
directory (on the disk of /var/tmp, not a tmpfs) and stops it at the end.
STOMP over a plain socket: SENDs are pipelined with a receipt every 1,000
messages and at most 10 receipts outstanding; the drain uses ack:auto.
With --restart the broker is killed (-9) after the fill and started again on
the same data directory: replay pages the queue as the run did."""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def vm(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024  # MiB
    return -1


class Stomp:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
        self.frame()

    def frame(self):
        """(command, headers, body) of the next frame."""
        while True:
            while self.buf.startswith(b"\n"):
                self.buf = self.buf[1:]
            end = self.buf.find(b"\n\n")
            if end >= 0:
                head = self.buf[:end].decode().split("\n")
                headers = dict(h.split(":", 1) for h in head[1:])
                start = end + 2
                if "content-length" in headers:
                    stop = start + int(headers["content-length"])
                    if len(self.buf) >= stop + 1:
                        body = self.buf[start:stop]
                        self.buf = self.buf[stop + 1:]
                        return head[0], headers, body
                else:
                    nul = self.buf.find(b"\0", start)
                    if nul >= 0:
                        body = self.buf[start:nul]
                        self.buf = self.buf[nul + 1:]
                        return head[0], headers, body
            data = self.s.recv(1 << 20)
            if not data:
                raise RuntimeError("connection closed")
            self.buf += data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--restart", action="store_true")
    ap.add_argument("--wharfd", default=os.path.join(HERE, "..", "build", "src", "wharfd"))
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="wharf-paging-", dir="/var/tmp")
    log = open(os.path.join(tmp, "wharfd.log"), "w+")

    def start():
        log.seek(0)
        log.truncate()
        p = subprocess.Popen([a.wharfd, "--data-dir", os.path.join(tmp, "data"),
                              "--listen", "stomp://127.0.0.1:0"], stdout=log, stderr=subprocess.STDOUT)
        for _ in range(60000):
            log.seek(0)
            m = re.search(r"listening stomp 127\.0\.0\.1:(\d+)", log.read())
            if m:
                return p, int(m.group(1))
            if p.poll() is not None:
                break
            time.sleep(0.01)
        sys.exit("wharfd did not start")

    proc, port = start()
    try:
        pad = b"x" * (a.size - 8)
        c = Stomp(port)
        t0 = time.monotonic()
        outstanding = 0
        batch = []
        for i in range(a.count):
            body = b"%08d" % i + pad if a.size >= 8 else b"x" * a.size
            rc = b"receipt:%d\n" % i if i % 1000 == 999 or i == a.count - 1 else b""
            batch.append(b"SEND\ndestination:/queue/paging\npersistent:true\n%scontent-length:%d\n\n%s\0"
                         % (rc, len(body), body))
            if rc:
                c.s.sendall(b"".join(batch))
                batch = []
                outstanding += 1
                while outstanding >= 10 or (i == a.count - 1 and outstanding):
                    cmd, h, _ = c.frame()
                    if cmd != "RECEIPT":
                        sys.exit("unexpected %s %s" % (cmd, h))
                    outstanding -= 1
        fill = time.monotonic() - t0
        hwm_fill = vm(proc.pid, "VmHWM")
        print("filled %d x %d B in %.1f s (%.0f msg/s); broker peak RSS %d MiB, now %d MiB"
              % (a.count, a.size, fill, a.count / fill, hwm_fill, vm(proc.pid, "VmRSS")))
        du = subprocess.run(["du", "-sm", os.path.join(tmp, "data")], capture_output=True, text=True)
        print("data directory: %s MiB" % du.stdout.split()[0])
        if a.restart:
            proc.kill()
            proc.wait()
            t0 = time.monotonic()
            proc, port = start()
            hwm = vm(proc.pid, "VmHWM")
            hwm_fill = max(hwm_fill, hwm)
            print("killed (-9) and restarted: listening after %.1f s, broker peak RSS %d MiB"
                  % (time.monotonic() - t0, hwm))

        c2 = Stomp(port)
        c2.s.sendall(b"SUBSCRIBE\nid:1\ndestination:/queue/paging\nack:auto\n\n\0")
        t0 = time.monotonic()
        for i in range(a.count):
            cmd, h, body = c2.frame()
            if cmd != "MESSAGE" or (a.size >= 8 and body[:8] != b"%08d" % i) or len(body) != a.size:
                sys.exit("message %d: got %s %r" % (i, cmd, body[:8]))
        drain = time.monotonic() - t0
        print("drained %d in order, none missing, in %.1f s (%.0f msg/s); broker peak RSS %d MiB"
              % (a.count, drain, a.count / drain, vm(proc.pid, "VmHWM")))
        ok = hwm_fill < 256
        print("peak RSS under 256 MiB while %d messages waited: %s" % (a.count, "yes" if ok else "NO"))
        return 0 if ok else 1
    finally:
        proc.terminate()
        proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
