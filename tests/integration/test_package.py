"""The Debian package (debian/, docs/operations.md, Debian package), end
to end: dpkg-buildpackage builds wharf and wharf-bench from a copy of the
source tree, their contents are checked (dpkg -x, lintian when installed),
then, as root, wharf is installed with dpkg -i and wharfd started as the
installed unit starts it: as systemd is not PID 1 on the machines this
runs on, the unit's ExecStartPre and ExecStart lines run as its User with
NOTIFY_SOCKET on a socket of the test's, and ExecReload's line sends the
reload. READY=1 must come after the `listening` lines; a mosquitto_pub/sub
round trip goes through the installed broker; the package is purged.

Building takes minutes: the test runs only with WHARF_TEST_PACKAGE=1
(needs debhelper; lintian is optional):

    WHARF_TEST_PACKAGE=1 WHARF_SRCDIR=$PWD python3 tests/integration/test_package.py
"""
import glob
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import unittest

from installtest import make_env, run, unit_settings
from mqtttest import MosquittoSub, mosquitto_pub
from notifytest import NotifySocket
from wharftest import LISTEN_RE, main

SRCDIR = os.environ.get("WHARF_SRCDIR") or os.path.join(os.path.dirname(__file__), "..", "..")
ENABLED = os.environ.get("WHARF_TEST_PACKAGE") == "1"
CONF = "/etc/wharf/wharf.conf"
UNIT = "/lib/systemd/system/wharf.service"


