"""WebSocket helpers shared by the integration tests that speak WebSocket
by hand (test_ws.py, test_ws_hardening.py, test_net_limits.py,
test_hostile.py): the upgrade request and client frames, built here, never
with the broker's own code."""
import os
import struct

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgrade_request(protocols="mqtt", key=KEY, version="13", extra="", host="127.0.0.1"):
    """The HTTP upgrade request; a None field is left out."""
    lines = ["GET /mqtt HTTP/1.1", "Host: " + host, "Upgrade: websocket", "Connection: Upgrade"]
    if key is not None:
        lines.append("Sec-WebSocket-Key: " + key)
    if version is not None:
        lines.append("Sec-WebSocket-Version: " + version)
    if protocols is not None:
        lines.append("Sec-WebSocket-Protocol: " + protocols)
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def frame(opcode, payload, fin=True, mask=True):
    """A client frame, masked unless asked otherwise."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
