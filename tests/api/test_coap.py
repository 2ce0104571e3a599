"""The CoAP image server (API.md, "Short links"; docs/coap.md): coap_link of a `coap` delivery
method, fetched block-wise by two independent clients (libcoap's coap-client and node-coap)
at several block sizes, resumed from a block number after an interruption, 4.04 once the
session is finished, the options of each block, 4.05/4.04/4.02/4.00, /.well-known/core,
non-confirmable requests, duplicates answered from the cache, the bytes counted, and a port
no other socket can take."""
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
from urllib.parse import urlsplit

import pytest

from conftest import ADMIN_TOKEN, BIN, ROOT, Client, Server, unique
from sessutil import FAST_ARGS, FU, new_session, procedure, upload_fw, wait_for, wait_state

SIZE = 300 * 1024
NODE_DIR = os.path.join(ROOT, "tests", "coap")
PUBLIC = "http://device-hub.example:8080"


def coap_client():
    """libcoap3-bin's client: Debian installs it under its TLS library's name."""
    for name in ("coap-client", "coap-client-gnutls", "coap-client-openssl", "coap-client-notls"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("no coap-client: scripts/test installs libcoap3-bin (scripts/deps.sh)")


def coap_port(server, which="port"):
    """The bound port (plain; which="dtls_port" for DTLS) of the server's last start."""
    m = re.findall(r"coap\.listening .*? " + which + r"=(\d+)", server.read_log())
    assert m, server.read_log()
    return int(m[-1])


@pytest.fixture(scope="module")
def server(engine):
    s = Server(extra_args=FAST_ARGS + ["--coap-port", "0", "--public-url", PUBLIC]).start()
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def coap_catalog(admin):
    p = admin.create("/api/v1/products/", {"tid": unique("prod"), "name": "P"})
    m = admin.create("/api/v1/models/", {"tid": unique("model"), "name": "M",
                                         "product": p["tid"]})
    c = admin.create("/api/v1/channels/", {"tid": unique("chan"), "name": "stable"})
    dm = admin.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "CoAP",
                                                    "kind": "coap"})
    return {"product": p, "model": m, "channel": c, "method": dm}


@pytest.fixture(scope="module")
def image(admin, coap_catalog):
    data = os.urandom(SIZE)
    upload_fw(admin, coap_catalog, "2.0.0", data=data)
    return data


def coap_session(admin, server, cat):
    """A created session of a coap procedure: id and its links, coap_link on this server."""
    dp = procedure(admin, cat, steps=[{"plugin": "link"}], confirm=True)
    s = new_session(admin, cat, dp, device_id=unique("dev"))
    assert admin.post(FU + s["id"] + "/start").status_code == 200
    s = wait_state(admin, s["id"], "created")
    link = s["payload"]["coap_link"]
    here = f"coap://127.0.0.1:{coap_port(server)}{urlsplit(link).path}"
    return {"id": s["id"], "payload": s["payload"], "link": link, "here": here}


@pytest.fixture
def sess(admin, server, coap_catalog, image):
    return coap_session(admin, server, coap_catalog)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def run_client(*args, timeout=60):
    return subprocess.run([coap_client(), "-B", "20"] + list(args), capture_output=True,
                          timeout=timeout)


