"""Restart safety: kill -9 the server with sessions queued and processing, start it again on
the same data dir, and check that none is lost: queued ones run, a processing one is taken up
again once and failed with a clear error the second time; an orderly stop leaves a processing
session to be taken up without counting that run; a second server on a data dir in use leaves
the running one's sessions and uploads alone."""
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import BIN, Client, Server, unique
from sessutil import FU, new_session, procedure, upload_fw, wait_for, wait_state

# A lease of 3 s instead of 10: a killed server's claims end, and the next start takes its
# sessions up, 7 s sooner (renewed every second by the reaper, so a loaded machine keeps them).
ARGS = ["--reaper-interval-ms", "100", "--workers", "1", "--lease-ms", "3000"]


def kill_pids(pidfile):
    """Ends the step processes a killed server left behind."""
    if not os.path.exists(pidfile):
        return
    with open(pidfile) as f:
        for line in f:
            try:
                os.kill(int(line), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass


def catalog_of(admin):
    p = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
    m = admin.create("/api/v1/models/", {"tid": unique("m"), "name": "M", "product": p["id"]})
    c = admin.create("/api/v1/channels/", {"tid": unique("c"), "name": "stable"})
    dm = admin.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "H",
                                                    "kind": "http"})
    return {"product": p, "model": m, "channel": c, "method": dm}


@pytest.fixture
def setup(tmp_path):
    data_dir = str(tmp_path / "var")
    pidfile = str(tmp_path / "pids")
    servers = []

    def start():
        s = Server(data_dir=data_dir, extra_args=ARGS).start()
        servers.append(s)
        return s, Client(s, s.admin_token)

    yield start, pidfile
    for s in servers:
        s.stop(signal.SIGKILL if s.proc else signal.SIGTERM)
    kill_pids(pidfile)
    for s in servers:
        assert not s.sanitizer_report(), s.sanitizer_report()[-4000:]


def sleeper(pidfile):
    return [{"plugin": "link"},
            {"plugin": "exec", "params": {"program": "/bin/sh",
                                          "args": ["-c", f"echo $$ >> {pidfile}; exec sleep 60"]}}]


def test_kill9_loses_no_session(setup):
    start, pidfile = setup
    srv, admin = start()
    cat = catalog_of(admin)
    upload_fw(admin, cat, "1.1.0")
    slow = procedure(admin, cat, steps=sleeper(pidfile), processing_timeout=120)
    fast = procedure(admin, cat, confirm=True)
    busy = new_session(admin, cat, slow, "1.0.0")
    admin.post(FU + busy["id"] + "/start")
    wait_for(admin, busy["id"], lambda s: s["state"] == "processing" and "download_link" in s["payload"])
    # the one worker is busy: these stay queued
    waiting = [new_session(admin, cat, fast, "1.0.0") for _ in range(3)]
    for s in waiting:
        assert admin.post(FU + s["id"] + "/start").status_code == 200
    assert all(admin.get(FU + s["id"]).json()["state"] == "queued" for s in waiting)
    srv.kill9()
    kill_pids(pidfile)

    srv, admin = start()
    for s in waiting:
        s = wait_state(admin, s["id"], "created")
        assert [h["state"] for h in s["history"]] == ["ready", "queued", "processing", "created"]
    s = wait_for(admin, busy["id"], lambda x: x["state"] == "processing" and x["attempts"] == 2)
    assert [h["state"] for h in s["history"]] == ["ready", "queued", "processing", "queued",
                                                  "processing"]
    assert "recovered" in srv.read_log()
    srv.kill9()
    kill_pids(pidfile)

    srv, admin = start()
    s = wait_state(admin, busy["id"], "fail")
    assert s["error"]["code"] == "interrupted"
    assert "server stopped" in s["error"]["detail"] and "not retried" in s["error"]["detail"]
    assert s["finished"] is False and s["expiration_time"]
    r = admin.get(FU, params={"limit": 100}).json()
    assert r["count"] == 4


def test_orderly_stop_leaves_processing_recoverable(setup):
    start, pidfile = setup
    srv, admin = start()
    cat = catalog_of(admin)
    upload_fw(admin, cat, "1.1.0")
    slow = procedure(admin, cat, steps=sleeper(pidfile), processing_timeout=120)
    s = new_session(admin, cat, slow, "1.0.0")
    admin.post(FU + s["id"] + "/start")
    wait_for(admin, s["id"], lambda x: x["state"] == "processing" and x["attempts"] == 1)
    deadline = time.monotonic() + 10  # the exec step's program has started (it wrote its pid)
    while not (os.path.exists(pidfile) and os.path.getsize(pidfile) > 0):
        assert time.monotonic() < deadline, "the exec step's program never started"
        time.sleep(0.02)
    t0 = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - t0 < 10  # the running step was cancelled, not waited for
    with open(pidfile) as f:
        pid = int(f.readline())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the step's process group was killed
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the exec step survived an orderly stop")
    srv, admin = start()
    s = wait_for(admin, s["id"], lambda x: x["state"] == "processing" and
                 [h["state"] for h in x["history"]].count("processing") == 2)
    assert s["attempts"] == 1  # an orderly stop does not use up the retry


