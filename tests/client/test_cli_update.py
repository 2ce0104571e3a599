"""The CLI's device flow (`devicehub update`) and session commands against a real
devicehubd: request, start, wait, ranged download, sha256 check, confirm; the twin after
success; resume of an interrupted download within the same session; a damaged partial file;
an image that does not match its sha256 (confirmed as a failure); bad input."""
import glob
import hashlib
import json
import os

import pytest

from conftest import make_user, unique


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def cat(cli, tmp_path):
    """A fresh catalogue with firmware 1.1.0 (256 KiB + 123 bytes) on a stable channel and a
    link procedure that waits for confirmation."""
    t = {k: unique(k) for k in ("prod", "model", "chan", "dm", "dp", "dev")}
    cli.ok("product", "create", "--tid", t["prod"], "--name", "P")
    cli.ok("model", "create", "--tid", t["model"], "--name", "M", "--product", t["prod"])
    cli.ok("channel", "create", "--tid", t["chan"], "--name", "stable")
    cli.ok("method", "create", "--tid", t["dm"], "--name", "HTTP", "--kind", "http")
    cli.ok("procedure", "create", "--tid", t["dp"], "--name", "Link", "--delivery-method",
           t["dm"], "--steps", '[{"plugin": "link"}]', "--confirm", "true")
    img = tmp_path / "fw-1.1.0.bin"
    img.write_bytes(os.urandom(256 * 1024 + 123))
    t["fw"] = cli.json("firmware", "upload", img, "--model", t["model"], "--version", "1.1.0",
                       "--channel", t["chan"])
    t["digest"] = sha(img)
    return t


def update_args(t, out, *more, version="1.0.0"):
    return ["update", "--model", t["model"], "--device-id", t["dev"], "--current-version",
            version, "--channel", t["chan"], "--procedure", t["dp"], "-o", out] + list(more)


def device(admin, t):
    page = admin.get("/api/v1/devices/", params={"device_id": t["dev"]}).json()
    assert page["count"] == 1, page
    return page["results"][0]


def sessions_of(admin, dev_id):
    return admin.get("/api/v1/firmware-update/", params={"device": dev_id}).json()["results"]


def test_full_flow_to_success_updates_the_twin(cli, admin, cat, tmp_path):
    out = tmp_path / "image.bin"
    r = cli.ok(*update_args(cat, out))
    assert sha(out) == cat["digest"]
    assert "-> created" in r.stderr  # state changes are printed
    assert "confirmed success" in r.stderr
    assert r.stdout.strip().endswith("success")
    dev = device(admin, cat)
    assert dev["current_firmware_version"] == "1.1.0"
    assert dev["current_firmware"] == cat["fw"]["id"]
    ss = sessions_of(admin, dev["id"])
    assert len(ss) == 1 and ss[0]["state"] == "success"
    assert [h["state"] for h in ss[0]["history"]][-1] == "success"
    # Now the device is up to date.
    r = cli.ok(*update_args(cat, tmp_path / "again.bin", version="1.1.0"))
    assert "up to date" in r.stdout and not (tmp_path / "again.bin").exists()


def test_json_output_is_the_final_session(cli, cat, tmp_path):
    s = cli.json(*update_args(cat, tmp_path / "j.bin"))
    assert s["state"] == "success" and s["payload"]["sha256"] == cat["digest"]


def test_resume_in_the_same_session(cli, admin, cat, tmp_path):
    out = tmp_path / "image.bin"
    r = cli.run(*update_args(cat, out, "--chunk-size", "16384", "--max-bytes", "100000"))
    assert r.returncode == 3, r.stderr
    assert os.path.getsize(f"{out}.part") == 100000
    sid = json.load(open(f"{out}.part.json"))["session"]
    assert admin.get(f"/api/v1/firmware-update/{sid}/").json()["state"] == "created"
    r = cli.ok(*update_args(cat, out, "--chunk-size", "16384"))
    assert f"continuing session {sid}" in r.stderr and "resuming" in r.stderr
    assert sha(out) == cat["digest"]
    s = admin.get(f"/api/v1/firmware-update/{sid}/").json()
    assert s["state"] == "success"
    assert len(sessions_of(admin, device(admin, cat)["id"])) == 1
    assert not glob.glob(f"{out}.part*")


def test_damaged_partial_file_restarts_and_succeeds(cli, admin, cat, tmp_path):
    out = tmp_path / "image.bin"
    r = cli.run(*update_args(cat, out, "--max-bytes", "150000"))
    assert r.returncode == 3
    with open(f"{out}.part", "r+b") as f:
        f.seek(10)
        b = f.read(1)
        f.seek(10)
        f.write(bytes([b[0] ^ 0x55]))
    r = cli.ok(*update_args(cat, out))
    assert "sha256 mismatch" in r.stderr and "downloading again" in r.stderr
    assert sha(out) == cat["digest"]
    assert device(admin, cat)["current_firmware_version"] == "1.1.0"


