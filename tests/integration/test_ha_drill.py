"""The failover drill end to end: etcd and two role = auto nodes on
ephemeral (but fixed across restarts) ports, and `wharf-bench --drill`
running STOMP, MQTT QoS 1 and AMQP 1.0 load through a switch-over, a link cut
(`wharfctl link-drop`) and a kill -9 of the active. The drill must exit 0
with 0 lost for every event, and nothing duplicated or redelivered up to
the switch-over; its report is printed (TAP comments).

And `wharfctl link-drop` alone, on a manual pair: the active drops its
standby, goes on alone and refuses it back for --hold seconds; then the
standby catches up and holds every receipted message."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from etcdtest import Etcd, free_port
from pairtest import SECRET
from test_ha_failover import Node, auto_config
from test_ha_link import WHARFCTL, PairTestCase, publish
from wharftest import WHARFD, Broker, main, wait_until

WHARF_BENCH = os.environ.get("WHARF_BENCH") or os.path.join(
    os.path.dirname(WHARFD), "..", "tools", "wharf-bench", "wharf-bench")


class FixedNode(Node):
    """A node whose client ports are fixed in its arguments, so that they
    stay the same when it restarts itself (the drill knows two addresses)."""

    def __init__(self, node_id, data_dir, config, repl, stomp, mqtt, amqp):
        self.stomp, self.mqtt, self.amqp = stomp, mqtt, amqp
        super().__init__(node_id, data_dir, config, repl)

    def start(self):
        self.b = Broker((), self.config, data_dir=self.data_dir,
                        args=["--listen", "stomp://127.0.0.1:%d" % self.stomp,
                              "--listen", "mqtt://127.0.0.1:%d" % self.mqtt,
                              "--listen", "amqp://127.0.0.1:%d" % self.amqp])
        self.b.wait_for_log(r"listening amqp ")
        self.brokers.append(self.b)


class DrillTest(unittest.TestCase):
    def setUp(self):
        self.etcd = Etcd()
        self.dir = tempfile.mkdtemp(prefix="wharf-drill-")
        self.nodes = []

    def tearDown(self):
        for n in self.nodes:
            for b in n.brokers:
                b.cleanup()
        self.etcd.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_drill_switch_over_cut_and_kill9(self):
        ports = {m: (free_port(), free_port(), free_port(), free_port()) for m in ("a", "b")}
        for me, other in (("a", "b"), ("b", "a")):
            cfg = auto_config(me, ports[me][0], ports[other][0], self.etcd.url, "drill")
            self.nodes.append(FixedNode(me, os.path.join(self.dir, me), cfg, *ports[me]))
        wait_until(lambda: any(n.active() for n in self.nodes), 15, what="an active node")
        active = next(n for n in self.nodes if n.active())
        standby = next(n for n in self.nodes if n is not active)
        wait_until(lambda: "standby %s in sync" % standby.node_id in active.output(), 15,
                   what="the standby in sync")
        secret = os.path.join(self.dir, "secret")
        with open(secret, "w") as f:
            f.write(SECRET)

        def pair_arg(i, fmt="127.0.0.1:%d"):
            return ",".join(fmt % ports[m][i] for m in ("a", "b"))

        cmd = [WHARF_BENCH, "--drill", "--ctl", pair_arg(0, "repl://127.0.0.1:%d"),
               "--secret-file", secret, "--stomp", pair_arg(1), "--mqtt", pair_arg(2),
               "--amqp", pair_arg(3), "--events", "switchover,cut,kill", "--rate", "200",
               "--interval", "2", "--cut-hold", "1", "--timeout", "150", "--wharfctl", WHARFCTL]
        print("# " + " ".join(cmd))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=200)
        for line in (r.stdout + "\n--- drill log\n" + r.stderr).splitlines():
            print("# " + line)
        self.assertEqual(r.returncode, 0, "the drill failed")
        rows = [l for l in r.stdout.splitlines() if re.match(r"\s+(start|event \d+ \()", l)]
        self.assertEqual(len(rows), 12, "per client: start, switch-over, link cut, kill -9")
        self.assertIn("client amqp (AMQP 1.0, durable queue, accepted outcomes)", r.stdout)
        # while the lease of the killed active runs out, the other node
        # (a standby until then) sends AMQP clients away with a redirect
        self.assertIn("amqp publisher: redirected on node", r.stderr)
        self.assertIn("amqp:connection:redirect", r.stderr)
        for row in rows:
            cols = row.split()
            # ... without-service, confirmed, lost, duplicated, redelivered, reconnects, redirects
            self.assertEqual(cols[-5], "0", "lost in " + row)
            self.assertGreater(int(cols[-6]), 0, "nothing confirmed in " + row)
        cut = re.search(r"event 2: link cut .*standby back after ([\d.]+) s, in sync again after "
                        r"([\d.]+) s", r.stdout)
        self.assertTrue(cut, "the link cut's line")
        # held out 1 s, then the standby's next try (every second) and catch-up
        self.assertGreaterEqual(float(cut.group(1)), 1.0)
        self.assertLess(float(cut.group(2)), 10.0)
        for row in (l for l in rows if "(switch-over)" in l or l.split()[0] == "start"):
            # consumers that ack promptly: a switch-over delivers nothing
            # twice (duplicated, redelivered); the start row holds the
            # messages confirmed before it
            self.assertEqual(row.split()[-4:-2], ["0", "0"], row)
        for row in (l for l in rows if "(link cut)" in l):
            # the active goes on alone: no reconnect, no redirect
            self.assertEqual(row.split()[-2:], ["0", "0"], row)
        self.assertIn("result: PASS", r.stdout)


class LinkDropTest(PairTestCase):
    def wharfctl(self, port, *args):
        path = os.path.join(self.pair.dir, "secret")
        with open(path, "w") as f:
            f.write(SECRET + "\n")
        return subprocess.run([WHARFCTL, "--peer", "repl://127.0.0.1:%d" % port, "--secret-file",
                               path] + list(args), capture_output=True, text=True, timeout=30)

    def test_link_drop_degrades_the_active_then_the_standby_catches_up(self):
        p = self.pair
        p.wait_in_sync()
        before = publish(p.primary.stomp_port, 50)
        r = self.wharfctl(p.standby_repl, "link-drop")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("link-drop refused: b is not active", r.stdout)
        t0 = time.monotonic()
        r = self.wharfctl(p.repl, "--hold", "1.5", "link-drop")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("link dropped: standby b detached, refused for 1500 ms", r.stdout)
        p.primary.wait_for_log(r"standby b dropped \(dropped by wharfctl link-drop\): running "
                               r"alone, degraded")
        st = self.wharfctl(p.repl, "status").stdout
        self.assertIn("connected: no", st)
        self.assertIn("degraded: yes", st)
        # alone, the active goes on confirming
        during = publish(p.primary.stomp_port, 50, start=50)
        p.standby.wait_for_log(r"link to active a closed; reconnecting")
        p.wait_in_sync(count=2)
        took = time.monotonic() - t0
        self.assertGreaterEqual(took, 1.5)
        self.assertIn("link is held down", p.primary.output())
        st = self.wharfctl(p.repl, "status").stdout
        self.assertIn("in_sync: yes", st)
        self.assertIn("degraded: no", st)
        self.assertIn("drops: 1", st)
        # nothing confirmed was lost: the standby's copy holds it all
        self.check_standby_holds_all_confirmed(before + during)


if __name__ == "__main__":
    main()
