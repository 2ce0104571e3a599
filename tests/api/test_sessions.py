"""Firmware-update sessions: request forms, target selection, the transition table walked
through the API (start, pipeline, confirm, timeouts), 409/410, racing starts, the download
link, device twins, lists, rights and bad input."""
import hashlib
import socket
import subprocess
import threading

import pytest

import conftest
from conftest import Client, Server, assert_error, make_user, unique
from sessutil import (FAST_ARGS, FU, new_session, procedure, request, upload_fw, wait_for,
                      wait_state)


@pytest.fixture(scope="module")
def server(engine):
    s = Server(extra_args=FAST_ARGS).start()
    yield s
    s.cleanup()


def history(s):
    return [h["state"] for h in s["history"]]


def test_request_selects_highest_and_full_flow_with_confirm(admin, catalog):
    fws = {v: upload_fw(admin, catalog, v) for v in ("1.0.0", "1.1.0", "1.10.0", "1.10.0-rc.1")}
    upload_fw(admin, catalog, "9.0.0", draft=True)
    dp = procedure(admin, catalog, confirm=True)
    s = new_session(admin, catalog, dp, "1.0.0", device_id="dev-1")
    assert s["state"] == "ready" and s["finished"] is False
    assert s["target_firmware"] == fws["1.10.0"]["id"]
    assert s["current_firmware"] == fws["1.0.0"]["id"]
    assert s["creator"] == "admin" and s["delivery_procedure"] == dp["id"]
    assert s["payload"] == {} and s["error"] is None and history(s) == ["ready"]
    assert s["expiration_time"] and "+00:00" in s["expiration_time"]
    assert len(s["device"]) == 36
    r = admin.post(FU + s["id"] + "/start")
    assert r.status_code == 200 and r.json()["state"] in ("queued", "processing", "created")
    s = wait_state(admin, s["id"], "created")
    assert history(s) == ["ready", "queued", "processing", "created"]
    p = s["payload"]
    assert p["size"] == fws["1.10.0"]["size"] and p["sha256"] == fws["1.10.0"]["sha256"]
    assert p["download_link"].endswith(f"/api/v1/firmware-update/{s['id']}/image")
    assert p["download_link"].startswith("http://127.0.0.1:")
    img = admin.get(p["download_link"])
    assert img.status_code == 200 and hashlib.sha256(img.content).hexdigest() == p["sha256"]
    r = admin.post(FU + s["id"] + "/confirm", json={"success": True})
    assert r.status_code == 200 and r.json()["state"] == "success"
    twin = admin.get("/api/v1/devices/" + s["device"]).json()
    assert twin["current_firmware"] == fws["1.10.0"]["id"]
    assert twin["current_firmware_version"] == "1.10.0"
    assert twin["last_session"] == s["id"] and twin["last_state"] == "success"


def test_no_confirm_ends_in_success_and_empty_steps_run_link(admin, catalog):
    upload_fw(admin, catalog, "1.2.0")
    for steps in (None, []):
        dp = procedure(admin, catalog, steps=steps, confirm=False)
        s = new_session(admin, catalog, dp, "1.0.0")
        admin.post(FU + s["id"] + "/start")
        s = wait_state(admin, s["id"], "success")
        assert history(s) == ["ready", "queued", "processing", "success"]
        assert "download_link" in s["payload"]


def test_up_to_date_and_drafts(admin, catalog):
    upload_fw(admin, catalog, "1.0.0")
    draft = upload_fw(admin, catalog, "1.5.0", draft=True)
    dp = procedure(admin, catalog)
    s = new_session(admin, catalog, dp, "1.0.0")
    assert s["state"] == "up_to_date" and s["target_firmware"] is None
    s = new_session(admin, catalog, dp, "1.0.0", allow_draft_firmware=True)
    assert s["state"] == "ready" and s["target_firmware"] == draft["id"]
    _, tok = make_user(admin, ["update"], model=catalog["model"]["id"])
    dev = Client(admin.server, tok)
    assert_error(request(dev, catalog, dp, "1.0.0", allow_draft_firmware=True), 403,
                 "forbidden")
    assert new_session(dev, catalog, dp, "1.0.0")["state"] == "up_to_date"
    _, tok = make_user(admin, ["draft"], model=catalog["model"]["id"])
    s = new_session(Client(admin.server, tok), catalog, dp, "1.0.0", allow_draft_firmware=True)
    assert s["target_firmware"] == draft["id"]


