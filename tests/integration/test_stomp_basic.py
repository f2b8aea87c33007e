#!/usr/bin/env python3
"""STOMP basics: a queue round trip in each protocol version, the headers a
message carries end to end, receipts, CONNECTED, version negotiation, FIFO
order, binary bodies and header escaping."""
import time

from stomptest import StompTestCase, encode_frame, new_receipt
from wharftest import main


class RoundTrip:

    def round_trip(self, version):
        q = self.name()
        prod, plst = self.connect(version)
        cons, clst = self.connect(version)
        self.assertEqual(clst.connected.headers.get("version"), version)
        sub = self.subscribe(cons, clst, q, sub_id="s-" + version)
        bodies = ["hello %s #%d" % (version, i) for i in range(3)]
        self.send_all(prod, plst, q, bodies)
        msgs = clst.wait_messages(3)
        self.assertEqual([m.body for m in msgs], bodies)
        ids = set()
        for m in msgs:
            self.assertEqual(m.headers.get("destination"), q)
            self.assertEqual(m.headers.get("subscription"), sub)
            self.assertTrue(m.headers.get("message-id"))
            ids.add(m.headers["message-id"])
        self.assertEqual(len(ids), 3, "message-ids must be distinct")
        self.assertEqual(clst.errors, [])
        self.assertEqual(plst.errors, [])

    def test_round_trip_10(self):
        self.round_trip("1.0")

    def test_round_trip_11(self):
        self.round_trip("1.1")

    def test_round_trip_12(self):
        self.round_trip("1.2")

    def test_queue_keeps_messages_until_a_consumer_comes(self):
        q = self.name()
        prod, plst = self.connect()
        self.send_all(prod, plst, q, ["early-1", "early-2"])
        cons, clst = self.connect()
        self.subscribe(cons, clst, q)
        self.assertEqual([m.body for m in clst.wait_messages(2)], ["early-1", "early-2"])

    def test_cross_version(self):
        """A 1.0 producer and a 1.2 consumer, and the other way round."""
        for pv, cv in (("1.0", "1.2"), ("1.2", "1.0"), ("1.1", "1.2")):
            q = self.name()
            prod, plst = self.connect(pv)
            cons, clst = self.connect(cv)
            self.subscribe(cons, clst, q)
            self.send_all(prod, plst, q, ["from %s to %s" % (pv, cv)])
            self.assertEqual(clst.wait_messages(1)[0].body, "from %s to %s" % (pv, cv))


