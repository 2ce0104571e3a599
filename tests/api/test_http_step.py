"""The `http` delivery step against a local receiver: the LwM2M recipe of the README (write the
Package URI, execute Update) with placeholders and the answers merged into the payload under
each step's name; an unexpected status and a timeout fail the session naming the step; params
are checked when the procedure is saved; private destinations are refused at save time and at
connect time without --webhook-allow-private."""
import ipaddress
import json
import re
import socket
import time

import pytest

from conftest import ADMIN_TOKEN, Client, Server, assert_error, self_signed_cert, unique
from receiver import Receiver
from sessutil import FAST_ARGS, FU, new_session, procedure, upload_fw, wait_state

DP = "/api/v1/delivery-procedures/"


@pytest.fixture(scope="module")
def server(engine):
    # a bare boolean flag takes no value: the next flag is still read as a flag
    s = Server(extra_args=["--webhook-allow-private"] + FAST_ARGS).start()
    yield s
    s.cleanup()


@pytest.fixture
def rx():
    r = Receiver().start()
    yield r
    r.stop()


def make_catalog(admin):
    """Product, model, channel and delivery method on another server than the module's."""
    cat = {"product": admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})}
    cat["model"] = admin.create("/api/v1/models/", {"tid": unique("m"), "name": "M",
                                                    "product": cat["product"]["tid"]})
    cat["channel"] = admin.create("/api/v1/channels/", {"tid": unique("c"), "name": "c"})
    cat["method"] = admin.create("/api/v1/delivery-methods/",
                                 {"tid": unique("dm"), "name": "m", "kind": "http"})
    return cat


def run(admin, catalog, steps, version="2.0.0", device="dev-1", state="success"):
    fw = upload_fw(admin, catalog, version)
    dp = procedure(admin, catalog, confirm=False, steps=steps)
    s = new_session(admin, catalog, dp, "1.0.0", device_id=device)
    r = admin.post(FU + s["id"] + "/start")
    assert r.status_code == 200, r.text
    return fw, wait_state(admin, s["id"], state, timeout=30)


def test_lwm2m_recipe_writes_package_uri_and_executes_update(admin, catalog, rx):
    rx.script("/api/clients/dev%201/5/0/1", [(200, b'{"status":"CHANGED","success":true}')])
    rx.script("/api/clients/dev%201/5/0/2", [(200, b'{"status":"CHANGED","success":true}')])
    base = rx.url("/api/clients/{device.id}")
    fw, s = run(admin, catalog, device="dev 1", steps=[
        {"plugin": "link"},
        {"plugin": "http", "name": "write_uri", "params": {
            "method": "PUT", "url": base + "/5/0/1?timeout=5",
            "headers": {"Authorization": "Bearer lwm2m-secret", "X-Session": "{session.id}"},
            "body": {"id": 1, "kind": "singleResource", "type": "string",
                     "value": "{short_link}", "link": "{link}", "size": "{firmware.size}",
                     "note": "{{literal}} v{firmware.version}"},
            "expect": [200]}},
        {"plugin": "http", "name": "execute", "params": {
            "method": "POST", "url": base + "/5/0/2?timeout=5", "timeout": 10}}])
    write = rx.received("/api/clients/dev%201/5/0/1")
    execute = rx.received("/api/clients/dev%201/5/0/2")
    assert len(write) == 1 and len(execute) == 1, rx.received()
    w = write[0]
    assert w.method == "PUT" and w.path.endswith("?timeout=5")
    assert w.headers["authorization"] == "Bearer lwm2m-secret"
    assert w.headers["x-session"] == s["id"]
    assert w.headers["content-type"] == "application/json"
    body = w.json()
    assert re.fullmatch(re.escape(admin.server.url) + r"/d/[A-Za-z0-9_-]{22}", body["value"])
    assert body == {"id": 1, "kind": "singleResource", "type": "string",
                    "value": body["value"], "link": s["payload"]["download_link"],
                    "size": fw["size"], "note": "{literal} v2.0.0"}
    # the session is done: its short link no longer serves, and shows as null
    assert s["payload"]["short_link"] is None
    assert execute[0].method == "POST" and execute[0].body == b""
    assert execute[0].time >= w.time
    assert s["payload"]["write_uri"] == {"status": "CHANGED", "success": True}
    assert s["payload"]["execute"] == {"status": "CHANGED", "success": True}


def test_unnamed_step_merges_under_plugin_name_and_non_json_is_skipped(admin, catalog, rx):
    rx.script("/a", [(201, b'[1, 2, 3]')])
    rx.script("/b", [(204, b"")])
    _, s = run(admin, catalog, steps=[
        {"plugin": "http", "params": {"url": rx.url("/a"), "body": ["{session.id}"]}},
        {"plugin": "http", "name": "second", "params": {"url": rx.url("/b"), "method": "GET"}}])
    assert s["payload"]["http"] == [1, 2, 3]
    assert "second" not in s["payload"]
    assert rx.received("/a")[0].json() == [s["id"]]
    assert rx.received("/b")[0].method == "GET"


