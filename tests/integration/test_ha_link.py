"""The pair's replication link (docs/ha.md, "Replication link"): a standby
mirrors the active's journal, confirmations wait for it while it is in sync,
a stalled standby is dropped, a cut link (a CutProxy between the standby
and the active) drops it and it catches up once restored, a returning one
catches up, a wrong secret is refused, and a promoted standby serves what
was replicated. Real clients, kill -9, never a polite shutdown where it
matters."""
import hashlib
import hmac
import os
import signal
import socket
import struct
import shutil
import subprocess
import sys
import threading
import time
import unittest

from proton import Message

from amqptest import Client
from mqtttest import Paho
from pairtest import SECRET, CutProxy, Pair, ha_config
from stomptest import TIMEOUT, stomp_close, stomp_connect
from test_store import QUEUE, drain, publish_stream
from test_tls import Certs
from wharftest import Broker, main, wait_until

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
        self.assertEqual(single.stop(), 0, single.output())
        self.assertEqual([g[:8] for g in got], ["m-%06d" % i for i in expected])

    def check_standby_holds_all_confirmed(self, confirmed):
        """With the standby in sync: 20 more receipted messages, kill -9 of
        both, the standby's directory opened alone holds every confirmed
        message once, in order (those sent and never confirmed may be there
        too)."""
        p = self.pair
        final = publish(p.primary.stomp_port, 20, start=900000)
        p.kill9_primary()
        p.kill9_standby()
        single = p.open_standby_dir()
        got, _, _ = drain(single.stomp_port)
        self.assertEqual(single.stop(), 0, single.output())
        self.assertEqual(len(got), len(set(got)), "duplicates")
        want = set("m-%06d" % i for i in confirmed) | set("m-%06d" % i for i in final)
        self.assertEqual(want - set(got), set())
        self.assertEqual(got, sorted(got))
        return got


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def record(seq, payload=b"abc", rtype=7):
    body = struct.pack("<QB", seq, rtype) + payload
    return struct.pack("<II", len(body), crc32c(body)) + body


def frame(ftype, payload=b""):
    return struct.pack("<IB", len(payload) + 1, ftype) + payload


def rstr(b):
    return struct.pack("<H", len(b)) + b


