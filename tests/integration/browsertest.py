"""Headless Chromium for the integration tests, shared by test_browser.py
(a page that reports to the test by itself) and test_console.py (a page the
test drives): the browser's command line, and a small W3C WebDriver client
that talks to chromedriver (Debian's chromium-driver) over its HTTP API with
urllib, so no Selenium is needed."""
import base64
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")

# Headless, and quiet: nothing fetched but what the test serves.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic"]

# The W3C element reference's key in WebDriver answers.
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def chromium_command(url, profile):
    """The command line that opens url in a headless Chromium of its own
    profile directory."""
    return [CHROMIUM] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile,
                                          "--remote-debugging-port=0", url]


class WebDriverError(Exception):
    pass


class Browser:
    """A chromedriver and one headless Chromium session, with what a test
    needs: open a page, find, type, click, read, accept a confirm(),
    read the console log, take a screenshot. Use as a context manager."""

    def __init__(self, timeout=30, window=(1280, 1600)):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="wharf-chromium-")
        self.driver = subprocess.Popen([CHROMEDRIVER, "--port=0"], stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True)
        self.base = None
        self.session = None
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = self.driver.stdout.readline()
                if not line:
                    break
                m = re.search(r"started successfully on port (\d+)", line)
                if m:
                    self.base = "http://127.0.0.1:%s" % m.group(1)
                    break
            if not self.base:
                raise WebDriverError("chromedriver did not start")
            caps = {"browserName": "chrome",
                    "goog:chromeOptions": {"binary": CHROMIUM, "args": CHROMIUM_FLAGS + [
                        "--user-data-dir=" + self.profile,
                        "--window-size=%d,%d" % window]},
                    "goog:loggingPrefs": {"browser": "ALL"}}
            got = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
            self.session = "/session/" + got["sessionId"]
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.session:
            try:
                self._call("DELETE", self.session)
            except (OSError, WebDriverError):
                pass
            self.session = None
        self.driver.kill()
        self.driver.wait()
        self.driver.stdout.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout + 30) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            value = json.loads(e.read()).get("value", {})
            raise WebDriverError("%s %s: %s: %s" % (method, path, value.get("error"),
                                                    value.get("message", "")[:300])) from None

    def cmd(self, method, path, body=None):
        """One WebDriver command of this session (path after /session/ID)."""
        return self._call(method, self.session + path, body)

    def open(self, url):
        self.cmd("POST", "/url", {"url": url})

    def find_all(self, css):
        return [e[ELEMENT] for e in self.cmd("POST", "/elements",
                                             {"using": "css selector", "value": css})]

    def find(self, css, timeout=None):
        """The first element css matches, waited for up to timeout."""
        found = self.wait(lambda: self.find_all(css), timeout, "element %s" % css)
        return found[0]

    def on_element(self, css, command, body=None, timeout=None):
        """A command on what css matches now. A page that re-renders (the
        console every 2 s) may replace the element found before the
        command reaches it: then it is found again."""
        def run():
            try:
                return [self.cmd(command[0], "/element/%s/%s" % (self.find(css, timeout),
                                                                 command[1]), body)]
            except WebDriverError as e:
                if "stale element" not in str(e):
                    raise
                return None
        return self.wait(run, timeout, "%s on %s" % (command[1], css))[0]

    def text(self, css, timeout=None):
        return self.on_element(css, ("GET", "text"), timeout=timeout)

    def click(self, css, timeout=None):
        self.on_element(css, ("POST", "click"), {}, timeout)

    def type(self, css, text, timeout=None):
        element = self.find(css, timeout)
        self.cmd("POST", "/element/%s/clear" % element, {})
        self.cmd("POST", "/element/%s/value" % element, {"text": text})

    def accept_alert(self, timeout=None):
        """Accepts the confirm() the page shows; returns its text."""
        def shown():
            try:
                return self.cmd("GET", "/alert/text")
            except WebDriverError:
                return None
        text = self.wait(shown, timeout, "a confirm dialog")
        self.cmd("POST", "/alert/accept", {})
        return text

    def log(self):
        """The console's entries since the last call: {level, message, source}."""
        return self.cmd("POST", "/se/log", {"type": "browser"})

    def screenshot(self):
        """The viewport as PNG bytes."""
        return base64.b64decode(self.cmd("GET", "/screenshot"))

    def wait(self, pred, timeout=None, what="condition"):
        """pred()'s first true value, polled until timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            got = pred()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s" % what)
            time.sleep(0.1)
