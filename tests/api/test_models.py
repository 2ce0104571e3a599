"""Models: CRUD, product references by uuid and tid, filters, scoped rights when moving a
model between products, and tid rules shared by every configuration object."""
from conftest import assert_error, make_user, unique

BASE = "/api/v1/models/"


def product(admin):
    return admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})


def test_crud_with_product_by_tid_and_uuid(admin):
    p = product(admin)
    by_tid = admin.create(BASE, {"tid": unique("m"), "name": "M1", "product": p["tid"]})
    by_id = admin.create(BASE, {"tid": unique("m"), "name": "M2", "product": p["id"],
                                "description": "second"})
    assert by_tid["product"] == p["id"] and by_id["product"] == p["id"]
    assert by_id["description"] == "second" and by_tid["description"] == ""
    assert set(by_tid) == {"id", "tid", "product", "name", "description", "create_time"}
    r = admin.patch(BASE + by_tid["tid"], json={"description": "changed"})
    assert r.status_code == 200 and r.json()["description"] == "changed"
    assert r.json()["create_time"] == by_tid["create_time"]
    assert admin.get(BASE + by_tid["id"] + "/").json()["description"] == "changed"
    assert admin.delete(BASE + by_tid["tid"] + "/").status_code == 204
    assert_error(admin.get(BASE + by_tid["id"]), 404, "not_found")
    assert_error(admin.delete(BASE + by_tid["id"]), 404, "not_found")


def test_product_filter_by_tid_uuid_and_unknown(admin):
    p1, p2 = product(admin), product(admin)
    m1 = admin.create(BASE, {"tid": unique("m"), "name": "M", "product": p1["id"]})
    admin.create(BASE, {"tid": unique("m"), "name": "M", "product": p2["id"]})
    for key in (p1["id"], p1["tid"]):
        body = admin.get(BASE, params={"product": key}).json()
        assert body["count"] == 1 and [m["id"] for m in body["results"]] == [m1["id"]]
    body = admin.get(BASE, params={"product": "no-such-product"}).json()
    assert body == {"count": 0, "next": None, "results": []}
    body = admin.get(BASE, params={"tid": m1["tid"]}).json()
    assert body["count"] == 1 and body["results"][0]["id"] == m1["id"]


def test_list_is_ordered_by_create_time(admin):
    p = product(admin)
    made = [admin.create(BASE, {"tid": unique("m"), "name": str(i), "product": p["id"]})["id"]
            for i in range(4)]
    got = [m["id"] for m in admin.get(BASE, params={"product": p["id"]}).json()["results"]]
    assert got == made


