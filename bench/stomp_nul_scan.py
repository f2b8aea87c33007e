#!/usr/bin/python3
"""wharfd's CPU time to take a ~4 MiB STOMP body without content-length
(issue 16.11): sent in 1 KiB writes, the last 256 KiB in 64-byte writes (one
read each), as a slow or hostile client would; with `clen`, the same body
with content-length, for comparison. Prints the broker's CPU seconds and the
wall time from the first body byte to the RECEIPT.

    WHARFD=build/src/wharfd bench/stomp_nul_scan.py [clen]

It starts its own wharfd (tests/integration/wharftest.py's Broker) on a free
127.0.0.1 port and stops it at the end."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
os.environ.setdefault("WHARFD", "build/src/wharfd")
from wharftest import Broker  # noqa: E402

SIZE, CHUNK, DRIP, DRIP_CHUNK = 4 * 1024 * 1024 - 4096, 1024, 256 * 1024, 64
CLEN = sys.argv[1:] == ["clen"]


def cpu_seconds(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main():
    with Broker(("stomp",)) as b:
        s = socket.create_connection(("127.0.0.1", b.stomp_port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
        buf = b""
        while b"\0" not in buf:
            buf += s.recv(4096)
        head = b"SEND\ndestination:/queue/big\nreceipt:r\n"
        if CLEN:
            head += b"content-length:%d\n" % SIZE
        s.sendall(head + b"\n")
        c0, t0 = cpu_seconds(b.proc.pid), time.monotonic()
        chunk = b"x" * CHUNK
        for _ in range((SIZE - DRIP) // CHUNK):
            s.sendall(chunk)
        drip = b"x" * DRIP_CHUNK
        for _ in range(DRIP // DRIP_CHUNK):
            s.sendall(drip)
            time.sleep(0.0002)
        s.sendall(b"\0")
        buf = b""
        while b"receipt-id:r" not in buf:
            d = s.recv(4096)
            if not d:
                sys.exit("closed: %r" % buf)
            buf += d
        print("broker cpu %.2f s, wall %.2f s" % (cpu_seconds(b.proc.pid) - c0,
                                                   time.monotonic() - t0))
        s.close()


if __name__ == "__main__":
    main()
