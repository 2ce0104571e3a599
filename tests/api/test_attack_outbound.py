"""Second attack run, outbound requests (webhooks and the `http` step): what a device can put
into a request the server sends for it (its device_id in a URL path: a value of dots could
move the request to another path of the receiver), private destinations in every spelling
of an address, redirects (never followed, also not to a private address), and answers that
are too large or never come.
"""
import http.server
import threading
import time

import pytest

from conftest import ADMIN_TOKEN, Client, Server, assert_error, unique
from receiver import Receiver
from sessutil import FAST_ARGS, FU, new_session, procedure, upload_fw, wait_for

WH = "/api/v1/webhooks/"
DP = "/api/v1/delivery-procedures/"


@pytest.fixture(scope="module")
def server():
    s = Server(extra_args=["--webhook-allow-private", "--webhook-retry-base-ms", "200",
                           "--webhook-timeout", "2"] + FAST_ARGS).start()
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def cat(admin):
    """A catalogue with an image to update to (2.0.0)."""
    c = {"product": admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})}
    c["model"] = admin.create("/api/v1/models/", {"tid": unique("m"), "name": "M",
                                                  "product": c["product"]["tid"]})
    c["channel"] = admin.create("/api/v1/channels/", {"tid": unique("c"), "name": "c"})
    c["method"] = admin.create("/api/v1/delivery-methods/",
                               {"tid": unique("dm"), "name": "m", "kind": "http"})
    upload_fw(admin, c, "2.0.0")
    return c


@pytest.fixture
def rx():
    r = Receiver().start()
    yield r
    r.stop()


def finished(admin, sid):
    return wait_for(admin, sid, lambda s: s["state"] in ("success", "fail"), timeout=30)


@pytest.mark.parametrize("device,path", [
    ("..", "/api/clients/%2E%2E/5/0/2"),
    (".", "/api/clients/%2E/5/0/2"),
    ("a/../..", "/api/clients/a%2F..%2F../5/0/2"),
    ("%2e%2e", "/api/clients/%252e%252e/5/0/2"),
    ("x?y#z", "/api/clients/x%3Fy%23z/5/0/2"),
])
def test_a_device_id_cannot_move_the_http_step_to_another_path(admin, cat, rx, device, path):
    """A device chooses its device_id; with ".." the step called /api/5/0/2 instead of
    /api/clients/<id>/5/0/2 (libcurl and receivers resolve dot segments)."""
    dp = procedure(admin, cat, confirm=False, steps=[
        {"plugin": "link"},
        {"plugin": "http", "params": {"url": rx.url("/api/clients/{device.id}/5/0/2")}}])
    s = new_session(admin, cat, dp, "1.0.0", device_id=device)
    assert admin.post(FU + s["id"] + "/start").status_code == 200
    assert finished(admin, s["id"])["state"] == "success"
    assert [r.path for r in rx.received()] == [path]


@pytest.mark.parametrize("url", [
    "http://127.1/", "http://0177.0.0.1/", "http://017700000001/", "http://0x7f000001/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::127.0.0.1]/",
    "http://[64:ff9b::127.0.0.1]/", "http://[2002:7f00:1::]/", "http://0/", "http://[::]/",
    "http://0.0.0.0:8080/", "http://LOCALHOST/", "http://localhost./", "http://a.localhost/",
    "http://[::ffff:169.254.169.254]/", "http://100.100.100.200/", "http://[fd00::1]/",
    "http://[fe80::1%25eth0]/", "http://192.168.1.1/", "http://172.31.0.1/",
    "http://user:pw@127.0.0.1/", "http://evil.example@127.0.0.1/", "HTTP://127.0.0.1/",
])
def test_private_destinations_in_every_spelling_are_refused(strict, url):
    """Without --webhook-allow-private, for webhooks and for http steps alike."""
    err = assert_error(strict.post(WH, json={"url": url}), 400, "invalid")
    assert "webhook-allow-private" in err["fields"]["url"], (url, err)
    err = assert_error(strict.post(DP, json={
        "tid": unique("dp"), "name": "x", "delivery_method": strict.method["tid"],
        "steps": [{"plugin": "http", "params": {"url": url}}]}), 400, "invalid")
    assert "webhook-allow-private" in err["fields"]["steps"], (url, err)


@pytest.fixture(scope="module")
def strict():
    """A client of a server started without --webhook-allow-private."""
    s = Server().start()
    c = Client(s, ADMIN_TOKEN)
    c.method = c.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "m",
                                                      "kind": "http"})
    yield c
    s.cleanup()


class Redirector:
    """Answers every request with a redirect to target (status code given)."""

    def __init__(self, status, target):
        outer = self
        self.hits = 0

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self):
                outer.hits += 1
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                self.send_response(status)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = answer

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/r"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_never_followed(admin, cat, rx, status):
    red = Redirector(status, rx.url("/followed"))
    try:
        w = admin.create(WH, {"url": red.url, "events": ["object.created"]})
        admin.create("/api/v1/channels/", {"tid": unique("c"), "name": "c"})
        d = wait_for_delivery(admin, w["id"], lambda d: d["attempts"] >= 2)
        assert d["status"] != "delivered" and d["last_status_code"] == status, d
        dp = procedure(admin, cat, confirm=False, steps=[
            {"plugin": "http", "params": {"url": red.url}}])
        s = new_session(admin, cat, dp, "1.0.0", device_id=unique("dev"))
        admin.post(FU + s["id"] + "/start")
        s = finished(admin, s["id"])
        assert s["state"] == "fail" and str(status) in s["error"]["detail"], s
        assert rx.received("/followed") == [] and red.hits >= 3
    finally:
        admin.delete(WH + w["id"])
        red.stop()


def wait_for_delivery(admin, wid, pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        rows = admin.get(f"{WH}{wid}/deliveries/").json()["results"]
        if rows and pred(rows[0]):
            return rows[0]
        last = rows
        time.sleep(0.1)
    raise AssertionError(f"no such delivery: {last}")


def test_a_huge_or_late_answer_is_bounded(admin, cat, rx):
    """A receiver that answers 8 MiB (the step keeps at most its bound and fails), or that
    never answers within the step's timeout: the session fails with a reason, in time."""
    rx.script("/huge", [(200, b"[" + b"1," * (4 << 20) + b"1]")])
    rx.script("/late", [(200, b"{}", 30)])
    # the huge answer within 10 s, whose reading a loaded machine may slow down; the late
    # one is given 2 s
    for path, words, timeout in (("/huge", "larger than", 10), ("/late", "no answer within", 2)):
        dp = procedure(admin, cat, confirm=False, steps=[
            {"plugin": "http", "params": {"url": rx.url(path), "timeout": timeout}}])
        s = new_session(admin, cat, dp, "1.0.0", device_id=unique("dev"))
        admin.post(FU + s["id"] + "/start")
        s = finished(admin, s["id"])
        assert s["state"] == "fail" and words in s["error"]["detail"], s
        assert len(str(s["payload"])) < 4096
