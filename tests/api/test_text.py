"""Untrusted text: bytes that are not UTF-8, NUL, very long text and text cut in the middle
of a character, in every place a client's text reaches JSON, SQL or the log (query
parameters, path captures, JSON keys and values, multipart names and fields, the method),
and the limits where text is kept (device_id, user names, confirm messages). Every answer
is JSON, 2xx or 4xx, and the server lives on."""
import json
import os
import re
import socket
import sqlite3
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import ADMIN_TOKEN, Client, Server, assert_error, make_user, unique
from sessutil import FAST_ARGS, FU, new_session, procedure, upload_fw, wait_state

E_ACUTE = "\u00e9"  # two bytes in UTF-8


@pytest.fixture(scope="module")
def server(engine):
    s = Server(extra_args=FAST_ARGS + ["--log-level", "debug"]).start()
    yield s
    s.cleanup()


def raw(server, data, timeout=10.0):
    """Sends raw request bytes on a new connection; returns (status, headers, body bytes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            b = sock.recv(65536)
            if not b:
                break
            chunks.append(b)
    resp = b"".join(chunks)
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines and lines[0].startswith(b"HTTP/1."), resp[:200]
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return status, headers, body


def raw_get(server, target, method=b"GET", extra=b""):
    return raw(server, method + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Authorization: Token " + ADMIN_TOKEN.encode() + b"\r\n" + extra
               + b"Connection: close\r\n\r\n")


def json_error(status, headers, body, want_status=None, code=None):
    """The error contract on a raw answer: 4xx, JSON with code and detail."""
    assert 400 <= status < 500, (status, body[:300])
    if want_status:
        assert status == want_status, (status, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), headers
    doc = json.loads(body.decode("utf-8"))
    assert doc["code"] and doc["detail"], doc
    if code:
        assert doc["code"] == code, doc
    return doc


def alive(admin):
    assert admin.get("/healthz").status_code == 200


# ---- path captures and echoed paths (#15) ----

def test_invalid_utf8_in_a_capture_is_404(server, admin):
    for path in (b"/api/v1/products/%ff", b"/api/v1/products/%ff/", b"/api/v1/tokens/a%c3",
                 b"/api/v1/firmware/%ff/image", b"/api/v1/firmware-update/%ff/start",
                 b"/api/v1/users/%ed%a0%80"):
        for method in (b"GET", b"DELETE", b"PATCH", b"POST"):
            st, h, body = raw_get(server, path, method)
            json_error(st, h, body)
        st, h, body = raw_get(server, path, b"POST" if path.endswith(b"/start") else b"GET")
        json_error(st, h, body, 404, "not_found")
    alive(admin)


def test_long_paths_are_cut_on_a_character_boundary(server, admin):
    for n in range(195, 206):
        path = ("/api/v1/" + "a" * n + E_ACUTE * 3).encode()
        st, h, body = raw_get(server, path.replace(b"\xc3\xa9", b"%c3%a9"))
        doc = json_error(st, h, body, 404, "not_found")
        assert "\\x" not in doc["detail"], doc
    st, h, body = raw_get(server, b"/api/v1/" + b"%ff" * 300)
    doc = json_error(st, h, body, 404, "not_found")
    assert doc["detail"].startswith("No such path: /api/v1/\\xff"), doc
    alive(admin)


def test_method_that_is_not_text_gets_json(server, admin):
    for method in (b"\xffX", b"G\xc3", b"PUT"):
        st, h, body = raw_get(server, b"/api/v1/products/", method)
        json_error(st, h, body, 405, "method_not_allowed")
    alive(admin)


# ---- JSON bodies (#15, #16) ----

def test_long_unknown_key_is_cut_on_a_character_boundary(admin):
    for n in (100, 255, 256, 300, 1000):
        key = E_ACUTE * n
        err = assert_error(admin.post("/api/v1/products/",
                                      json={"tid": unique(), "name": "x", key: 1}), 400, "invalid")
        (name,) = err["fields"]
        assert key.startswith(name) and len(name.encode()) <= 128, name
    for key in ("\u20ac" * 200, "\U0001f600" * 200, "a" + "\U0001f600" * 200):
        err = assert_error(admin.post("/api/v1/products/", json={key: 1}), 400, "invalid")
        assert any(key.startswith(k) for k in err["fields"]), err


def test_plugin_names_are_cut_on_a_character_boundary(admin, catalog):
    for plugin in (E_ACUTE * 100, "a" + E_ACUTE * 100, "\U0001f600" * 30):
        err = assert_error(admin.post("/api/v1/delivery-procedures/", json={
            "tid": unique("dp"), "name": "P", "delivery_method": catalog["method"]["tid"],
            "steps": [{"plugin": plugin}]}), 400, "invalid")
        assert "unknown plugin" in err["fields"]["steps"] and "\\x" not in err["fields"]["steps"]
    for key in (E_ACUTE * 100, "a" + E_ACUTE * 100):
        err = assert_error(admin.post("/api/v1/delivery-procedures/", json={
            "tid": unique("dp"), "name": "P", "delivery_method": catalog["method"]["tid"],
            "steps": [{"plugin": "exec", "params": {"program": "/bin/true", key: 1}}]}),
            400, "invalid")
        assert "\\x" not in err["fields"]["steps"], err
        err = assert_error(admin.post("/api/v1/delivery-procedures/", json={
            "tid": unique("dp"), "name": "P", "delivery_method": catalog["method"]["tid"],
            "steps": [{"plugin": "mesh_smp", "params": {
                "udp": {"host": "127.0.0.1", "port": 1, key: 1},
                "receivers": [{"addr": 2, key: 1}], key: 2}}]}), 400, "invalid")
        assert "\\x" not in err["fields"]["steps"], err


def test_confirm_message_is_kept_whole(admin, catalog):
    upload_fw(admin, catalog, "2.0.0")
    dp = procedure(admin, catalog, confirm=True)
    for msg in (E_ACUTE * 400, "\U0001f600" * 250, "x" * 1000, "a" + E_ACUTE * 499):
        s = new_session(admin, catalog, dp, "1.0.0")
        admin.post(FU + s["id"] + "/start")
        wait_state(admin, s["id"], "created")
        r = admin.post(FU + s["id"] + "/confirm", json={"success": False, "message": msg})
        assert r.status_code == 200, r.text[:300]
        s = r.json()
        assert s["state"] == "fail" and s["error"] == {"code": "device_failure", "detail": msg}
        assert admin.get(FU + s["id"]).json()["error"]["detail"] == msg
    s = new_session(admin, catalog, dp, "1.0.0")
    err = assert_error(admin.post(FU + s["id"] + "/confirm",
                                  json={"success": False, "message": "x" * 1001}), 400, "invalid")
    assert "message" in err["fields"]


# ---- query parameters (#1, #2) ----

# Every object list and the filters it documents (web/openapi.json), plus one unknown name.
LISTS = {
    "/api/v1/products/": ["tid"],
    "/api/v1/models/": ["tid", "product"],
    "/api/v1/channels/": ["tid"],
    "/api/v1/delivery-methods/": ["tid", "kind"],
    "/api/v1/delivery-procedures/": ["tid"],
    "/api/v1/firmware/": ["model", "channel", "version", "draft"],
    "/api/v1/devices/": ["device_id", "model"],
    "/api/v1/users/": ["tid"],
    "/api/v1/tokens/": ["tid", "user"],
    "/api/v1/access-rights/": ["user"],
    "/api/v1/firmware-update/": ["state", "device", "model", "finished"],
}


def test_invalid_utf8_in_any_filter_is_400_naming_it(server, admin):
    for path, filters in LISTS.items():
        for name in filters + ["no_such_filter"]:
            for bad in (b"%ff", b"a%c3", b"%ed%a0%80", b"%c0%af"):
                st, h, body = raw_get(server, path.encode() + b"?" + name.encode() + b"=" + bad)
                doc = json_error(st, h, body, 400, "invalid")
                assert name in doc["fields"], (path, name, bad, doc)
            # a NUL (any control byte) in the target is refused before routing
            json_error(*raw_get(server, path.encode() + b"?" + name.encode() + b"=x%00y"), 400)
    alive(admin)


def test_invalid_utf8_in_a_parameter_name_is_400(server, admin):
    st, h, body = raw_get(server, b"/api/v1/tokens/?%ff%fe=1")
    doc = json_error(st, h, body, 400, "invalid")
    assert list(doc["fields"]) == ["\\xff\\xfe"], doc
    st, h, body = raw_get(server, b"/api/v1/products/?limit=1&%80")
    json_error(st, h, body, 400, "invalid")
    alive(admin)


def test_valid_utf8_filters_work(admin):
    tid = unique("p")
    admin.create("/api/v1/products/", {"tid": tid, "name": "Caf" + E_ACUTE})
    r = admin.get("/api/v1/devices/", params={"device_id": "\u00fc\u20ac\U0001f600"})
    assert r.status_code == 200 and r.json()["count"] == 0
    r = admin.get("/api/v1/products/", params={"tid": tid, "x": E_ACUTE})
    assert r.status_code == 200 and r.json()["count"] == 1


def test_long_query_builds_next_without_a_cap(admin):
    for _ in range(2):
        admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
    for pad in ("a" * 2100, E_ACUTE * 3000, "a&b=c d" * 1000):
        r = admin.get("/api/v1/products/", params={"limit": 1, "pad": pad})
        assert r.status_code == 200, r.text[:300]
        nxt = r.json()["next"]
        assert nxt and "offset=1" in nxt and "limit=1" in nxt
        # the next link carries the parameter whole, and works
        r2 = admin.get(nxt)
        assert r2.status_code == 200 and r2.json()["results"], r2.text[:300]
        assert r2.request.url.count("pad=") == 1
        assert parse_qs(urlsplit(nxt).query)["pad"] == [pad]


def test_unknown_parameters_are_ignored(admin):
    all_ = admin.get("/api/v1/products/", params={"limit": 1000}).json()["count"]
    r = admin.get("/api/v1/products/", params={"limit": 1000, "colour": "blue", "flag": ""})
    assert r.status_code == 200 and r.json()["count"] == all_


# ---- the log (#13) ----

def log_lines_after(server, mark):
    log = server.read_log()
    return log[log.rfind("\n", 0, log.index(mark)) + 1:].splitlines() if mark in log else []


def test_client_text_cannot_forge_log_lines(server, admin):
    forged = "2026-01-01T00:00:00.000000+00:00 error auth.bootstrap user=evil"
    mark = unique("mark")
    admin.get("/api/v1/" + mark)
    targets = [
        b"/api/v1/x%0A" + forged.replace(" ", "%20").encode(),
        b"/api/v1/x%0D%0A" + forged.replace(" ", "%20").encode(),
        b"/api/v1/x%20" + b"user=evil%22%20x=%5C",
        b"/api/v1/x%c2%85" + forged.replace(" ", "%20").encode(),
        b"/api/v1/x%e2%80%a8" + forged.replace(" ", "%20").encode(),
        b"/api/v1/x%ff%1b[31m",
    ]
    for t in targets:
        json_error(*raw_get(server, t))  # 404, or 400 for a control byte in the target
    end = unique("end")
    admin.get("/api/v1/" + end)
    lines = log_lines_after(server, mark)
    assert any(end in ln for ln in lines)
    # each line is "TIME level event ...": none is the forged one
    assert not any(ln.startswith("2026-01-01") for ln in lines), lines
    assert not any(ln.split(" ")[2:3] == ["auth.bootstrap"] for ln in lines), lines
    reqs = [ln for ln in lines if "http.request" in ln and "path=" in ln]
    assert len(reqs) == len(targets) + 2, reqs
    for ln in reqs:
        assert "\x1b" not in ln and "\u2028" not in ln and "\x85" not in ln, ln
        # one key=value per key: a quoted value hides the client's spaces and quotes
        keys = re.findall(r'(?:^| )([a-z_]+)=(?:"(?:[^"\\]|\\.)*"|[^ "]*)', ln)
        assert keys.count("user") == 0 and keys.count("path") == 1, ln
    alive(admin)


# ---- limits where text is kept (#20) ----

def test_device_id_at_its_maximum_is_kept_whole(admin, catalog, tmp_path):
    upload_fw(admin, catalog, "3.0.0")
    script = tmp_path / "env.sh"
    script.write_text("#!/bin/sh\nprintf '{\"dev\": \"%s\"}\\n' \"$DH_DEVICE_ID\"\n")
    script.chmod(0o755)
    dp = procedure(admin, catalog, confirm=False,
                   steps=[{"plugin": "exec", "params": {"program": str(script)}}])
    for dev in ("d" * 128, E_ACUTE * 64, "a" + "\U0001f600" * 31 + "bcd"):
        assert len(dev.encode()) == 128
        s = new_session(admin, catalog, dp, "1.0.0", device_id=dev)
        assert s["device_id"] == dev
        found = admin.get(FU, params={"device": dev}).json()
        assert [x["id"] for x in found["results"]] == [s["id"]]
        admin.post(FU + s["id"] + "/start")
        s = wait_state(admin, s["id"], "success")
        assert s["payload"]["dev"] == dev
        twin = admin.get("/api/v1/devices/", params={"device_id": dev}).json()["results"]
        assert [t["device_id"] for t in twin] == [dev]
    err = assert_error(admin.post(FU + "request", json={
        "model": catalog["model"]["tid"], "delivery_procedure_tid": dp["tid"],
        "current_channel": catalog["channel"]["tid"], "current_firmware_version": "1.0.0",
        "device_id": "d" * 129}), 400, "invalid")
    assert "device_id" in err["fields"]


def test_user_name_at_its_maximum_is_kept_whole(server, admin, catalog):
    upload_fw(admin, catalog, "3.1.0")
    dp = procedure(admin, catalog)
    for name in ("n" * 200, E_ACUTE * 100, "a" + E_ACUTE * 99 + "b"):
        u, secret = make_user(admin, ["update"], model=catalog["model"]["id"])
        admin.patch("/api/v1/users/" + u["id"], json={"name": name})
        dev = Client(server, secret)
        s = new_session(dev, catalog, dp, "1.0.0")
        assert s["creator"] == name
        assert dev.get(FU + s["id"]).json()["creator"] == name
        listed = dev.get(FU, params={"limit": 1000}).json()["results"]
        assert s["id"] in [x["id"] for x in listed]
    err = assert_error(admin.post("/api/v1/users/", json={"tid": unique("u"), "name": "n" * 201}),
                       400, "invalid")
    assert "name" in err["fields"]


def test_version_and_file_name_at_their_maximum_are_kept_whole(admin, catalog):
    """A SemVer of 127 bytes (DH_SEMVER_MAX - 1) and a file name of 255 bytes
    (DH_MULTIPART_FILENAME_MAX) go through upload, target selection and the session whole;
    one byte more is 400."""
    version = "9.0.0-" + "a" * 121
    name = "f" + E_ACUTE * 127
    assert len(version) == 127 and len(name.encode()) == 255
    parts = [("model", (None, catalog["model"]["tid"])), ("version", (None, version)),
             ("channels", (None, catalog["channel"]["tid"])),
             ("file", (name, b"image", "application/octet-stream"))]
    r = admin.request("POST", "/api/v1/firmware/", files=parts)
    assert r.status_code == 201, r.text
    assert r.json()["version"] == version and r.json()["filename"] == name
    dp = procedure(admin, catalog)
    current = "1.0.0-" + "b" * 121
    s = new_session(admin, catalog, dp, current)
    assert s["current_firmware_version"] == current
    assert s["target_firmware_version"] == version
    parts[1] = ("version", (None, version + "a"))
    err = assert_error(admin.request("POST", "/api/v1/firmware/", files=parts), 400, "invalid")
    assert "version" in err["fields"]
    parts[1] = ("version", (None, "9.0.1"))
    parts[3] = ("file", (name + "x", b"image", "application/octet-stream"))
    assert_error(admin.request("POST", "/api/v1/firmware/", files=parts), 400)


# Only SQLite builds existed before the fix, and PostgreSQL stores no text that is not UTF-8.
@pytest.mark.engines("sqlite")
def test_text_an_older_build_cut_is_read_back_well_formed(server, admin, catalog):
    """Builds before the fix cut a 128-byte device_id to 127 bytes, inside a character, in
    the session row: such a row still reads back, a byte that is not UTF-8 written as \\xNN
    where it fits in the buffer, left out where it does not."""
    upload_fw(admin, catalog, "3.2.0")
    dp = procedure(admin, catalog)
    s = new_session(admin, catalog, dp, "1.0.0", device_id=E_ACUTE * 64)
    p = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
    db = sqlite3.connect(os.path.join(server.data_dir, "devicehub.db"), timeout=10)
    try:
        with db:
            db.execute("UPDATE sessions SET device_name = CAST(? AS TEXT), creator = CAST(? AS TEXT)"
                       " WHERE id = ?",
                       ((E_ACUTE * 64).encode()[:127], b"adm\xff", s["id"]))
            db.execute("UPDATE products SET description = CAST(? AS TEXT) WHERE id = ?",
                       (b"caf\xc3 \xff", p["id"]))
    finally:
        db.close()
    r = admin.get("/api/v1/products/" + p["id"])
    assert r.status_code == 200 and r.json()["description"] == "caf\\xc3 \\xff", r.text
    r = admin.get(FU + s["id"])
    assert r.status_code == 200, r.text
    assert r.json()["device_id"] == E_ACUTE * 63
    assert r.json()["creator"] == "adm\\xff"
    listed = admin.get(FU, params={"model": catalog["model"]["id"], "limit": 1000})
    assert listed.status_code == 200 and s["id"] in [x["id"] for x in listed.json()["results"]]


# ---- multipart (#15, #17) ----

def multipart(parts, boundary=b"XyZ"):
    """parts: (name bytes, filename bytes or None, value bytes)."""
    out = b""
    for name, filename, value in parts:
        out += b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"" + name + b"\""
        if filename is not None:
            out += b"; filename=\"" + filename + b"\""
        out += b"\r\n\r\n" + value + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def post_multipart(server, body, boundary=b"XyZ"):
    return raw(server, b"POST /api/v1/firmware/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Authorization: Token " + ADMIN_TOKEN.encode() + b"\r\n"
               b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n"
               b"Connection: close\r\n\r\n" + body)


def test_multipart_names_and_fields_that_are_not_text(server, admin, catalog):
    before = admin.get("/api/v1/firmware/", params={"limit": 1000}).json()["count"]
    model, chan = catalog["model"]["tid"].encode(), catalog["channel"]["tid"].encode()

    def form(**over):
        fields = {b"model": model, b"version": b"7.7.7", b"channels": chan}
        fields.update({k.encode(): v for k, v in over.items() if k != "filename"})
        parts = [(k, None, v) for k, v in fields.items()]
        parts.append((b"file", over.get("filename", b"app.bin"), b"\x00\x01image"))
        return multipart(parts)

    cases = {
        "model": form(model=b"\xff"),
        "version": form(version=b"1.0.0-\xc3"),
        "channels": form(channels=chan + b",\xed\xa0\x80"),
        "description": form(description=b"caf\xc3 au lait"),
        "tid": form(tid=b"\xff\xfe"),
        "draft": form(draft=b"tr\xffe"),
        "file": form(filename=b"app\xff.bin"),
    }
    for field, body in cases.items():
        doc = json_error(*post_multipart(server, body), 400, "invalid")
        assert field in doc["fields"], (field, doc)
    # a part whose name is not text is named, escaped
    doc = json_error(*post_multipart(server, multipart([(b"\xff", None, b"x")])), 400, "invalid")
    assert "\\xff" in doc["fields"], doc
    # valid UTF-8 everywhere is taken
    st, h, body = post_multipart(server, form(description=("caf" + E_ACUTE).encode(),
                                              filename=("\u00e4pp" + E_ACUTE + ".bin").encode()))
    assert st == 201, body[:300]
    fw = json.loads(body)
    assert fw["description"] == "caf" + E_ACUTE and fw["filename"] == "\u00e4pp" + E_ACUTE + ".bin"
    assert admin.get("/api/v1/firmware/", params={"limit": 1000}).json()["count"] == before + 1
