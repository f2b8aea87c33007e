#!/usr/bin/python3
"""Replicated confirmations against a single node (issue 12, "Benchmark"):
wharf-bench's durable STOMP and AMQP loads of 1 KiB messages, 1 -> 1 and
10 -> 10 (producers -> competing consumers on a queue), window 1,000, against

  single   a wharfd alone (sync = always: fdatasync'd before the confirmation)
  pair     the active of a manual pair (role = primary / standby) with
           ha.sync = replicated: confirmed once on the active's disk and on
           the standby's (the standby on this machine, in sync before each run)

in one run, interleaved (round -> scenario -> single, pair). Per scenario:
confirmed msg/s (over the time until the last confirmation) and delivered
msg/s (until the last delivery), and broker CPU seconds per 100k delivered
messages: the single node's, and for the pair the active's, the standby's
and their sum; then the ratios pair/single of both rates (the issue's goal:
at least 0.5).

    bench/pair.py [--count 50000] [--rounds 1] [--window 1000] [--size 1024]
                  [--scenarios stomp-1x1,stomp-10x10,amqp-1x1,amqp-10x10]
                  [--wharfd build/src/wharfd] [--wharf-bench PATH] [--pin]
                  [--tmp /var/tmp] [--json FILE] [--keep]

--count is the messages per run in total (10 -> 10: count/10 per producer);
every run stops by itself (and has wharf-bench's --timeout). Build first
with `./dev build` (-O2, no ASan; never benchmark an ASan build).

CPU: every broker thread's run time from /proc/PID/task/*/schedstat, read by
this script before and after each wharf-bench process, for every node (the
same window for the active and the standby, so the sum is consistent); the
window includes connection set-up and the end-of-run marker (a few ms).
wharf-bench's own --broker-pid figure for the node it loads (over the
message flow only) is kept in the JSON lines as a cross-check.

--pin: all brokers on the last CPU, wharf-bench on the first (as
bench/run-suite). Off by default: on two CPUs pinning puts the active and
the standby on one core, which is not how a pair runs.

Data directories go to a temporary directory under --tmp (/var/tmp: a real
disk, not a tmpfs); the disk's fsync rate is measured there first. Nodes are
stopped by PID at the end (SIGTERM, SIGKILL after 10 s); the directory is
removed unless --keep."""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
SECRET = "bench-secret-0123456789abcdef"
SCENARIOS = {
    "stomp-1x1": ("stomp", 1),
    "stomp-10x10": ("stomp", 10),
    "amqp-1x1": ("amqp", 1),
    "amqp-10x10": ("amqp", 10),
}


def die(msg):
    sys.exit("bench/pair.py: " + msg)


