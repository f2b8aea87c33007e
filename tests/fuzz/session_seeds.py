#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_stomp_session and fuzz_mqtt_session
(tests/fuzz/corpus/{stomp,mqtt}_session/). The frames are the bytes
stomp.py 8 and paho-mqtt 2 put on the wire for the same calls (header order
and spacing as they write them); session_harness.h says how an input is laid
out: a flags byte, the length of client A's bytes, A's bytes, B's bytes."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def harness(a, b, piece=0, timers=False, shutdown=False, option=False):
    flags = (piece & 63) | (64 if timers else 0) | (128 if shutdown else 0)
    return bytes([flags]) + struct.pack('<H', len(a) | (0x8000 if option else 0)) + a + b


def rounds(piece, chunks, pad_even, pad_odd=None):
    """A client's bytes such that each chunk arrives in a round of its own
    when pieces are `piece` bytes: each is padded with `pad_even` (and once
    `pad_odd`, of odd length, where needed) to a multiple of piece."""
    out = b''
    for c in chunks:
        left = -len(c) % piece
        if left % len(pad_even) and pad_odd:
            c += pad_odd
            left = -len(c) % piece
        c += pad_even * (left // len(pad_even))
        out += c
    return out


# ---- STOMP (stomp.py's framing: command, headers, blank line, body, NUL) ----

def frame(cmd, headers=(), body=b''):
    out = cmd.encode() + b'\n'
    for k, v in headers:
        out += ('%s:%s\n' % (k, v)).encode()
    if body:
        out += b'content-length:%d\n' % len(body)
    return out + b'\n' + body + b'\x00'


def connect(version='1.2', client_id=None, hb='0,0'):
    h = [('accept-version', version), ('host', 'localhost'), ('heart-beat', hb)]
    if client_id:
        h.append(('client-id', client_id))
    return frame('CONNECT', h)


def stomp_seeds():
    s = {}
    sub = frame('SUBSCRIBE', [('destination', '/queue/q'), ('id', '1'), ('ack', 'client-individual')])
    send = frame('SEND', [('destination', '/queue/q'), ('persistent', 'true'), ('receipt', 'r1')], b'hello')
    s['queue-ack'] = harness(connect() + sub + frame('ACK', [('id', '1-1')]) + frame('NACK', [('id', '1-2')]),
                             connect() + send + send + frame('DISCONNECT', [('receipt', 'd')]))
    s['queue-client-ack-11'] = harness(
        connect('1.1') + frame('SUBSCRIBE', [('destination', '/queue/q'), ('id', 's'), ('ack', 'client')]) +
        frame('ACK', [('subscription', 's'), ('message-id', '1')]),
        connect('1.1') + send * 3, piece=7, option=True)
    s['topic-wildcards'] = harness(
        connect() + frame('SUBSCRIBE', [('destination', '/topic/a.*'), ('id', '1')]) +
        frame('SUBSCRIBE', [('destination', '/topic/a.>'), ('id', '2'), ('ack', 'client')]) +
        frame('UNSUBSCRIBE', [('id', '1')]),
        connect() + frame('SEND', [('destination', '/topic/a.b'), ('x-user', 'v')], b'x' * 40) +
        frame('SEND', [('destination', '/topic/a.b.c')], b'y'))
    s['transactions'] = harness(
        connect() + frame('BEGIN', [('transaction', 't1')]) +
        frame('SEND', [('destination', '/queue/tq'), ('transaction', 't1')], b'in tx') +
        frame('COMMIT', [('transaction', 't1'), ('receipt', 'c')]) +
        frame('BEGIN', [('transaction', 't2')]) +
        frame('SEND', [('destination', '/queue/tq'), ('transaction', 't2')], b'gone') +
        frame('ABORT', [('transaction', 't2')]),
        connect() + frame('SUBSCRIBE', [('destination', '/queue/tq'), ('id', '1'), ('ack', 'client-individual')]) +
        frame('BEGIN', [('transaction', 'x')]) + frame('ACK', [('id', '1-1'), ('transaction', 'x')]) +
        frame('ABORT', [('transaction', 'x')]), piece=11)
    s['durable'] = harness(
        connect(client_id='c1') +
        frame('SUBSCRIBE', [('destination', '/topic/d.t'), ('id', 'd1'), ('activemq.subscriptionName', 'dur'),
                            ('ack', 'client-individual'), ('receipt', 'r')]) +
        frame('DISCONNECT', []) + connect(client_id='c1') +
        frame('SUBSCRIBE', [('destination', '/topic/d.t'), ('id', 'd1'), ('activemq.subscriptionName', 'dur')]) +
        frame('UNSUBSCRIBE', [('id', 'd1'), ('activemq.subscriptionName', 'dur')]),
        connect() + frame('SEND', [('destination', '/topic/d.t'), ('persistent', 'true')], b'kept'),
        piece=5)
    s['durable-rabbit'] = harness(
        connect() + frame('SUBSCRIBE', [('destination', '/topic/r.t'), ('id', 'sub-1'), ('durable', 'true'),
                                        ('auto-delete', 'false'), ('ack', 'client')]),
        connect() + frame('SEND', [('destination', '/topic/r.t')], b'r'), shutdown=True)
    s['temp-queue'] = harness(
        connect() + frame('SEND', [('destination', '/queue/svc'), ('reply-to', '/temp-queue/rq')], b'req') +
        frame('SUBSCRIBE', [('destination', '/temp-queue/rq'), ('id', '9')]),
        connect() + frame('SUBSCRIBE', [('destination', '/queue/svc'), ('id', '1')]))
    s['heartbeats'] = harness(connect(hb='1000,1000') + b'\n\n' + frame('SEND', [('destination', '/queue/h')], b'b'),
                              connect('1.0') + b'\r\n', timers=True)
    s['errors'] = harness(frame('SEND', [('destination', '/queue/x')]) + connect(),
                          connect('1.3') + connect() + frame('BOGUS'))
    s['headers-escapes'] = harness(
        connect() + frame('SEND', [('destination', '/queue/e'), ('k\\c', 'v\\n\\r'), ('priority', '9'),
                                   ('expires', '1'), ('correlation-id', 'cid')], b'\x00\x01'),
        connect() + frame('SUBSCRIBE', [('destination', '/queue/e'), ('id', '1'),
                                        ('activemq.prefetchSize', '1'), ('ack', 'client-individual')]) +
        frame('NACK', [('id', '1-1'), ('requeue', 'false')]), timers=True, shutdown=True)
    # Round by round: A subscribes, B sends, A acks what came, B sends
    # inside a transaction, A nacks, both go.
    P = 63
    a = rounds(P, [connect() + frame('SUBSCRIBE', [('destination', '/queue/r'), ('id', '1'),
                                                    ('ack', 'client-individual')]),
                   b'', frame('ACK', [('id', '1-1'), ('receipt', 'a')]),
                   frame('NACK', [('id', '1-2')]) + frame('UNSUBSCRIBE', [('id', '1')])], b'\n')
    b = rounds(P, [connect(), frame('SEND', [('destination', '/queue/r')], b'1') +
                   frame('SEND', [('destination', '/queue/r')], b'2'),
                   frame('BEGIN', [('transaction', 't')]) +
                   frame('SEND', [('destination', '/queue/r'), ('transaction', 't')], b'3') +
                   frame('COMMIT', [('transaction', 't')])], b'\n')
    s['rounds-queue'] = harness(a, b, piece=P)
    a = rounds(P, [connect(client_id='dur') + frame('SUBSCRIBE', [('destination', '/topic/x'), ('id', '1'),
                                                                  ('activemq.subscriptionName', 'n'),
                                                                  ('ack', 'client')]),
                   frame('DISCONNECT', []), b'', connect(client_id='dur') +
                   frame('SUBSCRIBE', [('destination', '/topic/x'), ('id', '1'), ('activemq.subscriptionName', 'n'),
                                       ('ack', 'client')]), frame('ACK', [('id', '1-2')])], b'\n')
    b = rounds(P, [connect(), b'', frame('SEND', [('destination', '/topic/x'), ('persistent', 'true')], b'a') +
                   frame('SEND', [('destination', '/topic/x')], b'b')], b'\n')
    s['rounds-durable'] = harness(a, b, piece=P, timers=True)
    return s


# ---- MQTT (paho-mqtt's packets) ------------------------------------------------

def varint(n):
    out = b''
    while True:
        d = n % 128
        n //= 128
        out += bytes([d | (128 if n else 0)])
        if not n:
            return out


def string(x):
    if isinstance(x, str):
        x = x.encode()
    return struct.pack('>H', len(x)) + x


def packet(ptype, flags, body):
    return bytes([ptype << 4 | flags]) + varint(len(body)) + body


def props(p=b''):
    return varint(len(p)) + p


def mconnect(level=4, cid='c', clean=True, keepalive=60, will=None, v5props=b'', will_props=b'',
             user=None, password=None):
    name = b'MQIsdp' if level == 3 else b'MQTT'
    flags = (2 if clean else 0)
    payload = string(cid)
    if will:
        topic, msg, qos, retain = will
        flags |= 4 | qos << 3 | (32 if retain else 0)
        if level == 5:
            payload += props(will_props)
        payload += string(topic) + string(msg)
    if user is not None:
        flags |= 128
        payload += string(user)
    if password is not None:
        flags |= 64
        payload += string(password)
    body = string(name) + bytes([level, flags]) + struct.pack('>H', keepalive)
    if level == 5:
        body += props(v5props)
    return packet(1, 0, body + payload)


def subscribe(pid, filters, level=4, sprops=b''):
    body = struct.pack('>H', pid) + (props(sprops) if level == 5 else b'')
    for f, opt in filters:
        body += string(f) + bytes([opt])
    return packet(8, 2, body)


def unsubscribe(pid, filters, level=4):
    body = struct.pack('>H', pid) + (props() if level == 5 else b'')
    for f in filters:
        body += string(f)
    return packet(10, 2, body)


def publish(topic, payload, qos=0, pid=1, retain=False, dup=False, level=4, pprops=b''):
    body = string(topic)
    if qos:
        body += struct.pack('>H', pid)
    if level == 5:
        body += props(pprops)
    return packet(3, qos << 1 | (1 if retain else 0) | (8 if dup else 0), body + payload)


def ack(ptype, pid, level=4, rc=None):
    body = struct.pack('>H', pid)
    if level == 5 and rc is not None:
        body += bytes([rc]) + props()
    return packet(ptype, 2 if ptype == 6 else 0, body)


PINGREQ = packet(12, 0, b'')


def disconnect(level=4, rc=0, dprops=b''):
    if level == 5:
        return packet(14, 0, bytes([rc]) + props(dprops))
    return packet(14, 0, b'')


def u32prop(pid, v):
    return bytes([pid]) + struct.pack('>I', v)


def u16prop(pid, v):
    return bytes([pid]) + struct.pack('>H', v)


def mqtt_seeds():
    s = {}
    s['v4-qos012'] = harness(
        mconnect(4, 'sub') + subscribe(1, [('a/b', 2), ('a/+', 1), ('#', 0)]) +
        ack(4, 1) + ack(5, 2) + ack(7, 2),
        mconnect(4, 'pub') + publish('a/b', b'q0') + publish('a/b', b'q1', 1, 1) +
        publish('a/b', b'q2', 2, 2) + ack(6, 2) + PINGREQ + disconnect())
    s['v3-retain'] = harness(
        mconnect(3, 'old') + publish('r/t', b'kept', 1, 1, retain=True) + publish('r/u', b'', 0, retain=True),
        mconnect(3, 'late') + subscribe(1, [('r/#', 1)]) + unsubscribe(2, ['r/#']), piece=9)
    s['v5-shared'] = harness(
        mconnect(5, 'm1') + subscribe(1, [('$share/g/s/+', 1)], 5) + ack(4, 1, 5, 0),
        mconnect(5, 'm2') + subscribe(1, [('$share/g/s/+', 1)], 5) +
        publish('s/1', b'one', 1, 5, level=5) + publish('s/2', b'two', 1, 6, level=5) +
        ack(4, 1, 5, 0x80), piece=13)
    s['v5-will-delay'] = harness(
        mconnect(5, 'w', will=('w/t', b'gone', 1, True), will_props=u32prop(0x18, 5),
                 v5props=u32prop(0x11, 60)),
        mconnect(5, 'watch') + subscribe(1, [('w/#', 2)], 5), timers=True)
    s['sys'] = harness(mconnect(4, 'sys') + subscribe(1, [('$SYS/#', 0)]) + publish('$SYS/x', b'no'),
                       mconnect(5, 'x') + subscribe(1, [('#', 1)], 5), timers=True, option=True)
    s['v5-topic-alias'] = harness(
        mconnect(5, 'al', v5props=u16prop(0x22, 10) + u16prop(0x21, 2)) +
        publish('al/x', b'1', 0, level=5, pprops=u16prop(0x23, 1)) +
        publish('', b'2', 1, 3, level=5, pprops=u16prop(0x23, 1)) +
        publish('al/y', b'3', 2, 4, level=5, pprops=u16prop(0x23, 2) + u32prop(0x02, 1)) + ack(6, 4, 5, 0),
        mconnect(5, 'rm', v5props=u16prop(0x21, 1)) + subscribe(7, [('al/#', 2)], 5, varint(0) and b'\x0b\x05'),
        piece=3)
    s['takeover'] = harness(
        mconnect(4, 'same', clean=False) + subscribe(1, [('t/#', 1)]) + publish('t/x', b'a', 1, 2),
        mconnect(4, 'same', clean=False) + publish('t/x', b'b', 1, 1) + ack(4, 1) + disconnect() +
        mconnect(4, 'same', clean=True), piece=20)
    s['v5-session-expiry'] = harness(
        mconnect(5, 'p', clean=False, v5props=u32prop(0x11, 100)) + subscribe(1, [('e/+', 2)], 5) +
        disconnect(5) + mconnect(5, 'p', clean=False, v5props=u32prop(0x11, 100)),
        mconnect(5, 'q') + publish('e/1', b'wait', 2, 9, level=5, pprops=u32prop(0x02, 10)) +
        ack(6, 9, 5, 0) + disconnect(5, 4), timers=True, shutdown=True)
    s['v5-props'] = harness(
        mconnect(5, 'props', v5props=u32prop(0x27, 200) + u16prop(0x21, 5),
                 user='u', password=b'p') +
        publish('x/y', b'{}', 1, 1, level=5,
                pprops=b'\x01\x01' + b'\x03' + string('application/json') + b'\x08' + string('re/ply') +
                b'\x09' + string(b'\x01\x02') + b'\x26' + string('k') + string('v')),
        mconnect(5, 'sub2') + subscribe(2, [('x/#', 0x2e)], 5, b'\x0b\x07'), piece=2)
    s['v5-quota-will-expiry'] = harness(
        mconnect(5, 'qw', clean=False, v5props=u32prop(0x11, 10), will=('qw/w', b'late', 2, True),
                 will_props=u32prop(0x18, 20) + u32prop(0x02, 5)) +
        subscribe(1, [('f/%d' % i, 1) for i in range(9)], 5),
        mconnect(5, 'obs') + subscribe(1, [('qw/#', 2)], 5), timers=True)
    s['bad'] = harness(publish('a', b'x') + mconnect(4), mconnect(4, 'b') + mconnect(4, 'b') +
                       subscribe(1, [('a/#/b', 1)]))
    # Round by round, QoS 2 both ways between two clients, then a
    # take-over of A's persistent session by B with A's will, and a shared
    # group whose member leaves with messages in flight.
    P = 62
    ping, pad, pad5 = PINGREQ, publish('p', b''), publish('pp', b'', level=5)
    a = rounds(P, [mconnect(5, 'A', clean=False, v5props=u32prop(0x11, 300),
                            will=('will/a', b'bye', 1, False), will_props=u32prop(0x18, 0)) +
                   subscribe(1, [('q/#', 2), ('$share/g/s', 1)], 5), b'',
                   ack(5, 1, 5, 0) + ack(7, 1, 5, 0) + ack(4, 2, 5, 0), b''], ping, pad5)
    b = rounds(P, [mconnect(5, 'B', v5props=u16prop(0x21, 2)) + subscribe(3, [('will/#', 1)], 5),
                   publish('q/1', b'two', 2, 10, level=5) + ack(6, 10, 5, 0) + publish('s', b'sh', 1, 11, level=5),
                   disconnect(5), mconnect(5, 'A', clean=False, v5props=u32prop(0x11, 300)) +
                   ack(4, 1, 5, 0)], ping, pad5)
    s['rounds-qos2-takeover'] = harness(a, b, piece=P, timers=True)
    a = rounds(P, [mconnect(4, 'm1') + subscribe(1, [('$share/g/t/+', 1)]), b'', b'', disconnect()], ping, pad)
    b = rounds(P, [mconnect(4, 'm2') + subscribe(1, [('$share/g/t/+', 1)]),
                   publish('t/1', b'1', 1, 5) + publish('t/2', b'2', 1, 6) + publish('t/3', b'3', 1, 7),
                   ack(4, 1) + ack(4, 2), b''], ping, pad)
    s['rounds-shared'] = harness(a, b, piece=P)
    return s


def main():
    for name, seeds in (('stomp_session', stomp_seeds()), ('mqtt_session', mqtt_seeds())):
        d = os.path.join(HERE, 'corpus', name)
        os.makedirs(d, exist_ok=True)
        for k, v in seeds.items():
            with open(os.path.join(d, k), 'wb') as f:
                f.write(v)
    return 0


if __name__ == '__main__':
    sys.exit(main())
