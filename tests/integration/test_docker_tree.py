"""docker/ without a container runtime (none runs on the machines Wharf is
built and tested on: docker/README.md). The image's root tree is built as
docker/Dockerfile builds it (make install into a DESTDIR with prefix /usr,
docker/wharf.conf over /etc/wharf/wharf.conf) and checked: the runtime
stage's package list holds every shared library the installed programs
link (with their dependencies, or Debian 12 slim has it: the essential
packages), its
ENTRYPOINT, CMD and HEALTHCHECK name what is in the tree or the list, the
ports it EXPOSEs are those the configs listen on, and every config
docker/ ships, the compose file's pair included, passes --check-config."""
import os
import re
import shutil
import tempfile
import unittest

import yaml

from installtest import make_env, run
from wharftest import main

SRCDIR = os.environ.get("WHARF_SRCDIR") or os.path.join(os.path.dirname(__file__), "..", "..")
BUILDDIR = os.environ.get("WHARF_BUILDDIR") or os.path.join(SRCDIR, "build")
DOCKER = os.path.join(SRCDIR, "docker")
# The sanitizers' runtimes of an --enable-asan build: the image's build has none.
SANITIZER_LIBS = re.compile(r"^lib(asan|ubsan)\.so")


def dockerfile_stages():
    """[(base image, [instructions as (KEYWORD, text)])], continuation lines joined."""
    with open(os.path.join(DOCKER, "Dockerfile")) as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition(" ")
        if key == "FROM":
            stages.append((rest.split()[0], []))
        else:
            stages[-1][1].append((key, rest.strip()))
    return stages


def apt_packages(instructions):
    out = []
    for key, text in instructions:
        m = re.search(r"apt-get install -y --no-install-recommends (.*?)(?:&&|$)", text)
        if key == "RUN" and m:
            out += m.group(1).split()
    return out


def image_packages(listed):
    """What a Debian 12 image, slim included, holds once apt installed
    `listed`: those, the essential packages, and what they all depend on
    (as the packages installed here declare it)."""
    out = run(["dpkg-query", "-W", "-f", "${Package}\t${Essential}\t${Pre-Depends}, ${Depends}\n"]).stdout
    deps, todo = {}, []
    for line in out.splitlines():
        pkg, essential, rest = line.split("\t")
        deps[pkg] = [re.split(r"[ :(]", d.strip())[0] for d in re.split(r"[,|]", rest) if d.strip()]
        if essential == "yes":
            todo.append(pkg)
    todo += listed
    seen = set()
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo += deps.get(p, [])
    return seen


def listen_ports(conf):
    with open(conf) as f:
        return {int(p) for p in re.findall(r"(?m)^(?:url|listen) = \w+://[^:]+:(\d+)$", f.read())}


class DockerTree(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stages = dockerfile_stages()
        cls.root = tempfile.mkdtemp(prefix="wharf-image-")
        r = run(["make", "-s", "-C", BUILDDIR, "install", "DESTDIR=" + cls.root, "prefix=/usr",
                 "sysconfdir=/etc", "localstatedir=/var", "systemdsystemunitdir=/lib/systemd/system"],
                env=make_env())
        if r.returncode != 0:
            raise AssertionError("make install failed:\n" + r.stdout)
        shutil.copy(os.path.join(DOCKER, "wharf.conf"), cls.root + "/etc/wharf/wharf.conf")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def runtime(self):
        """The runtime stage's instructions by keyword (the last of each)."""
        return dict(self.stages[-1][1])

    def test_stages(self):
        self.assertEqual([s[0] for s in self.stages], ["debian:12", "debian:12-slim"])
        runtime = self.runtime()
        self.assertEqual(runtime["USER"], "wharf")
        self.assertEqual(runtime["VOLUME"], "/var/lib/wharf")
        self.assertIn("useradd --system", " ".join(v for k, v in self.stages[-1][1] if k == "RUN"))

    def test_runtime_packages_hold_every_library(self):
        listed = apt_packages(self.stages[-1][1])
        have = image_packages(listed)
        for prog in ("usr/sbin/wharfd", "usr/bin/wharfctl", "usr/bin/wharf-bench"):
            path = os.path.join(self.root, prog)
            # What the program links itself; the libraries' own needs come
            # with their packages' dependencies.
            needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]",
                                run(["readelf", "-d", path]).stdout)
            found = dict(re.findall(r"^\s*(\S+) => (/\S+)", run(["ldd", path]).stdout, re.M))
            for name in needed:
                if SANITIZER_LIBS.match(name):
                    continue
                path = found[name]
                owner = run(["dpkg", "-S", os.path.realpath(path)]).stdout
                if "no path found" in owner:
                    owner = run(["dpkg", "-S", path]).stdout
                pkg = owner.split(":")[0]
                self.assertIn(pkg, have, "%s needs %s from %s, not in the runtime stage's list %s"
                              " nor their dependencies" % (prog, name, pkg, listed))

    def test_entrypoint_cmd_healthcheck(self):
        runtime = self.runtime()
        entry = yaml.safe_load(runtime["ENTRYPOINT"])
        cmd = yaml.safe_load(runtime["CMD"])
        self.assertTrue(os.access(self.root + entry[0], os.X_OK), entry)
        r = run([self.root + entry[0]] + cmd[:-1] + [self.root + cmd[-1], "--check-config"])
        self.assertEqual(r.returncode, 0, r.stdout)
        health = runtime["HEALTHCHECK"]
        self.assertIn("CMD curl -fsS -o /dev/null http://127.0.0.1:8161/healthz", health)
        self.assertIn("curl", apt_packages(self.stages[-1][1]))
        self.assertIn(8161, listen_ports(self.root + "/etc/wharf/wharf.conf"))

    def test_exposed_ports(self):
        exposed = {int(p) for p in self.runtime()["EXPOSE"].split()}
        conf = listen_ports(self.root + "/etc/wharf/wharf.conf") - {8161}
        self.assertTrue(conf <= exposed, (conf, exposed))
        self.assertIn(61617, exposed, "the pair's replication link")

    def test_compose_pair(self):
        with open(os.path.join(DOCKER, "compose.yaml")) as f:
            compose = yaml.safe_load(f)
        services = compose["services"]
        self.assertEqual(set(services), {"etcd", "wharf-a", "wharf-b"})
        self.assertEqual(services["wharf-a"]["build"]["dockerfile"], "docker/Dockerfile")
        secret = tempfile.NamedTemporaryFile("w", suffix=".secret")
        secret.write("0123456789abcdef0123456789abcdef\n")
        secret.flush()
        self.addCleanup(secret.close)
        for name in ("wharf-a", "wharf-b"):
            svc = services[name]
            conf = [v.split(":")[0] for v in svc["volumes"] if v.split(":")[1] == "/etc/wharf/wharf.conf"]
            self.assertEqual(len(conf), 1, svc["volumes"])
            with open(os.path.join(DOCKER, conf[0])) as f:
                text = f.read()
            self.assertIn("arbiter = etcd://etcd:2379", text)
            other = "wharf-b" if name == "wharf-a" else "wharf-a"
            self.assertIn("peer = repl://%s:61617" % other, text)
            for p in svc["ports"]:
                self.assertTrue(p.startswith("127.0.0.1:"), "published on loopback only: " + p)
            local = os.path.join(self.root, "tmp-" + name + ".conf")
            with open(local, "w") as f:
                f.write(text.replace("/run/secrets/pair_secret", secret.name))
            r = run([self.root + "/usr/sbin/wharfd", "-c", local, "--check-config"])
            self.assertEqual(r.returncode, 0, r.stdout)


if __name__ == "__main__":
    main()
