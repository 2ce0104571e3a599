"""Second attack run, raw HTTP: header lines that a proxy in front and libmicrohttpd would read
differently (obsolete line folding, bare CR, control bytes, Host twice) are one 400 and a
closed connection, never a second request hidden in a body; HEAD on every GET route gives the
GET's status and headers without a body, also on the event stream; every other method is a
JSON 405 with Allow; odd request targets (absolute form, encoded slashes, dot segments)
reach nothing they should not; an error in a pipeline is answered, then the connection ends.
"""
import subprocess
import time
import uuid

import pytest

from conftest import ADMIN_TOKEN, BIN, unique
from rawhttp import assert_json_error, connect, exchange, one_answer, parse
from sessutil import FAST_ARGS, FU, new_session, upload_fw, wait_state

AUTH = ("Authorization: Token " + ADMIN_TOKEN + "\r\n").encode()
CLOSE = b"Connection: close\r\n"


@pytest.fixture(scope="module")
def server():
    from conftest import Server
    s = Server(extra_args=FAST_ARGS + ["--allowed-hosts", "good.example"]).start()
    yield s
    s.cleanup()


def post_channel(headers, body):
    """A channel create whose body, if the server ignored the framing a proxy would see,
    would be read as a second request (SMUGGLED)."""
    return (b"POST /api/v1/channels/ HTTP/1.1\r\nHost: x\r\n" + AUTH +
            b"Content-Type: application/json\r\n" + headers + b"\r\n" + body)


# A complete request hidden where a body should be: it creates a product whose tid says so
# (the same length for every tid, so that the cases below can say how long it is).
SMUGGLED_BODY = b'{"tid": "smuggled-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "name": "n"}'
SMUGGLED = (b"POST /api/v1/products/ HTTP/1.1\r\nHost: x\r\n" + AUTH +
            b"Content-Type: application/json\r\nContent-Length: " +
            str(len(SMUGGLED_BODY)).encode() + b"\r\n\r\n" + SMUGGLED_BODY)


def smuggling(data):
    """data with its smuggled request made to create a product of a tid of its own; returns
    (data, a check that the product does not exist)."""
    tid = "smuggled-" + uuid.uuid4().hex

    def check(admin):
        assert admin.get("/api/v1/products/" + tid).status_code == 404, "smuggled: " + tid
    return data.replace(b"smuggled-" + b"X" * 32, tid.encode()), check

# (header lines, body): each is read one way by libmicrohttpd 0.9.75 and another way by a
# proxy that joins folded lines or ends a line at a bare CR
SPLIT_CASES = {
    # MHD appends a continuation to the header's name: "Content-Length0: 2"
    "fold after length": (b"Content-Length: 2\r\n 0\r\n", b"{}" + SMUGGLED),
    "fold of the whole length": (b"Content-Length:\r\n " + str(len(SMUGGLED)).encode() + b"\r\n",
                                 SMUGGLED),
    "fold of transfer-encoding": (b"Transfer-Encoding:\r\n chunked\r\n",
                                  b"2\r\n{}\r\n0\r\n\r\n" + SMUGGLED),
    "fold with a space": (b"X-Note: a\r\n b c\r\nContent-Length: 2\r\n", b"{}"),
    "tab fold": (b"Content-Length: 2\r\n\t0\r\n", b"{}" + SMUGGLED[:18]),
    # a proxy ending the line at the CR sees the length; MHD sees one header "X"
    "bare CR before length": (b"X: y\rContent-Length: " + str(len(SMUGGLED)).encode() +
                              b"\r\n", SMUGGLED),
    "bare CR after length": (b"Content-Length: 2\rX: y\r\n", b"{}"),
    "bare CR before chunked": (b"X: y\rTransfer-Encoding: chunked\r\n",
                               b"0\r\n\r\n" + SMUGGLED),
    "control byte in a value": (b"X-Note: a\x01b\r\nContent-Length: 2\r\n", b"{}"),
    "DEL in a value": (b"X-Note: a\x7fb\r\nContent-Length: 2\r\n", b"{}"),
}


