"""Fixtures for the API suites: a real devicehubd on a free 127.0.0.1 port with a fresh
data directory, and a small client bound to it.

The binary is $DEVICEHUB_BIN, or build/server/devicehubd under the project root.
Each test module gets its own server (module scope) unless it asks for `fresh_server`.

Every test runs once per database engine (the `engine` parameter: sqlite, pg), so both
engines keep one behaviour; $DH_TEST_ENGINES narrows the list ("sqlite" or "pg"). With pg,
one PostgreSQL cluster serves the whole run (tests/api/pgcluster.py) and every Server gets a
database of its own. A module marked `pytest.mark.engines("pg")` runs on those engines only.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
import requests

# the client and ops suites load this file by path: find its neighbour either way
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgcluster  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("DEVICEHUB_BIN", os.path.join(ROOT, "build", "server", "devicehubd"))
ADMIN_TOKEN = "test-admin-token-0123456789"
START_TIMEOUT = 20.0

ALL_ENGINES = ("sqlite", "pg")
REQUESTED = [e for e in os.environ.get("DH_TEST_ENGINES", ",".join(ALL_ENGINES)).split(",")
             if e in ALL_ENGINES]
ENGINES = [e for e in REQUESTED if e != "pg" or pgcluster.pg_bindir()]
# The engine of the tests running now (set by the engine fixture) and the shared cluster.
CURRENT = {"engine": "sqlite", "cluster": None}
# A data dir's PostgreSQL database: a new Server on the same data dir (a restart) finds the
# database the earlier one used, as a SQLite server finds its file.
PG_DB_OF_DIR = {}


def pg_cluster():
    """The run's PostgreSQL, started at first use (stopped by the session fixture)."""
    if CURRENT["cluster"] is None:
        CURRENT["cluster"] = pgcluster.Cluster().start()
    return CURRENT["cluster"]


def pytest_configure(config):
    config.addinivalue_line("markers", "engines(*names): run only on these database engines")


def pytest_generate_tests(metafunc):
    if "engine" not in metafunc.fixturenames:
        return
    allowed = ENGINES
    mark = metafunc.definition.get_closest_marker("engines")
    if mark:
        allowed = [e for e in ENGINES if e in mark.args]
    metafunc.parametrize("engine", allowed, indirect=True, scope="module")


def pytest_collection_modifyitems(config, items):
    """A test for engines that $DH_TEST_ENGINES leaves out is deselected, not skipped: a run
    per engine (scripts/test runs them side by side) counts the same tests as one run. (One
    for an engine that is asked for but not installed is still reported as skipped.)"""
    keep, drop = [], []
    for item in items:
        mark = item.get_closest_marker("engines")
        if mark and "engine" in item.fixturenames and not [e for e in REQUESTED if e in mark.args]:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="module", autouse=True)
def engine(request):
    """The database engine of this module's tests; Servers made meanwhile use it."""
    name = getattr(request, "param", "sqlite")
    CURRENT["engine"] = name
    yield name
    CURRENT["engine"] = "sqlite"


@pytest.fixture(scope="session", autouse=True)
def _pg_cluster_stop():
    yield
    if CURRENT["cluster"] is not None:
        CURRENT["cluster"].stop()
        CURRENT["cluster"] = None


