#!/usr/bin/env python3
"""wharfd's command line: --version, --help, --check-config and the messages
of a bad config, --listen, the data-dir lock, SIGTERM, and the shipped
config."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from stomptest import TIMEOUT, RawStomp, stomp_close, stomp_connect
from wharftest import LISTEN_RE, WHARFD, Broker, main, wait_until

SRCDIR = os.environ.get("WHARF_SRCDIR") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class WharfdCli(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wharf-cli-")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_wharfd(self, *args, timeout=TIMEOUT):
        """Runs wharfd to completion; returns (rc, stdout, stderr)."""
        p = subprocess.run([WHARFD] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, text=True,
                           stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check_config(self, text):
        path = self.write("test.conf", text)
        rc, out, err = self.run_wharfd("--check-config", "-c", path)
        return path, rc, out + err

    def assert_names_line(self, text, line, *words):
        path, rc, out = self.check_config(text)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("%s:%d:" % (path, line), out)
        for w in words:
            self.assertIn(w, out)
        self.assertNotIn("configuration ok", out)
        return out

    # ---- information ---------------------------------------------------------

    def test_version(self):
        rc, out, err = self.run_wharfd("--version")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^wharfd \d+\.\d+(\.\d+)?\S*\n$")

    def test_help(self):
        rc, out, err = self.run_wharfd("--help")
        self.assertEqual(rc, 0, err)
        self.assertIn("Usage", out)
        self.assertIn("--listen", out)
        self.assertIn("--check-config", out)
        for scheme in ("stomp", "stomps", "mqtt", "mqtts", "amqp", "amqps", "ws", "wss"):
            self.assertRegex(out, r"\b%s\b" % scheme, "--help names every listener scheme")
        rc, out, err = self.run_wharfd("-h")
        self.assertEqual(rc, 0, err)

    def test_unknown_option(self):
        rc, out, err = self.run_wharfd("--no-such-option")
        self.assertNotEqual(rc, 0)
        self.assertIn("Usage", err)

    def test_stray_argument(self):
        rc, out, err = self.run_wharfd("extra")
        self.assertNotEqual(rc, 0)
        self.assertIn("extra", err)

    # ---- --check-config ------------------------------------------------------

    GOOD = """# a good config
data_dir = data
log_level = debug
shutdown_grace = 1s

[listener main]
url = stomp://127.0.0.1:0

[stomp]
heartbeat = 5s
max_frame_size = 1MiB
max_headers = 32
prefetch = 50

[queue orders.*]
auto_create = true

