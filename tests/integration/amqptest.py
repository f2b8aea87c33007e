"""AMQP 1.0 helpers shared by the test_amqp_*.py integration tests.

- Client: a qpid-proton connection driven from the test thread (a
  proton.utils.BlockingConnection underneath; no thread of its own). Besides
  the blocking senders and receivers it hands out links with their own
  handlers (Rcv, Snd) for what the blocking API hides: credit given by hand,
  drain, released/modified/rejected outcomes, pre-settled deliveries, link
  refusals and their error conditions, the raw bytes of each message.
- sections(): the AMQP sections of an encoded message, to check which body
  section went over the wire.
- RawAmqp: a plain socket speaking AMQP frames built here (with proton's
  type codec only), for bad input and performatives out of order.
- AmqpBystander: a well-behaved proton client on a thread of its own that
  keeps sending numbered messages to its queue and receiving them while a
  test misbehaves on other connections.
- AmqpTestCase: a BrokerTestCase with AMQP, STOMP and MQTT listeners that
  closes what a test opened and hands out names no other test uses.
"""
import itertools
import os
import socket
import struct
import threading
import time
import uuid

from proton import (Data, Delivery, Described, Endpoint, Handler, Message, Terminus, Timeout,
                    symbol, uint, ulong)
from proton.handlers import TransactionHandler
from proton.reactor import Container, LinkOption
from proton.utils import BlockingConnection

from wharftest import BrokerTestCase, RawSocket

# Deadlines are generous: the same tests run under AddressSanitizer.
TIMEOUT = float(os.environ.get("WHARF_TEST_TIMEOUT", "20"))

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"

# performatives and sections (AMQP 1.0 §2.7, §3.2)
OPEN, BEGIN, ATTACH, FLOW, TRANSFER, DISPOSITION, DETACH, END, CLOSE = range(0x10, 0x19)
ERROR = 0x1D
SASL_MECHANISMS, SASL_INIT, SASL_CHALLENGE, SASL_RESPONSE, SASL_OUTCOME = range(0x40, 0x45)
SOURCE, TARGET = 0x28, 0x29
ACCEPTED, REJECTED, RELEASED, MODIFIED = 0x24, 0x25, 0x26, 0x27
HEADER, DELIVERY_ANNOTATIONS, MESSAGE_ANNOTATIONS, PROPERTIES, APPLICATION_PROPERTIES = \
    range(0x70, 0x75)
DATA, AMQP_SEQUENCE, AMQP_VALUE, FOOTER = range(0x75, 0x79)
PERFORMATIVE_NAMES = {OPEN: "open", BEGIN: "begin", ATTACH: "attach", FLOW: "flow",
                      TRANSFER: "transfer", DISPOSITION: "disposition", DETACH: "detach",
                      END: "end", CLOSE: "close", SASL_MECHANISMS: "sasl-mechanisms",
                      SASL_INIT: "sasl-init", SASL_CHALLENGE: "sasl-challenge",
                      SASL_RESPONSE: "sasl-response", SASL_OUTCOME: "sasl-outcome"}


# ---- encoding by hand ---------------------------------------------------------

def encode(obj):
    """One AMQP value (Described, list, symbol, ulong...) in its encoding."""
    d = Data()
    d.put_object(obj)
    return d.encode()


def decode_one(data):
    """The first AMQP value in `data` and how many bytes it took."""
    d = Data()
    n = d.decode(data)
    d.rewind()
    d.next()
    return d.get_object(), n


def frame(desc, fields, channel=0, payload=b"", ftype=0):
    """A frame carrying performative `desc` with its field list (and, for a
    transfer, the message bytes after it). ftype 1 is a SASL frame."""
    body = encode(Described(ulong(desc), list(fields))) + payload
    return struct.pack("!IBBH", 8 + len(body), 2, ftype, channel) + body


def section(code, value):
    return encode(Described(ulong(code), value))


def sections(raw):
    """[(section code, value)] of an encoded message, in wire order."""
    out = []
    while raw:
        obj, n = decode_one(raw)
        if n <= 0:
            raise AssertionError("undecodable message bytes: %r" % raw[:80])
        out.append((int(obj.descriptor), obj.value))
        raw = raw[n:]
    return out


