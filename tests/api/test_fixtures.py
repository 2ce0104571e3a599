"""The test fixtures themselves: a devicehubd whose start fails (it exits, or it runs but
never logs that it listens) must not outlive the failed start, nor keep its files open."""
import os

import pytest

import conftest
from conftest import Server

pytestmark = pytest.mark.engines("sqlite")


def alive(pid):
    """Is pid a live process (not a zombie)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_start_that_times_out_kills_the_server(monkeypatch):
    # no time at all to log the listening line: the server runs, the start gives up
    monkeypatch.setattr(conftest, "START_TIMEOUT", 0.0)
    s = Server()
    try:
        with pytest.raises(RuntimeError, match="did not start"):
            s.start()
        assert s.proc.returncode is not None, "devicehubd still runs after a failed start"
        assert not alive(s.proc.pid)
        assert s.log.closed and s.out.closed
    finally:
        s.cleanup()


def test_a_start_whose_server_exits_closes_its_files():
    s = Server(extra_args=["--listen", "not-an-address"])
    try:
        with pytest.raises(RuntimeError, match="exited with 2"):
            s.start()
        assert s.log.closed and s.out.closed
        assert "--listen" in s.read_log()
    finally:
        s.cleanup()


def test_a_failed_start_can_be_retried():
    s = Server(extra_args=["--listen", "not-an-address"])
    try:
        with pytest.raises(RuntimeError):
            s.start()
        s.extra_args = [a for a in s.extra_args if a not in ("--listen", "not-an-address")]
        s.start()
        assert s.proc.poll() is None and os.path.isdir(s.data_dir)
    finally:
        s.cleanup()
