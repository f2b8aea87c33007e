#!/usr/bin/env python3
"""RabbitMQ's STOMP dialect, as its users write it with stomp.py: boolean
headers in any case (stomp.py sends Python's True/False as written), a
durable subscription ended by UNSUBSCRIBE with durable:true alone, the
/exchange/, /amq/queue/ destinations and `#` wildcards mapped onto Wharf's
topics and queues (an MQTT client on the other side proves the mapping),
prefetch-count, redelivered:false, and the [stomp] dialect switch."""
import uuid

from mqtttest import Paho
from stomptest import StompTestCase, new_receipt, sync
from wharftest import main


class RabbitBooleans(StompTestCase):

    def test_persistent_true_in_any_case_makes_a_durable_message(self):
        q = self.name()
        cons, clst = self.connect()
        self.subscribe(cons, clst, q)
        prod, plst = self.connect()
        for v in (True, "TRUE", "true", False, "False"):
            prod.send(q, str(v), headers={"persistent": v})
        sync(prod, plst)
        msgs = clst.wait_messages(5)
        self.assertEqual([m.headers.get("persistent") for m in msgs],
                         ["true", "true", "true", None, None])

    def durable_subscribe(self, conn, lst, dest, sub_id, headers):
        self.subscribe(conn, lst, dest, sub_id, headers=headers)

    def test_durable_True_and_auto_delete_False_keep_what_arrives_while_away(self):
        t = self.name("topic")
        sub_id = "rabbit-" + uuid.uuid4().hex[:8]
        flags = {"durable": True, "auto-delete": False}
        cons, clst = self.connect()
        self.durable_subscribe(cons, clst, t, sub_id, flags)
        cons.disconnect()
        clst.wait_disconnected()
        prod, plst = self.connect()
        self.send_all(prod, plst, t, ["away-1", "away-2"], headers={"persistent": True})
        cons2, clst2 = self.connect()
        self.durable_subscribe(cons2, clst2, t, sub_id, flags)
        self.assertEqual([m.body for m in clst2.wait_messages(2)], ["away-1", "away-2"])
        cons2.unsubscribe(sub_id, headers={"durable": True, "receipt": "end"})
        clst2.wait_receipt("end")


class RabbitUnsubscribe(StompTestCase):

    def test_x_queue_name_names_a_durable_subscription(self):
        """The queue of a durable subscription is named by x-queue-name
        when given (not the id), and an UNSUBSCRIBE by id ends it."""
        t = self.name("topic")
        flags = {"durable": "true", "auto-delete": "false",
                 "x-queue-name": "xq-" + uuid.uuid4().hex[:8]}
        cons, clst = self.connect()
        self.subscribe(cons, clst, t, "first-id", headers=flags)
        cons.disconnect()
        clst.wait_disconnected()
        prod, plst = self.connect()
        self.send_all(prod, plst, t, ["kept"])
        cons2, clst2 = self.connect()
        self.subscribe(cons2, clst2, t, "second-id", headers=flags)
        self.assertEqual(clst2.wait_messages(1)[0].body, "kept")
        rid = new_receipt()
        cons2.unsubscribe("second-id", headers={"durable": "true", "receipt": rid})
        clst2.wait_receipt(rid)
        self.send_all(prod, plst, t, ["gone"])
        self.subscribe(cons2, clst2, t, "third-id", headers=flags)
        self.send_all(prod, plst, t, ["fresh"])
        clst2.wait_messages(2)
        sync(cons2, clst2)
        self.assertEqual(clst2.bodies(), ["kept", "fresh"])

    def test_unsubscribe_with_durable_true_alone_ends_the_subscription(self):
        """RabbitMQ deletes a durable subscription's queue on an UNSUBSCRIBE
        with durable:true and its id; the orphan must not keep filling."""
        t = self.name("topic")
        sub_id = "rabbit-" + uuid.uuid4().hex[:8]
        cons, clst = self.connect()
        self.subscribe(cons, clst, t, sub_id, headers={"durable": "true", "auto-delete": "false"})
        rid = new_receipt()
        cons.unsubscribe(sub_id, headers={"durable": "true", "receipt": rid})
        clst.wait_receipt(rid)
        prod, plst = self.connect()
        self.send_all(prod, plst, t, ["gone"])
        self.subscribe(cons, clst, t, sub_id, headers={"durable": "true", "auto-delete": "false"})
        self.send_all(prod, plst, t, ["fresh"])
        clst.wait_messages(1)
        sync(cons, clst)
        self.assertEqual(clst.bodies(), ["fresh"])
        self.assertEqual(clst.errors, [])

    def test_unsubscribe_with_persistent_true_on_a_plain_subscription_is_fine(self):
        t = self.name("topic")
        cons, clst = self.connect()
        self.subscribe(cons, clst, t, "plain")
        rid = new_receipt()
        cons.unsubscribe("plain", headers={"persistent": True, "receipt": rid})
        clst.wait_receipt(rid)
        self.assertEqual(clst.errors, [])


