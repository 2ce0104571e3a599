"""The Python library (clients/python/devicehub), called directly against a real devicehubd:
configuration objects and their errors, lists across pages, streamed upload, Range downloads
(chunks, resumable files, SHA-256 checks), sessions and the whole device flow, the README's
example run as written, and the package itself: strictly typed, installable offline."""
import hashlib
import logging
import os
import re
import shutil
import subprocess

import pytest

from conftest import ADMIN_TOKEN, LIB, PYTHON, ROOT, Server, make_user, unique
from devicehub import (ApiError, Client, DeviceHubError, DownloadError, IncompleteDownload,
                       TransportError, WaitTimeout)
import devicehub


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def cat(hub, tmp_path):
    """A fresh catalogue: product, model, channel, link procedure with confirmation, and
    firmware 1.1.0 of 200 KiB + 7 bytes."""
    t = {k: unique(k) for k in ("prod", "model", "chan", "dm", "dp", "dev")}
    hub.create("product", tid=t["prod"], name="P")
    hub.create("model", tid=t["model"], name="M", product=t["prod"])
    hub.create("channel", tid=t["chan"], name="stable")
    hub.create("method", tid=t["dm"], name="HTTP", kind="http")
    hub.create("procedure", tid=t["dp"], name="Link", delivery_method=t["dm"],
               steps=[{"plugin": "link"}], confirm=True)
    t["image"] = os.urandom(200 * 1024 + 7)
    path = tmp_path / "fw.bin"
    path.write_bytes(t["image"])
    t["fw"] = hub.upload_firmware(str(path), model=t["model"], version="1.1.0",
                                  channels=[t["chan"]])
    return t


def request_fields(t, version="1.0.0"):
    return {"model": t["model"], "device_id": t["dev"], "current_channel": t["chan"],
            "current_firmware_version": version, "delivery_procedure_tid": t["dp"]}


def test_objects_round_trip_by_tid_and_id(hub):
    tid = unique("prod")
    p = hub.create("product", tid=tid, name="Sensor", description="first")
    assert hub.fetch("product", tid) == p == hub.fetch("product", p["id"])
    m = hub.create("model", tid=unique("model"), name="M", product=tid)
    assert m["product"] == p["id"]
    assert hub.update("product", tid, description="second")["description"] == "second"
    assert [x["id"] for x in hub.objects("model", product=tid)] == [m["id"]]
    with pytest.raises(ApiError) as e:
        hub.remove("product", tid)
    assert (e.value.status, e.value.code) == (409, "referenced")
    hub.remove("model", m["id"])
    hub.remove("product", tid)
    with pytest.raises(ApiError) as e:
        hub.fetch("product", tid)
    assert (e.value.status, e.value.code) == (404, "not_found")


def test_api_error_carries_code_detail_and_fields(hub):
    with pytest.raises(ApiError) as e:
        hub.create("model", tid=unique("model"), name="M", product="no-such-product")
    err = e.value
    assert err.status == 400 and err.code and err.detail
    assert "product" in err.fields
    assert isinstance(err, DeviceHubError)
    assert str(err).startswith(f"HTTP 400 {err.code}: ")


def test_iterate_follows_next_across_pages(hub):
    tag = unique("pg")
    made = [hub.create("channel", tid=f"{tag}-{i}", name=tag)["id"] for i in range(7)]
    first = hub.page("/api/v1/channels/", {"limit": 2, "name": tag})
    assert first["count"] == 7 and len(first["results"]) == 2 and first["next"]
    got = [c["id"] for c in hub.iterate("/api/v1/channels/", {"limit": 2, "name": tag})]
    assert got == made


def test_upload_and_download_firmware(hub, cat, tmp_path):
    fw = cat["fw"]
    assert fw["size"] == len(cat["image"]) and fw["sha256"] == sha(cat["image"])
    assert hub.firmware(fw["id"])["version"] == "1.1.0"
    out = tmp_path / "dl.bin"
    r = hub.download_firmware(fw["id"], str(out), chunk_size=50000)
    assert r == {"path": str(out), "size": len(cat["image"]), "sha256": fw["sha256"]}
    assert out.read_bytes() == cat["image"]
    listed = list(hub.objects("firmware", model=cat["model"]))
    assert [x["id"] for x in listed] == [fw["id"]]


