"""devicehubd backup and restore: a backup taken while sessions are being created restores
into an empty data dir that serves the same sessions and byte-identical images; the archive
is a plain tar whose manifest sha256sum-style sums check out; a restore refuses a non-empty
or locked data dir and a damaged, truncated or foreign archive, leaving nothing behind; a
PostgreSQL database is refused with the way to back it up."""
import hashlib
import io
import json
import os
import subprocess
import tarfile
import threading
import time

import pytest

from conftest import ADMIN_TOKEN, BIN, Client, Server, unique

TIMEOUT = 120


def dh(*args, env=None):
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("DEVICEHUB_") and k != "DEVICEHUB_BIN":
            del e[k]
    e.update(env or {})
    return subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=TIMEOUT, env=e)


def entries(path):
    """What a directory holds besides the lock file."""
    return sorted(n for n in os.listdir(path) if n != "devicehubd.lock")


def catalogue(admin, images):
    """Two models, each with its firmware (random images of the given sizes) in one
    channel, and a link procedure that waits for confirmation."""
    t = {k: unique(k) for k in ("prod", "chan", "dm", "dp")}
    admin.create("/api/v1/products/", {"tid": t["prod"], "name": "P"})
    admin.create("/api/v1/channels/", {"tid": t["chan"], "name": "stable"})
    admin.create("/api/v1/delivery-methods/", {"tid": t["dm"], "name": "HTTP", "kind": "http"})
    admin.create("/api/v1/delivery-procedures/",
                 {"tid": t["dp"], "name": "Link", "delivery_method": t["dm"],
                  "steps": [{"plugin": "link"}], "confirm": True})
    t["models"], t["fw"] = [], {}
    for size in images:
        m = admin.create("/api/v1/models/", {"tid": unique("model"), "name": "M",
                                             "product": t["prod"]})
        data = os.urandom(size)
        r = admin.post("/api/v1/firmware/", json=None,
                       files={"file": ("fw.bin", data)},
                       data={"model": m["tid"], "version": "2.0.0", "channels": t["chan"]})
        assert r.status_code == 201, r.text
        t["models"].append(m["tid"])
        t["fw"][r.json()["id"]] = data
    return t


def new_session(admin, t, i):
    s = admin.create("/api/v1/firmware-update/request",
                     {"model": t["models"][i % len(t["models"])], "device_id": f"dev-{i}",
                      "current_channel": t["chan"], "current_firmware_version": "1.0.0",
                      "delivery_procedure_tid": t["dp"]})
    r = admin.post(f"/api/v1/firmware-update/{s['id']}/start")
    assert r.status_code in (200, 202), r.text
    return s["id"]


@pytest.fixture
def live(tmp_path):
    """A server with a catalogue of three images (one above 1 MiB)."""
    srv = Server().start()
    admin = Client(srv, ADMIN_TOKEN)
    t = catalogue(admin, [1, 300 * 1024 + 5, 1536 * 1024])
    yield srv, admin, t
    srv.cleanup()