def test_target_selection_sees_every_image_of_the_channel(admin, catalog):
    """The highest precedence wins however many images the channel holds (#18): 9.0.0
    uploaded first, then 300 patch releases of 1.0."""
    nine = upload_fw(admin, catalog, "9.0.0", data=b"nine")
    for i in range(1, 301):
        upload_fw(admin, catalog, f"1.0.{i}", data=b"p%d" % i)
    dp = procedure(admin, catalog)
    assert new_session(admin, catalog, dp, "1.0.0")["target_firmware"] == nine["id"]
    assert new_session(admin, catalog, dp, "8.99.99")["target_firmware"] == nine["id"]
    assert new_session(admin, catalog, dp, "9.0.0")["state"] == "up_to_date"


def test_sessions_of_draft_targets_are_for_draft_holders(admin, catalog):
    """A session whose target is a draft image leads to that image (payload, download,
    events): `update` alone does not see it (404), in lists neither; `draft` does. A named
    draft target is unknown to a caller without `draft`."""
    draft = upload_fw(admin, catalog, "3.0.0-rc.1", draft=True)
    dp = procedure(admin, catalog)
    _, dtok = make_user(admin, ["draft"], model=catalog["model"]["id"])
    _, utok = make_user(admin, ["update"], model=catalog["model"]["id"])
    drafter, updater = Client(admin.server, dtok), Client(admin.server, utok)
    s = new_session(drafter, catalog, dp, "1.0.0", allow_draft_firmware=True)
    assert s["target_firmware"] == draft["id"]
    assert drafter.post(FU + s["id"] + "/start").status_code == 200
    wait_state(drafter, s["id"], "created")
    plain = new_session(updater, catalog, dp, "1.0.0")
    assert plain["state"] == "up_to_date"
    for path in ("", "/image"):
        assert_error(updater.get(FU + s["id"] + path), 404, "not_found")
    assert_error(updater.post(FU + s["id"] + "/confirm", json={"success": True}), 404)
    listed = updater.get(FU, params={"model": catalog["model"]["id"]}).json()
    assert [x["id"] for x in listed["results"]] == [plain["id"]] and listed["count"] == 1
    assert drafter.get(FU, params={"model": catalog["model"]["id"]}).json()["count"] == 2
    assert drafter.get(FU + s["id"] + "/image").status_code == 200
    for body in ({"target_firmware": draft["id"]}, {"target_firmware_version": "3.0.0-rc.1"}):
        err = assert_error(request(updater, catalog, dp, "1.0.0", **body), 400, "invalid")
        assert "no " in list(err["fields"].values())[0], err
        r = request(drafter, catalog, dp, "1.0.0", allow_draft_firmware=True, **body)
        assert r.status_code == 201 and r.json()["target_firmware"] == draft["id"]


def test_explicit_targets_and_uuid_or_tid_references(admin, catalog):
    a = upload_fw(admin, catalog, "2.0.0")
    upload_fw(admin, catalog, "3.0.0")
    dp = procedure(admin, catalog)
    s = new_session(admin, catalog, dp, "1.0.0", target_firmware=a["id"])
    assert s["target_firmware"] == a["id"] and s["state"] == "ready"
    s = new_session(admin, catalog, dp, "1.0.0", target_firmware_version="2.0.0")
    assert s["target_firmware"] == a["id"]
    s = new_session(admin, catalog, dp, "2.0.0", target_firmware_version="2.0.0")
    assert s["state"] == "up_to_date"
    body = {"model": catalog["model"]["id"], "delivery_procedure_tid": dp["id"],
            "delivery_method": catalog["method"]["id"],
            "current_channel": catalog["channel"]["id"], "current_firmware_version": "1.0.0"}
    r = admin.post(FU + "request", json=body)
    assert r.status_code == 201 and r.json()["target_firmware_version"] == "3.0.0"


