#!/usr/bin/env python3
"""Builds test_mqtt_libmosquitto.c (a libmosquitto client) and runs it
against a wharfd of our own: 100 QoS 1 messages published and received in
order. Skipped when there is no C compiler or no mosquitto.h."""
import os
import shutil
import subprocess
import tempfile
import unittest

from mqtttest import MqttTestCase
from wharftest import main

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "test_mqtt_libmosquitto.c")


def build():
    """Path of the built client, or (None, reason)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None, "no C compiler"
    tmp = tempfile.mkdtemp(prefix="wharf-libmosq-")
    exe = os.path.join(tmp, "test_mqtt_libmosquitto")
    r = subprocess.run([cc, "-o", exe, SOURCE, "-lmosquitto"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    if r.returncode != 0:
        out = r.stdout.decode("utf-8", "replace")
        if "mosquitto.h" in out or "lmosquitto" in out:
            shutil.rmtree(tmp, ignore_errors=True)
            return None, "libmosquitto development files not installed"
        raise AssertionError("building the libmosquitto client failed:\n" + out)
    return exe, tmp


class LibmosquittoTest(MqttTestCase):

    @classmethod
    def setUpClass(cls):
        cls.exe, cls.tmp = build()
        if cls.exe is None:
            raise unittest.SkipTest(cls.tmp)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_100_qos1_in_order(self):
        r = subprocess.run([self.exe, str(self.port), self.topic()], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 0, "libmosquitto client failed:\n" + out)
        self.assertIn("100 received in order", out)


if __name__ == "__main__":
    main()
