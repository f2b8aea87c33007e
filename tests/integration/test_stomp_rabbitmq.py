#!/usr/bin/env python3
"""RabbitMQ's STOMP dialect, as its users write it with stomp.py: boolean
headers in any case (stomp.py sends Python's True/False as written), and a
durable subscription ended by UNSUBSCRIBE with durable:true alone."""
import uuid

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


if __name__ == "__main__":
    main()
