"""The pair's replication link (docs/ha.md, "Replication link"): a standby
mirrors the active's journal, confirmations wait for it while it is in sync,
a stalled standby is dropped, a returning one catches up, a wrong secret is
refused, and a promoted standby serves what was replicated. Real clients,
kill -9, never a polite shutdown where it matters."""
import os
import subprocess
import threading
import time
import unittest

from pairtest import SECRET, Pair
from stomptest import stomp_close, stomp_connect
from test_store import QUEUE, drain, publish_stream
from wharftest import main, wait_until

WHARFCTL = os.environ.get("WHARFCTL") or os.path.join(
    os.path.dirname(os.environ.get("WHARFD", "build/src/wharfd")), "..", "tools", "wharfctl",
    "wharfctl")


def publish(port, n, start=0, pad=0):
    """n persistent messages with receipts, all waited for; returns the
    indexes whose receipts came."""
    confirmed, stop = [], threading.Event()
    conn, lst = publish_stream(port, n, confirmed, stop, body=lambda i: "m-%06d" % (start + i),
                               size_pad=pad)
    wait_until(lambda: len(confirmed) >= n, timeout=30, what="%d receipts" % n)
    stomp_close(conn, lst)
    return [start + i for i in confirmed]


class PairTestCase(unittest.TestCase):
    pair_args = {}

    def setUp(self):
        self.pair = Pair(**self.pair_args)

    def tearDown(self):
        self.pair.cleanup()

    def check_standby_holds(self, expected):
        """kill -9 both, open the standby's directory alone: every expected
        body is there, once, in order."""
        p = self.pair
        if p.primary.alive():
            p.kill9_primary()
        if p.standby.alive():
            p.kill9_standby()
        single = p.open_standby_dir()
        got, _, _ = drain(single.stomp_port)
        self.assertEqual(got, ["m-%06d" % i for i in expected])
        self.assertEqual(single.stop(), 0, single.output())


class ReplicatedReceiptsTest(PairTestCase):
    def test_every_receipted_message_is_on_the_standby(self):
        p = self.pair
        p.wait_in_sync()
        confirmed, stop = [], threading.Event()
        conn, lst = publish_stream(p.primary.stomp_port, 2000, confirmed, stop)
        wait_until(lambda: len(confirmed) >= 2000, timeout=60, what="receipts")
        # kill -9 right after the last receipt: the standby must have it all
        p.kill9_primary()
        self.check_standby_holds(sorted(confirmed))

    def test_standby_mirrors_segment_files_byte_for_byte(self):
        p = self.pair
        p.wait_in_sync()
        publish(p.primary.stomp_port, 300, pad=500)
        a = os.path.join(p.a_dir, "journal")
        b = os.path.join(p.b_dir, "journal")

        def same():
            fa, fb = p.segment_files(p.a_dir), p.segment_files(p.b_dir)
            if fa != fb:
                return False
            return all(open(os.path.join(a, f), "rb").read() ==
                       open(os.path.join(b, f), "rb").read() for f in fa)
        wait_until(same, timeout=10, what="identical segment files")


if __name__ == "__main__":
    main()
