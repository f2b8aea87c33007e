#!/usr/bin/python3
"""What the ACLs cost the broker (issue 13): broker CPU seconds per 100,000
MQTT QoS 1 messages (one publisher, one subscriber, a topic, both logged
in) on a wharfd with a users file and no acl_file against one with the
same users and 1,000 ACL rules, in one run.

    bench/acl.py [--count 200000] [--rounds 5] [--build build-o2]

The rules are the worst case for the matcher: 999 rules for every user
(`*`) that match nothing the bench sends, half of them with %u, and the
rule that allows the bench's topic last. A connection keeps its recent
decisions (auth/acl.h), so a publisher to one topic matches the rules
once per reload, not once per message.

Both brokers run at once on free 127.0.0.1 ports, each with its own
temporary data directory; the runs alternate between them so whatever
else the machine does falls on both alike. CPU is the broker's own (all
threads, utime + stime from /proc/PID/stat) over each wharf-bench run; the
figure is the median over the rounds, and the ratio is acl / none."""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import Wharfd, bench_cpu  # noqa: E402

USER, PASSWORD = "bench", "bench-secret"


def rules(n):
    out = ["# %d rules: the bench's topic matches the last one only" % n]
    for i in range(n - 1):
        if i % 2:
            out.append("allow * publish,subscribe topic:area%d.%%u.>" % i)
        else:
            out.append("allow * publish,subscribe topic:dept%d.*.sensors.>" % i)
    out.append("allow %s publish,subscribe topic:wharf.>" % USER)
    return "\n".join(out) + "\n"


def start(wharfd, wharfctl, nrules, tmp):
    """A wharfd with a users file holding USER and nrules ACL rules (none: no acl_file)."""
    d = tempfile.mkdtemp(prefix="acl-bench-users-", dir=tmp)
    users = os.path.join(d, "users")
    r = subprocess.run([wharfctl, "user", "add", USER, "--users-file", users, "--cost", "10"],
                       input=PASSWORD + "\n", text=True, capture_output=True)
    if r.returncode != 0:
        sys.exit("wharfctl: " + r.stderr)
    config = "[auth]\nusers_file = %s\n" % users
    if nrules:
        acl = os.path.join(d, "acl")
        with open(acl, "w") as g:
            g.write(rules(nrules))
        config += "acl_file = %s\n" % acl
    w = Wharfd(wharfd, ["mqtt"], config, tmp, prefix="acl-bench-")
    w.users_dir = d
    if nrules and ("acl: %d rules" % nrules) not in w.log_text():
        sys.exit("the rules were not loaded:\n" + w.log_text())
    return w


def run(bench, broker, count):
    url = "mqtt://%s:%s@127.0.0.1:%d" % (USER, PASSWORD, broker.ports["mqtt"])
    cpu = bench_cpu(bench, broker, count, ["--url", url, "--qos", "1"])
    denied = broker.log_text().count(" denied ")
    if denied:
        sys.exit("the bench was denied %d times:\n%s" % (denied, broker.log_text()))
    return cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build-o2"))
    ap.add_argument("--tmp", default="/var/tmp")
    a = ap.parse_args()
    wharfd = os.path.join(a.build, "src", "wharfd")
    wharfctl = os.path.join(a.build, "tools", "wharfctl", "wharfctl")
    bench = os.path.join(a.build, "tools", "wharf-bench", "wharf-bench")
    none = start(wharfd, wharfctl, 0, a.tmp)
    acl = start(wharfd, wharfctl, a.rules, a.tmp)
    got = {"none": [], "acl": []}
    try:
        for i in range(a.rounds):
            order = (("none", none), ("acl", acl)) if i % 2 == 0 else (("acl", acl), ("none", none))
            for k, b in order:
                got[k].append(run(bench, b, a.count))
    finally:
        for b in (acl, none):
            b.stop()
            shutil.rmtree(b.users_dir, ignore_errors=True)
    print("broker CPU seconds per 100,000 MQTT QoS 1 messages, users file on both "
          "(median of %d rounds of %d)" % (a.rounds, a.count))
    n, c = statistics.median(got["none"]), statistics.median(got["acl"])
    print("%-10s %10s %10s %8s" % ("", "no rules", "%d rules" % a.rules, "acl/none"))
    print("%-10s %10.3f %10.3f %8.3f" % ("mqtt-qos1", n, c, c / n if n else float("nan")))
    print("%-10s %s | %s" % ("", " ".join("%.3f" % x for x in got["none"]),
                             " ".join("%.3f" % x for x in got["acl"])))


if __name__ == "__main__":
    main()
