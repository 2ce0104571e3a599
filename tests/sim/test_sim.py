"""Tests of the distributor simulator against SMP.md, through the independent client in
smp_client.py: the byte-exact vectors of section 9, serial framing, every upload rule
of 3.2, the shell outputs of 7.2, the state machine of 7.4 end to end, reboots, fault
injection, and the command-line program. Run: /usr/bin/python3 -m pytest tests/sim
"""

import hashlib
import json
import os
import select
import struct
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import dfd_sim  # noqa: E402
from dfd_sim import DistributorSim  # noqa: E402
from smp_client import SerialClient, UdpClient, parse, request, serial_lines  # noqa: E402

MKIMAGE = os.path.join(HERE, "..", "..", "scripts", "mkimage")
SIM = os.path.join(HERE, "dfd_sim.py")


def h(text):
    return bytes.fromhex(text)  # fromhex skips the spaces and newlines


# ---------------------------------------------------------------- SMP.md section 9
TEST_IMAGE = h(
    "3d b8 f3 96 00 00 00 00 20 00 00 00 10 00 00 00 00 00 00 00 01 02 03 00 04 00 00 00 00 00 00 00"
    "44 65 76 69 63 65 20 48 75 62 20 74 65 73 74 0a"
    "07 69 28 00 10 00 20 00 8b f0 d0 14 77 74 ba 1f 4f b2 35 8a 8d 6c e6 f0 a2 56 41 b8 5b 10 70 19"
    "f6 5b 1c cb fb 69 83 f2")
V1 = h(
    "02 00 00 09 00 00 01 00 a1 61 64 65 68 65 6c 6c 6f")
V2 = h(
    "03 00 00 0a 00 00 01 00 bf 61 72 65 68 65 6c 6c 6f ff")
V3 = h(
    "0a 00 00 09 00 00 02 00 a1 61 64 65 68 65 6c 6c 6f")
V4 = h(
    "0b 00 00 0a 00 00 02 00 bf 61 72 65 68 65 6c 6c 6f ff")
V5 = h(
    "08 00 00 01 00 00 03 06 a0")
V6 = h(
    "09 00 00 19 00 00 03 06 bf 68 62 75 66 5f 73 69 7a 65 19 08 00 69 62 75 66 5f 63 6f 75 6e 74 04"
    "ff")
V7 = h(
    "00 00 00 01 00 01 04 00 a0")
V8 = h(
    "01 00 00 f6 00 01 04 00 bf 66 69 6d 61 67 65 73 9f bf 64 73 6c 6f 74 00 67 76 65 72 73 69 6f 6e"
    "65 31 2e 30 2e 30 64 68 61 73 68 58 20 aa aa aa aa aa aa aa aa aa aa aa aa aa aa aa aa aa aa aa"
    "aa aa aa aa aa aa aa aa aa aa aa aa aa 68 62 6f 6f 74 61 62 6c 65 f5 67 70 65 6e 64 69 6e 67 f4"
    "69 63 6f 6e 66 69 72 6d 65 64 f5 66 61 63 74 69 76 65 f5 69 70 65 72 6d 61 6e 65 6e 74 f4 ff bf"
    "64 73 6c 6f 74 01 67 76 65 72 73 69 6f 6e 67 31 2e 32 2e 33 2e 34 64 68 61 73 68 58 20 8b f0 d0"
    "14 77 74 ba 1f 4f b2 35 8a 8d 6c e6 f0 a2 56 41 b8 5b 10 70 19 f6 5b 1c cb fb 69 83 f2 68 62 6f"
    "6f 74 61 62 6c 65 f5 67 70 65 6e 64 69 6e 67 f4 69 63 6f 6e 66 69 72 6d 65 64 f4 66 61 63 74 69"
    "76 65 f4 69 70 65 72 6d 61 6e 65 6e 74 f4 ff ff 6b 73 70 6c 69 74 53 74 61 74 75 73 00 ff")
V9 = h(
    "0a 00 00 70 00 01 05 01 a5 65 69 6d 61 67 65 00 63 6c 65 6e 18 58 63 6f 66 66 00 63 73 68 61 58"
    "20 85 e3 9e f7 ef ba bb 72 1e d6 4e c4 e0 28 9a 60 cf b3 f4 c7 d7 61 fc 95 21 21 ad a8 01 52 0b"
    "f8 64 64 61 74 61 58 30 3d b8 f3 96 00 00 00 00 20 00 00 00 10 00 00 00 00 00 00 00 01 02 03 00"
    "04 00 00 00 00 00 00 00 44 65 76 69 63 65 20 48 75 62 20 74 65 73 74 0a")
V10 = h(
    "0b 00 00 08 00 01 05 01 bf 63 6f 66 66 18 30 ff")
V11 = h(
    "0a 00 00 36 00 01 06 01 a2 63 6f 66 66 18 30 64 64 61 74 61 58 28 07 69 28 00 10 00 20 00 8b f0"
    "d0 14 77 74 ba 1f 4f b2 35 8a 8d 6c e6 f0 a2 56 41 b8 5b 10 70 19 f6 5b 1c cb fb 69 83 f2")
V12 = h(
    "0b 00 00 0f 00 01 06 01 bf 63 6f 66 66 18 58 65 6d 61 74 63 68 f5 ff")
V13 = h(
    "02 00 00 3b 00 01 08 01 a3 63 6f 66 66 00 63 6c 65 6e 18 28 64 64 61 74 61 58 28 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 78 78 78 78 78"
    "78 78 78")
V14 = h(
    "03 00 00 06 00 01 08 01 bf 62 72 63 01 ff")
V15_REQ = h(
    "0a 00 00 3b 00 01 09 01 a3 63 6f 66 66 00 63 6c 65 6e 18 28 64 64 61 74 61 58 28 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 78 78 78 78 78"
    "78 78 78")
V15_RSP = h(
    "0b 00 00 13 00 01 09 01 bf 63 65 72 72 bf 65 67 72 6f 75 70 01 62 72 63 17 ff ff")
V16_REQ = h(
    "08 00 00 01 00 4d 06 00 a0")
V16_RSP = h(
    "09 00 00 06 00 4d 06 00 bf 62 72 63 08 ff")
V17 = h(
    "0a 00 00 1b 00 09 0b 00 a1 64 61 72 67 76 84 64 6d 65 73 68 66 6d 6f 64 65 6c 73 63 64 66 64 63"
    "67 65 74")
V18 = h(
    "0b 00 00 28 00 09 0b 00 bf 61 6f 78 1d 7b 20 22 73 74 61 74 75 73 22 3a 20 30 2c 20 22 70 68 61"
    "73 65 22 3a 20 30 20 7d 0d 0a 63 72 65 74 00 ff")
V19_REQ = h(
    "0a 00 00 21 00 09 0c 00 a1 64 61 72 67 76 86 64 6d 65 73 68 66 6d 6f 64 65 6c 73 63 64 66 64 65"
    "73 74 61 72 74 61 30 61 30")
