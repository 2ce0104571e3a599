"""scripts/run: the line it shows names the URL the server really listens on, whatever
--port, DEVICEHUB_PORT or --listen say (it comes from devicehubd once it is listening)."""
import os
import re
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import BIN, ROOT

RUN = os.path.join(ROOT, "scripts", "run")
BANNER = re.compile(r"^Device Hub on (https?)://([^/]+):(\d+)/ \(data in (.+)\)$", re.M)
START_TIMEOUT = 20.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PortTaken(Exception):
    """The server could not listen on the port asked for: another process took it."""


def run_until_banner(tmp_path, args, env_extra=None):
    """Starts scripts/run with DEVICEHUB_BIN (no build); returns (process, banner match).
    Raises PortTaken when the server exits because its port is in use."""
    env = dict(os.environ, DEVICEHUB_BIN=BIN, DEVICEHUB_ADMIN_TOKEN="run-admin-token-0123456789")
    env.pop("DEVICEHUB_PORT", None)
    env.update(env_extra or {})
    out, err = tmp_path / "run.out", tmp_path / "run.err"
    with open(out, "wb") as f, open(err, "wb") as e:
        proc = subprocess.Popen([RUN] + args, stdout=f, stderr=e, env=env)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline:
            m = BANNER.search(out.read_text())
            if m:
                return proc, m
            if proc.poll() is not None and "Cannot listen" in err.read_text():
                raise PortTaken(err.read_text())
            assert proc.poll() is None, out.read_text() + err.read_text()
            time.sleep(0.02)
        raise AssertionError("no banner: " + out.read_text())
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0


@pytest.mark.parametrize("how", ["flag", "env", "zero"])
def test_banner_shows_the_real_port(tmp_path, how):
    data = tmp_path / "var"
    # a port chosen free may be taken by another process before the server binds it: then
    # the server says so and exits, and it is tried again on another
    for attempt in range(3):
        port = free_port()
        args = ["--listen", "127.0.0.1", "--data-dir", str(data)]
        env = {}
        if how == "flag":
            args += ["--port", str(port)]
        elif how == "env":
            env["DEVICEHUB_PORT"] = str(port)
        else:
            args += ["--port", "0"]
        try:
            proc, m = run_until_banner(tmp_path, args, env)
            break
        except PortTaken:
            if attempt == 2:
                raise
    try:
        scheme, host, shown, shown_dir = m.groups()
        assert (scheme, host, shown_dir) == ("http", "127.0.0.1", str(data))
        if how != "zero":
            assert int(shown) == port
        r = requests.get(f"{scheme}://{host}:{shown}/healthz", timeout=10)
        assert r.status_code == 200 and r.json()["status"] == "ok"
    finally:
        stop(proc)


def test_banner_of_an_ipv6_listener(tmp_path):
    proc, m = run_until_banner(tmp_path, ["--listen", "::1", "--port", "0", "--data-dir",
                                          str(tmp_path / "var")])
    try:
        assert m.group(2) == "[::1]"
        r = requests.get(f"http://[::1]:{m.group(3)}/healthz", timeout=10)
        assert r.status_code == 200
    finally:
        stop(proc)