def test_download_chunks_are_range_requests_checked_at_the_end(hub, cat):
    url = f"/api/v1/firmware/{cat['fw']['id']}/image"
    chunks = list(hub.download_chunks(url, chunk_size=65536, sha256=cat["fw"]["sha256"]))
    assert [len(c) for c in chunks] == [65536, 65536, 65536, 8199]
    assert b"".join(chunks) == cat["image"]
    # from an offset: the rest of the image
    assert b"".join(hub.download_chunks(url, start=200000)) == cat["image"][200000:]
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        list(hub.download_chunks(url, sha256="0" * 64))


def test_download_to_file_resumes_after_max_bytes(hub, cat, tmp_path):
    url = f"/api/v1/firmware/{cat['fw']['id']}/image"
    out = tmp_path / "part.bin"
    with pytest.raises(IncompleteDownload) as e:
        hub.download(url, str(out), sha256=cat["fw"]["sha256"], chunk_size=30000,
                     max_bytes=90000)
    assert e.value.offset == 90000 and e.value.size == len(cat["image"])
    assert os.path.getsize(e.value.part) == 90000 and not out.exists()
    r = hub.download(url, str(out), sha256=cat["fw"]["sha256"], chunk_size=30000)
    assert r["sha256"] == cat["fw"]["sha256"] and out.read_bytes() == cat["image"]
    assert not os.path.exists(f"{out}.part") and not os.path.exists(f"{out}.part.json")


def test_session_calls_and_logged_state_changes(hub, cat, caplog):
    s = hub.request_update(**request_fields(cat))
    assert s["state"] == "ready" and s["target_firmware"] == cat["fw"]["id"]
    with pytest.raises(WaitTimeout) as e:
        hub.wait_session(s["id"], timeout=0.3, poll_interval=0.05)
    assert e.value.session["state"] == "ready"
    started = hub.start_session(s["id"])
    assert started["id"] == s["id"] and started["state"] != "ready"
    seen = []
    with caplog.at_level(logging.INFO, logger="devicehub"):
        w = hub.wait_session(started, timeout=60, on_change=lambda old, x: seen.append(old))
    assert w["state"] == "created" and w["payload"]["sha256"] == cat["fw"]["sha256"]
    assert seen and seen[0] == "queued"
    assert any(r.getMessage().endswith("-> created") for r in caplog.records), caplog.records
    assert [x["id"] for x in hub.sessions(device=w["device"])] == [s["id"]]
    done = hub.confirm_session(s["id"], success=False, message="flash error 7")
    assert done["state"] == "fail" and done["error"]["detail"].find("flash error 7") >= 0
    with pytest.raises(ApiError) as e:
        hub.confirm_session(s["id"])
    assert e.value.status in (409, 410)


def test_update_device_whole_flow(hub, cat, tmp_path):
    out = tmp_path / "image.bin"
    s = hub.update_device(str(out), chunk_size=40000, **request_fields(cat))
    assert s["state"] == "success" and out.read_bytes() == cat["image"]
    dev = hub.fetch("device", s["device"])
    assert dev["current_firmware_version"] == "1.1.0"
    again = hub.update_device(str(tmp_path / "again.bin"), **request_fields(cat, "1.1.0"))
    assert again["state"] == "up_to_date" and not (tmp_path / "again.bin").exists()


def test_update_device_resumes_in_the_same_session(hub, cat, tmp_path):
    out = tmp_path / "image.bin"
    with pytest.raises(IncompleteDownload):
        hub.update_device(str(out), chunk_size=16384, max_bytes=100000, **request_fields(cat))
    s = hub.update_device(str(out), chunk_size=16384, **request_fields(cat))
    assert s["state"] == "success" and out.read_bytes() == cat["image"]
    assert len(list(hub.sessions(device=s["device"]))) == 1


