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


def leaked(secret, text):
    """Any four characters of the secret in a row, anywhere in text."""
    return [secret[i:i + 4] for i in range(len(secret) - 3) if secret[i:i + 4] in text]


@pytest.mark.parametrize("url, secret, says", [
    # libpq cannot parse these; its own sentence would quote the URI or the password
    ("postgresql://u:s3cretpw@[::1/db", "s3cretpw", "IPv6 host address"),
    ("postgresql://u:s3cret%zzpw@localhost/db", "s3cret%zzpw", "two hexadecimal digits"),
    ("postgresql://u:s3cret%00pw@localhost/db", "s3cret%00pw", "zero byte"),
    ("postgresql://u:s3cretpw@localhost/db?bogus=1", "s3cretpw", "not a libpq connection option"),
    ("postgresql://u:s3cretpw@localhost/db?sslmode", "s3cretpw", "not written key=value"),
    ("host=localhost password= 's3cretpw", "s3cretpw", "no closing quote"),
    ("host=localhost password s3cretpw", "s3cretpw", "not followed by ="),
    # parsed, refused when connecting: libpq quotes the bad port, here the password
    ("postgresql://u:s3cretpw/db", "s3cretpw", "Cannot connect to PostgreSQL"),
    ("postgresql://u:s3cretpw@127.0.0.1:notaport/db", "s3cretpw", "as user u at 127.0.0.1"),
    # an unescaped @ in the password: libpq takes the rest for the host
    (f"postgresql://u:s3c@retpw@127.0.0.1:{free_port()}/db", "s3c@retpw", "Cannot connect"),
])
def test_malformed_url_exits_2_without_the_password(url, secret, says):
    with tempfile.TemporaryDirectory(prefix="dh-db-") as d:
        var = os.path.join(d, "var")
        r = subprocess.run([BIN, "--data-dir", var, "--port", "0", "--listen", "127.0.0.1",
                            "--database", url], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert says in r.stderr, r.stderr
        assert leaked(secret, r.stderr + r.stdout) == [], r.stderr
        # nor in anything left in the data dir (a log, a lock file)
        for top, _, files in os.walk(d):
            for name in files:
                with open(os.path.join(top, name), "rb") as f:
                    text = f.read().decode("latin-1")
                assert leaked(secret, text) == [], name


def test_sqlite_colon_is_the_data_dirs_file():
    s = Server(extra_args=["--database", "sqlite:"]).start()
    try:
        assert Client(s, ADMIN_TOKEN).get("/api/v1/products/").status_code == 200
        assert os.path.exists(os.path.join(s.data_dir, "devicehub.db"))
        assert "database=sqlite" in s.read_log()
    finally:
        s.cleanup()