def test_twin_supplies_missing_fields(admin, catalog):
    upload_fw(admin, catalog, "1.0.0")
    b = upload_fw(admin, catalog, "1.1.0")
    dp = procedure(admin, catalog)
    dev = unique("dev")
    first = new_session(admin, catalog, dp, "1.0.0", device_id=dev)
    twin = admin.get("/api/v1/devices/" + first["device"]).json()
    assert twin["device_id"] == dev and twin["current_firmware_version"] == "1.0.0"
    assert twin["channel"] == catalog["channel"]["id"] and twin["last_seen"]
    assert twin["last_session"] == first["id"] and twin["last_state"] == "ready"
    r = admin.post(FU + "request", json={"device_id": dev, "delivery_procedure_tid": dp["tid"]})
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["device"] == first["device"] and s["target_firmware"] == b["id"]
    assert s["current_firmware_version"] == "1.0.0"
    r = admin.post(FU + "request", json={"device_id": unique("nobody"),
                                         "delivery_procedure_tid": dp["tid"]})
    assert "model" in assert_error(r, 400, "invalid")["fields"]


def test_confirm_false_fails_with_message(admin, catalog):
    upload_fw(admin, catalog, "1.3.0")
    dp = procedure(admin, catalog)
    s = new_session(admin, catalog, dp, "1.0.0")
    admin.post(FU + s["id"] + "/start")
    wait_state(admin, s["id"], "created")
    r = admin.post(FU + s["id"] + "/confirm", json={"success": False, "message": "flash broke"})
    assert r.status_code == 200
    s = r.json()
    assert s["state"] == "fail" and s["error"]["detail"] == "flash broke"
    assert history(s)[-1] == "fail"


def test_step_failure_names_the_step(admin, catalog):
    upload_fw(admin, catalog, "1.4.0")
    dp = procedure(admin, catalog, steps=[
        {"plugin": "link"},
        {"plugin": "exec", "params": {"program": "/bin/sh", "args": ["-c", "echo bad >&2; exit 3"]}}])
    s = new_session(admin, catalog, dp, "1.0.0")
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "fail")
    assert s["error"]["code"] == "step_failed"
    assert "Step 2 (exec)" in s["error"]["detail"] and "status 3" in s["error"]["detail"]
    assert "bad" in s["error"]["detail"]
    assert history(s) == ["ready", "queued", "processing", "fail"]
    assert "download_link" in s["payload"]


def test_409_and_410(admin, catalog):
    upload_fw(admin, catalog, "1.6.0")
    # the 409s on sessions that cannot time out meanwhile (a 1 s timeout could pass before
    # the second request on a loaded machine), the 410s on sessions that do so at once
    lasting = procedure(admin, catalog)
    s = new_session(admin, catalog, lasting, "1.0.0")
    body = assert_error(admin.post(FU + s["id"] + "/confirm", json={"success": True}), 409,
                        "invalid_state")
    assert "ready" in body["detail"]
    s2 = new_session(admin, catalog, lasting, "1.6.0")
    assert s2["state"] == "up_to_date"
    assert "up_to_date" in assert_error(admin.post(FU + s2["id"] + "/start"), 409)["detail"]
    dp = procedure(admin, catalog, ready_timeout=1, retention=1)
    s = new_session(admin, catalog, dp, "1.0.0")
    s2 = new_session(admin, catalog, dp, "1.6.0")
    assert s2["state"] == "up_to_date"
    for sid in (s["id"], s2["id"]):
        done = wait_for(admin, sid, lambda x: x["finished"], timeout=10)
        assert done["expiration_time"] is None
        assert_error(admin.post(FU + sid + "/start"), 410, "finished")
        assert_error(admin.post(FU + sid + "/confirm", json={"success": True}), 410, "finished")
    assert admin.get(FU + s["id"]).json()["state"] == "ready"


def test_racing_starts_one_wins(admin, catalog):
    upload_fw(admin, catalog, "1.7.0")
    dp = procedure(admin, catalog)
    s = new_session(admin, catalog, dp, "1.0.0")
    results = []
    barrier = threading.Barrier(8)

    def go():
        c = Client(admin.server, admin.token)
        barrier.wait(5)
        results.append(c.post(FU + s["id"] + "/start").status_code)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(results) == [200] + [409] * 7, results
    s = wait_state(admin, s["id"], "created")
    assert history(s).count("queued") == 1


