#!/usr/bin/env python3
"""TLS listeners: MQTT and STOMP over TLS with real clients, client
certificates, refused handshakes, and certificate reload on SIGHUP.

Certificates are made here with the openssl command: a CA, a server
certificate, a client certificate, an expired client certificate, and a
second CA that signed nothing the broker trusts."""
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt
import stomp

from wharftest import Broker, main, raw_exchange, wait_until

TIMEOUT = 20


def run(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_ca(d, name):
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
        "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + name, cwd=d)


def make_cert(d, name, ca, cn, san=None, expired=False):
    """A key and a certificate signed by `ca`; `expired` dates it in 2020."""
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
        "-out", name + ".csr", "-subj", "/CN=%s/O=Wharf Tests" % cn, cwd=d)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % (san or "DNS:localhost,IP:127.0.0.1"))
    if not expired:
        run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey",
            ca + ".key", "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", ext,
            cwd=d)
        return
    # `openssl x509` cannot backdate; `openssl ca` can, with a minimal setup.
    db = os.path.join(d, "ca-db")
    os.makedirs(os.path.join(db, "new"), exist_ok=True)
    open(os.path.join(db, "index.txt"), "w").close()
    with open(os.path.join(db, "serial"), "w") as f:
        f.write("1000\n")
    conf = os.path.join(d, "ca.cnf")
    with open(conf, "w") as f:
        f.write("[ca]\ndefault_ca=d\n[d]\ndir=%s\ndatabase=$dir/index.txt\nnew_certs_dir=$dir/new\n"
                "serial=$dir/serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n"
                "[p]\ncommonName=supplied\norganizationName=optional\n" % db)
    run("openssl", "ca", "-batch", "-config", conf, "-cert", ca + ".crt", "-keyfile", ca + ".key",
        "-in", name + ".csr", "-out", name + ".crt", "-startdate", "20200101000000Z",
        "-enddate", "20200102000000Z", "-extfile", ext, cwd=d)


class Certs:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wharf-tls-")
        make_ca(self.dir, "ca")
        make_ca(self.dir, "otherca")
        make_cert(self.dir, "server", "ca", "localhost")
        make_cert(self.dir, "server2", "ca", "reloaded.localhost")
        make_cert(self.dir, "client", "ca", "device-17")
        make_cert(self.dir, "stranger", "otherca", "stranger")
        make_cert(self.dir, "expired", "ca", "old-device", expired=True)

    def path(self, name):
        return os.path.join(self.dir, name)


CERTS = None


def certs():
    global CERTS
    if CERTS is None:
        CERTS = Certs()
    return CERTS


def client_context(ca="ca.crt", cert=None, key=None, max_version=None):
    ctx = ssl.create_default_context(cafile=certs().path(ca))
    if cert:
        ctx.load_cert_chain(certs().path(cert), certs().path(key))
    if max_version:
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = max_version
    return ctx


def tls_handshake(port, **kw):
    """Returns (ok, error text) of a handshake with a Python client."""
    ctx = client_context(**kw)
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            # TLS 1.3 reports a refused client certificate only on the first read.
            s.settimeout(2)
            try:
                data = s.recv(1)
                if data == b"":
                    return False, "closed after the handshake"
            except socket.timeout:
                pass
            return True, s.getpeercert()
    except (ssl.SSLError, ConnectionError, OSError) as e:
        return False, str(e)


