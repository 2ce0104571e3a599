"""Moving a model to another product (PATCH its `product`) moves everything of the model:
its sessions (also those created before the move), devices, firmware, the grants over it
and its webhooks. Tried with a rights matrix: holders of grants over the new product see
and act on all of it, holders over the old product no longer do, a grant over the model
itself keeps it; and an event of a moved session reaches the model's webhook."""
import time

import pytest

from conftest import ADMIN_TOKEN, Client, Server, assert_error, make_user, unique
from sessutil import FU, new_session, procedure, upload_fw, wait_state

WH = "/api/v1/webhooks/"


@pytest.fixture(scope="module")
def server(engine):
    # webhooks to 127.0.0.1: deliveries are only counted here, never received
    s = Server(engine=engine, extra_args=["--webhook-allow-private"]).start()
    yield s
    s.cleanup()


def model_with_things(admin):
    p1 = admin.create("/api/v1/products/", {"tid": unique("p1"), "name": "P1"})
    p2 = admin.create("/api/v1/products/", {"tid": unique("p2"), "name": "P2"})
    m = admin.create("/api/v1/models/", {"tid": unique("m"), "name": "M", "product": p1["id"]})
    c = admin.create("/api/v1/channels/", {"tid": unique("c"), "name": "stable"})
    dm = admin.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "H",
                                                    "kind": "http"})
    cat = {"product": p1, "model": m, "channel": c, "method": dm}
    fw = upload_fw(admin, cat, "2.0.0")
    dp = procedure(admin, cat, steps=[{"plugin": "link"}])
    return p1, p2, m, cat, fw, dp


def visible(client, s, dev, fw, m):
    """What the client sees of the model's things: 200/403/404 per object, and whether the
    session is in its list."""
    listed = client.get(FU, params={"limit": 1000}).json()
    return {
        "session": client.get(FU + s["id"] + "/").status_code,
        "listed": any(x["id"] == s["id"] for x in listed.get("results", [])),
        "device": client.get("/api/v1/devices/" + dev + "/").status_code,
        "firmware": client.get("/api/v1/firmware/" + fw["id"] + "/").status_code,
        "model": client.get("/api/v1/models/" + m["id"] + "/").status_code,
    }


SEES = {"session": 200, "listed": True, "device": 200, "firmware": 200, "model": 200}
BLIND = {"session": 404, "listed": False, "device": 404, "firmware": 404, "model": 404}


def test_a_moved_model_takes_everything_along(admin, server):
    p1, p2, m, cat, fw, dp = model_with_things(admin)
    old_mgr = Client(server, make_user(admin, ["manage"], product=p1["id"])[1])
    new_mgr = Client(server, make_user(admin, ["manage"], product=p2["id"])[1])
    model_mgr = Client(server, make_user(admin, ["manage"], model=m["id"])[1])
    old_dev = Client(server, make_user(admin, ["update"], product=p1["id"])[1])
    new_dev = Client(server, make_user(admin, ["update"], product=p2["id"])[1])
    grant = admin.get("/api/v1/access-rights/", params={"model": m["id"]}).json()["results"]
    assert [g["product"] for g in grant] == [p1["id"]]
    hook = admin.create(WH, {"url": "http://127.0.0.1:9/hook", "model": m["id"],
                             "events": ["session.state", "session.downloaded"]})
    assert hook["product"] == p1["id"]

    # sessions before the move: one waiting to start, one run to created
    s = new_session(old_dev, cat, dp, device_id=unique("dev"))
    ran = new_session(old_dev, cat, dp, version="1.0.1", device_id=unique("dev"))
    assert old_dev.post(FU + ran["id"] + "/start").status_code == 200
    wait_state(old_dev, ran["id"], "created")
    dev = s["device"]
    assert visible(old_mgr, s, dev, fw, m) == SEES
    assert visible(new_mgr, s, dev, fw, m) == BLIND
    assert visible(model_mgr, s, dev, fw, m) == SEES

    r = admin.patch("/api/v1/models/" + m["id"], json={"product": p2["tid"]})
    assert r.status_code == 200 and r.json()["product"] == p2["id"], r.text

    assert visible(old_mgr, s, dev, fw, m) == BLIND
    assert visible(new_mgr, s, dev, fw, m) == SEES
    assert visible(model_mgr, s, dev, fw, m) == SEES
    # acting on the sessions: the new product's devices may, the old one's may not
    assert_error(old_dev.post(FU + s["id"] + "/start"), 404)
    assert_error(old_dev.post(FU + ran["id"] + "/confirm", json={"success": True}), 404)
    short = new_dev.get(FU + ran["id"] + "/").json()["payload"]["short_link"]
    # the link was issued before the move: its download counts under the new product too
    assert new_dev.get("/d/" + short.rsplit("/d/", 1)[1], token="").content
    assert new_dev.post(FU + s["id"] + "/start").status_code == 200
    assert new_dev.post(FU + ran["id"] + "/confirm",
                        json={"success": True}).json()["state"] == "success"
    # a product filter of the list finds the sessions under their new product
    assert not [x for x in old_mgr.get(FU).json()["results"] if x["id"] in (s["id"], ran["id"])]
    # the grant over the model and the model's webhook now name the new product
    grant = admin.get("/api/v1/access-rights/", params={"model": m["id"]}).json()["results"]
    assert [g["product"] for g in grant] == [p2["id"]]
    assert admin.get("/api/v1/access-rights/", params={"product": p1["id"]}).json()["count"] == 2
    assert admin.get(WH + hook["id"] + "/").json()["product"] == p2["id"]
    assert_error(old_mgr.get(WH + hook["id"] + "/"), 404)
    assert new_mgr.get(WH + hook["id"] + "/").status_code == 200
    # the moved sessions' events reach the model's webhook: state changes, and the
    # download through the link issued before the move
    deadline = time.monotonic() + 20
    while True:
        got = admin.get(WH + hook["id"] + "/deliveries/", params={"limit": 100}).json()
        events = {d["event"] for d in got["results"]}
        if {"session.state", "session.downloaded"} <= events:
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.1)


def test_moving_back_and_the_model_grant_needs_both_products(admin, server):
    p1, p2, m, cat, fw, dp = model_with_things(admin)
    s = new_session(admin, cat, dp, device_id=unique("dev"))
    both = Client(server, make_user(admin, ["manage"], product=p1["id"])[1])
    # p2 is beyond its grants: it cannot even name it
    assert_error(both.patch("/api/v1/models/" + m["id"], json={"product": p2["id"]}), 400)
    # a refused move changes nothing
    new_mgr = Client(server, make_user(admin, ["manage"], product=p2["id"])[1])
    assert visible(new_mgr, s, s["device"], fw, m) == BLIND
    assert admin.patch("/api/v1/models/" + m["id"], json={"product": p2["id"]}).status_code == 200
    assert admin.patch("/api/v1/models/" + m["id"], json={"product": p1["id"]}).status_code == 200
    assert visible(new_mgr, s, s["device"], fw, m) == BLIND
    assert visible(both, s, s["device"], fw, m) == SEES