def body_sections(raw):
    return [(c, v) for c, v in sections(raw) if c in (DATA, AMQP_SEQUENCE, AMQP_VALUE)]


class Capabilities(LinkOption):
    """Capabilities on the terminus the broker resolves: the source of a
    receiver, the target of a sender (as Qpid JMS sends them: an array of
    symbols, or one symbol)."""

    def __init__(self, *caps, array=True):
        self.caps = [symbol(c) for c in caps]
        self.array = array

    def apply(self, link):
        t = link.source if link.is_receiver else link.target
        if self.array:
            t.capabilities.put_array(False, Data.SYMBOL)
            t.capabilities.enter()
            for c in self.caps:
                t.capabilities.put_symbol(c)
            t.capabilities.exit()
        else:
            t.capabilities.put_symbol(self.caps[0])


# ---- links with handlers of their own ---------------------------------------------

class _LinkState(Handler):
    def __init__(self):
        super().__init__()
        self.link = None
        self.remote_opened = False
        self.remote_closed = False
        self.condition = None

    def on_link_remote_open(self, event):
        self.remote_opened = True

    def on_link_remote_close(self, event):
        self.remote_closed = True
        self.condition = event.link.remote_condition
        if event.link.state & Endpoint.LOCAL_ACTIVE:
            event.link.close()

    on_link_remote_detach = on_link_remote_close

    @property
    def refused(self):
        return self.remote_closed

    def unresolved(self):
        """True if the broker's attach names no address where it resolves
        ours (a null terminus, or one without address): a refusal, whose
        detach follows."""
        t = self.link.remote_source if self.link.is_receiver else self.link.remote_target
        return t.type == Terminus.UNSPECIFIED or (not t.address and not t.dynamic)

    def null_terminus(self):
        """True if the broker's attach carried no terminus where it resolves
        the address: the first half of a refusal (a detach follows)."""
        t = self.link.remote_source if self.link.is_receiver else self.link.remote_target
        return t.type == Terminus.UNSPECIFIED


class Received:
    """One message as it arrived: the decoded message, its raw bytes and its
    proton delivery (for outcomes)."""

    def __init__(self, msg, raw, delivery, settled):
        self.msg = msg
        self.raw = raw
        self.delivery = delivery
        self.settled_on_arrival = settled

    @property
    def body(self):
        return self.msg.body

    def __repr__(self):
        return "Received(%r, count=%r)" % (self.msg.body if not isinstance(self.msg.body, bytes)
                                           else self.msg.body[:60], self.msg.delivery_count)


class Rcv(_LinkState):
    """A receiving link with credit given by hand (flow, drain). With
    auto_accept it accepts each message on arrival and, with keep_window,
    flows one credit for each so the window stays full."""

    def __init__(self, auto_accept=False, keep_window=0):
        super().__init__()
        self.received = []
        self.flows = 0
        self.auto_accept = auto_accept
        self.keep_window = keep_window

    def on_delivery(self, event):
        d = event.delivery
        link = event.link
        if not d.readable or d.partial:
            return
        raw = link.recv(d.pending)
        link.advance()
        msg = Message()
        msg.decode(raw)
        r = Received(msg, raw, d, d.settled)
        self.received.append(r)
        if self.auto_accept and not d.settled:
            d.update(Delivery.ACCEPTED)
            d.settle()
        if self.keep_window:
            link.flow(1)

    def on_link_flow(self, event):
        self.flows += 1

    def bodies(self):
        return [r.msg.body for r in self.received]

    def count(self):
        return len(self.received)

    # outcomes
    def accept(self, r):
        r.delivery.update(Delivery.ACCEPTED)
        r.delivery.settle()

    def release(self, r):
        r.delivery.update(Delivery.RELEASED)
        r.delivery.settle()

    def modify(self, r, failed=False, undeliverable=False, annotations=None):
        r.delivery.local.failed = failed
        r.delivery.local.undeliverable = undeliverable
        if annotations is not None:
            r.delivery.local.annotations = annotations
        r.delivery.update(Delivery.MODIFIED)
        r.delivery.settle()

    def reject(self, r, condition=None):
        if condition is not None:
            r.delivery.local.condition = condition
        r.delivery.update(Delivery.REJECTED)
        r.delivery.settle()