class RabbitDestinations(StompTestCase):
    protocols = ("stomp", "mqtt")

    def topic(self):
        return "rabbit%s" % uuid.uuid4().hex[:8]

    def mqtt(self):
        c = Paho(self.broker.ports["mqtt"], level=4)
        c.connect()
        self.addCleanup(c.disconnect)
        return c

    def test_amq_topic_exchange_is_wharfs_topics(self):
        t = self.topic()
        cons, clst = self.connect()
        self.subscribe(cons, clst, "/exchange/amq.topic/%s.*" % t)
        m = self.mqtt()
        m.subscribe("%s/#" % t)
        prod, plst = self.connect()
        self.send_all(prod, plst, "/exchange/amq.topic/%s.a" % t, ["from-exchange"])
        m.publish("%s/b" % t, b"from-mqtt", qos=1)
        msgs = clst.wait_messages(2)
        self.assertEqual([x.body for x in msgs], ["from-exchange", "from-mqtt"])
        self.assertEqual([x.headers["destination"] for x in msgs],
                         ["/exchange/amq.topic/%s.a" % t, "/exchange/amq.topic/%s.b" % t])
        self.assertEqual([x.headers.get("redelivered") for x in msgs], ["false", "false"])
        m.wait_payload(b"from-exchange")
        self.assertEqual(m.payloads("%s/a" % t), [b"from-exchange"])

    def test_hash_wildcard_is_zero_or_more_words(self):
        t = self.topic()
        cons, clst = self.connect()
        self.subscribe(cons, clst, "/topic/%s.#" % t)
        prod, plst = self.connect()
        for key in (t, "%s.a" % t, "%s.a.b" % t, "other.%s" % t):
            prod.send("/topic/" + key, key)
        sync(prod, plst)
        clst.wait_messages(3)
        sync(cons, clst)
        self.assertEqual(clst.bodies(), [t, "%s.a" % t, "%s.a.b" % t])

    def test_hash_inside_a_pattern_is_refused(self):
        cons, clst = self.connect()
        cons.subscribe("/topic/a.#.b", id="1")
        err = clst.wait_error()
        self.assertEqual(err.headers["message"], "invalid destination")
        self.assertIn("'#'", err.body)

    def test_amq_direct_routes_by_exact_key(self):
        t = self.topic()
        cons, clst = self.connect()
        self.subscribe(cons, clst, "/exchange/amq.direct/%s.k1" % t, sub_id="k1")
        self.subscribe(cons, clst, "/exchange/amq.direct/%s.k2" % t, sub_id="k2")
        prod, plst = self.connect()
        self.send_all(prod, plst, "/exchange/amq.direct/%s.k2" % t, ["for-k2"])
        msg = clst.wait_messages(1)[0]
        sync(cons, clst)
        self.assertEqual(clst.bodies(), ["for-k2"])
        self.assertEqual(msg.headers["subscription"], "k2")
        self.assertEqual(msg.headers["destination"], "/exchange/amq.direct/%s.k2" % t)

    def test_amq_fanout_reaches_every_subscriber_whatever_the_key(self):
        subs = []
        for key in ("", "/x", "/y.z"):
            cons, clst = self.connect()
            self.subscribe(cons, clst, "/exchange/amq.fanout" + key)
            subs.append(clst)
        prod, plst = self.connect()
        self.send_all(prod, plst, "/exchange/amq.fanout/any.key", ["to-all"])
        for clst in subs:
            self.assertEqual(clst.wait_messages(1)[0].headers["destination"],
                             "/exchange/amq.fanout")

    def test_unknown_exchange_is_an_error(self):
        prod, plst = self.connect()
        prod.send("/exchange/my.exchange/key", "x")
        err = plst.wait_error()
        self.assertEqual(err.headers["message"], "invalid destination")
        self.assertIn("unknown exchange", err.body)

    def test_amq_queue_is_the_queue_of_that_name(self):
        q = "rabbit-q-" + uuid.uuid4().hex[:8]
        prod, plst = self.connect()
        self.send_all(prod, plst, "/amq/queue/" + q, ["one"])
        self.send_all(prod, plst, "/queue/" + q, ["two"])
        cons, clst = self.connect()
        self.subscribe(cons, clst, "/amq/queue/" + q)
        msgs = clst.wait_messages(2)
        self.assertEqual([m.body for m in msgs], ["one", "two"])
        self.assertEqual({m.headers["destination"] for m in msgs}, {"/amq/queue/" + q})

    def test_prefetch_count_bounds_unacknowledged_messages(self):
        q = self.name()
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["m%d" % i for i in range(5)])
        cons, clst = self.connect()
        self.subscribe(cons, clst, q, ack="client-individual", headers={"prefetch-count": 2})
        first = clst.wait_messages(2)
        sync(cons, clst)
        self.assertEqual(clst.count(), 2)
        self.assertEqual([m.headers.get("redelivered") for m in first], ["false", "false"])
        cons.ack(first[0].headers["ack"])
        clst.wait_messages(3)
        sync(cons, clst)
        self.assertEqual(clst.bodies(), ["m0", "m1", "m2"])

    def test_nack_requeue_false_dead_letters(self):
        """RabbitMQ's NACK with requeue:false: not back to the queue, but to
        its dead-letter queue (DLQ.NAME by default); a plain NACK requeues."""
        q = self.name()
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["rejected", "requeued"])
        cons, clst = self.connect()
        self.subscribe(cons, clst, q, ack="client-individual", headers={"prefetch-count": 2})
        first = clst.wait_messages(2)
        cons.nack(first[0].headers["ack"], requeue=False)
        cons.nack(first[1].headers["ack"])
        again = clst.wait_messages(3)[2]
        self.assertEqual((again.body, again.headers.get("redelivered")), ("requeued", "true"))
        cons.ack(again.headers["ack"])
        sync(cons, clst)
        self.assertEqual(clst.bodies(), ["rejected", "requeued", "requeued"])
        dlq, dlst = self.connect()
        self.subscribe(dlq, dlst, "/queue/DLQ." + q[len("/queue/"):])
        dead = dlst.wait_messages(1)[0]
        self.assertEqual(dead.body, "rejected")
        self.assertEqual(dead.headers.get("x-death-reason"), "rejected")

    def test_activemq_style_subscriptions_get_no_redelivered_header(self):
        q = self.name()
        cons, clst = self.connect()
        self.subscribe(cons, clst, q)
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["x"])
        self.assertNotIn("redelivered", clst.wait_messages(1)[0].headers)


