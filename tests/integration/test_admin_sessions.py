#!/usr/bin/env python3
"""/api/v1/sessions: MQTT client sessions as paho clients make them
(persistent with subscriptions and their options, a will, clean ones),
seen connected and then away with the messages queued meanwhile; DELETE
ends an absent session (its client comes back to no session and none of
what was queued), refuses a connected one (409); a session read back
after a restart; wharfctl sessions and wharfctl session delete."""
import re
import time
import urllib.parse

from admintest import ADMIN_CONFIG, Admin, AdminClients, admin_port
from mqtttest import MqttTestCase, Paho, PacketTypes, SubscribeOptions, paho_props
from test_store import StoreTestCase
from wharftest import main, wait_until


def spath(cid):
    return "/api/v1/sessions/" + urllib.parse.quote(cid, safe="")


class AdminSessions(AdminClients, MqttTestCase):

    config = ADMIN_CONFIG

    def session(self, cid):
        """The session's JSON, None when there is none."""
        status, got = self.api.get(spath(cid))
        if status == 404:
            return None
        self.assertEqual(status, 200, got)
        return got

    def persistent_client(self, cid, topic, will_topic):
        """A 5.0 client with a 300 s session, a will, and three
        subscriptions: topic at QoS 1 (no local, retain as published,
        subscription id 7), topic/+ at QoS 0, and a share group."""
        c = self.paho(cid, clean=False, connect=False,
                      props=paho_props(PacketTypes.CONNECT, session_expiry=300),
                      will={"topic": will_topic, "payload": b"gone", "qos": 1})
        present, _, _ = c.connect()
        self.assertFalse(present)
        c.subscribe(topic, options=SubscribeOptions(qos=1, noLocal=True,
                                                    retainAsPublished=True),
                    props=paho_props(PacketTypes.SUBSCRIBE, sub_id=7))
        c.subscribe(topic + "/+", options=SubscribeOptions(qos=0))
        c.subscribe("$share/g1/" + topic + "/shared", options=SubscribeOptions(qos=1))
        return c

    def test_persistent_session_queued_then_deleted(self):
        topic = self.topic()
        cid = self.client_id()
        c = self.persistent_client(cid, topic, self.topic("will"))
        s = self.session(cid)
        self.assertEqual(s["client_id"], cid)
        self.assertEqual(s["protocol"], "mqtt")
        self.assertTrue(s["connected"])
        conns = [x["id"] for x in self.api.ok("GET", "/api/v1/connections")]
        self.assertIn(s["connection"], conns)
        self.assertEqual(s["user"], "anonymous")
        self.assertTrue(s["persistent"])
        self.assertTrue(s["durable"])
        self.assertEqual(s["expiry_interval"], 300)
        self.assertIsNone(s["expires_at"])
        self.assertTrue(s["will"])
        self.assertEqual((s["queued"], s["inflight"]), (0, 0))
        subs = {x["filter"]: x for x in s["subscriptions"]}
        self.assertEqual(subs[topic], {"filter": topic, "qos": 1, "no_local": True,
                                       "retain_as_published": True, "subscription_id": 7,
                                       "queued": 0})
        self.assertEqual(subs[topic + "/+"], {"filter": topic + "/+", "qos": 0,
                                              "no_local": False,
                                              "retain_as_published": False,
                                              "subscription_id": None, "queued": 0})
        # A share member's messages wait in its group's queue, not its own.
        self.assertIsNone(subs["$share/g1/" + topic + "/shared"]["queued"])
        self.assertEqual(len(subs), 3)
        self.assertIn(cid, [x["client_id"] for x in self.api.ok("GET", "/api/v1/sessions")])

        # Away: a normal DISCONNECT keeps the session and drops the will.
        c.disconnect()
        wait_until(lambda: not self.session(cid)["connected"], what="the session detached")
        pub = self.paho(level=4)
        for i in range(5):
            pub.publish(topic, b"away %d" % i, qos=1)
        for i in range(2):
            pub.publish(topic + "/x", b"away+ %d" % i, qos=0)
        pub.publish(topic + "/other/level", b"not matching", qos=1)
        wait_until(lambda: self.session(cid)["queued"] == 7, what="7 messages queued")
        s = self.session(cid)
        self.assertIsNone(s["connection"])
        self.assertFalse(s["will"])
        subs = {x["filter"]: x for x in s["subscriptions"]}
        self.assertEqual((subs[topic]["queued"], subs[topic + "/+"]["queued"]), (5, 2))
        self.assertEqual(s["user"], "anonymous", "the last user is remembered")
        left = time.mktime(time.strptime(s["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")) \
            - time.mktime(time.gmtime())
        self.assertTrue(250 < left <= 301, "expires in %.0f s" % left)

        # Ended by the API: gone from the list, and the client comes back to
        # no session and none of what was queued for it.
        got = self.api.ok("DELETE", spath(cid))
        self.assertEqual(got, {"client_id": cid, "deleted": True})
        self.broker.wait_for_log(r"mqtt client %s: session ended by the admin API"
                                 % re.escape(cid))
        self.assertIsNone(self.session(cid))
        self.assertNotIn(cid, [x["client_id"] for x in self.api.ok("GET", "/api/v1/sessions")])
        self.assertEqual(self.api.request("DELETE", spath(cid))[0], 404)
        back = self.paho(cid, clean=False, connect=False,
                         props=paho_props(PacketTypes.CONNECT, session_expiry=300))
        present, _, _ = back.connect()
        self.assertFalse(present, "session present after the session was deleted")
        self.assertEqual(self.session(cid)["subscriptions"], [])
        # Had the subscriptions lived on, a message published now would come.
        pub.publish(topic, b"after", qos=1)
        sync = self.topic("sync")
        back.subscribe(sync, 1)
        back.sync(sync)
        self.assertEqual(back.messages, [])

    def test_away_messages_arrive_without_delete(self):
        """The counterpart: what the listing showed queued is delivered,
        once and in order, when the client comes back."""
        topic = self.topic()
        cid = self.client_id()
        c = self.paho(cid, level=4, clean=False)
        c.subscribe(topic, 1)
        c.disconnect()
        wait_until(lambda: not self.session(cid)["connected"], what="the session detached")
        pub = self.paho(level=4)
        for i in range(4):
            pub.publish(topic, b"m%d" % i, qos=1)
        wait_until(lambda: self.session(cid)["queued"] == 4, what="4 messages queued")
        s = self.session(cid)
        self.assertIsNone(s["expires_at"], "a 3.1.1 persistent session never expires")
        self.assertIsNone(s["expiry_interval"])
        back = self.paho(cid, level=4, clean=False, connect=False)
        self.assertTrue(back.connect()[0])
        back.wait_messages(4)
        back.sync(topic)
        self.assertEqual(back.payloads(), [b"m0", b"m1", b"m2", b"m3"])
        wait_until(lambda: self.session(cid)["queued"] == 0, what="the queue drained")

    def test_connected_session_not_deleted(self):
        topic = self.topic()
        cid = self.client_id()
        c = self.paho(cid, level=4, clean=False)
        c.subscribe(topic, 1)
        status, got = self.api.request("DELETE", spath(cid))
        self.assertEqual(status, 409, got)
        self.assertIn("connection", got["error"])
        # Untouched: it still receives.
        pub = self.paho(level=4)
        pub.publish(topic, b"still here", qos=1)
        c.wait_payload(b"still here")
        # Closing its connection first, then deleting, ends it.
        conn = self.session(cid)["connection"]
        self.api.ok("DELETE", "/api/v1/connections/%d" % conn)
        wait_until(lambda: not self.session(cid)["connected"], what="the session detached")
        self.api.ok("DELETE", spath(cid))
        self.assertIsNone(self.session(cid))

    def test_clean_session_listed_while_connected(self):
        cid = self.client_id()
        c = self.paho(cid, level=4, clean=True)
        s = self.session(cid)
        self.assertTrue(s["connected"])
        self.assertFalse(s["persistent"])
        self.assertFalse(s["durable"])
        self.assertEqual(s["expiry_interval"], 0)
        c.disconnect()
        wait_until(lambda: self.session(cid) is None, what="the clean session gone")

    def test_errors(self):
        self.assertEqual(self.api.request("DELETE", spath("no-such-client"))[0], 404)
        self.assertEqual(self.api.request("GET", spath("no-such-client"))[0], 404)
        self.assertEqual(self.api.request("POST", "/api/v1/sessions")[0], 405)
        self.assertEqual(self.api.request("PUT", spath("x"))[0], 405)
        self.assertEqual(self.api.request("GET", spath("x") + "/more")[0], 404)

    def test_wharfctl(self):
        topic = self.topic()
        cid = self.client_id() + "/with slash"
        c = self.paho(cid, level=4, clean=False)
        c.subscribe(topic, 1)
        c.subscribe(topic + "/#", 0)
        out = self.ctl("sessions").stdout.splitlines()
        self.assertEqual(out[0].split()[:3], ["CLIENT-ID", "CONNECTED", "USER"])
        row = [line for line in out if line.startswith(cid + " ")]
        self.assertEqual(len(row), 1, out)
        self.assertIn("yes", row[0].split())
        self.assertEqual(sorted(row[0].split()[-1].split(",")), [topic, topic + "/#"])
        r = self.ctl("session", "delete", cid, want=1)
        self.assertIn("409", r.stderr)
        c.disconnect()
        wait_until(lambda: not self.session(cid)["connected"], what="the session detached")
        self.assertIn("filter", self.ctl("session", "show", cid).stdout)
        self.ctl("session", "delete", cid)
        self.assertIsNone(self.session(cid))
        self.assertIn("404", self.ctl("session", "delete", cid, want=1).stderr)
        back = self.paho(cid, level=4, clean=False, connect=False)
        self.assertFalse(back.connect()[0])


class SessionsAfterRestart(StoreTestCase):
    """A persistent session read back from the store at start-up is listed
    before its client comes back (no user known yet), with its expiry
    running and what was queued for it, and can be deleted then."""

    config = ADMIN_CONFIG

    def paho(self, b, cid):
        p = Paho(b.ports["mqtt"], cid, level=5, clean=False,
                 props=paho_props(PacketTypes.CONNECT, session_expiry=3600))
        self.addCleanup(p.close)
        return p

    def test_restored_session(self):
        b = self.start(("mqtt", "stomp"))
        c = self.paho(b, "restored")
        c.connect()
        c.subscribe("rs/t", 1)
        c.disconnect()
        pub = self.paho(b, "restored-pub")
        pub.connect()
        for i in range(3):
            pub.publish("rs/t", b"kept %d" % i, qos=1)
        pub.disconnect()
        self.stop(b)

        b = self.start(("mqtt", "stomp"))
        api = Admin(admin_port(b))
        s = api.ok("GET", "/api/v1/sessions/restored")
        self.assertEqual((s["connected"], s["user"], s["durable"], s["expiry_interval"]),
                         (False, None, True, 3600))
        self.assertIsNotNone(s["expires_at"])
        self.assertEqual([(x["filter"], x["qos"], x["queued"]) for x in s["subscriptions"]],
                         [("rs/t", 1, 3)])
        self.assertEqual(s["queued"], 3)
        api.ok("DELETE", "/api/v1/sessions/restored")
        self.stop(b)
        # Deleted from the store too: not back after another restart.
        b = self.start(("mqtt", "stomp"))
        self.assertEqual(Admin(admin_port(b)).request("GET", "/api/v1/sessions/restored")[0],
                         404)
        back = self.paho(b, "restored")
        self.assertFalse(back.connect()[0], "session present after the session was deleted")
        back.close()
        self.stop(b)


if __name__ == "__main__":
    main()