class Headers:

    def test_headers_carried(self):
        q = self.name()
        prod, plst = self.connect()
        cons, clst = self.connect()
        self.subscribe(cons, clst, q)
        expires = int(time.time() * 1000) + 3600 * 1000
        rid = new_receipt()
        prod.send(q, '{"order": 42}', content_type="application/json", headers={
            "correlation-id": "corr-7",
            "reply-to": "/queue/x",
            "persistent": "true",
            "priority": "7",
            "expires": str(expires),
            "x-custom": "hello world",
            "tenant": "acme",
            "receipt": rid,
        })
        plst.wait_receipt(rid)
        m = clst.wait_messages(1)[0]
        h = m.headers
        self.assertEqual(m.body, '{"order": 42}')
        self.assertEqual(h.get("content-type"), "application/json")
        self.assertEqual(h.get("correlation-id"), "corr-7")
        self.assertEqual(h.get("reply-to"), "/queue/x")
        self.assertEqual(h.get("persistent"), "true")
        self.assertEqual(h.get("priority"), "7")
        self.assertEqual(h.get("expires"), str(expires))
        self.assertEqual(h.get("x-custom"), "hello world")
        self.assertEqual(h.get("tenant"), "acme")
        self.assertEqual(h.get("destination"), q)
        self.assertRegex(h.get("timestamp", ""), r"^\d+$")
        self.assertLess(abs(int(h["timestamp"]) - time.time() * 1000), 60000)
        self.assertNotIn("redelivered", h)
        self.assertNotIn("receipt", h, "the SEND's receipt header is not a property")

    def test_reply_to_forms(self):
        """/queue/x and /topic/x come back as written; anything else verbatim.
        (/temp-queue/ makes a temp queue: test_stomp_rabbitmq.py.)"""
        q = self.name()
        prod, plst = self.connect()
        cons, clst = self.connect("1.1")
        self.subscribe(cons, clst, q)
        forms = ["/queue/x", "/topic/news.eu", "/temp/abc", "plain-name"]
        for i, rt in enumerate(forms):
            prod.send(q, "r%d" % i, headers={"reply-to": rt})
        self.send_all(prod, plst, q, ["end"])
        msgs = clst.wait_messages(len(forms) + 1)
        self.assertEqual([m.headers.get("reply-to") for m in msgs[:-1]], forms)

    def test_message_without_optional_headers(self):
        q = self.name()
        prod, plst = self.connect()
        cons, clst = self.connect()
        self.subscribe(cons, clst, q)
        self.send_all(prod, plst, q, ["bare"])
        h = clst.wait_messages(1)[0].headers
        for absent in ("persistent", "priority", "expires", "correlation-id", "reply-to",
                       "redelivered"):
            self.assertNotIn(absent, h)

    def test_header_escaping_12(self):
        """A value with ':', '\\n' and '\\\\' survives a 1.2 round trip, and
        is escaped on the wire."""
        q = self.name()
        prod, plst = self.connect("1.2")
        cons, clst = self.connect("1.2")
        self.subscribe(cons, clst, q)
        value = "a:b\nc\\d:e"
        self.send_all(prod, plst, q, ["esc"], headers={"x-esc": value, "x-colon": "k:v"})
        m = clst.wait_messages(1)[0]
        self.assertEqual(m.headers.get("x-esc"), value)
        self.assertEqual(m.headers.get("x-colon"), "k:v")

        # The same, read byte for byte by a raw 1.2 consumer.
        q2 = self.name()
        raw = self.raw("1.2")
        rid = new_receipt()
        raw.send_frame("SUBSCRIBE", [("destination", q2), ("id", "r"), ("receipt", rid)])
        raw.wait_receipt(rid)
        self.send_all(prod, plst, q2, ["esc"], headers={"x-esc": value})
        f = raw.read_until(lambda f: f.command == "MESSAGE")[-1]
        self.assertEqual(f.headers.get("x-esc"), value)
        self.assertIn(b"\nx-esc:a\\cb\\nc\\\\d\\ce\n", f.raw_head + b"\n")

    def test_header_escaping_raw_wire_bytes(self):
        q = self.name()
        raw = self.raw("1.2")
        rid = new_receipt()
        raw.send_frame("SUBSCRIBE", [("destination", q), ("id", "r"), ("receipt", rid)])
        raw.wait_receipt(rid)
        # Escaped by hand on the way in.
        raw.send(b"SEND\ndestination:" + q.encode() + b"\nx-esc:a\\cb\\nc\\\\d\\re\n\nbody\x00")
        f = raw.read_until(lambda f: f.command == "MESSAGE")[-1]
        self.assertEqual(f.headers["x-esc"], "a:b\nc\\d\re")
        self.assertEqual(f.body, b"body")
        # Escaped again on the way out, \r included (1.2).
        self.assertIn(b"\nx-esc:a\\cb\\nc\\\\d\\re\n", f.raw_head + b"\n")

    def test_header_escaping_11(self):
        q = self.name()
        prod, plst = self.connect("1.1")
        cons, clst = self.connect("1.1")
        self.subscribe(cons, clst, q)
        value = "x:y\nz\\w"
        self.send_all(prod, plst, q, ["esc11"], headers={"x-esc": value})
        self.assertEqual(clst.wait_messages(1)[0].headers.get("x-esc"), value)

    def test_unencodable_header_to_10_consumer(self):
        """A 1.0 consumer cannot be sent a value with a newline: the message
        still arrives intact, without that header, and the frame is sound."""
        q = self.name()
        prod, plst = self.connect("1.2")
        raw = self.raw("1.0")
        rid = new_receipt()
        raw.send_frame("SUBSCRIBE", [("destination", q), ("receipt", rid)])
        raw.wait_receipt(rid)
        self.send_all(prod, plst, q, ["first", "second"],
                      headers={"x-nl": "line1\nline2", "x-ok": "fine:too"})
        frames = raw.read_until(lambda f: f.command == "MESSAGE" and f.body == b"second")
        msgs = [f for f in frames if f.command == "MESSAGE"]
        self.assertEqual([f.body for f in msgs], [b"first", b"second"])
        for f in msgs:
            self.assertEqual(f.headers.get("x-ok"), "fine:too")
            self.assertNotIn("x-nl", f.headers)
            self.assertNotIn("line2", f.headers)


    def test_unencodable_standard_header_to_10_consumer(self):
        """A correlation-id with a newline (legal, escaped, in 1.1 and 1.2)
        cannot be written to a 1.0 consumer. The consumer must still get the
        message and keep its connection, as it does for user headers."""
        q = self.name()
        prod, plst = self.connect("1.2")
        raw = self.raw("1.0")
        rid = new_receipt()
        raw.send_frame("SUBSCRIBE", [("destination", q), ("receipt", rid)])
        raw.wait_receipt(rid)
        self.send_all(prod, plst, q, ["odd"], headers={"correlation-id": "c1\nc2"})
        self.send_all(prod, plst, q, ["normal"])
        frames = raw.read_until(lambda f: f.command == "MESSAGE" and f.body == b"normal")
        msgs = [f for f in frames if f.command == "MESSAGE"]
        self.assertEqual([f.body for f in msgs], [b"odd", b"normal"])
        self.assertNotIn("c2", msgs[0].headers)
        self.assertFalse(raw.closed)

    def test_repeated_header_first_wins(self):
        q = self.name()
        raw = self.raw("1.2")
        raw.send_frame("SUBSCRIBE", [("destination", q), ("id", "r"), ("receipt", "rs")])
        raw.wait_receipt("rs")
        raw.send_frame("SEND", [("destination", q), ("destination", "/queue/elsewhere"),
                                ("x-dup", "first"), ("x-dup", "second")], b"dup")
        f = raw.read_until(lambda f: f.command == "MESSAGE")[-1]
        self.assertEqual(f.body, b"dup")
        self.assertEqual(f.headers.get("destination"), q)
        self.assertEqual([v for k, v in f.header_list if k == "x-dup"], ["first"])

    def test_crlf_line_endings(self):
        q = self.name()
        raw = self.raw(connect=False)
        raw.send(b"CONNECT\r\naccept-version:1.2\r\nhost:x\r\n\r\n\x00")
        self.assertEqual(raw.read_frame().command, "CONNECTED")
        raw.version = "1.2"
        raw.send(b"SUBSCRIBE\r\ndestination:" + q.encode() + b"\r\nid:1\r\nreceipt:rs\r\n\r\n\x00")
        raw.wait_receipt("rs")
        raw.send(b"SEND\r\ndestination:" + q.encode() + b"\r\nx-h:v\r\n\r\ncrlf body\x00\r\n")
        f = raw.read_until(lambda f: f.command == "MESSAGE")[-1]
        self.assertEqual(f.body, b"crlf body")
        self.assertEqual(f.headers.get("x-h"), "v")
        self.assertEqual(f.headers.get("destination"), q)


