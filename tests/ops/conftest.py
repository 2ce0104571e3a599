"""Fixtures for the operations suites (scripts/run, install, man pages, package, backup):
the real devicehubd of tests/api/conftest.py, loaded under its own module name so that the
two conftest files do not clash.
"""
import importlib.util
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

_spec = importlib.util.spec_from_file_location(
    "dh_api_fixtures_ops", os.path.join(ROOT, "tests", "api", "conftest.py"))
api = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api)

BIN = api.BIN
Server = api.Server
Client = api.Client
ADMIN_TOKEN = api.ADMIN_TOKEN
unique = api.unique


@pytest.fixture(scope="module")
def server():
    s = Server().start()
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def admin(server):
    return Client(server, ADMIN_TOKEN)
