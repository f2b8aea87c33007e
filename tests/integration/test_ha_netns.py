"""Partitions of the pair made with the kernel, not a proxy: each node (and
etcd) in a network namespace of its own, all joined by veth pairs to a
bridge in a fourth namespace where the test's clients run; nftables rules
inside a node's namespace drop what a real partition would.

- A standby whose connect SYN is blackholed gives up after [ha] timeout
  and tries afresh (a new source port each time, counted by the rule), and
  attaches within a few seconds once the rule is lifted, not after the
  kernel's SYN retries.
- A standby whose peer is a host name its DNS server never answers for
  goes on answering clients at once while the lookups time out; with the
  name in its hosts file it attaches.
- An active cut off from both etcd and its standby (its clients still
  reach it) stops confirming and the standby takes over; a client writing
  to both nodes never sees the two confirm at the same time.

Root, `ip netns` and nft are needed: without them the tests are skipped,
saying why. Namespace names are unique per run and always deleted."""
import ctypes
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from etcdtest import ETCD
from pairtest import SECRET
from stomptest import stomp_close, stomp_connect
from wharftest import WHARFD, main, wait_until

IP, NFT = shutil.which("ip"), shutil.which("nft")
NET = "10.77.0."
ADDR = {"a": NET + "1", "b": NET + "2", "etcd": NET + "3", "hub": NET + "254"}
REPL, STOMP, ETCD_PORT = 61617, 61613, 2379
CLONE_NEWNET = 0x40000000
TTL = 2.0
STARTED_RE = re.compile(r"wharfd \S+ started")
logging.getLogger("stomp.py").setLevel(logging.CRITICAL)  # retries against a standby


def run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)


def netns_unavailable():
    """Why namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "needs root for ip netns"
    if not IP or not NFT:
        return "needs ip (iproute2) and nft (nftables): ./dev deps"
    if not os.access(ETCD, os.X_OK):
        return "needs etcd (etcd-server)"
    probe = "whprobe%d" % os.getpid()
    try:
        run(IP, "netns", "add", probe)
        run(IP, "netns", "exec", probe, NFT, "list", "ruleset")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        return "cannot create a network namespace with nftables: %s" % e
    finally:
        subprocess.run([IP, "netns", "del", probe], capture_output=True)
    return None


class Net:
    """Namespaces a, b, etcd and hub; a veth pair from each of the first
    three to a bridge in hub, which also has an address (the clients')."""

    def __init__(self):
        tag = "wh%d%s" % (os.getpid() % 100000, secrets.token_hex(2))
        self.ns = {k: "%s-%s" % (tag, k) for k in ("a", "b", "etcd", "hub")}
        self.made = []
        for name in self.ns.values():
            run(IP, "netns", "add", name)
            self.made.append(name)
            run(IP, "-n", name, "link", "set", "lo", "up")
        hub = self.ns["hub"]
        run(IP, "-n", hub, "link", "add", "br0", "type", "bridge")
        run(IP, "-n", hub, "addr", "add", ADDR["hub"] + "/24", "dev", "br0")
        run(IP, "-n", hub, "link", "set", "br0", "up")
        for k in ("a", "b", "etcd"):
            run(IP, "-n", self.ns[k], "link", "add", "eth0", "type", "veth", "peer", "name",
                "p-" + k, "netns", hub)
            run(IP, "-n", self.ns[k], "addr", "add", ADDR[k] + "/24", "dev", "eth0")
            run(IP, "-n", self.ns[k], "link", "set", "eth0", "up")
            run(IP, "-n", hub, "link", "set", "p-" + k, "master", "br0", "up")

    def nft(self, who, rules):
        subprocess.run([IP, "netns", "exec", self.ns[who], NFT, "-f", "-"], input=rules,
                       text=True, check=True, capture_output=True, timeout=10)

    def spawn(self, who, cmd, log):
        return subprocess.Popen([IP, "netns", "exec", self.ns[who]] + cmd, stdout=log,
                                stderr=subprocess.STDOUT)

    def enter(self, who):
        """Moves the calling thread into a namespace: its new sockets are
        there."""
        fd = os.open("/run/netns/" + self.ns[who], os.O_RDONLY)
        try:
            if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)

    def cleanup(self):
        for name in self.made:
            subprocess.run([IP, "netns", "del", name], capture_output=True)


