"""Delivery methods and procedures: CRUD, method references by uuid and tid, steps
validation against the plugin registry, `exec` steps for admins only, timeouts."""
from conftest import Client, assert_error, make_user, unique

METHODS = "/api/v1/delivery-methods/"
PROCS = "/api/v1/delivery-procedures/"


def method(admin, kind="http"):
    return admin.create(METHODS, {"tid": unique("dm"), "name": "M", "kind": kind})


def test_method_crud_and_filter(admin):
    m = method(admin, kind="coap")
    assert set(m) == {"id", "tid", "name", "kind", "create_time"}
    assert m["kind"] == "coap"
    found = admin.get(METHODS, params={"kind": "coap", "limit": 1000}).json()["results"]
    assert m["id"] in {x["id"] for x in found}
    assert all(x["kind"] == "coap" for x in found)
    r = admin.patch(METHODS + m["tid"], json={"kind": "mesh-smp"})
    assert r.status_code == 200 and r.json()["kind"] == "mesh-smp"
    for bad in ({"kind": ""}, {"kind": "has space"}, {"kind": 3}, {"name": None}):
        err = assert_error(admin.patch(METHODS + m["id"], json=bad), 400, "invalid")
        assert set(bad) <= set(err["fields"])
    assert admin.get(METHODS + m["id"]).json()["kind"] == "mesh-smp"
    assert_error(admin.post(METHODS, json={"tid": unique(), "name": "M"}), 400, "invalid")
    assert admin.delete(METHODS + m["id"]).status_code == 204


def test_procedure_defaults_and_refs(admin):
    m = method(admin)
    for ref in (m["id"], m["tid"]):
        p = admin.create(PROCS, {"tid": unique("dp"), "name": "P", "delivery_method": ref})
        assert p["delivery_method"] == m["id"]
        assert p["steps"] == [] and p["confirm"] is False
        assert p["ready_timeout"] == 3600 and p["processing_timeout"] == 3600
        assert p["confirm_timeout"] == 86400 and p["retention"] == 604800
    body = admin.get(PROCS, params={"delivery_method": m["tid"]}).json()
    assert body["count"] == 2
    assert_error(admin.delete(METHODS + m["id"]), 409, "referenced")


def test_procedure_full_and_patch(admin):
    m = method(admin, "mesh-smp")
    steps = [{"plugin": "link"},
             {"plugin": "mesh_smp", "params": {"udp": {"host": "127.0.0.1", "port": 1337},
                                               "receivers": [{"addr": 2, "img_idx": 0}]}}]
    p = admin.create(PROCS, {"tid": unique("dp"), "name": "Mesh", "delivery_method": m["id"],
                             "steps": steps, "confirm": True, "ready_timeout": 5,
                             "processing_timeout": 60, "confirm_timeout": 120,
                             "retention": 1})
    assert p["steps"] == steps and p["confirm"] is True and p["ready_timeout"] == 5
    assert admin.get(PROCS + p["tid"]).json() == p
    r = admin.patch(PROCS + p["id"], json={"steps": [{"plugin": "link", "params": {}}],
                                           "confirm": False})
    assert r.status_code == 200
    assert r.json()["steps"] == [{"plugin": "link", "params": {}}]
    assert r.json()["confirm"] is False and r.json()["ready_timeout"] == 5
    # a patch that leaves steps alone keeps them
    r = admin.patch(PROCS + p["id"], json={"name": "renamed"})
    assert r.json()["steps"] == [{"plugin": "link", "params": {}}]


def test_steps_validation(admin):
    m = method(admin)
    p = admin.create(PROCS, {"tid": unique("dp"), "name": "P", "delivery_method": m["id"],
                             "steps": [{"plugin": "link"}]})
    before = admin.get(PROCS, params={"limit": 1000}).json()["count"]
    bad = [
        "link",
        {"plugin": "link"},
        ["link"],
        [{"params": {}}],
        [{"plugin": 5}],
        [{"plugin": "nope"}],
        [{"plugin": "link", "params": []}],
        [{"plugin": "link", "extra": 1}],
        [{"plugin": "link"}] * 33,
        [{"plugin": "link"}, 7],
    ]
    for steps in bad:
        body = {"tid": unique("dp"), "name": "P", "delivery_method": m["id"], "steps": steps}
        err = assert_error(admin.post(PROCS, json=body), 400, "invalid")
        assert "steps" in err["fields"], (steps, err)
        err = assert_error(admin.patch(PROCS + p["id"], json={"steps": steps}), 400, "invalid")
        assert "steps" in err["fields"], (steps, err)
    assert admin.get(PROCS, params={"limit": 1000}).json()["count"] == before
    assert admin.get(PROCS + p["id"]).json()["steps"] == [{"plugin": "link"}]


def test_timeouts_and_types(admin):
    m = method(admin)
    for field in ("ready_timeout", "processing_timeout", "confirm_timeout", "retention"):
        for v in (0, -1, 315360001, "60", 1.5, None):
            body = {"tid": unique("dp"), "name": "P", "delivery_method": m["id"], field: v}
            err = assert_error(admin.post(PROCS, json=body), 400, "invalid")
            assert field in err["fields"]
    for body, field in [({"confirm": "yes"}, "confirm"), ({"confirm": 1}, "confirm"),
                        ({"delivery_method": "missing"}, "delivery_method"),
                        ({"delivery_method": None}, "delivery_method")]:
        full = {"tid": unique("dp"), "name": "P", "delivery_method": m["id"]}
        full.update(body)
        err = assert_error(admin.post(PROCS, json=full), 400, "invalid")
        assert field in err["fields"]


def test_exec_steps_are_admin_only(admin, server):
    m = method(admin)
    _, tok = make_user(admin, ["manage"])
    mgr = Client(server, tok)
    exec_steps = [{"plugin": "exec", "params": {"program": "/bin/true"}}]
    body = {"tid": unique("dp"), "name": "P", "delivery_method": m["id"], "steps": exec_steps}
    assert_error(mgr.post(PROCS, json=body), 403, "forbidden")
    assert_error(admin.get(PROCS + body["tid"]), 404)
    p = mgr.create(PROCS, {"tid": unique("dp"), "name": "P", "delivery_method": m["id"]})
    assert_error(mgr.patch(PROCS + p["id"], json={"steps": exec_steps}), 403, "forbidden")
    assert admin.get(PROCS + p["id"]).json()["steps"] == []
    e = admin.create(PROCS, body)
    assert e["steps"] == exec_steps
    # the manager may still rename it but cannot change its steps
    assert mgr.patch(PROCS + e["id"], json={"name": "renamed"}).status_code == 200
    assert_error(mgr.patch(PROCS + e["id"], json={"steps": exec_steps}), 403, "forbidden")


def test_scoped_manager_cannot_manage_methods(admin, server):
    prod = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
    _, tok = make_user(admin, ["manage"], product=prod["id"])
    c = Client(server, tok)
    assert_error(c.post(METHODS, json={"tid": unique(), "name": "M", "kind": "http"}), 403)
    m = method(admin)
    assert_error(c.post(PROCS, json={"tid": unique(), "name": "P", "delivery_method": m["id"]}),
                 403)
    _, tok = make_user(admin, ["upload"])
    assert_error(Client(server, tok).get(METHODS), 403, "forbidden")
