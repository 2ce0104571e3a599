"""The direct download path (server/http/direct.c, docs/http.md): which requests it answers
and which it hands to libmicrohttpd, keep-alive and pipelining across the two, a hand-over in
the middle of a connection, answers beyond --max-connections, the byte accounting of an
answer cut short, and --http-direct=false. The conformance of the answers themselves is in
test_downloads.py and test_short_links.py (run on the direct path), and compared byte for
byte with libmicrohttpd's by tests/fuzz_http/test_fuzz_direct.py."""
import os
import re
import socket
import time

import pytest
import requests

from conftest import ADMIN_TOKEN, Client, Server, assert_error, unique
from rawhttp import parse
from sessutil import FU, new_session, upload_fw, wait_for, wait_state

SIZE = 100_000
AUTH = f"Authorization: Token {ADMIN_TOKEN}\r\n"


def metric(server, name):
    # while the server is full, or still counts connections a client has just closed (it
    # notices a close asynchronously; slowly under ThreadSanitizer), a connection is closed at
    # accept or answered 503: again
    text = ""
    for _ in range(100):
        try:
            r = Client(server).get("/metrics")
            text = r.text
            if r.status_code != 503:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    m = re.search(rf"^{re.escape(name)} (\d+)$", text, re.M)
    assert m, (name, text)
    return int(m.group(1))


def new_catalog(admin):
    """The catalog fixture's objects, for a server of a test's own."""
    p = admin.create("/api/v1/products/", {"tid": unique("prod"), "name": "P"})
    m = admin.create("/api/v1/models/", {"tid": unique("model"), "name": "M",
                                         "product": p["tid"]})
    c = admin.create("/api/v1/channels/", {"tid": unique("chan"), "name": "stable"})
    dm = admin.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "H",
                                                    "kind": "http"})
    dp = admin.create("/api/v1/delivery-procedures/", {
        "tid": unique("dp"), "name": "L", "delivery_method": dm["tid"],
        "steps": [{"plugin": "link"}], "confirm": True})
    return {"product": p, "model": m, "channel": c, "method": dm, "procedure": dp}


def linked(admin, catalog, data):
    """A session of the link step in created; returns (session, download path, short path)."""
    upload_fw(admin, catalog, "2.0.0", data=data)
    s = new_session(admin, catalog, catalog["procedure"], device_id="dev-direct")
    assert admin.post(FU + s["id"] + "/start").status_code == 200
    s = wait_state(admin, s["id"], "created")
    path = "/" + s["payload"]["download_link"].split("://", 1)[1].split("/", 1)[1]
    short = "/" + s["payload"]["short_link"].split("://", 1)[1].split("/", 1)[1]
    return s, path, short


def read_answers(sock, n, heads=()):
    """Reads n answers (HEAD ones per heads) and whether the server then closed."""
    data, out = b"", []
    deadline = time.monotonic() + 20
    while len(out) < n and time.monotonic() < deadline:
        d = sock.recv(1 << 20)
        if not d:
            break
        data += d
        while len(out) < n:
            r, rest = parse(data, head_request=len(out) < len(heads) and heads[len(out)])
            if r is None:
                break
            out.append(r)
            data = rest
    assert not data, data[:200]
    return out


def test_downloads_take_the_direct_path_and_the_rest_is_handed_over(server, admin, catalog):
    data = os.urandom(SIZE)
    s, path, short = linked(admin, catalog, data)
    answered, handed = (metric(server, "devicehub_http_direct_requests_total"),
                        metric(server, "devicehub_http_direct_handoffs_total"))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    try:
        # four downloads, pipelined; then a confirm on the same connection, which goes
        # to libmicrohttpd in the middle of the connection, and a download after it there
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n{AUTH}\r\n".encode() +
                     f"GET {short} HTTP/1.1\r\nHost: t\r\nRange: bytes=10-19\r\n\r\n".encode() +
                     f"HEAD {short} HTTP/1.1\r\nHost: t\r\n\r\n".encode() +
                     f"GET {short}/ HTTP/1.1\r\nHost: t\r\nRange: bytes=-5\r\n\r\n".encode())
        a = read_answers(sock, 4, heads=(False, False, True, False))
        assert [r.status for r in a] == [200, 206, 200, 206]
        assert a[0].body == data and a[1].body == data[10:20] and a[3].body == data[-5:]
        assert a[2].body == b"" and a[2].header("content-length") == str(SIZE)
        assert metric(server, "devicehub_http_direct_requests_total") == answered + 4
        body = b'{"success": true}'
        sock.sendall(f"POST {FU}{s['id']}/confirm HTTP/1.1\r\nHost: t\r\n{AUTH}"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode() + body +
                     f"GET {path} HTTP/1.1\r\nHost: t\r\n{AUTH}Range: bytes=0-0\r\n"
                     "Connection: close\r\n\r\n".encode())
        a = read_answers(sock, 2)
        assert a[0].status == 200 and a[0].json()["state"] == "success", a[0]
        assert a[1].status == 206 and a[1].body == data[:1]
        assert sock.recv(1) == b""  # Connection: close was honoured
    finally:
        sock.close()
    # the download after the confirm was libmicrohttpd's: the connection stays there
    assert metric(server, "devicehub_http_direct_requests_total") == answered + 4
    assert metric(server, "devicehub_http_direct_handoffs_total") > handed
    # the short link of a confirmed session is gone, on the direct path too
    assert_error(Client(server).get(short), 404, "not_found")