def test_timeouts_walk_the_table(admin, catalog):
    upload_fw(admin, catalog, "1.8.0")
    dp = procedure(admin, catalog, confirm_timeout=1, retention=1)
    s = new_session(admin, catalog, dp, "1.0.0")
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "created")
    assert s["expiration_time"] > s["history"][-1]["time"]
    s = wait_state(admin, s["id"], "unconfirmed", timeout=10)
    assert s["finished"] is False and s["expiration_time"]
    s = wait_for(admin, s["id"], lambda x: x["finished"], timeout=10)
    assert s["state"] == "unconfirmed"
    # success and fail are finished after retention too (confirmed in a procedure whose
    # confirm_timeout cannot pass before the confirmation on a loaded machine)
    dp = procedure(admin, catalog, retention=1)
    for ok in (True, False):
        s = new_session(admin, catalog, dp, "1.0.0")
        admin.post(FU + s["id"] + "/start")
        wait_state(admin, s["id"], "created")
        s = admin.post(FU + s["id"] + "/confirm", json={"success": ok}).json()
        assert s["finished"] is False
        s = wait_for(admin, s["id"], lambda x: x["finished"], timeout=10)
        assert s["state"] == ("success" if ok else "fail")


def test_processing_timeout_fails_and_kills(admin, catalog):
    upload_fw(admin, catalog, "1.9.0")
    dp = procedure(admin, catalog, processing_timeout=1, steps=[
        {"plugin": "exec", "params": {"program": "/bin/sleep", "args": ["30"]}}])
    s = new_session(admin, catalog, dp, "1.0.0")
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "fail", timeout=10)
    assert s["error"]["code"] in ("timeout", "step_failed")
    assert "processing_timeout" in s["error"]["detail"] or "time" in s["error"]["detail"]


def test_exec_step_timeout_and_payload_from_stdout(admin, catalog, tmp_path):
    upload_fw(admin, catalog, "1.9.5")
    script = tmp_path / "step.sh"
    script.write_text("#!/bin/sh\necho noise\n"
                      "echo \"{\\\"seen_size\\\": \\\"$DH_IMAGE_SIZE\\\", \\\"dev\\\": \\\"$DH_DEVICE_ID\\\","
                      " \\\"to\\\": \\\"$DH_TARGET_VERSION\\\", \\\"sha_ok\\\": \\\"$(sha256sum $DH_IMAGE_PATH | cut -c1-64)\\\"}\"\n")
    script.chmod(0o755)
    dp = procedure(admin, catalog, confirm=False,
                   steps=[{"plugin": "exec", "params": {"program": str(script)}}])
    s = new_session(admin, catalog, dp, "1.0.0", device_id="d-exec")
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "success")
    fw = admin.get("/api/v1/firmware/" + s["target_firmware"]).json()
    assert s["payload"]["seen_size"] == str(fw["size"]) and s["payload"]["dev"] == "d-exec"
    assert s["payload"]["to"] == "1.9.5" and s["payload"]["sha_ok"] == fw["sha256"]
    dp = procedure(admin, catalog, steps=[
        {"plugin": "exec", "params": {"program": "/bin/sleep", "args": ["30"], "timeout": 1}}])
    s = new_session(admin, catalog, dp, "1.0.0")
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "fail", timeout=10)
    assert "Step 1 (exec)" in s["error"]["detail"], s["error"]



FD_LISTER = """import json, os
fds = {}
for n in os.listdir("/proc/self/fd"):
    try:
        fds[n] = os.readlink("/proc/self/fd/" + n)
    except OSError:
        pass  # the directory listdir read, closed by now
print(json.dumps({"fds": fds}))
"""


def test_exec_child_gets_only_stdin_stdout_stderr(admin, catalog, server):
    upload_fw(admin, catalog, "1.9.6")
    dp = procedure(admin, catalog, confirm=False, steps=[
        {"plugin": "exec", "params": {"program": "/usr/bin/python3", "args": ["-c", FD_LISTER]}}])
    s = new_session(admin, catalog, dp, "1.0.0")
    # other clients are connected while the step runs (their sockets are the server's)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10):
        admin.post(FU + s["id"] + "/start")
        s = wait_state(admin, s["id"], "success")
    fds = s["payload"]["fds"]
    assert sorted(fds) == ["0", "1", "2"], fds
    assert fds["0"] == "/dev/null" and fds["1"].startswith("pipe:") and fds["2"].startswith("pipe:")