def test_unexpected_status_fails_with_status_and_excerpt(admin, catalog, rx):
    rx.script("/fail", [(500, b'{"error": "lwm2m client not registered"}')])
    _, s = run(admin, catalog, state="fail", steps=[
        {"plugin": "http", "name": "notify", "params": {"url": rx.url("/fail")}}])
    err = s["error"]
    assert err["code"] == "step_failed"
    assert "Step 1 (notify)" in err["detail"], err
    assert "HTTP 500" in err["detail"] and "not registered" in err["detail"], err


def test_expect_list_refuses_a_2xx_not_listed(admin, catalog, rx):
    rx.script("/accepted", [(202, b"{}")])
    _, s = run(admin, catalog, state="fail", steps=[
        {"plugin": "http", "params": {"url": rx.url("/accepted"), "expect": [200, 201]}}])
    assert "HTTP 202" in s["error"]["detail"], s["error"]


def test_timeout_fails_the_step(admin, catalog, rx):
    rx.script("/slow", [(200, b"{}", 20)])
    t0 = time.monotonic()
    _, s = run(admin, catalog, state="fail", steps=[
        {"plugin": "http", "name": "slow", "params": {"url": rx.url("/slow"), "timeout": 1}}])
    assert time.monotonic() - t0 < 15
    assert "Step 1 (slow)" in s["error"]["detail"] and "within" in s["error"]["detail"], s
    assert len(rx.received("/slow")) == 1


def test_missing_link_fails_clearly(admin, catalog, rx):
    _, s = run(admin, catalog, state="fail", steps=[
        {"plugin": "http", "params": {"url": rx.url("/x"), "body": {"u": "{link}"}}}])
    assert "{link} has no value" in s["error"]["detail"], s["error"]
    assert rx.received() == []


@pytest.mark.parametrize("params,key", [
    ({}, "url"),
    ({"url": 5}, "url"),
    ({"url": "ftp://example.com/"}, "url"),
    ({"url": "https://{device.id}.example.com/"}, "url"),
    ({"url": "https://example.com/{nope}"}, "url"),
    ({"url": "https://example.com/", "method": "TRACE"}, "method"),
    ({"url": "https://example.com/", "method": "GET", "body": {"a": 1}}, "body"),
    ({"url": "https://example.com/", "body": {"a": "{session}"}}, "body"),
    ({"url": "https://example.com/", "headers": {"Bad Name": "x"}}, "headers"),
    ({"url": "https://example.com/", "headers": {"X": "a\r\nInjected: 1"}}, "headers"),
    ({"url": "https://example.com/", "headers": ["X: y"]}, "headers"),
    ({"url": "https://example.com/", "expect": []}, "expect"),
    ({"url": "https://example.com/", "expect": [99]}, "expect"),
    ({"url": "https://example.com/", "timeout": 0}, "timeout"),
    ({"url": "https://example.com/", "timeout": "5"}, "timeout"),
    ({"url": "https://example.com/", "retries": 3}, "retries"),
])
def test_bad_params_refused_when_saved(admin, catalog, params, key):
    body = {"tid": unique("dp"), "name": "P", "delivery_method": catalog["method"]["tid"],
            "steps": [{"plugin": "http", "params": params}]}
    before = admin.get(DP + "?limit=1000").json()["count"]
    err = assert_error(admin.post(DP, json=body), 400, "invalid")
    assert key in err["fields"]["steps"] and "http" in err["fields"]["steps"], err
    assert admin.get(DP + "?limit=1000").json()["count"] == before
    # and on a patch of an existing procedure
    dp = procedure(admin, catalog, steps=[{"plugin": "link"}])
    err = assert_error(admin.patch(DP + dp["id"], json={"steps": body["steps"]}), 400)
    assert key in err["fields"]["steps"]
    assert admin.get(DP + dp["id"]).json()["steps"] == [{"plugin": "link"}]


@pytest.mark.parametrize("name,why", [
    ("bad name", "must match"), ("download_link", "payload key"), (7, "must match")])
def test_step_names_checked(admin, catalog, name, why):
    body = {"tid": unique("dp"), "name": "P", "delivery_method": catalog["method"]["tid"],
            "steps": [{"plugin": "link", "name": name}]}
    err = assert_error(admin.post(DP, json=body), 400, "invalid")
    assert why in err["fields"]["steps"], err


def test_step_names_unique(admin, catalog):
    steps = [{"plugin": "http", "name": "call", "params": {"url": "https://example.com/"}}] * 2
    err = assert_error(admin.post(DP, json={"tid": unique("dp"), "name": "P",
                                            "delivery_method": catalog["method"]["tid"],
                                            "steps": steps}), 400)
    assert "taken" in err["fields"]["steps"]


def loopback_name():
    """This machine's host name when it resolves to a loopback or private address (as Debian's
    /etc/hosts makes it), else None."""
    name = socket.gethostname()
    try:
        addr = socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)[0][4][0]
    except OSError:
        return None
    ip = ipaddress.ip_address(addr)
    return name if (ip.is_loopback or ip.is_private) and "." not in name else None


