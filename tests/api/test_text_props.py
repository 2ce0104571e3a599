"""Property-based tests of untrusted text at the API level (python3-hypothesis): arbitrary
bytes in query names and values, path segments, JSON string keys and values, raw JSON bodies,
and multipart part names, file names and values. The property: every answer is JSON, 2xx or
4xx (never 5xx), and the server is alive after each example.

The bounded run (a fixed seed, a few hundred examples in all) is part of the suite; for a
long run with fresh random examples set DH_TEXT_EXAMPLES, e.g.
    DH_TEXT_EXAMPLES=20000 python3 -m pytest -q tests/api/test_text_props.py
"""
import http.client
import json
import os
import tempfile
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from conftest import ADMIN_TOKEN, Server, unique

# hypothesis keeps a cache (and, in long runs, an example database) in its home directory;
# not in the source tree
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), f"dh-hypothesis-{os.getuid()}"))
LONG = os.environ.get("DH_TEXT_EXAMPLES")
SETTINGS = settings(max_examples=int(LONG) if LONG else 60, deadline=None, database=None,
                    derandomize=not LONG,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

LISTS = ["/api/v1/products/", "/api/v1/models/", "/api/v1/channels/", "/api/v1/firmware/",
         "/api/v1/devices/", "/api/v1/tokens/", "/api/v1/users/", "/api/v1/access-rights/",
         "/api/v1/delivery-methods/", "/api/v1/delivery-procedures/", "/api/v1/firmware-update/"]
FILTERS = ["tid", "model", "product", "channel", "version", "device_id", "device", "state",
           "user", "kind", "draft", "finished", "limit", "offset"]
OBJECTS = ["/api/v1/products/", "/api/v1/models/", "/api/v1/channels/", "/api/v1/users/",
           "/api/v1/tokens/", "/api/v1/delivery-procedures/", "/api/v1/firmware-update/"]

# Bytes that stress text handling most: invalid UTF-8 leads and continuations, controls,
# NUL, quotes, backslashes and separators, among any other byte.
NASTY = st.sampled_from([b"\xff", b"\xc3", b"\xa9", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                         b"\xc0\xaf", b"\x00", b"\n", b"\r\n", b"\x1b", b'"', b"\\", b"%",
                         b"\xe2\x80\xa8", b"\xc2\x85", "\u00e9".encode(), b"&", b"=", b"+",
                         b"#", b"?", b"/", b" "])
BYTES = st.lists(st.one_of(NASTY, st.binary(min_size=1, max_size=4)), max_size=40).map(b"".join)
# at most 1480 bytes, 4440 once percent-encoded: a request head beyond what MHD holds
# (DH_CONN_MEMORY) is answered by MHD itself, which the raw HTTP fuzzer covers
LONG_BYTES = st.one_of(BYTES, st.tuples(st.integers(100, 370), NASTY).map(lambda t: t[1] * t[0]))


@pytest.fixture(scope="module")
def server(engine):
    s = Server().start()
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def conn(server):
    c = Conn(server)
    yield c
    c.close()


class Conn:
    """One keep-alive connection with the admin token; reconnects when the server closed it."""

    def __init__(self, server):
        self.server = server
        self.c = None

    def close(self):
        if self.c:
            self.c.close()
            self.c = None

    def request(self, method, target, body=None, headers=None):
        h = {"Authorization": "Token " + ADMIN_TOKEN}
        h.update(headers or {})
        for attempt in range(2):
            if self.c is None:
                self.c = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
            try:
                self.c.request(method, target, body=body, headers=h)
                r = self.c.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.close()
                return r.status, r.getheader("Content-Type", ""), data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # a keep-alive connection the server closed between two examples
                self.close()
                if attempt:
                    raise
            except Exception:
                self.close()
                raise
        raise AssertionError("unreachable")


def check(conn, status, ctype, data, what):
    """The property: JSON, 2xx or 4xx, and the server still answers."""
    assert 200 <= status < 500, (what, status, data[:300])
    assert ctype.startswith("application/json"), (what, status, ctype, data[:300])
    doc = json.loads(data.decode("utf-8"))
    if status >= 400:
        assert isinstance(doc.get("code"), str) and isinstance(doc.get("detail"), str), doc
    st_, _, _ = conn.request("GET", "/healthz")
    assert st_ == 200, what
    return doc


def pct(b):
    return quote_from_bytes(b, safe="")


@SETTINGS
@given(path=st.sampled_from(LISTS), name=st.one_of(st.sampled_from(FILTERS), BYTES),
       value=LONG_BYTES, extra=st.booleans())
def test_query_names_and_values(conn, path, name, value, extra):
    name = name.encode() if isinstance(name, str) else name
    target = path + "?" + pct(name) + "=" + pct(value)
    if extra:
        target += "&limit=1&" + pct(value) + "=x"
    check(conn, *conn.request("GET", target), target)


@SETTINGS
@given(base=st.sampled_from(OBJECTS + ["/api/v1/", "/api/v1/firmware/"]), seg=LONG_BYTES,
       tail=st.sampled_from(["", "/", "/image", "/start", "/confirm"]),
       method=st.sampled_from(["GET", "DELETE", "PATCH", "POST", "HEAD"]))
def test_path_segments(conn, base, seg, tail, method):
    target = base + pct(seg) + tail
    status, ctype, data = conn.request(method, target, body=b"{}" if method in ("PATCH", "POST")
                                       else None, headers={"Content-Type": "application/json"})
    if method == "HEAD":
        assert 200 <= status < 500, (target, status)
        return
    check(conn, status, ctype, data, (method, target))


# lone surrogates too: json.dumps writes them as \ud8xx escapes, which JSON parsers refuse
JSON_TEXT = (st.text(max_size=60) | st.text(min_size=200, max_size=600)
             | st.text(alphabet=st.characters(blacklist_categories=()), max_size=30))


@SETTINGS
@given(path=st.sampled_from(OBJECTS), key=JSON_TEXT, value=JSON_TEXT,
       known=st.sampled_from(["tid", "name", "description", "device_id", "message", "model",
                              "product", "user", "expire_time", "steps", None]))
def test_json_keys_and_values(conn, path, key, value, known):
    body = {"tid": unique("t"), "name": "x"}
    body[key] = value
    if known:
        body[known] = value if known != "steps" else [{"plugin": value, "params": {key: 1}}]
    # json.dumps escapes lone surrogates as \ud8xx, which no JSON parser should take
    raw = json.dumps(body).encode()
    for method, target in (("POST", path), ("PATCH", path + pct(str(body["tid"]).encode("utf-8", "surrogatepass")))):
        check(conn, *conn.request(method, target, raw, {"Content-Type": "application/json"}),
              (method, target, raw[:200]))


@SETTINGS
@given(body=st.one_of(BYTES.map(lambda b: b'{"tid": "' + b + b'", "name": "x"}'),
                      BYTES.map(lambda b: b'{"' + b + b'": 1}'), BYTES),
       path=st.sampled_from(OBJECTS))
def test_raw_json_bodies(conn, body, path):
    check(conn, *conn.request("POST", path, body, {"Content-Type": "application/json"}),
          (path, body[:200]))


def form(parts, boundary=b"pRoPbNd"):
    out = b""
    for name, filename, value in parts:
        out += b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name + b'"'
        if filename is not None:
            out += b'; filename="' + filename + b'"'
        out += b"\r\n\r\n" + value + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


SAFE_QUOTED = BYTES.map(lambda b: b.replace(b'"', b"").replace(b"\\", b"").replace(b"\r", b"")
                        .replace(b"\n", b""))


@SETTINGS
@given(name=st.one_of(st.sampled_from([b"model", b"version", b"channels", b"description",
                                       b"tid", b"draft", b"file"]), SAFE_QUOTED),
       filename=st.one_of(st.none(), SAFE_QUOTED), value=LONG_BYTES,
       with_file=st.booleans())
def test_multipart_names_and_values(conn, name, filename, value, with_file):
    parts = [(b"model", None, b"no-such-model"), (b"version", None, b"1.0.0"),
             (name, filename, value)]
    if with_file:
        parts.append((b"file", b"a.bin", b"\x00image"))
    body = form(parts)
    check(conn, *conn.request("POST", "/api/v1/firmware/", body,
                              {"Content-Type": "multipart/form-data; boundary=pRoPbNd"}),
          body[:300])
