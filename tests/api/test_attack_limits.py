"""Second attack run, resource limits one client can reach with one device token: every event
stream place (--max-events was one pool for all, so one device took the dashboards' places),
and the per-token rate limit (a token can mint more tokens for its user, each with a bucket
of its own). Both are now counted per user.
"""
import time

import pytest

from conftest import ADMIN_TOKEN, Client, Server, assert_error, make_user
from test_events import Sse


@pytest.fixture
def server():
    # an eighth of 16 event places per user
    s = Server(extra_args=["--max-events", "16"]).start()
    yield s
    s.cleanup()


@pytest.fixture
def slow_server():
    # 10 requests at once per user, then 1 a second
    s = Server(extra_args=["--rate-limit", "1", "--rate-burst", "10"]).start()
    yield s
    s.cleanup()


def test_one_user_cannot_take_every_event_stream(server):
    admin = Client(server, ADMIN_TOKEN)
    _, tok = make_user(admin, ["update"])
    streams = []
    try:
        streams = [Sse(server, token=tok) for _ in range(2)]
        assert [s.status for s in streams] == [200, 200]
        extra = Sse(server, token=tok)
        streams.append(extra)
        assert extra.status == 429 and extra.headers.get("retry-after"), extra.headers
        body = extra.body_json()
        assert body["code"] == "rate_limited" and "event streams" in body["detail"], body
        # a token the device mints for its user changes nothing
        minted = Client(server, tok).create("/api/v1/tokens/", {"name": "more"})["secret"]
        again = Sse(server, token=minted)
        streams.append(again)
        assert again.status == 429
        # the dashboards keep their places
        mine = Sse(server)
        streams.append(mine)
        assert mine.status == 200
    finally:
        for s in streams:
            s.close()


def test_tokens_minted_by_a_user_share_its_rate(slow_server):
    server = slow_server
    admin = Client(server, ADMIN_TOKEN)
    _, tok = make_user(admin, ["update"])
    _, other = make_user(admin, ["update"])
    dev = Client(server, tok)
    t0 = time.monotonic()
    minted = [dev.create("/api/v1/tokens/", {"name": f"t{i}"})["secret"] for i in range(3)]
    ok = limited = 0
    for i in range(40):
        r = Client(server, (minted + [tok])[i % 4]).get("/api/v1/tokens/")
        if r.status_code == 200:
            ok += 1
        else:
            assert_error(r, 429, "rate_limited")
            assert int(r.headers["Retry-After"]) >= 1
            limited += 1
    elapsed = time.monotonic() - t0
    # the user's bucket held 10 and refills 1 a second: 3 went into minting, so 7 more pass
    # and one a second since (however slow the machine); a bucket per token would have let
    # 3 x 10 + 7 through
    assert ok <= 8 + elapsed and ok < 30, (ok, limited, elapsed)
    # another user is not held back by this one
    assert Client(server, other).get("/api/v1/tokens/").status_code == 200