def test_private_destinations_refused_without_the_flag(rx, tmp_path):
    """Saved while allowed, the step is refused at connect time after a restart without the
    flag; literal loopback URLs are refused at save time."""
    s = Server(data_dir=str(tmp_path / "var"), extra_args=FAST_ARGS + ["--webhook-allow-private"])
    s.start()
    try:
        admin = Client(s, ADMIN_TOKEN)
        cat = make_catalog(admin)
        upload_fw(admin, cat, "2.0.0")
        dp = procedure(admin, cat, confirm=False, steps=[
            {"plugin": "http", "params": {"url": rx.url("/private")}}])
        s.stop()
        s.extra_args = FAST_ARGS
        s.start()
        admin = Client(s, ADMIN_TOKEN)
        for url in (rx.url("/x"), rx.url("/x", host="localhost"), rx.url("/x", "2130706433"),
                    rx.url("/x", host="[::1]")):
            err = assert_error(admin.post(DP, json={
                "tid": unique("dp"), "name": "P", "delivery_method": cat["method"]["tid"],
                "steps": [{"plugin": "http", "params": {"url": url}}]}), 400)
            assert "webhook-allow-private" in err["fields"]["steps"], err
        sess = new_session(admin, cat, dp, "1.0.0")
        admin.post(FU + sess["id"] + "/start")
        sess = wait_state(admin, sess["id"], "fail", timeout=30)
        assert "refused to connect to 127.0.0.1" in sess["error"]["detail"], sess["error"]
        name = loopback_name()
        if name:
            dp2 = procedure(admin, cat, confirm=False, steps=[
                {"plugin": "http", "params": {"url": rx.url("/by-name", host=name)}}])
            sess = new_session(admin, cat, dp2, "1.0.0")
            admin.post(FU + sess["id"] + "/start")
            sess = wait_state(admin, sess["id"], "fail", timeout=30)
            assert "refused to connect" in sess["error"]["detail"], sess["error"]
        assert rx.received() == []
    finally:
        s.cleanup()


def test_tls_verified_by_default_and_with_webhook_ca(admin, catalog, tmp_path):
    cert, key = self_signed_cert(str(tmp_path))
    rx = Receiver().start(tls=(cert, key))
    try:
        _, s = run(admin, catalog, state="fail", steps=[
            {"plugin": "http", "params": {"url": rx.url("/tls")}}])
        assert "TLS failed" in s["error"]["detail"], s["error"]
        assert rx.received() == []
        srv = Server(extra_args=FAST_ARGS + ["--webhook-allow-private", "--webhook-ca", cert])
        srv.start()
        try:
            a2 = Client(srv, ADMIN_TOKEN)
            cat = make_catalog(a2)
            _, s = run(a2, cat, steps=[{"plugin": "http", "params": {"url": rx.url("/tls")}}])
            assert s["payload"]["http"] == {"ok": True}
            assert len(rx.received("/tls")) == 1
        finally:
            srv.cleanup()
    finally:
        rx.stop()


def test_a_service_that_echoes_the_short_link_leaves_no_token_stored(admin, catalog, rx):
    """The answer goes into the stored payload, an unexpected one into the stored error: a
    service that echoes the short link it was sent must not put its token there. The step
    sends the whole link; what is kept shows the token as stars, also where the error's
    excerpt cut it short."""
    from test_short_links import stored_text

    def echo(req):
        return json.dumps({"echo": req.json()["value"]}).encode()

    def echo_cut(req):
        link = req.json()["value"]
        lead = '{"pad":"'
        rest = '","echo":"' + link.rsplit("/d/", 1)[0] + "/d/"
        # the error keeps the first 203 bytes of an answer: cut 10 characters into the token
        pad = "x" * (203 - 10 - len(lead) - len(rest))
        return (lead + pad + rest + link.rsplit("/d/", 1)[1] + '"}').encode()

    rx.script("/write", [(200, echo)])
    rx.script("/check", [(500, echo_cut)])
    _, s = run(admin, catalog, state="fail", steps=[
        {"plugin": "link"},
        {"plugin": "http", "name": "write", "params": {
            "url": rx.url("/write"), "body": {"value": "{short_link}"}}},
        {"plugin": "http", "name": "check", "params": {
            "url": rx.url("/check"), "body": {"value": "{short_link}"}}}])
    sent = [r.json()["value"] for r in rx.received("/write") + rx.received("/check")]
    assert len(sent) == 2 and sent[0] == sent[1]
    prefix, token = sent[0].rsplit("/d/", 1)
    assert len(token) == 22
    assert s["payload"]["write"] == {"echo": prefix + "/d/" + "*" * 22}
    assert "HTTP 500" in s["error"]["detail"] and prefix + "/d/" + "*" * 10 in s["error"]["detail"]
    text = stored_text(admin.server)
    assert token[:10] not in text and prefix + "/d/" in text
