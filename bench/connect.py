#!/usr/bin/python3
"""What a login costs the broker (issue 13): logins per second and broker
CPU milliseconds per login, MQTT 3.1.1 and STOMP 1.2, for anonymous
clients (no users file), for users whose password hash is checked (scrypt
cost 14, the default, and cost 10), and for a user the cache of recent
successful checks knows (warm), in one run.

    bench/connect.py [--rounds 3] [--clients 4] [--build build-o2]

A login is: TCP connect, CONNECT with user name and password, the broker's
CONNACK (CONNECTED), DISCONNECT, close; each client process does its share
one after another. Hashed logins are each a user of their own, logged in
once (the cache would answer a second one); warm logins are one user again
and again after a first hashed one. The three brokers (no users, a users
file at cost 14, one at cost 10) run at once on free 127.0.0.1 ports with
the address limits off (every login comes from 127.0.0.1); the rounds
alternate between them. CPU is the broker's own (all threads, the hash
worker's included; utime + stime from /proc/PID/stat) over each batch; the
figures are medians over the rounds. The clients are Python: anonymous and
warm logins per second are theirs as much as the broker's, the CPU per
login is the broker's alone."""

import argparse
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import Wharfd, cpu_seconds  # noqa: E402

PASSWORD = "connect-bench-secret"
# No limit from one address: the bench is one address.
CONFIG = "max_connections_per_address = 0\nmax_new_connections_per_address = 0\n"


def mqtt_str(b):
    return len(b).to_bytes(2, "big") + b


def mqtt_connect(client_id, user):
    var = mqtt_str(b"MQTT") + bytes([4, 0x02 | (0xC0 if user else 0)]) + (60).to_bytes(2, "big")
    payload = mqtt_str(client_id.encode())
    if user:
        payload += mqtt_str(user.encode()) + mqtt_str(PASSWORD.encode())
    body = var + payload
    return bytes([0x10, len(body)]) + body  # every CONNECT here is under 128 bytes


def recv_until(s, done):
    buf = b""
    while not done(buf):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


def login(proto, port, user, n):
    """One login; True when the broker let it in."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        if proto == "mqtt":
            s.sendall(mqtt_connect("cb-%d-%d" % (os.getpid(), n), user))
            ack = recv_until(s, lambda b: len(b) >= 4)
            ok = ack[:4] == b"\x20\x02\x00\x00"
            if ok:
                s.sendall(b"\xe0\x00")
        else:
            head = "CONNECT\naccept-version:1.2\nhost:x\n"
            if user:
                head += "login:%s\npasscode:%s\n" % (user, PASSWORD)
            s.sendall((head + "\n").encode() + b"\0")
            ok = recv_until(s, lambda b: b"\0" in b).startswith(b"CONNECTED")
            if ok:
                s.sendall(b"DISCONNECT\n\n\0")
        return ok


def client(args):
    proto, port, users = args
    return sum(login(proto, port, u, i) for i, u in enumerate(users))


def batch(pool, broker, proto, users, clients):
    """(logins/s, broker CPU ms per login) of logging every one of users in."""
    shares = [(proto, broker.ports[proto], users[i::clients]) for i in range(clients)]
    cpu, t = cpu_seconds(broker.proc.pid), time.monotonic()
    ok = sum(pool.map(client, shares))
    took, cpu = time.monotonic() - t, cpu_seconds(broker.proc.pid) - cpu
    if ok != len(users):
        sys.exit("%d of %d %s logins refused:\n%s" % (len(users) - ok, len(users), proto,
                                                      broker.log_text()[-3000:]))
    return len(users) / took, cpu * 1000 / len(users)


def add_users(wharfctl, path, names, cost):
    for name in names:
        r = subprocess.run([wharfctl, "user", "add", name, "--users-file", path, "--cost",
                            str(cost)], input=PASSWORD + "\n", text=True, capture_output=True)
        if r.returncode != 0:
            sys.exit("wharfctl: " + r.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--anonymous", type=int, default=10000, help="logins per batch")
    ap.add_argument("--warm", type=int, default=10000)
    ap.add_argument("--cost14", type=int, default=40)
    ap.add_argument("--cost10", type=int, default=400)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build-o2"))
    ap.add_argument("--tmp", default="/var/tmp")
    a = ap.parse_args()
    wharfd = os.path.join(a.build, "src", "wharfd")
    wharfctl = os.path.join(a.build, "tools", "wharfctl", "wharfctl")
    d = tempfile.mkdtemp(prefix="connect-bench-users-", dir=a.tmp)
    protos = ("mqtt", "stomp")
    # Users for every hashed login of the run, each logged in once.
    fresh = {}
    for cost, n in ((14, a.cost14), (10, a.cost10)):
        fresh[cost] = {p: [["c%d-%s-r%d-%d" % (cost, p, r, i) for i in range(n)]
                           for r in range(a.rounds)] for p in protos}
        names = [u for p in protos for r in fresh[cost][p] for u in r]
        add_users(wharfctl, os.path.join(d, "users%d" % cost), names + ["warm"], cost)
    brokers = {}
    try:
        brokers[0] = Wharfd(wharfd, protos, CONFIG, a.tmp, prefix="connect-bench-")
        for cost in (14, 10):
            brokers[cost] = Wharfd(wharfd, protos, CONFIG + "[auth]\nusers_file = %s\n" %
                                   os.path.join(d, "users%d" % cost), a.tmp,
                                   prefix="connect-bench-")
        kinds = [("anonymous", 0), ("scrypt cost 14", 14), ("scrypt cost 10", 10),
                 ("warm cache", 10)]
        got = {(k, p): [] for k, _ in kinds for p in protos}
        with multiprocessing.Pool(a.clients) as pool:
            for p in protos:  # the warm user's first, hashed, login
                batch(pool, brokers[10], p, ["warm"], 1)
            for r in range(a.rounds):
                for k, cost in (kinds if r % 2 == 0 else kinds[::-1]):
                    for p in protos:
                        if k == "anonymous":
                            users = [None] * a.anonymous
                        elif k == "warm cache":
                            users = ["warm"] * a.warm
                        else:
                            users = fresh[cost][p][r]
                        got[(k, p)].append(batch(pool, brokers[cost], p, users, a.clients))
    finally:
        for b in brokers.values():
            b.stop()
        shutil.rmtree(d, ignore_errors=True)
    print("logins per second and broker CPU ms per login, %d client processes "
          "(median of %d rounds)" % (a.clients, a.rounds))
    print("%-16s %-6s %10s %12s" % ("", "", "logins/s", "CPU ms/login"))
    for k, _ in kinds:
        for p in protos:
            rate = statistics.median(x[0] for x in got[(k, p)])
            cpu = statistics.median(x[1] for x in got[(k, p)])
            print("%-16s %-6s %10.0f %12.3f" % (k, p, rate, cpu))


if __name__ == "__main__":
    main()
