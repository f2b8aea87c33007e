#!/usr/bin/env python3
"""docs/grafana/wharf-dashboard.json against what wharfd serves: Debian's
prometheus scrapes both nodes of an active/standby pair every second
while paho-mqtt and stomp.py clients publish (durable messages confirmed
through the standby, a queue left to fill, one that drops its head), and
every panel's PromQL query, Grafana's variables filled in, must be
accepted by Prometheus and return a number; every metric it names must be
one wharfd's /metrics has."""
import json
import math
import os
import re
import threading
import unittest
import urllib.request

import paho.mqtt.client as mqtt

from admintest import admin_port
from pairtest import Pair
from stomptest import new_receipt, stomp_close, stomp_connect
from test_metrics import PROMETHEUS, Prometheus
from wharftest import main, wait_until

DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                         "grafana", "wharf-dashboard.json")
# Grafana's variables as a user who picked every node would have them.
VARIABLES = {"$instance": ".*", "$__rate_interval": "1m"}
METRIC_RE = re.compile(r"\b((?:wharf|process)_[a-z0-9_]+)")
GLOBALS = """[admin]
listen = http://127.0.0.1:0
[queue dash.drop]
max_length = 2
overflow = drop-head
"""


def dashboard_queries(dash):
    """(panel title, expr) for every target of every panel, rows' nested
    panels included."""
    out = []
    for p in dash["panels"]:
        for q in p.get("panels", []) + [p]:
            for t in q.get("targets", []):
                out.append((q["title"], t["expr"]))
    return out


def fill(expr):
    for k, v in VARIABLES.items():
        expr = expr.replace(k, v)
    return expr


class Load:
    """Clients publishing from a thread until stopped: MQTT QoS 1 to a
    subscribed topic, STOMP persistent messages to a queue with a consumer,
    to one nobody reads, and to one that drops its head."""

    def __init__(self, mqtt_port, stomp_port):
        self.stop_ev = threading.Event()
        self.error = None
        self.sub = mqtt.Client(client_id="dash-sub", protocol=mqtt.MQTTv311)
        self.sub.connect("127.0.0.1", mqtt_port)
        self.sub.subscribe("dash/t", 1)
        self.sub.loop_start()
        self.pub = mqtt.Client(client_id="dash-pub", protocol=mqtt.MQTTv311)
        self.pub.connect("127.0.0.1", mqtt_port)
        self.pub.loop_start()
        self.consumer, _ = stomp_connect(stomp_port)
        self.consumer.subscribe("/queue/dash.work", id="w", ack="auto")
        self.conn, self.lst = stomp_connect(stomp_port)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        i = 0
        try:
            while not self.stop_ev.wait(0.1):
                self.pub.publish("dash/t", b"m%d" % i, qos=1).wait_for_publish(10)
                for q in ("dash.work", "dash.orders", "dash.drop"):
                    rid = new_receipt()
                    self.conn.send("/queue/" + q, "m%d" % i,
                                   headers={"persistent": "true", "receipt": rid})
                    self.lst.wait_receipt(rid)
                i += 1
        except Exception as e:  # reported by stop()
            self.error = e

    def stop(self):
        self.stop_ev.set()
        self.thread.join(30)
        for c in (self.sub, self.pub):
            c.disconnect()
            c.loop_stop()
        stomp_close(self.conn)
        stomp_close(self.consumer)
        if self.error:
            raise AssertionError("the load failed: %r" % self.error)


@unittest.skipUnless(os.path.exists(PROMETHEUS), "Debian's prometheus is not installed")
class GrafanaDashboard(unittest.TestCase):

    def setUp(self):
        with open(DASHBOARD) as f:
            self.dash = json.load(f)

    def test_layout(self):
        """What Grafana needs to import it: unique panel ids, every panel on
        the 24-column grid, every query on the dashboard's data source."""
        ids = [p["id"] for p in self.dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        for p in self.dash["panels"]:
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            if p["type"] != "row":
                self.assertTrue(p["targets"], p["title"])
                for t in p["targets"]:
                    self.assertEqual(t["datasource"]["uid"], "${datasource}", p["title"])
        names = [v["name"] for v in self.dash["templating"]["list"]]
        self.assertEqual(names, ["datasource", "instance"])

    def test_every_query_returns_data(self):
        queries = dashboard_queries(self.dash)
        self.assertGreaterEqual(len(queries), 20)
        with Pair(protocols=("stomp", "mqtt"), globals=GLOBALS) as pair:
            pair.wait_in_sync()
            a, b = admin_port(pair.primary), admin_port(pair.standby)
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % a, timeout=10) as r:
                text = r.read().decode()
            served = set(re.findall(r"^# TYPE (\S+) (\S+)", text, re.M))
            known = set()
            for name, kind in served:
                known.add(name)
                if kind == "histogram":
                    known.update(name + s for s in ("_bucket", "_sum", "_count"))
            for title, expr in queries:
                for name in METRIC_RE.findall(expr):
                    self.assertIn(name, known, "panel %r names %s, not in /metrics"
                                  % (title, name))
            var = self.dash["templating"]["list"][1]["query"]["query"]
            self.assertIn(METRIC_RE.search(var).group(1), known)

            prom = Prometheus("127.0.0.1:%d" % a, "127.0.0.1:%d" % b)
            load = Load(pair.primary.ports["mqtt"], pair.primary.ports["stomp"])
            try:
                prom_up = 'count(up{job="wharf"} == 1)'
                wait_until(lambda: prom.query(prom_up) and prom.value(prom_up) == 2, 30, 0.2,
                           "prometheus scraping both nodes")
                missing = {}

                def all_answer():
                    for title, expr in queries:
                        got = prom.answer(fill(expr))
                        if got is None or got["status"] != "success":
                            missing[(title, expr)] = got and got.get("error")
                            continue
                        values = [float(s["value"][1]) for s in got["data"]["result"]]
                        if any(math.isfinite(v) for v in values):
                            missing.pop((title, expr), None)
                        else:
                            missing[(title, expr)] = "no data: %r" % values
                    return not missing
                try:
                    wait_until(all_answer, 60, 1.0, "every panel's query to return data")
                except AssertionError:
                    raise AssertionError("queries without data: %r\n%s"
                                         % (missing, prom.output()[-2000:]))
                # The variable's values: both nodes.
                self.assertEqual(prom.value("count(wharf_up == 1)"), 2)
                self.assertEqual(prom.value('sum(wharf_active{instance=~".*"})'), 1)
                self.assertGreater(prom.value(
                    'sum(rate(wharf_messages_dropped_total{cause="drop-head"}[1m]))'), 0)
            finally:
                load.stop()
                prom.stop()
            for node in (pair.standby, pair.primary):
                self.assertEqual(node.stop(), 0, node.output())


if __name__ == "__main__":
    main()
