"""Products: CRUD, tid rules, references, pagination and bad input."""
from conftest import assert_error, unique

BASE = "/api/v1/products/"


def test_create_get_patch_delete(admin):
    tid = unique("p")
    p = admin.create(BASE, {"tid": tid, "name": "Sensor", "description": "d"})
    assert p["tid"] == tid and p["name"] == "Sensor" and p["description"] == "d"
    assert len(p["id"]) == 36 and p["id"] == p["id"].lower()
    assert "+00:00" in p["create_time"]
    for key in (p["id"], tid, tid + "/"):
        r = admin.get(BASE + key)
        assert r.status_code == 200 and r.json() == p
    r = admin.patch(BASE + tid, json={"name": "Sensor 2"})
    assert r.status_code == 200 and r.json()["name"] == "Sensor 2"
    assert admin.delete(BASE + p["id"]).status_code == 204
    assert_error(admin.get(BASE + tid), 404, "not_found")


def test_trailing_slash_optional(admin):
    r = admin.get("/api/v1/products")
    assert r.status_code == 200 and set(r.json()) == {"count", "next", "results"}


def test_tid_conflict_is_409_and_changes_nothing(admin):
    tid = unique("p")
    admin.create(BASE, {"tid": tid, "name": "A"})
    body = assert_error(admin.post(BASE, json={"tid": tid, "name": "B"}), 409, "conflict")
    assert "tid" in body["fields"]
    r = admin.get(BASE, params={"tid": tid})
    assert r.json()["count"] == 1 and r.json()["results"][0]["name"] == "A"


def test_bad_input(admin):
    before = admin.get(BASE, params={"limit": 1000}).json()["count"]
    cases = [
        ({"name": "x"}, "tid"),
        ({"tid": "has space", "name": "x"}, "tid"),
        ({"tid": "a" * 65, "name": "x"}, "tid"),
        ({"tid": unique(), "name": 5}, "name"),
        ({"tid": unique(), "name": ""}, "name"),
        ({"tid": unique(), "name": "x", "bogus": 1}, "bogus"),
        ({"tid": unique(), "name": "x", "description": ["a"]}, "description"),
    ]
    for body, field in cases:
        err = assert_error(admin.post(BASE, json=body), 400, "invalid")
        assert field in err["fields"], (body, err)
    assert_error(admin.post(BASE, json=[1, 2]), 400)
    assert_error(admin.post(BASE, data="{\"tid\": ", headers={"Content-Type": "application/json"}),
                 400, "malformed_json")
    assert_error(admin.post(BASE, data="tid=x", headers={"Content-Type": "text/plain"}), 415)
    assert_error(admin.post(BASE, data="[" * 100 + "]" * 100,
                            headers={"Content-Type": "application/json"}), 400, "malformed_json")
    assert admin.get(BASE, params={"limit": 1000}).json()["count"] == before


def test_oversized_body_is_413(admin):
    big = '{"tid": "x", "name": "' + "a" * (2 * 1024 * 1024) + '"}'
    r = admin.post(BASE, data=big, headers={"Content-Type": "application/json"})
    assert_error(r, 413, "too_large")


def test_pagination(admin):
    prefix = unique("page")
    for i in range(5):
        admin.create(BASE, {"tid": f"{prefix}-{i}", "name": "n"})
    r = admin.get(BASE, params={"limit": 2})
    body = r.json()
    assert len(body["results"]) == 2 and body["count"] >= 5
    assert body["next"] and "offset=2" in body["next"] and "limit=2" in body["next"]
    nxt = admin.get(body["next"]).json()
    assert {p["id"] for p in nxt["results"]}.isdisjoint({p["id"] for p in body["results"]})
    last = admin.get(BASE, params={"limit": 2, "offset": body["count"] - 1}).json()
    assert last["next"] is None and len(last["results"]) == 1
    for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"offset": -1}):
        assert_error(admin.get(BASE, params=bad), 400, "invalid")


def test_delete_referenced_is_409(admin):
    p = admin.create(BASE, {"tid": unique("p"), "name": "P"})
    admin.create("/api/v1/models/", {"tid": unique("m"), "name": "M", "product": p["id"]})
    assert_error(admin.delete(BASE + p["id"]), 409, "referenced")
    assert admin.get(BASE + p["id"]).status_code == 200


def test_unknown_path_and_method(admin):
    assert_error(admin.get("/api/v1/nothing-here"), 404, "not_found")
    r = admin.request("PUT", BASE)
    assert_error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD, POST"
