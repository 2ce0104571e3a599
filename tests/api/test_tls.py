"""HTTPS: with --tls-cert and --tls-key the server speaks TLS only; a client that trusts
the certificate gets the API, plain HTTP to the same port does not."""
import os
import socket
import ssl
import subprocess
import tempfile
import warnings

import pytest
import requests

from conftest import ADMIN_TOKEN, BIN, Server, self_signed_cert, unique


@pytest.fixture(scope="module")
def cert():
    with tempfile.TemporaryDirectory(prefix="dh-tls-") as d:
        yield self_signed_cert(d)


@pytest.fixture(scope="module")
def tls_server(cert, engine):
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


# ---- protocol versions and ciphers (--tls-priorities) ----


def handshake(port, version, ciphers="ALL:@SECLEVEL=0"):
    """One TLS handshake offering exactly `version` (and `ciphers` for TLS <= 1.2); returns
    the negotiated version, or None when the handshake fails. The client is made willing
    to speak old versions (@SECLEVEL=0), so that a refusal can only come from the server."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers(ciphers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s) as t:
                return t.version()
    except (ssl.SSLError, ConnectionError, socket.timeout):
        return None


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_versions_are_refused(tls_server, version):
    assert handshake(tls_server.port, version) is None


@pytest.mark.parametrize("version,name", [(ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                                          (ssl.TLSVersion.TLSv1_3, "TLSv1.3")])
def test_tls_12_and_13_work(tls_server, version, name):
    assert handshake(tls_server.port, version) == name


def test_tls12_without_aead_cipher_is_refused(tls_server):
    # a client that offers only CBC suites with SHA-1 MACs gets no handshake
    assert handshake(tls_server.port, ssl.TLSVersion.TLSv1_2,
                     "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-SHA") is None
    assert handshake(tls_server.port, ssl.TLSVersion.TLSv1_2,
                     "ECDHE-RSA-AES128-GCM-SHA256") == "TLSv1.2"


def test_tls_priorities_flag_widens_the_offer(cert):
    # the same client does get TLS 1.0 from a server told to allow it: the refusals above
    # come from the server's default priority string, not from the client
    c, k = cert
    s = Server(extra_args=["--tls-cert", c, "--tls-key", k, "--tls-priorities",
                           "NORMAL:+VERS-TLS1.0:+VERS-TLS1.1:+SHA1:+AES-128-CBC"]).start()
    try:
        assert handshake(s.port, ssl.TLSVersion.TLSv1) == "TLSv1"
        assert handshake(s.port, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    finally:
        s.cleanup()


# ---- bad files: exit status 2 with what GnuTLS said ----

def run_devicehubd(args, tmp):
    """Runs devicehubd until it exits (it must, within 30 s); returns (status, stderr)."""
    env = dict(os.environ, DEVICEHUB_ADMIN_TOKEN=ADMIN_TOKEN)
    p = subprocess.run([BIN, "--listen", "127.0.0.1", "--port", "0", "--data-dir",
                        os.path.join(tmp, "var")] + args, env=env, capture_output=True,
                       timeout=30)
    return p.returncode, p.stderr.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def bad_files(cert):
    with tempfile.TemporaryDirectory(prefix="dh-tls-bad-") as d:
        other = os.path.join(d, "other-key.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-out", other], check=True,
                       capture_output=True, timeout=60)
        garbage = os.path.join(d, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
        text = os.path.join(d, "text.pem")
        with open(text, "w") as f:
            f.write("hello\n")
        yield {"other": other, "garbage": garbage, "text": text, "dir": d}


@pytest.mark.parametrize("case,expect", [
    ("wrong_key", "do not match"),
    ("garbage_key", "--tls-key"),
    ("text_key", "no PEM private key"),
    ("cert_as_key", "certificate, not a private key"),
    ("text_cert", "--tls-cert"),
])
def test_bad_tls_files_exit_2_with_gnutls_message(cert, bad_files, case, expect):
    c, k = cert
    key = {"wrong_key": bad_files["other"], "garbage_key": bad_files["garbage"],
           "text_key": bad_files["text"], "cert_as_key": c, "text_cert": k}[case]
    crt = bad_files["text"] if case == "text_cert" else c
    with tempfile.TemporaryDirectory(prefix="dh-tls-run-") as d:
        status, err = run_devicehubd(["--tls-cert", crt, "--tls-key", key], d)
        assert status == 2, err
        assert "GnuTLS" in err and expect in err, err
        assert "Cannot listen" not in err
        # refused before anything was set up
        assert not os.path.exists(os.path.join(d, "var"))


def test_bad_priority_string_exits_2(cert):
    c, k = cert
    with tempfile.TemporaryDirectory(prefix="dh-tls-run-") as d:
        status, err = run_devicehubd(["--tls-cert", c, "--tls-key", k,
                                      "--tls-priorities", "NORMAL:+NO-SUCH-THING"], d)
        assert status == 2 and "--tls-priorities" in err and "NO-SUCH-THING" in err, err