class RabbitTempQueues(StompTestCase):

    def rpc_server(self, q):
        """Answers each request on q to its reply-to with "re:" + body;
        returns the reply-to headers it saw."""
        seen = []
        server, slst = self.connect()

        def answer(frame):
            seen.append(frame.headers["reply-to"])
            server.send(frame.headers["reply-to"], "re:" + frame.body)

        slst.callback = answer
        self.subscribe(server, slst, q)
        return server, slst, seen

    def test_reply_to_temp_queue_makes_a_private_reply_queue(self):
        q = self.name()
        server, slst, seen = self.rpc_server(q)
        client, clst = self.connect()
        client.send(q, "ping", headers={"reply-to": "/temp-queue/replies"})
        client.send(q, "pong", headers={"reply-to": "/temp-queue/replies"})
        msgs = clst.wait_messages(2)
        self.assertEqual([m.body for m in msgs], ["re:ping", "re:pong"])
        self.assertEqual({m.headers["subscription"] for m in msgs}, {"/temp-queue/replies"})
        self.assertEqual(len(set(seen)), 1, seen)
        self.assertTrue(seen[0].startswith("/reply-queue/"), seen)
        self.assertEqual(msgs[0].headers["destination"], seen[0])
        # Another connection's /temp-queue/replies is a queue of its own.
        other, olst = self.connect()
        other.send(q, "other", headers={"reply-to": "/temp-queue/replies"})
        self.assertEqual(olst.wait_messages(1)[0].body, "re:other")
        self.assertNotEqual(seen[2], seen[0])
        sync(client, clst)
        self.assertEqual(clst.bodies(), ["re:ping", "re:pong"])

    def test_the_temp_queue_goes_with_its_connection(self):
        q = self.name()
        client, clst = self.connect()
        self.send_all(client, clst, q, ["req"], headers={"reply-to": "/temp-queue/r"})
        server, slst = self.connect()
        self.subscribe(server, slst, q)
        reply_to = slst.wait_messages(1)[0].headers["reply-to"]
        client.disconnect()
        clst.wait_disconnected()
        self.send_all(server, slst, reply_to, ["late reply"])
        self.assertEqual(slst.errors, [])
        # A temp queue is its connection's alone, as RabbitMQ's exclusive
        # queues are: no one else may read it, before or after it goes.
        queue = "/queue/" + reply_to[len("/reply-queue/"):]
        probe, plst = self.connect()
        probe.subscribe(queue, id="probe")
        self.assertEqual(plst.wait_error().headers["message"], "destination reserved for the broker")
        self.assertEqual(plst.bodies(), [], "a reply to a gone requester was delivered")

    def test_temp_queue_is_no_destination(self):
        prod, plst = self.connect()
        prod.send("/temp-queue/x", "x")
        self.assertEqual(plst.wait_error().headers["message"], "invalid destination")


