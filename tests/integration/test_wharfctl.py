#!/usr/bin/env python3
"""wharfctl's admin commands, the real binary against a broker's admin API,
their effects checked with stomp.py and paho clients: a queue it creates
takes messages, what it sends arrives, purge empties, move brings dead
letters back to their queue, close ends a client's connection; tables,
--json, exit codes."""
import json
import subprocess

from admintest import ADMIN_CONFIG, WHARFCTL, AdminClients
from mqtttest import MqttTestCase
from stomptest import Collector, ack_header, new_receipt, stomp_close, stomp_connect
from wharftest import main, wait_until

CONFIG = ADMIN_CONFIG + """
[queue ctl.dead.>]
max_redeliveries = 1
"""


class Wharfctl(AdminClients, MqttTestCase):

    config = CONFIG

    def stomp(self, listener=None):
        conn, lst = stomp_connect(self.stomp_port, listener=listener)
        self.on_teardown(lambda: stomp_close(conn))
        return conn, lst

    def subscribe(self, conn, lst, dest, ack="auto"):
        rid = new_receipt()
        conn.subscribe(dest, id="s-" + rid, ack=ack, headers={"receipt": rid})
        lst.wait_receipt(rid)

    def depth(self, q):
        status, got = self.api.get("/api/v1/queues/" + q)
        return got["depth"] if status == 200 else None

    def test_created_queue_takes_messages(self):
        self.ctl("queue", "create", "ctl.made")
        conn, lst = self.stomp()
        self.subscribe(conn, lst, "/queue/ctl.made")
        conn.send("/queue/ctl.made", "hello")
        self.assertEqual(lst.wait_messages(1)[0].body, "hello")
        out = self.ctl("queues").stdout.splitlines()
        self.assertEqual(out[0].split()[:3], ["NAME", "DEPTH", "UNACKED"])
        row = [line.split() for line in out if line.startswith("ctl.made ")][0]
        # Columns line up under their headers.
        self.assertEqual(out[0].index("DEPTH"), [l for l in out if l.startswith("ctl.made ")][0]
                         .index(row[1], len("ctl.made")))
        got = json.loads(self.ctl("--json", "queues").stdout)
        self.assertIn("ctl.made", [q["name"] for q in got])
        self.ctl("queue", "create", "ctl.made2")
        self.ctl("queue", "delete", "ctl.made2")
        self.assertIsNone(self.depth("ctl.made2"))

    def test_send_arrives(self):
        conn, lst = self.stomp()
        self.subscribe(conn, lst, "/queue/ctl.sent")
        self.ctl("send", "/queue/ctl.sent", "from wharfctl", "--persistent")
        m = lst.wait_messages(1)[0]
        self.assertEqual(m.body, "from wharfctl")
        self.assertEqual(m.headers.get("persistent"), "true")
        self.subscribe(conn, lst, "/topic/ctl.news")
        self.ctl("send", "/topic/ctl.news", "to the topic")
        lst.wait_body("to the topic")

    def test_purge_and_browse(self):
        for i in range(3):
            self.ctl("send", "ctl.purged", "m%d" % i)
        out = self.ctl("browse", "ctl.purged", "--count", "2").stdout
        self.assertIn("m0", out)
        self.assertIn("m1", out)
        self.assertNotIn("m2", out)
        self.ctl("queue", "purge", "ctl.purged")
        self.assertEqual(self.depth("ctl.purged"), 0)

    def test_move_dead_letters_back(self):
        conn, lst = self.stomp()
        conn.send("/queue/ctl.dead.q", "poison", headers={"persistent": "true"})

        def nack(frame):
            nconn.nack(*ack_header(frame, "1.2"))

        nconn, nlst = self.stomp(Collector(on_message=nack))
        self.subscribe(nconn, nlst, "/queue/ctl.dead.q", ack="client-individual")
        wait_until(lambda: self.depth("DLQ.ctl.dead.q") == 1, what="the dead letter")
        stomp_close(nconn)
        out = self.ctl("move", "DLQ.ctl.dead.q").stdout
        self.assertRegex(out, r"moved\s+1")
        self.subscribe(conn, lst, "/queue/ctl.dead.q")
        self.assertEqual(lst.wait_messages(1)[0].body, "poison")
        self.assertEqual(self.depth("DLQ.ctl.dead.q"), 0)

    def test_close_ends_paho_connection(self):
        p = self.paho(client_id="ctl-closed")
        conns = json.loads(self.ctl("--json", "connections").stdout)
        ids = [c["id"] for c in conns if c["protocol"] == "mqtt"]
        self.assertEqual(len(ids), 1)
        self.assertIn("mqtt", self.ctl("connections").stdout)
        self.ctl("close", str(ids[0]))
        p.wait_disconnected()

    def test_bindings(self):
        p = self.paho(client_id="ctl-binder")
        p.subscribe("ctl/b/+")
        p.subscribe("$share/grp/ctl/shared/#")
        conn, lst = stomp_connect(self.stomp_port, headers={"client-id": "ctl-durable"})
        self.on_teardown(lambda: stomp_close(conn))
        rid = new_receipt()
        conn.subscribe("/topic/ctl.audit", id="d1",
                       headers={"activemq.subscriptionName": "audit", "receipt": rid})
        lst.wait_receipt(rid)
        got = json.loads(self.ctl("--json", "bindings").stdout)
        by = dict((b["pattern"], b) for b in got)
        self.assertEqual(by["ctl.b.*"]["kind"], "subscription")
        self.assertEqual(by["ctl.b.*"]["consumers"], 1)
        self.assertEqual(by["ctl.shared.>"]["kind"], "share-group")
        self.assertIn("grp", by["ctl.shared.>"]["label"])
        self.assertEqual(by["ctl.audit"]["kind"], "durable-subscription")
        self.assertTrue(by["ctl.audit"]["queue"].startswith("$stomp."))
        out = self.ctl("bindings").stdout
        self.assertEqual(out.split()[:2], ["PATTERN", "KIND"])
        self.assertRegex(out, r"(?m)^ctl\.b\.\* +subscription ")

    def test_errors_and_usage(self):
        r = self.ctl("queue", "purge", "ctl.none-such", want=1)
        self.assertIn("no queue ctl.none-such", r.stderr)
        self.ctl("close", "999999", want=1)
        self.ctl("frobnicate", want=2)
        self.ctl("queue", "create", want=2)
        self.ctl("browse", "x", "--count", "0", want=2)
        # A broker without [alarm] sections: an empty list, not an error.
        self.assertEqual(self.ctl("alarms").stdout.split()[:2], ["NAME", "STATE"])
        self.assertEqual(json.loads(self.ctl("--json", "alarms").stdout), [])
        r = subprocess.run([WHARFCTL, "--admin", "http://127.0.0.1:1", "queues"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        r = subprocess.run([WHARFCTL, "--help"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0)
        self.assertIn("move SRC [--to DST] [--count N]", r.stdout)
        self.assertRegex(self.ctl("broker").stdout, r"(?m)^state +active$")


if __name__ == "__main__":
    main()
