"""The pair's arbiter (src/ha/arbiter.h) against a real etcd: two
tests/ha/arbiter_driver processes campaign for the same pair, and the test
kills them, makes one resign, and kills etcd under them."""
import os
import queue
import subprocess
import tempfile
import threading
import time
import unittest

from etcdtest import Etcd
from wharftest import main

BUILDDIR = os.environ.get("WHARF_BUILDDIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")
DRIVER = os.path.join(BUILDDIR, "tests", "ha", "arbiter_driver")
TTL = 2.0  # seconds: lease_ttl


class Driver:
    """One arbiter_driver; its stdout lines arrive in self.lines with the
    time.monotonic() they were read at."""

    def __init__(self, url, pair, node_id):
        self.node_id = node_id
        self.err = tempfile.NamedTemporaryFile(prefix="wharf-arbiter-", suffix=".log")
        self.proc = subprocess.Popen([DRIVER, url, pair, node_id, str(int(TTL * 1000))],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("ready")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.strip()))

    def send(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def stderr(self):
        with open(self.err.name, errors="replace") as f:
            return f.read()

    def next(self, timeout, skip=("renewed",)):
        """The next line not starting with a word of skip: (time, words);
        None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                t, line = self.lines.get(timeout=max(0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            words = line.split()
            if words and words[0] not in skip:
                return t, words

    def expect(self, word, timeout=5, skip=("renewed",)):
        got = self.next(timeout, skip)
        if got is None or got[1][0] != word:
            raise AssertionError("%s: expected %r, got %r\n%s" % (self.node_id, word, got, self.stderr()))
        return got

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        """quit; the exit code must be 0 (no sanitizer report)."""
        if self.proc.poll() is None:
            self.send("quit")
            self.proc.wait(10)
        return self.proc.returncode


class ArbiterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.etcd = Etcd()

    @classmethod
    def tearDownClass(cls):
        cls.etcd.cleanup()

    def setUp(self):
        self.drivers = []

    def tearDown(self):
        for d in self.drivers:
            try:
                if d.proc.poll() is None:
                    rc = d.stop()
                    self.assertEqual(rc, 0, "%s exited with %d:\n%s" % (d.node_id, rc, d.stderr()))
            finally:
                d.err.close()

    def driver(self, pair, node_id, etcd=None):
        d = Driver((etcd or self.etcd).url, pair, node_id)
        self.drivers.append(d)
        return d

    def pair(self, name, etcd=None, synced=True):
        """Two drivers campaign; returns (leader, follower) once one is
        elected at epoch 1 and the other follows it, and (synced) the
        leader has named the follower its standby in sync."""
        a, b = self.driver(name, "a", etcd), self.driver(name, "b", etcd)
        a.send("campaign")
        b.send("campaign")
        ea, eb = a.next(5), b.next(5)
        self.assertIsNotNone(ea, a.stderr())
        self.assertIsNotNone(eb, b.stderr())
        events = sorted([ea[1], eb[1]])
        self.assertEqual(events[0], ["elected", "1"])
        leader, follower = (a, b) if ea[1][0] == "elected" else (b, a)
        self.assertEqual(events[1], ["follower", leader.node_id])
        if synced:
            leader.send("sync " + follower.node_id)
            leader.expect("synced")
            self.assertEqual((etcd or self.etcd).get("/wharf/%s/sync" % name), follower.node_id)
        return leader, follower

    def test_one_of_two_is_elected(self):
        leader, _ = self.pair("one")
        self.assertEqual(self.etcd.get("/wharf/one/leader"), leader.node_id)
        self.assertEqual(self.etcd.get("/wharf/one/epoch"), "1")
        # The leader keeps its lease alive: still leader well after the TTL.
        self.assertIsNone(leader.next(TTL * 1.5), "an event while leading")

    def test_killed_leader_is_replaced_within_ttl(self):
        leader, follower = self.pair("kill")
        killed = time.monotonic()
        leader.kill9()
        t, words = follower.expect("elected", timeout=TTL + 3)
        print("# leader killed -> other elected in %.2f s" % (t - killed))
        self.assertEqual(words, ["elected", "2"])
        self.assertLess(t - killed, TTL + 1)
        self.assertEqual(self.etcd.get("/wharf/kill/leader"), follower.node_id)

    def test_a_standby_not_in_sync_does_not_take_over(self):
        """The leader never named the follower in sync (or cleared it): the
        follower lacks what the leader confirmed alone, so it waits for the
        leader to come back, which takes the lead again at a new epoch."""
        leader, follower = self.pair("stale", synced=False)
        leader.send("sync " + follower.node_id)
        leader.expect("synced")
        leader.send("sync -")
        self.assertEqual(leader.expect("synced")[1], ["synced", "ok"])
        self.assertIsNone(self.etcd.get("/wharf/stale/sync"))
        leader.kill9()
        self.assertIsNone(follower.next(TTL * 2.5), "took over without being in sync")
        self.assertIn("may not take over", follower.stderr())
        again = self.driver("stale", leader.node_id)
        again.send("campaign")
        self.assertEqual(again.expect("elected", timeout=TTL + 3)[1], ["elected", "2"])
        self.assertEqual(self.etcd.get("/wharf/stale/last"), leader.node_id)

    def test_resign_hands_over_at_once(self):
        leader, follower = self.pair("resign")
        t0 = time.monotonic()
        leader.send("resign")
        leader.expect("resigned", timeout=TTL)
        t, words = follower.expect("elected", timeout=TTL)
        print("# resign -> other elected in %.2f s" % (t - t0))
        self.assertEqual(words, ["elected", "2"])
        self.assertLess(t - t0, 1.0)
        # Campaigning again, the old leader follows the new one.
        leader.send("campaign")
        self.assertEqual(leader.expect("follower")[1], ["follower", follower.node_id])

    def test_etcd_killed_under_leader(self):
        with Etcd() as etcd:
            leader, follower = self.pair("fence", etcd)
            for _ in range(3):  # a few keep-alives in
                last_renewed = int(leader.expect("renewed", skip=())[1][1])
            killed = time.monotonic()
            etcd.kill9()
            while True:
                got = leader.next(TTL + 2, skip=())
                self.assertIsNotNone(got, "no lost after etcd died:\n" + leader.stderr())
                _, words = got
                if words[0] == "renewed":
                    last_renewed = int(words[1])
                    continue
                self.assertEqual(words[0], "lost")
                lost_at = int(words[1])
                break
            # The lease could live in etcd until TTL after the last successful
            # keep-alive was sent; the node must have stopped before that.
            print("# etcd killed -> lost after %.2f s; %.3f s after the last renewal's send"
                  % (got[0] - killed, (lost_at - last_renewed) / 1000))
            self.assertLess(lost_at - last_renewed, TTL * 1000 - 200)
            self.assertIsNone(follower.next(0.5), "the follower saw an event with etcd down")
            # etcd comes back: one of them leads again, at the next epoch.
            etcd.start()
            restarted = time.monotonic()
            ea, eb = leader.next(TTL * 3), follower.next(TTL * 3)
            self.assertIsNotNone(ea, leader.stderr())
            self.assertIsNotNone(eb, follower.stderr())
            events = sorted([ea[1], eb[1]])
            self.assertEqual(events[0], ["elected", "2"])
            new = leader if ea[1][0] == "elected" else follower
            self.assertEqual(events[1], ["follower", new.node_id])
            print("# etcd restarted -> elected again in %.2f s" % (max(ea[0], eb[0]) - restarted))
            self.assertEqual(etcd.get("/wharf/fence/epoch"), "2")
            for d in (leader, follower):
                self.assertEqual(d.stop(), 0, d.stderr())


if __name__ == "__main__":
    main()
