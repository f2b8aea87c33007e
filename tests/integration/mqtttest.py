"""MQTT helpers shared by the test_mqtt_*.py integration tests.

- Raw packet builders (bytes built by hand here, never with the broker's
  codec) and RawMqtt: a plain socket speaking MQTT 3.1 / 3.1.1 / 5.0, with a
  parser for what the broker sends and deadlines on every read.
- Paho: a paho-mqtt client (3.1, 3.1.1 or 5.0) that records what it is
  handed under a Condition and lets a test wait, with a deadline, for it.
- MqttBystander: a well-behaved paho client publishing and receiving QoS 1
  from a thread while a test misbehaves on other connections.
- MqttTestCase: a BrokerTestCase with MQTT and STOMP listeners that closes
  the clients a test opened and hands out topic names no other test uses.
"""
import itertools
import os
import socket
import struct
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from wharftest import BrokerTestCase, RawSocket

# Deadlines are generous: the same tests run under AddressSanitizer.
TIMEOUT = float(os.environ.get("WHARF_TEST_TIMEOUT", "20"))


# ---- packet types and properties ---------------------------------------------

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = range(1, 8)
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)
TYPE_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
              6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE",
              11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# MQTT 5 properties: id -> (name, type). Types: byte, u16, u32, varint,
# str (UTF-8), bin, pair (user property).
PROPS = {
    0x01: ("payload_format", "byte"),
    0x02: ("message_expiry", "u32"),
    0x03: ("content_type", "str"),
    0x08: ("response_topic", "str"),
    0x09: ("correlation_data", "bin"),
    0x0B: ("sub_id", "varint"),
    0x11: ("session_expiry", "u32"),
    0x12: ("assigned_client_id", "str"),
    0x13: ("server_keep_alive", "u16"),
    0x15: ("auth_method", "str"),
    0x16: ("auth_data", "bin"),
    0x17: ("request_problem_info", "byte"),
    0x18: ("will_delay", "u32"),
    0x19: ("request_response_info", "byte"),
    0x1A: ("response_info", "str"),
    0x1C: ("server_reference", "str"),
    0x1F: ("reason_string", "str"),
    0x21: ("receive_maximum", "u16"),
    0x22: ("topic_alias_maximum", "u16"),
    0x23: ("topic_alias", "u16"),
    0x24: ("maximum_qos", "byte"),
    0x25: ("retain_available", "byte"),
    0x26: ("user", "pair"),
    0x27: ("maximum_packet_size", "u32"),
    0x28: ("wildcard_sub_available", "byte"),
    0x29: ("sub_id_available", "byte"),
    0x2A: ("shared_sub_available", "byte"),
}
PROP_IDS = {name: pid for pid, (name, _) in PROPS.items()}


def varint(n):
    """MQTT variable byte integer."""
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def u16(n):
    return struct.pack("!H", n)


def u32(n):
    return struct.pack("!I", n)


def mstr(s):
    """A length-prefixed string; bytes go as they are (for invalid UTF-8)."""
    if isinstance(s, str):
        s = s.encode("utf-8")
    return u16(len(s)) + s


def encode_props(props):
    """props: None, or an iterable of (name or id, value) in wire order
    (duplicates and properties a packet may not carry are allowed on
    purpose), or a dict. A user property's value is (key, value). Returns
    the property block with its length prefix."""
    if props is None:
        props = ()
    if isinstance(props, dict):
        props = list(props.items())
    body = bytearray()
    for name, value in props:
        pid = name if isinstance(name, int) else PROP_IDS[name]
        kind = PROPS[pid][1]
        body += varint(pid)
        if kind == "byte":
            body.append(value)
        elif kind == "u16":
            body += u16(value)
        elif kind == "u32":
            body += u32(value)
        elif kind == "varint":
            body += varint(value)
        elif kind in ("str", "bin"):
            body += mstr(value)
        elif kind == "pair":
            body += mstr(value[0]) + mstr(value[1])
    return varint(len(body)) + bytes(body)


