#!/usr/bin/env python3
"""MQTT SUBSCRIBE / UNSUBSCRIBE: per-filter reason codes, wildcard
matching, subscription identifiers, no local, UNSUBACK codes, shared
subscriptions, and a SUBSCRIBE that replaces an existing one."""
from mqtttest import (PUBACK, PUBLISH, MqttTestCase, PacketTypes, SubscribeOptions,
                      paho_props, sub_options)
from wharftest import main


class SubscribeTest(MqttTestCase):

    # ---- reason codes ----

    def check_reason_codes(self, level, bad):
        base = self.topic()
        r = self.raw(level=level, connect=True)
        filters = [(base + "/a/+/c", 0), (base + "/a/#/b", 1), (base + "/x/#", 2),
                   ("", 1), (base + "/a+", 1), (base + "/#/", 0), (base + "/y", 1)]
        ack = r.subscribe(filters)
        self.assertEqual(ack.codes, [0, bad, 2, bad, bad, bad, 1])
        # The granted ones work, the refused ones did not subscribe anything.
        pub = self.paho(level=4)
        for t in ("/a/b/c", "/a/x/b", "/x/1/2", "/y"):
            pub.publish(base + t, t.encode(), qos=1)
        got = []
        for _ in range(3):
            p = r.expect(PUBLISH)
            got.append((p.topic, p.payload, p.qos))
            if p.qos:
                r.ack(PUBACK, p.pid)
        r.sync()
        r.expect_none(PUBLISH, 0.3)
        self.assertEqual(sorted(got), sorted([(base + "/a/b/c", b"/a/b/c", 0),
                                              (base + "/x/1/2", b"/x/1/2", 1),
                                              (base + "/y", b"/y", 1)]))

    def test_several_filters_v5_invalid_gets_0x8f(self):
        self.check_reason_codes(5, 0x8F)

    def test_several_filters_v311_invalid_gets_0x80(self):
        self.check_reason_codes(4, 0x80)

    def test_invalid_share_names(self):
        base = self.topic()
        r = self.raw(level=5, connect=True)
        ack = r.subscribe([("$share/g", 1), ("$share//" + base, 1), ("$share/g+/" + base, 1),
                           ("$share/g#/" + base, 1), ("$share/ok/" + base, 1)])
        self.assertEqual(ack.codes, [0x8F, 0x8F, 0x8F, 0x8F, 1])

    def test_paho_subscribe_list(self):
        base = self.topic()
        c = self.paho(level=4)
        codes = c.subscribe([(base + "/a", 0), (base + "/b", 1), (base + "/c", 2)])
        self.assertEqual(codes, [0, 1, 2])
        c.publish(base + "/c", b"c", qos=2)
        self.assertEqual(c.wait_messages(1)[0].qos, 2)

    # ---- matching ----

    def test_wildcard_matching(self):
        base = self.topic()
        subs = {}
        for f in ("#", "+", "+/+", "/+", "s/#", "s/+", "s/+/b", "s//b", "s/+/+/#"):
            c = self.paho(level=5)
            c.subscribe(base + "/" + f if f != "#" else base + "/#", 1)
            subs[f] = c
        # Levels after the base; the base itself is a level of every topic.
        topics = ["s", "s/a", "s/a/b", "s//b", "/x", "s/a/b/c", "t"]
        pub = self.paho(level=5)
        for t in topics:
            pub.publish(base + "/" + t, t.encode(), qos=1)
        # "x/+/+" style expectations, relative to base/.
        want = {
            "#": topics,
            "+": ["s", "t"],
            "+/+": ["s/a", "/x"],
            "/+": ["/x"],
            "s/#": ["s", "s/a", "s/a/b", "s//b", "s/a/b/c"],
            "s/+": ["s/a"],
            "s/+/b": ["s/a/b", "s//b"],
            "s//b": ["s//b"],
            "s/+/+/#": ["s/a/b", "s//b", "s/a/b/c"],
        }
        subs["#"].wait_messages(len(topics))
        for f, c in subs.items():
            c.wait_messages(len(want[f]))
            c.sync(base + "/s/a/b/c" if f in ("#", "s/#", "s/+/+/#") else base + "/" + want[f][0])
            self.assertEqual([m.payload.decode() for m in c.messages], want[f], "filter " + f)

    def test_empty_levels(self):
        """'/', 'a/' and '/a' are topics of their own (empty levels)."""
        base = self.topic()
        c = self.paho(level=5)
        c.subscribe(base + "//+", 1)   # base, '', anything
        d = self.paho(level=5)
        d.subscribe(base + "/+/", 1)   # base, anything, ''
        pub = self.paho(level=5)
        for t in ("//x", "//", "/x/", "/x", "/x//"):
            pub.publish(base + t, t.encode(), qos=1)
        c.wait_messages(2)
        d.wait_messages(2)
        c.sync(base + "//x")
        d.sync(base + "/x/")
        self.assertEqual(c.payloads(), [b"//x", b"//"])
        self.assertEqual(d.payloads(), [b"//", b"/x/"])

    # ---- subscription identifiers ----

    def test_subscription_identifiers(self):
        base = self.topic()
        r = self.raw(level=5, connect=True)
        self.assertEqual(r.subscribe([(base + "/#", 1)], props=[("sub_id", 5)]).codes, [1])
        self.assertEqual(r.subscribe([(base + "/+", 1)], props=[("sub_id", 268435455)]).codes,
                         [1])
        self.assertEqual(r.subscribe([(base + "/n/+", 1)]).codes, [1])
        pub = self.paho(level=5)
        pub.publish(base + "/a", b"both", qos=1)
        pub.publish(base + "/a/b", b"deep", qos=1)
        pub.publish(base + "/n/x", b"no id", qos=1)
        got = []
        # "both" matches two subscriptions: one copy with both ids, or one
        # copy per subscription with its own id (MQTT 5, 3.3.4).
        while len([p for p in got if p.payload == b"no id"]) < 1:
            p = r.expect(PUBLISH)
            r.ack(PUBACK, p.pid)
            got.append(p)
        r.sync()
        while r.inbox:
            p = r.inbox.pop(0)
            if p.type == PUBLISH:
                r.ack(PUBACK, p.pid)
                got.append(p)
        both = [p for p in got if p.payload == b"both"]
        deep = [p for p in got if p.payload == b"deep"]
        noid = [p for p in got if p.payload == b"no id"]
        self.assertIn(len(both), (1, 2))
        if len(both) == 1:
            self.assertEqual(sorted(both[0].props.get("sub_id", [])), [5, 268435455])
        else:
            self.assertEqual(sorted(p.props.get("sub_id") for p in both), [[5], [268435455]])
        self.assertEqual([p.props.get("sub_id") for p in deep], [[5]])
        # base/n/x matches base/# (id 5) and base/n/+ (no id).
        self.assertEqual(sorted(str(p.props.get("sub_id")) for p in noid),
                         sorted(["[5]", "None"]) if len(noid) == 2 else ["[5]"])

    def test_subscription_identifier_paho_and_update(self):
        topic = self.topic()
        c = self.paho(level=5)
        c.subscribe(topic, props=paho_props(PacketTypes.SUBSCRIBE, sub_id=42))
        pub = self.paho(level=5)
        pub.publish(topic, b"one", qos=1)
        self.assertEqual(c.wait_messages(1)[0].props.get("sub_id"), [42])
        c.subscribe(topic, props=paho_props(PacketTypes.SUBSCRIBE, sub_id=43))
        pub.publish(topic, b"two", qos=1)
        self.assertEqual(c.wait_messages(2)[1].props.get("sub_id"), [43])
        c.subscribe(topic)
        pub.publish(topic, b"three", qos=1)
        m = c.wait_messages(3)[2]
        self.assertNotIn("sub_id", m.props)
        self.assertEqual(c.payloads(), [b"one", b"two", b"three"])

    # ---- no local ----

    def test_no_local(self):
        topic = self.topic()
        me = self.paho(level=5)
        me.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=True))
        other = self.paho(level=5)
        other.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=False))
        me.publish(topic, b"mine", qos=1)
        other.publish(topic, b"theirs", qos=1)
        other.wait_messages(2)
        me.wait_payload(b"theirs")
        self.assertEqual(me.payloads(), [b"theirs"])
        self.assertEqual(other.payloads(), [b"mine", b"theirs"])

    def test_no_local_across_reconnect(self):
        """No local is by client identifier (MQTT 5, 3.8.3.1): a message the
        client published must not reach it later on another connection of
        the same session."""
        topic, busy = self.topic("own"), self.topic("busy")
        cid = self.client_id()
        props = [("session_expiry", 60), ("receive_maximum", 1)]
        r = self.raw(level=5)
        r.connect(cid, props=props)
        r.subscribe([(topic, sub_options(1, no_local=True)), (busy, 1)])
        other = self.paho(level=5)
        other.publish(busy, b"fills the window", qos=1)
        first = r.expect(PUBLISH)  # not acknowledged: the window is full
        r.publish_acked(topic, b"my own")
        other.publish(topic, b"from other", qos=1)
        r.abort()
        r = self.raw(level=5)
        self.assertTrue(r.connect(cid, clean=False, props=props).session_present)
        got = []
        while not any(p.payload == b"from other" for p in got):
            p = r.expect(PUBLISH)
            got.append(p)
            r.ack(PUBACK, p.pid)
        r.sync()
        r.expect_none(PUBLISH, 0.3)
        self.assertEqual([p.payload for p in got], [b"fills the window", b"from other"])
        self.assertEqual(first.payload, b"fills the window")
        r.disconnect(0, [("session_expiry", 0)])

    def test_star_and_gt_are_not_wildcards_in_mqtt(self):
        """In MQTT only + and # are wildcards: a filter level that is '*' or
        '>' matches only that literal level (which Wharf cannot publish), so
        such a filter must not receive base/t1."""
        base = self.topic()
        r = self.raw(level=5, connect=True)
        ack = r.subscribe([(base + "/*", 1), (base + "/>", 1), (base + "/t1", 1)])
        self.assertEqual(ack.codes[2], 1)
        for c in ack.codes[:2]:
            self.assertIn(c, (1, 0x8F), "granted, or refused as a filter Wharf cannot honour")
        pub = self.paho(level=4)
        pub.publish(base + "/t1", b"t1", qos=1)
        got = []
        p = r.expect(PUBLISH)
        r.ack(PUBACK, p.pid)
        got.append(p)
        r.sync()
        while r.inbox:
            p = r.inbox.pop(0)
            if p.type == PUBLISH:
                r.ack(PUBACK, p.pid)
                got.append(p)
        r.expect_none(PUBLISH, 0.3)
        self.assertEqual(len(got), 1, "base/t1 delivered %d times: the filters base/* and "
                                      "base/> matched it as wildcards" % len(got))

    def test_star_filter_from_paho(self):
        base = self.topic()
        c = self.paho(level=4)
        c.subscribe(base + "/*", 1)
        c.subscribe(base + "/#", 1)
        c.publish(base + "/t1", b"once", qos=1)
        c.wait_messages(1)
        c.sync(base + "/t1")
        self.assertEqual(c.payloads(), [b"once"], "one subscription matches, one copy")

    # ---- UNSUBSCRIBE ----

    def test_unsubscribe_reason_codes_v5(self):
        base = self.topic()
        r = self.raw(level=5, connect=True)
        r.subscribe([(base + "/a", 1), (base + "/b", 1)])
        ack = r.unsubscribe([base + "/a", base + "/nope", base + "/a", "$share/g/" + base])
        self.assertEqual(ack.codes, [0x00, 0x11, 0x11, 0x11])
        pub = self.paho(level=4)
        pub.publish(base + "/a", b"gone", qos=1)
        pub.publish(base + "/b", b"still", qos=1)
        p = r.expect(PUBLISH)
        self.assertEqual((p.topic, p.payload), (base + "/b", b"still"))
        r.ack(PUBACK, p.pid)
        r.sync()
        r.expect_none(PUBLISH, 0.3)

    def test_unsubscribe_v311(self):
        topic = self.topic()
        r = self.raw(level=4, connect=True)
        r.subscribe([(topic, 0)])
        ack = r.unsubscribe([topic, topic + "/never"])
        self.assertEqual(ack.body[2:], b"", "3.1.1 UNSUBACK carries only the packet id")
        c = self.paho(level=4)
        self.assertEqual(c.unsubscribe(topic), [])
        c.subscribe(topic, 1)
        c.publish(topic, b"x", qos=1)
        c.wait_messages(1)
        r.sync()
        r.expect_none(PUBLISH, 0.2)

    # ---- shared subscriptions ----

    def test_shared_subscription_300(self):
        base = self.topic()
        members = [self.paho(level=5) for _ in range(3)]
        for m in members:
            self.assertEqual(m.subscribe("$share/g/%s/sensors/#" % base, 1), [1])
        solo = self.paho(level=5)
        solo.subscribe("$share/other/%s/sensors/#" % base, 1)
        normal = self.paho(level=5)
        normal.subscribe(base + "/sensors/#", 1)
        pub = self.paho(level=4, max_inflight=100)
        want = []
        infos = []
        for i in range(300):
            payload = b"%03d" % i
            want.append(payload)
            infos.append(pub.publish("%s/sensors/t%d" % (base, i % 7), payload, qos=1,
                                     wait=False))
        pub.wait_all_published(infos)
        normal.wait_messages(300)
        solo.wait_messages(300)
        members[0].wait_for(lambda: sum(m.count() for m in members) >= 300, 20,
                            "300 messages among the group")
        # Nothing more is on its way: each member settles with a marker
        # of its own that only it can receive.
        for i, m in enumerate(members):
            m.subscribe("%s/own/%d" % (base, i), 1)
            m.sync("%s/own/%d" % (base, i))
        counts = [m.count() for m in members]
        shared = [p for m in members for p in m.payloads()]
        self.assertTrue(all(n > 0 for n in counts), "every member gets some: %r" % counts)
        self.assertEqual(len(shared), 300, "each message once in the group: %r" % counts)
        self.assertEqual(sorted(shared), want, "together exactly all")
        self.assertEqual(normal.payloads(), want, "a normal subscriber gets all, in order")
        self.assertEqual(sorted(solo.payloads()), want, "another group gets all")

    def test_shared_subscription_gets_no_retained(self):
        topic = self.topic()
        pub = self.paho(level=5)
        pub.publish(topic, b"retained", qos=1, retain=True)
        m = self.paho(level=5)
        m.subscribe("$share/g/" + topic, 1)
        pub.publish(topic, b"live", qos=1)
        m.wait_payload(b"live")
        self.assertEqual(m.payloads(), [b"live"])
        pub.publish(topic, b"", qos=1, retain=True)

    def test_shared_unacked_goes_to_other_member(self):
        """A QoS 1 message sent to a member whose session ends before it
        acknowledged goes to another member (MQTT 5, 4.8.2)."""
        base = self.topic()
        flt = "$share/g/%s/#" % base
        a = self.raw(level=5, connect=True)
        self.assertEqual(a.subscribe([(flt, 1)]).codes, [1])
        b = self.paho(level=5)
        b.subscribe(flt, 1)
        pub = self.paho(level=4)
        got_a = []
        for i in range(20):
            pub.publish(base + "/x", b"%02d" % i, qos=1)
        a.sync()
        got_a = [p for p in a.inbox if p.type == PUBLISH]
        self.assertTrue(got_a, "member a got none of 20")
        a.abort()  # nothing acknowledged; clean session: it ends now
        want = [b"%02d" % i for i in range(20)]
        b.wait_for(lambda: sorted(set(b.payloads())) == want, 10,
                   "every message at b after a left")
        self.assertEqual(sorted(set(b.payloads())), want)

    # ---- subscribing again ----

    def check_resubscribe(self, level):
        topic = self.topic()
        c = self.paho(level=level)
        self.assertEqual(c.subscribe(topic, 0), [0])
        pub = self.paho(level=4)
        pub.publish(topic, b"at0", qos=1)
        self.assertEqual(c.wait_messages(1)[0].qos, 0)
        self.assertEqual(c.subscribe(topic, 1), [1])
        pub.publish(topic, b"at1", qos=1)
        c.wait_messages(2)
        c.sync(topic)
        self.assertEqual([(m.payload, m.qos) for m in c.messages], [(b"at0", 0), (b"at1", 1)])
        self.assertEqual(c.subscribe(topic, 0), [0])
        pub.publish(topic, b"at0 again", qos=2)
        c.wait_messages(3)
        self.assertEqual([(m.payload, m.qos) for m in c.messages],
                         [(b"at0", 0), (b"at1", 1), (b"at0 again", 0)])
        c.subscribe(topic, 1)
        c.sync(topic)
        self.assertEqual(c.count(), 3, "no duplicate deliveries")

    def test_resubscribe_replaces_v5(self):
        self.check_resubscribe(5)

    def test_resubscribe_replaces_v311(self):
        self.check_resubscribe(4)

    def test_resubscribe_raw_options(self):
        topic = self.topic()
        r = self.raw(level=5, connect=True)
        r.subscribe([(topic, sub_options(qos=2, no_local=True))])
        r.publish_acked(topic, b"own, no local")
        self.assertEqual(r.subscribe([(topic, sub_options(qos=1, no_local=False))]).codes, [1])
        r.publish_acked(topic, b"own, now local", qos=2)
        p = r.expect(PUBLISH)
        self.assertEqual((p.payload, p.qos), (b"own, now local", 1))
        r.ack(PUBACK, p.pid)
        r.sync()
        r.expect_none(PUBLISH, 0.3)


if __name__ == "__main__":
    main()