class Receipts:

    def test_receipts_raw(self):
        q = self.name()
        raw = self.raw("1.2")
        raw.send_frame("SUBSCRIBE", [("destination", q), ("id", "s1"), ("receipt", "r-sub")])
        got = raw.wait_receipt("r-sub")
        self.assertEqual([f.command for f in got], ["RECEIPT"])

        raw.send_frame("SEND", [("destination", q), ("receipt", "r-send")], b"payload")
        got = raw.read_until(lambda f: f.command == "RECEIPT")
        msgs = [f for f in got if f.command == "MESSAGE"]
        self.assertEqual(got[-1].headers.get("receipt-id"), "r-send")
        # The MESSAGE may come before or after the RECEIPT.
        if not msgs:
            msgs = raw.read_until(lambda f: f.command == "MESSAGE")
        self.assertEqual(msgs[-1].body, b"payload")

        raw.send_frame("UNSUBSCRIBE", [("id", "s1"), ("receipt", "r-unsub")])
        raw.wait_receipt("r-unsub")
        # Unsubscribed: the next message stays in the queue.
        raw.send_frame("SEND", [("destination", q), ("receipt", "r-send2")], b"kept")
        got = raw.wait_receipt("r-send2")
        self.assertEqual([f.command for f in got], ["RECEIPT"])

        raw.send_frame("DISCONNECT", [("receipt", "r-bye")])
        got = raw.wait_closed()
        self.assertEqual([(f.command, f.headers.get("receipt-id")) for f in got],
                         [("RECEIPT", "r-bye")])

        # The message sent after UNSUBSCRIBE is still there for the next consumer.
        cons, clst = self.connect()
        self.subscribe(cons, clst, q)
        self.assertEqual(clst.wait_messages(1)[0].body, "kept")

    def test_receipts_each_version(self):
        for version in ("1.0", "1.1", "1.2"):
            raw = self.raw(version)
            q = self.name()
            h = [("destination", q), ("receipt", "sub-" + version)]
            if version != "1.0":
                h.append(("id", "x"))
            raw.send_frame("SUBSCRIBE", h)
            raw.wait_receipt("sub-" + version)
            raw.send_frame("SEND", [("destination", q), ("receipt", "send-" + version)], b"m")
            frames = raw.wait_receipt("send-" + version)
            raw.send_frame("UNSUBSCRIBE", [("id", "x") if version != "1.0" else
                                           ("destination", q), ("receipt", "uns-" + version)])
            frames += raw.wait_receipt("uns-" + version)
            self.assertEqual([f.body for f in frames if f.command == "MESSAGE"], [b"m"])

    def test_receipts_stomp_py(self):
        q = self.name()
        conn, lst = self.connect()
        conn.subscribe(q, id="s", headers={"receipt": "py-sub"})
        conn.send(q, "x", headers={"receipt": "py-send"})
        conn.unsubscribe("s", headers={"receipt": "py-unsub"})
        for rid in ("py-sub", "py-send", "py-unsub"):
            lst.wait_receipt(rid)
        self.assertEqual(lst.errors, [])
        self.assertEqual(lst.bodies(), ["x"])