class Server:
    """One devicehubd process. start() waits for its listening line; stop() ends it."""

    def __init__(self, data_dir=None, extra_args=(), env=None, admin_token=ADMIN_TOKEN,
                 engine=None, database=None):
        """engine: "sqlite" or "pg" (default: the running test's); database: a --database URL
        to share (several servers on one PostgreSQL), else a fresh database of its own."""
        self.engine = engine or CURRENT["engine"]
        self.database = database
        self.db_name = None
        self.tmp = None
        if data_dir is None:
            self.tmp = tempfile.TemporaryDirectory(prefix="dh-test-")
            data_dir = os.path.join(self.tmp.name, "var")
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        # the suites send bad credentials on purpose, far more than --auth-fail-limit's 20
        # a minute from 127.0.0.1; that limit has its own tests (test_rate_limits.py)
        if not any(a.startswith("--auth-fail-limit") for a in self.extra_args):
            self.extra_args += ["--auth-fail-limit", "0"]
        self.env = dict(os.environ)
        self.env.update(env or {})
        if admin_token:
            self.env["DEVICEHUB_ADMIN_TOKEN"] = admin_token
        self.admin_token = admin_token
        self.proc = None
        self.port = None
        self.scheme = "http"
        self.log_path = os.path.join(os.path.dirname(data_dir) or ".", "server.log")
        self.stdout_path = os.path.join(os.path.dirname(data_dir) or ".", "server.out")

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, port=0):
        os.makedirs(os.path.dirname(self.data_dir) or ".", exist_ok=True)
        if self.engine == "pg" and not self.database:
            self.db_name = PG_DB_OF_DIR.get(self.data_dir) or pg_cluster().create_db()
            PG_DB_OF_DIR[self.data_dir] = self.db_name
            self.database = pg_cluster().url(self.db_name)
        args = [BIN, "--listen", "127.0.0.1", "--port", str(port), "--data-dir",
                self.data_dir] + self.extra_args
        if self.database:
            args += ["--database", self.database]
        if "--tls-cert" in self.extra_args:
            self.scheme = "https"
        seen = len(self.read_log())  # a restart appends: look only at this run's lines
        self.log = open(self.log_path, "ab")
        self.out = open(self.stdout_path, "ab")
        try:
            self.proc = subprocess.Popen(args, stdout=self.out, stderr=self.log, env=self.env)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"devicehubd exited with {self.proc.returncode}: "
                                       + self.read_log())
                m = re.search(r"http\.listening .*port=(\d+)", self.read_log()[seen:])
                if m:
                    self.port = int(m.group(1))
                    return self
                time.sleep(0.02)
            raise RuntimeError("devicehubd did not start: " + self.read_log())
        except BaseException:
            # whatever went wrong (a timeout, a log without the listening line, ^C), nothing
            # of this start may outlive it: the process is killed by pid and reaped, the
            # files closed; self.proc keeps its exit status for the caller
            self._abandon_start()
            raise

    def _abandon_start(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        for f in ("log", "out"):
            if hasattr(self, f):
                getattr(self, f).close()

    def read_log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def read_stdout(self):
        with open(self.stdout_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        for f in ("log", "out"):
            if hasattr(self, f):
                getattr(self, f).close()
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def db_rows(self, sql):
        """Rows of a query on this server's database, as lists of text (either engine)."""
        if self.engine == "pg":
            return pg_cluster().psql(sql, self.db_name)
        import sqlite3
        db = sqlite3.connect(os.path.join(self.data_dir, "devicehub.db"))
        try:
            return [[None if v is None else str(v) for v in row]
                    for row in db.execute(sql).fetchall()]
        finally:
            db.close()

    def db_exec(self, sql):
        """Runs one statement (test constants only) on this server's database and commits."""
        if self.engine == "pg":
            pg_cluster().psql(sql, self.db_name)
            return
        import sqlite3
        db = sqlite3.connect(os.path.join(self.data_dir, "devicehub.db"), timeout=30)
        try:
            with db:
                db.execute(sql)
        finally:
            db.close()

    def sanitizer_report(self):
        """The sanitizer complaints in the server's log, if any ('' when clean)."""
        log = self.read_log()
        bad = [m for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                           "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer")
               if m in log]
        return log if bad else ""

    def cleanup(self):
        self.stop()
        report = self.sanitizer_report()
        if self.tmp:
            self.tmp.cleanup()
        if self.db_name:
            pg_cluster().psql(f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)")
            PG_DB_OF_DIR.pop(self.data_dir, None)
            self.db_name = None
        assert not report, "sanitizer report from devicehubd:\n" + report[-6000:]


class Client:
    """requests wrapper that prefixes the server URL and sends a token."""

    def __init__(self, server, token=None):
        self.server = server
        self.token = token
        self.s = requests.Session()
        self.s.verify = False

    def url(self, path):
        return path if path.startswith("http") else self.server.url + path

    def headers(self, extra=None, token=None):
        h = {}
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = f"Token {tok}"
        h.update(extra or {})
        return h

    def request(self, method, path, token=None, headers=None, **kw):
        kw.setdefault("timeout", 30)
        return self.s.request(method, self.url(path), headers=self.headers(headers, token), **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def post(self, path, json=None, **kw):
        return self.request("POST", path, json=json, **kw)

    def patch(self, path, json=None, **kw):
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def create(self, path, body):
        """POST and require 201; returns the object."""
        r = self.post(path, json=body)
        assert r.status_code == 201, (path, body, r.status_code, r.text)
        return r.json()


def self_signed_cert(directory):
    """Writes a self-signed certificate for 127.0.0.1 and its key (openssl CLI) into
    directory; returns (cert path, key path)."""
    c, k = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", k,
                    "-out", c, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return c, k


def unique(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def assert_error(r, status, code=None):
    """The error contract: status, JSON body with code and a sentence."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body.get("code"), str) and body["code"], body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    if code:
        assert body["code"] == code, body
    return body


@pytest.fixture(scope="module")
def server(engine):
    s = Server(engine=engine).start()
    yield s
    s.cleanup()


@pytest.fixture
def fresh_server(engine):
    s = Server(engine=engine).start()
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def admin(server):
    return Client(server, ADMIN_TOKEN)


@pytest.fixture(scope="module")
def anon(server):
    return Client(server, None)


@pytest.fixture
def catalog(admin):
    """A fresh product, model, channel, delivery method and procedure (ids by key)."""
    p = admin.create("/api/v1/products/", {"tid": unique("prod"), "name": "Product"})
    m = admin.create("/api/v1/models/", {"tid": unique("model"), "name": "Model",
                                         "product": p["tid"]})
    c = admin.create("/api/v1/channels/", {"tid": unique("chan"), "name": "stable"})
    dm = admin.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "HTTP",
                                                    "kind": "http"})
    dp = admin.create("/api/v1/delivery-procedures/",
                      {"tid": unique("dp"), "name": "Link", "delivery_method": dm["tid"],
                       "steps": [{"plugin": "link"}], "confirm": True})
    return {"product": p, "model": m, "channel": c, "method": dm, "procedure": dp}


def make_user(admin, actions, **scope):
    """Creates a user with one grant per action (scope keys: product, model, channel)
    and returns (user, token secret)."""
    u = admin.create("/api/v1/users/", {"tid": unique("user"), "name": "User"})
    for a in actions:
        body = {"user": u["id"], "action": a}
        body.update(scope)
        admin.create("/api/v1/access-rights/", body)
    t = admin.create("/api/v1/tokens/", {"user": u["id"], "name": "test"})
    return u, t["secret"]