V19_RSP = h(
    "0b 00 00 28 00 09 0c 00 bf 61 6f 78 1d 7b 20 22 73 74 61 74 75 73 22 3a 20 36 2c 20 22 70 68 61"
    "73 65 22 3a 20 30 20 7d 0d 0a 63 72 65 74 35 ff")
V20 = h(
    "06 09 41 42 4d 4b 41 41 41 4a 41 41 41 43 41 4b 46 68 5a 47 56 6f 5a 57 78 73 62 77 4c 4d 0a")
V22_ECHO_REQ = h(
    "0a 00 00 09 00 00 00 00 a1 61 64 65 68 65 6c 6c 6f")
V22_ECHO_RSP = h(
    "0b 00 00 0a 00 00 00 00 bf 61 72 65 68 65 6c 6c 6f ff")
V22_CHUNK = h(
    "0a 00 00 12 00 01 02 01 a2 63 6f 66 66 19 03 e8 64 64 61 74 61 44 01 02 03 04")
V22_DEFINITE = h(
    "0b 00 00 08 00 01 02 01 a1 63 6f 66 66 19 07 d0")
IMAGE_HASH = h("8bf0d0147774ba1f4fb2358a8d6ce6f0a25641b85b107019f65b1ccbfb6983f2")
FILE_SHA = h("85e39ef7efbabb721ed64ec4e0289a60cfb3f4c7d761fc952121ada801520bf8")
V21 = (b"\x06\x09AHoKAABwAAEFAaVlaW1hZ2UAY2xlbhhYY29mZgBjc2hhWCCF457377q7ch7WTsTgKJpgz7P0x9dh"
       b"/JUhIa2oAVIL+GRkYXRhWDA9uPOWAAAAACAAAAAQAAAAAAAA\n"
       b"\x04\x14AAECAwAEAAAAAAAAAERldmljZSBIdWIgdGVzdAqxIw==\n")

SAMPLE_BLOCK = (
    '{\r\n'
    '\t"target_cnt": 2,\r\n'
    '\t"targets": {\r\n'
    '\t\t"0": { "blob_addr": 0x0004, "phase": 2, "status": 0, "blob_status": 0, '
    '"progress": 25, "img_idx": 0 },\r\n'
    '\t\t"1": { "blob_addr": 0x0005, "phase": 10, "status": 3, "blob_status": 9, '
    '"progress": 25, "img_idx": 0 }\r\n'
    '\t}\r\n'
    '}\r\n')
START_LINE = ('{ "status": 0, "phase": 1, "group": 0x0000, "app_idx": 0, "ttl": 255, '
              '"timeout_base": 0, "xfer_mode": 1, "apply": 1, "slot_idx": 0 }\r\n')


# ---------------------------------------------------------------- fixtures and helpers
class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


@pytest.fixture
def make_sim():
    sims, clients = [], []

    def factory(**kw):
        sim = DistributorSim(**kw).start()
        sims.append(sim)
        client = UdpClient("127.0.0.1", sim.port, timeout=1.0)
        clients.append(client)
        return sim, client

    yield factory
    for c in clients:
        c.close()
    for s in sims:
        s.stop()


@pytest.fixture
def sc(make_sim):
    return make_sim()


def raw_call(client, frame, timeout=1.0):
    client.send(frame)
    return client.recv(timeout)


def make_image(body, version="1.2.3+4", *extra):
    out = subprocess.run([MKIMAGE, "--version", version, *extra, "-", "-"], input=body,
                         capture_output=True, check=True, timeout=10)
    return out.stdout


def image_err(client, body, ver=1):
    """Send an upload request and return the raw error body."""
    return client.call(2, 1, 1, body, ver=ver)[1]


def first_chunk(image, n=64, **extra):
    body = {"image": 0, "len": len(image), "off": 0, "sha": hashlib.sha256(image).digest(),
            "data": image[:n]}
    body.update(extra)
    return body


def setup_distribution(client, image=TEST_IMAGE, receivers="4,0;5,0", fwid="0102"):
    assert client.upload(image, chunk=48)["off"] == len(image)
    out, ret = client.shell("mesh", "models", "dfu", "slot", "add", str(len(image)), fwid)
    assert ret == 0 and "Slot added. Index: 0" in out
    out, ret = client.dfd("receivers-add", receivers)
    assert ret == 0, out


def wait_phase(sim, phase, timeout=10.0):
    assert sim.wait_for(lambda s: s.phase == phase, timeout), "phase %d, want %d" % (
        sim.phase, phase)


# ---------------------------------------------------------------- mkimage
def test_mkimage_builds_the_test_image(tmp_path):
    src, dst = tmp_path / "body", tmp_path / "img"
    src.write_bytes(b"Device Hub test\n")
    subprocess.run([MKIMAGE, "--version", "1.2.3+4", "--header-size", "32", str(src),
                    str(dst)], check=True, capture_output=True, timeout=10)
    data = dst.read_bytes()
    assert data == TEST_IMAGE and len(data) == 88
    assert hashlib.sha256(data).digest() == FILE_SHA
    assert dfd_sim.parse_image(data)["hash"] == IMAGE_HASH


def test_mkimage_options_and_help():
    img = make_image(b"x" * 100, "2.0.1", "--header-size", "512", "--pad-to", "1024")
    assert len(img) == 1024 and img[-1] == 0xFF and img[512:612] == b"x" * 100
    info = dfd_sim.parse_image(img)
    assert info["version"] == (2, 0, 1, 0)
    assert info["hash"] == hashlib.sha256(img[:612]).digest()
    rnd = subprocess.run([MKIMAGE, "--version", "1.0", "--random-body", "300", "--seed", "7",
                          "-"], capture_output=True, check=True, timeout=10).stdout
    assert len(rnd) == 32 + 300 + 40
    helptext = subprocess.run([MKIMAGE, "--help"], capture_output=True, text=True,
                              timeout=10).stdout
    for word in ("--version", "--header-size", "--load-addr", "--pad-to", "--random-body"):
        assert word in helptext
    bad = subprocess.run([MKIMAGE, "--version", "1.2.x", "-", "-"], input=b"",
                         capture_output=True, timeout=10)
    assert bad.returncode != 0


# ---------------------------------------------------------------- section 9 vectors
def test_vectors_echo_params(sc):
    sim, c = sc
    assert raw_call(c, V1) == V2
    assert raw_call(c, V3) == V4
    assert raw_call(c, V5) == V6
    assert raw_call(c, V22_ECHO_REQ) == V22_ECHO_RSP


def test_vector_image_state(sc):
    sim, c = sc
    sim.load_slot1(TEST_IMAGE)
    assert raw_call(c, V7) == V8


def test_vectors_upload(sc):
    sim, c = sc
    assert raw_call(c, V9) == V10
    resumed = bytearray(V9)
    resumed[6] = 7
    assert raw_call(c, bytes(resumed)) == V10[:6] + b"\x07" + V10[7:]
    assert raw_call(c, V11) == V12
    assert sim.slot1_bytes() == TEST_IMAGE
    assert raw_call(c, V13) == V14
    assert raw_call(c, V15_REQ) == V15_RSP


