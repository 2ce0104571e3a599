"""A throw-away PostgreSQL for the tests: initdb into a temporary directory, a server that
listens only on a Unix socket in that directory (no TCP port is taken), one fresh database per
devicehubd started on it, everything stopped by pid and removed at the end.

Debian's binaries (postgresql package) live in /usr/lib/postgresql/<major>/bin. PostgreSQL
refuses to run as root: as root the cluster belongs to the unprivileged `postgres` user
(created by the package), and commands run through runuser. Durability is off (fsync,
synchronous_commit, full_page_writes): test data may be lost with the machine, never with
a devicehubd.
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

# How long the cluster may take to accept connections, on a loaded 2-core machine.
PG_START_TIMEOUT = 60.0


def pg_bindir():
    """The newest installed server's bin directory, or None."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)
    for d in reversed(dirs):
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self):
        self.bindir = pg_bindir()
        if not self.bindir:
            raise RuntimeError("PostgreSQL is not installed (Debian package postgresql)")
        self.as_root = os.geteuid() == 0
        self.tmp = tempfile.mkdtemp(prefix="dh-pg-")
        os.chmod(self.tmp, 0o755)
        self.data = os.path.join(self.tmp, "data")
        self.sock = self.tmp
        self.port = free_port()
        self.log = os.path.join(self.tmp, "postgres.log")
        self.pid = None
        if self.as_root:
            shutil.chown(self.tmp, "postgres", "postgres")

    def _cmd(self, argv):
        if self.as_root:
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def _run(self, argv, **kw):
        return subprocess.run(self._cmd(argv), check=True, capture_output=True, timeout=120,
                              **kw)

    def start(self):
        """initdb and start; on any failure the server (if it came up) is stopped by pid and
        the directory removed before the error goes on."""
        try:
            self._run([os.path.join(self.bindir, "initdb"), "-D", self.data, "-U",
                       "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
            opts = (f"-k {self.sock} -p {self.port} -c listen_addresses='' -c fsync=off"
                    " -c synchronous_commit=off -c full_page_writes=off"
                    " -c max_connections=400 -c shared_buffers=32MB")
            try:
                self._run([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l",
                           self.log, "-o", opts, "-w", "-t", str(int(PG_START_TIMEOUT)),
                           "start"])
            finally:
                # pg_ctl may fail or time out with the server up: its pid is in the file
                # (written early in the postmaster's start; wait a moment for it)
                deadline = time.monotonic() + 5
                while not self._postmaster_pid() and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.pid = self._postmaster_pid()
            if not self.pid:
                raise RuntimeError("PostgreSQL started without a postmaster.pid")
        except BaseException:
            self.stop()
            raise
        return self

    def _postmaster_pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def psql(self, sql, db="postgres"):
        """Runs sql; returns the rows as lists of text (tab-separated output)."""
        r = subprocess.run(
            [os.path.join(self.bindir, "psql"), "-X", "-q", "-At", "-F", "\t", "-v",
             "ON_ERROR_STOP=1", "-h", self.sock, "-p", str(self.port), "-U", "postgres",
             "-d", db, "-c", sql],
            check=True, capture_output=True, text=True, timeout=120)
        return [line.split("\t") for line in r.stdout.splitlines() if line]

    def psql_file(self, path, db):
        subprocess.run(
            [os.path.join(self.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
             self.sock, "-p", str(self.port), "-U", "postgres", "-d", db, "-f", path],
            check=True, capture_output=True, text=True, timeout=120)

    def create_db(self):
        # FILE_COPY: a copy of template1's files; PostgreSQL 15's default (WAL_LOG) writes each
        # page through the WAL, twice the CPU for the small empty template (about 0.1 s a
        # database, and every devicehubd of the suite gets one)
        name = "dh_" + uuid.uuid4().hex[:16]
        major = self.bindir.split("/")[-2]
        strategy = " STRATEGY FILE_COPY" if major.isdigit() and int(major) >= 15 else ""
        self.psql(f"CREATE DATABASE {name}{strategy}")
        return name

    def url(self, db):
        return f"postgresql:///{db}?host={self.sock}&port={self.port}&user=postgres"

    def stop(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGINT)  # fast shutdown
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                os.kill(self.pid, signal.SIGKILL)
            self.pid = None
        shutil.rmtree(self.tmp, ignore_errors=True)
