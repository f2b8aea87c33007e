#!/usr/bin/env python3
"""Bad STOMP input: each case gets an ERROR frame with a `message` header and
is disconnected by the broker, while a well-behaved client on the same broker
keeps sending and receiving throughout. Plus heart-beats: a silent client is
dropped, a heart-beating one is kept, and the broker beats when asked."""
import threading
import time

from stomptest import Bystander, StompTestCase, encode_frame
from wharftest import main


class BadInputMixin:
    """A bystander runs through every test of the class."""

    def setUp(self):
        super().setUp()
        self.bystander = Bystander(self.port, self.name(stem="bystander"))
        self.bystander.wait_progress()  # flowing before the mischief

    def tearDown(self):
        self.bystander.close()
        super().tearDown()

    def expect_error_close(self, data, connect=True, version="1.2", message=None,
                           send_in_thread=False):
        """Sends data (after CONNECT unless connect=False); the broker must
        answer with one ERROR frame carrying a message header, then close."""
        raw = self.raw(version, connect=connect)
        if send_in_thread:  # big payloads: the broker may stop reading
            t = threading.Thread(target=raw.send, args=(data,), daemon=True)
            t.start()
        else:
            raw.send(data)
        frames = raw.wait_closed()
        self.assertEqual([f.command for f in frames], ["ERROR"], frames)
        err = frames[0]
        self.assertTrue(err.headers.get("message"), err.headers)
        if message is not None:
            self.assertIn(message, err.headers["message"])
        self.bystander.check(self)
        return err


