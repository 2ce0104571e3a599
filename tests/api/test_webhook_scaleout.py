"""Webhooks with two devicehubd on one PostgreSQL: both senders work the one outbox, yet each
delivery is in flight from one process at a time, none is sent twice and a webhook's events
arrive in order; a server killed with a delivery in flight loses it to the other once its
lease runs out, and every event still arrives."""
import time

import pytest

from conftest import ADMIN_TOKEN, Client, Server, unique
from receiver import Receiver

pytestmark = pytest.mark.engines("pg")

WH = "/api/v1/webhooks/"
# Short leases: a dead server's claims run out within seconds; fast retries.
ARGS = ["--webhook-allow-private", "--lease-ms", "1500", "--webhook-retry-base-ms", "100",
        "--webhook-timeout", "5"]


@pytest.fixture
def pair():
    a = Server(extra_args=ARGS).start()
    b = Server(extra_args=ARGS, database=a.database).start()
    b.db_name = None  # the database is a's: dropped once, by a's cleanup
    yield a, b
    for s in (b, a):
        s.cleanup()


def all_delivered(client, w, n, timeout=30):
    """The delivery log of w once it holds n deliveries, all delivered (an answer is recorded
    a moment after the receiver saw its request)."""
    deadline = time.monotonic() + timeout
    while True:
        log = client.get(WH + w["id"] + "/deliveries/", params={"limit": 1000}).json()
        if log["count"] == n and all(d["status"] == "delivered" for d in log["results"]):
            return log["results"]
        assert time.monotonic() < deadline, log
        time.sleep(0.02)


def tids_in_order(reqs):
    out = []
    for r in reqs:
        t = r.json()["data"]["object"]["tid"]
        if t not in out:
            out.append(t)
    return out


def test_two_servers_send_each_delivery_once_and_in_order(pair):
    a, b = pair
    rx = Receiver(default=(200, b"{}", 0.02)).start()
    try:
        ca, cb = Client(a, ADMIN_TOKEN), Client(b, ADMIN_TOKEN)
        hooks = [ca.create(WH, {"url": rx.url(f"/two{i}"), "events": ["object.created"]})
                 for i in range(3)]
        # events made on both servers in a burst, one after the other (ordered commits):
        # both senders are woken and race for the same deliveries
        tids = [unique("two") for _ in range(40)]
        for i, t in enumerate(tids):
            (ca, cb)[i % 2].create("/api/v1/products/", {"tid": t, "name": "T"})
        # then one at a time on B, each once the one before was delivered and recorded: B's
        # own commit wakes its sender at once (A's looks again within a second), so B sends
        for i in range(10):
            t = unique("one")
            cb.create("/api/v1/products/", {"tid": t, "name": "T"})
            tids.append(t)
            for w in hooks:
                all_delivered(cb, w, len(tids))
        for h, w in enumerate(hooks):
            reqs = rx.wait(lambda q: len(q) >= 50, path=f"/two{h}", timeout=60)
            ids = [r.headers["webhook-id"] for r in reqs]
            assert len(ids) == len(set(ids)) == 50, "a delivery was sent twice"
            assert tids_in_order(reqs) == tids
            # one at a time to a webhook, whichever server sent: each request came after
            # the answer to the one before it had started to go out
            for prev, nxt in zip(reqs, reqs[1:]):
                assert nxt.time >= prev.answered, (prev, nxt)
            log = all_delivered(cb, w, 50)
            assert all(d["attempts"] == 1 for d in log), log
        sent = [s.read_log().count("webhook.delivered") for s in (a, b)]
        assert sum(sent) == 150 and min(sent) > 0, sent
    finally:
        rx.stop()


def test_server_killed_mid_delivery_the_other_takes_over(tmp_path):
    rx = Receiver().start()
    # the first request hangs (until rx.stop()); the rest answer at once
    rx.script("/k", [(200, b"{}", 30)])
    a = Server(extra_args=ARGS).start()
    b = None
    try:
        ca = Client(a, ADMIN_TOKEN)
        ca.create(WH, {"url": rx.url("/k"), "events": ["object.created"]})
        tids = [unique("kill") for _ in range(10)]
        for t in tids:
            ca.create("/api/v1/products/", {"tid": t, "name": "K"})
        rx.wait(lambda q: len(q) == 1, path="/k", timeout=20)  # A sends the first: in flight
        b = Server(extra_args=ARGS, database=a.database).start()
        b.db_name = None
        t0 = time.monotonic()
        a.kill9()
        reqs = rx.wait(lambda q: set(tids_in_order(q)) == set(tids), path="/k", timeout=60)
        # B took the claimed delivery over once A's lease (timeout 5 s + 1.5 s) ran out
        assert time.monotonic() - t0 < 30
        assert tids_in_order(reqs) == tids
        firsts = [r for r in reqs if r.json()["data"]["object"]["tid"] == tids[0]]
        assert len(firsts) == 2 and firsts[0].headers["webhook-id"] == \
            firsts[1].headers["webhook-id"]
        assert "webhook.delivered" in b.read_log()
    finally:
        rx.stop()
        if b:
            b.cleanup()
        a.cleanup()