def test_vector_unknown_group(sc):
    assert raw_call(sc[1], V16_REQ) == V16_RSP


def test_vectors_shell(sc):
    sim, c = sc
    assert raw_call(c, V17) == V18
    assert raw_call(c, V19_REQ) == V19_RSP


def test_vector_definite_encoding(make_sim):
    sim, c = make_sim(definite=True)
    image = make_image(bytes(4000))
    assert c.call(2, 1, 1, first_chunk(image, 1000))[1] == {"off": 1000}
    assert c.call(2, 1, 1, {"off": 1000, "data": image[1000:2000]})[1] == {"off": 2000}
    assert raw_call(c, V22_CHUNK) == V22_DEFINITE
    rsp = raw_call(c, V3)
    assert rsp[8] == 0xA1 and parse(rsp)[1] == {"r": "hello"}


def test_vector_serial_framing_encoders():
    assert dfd_sim.serial_encode(V3) == V20
    assert serial_lines(V3) == V20
    assert dfd_sim.serial_encode(V9) == V21
    lines = V21.split(b"\n")
    assert len(lines[0]) + 1 == 127
    assert dfd_sim.crc16_xmodem(b"123456789") == 0x31C3
    dec = dfd_sim.SerialDecoder()
    assert dec.feed(b"uart:~$ log text\r\n" + V21[:50]) == []
    assert dec.feed(V21[50:]) == [V9]
    assert dec.feed(b"\x06\x09garbage!\n" + V20) == [V3]


def test_serial_pty_round_trip(make_sim):
    sim, _ = make_sim(serial_pty=True)
    sc = SerialClient(sim.pty_path, timeout=2.0)
    try:
        sc.send_raw(b"noise before frames\r\n\x04\x14AAAA\n")
        sc.send_raw(V20)
        raw, deadline = b"", time.monotonic() + 2
        while not raw.endswith(b"\n") and time.monotonic() < deadline:
            if select.select([sc.fd], [], [], 0.2)[0]:
                raw += os.read(sc.fd, 4096)
        assert raw == dfd_sim.serial_encode(V4)
        assert sc.echo("over serial") == {"r": "over serial"}
        assert sc.upload(TEST_IMAGE, chunk=48)["match"] is True
        out, ret = sc.dfd("get")
        assert ret == 0 and out == '{ "status": 0, "phase": 0 }\r\n'
        sim.reboot(downtime=0.05)
        deadline = time.monotonic() + 2
        while b"Booting" not in sc.reader.text and time.monotonic() < deadline:
            sc.recv(0.05)  # console text between frames is collected, not returned
        assert b"Booting Zephyr" in sc.reader.text
        assert sc.echo("after reboot", retries=3)["r"] == "after reboot"
    finally:
        sc.close()


def test_serial_bad_crc_is_dropped(make_sim):
    sim, _ = make_sim(serial_pty=True)
    sc = SerialClient(sim.pty_path, timeout=0.3)
    try:
        bad = bytearray(V20)
        bad[10] ^= 0x01
        sc.send_raw(bytes(bad))
        assert sc.recv(0.3) is None
        assert sim.wait_for(lambda s: s.stats["serial_bad"] >= 1, 10)
    finally:
        sc.close()


# ---------------------------------------------------------------- SMP layer
def test_version_rules(make_sim):
    sim, c = make_sim()
    hdr, body = parse(raw_call(c, request(2, 0, 0, 1, {"d": "x"}, ver=2)))
    assert (hdr["ver"], body) == (1, {"rc": 13})
    hdr, body = parse(raw_call(c, request(2, 0, 0, 2, {"d": "x"}, ver=0)))
    assert (hdr["ver"], body) == (0, {"r": "x"})
    sim2, c2 = make_sim(smp_mode="v2-only")
    hdr, body = parse(raw_call(c2, request(2, 0, 0, 3, {"d": "x"}, ver=0)))
    assert (hdr["ver"], body) == (0, {"rc": 12})
    assert c2.echo("y") == {"r": "y"}
    sim3, c3 = make_sim(smp_mode="v1-only")
    hdr, body = parse(raw_call(c3, request(2, 0, 0, 4, {"d": "x"}, ver=1)))
    assert (hdr["ver"], body) == (0, {"r": "x"})
    hdr, body = parse(raw_call(c3, request(2, 1, 1, 5, {"off": 0, "len": 40,
                                                        "data": bytes(40)}, ver=1)))
    assert (hdr["ver"], body) == (0, {"rc": 1})  # v1 error form even for a v2 request


def test_smp_errors(make_sim):
    sim, c = make_sim(udp_rx_size=100)
    assert c.call(0, 0, 99)[1] == {"rc": 8}  # unknown command
    assert c.call(0, 0, 0, {"d": "x"})[1] == {"rc": 8}  # echo has no read form
    short = request(2, 0, 0, 9, {"d": "hello"})[:-2]
    assert parse(raw_call(c, short))[1] == {"rc": 9}
    junk = struct.pack(">BBHHBB", 0x0A, 0, 3, 0, 10, 0) + b"\xff\xff\xff"
    assert parse(raw_call(c, junk))[1] == {"rc": 3}
    trailing = struct.pack(">BBHHBB", 0x0A, 0, 2, 0, 11, 0) + b"\xa0\xa0"
    assert parse(raw_call(c, trailing))[1] == {"rc": 3}
    not_map = struct.pack(">BBHHBB", 0x0A, 0, 1, 0, 12, 0) + b"\x80"
    assert parse(raw_call(c, not_map))[1] == {"rc": 3}
    assert parse(raw_call(c, request(2, 0, 0, 13, {"d": "y" * 200})))[1] == {"rc": 9}
    assert raw_call(c, b"\x0b\x00", timeout=0.2) is None  # runt: no answer
    assert raw_call(c, request(3, 0, 0, 14, {}), timeout=0.2) is None  # a response: ignored
    two = request(2, 0, 0, 20, {"d": "a"}) + request(2, 0, 0, 21, {"d": "b"})
    c.send(two)
    got = [parse(c.recv(1.0)) for _ in range(2)]
    assert [(hh["seq"], b) for hh, b in got] == [(20, {"r": "a"}), (21, {"r": "b"})]
    assert c.call(0, 0, 7, {"format": "a"})[1]["output"].startswith("Zephyr")


def test_params_configurable_and_unsupported(make_sim):
    _, c = make_sim(buf_size=384, buf_count=2)
    assert c.call(0, 0, 6)[1] == {"buf_size": 384, "buf_count": 2}
    _, c = make_sim(params_supported=False)
    assert c.call(0, 0, 6)[1] == {"rc": 8}