def packet(ptype, flags, body):
    """Fixed header + body."""
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def connect_packet(client_id="", level=5, clean=True, keepalive=0, props=None, will=None,
                   username=None, password=None, protocol_name=None, flags_extra=0):
    """will: dict(topic=, payload=, qos=0, retain=False, props=None)."""
    name = protocol_name or ("MQIsdp" if level == 3 else "MQTT")
    flags = flags_extra
    if clean:
        flags |= 0x02
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = mstr(name) + bytes([level, flags]) + u16(keepalive)
    if level == 5:
        body += encode_props(props)
    body += mstr(client_id)
    if will:
        if level == 5:
            body += encode_props(will.get("props"))
        payload = will.get("payload", b"")
        if isinstance(payload, str):
            payload = payload.encode()
        body += mstr(will["topic"]) + u16(len(payload)) + payload
    if username is not None:
        body += mstr(username)
    if password is not None:
        body += mstr(password)
    return packet(CONNECT, 0, body)


def publish_packet(topic, payload=b"", qos=0, pid=None, retain=False, dup=False, props=None,
                   level=5):
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = mstr(topic)
    if qos:
        body += u16(pid if pid is not None else 1)
    if level == 5:
        body += encode_props(props)
    return packet(PUBLISH, flags, body + payload)


def ack_packet(ptype, pid, reason=None, props=None, level=5):
    """PUBACK, PUBREC, PUBREL, PUBCOMP."""
    body = u16(pid)
    if level == 5 and (reason is not None or props is not None):
        body += bytes([reason or 0])
        if props is not None:
            body += encode_props(props)
    return packet(ptype, 2 if ptype == PUBREL else 0, body)


def subscribe_packet(pid, filters, props=None, level=5, flags=2):
    """filters: [(filter, options byte)] (the options byte is the QoS
    before 5.0)."""
    body = u16(pid)
    if level == 5:
        body += encode_props(props)
    for f, opts in filters:
        body += mstr(f) + bytes([opts])
    return packet(SUBSCRIBE, flags, body)


def sub_options(qos=0, no_local=False, retain_as_published=False, retain_handling=0):
    return qos | (4 if no_local else 0) | (8 if retain_as_published else 0) | (retain_handling << 4)


def unsubscribe_packet(pid, filters, props=None, level=5):
    body = u16(pid)
    if level == 5:
        body += encode_props(props)
    for f in filters:
        body += mstr(f)
    return packet(UNSUBSCRIBE, 2, body)


def pingreq_packet():
    return b"\xc0\x00"


def disconnect_packet(reason=None, props=None, level=5):
    body = b""
    if level == 5 and (reason is not None or props is not None):
        body = bytes([reason or 0])
        if props is not None:
            body += encode_props(props)
    return packet(DISCONNECT, 0, body)


# ---- parsing what the broker sends -----------------------------------------

class Packet:
    """One packet from the broker. Fields present depend on the type:
    CONNACK: session_present, reason, props; PUBLISH: topic, payload, qos,
    dup, retain, pid, props; PUBACK..PUBCOMP: pid, reason, props;
    SUBACK/UNSUBACK: pid, codes, props; DISCONNECT/AUTH: reason, props."""

    def __init__(self, ptype, flags, body):
        self.type = ptype
        self.flags = flags
        self.body = body
        self.props = {}
        self.reason = None
        self.pid = None

    @property
    def name(self):
        return TYPE_NAMES.get(self.type, "TYPE%d" % self.type)

    def __repr__(self):
        d = {k: v for k, v in self.__dict__.items() if k not in ("body", "type", "flags")}
        if "payload" in d:
            d["payload"] = d["payload"][:60]
        return "%s(%r)" % (self.name, d)


class Truncated(Exception):
    pass


