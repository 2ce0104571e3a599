"""dh-smp end to end against the distributor simulator: each test runs the binary as a user
would and checks its exit code (0 success, 1 failure, 2 usage), the JSON on stdout and the
progress on stderr, then what the simulated device holds afterwards."""
import hashlib
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import BIN, SimStartError, free_udp_port, make_image, mcuboot_hash

COMMANDS = ["echo", "params", "image-list", "upload", "reset", "shell", "mesh-distribute"]
IMAGE_SIZE = 200 * 1024


def slots(res):
    assert res.rc == 0, res
    body = res.json
    assert body["ok"] is True
    return {s["slot"]: s for s in body["images"]}


def progress(err):
    """(off, len, pct) of each upload progress line on stderr."""
    return [tuple(int(x) for x in m)
            for m in re.findall(r"^upload (\d+)/(\d+) bytes \((\d+)%\)$", err, re.M)]


def check_uploaded(smp, sim, res, data):
    """The upload run ended well and slot 1 holds the image, seen by dh-smp and the sim."""
    assert res.rc == 0, res
    body = res.json
    assert body["ok"] is True and body["len"] == len(data)
    assert body["sha"] == hashlib.sha256(data).hexdigest()
    assert body["match"] is True
    lines = progress(res.err)
    assert lines and lines[-1] == (len(data), len(data), 100), res.err
    assert [o for o, _, _ in lines[1:]] == sorted(o for o, _, _ in lines[1:]) or \
        body["restarts"] > 0, res.err
    listed = slots(smp("--udp", sim.udp, "image-list"))
    assert listed[1]["hash"] == mcuboot_hash(data), listed
    assert listed[1]["version"] == "1.2.3" and listed[1]["pending"] is False
    assert listed[0]["active"] is True and listed[0]["hash"] == "aa" * 32
    snap = sim.snapshot()
    assert snap["images"][1]["hash"] == mcuboot_hash(data)
    assert snap["stats"].get("upload_bytes", 0) >= len(data)
    return body, snap


# --- command line ----------------------------------------------------------------------------

def test_help_lists_the_commands(smp):
    res = smp("--help")
    assert res.rc == 0 and res.err == "", res
    assert res.out.startswith("usage: dh-smp")
    for cmd in COMMANDS:
        assert re.search(rf"^  {re.escape(cmd)}\b", res.out, re.M), cmd
    assert "exit status: 0 success, 1 failure, 2 usage error" in res.out


USAGE = [
    ([], "missing COMMAND"),
    (["--udp", "127.0.0.1:9"], "missing COMMAND"),
    (["--udp", "127.0.0.1:9", "frobnicate"], "unknown COMMAND"),
    (["echo", "x"], "exactly one"),  # no transport given
    (["--udp", "127.0.0.1:9", "--serial", "/dev/null", "echo", "x"], "exactly one"),
    (["--udp", "127.0.0.1:99999", "echo", "x"], "--udp needs"),
    (["--udp", "[::1", "echo", "x"], "--udp needs"),
    (["--udp", "127.0.0.1:9", "--timeout-ms", "0", "echo", "x"], "--timeout-ms"),
    (["--udp", "127.0.0.1:9", "--window", "99", "echo", "x"], "--window"),
    (["--udp", "127.0.0.1:9", "--bogus", "1", "echo", "x"], "unknown option"),
    (["--udp", "127.0.0.1:9", "--timeout-ms"], "needs a value"),
    (["--udp", "127.0.0.1:9", "echo"], "echo takes one"),
    (["--udp", "127.0.0.1:9", "echo", "a", "b"], "echo takes one"),
    (["--udp", "127.0.0.1:9", "params", "x"], "params takes no"),
    (["--udp", "127.0.0.1:9", "upload"], "upload needs a FILE"),
    (["--udp", "127.0.0.1:9", "upload", "f", "--image", "300"], "--image"),
    (["--udp", "127.0.0.1:9", "shell"], "shell takes 1 to 20"),
    (["--udp", "127.0.0.1:9", "mesh-distribute", "f"], "--receivers"),
    (["--udp", "127.0.0.1:9", "mesh-distribute", "f", "--receivers", "2:999"], "--receivers"),
    (["--udp", "127.0.0.1:9", "mesh-distribute", "f", "--receivers", "2",
      "--policy", "later"], "--policy"),
]


