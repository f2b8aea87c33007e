"""A planned switch-over (`wharfctl failover`) redelivers nothing to
consumers that acknowledge promptly: a stomp.py consumer with
client-individual acks and a paho consumer (MQTT 3.1.1, QoS 1, clean
session 0) under a stream of confirmed publishes (STOMP receipts, MQTT
PUBACKs) get every confirmed message once, none marked redelivered (STOMP
`redelivered:true`, MQTT DUP), before and after the standby takes over.

Every client roams: when its connection goes it tries each node in turn
(the standby refuses it) until one takes it. Publishers never send a
message again, so a message consumed twice is the broker's redelivery,
not a publisher's retry. (test_ha_failover.py has a STOMP consumer that
acks late, one stream, no MQTT.)"""
import collections
import logging
import threading
import time

import paho.mqtt.client as mqtt

from stomptest import on_receipts, stomp_close, stomp_connect
from test_ha_failover import AutoPairCase
from wharftest import main, wait_until

logging.getLogger("stomp.py").setLevel(logging.CRITICAL)  # refusals of the standby
QUEUE = "/queue/switch"
TOPIC = "switch/m"
PACE = 0.003  # between two publishes of one publisher


class Tally:
    """What one protocol's publisher had confirmed and its consumer got."""

    def __init__(self):
        self.lock = threading.Lock()
        self.confirmed = set()
        self.got = collections.Counter()
        self.redelivered = []

    def confirm(self, i):
        with self.lock:
            self.confirmed.add(i)

    def consume(self, i, redelivered):
        with self.lock:
            self.got[i] += 1
            if redelivered:
                self.redelivered.append(i)

    def missing(self):
        with self.lock:
            return sorted(self.confirmed - set(self.got))

    def twice(self):
        with self.lock:
            return sorted(i for i, n in self.got.items() if n > 1)


class Roamer(threading.Thread):
    """Runs session(port) against the nodes' `proto` ports in turn until
    stop is set; session returns when its connection is gone or refused
    (or raises)."""

    def __init__(self, nodes, proto, session, stop):
        super().__init__(daemon=True)
        self.nodes, self.proto, self.session, self.stop = nodes, proto, session, stop

    def run(self):
        while not self.stop.is_set():
            for n in self.nodes:
                if self.stop.is_set():
                    return
                port = n.port(self.proto)
                try:
                    self.session(port)
                except Exception:
                    pass
                time.sleep(0.05)


def stomp_publisher(tally, stop):
    def session(port):
        conn, lst = stomp_connect(port, timeout=2)
        rids = {}
        on_receipts(lst, rids, tally.confirm)
        try:
            while not stop.is_set() and not lst.disconnected and not lst.errors:
                i = session.next
                session.next += 1
                rids["p-%d" % i] = i
                conn.send(QUEUE, str(i), headers={"persistent": "true", "receipt": "p-%d" % i})
                time.sleep(PACE)
            if stop.is_set():  # the last receipts, then a polite end
                lst.wait_for(lambda: lst.disconnected or len(lst.receipts) == len(rids), 5,
                             "the last receipts")
        finally:
            stomp_close(conn, lst)
        return True
    session.next = 0
    return session


def stomp_consumer(tally, ready, stop):
    def session(port):
        conn, lst = stomp_connect(port, timeout=2)

        def on_message(frame):
            tally.consume(int(frame.body), frame.headers.get("redelivered") == "true")
            conn.ack(frame.headers["ack"])
        lst.callback = on_message
        conn.subscribe(QUEUE, id="s", ack="client-individual", headers={"receipt": "sub"})
        lst.wait_receipt("sub", 2)
        ready.set()
        try:
            while not stop.is_set() and not lst.disconnected and not lst.errors:
                time.sleep(0.02)
        finally:
            stomp_close(conn, lst)
        return True
    return session


def mqtt_session(client_id, clean, on_up, body, stop):
    """A paho client (3.1.1) on port; on_up(client) once CONNACK 0 came,
    body(client) every 10 ms until the connection goes. A new client per
    connection: what one left unconfirmed is not sent again."""
    def session(port):
        c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311)
        state = {"rc": None, "gone": False}

        def on_connect(client, userdata, flags, rc):
            state["rc"] = rc
            if rc == 0:
                on_up(client)

        def on_disconnect(client, userdata, rc):
            state["gone"] = True
        c.on_connect = on_connect
        c.on_disconnect = on_disconnect
        c.connect("127.0.0.1", port, keepalive=10)
        c.loop_start()
        try:
            deadline = time.monotonic() + 2
            while state["rc"] is None and not state["gone"] and time.monotonic() < deadline:
                time.sleep(0.01)
            if state["rc"] != 0:
                return False
            while not stop.is_set() and not state["gone"]:
                body(c)
                time.sleep(0.01)
        finally:
            c.disconnect()
            c.loop_stop()
        return True
    return session