class Snd(_LinkState):
    """A sending link that records the outcome of each delivery."""

    def __init__(self):
        super().__init__()
        self.deliveries = []

    def on_delivery(self, event):
        pass  # outcomes are read from the deliveries themselves

    def send(self, msg):
        """Sends a Message (or raw encoded message bytes) now, whatever the
        credit (proton holds it until credit comes). Returns the delivery."""
        if isinstance(msg, (bytes, bytearray)):
            d = self.link.delivery(self.link.delivery_tag())
            self.link.stream(bytes(msg))
            self.link.advance()
        else:
            d = self.link.send(msg)
        if self.link.snd_settle_mode == self.link.SND_SETTLED:
            d.settle()
        self.deliveries.append(d)
        return d

    def all_settled(self):
        return all(d.remote_state or d.settled for d in self.deliveries)

    def outcomes(self):
        return [d.remote_state for d in self.deliveries]


class TxEvents(TransactionHandler):
    """Records what becomes of a transaction: declared, declare-failed,
    committed, commit-failed, aborted."""

    def __init__(self):
        super().__init__()
        self.events = []

    def on_transaction_declared(self, event):
        self.events.append("declared")

    def on_transaction_declare_failed(self, event):
        self.events.append("declare-failed")

    def on_transaction_committed(self, event):
        self.events.append("committed")

    def on_transaction_commit_failed(self, event):
        self.events.append("commit-failed")

    def on_transaction_aborted(self, event):
        self.events.append("aborted")


# ---- a client driven from the test thread -------------------------------------------

class Client:
    """A proton connection; nothing happens on it unless the test thread
    pumps (every wait below does, with a deadline)."""

    def __init__(self, port, container_id=None, timeout=TIMEOUT, **kw):
        cont = Container()
        if container_id:
            cont.container_id = container_id
        self.bc = BlockingConnection("amqp://127.0.0.1:%d" % port, timeout=timeout,
                                     container=cont, **kw)
        self.conn = self.bc.conn
        self.port = port
        self.closed = False

    # pumping
    def pump(self, pred, timeout=TIMEOUT, what="condition"):
        """Processes events until pred() is true; AssertionError after the
        deadline, saying `what` (a string, or a function giving one)."""
        deadline = time.monotonic() + timeout
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for " + (what() if callable(what) else what))
            try:
                self.bc.wait(pred, timeout=min(left, 0.5))
            except Timeout:
                pass

    def idle(self, seconds=0.5):
        """Processes events for a while (to see that nothing more comes)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self.bc.wait(lambda: False, timeout=max(0.01, deadline - time.monotonic()))
            except Timeout:
                pass

    # blocking links (proton.utils)
    def sender(self, address, options=None, name=None):
        return self.bc.create_sender(address, options=options, name=name)

    def receiver(self, address, credit=10, options=None, name=None):
        return self.bc.create_receiver(address, credit=credit, options=options, name=name)

    # links with handlers of their own
    def rcv(self, address, credit=0, options=None, name=None, wait=True, auto_accept=False,
            keep_window=False):
        """A receiving link; waits for the broker's attach (or detach) unless
        wait=False. Credit flows only once the broker has answered."""
        h = Rcv(auto_accept=auto_accept, keep_window=keep_window)
        name = name or "r-" + uuid.uuid4().hex[:12]  # proton's own names repeat per address
        link = self.bc.container.create_receiver(self.conn, address, name=name, handler=h,
                                                 options=options)
        h.link = link
        if wait:
            self._attached(h, address)
            if credit and not h.remote_closed:
                link.flow(credit)
        elif credit:
            link.flow(credit)
        return h

    def snd(self, address, options=None, name=None, wait=True):
        """A sending link; waits for the broker's attach (or refusal)."""
        h = Snd()
        name = name or "s-" + uuid.uuid4().hex[:12]
        link = self.bc.container.create_sender(self.conn, address, name=name, handler=h,
                                               options=options)
        h.link = link
        if wait:
            self._attached(h, address)
        return h

    def _attached(self, h, address):
        """Waits for the broker's attach; if it resolved no address (a
        refusal), also, briefly, for the detach that must follow."""
        self.pump(lambda: h.remote_opened or h.remote_closed, what="attach of " + str(address))
        if h.remote_opened and not h.remote_closed and h.unresolved():
            try:
                self.pump(lambda: h.remote_closed, 2.0, "the detach after a refusing attach")
            except AssertionError:
                pass  # an anonymous or dynamic terminus that stays

    def wait_received(self, rcv, n, timeout=TIMEOUT):
        """Waits until the link holds at least n messages; returns them."""
        self.pump(lambda: rcv.count() >= n or rcv.remote_closed, timeout,
                  lambda: "%d messages (have %d, last %r)" % (n, rcv.count(), rcv.received[-5:]))
        if rcv.count() < n:
            raise AssertionError("link closed by the broker (%s) after %d of %d messages"
                                 % (rcv.condition, rcv.count(), n))
        return list(rcv.received)

    def wait_settled(self, snd, timeout=TIMEOUT):
        """Waits for the broker's outcome of every delivery sent on snd."""
        self.pump(lambda: snd.all_settled() or snd.remote_closed, timeout,
                  "outcomes of %d deliveries" % len(snd.deliveries))
        return snd.outcomes()

    def send_all(self, snd, msgs, timeout=TIMEOUT):
        """Sends every message and waits until the broker accepted each."""
        for m in msgs:
            snd.send(m)
        if snd.link.snd_settle_mode == snd.link.SND_SETTLED:
            # nothing comes back: wait until proton has written them all
            self.pump(lambda: snd.link.queued == 0 or snd.remote_closed, timeout,
                      "pre-settled transfers written")
            return
        outcomes = self.wait_settled(snd, timeout)
        bad = [(i, o) for i, o in enumerate(outcomes) if o != Delivery.ACCEPTED]
        if bad:
            raise AssertionError("not accepted: %r" % bad[:10])

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.bc.close()
        except Exception:
            pass