def test_unreachable_server_and_bad_token(server, tmp_path):
    with pytest.raises(TransportError, match="cannot connect to http://127.0.0.1:1"):
        Client("http://127.0.0.1:1", ADMIN_TOKEN, timeout=5).fetch("product", "x")
    with pytest.raises(ApiError) as e:
        list(Client(server.url, "dh_" + "0" * 48).objects("product"))
    assert e.value.status == 401
    with pytest.raises(ValueError):
        Client("127.0.0.1:8080")


def test_scoped_token_sees_only_its_scope(hub, admin, cat):
    _, secret = make_user(admin, ["update"], product=cat["prod"])
    dev = Client(hub.base, secret)
    s = dev.request_update(**request_fields(cat))
    assert s["state"] == "ready"
    with pytest.raises(ApiError) as e:
        dev.create("channel", tid=unique("chan"), name="x")
    assert e.value.status == 403


README_EXAMPLE = re.compile(
    r"<!-- example: python-update[^>]*-->\n```python\n(.*?)```", re.S)


def test_readme_example_runs_as_written(tmp_path, monkeypatch):
    """The device flow of README.md, exactly as printed there, against a fresh server with
    the catalogue of the README's curl walkthrough."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        code = README_EXAMPLE.search(f.read()).group(1)
    assert 9 <= len(code.strip().splitlines()) <= 14, code
    token = "change-me-0123456789"
    srv = Server(admin_token=token).start()
    try:
        hub = Client(srv.url, token)
        hub.create("product", tid="sensor", name="Sensor")
        hub.create("model", tid="CAFEBABE", name="Sensor rev B", product="sensor")
        hub.create("channel", tid="stable", name="stable")
        hub.create("method", tid="http", name="HTTP download", kind="http")
        hub.create("procedure", tid="dp-handle", name="Download link", delivery_method="http",
                   steps=[{"plugin": "link"}], confirm=True)
        image = os.urandom(100000)
        (tmp_path / "app.bin").write_bytes(image)
        hub.upload_firmware(str(tmp_path / "app.bin"), model="CAFEBABE", version="1.2.0",
                            channels=["stable"])
        monkeypatch.chdir(tmp_path)
        assert "http://127.0.0.1:8080" in code
        exec(compile(code.replace("http://127.0.0.1:8080", srv.url), "README.md", "exec"), {})
        assert (tmp_path / "new.bin").read_bytes() == image
        (dev,) = hub.objects("device", device_id="dev-2")
        assert dev["current_firmware_version"] == "1.2.0" and dev["last_state"] == "success"
    finally:
        srv.cleanup()


def test_the_package_is_strictly_typed():
    assert os.path.isfile(os.path.join(LIB, "devicehub", "py.typed"))
    r = subprocess.run([PYTHON, "-m", "mypy", "--strict", "--cache-dir", os.devnull,
                        "devicehub"], cwd=LIB, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def project_version():
    with open(os.path.join(ROOT, "meson.build"), encoding="utf-8") as f:
        return re.search(r"version: '([^']+)'", f.read()).group(1)


def test_pip_installs_offline_into_a_venv(tmp_path, server):
    """pip install . with Debian's pip, setuptools and wheel, no index, no network: the
    library imports from the venv and the `devicehub` command works."""
    src = tmp_path / "src"
    shutil.copytree(LIB, src)  # pip builds in place: keep the source tree clean
    venv = tmp_path / "venv"
    subprocess.run([PYTHON, "-m", "venv", "--system-site-packages", "--without-pip", venv],
                   check=True, timeout=120)
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    r = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "--no-build-isolation",
                        "--no-index", "-q", src], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([venv / "bin" / "python", "-c",
                        "import devicehub, sys; print(devicehub.__version__, devicehub.__file__)"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    version, path = r.stdout.split()
    assert version == project_version() == devicehub.__version__
    assert path.startswith(str(venv)), path
    r = subprocess.run([venv / "bin" / "devicehub", "--url", server.url, "--token",
                        ADMIN_TOKEN, "--json", "channel", "list", "--limit", "1"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and '"results"' in r.stdout, r.stderr