def test_legacy_rc_mode(make_sim):
    _, c = make_sim(legacy_rc=True)
    assert c.echo("x") == {"rc": 0, "r": "x"}
    assert c.call(2, 1, 1, first_chunk(TEST_IMAGE, 48))[1] == {"rc": 0, "off": 48}
    _, body = c.call(2, 9, 0, {"argv": ["mesh", "models", "dfd", "get"]})
    assert body == {"o": '{ "status": 0, "phase": 0 }\r\n', "rc": 0}
    _, body = c.call(2, 9, 0, {"argv": ["nosuch"]})
    assert body["rc"] == -8 and "ret" not in body


def test_response_too_large_is_rc7(make_sim):
    _, c = make_sim(buf_size=100, capture_size=300)
    _, body = c.call(2, 9, 0, {"argv": ["mesh", "models", "dfd", "capabilities-get"]})
    assert body == {"rc": 7}
    assert c.echo("small") == {"r": "small"}


# ---------------------------------------------------------------- image upload rules
def test_upload_validation_errors(sc):
    sim, c = sc
    img = TEST_IMAGE
    assert image_err(c, {"data": img[:48]}) == {"err": {"group": 1, "rc": 20}}
    assert image_err(c, {"data": img[:48]}, ver=0) == {"rc": 3}
    short = first_chunk(img, 31)
    assert image_err(c, short) == {"err": {"group": 1, "rc": 22}}
    nolen = first_chunk(img, 48)
    del nolen["len"]
    assert image_err(c, nolen) == {"err": {"group": 1, "rc": 21}}
    assert image_err(c, nolen, ver=0) == {"rc": 3}
    bad = dict(first_chunk(img, 48), data=b"\0" * 48)
    assert image_err(c, bad) == {"err": {"group": 1, "rc": 23}}
    assert image_err(c, dict(first_chunk(img, 48), sha=bytes(33))) == \
        {"err": {"group": 1, "rc": 24}}
    big = dict(first_chunk(img, 48), len=sim.cfg.slot_size + 1)
    assert image_err(c, big) == {"err": {"group": 1, "rc": 30}}
    assert image_err(c, dict(first_chunk(img, 48), len=40)) == {"err": {"group": 1, "rc": 31}}
    assert image_err(c, dict(first_chunk(img, 48), image=1)) == {"err": {"group": 1, "rc": 14}}
    assert sim.upload_state() is None


def test_upload_resume_offsets_and_overrun(sc):
    sim, c = sc
    img = make_image(bytes(range(256)) * 4)
    assert image_err(c, first_chunk(img, 100)) == {"off": 100}
    assert image_err(c, {"off": 200, "data": img[200:300]}) == {"off": 100}  # wrong offset
    assert image_err(c, {"off": 100, "data": img[100:300]}) == {"off": 300}
    assert image_err(c, first_chunk(img, 100)) == {"off": 300}  # resume: same sha
    assert sim.stats["upload_resumed"] == 1
    assert image_err(c, {"off": 300, "data": bytes(len(img))}) == \
        {"err": {"group": 1, "rc": 31}}
    assert image_err(c, {"off": 300, "data": img[300:]}) == {"off": len(img), "match": True}
    assert sim.upload_state() is None
    # a retransmitted final chunk finds the state cleared
    assert image_err(c, {"off": 300, "data": img[300:]}) == {"off": 0}
    assert dfd_sim.parse_image(sim.slot1_bytes(len(img)))["hash"] == \
        hashlib.sha256(img[:32 + 1024]).digest()


def test_upload_without_sha_restarts_and_has_no_match(sc):
    sim, c = sc
    body = first_chunk(TEST_IMAGE, 48)
    del body["sha"]
    assert image_err(c, body) == {"off": 48}
    assert image_err(c, body) == {"off": 48}
    assert sim.stats["upload_started"] == 2
    assert image_err(c, {"off": 48, "data": TEST_IMAGE[48:]}) == {"off": 88}


def test_upload_match_false_and_image_check_off(make_sim):
    sim, c = make_sim()
    body = dict(first_chunk(TEST_IMAGE, 88), sha=bytes(32))
    assert image_err(c, body) == {"off": 88, "match": False}
    sim2, c2 = make_sim(image_check=False)
    assert image_err(c2, first_chunk(TEST_IMAGE, 88)) == {"off": 88}
    assert image_err(c2, first_chunk(TEST_IMAGE, 48)) == {"off": 48}  # no skip either


def test_upload_skip_when_slot_matches(sc):
    sim, c = sc
    assert c.upload(TEST_IMAGE)["match"] is True
    assert image_err(c, first_chunk(TEST_IMAGE, 48)) == {"off": 88, "match": True}
    assert sim.stats["upload_skipped"] == 1 and sim.stats["upload_started"] == 1


def test_upload_refused_when_slot_pending_or_distributing(sc):
    sim, c = sc
    c.upload(TEST_IMAGE)
    _, body = c.call(2, 1, 0, {"hash": IMAGE_HASH, "confirm": False})
    assert body["images"][1]["pending"] is True
    other = make_image(b"other body")
    assert image_err(c, first_chunk(other, 48)) == {"err": {"group": 1, "rc": 9}}
    assert image_err(c, first_chunk(other, 48), ver=0) == {"rc": 6}
    assert c.call(2, 1, 5, {"slot": 1})[1] == {"err": {"group": 1, "rc": 9}}
    assert c.call(2, 1, 0, {"hash": bytes(32)})[1] == {"err": {"group": 1, "rc": 8}}
    sim.set_slot1_pending(False)
    sim.configure(speed=100.0)
    c.shell("mesh", "models", "dfu", "slot", "add", "88", "01")
    c.dfd("receivers-add", "4,0")
    assert c.dfd("start", "0", "0")[1] == 0
    assert image_err(c, first_chunk(other, 48)) == {"err": {"group": 1, "rc": 9}}
    assert c.call(2, 1, 5, {})[1] == {"err": {"group": 1, "rc": 9}}


def test_upload_upgrade_flag(make_sim):
    _, c = make_sim(running_version="1.0.0")
    assert image_err(c, first_chunk(TEST_IMAGE, 48, upgrade=True)) == {"off": 48}
    _, c = make_sim(running_version="2.0.0")
    assert image_err(c, first_chunk(TEST_IMAGE, 48, upgrade=True)) == \
        {"err": {"group": 1, "rc": 27}}


def test_image_state_listing_rules(sc):
    sim, c = sc
    images = c.call(0, 1, 0)[1]["images"]
    assert [i["slot"] for i in images] == [0]
    no_tlv = TEST_IMAGE[:48] + b"\x07\x69\x04\x00"
    sim.load_slot1(no_tlv)
    assert len(c.call(0, 1, 0)[1]["images"]) == 1
    nb = make_image(b"nb", "3.4.5", "--flags", "0x10", "--header-size", "512")
    sim.load_slot1(nb)
    slot1 = c.call(0, 1, 0)[1]["images"][1]
    assert slot1["version"] == "3.4.5" and slot1["bootable"] is False
    assert slot1["hash"] == hashlib.sha256(nb[:514]).digest()
    assert c.call(2, 1, 5, {})[1] == {}
    assert len(c.call(0, 1, 0)[1]["images"]) == 1
    assert c.call(2, 1, 5, {"slot": 0})[1] == {"err": {"group": 1, "rc": 9}}
    assert c.call(2, 1, 5, {"slot": 3})[1] == {"err": {"group": 1, "rc": 14}}


