"""Second attack run, access rights: what a device token (`update` over one model) and a scoped
manager can read, list, count, stream, download and change, route by route. The event stream
shows objects only to those who may read them; lists of objects outside products need the
same right as reading one of them; stats, downloads, sessions and firmware stay within the
caller's scope; no grant, token or webhook can be widened beyond the caller's own rights.
"""
import pytest

from conftest import Client, assert_error, make_user, unique
from sessutil import FU, new_session, upload_fw, wait_state
from test_events import Sse, parse_block


def make_catalog(admin, product=None):
    p = product or admin.create("/api/v1/products/", {"tid": unique("prod"), "name": "P"})
    m = admin.create("/api/v1/models/", {"tid": unique("model"), "name": "M",
                                         "product": p["tid"]})
    c = admin.create("/api/v1/channels/", {"tid": unique("chan"), "name": "stable"})
    dm = admin.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "HTTP",
                                                    "kind": "http"})
    dp = admin.create("/api/v1/delivery-procedures/",
                      {"tid": unique("dp"), "name": "Link", "delivery_method": dm["tid"],
                       "steps": [{"plugin": "link"}], "confirm": True})
    return {"product": p, "model": m, "channel": c, "method": dm, "procedure": dp}


@pytest.fixture(scope="module")
def world(admin):
    """Two tenants: A (the device's model) and B (another product), each with an image, a
    draft and a created session; a device token over A's model, a manager of A's product."""
    a, b = make_catalog(admin), make_catalog(admin)
    w = {"a": a, "b": b}
    for k, cat in w.items():
        cat["fw"] = upload_fw(admin, cat, "1.1.0")
        cat["draft"] = upload_fw(admin, cat, "1.2.0", draft=True)
        s = new_session(admin, cat, cat["procedure"], device_id=unique("dev"))
        assert admin.post(FU + s["id"] + "/start").status_code == 200
        cat["session"] = wait_state(admin, s["id"], "created")
    _, w["device"] = make_user(admin, ["update"], model=a["model"]["id"])
    _, w["manager"] = make_user(admin, ["manage"], product=a["product"]["id"])
    return w


def test_a_device_token_reads_lists_counts_and_downloads_only_its_scope(server, world):
    dev = Client(server, world["device"])
    a, b = world["a"], world["b"]
    # lists: its model's published images and sessions only
    fws = dev.get("/api/v1/firmware/?limit=1000").json()["results"]
    assert {f["id"] for f in fws} == {a["fw"]["id"]}
    assert dev.get(f"/api/v1/firmware/?model={b['model']['tid']}").json()["count"] == 0
    sessions = dev.get(FU + "?limit=1000").json()["results"]
    assert {s["id"] for s in sessions} == {a["session"]["id"]}
    assert dev.get(FU + "?model=" + b["model"]["id"]).json()["count"] == 0
    # stats count its scope only, also when asked for the other model
    stats = dev.get(FU + "stats?hours=168").json()
    assert sum(stats["states"].values()) == 1
    assert {f["firmware"] for f in stats["firmware"]} == {a["fw"]["id"]}
    other = dev.get(FU + "stats?model=" + b["model"]["tid"]).json()
    assert sum(other["states"].values()) == 0 and other["firmware"] == []
    # single objects and downloads beyond the scope are 404, as if they did not exist
    for path in (f"/api/v1/firmware/{b['fw']['id']}", f"/api/v1/firmware/{b['fw']['id']}/image",
                 f"/api/v1/firmware/{a['draft']['id']}",
                 f"/api/v1/firmware/{a['draft']['id']}/image",
                 FU + b["session"]["id"], FU + b["session"]["id"] + "/image"):
        assert_error(dev.get(path), 404, "not_found")
    for path in (FU + b["session"]["id"] + "/start", FU + b["session"]["id"] + "/confirm"):
        assert_error(dev.post(path, json={"success": True}), 404, "not_found")
    # its own scope's image and session download do work
    assert dev.get(f"/api/v1/firmware/{a['fw']['id']}/image").status_code == 200
    assert dev.get(FU + a["session"]["id"] + "/image").status_code == 200
    # configuration, devices, users, grants and webhooks are beyond an update right
    for kind in ("products", "models", "channels", "delivery-methods", "delivery-procedures",
                 "devices", "users", "access-rights", "webhooks"):
        assert_error(dev.get(f"/api/v1/{kind}/"), 403, "forbidden")
        assert_error(dev.post(f"/api/v1/{kind}/", json={}), 403, "forbidden")
    assert_error(dev.post("/api/v1/firmware/", data={"model": a["model"]["tid"]}), 403)
    assert_error(dev.patch(f"/api/v1/firmware/{a['fw']['id']}", json={"draft": True}), 403)
    assert_error(dev.delete(f"/api/v1/firmware/{a['fw']['id']}"), 403)


