#!/usr/bin/env python3
"""The broker's process: `user` (and `group`) make it drop root once its
ports are bound and its files open, and it keeps serving and journaling as
that user across a kill -9; without `user`, as root, it warns; everything
it writes in the data directory, its log and wharfctl's users file are
its own alone (directories 0700, files 0600)."""
import grp
import os
import pwd
import shutil
import stat
import tempfile
import unittest

from stomptest import stomp_close, stomp_connect
from test_auth import add_user
from test_store import drain
from wharftest import Broker, main, wait_until

QUEUE = "/queue/kept"
ROOT = os.geteuid() == 0
# Debian 12 has nobody (65534) in group nogroup (65534), with no other
# groups: a user that owns nothing else on the machine.
NOBODY = pwd.getpwnam("nobody")


def status_ids(pid):
    """The Uid, Gid and Groups lines of /proc/PID/status, as lists."""
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                ids[key] = value.split()
    return ids


def publish(port, bodies):
    """Sends persistent messages, the last with a receipt that is waited for."""
    conn, lst = stomp_connect(port)
    for i, body in enumerate(bodies):
        last = i == len(bodies) - 1
        conn.send(QUEUE, body, headers=dict({"persistent": "true"}, **({"receipt": "last"} if last else {})))
    lst.wait_receipt("last")
    stomp_close(conn, lst)


def modes(top):
    """{path relative to top: permission bits} of top and all below it."""
    found = {".": stat.S_IMODE(os.stat(top).st_mode)}
    for d, dirs, files in os.walk(top):
        for name in dirs + files:
            p = os.path.join(d, name)
            found[os.path.relpath(p, top)] = stat.S_IMODE(os.lstat(p).st_mode)
    return found


class UserTest(unittest.TestCase):
    def data_dir_for_nobody(self):
        """A data directory nobody owns, in a directory it may pass through."""
        parent = tempfile.mkdtemp(prefix="wharf-user-")
        self.addCleanup(shutil.rmtree, parent, ignore_errors=True)
        os.chmod(parent, 0o711)
        data = os.path.join(parent, "data")
        os.mkdir(data, 0o700)
        os.chown(data, NOBODY.pw_uid, NOBODY.pw_gid)
        return data

    @unittest.skipUnless(ROOT, "needs root to drop it")
    def test_runs_as_user_and_keeps_persistent_messages_across_kill9(self):
        data = self.data_dir_for_nobody()
        # Small segments: new ones are made, and consumed ones deleted, by
        # the broker once it is nobody.
        config = "user = nobody\njournal_segment_size = 16KiB\n"
        bodies = ["m-%03d-" % i + "x" * 1000 for i in range(100)]
        with Broker(config=config, data_dir=data) as b:
            b.wait_for_log(r"running as user nobody \(uid 65534, gid 65534\)")
            ids = status_ids(b.proc.pid)
            self.assertEqual(ids["Uid"], [str(NOBODY.pw_uid)] * 4)
            self.assertEqual(ids["Gid"], [str(NOBODY.pw_gid)] * 4)
            self.assertNotIn("0", ids.get("Groups", []))
            publish(b.stomp_port, bodies[:50])
            self.assertEqual(drain(b.stomp_port, QUEUE)[0], bodies[:50])
            publish(b.stomp_port, bodies[50:])
            b.kill9()
        with Broker(config=config, data_dir=data) as b2:
            b2.wait_for_log(r"running as user nobody")
            self.assertEqual(drain(b2.stomp_port, QUEUE)[0], bodies[50:])
            self.assertNotIn("running as root", b2.output())
            self.assertEqual(b2.stop(), 0, b2.output())

    @unittest.skipUnless(ROOT, "needs root to drop it")
    def test_group_replaces_the_users_own(self):
        data = self.data_dir_for_nobody()
        with Broker(config="user = nobody\ngroup = daemon\n", data_dir=data) as b:
            b.wait_for_log(r"running as user nobody")
            gid = str(grp.getgrnam("daemon").gr_gid)
            self.assertEqual(status_ids(b.proc.pid)["Gid"], [gid] * 4)
            self.assertEqual(b.stop(), 0, b.output())

    def test_an_unknown_user_stops_it_before_it_starts(self):
        with Broker(protocols=(), config="user = no-such-wharf-user\n[listener s]\nurl = stomp://127.0.0.1:0\n") as b:
            self.assertNotEqual(b.proc.wait(timeout=10), 0)
            self.assertIn("user no-such-wharf-user: no such user", b.output())
            self.assertNotIn("listening", b.output())

    @unittest.skipUnless(ROOT, "needs root to drop it")
    def test_a_data_dir_the_user_cannot_write_stops_it(self):
        # Under a directory of root's, 0700: the broker makes its data
        # directory as nobody, and says it cannot, rather than making it as
        # root and failing at the first new segment once it is nobody.
        parent = tempfile.mkdtemp(prefix="wharf-user-")
        self.addCleanup(shutil.rmtree, parent, ignore_errors=True)
        with Broker(protocols=(), data_dir=os.path.join(parent, "data"),
                    config="user = nobody\n[listener s]\nurl = stomp://127.0.0.1:0\n") as b:
            self.assertNotEqual(b.proc.wait(timeout=10), 0)
            self.assertIn("data dir %s/data: Permission denied" % parent, b.output())

    @unittest.skipUnless(ROOT, "the warning is for root")
    def test_root_without_user_warns_and_runs(self):
        with Broker() as b:
            b.wait_for_log(r"running as root: set user = NAME")
            publish(b.stomp_port, ["as root"])
            self.assertEqual(drain(b.stomp_port, QUEUE)[0], ["as root"])
            self.assertEqual(b.stop(), 0, b.output())


