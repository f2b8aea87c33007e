#!/usr/bin/env python3
"""A STOMP producer that the broker itself stops reading (a full queue with
overflow block) is not dropped for heart-beat silence: the heart-beats it
sends meanwhile wait, unread, in the socket, and paused input is not
silence. Once a consumer drains the queue, every message arrives."""
import time

from stomptest import StompTestCase, new_receipt
from wharftest import main

N = 40
HEARTBEAT_MS = 500


class StompBlockedProducerHeartbeats(StompTestCase):
    config = ("[stomp]\nheartbeat = %dms\n"
              "[queue hb.*]\nmax_length = 5\noverflow = block\n" % HEARTBEAT_MS)

    def test_blocked_producer_is_not_timed_out(self):
        q = self.name(stem="hb.blocked")
        prod, plst = self.connect(heartbeats=(HEARTBEAT_MS, HEARTBEAT_MS))
        for i in range(N):
            prod.send(q, "m-%03d" % i, headers={"persistent": "true"})
        last = new_receipt()
        prod.send(q, "last", headers={"persistent": "true", "receipt": last})
        # Blocked for several heart-beat windows (the broker drops a silent
        # client after 1.5 of them): no ERROR, no disconnect, no receipt.
        blocked_for = 6 * HEARTBEAT_MS / 1000.0
        start = time.monotonic()
        with self.assertRaises(AssertionError):
            plst.wait_for(lambda: plst.errors or plst.disconnected or plst.receipts,
                          blocked_for, "the producer to be dropped or unblocked")
        self.assertGreaterEqual(time.monotonic() - start, blocked_for * 0.9)
        cons, clst = self.connect()
        self.subscribe(cons, clst, q)
        msgs = clst.wait_messages(N + 1)
        self.assertEqual([m.body for m in msgs], ["m-%03d" % i for i in range(N)] + ["last"])
        plst.wait_receipt(last)
        self.assertEqual(plst.errors, [])
        self.assertFalse(plst.disconnected)
        self.assertTrue(prod.is_connected())


if __name__ == "__main__":
    main()