def fetch(url, block=None, start=None):
    """coap-client's GET of url to a file; returns (exit code, output bytes, stdout+stderr)."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.bin")
        args = []
        if block:
            args += ["-b", f"{start},{block}" if start is not None else str(block)]
        r = run_client(*args, "-o", out, url)
        data = open(out, "rb").read() if os.path.exists(out) else b""
        return r.returncode, data, (r.stdout + r.stderr).decode(errors="replace")


def test_the_links_of_a_coap_session(sess, image, admin):
    p = sess["payload"]
    tok = p["short_link"].rsplit("/", 1)[1]
    assert p["short_link"] == f"{PUBLIC}/d/{tok}"
    # the host of --public-url, the CoAP port, the same token
    assert re.fullmatch(r"coap://device-hub\.example:\d+/d/" + re.escape(tok), p["coap_link"])
    assert len(p["coap_link"]) <= 80
    assert p["size"] == SIZE and p["sha256"] == sha(image)


@pytest.mark.parametrize("block", [64, 256, 1024])
def test_coap_client_downloads_at_each_block_size(sess, image, admin, block):
    rc, data, log = fetch(sess["here"], block)
    assert rc == 0, log
    assert sha(data) == sha(image)
    s = wait_for(admin, sess["id"], lambda s: s["delivered"]["bytes_sent"] == SIZE)
    assert s["delivered"]["coverage"] == 1


def test_an_interrupted_download_resumes_from_a_block_number(sess, image):
    with tempfile.TemporaryDirectory() as d:
        part = os.path.join(d, "part.bin")
        # the client stops sending after its 150th datagram: 150 blocks of 1024 bytes arrive
        r = run_client("-B", "2", "-l", "151-100000", "-b", "1024", "-o", part, sess["here"])
        have = open(part, "rb").read()
        assert 0 < len(have) < SIZE and len(have) % 1024 == 0, (len(have), r.stderr)
        assert have == image[:len(have)]
        # libcoap's client fetches one block when asked for block N > 0 (random access):
        # ask for every remaining block by its number, as a device after a reboot would
        for n in range(len(have) // 1024, SIZE // 1024):
            rc, blk, log = fetch(sess["here"], 1024, n)
            assert rc == 0 and len(blk) == 1024, (n, log)
            have += blk
    assert sha(have) == sha(image)


def test_node_coap_downloads_and_resumes(sess, image, admin):
    node = shutil.which("node")
    assert node, "node: scripts/test installs it with the CoAP client packages"
    assert os.path.exists(os.path.join(NODE_DIR, "node_modules", "coap")), \
        "tests/coap/node_modules: scripts/test runs npm ci there"
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "n.bin")
        for szx, start, env in ((2, 0, {}), (6, 0, {"NON": "1"}), (4, 600, {})):
            r = subprocess.run([node, os.path.join(NODE_DIR, "fetch.mjs"), sess["here"],
                                str(szx), str(start), out], capture_output=True, timeout=60,
                               env=dict(os.environ, **env))
            assert r.returncode == 0, r.stderr.decode()
            info = json.loads(r.stdout)
            assert info["code"] == "2.05"
            assert info["etag"] == sha(image)[:16]
            assert info["size2"] == SIZE and info["format"] == "application/octet-stream"
            got = open(out, "rb").read()
            assert got == image[start * (16 << szx):], (szx, start)


def test_no_other_socket_takes_the_coap_port(server):
    """libcoap binds with SO_REUSEADDR, with which Linux lets another such socket bind the
    same port (even one asking for port 0) and hands it the datagrams: the port stays the
    server's alone, and a second server asking for it exits with a message."""
    port = coap_port(server)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with pytest.raises(OSError) as e:
            s.bind(("127.0.0.1", port))
        assert e.value.errno == errno.EADDRINUSE
    second = Server(extra_args=["--coap-port", str(port)])
    try:
        with pytest.raises(RuntimeError, match="exited"):
            second.start()
        assert "Cannot listen for CoAP" in second.read_log()
    finally:
        second.cleanup()


def test_a_finished_session_gives_4_04(sess, image, admin):
    rc, data, log = fetch(sess["here"], 1024)
    assert sha(data) == sha(image)
    assert admin.post(FU + sess["id"] + "/confirm",
                      json={"success": True}).json()["state"] == "success"
    rc, data, log = fetch(sess["here"], 1024)
    assert "4.04" in log and data == b""
    assert raw_get(sess["here"], block=(3, 6))[1] == 0x84


# ---- raw CoAP, for what a client library hides ----

CON, NON, ACK = 0, 1, 2
GET, POST, DELETE = 1, 2, 4


def opt_bytes(v):
    return v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b""


def encode(mtype, code, mid, token, options, payload=b""):
    out = bytes([0x40 | mtype << 4 | len(token), code]) + mid.to_bytes(2, "big") + token
    last = 0
    for num, val in sorted(options, key=lambda o: o[0]):
        delta, last = num - last, num
        parts = []
        for x in (delta, len(val)):
            parts.append((x, b"") if x < 13 else (13, bytes([x - 13])) if x < 269
                         else (14, (x - 269).to_bytes(2, "big")))
        out += bytes([parts[0][0] << 4 | parts[1][0]]) + parts[0][1] + parts[1][1] + val
    return out + (b"\xff" + payload if payload else b"")