def test_the_event_stream_shows_objects_only_to_those_who_may_read_them(server, admin, world):
    """A device token's stream carried every device twin and model change of its model
    (object.* events were filtered by `update`), although GET /devices/ is 403 for it."""
    a = world["a"]
    dev = Sse(server, token=world["device"], query="?heartbeat=100")
    mgr = Sse(server, token=world["manager"], query="?heartbeat=100")
    try:
        twin = admin.create("/api/v1/devices/", {"device_id": unique("twin"),
                                                 "model": a["model"]["tid"]})
        admin.patch("/api/v1/models/" + a["model"]["id"], json={"description": "internal"})
        # a session event after them: once the device sees it, it has seen all before it
        s = new_session(admin, a, a["procedure"], device_id=unique("dev"))
        seen = {"dev": [], "mgr": []}
        for name, sse in (("dev", dev), ("mgr", mgr)):
            for block in sse.blocks(5):
                ev = parse_block(block)
                if "event" in ev:
                    seen[name].append((ev["event"], ev.get("data")))
                if ev.get("event") == "session.created" and ev["data"]["id"] == s["id"]:
                    break
        assert ("session.created" in [e for e, _ in seen["dev"]]), seen["dev"]
        assert not [e for e in seen["dev"] if e[0].startswith("object.")], seen["dev"]
        # a manager of the product reads devices and models, and sees them change
        texts = [d for e, d in seen["mgr"] if e.startswith("object.")]
        assert any(twin["id"] in d for d in texts) and any("internal" in d for d in texts)
    finally:
        dev.close()
        mgr.close()


def test_lists_of_objects_outside_products_need_the_right_over_everything(server, admin, world):
    """A product's manager got every delivery procedure (with the http steps' headers, where
    credentials of other tenants live), method and channel in lists, while reading one of
    them was 403."""
    secret = "Bearer " + unique("tenant-b-secret")
    admin.create("/api/v1/delivery-procedures/", {
        "tid": unique("dp"), "name": "Leshan", "delivery_method": world["b"]["method"]["tid"],
        "steps": [{"plugin": "link"}, {"plugin": "http", "params": {
            "url": "https://leshan.example.com/x", "headers": {"Authorization": secret}}}]})
    mgr = Client(server, world["manager"])
    for kind in ("channels", "delivery-methods", "delivery-procedures"):
        body = assert_error(mgr.get(f"/api/v1/{kind}/"), 403, "forbidden")
        assert secret not in str(body)
        one = world["a"][{"channels": "channel", "delivery-methods": "method",
                          "delivery-procedures": "procedure"}[kind]]
        assert_error(mgr.get(f"/api/v1/{kind}/{one['id']}"), 403, "forbidden")
    # within its product it lists what it manages
    assert mgr.get("/api/v1/models/").json()["count"] == 1
    assert mgr.get("/api/v1/devices/").status_code == 200
    # an unscoped manager and an admin list them all
    _, top = make_user(admin, ["manage"])
    for tok in (top, admin.token):
        r = Client(server, tok).get("/api/v1/delivery-procedures/?limit=1000")
        assert r.status_code == 200 and secret in r.text


