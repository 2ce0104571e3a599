"""Webhook subscriptions (/api/v1/webhooks/): CRUD with the manage right over their scope, the
secret shown once at creation and on rotation, event types from the one list of the server
(core/event_types.c, also in openapi.json), private destinations refused when saved without
--webhook-allow-private, and the delivery log's shape and errors."""
import base64
import os
import re

import pytest

from conftest import ADMIN_TOKEN, ROOT, Client, Server, assert_error, make_user, unique

WH = "/api/v1/webhooks/"
SECRET_RE = re.compile(r"^whsec_[A-Za-z0-9+/]+={0,2}$")


@pytest.fixture(scope="module")
def server(engine):
    s = Server(extra_args=["--webhook-allow-private"]).start()
    yield s
    s.cleanup()


def event_types():
    """The event type table of server/core/event_types.c: (name, opt_in)."""
    with open(os.path.join(ROOT, "server", "core", "event_types.c"), encoding="utf-8") as f:
        rows = re.findall(r'\{ "([a-z.]+)", (true|false) \}', f.read())
    assert len(rows) >= 10, rows
    return [(n, o == "true") for n, o in rows]


def test_create_shows_the_secret_once(admin):
    w = admin.create(WH, {"url": "https://example.com/hook", "tid": unique("wh")})
    assert SECRET_RE.match(w["secret"]), w
    assert len(base64.b64decode(w["secret"][6:])) == 32
    assert w["events"] == ["*"] and w["active"] is True
    assert w["product"] is None and w["model"] is None
    got = admin.get(WH + w["id"]).json()
    assert "secret" not in got
    assert got == {k: v for k, v in w.items() if k != "secret"}
    assert admin.get(WH + w["tid"]).json()["id"] == w["id"]
    listed = admin.get(WH, params={"tid": w["tid"]}).json()
    assert listed["count"] == 1 and "secret" not in listed["results"][0]
    assert set(got) == {"id", "tid", "url", "description", "events", "product", "model",
                        "active", "create_time"}


def test_rotation_and_given_secrets(admin):
    w = admin.create(WH, {"url": "https://example.com/r"})
    r = admin.patch(WH + w["id"], json={"rotate_secret": True})
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert SECRET_RE.match(new) and new != w["secret"]
    # a patch that does not touch the secret does not show it
    r = admin.patch(WH + w["id"], json={"description": "d"})
    assert r.status_code == 200 and "secret" not in r.json()
    r = admin.patch(WH + w["id"], json={"rotate_secret": False})
    assert r.status_code == 200 and "secret" not in r.json()
    given = "whsec_" + base64.b64encode(b"k" * 24).decode()
    r = admin.patch(WH + w["id"], json={"secret": given})
    assert r.status_code == 200 and r.json()["secret"] == given
    w2 = admin.create(WH, {"url": "https://example.com/r2", "secret": given})
    assert w2["secret"] == given
    for bad in ("whsec_short", "nope", "whsec_" + base64.b64encode(b"k" * 65).decode(), 5):
        err = assert_error(admin.patch(WH + w["id"], json={"secret": bad}), 400, "invalid")
        assert "secret" in err["fields"], err
    err = assert_error(admin.patch(WH + w["id"], json={"secret": given, "rotate_secret": True}),
                       400, "invalid")
    assert "rotate_secret" in err["fields"]


def test_events_come_from_the_one_list(admin, doc_events):
    names = [n for n, _ in event_types()]
    assert set(names) == set(doc_events), "openapi.json and core/event_types.c differ"
    w = admin.create(WH, {"url": "https://example.com/e", "events": names})
    assert w["events"] == names
    w = admin.create(WH, {"url": "https://example.com/e", "events": ["*", "session.progress"]})
    assert w["events"] == ["*", "session.progress"]
    for bad in (["nope"], [], ["session.state", "session.state"], "session.state", [5],
                ["*"] * 2, ["session.*"]):
        err = assert_error(admin.post(WH, json={"url": "https://example.com/e",
                                                "events": bad}), 400, "invalid")
        assert "events" in err["fields"], (bad, err)


@pytest.fixture(scope="module")
def doc_events(anon):
    doc = anon.get("/api/v1/openapi.json").json()
    return doc["components"]["schemas"]["EventType"]["enum"]