def test_download_link_ranges_and_rights(admin, catalog):
    data = bytes(range(256)) * 40
    upload_fw(admin, catalog, "4.0.0", data=data)
    dp = procedure(admin, catalog)
    s = new_session(admin, catalog, dp, "1.0.0")
    assert_error(admin.get(FU + s["id"] + "/image"), 409, "invalid_state")
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "created")
    link = s["payload"]["download_link"]
    r = admin.get(link, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert admin.head(link).headers["Content-Length"] == str(len(data))
    assert_error(admin.get(link, headers={"Range": f"bytes={len(data)}-"}), 416)
    _, other = make_user(admin, ["update"], model=admin.create(
        "/api/v1/models/", {"tid": unique("m"), "name": "M",
                            "product": catalog["product"]["id"]})["id"])
    assert_error(Client(admin.server, other).get(link), 404)
    _, tok = make_user(admin, ["update"], model=catalog["model"]["id"])
    assert Client(admin.server, tok).get(link).content == data
    assert_error(Client(admin.server, None).get(link), 401)


def test_public_url_is_used_for_links(catalog_free_server=None):
    s = Server(extra_args=FAST_ARGS + ["--public-url", "https://hub.example:8443/"]).start()
    try:
        a = Client(s, s.admin_token)
        p = a.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
        m = a.create("/api/v1/models/", {"tid": unique("m"), "name": "M", "product": p["id"]})
        c = a.create("/api/v1/channels/", {"tid": unique("c"), "name": "c"})
        dm = a.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "H",
                                                    "kind": "http"})
        cat = {"product": p, "model": m, "channel": c, "method": dm}
        upload_fw(a, cat, "1.0.1")
        dp = procedure(a, cat)
        x = new_session(a, cat, dp, "1.0.0")
        a.post(FU + x["id"] + "/start")
        x = wait_state(a, x["id"], "created")
        assert x["payload"]["download_link"] == \
            f"https://hub.example:8443/api/v1/firmware-update/{x['id']}/image"
    finally:
        s.cleanup()


def test_links_do_not_come_from_the_host_header(admin, catalog):
    """Without --public-url, a Host header does not make a session's links (and the device's
    token that follows them) go elsewhere: they name the address the client reached."""
    upload_fw(admin, catalog, "2.6.0")
    dp = procedure(admin, catalog)
    port = admin.server.port
    s = new_session(admin, catalog, dp, "1.0.0")
    r = admin.post(FU + s["id"] + "/start", headers={"Host": "evil.example:8080"})
    assert r.status_code == 200
    s = wait_state(admin, s["id"], "created")
    for key in ("download_link", "short_link"):
        link = s["payload"].get(key)
        assert link is None or link.startswith(f"http://127.0.0.1:{port}/"), s["payload"]
    assert s["payload"]["download_link"]
    new_session(admin, catalog, dp, "1.0.0")
    page = admin.get(FU, params={"limit": 1}, headers={"Host": "evil.example"}).json()
    assert page["next"].startswith(f"http://127.0.0.1:{port}/api/v1/firmware-update")


