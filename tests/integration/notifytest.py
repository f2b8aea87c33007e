"""systemd's side of the readiness protocol (sd_notify(3)) for tests: a
datagram socket of the test's own whose path goes in NOTIFY_SOCKET, as
systemd does for a Type=notify service.

    with NotifySocket() as n:
        with n.environ():
            b = Broker(...)          # inherits NOTIFY_SOCKET
        state = n.receive()          # {"READY": "1", "STATUS": "active"}
"""
import contextlib
import os
import shutil
import socket
import tempfile
import time

from wharftest import Scoped


class NotifySocket(Scoped):
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wharf-notify-")
        # Readable by the broker when it runs as another user (the package test).
        os.chmod(self.dir, 0o755)
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)

    @contextlib.contextmanager
    def environ(self):
        """NOTIFY_SOCKET set for what starts inside the block."""
        old = os.environ.get("NOTIFY_SOCKET")
        os.environ["NOTIFY_SOCKET"] = self.path
        try:
            yield
        finally:
            if old is None:
                del os.environ["NOTIFY_SOCKET"]
            else:
                os.environ["NOTIFY_SOCKET"] = old

    def receive(self, timeout=20):
        """The next datagram as a dict of its KEY=VALUE lines; AssertionError
        when none comes within the timeout."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            raise AssertionError("no notification within %s s" % timeout)
        return dict(line.split("=", 1) for line in data.decode().split("\n") if line)

    def pending(self, wait=0.3):
        """The datagrams that arrive within `wait` seconds, as dicts."""
        out = []
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            try:
                out.append(self.receive(left))
            except AssertionError:
                return out

    def cleanup(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)
