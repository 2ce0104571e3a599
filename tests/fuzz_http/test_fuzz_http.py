"""End-to-end HTTP fuzzing of a running devicehubd with Hypothesis (Debian's
python3-hypothesis): raw request bytes (methods, targets with any byte, headers, bodies,
Content-Length and chunked framing, bad chunk sizes, duplicate and contradicting headers,
truncations and stray bytes) are sent on fresh connections, the client half-closes, and
the server's bytes are checked.

The property, for every example:
- whatever the server sends within 10 s is a sequence of well-formed HTTP/1.1 responses and
  nothing else (no HTML, no second status line inside an answer, no stray bytes), and it
  has closed the connection by then (a server that waited for more bytes would wait for its
  30 s head timeout; a quick answer may take seconds on a loaded machine);
- an error answer (4xx, 5xx) has a JSON body with "code" and "detail"; a JSON success is
  valid JSON; no answer is a 500 (a client's bytes are never the server's fault);
- a well-framed request gets exactly one answer; a mangled one may get none only when the
  bytes do not make a request (MHD closes on a request line without a space, or at the end
  of input in the middle of a head or body);
- the server is alive and answers /healthz after each example.

The bounded run in scripts/test takes DH_FUZZ_HTTP_EXAMPLES examples per test (default
500, about 30 s for both tests on the ASan build). A long run:
    DH_FUZZ_HTTP_EXAMPLES=20000 DEVICEHUB_BIN=build-test/server/devicehubd \\
        /usr/bin/python3 -m pytest -q tests/fuzz_http
A failure prints the smallest example Hypothesis found and a @reproduce_failure line."""
import json
import os
import socket
import string
import time
import urllib.parse

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import api
from rawhttp import Malformed, parse

EXAMPLES = int(os.environ.get("DH_FUZZ_HTTP_EXAMPLES", "500"))
# seconds, from the last byte sent to the server's close: a third of the default 30 s
# --head-timeout, which a server waiting for bytes after the half-close would take; not the
# 2 s that one of a thousand examples exceeded now and then on a loaded machine
ANSWER_WITHIN = 10.0
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture])

TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
METHODS = ["GET", "HEAD", "POST", "PATCH", "DELETE", "PUT", "OPTIONS"]
ROUTE_WORDS = ["api", "v1", "products", "models", "channels", "delivery-methods",
               "delivery-procedures", "firmware", "firmware-update", "request", "start",
               "confirm", "image", "devices", "users", "tokens", "access-rights",
               "openapi.json", "healthz", "metrics", "d", "index.html", "js", "app.js",
               "css", "..", ".", ""]
QUERY_KEYS = ["limit", "offset", "state", "model", "device", "channel", "product", "tid",
              "draft", "finished", "version", "device_id", "heartbeat", "last_event_id"]
STATUSES = {200, 201, 204, 206, 400, 401, 403, 404, 405, 408, 409, 410, 413, 414, 415, 416,
            429, 431, 501, 503, 505}


# ---- strategies ----

def pct(b):
    """Percent-encodes bytes that may not appear raw in a target (and some that may)."""
    return urllib.parse.quote_from_bytes(b, safe=b"/-._~!$&'()*+,;=:@").encode()


@st.composite
def segments(draw, objects):
    kind = draw(st.integers(0, 9))
    if kind <= 3:
        return draw(st.sampled_from(ROUTE_WORDS)).encode()
    if kind <= 5:
        return draw(st.sampled_from(objects["ids"] + objects["tids"])).encode()
    if kind <= 7:
        return pct(draw(st.binary(max_size=12)))
    return draw(st.text(alphabet=string.printable, max_size=12)).encode("utf-8")