def decode(msg):
    """(type, code, mid, token, {number: [values]}, payload) of a CoAP message."""
    tkl = msg[0] & 15
    mtype, code, mid, token = (msg[0] >> 4) & 3, msg[1], int.from_bytes(msg[2:4], "big"), \
        msg[4:4 + tkl]
    i, num, opts = 4 + tkl, 0, {}
    while i < len(msg) and msg[i] != 0xFF:
        d, ln = msg[i] >> 4, msg[i] & 15
        i += 1
        vals = []
        for x in (d, ln):
            if x == 13:
                x, i = msg[i] + 13, i + 1
            elif x == 14:
                x, i = int.from_bytes(msg[i:i + 2], "big") + 269, i + 2
            vals.append(x)
        num += vals[0]
        opts.setdefault(num, []).append(msg[i:i + vals[1]])
        i += vals[1]
    payload = msg[i + 1:] if i < len(msg) else b""
    return mtype, code, mid, token, opts, payload


def path_opts(url):
    return [(11, seg.encode()) for seg in urlsplit(url).path.split("/")[1:]]


def exchange(url, msg, repeat=1):
    u = urlsplit(url)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        answers = []
        for _ in range(repeat):
            s.sendto(msg, (u.hostname, u.port))
            answers.append(s.recv(2048))
        return answers


def raw_get(url, block=None, mtype=CON, mid=0x2001, code=GET, block_value=None, extra=()):
    opts = path_opts(url) + list(extra)
    if block is not None:
        num, szx = block
        opts.append((23, opt_bytes(num << 4 | szx)))
    if block_value is not None:
        opts.append((23, block_value))
    return decode(exchange(url, encode(mtype, code, mid, b"\x07\x08", opts))[0])


def test_each_block_carries_etag_size2_format_and_block2(sess, image):
    t, code, mid, tok, opts, payload = raw_get(sess["here"], block=(5, 4))
    assert (t, code, mid, tok) == (ACK, 0x45, 0x2001, b"\x07\x08")
    assert opts[4] == [bytes.fromhex(sha(image)[:16])]  # ETag: 8 bytes of the SHA-256
    assert opts[12] == [bytes([42])]  # application/octet-stream
    assert opts[23] == [opt_bytes(5 << 4 | 1 << 3 | 4)]  # block 5, more, 256 bytes
    assert int.from_bytes(opts[28][0], "big") == SIZE
    assert payload == image[5 * 256:6 * 256]
    # the last block: M clear, the rest of the image
    last = SIZE // 64 - 1
    t, code, _, _, opts, payload = raw_get(sess["here"], block=(last, 2))
    assert code == 0x45 and opts[23] == [opt_bytes(last << 4 | 2)] and payload == image[-64:]
    # no Block2 asked: block 0 at the largest size, with Block2 since the image is larger
    t, code, _, _, opts, payload = raw_get(sess["here"])
    assert opts[23] == [opt_bytes(0 << 4 | 1 << 3 | 6)] and payload == image[:1024]
    # a non-confirmable request gets a non-confirmable answer
    t, code, _, _, _, payload = raw_get(sess["here"], block=(1, 6), mtype=NON)
    assert (t, code) == (NON, 0x45) and payload == image[1024:2048]


