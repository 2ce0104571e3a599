"""Connection-level limits, tried with real sockets: a request head must arrive within
--head-timeout (slow-loris), a body must keep up --min-body-rate, one client address may
hold --max-connections-per-address connections, and beyond --max-connections a new
connection gets a fast 503 with Retry-After instead of a hang. /metrics counts all of it,
and the open-files limit is raised and fitted at start-up."""
import os
import resource
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import ADMIN_TOKEN, BIN, Client, Server, self_signed_cert, unique
from rawhttp import assert_json_error, parse, read_answers
from test_firmware import upload

HEAD_TIMEOUT = 2   # seconds, given to the servers below
MIN_BODY_RATE = 1000
SLACK = 8          # a loaded machine may cut late; it must never cut early


def get_admitted(url, limit=10.0):
    """GET url, retrying while the server refuses the connection (a limit that closed
    connections have not yet freed: the server notices a close asynchronously)."""
    deadline = time.monotonic() + limit
    while True:
        try:
            r = requests.get(url, timeout=10)
            if r.status_code != 503:
                return r
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "still refused: " + url
        time.sleep(0.05)


def metric(server, name):
    """The value of one sample of /metrics, name as written there (with its labels)."""
    text = get_admitted(server.url + "/metrics").text
    for line in text.splitlines():
        if line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


def wait_answer_or_close(s, limit):
    """Reads until the server closes the socket; returns (bytes, seconds until the first
    byte or the close)."""
    t0 = time.monotonic()
    got, first = b"", None
    while time.monotonic() - t0 < limit:
        s.settimeout(0.5)
        try:
            d = s.recv(4096)
        except socket.timeout:
            continue
        except (ConnectionResetError, ssl.SSLError, OSError):
            break
        if not d:
            break
        first = first or time.monotonic() - t0
        got += d
    return got, first if first is not None else time.monotonic() - t0


@pytest.fixture(scope="module")
def slow_server(engine):
    s = Server(extra_args=["--head-timeout", str(HEAD_TIMEOUT),
                           "--min-body-rate", str(MIN_BODY_RATE)]).start()
    yield s
    s.cleanup()


# ---- the head deadline ----

def test_slow_loris_head_is_cut_with_408(slow_server):
    s = socket.create_connection(("127.0.0.1", slow_server.port), timeout=10)
    t0 = time.monotonic()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
    got, answered = b"", None
    # one header line a second, forever: only the head deadline can end this
    while time.monotonic() - t0 < HEAD_TIMEOUT + SLACK:
        try:
            s.sendall(b"X-Slow: %d\r\n" % int(time.monotonic() - t0))
        except OSError:
            break
        s.settimeout(1.0)
        try:
            d = s.recv(4096)
        except socket.timeout:
            continue
        except OSError:
            break
        if not d:
            break
        answered = answered or time.monotonic() - t0
        got += d
    s.close()
    assert answered is not None, "never answered"
    assert HEAD_TIMEOUT - 0.3 <= answered <= HEAD_TIMEOUT + SLACK, answered
    r, rest = parse(got)
    assert r is not None and rest == b"", got
    assert_json_error(r, 408, "request_timeout")
    assert r.header("connection") == "close"