@st.composite
def targets(draw, objects):
    """Mostly route-like paths under /api/v1, with ids and any byte percent-encoded."""
    segs = draw(st.lists(segments(objects), max_size=6))
    if draw(st.booleans()):
        segs = [b"api", b"v1"] + segs
    path = b"/" + b"/".join(s.replace(b"?", b"%3F").replace(b"#", b"%23") for s in segs)
    if draw(st.booleans()):
        path += b"/"
    pairs = draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS),
                                    st.one_of(st.sampled_from(objects["ids"] +
                                                              objects["tids"]),
                                              st.text(max_size=8),
                                              st.integers(-5, 2000).map(str))),
                          max_size=3))
    if pairs:
        path += b"?" + b"&".join(pct(k.encode()) + b"=" + pct(v.encode("utf-8"))
                                 for k, v in pairs)
    return path


def header_values():
    return st.one_of(st.text(alphabet=string.printable.replace("\r", "").replace("\n", ""),
                             max_size=40),
                     st.binary(max_size=40).map(
                         lambda b: b.replace(b"\r", b"").replace(b"\n", b"")
                         .decode("latin-1")))


@st.composite
def headers(draw, objects, body_kind):
    hs = [("Host", "fuzz.test")] if draw(st.integers(0, 9)) else []
    auth = draw(st.integers(0, 5))
    if auth <= 2:
        hs.append(("Authorization", "Token " + api.ADMIN_TOKEN))
    elif auth == 3:
        hs.append(("Authorization", draw(st.sampled_from(["Token ", "Bearer ", "Basic ",
                                                           ""])) + draw(header_values())))
    if body_kind == "json":
        hs.append(("Content-Type", draw(st.sampled_from(
            ["application/json", "application/json; charset=utf-8", "text/plain",
             "application/jsonx", "multipart/form-data; boundary=x"]))))
    elif body_kind == "multipart":
        hs.append(("Content-Type", "multipart/form-data; boundary=" +
                   draw(st.sampled_from(["fz", "", "a" * 80, "fz; x=y"]))))
    extra = draw(st.lists(st.one_of(
        st.tuples(st.just("Range"), st.one_of(st.sampled_from(
            ["bytes=0-0", "bytes=-1", "bytes=4000-", "bytes=0-1,2-3", "bytes=9999999-",
             "bytes=-0", "items=1-2"]), header_values())),
        st.tuples(st.just("If-Range"), header_values()),
        st.tuples(st.just("Accept"), st.just("*/*")),
        st.tuples(st.just("Expect"), st.just("100-continue")),
        st.tuples(st.just("Connection"), st.sampled_from(["close", "keep-alive", "upgrade"])),
        st.tuples(st.just("Last-Event-ID"), header_values()),
        st.tuples(st.text(alphabet=TOKEN, min_size=1, max_size=20), header_values())),
        max_size=5))
    return hs + extra


def json_values():
    return st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64),
                  st.floats(allow_nan=False), st.text(max_size=20),
                  st.sampled_from(["fz-prod", "fz-model", "fz-chan", "link", "1.0.0"])),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.sampled_from(["tid", "name", "product", "model", "channel",
                                             "steps", "plugin", "params", "success",
                                             "message", "version", "description", "user",
                                             "action", "revoked", "expire_time"]) |
                            st.text(max_size=8), children, max_size=5)),
        max_leaves=12)


@st.composite
def bodies(draw, kind):
    if kind == "json":
        if draw(st.integers(0, 4)):
            return json.dumps(draw(json_values())).encode()
        return draw(st.binary(max_size=64))
    if kind == "multipart":
        parts = draw(st.lists(st.tuples(
            st.sampled_from(["file", "model", "version", "channels", "draft", "x", ""]),
            st.binary(max_size=40)), max_size=4))
        out = b""
        for name, value in parts:
            out += (b"--fz\r\nContent-Disposition: form-data; name=\"" + name.encode() +
                    b"\"" + (b"; filename=\"f.bin\"" if name == "file" else b"") +
                    b"\r\n\r\n" + value + b"\r\n")
        if draw(st.booleans()):
            out += b"--fz--\r\n"
        return out
    return draw(st.binary(max_size=200))


def chunked(body, cuts, extension):
    out, pos = b"", 0
    for cut in sorted(set(cuts)) + [len(body)]:
        piece = body[pos:cut]
        pos = max(pos, cut)
        if piece:
            out += b"%x%s\r\n%s\r\n" % (len(piece), extension, piece)
    return out + b"0\r\n\r\n"