def mqtt_publisher(tally, stop):
    mids = {}
    nxt = [0]

    def on_up(c):
        c.on_publish = lambda client, userdata, mid: tally.confirm(mids[id(client), mid])

    def body(c):
        for _ in range(3):
            i = nxt[0]
            nxt[0] += 1
            info = c.publish(TOPIC, str(i), qos=1)
            mids[id(c), info.mid] = i
            time.sleep(PACE)
    return mqtt_session("switch-pub", True, on_up, body, stop)


def mqtt_consumer(tally, ready, stop):
    def on_message(client, userdata, msg):
        tally.consume(int(msg.payload), msg.dup)

    def on_up(c):
        c.on_message = on_message
        c.on_subscribe = lambda *args: ready.set()
        c.subscribe(TOPIC, qos=1)
    return mqtt_session("switch-sub", False, on_up, lambda c: None, stop)


class SwitchOverRedeliveryTest(AutoPairCase):
    def test_switch_over_redelivers_nothing_to_prompt_consumers(self):
        active, standby = self.pair("quiet", protocols=("stomp", "mqtt"))
        nodes = (active, standby)
        tallies = {"stomp": Tally(), "mqtt": Tally()}
        stop_pub, stop_sub = threading.Event(), threading.Event()
        ready = [threading.Event(), threading.Event()]
        consumers = [
            Roamer(nodes, "stomp", stomp_consumer(tallies["stomp"], ready[0], stop_sub), stop_sub),
            Roamer(nodes, "mqtt", mqtt_consumer(tallies["mqtt"], ready[1], stop_sub), stop_sub)]
        for t in consumers:
            t.start()
        wait_until(lambda: all(e.is_set() for e in ready), 10, what="the consumers subscribed")
        publishers = [Roamer(nodes, "stomp", stomp_publisher(tallies["stomp"], stop_pub), stop_pub),
                      Roamer(nodes, "mqtt", mqtt_publisher(tallies["mqtt"], stop_pub), stop_pub)]
        for t in publishers:
            t.start()
        wait_until(lambda: all(len(t.got) >= 200 for t in tallies.values()), 30,
                   what="200 messages through on each protocol")
        before = {p: len(t.confirmed) for p, t in tallies.items()}
        r = self.wharfctl(active.repl, "failover")
        print("# wharfctl failover: %r" % r.stdout.strip())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), "failover: %s takes over" % standby.node_id)
        wait_until(standby.active, 10, what="the standby taking over")
        # the stream goes on through the new active
        wait_until(lambda: all(len(t.confirmed) >= before[p] + 200 for p, t in tallies.items()),
                   30, what="200 more confirmed on each protocol on the new active")
        stop_pub.set()
        for t in publishers:
            t.join(15)
        wait_until(lambda: not any(t.missing() for t in tallies.values()), 20,
                   what="every confirmed message consumed")
        time.sleep(1)  # what else may come: a redelivery
        stop_sub.set()
        for t in consumers:
            t.join(15)
        for proto, t in sorted(tallies.items()):
            print("# %s: confirmed %d, consumed %d (%d before the switch-over), missing %d, "
                  "twice %d, marked redelivered %d"
                  % (proto, len(t.confirmed), sum(t.got.values()), before[proto],
                     len(t.missing()), len(t.twice()), len(t.redelivered)))
        for proto, t in sorted(tallies.items()):
            self.assertEqual(t.missing(), [], "%s: confirmed, never consumed" % proto)
            self.assertEqual(t.twice(), [], "%s: consumed twice" % proto)
            self.assertEqual(t.redelivered, [], "%s: marked redelivered" % proto)
        log = active.brokers[-1].output()
        for line in log.splitlines():
            if "switch-over" in line:
                print("# old active: " + line)
        self.assertIn("giving it the lead", log)


if __name__ == "__main__":
    main()
