#!/usr/bin/python3
"""Failover soak of a pair in the automatic mode: a real etcd and two
wharfd with role = auto on loopback ports; a STOMP producer sends
persistent messages with receipts to whichever node is active; each cycle
kills the active with kill -9 once it has confirmed some more, times how
long until the other node accepts a publish (its receipt), and starts the
killed node again, which rejoins as the standby. At the end every
confirmed message must be consumable from the last active: the lost count
is the figure that matters (it must be 0); duplicates are allowed
(at-least-once) and counted.

    /usr/bin/python3 bench/failover.py --cycles 50 --wharfd build/src/wharfd

Prints one line per cycle and a summary: failover time (kill -9 to the first
receipt from the other node) median and max, confirmed, consumed, lost,
duplicated. Bounded: every wait has a deadline and the run stops by itself.
"""
import argparse
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--per-cycle", type=int, default=200, help="receipts between kills")
    ap.add_argument("--wharfd", default=os.path.join(HERE, "..", "build", "src", "wharfd"))
    args = ap.parse_args()
    os.environ["WHARFD"] = os.path.abspath(args.wharfd)

    # After WHARFD is set: the test helpers read it at import.
    import tempfile
    from etcdtest import Etcd, free_port
    from stomptest import stomp_connect
    from test_ha_failover import TTL, Node, auto_config, receipted
    from test_store import drain
    from wharftest import wait_until

    etcd = Etcd()
    top = tempfile.mkdtemp(prefix="wharf-soak-")
    ports = {"a": free_port(), "b": free_port()}
    nodes = {}
    for me, other in (("a", "b"), ("b", "a")):
        cfg = auto_config(me, ports[me], ports[other], etcd.url, "soak")
        nodes[me] = Node(me, os.path.join(top, me), cfg)

    def active():
        for n in nodes.values():
            if n.alive() and n.active():
                return n
        return None

    confirmed = []          # bodies whose receipt came
    lock = threading.Lock()
    stop = threading.Event()
    seq = [0]

    def producer():
        """Sends to the active node; on any failure, finds it again."""
        conn = lst = None
        while not stop.is_set():
            node = active()
            if node is None:
                time.sleep(0.01)
                continue
            if conn is None:
                try:
                    conn, lst = stomp_connect(node.stomp_port())
                except Exception:
                    conn = None
                    time.sleep(0.02)
                    continue
            body = "m-%07d" % seq[0]
            seq[0] += 1
            try:
                conn.send("/queue/soak", body, headers={"persistent": "true", "receipt": body})
                if receipted(lst, body, 2.0):
                    with lock:
                        confirmed.append((time.monotonic(), body))
                else:
                    conn = None
            except Exception:
                conn = None

    times = []
    t = threading.Thread(target=producer, daemon=True)
    try:
        wait_until(lambda: active() is not None, 20, what="an active node")
        first = active()
        other = nodes["b" if first.node_id == "a" else "a"]
        wait_until(lambda: "standby %s in sync" % other.node_id in first.output(), 20,
                   what="in sync")
        t.start()
        for cycle in range(args.cycles):
            act = active()
            sb = nodes["b" if act.node_id == "a" else "a"]
            with lock:
                base = len(confirmed)
            wait_until(lambda: len(confirmed) >= base + args.per_cycle, 60,
                       what="receipts before the kill")
            killed = time.monotonic()
            act.kill9()
            wait_until(lambda: sb.active(), TTL + 15, what="the standby taking over")
            wait_until(lambda: any(ts > killed for ts, _ in confirmed[-50:]), 30,
                       what="a receipt from the new active")
            with lock:
                took = min(ts for ts, _ in confirmed if ts > killed) - killed
            times.append(took)
            print("cycle %2d: %s killed, %s active, first receipt after %.2f s"
                  % (cycle + 1, act.node_id, sb.node_id, took), flush=True)
            act.start()
            wait_until(lambda: "standby %s in sync" % act.node_id in sb.output(), 60,
                       what="the killed node back in sync")
        stop.set()
        t.join(10)
        final = active()
        got, _, _ = drain(final.stomp_port(), "/queue/soak", idle=2.0)
        sent = [b for _, b in confirmed]
        have = set(got)
        lost = [b for b in sent if b not in have]
        dups = len(got) - len(have)
        print("cycles %d, lease %.1f s: failover median %.2f s, max %.2f s; confirmed %d, "
              "consumed %d, lost %d, duplicated %d"
              % (len(times), TTL, statistics.median(times), max(times), len(sent), len(got),
                 len(lost), dups))
        if lost:
            print("lost:", lost[:20])
        return 1 if lost else 0
    finally:
        stop.set()
        for n in nodes.values():
            for b in n.brokers:
                b.cleanup()
        etcd.cleanup()


if __name__ == "__main__":
    sys.exit(main())
