#!/usr/bin/env python3
"""/metrics as Prometheus sees it: Debian's prometheus scrapes wharfd every
second while paho-mqtt and stomp.py clients publish, and the values are
read back through Prometheus's own query API. The text is checked with
promtool too, and the per-destination cap with a direct scrape."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest
import urllib.error
import urllib.parse
import urllib.request

import paho.mqtt.client as mqtt

from admintest import Admin, WithAdmin, admin_port
from etcdtest import free_port
from stomptest import StompTestCase
from wharftest import main, wait_until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
MAX_DESTINATIONS = 3


class Prometheus:
    """A prometheus of our own on loopback, scraping its targets
    (HOST:PORT) every second, its data in a temporary directory."""

    def __init__(self, *targets):
        self.dir = tempfile.mkdtemp(prefix="wharf-prom-")
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: wharf\n"
                    "    static_configs:\n      - targets: [%s]\n"
                    % ", ".join("'%s'" % t for t in targets))
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w+")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file", conf, "--storage.tsdb.path",
             os.path.join(self.dir, "data"), "--web.listen-address", "127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT)

    def answer(self, expr):
        """Prometheus's JSON answer to the instant query expr (its
        "status", and "error" or "data"); None if it is not answering yet."""
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (
            self.port, urllib.parse.urlencode({"query": expr}))
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            # A query Prometheus refuses (400, 422) says why in JSON; while
            # it starts it answers 503 in plain text.
            try:
                return json.load(e)
            except ValueError:
                return None
        except OSError:
            return None

    def query(self, expr):
        """The instant vector's samples as {frozenset(labels): value}; {} if
        Prometheus is not answering yet."""
        data = self.answer(expr)
        if not data or data.get("status") != "success":
            return {}
        out = {}
        for s in data["data"]["result"]:
            labels = dict(s["metric"])
            labels.pop("instance", None)
            labels.pop("job", None)
            out[frozenset(labels.items())] = float(s["value"][1])
        return out

    def value(self, expr):
        got = self.query(expr)
        return next(iter(got.values())) if len(got) == 1 else None

    def wait_value(self, expr, pred, timeout=30):
        box = []

        def check():
            v = self.value(expr)
            box[:] = [v]
            return v is not None and pred(v)
        try:
            wait_until(check, timeout, 0.2, "%s from prometheus" % expr)
        except AssertionError:
            raise AssertionError("%s: last %r\n%s" % (expr, box, self.output()[-3000:]))
        return box[0]

    def output(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(os.path.exists(PROMETHEUS), "Debian's prometheus is not installed")
class PrometheusScrape(StompTestCase):

    protocols = ("stomp", "mqtt")
    config = ("[admin]\nlisten = http://127.0.0.1:0\nmetrics_max_destinations = %d\n"
              % MAX_DESTINATIONS)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = admin_port(cls.broker)
        cls.api = Admin(cls.admin)
        cls.prom = Prometheus("127.0.0.1:%d" % cls.admin)

    @classmethod
    def tearDownClass(cls):
        cls.prom.stop()
        super().tearDownClass()

    def mqtt_publish(self, topic, n):
        c = mqtt.Client(client_id="metrics-pub", protocol=mqtt.MQTTv311)
        c.connect("127.0.0.1", self.broker.ports["mqtt"])
        c.loop_start()
        try:
            for i in range(n):
                c.publish(topic, b"v%d" % i, qos=1).wait_for_publish(10)
        finally:
            c.disconnect()
            c.loop_stop()

    def test_values_through_prometheus(self):
        p = self.prom
        p.wait_value('up{job="wharf"}', lambda v: v == 1)
        self.assertEqual(p.value("wharf_up"), 1)
        self.assertEqual(p.value("wharf_active"), 1)
        self.assertEqual(p.value("wharf_ready"), 1)
        # Published: 7 by MQTT, 5 by STOMP to a queue nobody reads.
        self.mqtt_publish("sensors/metrics", 7)
        conn, lst = self.connect()
        self.send_all(conn, lst, "/queue/a.metrics", ["s%d" % i for i in range(5)])
        p.wait_value('wharf_messages_received_total{protocol="mqtt"}', lambda v: v == 7)
        p.wait_value('wharf_messages_received_total{protocol="stomp"}', lambda v: v == 5)
        p.wait_value('wharf_queue_messages{queue="a.metrics"}', lambda v: v == 5)
        self.assertEqual(p.value('wharf_queue_enqueued_messages_total{queue="a.metrics"}'), 5)
        self.assertEqual(p.value('wharf_queue_bytes{queue="a.metrics"}'), 10)
        # The MQTT client has gone; the STOMP one is still here.
        p.wait_value('wharf_connections{protocol="stomp"}', lambda v: v == 1)
        self.assertEqual(p.value('wharf_connections{protocol="mqtt"}'), 0)
        self.assertEqual(p.value('wharf_connections_opened_total{protocol="mqtt"}'), 1)
        self.assertGreater(p.value('wharf_received_bytes_total{protocol="mqtt"}'), 7 * 2)
        self.assertGreaterEqual(p.value("wharf_messages_published_total"), 12)
        self.assertGreater(p.value("process_cpu_seconds_total"), 0)
        self.assertGreater(p.value("process_resident_memory_bytes"), 1 << 20)
        # A consumer takes them: delivered, dequeued, depth back to 0.
        self.subscribe(conn, lst, "/queue/a.metrics")
        lst.wait_messages(5)
        p.wait_value('wharf_messages_sent_total{protocol="stomp"}', lambda v: v == 5)
        p.wait_value('wharf_queue_messages{queue="a.metrics"}', lambda v: v == 0)
        p.wait_value('wharf_queue_dequeued_messages_total{queue="a.metrics"}', lambda v: v == 5)
        self.assertEqual(p.value('wharf_queue_consumers{queue="a.metrics"}'), 1)
        # A topic subscriber, and the MQTT topic published to with none.
        self.subscribe(conn, lst, "/topic/t.metrics")
        p.wait_value('wharf_topic_subscribers{topic="t.metrics"}', lambda v: v == 1)
        self.assertEqual(p.value('wharf_topic_subscribers{topic="sensors.metrics"}'), 0)

    def test_destination_cap(self):
        for name in ("b.cap", "c.cap", "d.cap", "e.cap", "f.cap"):
            self.api.ok("PUT", "/api/v1/queues/" + name, want=201)
        self.api.ok("POST", "/api/v1/queues/f.cap/messages", {"body": "xyz"}, want=201)
        text = self.api.get("/metrics")[1]
        series = [l.split(" ")[0] for l in text.splitlines()
                  if l.startswith("wharf_queue_messages{")]
        named = len(self.api.ok("GET", "/api/v1/queues"))
        self.assertEqual(len(series), MAX_DESTINATIONS + 1, series)
        self.assertIn('wharf_queue_messages{queue="(other)"}', series)
        omitted = [l for l in text.splitlines() if l.startswith("wharf_metrics_omitted_destinations ")]
        self.assertEqual(omitted, ["wharf_metrics_omitted_destinations %d"
                                   % (named - MAX_DESTINATIONS)])
        other = [l for l in text.splitlines()
                 if l.startswith('wharf_queue_messages{queue="(other)"}')][0]
        self.assertEqual(other.split(" ")[1], "1")  # f.cap's message, summed
        # And Prometheus sees the same.
        self.prom.wait_value('wharf_metrics_omitted_destinations',
                             lambda v: v == named - MAX_DESTINATIONS)

    @unittest.skipUnless(os.path.exists(PROMTOOL), "promtool is not installed")
    def test_promtool_check(self):
        text = self.api.get("/metrics")[1]
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout + r.stderr, "")
        status, head = self.api.request("HEAD", "/metrics")
        self.assertEqual(status, 200)


class LatencyHistograms(WithAdmin, StompTestCase):
    """The fsync and confirmation histograms, on a broker of their own (the
    scrape tests above count every message)."""

    config = "[admin]\nlisten = http://127.0.0.1:0\n"

    def histogram(self, name):
        """A histogram's cumulative bucket counts (by bound, in order) and
        its _count, from a direct scrape."""
        text = self.api.get("/metrics")[1]
        buckets = [(l.split('le="')[1].split('"')[0], int(l.split(" ")[1]))
                   for l in text.splitlines() if l.startswith(name + "_bucket{")]
        count = [int(l.split(" ")[1]) for l in text.splitlines()
                 if l.startswith(name + "_count ")][0]
        return buckets, count

    @unittest.skipUnless(os.path.exists(PROMTOOL), "promtool is not installed")
    def test_latency_histograms_grow_with_durable_publishes(self):
        confirm0 = self.histogram("wharf_confirm_latency_seconds")[1]
        fsync0 = self.histogram("wharf_journal_fsync_duration_seconds")[1]
        conn, lst = self.connect()
        # Each with a receipt: the confirmation follows the fsync.
        for i in range(20):
            rid = "r%d" % i
            conn.send("/queue/hist.durable", "m%d" % i,
                      headers={"persistent": "true", "receipt": rid})
            lst.wait_receipt(rid)
        for name, before, grew in (("wharf_confirm_latency_seconds", confirm0, 20),
                                   ("wharf_journal_fsync_duration_seconds", fsync0, 1)):
            buckets, count = self.histogram(name)
            self.assertGreaterEqual(count - before, grew, name)
            self.assertEqual(buckets[-1], ("+Inf", count), name)
            counts = [n for _, n in buckets]
            self.assertEqual(counts, sorted(counts), name + ": buckets are cumulative")
        text = self.api.get("/metrics")[1]
        r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout + r.stderr, "")


if __name__ == "__main__":
    main()
