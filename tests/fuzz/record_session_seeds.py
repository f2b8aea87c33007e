"""Records what stomp.py and paho-mqtt send to a live wharfd, through a
proxy, into seeds laid out as session_harness.h reads them (client A's
connection, client B's). Usage: WHARFD=build/src/wharfd record_session_seeds.py DIR
(writes stomp-py-session, paho-v5-session, paho-v311-takeover in DIR)."""
import os, socket, struct, sys, threading, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
from wharftest import Broker
import stomp
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

class Proxy:
    def __init__(self, port):
        self.port = port
        self.ls = socket.socket(); self.ls.bind(('127.0.0.1', 0)); self.ls.listen(16)
        self.lport = self.ls.getsockname()[1]
        self.conns = []  # bytes per accepted client connection, in order
        threading.Thread(target=self.accept, daemon=True).start()
    def accept(self):
        while True:
            c, _ = self.ls.accept()
            rec = bytearray(); self.conns.append(rec)
            u = socket.create_connection(('127.0.0.1', self.port))
            threading.Thread(target=self.pipe, args=(c, u, rec), daemon=True).start()
            threading.Thread(target=self.pipe, args=(u, c, None), daemon=True).start()
    def pipe(self, a, b, rec):
        try:
            while True:
                d = a.recv(65536)
                if not d: break
                if rec is not None: rec += d
                b.sendall(d)
        except OSError: pass
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass

def seed(path, a, b, flags=0):
    with open(path, 'wb') as f:
        f.write(bytes([flags]) + struct.pack('<H', len(a)) + a + b)

out = sys.argv[1]
with Broker(protocols=('stomp', 'mqtt')) as br:
    sp = Proxy(br.ports['stomp']); mp = Proxy(br.ports['mqtt'])
    # STOMP: A consumes a queue and a durable topic subscription, B sends
    a = stomp.Connection12([('127.0.0.1', sp.lport)]); a.connect(wait=True, headers={'client-id': 'rec-a'})
    b = stomp.Connection12([('127.0.0.1', sp.lport)]); b.connect(wait=True)
    got = []
    class L(stomp.ConnectionListener):
        def on_message(self, f): got.append(f)
    a.set_listener('l', L())
    a.subscribe('/queue/rec', id='1', ack='client-individual')
    a.subscribe('/topic/rec.t', id='2', ack='client', headers={'activemq.subscriptionName': 'dur'})
    for i in range(3):
        b.send('/queue/rec', 'm%d' % i, headers={'persistent': 'true', 'receipt': 'r%d' % i})
    b.send('/topic/rec.t', 'topic')
    b.begin('tx1'); b.send('/queue/rec', 'in-tx', transaction='tx1'); b.commit('tx1')
    b.begin('tx2'); b.send('/queue/rec', 'aborted', transaction='tx2'); b.abort('tx2')
    time.sleep(0.5)
    for n, f in enumerate(got):
        if n % 2: a.nack(f.headers['ack'])
        else: a.ack(f.headers['ack'])
    time.sleep(0.3)
    a.unsubscribe('1'); a.unsubscribe('2', headers={'activemq.subscriptionName': 'dur'})
    a.disconnect(receipt='bye-a'); b.disconnect(receipt='bye-b')
    time.sleep(0.3)
    seed(os.path.join(out, 'stomp-py-session'), bytes(sp.conns[0]), bytes(sp.conns[1]), 61)

    # MQTT: paho 5 with a delayed will, a shared subscription, QoS 0/1/2,
    # a topic alias, receive maximum; then a v3.1.1 persistent session taken over
    def cl(cid, proto=mqtt.MQTTv5, **kw):
        c = mqtt.Client(client_id=cid, protocol=proto, **kw)
        return c
    p = Properties(PacketTypes.CONNECT); p.SessionExpiryInterval = 60; p.ReceiveMaximum = 2
    wp = Properties(PacketTypes.WILLMESSAGE); wp.WillDelayInterval = 2
    s = cl('rec-sub'); s.will_set('rec/will', b'gone', 1, False, wp)
    s.connect('127.0.0.1', mp.lport, clean_start=False, properties=p); s.loop_start()
    s.subscribe([('$share/g/rec/#', 2), ('rec/+/x', 1)]); time.sleep(0.3)
    q = cl('rec-pub'); q.connect('127.0.0.1', mp.lport); q.loop_start()
    for qos in (0, 1, 2):
        q.publish('rec/a/x', b'q%d' % qos, qos).wait_for_publish(5)
    ap = Properties(PacketTypes.PUBLISH); ap.TopicAlias = 1
    q.publish('rec/alias', b'aliased', 1, properties=ap).wait_for_publish(5)
    q.publish('', b'again', 1, properties=ap).wait_for_publish(5)
    time.sleep(0.5)
    s.loop_stop(); s.disconnect(); q.loop_stop(); q.disconnect(); time.sleep(0.3)
    seed(os.path.join(out, 'paho-v5-session'), bytes(mp.conns[0]), bytes(mp.conns[1]), 0)
    n0 = len(mp.conns)
    o = cl('rec-311', mqtt.MQTTv311, clean_session=False); o.connect('127.0.0.1', mp.lport); o.loop_start()
    o.subscribe('rec311/#', 1); time.sleep(0.2)
    t = cl('rec-311', mqtt.MQTTv311, clean_session=False); t.connect('127.0.0.1', mp.lport); t.loop_start()
    t.publish('rec311/x', b'after takeover', 2).wait_for_publish(5); time.sleep(0.3)
    o.loop_stop(); t.loop_stop(); t.disconnect(); time.sleep(0.3)
    seed(os.path.join(out, 'paho-v311-takeover'), bytes(mp.conns[n0]), bytes(mp.conns[n0 + 1]), 0)
    br.stop()
print('ok')
