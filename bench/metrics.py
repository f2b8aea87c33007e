#!/usr/bin/python3
"""What /metrics costs the broker (issue 14): broker CPU seconds per 100,000
messages at MQTT QoS 0 (one publisher, one subscriber, a topic) and through
a STOMP queue, on a wharfd with [admin] on and scraped every second against
one with [admin] off, in one run.

    bench/metrics.py [--count 1000000] [--rounds 5] [--build build-o2]

Both brokers run at once on free 127.0.0.1 ports, each with its own
temporary data directory; the runs alternate between them (off, on, off,
on...) so that whatever else the machine does falls on both alike. The
scraper is Debian's prometheus (scrape_interval 1s) when installed, else a
Python loop fetching /metrics every second. CPU is the broker's own (all
threads, utime + stime from /proc/PID/stat) over each wharf-bench run; the
figure is the median over the rounds, and the ratio is on / off. On a
shared machine whose load drifts during the run, the paired ratio is the
steadier figure: each round's on / off (its two runs back to back), the
median over the rounds with the lowest and highest. --same runs both
brokers with [admin] off: how far apart two identical arms come out.

The scrape's own cost is then measured apart, where noise matters less:
the metrics-on broker's CPU over --scrapes GETs of /metrics in a row,
after the rounds (its queue and its clients' counters still there), as
CPU per scrape and as the number of messages of each flow that cost as
much."""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import Wharfd, bench_cpu, cpu_seconds  # noqa: E402


def start(wharfd, admin, tmp):
    """A wharfd on MQTT and STOMP, with the admin API (and /metrics) if admin."""
    config = "[admin]\nlisten = http://127.0.0.1:0\n" if admin else ""
    return Wharfd(wharfd, ["mqtt", "stomp"], config, tmp, prefix="metrics-bench-",
                  listeners=3 if admin else 2)


class Scraper:
    """Prometheus scraping the admin port every second, or a Python loop."""

    def __init__(self, port, tmp):
        self.proc = None
        self.stop_ev = threading.Event()
        prom = shutil.which("prometheus")
        if prom:
            self.dir = tempfile.mkdtemp(prefix="metrics-bench-prom-", dir=tmp)
            conf = os.path.join(self.dir, "prometheus.yml")
            with open(conf, "w") as f:
                f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: wharf\n"
                        "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % port)
            self.proc = subprocess.Popen(
                [prom, "--config.file", conf, "--storage.tsdb.path", os.path.join(self.dir, "d"),
                 "--web.listen-address", "127.0.0.1:0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.what = "prometheus, scrape_interval 1s"
        else:
            self.what = "a Python loop, GET /metrics every 1 s"
            threading.Thread(target=self._loop, args=(port,), daemon=True).start()

    def _loop(self, port):
        while not self.stop_ev.wait(1.0):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read()
            except OSError:
                pass

    def stop(self):
        self.stop_ev.set()
        if self.proc:
            self.proc.terminate()
            self.proc.wait(30)
            shutil.rmtree(self.dir, ignore_errors=True)


def run(bench, broker, flow, count):
    if flow == "mqtt-qos0":
        args = ["--url", "mqtt://127.0.0.1:%d" % broker.ports["mqtt"], "--qos", "0"]
    else:
        args = ["--url", "stomp://127.0.0.1:%d" % broker.ports["stomp"], "--queue=metrics.bench"]
    return bench_cpu(bench, broker, count, args)


def scrape_cost(broker, n):
    """The broker's CPU seconds per GET /metrics, over n in a row."""
    url = "http://127.0.0.1:%d/metrics" % broker.ports["admin"]
    before = cpu_seconds(broker.proc.pid)
    for _ in range(n):
        urllib.request.urlopen(url, timeout=10).read()
    return (cpu_seconds(broker.proc.pid) - before) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build-o2"))
    ap.add_argument("--tmp", default="/var/tmp")
    ap.add_argument("--scrapes", type=int, default=2000)
    ap.add_argument("--same", action="store_true",
                    help="both brokers with [admin] off, nothing scraping: what the "
                    "comparison shows where there is no difference (its noise floor)")
    a = ap.parse_args()
    wharfd = os.path.join(a.build, "src", "wharfd")
    bench = os.path.join(a.build, "tools", "wharf-bench", "wharf-bench")
    off = start(wharfd, False, a.tmp)
    on = start(wharfd, not a.same, a.tmp)
    scraper = None if a.same else Scraper(on.ports["admin"], a.tmp)
    per_scrape = None
    flows = ("mqtt-qos0", "stomp-queue")
    got = {(f, k): [] for f in flows for k in ("off", "on")}
    try:
        time.sleep(3)  # the scraper finds its target (the same wait without one)
        for i in range(a.rounds):
            for f in flows:
                for k, b in (("off", off), ("on", on)) if i % 2 == 0 else (("on", on), ("off", off)):
                    got[(f, k)].append(run(bench, b, f, a.count))
        if scraper:
            scraper.stop()
            per_scrape = scrape_cost(on, a.scrapes)
    finally:
        if scraper:
            scraper.stop()
        on.stop()
        off.stop()
    print("broker CPU seconds per 100,000 messages (median of %d rounds of %d; scraper: %s)"
          % (a.rounds, a.count, scraper.what if scraper else "none, --same"))
    print("%-12s %10s %10s %8s" % ("flow", "admin off", "admin off" if a.same else "metrics on",
                                   "on/off"))
    for f in flows:
        o, n = statistics.median(got[(f, "off")]), statistics.median(got[(f, "on")])
        print("%-12s %10.3f %10.3f %8.3f" % (f, o, n, n / o if o else float("nan")))
        print("%-12s %s | %s" % ("", " ".join("%.3f" % x for x in got[(f, "off")]),
                                 " ".join("%.3f" % x for x in got[(f, "on")])))
        paired = sorted(n / o for o, n in zip(got[(f, "off")], got[(f, "on")]) if o)
        if paired:
            print("%-12s paired on/off: median %.3f, lowest %.3f, highest %.3f"
                  % ("", statistics.median(paired), paired[0], paired[-1]))
    if per_scrape is None:
        return
    print("one scrape: %.3f ms of broker CPU (%d in a row), as much as %s"
          % (per_scrape * 1000, a.scrapes, ", ".join(
              "%.0f %s messages" % (per_scrape * 100000 / statistics.median(got[(f, "off")]), f)
              for f in flows)))


if __name__ == "__main__":
    main()
