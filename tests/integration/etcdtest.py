"""A real etcd of our own for the pair's tests: a single member on two free
ports of 127.0.0.1, its data in a temporary directory.

    from etcdtest import Etcd
    with Etcd() as e:
        url = e.url            # etcd://127.0.0.1:PORT, as [ha] arbiter takes it
        e.kill9(); e.start()   # the same member again, on the same data and ports
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

from wharftest import Scoped

ETCD = os.environ.get("ETCD") or "/usr/bin/etcd"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Etcd(Scoped):
    def __init__(self, start_timeout=20):
        # In memory where there is /dev/shm: etcd syncs its log on every
        # write, and a disk busy with other tests would slow elections.
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.dir = tempfile.mkdtemp(prefix="wharf-etcd-", dir=shm)
        self.client_port = free_port()
        self.peer_port = free_port()
        self.start_timeout = start_timeout
        self.proc = None
        self.log = None
        self.start()

    @property
    def url(self):
        return "etcd://127.0.0.1:%d" % self.client_port

    @property
    def http(self):
        return "http://127.0.0.1:%d" % self.client_port

    def start(self):
        client = "http://127.0.0.1:%d" % self.client_port
        peer = "http://127.0.0.1:%d" % self.peer_port
        self.log = open(os.path.join(self.dir, "etcd.log"), "a")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "default", "--data-dir", os.path.join(self.dir, "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", "default=" + peer, "--log-outputs", "stderr"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("etcd exited with %s:\n%s" % (self.proc.returncode, self.output()))
            try:
                with urllib.request.urlopen(self.http + "/health", timeout=1) as r:
                    if json.load(r).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.kill9()
                raise RuntimeError("etcd did not start:\n" + self.output())
            time.sleep(0.05)

    def output(self):
        with open(os.path.join(self.dir, "etcd.log"), errors="replace") as f:
            return f.read()

    def call(self, path, body, timeout=5):
        """POST /v3/PATH with a JSON body; returns the decoded answer."""
        req = urllib.request.Request(self.http + "/v3/" + path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)

    def get(self, key):
        """The value of key as text, or None."""
        kvs = self.call("kv/range", {"key": base64.b64encode(key.encode()).decode()}).get("kvs")
        return base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        if self.log:
            self.log.close()
            self.log = None

    def cleanup(self):
        self.kill9()
        shutil.rmtree(self.dir, ignore_errors=True)
