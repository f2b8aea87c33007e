#!/usr/bin/env python3
"""POST /api/v1/queues/NAME/move: a dead-letter queue's messages back to
the queue they died in, and a queue's messages to a named queue, checked
with stomp.py consumers; durable ones survive a restart where they went."""
import urllib.parse

from admintest import ADMIN_CONFIG, WithAdmin
from stomptest import Collector, StompTestCase, ack_header, sync
from wharftest import main, wait_until

CONFIG = ADMIN_CONFIG + """
[queue mv.>]
max_redeliveries = 1
"""


def qpath(name, tail=""):
    return "/api/v1/queues/" + urllib.parse.quote(name, safe="") + tail


class AdminMove(WithAdmin, StompTestCase):

    config = CONFIG

    def depth(self, q):
        """The queue's depth, None while it does not exist."""
        status, got = self.api.get(qpath(q))
        return got["depth"] if status == 200 else None

    def dead_letter(self, q, bodies):
        """Sends bodies to /queue/q and NACKs each (twice) into DLQ.q."""
        conn, lst = self.connect()
        self.send_all(conn, lst, "/queue/" + q, bodies, headers={"persistent": "true"})

        def on_message(frame):
            cconn.nack(*ack_header(frame, "1.2"))

        clst = Collector(on_message=on_message)
        cconn, clst = self.connect(listener=clst)
        self.subscribe(cconn, clst, "/queue/" + q, ack="client-individual")
        wait_until(lambda: self.depth("DLQ." + q) == len(bodies),
                   what="dead letters")
        cconn.disconnect()

    def test_dlq_back_to_origin(self):
        q = "mv.orders"
        self.dead_letter(q, ["a", "b", "c"])
        got = self.api.ok("POST", qpath("DLQ." + q, "/move"), {"count": 2})
        self.assertEqual((got["moved"], got["skipped"]), (2, 0))
        self.assertEqual(self.api.queue("DLQ." + q)["depth"], 1)
        # Redelivered to a consumer of the origin, in order, without the
        # dead-letter properties, still persistent.
        conn, lst = self.connect()
        self.subscribe(conn, lst, "/queue/" + q, ack="client-individual")
        msgs = lst.wait_messages(2)
        self.assertEqual([m.body for m in msgs], ["a", "b"])
        for m in msgs:
            self.assertNotIn("x-death-reason", m.headers)
            self.assertNotIn("x-original-destination", m.headers)
            self.assertEqual(m.headers.get("persistent"), "true")
            conn.ack(*ack_header(m, "1.2"))
        sync(conn, lst)
        # The rest, with no body: all that is left.
        got = self.api.ok("POST", qpath("DLQ." + q, "/move"))
        self.assertEqual(got["moved"], 1)
        lst.wait_messages(3)
        self.assertEqual(lst.bodies(), ["a", "b", "c"])
        self.assertEqual(self.api.queue("DLQ." + q)["depth"], 0)

    def test_to_named_queue(self):
        conn, lst = self.connect()
        self.send_all(conn, lst, "/queue/mv.src", ["1", "2", "3"])
        got = self.api.ok("POST", qpath("mv.src", "/move"), {"to": "mv.dst"})
        self.assertEqual(got, {"name": "mv.src", "to": "mv.dst", "moved": 3, "skipped": 0,
                               "stopped": None})
        self.assertEqual(self.api.queue("mv.src")["depth"], 0)
        dconn, dlst = self.connect()
        self.subscribe(dconn, dlst, "/queue/mv.dst")
        dlst.wait_messages(3)
        self.assertEqual(dlst.bodies(), ["1", "2", "3"])

    def test_without_origin_stays(self):
        conn, lst = self.connect()
        self.send_all(conn, lst, "/queue/mv.plain", ["x"])
        got = self.api.ok("POST", qpath("mv.plain", "/move"))
        self.assertEqual((got["moved"], got["skipped"]), (0, 1))
        self.assertEqual(self.api.queue("mv.plain")["depth"], 1)

    def test_bad_requests(self):
        status, err = self.api.request("POST", qpath("mv.none-such", "/move"))
        self.assertEqual(status, 404)
        self.assertIn("no queue", err["error"])
        conn, lst = self.connect()
        self.send_all(conn, lst, "/queue/mv.self", ["x"])
        self.assertEqual(self.api.request("POST", qpath("mv.self", "/move"),
                                          {"to": "mv.self"})[0], 400)
        self.assertEqual(self.api.request("POST", qpath("mv.self", "/move"),
                                          {"count": 0})[0], 400)
        self.assertEqual(self.api.request("POST", qpath("mv.self", "/move"),
                                          {"into": "x"})[0], 400)
        self.assertEqual(self.api.request("GET", qpath("mv.self", "/move"))[0], 405)
        self.assertEqual(self.api.queue("mv.self")["depth"], 1)


if __name__ == "__main__":
    main()
