"""A tiny SMP client for the simulator tests, written from SMP.md independently of
dfd_sim.py (it imports nothing from it): request encoding with definite CBOR maps,
response decoding, UDP and serial-console transports, and helpers for shell exec and
image upload. Test code only; bounded in time everywhere.
"""

import base64
import hashlib
import os
import select
import socket
import struct
import termios
import time
import tty

import cbor2


def header(op, ver, length, group, seq, cid):
    return bytes([(ver << 3) | op, 0]) + struct.pack(">HHBB", length, group, seq & 0xFF, cid)


def request(op, group, cid, seq, body=None, ver=1, raw_body=None):
    """Encode one request frame; body is a dict (definite CBOR) or raw_body bytes."""
    payload = raw_body if raw_body is not None else cbor2.dumps({} if body is None else body)
    return header(op, ver, len(payload), group, seq, cid) + payload


def parse(frame):
    """Return (hdr dict, decoded body) of a response frame."""
    b0, flags, length, group, seq, cid = struct.unpack(">BBHHBB", frame[:8])
    hdr = {"op": b0 & 7, "ver": (b0 >> 3) & 3, "flags": flags, "len": length,
           "group": group, "seq": seq, "id": cid}
    assert len(frame) == 8 + length, "frame length %d != 8 + %d" % (len(frame), length)
    return hdr, cbor2.loads(frame[8:]) if length else None


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = (crc << 1 ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def serial_lines(frame):
    raw = struct.pack(">H", len(frame) + 2) + frame + struct.pack(">H", crc16(frame))
    out = b""
    for i in range(0, len(raw), 93):
        out += (b"\x06\x09" if i == 0 else b"\x04\x14") + base64.b64encode(raw[i:i + 93]) + b"\n"
    return out


class SerialReader:
    """Picks frames out of console output, ignoring other text."""

    def __init__(self):
        self.buf, self.pkt, self.text = b"", None, b""

    def feed(self, data):
        self.buf += data
        frames = []
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if line.startswith(b"\x06\x09"):
                self.pkt = base64.b64decode(line[2:])
            elif line.startswith(b"\x04\x14") and self.pkt is not None:
                self.pkt += base64.b64decode(line[2:])
            else:
                self.text += line + b"\n"
                continue
            if len(self.pkt) >= 2 and len(self.pkt) >= 2 + struct.unpack(">H", self.pkt[:2])[0]:
                pkt, self.pkt = self.pkt, None
                assert crc16(pkt[2:]) == 0, "bad CRC"
                frames.append(pkt[2:-2])
        return frames


class Client:
    """Common request/response logic; subclasses provide send() and recv()."""

    def __init__(self, ver=1, timeout=1.0):
        self.ver, self.timeout, self.seq = ver, timeout, 0

    def next_seq(self):
        self.seq = (self.seq + 1) & 0xFF
        return self.seq

    def call(self, op, group, cid, body=None, ver=None, retries=0, timeout=None):
        """Send a request and wait for the matching response; returns (hdr, body)."""
        seq = self.next_seq()
        frame = request(op, group, cid, seq, body, self.ver if ver is None else ver)
        for _ in range(retries + 1):
            self.send(frame)
            got = self.wait(lambda h: h["seq"] == seq and h["group"] == group and
                            h["id"] == cid and h["op"] == op + 1, timeout or self.timeout)
            if got is not None:
                return got
        raise TimeoutError("no answer to group %d id %d seq %d" % (group, cid, seq))

    def wait(self, match, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            frame = self.recv(left)
            if frame is None:
                return None
            hdr, body = parse(frame)
            if match(hdr):
                return hdr, body

    def echo(self, text, **kw):
        return self.call(2, 0, 0, {"d": text}, **kw)[1]

    def shell(self, *argv, **kw):
        """Return (output, ret) of a shell exec; raises on an SMP error."""
        _, body = self.call(2, 9, 0, {"argv": list(argv)}, **kw)
        assert "o" in body, body
        return body["o"], body.get("ret", body.get("rc"))

    def dfd(self, *argv, **kw):
        return self.shell("mesh", "models", "dfd", *argv, **kw)

    def upload(self, image, chunk=256, sha=True, retries=0, max_requests=10000):
        """Upload image to slot 1 following the returned offsets; returns the last body."""
        digest = hashlib.sha256(image).digest()
        off, last = 0, None
        for _ in range(max_requests):
            body = {"off": off, "data": image[off:off + chunk]}
            if off == 0:
                body.update({"image": 0, "len": len(image)})
                if sha:
                    body["sha"] = digest
            _, last = self.call(2, 1, 1, body, retries=retries)
            if "off" not in last:
                return last
            off = last["off"]
            if off >= len(image):
                return last
        raise AssertionError("upload did not finish")


class UdpClient(Client):
    def __init__(self, host, port, **kw):
        super().__init__(**kw)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((host, port))

    def send(self, frame):
        self.sock.send(frame)

    def recv(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            return self.sock.recv(65536)
        except (socket.timeout, ConnectionRefusedError):
            return None

    def close(self):
        self.sock.close()


class SerialClient(Client):
    def __init__(self, path, **kw):
        super().__init__(**kw)
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        termios.tcflush(self.fd, termios.TCIOFLUSH)
        self.reader = SerialReader()
        self.pending = []

    def send(self, frame):
        os.write(self.fd, serial_lines(frame))

    def send_raw(self, data):
        os.write(self.fd, data)

    def recv(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            self.pending += self.reader.feed(os.read(self.fd, 4096))
        return self.pending.pop(0)

    def close(self):
        os.close(self.fd)
