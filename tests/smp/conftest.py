"""Fixtures for the dh-smp suite: the simulator of tests/sim/dfd_sim.py started as a
subprocess per test (ephemeral UDP port on 127.0.0.1, optional pty) and stopped by pid at
teardown, a runner for the dh-smp binary ($DH_SMP_BIN, or build/server/smp/dh-smp under the
project root) with a bounded run time, and MCUboot test images made by scripts/mkimage.
"""
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "sim"))
from process import Sim, SimStartError  # noqa: E402  (tests/sim/process.py)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MKIMAGE = os.path.join(ROOT, "scripts", "mkimage")
PYTHON = "/usr/bin/python3"
BIN = os.environ.get("DH_SMP_BIN", os.path.join(ROOT, "build", "server", "smp", "dh-smp"))
RUN_TIMEOUT = 30.0


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
