"""Rate limits (API.md "Limits"): a token beyond --rate-limit (with --rate-burst) gets 429
with Retry-After and a JSON error, and a client address whose failed authentications used
up --auth-fail-limit gets 429 for every request with credentials, the right token
included, until its bucket refills; another address is not affected. /metrics counts."""
import time

import pytest
import requests

from conftest import ADMIN_TOKEN, BIN, Client, Server, make_user
from rawhttp import assert_json_error, one_answer

# 3 * BURST requests in a row must outrun the refill of RATE a second: at 5 a second they
# may take 8 s (ThreadSanitizer on a loaded machine), not the 2 s that 20 a second allowed
RATE, BURST = 5, 20
# per minute: a failure comes back every 3 s. The FAILS failures that empty the bucket, and
# the two requests after a failure came back, must each come within that time: 3 s, not the
# 1 s of 60 a minute, which the ThreadSanitizer stage on a loaded machine could exceed
FAILS = 20


@pytest.fixture(scope="module")
def limited(engine):
    s = Server(extra_args=["--rate-limit", str(RATE), "--rate-burst", str(BURST),
                           "--auth-fail-limit", str(FAILS)]).start()
    yield s
    s.cleanup()


def metric(server, name):
    for line in requests.get(server.url + "/metrics", timeout=10).text.splitlines():
        if line.rsplit(" ", 1)[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(name)


def get(target, token=None):
    auth = b"Authorization: Token %s\r\n" % token.encode() if token else b""
    return b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + auth + b"\r\n"


def wait_until(pred, limit=15.0):
    deadline = time.monotonic() + limit
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)


def test_token_beyond_its_rate_gets_429(limited):
    admin = Client(limited, ADMIN_TOKEN)
    _, secret = make_user(admin, ["update"])
    _, other = make_user(admin, ["update"])
    before = metric(limited, 'devicehub_http_rate_limited_total{limit="token"}')
    s = requests.Session()
    h = {"Authorization": "Token " + secret}
    t0 = time.monotonic()
    codes = [s.get(limited.url + "/api/v1/firmware-update/", headers=h, timeout=10)
             for _ in range(3 * BURST)]
    elapsed = time.monotonic() - t0
    ok = [r for r in codes if r.status_code == 200]
    limited_ = [r for r in codes if r.status_code == 429]
    assert len(ok) + len(limited_) == len(codes), [r.status_code for r in codes]
    assert BURST <= len(ok) <= BURST + RATE * elapsed + 1, (len(ok), elapsed)
    assert limited_, "never limited"
    r = limited_[0]
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["code"] == "rate_limited" and r.json()["detail"]
    assert 1 <= int(r.headers["Retry-After"]) <= 2
    # another token has its own budget
    assert s.get(limited.url + "/api/v1/firmware-update/", timeout=10,
                 headers={"Authorization": "Token " + other}).status_code == 200
    assert metric(limited, 'devicehub_http_rate_limited_total{limit="token"}') >= \
        before + len(limited_)
    # the budget comes back
    wait_until(lambda: s.get(limited.url + "/api/v1/firmware-update/", headers=h,
                             timeout=10).status_code == 200)


def test_token_guessing_is_slowed_to_a_crawl(limited):
    src = "127.0.0.3"
    failed_before = metric(limited, "devicehub_auth_failures_total")
    for i in range(FAILS):
        r = one_answer(limited.port, get(b"/api/v1/products/", "guess-%04d" % i), source=src)
        assert_json_error(r, 401, "unauthorized")
    assert metric(limited, "devicehub_auth_failures_total") == failed_before + FAILS
    # the bucket is empty: wrong and right tokens alike get 429 without being looked at
    r = one_answer(limited.port, get(b"/api/v1/products/", "guess-next"), source=src)
    assert_json_error(r, 429, "rate_limited")
    assert 1 <= int(r.header("retry-after")) <= 60 // FAILS  # when the next one comes back
    r = one_answer(limited.port, get(b"/api/v1/products/", ADMIN_TOKEN), source=src)
    assert_json_error(r, 429, "rate_limited")
    # without credentials nothing is guessed: the usual 401
    r = one_answer(limited.port, get(b"/api/v1/products/"), source=src)
    assert_json_error(r, 401, "unauthorized")
    # public routes stay open
    assert one_answer(limited.port, get(b"/healthz"), source=src).status == 200
    # another address is not affected
    r = one_answer(limited.port, get(b"/api/v1/products/", ADMIN_TOKEN), source="127.0.0.4")
    assert r.status == 200
    assert metric(limited, 'devicehub_http_rate_limited_total{limit="auth_failures"}') >= 2
    # one failure comes back every 3 s, and one more failure empties the bucket again
    wait_until(lambda: one_answer(limited.port, get(b"/api/v1/products/", "guess-again"),
                                  source=src).status == 401)
    r = one_answer(limited.port, get(b"/api/v1/products/", ADMIN_TOKEN), source=src)
    assert r.status in (200, 429)
    r = one_answer(limited.port, get(b"/api/v1/products/", "guess-last"), source=src)
    assert_json_error(r, 429, "rate_limited")


def test_successes_do_not_count_as_failures(limited):
    src = "127.0.0.5"
    for _ in range(FAILS + 5):
        r = one_answer(limited.port, get(b"/healthz", None), source=src)
        assert r.status == 200
    for _ in range(3):
        r = one_answer(limited.port, get(b"/api/v1/products/", ADMIN_TOKEN), source=src)
        assert r.status == 200


def test_defaults_are_generous_and_documented():
    import subprocess
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30).stdout
    for flag, default in (("--rate-limit", "5000"), ("--rate-burst", "10000"),
                          ("--auth-fail-limit", "20")):
        line = out[out.index(flag + " "):].splitlines()[1]
        assert f'default "{default}"' in line, line