class FakeActive:
    """The active's end of the link, written from docs/ha.md with Python's
    own hmac: an independent reading of the protocol."""

    def __init__(self):
        self.lis = socket.socket()
        self.lis.bind(("127.0.0.1", 0))
        self.lis.listen(4)
        self.lis.settimeout(10)
        self.port = self.lis.getsockname()[1]

    def accept(self):
        self.s, _ = self.lis.accept()
        self.s.settimeout(10)
        self.buf = b""

    def read(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack("<I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    f = self.buf[4:4 + n]
                    self.buf = self.buf[4 + n:]
                    return f[0], f[1:]
            chunk = self.s.recv(65536)
            if not chunk:
                return None, b""
            self.buf += chunk

    def read_type(self, want):
        while True:
            t, p = self.read()
            if t is None or t == want:
                return t, p

    def handshake(self, secret=SECRET):
        """CHALLENGE, HELLO checked, WELCOME (full copy); returns the
        standby's last_seq."""
        na = os.urandom(32)
        self.s.sendall(frame(1, na + rstr(b"fake")))
        t, p = self.read()
        assert t == 2, t
        proof, nb = p[:32], p[32:64]
        idlen = struct.unpack("<H", p[64:66])[0]
        last, oldest, role, epoch = struct.unpack("<QQBQ", p[66 + idlen:])
        key = secret.encode()
        want = hmac.new(key, b"wharf-repl-1 hello" + na + nb, hashlib.sha256).digest()
        assert hmac.compare_digest(proof, want), "bad HELLO proof"
        assert role == 1
        wp = hmac.new(key, b"wharf-repl-1 welcome" + nb + na, hashlib.sha256).digest()
        self.s.sendall(frame(3, wp + rstr(b"fake") + rstr(b"stomp://127.0.0.1:1") +
                             struct.pack("<BQQQQQ", 2, 0, 0, 3, 1, 1)))
        return last

    def close(self):
        self.s.close()
        self.lis.close()


class WireTest(unittest.TestCase):
    """The standby against an active written in Python from docs/ha.md."""

    def test_standby_writes_whole_records_and_drops_a_bad_chunk(self):
        fake = FakeActive()
        b = Broker(("stomp",), ha_config("standby", "b", "repl://127.0.0.1:%d" % fake.port))
        try:
            fake.accept()
            self.assertEqual(fake.handshake(), 0)
            t, p = fake.read_type(8)
            self.assertEqual(struct.unpack("<Q", p)[0], 0, "the first ACK: nothing held")
            head = b"WHARFJ1\0" + struct.pack("<Q", 1)
            recs = record(1) + record(2) + record(3)
            fake.s.sendall(frame(4, struct.pack("<Q", 1)) +
                           frame(5, struct.pack("<QQQ", 1, 0, 3) + head + recs))
            t, p = fake.read_type(8)
            self.assertEqual(struct.unpack("<Q", p)[0], 3, "ACK of records 1..3")
            path = os.path.join(b.data_dir, "journal", "%020d.wj" % 1)
            self.assertEqual(open(path, "rb").read(), head + recs)
            # a gap in the numbers: the standby drops the link and comes back
            fake.s.sendall(frame(5, struct.pack("<QQQ", 1, len(head + recs), 5) + record(5)))
            t, _ = fake.read()
            self.assertIsNone(t, "the link is closed")
            b.wait_for_log(r"error replication: segment 1 offset \d+: not whole records "
                           r"numbered from 4")
            fake.s.close()
            fake.accept()
            self.assertEqual(fake.handshake(), 3, "it says where it stands: record 3")
            t, p = fake.read_type(8)
            self.assertEqual(struct.unpack("<Q", p)[0], 0, "a full copy starts from nothing")
            self.assertFalse(os.path.exists(path))
        finally:
            fake.close()
            b.cleanup()


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


class BigRecordTest(PairTestCase):
    """A record bigger than a replication chunk (1 MiB) and than the 16 MiB
    a DATA frame once carried: a 20 MiB persistent STOMP message
    (max_frame_size raised to 32 MiB) is receipted once the standby has it,
    the standby stays attached and in sync, and its copy holds the message
    whole."""
    # 20 MiB through the journal, the link and the standby's disk (written
    # and synced on its loop, silent meanwhile) may take more than the
    # usual 5 s for the ack, and 3 s of silence, on a loaded machine under
    # ASan
    pair_args = {"globals": "[stomp]\nmax_frame_size = 32MiB\n", "sync_timeout": "30s",
                 "timeout": "15s"}

    def test_a_20_mib_message_reaches_the_standby(self):
        p = self.pair
        p.wait_in_sync()
        body = "m-000000" + "".join(chr(97 + i % 26) for i in range(20 << 20))
        conn, lst = stomp_connect(p.primary.stomp_port)
        conn.send(QUEUE, body, headers={"persistent": "true", "receipt": "big"})
        lst.wait_receipt("big", 60)
        stomp_close(conn, lst)
        after = publish(p.primary.stomp_port, 5, start=1)
        log = p.primary.output()
        self.assertNotIn("dropped", log, log[-600:])
        self.assertEqual(log.count("standby b in sync"), 1)
        p.kill9_primary()
        p.kill9_standby()
        single = p.open_standby_dir()
        conn, lst = stomp_connect(single.stomp_port)
        conn.subscribe(QUEUE, id="s", ack="auto")
        got = [m.body for m in lst.wait_messages(6, 60)]
        stomp_close(conn, lst)
        self.assertEqual(single.stop(), 0, single.output())
        self.assertTrue(got[0] == body, "the 20 MiB message is not whole on the standby")
        self.assertEqual(got[1:], ["m-%06d" % i for i in after])


class OtherProtocolsTest(PairTestCase):
    pair_args = {"protocols": ("stomp", "mqtt", "amqp"),
                 "globals": "[topic sensors.>]\nbind = readings\n"}

    def test_mqtt_qos1_and_retained_and_amqp_accepted_are_on_the_standby(self):
        p = self.pair
        p.wait_in_sync()
        m = Paho(p.primary.ports["mqtt"], client_id="dev-1", level=5)
        m.connect()
        for i in range(100):
            m.c.publish("sensors/t1", "r-%03d" % i, qos=1)
        mids = [m.c.publish("plant/%d/state" % i, "state-%d" % i, qos=1, retain=True).mid
                for i in range(10)]
        m.wait_for(lambda: len(m.published) == 110 and set(mids) <= m.published, TIMEOUT,
                   "110 PUBACKs")
        a = Client(p.primary.ports["amqp"])
        a.send_all(a.snd("orders"), [Message(body="a-%03d" % i, durable=True) for i in range(100)])
        # kill -9 right after the last confirmation
        p.kill9_primary()
        m.c.loop_stop()
        p.kill9_standby()
        single = p.open_standby_dir(("stomp", "mqtt", "amqp"))
        got, _, _ = drain(single.stomp_port, "/queue/readings")
        self.assertEqual(got, ["r-%03d" % i for i in range(100)])
        got, _, _ = drain(single.stomp_port, "/queue/orders")
        self.assertEqual(got, ["a-%03d" % i for i in range(100)])
        s = Paho(single.ports["mqtt"], client_id="sub", level=5)
        s.connect()
        s.subscribe("plant/+/state", qos=1)
        s.wait_for(lambda: len(s.messages) >= 10, TIMEOUT, "10 retained messages")
        got = sorted((x.topic, x.payload) for x in s.messages)
        self.assertEqual(got, sorted(("plant/%d/state" % i, b"state-%d" % i) for i in range(10)))
        s.c.disconnect()
        s.c.loop_stop()
        self.assertEqual(single.stop(), 0, single.output())


class SilentActiveTest(PairTestCase):
    pair_args = {"timeout": "1s"}

    def test_the_standby_leaves_a_silent_active_and_comes_back(self):
        p = self.pair
        p.wait_in_sync()
        os.kill(p.primary.proc.pid, signal.SIGSTOP)
        try:
            p.standby.wait_for_log(r"replication: active a silent for 1000 ms; reconnecting",
                                   timeout=5)
        finally:
            os.kill(p.primary.proc.pid, signal.SIGCONT)
        p.wait_in_sync(count=2)
        sent = publish(p.primary.stomp_port, 50)
        self.check_standby_holds(sorted(sent))


class StalledStandbyTest(PairTestCase):
    pair_args = {"sync_timeout": "2s", "timeout": "3s"}

    def test_sigstop_drops_the_standby_then_it_catches_up(self):
        p = self.pair
        p.wait_in_sync()
        confirmed, stop = [], threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                conn, lst = publish_stream(p.primary.stomp_port, 50, confirmed, stop,
                                           body=lambda k, i=i: "m-%06d" % (i + k))
                wait_until(lambda: len(confirmed) >= i + 50 or stop.is_set(), timeout=30)
                stomp_close(conn, lst)
                i += 50
        t = threading.Thread(target=load, daemon=True)
        t.start()
        try:
            wait_until(lambda: len(confirmed) > 200, timeout=20, what="receipts")
            p.stop_standby()
            time.sleep(0.5)
            n = len(confirmed)
            time.sleep(1.0)
            # the gate holds them: the standby has not written them
            self.assertLessEqual(len(confirmed) - n, 50, "receipts went on while stalled")
            line = p.primary.wait_for_log(r"standby b dropped \(no ack for 2000 ms\): running "
                                          r"alone, degraded", timeout=2 + 1.5)
            self.assertIn("warn", line)
            n = len(confirmed)
            wait_until(lambda: len(confirmed) > n + 100, timeout=5,
                       what="receipts resuming alone")
            p.cont_standby()
            p.wait_in_sync(count=2, timeout=20)
        finally:
            stop.set()
            t.join(30)
        self.check_standby_holds_all_confirmed(confirmed)

    def test_sync_local_never_waits_for_the_standby(self):
        self.pair.cleanup()
        p = self.pair = Pair(sync="local", sync_timeout="2s")
        p.wait_in_sync()
        p.stop_standby()
        t0 = time.monotonic()
        sent = publish(p.primary.stomp_port, 200)
        self.assertEqual(len(sent), 200)
        self.assertLess(time.monotonic() - t0, 1.5, "receipts waited for a stopped standby")
        p.primary.wait_for_log(r"standby b dropped \(no ack for 2000 ms\)")
        p.cont_standby()
        p.wait_in_sync(count=2)
        self.check_standby_holds(sorted(sent))



class Receipts(list):
    """The indexes whose receipts came (publish_stream appends them from
    stomp.py's thread), with the time each came."""

    def __init__(self):
        super().__init__()
        self.times = []

    def append(self, i):
        self.times.append(time.monotonic())
        super().append(i)

    def after(self, t):
        return [x for x in self.times if x > t]


class LinkCutTest(PairTestCase):
    """A CutProxy between the standby and the active (the standby's peer is
    the proxy), cut while the standby is in sync under a stream of
    receipted STOMP publishes: the active drops the standby within the
    configured timeouts and confirms alone, degraded; once the link is
    restored the standby reconnects, catches up and is in sync again, and
    its copy holds every receipted message once, in order. The margins
    (MARGIN s over a timeout) are for a loaded machine and an ASan build."""
    SYNC_TIMEOUT, TIMEOUT, MARGIN = 2.0, 3.0, 1.5
    # small segments: the standby's place is past the first one when the
    # link is cut, so that it catches up from there (not a full copy)
    pair_args = {"sync_timeout": "2s", "timeout": "3s", "globals": "journal_segment_size = 64k\n"}

    def setUp(self):
        self.pair = Pair(start_standby=False, **self.pair_args)
        self.proxy = CutProxy(self.pair.repl)
        self.pair.start_standby(peer_port=self.proxy.port)

    def tearDown(self):
        self.proxy.close()
        self.pair.cleanup()

    def load(self, confirmed, stop):
        """Batches of 50 receipted messages, each batch on a new connection
        once the last one is all confirmed: m-000000, m-000001, ..."""
        def run():
            i = 0
            while not stop.is_set():
                conn, lst = publish_stream(self.pair.primary.stomp_port, 50, confirmed, stop,
                                           body=lambda k, i=i: "m-%06d" % (i + k))
                wait_until(lambda: len(confirmed) >= i + 50 or stop.is_set(), timeout=30,
                           what="a batch's receipts")
                stomp_close(conn, lst)
                i += 50
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def cut_and_restore(self, silent, dropped_why, standby_why, drop_after):
        """drop_after: (lowest, highest) seconds from the cut to the
        active's drop line. Returns the measured times."""
        p = self.pair
        p.wait_in_sync()
        confirmed, stop = Receipts(), threading.Event()
        t = self.load(confirmed, stop)
        m = {}
        try:
            wait_until(lambda: len(confirmed) > 2000, timeout=30, what="receipts")
            n_before = len(confirmed)
            cut = time.monotonic()
            self.proxy.cut(silent=silent)
            line = p.primary.wait_for_log(r"replication: standby b dropped \(%s\): running "
                                          r"alone, degraded" % dropped_why,
                                          timeout=drop_after[1] + 2)
            m["drop"] = time.monotonic() - cut  # seen by polling: late by <= 20 ms
            self.assertIn("warn", line)
            self.assertGreaterEqual(m["drop"], drop_after[0], "dropped too early")
            self.assertLessEqual(m["drop"], drop_after[1], "dropped too late")
            # receipts go on: the active confirms alone
            wait_until(lambda: len(confirmed) > n_before + 300, timeout=10,
                       what="receipts resuming on the degraded active")
            after = confirmed.after(cut)
            m["first_receipt_after_cut"] = after[0] - cut if after else None
            gaps = [b - a for a, b in zip(confirmed.times, confirmed.times[1:])
                    if b > cut - 1]
            m["longest_gap"] = max(gaps)
            self.assertLessEqual(m["longest_gap"], drop_after[1] + 0.5,
                                 "receipts stopped longer than the drop takes")
            p.standby.wait_for_log(r"replication: (active a %s|link to active a closed); "
                                   r"reconnecting" % standby_why,
                                   timeout=self.TIMEOUT + self.MARGIN + 2)
            m["standby_noticed"] = time.monotonic() - cut
            self.assertLessEqual(m["standby_noticed"], self.TIMEOUT + self.MARGIN)
            st = self.wharfctl_status(p.repl)
            self.assertIn("degraded: yes", st)
            self.assertIn("in_sync: no", st)
            # the standby falls behind while the active goes on alone
            n = len(confirmed)
            wait_until(lambda: len(confirmed) > n + 500, timeout=20, what="500 receipts alone")
            restore = time.monotonic()
            self.proxy.restore()
            p.wait_in_sync(count=2, timeout=30)
            m["in_sync_again"] = time.monotonic() - restore
            # it reconnects at most a second later (RECONNECT_MS), then
            # catches up from where it was: a few seconds on a loaded machine
            self.assertLessEqual(m["in_sync_again"], 1.0 + 8.0)
            out = p.primary.output()
            self.assertRegex(out, r"standby b catching up, \d+ records behind \(from ")
            self.assertNotIn("degraded: yes", self.wharfctl_status(p.repl))
            n = len(confirmed)
            wait_until(lambda: len(confirmed) > n + 100, timeout=10,
                       what="receipts with the standby back")
        finally:
            stop.set()
            t.join(35)
        m["confirmed"] = len(confirmed)
        got = self.check_standby_holds_all_confirmed(confirmed)
        m["on_standby"] = len(got)
        print("\n%s: %s" % (self.id().split(".")[-1],
                            ", ".join("%s %s" % (k, "%.3f s" % v if isinstance(v, float) else v)
                                      for k, v in m.items())), file=sys.stderr)
        return m

    def wharfctl_status(self, port):
        path = os.path.join(self.pair.dir, "secret")
        with open(path, "w") as f:
            f.write(SECRET + "\n")
        r = subprocess.run([WHARFCTL, "--peer", "repl://127.0.0.1:%d" % port, "--secret-file",
                            path, "status"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout

    def test_silent_cut_drops_the_standby_after_sync_timeout_then_it_catches_up(self):
        # packets vanish: only the active's sync_timeout (unacknowledged
        # records under load) or timeout (silence) can notice; sync_timeout
        # is the shorter one
        self.cut_and_restore(True, r"no ack for 2000 ms|silent for 3000 ms", r"silent for 3000 ms",
                             (self.SYNC_TIMEOUT - 0.3, self.SYNC_TIMEOUT + self.MARGIN))

    def test_reset_cut_drops_the_standby_at_once_then_it_catches_up(self):
        # the connection closed under both nodes: each sees it at once
        self.cut_and_restore(False, r"connection closed[^)]*", r"closed",
                             (0.0, self.MARGIN))


class ReturningStandbyTest(PairTestCase):
    def test_a_restarted_standby_catches_up(self):
        p = self.pair
        p.wait_in_sync()
        first = publish(p.primary.stomp_port, 500)
        p.kill9_standby()
        p.primary.wait_for_log(r"standby b dropped \((connection closed|silent)")
        second = publish(p.primary.stomp_port, 500, start=500)
        p.start_standby()
        p.wait_in_sync(count=2)
        self.assertIn("catching up", p.primary.output())
        third = publish(p.primary.stomp_port, 100, start=1000)
        self.check_standby_holds(sorted(first + second + third))

    def test_a_standby_ahead_of_its_active_discards_what_it_has(self):
        p = self.pair
        p.wait_in_sync()
        publish(p.primary.stomp_port, 100)
        p.kill9_standby()
        p.kill9_primary()
        # the active comes back with nothing (a new disk): the standby's
        # records are not the active's any more
        shutil.rmtree(p.a_dir)
        p.primary = p.start_primary()
        sent = publish(p.primary.stomp_port, 10, start=500)
        p.start_standby()
        line = p.standby.wait_for_log(r"replication: discarding \d+ records the active a does "
                                      r"not have")
        self.assertIn("warn", line)
        p.wait_in_sync()
        self.assertIn("full copy", p.primary.output())
        self.check_standby_holds(sorted(sent))

    def test_a_fresh_standby_joining_takes_a_full_copy(self):
        # small segments, half of them consumed: deleted and released
        # segments (stand-ins) on the active, to be mirrored as they are
        p = Pair(start_standby=False, globals="journal_segment_size = 64k\n")
        self.pair.cleanup()
        self.pair = p
        first = publish(p.primary.stomp_port, 800, pad=2000)
        got, conn, lst = drain(p.primary.stomp_port, ack_first=400)
        stomp_close(conn, lst)
        self.assertEqual([g[:8] for g in got[:400]], ["m-%06d" % i for i in range(400)])
        time.sleep(0.5)
        p.start_standby()
        p.wait_in_sync()
        self.assertIn("full copy", p.primary.output())
        second = publish(p.primary.stomp_port, 50, start=800)
        a = os.path.join(p.a_dir, "journal")
        b = os.path.join(p.b_dir, "journal")

        def same():
            fa, fb = p.segment_files(p.a_dir), p.segment_files(p.b_dir)
            return fa == fb and all(open(os.path.join(a, f), "rb").read() ==
                                    open(os.path.join(b, f), "rb").read() for f in fa)
        wait_until(same, timeout=10, what="identical segment files")
        files = p.segment_files(p.a_dir)
        self.assertNotEqual(files[0], "%020d.wj" % 1, "no segment was released: %s" % files)
        self.check_standby_holds(sorted(first)[400:] + sorted(second))


class RefusalTest(PairTestCase):
    pair_args = {}

    def setUp(self):
        self.pair = Pair(start_standby=False)

    def test_a_wrong_secret_is_refused(self):
        p = self.pair
        publish(p.primary.stomp_port, 10)
        p.start_standby(secret="another-secret-0123456789")
        line = p.primary.wait_for_log(r"replication: peer 127\.0\.0\.1:\d+ refused: bad secret")
        self.assertIn("warn", line)
        time.sleep(1.5)
        self.assertEqual(p.segment_files(p.b_dir), [])
        self.assertNotIn("attached", p.standby.output())
        self.assertNotIn("catching up", p.primary.output())
        p.standby.wait_for_log(r"closed the link before welcoming this node")

    def test_a_second_standby_is_refused(self):
        p = self.pair
        p.start_standby()
        p.wait_in_sync()
        first = p.standby
        p.b_dir = os.path.join(p.dir, "c")
        p.start_standby()
        p.primary.wait_for_log(r"standby b \(127\.0\.0\.1:\d+\) refused: standby b is "
                               r"attached already")
        self.assertTrue(first.alive())
        self.assertEqual(p.primary.output().count("in sync"), 1)


class PromoteTest(PairTestCase):
    def wharfctl(self, port, cmd, secret=SECRET):
        path = os.path.join(self.pair.dir, "secret")
        with open(path, "w") as f:
            f.write(secret + "\n")
        return subprocess.run([WHARFCTL, "--peer", "repl://127.0.0.1:%d" % port, "--secret-file",
                               path, cmd], capture_output=True, text=True, timeout=30)

    def test_status_of_both_nodes(self):
        p = self.pair
        p.wait_in_sync()
        publish(p.primary.stomp_port, 10)
        r = self.wharfctl(p.repl, "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("role: active", r.stdout)
        self.assertIn("connected: yes", r.stdout)
        self.assertIn("in_sync: yes", r.stdout)
        self.assertIn("lag_records: 0", r.stdout)
        self.assertIn("attaches: 1", r.stdout)
        self.assertIn("epoch: 1", r.stdout)
        r = self.wharfctl(p.standby_repl, "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("role: standby", r.stdout)
        self.assertIn("node_id: b", r.stdout)
        self.assertIn("epoch: 1", r.stdout)  # the active's, taken with its history
        # both stop cleanly with a link up (no leak, no sanitizer report)
        self.assertEqual(p.standby.stop(), 0, p.standby.output())
        p.primary.wait_for_log(r"standby b dropped")
        self.assertEqual(p.primary.stop(), 0, p.primary.output())

    def test_wharfctl_with_a_wrong_secret_gets_nothing(self):
        p = self.pair
        r = self.wharfctl(p.standby_repl, "promote", secret="not-the-pair-secret-at-all")
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("promoted", r.stdout)
        p.standby.wait_for_log(r"refused: bad secret")
        self.assertNotIn("promoted", p.standby.output())

    def test_promoted_standby_serves_the_replicated_messages(self):
        p = self.pair
        p.wait_in_sync()
        sent = publish(p.primary.stomp_port, 300)
        p.kill9_primary()
        r = self.wharfctl(p.standby_repl, "promote")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("promoted: active", r.stdout)
        p.standby.wait_for_log(r"replication: promoted: active")
        got, _, _ = drain(p.standby.stomp_port)
        self.assertEqual(got, ["m-%06d" % i for i in sorted(sent)])
        # and it takes new messages as any active node
        more = publish(p.standby.stomp_port, 5, start=300)
        self.assertEqual(len(more), 5)
        self.assertEqual(p.standby.stop(), 0, p.standby.output())


class TlsLinkTest(PairTestCase):
    """[ha] tls_*: the link runs in TLS, each node showing its certificate
    and checking the other's against tls_ca; the secret is proved inside."""

    def setUp(self):
        # test_tls's set: "server" and "client" signed by "ca", both naming
        # 127.0.0.1; "stranger" signed by "otherca"
        self.made = Certs()
        self.certs = self.made.dir
        self.pair = Pair(start_standby=False, extra=self.tls("server"))

    def tearDown(self):
        self.pair.cleanup()
        shutil.rmtree(self.certs, ignore_errors=True)

    def tls(self, name, ca="ca"):
        c = self.certs
        return "tls_cert = %s/%s.crt\ntls_key = %s/%s.key\ntls_ca = %s/%s.crt\n" % (
            c, name, c, name, c, ca)

    def test_replication_and_wharfctl_over_tls(self):
        p = self.pair
        p.start_standby(extra=self.tls("client"))
        p.wait_in_sync()
        sent = publish(p.primary.stomp_port, 200)
        secret = os.path.join(p.dir, "secret")
        with open(secret, "w") as f:
            f.write(SECRET)
        c = self.certs
        r = subprocess.run([WHARFCTL, "--peer", "repl://127.0.0.1:%d" % p.repl, "--secret-file",
                            secret, "--tls-ca", c + "/ca.crt", "--tls-cert", c + "/client.crt",
                            "--tls-key", c + "/client.key", "status"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("in_sync: yes", r.stdout)
        r = subprocess.run([WHARFCTL, "--peer", "repl://127.0.0.1:%d" % p.repl, "--secret-file",
                            secret, "status"], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, "plain wharfctl on a TLS link")
        self.check_standby_holds(sorted(sent))

    def test_mutual_tls_alone_without_a_secret(self):
        self.pair.cleanup()
        tls = self.tls("server") + "tls_client_cert = required\n"
        p = self.pair = Pair(start_standby=False, secret=None, extra=tls)
        p.start_standby(extra=self.tls("client") + "tls_client_cert = required\n")
        p.wait_in_sync()
        self.assertIn("proved by mutual TLS alone", p.primary.output())
        sent = publish(p.primary.stomp_port, 50)
        c = self.certs
        r = subprocess.run([WHARFCTL, "--peer", "repl://127.0.0.1:%d" % p.standby_repl,
                            "--tls-ca", c + "/ca.crt", "--tls-cert", c + "/client.crt",
                            "--tls-key", c + "/client.key", "status"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("role: standby", r.stdout)
        self.check_standby_holds(sorted(sent))

    def test_a_certificate_from_another_ca_is_refused(self):
        p = self.pair
        publish(p.primary.stomp_port, 10)
        p.start_standby(extra=self.tls("stranger", ca="otherca"))
        line = p.primary.wait_for_log(r"replication: peer 127\.0\.0\.1:\d+ refused: TLS")
        self.assertIn("warn", line)
        time.sleep(1)
        self.assertEqual(p.segment_files(p.b_dir), [])


if __name__ == "__main__":
    main()
