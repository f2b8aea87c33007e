#!/usr/bin/env python3
"""Which browser pages may open a WebSocket: by default only the listener's
own origin (same host and port as the Host header), a listener's
allowed_origins list, `*` for any; requests without Origin (programs, not
browsers) always. Raw upgrade requests, then MQTT.js in headless Chromium
on pages served from a listed and an unlisted origin."""
import os
import queue
import re
import shutil
import tempfile
import threading
import unittest

from test_browser import CHROMIUM, MQTT_JS, PageServer, chromium
from wharftest import Broker, main, raw_exchange
from wstest import upgrade_request

TIMEOUT = 30


def ws_config(extra=""):
    return "[listener w]\nurl = ws://127.0.0.1:0\n" + extra


def start(config):
    """A broker with the [listener w] of config; (broker, its port)."""
    b = Broker(protocols=(), config=config)
    line = b.wait_for_log(r"listening ws 127\.0\.0\.1:\d+$")
    return b, int(re.search(r":(\d+)$", line).group(1))


def status(port, origin=None, host=None):
    """The HTTP status the broker answers an upgrade request with."""
    host = host or "127.0.0.1:%d" % port
    extra = "Origin: %s\r\n" % origin if origin is not None else ""
    # A refusal closes at once; an upgrade stays open, so its wait is short.
    out, _ = raw_exchange(port, upgrade_request(extra=extra, host=host), timeout=1)
    return int(out.split(b" ")[1])


class RawOriginTest(unittest.TestCase):
    def test_default_admits_only_the_listeners_own_origin(self):
        b, port = start(ws_config())
        with b:
            self.assertEqual(status(port), 101)
            self.assertEqual(status(port, "http://127.0.0.1:%d" % port), 101)
            # paho-mqtt's websocket transport sends https:// over plain ws.
            self.assertEqual(status(port, "https://127.0.0.1:%d" % port), 101)
            self.assertEqual(status(port, "http://LOCALHOST", host="localhost:80"), 101)
            self.assertEqual(status(port, "http://localhost", host="localhost"), 101)
            self.assertEqual(status(port, "https://localhost", host="localhost:443"), 101)
            for refused in ("http://evil.example", "http://127.0.0.1:%d" % (port + 1),
                            "http://127.0.0.1", "null", "http://127.0.0.1:%d/x" % port,
                            "http://127.0.0.1.evil.example:%d" % port, ""):
                self.assertEqual(status(port, refused), 403, refused)
            # Seven refusals, one line: the rest wait for the next one.
            lines = [l for l in b.output().splitlines() if "not allowed" in l]
            self.assertEqual(len(lines), 1, b.output())
            self.assertIn("origin http://evil.example not allowed", lines[0])
            self.assertEqual(b.stop(), 0, b.output())

    def test_listed_origins_replace_the_default(self):
        b, port = start(ws_config("allowed_origins = https://app.example http://127.0.0.1:8080\n"))
        with b:
            self.assertEqual(status(port), 101)
            self.assertEqual(status(port, "https://app.example"), 101)
            self.assertEqual(status(port, "http://127.0.0.1:8080"), 101)
            self.assertEqual(status(port, "http://app.example"), 403)
            self.assertEqual(status(port, "https://evil.example"), 403)
            self.assertEqual(status(port, "http://127.0.0.1:%d" % port), 403)
            self.assertEqual(b.stop(), 0, b.output())

    def test_star_admits_every_origin(self):
        b, port = start(ws_config("allowed_origins = *\n"))
        with b:
            for origin in (None, "https://evil.example", "null", "http://127.0.0.1:%d" % port):
                self.assertEqual(status(port, origin), 101, origin)
            self.assertEqual(b.stop(), 0, b.output())

    def test_listener_list_wins_over_the_global_one(self):
        b, port = start("ws_allowed_origins = https://a.example\n" +
                        ws_config("allowed_origins = https://b.example\n"))
        with b:
            self.assertEqual(status(port, "https://b.example"), 101)
            self.assertEqual(status(port, "https://a.example"), 403)
            self.assertEqual(b.stop(), 0, b.output())

    def test_allowed_origins_on_a_listener_without_websocket_is_refused(self):
        with Broker(protocols=(), config="[listener m]\nurl = mqtt://127.0.0.1:0\nallowed_origins = *\n") as b:
            self.assertNotEqual(b.proc.wait(timeout=10), 0)
            self.assertIn("listener m: allowed_origins needs a ws:// or wss:// url", b.output())


@unittest.skipUnless(CHROMIUM and os.path.exists(MQTT_JS), "chromium and MQTT.js needed")
class BrowserOriginTest(unittest.TestCase):
    def open_page(self, server, ws_port):
        """Chromium on the page server's page, connecting to the broker."""
        profile = tempfile.mkdtemp(prefix="wharf-chromium-")
        self.addCleanup(shutil.rmtree, profile, ignore_errors=True)
        url = "http://127.0.0.1:%d/?broker=ws://127.0.0.1:%d&topic=origin/%%23" % (
            server.server_address[1], ws_port)
        chrome = chromium(url, profile)
        self.addCleanup(chrome.wait)
        self.addCleanup(chrome.kill)

    def serve(self):
        server = PageServer()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.shutdown)
        return server

    def test_a_listed_page_connects_an_unlisted_one_does_not(self):
        listed, unlisted = self.serve(), self.serve()
        b, port = start(ws_config("allowed_origins = http://127.0.0.1:%d\n" % listed.server_address[1]))
        with b:
            self.open_page(unlisted, port)
            path, body = unlisted.events.get(timeout=TIMEOUT)
            self.assertIn(path, ("/error", "/closed"), body)
            b.wait_for_log(r"origin http://127\.0\.0\.1:%d not allowed" % unlisted.server_address[1])
            self.open_page(listed, port)
            path, body = listed.events.get(timeout=TIMEOUT)
            self.assertEqual((path, body), ("/ready", "ok"))
            # The refused page never got in: it reported failures only.
            later = []
            while True:
                try:
                    later.append(unlisted.events.get(timeout=1)[0])
                except queue.Empty:
                    break
            self.assertTrue(set(later) <= {"/error", "/closed"}, later)
            self.assertEqual(b.stop(), 0, b.output())


if __name__ == "__main__":
    main()
