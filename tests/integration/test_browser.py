#!/usr/bin/env python3
"""A browser on the WebSocket listener: headless Chromium opens a page that
connects with MQTT.js over ws, subscribes, and shows a message that
mosquitto_pub sent over plain TCP. The page reports to the small HTTP server
that served it, and the test reads the result there."""
import http.server
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import unittest

from browsertest import CHROMIUM, chromium_command
from wharftest import Broker, main

HERE = os.path.dirname(os.path.abspath(__file__))
MQTT_JS = os.path.join(HERE, "node", "node_modules", "mqtt", "dist", "mqtt.min.js")
PAGE = os.path.join(HERE, "browser", "mqtt_page.html")
TIMEOUT = 30


def chromium(url, profile):
    """Headless Chromium on url, with its own profile directory."""
    return subprocess.Popen(chromium_command(url, profile), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


class PageServer(http.server.ThreadingHTTPServer):
    def __init__(self):
        self.events = queue.Queue()
        super().__init__(("127.0.0.1", 0), PageHandler)


class PageHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.path.split("?")[0]
        files = {"/": (PAGE, "text/html"), "/mqtt.min.js": (MQTT_JS, "application/javascript")}
        if path not in files:
            self.send_error(404)
            return
        name, ctype = files[path]
        with open(name, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.server.events.put((self.path, self.rfile.read(n).decode()))
        self.send_response(204)
        self.end_headers()


@unittest.skipUnless(CHROMIUM and os.path.exists(MQTT_JS), "chromium and MQTT.js needed")
class BrowserTest(unittest.TestCase):
    def test_mqtt_js_in_chromium_gets_a_message_from_mosquitto_pub(self):
        server = PageServer()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        # The page comes from another port than the broker's: another origin,
        # which the listener admits only when listed.
        origin = "ws_allowed_origins = http://127.0.0.1:%d\n" % server.server_address[1]
        with Broker(protocols=("ws", "mqtt"), config=origin) as b:
            profile = tempfile.mkdtemp(prefix="wharf-chromium-")
            url = "http://127.0.0.1:%d/?broker=ws://127.0.0.1:%d&topic=browser/%%23" % (
                server.server_address[1], b.ports["ws"])
            chrome = chromium(url, profile)
            try:
                path, body = server.events.get(timeout=TIMEOUT)
                self.assertEqual((path, body), ("/ready", "ok"))
                subprocess.run(["mosquitto_pub", "-p", str(b.ports["mqtt"]), "-t", "browser/news",
                                "-m", "hello, browser", "-q", "1"], check=True, timeout=10)
                path, body = server.events.get(timeout=TIMEOUT)
                self.assertEqual(path, "/result")
                self.assertEqual(json.loads(body), {"topic": "browser/news", "payload": "hello, browser"})
            finally:
                chrome.kill()
                chrome.wait()
                server.shutdown()
                shutil.rmtree(profile, ignore_errors=True)
            self.assertEqual(b.stop(), 0, b.output())


if __name__ == "__main__":
    main()