class Connect:

    def test_connected_headers(self):
        raw = self.raw(connect=False)
        f = raw.connect("1.0,1.1,1.2", heartbeat="0,0")
        self.assertEqual(f.headers.get("version"), "1.2")
        self.assertRegex(f.headers.get("server", ""), r"^wharf/\S+")
        self.assertRegex(f.headers.get("heart-beat", ""), r"^\d+,\d+$")

    def test_version_picks_highest_common(self):
        for accept, want in (("1.0,1.1", "1.1"), ("1.1", "1.1"), ("1.0", "1.0"),
                             ("1.2,1.0", "1.2"), ("1.1,2.0", "1.1")):
            raw = self.raw(connect=False)
            f = raw.connect(accept)
            self.assertEqual(f.headers.get("version"), want, accept)

    def test_no_accept_version_is_10(self):
        raw = self.raw(connect=False)
        raw.send(b"CONNECT\nlogin:guest\npasscode:guest\n\n\x00")
        f = raw.read_frame()
        self.assertEqual(f.command, "CONNECTED")
        self.assertEqual(f.headers.get("version"), "1.0")
        self.assertRegex(f.headers.get("server", ""), r"^wharf/")

    def test_stomp_command(self):
        raw = self.raw(connect=False)
        f = raw.connect("1.2", command="STOMP")
        self.assertEqual(f.headers.get("version"), "1.2")

    def test_stomp_py_sees_server_and_version(self):
        for v in ("1.1", "1.2"):
            conn, lst = self.connect(v)
            self.assertEqual(lst.connected.headers.get("version"), v)
            self.assertTrue(lst.connected.headers.get("server", "").startswith("wharf/"))
            self.assertIn("heart-beat", lst.connected.headers)

    def test_version_negotiation_failure(self):
        raw = self.raw(connect=False)
        raw.send_frame("CONNECT", [("accept-version", "9.9"), ("host", "localhost")])
        frames = raw.wait_closed()
        self.assertEqual([f.command for f in frames], ["ERROR"])
        err = frames[0]
        self.assertTrue(err.headers.get("message"))
        self.assertIn("version", err.headers)
        self.assertIn("1.2", err.headers["version"])
        # And the broker serves the next client as usual.
        conn, lst = self.connect()
        self.assertEqual(lst.connected.headers.get("version"), "1.2")


