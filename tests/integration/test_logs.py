#!/usr/bin/env python3
"""The log: log_format = json (one JSON object a line) and text, each line
about a connection carrying the id /api/v1/connections shows, for a
session of stomp.py, paho-mqtt and qpid-proton; and rotation on SIGHUP
(rename the file, HUP, and the broker writes a new one)."""
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import unittest

import paho.mqtt.client as mqtt
import stomp
from proton import Message
from proton.utils import BlockingConnection

from admintest import ADMIN_CONFIG, Admin
from wharftest import WHARFD, Broker, main, wait_until

LISTENERS = ["--listen", "stomp://127.0.0.1:0", "--listen", "mqtt://127.0.0.1:0",
             "--listen", "amqp://127.0.0.1:0"]


# Logged at debug level ("connected as"): quotes, a backslash and UTF-8
# must come out as one JSON line.
CLIENT_ID = 'logs "test" \\ \u00e9'


def json_lines(broker):
    """Every line of the broker's output, each parsed (fails on one that is
    not a JSON object)."""
    out = []
    for line in broker.output().splitlines():
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        out.append(obj)
    return out


def listening(broker, text_lines):
    """{"stomp": port, ..., "admin": port} once every listener is up."""
    rx = re.compile(r"listening (\S+) \S+:(\d+)$")
    ports = {}

    def up():
        msgs = ([o["msg"] for o in json_lines(broker)] if not text_lines
                else broker.output().splitlines())
        for m in msgs:
            hit = rx.search(m)
            if hit:
                ports[hit.group(1)] = int(hit.group(2))
        return len(ports) == 4
    wait_until(up, what="four listeners")
    return ports


class Sessions:
    """One session of each protocol, by real clients; records each one's
    connection id from the admin API (matched on the client's address)."""

    def __init__(self, ports):
        self.api = Admin(ports["admin"])
        self.ids = {}

        st = stomp.Connection12([("127.0.0.1", ports["stomp"])])
        st.connect(wait=True)
        self.ids["stomp"] = self.conn_id(st.transport.socket)
        st.send("/queue/logs", "hello")
        st.disconnect()

        mq = mqtt.Client(client_id=CLIENT_ID)
        mq.connect("127.0.0.1", ports["mqtt"])
        mq.loop_start()
        wait_until(mq.is_connected, what="mqtt connected")
        self.ids["mqtt"] = self.conn_id(mq.socket())
        mq.publish("logs/t", b"x", qos=1).wait_for_publish(10)
        mq.disconnect()
        mq.loop_stop()

        am = BlockingConnection("amqp://127.0.0.1:%d" % ports["amqp"], timeout=10)
        s = am.create_sender("/queue/logs")
        s.send(Message(body="x"))
        self.ids["amqp"] = self.conn_id_by_proto("amqp")
        am.close()

    def conn_id(self, sock):
        local = "%s:%d" % sock.getsockname()[:2]
        got = [c for c in self.api.ok("GET", "/api/v1/connections") if c["remote"] == local]
        assert len(got) == 1, got
        return got[0]["id"]

    def conn_id_by_proto(self, proto):
        got = [c for c in self.api.ok("GET", "/api/v1/connections")
               if c.get("protocol") == proto]
        assert len(got) == 1, got
        return got[0]["id"]


def broker_after_sessions(config, text_lines):
    """A broker (all three protocols and the admin API) that has served one
    session of each protocol; returns (broker, {protocol: connection id})."""
    b = Broker(protocols=(), args=LISTENERS, config="log_level = debug\n" + config + ADMIN_CONFIG)
    try:
        return b, Sessions(listening(b, text_lines)).ids
    except BaseException:
        b.cleanup()
        raise


class JsonLog(unittest.TestCase):

    def test_every_line_parses_and_carries_the_connection_id(self):
        b, ids = broker_after_sessions("log_format = json\n", text_lines=False)
        with b:
            for proto, cid in ids.items():
                wait_until(lambda: any(o.get("conn") == cid and o["msg"] == "closed"
                                       for o in json_lines(b)),
                           what="%s conn %d closed" % (proto, cid))
                mine = [o for o in json_lines(b) if o.get("conn") == cid]
                self.assertTrue(any(o["msg"].startswith("opened (%s" % proto) for o in mine),
                                mine)
                for o in mine:
                    self.assertLessEqual({"time", "level", "msg", "conn", "remote"}, set(o))
                    self.assertRegex(o["remote"], r"^127\.0\.0\.1:\d+$")
            self.assertTrue(any(("connected as '%s'" % CLIENT_ID) in o["msg"]
                                for o in json_lines(b) if o.get("conn") == ids["mqtt"]))
            for o in json_lines(b):
                self.assertIn(o["level"], ("error", "warn", "info", "debug"))
                self.assertRegex(o["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_bad_format_refused(self):
        with tempfile.TemporaryDirectory(prefix="wharf-test-") as d:
            conf = os.path.join(d, "wharf.conf")
            with open(conf, "w") as f:
                f.write("log_format = xml\n")
            r = subprocess.run([WHARFD, "-c", conf, "--data-dir", os.path.join(d, "data")],
                               capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"wharf\.conf:1: .*log_format: 'xml' is not text or json")


class TextLog(unittest.TestCase):

    def test_lines_carry_conn(self):
        b, ids = broker_after_sessions("", text_lines=True)
        with b:
            for proto, cid in ids.items():
                b.wait_for_log(r" debug conn=%d 127\.0\.0\.1:\d+: closed$" % cid)
                b.wait_for_log(r" debug conn=%d 127\.0\.0\.1:\d+: opened \(%s" % (cid, proto))


    def test_a_clients_control_bytes_are_escaped(self):
        """A request line with a terminal escape and a carriage return, as
        the admin log quotes it: neither reaches the log as it is."""
        b, _ = broker_after_sessions("", text_lines=True)
        with b:
            port = listening(b, True)["admin"]
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"POST /api/v1/queues/x\x1b[31mred\rFAKE\xff HTTP/1.1\r\n"
                          b"Host: 127.0.0.1\r\nContent-Length: 0\r\n\r\n")
                s.recv(4096)
            b.wait_for_log(r"admin: 127\.0\.0\.1:\d+ POST /api/v1/queues/x\\x1b\[31mred"
                           r"\\x0dFAKE\\xff$")
            with open(b.log_path, "rb") as f:
                raw = f.read()
            self.assertNotIn(b"\x1b", raw)
            self.assertNotIn(b"\r", raw)


class Rotation(unittest.TestCase):

    def test_sighup_reopens_the_renamed_file(self):
        with tempfile.TemporaryDirectory(prefix="wharf-test-") as d:
            path = os.path.join(d, "wharfd-file.log")
            with Broker(protocols=(), args=["--listen", "stomp://127.0.0.1:0"],
                        config="log_file = %s\n" % path) as b:
                wait_until(lambda: os.path.exists(path) and "listening stomp" in open(path).read(),
                           what="the log file")
                os.rename(path, path + ".1")
                b.proc.send_signal(signal.SIGHUP)
                wait_until(lambda: os.path.exists(path) and "log file reopened" in open(path).read(),
                           what="a new log file after SIGHUP")
                # The broker goes on writing the new file, not the renamed one.
                before = open(path + ".1").read()
                b.proc.send_signal(signal.SIGHUP)
                wait_until(lambda: open(path).read().count("log file reopened") == 2,
                           what="the second reopen in the new file")
                self.assertEqual(open(path + ".1").read(), before)
                self.assertIn("listening stomp", before)


if __name__ == "__main__":
    main()