@pytest.mark.parametrize("args,msg", USAGE, ids=[" ".join(a) or "none" for a, _ in USAGE])
def test_usage_errors_exit_2(smp, args, msg):
    res = smp(*args, timeout=10)
    assert res.rc == 2, res
    assert res.out == "", res
    assert res.err.startswith("dh-smp: ") and msg in res.err.splitlines()[0], res
    assert "usage: dh-smp" in res.err and "--help" in res.err


# --- simple commands -------------------------------------------------------------------------

def test_echo_over_udp(smp, sim):
    res = smp("--udp", sim.udp, "echo", "hello mesh")
    assert res.rc == 0, res
    assert res.json == {"ok": True, "r": "hello mesh", "smp_v1_peer": False}


def test_echo_over_pty(smp, sim):
    assert sim.pty
    res = smp("--serial", sim.pty, "echo", "over the console")
    assert res.rc == 0, res
    assert res.json["ok"] is True and res.json["r"] == "over the console"
    res = smp("--serial", f"{sim.pty}:115200", "echo", "with baud")
    assert res.rc == 0 and res.json["r"] == "with baud", res


def test_echo_to_v1_only_device(smp, sims):
    sim = sims("--smp-mode", "v1-only")
    res = smp("--udp", sim.udp, "echo", "old")
    assert res.rc == 0, res
    assert res.json == {"ok": True, "r": "old", "smp_v1_peer": True}


def test_params(smp, sims):
    res = smp("--udp", sims().udp, "params")
    assert res.rc == 0, res
    assert res.json == {"ok": True, "buf_size": 2048, "buf_count": 4, "fallback": False}
    res = smp("--udp", sims("--buf-size", "1024", "--buf-count", "6").udp, "params")
    assert res.rc == 0, res
    assert res.json == {"ok": True, "buf_size": 1024, "buf_count": 6, "fallback": False}


def test_shell_mesh_models_dfd_get(smp, sim):
    res = smp("--udp", sim.udp, "shell", "mesh", "models", "dfd", "get")
    assert res.rc == 0, res
    body = res.json
    assert body["ok"] is True and body["ret"] == 0 and body["truncated"] is False
    assert json.loads(body["o"]) == {"status": 0, "phase": 0}
    # an unknown command is the shell's answer, not a transport failure
    res = smp("--udp", sim.udp, "shell", "nosuchcmd")
    assert res.rc == 0, res
    assert res.json["ret"] == -8 and "nosuchcmd: command not found" in res.json["o"]


def test_reset_reboots_the_device(smp, sim):
    assert sim.snapshot()["boot_count"] == 1
    res = smp("--udp", sim.udp, "reset")
    assert res.rc == 0 and res.json == {"ok": True}, res
    end = time.monotonic() + 5.0
    while sim.snapshot()["boot_count"] < 2:
        assert time.monotonic() < end, "no reboot seen"
        time.sleep(0.05)
    # and it answers again after its downtime
    res = smp("--udp", sim.udp, "--timeout-ms", "3000", "echo", "back")
    assert res.rc == 0 and res.json["r"] == "back", res


# --- image list and upload -------------------------------------------------------------------

def test_image_list_before_and_after_upload(smp, sim, tmp_path):
    before = slots(smp("--udp", sim.udp, "image-list"))
    assert list(before) == [0]
    assert before[0] == {"image": 0, "slot": 0, "version": "1.0.0", "hash": "aa" * 32,
                         "bootable": True, "pending": False, "confirmed": True,
                         "active": True, "permanent": False}
    data = make_image(tmp_path / "fw.img", "1.2.3", 16 * 1024, seed=11)
    res = smp("--udp", sim.udp, "upload", tmp_path / "fw.img")
    check_uploaded(smp, sim, res, data)
    after = slots(smp("--udp", sim.udp, "image-list"))
    assert sorted(after) == [0, 1] and after[0] == before[0]
    assert after[1]["hash"] == mcuboot_hash(data)
    assert after[1]["active"] is False and after[1]["confirmed"] is False
    assert after[1]["bootable"] is True


@pytest.mark.parametrize("fault", [(), ("--drop", "0.05", "--seed", "7"),
                                   ("--reboot-after-bytes", "60000")],
                         ids=["clean", "lossy", "reboot-mid-upload"])
