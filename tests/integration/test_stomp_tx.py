#!/usr/bin/env python3
"""STOMP transactions: BEGIN/COMMIT/ABORT of SENDs and ACKs, unknown
transactions, a disconnect with a transaction still open, and the bounds on
open transactions (their count and bytes per connection)."""
from stomptest import StompTestCase, new_receipt, sync
from wharftest import main


class TxCase(StompTestCase):

    def consumer(self, q, **kw):
        conn, lst = self.connect()
        self.subscribe(conn, lst, q, **kw)
        return conn, lst

    def only_sentinel_arrives(self, q, cons, clst):
        """A message sent now on another connection is all cons gets."""
        other, olst = self.connect()
        self.send_all(other, olst, q, ["sentinel"])
        clst.wait_body("sentinel")
        sync(cons, clst)
        self.assertEqual(clst.bodies(), ["sentinel"])

class StompTx(TxCase):

    def test_commit_delivers_all_at_commit(self):
        q = self.name()
        cons, clst = self.consumer(q)
        prod, plst = self.connect()
        tx = prod.begin()
        bodies = ["t%d" % i for i in range(5)]
        for b in bodies[:-1]:
            prod.send(q, b, transaction=tx)
        # A receipt for a SEND in a transaction: the SEND was taken, not delivered.
        prod.send(q, bodies[-1], transaction=tx, headers={"receipt": "last"})
        plst.wait_receipt("last")
        # Something outside the transaction goes through at once.
        self.send_all(prod, plst, q, ["outside"])
        clst.wait_body("outside")
        sync(cons, clst)
        self.assertEqual(clst.bodies(), ["outside"], "transactional messages before COMMIT")
        prod.commit(tx, headers={"receipt": "commit"})
        plst.wait_receipt("commit")
        clst.wait_messages(6)
        sync(cons, clst)
        self.assertEqual(clst.bodies(), ["outside"] + bodies)
        self.assertEqual(plst.errors, [])

    def test_abort_delivers_nothing(self):
        q = self.name()
        cons, clst = self.consumer(q)
        prod, plst = self.connect()
        tx = prod.begin()
        for i in range(3):
            prod.send(q, "aborted-%d" % i, transaction=tx)
        prod.abort(tx, headers={"receipt": "abort"})
        plst.wait_receipt("abort")
        self.send_all(prod, plst, q, ["sentinel"])
        clst.wait_body("sentinel")
        sync(cons, clst)
        self.assertEqual(clst.bodies(), ["sentinel"])
        # The aborted id is gone: committing it now is an error.
        prod.commit(tx)
        err = plst.wait_error()
        self.assertTrue(err.headers.get("message"))

    def test_two_transactions_interleaved(self):
        q = self.name()
        cons, clst = self.consumer(q)
        prod, plst = self.connect()
        t1 = prod.begin()
        t2 = prod.begin()
        prod.send(q, "one-a", transaction=t1)
        prod.send(q, "two-a", transaction=t2)
        prod.send(q, "one-b", transaction=t1)
        prod.abort(t2)
        prod.commit(t1, headers={"receipt": "c1"})
        plst.wait_receipt("c1")
        self.send_all(prod, plst, q, ["sentinel"])
        clst.wait_body("sentinel")
        self.assertEqual(clst.bodies(), ["one-a", "one-b", "sentinel"])

    def test_tx_to_topic(self):
        t = self.name("topic")
        cons, clst = self.consumer(t)
        prod, plst = self.connect()
        tx = prod.begin()
        prod.send(t, "news", transaction=tx, headers={"receipt": "s"})
        plst.wait_receipt("s")
        sync(cons, clst)
        self.assertEqual(clst.bodies(), [])
        prod.commit(tx)
        self.assertEqual(clst.wait_messages(1)[0].body, "news")

    def test_ack_in_aborted_transaction_leaves_message_unacked(self):
        q = self.name()
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["keep-me"])
        cons, clst = self.consumer(q, ack="client-individual")
        m = clst.wait_messages(1)[0]
        tx = cons.begin()
        cons.ack(m.headers["ack"], transaction=tx)
        cons.abort(tx, headers={"receipt": "abort"})
        clst.wait_receipt("abort")
        self.assertEqual(clst.errors, [])
        cons.disconnect()
        clst.wait_disconnected()
        again, alst = self.consumer(q)
        msgs = alst.wait_messages(1)
        self.assertEqual(msgs[0].body, "keep-me")
        self.assertEqual(msgs[0].headers.get("redelivered"), "true")

    def test_ack_after_aborted_ack_still_works(self):
        """After the aborted ACK the message is still outstanding: a plain
        ACK settles it, without an error."""
        q = self.name()
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["m"])
        cons, clst = self.consumer(q, ack="client-individual")
        m = clst.wait_messages(1)[0]
        tx = cons.begin()
        cons.ack(m.headers["ack"], transaction=tx)
        cons.abort(tx)
        cons.ack(m.headers["ack"], receipt="acked")
        clst.wait_receipt("acked")
        self.assertEqual(clst.errors, [])
        cons.disconnect()
        clst.wait_disconnected()
        again, alst = self.consumer(q)
        self.send_all(again, alst, q, ["sentinel"])
        alst.wait_body("sentinel")
        self.assertEqual(alst.bodies(), ["sentinel"])

    def test_ack_committed_in_transaction_is_final(self):
        q = self.name()
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["done-1", "done-2", "open-3"])
        cons, clst = self.consumer(q, ack="client")
        msgs = clst.wait_messages(3)
        tx = cons.begin()
        cons.ack(msgs[1].headers["ack"], transaction=tx)  # cumulative: done-1 too
        sync(cons, clst)
        cons.commit(tx, headers={"receipt": "commit"})
        clst.wait_receipt("commit")
        self.assertEqual(clst.errors, [])
        cons.disconnect()
        clst.wait_disconnected()
        again, alst = self.consumer(q)
        self.send_all(again, alst, q, ["sentinel"])
        alst.wait_body("sentinel")
        self.assertEqual(alst.bodies(), ["open-3", "sentinel"])
        self.assertEqual(alst.messages[0].headers.get("redelivered"), "true")

    def test_nack_committed_in_transaction_redelivers(self):
        q = self.name()
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["nacked"])
        cons, clst = self.consumer(q, ack="client-individual")
        m = clst.wait_messages(1)[0]
        tx = cons.begin()
        cons.nack(m.headers["ack"], transaction=tx)
        sync(cons, clst)
        self.assertEqual(clst.count(), 1, "NACK acted on before COMMIT")
        cons.commit(tx)
        m2 = clst.wait_messages(2)[1]
        self.assertEqual(m2.body, "nacked")
        self.assertEqual(m2.headers.get("redelivered"), "true")
        cons.ack(m2.headers["ack"], receipt="done")
        clst.wait_receipt("done")
        self.assertEqual(clst.errors, [])

    def test_unknown_transaction_send(self):
        q = self.name()
        cons, clst = self.consumer(q)
        raw = self.raw("1.2")
        raw.send_frame("SEND", [("destination", q), ("transaction", "no-such-tx")], b"lost")
        frames = raw.wait_closed()
        self.assertEqual([f.command for f in frames], ["ERROR"])
        self.assertTrue(frames[0].headers.get("message"))
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["sentinel"])
        clst.wait_body("sentinel")
        self.assertEqual(clst.bodies(), ["sentinel"], "a SEND in an unknown transaction went through")

    def test_unknown_transaction_commit_abort_ack(self):
        for frame in (("COMMIT", [("transaction", "nope"), ("receipt", "r")]),
                      ("ABORT", [("transaction", "nope"), ("receipt", "r")]),
                      ("ACK", [("id", "1-1"), ("transaction", "nope")]),
                      ("BEGIN", [])):  # BEGIN without a transaction header
            raw = self.raw("1.2")
            raw.send_frame(*frame)
            frames = raw.wait_closed()
            self.assertEqual([f.command for f in frames], ["ERROR"], frame)
            self.assertTrue(frames[0].headers.get("message"), frame)
            self.assertNotIn("RECEIPT", [f.command for f in frames])

    def test_begin_twice_is_an_error(self):
        raw = self.raw("1.2")
        raw.send_frame("BEGIN", [("transaction", "t")])
        raw.send_frame("BEGIN", [("transaction", "t")])
        frames = raw.wait_closed()
        self.assertEqual([f.command for f in frames], ["ERROR"])

    def test_disconnect_with_open_transaction_discards_it(self):
        q = self.name()
        cons, clst = self.consumer(q)
        prod, plst = self.connect()
        tx = prod.begin()
        for i in range(3):
            prod.send(q, "never-%d" % i, transaction=tx)
        prod.disconnect()
        plst.wait_disconnected()
        self.only_sentinel_arrives(q, cons, clst)

    def test_abrupt_close_with_open_transaction_discards_it(self):
        q = self.name()
        cons, clst = self.consumer(q)
        raw = self.raw("1.2")
        raw.send_frame("BEGIN", [("transaction", "t")])
        raw.send_frame("SEND", [("destination", q), ("transaction", "t")], b"never")
        raw.send_frame("SEND", [("destination", q), ("transaction", "t"), ("receipt", "s")], b"x")
        raw.wait_receipt("s")
        raw.close()
        self.only_sentinel_arrives(q, cons, clst)

    def test_large_transaction(self):
        q = self.name()
        cons, clst = self.consumer(q)
        prod, plst = self.connect()
        tx = prod.begin()
        bodies = ["big-%04d" % i for i in range(2000)]
        for b in bodies:
            prod.send(q, b, transaction=tx)
        prod.commit(tx, headers={"receipt": "c"})
        plst.wait_receipt("c")
        clst.wait_messages(2000)
        self.assertEqual(clst.bodies(), bodies)


