#!/usr/bin/env python3
"""The web console (docs/console.md) served by the admin listener: its
files over plain HTTP (types, cache headers, 404 for anything not
embedded, no way out with ../, HTTP Basic when admin users are on), and
the console itself in headless Chromium driven through chromedriver: it
loads without a JavaScript error, shows a queue stomp.py filled with its
depth and messages and an alarm on it going to ALARM, sends from its form to a stomp.py consumer, purges a
queue, closes a paho client's connection, and renders something that is
not blank."""
import base64
import http.client
import io
import os
import shutil
import subprocess
import tempfile
import unittest
import uuid

from admintest import ADMIN_CONFIG, Admin, admin_port
from browsertest import CHROMEDRIVER, CHROMIUM, Browser
from mqtttest import Paho
from stomptest import StompTestCase, stomp_close, stomp_connect
from test_auth import add_user, start, stop
from test_ha_redirect import standby_config
from wharftest import Broker, BrokerTestCase, main, wait_until

try:
    from PIL import Image
except ImportError:
    Image = None

SRC = os.path.join(os.environ.get("WHARF_SRCDIR") or
                   os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."),
                   "src", "admin", "console")
TIMEOUT = 30
# The charts' "in" colour in console.js.
CHART_RGB = (0x1f, 0x77, 0xb4)


def source(name):
    with open(os.path.join(SRC, name), "rb") as f:
        return f.read()