def test_issue_cadence_one_line_every_5s_is_cut(slow_server):
    # the attack of issue 10: one header line every 5 s, which the idle timeout never ends
    with socket.create_connection(("127.0.0.1", slow_server.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n")
        got, t = wait_answer_or_close(s, 5 + SLACK)
    assert HEAD_TIMEOUT - 0.3 <= t <= HEAD_TIMEOUT + SLACK, t
    assert got.startswith(b"HTTP/1.1 408 "), got


def test_idle_keep_alive_is_closed_without_a_stray_answer(slow_server):
    with socket.create_connection(("127.0.0.1", slow_server.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        answers, rest, closed = read_answers(s, time.monotonic() + 10, settle=0.02)
        assert [a.status for a in answers] == [200] and not closed
        t0 = time.monotonic()
        got, t = wait_answer_or_close(s, HEAD_TIMEOUT + SLACK)
    # no request was started: nothing is sent (a 408 would be read as the next answer)
    assert got == b"" and HEAD_TIMEOUT - 0.3 <= time.monotonic() - t0 <= HEAD_TIMEOUT + SLACK


def test_connection_that_sends_nothing_is_closed(slow_server):
    with socket.create_connection(("127.0.0.1", slow_server.port), timeout=10) as s:
        got, t = wait_answer_or_close(s, HEAD_TIMEOUT + SLACK)
    assert got == b"" and HEAD_TIMEOUT - 0.3 <= t <= HEAD_TIMEOUT + SLACK, (got, t)


def test_normal_requests_pass_and_keep_alive_works(slow_server):
    with requests.Session() as session:
        for _ in range(3):
            r = session.get(slow_server.url + "/healthz", timeout=10)
            assert r.status_code == 200
            time.sleep(HEAD_TIMEOUT / 4)



def read_exactly(s, n, rate, limit):
    """Reads n bytes at about rate bytes/s (a device on a slow link); the bytes."""
    got, t0 = b"", time.monotonic()
    while len(got) < n and time.monotonic() - t0 < limit:
        ahead = len(got) / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
        d = s.recv(min(4096, n - len(got)))
        if not d:
            break
        got += d
    return got


def test_keep_alive_slow_reader_of_a_large_answer_is_not_cut(slow_server):
    # The server writes a 1 MiB answer into the socket at once (the kernel's send buffer
    # grows to hold it) and its head deadline starts; a device on a slow link is still
    # reading it long after. Its next request on the same connection must be served: the
    # idle time counts from when the answer reached the client, not from when it was written.
    admin = Client(slow_server, ADMIN_TOKEN)
    p = admin.create("/api/v1/products/", {"tid": unique("prod"), "name": "P"})
    m = admin.create("/api/v1/models/", {"tid": unique("model"), "name": "M",
                                         "product": p["tid"]})
    data = os.urandom(1 << 20)
    r = upload(admin, data, model=m["tid"], version="1.0.0")
    assert r.status_code == 201, r.text
    req = (f"GET /api/v1/firmware/{r.json()['id']}/image HTTP/1.1\r\nHost: t\r\n"
           f"Authorization: Token {ADMIN_TOKEN}\r\n\r\n").encode()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", slow_server.port))
    with s:
        for i in range(2):
            s.sendall(req)
            head = b""
            while b"\r\n\r\n" not in head:
                d = s.recv(1)
                assert d, f"closed before answer {i + 1}"
                head += d
            assert head.startswith(b"HTTP/1.1 200 "), head
            # 1 MiB at 256 KiB/s: 4 s, twice the head deadline
            body = read_exactly(s, len(data), 256 * 1024, 30)
            assert body == data, (i, len(body))


# ---- the body rate ----

def product_body(pad):
    return (b'{"tid": "%s", "name": "slow"}' % unique("slow").encode()) + b" " * pad


def test_slow_body_is_cut_with_408(slow_server):
    body = product_body(100)
    tid = body.split(b'"')[3].decode()
    head = (b"POST /api/v1/products/ HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: Token " + ADMIN_TOKEN.encode() +
            b"\r\nContent-Length: %d\r\n\r\n" % len(body))
    with socket.create_connection(("127.0.0.1", slow_server.port), timeout=10) as s:
        s.sendall(head)
        t0 = time.monotonic()
        got, answered = b"", None
        for i, byte in enumerate(body):   # a byte a second, far below the rate
            if time.monotonic() - t0 > 2 * HEAD_TIMEOUT + SLACK:
                break
            try:
                s.sendall(bytes([byte]))
            except OSError:
                break
            s.settimeout(1.0)
            try:
                d = s.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            answered = answered or time.monotonic() - t0
            got += d
    assert answered is not None and answered >= HEAD_TIMEOUT - 0.3, (answered, got)
    assert got.startswith(b"HTTP/1.1 408 "), got
    r = requests.get(f"{slow_server.url}/api/v1/products/{tid}/", timeout=10,
                     headers={"Authorization": "Token " + ADMIN_TOKEN})
    assert r.status_code == 404  # nothing was created


def test_body_above_the_rate_is_not_cut(slow_server):
    body = product_body(3 * 2 * MIN_BODY_RATE)  # three windows' worth at twice the rate
    head = (b"POST /api/v1/products/ HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: Token " + ADMIN_TOKEN.encode() +
            b"\r\nContent-Length: %d\r\n\r\n" % len(body))
    step = MIN_BODY_RATE // 2  # every 0.25 s: 2 x the minimum rate
    with socket.create_connection(("127.0.0.1", slow_server.port), timeout=30) as s:
        s.sendall(head)
        t0 = time.monotonic()
        for n, i in enumerate(range(0, len(body), step)):
            # on a schedule from the start: a late wake-up is made up by the next send, not
            # added to every later one (which would take the rate below the minimum)
            time.sleep(max(0.0, t0 + n * 0.25 - time.monotonic()))
            s.sendall(body[i:i + step])
        answers, rest, _ = read_answers(s, time.monotonic() + 20)
    assert [a.status for a in answers] == [201], answers


def test_timeouts_are_counted(slow_server):
    assert metric(slow_server, 'devicehub_http_timeouts_total{phase="head"}') >= 1
    with socket.create_connection(("127.0.0.1", slow_server.port), timeout=10) as s:
        before = metric(slow_server, 'devicehub_http_timeouts_total{phase="head"}')
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        wait_answer_or_close(s, HEAD_TIMEOUT + SLACK)
    assert metric(slow_server, 'devicehub_http_timeouts_total{phase="head"}') == before + 1


# ---- TLS: the deadline covers the handshake; nothing is written in clear ----

@pytest.fixture(scope="module")
def slow_tls_server(engine):
    with tempfile.TemporaryDirectory(prefix="dh-tls-") as d:
        c, k = self_signed_cert(d)
        s = Server(extra_args=["--tls-cert", c, "--tls-key", k,
                               "--head-timeout", str(HEAD_TIMEOUT)]).start()
        yield s
        s.cleanup()


def test_tls_stalled_handshake_is_closed(slow_tls_server):
    with socket.create_connection(("127.0.0.1", slow_tls_server.port), timeout=10) as s:
        got, t = wait_answer_or_close(s, HEAD_TIMEOUT + SLACK)
    assert got == b"" and HEAD_TIMEOUT - 0.3 <= t <= HEAD_TIMEOUT + SLACK, (got, t)


def test_tls_slow_head_is_closed(slow_tls_server):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", slow_tls_server.port), timeout=10)
    with ctx.wrap_socket(raw) as s:
        t0 = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        got, t = wait_answer_or_close(s, HEAD_TIMEOUT + SLACK)
    elapsed = time.monotonic() - t0
    assert b"HTTP/1.1 200" not in got and HEAD_TIMEOUT - 0.5 <= elapsed <= HEAD_TIMEOUT + SLACK


# ---- connections per client address ----

@pytest.fixture
def per_address_server():
    s = Server(extra_args=["--max-connections-per-address", "2"]).start()
    yield s
    s.cleanup()


def held_connection(port, source="127.0.0.1"):
    """A connection that was served once and stays open."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    answers, _, closed = read_answers(s, time.monotonic() + 10)
    assert [a.status for a in answers] == [200] and not closed
    return s


def closed_at_once(port, source="127.0.0.1"):
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0)) as s:
        t0 = time.monotonic()
        got, _ = wait_answer_or_close(s, 5)
        return got == b"" and time.monotonic() - t0 < 3


def test_per_address_limit(per_address_server):
    port = per_address_server.port
    a, b = held_connection(port), held_connection(port)
    try:
        assert closed_at_once(port)
        # another address is not affected
        other = held_connection(port, "127.0.0.2")
        other.close()
        # a freed place can be taken again
        a.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                a = held_connection(port)
                break
            except (AssertionError, OSError):
                time.sleep(0.05)
        else:
            raise AssertionError("the freed place was not given back")
    finally:
        a.close()
        b.close()
    assert metric(per_address_server,
                  'devicehub_http_connections_refused_total{reason="per_address"}') >= 1


# ---- beyond --max-connections: a fast 503 ----

@pytest.fixture
def capped_server():
    s = Server(extra_args=["--max-connections", "3", "--max-connections-per-address", "0"])
    s.start()
    yield s
    s.cleanup()


def test_beyond_max_connections_gets_fast_503(capped_server):
    port = capped_server.port
    held = [held_connection(port) for _ in range(3)]
    try:
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /api/v1/products/ HTTP/1.1\r\nHost: t\r\n\r\n")
            answers, rest, closed = read_answers(s, time.monotonic() + 10)
        assert time.monotonic() - t0 < 3
        assert len(answers) == 1 and rest == b"" and closed, (answers, rest)
        assert_json_error(answers[0], 503, "unavailable")
        assert int(answers[0].header("retry-after")) >= 1
        assert answers[0].header("connection") == "close"
    finally:
        held.pop().close()
    # one place is free again: served, and the counters show what happened
    assert get_admitted(capped_server.url + "/healthz").status_code == 200
    text = get_admitted(capped_server.url + "/metrics").text
    assert "devicehub_http_connections_max 3\n" in text
    refused = [x for x in text.splitlines() if 'reason="max_connections"' in x]
    assert refused and float(refused[0].split()[-1]) >= 1, text
    opened = [x for x in text.splitlines() if x.startswith("devicehub_http_connections ")]
    assert opened and 3 <= float(opened[0].split()[-1]) <= 4, text
    for s in held:
        s.close()


def test_beyond_max_connections_a_silent_client_is_closed_soon(capped_server):
    # a place in the reserve is held only briefly by a client that sends nothing
    port = capped_server.port
    held = [held_connection(port) for _ in range(3)]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            got, t = wait_answer_or_close(s, 2 + SLACK)
        assert got == b"" and 1.7 <= t <= 2 + SLACK, (got, t)
    finally:
        for s in held:
            s.close()


# ---- the open-files limit ----

def fits(m, nofile, own_files=False):
    """Sockets of m connections and of their reserve (m/8 + 16), files (an eighth of the
    connections, or each one when downloads hold their own: --http-direct=false), 256 more,
    and 256 for sockets in a lingering close (docs/http.md)."""
    return m + m // 8 + 16 + (m if own_files else m // 8) + 256 + 256 <= nofile


def start_with_nofile(monkeypatch, soft, hard, extra_args=()):
    """A server started with the given open-files limits (set in the child only)."""
    real_popen = subprocess.Popen

    def popen(*a, **kw):
        kw["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        return real_popen(*a, **kw)

    monkeypatch.setattr(subprocess, "Popen", popen)
    try:
        return Server(extra_args=extra_args).start()
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("direct", [True, False])
def test_open_files_soft_limit_is_raised_and_cap_fitted(monkeypatch, direct):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = min(hard, 4096)
    s = start_with_nofile(monkeypatch, 1024, hard,
                          () if direct else ("--http-direct=false",))
    try:
        log = s.read_log()
        assert f"server.open_files soft={hard} hard={hard} soft_at_start=1024" in log, log
        text = get_admitted(s.url + "/metrics").text
        cap = int([x for x in text.splitlines()
                   if x.startswith("devicehub_http_connections_max ")][0].split()[-1])
        own = not direct
        assert fits(cap, hard, own) and not fits(cap + 1, hard, own), cap
        assert cap > 1024 or not fits(1024, hard, own)
        if cap < 16384:
            assert "http.limits max_connections=%d requested=16384" % cap in log, log
    finally:
        s.cleanup()


def test_default_cap_is_well_above_1024():
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30).stdout
    line = out[out.index("--max-connections "):].splitlines()[1]
    assert 'default "16384"' in line, line