@pytest.mark.parametrize("case", sorted(SPLIT_CASES))
def test_header_lines_read_two_ways_are_one_400_and_close(server, admin, case):
    headers, body = SPLIT_CASES[case]
    before = admin.get("/api/v1/channels/").json()["count"]
    req, assert_not_smuggled = smuggling(post_channel(headers, body))
    answers, rest, closed = exchange(server.port, req, timeout=5)
    assert len(answers) == 1 and rest == b"", (case, answers, rest[:200])
    assert_json_error(answers[0], 400, "bad_request")
    assert answers[0].header("connection") == "close"
    assert closed, case
    assert admin.get("/api/v1/channels/").json()["count"] == before
    assert_not_smuggled(admin)


def test_host_sent_twice_is_400(server):
    for hosts in ([b"evil.example", b"good.example"], [b"good.example", b"evil.example"]):
        req = (b"GET /api/v1/channels/?limit=1 HTTP/1.1\r\n" +
               b"".join(b"Host: " + h + b"\r\n" for h in hosts) + AUTH + b"\r\n")
        r = one_answer(server.port, req)
        assert_json_error(r, 400, "bad_request")
    # once is fine, and an allowed Host names the links
    r = one_answer(server.port, b"GET /api/v1/channels/?limit=1 HTTP/1.1\r\nHost: good.example"
                   b"\r\n" + AUTH + CLOSE + b"\r\n")
    assert r.status == 200


def test_the_usual_header_shapes_still_pass(server, admin):
    """Tabs around values, obs-text (bytes above 0x7F) and a folded-looking value that is not
    folded stay accepted."""
    for extra in (b"X-Note:\tvalue\t\r\n", b"X-Note: caf\xc3\xa9 \xff\r\n",
                  b"X-Note: a, b ; c=\"d\"\r\n"):
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + extra + CLOSE + b"\r\n"
        assert one_answer(server.port, req).status == 200, extra
    name = unique("c")
    body = ('{"tid": "%s", "name": "n"}' % name).encode()
    r = one_answer(server.port, post_channel(
        CLOSE + b"Content-Length: " + str(len(body)).encode() + b"\r\n", body))
    assert r.status == 201, r


@pytest.fixture(scope="module")
def ids(admin, catalog_module):
    """One object of each kind, by the path segment that names its kind."""
    cat = catalog_module
    fw = upload_fw(admin, cat, "1.1.0")
    s = new_session(admin, cat, cat["procedure"], device_id=unique("dev"))
    assert admin.post(FU + s["id"] + "/start").status_code == 200
    s = wait_state(admin, s["id"], "created")
    wh = admin.create("/api/v1/webhooks/", {"url": "https://example.com/hook"})
    first = {k: admin.get(f"/api/v1/{k}/").json()["results"][0]["id"]
             for k in ("users", "tokens", "access-rights", "devices")}
    first.update({"products": cat["product"]["id"], "models": cat["model"]["id"],
                  "channels": cat["channel"]["id"], "delivery-methods": cat["method"]["id"],
                  "delivery-procedures": cat["procedure"]["id"], "webhooks": wh["id"],
                  "firmware": fw["id"], "firmware-update": s["id"],
                  "token": s["payload"]["short_link"].rsplit("/", 1)[1]})
    return first


@pytest.fixture(scope="module")
def catalog_module(admin):
    p = admin.create("/api/v1/products/", {"tid": unique("prod"), "name": "P"})
    m = admin.create("/api/v1/models/", {"tid": unique("model"), "name": "M",
                                         "product": p["tid"]})
    c = admin.create("/api/v1/channels/", {"tid": unique("chan"), "name": "stable"})
    dm = admin.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "HTTP",
                                                    "kind": "http"})
    dp = admin.create("/api/v1/delivery-procedures/",
                      {"tid": unique("dp"), "name": "Link", "delivery_method": dm["tid"],
                       "steps": [{"plugin": "link"}], "confirm": True})
    return {"product": p, "model": m, "channel": c, "method": dm, "procedure": dp}


