"""HTTPS: with --tls-cert and --tls-key the server speaks TLS only; a client that trusts
the certificate gets the API, plain HTTP to the same port does not."""
import socket
import tempfile

import pytest
import requests

from conftest import ADMIN_TOKEN, Server, self_signed_cert, unique


@pytest.fixture(scope="module")
def cert():
    with tempfile.TemporaryDirectory(prefix="dh-tls-") as d:
        yield self_signed_cert(d)


@pytest.fixture(scope="module")
def tls_server(cert):
    c, k = cert
    s = Server(extra_args=["--tls-cert", c, "--tls-key", k]).start()
    yield s
    s.cleanup()


def test_https_with_trusted_cert(tls_server, cert):
    base = f"https://127.0.0.1:{tls_server.port}"
    r = requests.get(base + "/healthz", verify=cert[0], timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    h = {"Authorization": "Token " + ADMIN_TOKEN}
    r = requests.post(base + "/api/v1/products/", json={"tid": unique("p"), "name": "TLS"},
                      headers=h, verify=cert[0], timeout=10)
    assert r.status_code == 201, r.text
    r = requests.post(base + "/api/v1/products/", json={"tid": unique("p"), "name": "TLS"},
                      headers=h, verify=cert[0], timeout=10)
    assert r.status_code == 201, r.text
    r = requests.get(base + "/api/v1/products/", params={"limit": 1}, headers=h,
                     verify=cert[0], timeout=10)
    # links the server builds use the scheme it serves
    assert r.json()["next"].startswith(base + "/api/v1/products")


def test_untrusted_client_refuses(tls_server):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{tls_server.port}/healthz", timeout=10)


def test_plain_http_to_tls_port_fails(tls_server, cert):
    with pytest.raises(requests.exceptions.RequestException):
        r = requests.get(f"http://127.0.0.1:{tls_server.port}/healthz", timeout=5)
        # should the server ever answer, it must not be the API's answer in clear text
        assert r.status_code != 200
        raise requests.exceptions.ConnectionError("answered over plain http")
    # the server is still healthy afterwards
    r = requests.get(f"https://127.0.0.1:{tls_server.port}/healthz", verify=cert[0], timeout=10)
    assert r.status_code == 200


def test_raw_plaintext_gets_no_http_answer(tls_server):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            data = b""
    assert b'"status"' not in data and not data.startswith(b"HTTP/1.1 200")


def test_missing_key_file_fails_to_start(cert):
    s = Server(extra_args=["--tls-cert", cert[0], "--tls-key", "/nonexistent/key.pem"])
    try:
        with pytest.raises(RuntimeError, match="exited"):
            s.start()
        assert "key.pem" in s.read_log()
    finally:
        s.cleanup()
