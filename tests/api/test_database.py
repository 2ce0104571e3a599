"""--database: a URL that is neither SQLite nor PostgreSQL, a malformed PostgreSQL connection
string and a PostgreSQL server that does not answer are each refused at start with one clear
line and exit status 2, never a crash or a hang; DEVICEHUB_DATABASE is the flag's twin."""
import os
import subprocess
import tempfile

import pytest

from conftest import ADMIN_TOKEN, BIN, Client, Server
from pgcluster import free_port

# These start no database of their own: once is enough.
pytestmark = pytest.mark.engines("sqlite")


def run(args, env=None):
    with tempfile.TemporaryDirectory(prefix="dh-db-") as d:
        e = dict(os.environ)
        e.update(env or {})
        return subprocess.run([BIN, "--data-dir", os.path.join(d, "var"), "--port", "0",
                               "--listen", "127.0.0.1"] + args, capture_output=True, text=True,
                              timeout=60, env=e)


@pytest.mark.parametrize("url, says", [
    ("mysql://root@localhost/devicehub", "--database must be"),
    ("devicehub.db", "--database must be"),
    ("postgresql://[::1", "connection string is not valid"),
    ("host=127.0.0.1 port='5432", "connection string is not valid"),
])
def test_bad_url_exits_2(url, says):
    r = run(["--database", url])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert says in r.stderr, r.stderr
    assert "AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr


def test_unreachable_server_exits_2_without_the_password():
    url = f"postgresql://dh:s3cret-pw@127.0.0.1:{free_port()}/devicehub?connect_timeout=5"
    for args, env in (([f"--database={url}"], None), ([], {"DEVICEHUB_DATABASE": url})):
        r = run(args, env)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "Cannot connect to PostgreSQL" in r.stderr, r.stderr
        assert "s3cret-pw" not in r.stderr


def test_sqlite_colon_is_the_data_dirs_file():
    s = Server(extra_args=["--database", "sqlite:"]).start()
    try:
        assert Client(s, ADMIN_TOKEN).get("/api/v1/products/").status_code == 200
        assert os.path.exists(os.path.join(s.data_dir, "devicehub.db"))
        assert "database=sqlite" in s.read_log()
    finally:
        s.cleanup()