def test_bad_fields(admin, catalog):
    cases = [
        ({}, "url"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": "example.com/hook"}, "url"),
        ({"url": "https://" + "a" * 2100 + ".com/"}, "url"),
        ({"url": "https://example.com/", "product": "nope"}, "product"),
        ({"url": "https://example.com/", "model": "nope"}, "model"),
        ({"url": "https://example.com/", "active": "yes"}, "active"),
        ({"url": "https://example.com/", "colour": "red"}, "colour"),
        ({"url": "https://example.com/", "rotate_secret": "yes"}, "rotate_secret"),
    ]
    before = admin.get(WH).json()["count"]
    for body, field in cases:
        err = assert_error(admin.post(WH, json=body), 400, "invalid")
        assert field in err["fields"], (body, err)
    assert admin.get(WH).json()["count"] == before


def test_scope_model_records_its_product(admin, catalog):
    p, m = catalog["product"], catalog["model"]
    w = admin.create(WH, {"url": "https://example.com/s", "model": m["tid"]})
    assert w["model"] == m["id"] and w["product"] == p["id"]
    other = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
    err = assert_error(admin.post(WH, json={"url": "https://example.com/s", "model": m["id"],
                                            "product": other["id"]}), 400)
    assert "model" in err["fields"]
    assert admin.get(WH, params={"model": m["tid"]}).json()["count"] == 1
    assert admin.get(WH, params={"product": p["id"]}).json()["count"] == 1
    # a model still referenced by a webhook cannot go
    assert_error(admin.delete("/api/v1/models/" + m["id"]), 409, "referenced")


def test_manage_over_the_scope(admin, server, catalog):
    p = catalog["product"]
    _, tok = make_user(admin, ["manage"], product=p["id"])
    c = Client(server, tok)
    mine = c.create(WH, {"url": "https://example.com/m", "product": p["tid"]})
    assert SECRET_RE.match(mine["secret"])
    assert_error(c.post(WH, json={"url": "https://example.com/m"}), 403, "forbidden")
    theirs = admin.create(WH, {"url": "https://example.com/t"})
    assert_error(c.get(WH + theirs["id"]), 404)
    assert_error(c.patch(WH + theirs["id"], json={"active": False}), 404)
    assert_error(c.get(WH + theirs["id"] + "/deliveries/"), 404)
    assert [w["id"] for w in c.get(WH).json()["results"]] == [mine["id"]]
    assert c.patch(WH + mine["id"], json={"active": False}).json()["active"] is False
    # moving it out of the scope needs the right over the new scope
    assert_error(c.patch(WH + mine["id"], json={"product": None}), 403, "forbidden")
    _, utok = make_user(admin, ["update"], product=p["id"])
    assert_error(Client(server, utok).get(WH), 403, "forbidden")
    assert c.delete(WH + mine["id"]).status_code == 204
    assert_error(admin.get(WH + mine["id"]), 404)


def test_delivery_log_errors(admin):
    w = admin.create(WH, {"url": "https://example.com/l"})
    r = admin.get(WH + w["id"] + "/deliveries/")
    assert r.status_code == 200
    assert r.json() == {"count": 0, "next": None, "results": []}
    assert_error(admin.get(WH + w["id"] + "/deliveries/", params={"status": "odd"}), 400)
    assert_error(admin.get(WH + w["id"] + "/deliveries/", params={"limit": 0}), 400)
    assert_error(admin.post(WH + w["id"] + "/deliveries/" + "0" * 8 + "-0000-4000-8000-"
                            + "0" * 12 + "/redeliver"), 404, "not_found")
    assert_error(admin.post(WH + w["id"] + "/deliveries/nope/redeliver"), 404)
    assert_error(admin.get(WH + "nope/deliveries/"), 404)
    r = admin.get(WH + w["id"] + "/deliveries/x/redeliver")
    assert_error(r, 405)
    assert "POST" in r.headers["Allow"]


def test_private_urls_refused_when_saved_without_the_flag():
    s = Server().start()
    try:
        a = Client(s, ADMIN_TOKEN)
        for url in ("http://127.0.0.1:9/hook", "http://localhost/hook", "http://2130706433/",
                    "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://10.1.2.3/",
                    "http://169.254.169.254/latest", "http://0x7f.1/", "http://app.localhost/"):
            err = assert_error(a.post(WH, json={"url": url}), 400, "invalid")
            assert "webhook-allow-private" in err["fields"]["url"], (url, err)
        w = a.create(WH, {"url": "https://example.com/ok"})
        err = assert_error(a.patch(WH + w["id"], json={"url": "http://127.0.0.1/"}), 400)
        assert "url" in err["fields"]
        assert a.get(WH + w["id"]).json()["url"] == "https://example.com/ok"
    finally:
        s.cleanup()
