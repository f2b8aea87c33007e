"""What the bench scripts share: a wharfd of their own on free 127.0.0.1
ports in a temporary directory, and the broker's CPU over a wharf-bench run."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")
LISTEN_RE = re.compile(r"listening (\S+) 127\.0\.0\.1:(\d+)")


def cpu_seconds(pid):
    """The process's CPU, all threads, user + system, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


class Wharfd:
    """wharfd -c DIR/wharf.conf (config) --listen PROTO://127.0.0.1:0 for
    each of protocols; waits for `listening` lines (as many as listeners,
    or `listeners` when the config adds some) and keeps their ports in
    self.ports by protocol name. preexec runs in the child before exec."""

    def __init__(self, binary, protocols, config="", tmp="/var/tmp", prefix="wharf-bench-",
                 listeners=None, preexec=None):
        self.dir = tempfile.mkdtemp(prefix=prefix, dir=tmp)
        self.log = os.path.join(self.dir, "wharfd.log")
        conf = os.path.join(self.dir, "wharf.conf")
        with open(conf, "w") as f:
            f.write(config)
        cmd = [binary, "-c", conf, "--data-dir", os.path.join(self.dir, "data")]
        for p in protocols:
            cmd += ["--listen", "%s://127.0.0.1:0" % p]
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         preexec_fn=preexec)
        self.ports = {}
        want = len(protocols) if listeners is None else listeners
        deadline = time.monotonic() + 20
        while len(self.ports) < want:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("wharfd did not start:\n" + self.log_text())
            for m in LISTEN_RE.finditer(self.log_text()):
                self.ports[m.group(1)] = int(m.group(2))
            time.sleep(0.02)

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def bench_cpu(bench, broker, count, args):
    """Runs wharf-bench for count messages with args against broker; the
    broker's CPU seconds per 100,000 messages over the run."""
    before = cpu_seconds(broker.proc.pid)
    r = subprocess.run([bench, "--count", str(count), "--quiet", "--json"] + args,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    used = cpu_seconds(broker.proc.pid) - before
    if r.returncode != 0:
        sys.exit("wharf-bench %s failed (%d):\n%s%s" % (" ".join(args), r.returncode, r.stdout,
                                                          r.stderr))
    return used * 100000 / count
