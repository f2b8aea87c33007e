#!/usr/bin/env python3
"""MQTT shared subscriptions with a persistent member: when it goes away,
what it had not acknowledged goes to the other members at once, the
group's queue keeps its policy (slowing publishers, never dropping), and
the member rejoins the group when it comes back."""
from mqtttest import PUBACK, PUBLISH, MqttTestCase, pingreq_packet, publish_packet
from wharftest import main

CONFIG = """\
topic_max_pending = 5
[mqtt]
max_inflight = 2
"""


class SharedTest(MqttTestCase):
    config = CONFIG

    def persistent_member(self, flt, cid):
        a = self.raw(level=4, connect=True, client_id=cid, clean=False)
        self.assertEqual(a.subscribe([(flt, 1)]).codes, [1])
        return a

    def test_persistent_member_leaving_gives_back_its_unacked(self):
        base = self.topic()
        flt = "$share/g/%s/#" % base
        a_id = self.client_id("a")
        a = self.persistent_member(flt, a_id)
        b = self.paho(level=5)
        b.subscribe(flt, 1)
        pub = self.paho(level=4)
        for i in range(20):
            pub.publish(base + "/x", b"%02d" % i, qos=1)
        a.sync()
        got_a = [p.payload for p in a.inbox if p.type == PUBLISH]
        self.assertTrue(got_a, "member a got none of 20")
        a.abort()  # nothing acknowledged; its session stays (clean session 0)
        want = [b"%02d" % i for i in range(20)]
        b.wait_for(lambda: sorted(set(b.payloads())) == want, 10,
                   "every message at b after a left (a held %r)" % got_a)
        # Back, a is a member again without subscribing.
        back = self.raw(level=4)
        self.assertTrue(back.connect(a_id, clean=False).session_present)
        for i in range(20, 40):
            pub.publish(base + "/x", b"%02d" % i, qos=1)
        back.sync()
        self.assertTrue([p for p in back.inbox if p.type == PUBLISH],
                        "the member that came back got none of 20")

    def test_group_queue_keeps_its_policy_when_a_member_leaves(self):
        base = self.topic()
        flt = "$share/g/%s/#" % base
        self.persistent_member(flt, self.client_id("a")).abort()
        b = self.raw(level=5, connect=True)
        self.assertEqual(b.subscribe([(flt, 1)]).codes, [1])
        # 20 QoS 1 messages at once while b holds its acknowledgements: b
        # has 2 in flight, the group's queue 5; the rest slow the publisher
        # (block), they are not dropped.
        pub = self.raw(level=4, connect=True)
        pub.send(b"".join(publish_packet(base + "/x", b"%02d" % i, qos=1, pid=i + 1, level=4)
                          for i in range(20)) + pingreq_packet())
        pub.sync()
        got = []
        while len(got) < 20:
            p = b.expect(PUBLISH)
            got.append(p.payload)
            b.ack(PUBACK, p.pid)
        self.assertEqual(sorted(set(got)), [b"%02d" % i for i in range(20)])


if __name__ == "__main__":
    main()