def test_bad_references_and_fields(admin):
    p = product(admin)
    before = admin.get(BASE, params={"limit": 1000}).json()["count"]
    cases = [
        ({"tid": unique(), "name": "M"}, "product"),
        ({"tid": unique(), "name": "M", "product": "nope"}, "product"),
        ({"tid": unique(), "name": "M", "product": 7}, "product"),
        ({"tid": unique(), "name": "M", "product": None}, "product"),
        ({"tid": unique(), "name": "M", "product": "x" * 65}, "product"),
        ({"tid": unique(), "product": p["id"]}, "name"),
        ({"tid": unique(), "name": "M", "product": p["id"], "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        err = assert_error(admin.post(BASE, json=body), 400, "invalid")
        assert field in err["fields"], (body, err)
    assert admin.get(BASE, params={"limit": 1000}).json()["count"] == before


def test_all_problems_reported_at_once(admin):
    err = assert_error(admin.post(BASE, json={"tid": "bad tid", "name": 3, "x": 1}), 400)
    assert {"tid", "name", "x", "product"} <= set(err["fields"])


def test_uuid_shaped_tid_is_rejected(admin):
    """Lookups match id or tid, so a tid that looks like a uuid could shadow another object."""
    p = product(admin)
    other = admin.create(BASE, {"tid": unique("m"), "name": "M", "product": p["id"]})
    for tid in (other["id"], other["id"].upper(), "0b0e4ab6-6a3c-4a3a-9e6a-1b2c3d4e5f60"):
        err = assert_error(admin.post(BASE, json={"tid": tid, "name": "X", "product": p["id"]}),
                           400, "invalid")
        assert "tid" in err["fields"]
    assert admin.get(BASE + other["id"]).json()["tid"] == other["tid"]
    # 36 characters that are not a uuid are a fine tid
    tid = "a" * 36
    admin.create(BASE, {"tid": tid, "name": "X", "product": p["id"]})
    assert admin.get(BASE + tid).json()["tid"] == tid


def test_tid_unique_per_table_not_across(admin):
    p = product(admin)
    tid = unique("same")
    admin.create("/api/v1/channels/", {"tid": tid, "name": "c"})
    m = admin.create(BASE, {"tid": tid, "name": "M", "product": p["id"]})
    assert admin.get(BASE + tid).json()["id"] == m["id"]
    err = assert_error(admin.post(BASE, json={"tid": tid, "name": "M", "product": p["id"]}),
                       409, "conflict")
    assert "tid" in err["fields"]
    other = admin.create(BASE, {"tid": unique("m"), "name": "M", "product": p["id"]})
    assert_error(admin.patch(BASE + other["id"], json={"tid": tid}), 409, "conflict")
    assert admin.get(BASE + other["id"]).json()["tid"] == other["tid"]


def test_patch_edge_cases(admin):
    p = product(admin)
    m = admin.create(BASE, {"tid": unique("m"), "name": "M", "product": p["id"]})
    # an empty body, a non-object and a non-JSON body are refused and change nothing
    assert_error(admin.patch(BASE + m["id"]), 400, "invalid")
    assert_error(admin.patch(BASE + m["id"], json=[{"name": "x"}]), 400, "invalid")
    assert_error(admin.patch(BASE + m["id"], json="name"), 400)
    assert_error(admin.patch(BASE + m["id"], data="{", headers={
        "Content-Type": "application/json"}), 400, "malformed_json")
    # an empty object changes nothing and answers the object
    r = admin.patch(BASE + m["id"], json={})
    assert r.status_code == 200 and r.json() == m
    # read-only fields are ignored on input
    r = admin.patch(BASE + m["id"], json={"id": "x", "create_time": "2000-01-01T00:00:00Z",
                                          "name": "N"})
    assert r.status_code == 200
    assert r.json()["id"] == m["id"] and r.json()["create_time"] == m["create_time"]
    assert r.json()["name"] == "N"
    assert_error(admin.patch(BASE + m["id"], json={"product": "missing"}), 400, "invalid")
    assert_error(admin.patch(BASE + "missing", json={"name": "x"}), 404, "not_found")
    assert admin.get(BASE + m["id"]).json()["product"] == p["id"]


def test_moving_a_model_needs_manage_on_both_products(admin, server):
    from conftest import Client
    p1, p2 = product(admin), product(admin)
    m = admin.create(BASE, {"tid": unique("m"), "name": "M", "product": p1["id"]})
    _, tok = make_user(admin, ["manage"], product=p1["id"])
    c = Client(server, tok)
    assert c.get(BASE + m["id"]).status_code == 200
    # p2 is beyond its grants: a product it cannot name, as if there were none
    assert_error(c.patch(BASE + m["id"], json={"product": p2["id"]}), 400, "invalid")
    assert admin.get(BASE + m["id"]).json()["product"] == p1["id"]
    # with manage over both it works
    admin.create("/api/v1/access-rights/", {"user": c.get("/api/v1/tokens/").json()[
        "results"][0]["user"], "action": "manage", "product": p2["id"]})
    r = c.patch(BASE + m["id"], json={"product": p2["tid"]})
    assert r.status_code == 200 and r.json()["product"] == p2["id"]
    # a manager of p2 alone cannot pull a model out of p1
    m1 = admin.create(BASE, {"tid": unique("m"), "name": "M", "product": p1["id"]})
    _, tok2 = make_user(admin, ["manage"], product=p2["id"])
    assert_error(Client(server, tok2).patch(BASE + m1["id"], json={"product": p2["id"]}),
                 404, "not_found")


def test_scoped_manager_sees_only_its_models(admin, server):
    from conftest import Client
    p1, p2 = product(admin), product(admin)
    m1 = admin.create(BASE, {"tid": unique("m"), "name": "M", "product": p1["id"]})
    m2 = admin.create(BASE, {"tid": unique("m"), "name": "M", "product": p2["id"]})
    _, tok = make_user(admin, ["manage"], product=p1["id"])
    c = Client(server, tok)
    ids = {m["id"] for m in c.get(BASE, params={"limit": 1000}).json()["results"]}
    assert m1["id"] in ids and m2["id"] not in ids
    assert_error(c.get(BASE + m2["id"]), 404, "not_found")
    assert_error(c.post(BASE, json={"tid": unique("m"), "name": "M", "product": p2["id"]}),
                 400, "invalid")
    assert c.create(BASE, {"tid": unique("m"), "name": "M", "product": p1["tid"]})


def test_delete_model_with_device_is_409(admin):
    p = product(admin)
    m = admin.create(BASE, {"tid": unique("m"), "name": "M", "product": p["id"]})
    admin.create("/api/v1/devices/", {"device_id": "dev-1", "model": m["id"]})
    assert_error(admin.delete(BASE + m["id"]), 409, "referenced")
    assert admin.get(BASE + m["id"]).status_code == 200


def test_next_link_keeps_filters(admin):
    p = product(admin)
    made = [admin.create(BASE, {"tid": unique("m"), "name": "M", "product": p["id"]})["id"]
            for _ in range(3)]
    admin.create(BASE, {"tid": unique("m"), "name": "M", "product": product(admin)["id"]})
    page = admin.get(BASE, params={"product": p["tid"], "limit": 2}).json()
    assert page["count"] == 3 and "product=" in page["next"]
    rest = admin.get(page["next"]).json()
    assert [m["id"] for m in page["results"] + rest["results"]] == made
    assert rest["next"] is None