def wait_state(client, sid, states, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = client.get(f"/api/v1/firmware-update/{sid}/").json()
        if s["state"] in states:
            return s
        time.sleep(0.05)
    raise AssertionError(f"session {sid} still {s['state']}")


def test_backup_while_serving_restores_the_same_sessions_and_images(live, tmp_path):
    srv, admin, t = live
    created, stop, errors = [], threading.Event(), []

    def create_sessions():
        i = 0
        try:
            while not stop.is_set() and i < 2000:
                created.append((time.monotonic(), new_session(admin, t, i)))
                i += 1
        except Exception as e:  # reported by the main thread
            errors.append(e)

    worker = threading.Thread(target=create_sessions)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while len(created) < 20 and time.monotonic() < deadline and not errors:
            time.sleep(0.02)
        assert len(created) >= 20, errors
        started = time.monotonic()
        before = [sid for when, sid in created if when < started]
        archive = tmp_path / "backup.tar"
        r = dh("backup", "--data-dir", srv.data_dir, "--to", archive)
        after_backup = len(created)
        deadline = time.monotonic() + 30
        while len(created) < after_backup + 5 and time.monotonic() < deadline and not errors:
            time.sleep(0.02)
    finally:
        stop.set()
        worker.join(60)
    assert not errors, errors
    assert r.returncode == 0, r.stderr
    assert "3 images" in r.stdout, r.stdout
    assert len(created) > after_backup, "sessions went on being created after the backup"

    new_dir = tmp_path / "restored"
    r = dh("restore", "--from", archive, "--data-dir", new_dir)
    assert r.returncode == 0, r.stderr
    assert "every SHA-256 sum checked" in r.stdout
    assert entries(new_dir) == ["blobs", "devicehub.db", "link.key"]

    restored = Server(data_dir=str(new_dir), admin_token=None).start()
    try:
        client = Client(restored, ADMIN_TOKEN)  # the admin token lives in the database
        page = client.get("/api/v1/firmware-update/", params={"limit": 1000}).json()
        got = {s["id"]: s for s in page["results"]}
        assert page["count"] == len(got)
        all_ids = [sid for _, sid in created]
        assert set(before) <= set(got), "a session created before the backup is missing"
        assert set(got) <= set(all_ids)
        # the backup is one moment: the restored sessions are the first N created
        assert set(all_ids[:len(got)]) == set(got)
        for sid, s in got.items():
            orig = admin.get(f"/api/v1/firmware-update/{sid}/").json()
            for key in ("create_time", "creator", "device", "target_firmware",
                        "current_firmware", "delivery_procedure", "expiration_time"):
                if key == "expiration_time" and orig["state"] != s["state"]:
                    continue
                assert s[key] == orig[key], (sid, key)
        # images: byte-identical, with the same ETag
        for fw_id, data in t["fw"].items():
            a = admin.get(f"/api/v1/firmware/{fw_id}/image")
            b = client.get(f"/api/v1/firmware/{fw_id}/image")
            assert b.status_code == 200 and b.content == data == a.content
            assert b.headers["ETag"] == a.headers["ETag"]
        # a session of the backup runs on: download its image by its link, confirm it
        sid = before[-1]
        s = wait_state(client, sid, ("created",))
        path = s["payload"]["download_link"].split("/", 3)[3]
        part = client.get("/" + path, headers={"Range": "bytes=0-99"})
        assert part.status_code == 206
        whole = client.get("/" + path)
        assert whole.content in t["fw"].values()
        assert whole.content[:100] == part.content
        assert hashlib.sha256(whole.content).hexdigest() == s["payload"]["sha256"]
        done = client.post(f"/api/v1/firmware-update/{sid}/confirm", json={"success": True})
        assert done.status_code == 200 and done.json()["state"] == "success"
    finally:
        restored.cleanup()


def test_archive_is_a_tar_with_a_checkable_manifest(live, tmp_path):
    srv, _, t = live
    archive = tmp_path / "b.tar"
    r = dh("backup", "--data-dir", srv.data_dir, "--to", archive)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(f"{archive}.partial") and not os.path.exists(
        f"{archive}.db-snapshot")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert names[0] == "devicehub-backup.json" and names[1] == "devicehub.db"
    assert names[-1] == "MANIFEST.sha256"
    info = json.loads(files["devicehub-backup.json"])
    assert info["format"] == "devicehub-backup" and info["version"] == 1
    assert info["images"] == 3 and info["schema_version"] >= 1
    lines = files["MANIFEST.sha256"].decode().splitlines()
    sums = dict(reversed(line.split("  ", 1)) for line in lines)
    assert sorted(sums) == sorted(names[:-1])
    for name, digest in sums.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest, name
    blobs = {n.rsplit("/", 1)[1]: files[n] for n in names if n.startswith("blobs/sha256/")}
    assert sorted(blobs.values()) == sorted(t["fw"].values())
    assert all(hashlib.sha256(v).hexdigest() == k for k, v in blobs.items())


def short_link_session(admin, t):
    """A session whose link step ran (for the 300 KiB image): it waits for the device in
    created, with links."""
    sid = new_session(admin, t, 1)
    s = wait_state(admin, sid, ("created",))
    assert s["payload"]["short_link"], s
    return s


def test_restore_keeps_the_short_links(live, tmp_path):
    """The archive carries <data dir>/link.key (listed in the manifest, mode 0600): a
    restored server shows every session's short_link as before, and a link already given to
    a device downloads from it."""
    srv, admin, t = live
    s = short_link_session(admin, t)
    short = s["payload"]["short_link"]
    image = admin.get("/" + short.split("/", 3)[3], token="").content
    assert hashlib.sha256(image).hexdigest() == s["payload"]["sha256"]
    archive = tmp_path / "b.tar"
    r = dh("backup", "--data-dir", srv.data_dir, "--to", archive)
    assert r.returncode == 0 and "the link key" in r.stdout, (r.stdout, r.stderr)
    key = open(os.path.join(srv.data_dir, "link.key"), "rb").read()
    with tarfile.open(archive) as tar:
        member = tar.getmember("link.key")
        assert member.mode == 0o600 and tar.extractfile(member).read() == key
        manifest = tar.extractfile("MANIFEST.sha256").read().decode()
        info = json.loads(tar.extractfile("devicehub-backup.json").read())
    assert f"{hashlib.sha256(key).hexdigest()}  link.key" in manifest.splitlines()
    assert info["link_key"] is True

    new_dir = tmp_path / "restored"
    r = dh("restore", "--from", archive, "--data-dir", new_dir)
    assert r.returncode == 0 and "the link key" in r.stdout, (r.stdout, r.stderr)
    assert (new_dir / "link.key").read_bytes() == key
    assert os.stat(new_dir / "link.key").st_mode & 0o777 == 0o600
    restored = Server(data_dir=str(new_dir), admin_token=None).start()
    try:
        client = Client(restored, ADMIN_TOKEN)
        again = client.get(f"/api/v1/firmware-update/{s['id']}/").json()
        assert again["state"] == "created"
        assert again["payload"]["short_link"] == short
        listed = client.get("/api/v1/firmware-update/", params={"limit": 1000}).json()
        assert [x["payload"]["short_link"] for x in listed["results"]
                if x["id"] == s["id"]] == [short]
        # the link a device holds: no token, resumable, the same bytes
        path = "/" + short.split("/", 3)[3]
        got = client.get(path, token="")
        assert got.status_code == 200 and got.content == image
        part = client.get(path, token="", headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == image[10:20]
    finally:
        restored.cleanup()


def test_a_backup_without_a_link_key_still_restores(live, tmp_path):
    """Archives of builds before the key was included: restored, with a note, and the
    server makes a new key (sessions then show their short links as null)."""
    srv, admin, t = live
    s = short_link_session(admin, t)
    archive = tmp_path / "b.tar"
    assert dh("backup", "--data-dir", srv.data_dir, "--to", archive).returncode == 0
    old = tmp_path / "old.tar"
    with tarfile.open(archive) as src, tarfile.open(old, "w", format=tarfile.USTAR_FORMAT) as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name == "link.key":
                continue
            if m.name == "MANIFEST.sha256":
                data = "".join(line for line in data.decode().splitlines(True)
                               if not line.endswith("  link.key\n")).encode()
                m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    new_dir = tmp_path / "restored"
    r = dh("restore", "--from", old, "--data-dir", new_dir)
    assert r.returncode == 0 and "no link key" in r.stdout, (r.stdout, r.stderr)
    assert entries(new_dir) == ["blobs", "devicehub.db"]
    restored = Server(data_dir=str(new_dir), admin_token=None).start()
    try:
        again = Client(restored, ADMIN_TOKEN).get(f"/api/v1/firmware-update/{s['id']}/").json()
        assert again["payload"]["short_link"] is None
    finally:
        restored.cleanup()


def test_restore_refuses_a_link_key_of_the_wrong_size(archive, tmp_path):
    bad = tmp_path / "badkey.tar"
    with tarfile.open(archive) as src, tarfile.open(bad, "w", format=tarfile.USTAR_FORMAT) as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read()
            if m.name == "link.key":
                data = data[:16]
                m.size = 16
            dst.addfile(m, io.BytesIO(data))
    target = tmp_path / "into"
    r = dh("restore", "--from", bad, "--data-dir", target)
    assert r.returncode == 1 and "link.key holds 16 bytes" in r.stderr, r.stderr
    assert entries(target) == []


def tamper(src, dst, member, offset):
    """Copies the archive src to dst with one byte of member's data flipped."""
    data = bytearray(src.read_bytes())
    with tarfile.open(src) as tar:
        m = tar.getmember(member)
    data[m.offset_data + offset] ^= 0x5A
    dst.write_bytes(bytes(data))


@pytest.fixture
def archive(live, tmp_path):
    srv = live[0]
    path = tmp_path / "good.tar"
    r = dh("backup", "--data-dir", srv.data_dir, "--to", path)
    assert r.returncode == 0, r.stderr
    return path


def test_restore_refuses_damage_and_leaves_nothing(archive, tmp_path):
    with tarfile.open(archive) as tar:
        blob = next(n for n in tar.getnames() if n.startswith("blobs/"))
    cases = {}
    tamper(archive, tmp_path / "blob.tar", blob, 0)
    cases["blob.tar"] = "damaged"
    tamper(archive, tmp_path / "db.tar", "devicehub.db", 5000)
    cases["db.tar"] = "does not match its SHA-256"
    full = archive.read_bytes()
    (tmp_path / "short.tar").write_bytes(full[:len(full) // 2])
    cases["short.tar"] = "archive ends"
    (tmp_path / "other.tar").write_bytes(os.urandom(4096))
    cases["other.tar"] = "Not a Device Hub backup"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "escape.tar").write_bytes(buf.getvalue())
    cases["escape.tar"] = "unexpected member"
    for name, words in cases.items():
        target = tmp_path / f"into-{name}"
        r = dh("restore", "--from", tmp_path / name, "--data-dir", target)
        assert r.returncode == 1, (name, r.stdout, r.stderr)
        assert words in r.stderr, (name, r.stderr)
        assert entries(target) == [], (name, entries(target))
    assert not (tmp_path / "escape").exists()
    # the good archive still restores into one of those directories
    r = dh("restore", "--from", archive, "--data-dir", tmp_path / "into-blob.tar")
    assert r.returncode == 0, r.stderr


def test_restore_refuses_a_non_empty_or_locked_data_dir(live, archive, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    r = dh("restore", "--from", archive, "--data-dir", target)
    assert r.returncode == 1 and "not empty" in r.stderr and "notes.txt" in r.stderr
    assert entries(target) == ["notes.txt"]
    # what a restore killed midway leaves (its staging dir) goes at the next one
    stale = tmp_path / "stale"
    (stale / ".restore-tmp" / "blobs").mkdir(parents=True)
    (stale / ".restore-tmp" / "devicehub.db").write_bytes(b"half")
    r = dh("restore", "--from", archive, "--data-dir", stale)
    assert r.returncode == 0, r.stderr
    assert entries(stale) == ["blobs", "devicehub.db", "link.key"]
    # a running server holds its data dir's lock: the restore must not even look inside
    r = dh("restore", "--from", archive, "--data-dir", live[0].data_dir)
    assert r.returncode == 1 and "in use by another devicehubd" in r.stderr, r.stderr


def test_backup_refusals(live, tmp_path):
    srv = live[0]
    out = tmp_path / "pg.tar"
    r = dh("backup", "--data-dir", srv.data_dir, "--to", out, "--database",
           "postgresql://devicehub@db.example/devicehub")
    assert r.returncode == 2 and "pg_dump" in r.stderr and "PostgreSQL" in r.stderr
    r = dh("backup", "--data-dir", srv.data_dir, "--to", out,
           env={"DEVICEHUB_DATABASE": "postgresql:///devicehub"})
    assert r.returncode == 2 and "pg_dump" in r.stderr
    assert not out.exists() and not os.path.exists(f"{out}.partial")
    r = dh("backup", "--data-dir", tmp_path / "nothing-here", "--to", out)
    assert r.returncode == 1 and "No database" in r.stderr and not out.exists()
    out.write_bytes(b"keep")
    r = dh("backup", "--data-dir", srv.data_dir, "--to", out)
    assert r.returncode == 1 and "exists" in r.stderr and out.read_bytes() == b"keep"
    for args, words in [(["backup"], "--to FILE is required"),
                        (["backup", "--to"], "needs a value"),
                        (["backup", "--to", "x", "--frobnicate", "1"], "unknown flag"),
                        (["restore", "--data-dir", str(tmp_path / "r")], "--from FILE")]:
        r = dh(*args)
        assert r.returncode == 2 and words in r.stderr, (args, r.stderr)
    r = dh("backup", "--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: devicehubd backup --to FILE")