class StompErrors(BadInputMixin, StompTestCase):
    config = "[stomp]\nmax_frame_size = 64KiB\n"

    def test_garbage_bytes(self):
        self.expect_error_close(b"HELLO\x00", connect=False)

    def test_garbage_line(self):
        self.expect_error_close(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", connect=False)

    def test_garbage_after_connect(self):
        self.expect_error_close(b"HELLO\n\n\x00")

    def test_binary_noise(self):
        self.expect_error_close(bytes(range(1, 256)) * 4, connect=False)

    def test_frame_before_connect(self):
        q = self.name()
        err = self.expect_error_close(encode_frame("SEND", [("destination", q)], b"early"),
                                      connect=False)
        # Nothing was published.
        conn, lst = self.connect()
        self.subscribe(conn, lst, q)
        self.send_all(conn, lst, q, ["sentinel"])
        lst.wait_body("sentinel")
        self.assertEqual(lst.bodies(), ["sentinel"])

    def test_subscribe_before_connect(self):
        self.expect_error_close(encode_frame("SUBSCRIBE", [("destination", "/queue/a"),
                                                            ("id", "1")]), connect=False)

    def test_oversized_frame_with_content_length(self):
        body = b"x" * (200 * 1024)
        self.expect_error_close(encode_frame("SEND", [("destination", self.name())], body),
                                send_in_thread=True)

    def test_oversized_frame_without_content_length(self):
        body = b"y" * (200 * 1024)
        self.expect_error_close(encode_frame("SEND", [("destination", self.name())], body,
                                             content_length=False), send_in_thread=True)

    def test_oversized_frame_no_nul_ever(self):
        """A body that never ends must not be buffered past the limit."""
        head = b"SEND\ndestination:" + self.name().encode() + b"\n\n"
        self.expect_error_close(head + b"z" * (200 * 1024), send_in_thread=True)

    def test_frame_just_under_limit_is_fine(self):
        q = self.name()
        conn, lst = self.connect(auto_decode=False)
        self.subscribe(conn, lst, q)
        body = bytes(range(256)) * 200  # 51200 bytes, under 64 KiB with the head
        raw = self.raw("1.2")
        raw.send_frame("SEND", [("destination", q), ("receipt", "ok")], body)
        raw.wait_receipt("ok")
        self.assertEqual(lst.wait_messages(1)[0].body, body)
        self.bystander.check(self)

    def test_missing_nul_terminator(self):
        self.expect_error_close(b"SEND\ndestination:/queue/x\ncontent-length:5\n\nhelloX\x00")

    def test_too_many_headers(self):
        headers = [("destination", "/queue/x")] + [("h%d" % i, "v") for i in range(200)]
        self.expect_error_close(encode_frame("SEND", headers, b"x"))

    def test_header_limits_are_inclusive(self):
        """64 headers and an 8192-byte header line (the defaults) are fine;
        one more of either is an ERROR."""
        q = self.name()
        conn, lst = self.connect()
        self.subscribe(conn, lst, q)
        raw = self.raw("1.2")
        h = [("destination", q), ("receipt", "64")] + [("h%02d" % i, "v") for i in range(62)]
        # No content-length header: it would count as one more.
        raw.send_frame("SEND", h, b"sixty-four", content_length=False)
        raw.wait_receipt("64")
        line = [("destination", q), ("receipt", "long"), ("big", "v" * (8192 - 4))]
        raw.send_frame("SEND", line, b"long line", content_length=False)
        raw.wait_receipt("long")
        lst.wait_body("long line")
        self.assertEqual(lst.bodies(), ["sixty-four", "long line"])
        self.assertEqual(len(lst.messages[1].headers["big"]), 8188)
        raw.send_frame("SEND", h + [("h62", "v")], b"sixty-five", content_length=False)
        frames = raw.wait_closed()
        self.assertEqual([f.command for f in frames], ["ERROR"])
        raw = self.raw("1.2")
        raw.send_frame("SEND", [("destination", q), ("big", "v" * (8192 - 3))], b"x")
        frames = raw.wait_closed()
        self.assertEqual([f.command for f in frames], ["ERROR"])
        self.bystander.check(self)

    def test_overlong_header_line(self):
        headers = [("destination", "/queue/x"), ("big", "v" * 20000)]
        self.expect_error_close(encode_frame("SEND", headers, b"x"))

    def test_overlong_command_line(self):
        self.expect_error_close(b"SEND" * 5000 + b"\n\n\x00")

    def test_invalid_escape_12(self):
        self.expect_error_close(b"SEND\ndestination:/queue/x\nx-bad:a\\tb\n\nbody\x00")

    def test_invalid_escape_trailing_backslash_11(self):
        self.expect_error_close(b"SEND\ndestination:/queue/x\nx-bad:ab\\\n\nbody\x00",
                                version="1.1")

    def test_header_line_without_colon(self):
        self.expect_error_close(b"SEND\ndestination:/queue/x\nnocolon\n\nbody\x00")

    def test_bad_content_length(self):
        for v in (b"-1", b"abc", b"5x", b"99999999999999999999999"):
            raw = self.raw("1.2")
            raw.send(b"SEND\ndestination:/queue/x\ncontent-length:" + v + b"\n\nhello\x00")
            frames = raw.wait_closed()
            self.assertEqual([f.command for f in frames], ["ERROR"], v)
            self.assertTrue(frames[0].headers.get("message"))
        self.bystander.check(self)

    def test_send_without_destination(self):
        self.expect_error_close(encode_frame("SEND", [("x", "y")], b"body"),
                                message="destination")

    def test_subscribe_invalid_destination(self):
        self.expect_error_close(encode_frame("SUBSCRIBE", [("destination", "/foo/bar"),
                                                            ("id", "1")]))

    def test_invalid_destinations(self):
        for dest in ("/queue/", "/topic/", "queue/x", "/queue/a.*", "/queue/a.>",
                     "/topic/a.>.b", "/queue/$SYS.x"):
            for cmd in ("SEND", "SUBSCRIBE"):
                if cmd == "SUBSCRIBE" and dest == "/queue/$SYS.x":
                    continue  # reading the broker's own names may be allowed
                raw = self.raw("1.2")
                raw.send_frame(cmd, [("destination", dest), ("id", "1")], b"x")
                frames = raw.wait_closed()
                self.assertEqual([f.command for f in frames], ["ERROR"], (cmd, dest))
                self.assertTrue(frames[0].headers.get("message"), (cmd, dest))
        self.bystander.check(self)

    def test_subscribe_without_id_12(self):
        self.expect_error_close(encode_frame("SUBSCRIBE", [("destination", "/queue/x")]))

    def test_duplicate_subscription_id(self):
        self.expect_error_close(
            encode_frame("SUBSCRIBE", [("destination", "/queue/x"), ("id", "d")]) +
            encode_frame("SUBSCRIBE", [("destination", "/queue/y"), ("id", "d")]))

    def test_unsubscribe_unknown_id(self):
        self.expect_error_close(encode_frame("UNSUBSCRIBE", [("id", "never")]))

    def test_invalid_ack_mode(self):
        self.expect_error_close(encode_frame("SUBSCRIBE", [("destination", "/queue/x"),
                                                            ("id", "1"), ("ack", "sometimes")]))

    def test_ack_unknown_id(self):
        self.expect_error_close(encode_frame("ACK", [("id", "1-999999")]))

    def test_ack_malformed_id(self):
        self.expect_error_close(encode_frame("ACK", [("id", "not-an-ack-id")]))

    def test_ack_unknown_message_11(self):
        self.expect_error_close(encode_frame("ACK", [("message-id", "ID:wharf-424242"),
                                                      ("subscription", "nope")]), version="1.1")

    def test_nack_in_10(self):
        self.expect_error_close(encode_frame("NACK", [("message-id", "ID:wharf-1")]),
                                version="1.0")

    def test_connect_twice(self):
        self.expect_error_close(encode_frame("CONNECT", [("accept-version", "1.2")]))

    def test_server_frame_from_client(self):
        self.expect_error_close(encode_frame("MESSAGE", [("destination", "/queue/x")], b"x"))

    def test_bad_priority_and_expires(self):
        for h in (("priority", "10"), ("priority", "high"), ("expires", "soon")):
            raw = self.raw("1.2")
            raw.send_frame("SEND", [("destination", "/queue/x"), h], b"x")
            frames = raw.wait_closed()
            self.assertEqual([f.command for f in frames], ["ERROR"], h)
            self.assertTrue(frames[0].headers.get("message"))
        self.bystander.check(self)

    def test_error_carries_receipt_id(self):
        raw = self.raw("1.2")
        raw.send_frame("SEND", [("receipt", "r-77")], b"no destination")
        frames = raw.wait_closed()
        self.assertEqual([f.command for f in frames], ["ERROR"])
        self.assertEqual(frames[0].headers.get("receipt-id"), "r-77")
        self.bystander.check(self)

    def test_frames_after_error_are_ignored(self):
        """What follows the bad frame in the same packet is not acted on."""
        q = self.name()
        conn, lst = self.connect()
        self.subscribe(conn, lst, q)
        self.expect_error_close(encode_frame("SEND", [], b"bad") +
                                encode_frame("SEND", [("destination", q)], b"after-error"))
        self.send_all(conn, lst, q, ["sentinel"])
        lst.wait_body("sentinel")
        self.assertEqual(lst.bodies(), ["sentinel"])

    def test_many_bad_clients_at_once(self):
        payloads = [b"HELLO\x00", b"SEND\n\nx\x00", encode_frame("ACK", [("id", "9-9")]),
                    b"SEND\ndestination:/queue/x\nx:\\q\n\n\x00"]
        raws = []
        for i in range(40):
            r = self.raw("1.2", connect=(i % 2 == 0))
            raws.append(r)
        for i, r in enumerate(raws):
            r.send(payloads[i % len(payloads)])
        for r in raws:
            frames = r.wait_closed()
            self.assertEqual([f.command for f in frames], ["ERROR"])
        self.bystander.check(self)

    def test_client_closing_mid_frame(self):
        raw = self.raw("1.2")
        raw.send(b"SEND\ndestination:/queue/x\ncontent-length:1000\n\npartial")
        raw.close()
        raw2 = self.raw("1.2", connect=False)
        raw2.send(b"CONN")
        raw2.close()
        self.bystander.check(self)


class StompHeartbeats(BadInputMixin, StompTestCase):
    config = "[stomp]\nheartbeat = 1s\n"

    def test_silent_client_is_disconnected(self):
        raw = self.raw(connect=False)
        f = raw.connect("1.2", heartbeat="1000,0")
        self.assertEqual(f.headers.get("heart-beat"), "1000,1000")
        start = time.monotonic()
        frames = raw.wait_closed(timeout=10)
        elapsed = time.monotonic() - start
        self.assertEqual([f.command for f in frames], ["ERROR"])
        self.assertTrue(frames[0].headers.get("message"))
        self.assertGreaterEqual(elapsed, 0.9, "dropped before the interval passed")
        self.assertLess(elapsed, 3.5, "not dropped within ~3 s")
        self.bystander.check(self)

    def test_heartbeating_client_stays_connected(self):
        raw = self.raw(connect=False)
        raw.connect("1.2", heartbeat="1000,0")
        end = time.monotonic() + 4
        while time.monotonic() < end:
            self.assertTrue(raw.send(b"\n"), "broker closed a heart-beating client")
            f = raw.read_frame(timeout=0.3)
            self.assertIsNone(f, "unexpected frame %r" % (f,))
            self.assertFalse(raw.closed, "broker closed a heart-beating client")
        q = self.name()
        raw.send_frame("SUBSCRIBE", [("destination", q), ("id", "1"), ("receipt", "alive")])
        raw.wait_receipt("alive")
        raw.send_frame("SEND", [("destination", q)], b"still here")
        got = raw.read_until(lambda f: f.command == "MESSAGE")
        self.assertEqual(got[-1].body, b"still here")
        self.bystander.check(self)

    def test_frames_count_as_heartbeats(self):
        """Any traffic from the client, not only EOLs, keeps it alive."""
        raw = self.raw(connect=False)
        raw.connect("1.2", heartbeat="1000,0")
        q = self.name()
        end = time.monotonic() + 3
        i = 0
        while time.monotonic() < end:
            rid = "k%d" % i
            i += 1
            raw.send_frame("SEND", [("destination", q), ("receipt", rid)], b"x")
            raw.wait_receipt(rid)
            time.sleep(0.3)
        self.assertFalse(raw.closed)
        self.bystander.check(self)

    def test_broker_sends_heartbeats(self):
        raw = self.raw(connect=False)
        f = raw.connect("1.2", heartbeat="0,1000")
        self.assertEqual(f.headers.get("heart-beat"), "1000,1000")
        end = time.monotonic() + 3.5
        while time.monotonic() < end:
            frame = raw.read_frame(timeout=max(0.0, end - time.monotonic()))
            self.assertIsNone(frame)
            self.assertFalse(raw.closed, "the broker closed the connection")
        self.assertGreaterEqual(raw.heartbeats, 2, "too few heart-beats from the broker")
        self.bystander.check(self)

    def test_no_heartbeats_unless_asked(self):
        raw = self.raw(connect=False)
        raw.connect("1.2", heartbeat="0,0")
        self.assertIsNone(raw.read_frame(timeout=2.5))
        self.assertEqual(raw.heartbeats, 0)
        self.assertFalse(raw.closed, "a client that asked for no heart-beats was dropped")
        self.bystander.check(self)

    def test_stomp_py_heartbeats_both_ways(self):
        conn, lst = self.connect(heartbeats=(500, 500))
        # Several intervals each way: we hear the broker, it hears us.
        lst.wait_for(lambda: lst.heartbeats >= 3 or lst.errors or lst.disconnected, 10,
                     "three heart-beats from the broker")
        self.assertTrue(conn.is_connected())
        self.assertEqual(lst.errors, [])
        self.assertFalse(lst.disconnected)
        q = self.name()
        self.subscribe(conn, lst, q)
        self.send_all(conn, lst, q, ["alive"])
        lst.wait_body("alive")
        self.bystander.check(self)

    def test_malformed_heartbeat_header(self):
        raw = self.raw(connect=False)
        raw.send_frame("CONNECT", [("accept-version", "1.2"), ("heart-beat", "soon")])
        frames = raw.wait_closed()
        self.assertEqual([f.command for f in frames], ["ERROR"])
        self.assertTrue(frames[0].headers.get("message"))
        self.bystander.check(self)


if __name__ == "__main__":
    main()
