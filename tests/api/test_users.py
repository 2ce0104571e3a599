"""Users: admin-only CRUD, deactivation and deletion take effect at once, deleting a user
removes its tokens and grants, an admin cannot lock themselves out."""
from conftest import Client, assert_error, make_user, unique

BASE = "/api/v1/users/"


def test_crud(admin):
    tid = unique("u")
    u = admin.create(BASE, {"tid": tid, "name": "Ann", "email": "ann@example.com"})
    assert set(u) == {"id", "tid", "name", "email", "is_active", "create_time"}
    assert u["is_active"] is True and u["email"] == "ann@example.com"
    assert admin.get(BASE + tid).json() == u
    r = admin.patch(BASE + u["id"], json={"name": "Ann B", "is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False
    ids = {x["id"] for x in admin.get(BASE, params={"is_active": "false",
                                                    "limit": 1000}).json()["results"]}
    assert u["id"] in ids
    ids = {x["id"] for x in admin.get(BASE, params={"is_active": "true",
                                                    "limit": 1000}).json()["results"]}
    assert u["id"] not in ids
    assert_error(admin.get(BASE, params={"is_active": "maybe"}), 400, "invalid")
    assert admin.delete(BASE + tid).status_code == 204
    assert_error(admin.get(BASE + u["id"]), 404)


def test_bootstrap_admin_exists(admin):
    body = admin.get(BASE, params={"tid": "admin"}).json()
    assert body["count"] == 1 and body["results"][0]["name"] == "admin"


def test_bad_input(admin):
    tid = unique("u")
    admin.create(BASE, {"tid": tid, "name": "x"})
    assert_error(admin.post(BASE, json={"tid": tid, "name": "y"}), 409, "conflict")
    for body, field in [({"name": "x"}, "tid"), ({"tid": unique()}, "name"),
                        ({"tid": unique(), "name": "x", "is_active": "no"}, "is_active"),
                        ({"tid": unique(), "name": "x", "email": 5}, "email"),
                        ({"tid": unique(), "name": "x", "password": "p"}, "password")]:
        err = assert_error(admin.post(BASE, json=body), 400, "invalid")
        assert field in err["fields"]


def test_users_are_admin_only(admin, server):
    u, tok = make_user(admin, ["manage"])
    c = Client(server, tok)
    assert_error(c.get(BASE), 403, "forbidden")
    assert_error(c.get(BASE + u["id"]), 403, "forbidden")
    assert_error(c.post(BASE, json={"tid": unique(), "name": "x"}), 403, "forbidden")
    assert_error(c.patch(BASE + u["id"], json={"name": "me"}), 403, "forbidden")
    assert_error(c.delete(BASE + u["id"]), 403, "forbidden")
    assert admin.get(BASE + u["id"]).json()["name"] == "User"


def test_deactivation_takes_effect_at_once(admin, server):
    u, tok = make_user(admin, ["manage"])
    c = Client(server, tok)
    for _ in range(3):  # warm the authentication cache
        assert c.get("/api/v1/products/").status_code == 200
    admin.patch(BASE + u["id"], json={"is_active": False})
    r = c.get("/api/v1/products/")
    assert_error(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"] == "Token"
    admin.patch(BASE + u["id"], json={"is_active": True})
    assert c.get("/api/v1/products/").status_code == 200


def test_delete_user_removes_tokens_and_grants(admin, server):
    u, tok = make_user(admin, ["manage"])
    c = Client(server, tok)
    assert c.get("/api/v1/products/").status_code == 200
    assert admin.get("/api/v1/tokens/", params={"user": u["id"]}).json()["count"] == 1
    assert admin.get("/api/v1/access-rights/", params={"user": u["id"]}).json()["count"] == 1
    assert admin.delete(BASE + u["id"]).status_code == 204
    assert_error(c.get("/api/v1/products/"), 401, "unauthorized")
    assert admin.get("/api/v1/tokens/", params={"user": u["id"]}).json()["count"] == 0
    assert admin.get("/api/v1/access-rights/", params={"user": u["id"]}).json()["count"] == 0


def test_admin_cannot_deactivate_self(admin):
    me = admin.get(BASE, params={"tid": "admin"}).json()["results"][0]
    err = assert_error(admin.patch(BASE + me["id"], json={"is_active": False}), 400, "invalid")
    assert "is_active" in err["fields"]
    assert admin.get(BASE + me["id"]).json()["is_active"] is True
