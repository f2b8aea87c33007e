"""Automatic failover: two wharfd with [ha] role = auto and a real etcd as
the arbiter. kill -9 of the active under a stream of receipted STOMP
messages: the standby takes over within the lease and a few seconds, with
every receipted message, once, in order; the old active comes back as the
standby of the new one; an active cut off from etcd stops confirming
before the other is elected (the test writes to both and checks that no
two confirmations from different nodes overlap in time); a standby that
was not in sync does not take over. `wharfctl failover` (a planned
switch-over) under the same stream: the standby leads within 2 s with
every receipted message and the old active rejoins as its standby; refused
in the manual mode, and refused (the active serving on) when the standby
is stopped."""
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from etcdtest import Etcd, free_port
from pairtest import SECRET, CutProxy, Pair
from stomptest import stomp_connect
from test_ha_link import WHARFCTL
from test_store import QUEUE, drain, publish_stream
from wharftest import LISTEN_RE, Broker, main, wait_until

TTL = 2.0
logging.getLogger("stomp.py").setLevel(logging.CRITICAL)  # retries against a standby
STARTED_RE = re.compile(r"wharfd \S+ started")


def receipted(lst, rid, timeout):
    try:
        lst.wait_receipt(rid, timeout)
        return True
    except AssertionError:
        return False


def auto_config(node_id, listen, peer, arbiter, pair):
    return ("[ha]\nrole = auto\nnode_id = %s\nlisten = repl://127.0.0.1:%d\n"
            "peer = repl://127.0.0.1:%d\nsecret = %s\narbiter = %s\npair = %s\n"
            "lease_ttl = %dms\nsync_timeout = 2s\ntimeout = 2s\n"
            % (node_id, listen, peer, SECRET, arbiter, pair, TTL * 1000))


class Node:
    """One wharfd of the pair; survives its own restarts (a fenced active
    executes itself again: same process, same log, new client ports)."""

    def __init__(self, node_id, data_dir, config, repl=None, protocols=("stomp",)):
        self.node_id = node_id
        self.protocols = protocols
        self.repl = repl  # its link's port, for wharfctl
        self.data_dir = data_dir
        self.config = config
        self.brokers = []
        self.start()

    def start(self):
        self.b = Broker(self.protocols, self.config, data_dir=self.data_dir)
        self.brokers.append(self.b)

    def output(self):
        return self.b.output()

    def port(self, proto):
        """The port of the last `listening PROTO` line (a restart logs a
        new one)."""
        port = None
        for line in self.output().splitlines():
            m = LISTEN_RE.search(line)
            if m and m.group(1) == proto:
                port = int(m.group(3))
        return port

    def stomp_port(self):
        return self.port("stomp")

    def active(self):
        """Promoted since this process (or its last restart) started."""
        return "promoted: active" in STARTED_RE.split(self.output())[-1]

    def kill9(self):
        self.b.kill9()

    def alive(self):
        return self.b.alive()


class AutoPairCase(unittest.TestCase):
    """Tests on a role = auto pair with a real etcd: pair() starts it."""

    def setUp(self):
        self.etcd = Etcd()
        self.dir = tempfile.mkdtemp(prefix="wharf-failover-")
        self.nodes = []
        self.proxies = []

    def tearDown(self):
        for n in self.nodes:
            for b in n.brokers:
                b.cleanup()
        for p in self.proxies:
            p.close()
        self.etcd.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def pair(self, name, arbiter_of=None, protocols=("stomp",)):
        """Nodes a and b, both role = auto; returns (active, standby) once
        one leads and the other is in sync. arbiter_of: node_id -> the
        etcd URL that node uses (a proxy), default the etcd itself."""
        ports = {"a": free_port(), "b": free_port()}
        arbiter_of = arbiter_of or {}
        for me, other in (("a", "b"), ("b", "a")):
            cfg = auto_config(me, ports[me], ports[other], arbiter_of.get(me, self.etcd.url), name)
            self.nodes.append(Node(me, os.path.join(self.dir, me), cfg, ports[me], protocols))
        wait_until(lambda: any(n.active() for n in self.nodes), 15, what="an active node")
        active = next(n for n in self.nodes if n.active())
        standby = next(n for n in self.nodes if n is not active)
        wait_until(lambda: "standby %s in sync" % standby.node_id in active.output(), 15,
                   what="the standby in sync")
        wait_until(lambda: self.etcd.get("/wharf/%s/sync" % name) == standby.node_id, 5,
                   what="the sync key")
        return active, standby

    def wharfctl(self, port, cmd, timeout=40):
        return subprocess.run([WHARFCTL, "--peer", "repl://127.0.0.1:%d" % port, "--secret-file",
                               self._secret(), cmd],
                              capture_output=True, text=True, timeout=timeout)

    def _secret(self):
        path = os.path.join(self.dir, "secret")
        with open(path, "w") as f:
            f.write(SECRET)
        return path