class TempQueuesForbidden(StompTestCase):
    config = "[queue wharf.temp.>]\nauto_create = false\n"

    def test_a_temp_queue_the_config_forbids_is_an_error(self):
        prod, plst = self.connect()
        prod.send(self.name(), "x", headers={"reply-to": "/temp-queue/r"})
        err = plst.wait_error()
        self.assertEqual(err.headers["message"], "the reply-to temp queue cannot be made")


class DialectActiveMQ(StompTestCase):
    config = "[stomp]\ndialect = activemq\n"

    def test_temp_queue_reply_to_is_carried_as_written(self):
        q = self.name()
        cons, clst = self.connect()
        self.subscribe(cons, clst, q)
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["x"], headers={"reply-to": "/temp-queue/abc"})
        self.assertEqual(clst.wait_messages(1)[0].headers["reply-to"], "/temp-queue/abc")

    def test_rabbitmq_destinations_are_invalid(self):
        for dest in ("/exchange/amq.topic/a", "/amq/queue/a"):
            prod, plst = self.connect()
            prod.send(dest, "x")
            self.assertEqual(plst.wait_error().headers["message"], "invalid destination")

    def test_hash_is_a_plain_word(self):
        cons, clst = self.connect()
        self.subscribe(cons, clst, "/topic/amq-dialect.#")
        prod, plst = self.connect()
        prod.send("/topic/amq-dialect.a", "not-matched")
        self.send_all(prod, plst, "/topic/amq-dialect.#", ["matched"])
        clst.wait_messages(1)
        sync(cons, clst)
        self.assertEqual(clst.bodies(), ["matched"])


class DialectRabbitMQ(StompTestCase):
    config = "[stomp]\ndialect = rabbitmq\n"

    def test_every_first_delivery_says_redelivered_false(self):
        q = self.name()
        cons, clst = self.connect()
        self.subscribe(cons, clst, q)
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["x"])
        self.assertEqual(clst.wait_messages(1)[0].headers.get("redelivered"), "false")


if __name__ == "__main__":
    main()
