"""The OpenAPI document: served at /api/v1/openapi.json, describes exactly the routes of
the server's table (devicehubd --list-routes) and no others, every $ref resolves, errors
use the error schema, and real answers carry no field the schemas do not name."""
import os
import re
import subprocess

import pytest

from conftest import BIN, ROOT, unique

DOC = "/api/v1/openapi.json"


def route_table():
    out = subprocess.run([BIN, "--list-routes"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    routes = set()
    for line in out.splitlines():
        methods, pattern, right = line.split("\t")
        for m in methods.split(", "):
            routes.add((m, pattern, right))
    assert len(routes) > 40, out
    return routes


@pytest.fixture(scope="module")
def doc(anon):
    r = anon.get(DOC)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def test_served_document_is_the_file(doc):
    with open(os.path.join(ROOT, "web", "openapi.json"), encoding="utf-8") as f:
        import json
        assert json.load(f) == doc
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"]


def test_list_routes_flag_is_in_help():
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30).stdout
    assert "--list-routes" in out


def test_every_route_is_documented_and_nothing_else(doc):
    table = {(m, p) for m, p, _ in route_table()}
    documented = {(m, p.rstrip("/") if p != "/" else p) for m, p, _ in operations(doc)}
    assert table - documented == set(), "routes missing from openapi.json"
    assert documented - table == set(), "openapi.json documents routes the server lacks"


def test_rights_match_security(doc):
    public = {(m, p) for m, p, right in route_table() if right == "none"}
    for m, p, op in operations(doc):
        key = (m, p.rstrip("/"))
        if key in public:
            assert op.get("security") == [], (key, op.get("security"))
        else:
            assert "security" not in op, key  # the document's default: the token
            assert "401" in op["responses"] and "403" in op["responses"], key


def test_operations_are_complete(doc):
    ids = set()
    for m, p, op in operations(doc):
        assert op.get("summary"), (m, p)
        assert op["operationId"] not in ids, op["operationId"]
        ids.add(op["operationId"])
        codes = op["responses"]
        assert any(c.startswith("2") for c in codes), (m, p)
        for c, r in codes.items():
            if c[0] in "45" and m != "HEAD":
                assert r == {"$ref": f"#/components/responses/E{c}"}, (m, p, c)
        if "{id}" in p:
            assert any(x["name"] == "id" and x["in"] == "path" for x in op["parameters"])
        if m in ("PATCH",) or (m == "POST" and not p.endswith("/start")):
            assert "requestBody" in op, (m, p)
    err = doc["components"]["schemas"]["Error"]
    assert set(err["required"]) == {"code", "detail"}
    assert "fields" in err["properties"]


def test_every_ref_resolves(doc):
    text = str(doc)
    refs = set(re.findall(r"'\$ref': '#/([^']+)'", text))
    assert refs
    for ref in refs:
        node = doc
        for part in ref.split("/"):
            assert part in node, ref
            node = node[part]


def keys_ok(doc, schema_name, obj):
    props = doc["components"]["schemas"][schema_name]["properties"]
    extra = set(obj) - set(props)
    assert not extra, (schema_name, extra)


def test_real_answers_match_the_schemas(doc, admin, catalog):
    keys_ok(doc, "Product", catalog["product"])
    keys_ok(doc, "Model", catalog["model"])
    keys_ok(doc, "Channel", catalog["channel"])
    keys_ok(doc, "DeliveryMethod", catalog["method"])
    keys_ok(doc, "DeliveryProcedure", catalog["procedure"])
    lst = admin.get("/api/v1/products/").json()
    assert set(lst) == set(doc["components"]["schemas"]["ProductList"]["required"])
    r = admin.request("POST", "/api/v1/firmware/", files=[
        ("model", (None, catalog["model"]["tid"])), ("version", (None, "1.0.0")),
        ("channels", (None, catalog["channel"]["tid"])),
        ("file", ("a.bin", b"\0" * 64, "application/octet-stream"))])
    assert r.status_code == 201, r.text
    keys_ok(doc, "Firmware", r.json())
    r = admin.post("/api/v1/firmware-update/request", json={
        "model": catalog["model"]["tid"], "device_id": unique("d"),
        "delivery_method": catalog["method"]["tid"],
        "delivery_procedure_tid": catalog["procedure"]["tid"],
        "current_channel": catalog["channel"]["tid"], "current_firmware_version": "0.1.0"})
    assert r.status_code == 201, r.text
    sess = r.json()
    keys_ok(doc, "Session", sess)
    keys_ok(doc, "Device", admin.get(f"/api/v1/devices/{sess['device']}").json())
    u = admin.create("/api/v1/users/", {"tid": unique("u"), "name": "U"})
    keys_ok(doc, "User", u)
    keys_ok(doc, "Token", admin.create("/api/v1/tokens/", {"user": u["id"], "name": "t"}))
    keys_ok(doc, "AccessRight", admin.create("/api/v1/access-rights/",
                                             {"user": u["id"], "action": "update"}))
    e = admin.post("/api/v1/products/", json={"tid": "not a tid"}).json()
    keys_ok(doc, "Error", e)