# ---- raw frames on a socket ---------------------------------------------------------

class Frame:
    def __init__(self, ftype, channel, desc, fields, payload, size=0):
        self.size = size           # the frame's size field: every byte of it
        self.type = ftype          # 0 AMQP, 1 SASL
        self.channel = channel
        self.desc = desc           # performative code, None for an empty (heartbeat) frame
        self.fields = fields       # the performative's field list
        self.payload = payload     # bytes after the performative (a transfer's message)

    @property
    def name(self):
        return PERFORMATIVE_NAMES.get(self.desc, repr(self.desc))

    def field(self, i, default=None):
        return self.fields[i] if self.fields is not None and i < len(self.fields) else default

    def error(self):
        """(condition, description) of a close, end or detach, or None."""
        idx = {CLOSE: 0, END: 0, DETACH: 2}.get(self.desc)
        e = self.field(idx) if idx is not None else None
        if e is None:
            return None
        if isinstance(e, Described):
            e = e.value
        return (str(e[0]) if e else None, e[1] if len(e) > 1 else None)

    def __repr__(self):
        return "Frame(%s ch=%d %r%s)" % (self.name, self.channel, self.fields,
                                          " +%d bytes" % len(self.payload) if self.payload else "")


class RawAmqp(RawSocket):
    """AMQP on a bare socket. read() parses what the broker sends (the
    protocol header first); closed is set once the broker closes."""

    def __init__(self, port, timeout=TIMEOUT, rcvbuf=None):
        super().__init__(port, timeout, rcvbuf)
        self.header = None   # the protocol header the broker sent
        self.frames = []     # every frame read so far

    def read_header(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while len(self.buf) < 8 and self._fill(deadline):
            pass
        if len(self.buf) < 8:
            return None
        self.header, self.buf = self.buf[:8], self.buf[8:]
        return self.header

    def _parse(self):
        if len(self.buf) < 8:
            return None
        size, doff, ftype, channel = struct.unpack("!IBBH", self.buf[:8])
        if len(self.buf) < size:
            return None
        body = self.buf[doff * 4:size]
        self.buf = self.buf[size:]
        if not body:
            f = Frame(ftype, channel, None, None, b"", size)
        else:
            obj, n = decode_one(body)
            f = Frame(ftype, channel, int(obj.descriptor), list(obj.value or []), body[n:], size)
        self.frames.append(f)
        return f

    def read(self, timeout=TIMEOUT):
        """The next frame (heartbeats included), or None on timeout or close."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                return f
            if not self._fill(deadline):
                return self._parse()

    def expect(self, desc, timeout=TIMEOUT):
        """Reads until a frame with this performative; raises if the broker
        closes or the deadline passes first."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            f = self.read(max(0.0, deadline - time.monotonic()))
            if f is None:
                raise AssertionError("no %s (closed=%s) after %r" % (
                    PERFORMATIVE_NAMES.get(desc, desc), self.closed, got))
            got.append(f)
            if f.desc == desc:
                return f

    def wait_closed(self, timeout=TIMEOUT):
        """Reads until the broker closes the socket; returns the frames read
        meanwhile. Raises if it stays open past the deadline."""
        deadline = time.monotonic() + timeout
        got = []
        while not self.closed:
            f = self.read(max(0.0, deadline - time.monotonic()))
            if f is not None:
                got.append(f)
            elif not self.closed:
                raise AssertionError("broker did not close the socket within %ss; read %r"
                                     % (timeout, got))
        while True:
            f = self._parse()
            if f is None:
                break
            got.append(f)
        return got

    # a session by hand
    def sasl(self, mechanism="ANONYMOUS", response=b""):
        """The SASL header and exchange; returns (offered mechanisms, the
        outcome frame). Its code (field 0) is 0 when it succeeded."""
        self.send(SASL_HEADER)
        h = self.read_header()
        if h != SASL_HEADER:
            raise AssertionError("SASL header answered with %r" % (h,))
        mechs = self.expect(SASL_MECHANISMS).field(0)
        offered = [str(m) for m in (mechs if isinstance(mechs, (list, tuple)) or
                                    hasattr(mechs, "__iter__") and not isinstance(mechs, str)
                                    else [mechs])]
        self.send(frame(SASL_INIT, [symbol(mechanism), response], ftype=1))
        return offered, self.expect(SASL_OUTCOME)

    def open(self, container_id="raw", max_frame=None, idle_ms=None, sasl=False):
        """Header (after SASL ANONYMOUS if asked) and open; returns the broker's open."""
        if sasl:
            _, out = self.sasl()
            if out.field(0) != 0:
                raise AssertionError("SASL outcome %r" % out)
        self.send(AMQP_HEADER)
        h = self.read_header()
        if h != AMQP_HEADER:
            raise AssertionError("AMQP header answered with %r" % (h,))
        self.send(frame(OPEN, [container_id, None, None if max_frame is None else uint(max_frame),
                               None, None if idle_ms is None else uint(idle_ms)]))
        return self.expect(OPEN)

    def begin(self, channel=0, window=1000):
        """Begins a session with this incoming and outgoing window;
        returns the broker's begin."""
        self.send(frame(BEGIN, [None, uint(0), uint(window), uint(window)], channel=channel))
        return self.expect(BEGIN)

    def attach(self, name, handle, role_receiver, address, channel=0):
        """Attaches a link; role_receiver=True means the broker sends on it.
        Returns the broker's attach."""
        src = Described(ulong(SOURCE), [address if role_receiver else None])
        tgt = Described(ulong(TARGET), [None if role_receiver else address])
        self.send(frame(ATTACH, [name, uint(handle), role_receiver, None, None, src, tgt,
                                 None, None, None if role_receiver else uint(0)],
                        channel=channel))
        return self.expect(ATTACH)

def flow(handle, credit, delivery_count=0, next_incoming=0, window=1000, channel=0, drain=False):
    """A link flow giving `credit` on `handle`."""
    return frame(FLOW, [uint(next_incoming), uint(window), uint(0), uint(window), uint(handle),
                        uint(delivery_count), uint(credit), None, drain], channel=channel)

def transfer(handle, delivery_id, tag, message_bytes, channel=0, settled=False, more=False):
    return frame(TRANSFER, [uint(handle), uint(delivery_id), tag, uint(0), settled, more],
                 channel=channel, payload=message_bytes)

def simple_message(text):
    """The encoding of a message whose body is one amqp-value string."""
    return section(AMQP_VALUE, text)

# ---- a bystander ------------------------------------------------------------------

class AmqpBystander:
    """A well-behaved proton client on its own thread (its own connection
    and container) sending numbered messages to its queue and receiving
    each before the next. check() stops it and asserts it got every message
    it sent, once, in order, and that nothing failed."""

    def __init__(self, port, address, interval=0.005):
        self.port = port
        self.address = address
        self.interval = interval
        self.sent = 0
        self.received = []
        self.failure = None
        self.stop_ev = threading.Event()
        self.ready = threading.Event()
        self.progress = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(TIMEOUT):
            raise AssertionError("bystander did not connect: %r" % (self.failure,))
        if self.failure:
            raise AssertionError("bystander could not start: %r" % (self.failure,))

    def _run(self):
        client = None
        try:
            client = Client(self.port)
            snd = client.snd(self.address)
            rcv = client.rcv(self.address, credit=10, auto_accept=True, keep_window=True)
            if snd.refused or rcv.refused:
                raise RuntimeError("bystander links refused: %s %s" % (snd.condition,
                                                                     rcv.condition))
            self.ready.set()
            while not self.stop_ev.is_set():
                body = "b-%06d" % self.sent
                snd.send(Message(body=body))
                self.sent += 1
                client.pump(lambda: rcv.count() >= self.sent or rcv.remote_closed
                            or snd.remote_closed, TIMEOUT, "bystander message " + body)
                if rcv.remote_closed or snd.remote_closed:
                    raise RuntimeError("bystander link closed: %s %s" % (snd.condition,
                                                                        rcv.condition))
                client.wait_settled(snd)
                with self.progress:
                    self.received = rcv.bodies()
                    self.outcomes = snd.outcomes()
                    self.progress.notify_all()
                self.stop_ev.wait(self.interval)
        except Exception as e:  # reported by check()
            self.failure = e
            self.ready.set()
            with self.progress:
                self.progress.notify_all()
        finally:
            if client is not None:
                client.close()

    def wait_progress(self, n=5, timeout=TIMEOUT):
        with self.progress:
            start = len(self.received)
            if not self.progress.wait_for(lambda: len(self.received) >= start + n or
                                          self.failure, timeout):
                raise AssertionError("bystander made no progress (%d received)" % start)

    def check(self, testcase):
        self.wait_progress()  # still flowing after the test's mischief
        self.stop_ev.set()
        self.thread.join(TIMEOUT)
        testcase.assertIsNone(self.failure, "bystander failed")
        testcase.assertFalse(self.thread.is_alive(), "bystander thread stuck")
        testcase.assertEqual(self.received, ["b-%06d" % i for i in range(self.sent)])
        testcase.assertTrue(all(o == Delivery.ACCEPTED for o in self.outcomes),
                            "bystander message not accepted")

    def close(self):
        self.stop_ev.set()
        self.thread.join(TIMEOUT)


# ---- the test case ----------------------------------------------------------------

class AmqpTestCase(BrokerTestCase):
    """A shared broker per class with AMQP, STOMP and MQTT listeners;
    clients opened with self.client() / self.raw() are closed after each
    test."""

    protocols = ("amqp", "stomp", "mqtt")
    _names = itertools.count(1)

    def setUp(self):
        self._closers = []

    def tearDown(self):
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                pass
        self.assertTrue(self.broker.alive(), "wharfd died:\n" + self.broker.output())

    @property
    def port(self):
        return self.broker.ports["amqp"]

    @property
    def stomp_port(self):
        return self.broker.ports["stomp"]

    @property
    def mqtt_port(self):
        return self.broker.ports["mqtt"]

    def on_teardown(self, fn):
        self._closers.append(fn)

    def client(self, **kw):
        c = Client(self.port, **kw)
        self._closers.append(c.close)
        return c

    def raw(self):
        r = RawAmqp(self.port)
        self._closers.append(r.close)
        return r

    def bystander(self, address=None):
        b = AmqpBystander(self.port, address or self.name("queue", "bystander"))
        self._closers.append(b.close)
        return b

    def name(self, kind=None, stem=None):
        """A destination name no other test in this process uses: bare, or
        with kind 'queue'/'topic' its AMQP prefix."""
        stem = stem or self._testMethodName[5:].replace("_", "-")
        n = "%s-%d" % (stem, next(self._names))
        return "%s://%s" % (kind, n) if kind else n
