"""The direct download path (server/http/direct.c) against libmicrohttpd, as a property.

Generated GET and HEAD requests of the download routes -- a session's download link, its
short link, a firmware image, unknown ids and tokens; with or without a token, Range,
If-Range, Connection and other fields, a few of them pipelined on one connection -- must
get the same bytes back whether the direct path answers them or libmicrohttpd does, Date
and X-Request-Id aside. libmicrohttpd's answers come from the same requests with a
"Content-Length: 0" field, which the direct path never takes. Each exchange ends with a
"GET /healthz" with "Connection: close", which libmicrohttpd answers in both cases (after a
hand-over in the middle of the connection on the direct side): whether it is answered also
tells whether the connection was kept open.

Runs DH_FUZZ_HTTP_EXAMPLES examples (500 by default) against the fuzzer's server
(conftest.py).
"""
import re
import socket
import string
import time

from hypothesis import given
from hypothesis import strategies as st

from conftest import api
from rawhttp import parse
from test_fuzz_http import FUZZ, TOKEN, header_values

FU = "/api/v1/firmware-update/"
# 400: a header value with a control byte, or Host twice (docs/http.md), on both paths
STATUSES = {200, 206, 400, 401, 403, 404, 405, 409, 410, 416}
SENTINEL = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def wait_created(admin, sid, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = admin.get(FU + sid + "/").json()
        if s["state"] == "created":
            return s
        time.sleep(0.05)
    raise AssertionError(f"session {sid} did not reach created")


def links(fuzz_server, objects):
    """The download paths of a session in created, its image's ETag, and the image's id."""
    admin = api.Client(fuzz_server, api.ADMIN_TOKEN)
    s = admin.create(FU + "request", {
        "model": "fz-model", "device_id": "fz-direct", "delivery_method": "fz-dm",
        "delivery_procedure_tid": "fz-dp", "current_channel": "fz-chan",
        "current_firmware_version": "0.1.0"})
    assert admin.post(FU + s["id"] + "/start").status_code == 200
    s = wait_created(admin, s["id"])
    path = "/" + s["payload"]["download_link"].split("://", 1)[1].split("/", 1)[1]
    short = "/" + s["payload"]["short_link"].split("://", 1)[1].split("/", 1)[1]
    fw = s["target_firmware"]
    return {"paths": [path, path + "/", short, short + "/",
                      "/api/v1/firmware/" + fw + "/image", "/api/v1/firmware/" + fw + "/image/",
                      "/api/v1/firmware/fz-nope/image", FU + "fz-nope/image",
                      "/api/v1/firmware/" + fw, FU + s["id"]],
            "etag": '"' + s["payload"]["sha256"] + '"'}


@st.composite
def one_request(draw, lk):
    method = draw(st.sampled_from(["GET", "GET", "HEAD"]))
    path = draw(st.one_of(
        st.sampled_from(lk["paths"]),
        st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=0,
                max_size=30).map(lambda t: "/d/" + t)))
    hs = []
    if draw(st.integers(0, 9)):
        hs.append(("Host", draw(st.sampled_from(["fuzz.test", "127.0.0.1:1", "h"]))))
    auth = draw(st.integers(0, 4))
    if auth <= 2:
        hs.append(("Authorization", draw(st.sampled_from(["Token ", "Bearer ", "token "])) +
                   api.ADMIN_TOKEN))
    elif auth == 3:
        hs.append(("Authorization", "Token " + draw(st.text(alphabet=TOKEN, max_size=40))))
    extra = draw(st.lists(st.one_of(
        st.tuples(st.just("Range"), st.one_of(st.sampled_from(
            ["bytes=0-0", "bytes=0-4095", "bytes=-1", "bytes=-5000", "bytes=4000-",
             "bytes=4095-4095", "bytes=4096-", "bytes=0-1,2-3", "bytes=9999999-", "bytes=-0",
             "items=1-2", "bytes=5-1"]), header_values())),
        st.tuples(st.just("If-Range"), st.one_of(st.sampled_from(
            [lk["etag"], '"nope"', "W/" + lk["etag"], "Sat, 18 Apr 2026 13:12:50 GMT"]),
            header_values())),
        st.tuples(st.just("Connection"), st.sampled_from(["close", "keep-alive", "Close",
                                                          "keep-alive, close"])),
        st.tuples(st.just("Accept"), st.just("*/*")),
        st.tuples(st.text(alphabet=TOKEN, min_size=1, max_size=20), header_values())),
        max_size=4))
    lines = [f"{method} {path} HTTP/1.1"]
    for k, v in draw(st.permutations(hs + extra)):
        lines.append(k + ": " + v)
    head = "\r\n".join(lines).encode("latin-1", "replace") + b"\r\n"
    return head, method == "HEAD"


# An IMF-fixdate (RFC 9110 5.6.7): only a well-formed Date is taken as equal to another.
DATE = rb"\r\nDate: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|" \
       rb"Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT\r\n"


def normalised(raw):
    raw = re.sub(DATE, b"\r\nDate: -\r\n", raw)
    return re.sub(rb"\r\nX-Request-Id: [0-9a-f]{16}\r\n", b"\r\nX-Request-Id: -\r\n", raw)


def exchange(port, heads, via_mhd):
    """Sends the requests (and the sentinel) at once; returns the normalised answers, the
    bytes left after them, and whether the sentinel was answered."""
    wire = b"".join(h + (b"Content-Length: 0\r\n" if via_mhd else b"") + b"\r\n"
                    for h, _ in heads) + SENTINEL
    is_head = [x for _, x in heads] + [False]
    # the sentinel's Connection: close ends the loop; the bounds only wait for a server that
    # a loaded machine slows down
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    data, out = b"", []
    try:
        s.sendall(wire)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                d = b""
            if not d:
                break
            data += d
            while len(out) < len(is_head):
                r, rest = parse(data, head_request=is_head[len(out)])
                if r is None:
                    break
                assert r.status in STATUSES | {200}, r
                out.append(normalised(data[:len(data) - len(rest)]))
                data = rest
    finally:
        s.close()
    sentinel = len(out) == len(is_head) and out[-1].startswith(b"HTTP/1.1 200 ") and \
        b'{"status":"ok"}' in out[-1]
    return out, data, sentinel


def direct_requests(server):
    text = api.Client(server).get("/metrics").text
    return int(re.search(r"^devicehub_http_direct_requests_total (\d+)$", text, re.M)
               .group(1))


def test_direct_answers_as_libmicrohttpd_does(fuzz_server, objects):
    lk = links(fuzz_server, objects)
    before = direct_requests(fuzz_server)

    @FUZZ
    @given(st.lists(one_request(lk), min_size=1, max_size=3))
    def run(heads):
        direct = exchange(fuzz_server.port, heads, via_mhd=False)
        mhd = exchange(fuzz_server.port, heads, via_mhd=True)
        assert direct == mhd, (heads, direct, mhd)

    run()
    assert fuzz_server.proc.poll() is None, fuzz_server.read_log()[-4000:]
    # the comparison means something only if the direct path did answer
    assert direct_requests(fuzz_server) - before >= min(100, FUZZ.max_examples // 4)
