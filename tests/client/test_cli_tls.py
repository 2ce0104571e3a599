"""The CLI over HTTPS: --ca FILE trusts a certificate, --insecure skips verification, and
without either a self-signed server is refused with a clear message and exit 1."""
import tempfile

import pytest

from conftest import ADMIN_TOKEN, Cli, Server, self_signed_cert, unique


@pytest.fixture(scope="module")
def cert():
    with tempfile.TemporaryDirectory(prefix="dh-cli-tls-") as d:
        yield self_signed_cert(d)


@pytest.fixture(scope="module")
def tls_cli(cert):
    s = Server(extra_args=["--tls-cert", cert[0], "--tls-key", cert[1]]).start()
    yield Cli(s, ADMIN_TOKEN)
    s.cleanup()


def test_ca_file_is_trusted(tls_cli, cert):
    assert tls_cli.server.url.startswith("https://")
    p = unique("prod")
    obj = tls_cli.json("--ca", cert[0], "product", "create", "--tid", p, "--name", "TLS")
    assert obj["tid"] == p
    assert tls_cli.json("--ca", cert[0], "product", "get", p)["name"] == "TLS"


def test_insecure_skips_verification(tls_cli):
    page = tls_cli.json("--insecure", "product", "list")
    assert set(page) == {"count", "next", "results"}


def test_untrusted_certificate_is_refused(tls_cli):
    r = tls_cli.run("product", "list")
    assert r.returncode == 1
    assert "TLS error" in r.stderr and "--ca FILE or --insecure" in r.stderr, r.stderr


def test_ca_and_insecure_exclude_each_other(tls_cli, cert):
    r = tls_cli.run("--ca", cert[0], "--insecure", "product", "list")
    assert r.returncode == 2 and "exclude" in r.stderr
    r = tls_cli.run("--ca", "/nonexistent/ca.pem", "product", "list")
    assert r.returncode == 2 and "no such file" in r.stderr
