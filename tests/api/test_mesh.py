"""The mesh_smp delivery step: params checked when a procedure is saved, and whole firmware
update sessions that distribute through the simulator of tests/sim/dfd_sim.py (started as a
subprocess on a free UDP port per test, fast mesh speed, short poll intervals)."""
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, assert_error, unique

sys.path.insert(0, os.path.join(ROOT, "tests", "sim"))
from process import Sim  # noqa: E402  (tests/sim/process.py)

PROCS = "/api/v1/delivery-procedures/"
SESSIONS = "/api/v1/firmware-update/"
MKIMAGE = os.path.join(ROOT, "scripts", "mkimage")
PYTHON = "/usr/bin/python3"
# Poll quickly so a test sees the phases; each run is a few seconds at the simulator's speed.
FAST = {"poll_ms": 50, "fast_poll_ms": 50}
SESSION_DEADLINE = 60.0
RX = [{"addr": 2, "img_idx": 0}]


@pytest.fixture(scope="module")
def mesh_method(admin):
    return admin.create("/api/v1/delivery-methods/",
                        {"tid": unique("dm"), "name": "Mesh", "kind": "mesh-smp"})


def mesh_proc(admin, method, params, confirm=True, extra_steps=({"plugin": "link"},), **extra):
    body = {"tid": unique("dp"), "name": "Mesh", "delivery_method": method["id"],
            "steps": [{"plugin": "mesh_smp", "params": params}] + list(extra_steps),
            "confirm": confirm}
    body.update(extra)
    return admin.create(PROCS, body)


GOOD_PARAMS = [
    {"udp": "127.0.0.1:1337", "receivers": RX},
    {"udp": {"host": "127.0.0.1", "port": 1337}, "receivers": RX},
    {"transport": "udp", "host": "::1", "port": 5683, "receivers": RX},
    {"transport": "serial", "device": "/dev/ttyACM0", "baud": 115200, "receivers": RX},
    {"serial": "/dev/ttyUSB0:921600", "receivers": [{"addr": 0x7fff, "img_idx": 255}],
     "app_idx": 1, "group": 0xc000, "ttl": 5, "timeout_base": 2, "xfer_mode": 2,
     "policy": "verify", "fwid": "0011223344556677", "metadata": "beef",
     "allow_partial": True, "preempt": False, "poll_ms": 100},
]


@pytest.mark.parametrize("params", GOOD_PARAMS)
def test_good_params_are_stored_as_given(admin, mesh_method, params):
    p = mesh_proc(admin, mesh_method, params)
    assert p["steps"][0] == {"plugin": "mesh_smp", "params": params}
    assert admin.get(PROCS + p["id"]).json()["steps"][0]["params"] == params


# (params, words the error must name besides the step)
BAD_PARAMS = [
    (None, "transport"),
    ({"receivers": RX}, "transport"),
    ({"udp": "127.0.0.1"}, "receivers"),
    ({"udp": "127.0.0.1", "receivers": []}, "receivers"),
    ({"udp": "127.0.0.1", "receivers": [{"addr": 0}]}, "receivers[0].addr"),
    ({"udp": "127.0.0.1", "receivers": [{"addr": 0x8000}]}, "receivers[0].addr"),
    ({"udp": "127.0.0.1", "receivers": [{"addr": 2}, {"addr": 2}]}, "receivers[1].addr"),
    ({"udp": "127.0.0.1", "receivers": [{"addr": 2, "img_idx": 300}]},
     "receivers[0].img_idx"),
    ({"udp": "127.0.0.1", "receivers": [{"addr": n} for n in range(1, 66)]}, "receivers"),
    ({"udp": "127.0.0.1:99999", "receivers": RX}, "udp"),
    ({"udp": "127.0.0.1", "serial": "/dev/ttyACM0", "receivers": RX}, "transport"),
    ({"transport": "carrier-pigeon", "receivers": RX}, "transport"),
    ({"transport": "serial", "device": "/dev/ttyACM0", "baud": 1234, "receivers": RX}, "baud"),
    ({"udp": "127.0.0.1", "receivers": RX, "ttl": 256}, "ttl"),
    ({"udp": "127.0.0.1", "receivers": RX, "xfer_mode": 3}, "xfer_mode"),
    ({"udp": "127.0.0.1", "receivers": RX, "policy": "later"}, "policy"),
    ({"udp": "127.0.0.1", "receivers": RX, "fwid": "xyz"}, "fwid"),
    ({"udp": "127.0.0.1", "receivers": RX, "metadata": "00" * 33}, "metadata"),
    ({"udp": "127.0.0.1", "receivers": RX, "poll_ms": 0}, "poll_ms"),
    ({"udp": "127.0.0.1", "receivers": RX, "allow_partial": "yes"}, "allow_partial"),
    ({"udp": "127.0.0.1", "receivers": RX, "recievers": RX}, "recievers"),
]