def test_queued_past_processing_timeout_fails(setup):
    start, pidfile = setup
    srv, admin = start()
    cat = catalog_of(admin)
    upload_fw(admin, cat, "1.1.0")
    slow = procedure(admin, cat, steps=sleeper(pidfile), processing_timeout=120)
    quick = procedure(admin, cat, processing_timeout=1)
    busy = new_session(admin, cat, slow, "1.0.0")
    admin.post(FU + busy["id"] + "/start")
    wait_state(admin, busy["id"], "processing")
    s = new_session(admin, cat, quick, "1.0.0")
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "fail", timeout=10)
    assert s["error"]["code"] == "timeout" and "queue" in s["error"]["detail"]
    assert [h["state"] for h in s["history"]] == ["ready", "queued", "fail"]


def tmp_uploads(data_dir):
    tmp = os.path.join(data_dir, "blobs", "tmp")
    return sorted(os.listdir(tmp)) if os.path.isdir(tmp) else []


def test_second_instance_on_the_data_dir_changes_nothing(setup, tmp_path):
    start, pidfile = setup
    srv, admin = start()
    cat = catalog_of(admin)
    upload_fw(admin, cat, "1.1.0")
    slow = procedure(admin, cat, steps=sleeper(pidfile), processing_timeout=120)
    busy = new_session(admin, cat, slow, "1.0.0")
    admin.post(FU + busy["id"] + "/start")
    before = wait_for(admin, busy["id"], lambda s: s["state"] == "processing"
                      and os.path.exists(pidfile) and os.path.getsize(pidfile) > 0)
    # an upload in flight: the head of the body is in, the file part half written
    bnd = "lockbnd"
    fields = [("model", cat["model"]["tid"]), ("version", "1.2.0"),
              ("channels", cat["channel"]["tid"])]
    body = b"".join(f"--{bnd}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
                    .encode() for k, v in fields)
    body += (f"--{bnd}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\""
             "\r\n\r\n").encode()
    image = b"i" * 600000
    tail = image[300000:] + f"\r\n--{bnd}--\r\n".encode()
    body += image[:300000]
    head = (f"POST /api/v1/firmware/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Token {srv.admin_token}\r\n"
            f"Content-Type: multipart/form-data; boundary={bnd}\r\n"
            f"Content-Length: {len(body) + len(tail)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(head + body)
        deadline = time.monotonic() + 10
        while not tmp_uploads(srv.data_dir):
            assert time.monotonic() < deadline, "the upload never reached a temporary file"
            time.sleep(0.02)
        in_flight = tmp_uploads(srv.data_dir)

        # a second devicehubd on the same data dir (any free port): refused before it
        # touches anything
        second = subprocess.Popen([BIN, "--listen", "127.0.0.1", "--port", "0", "--data-dir",
                                   srv.data_dir] + ARGS, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=srv.env)
        try:
            out, err = second.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            second.kill()
            second.communicate()
            raise AssertionError("a second devicehubd started on a data dir in use")
        err = err.decode(errors="replace")
        assert second.returncode == 2, err
        assert f"in use by another devicehubd (pid {srv.proc.pid})" in err, err
        assert "Sanitizer" not in err and "runtime error:" not in err, err

        assert tmp_uploads(srv.data_dir) == in_flight
        sock.sendall(tail)
        resp = b""
        while b"\r\n\r\n" not in resp or not resp.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            resp += chunk
    assert resp.startswith(b"HTTP/1.1 201"), resp[:500]
    fw = json.loads(resp.split(b"\r\n\r\n", 1)[1])
    assert admin.get("/api/v1/firmware/" + fw["id"] + "/image").content == image
    # the processing session was not taken up a second time: one run of its step
    after = admin.get(FU + busy["id"]).json()
    assert after["state"] == "processing" and after["attempts"] == before["attempts"]
    assert after["history"] == before["history"]
    with open(pidfile) as f:
        assert len(f.read().split()) == 1
    assert srv.proc.poll() is None and admin.get("/healthz").status_code == 200
