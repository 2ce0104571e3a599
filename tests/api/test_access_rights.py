"""Access rights: admin-only grants over everything, a product, a model or model+channel;
scope consistency checks; every change takes effect at once."""
from conftest import Client, assert_error, make_user, unique

BASE = "/api/v1/access-rights/"


def test_grant_scopes(admin, catalog):
    u, _ = make_user(admin, [])
    p, m, c = catalog["product"], catalog["model"], catalog["channel"]
    g = admin.create(BASE, {"user": u["tid"], "action": "manage"})
    assert set(g) == {"id", "tid", "user", "action", "product", "model", "channel",
                      "create_time"}
    assert g["product"] is None and g["model"] is None and g["channel"] is None
    g = admin.create(BASE, {"user": u["id"], "action": "upload", "product": p["tid"]})
    assert g["product"] == p["id"] and g["model"] is None
    # a model scope records the model's product too
    g = admin.create(BASE, {"user": u["id"], "action": "update", "model": m["tid"]})
    assert g["model"] == m["id"] and g["product"] == p["id"]
    g = admin.create(BASE, {"user": u["id"], "action": "draft", "model": m["id"],
                            "channel": c["tid"], "tid": unique("g")})
    assert g["channel"] == c["id"] and g["product"] == p["id"]
    assert admin.get(BASE + g["tid"]).json() == g
    listed = admin.get(BASE, params={"user": u["id"]}).json()
    assert listed["count"] == 4
    assert admin.get(BASE, params={"user": u["tid"], "action": "draft"}).json()["count"] == 1
    assert admin.get(BASE, params={"model": m["id"], "user": u["id"]}).json()["count"] == 2
    assert admin.get(BASE, params={"product": "null", "user": u["id"]}).json()["count"] == 1


def test_bad_grants(admin, catalog):
    u, _ = make_user(admin, [])
    p, m, c = catalog["product"], catalog["model"], catalog["channel"]
    other = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
    cases = [
        ({"user": u["id"], "action": "root"}, "action"),
        ({"user": u["id"]}, "action"),
        ({"action": "manage"}, "user"),
        ({"user": "nobody", "action": "manage"}, "user"),
        ({"user": u["id"], "action": "admin", "product": p["id"]}, "action"),
        ({"user": u["id"], "action": "manage", "channel": c["id"]}, "channel"),
        ({"user": u["id"], "action": "manage", "model": m["id"], "product": other["id"]},
         "product"),
        ({"user": u["id"], "action": "manage", "model": "nope"}, "model"),
    ]
    for body, field in cases:
        err = assert_error(admin.post(BASE, json=body), 400, "invalid")
        assert field in err["fields"], (body, err)
    assert admin.get(BASE, params={"user": u["id"]}).json()["count"] == 0


def test_admin_only(admin, server, catalog):
    u, tok = make_user(admin, ["manage"])
    c = Client(server, tok)
    assert_error(c.get(BASE), 403, "forbidden")
    assert_error(c.post(BASE, json={"user": u["id"], "action": "admin"}), 403, "forbidden")
    g = admin.get(BASE, params={"user": u["id"]}).json()["results"][0]
    assert_error(c.delete(BASE + g["id"]), 403, "forbidden")
    assert admin.get(BASE, params={"user": u["id"]}).json()["count"] == 1


def test_grant_and_revoke_take_effect_at_once(admin, server, catalog):
    u, tok = make_user(admin, [])
    c = Client(server, tok)
    p = catalog["product"]
    # beyond every grant: as if it did not exist
    assert_error(c.get("/api/v1/products/" + p["id"]), 404)
    g = admin.create(BASE, {"user": u["id"], "action": "manage", "product": p["id"]})
    assert c.get("/api/v1/products/" + p["id"]).status_code == 200
    # narrowing the grant to another product hides this one at once
    other = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
    r = admin.patch(BASE + g["id"], json={"product": other["id"]})
    assert r.status_code == 200 and r.json()["product"] == other["id"]
    assert_error(c.get("/api/v1/products/" + p["id"]), 404)
    assert c.get("/api/v1/products/" + other["id"]).status_code == 200
    assert admin.delete(BASE + g["id"]).status_code == 204
    assert_error(c.get("/api/v1/products/" + other["id"]), 404)


def test_patch_model_scope_moves_product_too(admin, server, catalog):
    """Changing a model-scoped grant to a model of another product must not keep the old
    product: the grant then covers the new model."""
    u, tok = make_user(admin, [])
    m1 = catalog["model"]
    p2 = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P2"})
    m2 = admin.create("/api/v1/models/", {"tid": unique("m"), "name": "M2",
                                          "product": p2["id"]})
    g = admin.create(BASE, {"user": u["id"], "action": "manage", "model": m1["id"]})
    r = admin.patch(BASE + g["id"], json={"model": m2["tid"]})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == m2["id"] and r.json()["product"] == p2["id"]
    c = Client(server, tok)
    assert c.get("/api/v1/models/" + m2["id"]).status_code == 200
    assert_error(c.get("/api/v1/models/" + m1["id"]), 404)
    # dropping the model keeps a product scope, which is consistent
    r = admin.patch(BASE + g["id"], json={"model": None})
    assert r.status_code == 200 and r.json()["product"] == p2["id"]


def test_referenced_scope_cannot_be_deleted(admin, catalog):
    u, _ = make_user(admin, [])
    p = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
    admin.create(BASE, {"user": u["id"], "action": "manage", "product": p["id"]})
    assert_error(admin.delete("/api/v1/products/" + p["id"]), 409, "referenced")


def test_a_model_grant_follows_its_model_to_another_product(admin, server, catalog):
    """A grant over a model covers the model where it is now: moving the model to another
    product neither strands its grants nor leaves a cached principal behind."""
    m = catalog["model"]
    _, tok = make_user(admin, ["manage"], model=m["id"])
    c = Client(server, tok)
    assert c.get("/api/v1/models/" + m["id"]).status_code == 200  # cached now
    p2 = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P2"})
    assert admin.patch("/api/v1/models/" + m["id"], json={"product": p2["id"]}).status_code == 200
    got = c.get("/api/v1/models/" + m["id"])
    assert got.status_code == 200 and got.json()["product"] == p2["id"]
    assert c.patch("/api/v1/models/" + m["id"], json={"name": "renamed"}).status_code == 200
    assert [x["id"] for x in c.get("/api/v1/models/").json()["results"]] == [m["id"]]
