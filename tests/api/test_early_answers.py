"""Answers given before the request body was read (413 for a declared length beyond the
limit, 401, 404, framing errors, ...) must reach a client that keeps sending its body: the
server closes such a connection after the answer, and a socket closed with unread bytes is
reset by the kernel, which destroys the answer in the client's buffers. The server keeps
reading and dropping what still comes for a bounded time (a lingering close, docs/http.md),
so the client always reads the JSON answer. A naive client (Python's http.client, requests)
sends the whole body before it reads anything: these tests do the same."""
import socket
import time

import pytest
import requests

from conftest import ADMIN_TOKEN, Server, assert_error
from rawhttp import assert_json_error, parse

MAX_BODY = 1024 * 1024
BIG = 2 * MAX_BODY
CHUNK = 32 * 1024
ROUNDS = 30

# the HTTP layer does not touch the database for these answers
pytestmark = pytest.mark.engines("sqlite")


@pytest.fixture(scope="module")
def server(engine):
    s = Server(engine=engine, extra_args=["--max-body", str(MAX_BODY),
                                          "--max-upload", str(MAX_BODY)]).start()
    yield s
    s.cleanup()


def send_then_read(port, head, body_len, timeout=30.0):
    """Sends head and body_len bytes of body in CHUNK pieces, pausing a moment between them
    (a client on a slower link), then reads until the server closes. A reset while sending
    or reading fails the test: that is the defect."""
    deadline = time.monotonic() + timeout
    chunk = b"x" * CHUNK
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        sent = 0
        while sent < body_len:
            n = min(CHUNK, body_len - sent)
            s.sendall(chunk[:n])
            sent += n
            time.sleep(0.0005)
        data = b""
        while time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                break
            data += d
    r, rest = parse(data)
    assert r is not None and rest == b"", data[:500]
    return r


def head(method, path, length, token=ADMIN_TOKEN, extra=b""):
    """A request head; length None sends no Content-Length."""
    auth = f"Authorization: Token {token}\r\n".encode() if token else b""
    cl = f"Content-Length: {length}\r\n".encode() if length is not None else b""
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + auth +
            b"Content-Type: application/json\r\n" + extra + cl + b"\r\n")


def test_body_beyond_max_body_always_reads_413(server):
    for i in range(ROUNDS):
        r = send_then_read(server.port, head("POST", "/api/v1/products/", BIG), BIG)
        body = assert_json_error(r, 413, "too_large")
        assert str(MAX_BODY) in body["detail"], (i, body)


def test_requests_client_reads_413(server):
    big = '{"tid": "x", "name": "' + "a" * BIG + '"}'
    for _ in range(10):
        r = requests.post(server.url + "/api/v1/products/", data=big, timeout=30,
                          headers={"Content-Type": "application/json",
                                   "Authorization": f"Token {ADMIN_TOKEN}"})
        assert_error(r, 413, "too_large")


def test_upload_beyond_max_upload_without_expect_reads_413(server):
    """A multipart upload whose length is beyond --max-upload, sent at once after its head
    (no "Expect: 100-continue" to wait for the server's word)."""
    n = 5 * MAX_BODY  # beyond the image's limit plus the form's (2 MiB)
    h = (f"POST /api/v1/firmware/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
         f"Authorization: Token {ADMIN_TOKEN}\r\n"
         f"Content-Type: multipart/form-data; boundary=b0undary\r\n"
         f"Content-Length: {n}\r\n\r\n").encode()
    for _ in range(10):
        r = send_then_read(server.port, h, n)
        assert_json_error(r, 413, "too_large")


def test_requests_upload_beyond_max_upload_reads_413(server):
    image = b"\xa5" * (5 * MAX_BODY)
    for _ in range(5):
        r = requests.post(server.url + "/api/v1/firmware/", timeout=30,
                          headers={"Authorization": f"Token {ADMIN_TOKEN}"},
                          files={"file": ("app.bin", image)},
                          data={"model": "nothing", "version": "1.0.0"})
        assert "Expect" not in r.request.headers
        assert_error(r, 413, "too_large")


@pytest.mark.parametrize("case", ["no_token", "bad_token", "no_route", "two_lengths",
                                  "gzip_coding"])
def test_other_early_answers_reach_a_client_still_sending(server, case):
    n = MAX_BODY // 2  # within the limit: only the early answer stops the body
    status, code, h = {
        "no_token": (401, "unauthorized", head("POST", "/api/v1/products/", n, token=None)),
        "bad_token": (401, "unauthorized",
                      head("POST", "/api/v1/products/", n, token="dh_" + "0" * 48)),
        "no_route": (404, "not_found", head("POST", "/api/v1/nothing-here/", n)),
        "two_lengths": (400, "bad_request",
                        head("POST", "/api/v1/products/", n, extra=f"Content-Length: {n}\r\n"
                             .encode())),
        "gzip_coding": (501, "not_implemented",
                        head("POST", "/api/v1/products/", None,
                             extra=b"Transfer-Encoding: gzip\r\n")),
    }[case]
    for _ in range(5):
        r = send_then_read(server.port, h, n)
        assert_json_error(r, status, code)


def metric(server, name):
    for line in requests.get(server.url + "/metrics", timeout=10).text.splitlines():
        if line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(name + " not in /metrics")


def wait_for(cond, limit=15.0):
    deadline = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_lingering_is_bounded_in_bytes(server):
    """A client that sends on and on after the answer is cut off (64 MiB at most are read
    and dropped), and the server holds no socket for it afterwards."""
    begun = metric(server, "devicehub_http_lingering_closes_total")
    chunk = b"x" * (1024 * 1024)
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(head("POST", "/api/v1/products/", 1 << 40))
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            while sent < 256 * len(chunk):
                s.sendall(chunk)
                sent += len(chunk)
    assert 64 * len(chunk) <= sent < 256 * len(chunk), sent
    assert metric(server, "devicehub_http_lingering_closes_total") > begun
    wait_for(lambda: metric(server, "devicehub_http_lingering") == 0)


def test_server_serves_on_after_lingering(server):
    """A lingering connection holds no HTTP thread: others are served meanwhile."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(head("POST", "/api/v1/products/", BIG))
        s.sendall(b"x" * CHUNK)
        # the 413 came and the server closed its side, but it still reads what we send
        data = b""
        while b"\r\n\r\n" not in data or parse(data)[0] is None:
            d = s.recv(65536)
            assert d, data
            data += d
        assert_json_error(parse(data)[0], 413, "too_large")
        t0 = time.monotonic()
        for _ in range(20):
            r = requests.get(server.url + "/healthz", timeout=10)
            assert r.status_code == 200
            # the client goes on sending meanwhile: a slow run does not reach the drain's
            # 5 s without a byte, after which the server would close the socket
            s.sendall(b"x" * 1024)
        assert time.monotonic() - t0 < 10
        assert metric(server, "devicehub_http_lingering") >= 1
        s.sendall(b"x" * CHUNK)  # still read and dropped: no reset
    # the client closed: so does the server, at once
    wait_for(lambda: metric(server, "devicehub_http_lingering") == 0, limit=3)
