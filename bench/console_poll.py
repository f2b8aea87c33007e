#!/usr/bin/python3
"""What the web console's polling asks of the broker (docs/console.md): the
six GETs console.js makes every 2 s (broker, queues, topics, connections,
pair, alarms), timed one after the other over one keep-alive connection
against a wharfd holding --queues empty queues, and each list alone.

    bench/console_poll.py [--queues 10,1000] [--rounds 50] [--build build-o2]

Prints, per queue count, the median and 95th percentile of a whole poll's
wall time and its bytes, then each path's median."""

import argparse
import http.client
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import Wharfd  # noqa: E402

PATHS = ["/api/v1/broker", "/api/v1/queues", "/api/v1/topics", "/api/v1/connections",
         "/api/v1/pair", "/api/v1/alarms"]


def get(c, method, path):
    c.request(method, path)
    return c.getresponse().read()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queues", default="10,1000")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--build", default="build-o2")
    a = ap.parse_args()
    binary = os.path.join(HERE, "..", a.build, "src", "wharfd")
    for n in [int(x) for x in a.queues.split(",")]:
        w = Wharfd(binary, ["stomp"], "[admin]\nlisten = http://127.0.0.1:0\n", listeners=2)
        try:
            c = http.client.HTTPConnection("127.0.0.1", w.ports["admin"], timeout=30)
            for i in range(n):
                get(c, "PUT", "/api/v1/queues/bench.q%d" % i)
            polls, size = [], 0
            per_path = {p: [] for p in PATHS}
            for _ in range(a.rounds):
                start, size = time.perf_counter(), 0
                for p in PATHS:
                    t = time.perf_counter()
                    size += len(get(c, "GET", p))
                    per_path[p].append(time.perf_counter() - t)
                polls.append(time.perf_counter() - start)
            polls.sort()
            print("%d queues: a poll median %.2f ms, p95 %.2f ms, %d bytes" % (
                n, 1000 * statistics.median(polls), 1000 * polls[int(0.95 * len(polls)) - 1],
                size))
            for p in PATHS:
                print("  %-22s median %.2f ms" % (p, 1000 * statistics.median(per_path[p])))
        finally:
            w.stop()


if __name__ == "__main__":
    main()
