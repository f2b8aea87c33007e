#!/usr/bin/python3
"""Replicated confirmations against a single node (issue 12): durable STOMP
publishes of 1 KiB, each with a receipt, to a single wharfd and then to the
active of a pair with sync = replicated (the standby on the same machine);
prints msg/s for both and their ratio.

    bench/pair.py [--count 20000] [--size 1024] [--conns 4] [--window 64]
                  [--wharfd build-o2/src/wharfd]

Each run starts its own nodes on free 127.0.0.1 ports with temporary data
directories on the disk of /var/tmp (not a tmpfs), waits for the standby to
be in sync, and stops them at the end. Each connection keeps at most
`window` receipts outstanding; the rate is receipts over wall time."""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "bench-secret-0123456789abcdef"


class Node:
    def __init__(self, wharfd, root, name, config=None):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.log = os.path.join(self.dir, "log")
        cmd = [wharfd, "--data-dir", os.path.join(self.dir, "data"), "--listen",
               "stomp://127.0.0.1:0"]
        if config:
            with open(os.path.join(self.dir, "conf"), "w") as f:
                f.write(config)
            cmd += ["-c", os.path.join(self.dir, "conf")]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)

    def wait(self, pattern, timeout=30):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = rx.search(open(self.log, errors="replace").read())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        sys.exit("no %r in:\n%s" % (pattern, open(self.log).read()))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def publisher(port, n, size, window, done):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
    buf = b""
    while b"\0" not in buf:
        buf += s.recv(65536)
    buf = buf[buf.index(b"\0") + 1:]
    body = b"x" * size
    sent = got = 0
    while got < n:
        while sent < n and sent - got < window:
            s.sendall(b"SEND\ndestination:/queue/bench\npersistent:true\nreceipt:%d\n"
                      b"content-length:%d\n\n%s\0" % (sent, size, body))
            sent += 1
        data = s.recv(65536)
        if not data:
            sys.exit("connection closed")
        buf += data
        end = buf.rfind(b"\0") + 1  # whole frames only
        got += buf[:end].count(b"RECEIPT\n")
        if buf[:end].count(b"ERROR\n"):
            sys.exit("the broker sent an ERROR: %r" % buf[:end][:300])
        buf = buf[end:]
    s.close()
    done.append(got)


def run(port, count, size, conns, window):
    done = []
    per = count // conns
    ts = [threading.Thread(target=publisher, args=(port, per, size, window, done))
          for _ in range(conns)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(done) / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--wharfd", default=os.path.join(HERE, "..", "build-o2", "src", "wharfd"))
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="wharf-pair-bench-", dir="/var/tmp")
    try:
        single = Node(a.wharfd, root, "single")
        port = int(single.wait(r"listening stomp \S+:(\d+)").group(1))
        r1 = run(port, a.count, a.size, a.conns, a.window)
        single.stop()

        ha = ("[ha]\nnode_id = %s\nrole = %s\nlisten = repl://127.0.0.1:0\npeer = %s\n"
              "secret = " + SECRET + "\nsync = replicated\n")
        act = Node(a.wharfd, root, "a", ha % ("a", "primary", "repl://127.0.0.1:9"))
        repl = int(act.wait(r"listening repl \S+:(\d+)").group(1))
        port = int(act.wait(r"listening stomp \S+:(\d+)").group(1))
        sb = Node(a.wharfd, root, "b", ha % ("b", "standby", "repl://127.0.0.1:%d" % repl))
        act.wait(r"standby b in sync")
        r2 = run(port, a.count, a.size, a.conns, a.window)
        log = open(act.log).read()
        sb.stop()
        act.stop()
        if "dropped" in log:
            print("warning: the standby was dropped during the run", file=sys.stderr)
        print("durable STOMP %d B, %d conns x window %d, %d msgs" % (a.size, a.conns, a.window,
                                                                     a.count))
        print("single node:           %8.0f msg/s" % r1)
        print("pair, sync=replicated: %8.0f msg/s" % r2)
        print("ratio:                 %8.2f" % (r2 / r1))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