def test_allowed_hosts_name_the_links_host():
    s = Server(extra_args=FAST_ARGS + ["--allowed-hosts", "hub.example:8080, Other.Example"])
    try:
        s.start()
        a = Client(s, s.admin_token)
        p = a.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
        m = a.create("/api/v1/models/", {"tid": unique("m"), "name": "M", "product": p["id"]})
        c = a.create("/api/v1/channels/", {"tid": unique("c"), "name": "c"})
        dm = a.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "H",
                                                    "kind": "http"})
        cat = {"product": p, "model": m, "channel": c, "method": dm}
        upload_fw(a, cat, "1.0.1")
        dp = procedure(a, cat)
        for host, base in (("hub.example:8080", "http://hub.example:8080/"),
                           ("other.example", "http://other.example/"),
                           ("hub.example:9999", f"http://127.0.0.1:{s.port}/"),
                           ("hub.example", f"http://127.0.0.1:{s.port}/"),
                           ("evil.example", f"http://127.0.0.1:{s.port}/")):
            x = new_session(a, cat, dp, "1.0.0")
            assert a.post(FU + x["id"] + "/start", headers={"Host": host}).status_code == 200
            x = wait_state(a, x["id"], "created")
            assert x["payload"]["download_link"].startswith(base), (host, x["payload"])
    finally:
        s.cleanup()
    for bad in (["--allowed-hosts", "a b"], ["--allowed-hosts", "ok,,x"],
                ["--allowed-hosts", "x/y"], ["--public-url", "hub.example"]):
        r = subprocess.run([conftest.BIN, "--data-dir", "/nonexistent/x"] + bad,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and bad[0] in r.stderr, (bad, r.returncode, r.stderr)


def test_list_filters_and_pagination(admin, catalog):
    upload_fw(admin, catalog, "5.0.0")
    dp = procedure(admin, catalog)
    dev = unique("dev")
    ids = [new_session(admin, catalog, dp, "1.0.0", device_id=dev)["id"] for _ in range(3)]
    new_session(admin, catalog, dp, "5.0.0")
    r = admin.get(FU, params={"model": catalog["model"]["tid"]}).json()
    assert r["count"] == 4
    r = admin.get(FU, params={"model": catalog["model"]["id"], "state": "ready"}).json()
    assert r["count"] == 3 and {x["id"] for x in r["results"]} == set(ids)
    twin = admin.get("/api/v1/devices/", params={"device_id": dev}).json()["results"][0]
    r = admin.get(FU, params={"device": twin["id"], "limit": 2}).json()
    assert r["count"] == 3 and len(r["results"]) == 2 and r["next"]
    assert admin.get(FU, params={"device": dev}).json()["count"] == 3
    assert admin.get(FU, params={"device": unique("nobody")}).json()["count"] == 0
    r = admin.get(FU, params={"model": catalog["model"]["id"], "finished": "false"}).json()
    assert r["count"] == 4
    assert admin.get(FU, params={"model": "nope"}).json()["count"] == 0
    for bad in ({"state": "bogus"}, {"finished": "maybe"}, {"limit": 0}):
        assert_error(admin.get(FU, params=bad), 400, "invalid")
    _, tok = make_user(admin, ["update"], model=catalog["model"]["id"])
    r = Client(admin.server, tok).get(FU).json()
    assert r["count"] == 4


def test_rights(admin, catalog):
    upload_fw(admin, catalog, "6.0.0")
    dp = procedure(admin, catalog)
    _, none = make_user(admin, [])
    assert_error(request(Client(admin.server, none), catalog, dp), 403, "forbidden")
    _, other = make_user(admin, ["update"], channel=admin.create(
        "/api/v1/channels/", {"tid": unique("c"), "name": "beta"})["id"],
        model=catalog["model"]["id"])
    assert_error(request(Client(admin.server, other), catalog, dp), 403, "forbidden")
    s = new_session(admin, catalog, dp, "1.0.0")
    _, upl = make_user(admin, ["update"], product=admin.create(
        "/api/v1/products/", {"tid": unique("p"), "name": "P"})["id"])
    assert_error(Client(admin.server, upl).get(FU + s["id"]), 404)
    assert_error(Client(admin.server, upl).post(FU + s["id"] + "/start"), 404)
    assert_error(Client(admin.server, None).get(FU + s["id"]), 401)
    assert_error(admin.get(FU + "00000000-0000-4000-8000-000000000000"), 404)


def test_bad_input_changes_nothing(admin, catalog):
    upload_fw(admin, catalog, "7.0.0")
    dp = procedure(admin, catalog)
    before = admin.get(FU, params={"limit": 1}).json()["count"]
    base = {"model": catalog["model"]["tid"], "delivery_procedure_tid": dp["tid"],
            "current_channel": catalog["channel"]["tid"], "current_firmware_version": "1.0.0"}
    cases = [
        ({k: v for k, v in base.items() if k != "delivery_procedure_tid"}, "delivery_procedure_tid"),
        ({**base, "current_firmware_version": "1.0"}, "current_firmware_version"),
        ({**base, "current_firmware_version": 5}, "current_firmware_version"),
        ({**base, "model": "no-such-model"}, "model"),
        ({**base, "delivery_procedure_tid": "no-such-dp"}, "delivery_procedure_tid"),
        ({**base, "current_channel": "no-such-channel"}, "current_channel"),
        ({**base, "allow_draft_firmware": "yes"}, "allow_draft_firmware"),
        ({**base, "bogus": 1}, "bogus"),
        ({**base, "device_id": ""}, "device_id"),
        ({**base, "device_id": "x" * 200}, "device_id"),
        ({**base, "delivery_method": "nope"}, "delivery_method"),
        ({**base, "target_firmware_version": "9.9.9"}, "target_firmware_version"),
        ({k: v for k, v in base.items() if k != "current_channel"}, "current_channel"),
        ({k: v for k, v in base.items() if k != "model"}, "model"),
    ]
    for body, field in cases:
        err = assert_error(admin.post(FU + "request", json=body), 400, "invalid")
        assert field in err["fields"], (body, err)
    assert_error(admin.post(FU + "request", json=[1]), 400)
    assert_error(admin.post(FU + "request", data="{", headers={"Content-Type": "application/json"}),
                 400, "malformed_json")
    s = new_session(admin, catalog, dp, "1.0.0")
    for body in (None, {}, {"success": "yes"}, {"success": True, "extra": 1},
                 {"success": False, "message": 5}):
        assert_error(admin.post(FU + s["id"] + "/confirm", json=body), 400, "invalid")
    assert admin.get(FU + s["id"]).json()["state"] == "ready"
    assert admin.get(FU, params={"limit": 1}).json()["count"] == before + 1


def test_exec_params_checked_when_procedure_is_saved(admin, catalog):
    for params, word in (({}, "program"), ({"program": "sh"}, "program"),
                         ({"program": "/bin/sh", "args": "x"}, "args"),
                         ({"program": "/bin/sh", "args": [1]}, "args[0]"),
                         ({"program": "/bin/sh", "timeout": 0}, "timeout"),
                         ({"program": "/bin/sh", "bogus": 1}, "bogus")):
        r = admin.post("/api/v1/delivery-procedures/",
                       json={"tid": unique("dp"), "name": "x",
                             "delivery_method": catalog["method"]["tid"],
                             "steps": [{"plugin": "exec", "params": params}]})
        assert word in assert_error(r, 400, "invalid")["fields"]["steps"], (params, r.text)


def test_exec_background_children_do_not_hold_the_step(admin, catalog):
    upload_fw(admin, catalog, "1.9.7")
    dp = procedure(admin, catalog, confirm=False, processing_timeout=30, steps=[
        {"plugin": "exec", "params": {"program": "/bin/sh",
                                      "args": ["-c", "sleep 30 & echo '{\"bg\": true}'"]}}])
    s = new_session(admin, catalog, dp, "1.0.0")
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "success", timeout=10)
    assert s["payload"]["bg"] is True


def test_a_literal_path_segment_wins_over_an_id(admin):
    """/firmware-update/request is its own path (POST only), not a session named 'request'."""
    for method in ("GET", "HEAD", "PATCH", "DELETE"):
        r = admin.request(method, FU + "request")
        assert r.status_code == 405 and r.headers["Allow"] == "POST", (method, r.status_code)
    assert_error(admin.get(FU + "request/"), 405, "method_not_allowed")


def test_firmware_an_unfinished_session_targets_cannot_be_deleted(admin, catalog):
    fw = upload_fw(admin, catalog, "2.5.0")
    # 3 s: the delete below comes before the session finishes even on a loaded machine
    dp = procedure(admin, catalog, ready_timeout=3, retention=1)
    s = new_session(admin, catalog, dp, "1.0.0")
    assert s["target_firmware"] == fw["id"]
    assert_error(admin.delete("/api/v1/firmware/" + fw["id"]), 409, "referenced")
    wait_for(admin, s["id"], lambda x: x["finished"], timeout=20)
    assert admin.delete("/api/v1/firmware/" + fw["id"]).status_code == 204
    after = admin.get(FU + s["id"]).json()
    assert after["target_firmware"] is None and after["target_firmware_version"] == "2.5.0"