KIB = 1024
BODY = "x" * (300 * KIB)


class StompTxBounds(TxCase):
    config = "max_transaction_bytes = 1MiB\nmax_transactions = 3\n"

    def send_in(self, conn, lst, q, tx, n):
        for i in range(n):
            rid = new_receipt()
            conn.send(q, BODY, transaction=tx, headers={"receipt": rid})
            lst.wait_for(lambda: rid in lst.receipts or lst.errors, what="receipt or ERROR")

    def test_bytes_of_open_transactions_are_bounded(self):
        """Three 300 KiB SENDs fit in 1 MiB, a fourth does not: ERROR and
        close, and nothing of the transaction is delivered."""
        q = self.name()
        cons, clst = self.consumer(q)
        prod, plst = self.connect()
        tx = prod.begin()
        self.send_in(prod, plst, q, tx, 3)
        self.assertEqual(plst.errors, [])
        self.send_in(prod, plst, q, tx, 1)
        err = plst.wait_error()
        self.assertEqual(err.headers["message"], "transaction too large")
        self.assertIn("1048576 bytes", err.body)
        plst.wait_disconnected()
        self.only_sentinel_arrives(q, cons, clst)

    def test_ended_transactions_give_their_bytes_back(self):
        q = self.name()
        cons, clst = self.consumer(q)
        prod, plst = self.connect()
        for end in (prod.commit, prod.abort, prod.commit):
            tx = prod.begin()
            self.send_in(prod, plst, q, tx, 3)
            end(tx)
        sync(prod, plst)
        self.assertEqual(plst.errors, [])
        clst.wait_messages(6)
        self.assertEqual(plst.errors, [])

    def test_the_bytes_bound_is_one_for_all_open_transactions(self):
        q = self.name()
        prod, plst = self.connect()
        t1, t2 = prod.begin(), prod.begin()
        self.send_in(prod, plst, q, t1, 2)
        self.send_in(prod, plst, q, t2, 2)
        self.assertEqual(plst.wait_error().headers["message"], "transaction too large")

    def test_open_transactions_are_bounded(self):
        prod, plst = self.connect()
        txs = [prod.begin() for _ in range(3)]
        prod.abort(txs[0])
        rid = new_receipt()
        prod.begin(headers={"receipt": rid})
        plst.wait_receipt(rid)
        self.assertEqual(plst.errors, [])
        prod.begin()
        err = plst.wait_error()
        self.assertEqual(err.headers["message"], "too many open transactions")
        self.assertIn("at most 3", err.body)
        plst.wait_disconnected()


if __name__ == "__main__":
    main()
