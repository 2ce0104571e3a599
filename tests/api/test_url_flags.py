"""The URL flags checked at start-up (--public-url, --coap-public-url, --allowed-hosts): each
malformed value ends devicehubd with exit status 2 and one line on stderr that names the flag
(and its environment variable when it came from there), shows the value escaped, and says
what is wrong, before anything is opened (the data dir is not even made). Each accepted form
starts, and the links follow it."""
import os
import subprocess

import pytest

import conftest
from conftest import Client, Server, unique

# Start-up does not depend on the engine: once is enough.
pytestmark = pytest.mark.engines("sqlite")

LONG_HOST = "a" * 60 + "." + "b" * 60 + "." + "c" * 60 + "." + "d" * 60 + ".example"

# (flag, value, words the message must hold after "devicehubd: --flag 'value': ")
BAD = [
    ("public-url", "hub.example", "does not start with http:// or https://"),
    ("public-url", "hub.example:8080", "does not start with http:// or https://"),
    ("public-url", "ftp://hub.example", "has the scheme 'ftp'; it must start with http://"),
    ("public-url", "coap://hub.example", "has the scheme 'coap'"),
    ("public-url", "https://user:secret@hub.example", "has user information"),
    ("public-url", "https://", "has no host"),
    ("public-url", "https://:8443", "has no host"),
    ("public-url", "https://hub.example:", "no port"),
    ("public-url", "https://hub.example:0", "port '0' is not a number in 1..65535"),
    ("public-url", "https://hub.example:70000", "port '70000'"),
    ("public-url", "https://hub.example:http", "port 'http'"),
    ("public-url", "https://hub..example", "empty label"),
    ("public-url", "https://hub_1.example", "holds '_'"),
    ("public-url", "https://999.0.0.1", "not an IPv4 address"),
    ("public-url", "https://2001:db8::1", "more than one ':'"),
    ("public-url", "https://[2001:db8::zz]", "not an IPv6 address"),
    ("public-url", "https://hub.example/?x=1", "has a query"),
    ("public-url", "https://hub.example/#top", "has a fragment"),
    ("public-url", "https://hub.example/a//b", "empty segment"),
    ("public-url", "https://hub.example/a/../b", "'.' or '..' segment"),
    ("public-url", "https://hub.example/a%zz", "two hex digits"),
    ("public-url", "https://hub.example/a b", "holds a space"),
    ("public-url", "https://" + LONG_HOST + "/x", "longer than 256 bytes"),
    ("coap-public-url", "http://hub.example", "has the scheme 'http'; it must start with"
     " coap:// or coaps://"),
    ("coap-public-url", "hub.example:5683", "does not start with coap:// or coaps://"),
    ("coap-public-url", "coap://hub.example:5683/d", "has a path ('/d')"),
    ("coap-public-url", "coaps://u@hub.example", "has user information"),
    ("coap-public-url", "coap://hub.example:99999", "port '99999'"),
    ("coap-public-url", "coap://hub.example?x", "has a query"),
    ("allowed-hosts", "hub.example,,other.example", "empty entry"),
    ("allowed-hosts", "hub.example,", "empty entry"),
    ("allowed-hosts", "hub.example/x", "entry 'hub.example/x': holds '/'"),
    ("allowed-hosts", "http://hub.example", "entry 'http://hub.example': holds '/'"),
    ("allowed-hosts", "hub example", "entry 'hub example': holds a space"),
    ("allowed-hosts", "hub.example:0", "entry 'hub.example:0': port '0'"),
    ("allowed-hosts", "user@hub.example", "has user information"),
    ("allowed-hosts", ",".join(["hub.example"] * 400), "longer than 4096 bytes"),
]


def start_fails(tmp_path, args, env=None):
    """Runs devicehubd with args (str or bytes); returns its stderr as text, asserting exit
    status 2, one line of well-formed UTF-8 without control characters, and that nothing was
    opened or made."""
    data = tmp_path / "var"
    r = subprocess.run([conftest.BIN, "--listen", "127.0.0.1", "--port", "0", "--data-dir",
                        str(data)] + list(args), capture_output=True, timeout=30,
                       env=dict(os.environ, **(env or {})))
    assert r.returncode == 2, (args, r.returncode, r.stderr)
    assert r.stdout == b"", r.stdout
    err = r.stderr.decode("utf-8")  # strict
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert not [c for c in err[:-1] if ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f], err
    assert not data.exists(), "the data dir was made before the flags were checked"
    return err[:-1]