class FailoverTest(AutoPairCase):
    def test_planned_switch_over_under_load(self):
        active, standby = self.pair("switch")
        confirmed, stop = [], threading.Event()
        t = threading.Thread(target=publish_stream,
                             args=(active.stomp_port(), 100000, confirmed, stop))
        t.start()
        wait_until(lambda: len(confirmed) >= 300, 30, what="300 receipts")
        asked = time.monotonic()
        ctl = subprocess.Popen([WHARFCTL, "--peer", "repl://127.0.0.1:%d" % active.repl,
                                "--secret-file", self._secret(), "failover"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(standby.active, 10, what="the standby taking over")
        took = time.monotonic() - asked
        out, err = ctl.communicate(timeout=20)
        stop.set()
        t.join(10)
        print("# wharfctl failover -> standby active in %.3f s; answer %r" % (took, out.strip()))
        self.assertEqual(ctl.returncode, 0, out + err)
        self.assertEqual(out.strip(), "failover: %s takes over" % standby.node_id)
        self.assertLess(took, 2.0)
        got, _, _ = drain(standby.stomp_port(), QUEUE)
        n = len(confirmed)
        self.assertEqual(sorted(confirmed), list(range(n)))
        self.assertEqual(got[:n], ["m-%06d" % i for i in range(n)],
                         "receipted messages lost or out of order")
        self.assertEqual(got, ["m-%06d" % i for i in range(len(got))], "out of order or twice")
        # The old active restarted itself and follows the new one, in sync.
        wait_until(lambda: "standby %s in sync" % active.node_id in standby.output(), 20,
                   what="the old active in sync as standby")
        self.assertFalse(active.active())
        self.assertIn("giving it the lead", active.brokers[-1].output())

    def test_switch_over_redelivers_nothing_to_a_consumer_that_acks(self):
        """A consumer acknowledging each message ~20 ms after it came: the
        switch-over lets those acks in before it hands over, so the new
        active delivers nothing again (no `redelivered`, nothing twice)."""
        active, standby = self.pair("settle")
        confirmed, stop = [], threading.Event()
        pub = threading.Thread(target=publish_stream,
                               args=(active.stomp_port(), 2000, confirmed, stop))
        pub.start()
        got, redelivered, phase = [], [], {"port": active.stomp_port(), "done": False}

        def consume():
            while not phase["done"]:
                try:
                    conn, lst = stomp_connect(phase["port"])
                except Exception:
                    time.sleep(0.1)
                    continue
                conn.subscribe(QUEUE, id="s", ack="client-individual",
                               headers={"activemq.prefetchSize": "10"})
                seen = 0
                while conn.is_connected() and not phase["done"]:
                    time.sleep(0.01)
                    with lst.cond:
                        frames = lst.messages[seen:]
                    seen += len(frames)
                    for f in frames:
                        got.append(f.body)
                        if f.headers.get("redelivered") == "true":
                            redelivered.append(f.body)
                        try:
                            conn.ack(f.headers["ack"])
                        except Exception:
                            break
                try:
                    conn.disconnect()
                except Exception:
                    pass
                time.sleep(0.1)

        con = threading.Thread(target=consume)
        con.start()
        try:
            wait_until(lambda: len(got) >= 300, 30, what="300 messages consumed")
            r = self.wharfctl(active.repl, "failover")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            wait_until(standby.active, 10, what="the standby taking over")
            stop.set()
            pub.join(10)
            phase["port"] = standby.stomp_port()
            n = len(confirmed)
            missing = lambda: set(range(n)) - {int(b[2:]) for b in got}
            try:
                wait_until(lambda: not missing(), 30, what="every receipted message consumed")
            except AssertionError:
                print("# %d consumed; missing %s\n# old active:\n%s\n# new active:\n%s"
                      % (len(got), sorted(missing())[:20], active.output()[-3000:],
                         standby.output()[-3000:]))
                raise
            time.sleep(1.0)  # anything delivered twice comes now
        finally:
            phase["done"] = True
            stop.set()
            con.join(15)
        print("# %d consumed, %d receipted, %d redelivered" % (len(got), n, len(redelivered)))
        self.assertIn("deliveries left unacknowledged", active.brokers[-1].output())
        self.assertEqual(redelivered, [], "marked redelivered after the switch-over")
        self.assertEqual(len(got), len(set(got)), "consumed twice")

    def test_switch_over_refused_when_the_standby_is_stopped(self):
        active, standby = self.pair("stopped")
        conn, lst = stomp_connect(active.stomp_port())
        os.kill(standby.b.proc.pid, 19)  # SIGSTOP
        try:
            # Confirmed once the active has dropped its stalled standby.
            conn.send(QUEUE, "one", headers={"persistent": "true", "receipt": "r1"})
            self.assertTrue(receipted(lst, "r1", 15), "no receipt once degraded")
            asked = time.monotonic()
            r = self.wharfctl(active.repl, "failover")
            print("# refused after %.2f s: %r" % (time.monotonic() - asked, r.stdout.strip()))
            self.assertNotEqual(r.returncode, 0)
            self.assertEqual(r.stdout.strip(), "failover refused: standby not in sync")
            # The active goes on serving, on the connection it had too.
            conn.send(QUEUE, "two", headers={"persistent": "true", "receipt": "r2"})
            self.assertTrue(receipted(lst, "r2", 5), "no receipt after the refusal")
            self.assertTrue(active.active() and active.alive())
            self.assertFalse(standby.active())
        finally:
            os.kill(standby.b.proc.pid, 18)  # SIGCONT
        got, _, _ = drain(active.stomp_port(), QUEUE)
        self.assertEqual(got, ["one", "two"])

    def test_kill9_of_the_active_under_load(self):
        active, standby = self.pair("kill")
        confirmed, stop = [], threading.Event()
        t = threading.Thread(target=publish_stream,
                             args=(active.stomp_port(), 3000, confirmed, stop))
        t.start()
        wait_until(lambda: len(confirmed) >= 300, 30, what="300 receipts")
        killed = time.monotonic()
        active.kill9()
        stop.set()
        t.join(10)
        wait_until(standby.active, TTL + 8, what="the standby taking over")
        took = time.monotonic() - killed
        print("# kill -9 -> standby active in %.2f s (lease %.1f s)" % (took, TTL))
        self.assertLess(took, TTL + 3)
        got, _, _ = drain(standby.stomp_port(), QUEUE)
        n = len(confirmed)
        want = ["m-%06d" % i for i in range(n)]
        self.assertEqual(got[:n], want, "receipted messages lost or out of order")
        self.assertEqual(len(got), len(set(got)), "a message twice")
        self.assertIn("epoch 2", standby.output())

        # The old active comes back: the new one's standby, in sync.
        active.start()
        wait_until(lambda: "standby %s in sync" % active.node_id in standby.output(), 20,
                   what="the old active in sync as standby")
        self.assertFalse(active.active())

    def test_active_cut_off_from_etcd_stops_before_the_other_starts(self):
        proxy = {}
        for me in ("a", "b"):
            p = CutProxy(self.etcd.client_port)
            self.proxies.append(p)
            proxy[me] = p
        active, standby = self.pair("cut", {m: "etcd://127.0.0.1:%d" % p.port
                                            for m, p in proxy.items()})
        # Both nodes take publishes with receipts; each receipt's time is
        # recorded per node.
        times = {active.node_id: [], standby.node_id: []}
        stop = threading.Event()

        def writer(node, port):
            """Publishes with a receipt at a time, (re)connecting as needed:
            a standby answers CONNECT with an ERROR until it is active."""
            conn = lst = None
            i = 0
            while not stop.is_set():
                if conn is None:
                    try:
                        conn, lst = stomp_connect(port)
                    except Exception:
                        conn = None
                        time.sleep(0.05)
                        continue
                rid = "%s-%d" % (node.node_id, i)
                i += 1
                try:
                    conn.send("/queue/cut", "x", headers={"persistent": "true", "receipt": rid})
                    if receipted(lst, rid, 1.0):
                        times[node.node_id].append(time.monotonic())
                    elif lst.errors or lst.disconnected:
                        conn = None
                except Exception:
                    conn = None
        threads = [threading.Thread(target=writer, args=(n, n.stomp_port()), daemon=True)
                   for n in (active, standby)]
        for t in threads:
            t.start()
        wait_until(lambda: len(times[active.node_id]) >= 20, 20, what="receipts from the active")
        cut = time.monotonic()
        proxy[active.node_id].cut()
        wait_until(standby.active, TTL * 3 + 8, what="the other node taking over")
        wait_until(lambda: [t for t in times[standby.node_id] if t > cut], 10,
                   what="a receipt from the new active")
        stop.set()
        for t in threads:
            t.join(5)
        last_old = max(t for t in times[active.node_id])
        first_new = min(t for t in times[standby.node_id])
        print("# cut -> old active's last receipt %.2f s, new active's first %.2f s"
              % (last_old - cut, first_new - cut))
        self.assertLess(last_old, first_new, "both nodes confirmed writes at the same time")
        self.assertLess(last_old - cut, TTL, "the cut-off active confirmed past its lease")
        wait_until(lambda: "lost the lead of the pair" in active.output(), 5,
                   what="the old active's fencing")

    def test_a_standby_not_in_sync_does_not_take_over(self):
        active, standby = self.pair("lag")
        # The standby stalls: the active drops it, clears the sync key and
        # goes on alone; what it confirms then, the standby lacks.
        os.kill(standby.b.proc.pid, 19)  # SIGSTOP
        try:
            conn, lst = stomp_connect(active.stomp_port())
            conn.send(QUEUE, "alone", headers={"persistent": "true", "receipt": "r1"})
            self.assertTrue(receipted(lst, "r1", 15), "no receipt once degraded")
            self.assertIsNone(self.etcd.get("/wharf/lag/sync"))
            active.kill9()
        finally:
            os.kill(standby.b.proc.pid, 18)  # SIGCONT
        time.sleep(TTL * 2.5)
        self.assertFalse(standby.active(), "a standby that was not in sync took over")
        self.assertIn("may not take over", standby.output())
        # The old active returns, leads again, and still has the message.
        active.start()
        wait_until(active.active, 15, what="the last active leading again")
        got, _, _ = drain(active.stomp_port(), QUEUE)
        self.assertEqual(got, ["alone"])


class ManualSwitchOverTest(unittest.TestCase):
    def test_switch_over_refused_in_the_manual_mode(self):
        with Pair() as p:
            p.wait_in_sync()
            path = os.path.join(p.dir, "secret")
            with open(path, "w") as f:
                f.write(SECRET)
            for port in (p.repl, p.standby_repl):
                r = subprocess.run([WHARFCTL, "--peer", "repl://127.0.0.1:%d" % port,
                                    "--secret-file", path, "failover"],
                                   capture_output=True, text=True, timeout=20)
                self.assertNotEqual(r.returncode, 0)
                self.assertEqual(r.stdout.strip(), "failover needs role = auto; use promote")
            conn, lst = stomp_connect(p.primary.ports["stomp"])
            conn.send(QUEUE, "still", headers={"persistent": "true", "receipt": "r"})
            self.assertTrue(receipted(lst, "r", 5))
            self.assertNotIn("switch-over", p.primary.output())


if __name__ == "__main__":
    main()
