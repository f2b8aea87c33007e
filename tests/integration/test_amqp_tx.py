#!/usr/bin/env python3
"""AMQP 1.0 local transactions (AMQP 1.0 §4, docs/amqp.md) with
python3-qpid-proton's TransactionHandler: outcomes given under a transaction
take effect on commit and not on abort; transfers under a transaction reach
their queue on commit only; a transaction the broker does not know is
refused; one whose coordinator link goes away rolls back; a connection's
open transactions are bounded in number and in bytes.
(MessageTest.test_transaction_commit_and_abort in test_amqp_basic.py covers
sending under commit and abort.)"""
from proton import Delivery, Endpoint, Message

from amqptest import AmqpTestCase, TxEvents
from wharftest import main


class Transactions:

    def declare(self, c):
        h = TxEvents()
        tx = c.bc.container.declare_transaction(c.conn, handler=h)
        c.pump(lambda: h.events or tx.txn_ctrl.state & Endpoint.REMOTE_CLOSED, what="the declare")
        self.assertEqual(h.events, ["declared"], tx.txn_ctrl.remote_condition)
        return tx, h

    def discharge(self, c, tx, h, commit):
        n = len(h.events)
        tx.commit() if commit else tx.abort()
        c.pump(lambda: len(h.events) > n, what="the discharge")
        return h.events[-1]


class TransactionTest(Transactions, AmqpTestCase):

    def test_acks_take_effect_on_commit_only(self):
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, [Message(body="kept"), Message(body="gone")])
        r = c.rcv(q, credit=2)
        got = c.wait_received(r, 2)
        tx, h = self.declare(c)
        tx.accept(got[0].delivery)
        self.assertEqual(self.discharge(c, tx, h, commit=False), "aborted")
        tx, h = self.declare(c)
        tx.accept(got[1].delivery)
        self.assertEqual(self.discharge(c, tx, h, commit=True), "committed")
        r.link.close()
        c.pump(lambda: r.remote_closed, what="the detach")
        again = c.rcv(q, credit=5, auto_accept=True)
        c.wait_received(again, 1)
        c.idle(0.5)
        self.assertEqual(again.bodies(), ["kept"])

    def test_settled_ack_under_abort_goes_back(self):
        """An outcome the client settled at once under a transaction that
        is then aborted: the client cannot settle it again, so the message
        goes back to the queue."""
        q = self.name("queue")
        c = self.client()
        s = c.snd(q)
        c.send_all(s, [Message(body="back")])
        r = c.rcv(q, credit=1)
        x = c.wait_received(r, 1)[0]
        tx, h = self.declare(c)
        tx.settle_before_discharge = True
        tx.accept(x.delivery)
        self.assertEqual(self.discharge(c, tx, h, commit=False), "aborted")
        other = c.rcv(q, credit=5, auto_accept=True)
        got = c.wait_received(other, 1)
        self.assertEqual(got[0].body, "back")

    def test_unknown_transaction_refused(self):
        q = self.name("queue")
        c = self.client()
        tx, h = self.declare(c)
        s = c.snd(q)
        real = tx.id
        tx.id = b"\x00unknown"
        d = tx.send(s.link, Message(body="lost"))
        c.pump(lambda: d.remote_state, what="the outcome")
        self.assertEqual(d.remote_state, Delivery.REJECTED)
        self.assertEqual(d.remote.condition.name, "amqp:transaction:unknown-id")
        self.assertEqual(self.discharge(c, tx, h, commit=True), "commit-failed")
        tx.id = real
        self.assertEqual(self.discharge(c, tx, h, commit=True), "committed")
        r = c.rcv(q, credit=5)
        c.idle(0.5)
        self.assertEqual(r.count(), 0)

    def test_transfer_its_destination_refuses_is_rejected(self):
        """Under a transaction too, a destination that would refuse the
        message refuses the transfer at once, with its condition."""
        c = self.client()
        tx, h = self.declare(c)
        relay = c.snd(None)
        d = tx.send(relay.link, Message(body="forged", address="topic://$SYS.broker.fake"))
        c.pump(lambda: d.remote_state or d.settled, what="the outcome")
        self.assertEqual(d.remote_state, Delivery.REJECTED)
        self.assertEqual(d.remote.condition and d.remote.condition.name,
                         "amqp:unauthorized-access")
        self.assertEqual(self.discharge(c, tx, h, commit=True), "committed")

    def test_coordinator_gone_rolls_back(self):
        q = self.name("queue")
        c = self.client()
        tx, h = self.declare(c)
        s = c.snd(q)
        d = tx.send(s.link, Message(body="never"))
        c.pump(lambda: d.remote_state, what="the transactional outcome")
        tx.txn_ctrl.close()
        c.pump(lambda: tx.txn_ctrl.state & Endpoint.REMOTE_CLOSED, what="the coordinator detach")
        r = c.rcv(q, credit=5)
        c.idle(0.5)
        self.assertEqual(r.count(), 0)
        c2 = self.client()
        tx2, h2 = self.declare(c2)
        s2 = c2.snd(q)
        tx2.send(s2.link, Message(body="sent"))
        c2.close()
        c.idle(0.5)
        self.assertEqual(r.count(), 0, "a transaction of a closed connection was committed")


class TransactionBoundsTest(Transactions, AmqpTestCase):
    config = "max_transaction_bytes = 1MiB\nmax_transactions = 3\n"

    def test_open_transactions_are_bounded(self):
        c = self.client()
        txs = [self.declare(c) for _ in range(3)]
        h = TxEvents()
        tx = c.bc.container.declare_transaction(c.conn, handler=h)
        c.pump(lambda: h.events, what="the declare")
        self.assertEqual(h.events, ["declare-failed"])
        cond = tx._declare.remote.condition
        self.assertEqual(cond and cond.name, "amqp:resource-limit-exceeded")
        self.assertIn("at most 3", cond.description)
        self.assertEqual(self.discharge(c, txs[0][0], txs[0][1], commit=False), "aborted")
        self.declare(c)

    def test_bytes_of_open_transactions_are_bounded(self):
        """Three transfers of 150 KiB bodies (300 KiB each as the broker
        holds them: the body and the message's AMQP encoding) fit in 1 MiB,
        a fourth is rejected with amqp:resource-limit-exceeded; the three
        still commit."""
        q = self.name("queue")
        c = self.client()
        tx, h = self.declare(c)
        s = c.snd(q)
        body = "x" * (150 * 1024)
        ds = []
        for _ in range(4):
            ds.append(tx.send(s.link, Message(body=body)))
            c.pump(lambda: ds[-1].remote_state, what="the transactional outcome")
        self.assertEqual([d.remote_state == Delivery.REJECTED for d in ds],
                         [False, False, False, True])
        self.assertEqual(ds[3].remote.condition.name, "amqp:resource-limit-exceeded")
        self.assertIn("transaction too large", ds[3].remote.condition.description)
        self.assertEqual(self.discharge(c, tx, h, commit=True), "committed")
        r = c.rcv(q, credit=10)
        c.wait_received(r, 3)
        c.idle(0.3)
        self.assertEqual(r.count(), 3)
        tx, h = self.declare(c)
        d = tx.send(s.link, Message(body=body))
        c.pump(lambda: d.remote_state, what="the transactional outcome")
        self.assertNotEqual(d.remote_state, Delivery.REJECTED, "committed bytes not given back")
        self.assertEqual(self.discharge(c, tx, h, commit=False), "aborted")


if __name__ == "__main__":
    main()