def raw_get(port, path, method="GET", headers=None):
    """(status, headers, body) of one request sent as is: http.client
    leaves the path alone (no ../ folding, no redirects followed)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        c.close()


class ConsoleHttpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.broker = Broker(protocols=("stomp",), config=ADMIN_CONFIG)
        cls.port = admin_port(cls.broker)

    @classmethod
    def tearDownClass(cls):
        stop(cls.broker)

    def test_root_and_console_redirect_to_the_console(self):
        for path in ("/", "/console"):
            status, headers, _ = raw_get(self.port, path)
            self.assertEqual((status, headers["Location"]), (302, "/console/"), path)

    def test_files_are_served_as_they_are_in_the_source_tree(self):
        for path, name, ctype in (("/console/", "index.html", "text/html; charset=utf-8"),
                                  ("/console/index.html", "index.html", "text/html; charset=utf-8"),
                                  ("/console/console.js", "console.js",
                                   "text/javascript; charset=utf-8"),
                                  ("/console/console.css", "console.css",
                                   "text/css; charset=utf-8")):
            status, headers, body = raw_get(self.port, path)
            self.assertEqual(status, 200, path)
            self.assertEqual(body, source(name), path)
            self.assertEqual(headers["Content-Type"], ctype, path)
            self.assertEqual(headers["Cache-Control"], "no-cache", path)
            self.assertEqual(headers["X-Content-Type-Options"], "nosniff", path)
            self.assertIn("default-src 'self'", headers["Content-Security-Policy"])
            self.assertRegex(headers["ETag"], r'^"[0-9a-f]{16}"$')

    def test_revalidation_answers_304_without_a_body(self):
        _, headers, _ = raw_get(self.port, "/console/console.js")
        status, again, body = raw_get(self.port, "/console/console.js",
                                      headers={"If-None-Match": headers["ETag"]})
        self.assertEqual((status, body, again["ETag"]), (304, b"", headers["ETag"]))
        status, _, body = raw_get(self.port, "/console/console.js",
                                  headers={"If-None-Match": '"0000000000000000"'})
        self.assertEqual((status, body), (200, source("console.js")))

    def test_head_has_no_body(self):
        status, headers, body = raw_get(self.port, "/console/", method="HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["Content-Type"], "text/html; charset=utf-8")

    def test_unknown_paths_are_404(self):
        for path in ("/console/nope.js", "/console/index.htm", "/console/console.js/x",
                     "/consoles/", "/console.js", "/index.html", "/console/embed.sh"):
            status, _, _ = raw_get(self.port, path)
            self.assertEqual(status, 404, path)

    def test_no_way_out_of_the_embedded_files(self):
        for path in ("/console/../README.md", "/console/../../../../etc/passwd",
                     "/console/..%2f..%2f..%2fetc%2fpasswd", "/console/%2e%2e/README.md",
                     "/console/%2e%2e", "/console/..", "/console/./index.html",
                     "/console/..%5c..%5cREADME.md", "/console/../api/v1/broker"):
            status, _, body = raw_get(self.port, path)
            self.assertEqual(status, 404, path)
            self.assertNotIn(b"root:", body)
            self.assertNotIn(b"version", body)

    def test_changes_asked_by_another_sites_page_are_refused(self):
        api = Admin(self.port)
        api.ok("PUT", "/api/v1/queues/console.csrf", want=201)
        api.ok("POST", "/api/v1/queues/console.csrf/messages", {"body": "keep me"}, want=201)
        for origin in ("http://evil.example", "null", "http://127.0.0.1:%d.evil.example" % self.port,
                       "https://127.0.0.1:%d" % self.port):
            status, _, body = raw_get(self.port, "/api/v1/queues/console.csrf/purge", "POST",
                                      {"Origin": origin, "Content-Type": "text/plain"})
            self.assertEqual(status, 403, origin)
            self.assertIn(b"Origin", body)
        self.assertEqual(api.queue("console.csrf")["depth"], 1)
        status, _, _ = raw_get(self.port, "/api/v1/queues/console.csrf", "GET",
                               {"Origin": "http://evil.example"})
        self.assertEqual(status, 200, "reading is the browser's same-origin policy's to stop")
        status, _, _ = raw_get(self.port, "/api/v1/queues/console.csrf/purge", "POST",
                               {"Origin": "http://127.0.0.1:%d" % self.port})
        self.assertEqual(status, 200, "the console's own page")
        self.assertEqual(api.queue("console.csrf")["depth"], 0)

    def test_other_methods_are_refused(self):
        for method in ("POST", "PUT", "DELETE"):
            status, headers, _ = raw_get(self.port, "/console/", method=method)
            self.assertEqual((status, headers["Allow"]), (405, "GET, HEAD"), method)


class ConsoleAuthTest(unittest.TestCase):
    """With [auth] users_file the console asks for HTTP Basic as the API does."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="wharf-console-auth-")
        users = os.path.join(cls.dir, "users")
        add_user(users, "root", "root-pw", "--cost", "10")
        cls.broker = start("[auth]\nusers_file = %s\nfailure_delay = 100ms\n%s"
                           "[listener s]\nurl = stomp://127.0.0.1:0\n" % (users, ADMIN_CONFIG),
                           ("stomp",))
        cls.port = admin_port(cls.broker)

    @classmethod
    def tearDownClass(cls):
        stop(cls.broker)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_credentials_needed(self):
        def basic(user, pw):
            return {"Authorization": "Basic " + base64.b64encode(
                ("%s:%s" % (user, pw)).encode()).decode()}
        for path in ("/", "/console/", "/console/console.js", "/console/nope"):
            status, headers, body = raw_get(self.port, path)
            self.assertEqual(status, 401, path)
            self.assertIn("Basic", headers["WWW-Authenticate"])
            self.assertNotIn(b"<html", body)
            status, _, _ = raw_get(self.port, path, headers=basic("root", "wrong"))
            self.assertEqual(status, 401, path)
        status, _, body = raw_get(self.port, "/console/", headers=basic("root", "root-pw"))
        self.assertEqual((status, body), (200, source("index.html")))
        status, headers, _ = raw_get(self.port, "/", headers=basic("root", "root-pw"))
        self.assertEqual((status, headers["Location"]), (302, "/console/"))

    @unittest.skipUnless(CHROMIUM and CHROMEDRIVER, "chromium and chromium-driver needed")
    def test_logged_in_browser_uses_the_console(self):
        api = "http://127.0.0.1:%d/api/v1/queues/console.auth" % self.port
        subprocess.run(["curl", "-sf", "-u", "root:root-pw", "-X", "PUT", api], check=True,
                       timeout=TIMEOUT, stdout=subprocess.DEVNULL)
        subprocess.run(["curl", "-sf", "-u", "root:root-pw", "-d", '{"body": "x"}', api + "/messages"],
                       check=True, timeout=TIMEOUT, stdout=subprocess.DEVNULL)
        with Browser(timeout=TIMEOUT) as browser:
            browser.open("http://root:root-pw@127.0.0.1:%d/console/" % self.port)
            row = 'tr[data-queue="console.auth"]'
            browser.wait(lambda: browser.find_all(row + " td.depth") and
                         browser.text(row + " td.depth") == "1", what="the queue's depth")
            browser.click(row + ' button[data-action="purge"]')
            browser.accept_alert()
            browser.wait(lambda: browser.text("#status") == "purged 1 from console.auth",
                         what="the purge")
        self.broker.wait_for_log(r"admin: 127\.0\.0\.1:\d+ user root POST "
                                 r"/api/v1/queues/console\.auth/purge$")


