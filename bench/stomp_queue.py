#!/usr/bin/python3
"""Broker CPU per 100k messages through one STOMP queue (1 producer, 1 consumer).

A stand-in until tools/wharf-bench lands: raw pipelined STOMP over sockets,
producer and consumer in separate processes so the load generator is not the
bottleneck. Reads the broker's CPU time from /proc over the message flow only.

    bench/stomp_queue.py [--wharfd build/src/wharfd] [--count 100000] [--size 1024]
"""
import argparse
import multiprocessing as mp
import os
import re
import socket
import subprocess
import sys
import tempfile
import time


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:bench\nheart-beat:0,0\n\n\x00")
    buf = b""
    while b"\x00" not in buf:
        buf += s.recv(4096)
    assert buf.startswith(b"CONNECTED"), buf
    return s


def producer(port, count, size, window, ready):
    s = connect(port)
    body = b"x" * size
    frame = b"SEND\ndestination:/queue/bench\ncontent-length:%d\n\n" % size + body + b"\x00"
    receipt_every = 1000
    ready.wait()
    sent = acked = 0
    pending = b""
    while sent < count:
        n = min(receipt_every, count - sent)
        batch = frame * (n - 1)
        batch += (b"SEND\ndestination:/queue/bench\nreceipt:%d\ncontent-length:%d\n\n" % (sent + n, size)
                  + body + b"\x00")
        s.sendall(batch)
        sent += n
        while sent - acked > window:
            pending += s.recv(65536)
            acked = max([acked] + [int(x) for x in re.findall(rb"receipt-id:(\d+)", pending)])
            pending = pending[-64:]
    # A close with receipts unread would reset the connection and lose what
    # the broker has not read yet: wait for the DISCONNECT receipt.
    s.sendall(b"DISCONNECT\nreceipt:bye\n\n\x00")
    while b"receipt-id:bye" not in pending:
        chunk = s.recv(65536)
        if not chunk:
            break
        pending = pending[-64:] + chunk
    s.close()


def consumer(port, count, result, ready):
    s = connect(port)
    s.sendall(b"SUBSCRIBE\nid:1\ndestination:/queue/bench\nack:auto\n\n\x00")
    ready.set()
    got = 0
    while got < count:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += chunk.count(b"\x00")
    result.value = got
    s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wharfd", default=os.path.join(os.path.dirname(__file__), "..", "build", "src", "wharfd"))
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--window", type=int, default=10000, help="unconfirmed messages in flight")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix="wharf-bench-")
    log = open(os.path.join(d, "log"), "w+")
    p = subprocess.Popen([a.wharfd] + (["-c", os.environ["BENCH_CONF"]] if os.environ.get("BENCH_CONF") else []) + ["--data-dir", d + "/data", "--listen", "stomp://127.0.0.1:0"],
                         stderr=log, stdout=log)
    port = None
    deadline = time.time() + 10
    while port is None and time.time() < deadline:
        log.seek(0)
        m = re.search(r"listening stomp \S+:(\d+)", log.read())
        port = int(m.group(1)) if m else None
        time.sleep(0.05)
    try:
        rows = []
        for r in range(a.rounds):
            ready = mp.Event()
            result = mp.Value("l", 0)
            c = mp.Process(target=consumer, args=(port, a.count, result, ready))
            c.start()
            ready.wait()
            cpu0, t0 = cpu_seconds(p.pid), time.time()
            pr = mp.Process(target=producer, args=(port, a.count, a.size, a.window, ready))
            pr.start()
            c.join(120)
            t1, cpu1 = time.time(), cpu_seconds(p.pid)
            pr.join(10)
            if result.value != a.count:
                log.seek(0)
                sys.exit("round %d: received %d of %d\n%s" % (r, result.value, a.count, log.read()[-2000:]))
            cpu = cpu1 - cpu0
            rows.append((a.count / (t1 - t0), cpu * 100000 / a.count))
            print("round %d: %.0f msg/s, broker CPU %.3f s per 100k (%.2f us/msg)"
                  % (r + 1, rows[-1][0], rows[-1][1], rows[-1][1] * 10))
        rates = sorted(x[0] for x in rows)
        cpus = sorted(x[1] for x in rows)
        mid = len(rows) // 2
        print("median: %.0f msg/s, broker CPU %.3f s per 100k %d-byte messages (spread %.3f-%.3f)"
              % (rates[mid], cpus[mid], a.size, cpus[0], cpus[-1]))
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()