class Order:

    def test_fifo_1000(self):
        q = self.name()
        prod, plst = self.connect()
        cons, clst = self.connect()
        self.subscribe(cons, clst, q)
        bodies = ["m%04d" % i for i in range(1000)]
        self.send_all(prod, plst, q, bodies)
        clst.wait_messages(1000)
        self.assertEqual(clst.bodies(), bodies)

    def test_fifo_1000_consumer_after_producer(self):
        q = self.name()
        prod, plst = self.connect()
        bodies = ["n%04d" % i for i in range(1000)]
        self.send_all(prod, plst, q, bodies)
        cons, clst = self.connect("1.1")
        self.subscribe(cons, clst, q)
        clst.wait_messages(1000)
        self.assertEqual(clst.bodies(), bodies)


class Framing:

    def test_byte_by_byte(self):
        """Frames split at every byte still parse."""
        q = self.name()
        raw = self.raw(connect=False)
        data = (encode_frame("CONNECT", [("accept-version", "1.2"), ("host", "x")]) +
                encode_frame("SUBSCRIBE", [("destination", q), ("id", "1")], version="1.2") +
                encode_frame("SEND", [("destination", q), ("x-k", "a\\cb")], b"bytewise\x00!",
                             version="1.2") +
                encode_frame("SEND", [("destination", q), ("receipt", "done")], b"last",
                             version="1.2"))
        for i in range(len(data)):
            raw.send(data[i:i + 1])
        raw.version = "1.2"
        frames = raw.wait_receipt("done")
        msgs = [f for f in frames if f.command == "MESSAGE"]
        if len(msgs) < 2:
            msgs += [f for f in raw.read_until(lambda f: f.command == "MESSAGE" and
                                               f.body == b"last") if f.command == "MESSAGE"]
        self.assertEqual(frames[0].command, "CONNECTED")
        self.assertEqual([f.body for f in msgs], [b"bytewise\x00!", b"last"])
        self.assertEqual(msgs[0].headers.get("x-k"), "a\\cb")

    def test_bodies_without_content_length_in_pieces(self):
        """Bodies that end at their NUL, arriving in pieces that end one
        frame and start the next: the broker resumes its search for each
        NUL where the last read left it, and starts afresh per frame."""
        q = self.name()
        raw = self.raw("1.2")
        raw.send_frame("SUBSCRIBE", [("destination", q), ("id", "1"), ("receipt", "rs")])
        raw.wait_receipt("rs")
        bodies = [b"a" * 5000, b"", b"b" * 3, b"c" * 70000]
        data = b"".join(encode_frame("SEND", [("destination", q)], body, version="1.2",
                                     content_length=False) + b"\n" for body in bodies)
        data += encode_frame("SEND", [("destination", q), ("receipt", "end")], b"end",
                             content_length=False)
        for i in range(0, len(data), 777):
            raw.send(data[i:i + 777])
        frames = raw.read_until(lambda f: f.command == "MESSAGE" and f.body == b"end")
        self.assertEqual([f.body for f in frames if f.command == "MESSAGE"], bodies + [b"end"])

    def test_many_frames_in_one_write(self):
        q = self.name()
        raw = self.raw("1.2")
        raw.send_frame("SUBSCRIBE", [("destination", q), ("id", "1"), ("receipt", "rs")])
        raw.wait_receipt("rs")
        data = b"".join(encode_frame("SEND", [("destination", q)], b"w%03d" % i, version="1.2")
                        + (b"\n" if i % 2 else b"")  # EOLs between frames are allowed
                        for i in range(300))
        data += encode_frame("SEND", [("destination", q), ("receipt", "end")], b"end")
        raw.send(data)
        frames = raw.read_until(lambda f: f.command == "MESSAGE" and f.body == b"end")
        self.assertEqual([f.body for f in frames if f.command == "MESSAGE"],
                         [b"w%03d" % i for i in range(300)] + [b"end"])


