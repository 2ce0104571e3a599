"""Delivery-step plugins loaded from --plugin-dir: the test plugin built by meson
(tests/plugins) runs as a step with the session's facts and image, merges into the payload and
reports progress; its failures name the step; the loader refuses another ABI and a taken name;
a procedure can name a loaded step but not an unknown one."""
import hashlib
import os

import pytest

from conftest import BIN, Server, assert_error, unique
from sessutil import FAST_ARGS, FU, new_session, procedure, upload_fw, wait_state

PLUGIN_DIR = os.path.join(os.path.dirname(os.path.dirname(BIN)), "tests", "plugins")


@pytest.fixture(scope="module")
def server(engine):
    if not os.path.exists(os.path.join(PLUGIN_DIR, "dh_test_echo.so")):
        pytest.skip("test plugins not built in " + PLUGIN_DIR)
    s = Server(extra_args=FAST_ARGS + ["--plugin-dir", PLUGIN_DIR]).start()
    yield s
    s.cleanup()


def test_loader_refuses_other_abi_and_taken_names(server, admin):
    log = server.read_log()
    assert "plugin.loaded name=test_echo" in log
    refused = [line for line in log.splitlines() if "plugin.refused" in line]
    assert any("dh_test_bad_abi.so" in line and "abi" in line for line in refused), refused
    assert any("dh_test_dup_name.so" in line and "already exists" in line for line in refused)
    assert admin.get("/healthz").status_code == 200


def test_procedure_accepts_loaded_step_only(admin, catalog):
    procedure(admin, catalog, steps=[{"plugin": "test_echo"}])
    for name in ("bad_abi", "no_such_step"):
        r = admin.post("/api/v1/delivery-procedures/",
                       json={"tid": unique("dp"), "name": "x",
                             "delivery_method": catalog["method"]["tid"],
                             "steps": [{"plugin": name}]})
        assert "steps" in assert_error(r, 400, "invalid")["fields"]


def test_plugin_step_runs_with_session_facts(admin, catalog):
    data = b"plugin image " * 100
    fw = upload_fw(admin, catalog, "2.0.0", data=data)
    dp = procedure(admin, catalog, confirm=False, steps=[
        {"plugin": "link"}, {"plugin": "test_echo", "params": {"k": [1, 2]}}])
    s = new_session(admin, catalog, dp, "1.0.0", device_id="plug-1")
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "success")
    echo = s["payload"]["test_echo"]
    assert echo["session"] == s["id"] and echo["device"] == "plug-1"
    assert echo["target"] == "2.0.0" and echo["image_size"] == len(data)
    assert echo["bytes_read"] == len(data)
    assert echo["sha256"] == hashlib.sha256(data).hexdigest() == fw["sha256"]
    assert echo["params"] == {"k": [1, 2]} and echo["step_index"] == 1
    assert echo["inits"] == 1 and echo["saw_link"] is True
    assert s["payload"]["progress"] == {"step": "test_echo", "fraction": 0.5, "what": "half way"}


def test_plugin_failure_and_time_limit_name_the_step(admin, catalog):
    upload_fw(admin, catalog, "2.1.0")
    dp = procedure(admin, catalog, steps=[
        {"plugin": "test_echo", "params": {"fail": "the distributor said no"}}])
    s = new_session(admin, catalog, dp, "1.0.0")
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "fail")
    assert s["error"] == {"code": "step_failed",
                          "detail": "Step 1 (test_echo) failed: the distributor said no"}
    dp = procedure(admin, catalog, steps=[
        {"plugin": "test_echo", "params": {"sleep_ms": 20000, "timeout": 1}}])
    s = new_session(admin, catalog, dp, "1.0.0")
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "fail", timeout=10)
    assert "Step 1 (test_echo)" in s["error"]["detail"] and "1 s" in s["error"]["detail"]