def test_erase_clears_upload_state(sc):
    sim, c = sc
    assert image_err(c, first_chunk(TEST_IMAGE, 48)) == {"off": 48}
    assert c.call(2, 1, 5, {"slot": 1})[1] == {}
    assert image_err(c, {"off": 48, "data": TEST_IMAGE[48:]}) == {"off": 0}


def test_flash_write_failure(sc):
    sim, c = sc
    sim.set_flash_fail_after(60)
    assert image_err(c, first_chunk(TEST_IMAGE, 48)) == {"off": 48}
    assert image_err(c, {"off": 48, "data": TEST_IMAGE[48:]}) == \
        {"err": {"group": 1, "rc": 12}}
    assert sim.upload_state() is None
    assert c.upload(TEST_IMAGE)["match"] is True


# ---------------------------------------------------------------- shell
def test_shell_samples_exact(make_sim):
    clock = FakeClock()
    sim, c = make_sim(clock=clock, speed=4096.0)
    img = make_image(bytes(8 * 4096 - 72))
    assert len(img) == 8 * 4096
    assert c.upload(img, chunk=1024)["match"] is True
    assert c.shell("mesh", "models", "dfu", "slot", "add", str(len(img)),
                   "5900010203000000") == \
        ("Adding slot (size: %d)\r\nSlot added. Index: 0\r\n" % len(img), 0)
    assert c.dfd("fw-get", "5900010203000000") == \
        ('{ "status": 0, "slot_cnt": 1, "idx": 0, "fwid": "5900010203000000" }\r\n', 0)
    assert c.dfd("receivers-add", "0x0004,0;0x0005,0") == ('{"status": 0, "target_cnt": 2}\r\n',
                                                           0)
    sim.fail_receiver(5, at_progress=50)
    assert c.dfd("start", "0", "0", "0", "true", "255", "0", "1") == (START_LINE, 0)
    clock.t += 3.9
    assert c.dfd("receivers-get", "0", "2")[0].count('"progress": 18') == 2  # 3 of 8 blocks
    clock.t += 0.2
    assert c.dfd("receivers-get", "0", "2") == (SAMPLE_BLOCK, 0)
    clock.t += 3.0
    assert c.dfd("get")[0] == START_LINE  # transfer still active (progress 48 %)


def test_mcuboot_sample_slot_add_on_old_release(make_sim):
    sim, c = make_sim(old_release=True)
    assert c.shell("mesh", "models", "dfu", "slot", "add", "88") == \
        ("Adding slot (size: 88)\r\nSlot added. ID: 1\r\n", 0)
    assert c.shell("mesh", "models", "dfu", "slot", "add", "88", "01") == \
        ("Adding slot (size: 88)\r\nFailed.\r\n", 0)
    out, ret = c.shell("mesh", "models", "dfu", "slot", "get", "0")
    assert out == "Slot 0:\r\n\tSize:     88 bytes\r\n\tFWID:     \r\n\tMetadata: \r\n" \
        "\tURI:      \r\n"
    assert c.dfd("fw-delete-all")[1] == 0
    assert c.shell("mesh", "models", "dfu", "slot", "add", "88", "01", "aa", "http://x") == \
        ("Adding slot (size: 88)\r\nSlot added. ID: 2\r\n", 0)
    assert c.dfd("receivers-add", "300,1") == ('{"status": 0, "target_cnt": 1}\r\n', 0)
    assert c.dfd("start", "0", "0", "4660", "1")[0] == \
        ('{ "status": 0, "phase": 1, "group": 4660, "app_idx": 0, "ttl": 255, '
         '"timeout_base": 0, "xfer_mode": 1, "apply": 0, "slot_idx": 0 }\r\n')
    assert '"blob_addr": 300,' in c.dfd("receivers-get", "0", "1")[0]


def test_shell_addr_format_switch(sc):
    sim, c = sc
    c.dfd("receivers-add", "18,0")
    assert '"blob_addr": 0x0012,' in c.dfd("receivers-get", "0", "1")[0]
    sim.set_addr_format("dec")
    assert '"blob_addr": 18,' in c.dfd("receivers-get", "0", "1")[0]


def test_shell_limits(sc):
    sim, c = sc
    assert c.call(2, 9, 0, {"argv": []})[1] == {"err": {"group": 9, "rc": 3}}
    assert c.call(2, 9, 0, {"argv": []}, ver=0)[1] == {"rc": 3}
    long_argv = ["mesh", "models", "dfd", "get", "x" * 236]
    assert len(" ".join(long_argv)) == 256
    assert c.call(2, 9, 0, {"argv": long_argv})[1] == {"err": {"group": 9, "rc": 2}}
    assert c.call(2, 9, 0, {"argv": long_argv}, ver=0)[1] == {"rc": 3}
    assert c.call(2, 9, 0, {"argv": "mesh"})[1] == {"rc": 3}
    many = ["mesh", "models", "dfd", "get"] + ["a"] * 17
    out, ret = c.shell(*many)
    assert ret == -8 and "Too many arguments" in out
    out, ret = c.shell("mesh", "models", "dfd", "get", "extra")
    assert ret == -22 and "wrong parameter count" in out
    assert c.shell("mesh models dfd get") == ('{ "status": 0, "phase": 0 }\r\n', 0)
    assert c.shell("nosuch")[1] == -8
    assert c.shell("mesh", "models", "dfd", "frobnicate")[1] == -8


def test_shell_number_parsing_base0(sc):
    sim, c = sc
    assert c.dfd("receivers-add", "010,0;0x10,1;20,02") == ('{"status": 0, "target_cnt": 3}\r\n', 0)
    assert [(r["addr"], r["img_idx"]) for r in sim.receivers()] == [(8, 0), (16, 1), (20, 2)]
    out, ret = c.dfd("receivers-add", "30,0;08,0;40,0")
    assert ret == -22 and "Unable to parse" in out
    assert [r["addr"] for r in sim.receivers()] == [8, 16, 20, 30]


def test_receivers_add_rules(make_sim):
    sim, c = make_sim(targets_max=3)
    assert c.dfd("receivers-add", "0,0;0x8001,0;0xffff,0;1,0") == \
        ('{"status": 0, "target_cnt": 1}\r\n', 0)
    assert c.dfd("receivers-add", "1,5;2,0;3,0;4,0") == ('{"status": 1, "target_cnt": 3}\r\n',
                                                         -28)
    assert [(r["addr"], r["img_idx"]) for r in sim.receivers()] == [(1, 5), (2, 0), (3, 0)]
    assert c.dfd("receivers-add", "1") [1] == -22
    assert c.dfd("receivers-delete-all") == ('{"status": 0, "target_cnt": 0}\r\n', 0)


