"""The CLI's firmware commands: streamed multipart upload, list/get, and the resumable,
sha256-checked ranged download (stopped with --max-bytes, killed mid-way, damaged partial
file), against a real devicehubd."""
import hashlib
import json
import os
import subprocess
import time

import pytest

from conftest import CLI, PYTHON, unique


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_image(path, size):
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    return sha(path)


@pytest.fixture(scope="module")
def cat(cli):
    p, m, c = unique("prod"), unique("model"), unique("chan")
    cli.ok("product", "create", "--tid", p, "--name", "P")
    cli.ok("model", "create", "--tid", m, "--name", "M", "--product", p)
    cli.ok("channel", "create", "--tid", c, "--name", "stable")
    return {"product": p, "model": m, "channel": c}


@pytest.fixture(scope="module")
def image(cli, cat, tmp_path_factory):
    """A 1 MiB image uploaded through the CLI: (firmware object, path, sha256)."""
    path = str(tmp_path_factory.mktemp("img") / "app.bin")
    digest = write_image(path, 1 << 20)
    fw = cli.json("firmware", "upload", path, "--model", cat["model"], "--version", "1.0.0",
                  "--channel", cat["channel"], "--description", "first")
    return fw, path, digest


def test_upload_records_the_image(image, cat, admin):
    fw, path, digest = image
    assert fw["sha256"] == digest and fw["size"] == 1 << 20
    assert fw["filename"] == "app.bin" and fw["version"] == "1.0.0"
    assert fw["draft"] is False and fw["description"] == "first"
    r = admin.get(f"/api/v1/firmware/{fw['id']}/image")
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == digest


def test_list_and_get(cli, image, cat):
    fw = image[0]
    page = cli.json("firmware", "list", "--model", cat["model"])
    assert [f["id"] for f in page["results"]] == [fw["id"]]
    assert cli.json("firmware", "get", fw["id"])["sha256"] == fw["sha256"]
    out = cli.ok("firmware", "list", "--model", cat["model"]).stdout
    assert fw["id"] in out and "1.0.0" in out


def test_upload_same_version_twice_is_409(cli, image, cat, admin):
    r = cli.run("firmware", "upload", image[1], "--model", cat["model"], "--version", "1.0.0",
                "--channel", cat["channel"])
    assert r.returncode == 1 and "HTTP 409" in r.stderr, r.stderr
    page = admin.get("/api/v1/firmware/", params={"model": cat["model"]}).json()
    assert page["count"] == 1


def test_upload_errors(cli, image, cat, admin, tmp_path):
    r = cli.run("firmware", "upload", image[1], "--model", "no-such-model", "--version",
                "9.0.0", "--channel", cat["channel"])
    assert r.returncode == 1 and "HTTP 4" in r.stderr and "no-such-model" in r.stderr, r.stderr
    r = cli.run("firmware", "upload", image[1], "--model", cat["model"], "--version", "not.a",
                "--channel", cat["channel"])
    assert r.returncode == 1 and "HTTP 400" in r.stderr and "version" in r.stderr, r.stderr
    r = cli.run("firmware", "upload", str(tmp_path / "missing.bin"), "--model", cat["model"],
                "--version", "9.0.1")
    assert r.returncode == 2 and "no such file" in r.stderr
    r = cli.run("firmware", "upload", image[1], "--version", "9.0.2")
    assert r.returncode == 2 and "--model" in r.stderr
    page = admin.get("/api/v1/firmware/", params={"model": cat["model"]}).json()
    assert page["count"] == 1


