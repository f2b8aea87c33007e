"""wharfd under systemd's Type=notify (docs/operations.md, systemd): with
NOTIFY_SOCKET set it sends READY=1 once the journal is replayed and every
listener is bound, RELOADING=1 then READY=1 around a SIGHUP reload, and
STOPPING=1 on SIGTERM; a standby is ready with STATUS=standby and says
STATUS=active once promoted. The test holds systemd's end of the socket."""
import os
import signal
import subprocess
import unittest

from mqtttest import MosquittoSub, mosquitto_pub
from notifytest import NotifySocket
from pairtest import REPL_RE, SECRET, ha_config
from test_ha_link import WHARFCTL
from wharftest import Broker, LISTEN_RE, main


class Notify(unittest.TestCase):
    def setUp(self):
        self.notify = NotifySocket()
        self.addCleanup(self.notify.cleanup)

    def start(self, **kw):
        with self.notify.environ():
            b = Broker(("mqtt", "stomp"), **kw)
        self.addCleanup(b.cleanup)
        return b

    def stop(self, b):
        rc = b.stop()
        self.assertEqual(rc, 0, b.output())

    def test_ready_after_replay_and_listeners(self):
        first = Broker(("mqtt",))
        self.addCleanup(first.cleanup)
        mosquitto_pub(first.ports["mqtt"], "notify/kept", "before-restart", qos=1, retain=True)
        self.stop(first)

        b = self.start(data_dir=first.data_dir)
        ready = self.notify.receive()
        # The log at the moment READY=1 arrives: written before it was sent.
        log = b.output()
        self.assertEqual(ready.get("READY"), "1", ready)
        self.assertEqual(ready.get("STATUS"), "active", ready)
        self.assertRegex(log, r"store: \d+ messages, [1-9]\d* retained messages")
        protos = {m.group(1) for m in map(LISTEN_RE.search, log.splitlines()) if m}
        self.assertEqual(protos, {"mqtt", "stomp"}, log)
        self.assertLess(log.index("retained messages"), log.index("listening"))
        # Ready means served: the replayed message is there at once.
        sub = MosquittoSub(b.ports["mqtt"], "notify/kept", qos=1)
        try:
            sub.wait_messages(1)
            self.assertEqual(sub.messages[0][3], "before-restart")
        finally:
            sub.close()
        self.stop(b)

    def test_reload_and_stop(self):
        b = self.start()
        self.assertEqual(self.notify.receive().get("READY"), "1")
        b.proc.send_signal(signal.SIGHUP)
        reloading = self.notify.receive()
        self.assertEqual(reloading.get("RELOADING"), "1", reloading)
        self.assertRegex(reloading.get("MONOTONIC_USEC", ""), r"^[1-9][0-9]*$")
        self.assertEqual(self.notify.receive(), {"READY": "1"})
        self.assertTrue(b.alive())

        b.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.notify.receive(), {"STOPPING": "1"})
        self.assertEqual(b.proc.wait(20), 0, b.output())
        self.assertEqual(self.notify.pending(), [])

    def test_standby_is_ready_then_active_on_promotion(self):
        """A standby is ready once its (redirecting) listeners are bound;
        promoted, it says so in STATUS."""
        b = self.start(config=ha_config("standby", "b", "repl://127.0.0.1:1"))
        self.assertEqual(self.notify.receive(), {"READY": "1", "STATUS": "standby"})
        secret = os.path.join(b.dir, "secret")
        with open(secret, "w") as f:
            f.write(SECRET + "\n")
        repl = REPL_RE.search(b.wait_for_log(REPL_RE.pattern)).group(2)
        r = subprocess.run([WHARFCTL, "--peer", "repl://127.0.0.1:" + repl, "--secret-file", secret,
                            "promote"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(self.notify.receive(), {"STATUS": "active"})
        self.stop(b)

    def test_no_socket_no_complaint(self):
        """Outside systemd (NOTIFY_SOCKET unset) nothing is sent and nothing logged."""
        os.environ.pop("NOTIFY_SOCKET", None)
        b = Broker(("mqtt",))
        self.addCleanup(b.cleanup)
        b.proc.send_signal(signal.SIGHUP)
        b.wait_for_log("log file reopened")
        self.stop(b)
        self.assertNotIn("notify", b.output())
        self.assertEqual(self.notify.pending(0.1), [])

    def test_unreachable_socket_is_logged_not_fatal(self):
        os.environ["NOTIFY_SOCKET"] = os.path.join(self.notify.dir, "nobody-here")
        try:
            b = Broker(("mqtt",))
        finally:
            del os.environ["NOTIFY_SOCKET"]
        self.addCleanup(b.cleanup)
        b.wait_for_log(r"cannot notify systemd at \$NOTIFY_SOCKET: No such file")
        mosquitto_pub(b.ports["mqtt"], "notify/x", "still serving")
        self.stop(b)


if __name__ == "__main__":
    main()