class _Reader:
    def __init__(self, data):
        self.d = data
        self.i = 0

    def left(self):
        return len(self.d) - self.i

    def take(self, n):
        if self.i + n > len(self.d):
            raise Truncated("field past the end of the packet")
        b = self.d[self.i:self.i + n]
        self.i += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("!H", self.take(2))[0]

    def u32(self):
        return struct.unpack("!I", self.take(4))[0]

    def varint(self):
        n, mult = 0, 1
        for _ in range(4):
            b = self.u8()
            n += (b & 0x7F) * mult
            if not b & 0x80:
                return n
            mult *= 128
        raise Truncated("bad varint")

    def bin(self):
        return self.take(self.u16())

    def str(self):
        return self.bin().decode("utf-8")

    def props(self):
        n = self.varint()
        end = self.i + n
        out = {}
        while self.i < end:
            pid = self.varint()
            name, kind = PROPS.get(pid, ("0x%02x" % pid, None))
            if kind == "byte":
                v = self.u8()
            elif kind == "u16":
                v = self.u16()
            elif kind == "u32":
                v = self.u32()
            elif kind == "varint":
                v = self.varint()
            elif kind == "str":
                v = self.str()
            elif kind == "bin":
                v = self.bin()
            elif kind == "pair":
                v = (self.str(), self.str())
            else:
                raise Truncated("unknown property 0x%02x" % pid)
            if name in ("user", "sub_id"):
                out.setdefault(name, []).append(v)
            else:
                out[name] = v
        return out


def parse_packet(ptype, flags, body, level):
    p = Packet(ptype, flags, body)
    r = _Reader(body)
    v5 = level == 5
    if ptype == CONNACK:
        f = r.u8()
        p.session_present = bool(f & 1)
        p.ack_flags = f
        p.reason = r.u8()
        if v5 and r.left():
            p.props = r.props()
    elif ptype == PUBLISH:
        p.qos = (flags >> 1) & 3
        p.dup = bool(flags & 8)
        p.retain = bool(flags & 1)
        p.topic = r.str()
        if p.qos:
            p.pid = r.u16()
        if v5:
            p.props = r.props()
        p.payload = r.take(r.left())
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        p.pid = r.u16()
        p.reason = 0
        if v5 and r.left():
            p.reason = r.u8()
            if r.left():
                p.props = r.props()
    elif ptype in (SUBACK, UNSUBACK):
        p.pid = r.u16()
        if v5:
            p.props = r.props()
        p.codes = list(r.take(r.left()))
    elif ptype in (DISCONNECT, AUTH):
        p.reason = 0
        if v5 and r.left():
            p.reason = r.u8()
            if r.left():
                p.props = r.props()
    if r.left():
        raise AssertionError("trailing bytes in %s from the broker: %r" % (p.name, body))
    return p