def test_errors(sess, server):
    here = sess["here"]
    base = f"coap://127.0.0.1:{coap_port(server)}"
    # block past the end: 4.02; SZX 7 (reserved): 4.00; a Block2 of 4 bytes: 4.02
    assert raw_get(here, block=(SIZE // 1024, 6))[1] == 0x82
    assert raw_get(here, block=(0, 7))[1] == 0x80
    # a 4-byte Block2 breaks the option's format: libcoap refuses the message (Reset)
    t, code = raw_get(here, block_value=b"\x00\x00\x00\x10")[:2]
    assert (t, code) == (3, 0), (t, code)
    # wrong method on an image: 4.05; unknown paths and tokens: 4.04
    assert raw_get(here, code=POST)[1] == 0x85
    assert raw_get(here, code=DELETE)[1] == 0x85
    for url in (base + "/d/" + "A" * 22, base + "/x", base + "/d", base + "/d/a/b", base + "/"):
        assert raw_get(url)[1] == 0x84, url
    # an unknown token and a finished link answer alike: code, no options, no payload
    unknown = raw_get(base + "/d/" + "A" * 22)
    assert unknown[4] == {} and unknown[5] == b""


def test_well_known_core(server):
    base = f"coap://127.0.0.1:{coap_port(server)}"
    t, code, _, _, opts, payload = raw_get(base + "/.well-known/core")
    assert code == 0x45 and opts[12] == [bytes([40])]  # application/link-format
    text = payload.decode()
    # RFC 6690: comma-separated <uri>;attr=value links
    assert re.fullmatch(r'(<[^>]+>(;[a-z]+=("[^"]*"|[^;,]+))*)(,<[^>]+>(;[a-z]+=("[^"]*"|'
                        r'[^;,]+))*)*', text), text
    assert text.startswith("</d>;")
    assert raw_get(base + "/.well-known/core", code=POST)[1] == 0x85
    rc, _, log = fetch(base + "/.well-known/core")
    assert rc == 0


def test_a_duplicate_is_answered_again_but_counted_once(admin, server, coap_catalog, image):
    s = coap_session(admin, server, coap_catalog)
    msg = encode(CON, GET, 0x3131, b"\x01", path_opts(s["here"]) + [(23, opt_bytes(7 << 4 | 6))])
    a, b = exchange(s["here"], msg, repeat=2)
    assert a == b and decode(a)[1] == 0x45 and decode(a)[5] == image[7 * 1024:8 * 1024]
    d = wait_for(admin, s["id"], lambda x: x["delivered"]["bytes_sent"] > 0)["delivered"]
    assert d["bytes_sent"] == 1024
    # the same block under a new message id is a new request: it counts
    msg2 = encode(CON, GET, 0x3132, b"\x01", path_opts(s["here"]) + [(23, opt_bytes(7 << 4 | 6))])
    assert exchange(s["here"], msg2)[0][4:] == a[4:]
    wait_for(admin, s["id"], lambda x: x["delivered"]["bytes_sent"] == 2048)


def test_coap_method_without_coap_server_fails_the_step():
    """The module's server runs CoAP; this one does not."""
    srv = Server(extra_args=FAST_ARGS).start()
    try:
        a = Client(srv, ADMIN_TOKEN)
        from test_delivered import make_catalog
        cat = make_catalog(a)
        cat["method"] = a.create("/api/v1/delivery-methods/",
                                 {"tid": unique("dm"), "name": "CoAP", "kind": "coap"})
        upload_fw(a, cat, "2.0.0", data=b"x" * 100)
        dp = procedure(a, cat, steps=[{"plugin": "link"}], confirm=True)
        s = new_session(a, cat, dp, device_id=unique("dev"))
        a.post(FU + s["id"] + "/start")
        s = wait_state(a, s["id"], "fail")
        assert "CoAP server is off" in s["error"]["detail"]
    finally:
        srv.cleanup()


def test_coap_public_url_and_restart():
    """--coap-public-url sets the base; a link stays valid across a restart."""
    port = free_udp_port()
    args = FAST_ARGS + ["--coap-port", str(port), "--coap-public-url",
                        "coap://hub.example:5683/"]
    srv = Server(extra_args=args).start()
    try:
        a = Client(srv, ADMIN_TOKEN)
        from test_delivered import make_catalog
        cat = make_catalog(a)
        cat["method"] = a.create("/api/v1/delivery-methods/",
                                 {"tid": unique("dm"), "name": "CoAP", "kind": "coap"})
        data = os.urandom(5000)
        upload_fw(a, cat, "2.0.0", data=data)
        s = coap_session(a, srv, cat)
        tok = s["payload"]["short_link"].rsplit("/", 1)[1]
        assert s["link"] == "coap://hub.example:5683/d/" + tok
        srv.stop()
        srv.start()
        assert coap_port(srv) == port
        rc, got, log = fetch(s["here"], 256)
        assert rc == 0 and got == data, log
    finally:
        srv.cleanup()


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_flags_are_checked():
    for args, what in ((["--coap-port", "70000"], "--coap-port"),
                       (["--coap-port", "x"], "--coap-port"),
                       (["--coaps-port", "-1"], "--coaps-port"),
                       (["--coap-listen", "nowhere"], "--coap-listen"),
                       (["--coap-public-url", "http://x"], "--coap-public-url")):
        r = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and what in r.stderr, (args, r.stderr)
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30).stdout
    for flag, env in (("--coap-port", "DEVICEHUB_COAP_PORT"),
                      ("--coap-listen", "DEVICEHUB_COAP_LISTEN"),
                      ("--coap-public-url", "DEVICEHUB_COAP_PUBLIC_URL"),
                      ("--coaps-port", "DEVICEHUB_COAPS_PORT")):
        assert flag in out and env in out


def test_dtls_with_a_pre_shared_key_per_device():
    """coaps:// with coap-client -u/-k: the device's device_id is the PSK identity, its
    coap_psk (set through the device API, never shown) the key; another device's key gets
    the same 4.04 as a wrong token, a wrong key no answer at all."""
    srv = Server(extra_args=FAST_ARGS + ["--coaps-port", "0"]).start()
    try:
        a = Client(srv, ADMIN_TOKEN)
        from test_delivered import make_catalog
        cat = make_catalog(a)
        cat["method"] = a.create("/api/v1/delivery-methods/",
                                 {"tid": unique("dm"), "name": "CoAP", "kind": "coap"})
        data = os.urandom(20000)
        upload_fw(a, cat, "2.0.0", data=data)
        dp = procedure(a, cat, steps=[{"plugin": "link"}], confirm=True)
        dev = unique("dev")
        s = new_session(a, cat, dp, device_id=dev)
        other = new_session(a, cat, dp, device_id=unique("dev"))
        # the keys: written through the device API, never answered
        for sess, key in ((s, "k3y-of-" + dev), (other, "another-key-123")):
            r = a.patch(f"/api/v1/devices/{sess['device']}", json={"coap_psk": key})
            assert r.status_code == 200, r.text
            assert "coap_psk" not in r.json()
        assert "coap_psk" not in a.get(f"/api/v1/devices/{s['device']}").json()
        a.post(FU + s["id"] + "/start")
        s = wait_state(a, s["id"], "created")
        port = coap_port(srv, "dtls_port")
        link = s["payload"]["coap_link"]
        # only DTLS is on: the link says coaps and the DTLS port
        assert link.startswith(f"coaps://127.0.0.1:{port}/d/"), link
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "o.bin")
            r = run_client("-u", dev, "-k", "k3y-of-" + dev, "-b", "512", "-o", out, link)
            got = open(out, "rb").read() if os.path.exists(out) else b""
            assert got == data, (r.stdout + r.stderr).decode(errors="replace")[-2000:]
            # another device's identity and key: the link is not its own
            odev = a.get(f"/api/v1/devices/{other['device']}").json()["device_id"]
            r = run_client("-u", odev, "-k", "another-key-123", "-o", out + "2", link)
            assert b"4.04" in r.stdout + r.stderr and not os.path.exists(out + "2")
            # a wrong key: the handshake fails, nothing comes back
            r = run_client("-B", "3", "-u", dev, "-k", "wrong", "-o", out + "3", link)
            assert not os.path.exists(out + "3") or open(out + "3", "rb").read() == b""
        # a device_id may hold a key once: another device of that name with a key is 409
        m2 = a.create("/api/v1/models/", {"tid": unique("model"), "name": "M2",
                                           "product": cat["product"]["tid"]})
        r = a.post("/api/v1/devices/", json={"device_id": dev, "model": m2["id"],
                                             "coap_psk": "yet-another"})
        assert r.status_code == 409, r.text
        r = a.post("/api/v1/devices/", json={"device_id": dev, "model": m2["id"]})
        assert r.status_code == 201, r.text
        # bad keys
        for bad in ("", "x" * 65, 5):
            r = a.patch(f"/api/v1/devices/{s['device']}", json={"coap_psk": bad})
            assert r.status_code == 400 and "coap_psk" in r.json()["fields"], r.text
        # null removes the key: no handshake any more
        assert a.patch(f"/api/v1/devices/{s['device']}",
                       json={"coap_psk": None}).status_code == 200
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "o.bin")
            run_client("-B", "3", "-u", dev, "-k", "k3y-of-" + dev, "-o", out, link)
            assert not os.path.exists(out) or open(out, "rb").read() == b""
    finally:
        srv.cleanup()
