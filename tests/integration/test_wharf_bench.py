#!/usr/bin/env python3
"""wharf-bench's real-client write patterns (issue 15) against a wharfd:
MQTT through libmosquitto (--client libmosquitto: a packet per write, as a
device library does) at QoS 0, 1 and 2, to a topic and to a shared
subscription, many publishers at a fixed rate; and wharf-bench's own STOMP
and AMQP clients writing a frame per system call (--frame-writes). Each
run is --strict: every message arrives, once, intact, in order."""
import json
import os
import subprocess
import unittest

from wharftest import WHARFD, BrokerTestCase, main

WHARF_BENCH = os.environ.get("WHARF_BENCH") or os.path.join(
    os.path.dirname(WHARFD), "..", "tools", "wharf-bench", "wharf-bench")


class WharfBenchClientsTest(BrokerTestCase):
    protocols = ("mqtt", "stomp", "amqp")

    def bench(self, proto, *args):
        url = "%s://127.0.0.1:%d" % (proto, self.broker.ports[proto])
        r = subprocess.run([WHARF_BENCH, "--url", url, "--strict", "--json", "--quiet",
                            "--timeout", "60"] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=90)
        self.assertEqual(r.returncode, 0, "wharf-bench %s failed:\n%s%s"
                         % (" ".join(args), r.stdout, r.stderr))
        d = json.loads(r.stdout)
        self.assertEqual(d["result"], "OK")
        self.assertEqual(d["missing"], 0)
        self.assertEqual(d["duplicated"], 0)
        self.assertEqual(d["out_of_order"], 0)
        self.assertEqual(d["corrupted"], 0)
        return d

    def test_libmosquitto_qos1_window_1000(self):
        # A window past receive_maximum: before, the broker dropped a 3.1.1
        # publisher whose destination filled (test_mqtt_blocked.py).
        d = self.bench("mqtt", "--client", "libmosquitto", "--qos", "1", "--window", "1000",
                       "--count", "20000", "--dest", "bench/q1")
        self.assertEqual((d["sent"], d["confirmed"], d["received"]), (20000, 20000, 20000))

    def test_libmosquitto_qos0_and_qos2_mqtt5(self):
        d = self.bench("mqtt", "--client", "libmosquitto", "--qos", "0", "--count", "5000",
                       "--publishers", "2", "--subscribers", "2", "--dest", "bench/q0")
        self.assertEqual(d["received"], 20000)  # each subscriber gets both publishers'
        d = self.bench("mqtt", "--client", "libmosquitto", "--qos", "2", "--mqtt-version", "5",
                       "--window", "20", "--count", "3000", "--dest", "bench/q2")
        self.assertEqual((d["confirmed"], d["received"]), (3000, 3000))

    def test_libmosquitto_shared_subscription(self):
        d = self.bench("mqtt", "--client", "libmosquitto", "--qos", "1", "--queue=bench.shared",
                       "--subscribers", "3", "--count", "6000")
        self.assertEqual(d["received"], 6000)

    def test_libmosquitto_many_publishers_at_a_fixed_rate(self):
        d = self.bench("mqtt", "--client", "libmosquitto", "--qos", "1", "--publishers", "200",
                       "--rate", "10", "--duration", "2", "--dest", "bench/iot")
        self.assertGreater(d["received"], 3000)
        self.assertEqual(d["received"], d["sent"])

    def test_frame_writes_stomp_and_amqp(self):
        d = self.bench("stomp", "--frame-writes", "--count", "5000", "--queue=bench.stomp.frames")
        self.assertEqual(d["received"], 5000)
        d = self.bench("amqp", "--frame-writes", "--count", "5000", "--queue=bench.amqp.frames")
        self.assertEqual(d["received"], 5000)

    def test_libmosquitto_is_for_mqtt_over_tcp(self):
        r = subprocess.run([WHARF_BENCH, "--url", "stomp://127.0.0.1:%d" % self.broker.ports["stomp"],
                            "--client", "libmosquitto"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--client libmosquitto is for mqtt:// URLs", r.stderr)


if __name__ == "__main__":
    main()
