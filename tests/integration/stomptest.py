"""STOMP helpers shared by the test_stomp_*.py integration tests.

- Collector: a stomp.py listener that records every frame it is handed and
  lets a test wait, with a deadline, for messages, receipts, errors and the
  disconnect.
- RawStomp: a plain socket speaking STOMP by hand, for what stomp.py hides
  (receipts, exact header bytes, binary bodies) and for malformed input.
- StompTestCase: a BrokerTestCase that opens stomp.py connections, closes
  them after each test, and hands out destination names no other test uses.
"""
import itertools
import os
import socket
import threading
import time
import uuid

import stomp

from wharftest import BrokerTestCase, RawSocket

# Deadlines are generous: the same tests run under AddressSanitizer.
TIMEOUT = float(os.environ.get("WHARF_TEST_TIMEOUT", "20"))

CONNECTION_CLASSES = {
    "1.0": stomp.Connection10,
    "1.1": stomp.Connection11,
    "1.2": stomp.Connection12,
}


# ---- stomp.py side ---------------------------------------------------------

class Collector(stomp.ConnectionListener):
    """Records frames; every wait_* has a deadline and raises AssertionError
    with what did arrive when it passes."""

    def __init__(self, on_message=None):
        self.cond = threading.Condition()
        self.connected = None
        self.messages = []
        self.receipts = []
        self.errors = []
        self.disconnected = False
        self.heartbeats = 0
        self.callback = on_message  # called as callback(frame) after recording

    # listener interface (receiver thread)
    def on_connected(self, frame):
        with self.cond:
            self.connected = frame
            self.cond.notify_all()

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame)
            self.cond.notify_all()
        if self.callback:
            self.callback(frame)

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.append(frame.headers.get("receipt-id"))
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame)
            self.cond.notify_all()

    def on_disconnected(self):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def on_heartbeat(self):
        with self.cond:
            self.heartbeats += 1
            self.cond.notify_all()

    # waiting (test thread)
    def wait_for(self, pred, timeout=TIMEOUT, what="condition"):
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise AssertionError(
                    "timed out waiting for %s; have %d messages %r, receipts %r, errors %r"
                    % (what, len(self.messages), self.bodies()[-10:], self.receipts[-10:],
                       [dict(e.headers) for e in self.errors]))

    def wait_messages(self, n, timeout=TIMEOUT):
        """Waits for at least n messages; returns a copy of all so far."""
        self.wait_for(lambda: len(self.messages) >= n, timeout, "%d messages" % n)
        with self.cond:
            return list(self.messages)

    def wait_body(self, body, timeout=TIMEOUT):
        """Waits until a message with this body has arrived; returns all so far."""
        self.wait_for(lambda: any(m.body == body for m in self.messages), timeout,
                      "message %r" % (body,))
        with self.cond:
            return list(self.messages)

    def wait_receipt(self, rid, timeout=TIMEOUT):
        self.wait_for(lambda: rid in self.receipts, timeout, "receipt %r" % rid)

    def wait_error(self, timeout=TIMEOUT):
        self.wait_for(lambda: self.errors, timeout, "an ERROR frame")
        return self.errors[0]

    def wait_disconnected(self, timeout=TIMEOUT):
        self.wait_for(lambda: self.disconnected, timeout, "the disconnect")

    def bodies(self):
        with self.cond:
            return [m.body for m in self.messages]

    def count(self):
        with self.cond:
            return len(self.messages)


def new_receipt():
    return "r-" + uuid.uuid4().hex[:12]


def stomp_connect(port, version="1.2", heartbeats=(0, 0), listener=None, headers=None,
                  timeout=TIMEOUT, host="127.0.0.1", **kw):
    """A connected stomp.py connection and its Collector. Waits for CONNECTED
    with a deadline (stomp.py's own wait has none)."""
    cls = CONNECTION_CLASSES[version]
    args = dict(kw)
    if version != "1.0":
        args["heartbeats"] = heartbeats
    conn = cls([(host, port)], **args)
    lst = listener or Collector()
    conn.set_listener("collector", lst)
    conn.connect(wait=False, headers=headers or {})
    lst.wait_for(lambda: lst.connected is not None or lst.errors or lst.disconnected,
                 timeout, "CONNECTED")
    if lst.connected is None:
        raise AssertionError("connect failed: %r" % [dict(e.headers) for e in lst.errors])
    return conn, lst


