"""Channels: CRUD, tid rules, channels stand outside products (unscoped manage), and
references from firmware and devices keep a channel from being deleted."""
from conftest import Client, assert_error, make_user, unique

BASE = "/api/v1/channels/"


def test_crud(admin):
    tid = unique("c")
    c = admin.create(BASE, {"tid": tid, "name": "beta"})
    assert set(c) == {"id", "tid", "name", "create_time"}
    assert admin.get(BASE + tid).json() == c
    r = admin.patch(BASE + c["id"], json={"name": "beta-2", "tid": tid + "x"})
    assert r.status_code == 200 and r.json()["tid"] == tid + "x"
    assert_error(admin.get(BASE + tid), 404, "not_found")
    assert admin.get(BASE + tid + "x").json()["name"] == "beta-2"
    assert admin.delete(BASE + tid + "x").status_code == 204
    assert_error(admin.get(BASE + c["id"]), 404)


def test_bad_input_changes_nothing(admin):
    before = admin.get(BASE, params={"limit": 1000}).json()["count"]
    for body, field in [({"name": "x"}, "tid"), ({"tid": unique()}, "name"),
                        ({"tid": unique(), "name": "x" * 201}, "name"),
                        ({"tid": unique(), "name": True}, "name"),
                        ({"tid": "", "name": "x"}, "tid"),
                        ({"tid": "a/b", "name": "x"}, "tid"),
                        ({"tid": unique(), "name": "x", "kind": "y"}, "kind")]:
        err = assert_error(admin.post(BASE, json=body), 400, "invalid")
        assert field in err["fields"], (body, err)
    err = assert_error(admin.post(BASE, data=b'{"tid": "a", "name": "\xff"}',
                                  headers={"Content-Type": "application/json"}), 400)
    assert err["code"] == "malformed_json"
    assert_error(admin.post(BASE, data='{"tid": "a", "tid": "b", "name": "x"}',
                            headers={"Content-Type": "application/json"}), 400, "malformed_json")
    assert admin.get(BASE, params={"limit": 1000}).json()["count"] == before


def test_body_on_delete_and_get_is_ignored(admin):
    c = admin.create(BASE, {"tid": unique("c"), "name": "x"})
    r = admin.get(BASE + c["id"], data="not json", headers={"Content-Type": "text/plain"})
    assert r.status_code == 200 and r.json()["id"] == c["id"]
    r = admin.delete(BASE + c["id"], data="not json", headers={"Content-Type": "text/plain"})
    assert r.status_code == 204, r.text
    assert_error(admin.get(BASE + c["id"]), 404)


def test_head_on_get_routes(admin):
    c = admin.create(BASE, {"tid": unique("c"), "name": "x"})
    for path in (BASE, BASE + c["id"], BASE + c["tid"] + "/"):
        g, h = admin.get(path), admin.head(path)
        assert h.status_code == 200 and h.content == b""
        assert h.headers["Content-Type"] == g.headers["Content-Type"]
    assert admin.head(BASE + "missing").status_code == 404


def test_scoped_manager_cannot_manage_channels(admin, server):
    p = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
    c = admin.create(BASE, {"tid": unique("c"), "name": "x"})
    _, tok = make_user(admin, ["manage"], product=p["id"])
    cl = Client(server, tok)
    assert_error(cl.post(BASE, json={"tid": unique("c"), "name": "y"}), 403, "forbidden")
    assert_error(cl.patch(BASE + c["id"], json={"name": "y"}), 403, "forbidden")
    assert_error(cl.delete(BASE + c["id"]), 403, "forbidden")
    assert admin.get(BASE + c["id"]).json()["name"] == "x"
    _, tok = make_user(admin, ["manage"])
    cl = Client(server, tok)
    assert cl.patch(BASE + c["id"], json={"name": "y"}).json()["name"] == "y"


def test_delete_referenced_channel_is_409(admin, catalog):
    c = admin.create(BASE, {"tid": unique("c"), "name": "x"})
    admin.create("/api/v1/devices/", {"device_id": unique("d"), "model": catalog["model"]["id"],
                                      "channel": c["tid"]})
    assert_error(admin.delete(BASE + c["id"]), 409, "referenced")
    assert admin.get(BASE + c["id"]).status_code == 200
