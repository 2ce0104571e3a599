"""Service endpoints and HTTP plumbing: /healthz and /metrics without a token, JSON 404 and
405 for unknown paths and methods, the request id header, body limits enforced from the
declared length, and aborted requests that leave nothing behind."""
import json
import socket
import time

from conftest import assert_error, unique


def raw(server, data, timeout=10.0):
    """Sends raw bytes and returns what the server answers until it closes or goes quiet."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(body) >= int(line.split(b":")[1]):
                            return out
        return out
    finally:
        s.close()


def test_healthz(anon):
    r = anon.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["Content-Type"].startswith("application/json")
    assert anon.get("/healthz/").status_code == 200
    h = anon.head("/healthz")
    assert h.status_code == 200 and h.content == b""


def test_metrics_counts_requests(anon):
    def value(text, cls):
        for line in text.splitlines():
            if line.startswith(f'devicehub_http_requests_total{{class="{cls}"}}'):
                return int(line.split()[-1])
        raise AssertionError(text)
    r = anon.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE devicehub_http_requests_total counter" in r.text
    before = value(r.text, "4xx")
    for _ in range(3):
        anon.get("/api/v1/products/")
    assert value(anon.get("/metrics").text, "4xx") >= before + 3


def test_metrics_count_sessions_per_state(admin, anon, catalog):
    def sessions(state):
        for line in anon.get("/metrics").text.splitlines():
            if line.startswith(f'devicehub_sessions{{state="{state}"}} '):
                return int(line.split()[-1])
        raise AssertionError(f"no devicehub_sessions line for {state}")
    states = ("ready", "up_to_date", "queued", "processing", "created", "success", "fail",
              "unconfirmed")
    before = {st: sessions(st) for st in states}
    body = {"model": catalog["model"]["tid"], "delivery_procedure_tid": catalog["procedure"]["tid"],
            "current_channel": catalog["channel"]["tid"], "current_firmware_version": "9.0.0"}
    for _ in range(2):  # no firmware in the channel: the device is up to date
        r = admin.post("/api/v1/firmware-update/request", json=body)
        assert r.status_code == 201 and r.json()["state"] == "up_to_date", r.text
    after = {st: sessions(st) for st in states}
    assert after["up_to_date"] == before["up_to_date"] + 2
    assert all(after[st] == before[st] for st in states if st != "up_to_date")


def test_unknown_paths_are_json_404(admin, anon):
    for path in ("/api/v1/nothing", "/api/v1/products/a/b/c", "/api/v2/products/",
                 "/api/v1/products/x/image"):
        assert_error(admin.get(path), 404, "not_found")
    assert_error(anon.post("/nothing", json={}), 404, "not_found")
    assert_error(admin.delete("/api/v1/"), 404)


def test_method_not_allowed(admin):
    r = admin.request("PUT", "/api/v1/models/x")
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD, PATCH, DELETE"
    r = admin.post("/healthz", json={})
    assert_error(r, 405)


def test_request_id_header(admin, anon):
    ids = set()
    for r in (anon.get("/healthz"), admin.get("/api/v1/products/"),
              admin.get("/api/v1/nothing"), anon.get("/api/v1/products/")):
        rid = r.headers.get("X-Request-Id")
        assert rid and len(rid) >= 8, r.headers
        ids.add(rid)
    assert len(ids) == 4


def test_declared_length_beyond_max_body_is_413_without_the_body(server, admin):
    before = admin.get("/api/v1/products/", params={"limit": 1000}).json()["count"]
    req = ("POST /api/v1/products/ HTTP/1.1\r\nHost: x\r\n"
           f"Authorization: Token {server.admin_token}\r\n"
           "Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n").encode()
    t0 = time.monotonic()
    out = raw(server, req, timeout=10)
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    assert time.monotonic() - t0 < 5
    body = json.loads(out.partition(b"\r\n\r\n")[2])
    assert body["code"] == "too_large"
    assert admin.get("/api/v1/products/", params={"limit": 1000}).json()["count"] == before


def test_aborted_body_leaves_no_row(server, admin):
    tid = unique("abort")
    body = json.dumps({"tid": tid, "name": "x"}).encode()
    req = ("POST /api/v1/products/ HTTP/1.1\r\nHost: x\r\n"
           f"Authorization: Token {server.admin_token}\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    s.sendall(req + body[: len(body) // 2])
    time.sleep(0.2)
    s.close()
    # a slow client that stops half-way and keeps the connection open does not block others
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    slow.sendall(req + body[:5])
    try:
        r = admin.get("/api/v1/products/", params={"tid": tid}, timeout=5)
        assert r.status_code == 200 and r.json()["count"] == 0
    finally:
        slow.close()
    time.sleep(0.2)
    assert admin.get("/api/v1/products/", params={"tid": tid}).json()["count"] == 0
    assert admin.get("/healthz").status_code == 200


def test_deep_nesting_and_bad_utf8_are_400(admin):
    deep = '{"tid": "x", "name": "y", "description": ' + "[" * 40 + "]" * 40 + "}"
    assert_error(admin.post("/api/v1/products/", data=deep,
                            headers={"Content-Type": "application/json"}), 400,
                 "malformed_json")
    assert_error(admin.post("/api/v1/products/", data=b'{"tid": "\xc3\x28", "name": "y"}',
                            headers={"Content-Type": "application/json"}), 400,
                 "malformed_json")
    assert_error(admin.post("/api/v1/products/", data=b"\xef\xbb\xbf{}",
                            headers={"Content-Type": "application/json"}), 400)
