"""What `make install` puts where (docs/operations.md, Installing): wharfd
in sbin, wharfctl and wharf-bench in bin, the packaged config naming the
service's data directory, the systemd unit (Type=notify, its own user,
reload by SIGHUP, hardened), and man pages that groff and man read without
a warning and that name every option the programs' --help names."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from installtest import make_env, run, unit_settings
from wharftest import main

BUILDDIR = os.environ.get("WHARF_BUILDDIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")


def makevar(name):
    """A variable of the build's Makefile, ${prefix} and all expanded."""
    r = run(["make", "-s", "-C", BUILDDIR, "--no-print-directory", "-f", "Makefile", "-f", "-",
             "print-var"], input="print-var:\n\t@echo $(%s)\n" % name, env=make_env())
    return r.stdout.strip()


# (program's --help command, man page): every --option in the one is in the other.
PAGES = [
    (["sbindir", "wharfd", "--help"], "man8/wharfd.8"),
    (["bindir", "wharfctl", "user", "--help"], "man1/wharfctl.1"),
    (["bindir", "wharfctl", "--peer", "repl://127.0.0.1:1", "--help"], "man1/wharfctl.1"),
    (["bindir", "wharf-bench", "--help"], "man1/wharf-bench.1"),
    (["bindir", "wharf-bench", "--drill", "--help"], "man1/wharf-bench.1"),
]


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dest = tempfile.mkdtemp(prefix="wharf-install-")
        r = run(["make", "-s", "-C", BUILDDIR, "install", "DESTDIR=" + cls.dest], env=make_env())
        if r.returncode != 0:
            raise AssertionError("make install failed:\n" + r.stdout)
        cls.dirs = {v: makevar(v) for v in ("sbindir", "bindir", "sysconfdir", "localstatedir",
                                             "mandir", "systemdsystemunitdir")}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest, ignore_errors=True)

    def path(self, var, *rest):
        return os.path.join(self.dest + self.dirs[var], *rest)

    def test_programs(self):
        for var, name in (("sbindir", "wharfd"), ("bindir", "wharfctl"), ("bindir", "wharf-bench")):
            p = self.path(var, name)
            self.assertTrue(os.access(p, os.X_OK), p)
        self.assertFalse(os.path.exists(self.path("bindir", "wharfd")), "wharfd is in sbin only")
        r = run([self.path("sbindir", "wharfd"), "--version"])
        self.assertRegex(r.stdout, r"^wharfd \d+\.\d+\.\d+\n$")

    def test_config(self):
        conf = self.path("sysconfdir", "wharf", "wharf.conf")
        with open(conf) as f:
            text = f.read()
        self.assertIn("\ndata_dir = %s/lib/wharf\n" % self.dirs["localstatedir"], text)
        self.assertNotIn("@", text.replace("%u:", ""), "every @dir@ is filled in")
        self.assertNotRegex(text, r"(?m)^log_file", "logs go to stderr, to the journal")
        r = run([self.path("sbindir", "wharfd"), "-c", conf, "--check-config"])
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("configuration ok", r.stdout)
        self.assertTrue(os.path.isdir(self.dest + self.dirs["localstatedir"] + "/lib/wharf"))

    def test_systemd_unit(self):
        unit = unit_settings(self.path("systemdsystemunitdir", "wharf.service"))
        conf = self.dirs["sysconfdir"] + "/wharf/wharf.conf"
        self.assertEqual(unit["Type"], ["notify"])
        self.assertEqual(unit["User"], ["wharf"])
        self.assertEqual(unit["ExecStart"], ["%s/wharfd -c %s" % (self.dirs["sbindir"], conf)])
        self.assertEqual(unit["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        self.assertEqual(unit["NoNewPrivileges"], ["yes"])
        self.assertEqual(unit["ProtectSystem"], ["strict"])
        self.assertEqual(unit["PrivateTmp"], ["yes"])
        self.assertEqual(unit["ReadWritePaths"], [self.dirs["localstatedir"] + "/lib/wharf"])
        self.assertRegex(unit["LimitNOFILE"][0], r"^\d{5,}$")
        self.assertIn("AF_UNIX", unit["RestrictAddressFamilies"][0], "NOTIFY_SOCKET is AF_UNIX")

    def test_groff_and_man_warn_of_nothing(self):
        for _, page in PAGES:
            p = self.path("mandir", page)
            r = run(["groff", "-ww", "-z", "-man", p])
            self.assertEqual((r.returncode, r.stdout), (0, ""), p)
            # The page goes to stdout, the warnings to stderr.
            r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", p], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=60,
                               env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8"))
            self.assertEqual((r.returncode, r.stderr), (0, ""), p)
            self.assertIn("SYNOPSIS", r.stdout)

    def test_every_option_documented(self):
        for (var, prog, *args), page in PAGES:
            r = run([self.path(var, prog)] + args)
            options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", r.stdout))
            self.assertGreater(len(options), 0, (prog, args))
            with open(self.path("mandir", page)) as f:
                text = f.read().replace("\\-", "-")
            missing = sorted(o for o in options if not re.search(re.escape(o) + r"(?![\w-])", text))
            self.assertEqual(missing, [], "%s %s: options not in %s" % (prog, args, page))


if __name__ == "__main__":
    main()