class PahoClient:
    def __init__(self, port, ctx, client_id):
        self.got = []
        self.cond = threading.Condition()
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311)
        self.c.tls_set_context(ctx)
        self.c.on_message = self._on_message
        self.c.connect("localhost", port)
        self.c.loop_start()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.got.append((msg.topic, msg.payload))
            self.cond.notify_all()

    def wait(self, n):
        with self.cond:
            self.cond.wait_for(lambda: len(self.got) >= n, TIMEOUT)
        return list(self.got)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        c = certs()
        cls.broker = Broker(
            protocols=("mqtts", "stomps", "mqtt"),
            args=["--tls-cert", c.path("server.crt"), "--tls-key", c.path("server.key")])

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.broker.stop()
            assert rc == 0, "wharfd exited with %d:\n%s" % (rc, cls.broker.output())
        finally:
            cls.broker.cleanup()

    def test_mqtt_over_tls_with_paho(self):
        port = self.broker.ports["mqtts"]
        sub = PahoClient(port, client_context(), "tls-sub")
        try:
            sub.c.subscribe("tls/#", qos=1)
            time.sleep(0.2)
            pub = PahoClient(port, client_context(), "tls-pub")
            for i in range(20):
                pub.c.publish("tls/t", b"secret %d" % i, qos=1).wait_for_publish(TIMEOUT)
            got = sub.wait(20)
            self.assertEqual([p for _, p in got], [b"secret %d" % i for i in range(20)])
            pub.close()
        finally:
            sub.close()

    def test_mosquitto_clients_over_tls(self):
        port = self.broker.ports["mqtts"]
        ca = certs().path("ca.crt")
        sub = subprocess.Popen(["mosquitto_sub", "-h", "localhost", "-p", str(port), "--cafile", ca,
                                "-t", "cli/tls", "-C", "1", "-W", "10"], stdout=subprocess.PIPE)
        time.sleep(0.5)
        subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", str(port), "--cafile", ca,
                        "-t", "cli/tls", "-m", "via mosquitto", "-q", "1"], check=True, timeout=10)
        out, _ = sub.communicate(timeout=15)
        self.assertEqual(out.strip(), b"via mosquitto")

    def test_stomp_over_tls_and_cross_to_plain_mqtt(self):
        port = self.broker.ports["stomps"]
        received = []
        cond = threading.Condition()

        class L(stomp.ConnectionListener):
            def on_message(self, frame):
                with cond:
                    received.append(frame.body)
                    cond.notify_all()

        conn = stomp.Connection12([("localhost", port)], heartbeats=(0, 0))
        conn.set_ssl(for_hosts=[("localhost", port)], ca_certs=certs().path("ca.crt"))
        conn.set_listener("", L())
        conn.connect(wait=True)
        conn.subscribe("/topic/mixed.t", id="1")
        time.sleep(0.2)
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.broker.ports["mqtt"]),
                        "-t", "mixed/t", "-m", "plain to tls", "-q", "1"], check=True, timeout=10)
        with cond:
            cond.wait_for(lambda: received, TIMEOUT)
        self.assertEqual(received, ["plain to tls"])
        conn.disconnect()

    def test_wrong_ca_is_refused_by_the_client(self):
        ok, err = tls_handshake(self.broker.ports["mqtts"], ca="otherca.crt")
        self.assertFalse(ok)
        self.assertIn("certificate verify failed", err)

    def test_tls_1_1_refused(self):
        out = subprocess.run(["openssl", "s_client", "-connect",
                              "127.0.0.1:%d" % self.broker.ports["mqtts"], "-tls1_1"],
                             input=b"", capture_output=True, timeout=10)
        text = (out.stdout + out.stderr).decode(errors="replace")
        self.assertIn("alert protocol version", text)

    def test_plain_client_on_tls_port_and_tls_client_on_plain_port(self):
        out, closed = raw_exchange(self.broker.ports["mqtts"],
                                   b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00", timeout=5)
        self.assertTrue(closed, "a plain client on a TLS port is closed")
        self.assertNotIn(b"\x20\x02", out[:2], "no CONNACK in the clear")
        ok, _ = tls_handshake(self.broker.ports["mqtt"])
        self.assertFalse(ok, "a TLS client on a plain MQTT port fails")
        self.assertTrue(self.broker.alive())
        ok, _ = tls_handshake(self.broker.ports["mqtts"])
        self.assertTrue(ok, "the TLS port still serves")


class MutualTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        c = certs()
        cls.broker = Broker(
            protocols=("mqtts",), args=["--log-level", "debug"],
            config="tls_cert = %s\ntls_key = %s\ntls_ca = %s\ntls_client_cert = required\n" % (
                c.path("server.crt"), c.path("server.key"), c.path("ca.crt")))

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.broker.stop()
            assert rc == 0, "wharfd exited with %d:\n%s" % (rc, cls.broker.output())
        finally:
            cls.broker.cleanup()

    def test_good_client_certificate_becomes_the_principal(self):
        port = self.broker.ports["mqtts"]
        ctx = client_context(cert="client.crt", key="client.key")
        c = PahoClient(port, ctx, "mtls-ok")
        try:
            c.c.subscribe("m/t", qos=1)
            time.sleep(0.2)
            c.c.publish("m/t", b"hello", qos=1).wait_for_publish(TIMEOUT)
            self.assertEqual(c.wait(1), [("m/t", b"hello")])
            self.broker.wait_for_log(r"TLS TLSv1\.\d established, client O=Wharf Tests,CN=device-17")
        finally:
            c.close()

    def test_missing_client_certificate_refused(self):
        ok, err = tls_handshake(self.broker.ports["mqtts"])
        self.assertFalse(ok, err)

    def test_certificate_from_another_ca_refused(self):
        ok, err = tls_handshake(self.broker.ports["mqtts"], cert="stranger.crt", key="stranger.key")
        self.assertFalse(ok, err)

    def test_expired_client_certificate_refused(self):
        ok, err = tls_handshake(self.broker.ports["mqtts"], cert="expired.crt", key="expired.key")
        self.assertFalse(ok, err)
        self.broker.wait_for_log(r"TLS error: .*certificate")


class HandshakeTimeoutTest(unittest.TestCase):
    """handshake_timeout runs from accept: a TLS handshake that never starts,
    and a STOMP CONNECT that never follows one, both count."""

    def test_tls_and_stomp_handshakes_are_bounded(self):
        c = certs()
        args = ["--tls-cert", c.path("server.crt"), "--tls-key", c.path("server.key")]
        with Broker(protocols=("stomps",), args=args, config="handshake_timeout = 1s\n") as b:
            port = b.ports["stomps"]
            silent = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            quiet = client_context().wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT),
                server_hostname="localhost")
            good = client_context().wrap_socket(
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT),
                server_hostname="localhost")
            good.sendall(b"CONNECT\naccept-version:1.2\nhost:/\n\n\0")
            self.assertTrue(good.recv(4096).startswith(b"CONNECTED"))
            start = time.monotonic()
            for s in (silent, quiet):
                s.settimeout(8)
                try:
                    self.assertEqual(s.recv(4096), b"")
                except (ConnectionResetError, ssl.SSLError):
                    pass
                self.assertLess(time.monotonic() - start, 5)
                s.close()
            # Past the timeout, the client that did its handshake is served.
            good.sendall(b"SEND\ndestination:/queue/t\nreceipt:r\n\nx\0")
            self.assertIn(b"receipt-id:r", good.recv(4096))
            good.close()
            self.assertEqual(b.stop(), 0, b.output())