class Binary:

    BODY = bytes(range(256)) * 3 + b"\x00\x00end\x00" + b"\x00" * 600 + b"tail"

    def test_binary_body_raw_to_raw(self):
        q = self.name()
        cons = self.raw("1.2")
        cons.send_frame("SUBSCRIBE", [("destination", q), ("id", "b"), ("receipt", "rs")])
        cons.wait_receipt("rs")
        prod = self.raw("1.2")
        prod.send_frame("SEND", [("destination", q), ("content-type", "application/octet-stream"),
                                 ("receipt", "rp")], self.BODY)
        prod.wait_receipt("rp")
        f = cons.read_until(lambda f: f.command == "MESSAGE")[-1]
        self.assertEqual(f.body, self.BODY)
        self.assertEqual(f.headers.get("content-length"), str(len(self.BODY)))
        self.assertEqual(f.headers.get("content-type"), "application/octet-stream")

    def test_binary_body_stomp_py_bytes(self):
        """stomp.py adds content-length for a bytes body; a stomp.py
        consumer with auto_decode off gets the bytes back."""
        q = self.name()
        prod, plst = self.connect()
        cons, clst = self.connect(auto_decode=False)
        self.subscribe(cons, clst, q)
        small = b"\x00ab\x00\x01\xff"
        self.send_all(prod, plst, q, [self.BODY, small, b"plain"])
        msgs = clst.wait_messages(3)
        self.assertEqual([m.body for m in msgs], [self.BODY, small, b"plain"])

    def test_large_binary_body(self):
        """Past the size the broker copies: sent by reference, still exact."""
        q = self.name()
        body = bytes((i * 7 + 3) % 256 for i in range(300 * 1024))
        cons = self.raw("1.2")
        cons.send_frame("SUBSCRIBE", [("destination", q), ("id", "b"), ("receipt", "rs")])
        cons.wait_receipt("rs")
        prod = self.raw("1.2")
        for i in range(3):
            prod.send_frame("SEND", [("destination", q), ("x-i", str(i))], body)
        prod.send_frame("SEND", [("destination", q), ("receipt", "rp")], b"done")
        prod.wait_receipt("rp")
        frames = cons.read_until(lambda f: f.command == "MESSAGE" and f.body == b"done")
        msgs = [f for f in frames if f.command == "MESSAGE"]
        self.assertEqual(len(msgs), 4)
        for i, f in enumerate(msgs[:3]):
            self.assertEqual(f.headers.get("x-i"), str(i))
            self.assertEqual(f.body, body)

    def test_empty_body(self):
        q = self.name()
        raw = self.raw("1.2")
        raw.send_frame("SUBSCRIBE", [("destination", q), ("id", "e"), ("receipt", "rs")])
        raw.wait_receipt("rs")
        raw.send(b"SEND\ndestination:" + q.encode() + b"\n\n\x00")
        raw.send(b"SEND\ndestination:" + q.encode() + b"\ncontent-length:0\n\n\x00")
        msgs = [raw.read_until(lambda f: f.command == "MESSAGE")[-1] for _ in range(2)]
        self.assertEqual([f.body for f in msgs], [b"", b""])
        self.assertEqual([f.headers.get("content-length") for f in msgs], ["0", "0"])


class StompBasic(RoundTrip, Headers, Receipts, Connect, Order, Framing, Binary, StompTestCase):
    """All of the above on one shared broker."""


if __name__ == "__main__":
    main()