def test_a_scoped_manager_cannot_widen_anything(server, admin, world):
    a, b = world["a"], world["b"]
    mgr = Client(server, world["manager"])
    # grants and users are admin's
    for body in ({"user": "admin", "action": "admin"}, {"action": "manage"}):
        assert_error(mgr.post("/api/v1/access-rights/", json=body), 403, "forbidden")
    assert_error(mgr.post("/api/v1/users/", json={"tid": unique("u"), "name": "x"}), 403)
    # exec steps need admin, also over its own method
    r = mgr.post("/api/v1/delivery-procedures/", json={
        "tid": unique("dp"), "name": "x", "delivery_method": a["method"]["tid"],
        "steps": [{"plugin": "exec", "params": {"argv": ["/bin/true"]}}]})
    assert r.status_code == 403, r.text
    # webhooks: only over its product, never unscoped or another product's model (which it
    # cannot even name: as if it did not exist)
    assert_error(mgr.post("/api/v1/webhooks/", json={"url": "https://example.com/hook"}), 403,
                 "forbidden")
    for body in ({"product": b["product"]["tid"]}, {"model": b["model"]["tid"]}):
        body["url"] = "https://example.com/hook"
        assert_error(mgr.post("/api/v1/webhooks/", json=body), 400, "invalid")
    w = mgr.create("/api/v1/webhooks/", {"url": "https://example.com/hook",
                                         "product": a["product"]["tid"]})
    assert_error(mgr.patch("/api/v1/webhooks/" + w["id"], json={"product": None}), 403,
                 "forbidden")
    for change in ({"model": b["model"]["tid"]}, {"product": b["product"]["tid"]}):
        assert_error(mgr.patch("/api/v1/webhooks/" + w["id"], json=change), 400, "invalid")
    # another product's webhook and its deliveries are hidden
    wb = admin.create("/api/v1/webhooks/", {"url": "https://example.com/b",
                                            "product": b["product"]["tid"]})
    assert_error(mgr.get("/api/v1/webhooks/" + wb["id"]), 404, "not_found")
    assert_error(mgr.get(f"/api/v1/webhooks/{wb['id']}/deliveries/"), 404, "not_found")
    assert wb["id"] not in mgr.get("/api/v1/webhooks/").text
    # moving its model or a device into another product needs a right there too: without
    # one, the product is one it cannot name
    assert_error(mgr.patch("/api/v1/models/" + a["model"]["id"],
                           json={"product": b["product"]["tid"]}), 400, "invalid")
    assert_error(mgr.post("/api/v1/devices/", json={"device_id": "x",
                                                    "model": b["model"]["tid"]}), 400)
    # a product it sees (an update grant there) but may not manage stays 403
    u, two = make_user(admin, ["manage"], product=a["product"]["id"])
    admin.create("/api/v1/access-rights/", {"user": u["id"], "action": "update",
                                            "product": b["product"]["id"]})
    assert_error(Client(server, two).post("/api/v1/devices/", json={
        "device_id": "x", "model": b["model"]["tid"]}), 403, "forbidden")


def test_tokens_stay_their_users(server, admin, world):
    dev = Client(server, world["device"])
    mine = dev.create("/api/v1/tokens/", {"name": "spare"})
    for body in ({"name": "x", "user": "admin"},):
        assert_error(dev.post("/api/v1/tokens/", json=body), 403, "forbidden")
    assert_error(dev.patch("/api/v1/tokens/" + mine["id"], json={"user": "admin"}), 400)
    admin_tokens = admin.get("/api/v1/tokens/?user=admin").json()["results"]
    for t in admin_tokens:
        assert_error(dev.get("/api/v1/tokens/" + t["id"]), 404, "not_found")
        assert_error(dev.patch("/api/v1/tokens/" + t["id"], json={"revoked": True}), 404)
    assert dev.get("/api/v1/tokens/?user=admin").json()["count"] == 0
    # revocation is final, also for its owner
    assert dev.patch("/api/v1/tokens/" + mine["id"], json={"revoked": True}).status_code == 200
    assert_error(dev.patch("/api/v1/tokens/" + mine["id"], json={"revoked": False}), 409)


def test_nothing_beyond_the_scope_can_be_told_from_what_does_not_exist(server, admin, world):
    """A route whose right the caller holds nowhere answered 403 for an object that exists
    and 404 for one that does not: a device token could tell which products, models,
    webhooks and images of other tenants exist (tids are guessable). Beyond the caller's
    scope both are the same 404; within it, what it may not do stays 403."""
    a, b = world["a"], world["b"]
    device = admin.create("/api/v1/devices/", {"device_id": unique("twin"),
                                               "model": b["model"]["tid"]})
    hook = admin.create("/api/v1/webhooks/", {"url": "https://example.com/b",
                                              "product": b["product"]["tid"]})
    _, uploader = make_user(admin, ["upload"], product=a["product"]["id"])
    _, nobody = make_user(admin, [])
    other_token = admin.get("/api/v1/tokens/?user=admin").json()["results"][0]
    none_id = "00000000-0000-4000-8000-000000000000"
    beyond = {  # caller: (method, path of an existing object beyond its scope, of none)
        world["device"]: [
            ("GET", "/api/v1/products/" + b["product"]["tid"], "/api/v1/products/no-such"),
            ("DELETE", "/api/v1/models/" + b["model"]["tid"], "/api/v1/models/no-such"),
            ("GET", "/api/v1/devices/" + device["id"], "/api/v1/devices/" + none_id),
            ("GET", "/api/v1/webhooks/" + hook["id"], "/api/v1/webhooks/" + none_id),
            ("GET", f"/api/v1/webhooks/{hook['id']}/deliveries",
             f"/api/v1/webhooks/{none_id}/deliveries"),
            ("PATCH", "/api/v1/firmware/" + b["fw"]["id"], "/api/v1/firmware/" + none_id),
            ("DELETE", "/api/v1/firmware/" + a["draft"]["id"], "/api/v1/firmware/" + none_id),
        ],
        uploader: [
            ("GET", FU + b["session"]["id"], FU + none_id),
            ("POST", FU + b["session"]["id"] + "/start", FU + none_id + "/start"),
        ],
        nobody: [
            ("GET", "/api/v1/products/" + a["product"]["tid"], "/api/v1/products/no-such"),
            ("GET", "/api/v1/firmware/" + a["fw"]["id"], "/api/v1/firmware/" + none_id),
            ("GET", FU + a["session"]["id"], FU + none_id),
            ("GET", "/api/v1/tokens/" + other_token["id"], "/api/v1/tokens/" + none_id),
        ],
    }
    for token, cases in beyond.items():
        c = Client(server, token)
        for method, path, missing in cases:
            there = assert_error(c.request(method, path, json={}), 404, "not_found")
            gone = assert_error(c.request(method, missing, json={}), 404, "not_found")
            assert there["detail"] == gone["detail"], (path, there, gone)
    # within its scope, what a caller may not do is still 403
    dev = Client(server, world["device"])
    for method, path in (("GET", "/api/v1/models/" + a["model"]["tid"]),
                         ("PATCH", "/api/v1/firmware/" + a["fw"]["id"])):
        assert_error(dev.request(method, path, json={}), 403, "forbidden")
    assert_error(Client(server, uploader).get(FU + a["session"]["id"]), 403, "forbidden")