def test_upload_over_udp(smp, sims, tmp_path, fault):
    sim = sims(*fault)
    data = make_image(tmp_path / "fw.img", "1.2.3", IMAGE_SIZE, seed=3)
    # on the clean link a retransmission means a lost or unanswered request, not a simulator
    # that a loaded machine left waiting for longer than the default 30 ms floor
    rto = ("--rto-ms", "2000", "--rto-min-ms", "2000") if not fault else ()
    res = smp("--udp", sim.udp, *rto, "upload", tmp_path / "fw.img")
    body, snap = check_uploaded(smp, sim, res, data)
    assert body["window"] >= 1 and body["chunk_first"] > 0 and body["chunk_next"] > 0
    assert body["resumed_from"] == body["chunk_first"]  # fresh device: no earlier part
    if not fault:
        assert body["restarts"] == 0 and body["retransmits"] == 0
        assert snap["boot_count"] == 1
    elif fault[0] == "--drop":
        assert snap["stats"].get("rx_dropped", 0) > 0, snap["stats"]
        assert snap["boot_count"] == 1
    else:
        assert snap["boot_count"] >= 2 and body["restarts"] >= 1, (snap, body)
        # progress went back to the start once the device lost the upload
        assert any(o == 0 for o, _, _ in progress(res.err)[1:]), res.err


def test_upload_resumes_or_skips_identical_image(smp, sim, tmp_path):
    data = make_image(tmp_path / "fw.img", "1.2.3", 32 * 1024, seed=5)
    check_uploaded(smp, sim, smp("--udp", sim.udp, "upload", tmp_path / "fw.img"), data)
    again = smp("--udp", sim.udp, "upload", tmp_path / "fw.img")
    body, _ = check_uploaded(smp, sim, again, data)
    assert body["resumed_from"] == len(data)  # the device already had it all


def test_upload_over_pty(smp, sim, tmp_path):
    data = make_image(tmp_path / "fw.img", "1.2.3", 64 * 1024, seed=4)
    res = smp("--serial", sim.pty, "upload", tmp_path / "fw.img")
    check_uploaded(smp, sim, res, data)


def test_upload_of_non_mcuboot_file_fails_cleanly(smp, sim, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 20)
    res = smp("--udp", sim.udp, "upload", junk)
    assert res.rc == 1, res
    body = res.json
    assert body["ok"] is False and body["command"] == "upload"
    assert body["error"] == "device error" and body["group"] == 1 and body["rc"] == 23
    assert "header magic" in body["detail"]
    assert "dh-smp: upload failed: device error: image: header magic" in res.err
    # nothing landed in slot 1
    assert list(slots(smp("--udp", sim.udp, "image-list"))) == [0]


def test_upload_of_missing_file_fails_before_talking(smp, sim, tmp_path):
    res = smp("--udp", sim.udp, "upload", tmp_path / "nope.img")
    assert res.rc == 1, res
    assert res.json["ok"] is False and "cannot open" in res.json["detail"]
    assert "cannot open" in res.err and "nope.img" in res.err
    assert sim.snapshot()["stats"].get("upload_bytes", 0) == 0


# --- mesh distribution -----------------------------------------------------------------------

def test_mesh_distribute_two_receivers(smp, sims, tmp_path):
    sim = sims("--speed", "4000000")
    data = make_image(tmp_path / "fw.img", "1.2.3", IMAGE_SIZE, seed=8)
    res = smp("--udp", sim.udp, "mesh-distribute", tmp_path / "fw.img",
              "--receivers", "2,0x0003:0", "--poll-ms", "20")
    assert res.rc == 0, res
    body = res.json
    assert body["ok"] is True and body["code"] == "ok" and body["detail"] == ""
    mesh = body["mesh"]
    assert mesh["phase"] == 4 and mesh["progress"] == 100 and mesh["slot_idx"] >= 0
    assert mesh["fwid"] == hashlib.sha256(data).hexdigest()[:16]
    assert [r["addr"] for r in mesh["receivers"]] == [2, 3]
    assert all(r["phase"] == 8 and r["status"] == 0 and r["progress"] == 100
               for r in mesh["receivers"]), mesh
    assert "stage=distribute phase=1" in res.err and "stage=finish" in res.err, res.err
    assert f"stage=upload off={len(data)} len={len(data)}" in res.err
    snap = sim.snapshot()
    assert snap["images"][1]["hash"] == mcuboot_hash(data)
    assert snap["dfd"]["phase"] == 0 and snap["dfd"]["receivers"] == []  # left idle