@st.composite
def requests_(draw, objects):
    """A well-framed request: (bytes, is HEAD)."""
    method = draw(st.one_of(st.sampled_from(METHODS),
                            st.text(alphabet=TOKEN, min_size=1, max_size=10)))
    target = draw(targets(objects))
    kind = draw(st.sampled_from(["none", "none", "json", "json", "multipart", "raw"]))
    body = b"" if kind == "none" else draw(bodies(kind))
    hs = draw(headers(objects, kind))
    framing = draw(st.sampled_from(["length", "length", "chunked"])) if body else "none"
    if framing == "length" or (framing == "none" and draw(st.booleans())):
        hs.append(("Content-Length", str(len(body))))
        wire = body
    elif framing == "chunked":
        hs.append(("Transfer-Encoding", draw(st.sampled_from(["chunked", "Chunked"]))))
        wire = chunked(body, draw(st.lists(st.integers(0, max(0, len(body))), max_size=4)),
                       draw(st.sampled_from([b"", b";ext=1"])))
    else:
        wire = b""
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    head = method.encode() + b" " + target + b" " + version + b"\r\n"
    for k, v in draw(st.permutations(hs)):
        head += k.encode() + b": " + v.encode("latin-1", "replace") + b"\r\n"
    return head + b"\r\n" + wire, method == "HEAD"


MUTATIONS = ["dup_header", "second_length", "bad_length", "te", "bad_chunk", "truncate",
             "insert", "replace", "drop_cr", "no_colon", "raw_ctl", "version", "long_value",
             "many_headers", "append_garbage"]


@st.composite
def mangled(draw, objects):
    """A well-framed request with one or two of the mutations attackers try."""
    data, is_head = draw(requests_(objects))
    head_end = data.find(b"\r\n\r\n") + 2
    for m in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=2)):
        lines = data[:head_end].split(b"\r\n")
        rest = data[head_end:]
        if m == "dup_header" and len(lines) > 2:
            i = draw(st.integers(1, len(lines) - 2))
            lines.insert(i, lines[i])
        elif m == "second_length":
            lines.insert(1, b"Content-Length: %d" % draw(st.integers(0, 99)))
        elif m == "bad_length":
            lines.insert(1, b"Content-Length: " + draw(st.sampled_from(
                [b"abc", b"-1", b"1e3", b" 5", b"5 ", b"0x10", b"99999999999999999999999",
                 b"5, 5", b""])))
        elif m == "te":
            lines.insert(1, b"Transfer-Encoding: " + draw(st.sampled_from(
                [b"gzip, chunked", b"identity", b"chunked, chunked", b"chunked ", b"xchunked",
                 b"gzip", b"\x00chunked"])))
        elif m == "bad_chunk":
            lines = [x for x in lines if not x.lower().startswith(b"content-length")]
            lines.insert(1, b"Transfer-Encoding: chunked")
            rest = draw(st.sampled_from([b"zz\r\n{}\r\n0\r\n\r\n", b"-1\r\n", b"2\r\n{}XX",
                                         b"fffffffffffffffffffff\r\n", b"2;\r\n{}\r\n",
                                         b"\r\n\r\n", b"2\r\n{}\r\n0\r\nTrailer\r\n\r\n",
                                         b"1\n{\n0\n\n", b"2\r\n{}\r\n"]))
        elif m == "no_colon":
            lines.insert(1, draw(st.sampled_from([b"NoColon", b" folded", b"\tfold", b":x",
                                                  b"Content-Length : 4",
                                                  b"Transfer-Encoding\t: chunked",
                                                  b"Content-Length: 1\r\n 0"])))
        elif m == "raw_ctl":
            first = lines[0].split(b" ")
            if len(first) >= 2:
                b = draw(st.sampled_from([b"\x00", b"\x01", b"\x7f", b"\x1b", b"%00",
                                          b"%0a", b"%zz", b"\xff", b"\t"]))
                first[1] = first[1] + b
                lines[0] = b" ".join(first)
        elif m == "version":
            first = lines[0].rsplit(b" ", 1)
            lines[0] = first[0] + b" " + draw(st.sampled_from(
                [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2", b"HTTP/1", b"HTTPS/1.1", b"", b"http/1.1",
                 b"HTTP/1.1 extra"]))
        elif m == "long_value":
            lines.insert(1, b"X-Long: " + b"v" * draw(st.sampled_from([8000, 33000, 70000])))
        elif m == "many_headers":
            lines[1:1] = [b"X-H%d: v" % i for i in range(draw(st.integers(50, 3000)))]
        head = b"\r\n".join(lines)
        data = head + rest
        head_end = len(head)
        if m == "truncate":
            data = data[:draw(st.integers(0, len(data)))]
        elif m == "insert":
            i = draw(st.integers(0, len(data)))
            data = data[:i] + draw(st.binary(min_size=1, max_size=8)) + data[i:]
        elif m == "replace" and data:
            i = draw(st.integers(0, len(data) - 1))
            data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
        elif m == "drop_cr":
            data = data.replace(b"\r\n", b"\n", draw(st.integers(1, 3)))
        elif m == "append_garbage":
            data += draw(st.binary(min_size=1, max_size=64))
        head_end = max(0, data.find(b"\r\n\r\n")) + 2
    return data, is_head