def on_receipts(lst, rids, fn):
    """Calls fn(rids[receipt id]) for each receipt that comes for one of
    rids (a dict the caller goes on filling), from the receiver thread;
    the Collector records the receipt too."""
    orig = lst.on_receipt

    def on_receipt(frame):
        i = rids.get(frame.headers.get("receipt-id"))
        if i is not None:
            fn(i)
        orig(frame)
    lst.on_receipt = on_receipt


def stomp_close(conn, lst=None, timeout=5):
    """Disconnects politely if still connected; never raises."""
    try:
        if conn.is_connected():
            # No receipt argument: with one, stomp.py waits without a deadline.
            conn.disconnect()
            if lst is not None:
                lst.wait_for(lambda: lst.disconnected, timeout, "the disconnect")
    except Exception:
        pass
    try:
        conn.transport.disconnect_socket()
    except Exception:
        pass


def sync(conn, lst, timeout=TIMEOUT):
    """Round trip through the broker on this connection: once it returns,
    every frame the broker queued for this connection before it read ours
    has been received (the broker is one event loop writing in order)."""
    tx = "sync-" + uuid.uuid4().hex[:8]
    rid = new_receipt()
    conn.begin(transaction=tx)
    conn.abort(transaction=tx, headers={"receipt": rid})
    lst.wait_receipt(rid, timeout)


def ack_header(frame, version):
    """What stomp.py's ack()/nack() take for this MESSAGE: (id, subscription)."""
    if version == "1.2":
        return (frame.headers["ack"],)
    return (frame.headers["message-id"], frame.headers["subscription"])


class StompTestCase(BrokerTestCase):
    """A shared broker per class; stomp.py connections opened with
    self.connect() are closed after each test."""

    _names = itertools.count(1)

    def setUp(self):
        self._conns = []
        self._raws = []

    def tearDown(self):
        for conn, lst in reversed(self._conns):
            stomp_close(conn, lst)
        for r in self._raws:
            r.close()
        self.assertTrue(self.broker.alive(), "wharfd died:\n" + self.broker.output())

    @property
    def port(self):
        return self.broker.stomp_port

    def connect(self, version="1.2", **kw):
        conn, lst = stomp_connect(self.port, version, **kw)
        self._conns.append((conn, lst))
        return conn, lst

    def raw(self, version="1.2", connect=True, rcvbuf=None, **kw):
        r = RawStomp(self.port, rcvbuf=rcvbuf)
        self._raws.append(r)
        if connect:
            r.connect(version, **kw)
        return r

    def name(self, kind="queue", stem=None):
        """A destination no other test in this process uses."""
        stem = stem or self._testMethodName.replace("_", "-")
        return "/%s/%s-%d" % (kind, stem, next(self._names))

    def subscribe(self, conn, lst, dest, sub_id=None, ack="auto", headers=None):
        """SUBSCRIBE and wait for its receipt, so the subscription is live."""
        rid = new_receipt()
        h = dict(headers or {})
        h["receipt"] = rid
        sub_id = sub_id or "sub-" + uuid.uuid4().hex[:8]
        conn.subscribe(dest, id=sub_id, ack=ack, headers=h)
        lst.wait_receipt(rid)
        return sub_id

    def send_all(self, conn, lst, dest, bodies, headers=None):
        """Sends every body; waits for the receipt of the last one."""
        bodies = list(bodies)
        for i, b in enumerate(bodies):
            h = dict(headers or {})
            if i == len(bodies) - 1:
                rid = new_receipt()
                h["receipt"] = rid
            conn.send(dest, b, headers=h)
        if bodies:
            lst.wait_receipt(rid)