def cpu_s(pid):
    """Run time of every thread of pid, in seconds (schedstat, ns)."""
    total, d = 0, "/proc/%d/task" % pid
    for t in os.listdir(d):
        try:
            with open("%s/%s/schedstat" % (d, t)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total / 1e9


def fsync_rate(where, seconds=1.0):
    path = os.path.join(where, "fsync.probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    block, n = b"\0" * 4096, 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        os.write(fd, block)
        os.fdatasync(fd)
        n += 1
    dt = time.monotonic() - t0
    os.close(fd)
    os.unlink(path)
    return n / dt


class Node:
    def __init__(self, wharfd, root, name, pin, ha=None):
        self.name = name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.log = os.path.join(self.dir, "log")
        conf = os.path.join(self.dir, "conf")
        with open(conf, "w") as f:
            f.write("log_level = info\nsync = always\n" + (ha or ""))
        cmd = pin + [wharfd, "-c", conf, "--data-dir", os.path.join(self.dir, "data"),
                     "--listen", "stomp://127.0.0.1:0", "--listen", "amqp://127.0.0.1:0"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.ports = {p: int(self.wait(r"listening %s \S+:(\d+)" % p).group(1))
                      for p in ("stomp", "amqp")}

    def output(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait(self, pattern, timeout=30, count=1):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = list(rx.finditer(self.output()))
            if len(found) >= count:
                return found[-1]
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        die("%s: no %r (x%d) in its log:\n%s" % (self.name, pattern, count, self.output()[-4000:]))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def ha_conf(role, node_id, peer):
    return ("[ha]\nrole = %s\nnode_id = %s\nlisten = repl://127.0.0.1:0\npeer = %s\n"
            "secret = %s\nsync = replicated\n" % (role, node_id, peer, SECRET))


def run_bench(a, pin, target, others, proto, n, queue):
    """One wharf-bench run against target; returns its JSON, with the CPU
    of target and each node of others over the process's lifetime."""
    per = a.count // n
    cmd = pin + [a.wharf_bench, "--url", "%s://127.0.0.1:%d" % (proto, target.ports[proto]),
                 "--queue=" + queue, "--persistent", "--size", str(a.size), "--window",
                 str(a.window), "--publishers", str(n), "--subscribers", str(n), "--count",
                 str(per), "--broker-pid", str(target.pid), "--timeout", str(a.timeout), "--json",
                 "--quiet"]
    nodes = [target] + others
    c0 = [cpu_s(x.pid) for x in nodes]
    r = subprocess.run(cmd, capture_output=True, text=True)
    c1 = [cpu_s(x.pid) for x in nodes]
    try:
        j = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        die("wharf-bench exited %d without a JSON line:\n%s\n%s\n%s" %
            (r.returncode, " ".join(cmd), r.stdout, r.stderr))
    j["cmd"] = " ".join(cmd)
    j["node_cpu_s"] = {x.name: c1[i] - c0[i] for i, x in enumerate(nodes)}
    if r.returncode != 0 or j.get("status") != 0:
        j["failed"] = "wharf-bench exit %d: %s %s" % (r.returncode, j.get("result"), r.stderr[-300:])
    return j


def per100k(cpu, j):
    n = j.get("received") or j.get("confirmed") or 1
    return cpu / n * 1e5


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50000, help="messages per run in total")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--timeout", type=int, default=300, help="wharf-bench's deadline per run")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--wharfd", default=os.environ.get("WHARFD") or
                    os.path.join(TOP, "build", "src", "wharfd"))
    ap.add_argument("--wharf-bench", default=os.environ.get("WHARF_BENCH") or
                    os.path.join(TOP, "build", "tools", "wharf-bench", "wharf-bench"))
    ap.add_argument("--pin", action="store_true", help="brokers on the last CPU, bench on the first")
    ap.add_argument("--tmp", default=os.environ.get("BENCH_TMP", "/var/tmp"))
    ap.add_argument("--json", help="also write every run's JSON line to this file")
    ap.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    a = ap.parse_args()
    scen = a.scenarios.split(",")
    for s in scen:
        if s not in SCENARIOS:
            die("unknown scenario %s (%s)" % (s, ", ".join(SCENARIOS)))
    for exe in (a.wharfd, a.wharf_bench):
        if not os.access(exe, os.X_OK):
            die("%s not built (./dev build)" % exe)
    ncpu = os.cpu_count() or 1
    pin_b, pin_w = [], []
    if a.pin and ncpu >= 2 and shutil.which("taskset"):
        pin_b, pin_w = ["taskset", "-c", str(ncpu - 1)], ["taskset", "-c", "0"]

    root = tempfile.mkdtemp(prefix="wharf-pair-bench-", dir=a.tmp)
    nodes, results = [], []
    try:
        fs = fsync_rate(root)
        single = Node(a.wharfd, root, "single", pin_b)
        nodes.append(single)
        act = Node(a.wharfd, root, "active", pin_b, ha_conf("primary", "a", "repl://127.0.0.1:9"))
        nodes.append(act)
        repl = int(act.wait(r"listening repl \S+:(\d+)").group(1))
        sb = Node(a.wharfd, root, "standby", pin_b,
                  ha_conf("standby", "b", "repl://127.0.0.1:%d" % repl))
        nodes.append(sb)
        act.wait(r"replication: standby b in sync")
        print("wharfd %s; %d CPUs; fsync floor %.0f/s (4 KiB fdatasync in %s)" %
              (a.wharfd, ncpu, fs, a.tmp), file=sys.stderr)
        k = 0
        for rnd in range(a.rounds):
            for s in scen:
                proto, n = SCENARIOS[s]
                for mode in ("single", "pair"):
                    k += 1
                    q = "bench.%s.%s.%d" % (s.replace("-", "."), mode, rnd)
                    if mode == "single":
                        j = run_bench(a, pin_w, single, [], proto, n, q)
                    else:
                        st = act.output()
                        if st.count("standby b dropped") >= st.count("standby b in sync"):
                            die("the standby is not in sync before %s" % s)
                        j = run_bench(a, pin_w, act, [sb], proto, n, q)
                        st = act.output()
                        j["standby_dropped"] = st.count("standby b dropped")
                        if j["standby_dropped"]:
                            j["failed"] = "the standby was dropped:\n" + st[-2000:]
                    j.update(scenario=s, mode=mode, round=rnd)
                    results.append(j)
                    print("[%d] %-11s %-6s %8.0f msg/s delivered%s" %
                          (k, s, mode, j["received_per_s"],
                           "  FAILED: " + j["failed"] if j.get("failed") else ""),
                          file=sys.stderr)
    finally:
        for x in reversed(nodes):
            x.stop()
        if a.keep:
            print("kept %s" % root, file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    if a.json:
        with open(a.json, "w") as f:
            for j in results:
                f.write(json.dumps(j) + "\n")
    report(a, scen, results, fs, ncpu)
    if any(j.get("failed") for j in results):
        sys.exit(1)


def report(a, scen, results, fs, ncpu):
    med = statistics.median
    print("durable 1 KiB through a queue, window %d, %d messages per run, %d round(s)%s; "
          "fsync floor %.0f/s; %d CPUs" % (a.window, a.count, a.rounds,
                                          ", pinned" if a.pin else "", fs, ncpu))
    print("CPU: broker seconds per 100k delivered messages (median over rounds)\n")
    hdr = ("| scenario | setup | confirmed msg/s | delivered msg/s | CPU node/active | "
           "CPU standby | CPU sum | pair/single confirmed | pair/single delivered |")
    print(hdr)
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in scen:
        rate = {}
        for mode in ("single", "pair"):
            rs = [j for j in results if j["scenario"] == s and j["mode"] == mode
                  and not j.get("failed")]
            if not rs:
                print("| %s | %s | failed | | | | | | |" % (s, mode))
                continue
            conf = med([j["sent_per_s"] for j in rs])
            deliv = med([j["received_per_s"] for j in rs])
            rate[mode] = (conf, deliv)
            node = med([per100k(j["node_cpu_s"]["single" if mode == "single" else "active"], j)
                        for j in rs])
            if mode == "single":
                print("| %s | single | %.0f | %.0f | %.2f | - | %.2f | | |" %
                      (s, conf, deliv, node, node))
            else:
                sbc = med([per100k(j["node_cpu_s"]["standby"], j) for j in rs])
                r = rate.get("single")
                ratio = ("%.2f | %.2f" % (conf / r[0], deliv / r[1])) if r else "- | -"
                print("| %s | pair, replicated | %.0f | %.0f | %.2f | %.2f | %.2f | %s |" %
                      (s, conf, deliv, node, sbc, node + sbc, ratio))
    fails = [j for j in results if j.get("failed")]
    for j in fails:
        print("\nFAILED %s %s round %d: %s" % (j["scenario"], j["mode"], j["round"], j["failed"]))


if __name__ == "__main__":
    main()
