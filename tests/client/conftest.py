"""Fixtures for the client suites: the real devicehubd of tests/api/conftest.py (loaded
under its own module name so the two conftest files do not clash), a runner that executes
scripts/devicehub as a subprocess against it, as a user's script would, and the Python
library itself (clients/python) for the tests that call it directly.
"""
import importlib.util
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LIB = os.path.join(ROOT, "clients", "python")
sys.path.insert(0, LIB)
CLI = os.path.join(ROOT, "scripts", "devicehub")
PYTHON = "/usr/bin/python3"
CLI_TIMEOUT = 120

_spec = importlib.util.spec_from_file_location(
    "dh_api_fixtures", os.path.join(ROOT, "tests", "api", "conftest.py"))
api = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api)

Server = api.Server
Client = api.Client
ADMIN_TOKEN = api.ADMIN_TOKEN
unique = api.unique
make_user = api.make_user
self_signed_cert = api.self_signed_cert


class Cli:
    """Runs scripts/devicehub with DEVICEHUB_URL/DEVICEHUB_TOKEN pointing at a server."""

    def __init__(self, server, token):
        self.server = server
        self.token = token

    def env(self, token=None):
        env = dict(os.environ)
        env["DEVICEHUB_URL"] = self.server.url
        tok = self.token if token is None else token
        if tok:
            env["DEVICEHUB_TOKEN"] = tok
        else:
            env.pop("DEVICEHUB_TOKEN", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def run(self, *args, token=None, timeout=CLI_TIMEOUT, cwd=None):
        """The finished process (stdout, stderr as text, returncode)."""
        return subprocess.run([PYTHON, CLI] + [str(a) for a in args], env=self.env(token),
                              capture_output=True, text=True, timeout=timeout, cwd=cwd)

    def popen(self, *args, token=None, cwd=None):
        return subprocess.Popen([PYTHON, CLI] + [str(a) for a in args], env=self.env(token),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=cwd)

    def ok(self, *args, **kw):
        """Runs and requires exit 0."""
        r = self.run(*args, **kw)
        assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
        return r

    def json(self, *args, **kw):
        """Runs with --json, requires exit 0 and returns the parsed output."""
        import json
        r = self.ok("--json", *args, **kw)
        return json.loads(r.stdout)


@pytest.fixture(scope="module")
def server():
    s = Server().start()
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def admin(server):
    return Client(server, ADMIN_TOKEN)


@pytest.fixture(scope="module")
def cli(server):
    return Cli(server, ADMIN_TOKEN)


@pytest.fixture(scope="module")
def hub(server):
    """The library's Client, signed in as the admin."""
    from devicehub import Client as Hub
    h = Hub(server.url, ADMIN_TOKEN)
    yield h
    h.close()