def test_upload_is_streamed(cli, cat, tmp_path):
    """A 48 MiB upload must not make the CLI grow by the file's size."""
    path = str(tmp_path / "big.bin")
    with open(path, "wb") as f:
        for _ in range(48):
            f.write(os.urandom(1 << 20))
    digest = sha(path)
    probe = ("import resource, subprocess, sys; "
             "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr); "
             "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
             "sys.exit(r.returncode)")
    r = subprocess.run([PYTHON, "-c", probe, PYTHON, CLI, "--json", "firmware", "upload", path,
                        "--model", cat["model"], "--version", "3.0.0", "--channel",
                        cat["channel"]], env=cli.env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition("MAXRSS")
    assert json.loads(body)["sha256"] == digest
    maxrss_mib = int(tail.split()[0]) / 1024
    assert maxrss_mib < 40, f"CLI peaked at {maxrss_mib:.1f} MiB for a 48 MiB upload"


def test_download_whole(cli, image, tmp_path):
    fw, _, digest = image
    out = tmp_path / "dl.bin"
    r = cli.ok("firmware", "download", fw["id"], "-o", out)
    assert sha(out) == digest and "verified" in r.stdout
    assert not os.path.exists(f"{out}.part") and not os.path.exists(f"{out}.part.json")


def test_download_resumes_after_max_bytes(cli, image, tmp_path):
    fw, _, digest = image
    out = tmp_path / "resume.bin"
    r = cli.run("firmware", "download", fw["id"], "-o", out, "--chunk-size", "65536",
                "--max-bytes", "300000")
    assert r.returncode == 3, r.stderr
    assert "rerun" in r.stderr and not out.exists()
    assert os.path.getsize(f"{out}.part") == 300000
    state = json.load(open(f"{out}.part.json"))
    assert state["sha256"] == digest and state["etag"]
    r = cli.ok("firmware", "download", fw["id"], "-o", out, "--chunk-size", "65536")
    assert "resuming" in r.stderr and "at byte 300000" in r.stderr
    assert sha(out) == digest
    assert not os.path.exists(f"{out}.part")


def test_download_resumes_after_kill(cli, image, tmp_path):
    """Killed mid-way (tiny chunks make it slow enough to catch), a rerun completes."""
    fw, _, digest = image
    out = tmp_path / "killed.bin"
    part = f"{out}.part"
    p = cli.popen("firmware", "download", fw["id"], "-o", out, "--chunk-size", "1024")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and p.poll() is None:
            if os.path.exists(part) and os.path.getsize(part) >= 64 * 1024:
                break
            time.sleep(0.01)
        assert p.poll() is None, "download finished before it could be interrupted"
        p.kill()
    finally:
        p.communicate(timeout=10)
    have = os.path.getsize(part)
    assert 0 < have < 1 << 20
    r = cli.ok("firmware", "download", fw["id"], "-o", out, "--chunk-size", "262144")
    assert "resuming" in r.stderr
    assert sha(out) == digest


def test_damaged_partial_file_is_detected_and_redownloaded(cli, image, tmp_path):
    fw, _, digest = image
    out = tmp_path / "damaged.bin"
    r = cli.run("firmware", "download", fw["id"], "-o", out, "--max-bytes", "500000")
    assert r.returncode == 3
    with open(f"{out}.part", "r+b") as f:
        f.seek(1000)
        f.write(b"\xff" * 100)
    r = cli.ok("firmware", "download", fw["id"], "-o", out)
    assert "sha256 mismatch" in r.stderr and "downloading again" in r.stderr
    assert sha(out) == digest


def test_partial_file_of_another_image_is_discarded(cli, image, cat, tmp_path):
    fw, _, digest = image
    out = tmp_path / "other.bin"
    r = cli.run("firmware", "download", fw["id"], "-o", out, "--max-bytes", "4096")
    assert r.returncode == 3
    state = json.load(open(f"{out}.part.json"))
    state["sha256"] = "0" * 64
    json.dump(state, open(f"{out}.part.json", "w"))
    r = cli.ok("firmware", "download", fw["id"], "-o", out)
    assert "another image" in r.stderr and sha(out) == digest


def test_download_unknown_firmware(cli, tmp_path):
    r = cli.run("firmware", "download", "00000000-0000-4000-8000-000000000000", "-o",
                tmp_path / "x.bin")
    assert r.returncode == 1 and "HTTP 404" in r.stderr
    assert not (tmp_path / "x.bin.part").exists()