def test_receivers_get_paging_and_empty(sc):
    sim, c = sc
    assert c.dfd("receivers-get", "0", "2") == ("", -22)
    c.dfd("receivers-add", "1,0;2,0;3,0")
    assert c.dfd("receivers-get", "0", "0") == ("", -22)
    assert c.dfd("receivers-get", "3", "1") == ("", -22)
    out, ret = c.dfd("receivers-get", "2", "5")
    assert ret == 0 and '"2": { "blob_addr": 0x0003' in out and '"target_cnt": 3,' in out
    assert out.count("blob_addr") == 1 and out.endswith("\t}\r\n}\r\n")
    out, _ = c.dfd("receivers-get", "0", "2")
    assert out.count("},\r\n") == 1 and out.count('"progress": 0') == 2
    assert '"phase": 10, "status": 0, "blob_status": 0' in out


def test_shell_output_truncation(sc):
    sim, c = sc
    c.dfd("receivers-add", "1,0;2,0;3,0")
    out, ret = c.dfd("receivers-get", "0", "3")
    assert ret == 0 and len(out) == 299 and not out.endswith("}\r\n")
    sim.set_capture_size(40)
    out, _ = c.dfd("capabilities-get")
    assert out == '{ "targets_max": 8, "slot_cnt": 1, "slo'  # 39 bytes


def test_capabilities_fw_records(make_sim):
    sim, c = make_sim(slot_cnt=2, slot_size=10000)
    assert c.dfd("capabilities-get") == (
        '{ "targets_max": 8, "slot_cnt": 2, "slot_max_size": 10000, "slot_space": 10000, '
        '"remaining_space": 10000, "oob_supported": false }\r\n', 0)
    slot = ("mesh", "models", "dfu", "slot")
    assert c.shell(*slot, "add", "88", "aa")[0].endswith("Index: 0\r\n")
    assert c.shell(*slot, "add", "100", "aa") == \
        ("Adding slot (size: 100)\r\nFailed to commit slot: -17\r\n", -17)
    assert c.shell(*slot, "add", "100", "11" * 17)[1] < 0
    assert c.shell(*slot, "add", "100", "bb", "11" * 33)[1] < 0
    assert c.shell(*slot, "add", "20000", "bb")[1] < 0
    assert c.shell(*slot, "add", "100", "bb", "0102")[0].endswith("Index: 1\r\n")
    assert c.shell(*slot, "add", "100", "cc") == \
        ("Adding slot (size: 100)\r\nFailed to reserve slot.\r\n", 0)
    assert c.shell(*slot, "add", "100")[1] == -22  # FWID required in current releases
    assert '"remaining_space": 9812' in c.dfd("capabilities-get")[0]
    assert c.shell(*slot, "get", "1") == (
        "Slot 1:\r\n\tSize:     100 bytes\r\n\tFWID:     bb\r\n\tMetadata: 0102\r\n", 0)
    assert c.dfd("fw-get", "cc") == \
        ('{ "status": 4, "slot_cnt": 2, "idx": 65535, "fwid": "cc" }\r\n', -2)
    assert c.dfd("fw-get-by-idx", "1") == \
        ('{ "status": 0, "slot_cnt": 2, "idx": 1, "fwid": "bb" }\r\n', 0)
    assert c.dfd("fw-get-by-idx", "5") == ('{ "status": 4, "slot_cnt": 2, "idx": 5 }\r\n', -2)
    assert c.dfd("fw-delete", "aa") == \
        ('{ "status": 0, "slot_cnt": 1, "idx": 65535, "fwid": "aa" }\r\n', 0)
    assert c.dfd("fw-delete", "aa")[1] == 0  # unknown FWID: success
    assert c.shell(*slot, "del", "0") == ("No slot at 0\r\n", 0)
    assert c.shell(*slot, "del", "1") == ("Slot 1 deleted.\r\n", 0)
    c.shell(*slot, "add", "100", "dd")
    assert c.shell(*slot, "del-all") == ("All slots deleted.\r\n", 0)
    assert c.dfd("fw-delete-all") == ('{ "status": 0, "slot_cnt": 0, "idx": 65535 }\r\n', 0)


def test_fw_delete_may_erase_slot1(make_sim):
    sim, c = make_sim(fw_delete_erases_slot1=True)
    c.upload(TEST_IMAGE)
    c.shell("mesh", "models", "dfu", "slot", "add", "88", "01")
    assert len(c.call(0, 1, 0)[1]["images"]) == 2
    c.dfd("fw-delete-all")
    assert len(c.call(0, 1, 0)[1]["images"]) == 1


def test_dfd_disabled_and_vt100(make_sim):
    _, c = make_sim(dfd_enabled=False, vt100=True)
    assert c.dfd("get") == ("", -19)
    assert c.shell("mesh", "models", "dfu", "slot", "add", "88", "01")[1] == 0
    out, ret = c.shell("nosuch")
    assert ret == -8 and out.startswith("\x1b[1;31m")


def test_log_noise(make_sim):
    _, c = make_sim(log_noise=1.0)
    out, ret = c.dfd("get")
    assert ret == 0 and "<inf>" in out and out.endswith('{ "status": 0, "phase": 0 }\r\n')


# ---------------------------------------------------------------- state machine
def test_distribution_apply_policy_end_to_end(make_sim):
    sim, c = make_sim(step_delay=0.3)
    setup_distribution(c)
    assert c.dfd("start", "0", "0", "0", "true", "255", "0", "1") == (START_LINE, 0)
    seen = set()
    deadline = time.monotonic() + 10  # the steps take about a second; a bound, not a wait
    while sim.phase != 4 and time.monotonic() < deadline:
        seen.add(sim.phase)
        time.sleep(0.005)
    assert sim.phase == 4 and 3 in seen
    out, ret = c.dfd("receivers-get", "0", "2")
    assert out.count('"phase": 8, "status": 0, "blob_status": 0, "progress": 50') == 2
    assert '"phase": 4,' in c.dfd("get")[0]
    assert c.dfd("start", "0", "0", "0", "true", "255", "0", "1")[1] == 0  # no-op in 4
    assert sim.phase == 4
    assert c.dfd("fw-delete-all") == ('{ "status": 7, "slot_cnt": 1, "idx": 65535 }\r\n', -22)
    assert c.dfd("receivers-delete-all")[1] == -16
    assert c.dfd("cancel")[0].startswith('{ "status": 0, "phase": 0 }')
    assert '"progress": 50' in c.dfd("receivers-get", "0", "1")[0]
    assert c.dfd("receivers-delete-all")[1] == 0


def test_distribution_verify_then_apply(sc):
    sim, c = sc
    setup_distribution(c)
    assert c.dfd("apply")[0].startswith('{ "status": 2, "phase": 0 }')
    assert c.dfd("start", "0", "0", "0", "false")[1] == 0
    wait_phase(sim, 2)
    assert all(r["phase"] == 4 for r in sim.receivers())
    out, ret = c.dfd("apply")
    assert ret == 0 and '"phase": 3,' in out and '"apply": 0,' in out
    wait_phase(sim, 4)
    assert all(r["phase"] == 8 for r in sim.receivers())


