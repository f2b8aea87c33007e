#!/usr/bin/python3
"""Brokers as real clients load them (issue 15): broker CPU per message,
system calls per message, latency and memory, for Wharf (and optionally a
second Wharf binary, a baseline) beside Mosquitto, RabbitMQ and ActiveMQ,
in one run.

    bench/clients.py [--wharfd build/src/wharfd] [--base OTHER/wharfd]
                     [--rounds 3] [--quick] [--others rabbitmq,activemq]

Scenarios (wharf-bench against each broker in turn, rounds interleaved):
  libmosq-qos1   libmosquitto, QoS 1, 1 -> 1, window 1,000, 64 B (the
                 issue's figure: a packet per write, each PUBACK its own)
  libmosq-qos0   libmosquitto, QoS 0, 1 -> 1
  iot-1k         libmosquitto, 1,000 publishers at 5 msg/s each, QoS 1,
                 one subscriber to the topic they share
  iot-10k        10,000 publishers at 1 msg/s each, as 4 wharf-bench
                 processes of 2,500 (libmosquitto takes 4 descriptors a
                 client, and one process may have 20,000 here), each
                 with its own topic and subscriber; Wharf and Mosquitto
  stomp-frames   STOMP a frame per write, as stomp.py writes: 1 KiB
                 through a queue, a receipt for every SEND, a
                 client-individual ACK for every MESSAGE, window 100
  amqp-frames    AMQP 1.0 through proton, each frame handed to the socket
                 as proton makes it: 1 KiB unsettled transfers through a
                 queue, each accepted, window 100
  wb-qos1, wb-qos0, wb-stomp
                 wharf-bench's own pipelined clients (MQTT QoS 1 and 0,
                 STOMP 1 KiB through a queue; Wharf only for STOMP): the
                 figures that must not get worse
RabbitMQ (with its MQTT, STOMP and AMQP 1.0 plugins) and ActiveMQ (MQTT and
STOMP) run the real-client scenarios, started as bench/run-suite starts them
(bench/brokers.sh: Debian's rabbitmq-server, activemq and
libmqtt-client-java, which run-suite installs); one that is not installed
is skipped with a note. The ratio is to Mosquitto for MQTT and to
RabbitMQ for STOMP and AMQP.
Broker CPU is its own (all threads, from /proc/PID/schedstat through
wharf-bench --broker-pid); system calls are counted by `perf stat -e
raw_syscalls:sys_enter -p PID` over the run when perf can (root, or
perf_event_paranoid <= 1), else left out. Medians over the rounds; the
ratio is against that broker in the same run. Brokers run on free
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


class SuiteBroker:
    """RabbitMQ or ActiveMQ, started by bench/brokers.sh's start_NAME in a
    shell of its own that leaves the broker (and RabbitMQ's epmd) running;
    self.pids are what it started, stopped in reverse order."""

    SCRIPT = """set -u
declare -A pid port
pids=() pin_broker=()
PY=%s tmp=%s
die() { echo "$*" >&2; exit 1; }
trap 'echo "pids ${pids[*]}"; for p in mqtt stomp amqp; do echo "$p ${port[%s,$p]:-}"; done' EXIT
. %s
start_%s
"""

    def __init__(self, name, tmp):
        self.dir = tempfile.mkdtemp(prefix="clients-%s-" % name, dir=tmp)
        script = self.SCRIPT % (sys.executable, self.dir, name,
                                os.path.join(HERE, "brokers.sh"), name)
        r = subprocess.run(["bash", "-c", script], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=300)
        out = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
        self.pids = [(int(p.split(":")[0]), p.split(":")[1])
                     for p in out.get("pids", "").split()]
        self.pid = self.pids[-1][0] if self.pids else None
        self.ports = {p: int(out[p]) for p in ("mqtt", "stomp", "amqp") if out.get(p, "").strip()}
        if r.returncode != 0 or not self.ports:
            self.stop()
            raise RuntimeError("%s did not start: %s" % (name, r.stderr.strip()[-300:]))

    def stop(self):
        for p, _ in reversed(self.pids):
            stop_pid(p)
        shutil.rmtree(self.dir, ignore_errors=True)


def stop_pid(p):
    """SIGTERM, then SIGKILL after 30 s, for a process that is not our child
    (its shell has exited): gone once /proc no longer has it or it is a
    zombie waiting for init."""
    try:
        os.kill(p, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % p) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.1)
    os.kill(p, signal.SIGKILL)


# What an absent broker needs, as bench/run-suite checks it.
OTHERS = {
    "rabbitmq": (["/usr/lib/rabbitmq/bin/rabbitmq-server"], "rabbitmq-server"),
    "activemq": (["/usr/share/activemq/bin/activemq.jar", "/usr/share/java/mqtt-client.jar"],
                 "activemq libmqtt-client-java"),
}


def perf_usable():
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "stat", "-e", "raw_syscalls:sys_enter", "-x,", "true"],
                       capture_output=True, text=True)
    return r.returncode == 0


# name, protocol, wharf-bench arguments, messages (or seconds with --rate),
# and whether RabbitMQ and ActiveMQ run it too (where they speak it).
SCENARIOS = [
    ("libmosq-qos1", "mqtt", ["--client", "libmosquitto", "--qos", "1", "--window", "1000"], 100000,
     True),
    ("libmosq-qos0", "mqtt", ["--client", "libmosquitto", "--qos", "0"], 200000, True),
    ("iot-1k", "mqtt", ["--client", "libmosquitto", "--qos", "1", "--publishers", "1000",
                        "--rate", "5"], 20, True),
    ("iot-10k", "mqtt", ["--client", "libmosquitto", "--qos", "1", "--publishers", "2500",
                         "--rate", "1", "--split", "4"], 20, False),
    ("stomp-frames", "stomp", ["--frame-writes", "--size", "1024", "--window", "100",
                               "--receipt-every", "1", "--ack", "client-individual",
                               "--prefetch", "100", "--queue=clients.stomp-frames"], 50000, True),
    ("amqp-frames", "amqp", ["--frame-writes", "--size", "1024", "--window", "100",
                             "--queue=clients.amqp-frames"], 50000, True),
    ("wb-qos1", "mqtt", ["--qos", "1"], 200000, False),
    ("wb-qos0", "mqtt", ["--qos", "0"], 400000, False),
    ("wb-stomp", "stomp", ["--size", "1024", "--queue=clients.bench"], 100000, False),
]
# What each protocol's ratio is against.
ANCHOR = {"mqtt": "mosquitto", "stomp": "rabbitmq", "amqp": "rabbitmq"}


def broker_pid(broker):
    return broker.pid if isinstance(broker, SuiteBroker) else broker.proc.pid


def run(bench, bname, broker, proto, args, amount, quick, count_syscalls):
    url = "%s://127.0.0.1:%d" % (proto, broker.ports[proto])
    if bname == "rabbitmq" and proto == "amqp":
        # RabbitMQ's AMQP 1.0 plugin: PLAIN as guest, a queue is /queue/NAME.
        url = "amqp://guest:guest@127.0.0.1:%d" % broker.ports[proto]
        args = [a.replace("--queue=", "--queue=/queue/") for a in args]
    pid = broker_pid(broker)
    extra = ["--duration", str(amount // 2 if quick else amount)] if "--rate" in args else \
        ["--count", str(amount // 4 if quick else amount)]
    perf = None
    if count_syscalls:
        out = tempfile.NamedTemporaryFile(prefix="clients-perf-", delete=False)
        out.close()
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter",
                                 "-p", str(pid), "-o", out.name],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
    split = 1
    if "--split" in args:
        at = args.index("--split")
        split, args = int(args[at + 1]), args[:at] + args[at + 2:]
    procs = []
    for n in range(split):
        own = ["--topic=wharf/bench/part%d" % n] if split > 1 else []
        procs.append(subprocess.Popen([bench, "--url", url, "--json", "--quiet", "--timeout", "300",
                                       "--broker-pid", str(pid)] + args + own + extra,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate() for p in procs]
    syscalls = None
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(30)
        with open(out.name) as f:
            for line in f:
                if "raw_syscalls" in line:
                    syscalls = int(line.split(",")[0])
        os.unlink(out.name)
    ds = []
    for stdout, stderr in outs:
        try:
            ds.append(json.loads(stdout))
        except ValueError:
            return {"result": "NO OUTPUT: " + stderr[-300:]}
    got = sum(d.get("received") or 0 for d in ds)
    bs = [d.get("broker") or {} for d in ds]
    lat = [d["latency_us"] for d in ds if d.get("latency_us")]
    if split == 1:
        cpu = bs[0].get("cpu_us_per_msg")
    else:
        # Each process timed the broker over its own flow, nearly the same
        # seconds: the broker's CPU a second over all messages a second.
        rate = sum((d.get("received") or 0) / d["flow_s"] for d in ds if d.get("flow_s"))
        busy = statistics.mean(b["cpu_s"] / d["flow_s"] for b, d in zip(bs, ds)
                               if b.get("cpu_s") is not None and d.get("flow_s"))
        cpu = busy / rate * 1e6 if rate else None
    return {
        "result": ",".join(sorted(set(str(d.get("result")) for d in ds))),
        "received": got,
        "cpu_us": cpu,
        # Split: the processes' middle p50 and their worst p99.
        "p50_us": statistics.median(x["p50"] for x in lat) if lat else None,
        "p99_us": max(x["p99"] for x in lat) if lat else None,
        "hwm_mib": max(b.get("hwm_kib") or 0 for b in bs) / 1024,
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
    ap.add_argument("--others", default="rabbitmq,activemq",
                    help="further brokers for the real-client scenarios (empty: none)")
    a = ap.parse_args()
    if not shutil.which("mosquitto"):
        sys.exit("mosquitto is not installed (apt-get install mosquitto)")
    count_syscalls = perf_usable()
    protos = ["mqtt", "stomp", "amqp"]
    brokers = [("wharf", Wharfd(a.wharfd, protos, "", a.tmp, prefix="clients-wharf-"))]
    if a.base:
        brokers.append(("wharf-base", Wharfd(a.base, protos, "", a.tmp, prefix="clients-base-")))
    brokers.append(("mosquitto", Mosquitto(a.tmp)))
    scenarios = [s for s in SCENARIOS if not a.only or s[0] in a.only.split(",")]
    notes = []
    got = {}
    try:
        for other in filter(None, a.others.split(",")):
            need, pkgs = OTHERS[other]
            if not all(os.path.exists(f) for f in need):
                notes.append("%s: not installed (apt-get install %s), skipped" % (other, pkgs))
                continue
            try:
                brokers.append((other, SuiteBroker(other, a.tmp)))
            except RuntimeError as e:
                notes.append("%s: skipped, %s" % (other, e))
        for note in notes:
            print(note, file=sys.stderr)
        for rnd in range(a.rounds):
            order = brokers if rnd % 2 == 0 else list(reversed(brokers))
            for name, proto, args, amount, others in scenarios:
                for bname, b in order:
                    if proto not in b.ports or (isinstance(b, SuiteBroker) and not others):
                        continue
                    r = run(a.bench, bname, b, proto, args, amount, a.quick, count_syscalls)
                    got.setdefault((name, bname), []).append(r)
                    print("round %d %-13s %-10s %s" % (rnd + 1, name, bname, json.dumps(r)),
                          file=sys.stderr)
    finally:
        for _, b in brokers:
            b.stop()
    print("| scenario | broker | result | broker CPU us/msg | ratio | syscalls/msg "
          "| p50 us | p99 us | peak RSS MiB |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for name, proto, *_ in scenarios:
        anchor = med(got.get((name, ANCHOR[proto]), []), "cpu_us")
        for bname, _ in brokers:
            rows = got.get((name, bname))
            if not rows:
                continue
            cpu = med(rows, "cpu_us")
            results = ",".join(sorted(set(str(r["result"]) for r in rows)))
            print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, bname, results, fmt(cpu, ".2f"),
                fmt(cpu / anchor if cpu and anchor else None, ".2f"),
                fmt(med(rows, "syscalls"), ".2f"), fmt(med(rows, "p50_us"), ".0f"),
                fmt(med(rows, "p99_us"), ".0f"), fmt(med(rows, "hwm_mib"), ".1f")))
    for note in notes:
        print("\n" + note)


if __name__ == "__main__":
    main()