def test_mesh_distribute_failing_receiver(smp, sims, tmp_path):
    sim = sims("--speed", "4000000", "--fail-receiver", "0x0003:50")
    make_image(tmp_path / "fw.img", "1.2.3", 64 * 1024, seed=9)
    res = smp("--udp", sim.udp, "mesh-distribute", tmp_path / "fw.img",
              "--receivers", "2,3", "--poll-ms", "20")
    assert res.rc == 1, res
    body = res.json
    assert body["ok"] is False and body["code"] == "partial_failure"
    assert "0x0003" in body["detail"]
    rx = {r["addr"]: r for r in body["mesh"]["receivers"]}
    assert rx[2]["phase"] == 8 and rx[2]["status"] == 0
    assert rx[3]["status"] != 0 and rx[3]["phase"] != 8
    assert "dh-smp: mesh-distribute failed: partial_failure" in res.err


# --- failures of the path --------------------------------------------------------------------

def test_unreachable_host_times_out(smp):
    port = free_udp_port()
    res = smp("--udp", f"127.0.0.1:{port}", "--timeout-ms", "400", "echo", "x", timeout=10)
    assert res.rc == 1, res
    assert res.json == {"ok": False, "command": "echo", "error": "timeout", "detail": ""}
    assert "dh-smp: echo failed: timeout" in res.err
    assert res.seconds < 3.0, res.seconds


def test_unreachable_distributor(smp, tmp_path):
    make_image(tmp_path / "fw.img", "1.2.3", 4096)
    port = free_udp_port()
    res = smp("--udp", f"127.0.0.1:{port}", "--timeout-ms", "300", "mesh-distribute",
              tmp_path / "fw.img", "--receivers", "2", timeout=20)
    assert res.rc == 1, res
    assert res.json["ok"] is False and res.json["code"] == "distributor_unreachable"
    assert "probe" in res.json["detail"]
    assert res.seconds < 10.0, res.seconds


def test_muted_device_times_out_in_bounded_time(smp, sim):
    sim.cmd("mute", {"on": True})
    res = smp("--udp", sim.udp, "--timeout-ms", "400", "params", timeout=10)
    assert res.rc == 1 and res.json["error"] == "timeout", res
    assert res.seconds < 3.0
    sim.cmd("mute", {"on": False})
    assert smp("--udp", sim.udp, "echo", "up").rc == 0


def test_echo_over_ipv6(smp, sims):
    try:
        sim = sims("--bind", "::1")
    except SimStartError as e:
        pytest.skip(f"the simulator cannot bind ::1: {str(e).strip().splitlines()[-1]}")
    assert sim.udp.startswith("[::1]:")
    res = smp("--udp", sim.udp, "echo", "six")
    assert res.rc == 0 and res.json["r"] == "six", res


