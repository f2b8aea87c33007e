"""The failover drill end to end: etcd and two role = auto nodes on
ephemeral (but fixed across restarts) ports, and `wharf-bench --drill`
running STOMP and MQTT QoS 1 load through a switch-over, a kill -9 of the
active and the link cut (reported as not in this version). The drill must
exit 0 with 0 lost for every event; its report is printed (TAP comments)."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from etcdtest import Etcd, free_port
from pairtest import SECRET
from test_ha_failover import Node, auto_config
from test_ha_link import WHARFCTL
from wharftest import WHARFD, Broker, main, wait_until

WHARF_BENCH = os.environ.get("WHARF_BENCH") or os.path.join(
    os.path.dirname(WHARFD), "..", "tools", "wharf-bench", "wharf-bench")


class FixedNode(Node):
    """A node whose client ports are fixed in its arguments, so that they
    stay the same when it restarts itself (the drill knows two addresses)."""

    def __init__(self, node_id, data_dir, config, repl, stomp, mqtt):
        self.stomp, self.mqtt = stomp, mqtt
        super().__init__(node_id, data_dir, config, repl)

    def start(self):
        self.b = Broker((), self.config, data_dir=self.data_dir,
                        args=["--listen", "stomp://127.0.0.1:%d" % self.stomp,
                              "--listen", "mqtt://127.0.0.1:%d" % self.mqtt])
        self.b.wait_for_log(r"listening mqtt ")
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

    def test_drill_switch_over_kill9_and_cut(self):
        ports = {m: (free_port(), free_port(), free_port()) for m in ("a", "b")}
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

        r = subprocess.run([WHARF_BENCH, "--drill", "--ctl", pair_arg(0, "repl://127.0.0.1:%d"),
                            "--secret-file", secret, "--stomp", pair_arg(1), "--mqtt", pair_arg(2),
                            "--events", "switchover,kill,cut", "--rate", "200", "--interval", "2",
                            "--timeout", "150", "--wharfctl", WHARFCTL],
                           capture_output=True, text=True, timeout=200)
        for line in (r.stdout + "\n--- drill log\n" + r.stderr).splitlines():
            print("# " + line)
        self.assertEqual(r.returncode, 0, "the drill failed")
        rows = [l for l in r.stdout.splitlines() if re.match(r"\s+(start|event \d+ \()", l)]
        self.assertEqual(len(rows), 6, "per client: start, switch-over, kill -9")
        for row in rows:
            cols = row.split()
            # ... without-service, confirmed, lost, duplicated, redelivered, reconnects, redirects
            self.assertEqual(cols[-5], "0", "lost in " + row)
            self.assertGreater(int(cols[-6]), 0, "nothing confirmed in " + row)
        self.assertIn("link cut", r.stdout)
        self.assertIn("not in this version", r.stdout)
        self.assertIn("result: PASS", r.stdout)


if __name__ == "__main__":
    main()