def find_blob(server, digest):
    hits = [p for p in glob.glob(os.path.join(server.data_dir, "**", "*"), recursive=True)
            if os.path.basename(p) == digest and os.path.isfile(p)]
    assert len(hits) == 1, hits
    return hits[0]


def test_image_not_matching_its_sha256_is_confirmed_as_failure(cli, admin, server, cat,
                                                                tmp_path):
    blob = find_blob(server, cat["digest"])
    with open(blob, "r+b") as f:  # same size, other bytes: the stored hash no longer fits
        f.seek(5000)
        f.write(b"\0" * 64)
    out = tmp_path / "image.bin"
    r = cli.run(*update_args(cat, out))
    assert r.returncode == 1, r.stderr
    assert "sha256 mismatch" in r.stderr and "confirmed failure" in r.stderr
    assert not out.exists() and not glob.glob(f"{out}.part*")
    dev = device(admin, cat)
    assert dev["current_firmware_version"] == "1.0.0"
    (s,) = sessions_of(admin, dev["id"])
    assert s["state"] == "fail" and "sha256 mismatch" in json.dumps(s["error"])


def test_unknown_model_shows_the_server_detail(cli, admin, cat, tmp_path):
    before = admin.get("/api/v1/firmware-update/").json()["count"]
    r = cli.run("update", "--model", "no-such-model", "--device-id", "d1", "--current-version",
                "1.0.0", "--channel", cat["chan"], "--procedure", cat["dp"], "-o",
                tmp_path / "x.bin")
    assert r.returncode == 1
    assert "HTTP 4" in r.stderr and "no-such-model" in r.stderr, r.stderr
    assert admin.get("/api/v1/firmware-update/").json()["count"] == before
    assert not glob.glob(str(tmp_path / "x.bin*"))


def test_update_usage_errors(cli, cat, tmp_path):
    r = cli.run("update", "--model", cat["model"])
    assert r.returncode == 2 and "--output" in r.stderr
    r = cli.run("update", "-o", tmp_path / "x.bin")
    assert r.returncode == 2 and "--model" in r.stderr
    r = cli.run(*update_args(cat, tmp_path / "x.bin", "--chunk-size", "0"))
    assert r.returncode == 2 and "chunk-size" in r.stderr


def test_session_commands(cli, admin, cat):
    body = {"model": cat["model"], "device_id": cat["dev"], "current_channel": cat["chan"],
            "current_firmware_version": "1.0.0", "delivery_procedure_tid": cat["dp"]}
    s = admin.create("/api/v1/firmware-update/request", body)
    assert s["state"] == "ready"
    got = cli.json("session", "get", s["id"])
    assert got["id"] == s["id"] and got["state"] == "ready"
    # confirm on a ready session: 409 with the state in the detail, nothing changes
    r = cli.run("session", "confirm", s["id"])
    assert r.returncode == 1 and "HTTP 409" in r.stderr and "ready" in r.stderr, r.stderr
    cli.ok("session", "start", s["id"])
    w = cli.json("session", "wait", s["id"], "--wait-timeout", "60")
    assert w["state"] == "created" and w["payload"]["download_link"]
    listed = cli.json("sessions", "list", "--device", w["device"], "--state", "created")
    assert [x["id"] for x in listed["results"]] == [s["id"]]
    assert cli.json("sessions", "list", "--device", w["device"], "--finished",
                    "true")["count"] == 0
    done = cli.json("session", "confirm", s["id"], "--failure", "--message", "flash error 7")
    assert done["state"] == "fail" and "flash error 7" in json.dumps(done["error"])
    out = cli.ok("sessions", "list", "--model", cat["model"]).stdout
    assert s["id"] in out and "fail" in out
    r = cli.run("session", "confirm", s["id"], "--message", "no --failure")
    assert r.returncode == 2


def test_device_token_without_rights_is_refused(cli, admin, cat, tmp_path):
    _, secret = make_user(admin, ["update"], product=cat["prod"])
    r = cli.run(*update_args(cat, tmp_path / "ok.bin"), token=secret)
    assert r.returncode == 0, r.stderr
    _, other = make_user(admin, [])  # a user without any grant
    r = cli.run(*update_args(cat, tmp_path / "no.bin", version="1.0.0"), token=other)
    assert r.returncode == 1 and ("HTTP 403" in r.stderr or "HTTP 404" in r.stderr), r.stderr
