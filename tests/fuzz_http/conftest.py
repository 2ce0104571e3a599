"""The HTTP fuzzer's server: one devicehubd started like the API suites' (tests/api's
fixtures are loaded from there), with the per-client limits off so that what is fuzzed is
the request and not the limits, and with a small catalogue so that generated paths reach
real objects: a product, model, channel, procedure, firmware image and session."""
import importlib.util
import os
import sys
import tempfile

import pytest

# Hypothesis keeps a cache (and would keep failing examples) in .hypothesis/ of the working
# directory: keep the tree clean; examples are printed on failure instead (print_blob).
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                      os.path.join(tempfile.gettempdir(), "devicehub-hypothesis"))

HERE = os.path.dirname(os.path.abspath(__file__))
API_DIR = os.path.join(os.path.dirname(HERE), "api")
sys.path.insert(0, API_DIR)  # rawhttp

_spec = importlib.util.spec_from_file_location("dh_api_conftest",
                                               os.path.join(API_DIR, "conftest.py"))
api = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api)


@pytest.fixture(scope="module")
def fuzz_server():
    s = api.Server(extra_args=["--rate-limit", "0", "--auth-fail-limit", "0",
                               "--max-connections-per-address", "0"]).start()
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def objects(fuzz_server):
    """Ids and tids of real objects, for paths and bodies."""
    admin = api.Client(fuzz_server, api.ADMIN_TOKEN)
    p = admin.create("/api/v1/products/", {"tid": "fz-prod", "name": "Fuzz"})
    m = admin.create("/api/v1/models/", {"tid": "fz-model", "name": "M", "product": p["id"]})
    c = admin.create("/api/v1/channels/", {"tid": "fz-chan", "name": "stable"})
    dm = admin.create("/api/v1/delivery-methods/", {"tid": "fz-dm", "name": "H",
                                                    "kind": "http"})
    dp = admin.create("/api/v1/delivery-procedures/", {"tid": "fz-dp", "name": "L",
                                                       "delivery_method": dm["id"],
                                                       "steps": [{"plugin": "link"}],
                                                       "confirm": True})
    r = admin.request("POST", "/api/v1/firmware/", files=[
        ("model", (None, "fz-model")), ("version", (None, "1.0.0")),
        ("channels", (None, "fz-chan")),
        ("file", ("a.bin", bytes(range(256)) * 16, "application/octet-stream"))])
    assert r.status_code == 201, r.text
    fw = r.json()
    s = admin.create("/api/v1/firmware-update/request", {
        "model": "fz-model", "device_id": "fz-dev", "delivery_method": "fz-dm",
        "delivery_procedure_tid": "fz-dp", "current_channel": "fz-chan",
        "current_firmware_version": "0.1.0"})
    ids = [p["id"], m["id"], c["id"], dm["id"], dp["id"], fw["id"], s["id"]]
    if s.get("device"):
        ids.append(s["device"])
    return {"ids": ids, "tids": ["fz-prod", "fz-model", "fz-chan", "fz-dm", "fz-dp"]}