class RawMqtt(RawSocket):
    """An MQTT client on a bare socket. Packets read are parsed at `level`;
    expect() takes the first one that matches (from what was already read,
    then from the socket) and keeps the others for later. `closed` is set
    once the broker closes."""

    def __init__(self, port, level=5, timeout=TIMEOUT, rcvbuf=None):
        super().__init__(port, timeout, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.level = level
        self.inbox = []   # parsed, not yet taken
        self.seen = []    # every packet read, in order
        self._pids = itertools.count(1)

    def next_pid(self):
        return next(self._pids) % 65535 + 1

    def abort(self):
        """Closes with a TCP reset: an abnormal close, no DISCONNECT."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    # -- reading --

    def _parse(self):
        if len(self.buf) < 2:
            return None
        n, mult, i = 0, 1, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            n += (b & 0x7F) * mult
            i += 1
            if not b & 0x80:
                break
            mult *= 128
            if i > 4:
                raise AssertionError("bad remaining length from the broker: %r" % self.buf[:8])
        if len(self.buf) < i + n:
            return None
        first = self.buf[0]
        body = self.buf[i:i + n]
        self.buf = self.buf[i + n:]
        p = parse_packet(first >> 4, first & 0x0F, body, self.level)
        self.seen.append(p)
        return p

    def read(self, timeout=TIMEOUT):
        """The next packet (taken from the inbox first), or None on timeout
        or once the broker closed."""
        if self.inbox:
            return self.inbox.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            p = self._parse()
            if p is not None:
                return p
            if not self._fill(deadline):
                return self._parse()

    def expect(self, ptype, pred=None, timeout=TIMEOUT):
        """The first packet of this type (and pred) within the deadline;
        others read meanwhile stay in the inbox. Raises AssertionError."""
        for i, p in enumerate(self.inbox):
            if p.type == ptype and (pred is None or pred(p)):
                return self.inbox.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            p = self._parse()
            if p is None:
                if not self._fill(deadline):
                    p = self._parse()
                    if p is None:
                        raise AssertionError(
                            "no %s within %ss (closed=%s); read %r"
                            % (TYPE_NAMES[ptype], timeout, self.closed, self.seen[-10:]))
                else:
                    continue
            if p.type == ptype and (pred is None or pred(p)):
                return p
            self.inbox.append(p)

    def expect_none(self, ptype, wait=0.5):
        """Asserts no packet of this type arrives within `wait` seconds."""
        deadline = time.monotonic() + wait
        for p in self.inbox:
            if p.type == ptype:
                raise AssertionError("unexpected %r" % p)
        while time.monotonic() < deadline:
            p = self._parse()
            if p is None:
                if not self._fill(deadline):
                    break
                continue
            if p.type == ptype:
                raise AssertionError("unexpected %r" % p)
            self.inbox.append(p)

    def wait_closed(self, timeout=TIMEOUT):
        """Reads until the broker closes; returns every packet read meanwhile
        (the inbox included). Raises if the connection stays open."""
        deadline = time.monotonic() + timeout
        got = list(self.inbox)
        self.inbox = []
        while not self.closed:
            p = self._parse()
            if p is not None:
                got.append(p)
                continue
            if not self._fill(deadline) and not self.closed:
                raise AssertionError("broker did not close the connection within %ss; read %r"
                                     % (timeout, got))
        while True:
            p = self._parse()
            if p is None:
                break
            got.append(p)
        return got

    # -- writing --

    def connect(self, client_id="", clean=True, keepalive=0, props=None, will=None,
                username=None, password=None, expect_ok=True, **kw):
        self.send(connect_packet(client_id, self.level, clean, keepalive, props, will,
                                 username, password, **kw))
        ack = self.expect(CONNACK)
        if expect_ok and ack.reason != 0:
            raise AssertionError("CONNACK refused: %r" % ack)
        return ack

    def publish(self, topic, payload=b"", qos=0, pid=None, retain=False, dup=False, props=None):
        if qos and pid is None:
            pid = self.next_pid()
        self.send(publish_packet(topic, payload, qos, pid, retain, dup, props, self.level))
        return pid

    def publish_acked(self, topic, payload=b"", qos=1, props=None, retain=False):
        """QoS 1: waits for PUBACK; QoS 2: the whole exchange. Returns the
        PUBACK / PUBREC."""
        pid = self.publish(topic, payload, qos, retain=retain, props=props)
        if qos == 1:
            return self.expect(PUBACK, lambda p: p.pid == pid)
        rec = self.expect(PUBREC, lambda p: p.pid == pid)
        if rec.reason < 0x80:
            self.send(ack_packet(PUBREL, pid, level=self.level))
            self.expect(PUBCOMP, lambda p: p.pid == pid)
        return rec

    def ack(self, ptype, pid, reason=None, props=None):
        self.send(ack_packet(ptype, pid, reason, props, self.level))

    def subscribe(self, filters, props=None, pid=None):
        """filters: a filter string, or [(filter, options)]. Returns SUBACK."""
        if isinstance(filters, str):
            filters = [(filters, 1)]
        pid = pid or self.next_pid()
        self.send(subscribe_packet(pid, filters, props, self.level))
        return self.expect(SUBACK, lambda p: p.pid == pid)

    def unsubscribe(self, filters, props=None):
        if isinstance(filters, str):
            filters = [filters]
        pid = self.next_pid()
        self.send(unsubscribe_packet(pid, filters, props, self.level))
        return self.expect(UNSUBACK, lambda p: p.pid == pid)

    def ping(self, timeout=TIMEOUT):
        self.send(pingreq_packet())
        return self.expect(PINGRESP, timeout=timeout)

    def disconnect(self, reason=None, props=None):
        self.send(disconnect_packet(reason, props, self.level))

    def sync(self, timeout=TIMEOUT):
        """A PINGREQ round trip: once it returns, everything the broker sent
        on this connection before it read the PINGREQ has been read."""
        self.ping(timeout)

# ---- paho side ---------------------------------------------------------------

VERSIONS = {3: mqtt.MQTTv31, 4: mqtt.MQTTv311, 5: mqtt.MQTTv5}

_PAHO_PROPS = [("PayloadFormatIndicator", "payload_format"),
               ("MessageExpiryInterval", "message_expiry"),
               ("ContentType", "content_type"),
               ("ResponseTopic", "response_topic"),
               ("CorrelationData", "correlation_data"),
               ("SubscriptionIdentifier", "sub_id"),
               ("UserProperty", "user"),
               ("TopicAlias", "topic_alias")]

def props_of(p):
    """A paho Properties object as a plain dict with this module's names."""
    out = {}
    if p is None:
        return out
    for attr, name in _PAHO_PROPS:
        if hasattr(p, attr):
            out[name] = getattr(p, attr)
    return out

def paho_props(ptype, **kw):
    """A paho Properties object for packet type ptype (a PacketTypes value),
    from this module's names: paho_props(PacketTypes.PUBLISH, content_type=..)."""
    p = Properties(ptype)
    names = dict((n, a) for a, n in _PAHO_PROPS)
    names.update(session_expiry="SessionExpiryInterval", receive_maximum="ReceiveMaximum",
                 will_delay="WillDelayInterval", sub_id="SubscriptionIdentifier",
                 maximum_packet_size="MaximumPacketSize")
    for k, v in kw.items():
        setattr(p, names[k], v)
    return p

SYNC_PREFIX = b"\x00wharf-test-sync-"
_sync_ids = (("%d-%d" % (os.getpid(), i)).encode() for i in itertools.count())


class Msg:
    def __init__(self, m):
        self.topic = m.topic
        self.payload = m.payload
        self.qos = m.qos
        self.retain = bool(m.retain)
        self.dup = bool(m.dup)
        self.mid = m.mid
        self.props = props_of(getattr(m, "properties", None))

    def __repr__(self):
        return "Msg(%s, %r, qos=%d, retain=%s, props=%r)" % (
            self.topic, self.payload[:60], self.qos, self.retain, self.props)


class Paho:
    """A paho client on its own network thread. Every wait has a deadline
    and raises AssertionError saying what did arrive."""

    def __init__(self, port, client_id="", level=5, clean=True, keepalive=60, props=None,
                 will=None, username=None, password=None, max_inflight=None):
        self.port = port
        self.level = level
        self.cond = threading.Condition()
        self.messages = []
        self.sync_seen = set()
        self.connacks = []       # (flags dict, rc int, props dict)
        self.subacks = {}        # mid -> [codes]
        self.unsubacks = {}      # mid -> [codes]
        self.published = set()   # mids acknowledged
        self.disconnects = []    # rc of each on_disconnect
        self.clean = clean
        self.keepalive = keepalive
        self.connect_props = props
        kw = {}
        if level != 5:
            kw["clean_session"] = clean
        # No automatic reconnection: a test decides when a client comes back.
        self.c = mqtt.Client(client_id=client_id, protocol=VERSIONS[level],
                             reconnect_on_failure=False, **kw)
        if max_inflight:
            self.c.max_inflight_messages_set(max_inflight)
        if will:
            self.c.will_set(will["topic"], will.get("payload"), will.get("qos", 0),
                            will.get("retain", False), will.get("props"))
        if username is not None:
            self.c.username_pw_set(username, password)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_publish = self._on_publish
        self.c.on_disconnect = self._on_disconnect
        self.started = False

    # callbacks (network thread)
    def _on_connect(self, c, ud, flags, rc, props=None):
        with self.cond:
            self.connacks.append((flags, int(rc.value if hasattr(rc, "value") else rc),
                                  props))
            self.cond.notify_all()

    def _on_message(self, c, ud, m):
        with self.cond:
            if m.payload.startswith(SYNC_PREFIX):
                self.sync_seen.add(m.payload)  # sync() markers are not messages
            else:
                self.messages.append(Msg(m))
            self.cond.notify_all()

    def _on_subscribe(self, c, ud, mid, granted, props=None):
        codes = [g.value if hasattr(g, "value") else g for g in granted]
        with self.cond:
            self.subacks[mid] = codes
            self.cond.notify_all()

    def _on_unsubscribe(self, c, ud, mid, props=None, codes=None):
        if codes is None:
            codes = []
        elif not isinstance(codes, list):
            codes = [codes]
        with self.cond:
            self.unsubacks[mid] = [x.value if hasattr(x, "value") else x for x in codes]
            self.cond.notify_all()

    def _on_publish(self, c, ud, mid):
        with self.cond:
            self.published.add(mid)
            self.cond.notify_all()

    def _on_disconnect(self, c, ud, rc, props=None):
        with self.cond:
            self.disconnects.append(rc.value if hasattr(rc, "value") else rc)
            self.cond.notify_all()

    # waiting (test thread)
    def wait_for(self, pred, timeout=TIMEOUT, what="condition"):
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise AssertionError("timed out waiting for %s; have %d messages, last %r"
                                     % (what, len(self.messages), self.messages[-5:]))

    def connect(self, timeout=TIMEOUT, expect_rc=0):
        """Connects; returns (session_present, rc, props dict)."""
        kw = {}
        if self.level == 5:
            kw["clean_start"] = self.clean
            if self.connect_props is not None:
                kw["properties"] = self.connect_props
        n = len(self.connacks)
        self.c.connect("127.0.0.1", self.port, self.keepalive, **kw)
        if not self.started:
            self.c.loop_start()
            self.started = True
        self.wait_for(lambda: len(self.connacks) > n, timeout, "CONNACK")
        flags, rc, props = self.connacks[-1]
        if expect_rc is not None and rc != expect_rc:
            raise AssertionError("CONNACK rc %r, wanted %r" % (rc, expect_rc))
        pd = {}
        if props is not None:
            for attr in dir(props):
                if attr[:1].isupper() and attr not in ("Names", "Types"):
                    pd[attr] = getattr(props, attr)
        return bool(flags.get("session present")), rc, pd

    def subscribe(self, topic, qos=1, options=None, props=None, timeout=TIMEOUT):
        """Subscribes and waits for SUBACK; returns the codes."""
        if self.level == 5 and options is None and not isinstance(topic, list):
            options = SubscribeOptions(qos=qos)
        if isinstance(topic, list):
            rc, mid = self.c.subscribe(topic, properties=props)
        elif options is not None:
            rc, mid = self.c.subscribe(topic, options=options, properties=props)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        if rc != 0:
            raise AssertionError("subscribe failed locally: %d" % rc)
        self.wait_for(lambda: mid in self.subacks, timeout, "SUBACK")
        return self.subacks[mid]

    def unsubscribe(self, topic, timeout=TIMEOUT):
        rc, mid = self.c.unsubscribe(topic)
        self.wait_for(lambda: mid in self.unsubacks, timeout, "UNSUBACK")
        return self.unsubacks[mid]

    def publish(self, topic, payload, qos=0, retain=False, props=None, wait=True,
                timeout=TIMEOUT):
        """Publishes; with wait, until acknowledged (PUBACK / PUBCOMP) or, at
        QoS 0, written."""
        info = self.c.publish(topic, payload, qos, retain, props)
        if info.rc != 0:
            raise AssertionError("publish failed locally: %s" % mqtt.error_string(info.rc))
        if wait:
            self.wait_for(lambda: info.mid in self.published, timeout,
                          "acknowledgement of %s" % topic)
        return info

    def wait_all_published(self, infos, timeout=TIMEOUT):
        mids = [i.mid for i in infos]
        self.wait_for(lambda: all(m in self.published for m in mids), timeout,
                      "%d acknowledgements" % len(mids))

    def wait_messages(self, n, timeout=TIMEOUT):
        """Waits for at least n messages; returns a copy of all so far."""
        self.wait_for(lambda: len(self.messages) >= n, timeout, "%d messages" % n)
        with self.cond:
            return list(self.messages)

    def wait_payload(self, payload, timeout=TIMEOUT):
        self.wait_for(lambda: any(m.payload == payload for m in self.messages), timeout,
                      "message %r" % (payload,))
        with self.cond:
            return [m for m in self.messages if m.payload == payload]

    def wait_disconnected(self, timeout=TIMEOUT):
        self.wait_for(lambda: self.disconnects, timeout, "the disconnect")
        return self.disconnects[0]

    def payloads(self, topic=None):
        with self.cond:
            return [m.payload for m in self.messages if topic is None or m.topic == topic]

    def count(self):
        with self.cond:
            return len(self.messages)

    def clear(self):
        with self.cond:
            self.messages = []

    def sync(self, topic, timeout=TIMEOUT):
        """A round trip through the broker: publishes a QoS 1 marker to
        `topic`, which this client must be subscribed to (at QoS 1 or 2),
        and waits for it; everything published to that topic before has then
        arrived (order per topic is kept). Markers never show in messages,
        on any client."""
        marker = SYNC_PREFIX + next(_sync_ids)
        self.publish(topic, marker, qos=1)
        self.wait_for(lambda: marker in self.sync_seen, timeout, "sync marker on " + topic)

    def disconnect(self, timeout=5, reason=None, props=None):
        """A normal DISCONNECT, then stops the network thread."""
        try:
            if reason is not None or props is not None:
                from paho.mqtt.reasoncodes import ReasonCodes
                rc = ReasonCodes(PacketTypes.DISCONNECT, identifier=reason or 0)
                self.c.disconnect(rc, props)
            else:
                self.c.disconnect()
            self.wait_for(lambda: self.disconnects, timeout, "the disconnect")
        except Exception:
            pass
        self.stop()

    def stop(self, timeout=5):
        """Stops the network thread without a DISCONNECT (if still up, the
        socket stays open until close()). paho's loop_stop() waits without a
        deadline for unacknowledged messages; past `timeout` the socket is
        shut down to end the thread."""
        if not self.started:
            return
        self.started = False
        th = self.c._thread
        self.c._thread_terminate = True
        if th is None or th is threading.current_thread():
            return
        th.join(timeout)
        if th.is_alive():
            sock = self.c.socket()
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            th.join(timeout)
        self.c._thread = None

    def kill(self):
        """An abnormal close: the socket goes without DISCONNECT."""
        sock = self.c.socket()
        self.c.on_disconnect = None
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.stop()
        try:
            if sock is not None:
                sock.close()
        except OSError:
            pass

    def close(self):
        if self.started:
            self.disconnect()
        self.stop()
        try:
            s = self.c.socket()
            if s is not None:
                s.close()
        except Exception:
            pass


# ---- mosquitto command-line clients ------------------------------------------

MOSQ_VERSIONS = {3: "mqttv31", 4: "mqttv311", 5: "mqttv5"}


def mosquitto_pub(port, topic, payload, qos=0, level=4, retain=False, extra=(), timeout=TIMEOUT):
    """Runs mosquitto_pub once; asserts it exits 0."""
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", MOSQ_VERSIONS[level],
           "-t", topic, "-q", str(qos), "-m", payload] + (["-r"] if retain else []) + list(extra)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("%s exited %d: %s" % (cmd, r.returncode, r.stdout))