def test_answers_before_the_handler_close_the_connection(server, admin, catalog):
    """As libmicrohttpd does with an answer queued before a body could be read: a 401 (or
    404 of a route) closes; an answer of the handler (404 of an unknown link) does not."""
    s, path, _ = linked(admin, catalog, os.urandom(SIZE))
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(f"GET /d/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: t\r\n\r\n"
                     f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        a = read_answers(sock, 2)
        assert [r.status for r in a] == [404, 401], a
        assert a[1].header("connection") == "close" and a[0].header("connection") is None
        assert a[1].header("www-authenticate") == "Token"
        assert sock.recv(1) == b""


def test_an_answer_cut_short_counts_what_was_sent():
    """The direct path knows how much of a body it handed to the kernel: a device that
    reads part of its image and hangs up gets that part counted, not the whole image and not
    nothing."""
    s = Server(extra_args=["--reaper-interval-ms", "100"]).start()
    try:
        admin = Client(s, ADMIN_TOKEN)
        size = 16 * 1024 * 1024
        sess, path, short = linked(admin, new_catalog(admin), os.urandom(size))
        sock = socket.socket()
        # a small window: the kernel cannot take the whole image on the reader's behalf
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(20)
        sock.connect(("127.0.0.1", s.port))
        sock.sendall(f"GET {short} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        got = 0
        while got < 200_000:
            got += len(sock.recv(65536))
        sock.close()
        # counted once, when the server noticed the hang-up
        d = wait_for(admin, sess["id"],
                     lambda x: x["delivered"]["bytes_sent"] >= 200_000)["delivered"]
        assert 200_000 <= d["bytes_sent"] < size, d
        assert 0 < d["coverage"] < 1, d
    finally:
        s.cleanup()


def test_beyond_max_connections_a_download_gets_503_at_once():
    s = Server(extra_args=["--max-connections", "2", "--max-connections-per-address",
                           "0"]).start()
    held = []
    try:
        # the two are served once, so accepted and counted before the third, however slow
        # the server (no sleep that a loaded machine outlasts)
        for _ in range(2):
            held.append(socket.create_connection(("127.0.0.1", s.port), timeout=10))
            held[-1].sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            assert [a.status for a in read_answers(held[-1], 1)] == [200]
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            sock.sendall(b"GET /d/AAAAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: t\r\n\r\n")
            a = read_answers(sock, 1)
            assert a[0].status == 503 and a[0].header("retry-after") == "2", a
            assert a[0].header("connection") == "close"
            assert a[0].json()["code"] == "unavailable"
            assert sock.recv(1) == b""
    finally:
        for h in held:
            h.close()
        s.cleanup()


def test_beyond_the_reserve_a_connection_is_closed_at_accept():
    """--max-connections 1 has a reserve of 16: with 17 connections open, another one is
    closed at once (libmicrohttpd alone would leave it waiting in the listen queue) and
    counted as refused."""
    s = Server(extra_args=["--max-connections", "1", "--max-connections-per-address",
                           "0"]).start()
    name = 'devicehub_http_connections_refused_total{reason="full"}'
    try:
        before = metric(s, name)
        # A connection beyond the cap that sends no head is cut 2 s after its accept, so the
        # 17 fill the reserve that long only. A probe answers within 1.5 s of its connect,
        # before any such cut: closed by then, it was closed at accept. A server too slow to
        # reach it in time (ThreadSanitizer on a loaded machine) gets another try.
        closed = False
        for _ in range(5):
            held = [socket.create_connection(("127.0.0.1", s.port), timeout=10)
                    for _ in range(17)]
            try:
                with socket.create_connection(("127.0.0.1", s.port), timeout=1.5) as sock:
                    try:
                        closed = sock.recv(1) == b""
                    except ConnectionResetError:
                        closed = True
                    except socket.timeout:
                        closed = False
            finally:
                for h in held:
                    h.close()
            if closed:
                break
        assert closed
        assert metric(s, name) > before
    finally:
        s.cleanup()


@pytest.mark.parametrize("direct", ["true", "false"])
def test_http_direct_switch(direct):
    s = Server(extra_args=[f"--http-direct={direct}"]).start()
    try:
        assert f"http.paths direct={'yes' if direct == 'true' else 'no'}" in s.read_log()
        before = metric(s, "devicehub_http_direct_requests_total")
        assert_error(Client(s).get("/d/AAAAAAAAAAAAAAAAAAAAAA"), 404, "not_found")
        after = metric(s, "devicehub_http_direct_requests_total")
        assert after == before + (1 if direct == "true" else 0)
    finally:
        s.cleanup()
