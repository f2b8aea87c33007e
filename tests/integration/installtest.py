"""Helpers of the tests of what is installed (test_install.py,
test_docker_tree.py, test_package.py)."""
import os
import subprocess


def run(cmd, timeout=120, **kw):
    """cmd's result, stdout and stderr together as text in .stdout."""
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, **kw)


def make_env():
    """The environment for a make of our own: under `make check` the outer
    make's jobserver must not reach it."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def unit_settings(path):
    """A systemd unit's [Service] settings as {key: [values]} (keys may repeat)."""
    keys, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line
            elif line and not line.startswith("#") and section == "[Service]":
                k, v = line.split("=", 1)
                keys.setdefault(k, []).append(v)
    return keys
