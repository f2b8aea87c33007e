#!/usr/bin/env python3
"""[alarm NAME] sections (docs/operations.md, Alarms): an alarm on a
queue's depth, evaluated every second, goes to ALARM when stomp.py fills
the queue and back to OK when it is drained; each change arrives, once and
in order, at a paho subscriber of $SYS/alarms/NAME, a stomp.py subscriber
of /topic/$SYS.alarms.NAME and a proton receiver of
topic://$SYS.alarms.NAME; a late MQTT subscriber reads the current state
(retained). An alarm on a queue that does not exist stays
INSUFFICIENT_DATA, and one on drops counts them per period. The admin API, /metrics and wharfctl show them, and
wharfd refuses a bad [alarm] section, saying where and why."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from admintest import WithAdmin, admin_port
from amqptest import Client
from mqtttest import MqttTestCase, Paho
from stomptest import Collector, new_receipt, stomp_close, stomp_connect
from wharftest import WHARFD, Broker, main, wait_until

WHARFCTL = os.environ.get("WHARFCTL") or os.path.join(
    os.path.dirname(os.environ.get("WHARFD", "src/wharfd")), "..", "tools", "wharfctl",
    "wharfctl")

DEEP = "orders-deep"
QUEUE = "alarm.orders"
LONG = "x" + "\u00e9" * 600  # 1201 bytes of UTF-8: cut inside a character
CONFIG = """
[admin]
listen = http://127.0.0.1:0
[alarm %s]
metric = wharf_queue_messages{queue="%s"}
comparison = >=
threshold = 5
period = 1s
evaluation_periods = 2
[alarm ghost]
metric = wharf_queue_messages{queue="alarm.none-such"}
threshold = 1
period = 1s
[alarm drops]
metric = wharf_messages_dropped_total
threshold = 0
period = 1s
[alarm long-name]
metric = wharf_queue_consumers{queue="%s"}
threshold = 1
period = 1s
[queue alarm.tiny]
max_length = 1
overflow = drop-head
""" % (DEEP, QUEUE, LONG)


def states(bodies):
    return [json.loads(b)["state"] for b in bodies]


class Alarms(WithAdmin, MqttTestCase):

    protocols = ("mqtt", "stomp", "amqp")
    config = CONFIG

    def stomp(self, listener=None):
        conn, lst = stomp_connect(self.stomp_port, listener=listener)
        self.on_teardown(lambda: stomp_close(conn, lst))
        return conn, lst

    def stomp_subscribe(self, conn, lst, dest, ack="auto"):
        rid = new_receipt()
        conn.subscribe(dest, id="s-" + rid, ack=ack, headers={"receipt": rid})
        lst.wait_receipt(rid)

    def amqp(self):
        c = Client(self.broker.ports["amqp"])
        self.on_teardown(c.close)
        return c

    def alarm(self, name):
        return self.api.ok("GET", "/api/v1/alarms/" + name)

    def test_queue_depth_alarm_in_every_protocol(self):
        mq = self.paho()
        mq.subscribe("$SYS/alarms/" + DEEP, qos=1)
        # What was retained at start-up: the alarm has not seen the queue.
        first = json.loads(mq.wait_messages(1)[0].payload)
        self.assertTrue(mq.messages[0].retain)
        self.assertEqual(first["state"], "INSUFFICIENT_DATA")
        self.assertEqual(first["name"], DEEP)
        self.assertIsNone(first["previous"])
        sc, sl = self.stomp(Collector())
        self.stomp_subscribe(sc, sl, "/topic/$SYS.alarms." + DEEP)
        amqp = self.amqp()
        rcv = amqp.rcv("topic://$SYS.alarms." + DEEP, credit=10, auto_accept=True)

        pc, pl = self.stomp()
        for i in range(12):
            pc.send("/queue/" + QUEUE, "order-%d" % i)
        rid = new_receipt()
        pc.send("/queue/" + QUEUE, "order-last", headers={"receipt": rid})
        pl.wait_receipt(rid)

        # Two periods of 13 >= 5: OK after the first (one breaching
        # period is not yet an alarm), ALARM after the second.
        mq.wait_for(lambda: "ALARM" in states(mq.payloads()), what="ALARM over MQTT")
        alarm = json.loads(mq.payloads()[-1])
        self.assertEqual(alarm["state"], "ALARM")
        self.assertEqual(alarm["previous"], "OK")
        self.assertEqual(alarm["value"], 13)
        self.assertEqual(alarm["threshold"], 5)
        self.assertIn('wharf_queue_messages{queue="%s"} = 13, >= 5' % QUEUE, alarm["reason"])
        self.assertRegex(alarm["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        got = self.alarm(DEEP)
        self.assertEqual((got["state"], got["value"], got["breaching_periods"]), ("ALARM", 13, 2))
        self.assertIn('wharf_alarm_state{alarm="%s"} 1' % DEEP,
                      self.api.ok("GET", "/metrics"))

        # Drained by a consumer: OK at the next period.
        dc, dl = self.stomp(Collector())
        self.stomp_subscribe(dc, dl, "/queue/" + QUEUE)
        dl.wait_messages(13)
        mq.wait_for(lambda: states(mq.payloads())[-1:] == ["OK"] and len(mq.payloads()) > 3,
                    what="OK over MQTT after the drain")

        want = ["INSUFFICIENT_DATA", "OK", "ALARM", "OK"]
        self.assertEqual(states(mq.payloads()), want)
        sl.wait_messages(3)
        self.assertEqual(states(sl.bodies()), want[1:])
        amqp.wait_received(rcv, 3)
        self.assertEqual(states(rcv.bodies()), want[1:])
        last = json.loads(sl.bodies()[-1])
        self.assertEqual((last["state"], last["previous"], last["value"]), ("OK", "ALARM", 0))
        # Nothing more while the state holds.
        time.sleep(1.5)
        self.assertEqual(len(mq.payloads()), 4)
        amqp.idle(0.2)
        self.assertEqual(rcv.count(), 3)
        self.assertEqual(len(sl.bodies()), 3)

        late = self.paho()
        late.subscribe("$SYS/alarms/" + DEEP, qos=1)
        seen = late.wait_messages(1)
        self.assertEqual(len(seen), 1)
        self.assertTrue(seen[0].retain)
        self.assertEqual(json.loads(seen[0].payload)["state"], "OK")
        self.assertEqual(self.alarm(DEEP)["state"], "OK")

    def test_drops_counted_per_period(self):
        wait_until(lambda: self.alarm("drops")["state"] == "OK", 10, 0.1,
                   "no drops in a period")
        mq = self.paho()
        mq.subscribe("$SYS/alarms/drops", qos=1)
        self.assertEqual(states(p.payload for p in mq.wait_messages(1)), ["OK"])
        pc, pl = self.stomp()
        for i in range(3):
            pc.send("/queue/alarm.tiny", "m-%d" % i)
        rid = new_receipt()
        pc.send("/queue/alarm.tiny", "m-last", headers={"receipt": rid})
        pl.wait_receipt(rid)
        # drop-head keeps the last of four: three dropped (in one period,
        # unless a period ends among the sends), none in the next.
        mq.wait_for(lambda: len(mq.payloads()) >= 3, what="ALARM and OK")
        got = [json.loads(b) for b in mq.payloads()]
        self.assertEqual(states(mq.payloads()), ["OK", "ALARM", "OK"])
        self.assertIn(got[1]["value"], (1, 2, 3))
        self.assertRegex(got[1]["reason"],
                         r"^wharf_messages_dropped_total = [123], > 0 for 1 period of 1s$")
        self.assertEqual(got[2]["value"], 0)
        self.assertIn('wharf_messages_dropped_total{cause="drop-head"} 3',
                      self.api.ok("GET", "/metrics"))

    def test_missing_queue_is_insufficient_data(self):
        wait_until(lambda: self.alarm("ghost")["reason"].startswith("no data"), 10, 0.1,
                   "a period evaluated")
        got = self.alarm("ghost")
        self.assertEqual(got["state"], "INSUFFICIENT_DATA")
        self.assertIsNone(got["value"])
        self.assertEqual(got["metric"], 'wharf_queue_messages{queue="alarm.none-such"}')
        self.assertEqual((got["comparison"], got["threshold"], got["period_seconds"],
                          got["evaluation_periods"], got["treat_missing"]),
                         (">", 1, 1, 1, "missing"))
        self.assertIn('wharf_alarm_state{alarm="ghost"} 2', self.api.ok("GET", "/metrics"))
        mq = self.paho()
        mq.subscribe("$SYS/alarms/ghost", qos=1)
        body = json.loads(mq.wait_messages(1)[0].payload)
        self.assertEqual((body["name"], body["state"]), ("ghost", "INSUFFICIENT_DATA"))
        self.assertIsNone(body["value"])
        self.assertFalse(self.api.get("/api/v1/queues/alarm.none-such")[0] == 200,
                         "watching a queue does not create it")
        # A reason too long for the broker's buffer is cut between
        # characters: the API still answers JSON.
        wait_until(lambda: self.alarm("long-name")["reason"].startswith("no data"), 10, 0.1,
                   "a period of the long-named alarm")
        reason = self.alarm("long-name")["reason"]
        self.assertTrue(reason.startswith('no data for wharf_queue_consumers{queue="x\u00e9\u00e9'))
        self.assertLess(len(reason.encode()), 1024)
        status, err = self.api.get("/api/v1/alarms/none-such")
        self.assertEqual(status, 404)
        self.assertIn("no such alarm", err["error"])

    def test_wharfctl_alarms(self):
        url = "http://127.0.0.1:%d" % admin_port(self.broker)
        r = subprocess.run([WHARFCTL, "--admin", url, "alarms"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(),
                         ["NAME", "STATE", "VALUE", "IF", "THRESHOLD", "METRIC", "SINCE"])
        self.assertEqual([ln.split()[0] for ln in lines[1:]], [DEEP, "ghost", "drops", "long-name"])
        self.assertRegex(r.stdout, r"(?m)^ghost +INSUFFICIENT_DATA +- +> +1 +"
                                   r'wharf_queue_messages\{queue="alarm.none-such"\} ')
        r = subprocess.run([WHARFCTL, "--admin", url, "--json", "alarms"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        self.assertEqual([a["name"] for a in got], [DEEP, "ghost", "drops", "long-name"])
        self.assertEqual(got[1]["state"], "INSUFFICIENT_DATA")


class Restart(unittest.TestCase):
    """The retained state of an earlier run is replaced at start-up: a late
    subscriber does not read an ALARM that no longer holds."""

    ALARM = ("[alarm idle]\nmetric = wharf_queue_consumers{queue=\"alarm.nobody\"}\n"
             "comparison = <\nthreshold = 1\ntreat_missing = breaching\nperiod = %s\n")

    def retained(self, broker):
        p = Paho(broker.ports["mqtt"], "late-%d" % os.getpid())
        try:
            p.connect()
            p.subscribe("$SYS/alarms/idle", qos=1)
            m = p.wait_messages(1)[0]
            self.assertTrue(m.retain)
            return json.loads(m.payload)
        finally:
            p.close()

    def stop(self, broker):
        self.assertEqual(broker.stop(), 0, broker.output())

    def test_restart_replaces_the_retained_state(self):
        first = Broker(("mqtt",), self.ALARM % "1s")
        data = first.data_dir
        try:
            # No such queue, counted as breaching: ALARM after one period.
            first.wait_for_log(r"alarm idle: INSUFFICIENT_DATA -> ALARM: no data for ")
            self.assertEqual(self.retained(first)["state"], "ALARM")
            self.stop(first)
            # Started again with a period long enough that none ends here.
            with Broker(("mqtt",), self.ALARM % "1h", data_dir=data) as second:
                got = self.retained(second)
                self.assertEqual((got["state"], got["previous"], got["value"]),
                                 ("INSUFFICIENT_DATA", None, None))
                self.stop(second)
        finally:
            first.cleanup()


class BadConfig(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wharf-alarm-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def refused(self, text, line, *words):
        path = os.path.join(self.tmp, "w.conf")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([WHARFD, "-c", path, "--data-dir", os.path.join(self.tmp, "d"),
                            "--listen", "stomp://127.0.0.1:0"], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("%s:%d:" % (path, line), p.stderr)
        for w in words:
            self.assertIn(w, p.stderr)

    def test_refused(self):
        ok = "[alarm a]\nmetric = wharf_connections\nthreshold = 100\n"
        self.refused("[alarm a]\nmetric = wharf_queue_depth{queue=\"q\"}\nthreshold = 1\n", 2,
                     "metric: 'wharf_queue_depth{queue=\"q\"}'", "not a metric alarms watch")
        self.refused("[alarm a]\nmetric = wharf_queue_messages\nthreshold = 1\n", 2,
                     'needs {queue="NAME"}')
        self.refused("[alarm a]\nmetric = wharf_connections\n", 1,
                     "[alarm a] needs metric and threshold")
        self.refused(ok + "comparison = =>\n", 4, "comparison: '=>' is not >, >=, < or <=")
        self.refused(ok + "threshold = lots\n", 4, "threshold: 'lots' is not a number")
        self.refused(ok + "period = 500ms\n", 4, "period: at least 1s")
        self.refused(ok + "evaluation_periods = 0\n", 4, "evaluation_periods")
        self.refused(ok + "treat_missing = maybe\n", 4,
                     "'maybe' is not missing, breaching, not_breaching or ignore")
        self.refused(ok + "colour = red\n", 4, "unknown key 'colour' in [alarm a]")
        self.refused("[alarm a.b]\n", 1, "letters, digits, - or _")
        self.refused(ok + ok, 4, "alarm 'a' is defined twice")


if __name__ == "__main__":
    main()