@unittest.skipUnless(CHROMIUM and CHROMEDRIVER and Image,
                     "chromium, chromium-driver and python3-pil needed")
class ConsoleBrowserTest(StompTestCase):
    protocols = ("stomp", "mqtt")
    config = ADMIN_CONFIG + """
[alarm console-backlog]
metric = wharf_queue_messages{queue="console.alarm"}
comparison = >
threshold = 2
period = 1s
evaluation_periods = 1
"""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api = Admin(admin_port(cls.broker))
        cls.url = cls.api.base + "/console/"
        try:
            cls.browser = Browser(timeout=TIMEOUT)
        except BaseException:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.browser.open(self.url)
        self.browser.wait(lambda: self.browser.text("#updated"), what="the first poll")

    def queue(self, stem):
        return "console.%s.%s" % (stem, uuid.uuid4().hex[:6])

    def row(self, kind, name):
        return 'tr[data-%s="%s"]' % (kind, name)

    def wait_text(self, css, want, what=None):
        """Waits until css's text is want (the page polls every 2 s)."""
        got = []

        def check():
            got[:] = [self.browser.text(css)]
            return got[0] == want
        try:
            self.browser.wait(check, what=what or "%s to read %r" % (css, want))
        except AssertionError:
            raise AssertionError("%s reads %r, not %r" % (css, got and got[0], want)) from None

    def test_loads_without_javascript_errors(self):
        self.browser.log()  # what came before this page
        self.browser.open(self.url)
        self.browser.wait(lambda: self.browser.text("#updated"), what="the first poll")
        self.assertRegex(self.browser.text("#broker"), r"^wharfd \d+\.\d+\.\d+, active, up \d+ s$")
        self.assertEqual(self.browser.text("#pair"), "single node (no pair configured)")
        self.assertEqual(self.browser.text('tr[data-alarm="console-backlog"] td'),
                         "console-backlog")
        self.assertEqual(self.browser.text("#status"), "")
        # A single node answers 404 for /pair, and /alarms 404s until the
        # broker has alarms: Chromium logs those as failed loads, the page
        # shows them as above. Anything else is an error.
        errors = [e for e in self.browser.log() if e["level"] == "SEVERE" and not (
            e["source"] == "network" and "404" in e["message"] and
            ("/api/v1/pair" in e["message"] or "/api/v1/alarms" in e["message"]))]
        self.assertEqual(errors, [])

    def test_alarm_state_follows_the_queue(self):
        row = 'tr[data-alarm="console-backlog"]'
        self.assertNotEqual(self.browser.text(row + " td.state"), "ALARM")
        conn, lst = self.connect()
        self.send_all(conn, lst, "/queue/console.alarm", ["a1", "a2", "a3"])
        self.wait_text(row + " td.state", "ALARM")
        self.assertIn("> 2", self.browser.text(row))

    def test_queue_shows_its_depth_and_messages(self):
        name = self.queue("depth")
        bodies = ["first", "<img src=x onerror=alert(1)>", "third & last"]
        conn, lst = self.connect()
        self.send_all(conn, lst, "/queue/" + name, bodies)
        self.wait_text(self.row("queue", name) + " td.depth", "3")
        self.browser.click(self.row("queue", name) + ' button[data-action="browse"]')
        self.wait_text("#browse-name", name)
        self.browser.wait(lambda: len(self.browser.find_all("#browse-messages td.body")) == 3,
                          what="three browsed messages")
        shown = [self.browser.cmd("GET", "/element/%s/text" % e)
                 for e in self.browser.find_all("#browse-messages td.body")]
        self.assertEqual(shown, bodies)
        self.assertEqual(self.api.queue(name)["depth"], 3, "browsing took nothing")

    def test_message_sent_from_the_form_reaches_a_stomp_consumer(self):
        name = self.queue("send")
        conn, lst = self.connect()
        self.subscribe(conn, lst, "/queue/" + name)
        body = "from the console: ü <b>bold</b> & {\"json\": 1}"
        self.wait_text(self.row("queue", name) + " td.consumers", "1")
        self.browser.click(self.row("queue", name) + ' button[data-action="send"]')
        self.assertEqual(self.browser.cmd(
            "GET", "/element/%s/property/value" % self.browser.find("#send-name")), name)
        self.browser.type("#send-body", body)
        self.browser.click("#send-button")
        self.browser.wait(lambda: self.browser.text("#send-result").startswith("sent message"),
                          what="the send's answer")
        self.assertRegex(self.browser.text("#send-result"),
                         r"^sent message \d+ to queue %s$" % name)
        lst.wait_messages(1)
        frame = lst.messages[0]
        self.assertEqual(frame.body, body)
        self.assertEqual(frame.headers["destination"], "/queue/" + name)
        # Once: a round trip on the consumer's connection, nothing more.
        sync_conn, sync_lst = stomp_connect(self.port)
        try:
            self.send_all(sync_conn, sync_lst, "/queue/" + name, ["marker"])
            lst.wait_messages(2)
            self.assertEqual(lst.bodies(), [body, "marker"])
        finally:
            stomp_close(sync_conn, sync_lst)

    def test_purge_empties_a_queue(self):
        name = self.queue("purge")
        conn, lst = self.connect()
        self.send_all(conn, lst, "/queue/" + name, ["p%d" % i for i in range(5)])
        self.wait_text(self.row("queue", name) + " td.depth", "5")
        self.browser.click(self.row("queue", name) + ' button[data-action="purge"]')
        self.assertIn(name, self.browser.accept_alert())
        self.wait_text("#status", "purged 5 from " + name)
        self.wait_text(self.row("queue", name) + " td.depth", "0")
        self.assertEqual(self.api.queue(name)["depth"], 0)

    def test_close_ends_a_paho_clients_connection(self):
        client = Paho(self.broker.ports["mqtt"], client_id="console-" + uuid.uuid4().hex[:6])
        client.connect()
        try:
            local = "%s:%d" % client.c.socket().getsockname()[:2]
            ids = [c["id"] for c in self.api.ok("GET", "/api/v1/connections")
                   if c["remote"] == local]
            self.assertEqual(len(ids), 1)
            row = self.row("connection", ids[0])
            self.browser.find(row)
            self.browser.click(row + ' button[data-action="close"]')
            self.assertIn(str(ids[0]), self.browser.accept_alert())
            client.wait_for(lambda: client.disconnects, what="paho's disconnect")
            self.wait_text("#status", "closed connection %d" % ids[0])
            wait_until(lambda: self.api.get("/api/v1/connections/%d" % ids[0])[0] == 404,
                       what="the connection gone from the API")
            self.browser.wait(lambda: not self.browser.find_all(row), what="the row gone")
        finally:
            client.c.loop_stop()

    def test_renders_charts_and_is_not_blank(self):
        conn, lst = self.connect()
        self.send_all(conn, lst, "/queue/" + self.queue("render"), ["x"] * 10)
        canvas = self.browser.find("#chart-connections")

        def chart_drawn():
            png = self.browser.cmd("GET", "/element/%s/screenshot" % canvas)
            img = Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB")
            return sum(n for n, rgb in img.getcolors(1 << 20)
                       if all(abs(a - b) <= 8 for a, b in zip(rgb, CHART_RGB))) >= 30
        # Each poll after the first adds a segment about 5 pixels wide and 2
        # high: 30 pixels of the line's colour are four polls' worth.
        self.browser.wait(chart_drawn, what="a line in the chart")
        img = Image.open(io.BytesIO(self.browser.screenshot())).convert("RGB")
        colors = img.getcolors(1 << 24)
        w, h = img.size
        self.assertGreaterEqual((w, h), (800, 600))
        self.assertGreater(len(colors), 32, "too few colours: a blank page?")
        self.assertLess(max(n for n, _ in colors), 0.9 * w * h, "one colour covers the page")



@unittest.skipUnless(CHROMIUM and CHROMEDRIVER, "chromium and chromium-driver needed")
class ConsoleStandbyTest(BrokerTestCase):
    """A standby whose active is away: the console says so, and shows the
    lists' refusal rather than empty tables."""
    config = standby_config() + ADMIN_CONFIG

    def test_standby_shows_its_pair_state(self):
        with Browser(timeout=TIMEOUT) as browser:
            browser.open("http://127.0.0.1:%d/console/" % admin_port(self.broker))
            browser.wait(lambda: browser.text("#updated"), what="the first poll")
            self.assertEqual(browser.text("#broker").split(", up")[0],
                             "wharfd %s, node standby-1, standby (not ready: standby: this node "
                             "is not the active one)" % Admin(admin_port(self.broker)).ok(
                                 "GET", "/api/v1/broker")["version"])
            self.assertRegex(browser.text("#pair"), r"^pair: node standby-1 is standby "
                             r"\(epoch \d+\), peer not connected, lag \d+ records$")
            for table in ("#queues", "#topics", "#connections"):
                self.assertEqual(browser.text(table + " td.empty"),
                                 "standby: this node is not the active one")


if __name__ == "__main__":
    main()