def test_a_reference_beyond_the_scope_reads_as_one_that_does_not_exist(server, admin, world):
    """A body that named another tenant's model or image got 403 ("your rights do not cover
    it") or "belongs to another model", one that named nothing 400 "no such object": the
    same oracle as the paths', through references. Both now answer the same 400."""
    a, b = world["a"], world["b"]
    _, uploader = make_user(admin, ["upload"], product=a["product"]["id"])
    dev, mgr = Client(server, world["device"]), Client(server, world["manager"])
    proc = a["procedure"]["tid"]
    cases = [  # (client, method, path, body with {ref}, the field named)
        (dev, "POST", FU + "request", {"model": "{ref}", "delivery_procedure_tid": proc,
                                       "current_channel": a["channel"]["tid"],
                                       "current_firmware_version": "1.0.0"}, "model"),
        (mgr, "POST", "/api/v1/devices/", {"device_id": unique("d"), "model": "{ref}"},
         "model"),
        (mgr, "POST", "/api/v1/webhooks/", {"url": "https://example.com/h", "model": "{ref}"},
         "model"),
        (mgr, "PATCH", "/api/v1/models/" + a["model"]["id"], {"product": "{ref:product}"},
         "product"),
    ]
    for c, method, path, body, field in cases:
        answers = []
        for ref in ({"": b["model"]["tid"], "product": b["product"]["tid"]},
                    {"": "no-such-model", "product": "no-such-product"}):
            filled = {k: (ref["product"] if v == "{ref:product}" else
                          ref[""] if v == "{ref}" else v) for k, v in body.items()}
            r = c.request(method, path, json=filled)
            err = assert_error(r, 400, "invalid")
            assert "no such object" in err["fields"][field], (path, err)
            answers.append(err["fields"][field].split(":")[0])
        assert answers[0] == answers[1], (path, answers)
    # an image: another tenant's, a draft of its own model, none at all
    for fw in (b["fw"]["id"], a["draft"]["id"], "00000000-0000-4000-8000-000000000000"):
        r = dev.post(FU + "request", json={"target_firmware": fw, "delivery_procedure_tid": proc,
                                           "current_channel": a["channel"]["tid"],
                                           "current_firmware_version": "1.0.0"})
        assert assert_error(r, 400)["fields"] == {"target_firmware": "no such firmware"}
    # a device twin of another tenant, named without a model: as unknown as no twin at all
    twin = admin.get("/api/v1/devices/" + b["session"]["device"]).json()["device_id"]
    answers = []
    for name in (twin, unique("no-such-device")):
        r = dev.post(FU + "request", json={"device_id": name, "delivery_procedure_tid": proc,
                                           "current_channel": a["channel"]["tid"],
                                           "current_firmware_version": "1.0.0"})
        answers.append(assert_error(r, 400, "invalid")["fields"])
    assert answers[0] == answers[1] and "model" in answers[0], answers
    r = Client(server, uploader).request("POST", "/api/v1/firmware/", files=[
        ("model", (None, b["model"]["tid"])), ("version", (None, "9.9.9")),
        ("file", ("a.bin", b"x", "application/octet-stream"))])
    assert "no such object" in assert_error(r, 400)["fields"]["model"]