@pytest.mark.parametrize("params,key", BAD_PARAMS)
def test_bad_params_rejected_at_creation_and_patch(admin, mesh_method, params, key):
    step = {"plugin": "mesh_smp"}
    if params is not None:
        step["params"] = params
    tid = unique("dp")
    body = {"tid": tid, "name": "Mesh", "delivery_method": mesh_method["id"],
            "steps": [{"plugin": "link"}, step]}
    err = assert_error(admin.post(PROCS, json=body), 400, "invalid")
    what = err["fields"]["steps"]
    assert "step 1" in what and "mesh_smp" in what and key in what, err
    assert_error(admin.get(PROCS + tid), 404)

    # a good procedure patched with the bad step is refused and keeps its steps
    good = mesh_proc(admin, mesh_method, GOOD_PARAMS[0])
    err = assert_error(admin.patch(PROCS + good["id"], json={"steps": [step]}), 400, "invalid")
    assert "step 0" in err["fields"]["steps"] and key in err["fields"]["steps"], err
    assert admin.get(PROCS + good["id"]).json()["steps"] == good["steps"]


# ---------------------------------------------------------------------------------------------
# Sessions through the simulator
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def sims():
    """Starts simulators with sims(*args); stops each of them after the test."""
    started = []

    def start(*args):
        s = Sim(*args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def free_udp_port():
    """A UDP port nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_image(tmp_path, version, size, seed=1):
    """An MCUboot image file; its MCUboot image hash (what image state lists) is in .hash."""
    out = tmp_path / f"fw-{version}.img"
    r = subprocess.run([PYTHON, MKIMAGE, "--version", version, "--random-body", str(size),
                        "--seed", str(seed), str(out)], check=True, capture_output=True,
                       text=True, timeout=30)
    image_hash[str(out)] = r.stderr.split("image_hash=")[1].split()[0]
    return out


image_hash = {}


def upload_firmware(admin, catalog, path, version):
    with open(path, "rb") as f:
        r = admin.post("/api/v1/firmware/", files={"file": (path.name, f,
                                                            "application/octet-stream")},
                       data={"model": catalog["model"]["tid"], "version": version,
                             "channels": catalog["channel"]["tid"]})
    assert r.status_code == 201, r.text
    return r.json()


def sim_params(sim, **extra):
    params = {"udp": f"127.0.0.1:{sim.port}", "receivers": [{"addr": 2}, {"addr": 3}]}
    params.update(FAST)
    params.update(extra)
    return params


def start_session(admin, catalog, method, params, confirm=True, **extra):
    proc = mesh_proc(admin, method, params, confirm=confirm, **extra)
    r = admin.post(SESSIONS + "request", json={
        "model": catalog["model"]["tid"], "device_id": unique("dev"),
        "delivery_method": method["tid"], "delivery_procedure_tid": proc["tid"],
        "current_channel": catalog["channel"]["tid"], "current_firmware_version": "1.0.0"})
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["state"] == "ready", s
    r = admin.post(SESSIONS + s["id"] + "/start")
    assert r.status_code in (200, 202), r.text
    return s["id"]


def follow(admin, sid, deadline=SESSION_DEADLINE):
    """Polls the session until it leaves queued/processing; returns it and every distinct
    payload.mesh seen on the way."""
    seen = []
    end = time.monotonic() + deadline
    while True:
        s = admin.get(SESSIONS + sid).json()
        mesh = s.get("payload", {}).get("mesh")
        if mesh is not None and (not seen or seen[-1] != mesh):
            seen.append(mesh)
        if s["state"] not in ("ready", "queued", "processing"):
            return s, seen
        assert time.monotonic() < end, ("session still running", s)
        time.sleep(0.02)


def test_distribution_then_confirm(admin, catalog, mesh_method, sims, tmp_path):
    img = make_image(tmp_path, "1.2.0", 64 * 1024)
    fw = upload_firmware(admin, catalog, img, "1.2.0")
    sim = sims("--speed", "40000")  # 64 KiB in about 1.6 s: several polls in phase 1
    sid = start_session(admin, catalog, mesh_method, sim_params(sim))
    s, seen = follow(admin, sid)
    assert s["state"] == "created", s
    assert s["target_firmware"] == fw["id"] and s["error"] is None
    # progress was visible while the mesh transfer ran
    assert any(m["phase"] == 1 and (0 < m["progress"] < 100 or
                                    any(0 < r["progress"] < 100 for r in m["receivers"]))
               for m in seen), seen
    mesh = s["payload"]["mesh"]
    assert mesh["phase"] == 4 and mesh["progress"] == 100 and mesh["stage"] == "finish", mesh
    assert [r["addr"] for r in mesh["receivers"]] == [2, 3]
    assert all(r["phase"] == 8 and r["status"] == 0 for r in mesh["receivers"]), mesh
    assert mesh["upload"] == {"off": fw["size"], "len": fw["size"]}
    assert len(mesh["fwid"]) == 16 and fw["sha256"].startswith(mesh["fwid"])
    # the link step ran after the distribution
    assert s["payload"]["download_link"].endswith(f"/api/v1/firmware-update/{sid}/image")
    assert s["payload"]["sha256"] == fw["sha256"]
    # the driver left the distributor idle and without receivers (SMP.md 8 step 11)
    dfd = sim.cmd("snapshot")["dfd"]
    assert dfd["phase"] == 0 and dfd["receivers"] == [] and dfd["params"]["apply"] is True
    r = admin.post(SESSIONS + sid + "/confirm", json={"success": True})
    assert r.status_code == 200, r.text
    assert admin.get(SESSIONS + sid).json()["state"] == "success"


def test_policy_verify_sends_apply(admin, catalog, mesh_method, sims, tmp_path):
    img = make_image(tmp_path, "1.3.0", 16 * 1024)
    upload_firmware(admin, catalog, img, "1.3.0")
    sim = sims()
    sid = start_session(admin, catalog, mesh_method, sim_params(sim, policy="verify"))
    s, _ = follow(admin, sid)
    assert s["state"] == "created", s
    assert all(r["phase"] == 8 for r in s["payload"]["mesh"]["receivers"])
    # started without apply: only the driver's own `dfd apply` got the receivers to phase 8
    assert sim.cmd("snapshot")["dfd"]["params"]["apply"] is False


def test_failing_receiver_fails_the_session(admin, catalog, mesh_method, sims, tmp_path):
    img = make_image(tmp_path, "1.4.0", 32 * 1024)
    upload_firmware(admin, catalog, img, "1.4.0")
    sim = sims("--speed", "100000", "--fail-receiver", "0x0003:50")
    sid = start_session(admin, catalog, mesh_method, sim_params(sim))
    s, _ = follow(admin, sid)
    assert s["state"] == "fail", s
    assert s["error"]["code"] == "partial_failure", s["error"]
    assert "mesh_smp" in s["error"]["detail"] and "0x0003" in s["error"]["detail"], s["error"]
    rx = {r["addr"]: r for r in s["payload"]["mesh"]["receivers"]}
    assert rx[2]["phase"] == 8 and rx[3]["status"] != 0, rx
    assert "download_link" not in s["payload"]  # the link step never ran


def test_failing_receiver_allowed_partial(admin, catalog, mesh_method, sims, tmp_path):
    img = make_image(tmp_path, "1.4.1", 32 * 1024)
    upload_firmware(admin, catalog, img, "1.4.1")
    sim = sims("--speed", "100000", "--fail-receiver", "0x0003:50")
    sid = start_session(admin, catalog, mesh_method, sim_params(sim, allow_partial=True),
                        confirm=False)
    s, _ = follow(admin, sid)
    assert s["state"] == "success", s
    rx = {r["addr"]: r for r in s["payload"]["mesh"]["receivers"]}
    assert rx[2]["phase"] == 8 and rx[3]["status"] != 0, rx


def test_distributor_unreachable(admin, catalog, mesh_method, tmp_path):
    img = make_image(tmp_path, "1.5.0", 4 * 1024)
    upload_firmware(admin, catalog, img, "1.5.0")
    params = {"udp": f"127.0.0.1:{free_udp_port()}", "receivers": RX, "probe_tries": 2,
              "smp_timeout_ms": 300, "rto_ms": 50, "retries": 2}
    t0 = time.monotonic()
    sid = start_session(admin, catalog, mesh_method, params)
    s, _ = follow(admin, sid, deadline=20.0)
    assert s["state"] == "fail", s
    assert s["error"]["code"] == "distributor_unreachable", s["error"]
    assert "mesh_smp" in s["error"]["detail"] and "probe" in s["error"]["detail"]
    assert time.monotonic() - t0 < 15.0


def test_bad_text_in_an_answer_is_escaped_in_the_session(admin, catalog, mesh_method, sims,
                                                         tmp_path):
    """A distributor's answers may hold bytes that are not UTF-8 and control characters
    (dfd_sim.py --bad-text): the session's error quotes them escaped, as UTF-8 JSON."""
    img = make_image(tmp_path, "1.5.1", 8 * 1024)
    upload_firmware(admin, catalog, img, "1.5.1")
    sim = sims("--bad-text", "shell", "--slot-cnt", "0")  # no free slot: `slot add` fails
    sid = start_session(admin, catalog, mesh_method, sim_params(sim))
    s, _ = follow(admin, sid)
    assert s["state"] == "fail", s
    assert s["error"]["code"] == "slot_missing", s["error"]
    detail = s["error"]["detail"]
    assert detail.startswith("Step 1 (mesh_smp) failed: slot: `mesh models dfu slot add "), detail
    # the driver's one-line quote makes C0 controls spaces; the rest is escaped as \xNN
    assert "<err> log: \\xff\\xfe [2J  café \\xc3( \\xed\\xa0\\x80 \\x7f\\xc2\\x9b|" in detail, detail
    assert not [c for c in detail if ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f], detail
    # the answer as sent is UTF-8 (strict decode) and holds no raw control character
    body = admin.get(SESSIONS + sid).content.decode("utf-8")
    assert not [c for c in body if (ord(c) < 0x20 and c not in "\n\t") or
                0x7f <= ord(c) <= 0x9f], body
    # the payload holds numbers and names of the driver's own only
    assert s["payload"]["mesh"]["stage"] == "slot", s["payload"]


@pytest.mark.parametrize("fault", [("--reboot-after-bytes", "20000"), ("--drop", "0.05")],
                         ids=["reboot-mid-upload", "lossy"])
def test_interrupted_upload_still_distributes(admin, catalog, mesh_method, sims, tmp_path,
                                              fault):
    img = make_image(tmp_path, "1.6.0", 48 * 1024)
    fw = upload_firmware(admin, catalog, img, "1.6.0")
    sim = sims("--seed", "7", *fault)
    sid = start_session(admin, catalog, mesh_method, sim_params(sim))
    s, _ = follow(admin, sid)
    assert s["state"] == "created", s
    assert all(r["phase"] == 8 for r in s["payload"]["mesh"]["receivers"])
    snap = sim.cmd("snapshot")
    assert snap["images"][1]["hash"] == image_hash[str(img)], snap["images"]
    assert snap["stats"]["upload_bytes"] >= fw["size"]
    if fault[0] == "--reboot-after-bytes":
        assert snap["boot_count"] >= 2, snap["boot_count"]
    else:
        assert snap["stats"]["rx_dropped"] > 0, snap["stats"]


def test_timeout_cancels_the_distribution(admin, catalog, mesh_method, sims, tmp_path):
    img = make_image(tmp_path, "1.7.0", 64 * 1024)
    upload_firmware(admin, catalog, img, "1.7.0")
    sim = sims("--speed", "2000")  # about 30 s of mesh transfer: the session times out first
    t0 = time.monotonic()
    sid = start_session(admin, catalog, mesh_method, sim_params(sim), processing_timeout=3)
    s, seen = follow(admin, sid, deadline=30.0)
    assert s["state"] == "fail", s
    assert time.monotonic() - t0 < 20.0
    assert any(m["phase"] == 1 for m in seen), seen  # it was distributing
    # the step stopped the distributor: `dfd cancel` took it through 6 back to idle
    end = time.monotonic() + 10.0
    while True:
        dfd = sim.cmd("snapshot")["dfd"]
        if dfd["phase"] == 0:
            break
        assert time.monotonic() < end, dfd
        time.sleep(0.05)
    assert all(r["phase"] != 8 for r in s["payload"]["mesh"]["receivers"])


def test_distribution_over_serial_pty(admin, catalog, mesh_method, tmp_path):
    img = make_image(tmp_path, "1.8.0", 24 * 1024)
    fw = upload_firmware(admin, catalog, img, "1.8.0")
    sim = Sim("--serial-pty", "--no-udp", "--speed", "400000")  # only the pty can carry the session
    try:
        params = {"transport": "serial", "device": sim.pty, "baud": 115200,
                  "receivers": [{"addr": 2}, {"addr": 3}]}
        params.update(FAST)
        sid = start_session(admin, catalog, mesh_method, params)
        s, _ = follow(admin, sid)
        assert s["state"] == "created", s
        mesh = s["payload"]["mesh"]
        assert [r["addr"] for r in mesh["receivers"]] == [2, 3]
        assert all(r["phase"] == 8 and r["status"] == 0 for r in mesh["receivers"]), mesh
        assert mesh["upload"] == {"off": fw["size"], "len": fw["size"]}
        snap = sim.cmd("snapshot")
        assert snap["images"][1]["hash"] == image_hash[str(img)], snap["images"]
        assert snap["dfd"]["phase"] == 0 and snap["dfd"]["receivers"] == []
    finally:
        sim.stop()