@unittest.skipUnless(ENABLED, "set WHARF_TEST_PACKAGE=1 to build and install the .deb (minutes)")
class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="wharf-deb-")
        src = os.path.join(cls.tmp, "wharf")
        files = run(["git", "-C", SRCDIR, "ls-files", "-co", "--exclude-standard", "-z"]).stdout
        os.makedirs(src)
        tar = subprocess.Popen(["tar", "-C", SRCDIR, "--null", "-T", "-", "-cf", "-"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        untar = subprocess.Popen(["tar", "-C", src, "-xf", "-"], stdin=tar.stdout)
        tar.stdin.write(files.encode())
        tar.stdin.close()
        tar.stdout.close()
        if tar.wait() != 0 or untar.wait() != 0:
            raise AssertionError("cannot copy the source tree")
        # nocheck: the unit tests are not what this test is about.
        env = dict(make_env(), DEB_BUILD_OPTIONS="nocheck parallel=%d" % (os.cpu_count() or 1))
        t = time.monotonic()
        r = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env, timeout=1200)
        cls.build_seconds = time.monotonic() - t
        if r.returncode != 0:
            raise AssertionError("dpkg-buildpackage failed:\n" + r.stdout[-4000:])
        cls.debs = {re.sub(r"_.*", "", os.path.basename(p)): p
                    for p in glob.glob(os.path.join(cls.tmp, "*.deb"))}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def extract(self, name):
        d = os.path.join(self.tmp, "x-" + name)
        if not os.path.isdir(d):
            self.assertEqual(run(["dpkg-deb", "-x", self.debs[name], d]).returncode, 0)
            self.assertEqual(run(["dpkg-deb", "-e", self.debs[name], d + "/DEBIAN"]).returncode, 0)
        return d

    def test_contents(self):
        print("# dpkg-buildpackage -us -uc -b: %.0f s" % self.build_seconds)
        self.assertIn("wharf", self.debs)
        self.assertIn("wharf-bench", self.debs)
        d = self.extract("wharf")
        for f in ("usr/sbin/wharfd", "usr/bin/wharfctl"):
            self.assertTrue(os.access(os.path.join(d, f), os.X_OK), f)
        for f in ("etc/wharf/wharf.conf", "lib/systemd/system/wharf.service",
                  "usr/share/man/man8/wharfd.8.gz", "usr/share/man/man1/wharfctl.1.gz",
                  "usr/share/doc/wharf/copyright"):
            self.assertTrue(os.path.isfile(os.path.join(d, f)), f)
        self.assertFalse(os.path.exists(os.path.join(d, "usr/bin/wharf-bench")))
        with open(os.path.join(d, "DEBIAN/conffiles")) as f:
            self.assertEqual(f.read().split(), [CONF])
        with open(os.path.join(d, "DEBIAN/postinst")) as f:
            postinst = f.read()
        self.assertIn("adduser --system", postinst)
        self.assertIn("deb-systemd-helper enable 'wharf.service'", postinst)
        b = self.extract("wharf-bench")
        self.assertTrue(os.access(os.path.join(b, "usr/bin/wharf-bench"), os.X_OK))
        self.assertTrue(os.path.isfile(os.path.join(b, "usr/share/man/man1/wharf-bench.1.gz")))

    @unittest.skipUnless(shutil.which("lintian"), "lintian is not installed")
    def test_lintian(self):
        r = run(["lintian", self.debs["wharf"], self.debs["wharf-bench"]], timeout=600)
        tags = [l for l in r.stdout.splitlines() if re.match(r"[EW]: ", l)]
        self.assertEqual(tags, [], r.stdout)

    @unittest.skipUnless(os.geteuid() == 0, "installing needs root")
    def test_install_start_purge(self):
        if run(["dpkg-query", "-W", "-f", "${Status}", "wharf"]).stdout.startswith("install ok"):
            self.skipTest("a wharf package is installed already: not touching it")
        had_user = self.user_exists()
        self.addCleanup(self.purge, had_user)
        r = run(["dpkg", "-i", self.debs["wharf"], self.debs["wharf-bench"]], timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout)
        st = os.stat("/var/lib/wharf")
        self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, "wharf")
        self.assertEqual(st.st_mode & 0o777, 0o750)
        self.assertTrue(os.access("/usr/bin/wharf-bench", os.X_OK))

        with open("/proc/1/comm") as f:
            pid1 = f.read().strip()
        print("# PID 1 is %s: running the unit's lines by hand" % pid1)
        # As an operator would before opening ports: here, free ones (port 0)
        # so that nothing else on the machine is in the way.
        with open(CONF) as f:
            text = f.read()
        edited = re.sub(r"(?m)^((?:url|listen) = \w+://127\.0\.0\.1:)\d+$", r"\g<1>0", text)
        self.assertEqual(len(re.findall(r":0\n", edited)), 5, edited)
        with open(CONF, "w") as f:
            f.write(edited)

        unit = {k: v[-1] for k, v in unit_settings(UNIT).items()}
        as_user = ["setpriv", "--reuid", unit["User"], "--regid", unit["Group"], "--init-groups",
                   "--no-new-privs"]
        r = run(as_user + shlex.split(unit["ExecStartPre"]))
        self.assertEqual(r.returncode, 0, r.stdout)

        notify = NotifySocket()
        self.addCleanup(notify.cleanup)
        log = open(os.path.join(self.tmp, "wharfd.log"), "w+")
        self.addCleanup(log.close)
        with notify.environ():
            proc = subprocess.Popen(as_user + shlex.split(unit["ExecStart"]), cwd="/",
                                    stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        ready = notify.receive(30)
        with open(log.name) as f:
            output = f.read()
        self.assertEqual(ready.get("READY"), "1", output)
        ports = {m.group(1): int(m.group(3)) for m in map(LISTEN_RE.search, output.splitlines()) if m}
        self.assertEqual(set(ports), {"stomp", "mqtt", "amqp", "ws", "admin"}, output)
        self.assertIn("data dir /var/lib/wharf", output)

        sub = MosquittoSub(ports["mqtt"], "pkg/check", qos=1)
        try:
            sub.wait_for(lambda: sub.subscribed, what="SUBACK")
            mosquitto_pub(ports["mqtt"], "pkg/check", "through the package", qos=1)
            sub.wait_messages(1)
            self.assertEqual(sub.messages[0][3], "through the package")
        finally:
            sub.close()

        reload_cmd = unit["ExecReload"].replace("$MAINPID", str(proc.pid))
        self.assertEqual(run(shlex.split(reload_cmd)).returncode, 0)
        self.assertEqual(notify.receive().get("RELOADING"), "1")
        self.assertEqual(notify.receive(), {"READY": "1"})

        proc.terminate()
        self.assertEqual(notify.receive(), {"STOPPING": "1"})
        self.assertEqual(proc.wait(30), 0)
        journal = [p for p in os.listdir("/var/lib/wharf") if p != "wharfd.lock"]
        self.assertTrue(journal, "the journal is in /var/lib/wharf")
        self.assertEqual({pwd.getpwuid(os.stat("/var/lib/wharf/" + p).st_uid).pw_name
                          for p in os.listdir("/var/lib/wharf")}, {"wharf"})

        r = run(["dpkg", "--purge", "wharf-bench", "wharf"], timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout)
        for gone in ("/var/lib/wharf", "/etc/wharf", "/usr/sbin/wharfd", UNIT):
            self.assertFalse(os.path.exists(gone), gone)

    @staticmethod
    def user_exists():
        try:
            pwd.getpwnam("wharf")
            return True
        except KeyError:
            return False

    def purge(self, had_user):
        """Leaves the machine as it was, whatever failed."""
        run(["dpkg", "--purge", "wharf-bench", "wharf"], timeout=300)
        if not had_user and self.user_exists():
            run(["deluser", "--system", "wharf"])


if __name__ == "__main__":
    main()