class MosquittoSub:
    """mosquitto_sub in the background, with -d so that the test knows when
    the subscription is live. Messages are read as (qos, retain, topic,
    payload) from -F output lines."""

    FMT = "MSG|%q|%r|%t|%p"

    def __init__(self, port, topic, qos=0, level=4, extra=()):
        # stdbuf: mosquitto_sub's stdout is a pipe here, line buffering
        # makes each line reach us as it is printed.
        cmd = ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port),
               "-V", MOSQ_VERSIONS[level],
               "-t", topic, "-q", str(qos), "-d", "-F", self.FMT] + list(extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.cond = threading.Condition()
        self.lines = []
        self.messages = []
        self.subscribed = False
        self.eof = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                if line.startswith("Subscribed (mid"):
                    self.subscribed = True
                if line.startswith("MSG|"):
                    _, q, r, t, p = line.split("|", 4)
                    self.messages.append((int(q), int(r), t, p))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_for(self, pred, timeout=TIMEOUT, what="condition"):
        with self.cond:
            if not self.cond.wait_for(lambda: pred() or self.eof, timeout) or not pred():
                raise AssertionError("mosquitto_sub: timed out waiting for %s; output:\n%s"
                                     % (what, "\n".join(self.lines[-30:])))

    def wait_subscribed(self, timeout=TIMEOUT):
        self.wait_for(lambda: self.subscribed, timeout, "SUBACK")

    def wait_messages(self, n, timeout=TIMEOUT):
        self.wait_for(lambda: len(self.messages) >= n, timeout, "%d messages" % n)
        with self.cond:
            return list(self.messages)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(5)
        self.proc.stdout.close()


# ---- a bystander -------------------------------------------------------------

class MqttBystander:
    """A well-behaved paho 3.1.1 client that keeps publishing numbered QoS 1
    messages to its own topic and receiving them, from a thread, while a
    test misbehaves on other connections. check() stops it and asserts it
    received every message it had acknowledged, once, in order, and was
    never disconnected."""

    def __init__(self, port, topic, interval=0.005):
        self.topic = topic
        self.p = Paho(port, "bystander-%d" % os.getpid() + topic.replace("/", "-"), level=4)
        self.p.connect()
        self.p.subscribe(topic, 1)
        self.sent = 0
        self.stop_ev = threading.Event()
        self.failure = None
        self.interval = interval
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.stop_ev.is_set():
                self.p.publish(self.topic, b"b-%06d" % self.sent, qos=1, wait=True)
                self.sent += 1
                self.stop_ev.wait(self.interval)
        except Exception as e:  # reported by check()
            self.failure = e

    def wait_progress(self, n=5, timeout=TIMEOUT):
        start = self.p.count()
        self.p.wait_for(lambda: len(self.p.messages) >= start + n or self.p.disconnects,
                        timeout, "bystander progress")

    def check(self, testcase):
        self.wait_progress()
        self.stop_ev.set()
        self.thread.join(TIMEOUT)
        testcase.assertIsNone(self.failure, "bystander could not publish: %r" % self.failure)
        testcase.assertEqual(self.p.disconnects, [], "bystander was disconnected")
        expected = [b"b-%06d" % i for i in range(self.sent)]
        self.p.wait_messages(self.sent)
        testcase.assertEqual(self.p.payloads(), expected)

    def close(self):
        self.stop_ev.set()
        self.thread.join(TIMEOUT)
        self.p.close()


# ---- the test case -------------------------------------------------------------

class MqttTestCase(BrokerTestCase):
    """A shared broker per class with MQTT and STOMP listeners; clients
    opened with self.paho() / self.raw() are closed after each test."""

    protocols = ("mqtt", "stomp")
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
        return self.broker.ports["mqtt"]

    @property
    def stomp_port(self):
        return self.broker.ports["stomp"]

    def on_teardown(self, fn):
        self._closers.append(fn)

    def paho(self, client_id=None, level=5, connect=True, **kw):
        """A paho client, connected unless connect=False."""
        if client_id is None:
            client_id = self.client_id()
        p = Paho(self.port, client_id, level, **kw)
        self._closers.append(p.close)
        if connect:
            p.connect()
        return p

    def mosquitto_sub(self, topic, qos=0, level=4, extra=()):
        """A live mosquitto_sub (SUBACK received)."""
        m = MosquittoSub(self.port, topic, qos, level, extra)
        self._closers.append(m.close)
        m.wait_subscribed()
        return m

    def raw(self, level=5, connect=False, client_id=None, rcvbuf=None, **kw):
        r = RawMqtt(self.port, level, rcvbuf=rcvbuf)
        self._closers.append(r.close)
        if connect:
            r.connect(client_id if client_id is not None else self.client_id(), **kw)
        return r

    def client_id(self, tag="c"):
        return "%s-%s-%d" % (self._testMethodName[5:30], tag, next(self._names))

    def topic(self, stem=None):
        """An MQTT topic name no other test in this process uses."""
        stem = stem or self._testMethodName.replace("_", "-")
        return "t/%s-%d" % (stem, next(self._names))