class ReloadTest(unittest.TestCase):
    def test_sighup_reloads_the_certificate_and_keeps_connections(self):
        c = certs()
        d = tempfile.mkdtemp(prefix="wharf-tls-reload-")
        cert, key = os.path.join(d, "cur.crt"), os.path.join(d, "cur.key")
        for src, dst in (("server.crt", cert), ("server.key", key)):
            with open(c.path(src), "rb") as f, open(dst, "wb") as g:
                g.write(f.read())
        with Broker(protocols=("mqtts",), args=["--tls-cert", cert, "--tls-key", key]) as b:
            port = b.ports["mqtts"]
            ok, peer = tls_handshake(port)
            self.assertTrue(ok, peer)
            self.assertIn((("commonName", "localhost"),), peer["subject"])
            early = PahoClient(port, client_context(), "before-reload")
            early.c.subscribe("r/t", qos=1)
            time.sleep(0.2)
            for src, dst in (("server2.crt", cert), ("server2.key", key)):
                with open(c.path(src), "rb") as f, open(dst, "wb") as g:
                    g.write(f.read())
            b.proc.send_signal(signal.SIGHUP)
            b.wait_for_log("TLS certificate reloaded")
            ok, peer = tls_handshake(port)
            self.assertTrue(ok, peer)
            self.assertIn((("commonName", "reloaded.localhost"),), peer["subject"])
            late = PahoClient(port, client_context(), "after-reload")
            late.c.publish("r/t", b"still here", qos=1).wait_for_publish(TIMEOUT)
            self.assertEqual(early.wait(1), [("r/t", b"still here")])
            early.close()
            late.close()
            self.assertEqual(b.stop(), 0, b.output())


if __name__ == "__main__":
    main()
