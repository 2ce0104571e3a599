"""The dashboard's static files: served at / from web/ with the right content types and
headers, no authentication, and no way out of web/ (.., encoded .., odd characters,
directories, hidden files): each such path is a JSON 404."""
import os
import socket

import pytest

from conftest import ROOT

WEB = os.path.join(ROOT, "web")


def raw_get(server, target, method="GET"):
    """Sends the request line exactly as given (no client-side normalisation)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return status, headers, body


@pytest.mark.parametrize("path,ctype", [
    ("/", "text/html; charset=utf-8"),
    ("/index.html", "text/html; charset=utf-8"),
    ("/js/app.js", "text/javascript; charset=utf-8"),
    ("/js/pages/sessions.js", "text/javascript; charset=utf-8"),
    ("/css/style.css", "text/css; charset=utf-8"),
    ("/favicon.svg", "image/svg+xml"),
    ("/openapi.json", "application/json; charset=utf-8"),
    ("/api/v1/openapi.json", "application/json; charset=utf-8"),
])
def test_files_with_their_types(anon, path, ctype):
    r = anon.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == ctype
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    rel = "index.html" if path in ("/", "/index.html") else path.split("/")[-1]
    if path.startswith("/api/"):
        rel = "openapi.json"
    src = path.lstrip("/") if "/" in path.lstrip("/") and not path.startswith("/api/") else rel
    with open(os.path.join(WEB, src), "rb") as f:
        assert r.content == f.read()


def test_index_loads_only_local_modules(anon):
    html = anon.get("/").text
    assert "<title>Device Hub</title>" in html
    assert 'type="module"' in html
    assert "http://" not in html and "https://" not in html


def test_head_has_length_and_no_body(server):
    status, headers, body = raw_get(server, "/css/style.css", "HEAD")
    assert status == 200
    assert int(headers["content-length"]) == os.path.getsize(os.path.join(WEB, "css", "style.css"))
    assert body == b""


@pytest.mark.parametrize("target", [
    "/../meson.build",
    "/..%2fmeson.build",
    "/%2e%2e/meson.build",
    "/%2E%2E/server/main.c",
    "/js/../../meson.build",
    "/js/%2e%2e/%2e%2e/meson.build",
    "/..",
    "/.%2e/README.md",
    "//etc/passwd",
    "/%2fetc/passwd",
    "/js/",
    "/js",
    "/nope.html",
    "/index.html/",
    "/.gitignore",
    "/js\\app.js",
    "/web/index.html",
])
def test_no_way_out_of_web(server, target):
    status, headers, body = raw_get(server, target)
    assert status == 404, (target, status, body[:200])
    assert headers["content-type"].startswith("application/json")
    assert b'"code":"not_found"' in body
    assert b"project(" not in body and b"root:" not in body


def test_an_encoded_nul_cannot_leave_web(server):
    # MHD decodes %00 and the path ends there: at most a file of web/ itself is served
    status, headers, body = raw_get(server, "/index.html%00/../../meson.build")
    assert b"project(" not in body
    if status == 200:
        with open(os.path.join(WEB, "index.html"), "rb") as f:
            assert body == f.read()


def test_static_paths_need_no_token_but_api_paths_do(anon):
    assert anon.get("/js/api.js").status_code == 200
    assert anon.get("/api/v1/products/").status_code == 401


def test_other_methods_on_files(anon):
    r = anon.post("/index.html", data=b"x")
    assert r.status_code in (404, 405)
    assert r.headers["Content-Type"].startswith("application/json")