def test_start_checks_and_idempotence(make_sim):
    sim, c = make_sim(speed=1000.0, app_keys="0,2")
    img = make_image(bytes(20000))
    c.upload(img, chunk=1024)
    c.shell("mesh", "models", "dfu", "slot", "add", str(len(img)), "01")
    assert c.dfd("start", "0", "0")[0].startswith('{ "status": 6, "phase": 0 }')
    c.dfd("receivers-add", "4,0")
    assert c.dfd("start", "1", "0") == ('{ "status": 5, "phase": 0 }\r\n', -22)
    assert c.dfd("start", "0", "3") == ('{ "status": 4, "phase": 0 }\r\n', -22)
    assert c.dfd("start", "2", "0")[1] == 0
    assert c.dfd("start", "2", "0")[1] == 0
    out, ret = c.dfd("start", "2", "0", "0", "false")
    assert ret == -22 and out.startswith('{ "status": 7, "phase": 1,')
    assert c.dfd("receivers-add", "5,0") == ('{"status": 7, "target_cnt": 1}\r\n', -16)
    assert c.dfd("fw-delete", "01")[0].startswith('{ "status": 7,')
    assert c.shell("mesh", "models", "dfu", "slot", "del", "0")[0].startswith("Failed deleting")
    assert c.dfd("suspend")[0].startswith('{ "status": 0, "phase": 7,')
    frozen = sim.receivers()[0]["progress"]
    time.sleep(0.1)
    assert sim.receivers()[0]["progress"] == frozen and sim.phase == 7
    assert c.dfd("suspend")[0].startswith('{ "status": 2, "phase": 7,')
    assert c.dfd("start", "0", "0")[0].startswith('{ "status": 7,')
    assert c.dfd("start", "2", "0")[0].startswith('{ "status": 0, "phase": 1,')  # resume
    sim.configure(speed=1e6)
    wait_phase(sim, 4)
    out, ret = c.dfd("start", "2", "0", "0", "false")  # different args in 4: new run
    assert ret == 0 and '"phase": 1,' in out and '"apply": 0,' in out
    wait_phase(sim, 2)


def test_cancel_paths(make_sim):
    sim, c = make_sim(speed=500.0, cancel_delay=0.15)
    img = make_image(bytes(20000))
    c.upload(img, chunk=1024)
    c.shell("mesh", "models", "dfu", "slot", "add", str(len(img)), "01")
    c.dfd("receivers-add", "4,0")
    assert c.dfd("cancel") == ('{ "status": 0, "phase": 0 }\r\n', 0)
    c.dfd("start", "0", "0")
    out, ret = c.dfd("cancel")
    assert ret == 0 and out.startswith('{ "status": 0, "phase": 6,')
    assert c.dfd("cancel")[0].startswith('{ "status": 0, "phase": 6,')
    assert c.dfd("start", "0", "0")[0].startswith('{ "status": 2, "phase": 6,')
    assert sim.receivers()[0]["phase"] == 7
    wait_phase(sim, 0)
    assert sim.receivers()[0]["progress"] == 0


def test_progress_advances_per_block(make_sim):
    clock = FakeClock()
    sim, c = make_sim(clock=clock, speed=4096.0, step_delay=1.0)
    img = make_image(bytes(5 * 4096 - 72))
    c.upload(img, chunk=1024)
    c.shell("mesh", "models", "dfu", "slot", "add", str(len(img)), "01")
    c.dfd("receivers-add", "4,0")
    c.dfd("start", "0", "0")
    seen = []
    for _ in range(10):
        seen.append(sim.receivers()[0]["progress"])
        clock.t += 0.5
    assert seen == [0, 0, 10, 10, 20, 20, 30, 30, 40, 40]
    assert sim.receivers()[0]["progress"] == 50 and sim.phase == 1 and sim.receivers()[0]["phase"] == 3
    clock.t += 1.0
    assert sim.phase == 3 and sim.receivers()[0]["phase"] == 6
    clock.t += 1.0
    assert sim.phase == 4 and sim.receivers()[0]["phase"] == 8


def test_receiver_failure_partial_and_total(make_sim):
    sim, c = make_sim()
    setup_distribution(c, receivers="4,0;5,0;6,0")
    sim.fail_receiver(5)
    sim.fail_receiver(6, stage="apply")
    c.dfd("start", "0", "0")
    wait_phase(sim, 4)
    got = {r["addr"]: (r["status"], r["phase"], r["blob_status"]) for r in sim.receivers()}
    assert got == {4: (0, 8, 0), 5: (3, 10, 9), 6: (3, 9, 0)}
    c.dfd("cancel")
    sim.clear_receiver_failures()
    sim.fail_receiver(4, status=1, phase=1)
    sim.fail_receiver(5, stage="verify")
    sim.fail_receiver(6, at_progress=100)
    c.dfd("start", "0", "0", "0", "false")
    wait_phase(sim, 5)
    got = {r["addr"]: (r["status"], r["phase"]) for r in sim.receivers()}
    assert got == {4: (1, 1), 5: (3, 5), 6: (3, 10)}
    assert c.dfd("cancel")[0] == '{ "status": 0, "phase": 0 }\r\n'


# ---------------------------------------------------------------- reboot
def test_reboot_semantics(make_sim):
    sim, c = make_sim(speed=100.0, reboot_downtime=0.1)
    setup_distribution(c)
    c.dfd("start", "0", "0")
    assert image_err(c, first_chunk(TEST_IMAGE, 48)) == {"err": {"group": 1, "rc": 9}}
    assert c.call(2, 0, 5, {})[1] == {}
    assert sim.wait_for(lambda s: s.boot_count == 2, 10)
    assert c.echo("up", retries=5)["r"] == "up"
    assert c.dfd("get")[0] == '{ "status": 0, "phase": 0 }\r\n'
    assert c.dfd("receivers-get", "0", "2") == ("", -22)
    assert c.dfd("fw-get", "0102")[1] == 0  # slot record kept
    assert sim.slot1_bytes() == TEST_IMAGE  # slot 1 kept
    assert image_err(c, first_chunk(TEST_IMAGE, 48)) == {"off": 88, "match": True}


def test_reboot_clears_upload_state(sc):
    sim, c = sc
    img = make_image(bytes(3000))
    assert image_err(c, first_chunk(img, 1000)) == {"off": 1000}
    sim.reboot(downtime=0.0)
    assert image_err(c, {"off": 1000, "data": img[1000:2000]}) == {"off": 0}
    assert image_err(c, first_chunk(img, 1000)) == {"off": 1000}  # no resume
    assert sim.stats["upload_started"] == 2