# ---- the property ----

def send(port, data):
    """Sends data, half-closes, and reads until the server closes; returns (bytes,
    seconds from the last byte sent to the close)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN + 3)
    try:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server answered early and closed: read its answer
        t0 = time.monotonic()
        got = b""
        while time.monotonic() - t0 < ANSWER_WITHIN + 1:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                d = b""  # closed with unread input left: a reset is a close
            if not d:
                return got, time.monotonic() - t0
            got += d
        return got, float("inf")
    finally:
        s.close()


def answers_of(got, is_head):
    """The final answers in got (interim 1xx dropped); raises Malformed on anything else."""
    out = []
    while got:
        r, got = parse(got, head_request=is_head and not out)
        if r is None:
            raise Malformed(f"an incomplete answer or stray bytes: {got[:200]!r}")
        if r.status >= 200:
            out.append(r)
    return out


def check_answer(r, data):
    assert r.status in STATUSES, (r, data[:300])
    ctype = r.header("content-type") or ""
    if r.status >= 400 and r.body:
        assert ctype.startswith("application/json"), (r, data[:300])
        body = json.loads(r.body)
        assert isinstance(body.get("code"), str) and isinstance(body.get("detail"), str), \
            (r, data[:300])
    elif ctype.startswith("application/json") and r.body:
        json.loads(r.body)
    assert b"<html" not in r.body[:200].lower() or r.status == 200, (r, data[:300])


def alive(server):
    assert server.proc.poll() is None, "devicehubd died:\n" + server.read_log()[-4000:]
    got, t = send(server.port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 "), ("no /healthz after the example", got)


def exchange(server, data, well_framed):
    # a mutation may have changed the method: what counts is what was sent
    is_head = data.split(b" ", 1)[0] == b"HEAD"
    got, t = send(server.port, data)
    assert t <= ANSWER_WITHIN, f"no close within {ANSWER_WITHIN} s: {data[:300]!r} -> " \
                               f"{got[:300]!r}"
    answers = answers_of(got, is_head)
    if well_framed:
        assert len(answers) == 1, (data[:300], answers)
    for r in answers:
        check_answer(r, data)
    alive(server)


def test_well_framed_requests_get_one_json_answer(fuzz_server, objects):
    @FUZZ
    @given(requests_(objects))
    def run(example):
        exchange(fuzz_server, example[0], well_framed=True)

    run()


def test_mangled_requests_get_a_json_error_or_a_close(fuzz_server, objects):
    @FUZZ
    @given(mangled(objects))
    def run(example):
        exchange(fuzz_server, example[0], well_framed=False)

    run()