[topic orders.>]
bind = audit, billing
"""

    def test_check_config_good(self):
        path, rc, out = self.check_config(self.GOOD)
        self.assertEqual(rc, 0, out)
        self.assertIn("ok", out)

    def test_check_config_does_not_start(self):
        """--check-config neither binds nor creates the data dir."""
        data = os.path.join(self.tmp, "never")
        path = self.write("c.conf", "data_dir = %s\n" % data)
        rc, out, err = self.run_wharfd("--check-config", "-c", path)
        self.assertEqual(rc, 0, err)
        self.assertFalse(os.path.exists(data))

    def test_unknown_key(self):
        self.assert_names_line("data_dir = x\n\n[stomp]\nheartbeat = 1s\nbogus_key = 1\n", 5,
                               "bogus_key")

    def test_unknown_global_key(self):
        self.assert_names_line("# comment\nnot_a_key = 3\n", 2, "not_a_key")

    def test_unknown_section(self):
        self.assert_names_line("data_dir = x\n[nonsense]\nkey = v\n", 2, "nonsense")

    def test_bad_size_value(self):
        self.assert_names_line("[stomp]\n\nmax_frame_size = lots\n", 3, "max_frame_size")

    def test_bad_duration_and_bool(self):
        self.assert_names_line("[stomp]\nheartbeat = 5 parsecs\n", 2, "heartbeat")
        self.assert_names_line("[queue a]\nauto_create = maybe\n", 2, "auto_create")
        self.assert_names_line("log_level = loud\n", 1, "log_level")

    def test_line_without_equals(self):
        self.assert_names_line("data_dir = x\njust some words\n", 2)

    def test_listener_without_url(self):
        # The message names the [listener] line, not the end of the file.
        self.assert_names_line("data_dir = x\n[listener lonely]\n\n[stomp]\nheartbeat = 2s\n",
                               2, "lonely", "url")

    def test_listener_defined_twice(self):
        self.assert_names_line("[listener a]\nurl = stomp://127.0.0.1:0\n[listener a]\n"
                               "url = stomp://127.0.0.1:0\n", 3, "twice")

    def test_bad_bind_queue(self):
        self.assert_names_line("[topic t.>]\nbind = good bad.*\n", 2, "bad.*")

    def test_missing_config_file(self):
        missing = os.path.join(self.tmp, "absent.conf")
        rc, out, err = self.run_wharfd("--check-config", "-c", missing)
        self.assertNotEqual(rc, 0)
        self.assertIn(missing, err)

    def test_bad_config_does_not_start_broker(self):
        path = self.write("bad.conf", "[stomp]\nwhat = 1\n")
        rc, out, err = self.run_wharfd("-c", path, "--listen", "stomp://127.0.0.1:0",
                                       "--data-dir", os.path.join(self.tmp, "d"))
        self.assertNotEqual(rc, 0)
        self.assertIn("%s:2:" % path, out + err)

    def test_shipped_config_passes(self):
        path = os.path.join(SRCDIR, "conf", "wharf.conf")
        self.assertTrue(os.path.exists(path), path)
        rc, out, err = self.run_wharfd("--check-config", "-c", path)
        self.assertEqual(rc, 0, out + err)

    def test_shipped_pair_configs_pass(self):
        """conf/pair-a.conf and pair-b.conf (./dev pair), run from a folder
        holding data/pair.secret as ./dev pair makes it; without it, the
        error names the file."""
        def check(node):
            path = os.path.join(SRCDIR, "conf", "pair-%s.conf" % node)
            p = subprocess.run([os.path.abspath(WHARFD), "--check-config", "-c", path],
                               cwd=self.tmp, capture_output=True, text=True, timeout=TIMEOUT,
                               stdin=subprocess.DEVNULL)
            return p.returncode, p.stdout + p.stderr

        os.mkdir(os.path.join(self.tmp, "data"))
        for node in ("a", "b"):
            rc, out = check(node)
            self.assertNotEqual(rc, 0, out)
            self.assertIn("secret_file: data/pair.secret", out)
        with open(os.path.join(self.tmp, "data", "pair.secret"), "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        for node in ("a", "b"):
            rc, out = check(node)
            self.assertEqual(rc, 0, out)
            self.assertIn("configuration ok", out)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "data", "pair-a")))

    # ---- listening -------------------------------------------------------------

    def start(self, *args):
        log = open(os.path.join(self.tmp, "log-%d" % len(self.procs)), "w+")
        p = subprocess.Popen([WHARFD] + list(args), stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        p.log_path = log.name
        log.close()
        self.procs.append(p)
        return p

    @staticmethod
    def output(p):
        with open(p.log_path) as f:
            return f.read()

    def listening_ports(self, p, n):
        def found():
            return len([l for l in self.output(p).splitlines() if LISTEN_RE.search(l)]) >= n \
                or p.poll() is not None
        wait_until(found, TIMEOUT, what="%d listening lines" % n)
        lines = [l for l in self.output(p).splitlines() if LISTEN_RE.search(l)]
        self.assertEqual(len(lines), n, self.output(p))
        return [(LISTEN_RE.search(l).group(1), LISTEN_RE.search(l).group(2),
                 int(LISTEN_RE.search(l).group(3))) for l in lines]

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self.fail("wharfd did not stop on SIGTERM:\n" + self.output(p))

    def test_listen_twice_two_ports(self):
        p = self.start("--data-dir", os.path.join(self.tmp, "d"),
                       "--listen", "stomp://127.0.0.1:0", "--listen", "stomp://127.0.0.1:0")
        found = self.listening_ports(p, 2)
        for proto, host, port in found:
            self.assertEqual((proto, host), ("stomp", "127.0.0.1"))
            self.assertGreater(port, 0)
        self.assertNotEqual(found[0][2], found[1][2])
        for _, _, port in found:  # both really serve STOMP
            raw = RawStomp(port)
            try:
                raw.connect("1.2")
            finally:
                raw.close()
        self.assertEqual(self.stop(p), 0, self.output(p))

    def test_listen_overrides_config_listeners(self):
        path = self.write("l.conf", "[listener x]\nurl = stomp://127.0.0.1:1\n")
        p = self.start("-c", path, "--data-dir", os.path.join(self.tmp, "d"),
                       "--listen", "stomp://127.0.0.1:0")
        (proto, host, port), = self.listening_ports(p, 1)
        self.assertNotEqual(port, 1)
        self.assertEqual(self.stop(p), 0, self.output(p))

    def test_listener_from_config(self):
        path = self.write("l.conf", "[listener main]\nurl = stomp://127.0.0.1:0\n")
        p = self.start("-c", path, "--data-dir", os.path.join(self.tmp, "d"))
        (proto, host, port), = self.listening_ports(p, 1)
        self.assertEqual(proto, "stomp")
        self.assertEqual(self.stop(p), 0, self.output(p))

    def test_bad_listen_url(self):
        for url in ("foo://x", "foo://127.0.0.1:0", "stomp://127.0.0.1", "stomp://127.0.0.1:99999",
                    "stomp://:0", "nonsense"):
            p = self.start("--data-dir", os.path.join(self.tmp, "d"), "--listen", url)
            try:
                rc = p.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.fail("wharfd kept running with --listen %s:\n%s" % (url, self.output(p)))
            self.assertNotEqual(rc, 0, url)
            self.assertIn(url, self.output(p))

    def test_port_in_use(self):
        p = self.start("--data-dir", os.path.join(self.tmp, "d1"), "--listen", "stomp://127.0.0.1:0")
        (_, _, port), = self.listening_ports(p, 1)
        q = self.start("--data-dir", os.path.join(self.tmp, "d2"),
                       "--listen", "stomp://127.0.0.1:%d" % port)
        rc = q.wait(TIMEOUT)
        self.assertNotEqual(rc, 0)
        self.assertIn(str(port), self.output(q))
        self.assertEqual(self.stop(p), 0, self.output(p))

    def test_no_listeners(self):
        rc, out, err = self.run_wharfd("--data-dir", os.path.join(self.tmp, "d"))
        self.assertNotEqual(rc, 0)
        self.assertIn("listen", out + err)

    # ---- data dir ------------------------------------------------------------------

    def test_second_broker_on_same_data_dir(self):
        data = os.path.join(self.tmp, "shared-data")
        first = self.start("--data-dir", data, "--listen", "stomp://127.0.0.1:0")
        self.listening_ports(first, 1)
        second = self.start("--data-dir", data, "--listen", "stomp://127.0.0.1:0")
        try:
            rc = second.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("second wharfd on the same data dir kept running")
        self.assertNotEqual(rc, 0)
        out = self.output(second)
        self.assertIn(data, out)
        self.assertIn("in use", out)
        self.assertTrue(first.poll() is None, "the first broker died")
        self.assertEqual(self.stop(first), 0, self.output(first))
        # Once the first has gone, the directory is free again.
        third = self.start("--data-dir", data, "--listen", "stomp://127.0.0.1:0")
        self.listening_ports(third, 1)
        self.assertEqual(self.stop(third), 0, self.output(third))

    # ---- SIGTERM -----------------------------------------------------------------

    def test_sigterm_stops_cleanly_and_tells_clients(self):
        b = Broker()
        try:
            raws = [RawStomp(b.stomp_port) for _ in range(3)]
            for r in raws:
                r.connect("1.2")
            raws[0].send_frame("SUBSCRIBE", [("destination", "/queue/q"), ("id", "1"),
                                             ("ack", "client"), ("receipt", "s")])
            raws[0].wait_receipt("s")
            conn, lst = stomp_connect(b.stomp_port, "1.1")
            idle = RawStomp(b.stomp_port)  # connected at TCP level, no CONNECT yet
            b.proc.send_signal(signal.SIGTERM)
            for r in raws:
                frames = r.wait_closed()
                self.assertEqual([f.command for f in frames], ["ERROR"])
                self.assertEqual(frames[0].headers.get("message"), "broker shutting down")
            err = lst.wait_error()
            self.assertEqual(err.headers.get("message"), "broker shutting down")
            lst.wait_disconnected()
            idle.wait_closed()
            idle.close()
            rc = b.proc.wait(TIMEOUT)
            self.assertEqual(rc, 0, b.output())
            self.assertRegex(b.output(), r"shutting down|stopped")
            for r in raws:
                r.close()
            stomp_close(conn, lst)
        finally:
            b.cleanup()

    def test_sigint_stops_cleanly(self):
        b = Broker()
        try:
            b.proc.send_signal(signal.SIGINT)
            self.assertEqual(b.proc.wait(TIMEOUT), 0, b.output())
        finally:
            b.cleanup()

    def test_sigterm_with_client_that_does_not_read(self):
        """A client that never reads cannot hold the shutdown past the grace."""
        b = Broker(config="shutdown_grace = 1s\n")
        try:
            prod = RawStomp(b.stomp_port)
            prod.connect("1.2")
            slow = RawStomp(b.stomp_port, rcvbuf=4096)  # and it never reads
            slow.connect("1.2")
            slow.send_frame("SUBSCRIBE", [("destination", "/queue/slow"), ("id", "1"),
                                          ("receipt", "s")])
            slow.wait_receipt("s")
            body = b"x" * 60000
            for i in range(40):
                prod.send_frame("SEND", [("destination", "/queue/slow")], body)
            prod.send_frame("SEND", [("destination", "/queue/slow"), ("receipt", "p")], b"end")
            prod.wait_receipt("p")
            start = time.monotonic()
            b.proc.send_signal(signal.SIGTERM)
            rc = b.proc.wait(TIMEOUT)
            self.assertEqual(rc, 0, b.output())
            self.assertLess(time.monotonic() - start, 8)
            prod.close()
            slow.close()
        finally:
            b.cleanup()


if __name__ == "__main__":
    main()
