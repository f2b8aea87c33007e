"""An active/standby pair of wharfd for the replication tests.

    with Pair() as p:            # primary "a" started, then standby "b"
        p.wait_in_sync()
        ... publish to p.primary.stomp_port ...
        p.kill9_primary(); p.kill9_standby()
        with p.open_standby_dir() as single: ...   # its data as a single node

Each node is a wharftest.Broker with an [ha] section written to its own
config; its link listens on repl://127.0.0.1:0 and the port is read from its
`listening repl HOST:PORT` line, as the client ports are.

CutProxy: a TCP proxy that can cut the connections through it (between a
node and etcd, or between the standby and the active: start_standby(
peer_port=proxy.port)).
"""
import os
import re
import select
import shutil
import signal
import socket
import tempfile
import threading
import time

from wharftest import LISTEN_RE, Broker

SECRET = "pair-secret-0123456789abcdef"
REPL_RE = re.compile(r"listening repl (\S+):(\d+)")


def ha_config(role, node_id, peer, secret=SECRET, sync="replicated", sync_timeout="5s",
              timeout="3s", extra="", globals=""):
    """globals: top-level keys, put before the [ha] section; secret=None
    leaves the secret out (mutual TLS alone)."""
    return (globals + "\n[ha]\nrole = %s\nnode_id = %s\nlisten = repl://127.0.0.1:0\npeer = %s\n"
            "%ssync = %s\nsync_timeout = %s\ntimeout = %s\n%s"
            % (role, node_id, peer, "secret = %s\n" % secret if secret else "", sync,
               sync_timeout, timeout, extra))


class CutProxy:
    """A TCP proxy to 127.0.0.1:port. cut() drops every connection and
    refuses new ones (a partition seen as resets); cut(silent=True) keeps
    every connection open but throws away what either side sends, and holds
    new ones the same way (a partition where packets vanish: only timeouts
    notice it). restore() ends the cut: what was held is closed (as the
    first packet after a heal would reset it) and new connections go
    through again."""

    def __init__(self, port):
        self.target = port
        self.lis = socket.socket()
        self.lis.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lis.bind(("127.0.0.1", 0))
        self.lis.listen(64)
        self.port = self.lis.getsockname()[1]
        self.cut_ = threading.Event()
        self.silent_ = threading.Event()
        self.socks = []
        self.accepted = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lis.accept()
            except OSError:
                return
            self.accepted += 1
            if self.cut_.is_set():
                c.close()
                continue
            u = None
            if not self.silent_.is_set():
                try:
                    u = socket.create_connection(("127.0.0.1", self.target))
                except OSError:
                    c.close()
                    continue
            with self.lock:
                self.socks += [c, u] if u else [c]
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()

    def _pump(self, a, b):
        live = [a, b] if b else [a]
        try:
            while live and not self.cut_.is_set():
                r, _, _ = select.select(live, [], [], 0.1)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        if not self.silent_.is_set():
                            return
                        # a black hole: the other side sees nothing of it
                        live.remove(s)
                        s.close()
                    elif b and not self.silent_.is_set():
                        (b if s is a else a).sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            if b:
                b.close()

    def _shutdown_all(self):
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self, silent=False):
        if silent:
            self.silent_.set()
        else:
            self.cut_.set()
            self._shutdown_all()

    def restore(self):
        self._shutdown_all()
        self.cut_.clear()
        self.silent_.clear()

    def close(self):
        self.cut()
        self.lis.close()


def repl_port(broker, timeout=10):
    line = broker.wait_for_log(r"listening repl ", timeout)
    return int(REPL_RE.search(line).group(2))


class Pair:
    """Two nodes sharing a temporary folder: data in DIR/a and DIR/b."""

    def __init__(self, protocols=("stomp",), start_standby=True, **ha):
        self.protocols = protocols
        self.ha = ha
        self.dir = tempfile.mkdtemp(prefix="wharf-pair-")
        self.a_dir = os.path.join(self.dir, "a")
        self.b_dir = os.path.join(self.dir, "b")
        self.nodes = []
        self.standby = None
        self.primary = self.start_primary()
        if start_standby:
            self.start_standby()

    def _start(self, config, data_dir, protocols=None):
        protocols = protocols or self.protocols
        b = Broker(protocols, config, data_dir=data_dir)
        self.nodes.append(b)
        # Broker stops at as many listening lines as protocols, and the
        # repl line counts: read the client ports once all are there.
        for proto in protocols:
            line = b.wait_for_log(r"listening %s " % proto)
            b.ports[proto] = int(LISTEN_RE.search(line).group(3))
        return b

    def start_primary(self):
        b = self._start(ha_config("primary", "a", "repl://127.0.0.1:9", **self.ha), self.a_dir)
        self.repl = repl_port(b)
        return b

    def start_standby(self, peer_port=None, **override):
        """peer_port: where its peer points (the active's link by default;
        a CutProxy's port to put one in between)."""
        ha = dict(self.ha)
        ha.update(override)
        self.standby = self._start(
            ha_config("standby", "b", "repl://127.0.0.1:%d" % (peer_port or self.repl), **ha),
            self.b_dir)
        self.standby_repl = repl_port(self.standby)
        return self.standby

    def wait_in_sync(self, count=1, timeout=20):
        """Waits for the count-th "in sync" line in the primary's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.primary.output().count("replication: standby b in sync") >= count:
                return
            time.sleep(0.02)
        raise AssertionError("standby never in sync:\n--- primary\n%s\n--- standby\n%s"
                             % (self.primary.output(), self.standby.output()))

    def kill9_primary(self):
        self.primary.kill9()

    def kill9_standby(self):
        self.standby.kill9()

    def stop_standby(self):
        os.kill(self.standby.proc.pid, signal.SIGSTOP)

    def cont_standby(self):
        os.kill(self.standby.proc.pid, signal.SIGCONT)

    def open_dir(self, data_dir, protocols=("stomp",)):
        """A node's data directory opened as a plain single node (no [ha])
        on fresh ports, with the pair's global keys; the caller stops it."""
        return self._start(self.ha.get("globals") or None, data_dir, protocols)

    def open_standby_dir(self, protocols=("stomp",)):
        return self.open_dir(self.b_dir, protocols)

    def segment_files(self, data_dir):
        j = os.path.join(data_dir, "journal")
        return sorted(f for f in os.listdir(j) if f.endswith(".wj") or f.endswith(".released"))

    def cleanup(self):
        for b in self.nodes:
            if b.alive():
                try:
                    os.kill(b.proc.pid, signal.SIGCONT)
                except OSError:
                    pass
            b.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
