"""Devices (twins): CRUD, device_id unique per model, references by uuid and tid in every
reference field, filters, read-only session facts, model+channel scoped rights, and deletion
while sessions refer to the device."""
from conftest import Client, assert_error, make_user, unique
from sessutil import FU, new_session, procedure, upload_fw, wait_for

BASE = "/api/v1/devices/"


def test_crud_and_read_only_fields(admin, catalog):
    m, c = catalog["model"], catalog["channel"]
    d = admin.create(BASE, {"device_id": "AA:BB", "model": m["tid"], "channel": c["tid"],
                            "current_firmware_version": "1.0.0",
                            "last_state": "success", "last_seen": "2020-01-01T00:00:00Z"})
    assert d["model"] == m["id"] and d["channel"] == c["id"]
    assert d["current_firmware_version"] == "1.0.0" and d["current_firmware"] is None
    assert d["last_state"] is None and d["last_seen"] is None and d["last_session"] is None
    assert "tid" not in d
    assert admin.get(BASE + d["id"]).json() == d
    r = admin.patch(BASE + d["id"], json={"channel": None, "current_firmware_version": "1.1.0"})
    assert r.status_code == 200 and r.json()["channel"] is None
    assert r.json()["current_firmware_version"] == "1.1.0"
    assert_error(admin.patch(BASE + d["id"], json={"current_firmware_version": "1.1"}), 400,
                 "invalid")
    assert admin.delete(BASE + d["id"]).status_code == 204
    assert_error(admin.get(BASE + d["id"]), 404)


def test_device_id_unique_per_model(admin, catalog):
    m = catalog["model"]
    m2 = admin.create("/api/v1/models/", {"tid": unique("m"), "name": "M2",
                                          "product": catalog["product"]["id"]})
    admin.create(BASE, {"device_id": "dev-1", "model": m["id"]})
    assert_error(admin.post(BASE, json={"device_id": "dev-1", "model": m["tid"]}), 409,
                 "conflict")
    admin.create(BASE, {"device_id": "dev-1", "model": m2["id"]})
    assert admin.get(BASE, params={"device_id": "dev-1", "model": m["id"]}).json()["count"] == 1
    assert admin.get(BASE, params={"device_id": "dev-1", "model": m2["tid"]}).json()[
        "count"] == 1


def test_filters(admin, catalog):
    m, c = catalog["model"], catalog["channel"]
    a = admin.create(BASE, {"device_id": unique("d"), "model": m["id"], "channel": c["id"]})
    b = admin.create(BASE, {"device_id": unique("d"), "model": m["id"]})

    def ids(**params):
        return [x["id"] for x in admin.get(BASE, params=params).json()["results"]]
    assert ids(model=m["id"]) == [a["id"], b["id"]]
    assert ids(model=m["id"], channel=c["tid"]) == [a["id"]]
    assert ids(model=m["id"], channel="null") == [b["id"]]
    assert ids(model=m["id"], current_firmware="null") == [a["id"], b["id"]]
    assert ids(device_id=a["device_id"]) == [a["id"]]
    assert ids(model="no-such-model") == []
    assert ids(model=m["id"], last_state="success") == []


def test_bad_input(admin, catalog):
    m = catalog["model"]
    cases = [({"model": m["id"]}, "device_id"), ({"device_id": "x"}, "model"),
             ({"device_id": "", "model": m["id"]}, "device_id"),
             ({"device_id": "x", "model": "nope"}, "model"),
             ({"device_id": "x", "model": m["id"], "channel": "nope"}, "channel"),
             ({"device_id": "x", "model": m["id"], "current_firmware": "nope"},
              "current_firmware"),
             ({"device_id": "x", "model": m["id"], "current_firmware_version": "v1"},
              "current_firmware_version"),
             ({"device_id": "x", "model": m["id"], "tid": "x"}, "tid")]
    before = admin.get(BASE, params={"limit": 1000}).json()["count"]
    for body, field in cases:
        err = assert_error(admin.post(BASE, json=body), 400, "invalid")
        assert field in err["fields"], (body, err)
    assert admin.get(BASE, params={"limit": 1000}).json()["count"] == before


def test_rights_by_model_and_channel(admin, server, catalog):
    m, c = catalog["model"], catalog["channel"]
    c2 = admin.create("/api/v1/channels/", {"tid": unique("c"), "name": "beta"})
    in_scope = admin.create(BASE, {"device_id": unique("d"), "model": m["id"],
                                   "channel": c["id"]})
    other_chan = admin.create(BASE, {"device_id": unique("d"), "model": m["id"],
                                     "channel": c2["id"]})
    _, tok = make_user(admin, ["manage"], model=m["id"], channel=c["id"])
    cl = Client(server, tok)
    got = {d["id"] for d in cl.get(BASE, params={"limit": 1000}).json()["results"]}
    assert got == {in_scope["id"]}
    assert cl.get(BASE + in_scope["id"]).status_code == 200
    # a model+channel grant still sees the model: another channel's device is 403, not 404
    assert_error(cl.get(BASE + other_chan["id"]), 403, "forbidden")
    other_model = admin.create("/api/v1/models/", {"tid": unique("m"), "name": "M",
                                                   "product": catalog["product"]["id"]})
    hidden = admin.create(BASE, {"device_id": unique("d"), "model": other_model["id"],
                                 "channel": c["id"]})
    assert_error(cl.get(BASE + hidden["id"]), 404, "not_found")
    assert_error(cl.post(BASE, json={"device_id": unique("d"), "model": m["id"],
                                     "channel": c2["id"]}), 403, "forbidden")
    assert_error(cl.patch(BASE + in_scope["id"], json={"channel": c2["id"]}), 403, "forbidden")
    assert admin.get(BASE + in_scope["id"]).json()["channel"] == c["id"]
    assert cl.create(BASE, {"device_id": unique("d"), "model": m["tid"], "channel": c["tid"]})
    # update alone does not allow managing devices
    _, tok = make_user(admin, ["update"], model=m["id"])
    assert_error(Client(server, tok).get(BASE), 403, "forbidden")


def test_a_device_with_an_unfinished_session_cannot_be_deleted(admin, catalog):
    """A device is referenced while one of its sessions is not finished (409 referenced);
    once all are finished it may go, and its sessions keep their history: the device's
    name, device null."""
    upload_fw(admin, catalog, "2.0.0")
    # 3 s: the delete and get below come before the session finishes on a loaded machine
    dp = procedure(admin, catalog, ready_timeout=3, retention=1)
    name = unique("dev")
    s = new_session(admin, catalog, dp, "1.0.0", device_id=name)
    body = assert_error(admin.delete(BASE + s["device"]), 409, "referenced")
    assert "session" in body["detail"]
    assert admin.get(BASE + s["device"]).status_code == 200
    wait_for(admin, s["id"], lambda x: x["finished"], timeout=20)
    assert admin.delete(BASE + s["device"]).status_code == 204
    assert_error(admin.get(BASE + s["device"]), 404, "not_found")
    after = admin.get(FU + s["id"]).json()
    assert after["device"] is None and after["device_id"] == name
    assert after["state"] == "ready" and after["history"] == s["history"]
    assert admin.get(FU, params={"device": name}).json()["count"] == 1
