#!/usr/bin/python3
"""Brokers as real clients load them (issue 15): broker CPU per message,
system calls per message, latency and memory, for Wharf (and optionally a
second Wharf binary, a baseline) beside Mosquitto, in one run.

    bench/clients.py [--wharfd build/src/wharfd] [--base OTHER/wharfd]
                     [--rounds 3] [--quick]

Scenarios (wharf-bench against each broker in turn, rounds interleaved):
  libmosq-qos1   libmosquitto, QoS 1, 1 -> 1, window 1,000, 64 B (the
                 issue's figure: a packet per write, each PUBACK its own)
  libmosq-qos0   libmosquitto, QoS 0, 1 -> 1
  iot-1k         libmosquitto, 1,000 publishers at 5 msg/s each, QoS 1,
                 one subscriber to the topic they share
  wb-qos1, wb-qos0, wb-stomp
                 wharf-bench's own pipelined clients (MQTT QoS 1 and 0,
                 STOMP 1 KiB through a queue; Wharf only for STOMP): the
                 figures that must not get worse
Broker CPU is its own (all threads, from /proc/PID/schedstat through
wharf-bench --broker-pid); system calls are counted by `perf stat -e
raw_syscalls:sys_enter -p PID` over the run when perf can (root, or
perf_event_paranoid <= 1), else left out. Medians over the rounds; the
ratio is against Mosquitto in the same run. Brokers run on free
127.0.0.1 ports with temporary data directories and are stopped at the end."""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import Wharfd  # noqa: E402


class Mosquitto:
    def __init__(self, tmp):
        self.dir = tempfile.mkdtemp(prefix="clients-mosquitto-", dir=tmp)
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        conf = os.path.join(self.dir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
                    "user root\n" % port)
        self.log = os.path.join(self.dir, "mosquitto.log")
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=out,
                                         stderr=subprocess.STDOUT)
        self.ports = {"mqtt": port}
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError("mosquitto did not start:\n" + open(self.log).read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def perf_usable():
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "stat", "-e", "raw_syscalls:sys_enter", "-x,", "true"],
                       capture_output=True, text=True)
    return r.returncode == 0


SCENARIOS = [
    ("libmosq-qos1", "mqtt", ["--client", "libmosquitto", "--qos", "1", "--window", "1000"], 100000),
    ("libmosq-qos0", "mqtt", ["--client", "libmosquitto", "--qos", "0"], 200000),
    ("iot-1k", "mqtt", ["--client", "libmosquitto", "--qos", "1", "--publishers", "1000",
                        "--rate", "5"], 20),
    ("wb-qos1", "mqtt", ["--qos", "1"], 200000),
    ("wb-qos0", "mqtt", ["--qos", "0"], 400000),
    ("wb-stomp", "stomp", ["--size", "1024", "--queue=clients.bench"], 100000),
]


def run(bench, broker, proto, args, amount, quick, count_syscalls):
    url = "%s://127.0.0.1:%d" % (proto, broker.ports[proto])
    extra = ["--duration", str(amount // 2 if quick else amount)] if "--rate" in args else \
        ["--count", str(amount // 4 if quick else amount)]
    perf = None
    if count_syscalls:
        out = tempfile.NamedTemporaryFile(prefix="clients-perf-", delete=False)
        out.close()
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter",
                                 "-p", str(broker.proc.pid), "-o", out.name],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
    r = subprocess.run([bench, "--url", url, "--json", "--quiet", "--timeout", "300",
                        "--broker-pid", str(broker.proc.pid)] + args + extra,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    syscalls = None
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(30)
        with open(out.name) as f:
            for line in f:
                if "raw_syscalls" in line:
                    syscalls = int(line.split(",")[0])
        os.unlink(out.name)
    try:
        d = json.loads(r.stdout)
    except ValueError:
        return {"result": "NO OUTPUT: " + r.stderr[-300:]}
    got = d.get("received") or 0
    b = d.get("broker") or {}
    return {
        "result": d.get("result"),
        "received": got,
        "cpu_us": b.get("cpu_us_per_msg"),
        "p50_us": d["latency_us"]["p50"] if d.get("latency_us") else None,
        "p99_us": d["latency_us"]["p99"] if d.get("latency_us") else None,
        "hwm_mib": (b.get("hwm_kib") or 0) / 1024,
        "syscalls": syscalls / got if syscalls is not None and got else None,
    }


def med(rows, key):
    v = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(v) if v else None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wharfd", default=os.path.join(HERE, "..", "build", "src", "wharfd"))
    ap.add_argument("--base", help="a second wharfd to measure beside (before a change)")
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "tools", "wharf-bench",
                                                    "wharf-bench"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a quarter of the messages")
    ap.add_argument("--only", help="scenario names, comma-separated")
    ap.add_argument("--tmp", default="/var/tmp")
    a = ap.parse_args()
    if not shutil.which("mosquitto"):
        sys.exit("mosquitto is not installed (apt-get install mosquitto)")
    count_syscalls = perf_usable()
    brokers = [("wharf", Wharfd(a.wharfd, ["mqtt", "stomp"], "", a.tmp, prefix="clients-wharf-"))]
    if a.base:
        brokers.append(("wharf-base", Wharfd(a.base, ["mqtt", "stomp"], "", a.tmp,
                                             prefix="clients-base-")))
    brokers.append(("mosquitto", Mosquitto(a.tmp)))
    scenarios = [s for s in SCENARIOS if not a.only or s[0] in a.only.split(",")]
    got = {}
    try:
        for rnd in range(a.rounds):
            order = brokers if rnd % 2 == 0 else list(reversed(brokers))
            for name, proto, args, amount in scenarios:
                for bname, b in order:
                    if proto not in b.ports:
                        continue
                    r = run(a.bench, b, proto, args, amount, a.quick, count_syscalls)
                    got.setdefault((name, bname), []).append(r)
                    print("round %d %-13s %-10s %s" % (rnd + 1, name, bname, json.dumps(r)),
                          file=sys.stderr)
    finally:
        for _, b in brokers:
            b.stop()
    print("| scenario | broker | result | broker CPU us/msg | ratio to Mosquitto | syscalls/msg "
          "| p50 us | p99 us | peak RSS MiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for name, *_ in scenarios:
        mosq = med(got.get((name, "mosquitto"), []), "cpu_us")
        for bname, _ in brokers:
            rows = got.get((name, bname))
            if not rows:
                continue
            cpu = med(rows, "cpu_us")
            results = ",".join(sorted(set(str(r["result"]) for r in rows)))
            print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, bname, results, fmt(cpu, ".2f"),
                fmt(cpu / mosq if cpu and mosq else None, ".2f"),
                fmt(med(rows, "syscalls"), ".2f"), fmt(med(rows, "p50_us"), ".0f"),
                fmt(med(rows, "p99_us"), ".0f"), fmt(med(rows, "hwm_mib"), ".1f")))


if __name__ == "__main__":
    main()