# ---- raw side --------------------------------------------------------------

class Frame:
    def __init__(self, command, headers, body, raw_headers=None, raw_head=b""):
        self.command = command
        self.raw_head = raw_head          # bytes of the command and header lines, as sent
        self.headers = headers            # dict: first occurrence of each name
        self.header_list = raw_headers or []  # [(name, value)] in order, unescaped
        self.body = body                  # bytes

    def __repr__(self):
        return "Frame(%s, %r, %r)" % (self.command, self.headers, self.body[:80])


_ESC = {"1.1": [("\\", "\\\\"), ("\n", "\\n"), (":", "\\c")],
        "1.2": [("\\", "\\\\"), ("\r", "\\r"), ("\n", "\\n"), (":", "\\c")]}
_UNESC = {"n": "\n", "c": ":", "\\": "\\", "r": "\r"}


def escape(s, version):
    for a, b in _ESC.get(version, []):
        s = s.replace(a, b)
    return s


def unescape(s, version):
    if version not in ("1.1", "1.2"):
        return s
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in _UNESC:
            out.append(_UNESC[s[i + 1]])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def encode_frame(command, headers=(), body=b"", version=None, content_length=None):
    """Builds the bytes of a frame. headers: dict or [(name, value)]; values
    are escaped for `version` (1.1/1.2) except in CONNECT/STOMP. A bytes
    body gets a content-length header unless content_length=False."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    if isinstance(body, str):
        body = body.encode()
    esc = version if command not in ("CONNECT", "STOMP") else None
    out = [command.encode(), b"\n"]
    names = [h[0] for h in headers]
    for k, v in headers:
        out.append(("%s:%s\n" % (escape(k, esc), escape(str(v), esc))).encode())
    if content_length is None:
        content_length = bool(body) and "content-length" not in names
    if content_length:
        out.append(b"content-length:%d\n" % len(body))
    out.append(b"\n")
    out.append(body)
    out.append(b"\x00")
    return b"".join(out)


class RawStomp(RawSocket):
    """A STOMP client on a bare socket. read_frame() parses what arrives,
    counting heart-beat EOLs; closed is set once the broker closes."""

    def __init__(self, port, timeout=TIMEOUT, rcvbuf=None):
        super().__init__(port, timeout, rcvbuf)
        self.heartbeats = 0
        self.version = None
        self.frames = []  # everything read so far

    def send_frame(self, command, headers=(), body=b"", **kw):
        kw.setdefault("version", self.version)
        return self.send(encode_frame(command, headers, body, **kw))

    def connect(self, version="1.2", heartbeat=None, headers=(), command="CONNECT"):
        h = [("accept-version", version), ("host", "localhost")]
        if heartbeat is not None:
            h.append(("heart-beat", heartbeat))
        h += list(headers)
        self.send_frame(command, h)
        f = self.read_frame()
        if f is None or f.command != "CONNECTED":
            raise AssertionError("expected CONNECTED, got %r" % (f,))
        self.version = f.headers.get("version", "1.0")
        return f

    def _parse(self):
        """One frame from buf, or None if it is not all here yet."""
        while self.buf[:1] in (b"\n", b"\r"):
            if self.buf.startswith(b"\r\n"):
                self.buf = self.buf[2:]
            elif self.buf.startswith(b"\n"):
                self.buf = self.buf[1:]
            else:
                return None  # a lone CR: wait for its LF
            self.heartbeats += 1
        end = self.buf.find(b"\n\n")
        end_crlf = self.buf.find(b"\r\n\r\n")
        if end < 0 and end_crlf < 0:
            return None
        if end < 0 or (0 <= end_crlf < end):
            head, rest = self.buf[:end_crlf], end_crlf + 4
        else:
            head, rest = self.buf[:end], end + 2
        lines = head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
        command = lines[0]
        v = self.version if command != "CONNECTED" else None
        hl = []
        for line in lines[1:]:
            k, _, val = line.partition(":")
            hl.append((unescape(k, v), unescape(val, v)))
        headers = {}
        for k, val in hl:
            headers.setdefault(k, val)
        if "content-length" in headers:
            n = int(headers["content-length"])
            if len(self.buf) < rest + n + 1:
                return None
            body = self.buf[rest:rest + n]
            if self.buf[rest + n:rest + n + 1] != b"\x00":
                raise AssertionError("frame body not followed by NUL: %r" % self.buf[:200])
            self.buf = self.buf[rest + n + 1:]
        else:
            nul = self.buf.find(b"\x00", rest)
            if nul < 0:
                return None
            body = self.buf[rest:nul]
            self.buf = self.buf[nul + 1:]
        f = Frame(command, headers, body, hl, head)
        self.frames.append(f)
        return f

    def read_frame(self, timeout=TIMEOUT):
        """The next frame, or None on timeout or once the broker closed."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                return f
            if not self._fill(deadline):
                return self._parse()

    def read_until(self, pred, timeout=TIMEOUT):
        """Reads frames until pred(frame); returns the frames read (the
        matching one last). Raises AssertionError if none matched."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            f = self.read_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                raise AssertionError("no matching frame (closed=%s) after %r" % (self.closed, got))
            got.append(f)
            if pred(f):
                return got

    def wait_receipt(self, rid, timeout=TIMEOUT):
        return self.read_until(lambda f: f.command == "RECEIPT" and
                               f.headers.get("receipt-id") == rid, timeout)

    def wait_closed(self, timeout=TIMEOUT):
        """Reads (and keeps) frames until the broker closes the connection;
        returns the frames read meanwhile. Raises if it stays open."""
        deadline = time.monotonic() + timeout
        got = []
        while not self.closed:
            f = self.read_frame(max(0.0, deadline - time.monotonic()))
            if f is not None:
                got.append(f)
            elif not self.closed:
                raise AssertionError("broker did not close the connection within %ss; read %r"
                                     % (timeout, got))
        while True:  # what was buffered before the close
            f = self._parse()
            if f is None:
                break
            got.append(f)
        return got

# ---- a bystander ------------------------------------------------------------

class Bystander:
    """A well-behaved stomp.py client that keeps sending numbered messages
    to its own queue and receiving them, from a thread, while a test does
    something nasty on other connections. check() stops it and asserts it
    received every message it sent, once, in order, with no ERROR."""

    def __init__(self, port, dest, interval=0.005):
        self.dest = dest
        self.conn, self.lst = stomp_connect(port, "1.2")
        rid = new_receipt()
        self.conn.subscribe(dest, id="bystander", ack="auto", headers={"receipt": rid})
        self.lst.wait_receipt(rid)
        self.sent = 0
        self.stop_ev = threading.Event()
        self.failure = None
        self.interval = interval
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.stop_ev.is_set():
                self.conn.send(self.dest, "b-%06d" % self.sent)
                self.sent += 1
                self.stop_ev.wait(self.interval)
        except Exception as e:  # the broker dropped us: check() reports it
            self.failure = e

    def wait_progress(self, n=5, timeout=TIMEOUT):
        """Waits until n more messages have made the round trip."""
        start = self.lst.count()
        self.lst.wait_for(lambda: len(self.lst.messages) >= start + n or self.lst.errors
                          or self.lst.disconnected, timeout, "bystander progress")

    def check(self, testcase):
        self.wait_progress()  # still flowing after the test's mischief
        self.stop_ev.set()
        self.thread.join(TIMEOUT)
        testcase.assertIsNone(self.failure, "bystander could not send")
        testcase.assertEqual(self.lst.errors, [], "bystander got an ERROR")
        testcase.assertFalse(self.lst.disconnected, "bystander was disconnected")
        expected = ["b-%06d" % i for i in range(self.sent)]
        self.lst.wait_messages(self.sent)
        testcase.assertEqual(self.lst.bodies(), expected)

    def close(self):
        self.stop_ev.set()
        self.thread.join(TIMEOUT)
        stomp_close(self.conn, self.lst)
