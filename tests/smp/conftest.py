"""Fixtures for the dh-smp suite: the simulator of tests/sim/dfd_sim.py started as a
subprocess per test (ephemeral UDP port on 127.0.0.1, optional pty) and stopped by pid at
teardown, a runner for the dh-smp binary ($DH_SMP_BIN, or build/server/smp/dh-smp under the
project root) with a bounded run time, and MCUboot test images made by scripts/mkimage.
"""
import hashlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SIM = os.path.join(ROOT, "tests", "sim", "dfd_sim.py")
MKIMAGE = os.path.join(ROOT, "scripts", "mkimage")
PYTHON = "/usr/bin/python3"
BIN = os.environ.get("DH_SMP_BIN", os.path.join(ROOT, "build", "server", "smp", "dh-smp"))
READY_TIMEOUT = 10.0
CMD_TIMEOUT = 10.0
RUN_TIMEOUT = 30.0
# Fast simulator defaults: short verify/apply and cancel steps.
SIM_DEFAULTS = ["--step-delay", "0.02", "--cancel-delay", "0.05"]


class SimStartError(Exception):
    pass


class Sim:
    """dfd_sim.py as a subprocess: its ready line (port, pty), control commands, stop."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [PYTHON, SIM, "--udp-port", "0"] + SIM_DEFAULTS + [str(a) for a in args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        try:
            ready = self._line(READY_TIMEOUT)
        except SimStartError:
            self.stop()
            raise
        if ready.get("event") != "ready":
            self.stop()
            raise SimStartError(f"unexpected first line {ready!r}")
        self.ready = ready
        self.bind = ready["bind"]
        self.port = ready["udp_port"]
        self.pty = ready["pty"]

    @property
    def udp(self):
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"{host}:{self.port}"

    def _line(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            raise SimStartError("simulator did not answer in time")
        line = self.proc.stdout.readline()
        if not line:
            raise SimStartError("simulator exited: " + self.proc.stderr.read()[-2000:])
        return json.loads(line)

    def cmd(self, name, args=None):
        msg = {"cmd": name}
        if args is not None:
            msg["args"] = args
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        ans = self._line(CMD_TIMEOUT)
        assert ans.get("event") == "ok", ans
        return ans.get("result")

    def snapshot(self):
        return self.cmd("snapshot")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()


@pytest.fixture
def sims():
    """Starts simulators with sims(*args); stops each of them (by pid) after the test."""
    started = []

    def start(*args):
        s = Sim(*args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def sim(sims):
    """One simulator with UDP and a pty."""
    return sims("--serial-pty")


class Result:
    def __init__(self, proc, seconds):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.seconds = seconds

    @property
    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"<dh-smp rc={self.rc} out={self.out[-1500:]!r} err={self.err[-1500:]!r}>"


def run_smp(*args, timeout=RUN_TIMEOUT):
    """Runs dh-smp with args; returns exit code, stdout, stderr and the run time. Sanitizer
    reports (leaks included) fail the test."""
    assert os.access(BIN, os.X_OK), f"dh-smp not built at {BIN} (set DH_SMP_BIN)"
    t0 = time.monotonic()
    proc = subprocess.run([BIN] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)
    res = Result(proc, time.monotonic() - t0)
    assert "Sanitizer" not in res.err, res
    return res


@pytest.fixture
def smp():
    return run_smp


def make_image(path, version="1.2.3", size=200 * 1024, seed=1):
    """Writes an MCUboot image with a pseudo-random body; returns its bytes."""
    subprocess.run([PYTHON, MKIMAGE, "--version", version, "--random-body", str(size),
                    "--seed", str(seed), str(path)], check=True, capture_output=True,
                   timeout=30)
    with open(path, "rb") as f:
        return f.read()


def mcuboot_hash(data):
    """The MCUboot image hash (SMP.md 6): SHA-256 over header, body and protected TLVs."""
    magic, _load, hdr_size, prot_tlv, img_size = struct.unpack_from("<IIHHI", data, 0)
    assert magic == 0x96F3B83D
    return hashlib.sha256(data[:hdr_size + img_size + prot_tlv]).hexdigest()


def free_udp_port():
    """A UDP port on 127.0.0.1 nothing listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