class ModeTest(unittest.TestCase):
    def test_data_dir_and_log_are_the_brokers_alone(self):
        top = tempfile.mkdtemp(prefix="wharf-modes-")
        self.addCleanup(shutil.rmtree, top, ignore_errors=True)
        data, log = os.path.join(top, "data"), os.path.join(top, "wharfd.log")
        old = os.umask(0o022)
        try:
            # Paging from the first message: page files as well as segments.
            b = Broker(protocols=(), data_dir=data,
                       config="log_file = %s\nqueue_memory_limit = 4KiB\n"
                              "[listener s]\nurl = stomp://127.0.0.1:0\n" % log)
        finally:
            os.umask(old)
        with b:
            wait_until(lambda: os.path.exists(log) and "listening stomp" in open(log).read(),
                       what="the log file")
            port = int(open(log).read().split("listening stomp 127.0.0.1:")[1].split()[0])
            publish(port, ["p-%d-" % i + "y" * 2000 for i in range(500)])
            # The store's thread writes page files a moment later.
            wait_until(lambda: os.listdir(os.path.join(data, "paging")), what="a page file")
            found = modes(data)
            found["log"] = stat.S_IMODE(os.stat(log).st_mode)
            self.assertTrue(any(p.startswith("paging/") for p in found), found)
            self.assertTrue(any(p.startswith("journal/") for p in found), found)
            for path, mode in found.items():
                isdir = os.path.isdir(os.path.join(data, path)) and path != "log"
                self.assertEqual(mode, 0o700 if isdir else 0o600, "%s is %o" % (path, mode))
            self.assertEqual(b.stop(), 0, b.output())

    def test_wharfctl_writes_the_users_file_for_its_owner_alone(self):
        top = tempfile.mkdtemp(prefix="wharf-modes-")
        self.addCleanup(shutil.rmtree, top, ignore_errors=True)
        users = os.path.join(top, "users")
        old = os.umask(0o022)
        try:
            add_user(users, "alice", "alice-secret")
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(users).st_mode), 0o600)

    @unittest.skipUnless(ROOT, "only root can give the file away")
    def test_wharfctl_keeps_the_users_file_with_its_owner(self):
        # The broker, running as its user, reads it again on SIGHUP.
        top = tempfile.mkdtemp(prefix="wharf-modes-")
        self.addCleanup(shutil.rmtree, top, ignore_errors=True)
        users = os.path.join(top, "users")
        add_user(users, "alice", "alice-secret")
        os.chown(users, NOBODY.pw_uid, NOBODY.pw_gid)
        add_user(users, "bob", "bob-secret")
        st = os.stat(users)
        self.assertEqual((st.st_uid, st.st_gid), (NOBODY.pw_uid, NOBODY.pw_gid))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        with open(users) as f:
            self.assertEqual([l.split(":")[0] for l in f if l.strip() and not l.startswith("#")],
                             ["alice", "bob"])


if __name__ == "__main__":
    main()