def test_reboot_after_upload_bytes(sc):
    sim, c = sc
    sim.configure(reboot_downtime=0.05)
    img = make_image(bytes(3000))
    sim.reboot_after_upload_bytes(1500)
    assert image_err(c, first_chunk(img, 1000)) == {"off": 1000}
    with pytest.raises(TimeoutError):
        c.call(2, 1, 1, {"off": 1000, "data": img[1000:2000]}, timeout=0.3)
    assert sim.boot_count == 2
    assert image_err(c, {"off": 1000, "data": img[1000:2000]}) == {"off": 0}
    assert c.upload(img, chunk=1000)["match"] is True


# ---------------------------------------------------------------- fault injection
def test_fault_drop_all_and_retries(make_sim):
    sim, c = make_sim(drop=1.0)
    with pytest.raises(TimeoutError):
        c.call(2, 0, 0, {"d": "x"}, timeout=0.2)
    sim.configure(drop=0.4, seed=3)
    for i in range(20):
        assert c.echo("m%d" % i, retries=12, timeout=0.05)["r"] == "m%d" % i
    assert sim.stats["rx_dropped"] > 1


def test_fault_drop_is_reproducible():
    def pattern(seed):
        sim = DistributorSim(seed=seed, drop=0.5, buf_count=1000)  # not started
        for i in range(40):
            sim._receive(bytes([i]), None, "udp")
        return [d[0][0] for d in sim._inbox]
    assert pattern(5) == pattern(5) != pattern(6)


def test_fault_duplicate_and_delay(make_sim):
    sim, c = make_sim(duplicate=1.0)
    c.send(request(2, 0, 0, 40, {"d": "dup"}))
    assert c.recv(1.0) == c.recv(1.0) != None  # noqa: E711
    sim.configure(duplicate=0.0, delay=0.15)
    t0 = time.monotonic()
    assert c.echo("slow") == {"r": "slow"}
    assert time.monotonic() - t0 >= 0.14


def test_fault_reorder(make_sim):
    # the first answer is held back 1 s; the second request goes once the simulator has
    # held it (not after a fixed sleep that a loaded machine can outlast)
    sim, c = make_sim(reorder=1.0, reorder_hold=1.0)
    c.send(request(2, 0, 0, 50, {"d": "first"}))
    deadline = time.monotonic() + 5
    while sim.stats["tx_reordered"] < 1:
        assert time.monotonic() < deadline, sim.stats
        time.sleep(0.005)
    sim.configure(reorder=0.0)
    c.send(request(2, 0, 0, 51, {"d": "second"}))
    order = [parse(c.recv(3.0))[0]["seq"] for _ in range(2)]
    assert order == [51, 50]
    sim.set_delay(delay=0.0, jitter=0.05)
    assert c.echo("jitter") == {"r": "jitter"}


def test_fault_erase_delay_and_buffer_exhaustion(make_sim):
    # an erase of 1 s: a chunk that erased takes that long, one that did not takes
    # milliseconds, and a loaded machine's delays stay well inside the margins between
    sim, c = make_sim(erase_delay=1.0, buf_count=2)
    t0 = time.monotonic()
    c.send(request(2, 1, 1, 60, first_chunk(TEST_IMAGE, 48)))
    time.sleep(0.05)
    for seq in (61, 62, 63):
        c.send(request(2, 0, 0, seq, {"d": "q"}))
    answers = []
    for _ in range(3):
        frame = c.recv(1.8)
        if frame is None:
            break
        answers.append(parse(frame)[0]["seq"])
    assert answers == [60, 61]  # one buffer free while erasing: 62 and 63 are lost
    assert time.monotonic() - t0 >= 1.0
    assert sim.stats["rx_no_buffer"] == 2
    t1 = time.monotonic()
    assert image_err(c, {"off": 48, "data": TEST_IMAGE[48:]})["match"] is True
    assert time.monotonic() - t1 < 0.9  # only a new upload's first chunk erases


def test_fault_mute(sc):
    sim, c = sc
    sim.set_mute(True)
    with pytest.raises(TimeoutError):
        c.call(2, 0, 0, {"d": "x"}, timeout=0.2)
    sim.set_mute(False)
    assert c.echo("back") == {"r": "back"}


def test_configure_rejects_unknown_options():
    with pytest.raises(TypeError):
        DistributorSim(no_such_option=1)
    with pytest.raises(ValueError):
        DistributorSim(smp_mode="v3")
    with pytest.raises(ValueError):
        DistributorSim().fail_receiver(4, stage="nowhere")


# ---------------------------------------------------------------- the program
def read_json_line(proc, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.1)[0]:
            line = proc.stdout.readline()
            if line:
                return json.loads(line)
    raise TimeoutError("no JSON line from the simulator")


def test_program_runs_and_takes_control_commands(tmp_path):
    pre = tmp_path / "slot1.img"
    pre.write_bytes(TEST_IMAGE)
    proc = subprocess.Popen(
        [sys.executable, SIM, "--udp-port", "0", "--bind", "127.0.0.1", "--serial-pty",
         "--speed", "1e6", "--fail-receiver", "5:0", "--preload-slot1", str(pre),
         "--addr-format", "dec"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    c = None
    try:
        ready = read_json_line(proc)
        assert ready["event"] == "ready" and ready["udp_port"] > 0
        assert ready["pty"].startswith("/dev/")
        c = UdpClient("127.0.0.1", ready["udp_port"])
        assert c.echo("cli") == {"r": "cli"}
        assert c.call(0, 1, 0)[1]["images"][1]["hash"] == IMAGE_HASH
        c.shell("mesh", "models", "dfu", "slot", "add", "88", "01")
        c.dfd("receivers-add", "4,0;5,0")
        c.dfd("start", "0", "0")
        proc.stdin.write(json.dumps({"cmd": "snapshot"}) + "\n")
        proc.stdin.flush()
        snap = read_json_line(proc)["result"]
        assert snap["dfd"]["slots"]["0"]["fwid"] == "01"
        proc.stdin.write(json.dumps({"cmd": "configure", "args": {"mute": True}}) + "\n")
        proc.stdin.flush()
        assert read_json_line(proc)["event"] == "ok"
        with pytest.raises(TimeoutError):
            c.call(2, 0, 0, {"d": "x"}, timeout=0.2)
        proc.stdin.write('{"cmd": "nope"}\n')
        proc.stdin.flush()
        assert read_json_line(proc)["event"] == "error"
        proc.stdin.write(json.dumps({"cmd": "run_shell",
                                     "args": ["mesh", "models", "dfd", "receivers-get", "0",
                                              "2"]}) + "\n")
        proc.stdin.flush()
        out, ret = read_json_line(proc)["result"]
        assert ret == 0 and '"blob_addr": 5, "phase": 10, "status": 3' in out
    finally:
        if c:
            c.close()
        proc.terminate()
        assert proc.wait(timeout=5) == 0
        proc.stdout.close()
        proc.stdin.close()


def test_program_help_lists_every_option():
    out = subprocess.run([sys.executable, SIM, "--help"], capture_output=True, text=True,
                         timeout=10).stdout
    for opt in dfd_sim.OPTIONS:
        assert opt.flag in out
    assert "--fail-receiver" in out and "--reboot-after-bytes" in out