def test_interrupt_cancels_a_hanging_upload(sims, tmp_path):
    sim = sims("--mute")
    make_image(tmp_path / "fw.img", "1.2.3", 16 * 1024)
    proc = subprocess.Popen([BIN, "--udp", sim.udp, "--timeout-ms", "30000", "upload",
                             str(tmp_path / "fw.img")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # the device has its first request: dh-smp is past its start (its SIGINT handler
        # set), however slow the machine, and waits for the answer
        deadline = time.monotonic() + 20
        while not sim.snapshot()["stats"].get("rx_ignored"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.poll()
            time.sleep(0.02)
        assert proc.poll() is None  # still waiting for the silent device
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - t0 < 3.0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=5)
    assert proc.returncode == 1, (out, err)
    assert json.loads(out) == {"ok": False, "command": "upload", "error": "cancelled",
                               "detail": ""}
    assert "dh-smp: upload failed: cancelled" in err and "Sanitizer" not in err


# --- text from the device that is not UTF-8 --------------------------------------------------

# BAD_TEXT of tests/sim/dfd_sim.py as dh-smp must show it: every byte that is not UTF-8 and
# every byte of a control character as \xNN, the well-formed rest (café) as it is.
BAD_ESCAPED = "\\xff\\xfe\\x1b[2J\\x07 café \\xc3( \\xed\\xa0\\x80 \\x7f\\xc2\\x9b|"


def run_bytes(*args, timeout=30):
    """dh-smp with args: exit code, stdout and stderr as the bytes it wrote."""
    proc = subprocess.run([BIN] + [str(a) for a in args], capture_output=True,
                          timeout=timeout)
    assert b"Sanitizer" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def readable(data):
    """data as text, asserting it is well-formed UTF-8 with no control character but the
    line feed: what a terminal shows of it is what it holds."""
    text = data.decode("utf-8")  # strict
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or 0x7f <= ord(c) <= 0x9f
           or c in "\u2028\u2029"]
    assert not bad, (bad, text)
    return text


def test_device_text_that_is_not_utf8_is_escaped(sims):
    sim = sims("--bad-text", "all")
    rc, out, err = run_bytes("--udp", sim.udp, "echo", "hi ü")
    assert rc == 0, (out, err)
    assert json.loads(readable(out))["r"] == "hi ü" + BAD_ESCAPED
    rc, out, err = run_bytes("--udp", sim.udp, "shell", "mesh", "models", "dfd", "get")
    assert rc == 0, (out, err)
    body = json.loads(readable(out))
    # the shell's CRLF line ends are line feeds; the log line is escaped, the answer intact
    assert body["o"] == "<err> log: " + BAD_ESCAPED + '\n{ "status": 0, "phase": 0 }\n', body
    rc, out, err = run_bytes("--udp", sim.udp, "image-list")
    assert rc == 0, (out, err)
    assert json.loads(readable(out))["images"][0]["version"] == "1.0.0" + BAD_ESCAPED


def test_smp_error_reason_that_is_not_utf8_is_escaped(sims):
    # a datagram longer than the device reads is answered rc 9, here with a reason
    sim = sims("--bad-text", "rsn", "--udp-rx-size", "64")
    rc, out, err = run_bytes("--udp", sim.udp, "echo", "x" * 100)
    assert rc == 1, (out, err)
    body = json.loads(readable(out))
    assert body["error"] == "device error" and body["rc"] == 9, body
    assert body["detail"] == "MGMT_ERR_ECORRUPT (9): rc 9: " + BAD_ESCAPED, body
    line = readable(err)
    assert line.startswith("dh-smp: echo failed: ") and line.endswith(BAD_ESCAPED + "\n"), line


def test_device_text_is_cut_between_characters(smp, sim):
    # the echo answer is cut at 511 bytes (DH_SMP_TEXT_MAX), inside the 256th "é"
    res = smp("--udp", sim.udp, "echo", "é" * 300)
    assert res.rc == 0, res
    assert res.json["r"] == "é" * 255


def test_mesh_distribute_quotes_a_bad_answer_escaped(sims, tmp_path):
    # no free slot record: the driver fails quoting the distributor's answer, log line and all
    sim = sims("--speed", "4000000", "--bad-text", "shell", "--slot-cnt", "0")
    make_image(tmp_path / "fw.img", "1.2.3", 16 * 1024, seed=10)
    rc, out, err = run_bytes("--udp", sim.udp, "mesh-distribute", tmp_path / "fw.img",
                             "--receivers", "2", "--poll-ms", "20")
    assert rc == 1, (out, err)
    body = json.loads(readable(out))
    assert body["code"] == "slot_missing", body
    detail = body["detail"]
    assert detail.startswith("slot: `mesh models dfu slot add "), detail
    # C0 controls of an answer are spaces in the driver's one-line quote; the rest escaped
    assert "\\xff\\xfe [2J  café \\xc3( \\xed\\xa0\\x80 \\x7f\\xc2\\x9b|" in detail, detail
    assert "Failed to reserve slot." in detail, detail
    assert readable(err).splitlines()[-1] == "dh-smp: mesh-distribute failed: slot_missing: " \
        + detail


def test_mesh_distribute_sees_past_a_bad_log_line(smp, sims, tmp_path):
    sim = sims("--speed", "4000000", "--bad-text", "shell")
    make_image(tmp_path / "fw.img", "1.2.3", 16 * 1024, seed=11)
    res = smp("--udp", sim.udp, "mesh-distribute", tmp_path / "fw.img",
              "--receivers", "2,3", "--poll-ms", "20")
    assert res.rc == 0, res
    assert res.json["mesh"]["phase"] == 4, res