def routes(ids):
    """(methods, concrete path) of every path of devicehubd --list-routes, with the methods
    of all its rows."""
    out = subprocess.run([BIN, "--list-routes"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    paths = {}
    for line in out.splitlines():
        methods, pattern, _ = line.split("\t")
        path = pattern
        for kind, oid in ids.items():
            path = path.replace(f"/{kind}/{{id}}", f"/{kind}/{oid}")
        path = path.replace("{token}", ids["token"]).replace(
            "{delivery}", "00000000-0000-0000-0000-000000000000")
        assert "{" not in path, pattern
        paths.setdefault(path, set()).update(methods.split(", "))
    return [(sorted(m), p) for p, m in paths.items()]


def head_then_get(port, head_request):
    """Sends a HEAD and then a GET of /healthz on one connection; returns both answers. A
    stray byte after the HEAD's headers would garble the second one."""
    data, head, after, tail = b"", None, None, b""
    deadline = time.monotonic() + 10
    with connect(port) as s:
        s.sendall(head_request + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        while after is None and time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, rest = parse(data, head_request=True)
            if head is not None:
                after, tail = parse(rest)
    assert head is not None and after is not None and tail == b"", (head_request, data[:500])
    return head, after


def test_head_of_every_get_route_is_the_get_without_a_body(server, admin, ids):
    seen = 0
    for methods, path in routes(ids):
        if "GET" not in methods:
            continue
        req = f"HEAD {path} HTTP/1.1\r\nHost: x\r\n".encode() + AUTH + b"\r\n"
        head, after = head_then_get(server.port, req)
        assert head.status == 200, (path, head)
        assert after.status == 200 and after.body == b'{"status":"ok"}', (path, after)
        if path != "/api/v1/events":
            get = admin.get(path)
            assert get.status_code == 200, (path, get.text)
            assert head.header("content-length") == get.headers["Content-Length"], path
            assert head.header("content-type") == get.headers["Content-Type"], path
        seen += 1
    assert seen >= 30


def test_head_of_the_event_stream_takes_no_subscription(server, admin):
    req = b"HEAD /api/v1/events HTTP/1.1\r\nHost: x\r\n" + AUTH + CLOSE + b"\r\n"
    r = one_answer(server.port, req, head_request=True)
    assert r.status == 200 and r.header("content-type").startswith("text/event-stream")
    assert "devicehub_event_subscribers 0" in admin.get("/metrics").text


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "PUT", "CONNECT", "get", "PROPFIND"])
def test_other_methods_on_every_route_are_json_405_with_allow(server, ids, method):
    for methods, path in routes(ids):
        req = f"{method} {path} HTTP/1.1\r\nHost: x\r\n".encode() + AUTH + b"\r\n"
        r = one_answer(server.port, req)
        assert_json_error(r, 405, "method_not_allowed")
        assert sorted(r.header("allow").split(", ")) == sorted(methods), (path, r)


@pytest.mark.parametrize("target,status", [
    ("http://evil.example/api/v1/users/", 404),  # absolute form is not routed as a path
    ("http://evil.example/index.html", 404),
    ("/api/v1/products/a%2Fb", 404),  # an encoded slash does not make a route
    ("/api/v1/../../index.html", 404),
    ("/api/v1/users/..%2F..%2Fproducts", 404),
    ("/js%2F..%2F..%2Fetc%2Fpasswd", 404),
    ("/%2e%2e/%2e%2e/etc/passwd", 404),
    ("/..\\..\\etc\\passwd", 404),
    ("//etc/passwd", 404),
])
def test_odd_targets_reach_nothing(server, target, status):
    r = one_answer(server.port, f"GET {target} HTTP/1.1\r\nHost: x\r\n".encode() + AUTH +
                   CLOSE + b"\r\n")
    assert_json_error(r, status)
    assert b"root:" not in r.body


@pytest.mark.parametrize("bad", ids=["nul in target", "method not allowed", "no token",
                                     "too large"], argvalues=[
    b"GET /a%00 HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED,
    b"PUT /api/v1/products/ HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: " +
    str(len(SMUGGLED)).encode() + b"\r\n\r\n" + SMUGGLED,
    b"POST /api/v1/products/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(SMUGGLED)).encode() + b"\r\n\r\n" + SMUGGLED,
    b"POST /api/v1/products/ HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Type: application/json"
    b"\r\nContent-Length: 99999999\r\n\r\n" + SMUGGLED,
])
def test_an_error_in_a_pipeline_is_answered_and_nothing_after_it_runs(server, admin, bad):
    """The requests before the error are answered, the error is answered, and a request
    hidden in a refused body is never served."""
    req, assert_not_smuggled = smuggling(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + bad)
    answers, rest, closed = exchange(server.port, req, timeout=10)
    assert answers[0].status == 200
    assert len(answers) == 2 and answers[1].status >= 400, answers
    assert_not_smuggled(admin)
