"""The command line: --help lists every flag of the table in server/config.c with its
environment twin and default; --version; unknown flags and bad values exit 2 with a
message; environment twins work and a flag wins over its twin."""
import os
import re
import socket
import subprocess
import tempfile
import time

import pytest
import requests

from conftest import ADMIN_TOKEN, BIN, ROOT, Server, assert_error

TABLE_RE = re.compile(r'\{\s*"([a-z0-9-]+)",\s*"(DEVICEHUB_[A-Z0-9_]+)",\s*OPT_\w+,\s*'
                      r'OFF\(\w+\),\s*"([^"]*)"', re.S)


def flag_table():
    with open(os.path.join(ROOT, "server", "config.c"), encoding="utf-8") as f:
        rows = TABLE_RE.findall(f.read())
    assert len(rows) >= 10, rows
    return rows


def run(*args, env=None, timeout=20):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=e,
                          timeout=timeout)


def test_help_lists_every_flag_with_env_and_default():
    r = run("--help")
    assert r.returncode == 0 and r.stderr == ""
    out = r.stdout
    for flag, env, default in flag_table():
        m = re.search(rf"^  --{re.escape(flag)} .*\n\s+env {env}, default \"{re.escape(default)}\"$",
                      out, re.M)
        assert m, (flag, env, default, out)
        assert env == "DEVICEHUB_" + flag.upper().replace("-", "_")
    assert "--help" in out and "--version" in out
    assert run("-h").stdout == out


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert re.fullmatch(r"devicehubd \d+\.\d+\.\d+\S*\n", r.stdout), r.stdout


def test_unknown_flag_and_bad_values_exit_2():
    cases = [
        (["--bogus", "1"], "unknown flag '--bogus'"),
        (["stray"], "unexpected argument 'stray'"),
        (["--port", "70000"], "--port"),
        (["--port", "-1"], "--port"),
        (["--port", "12ab"], "--port"),
        (["--port="], "--port"),
        (["--port"], "needs a value"),
        (["--workers", "257"], "--workers"),
        (["--max-body", "10"], "--max-body"),
        (["--reaper-interval-ms", "1"], "--reaper-interval-ms"),
        (["--tls-cert", "/nonexistent.pem"], "go together"),
        (["--log-level", "loud"], "--log-level"),
        (["--listen", "localhost"], "--listen"),
        (["--webhook-allow-private=maybe"], "--webhook-allow-private"),
        (["--webhook-ca", "/nonexistent.pem"], "--webhook-ca"),
    ]
    with tempfile.TemporaryDirectory() as d:
        for args, msg in cases:
            r = run("--data-dir", os.path.join(d, "var"), *args)
            assert r.returncode == 2, (args, r.returncode, r.stderr)
            assert msg in r.stderr and r.stderr.startswith("devicehubd: "), (args, r.stderr)
            # a refused configuration touches nothing
            assert not os.path.exists(os.path.join(d, "var")), args


def test_bad_environment_value_exits_2():
    r = run(env={"DEVICEHUB_PORT": "port"})
    assert r.returncode == 2 and "DEVICEHUB_PORT" in r.stderr
    r = run(env={"DEVICEHUB_MAX_CONNECTIONS": "0"})
    assert r.returncode == 2 and "DEVICEHUB_MAX_CONNECTIONS" in r.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_env_twins_configure_the_server():
    with tempfile.TemporaryDirectory() as d:
        log_path = os.path.join(d, "log")
        # a port chosen free may be taken by another process before the server binds it:
        # then the server says so and exits, and it is tried again on another
        for _ in range(3):
            port = free_port()
            env = dict(os.environ, DEVICEHUB_PORT=str(port), DEVICEHUB_LISTEN="127.0.0.1",
                       DEVICEHUB_DATA_DIR=os.path.join(d, "var"), DEVICEHUB_MAX_BODY="100",
                       DEVICEHUB_ADMIN_TOKEN=ADMIN_TOKEN)
            with open(log_path, "wb") as log:
                p = subprocess.Popen([BIN], stdout=subprocess.DEVNULL, stderr=log, env=env)
            deadline = time.monotonic() + 20
            while p.poll() is None and time.monotonic() < deadline and not re.search(
                    rf"http\.listening .*port={port}\b", open(log_path).read()):
                time.sleep(0.05)
            if p.poll() is None or "Cannot listen" not in open(log_path).read():
                break
        try:
            assert p.poll() is None, open(log_path).read()
            r = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
            assert r.status_code == 200
            assert os.path.exists(os.path.join(d, "var", "devicehub.db"))
            r = requests.post(f"http://127.0.0.1:{port}/api/v1/products/",
                              json={"tid": "p", "name": "x" * 200},
                              headers={"Authorization": "Token " + ADMIN_TOKEN},
                              timeout=5)
            assert_error(r, 413, "too_large")
        finally:
            if p.poll() is None:
                p.terminate()
            assert p.wait(15) == 0
        assert "Sanitizer" not in open(log_path).read()


def test_flag_wins_over_environment():
    # the environment asks for 100 bytes; the flag allows the default 1 MiB
    s = Server(env={"DEVICEHUB_MAX_BODY": "100", "DEVICEHUB_LOG_LEVEL": "debug"},
               extra_args=["--max-body", "1048576"]).start()
    try:
        r = requests.post(s.url + "/api/v1/products/", json={"tid": "p", "name": "x" * 200},
                          headers={"Authorization": "Token " + ADMIN_TOKEN}, timeout=5)
        assert r.status_code == 201, r.text
        # the environment's log level applies where no flag overrides it
        assert "http.request" in s.read_log()
    finally:
        s.cleanup()


def test_second_server_on_a_taken_port_fails():
    """Two servers must not share a port (SO_REUSEPORT would split the clients between two
    databases without a word)."""
    first = Server().start()
    second = Server(extra_args=[])
    try:
        with pytest.raises(RuntimeError, match="exited"):
            second.start(port=first.port)
        assert "Cannot listen" in second.read_log()
        assert requests.get(first.url + "/healthz", timeout=5).status_code == 200
        # a restart on the same port right after a stop still works
        port = first.port
        requests.get(first.url + "/healthz", timeout=5)
        first.stop()
        first.start(port=port)
        assert requests.get(first.url + "/healthz", timeout=5).status_code == 200
    finally:
        second.cleanup()
        first.cleanup()
