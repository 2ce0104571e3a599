"""Authentication and the rights matrix: 401 (with WWW-Authenticate: Token) for missing,
malformed, unknown, revoked and expired tokens; Token and Bearer schemes; 403 versus 404
for product, model and model+channel scoped grants; admin-only resources."""
import uuid

import pytest

from conftest import Client, assert_error, make_user, unique

PRODUCTS = "/api/v1/products/"
MODELS = "/api/v1/models/"
DEVICES = "/api/v1/devices/"


def assert_401(r):
    assert_error(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("header", [None, "", "Token", "Token ", "Basic YWRtaW46YWRtaW4=",
                                    "Token nope", "Bearer nope", "Token " + "x" * 300,
                                    "tokenx adm"])
def test_bad_credentials_are_401(anon, header):
    headers = {"Authorization": header} if header is not None else {}
    for path in (PRODUCTS, "/api/v1/tokens/", "/api/v1/users/x"):
        assert_401(anon.get(path, headers=headers))
    assert_401(anon.post(PRODUCTS, json={"tid": unique(), "name": "x"}, headers=headers))


def test_401_before_body_is_looked_at(anon, admin):
    before = admin.get(PRODUCTS, params={"limit": 1000}).json()["count"]
    assert_401(anon.post(PRODUCTS, data="{not json", headers={
        "Content-Type": "application/json"}))
    assert admin.get(PRODUCTS, params={"limit": 1000}).json()["count"] == before


def test_token_and_bearer_schemes(server, admin):
    tok = server.admin_token
    for h in (f"Token {tok}", f"Bearer {tok}", f"token {tok}", f"BEARER {tok}",
              f"Token   {tok}"):
        r = admin.get(PRODUCTS, headers={"Authorization": h})
        assert r.status_code == 200, h


def test_revoked_and_expired_are_401(admin, server):
    u, tok = make_user(admin, ["manage"])
    c = Client(server, tok)
    assert c.get(PRODUCTS).status_code == 200
    t = admin.get("/api/v1/tokens/", params={"user": u["id"]}).json()["results"][0]
    admin.patch("/api/v1/tokens/" + t["id"], json={"revoked": True})
    assert_401(c.get(PRODUCTS))
    _, tok = make_user(admin, ["manage"])
    c = Client(server, tok)
    t = c.get("/api/v1/tokens/").json()["results"][0]
    admin.patch("/api/v1/tokens/" + t["id"], json={"expire_time": "2020-01-01T00:00:00Z"})
    assert_401(c.get(PRODUCTS))


def test_public_endpoints_need_no_token(anon):
    assert anon.get("/healthz").status_code == 200
    assert anon.get("/metrics").status_code == 200


@pytest.fixture
def world(admin):
    """Two products; p1 has models m1, m1b; p2 has m2; channels c1, c2; a device on each
    (model, channel) pair that matters."""
    p1 = admin.create(PRODUCTS, {"tid": unique("p"), "name": "P1"})
    p2 = admin.create(PRODUCTS, {"tid": unique("p"), "name": "P2"})
    m1 = admin.create(MODELS, {"tid": unique("m"), "name": "M1", "product": p1["id"]})
    m1b = admin.create(MODELS, {"tid": unique("m"), "name": "M1b", "product": p1["id"]})
    m2 = admin.create(MODELS, {"tid": unique("m"), "name": "M2", "product": p2["id"]})
    c1 = admin.create("/api/v1/channels/", {"tid": unique("c"), "name": "c1"})
    c2 = admin.create("/api/v1/channels/", {"tid": unique("c"), "name": "c2"})
    dev = {}
    for m in (m1, m1b, m2):
        for c in (c1, c2):
            dev[(m["tid"], c["tid"])] = admin.create(DEVICES, {
                "device_id": unique("d"), "model": m["id"], "channel": c["id"]})
    return dict(p1=p1, p2=p2, m1=m1, m1b=m1b, m2=m2, c1=c1, c2=c2, dev=dev)


def status(c, path):
    return c.get(path).status_code


def test_product_scope(admin, server, world):
    w = world
    _, tok = make_user(admin, ["manage"], product=w["p1"]["id"])
    c = Client(server, tok)
    assert status(c, PRODUCTS + w["p1"]["id"]) == 200
    assert status(c, PRODUCTS + w["p2"]["id"]) == 404
    assert status(c, MODELS + w["m1"]["id"]) == 200
    assert status(c, MODELS + w["m1b"]["id"]) == 200
    assert status(c, MODELS + w["m2"]["id"]) == 404
    assert status(c, DEVICES + w["dev"][(w["m1b"]["tid"], w["c2"]["tid"])]["id"]) == 200
    assert status(c, DEVICES + w["dev"][(w["m2"]["tid"], w["c1"]["tid"])]["id"]) == 404
    names = {p["id"] for p in c.get(PRODUCTS, params={"limit": 1000}).json()["results"]}
    assert names == {w["p1"]["id"]}
    assert_error(c.post(PRODUCTS, json={"tid": unique(), "name": "x"}), 403, "forbidden")
    assert_error(c.delete(PRODUCTS + w["p2"]["id"]), 404, "not_found")
    r = c.patch(PRODUCTS + w["p1"]["id"], json={"description": "mine"})
    assert r.status_code == 200


def test_model_scope(admin, server, world):
    w = world
    _, tok = make_user(admin, ["manage"], model=w["m1"]["id"])
    c = Client(server, tok)
    # a grant narrower than the product does not reveal the product object
    assert_error(c.get(PRODUCTS + w["p1"]["id"]), 404, "not_found")
    assert_error(c.patch(PRODUCTS + w["p1"]["id"], json={"name": "x"}), 404, "not_found")
    assert status(c, PRODUCTS + w["p2"]["id"]) == 404
    assert status(c, MODELS + w["m1"]["id"]) == 200
    assert status(c, MODELS + w["m1b"]["id"]) == 404
    assert status(c, DEVICES + w["dev"][(w["m1"]["tid"], w["c2"]["tid"])]["id"]) == 200
    assert status(c, DEVICES + w["dev"][(w["m1b"]["tid"], w["c1"]["tid"])]["id"]) == 404
    got = {m["id"] for m in c.get(MODELS, params={"limit": 1000}).json()["results"]}
    assert got == {w["m1"]["id"]}
    # nor can it name it (400 as for a product that does not exist)
    assert_error(c.post(MODELS, json={"tid": unique(), "name": "x",
                                      "product": w["p1"]["id"]}), 400, "invalid")


def test_model_channel_scope(admin, server, world):
    w = world
    _, tok = make_user(admin, ["manage"], model=w["m1"]["id"], channel=w["c1"]["id"])
    c = Client(server, tok)
    d = w["dev"]
    assert status(c, DEVICES + d[(w["m1"]["tid"], w["c1"]["tid"])]["id"]) == 200
    assert status(c, DEVICES + d[(w["m1"]["tid"], w["c2"]["tid"])]["id"]) == 403
    assert status(c, DEVICES + d[(w["m1b"]["tid"], w["c1"]["tid"])]["id"]) == 404
    assert status(c, DEVICES + d[(w["m2"]["tid"], w["c1"]["tid"])]["id"]) == 404
    # the model itself is seen but not managed by a channel-narrowed grant
    assert status(c, MODELS + w["m1"]["id"]) == 403
    got = {x["id"] for x in c.get(DEVICES, params={"limit": 1000}).json()["results"]}
    assert got == {d[(w["m1"]["tid"], w["c1"]["tid"])]["id"]}


def test_lesser_actions_do_not_manage(admin, server, world):
    for action in ("upload", "update", "draft"):
        _, tok = make_user(admin, [action])
        c = Client(server, tok)
        assert_error(c.get(PRODUCTS), 403, "forbidden")
        assert_error(c.post(PRODUCTS, json={"tid": unique(), "name": "x"}), 403, "forbidden")
        assert_error(c.get(MODELS + world["m1"]["id"]), 403, "forbidden")


def test_admin_only_resources(admin, server):
    _, tok = make_user(admin, ["manage"])
    c = Client(server, tok)
    for path in ("/api/v1/users/", "/api/v1/access-rights/"):
        assert_error(c.get(path), 403, "forbidden")
        assert_error(c.post(path, json={}), 403, "forbidden")
    _, tok = make_user(admin, ["admin"])
    c = Client(server, tok)
    assert c.get("/api/v1/users/").status_code == 200
    assert c.get("/api/v1/access-rights/").status_code == 200


def test_users_manage_only_own_tokens(admin, server):
    a, ta = make_user(admin, ["update"])
    b, tb = make_user(admin, ["update"])
    ca = Client(server, ta)
    own = ca.get("/api/v1/tokens/").json()
    assert own["count"] == 1 and own["results"][0]["user"] == a["id"]
    other = admin.get("/api/v1/tokens/", params={"user": b["id"]}).json()["results"][0]
    assert_error(ca.get("/api/v1/tokens/" + other["id"]), 404, "not_found")
    assert_error(ca.patch("/api/v1/tokens/" + other["id"], json={"revoked": True}), 404)
    assert Client(server, tb).get("/api/v1/tokens/").status_code == 200


def test_an_id_that_names_nothing_is_404_for_every_caller(admin, server, world):
    """Existence is decided before rights: whatever the caller holds, an id that names
    nothing is 404, and so is an existing object beyond every grant of the caller; one it
    sees but has no right over stays 403."""
    nothing = str(uuid.uuid4())
    _, device = make_user(admin, ["update"], model=world["m1"]["id"])
    _, bare = make_user(admin, [])
    _, manager = make_user(admin, ["manage"], product=world["p1"]["id"])
    crud = ("products", "models", "channels", "delivery-methods", "delivery-procedures",
            "devices", "users", "tokens", "access-rights", "firmware", "webhooks")
    for tok in (device, bare, manager, server.admin_token):
        c = Client(server, tok)
        for kind in crud:
            path = f"/api/v1/{kind}/{nothing}"
            assert_error(c.get(path), 404, "not_found")
            assert_error(c.patch(path, json={}), 404, "not_found")
            assert_error(c.delete(path), 404, "not_found")
        assert_error(c.get(f"/api/v1/firmware/{nothing}/image"), 404, "not_found")
        assert_error(c.get(f"/api/v1/webhooks/{nothing}/deliveries"), 404, "not_found")
        for tail in ("", "/image"):
            assert_error(c.get(f"/api/v1/firmware-update/{nothing}{tail}"), 404, "not_found")
        assert_error(c.post(f"/api/v1/firmware-update/{nothing}/start"), 404, "not_found")
        assert_error(c.post(f"/api/v1/firmware-update/{nothing}/confirm",
                            json={"success": True}), 404, "not_found")
    # existing ones: beyond every grant (no grant at all; a product, which a model's grant
    # does not see) 404 as well; within a grant's scope 403
    c = Client(server, bare)
    assert_error(c.get(PRODUCTS + world["p1"]["id"]), 404, "not_found")
    assert_error(c.delete(MODELS + world["m1"]["id"]), 404, "not_found")
    assert_error(Client(server, device).get(PRODUCTS + world["p1"]["tid"]), 404, "not_found")
    assert_error(Client(server, device).get(MODELS + world["m1"]["tid"]), 403, "forbidden")