class Proc:
    """A process in a namespace with its log in dir."""

    def __init__(self, net, who, cmd, dir):
        self.log_path = os.path.join(dir, who + ".log")
        with open(self.log_path, "w") as log:
            self.proc = net.spawn(who, cmd, log)

    def output(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def active(self):
        """Promoted since this process (or its last restart) started."""
        return "promoted: active" in STARTED_RE.split(self.output())[-1]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


class NetnsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = netns_unavailable()
        if why:
            raise unittest.SkipTest(why)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="wharf-netns-")
        self.procs = []
        self.net = Net()
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.addCleanup(self.net.cleanup)
        self.addCleanup(lambda: [p.kill() for p in self.procs])

    def start(self, who, cmd):
        p = Proc(self.net, who, cmd, self.dir)
        self.procs.append(p)
        return p

    def wharfd(self, node, ha, peer=None):
        """peer: the other node's host as b's config names it (its address
        by default)."""
        path = os.path.join(self.dir, node + ".conf")
        with open(path, "w") as f:
            f.write("[ha]\nnode_id = %s\nlisten = repl://%s:%d\npeer = repl://%s:%d\n"
                    "secret = %s\n%s" % (node, ADDR[node], REPL,
                                         peer or ADDR["b" if node == "a" else "a"],
                                         REPL, SECRET, ha))
        p = self.start(node, [WHARFD, "-c", path, "--data-dir", os.path.join(self.dir, node),
                              "--listen", "stomp://%s:%d" % (ADDR[node], STOMP)])
        wait_until(lambda: "listening stomp" in p.output() or p.proc.poll() is not None, 15,
                   what="wharfd %s listening" % node)
        self.assertIsNone(p.proc.poll(), p.output())
        return p

    def test_blackholed_standby_connect_gives_up_and_retries_after_timeout(self):
        a = self.wharfd("a", "role = primary\n")
        # Every packet b sends to a's link is dropped, its source port kept.
        self.net.nft("b", """table inet wharftest {
            set tries { type inet_service; flags dynamic; }
            chain out {
                type filter hook output priority 0;
                ip daddr %s tcp dport %d add @tries { tcp sport } drop
            }
        }""" % (ADDR["a"], REPL))
        b = self.wharfd("b", "role = standby\ntimeout = 1s\n")
        time.sleep(7)
        tries = subprocess.run([IP, "netns", "exec", self.net.ns["b"], NFT, "list", "set",
                                "inet", "wharftest", "tries"], capture_output=True, text=True,
                               timeout=10).stdout
        ports = re.findall(r"\b\d{4,5}\b", tries.split("elements", 1)[-1])
        # the kernel alone would still be retrying the first SYN: one port
        self.assertGreaterEqual(len(set(ports)), 3, "connects tried in 7 s:\n" + tries)
        self.assertNotIn("catching up", a.output())
        self.net.nft("b", "delete table inet wharftest")
        lifted = time.monotonic()
        wait_until(lambda: "standby b catching up" in a.output(), 10, what="b attached")
        took = time.monotonic() - lifted
        print("# blackhole lifted -> b attached after %.2f s (%d connects tried before)"
              % (took, len(set(ports))))
        # its next SYN, by the kernel's backoff, would come 8 s after the lift
        self.assertLess(took, 4.0, b.output())
        wait_until(lambda: "standby b in sync" in a.output(), 10, what="b in sync")

    def probe(self, node, seconds):
        """From the hub, a STOMP CONNECT to node every 0.2 s for `seconds`:
        how long each took to be answered (ERROR or CONNECTED)."""
        took = []

        def run():
            self.net.enter("hub")
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                t0 = time.monotonic()
                try:
                    with socket.create_connection((ADDR[node], STOMP), timeout=15) as s:
                        s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
                        s.recv(1)
                except OSError:
                    pass
                took.append(time.monotonic() - t0)
                time.sleep(0.2)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(seconds + 20)
        return took

    def test_standby_looks_up_its_peer_without_stalling_its_loop(self):
        """b's peer is a host name and b's DNS server never answers (its
        queries are dropped). With the name in b's hosts file, b attaches;
        with a name only DNS could give, the lookups time out while b goes
        on answering clients at once: its loop never waits for them."""
        a = self.wharfd("a", "role = primary\n")
        etc = os.path.join("/etc/netns", self.net.ns["b"])  # ip netns exec mounts these
        os.makedirs(etc)
        self.addCleanup(shutil.rmtree, etc, True)
        with open(os.path.join(etc, "resolv.conf"), "w") as f:
            f.write("nameserver %s\noptions timeout:2 attempts:2\n" % ADDR["hub"])
        with open(os.path.join(etc, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n%s peer-a.wharf.test\n" % ADDR["a"])
        # dropped where they arrive: no error, no answer, as from a dead server
        self.net.nft("hub", """table inet wharftest {
            chain in {
                type filter hook input priority 0;
                udp dport 53 drop
                tcp dport 53 drop
            }
        }""")
        b = self.wharfd("b", "role = standby\n", peer="peer-a.wharf.test")
        wait_until(lambda: "standby b in sync" in a.output(), 15, what="b attached by name")
        b.kill()
        # a timeout past the lookup's 2 x 2 s: the lookup's own failure shows
        b = self.wharfd("b", "role = standby\ntimeout = 10s\n", peer="nowhere.wharf.test")
        took = self.probe("b", 8)
        print("# %d CONNECTs to b while its peer's name cannot be resolved: slowest answer "
              "%.3f s" % (len(took), max(took)))
        self.assertGreaterEqual(len(took), 15)
        self.assertLess(max(took), 1.0, b.output())
        line = re.search(r"cannot reach peer nowhere\.wharf\.test:%d: .*" % REPL, b.output())
        self.assertTrue(line, b.output())
        print("# b: " + line.group(0))
        # libevent's own messages (its resolver's) are lines of the broker's
        # log, not raw "[msg] ..." on stderr
        raw = [ln for ln in b.output().splitlines() if ln.startswith("[")]
        self.assertEqual(raw, [])
        lib = re.search(r"(?m)^\S+ (info|warn) libevent: .*", b.output())
        self.assertTrue(lib, b.output())
        print("# b: " + lib.group(0))
        # stopped with a lookup under way: it ends clean (ASan: nothing leaked)
        b.proc.send_signal(signal.SIGTERM)
        self.assertEqual(b.proc.wait(15), 0, b.output())

    def test_isolated_active_stops_and_the_standby_takes_over(self):
        etcd_dir = tempfile.mkdtemp(prefix="wharf-etcd-", dir=self.dir)
        client = "http://%s:%d" % (ADDR["etcd"], ETCD_PORT)
        peer = "http://127.0.0.1:2380"
        self.start("etcd", [ETCD, "--name", "default", "--data-dir", etcd_dir,
                            "--listen-client-urls", client, "--advertise-client-urls", client,
                            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                            "--initial-cluster", "default=" + peer, "--log-outputs", "stderr"])
        ha = ("role = auto\narbiter = etcd://%s:%d\npair = netns\nlease_ttl = %dms\n"
              "sync_timeout = 2s\ntimeout = 2s\n" % (ADDR["etcd"], ETCD_PORT, TTL * 1000))
        nodes = {n: self.wharfd(n, ha) for n in ("a", "b")}
        wait_until(lambda: any(p.active() for p in nodes.values()), 20, what="an active node")
        old = next(n for n, p in nodes.items() if p.active())
        new = "b" if old == "a" else "a"
        wait_until(lambda: "standby %s in sync" % new in nodes[old].output(), 15,
                   what="the standby in sync")

        times = {"a": [], "b": []}
        stop = threading.Event()

        def writer(node):
            """From the hub: a receipted SEND at a time to one node,
            reconnecting as needed (a standby answers CONNECT with ERROR)."""
            self.net.enter("hub")
            conn = lst = None
            i = 0
            while not stop.is_set():
                if conn is None:
                    try:
                        conn, lst = stomp_connect(STOMP, host=ADDR[node], timeout=2)
                    except Exception:
                        conn = None
                        time.sleep(0.05)
                        continue
                rid = "%s-%d" % (node, i)
                i += 1
                try:
                    conn.send("/queue/netns", "x", headers={"persistent": "true", "receipt": rid})
                    lst.wait_receipt(rid, 1.0)
                    times[node].append(time.monotonic())
                except Exception:
                    stomp_close(conn, lst, timeout=1)
                    conn = None
            if conn is not None:
                stomp_close(conn, lst, timeout=1)

        threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in ("a", "b")]
        for t in threads:
            t.start()
        wait_until(lambda: len(times[old]) >= 20, 20, what="receipts from the active")
        # the active keeps its clients, loses etcd and its standby
        others = "%s, %s" % (ADDR[new], ADDR["etcd"])
        self.net.nft(old, """table inet wharftest {
            chain in { type filter hook input priority 0; ip saddr { %s } drop; }
            chain out { type filter hook output priority 0; ip daddr { %s } drop; }
        }""" % (others, others))
        cut = time.monotonic()
        wait_until(lambda: nodes[new].active(), TTL * 3 + 8, what="the standby taking over")
        wait_until(lambda: [t for t in times[new] if t > cut], 10,
                   what="a receipt from the new active")
        stop.set()
        for t in threads:
            t.join(5)
        last_old, first_new = max(times[old]), min(times[new])
        print("# isolated -> old active's last receipt %.2f s, new active's first %.2f s"
              % (last_old - cut, first_new - cut))
        self.assertLess(last_old, first_new, "both nodes confirmed writes at the same time")
        self.assertLess(last_old - cut, TTL, "the isolated active confirmed past its lease")
        wait_until(lambda: "lost the lead of the pair" in nodes[old].output(), 5,
                   what="the isolated active's fencing")


if __name__ == "__main__":
    main()