@pytest.mark.parametrize("flag,value,why", BAD, ids=[f"{f}-{i}" for i, (f, _, _) in
                                                     enumerate(BAD)])
def test_bad_value_exits_2_with_one_line(tmp_path, flag, value, why):
    err = start_fails(tmp_path, [f"--{flag}", value])
    shown = value if len(value) <= 80 else value[:80] + "..."
    assert err.startswith(f"devicehubd: --{flag} '{shown}': "), err
    assert why in err, err


@pytest.mark.parametrize("flag", ["public-url", "coap-public-url", "allowed-hosts"])
def test_bytes_that_are_not_text_are_named_and_escaped(tmp_path, flag):
    scheme = b"coap://" if flag == "coap-public-url" else b"https://"
    if flag == "allowed-hosts":
        scheme = b""
    err = start_fails(tmp_path, [f"--{flag}".encode(), scheme + b"hub\x1b[2J.example"])
    assert err == (f"devicehubd: --{flag} '{scheme.decode()}hub\\x1b[2J.example': holds a"
                   f" control character (byte 0x1b at {len(scheme) + 3})"), err
    err = start_fails(tmp_path, [f"--{flag}".encode(), scheme + b"hub\xff\xfe.example"])
    assert err == (f"devicehubd: --{flag} '{scheme.decode()}hub\\xff\\xfe.example': is not"
                   " UTF-8"), err
    err = start_fails(tmp_path, [f"--{flag}".encode(), scheme + "hüb.example".encode()])
    assert f"'{scheme.decode()}hüb.example': holds a character outside ASCII" in err, err


def test_a_bad_value_from_the_environment_names_the_variable(tmp_path):
    err = start_fails(tmp_path, [], env={"DEVICEHUB_PUBLIC_URL": "hub.example"})
    assert err == ("devicehubd: DEVICEHUB_PUBLIC_URL (--public-url) 'hub.example': does not"
                   " start with http:// or https://"), err
    err = start_fails(tmp_path, [], env={"DEVICEHUB_ALLOWED_HOSTS": "a,,b"})
    assert err.startswith("devicehubd: DEVICEHUB_ALLOWED_HOSTS (--allowed-hosts) 'a,,b': ")
    # a flag wins over its variable, and is named as a flag
    err = start_fails(tmp_path, ["--public-url", "ftp://x.example"],
                      env={"DEVICEHUB_PUBLIC_URL": "https://ok.example"})
    assert err.startswith("devicehubd: --public-url 'ftp://x.example': "), err


# (extra args, the base the links must have: "" when they name the client's address)
GOOD = [
    (["--public-url", "https://hub.example"], "https://hub.example"),
    (["--public-url", "HTTP://Hub.Example:8080/"], "HTTP://Hub.Example:8080"),
    (["--public-url", "https://hub.example/device-hub/"], "https://hub.example/device-hub"),
    (["--public-url", "http://192.0.2.10:8080/a%20b"], "http://192.0.2.10:8080/a%20b"),
    (["--public-url", "http://[2001:db8::7]:8443"], "http://[2001:db8::7]:8443"),
    (["--public-url", "https://hub.example", "--coap-public-url", "coaps://hub.example:5684/"],
     "https://hub.example"),
    (["--coap-public-url", "coap://[::1]"], ""),
    (["--allowed-hosts", "hub.example:8080, [::1]:8443 ,10.0.0.1"], ""),
]


@pytest.mark.parametrize("args,base", GOOD, ids=[str(i) for i in range(len(GOOD))])
def test_accepted_forms_start(args, base):
    s = Server(extra_args=args).start()
    try:
        a = Client(s, s.admin_token)
        for _ in range(2):
            a.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
        nxt = a.get("/api/v1/products/", params={"limit": 1}).json()["next"]
        want = base or f"http://127.0.0.1:{s.port}"
        assert nxt.startswith(want + "/api/v1/products"), (nxt, want)
    finally:
        s.cleanup()
