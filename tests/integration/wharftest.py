"""Shared harness for Wharf's integration tests.

Each test file starts its own wharfd on port 0 in a temporary directory,
reads the `listening PROTO HOST:PORT` log lines to learn its ports, talks to
it with real client libraries, and stops it at the end. Results are printed
as TAP so automake counts every test case.

    from wharftest import Broker, main
    class T(unittest.TestCase): ...
    if __name__ == "__main__": main()
"""
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

WHARFD = os.environ.get("WHARFD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "src", "wharfd")

LISTEN_RE = re.compile(r"listening (\S+) (\S+):(\d+)$")


class Scoped:
    """A context manager whose exit calls self.cleanup()."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


class Broker(Scoped):
    """A wharfd process of our own. Use as a context manager or call stop()."""

    def __init__(self, protocols=("stomp",), config=None, args=(), start_timeout=15,
                 data_dir=None):
        """data_dir: an existing data directory to start on (a restart);
        by default a fresh one inside the broker's own temporary folder."""
        self.dir = tempfile.mkdtemp(prefix="wharf-test-")
        self.log_path = os.path.join(self.dir, "wharfd.log")
        self.ports = {}
        self.data_dir = data_dir or os.path.join(self.dir, "data")
        cmd = [WHARFD, "--data-dir", self.data_dir]
        if config is not None:
            path = os.path.join(self.dir, "wharf.conf")
            with open(path, "w") as f:
                f.write(config)
            cmd += ["-c", path]
        for p in protocols:
            cmd += ["--listen", "%s://127.0.0.1:0" % p]
        cmd += list(args)
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + start_timeout
        while len(self.ports) < len(protocols):
            if self.proc.poll() is not None:
                raise RuntimeError("wharfd exited with %s:\n%s" % (self.proc.returncode, self.output()))
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("wharfd did not start:\n" + self.output())
            for line in self.output().splitlines():
                m = LISTEN_RE.search(line)
                if m:
                    self.ports[m.group(1)] = int(m.group(3))
            time.sleep(0.02)

    @property
    def stomp_port(self):
        return self.ports["stomp"]

    def output(self):
        # errors="replace": a log line may quote what a client sent.
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_for_log(self, pattern, timeout=10):
        """Waits until the log has a line matching the regex; returns it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.output().splitlines():
                if rx.search(line):
                    return line
            time.sleep(0.02)
        raise AssertionError("no log line matching %r in:\n%s" % (pattern, self.output()))

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM, then wait; returns the exit code. A sanitizer report (a
        leak, an overflow) makes it non-zero, and the caller asserts 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("wharfd did not stop on SIGTERM:\n" + self.output())
        self.log.close()
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def cleanup(self):
        if self.proc.poll() is None:
            self.kill9()
        shutil.rmtree(self.dir, ignore_errors=True)


class BrokerTestCase(unittest.TestCase):
    """One broker for all tests in the class; at the end it must stop cleanly
    (exit code 0, so no sanitizer report) and must have stayed up."""

    protocols = ("stomp",)
    config = None
    args = ()

    @classmethod
    def setUpClass(cls):
        cls.broker = Broker(cls.protocols, cls.config, cls.args)

    @classmethod
    def tearDownClass(cls):
        b = cls.broker
        try:
            rc = b.stop()
            if rc != 0:
                raise AssertionError("wharfd exited with %d:\n%s" % (rc, b.output()))
        finally:
            b.cleanup()


def wait_until(pred, timeout=10, interval=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


def raw_exchange(port, data, timeout=5):
    """Sends raw bytes and returns everything the broker sends back until it
    closes the connection (or the timeout passes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if data:
            s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], 0.1)
            if r:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    return out, True
                if not chunk:
                    return out, True
                out += chunk
        return out, False
    finally:
        s.close()


class RawSocket:
    """A client on a bare socket, for what client libraries hide and for
    malformed input. Subclasses parse self.buf; _fill() adds what arrives
    and sets `closed` once the broker closes."""

    def __init__(self, port, timeout, rcvbuf=None):
        if rcvbuf is None:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        else:
            # Before connect, so that the window is small from the start
            # (shrinking it later can stall loopback TCP).
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.closed = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        """Sends raw bytes; False if the broker has already closed."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fill(self, deadline):
        """Reads more bytes into buf; False on timeout or close."""
        if self.closed:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            return False
        try:
            chunk = self.sock.recv(1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True


class TapResult(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _line(self, ok, test, extra=""):
        self.n += 1
        print("%s %d - %s%s" % ("ok" if ok else "not ok", self.n, test.id(), extra), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._line(True, test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(False, test)
        print("# " + self._exc_info_to_string(err, test).replace("\n", "\n# "), flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        self._line(False, test)
        print("# " + self._exc_info_to_string(err, test).replace("\n", "\n# "), flush=True)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line(True, test, " # SKIP " + reason)

    # A known broker shortcoming, kept as a failing test (TAP TODO: automake
    # counts it XFAIL) until the code is fixed; passing then is an XPASS,
    # which fails the run so the marker is removed.
    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.n += 1
        print("not ok %d - %s # TODO known broker shortcoming" % (self.n, test.id()), flush=True)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.n += 1
        print("ok %d - %s # TODO passes now: remove expectedFailure" % (self.n, test.id()), flush=True)


def main():
    """Runs the calling module's tests, or those named on the command line
    (Class or Class.test_name), and prints TAP."""
    module = sys.modules["__main__"]
    loader = unittest.defaultTestLoader
    names = sys.argv[1:]
    suite = loader.loadTestsFromNames(names, module) if names else loader.loadTestsFromModule(module)
    result = TapResult()
    threading.excepthook = lambda args: None  # client threads dying on a closed socket
    suite.run(result)
    # Class-level failures (setUpClass/tearDownClass) are errors with no test of their own.
    print("1..%d" % result.n, flush=True)
    sys.exit(0 if result.wasSuccessful() and not result.unexpectedSuccesses else 1)
