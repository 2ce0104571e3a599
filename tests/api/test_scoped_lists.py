"""Lists at fleet scale for scoped callers (every device token is one): the caller's grants
are part of the query, so the database counts and pages, and a list request holds one page
in memory whatever the table holds. 120 000 sessions and 115 000 devices are written straight
into the SQLite file while the server is stopped; every assertion goes through the API."""
import os
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from conftest import Client, Server, make_user, unique

# The rows are written straight into the SQLite file (a bulk load through the API would take
# minutes); the SQL under test is the same text on both engines.
pytestmark = pytest.mark.engines("sqlite")

FU = "/api/v1/firmware-update/"
# The lists of this file may grow the server's peak resident memory by this much at most
# (measured: about 45 MiB with ASan for nine pages of 1000). Loading every session of a
# scope, as the server once did, grew it by 260 MiB in a release build, for one request.
RSS_GROWTH_MAX_KIB = 64 * 1024
# AddressSanitizer keeps freed memory in a quarantine (256 MiB by default) and so turns any
# churn into resident memory; a small one lets the peak say what a request holds at once.
SMALL_QUARANTINE = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=1"}


def peak_rss_kib(server):
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def rfc3339(t):
    return t.isoformat(timespec="microseconds")


@pytest.fixture(scope="module")
def fleet(engine):
    # one HTTP thread: every request's peak lands in the same allocator arena
    s = Server(env=SMALL_QUARANTINE, extra_args=["--http-threads", "1"]).start()
    a = Client(s, s.admin_token)
    p1 = a.create("/api/v1/products/", {"tid": unique("p"), "name": "P1"})
    p2 = a.create("/api/v1/products/", {"tid": unique("p"), "name": "P2"})
    m1 = a.create("/api/v1/models/", {"tid": unique("m"), "name": "M1", "product": p1["id"]})
    m2 = a.create("/api/v1/models/", {"tid": unique("m"), "name": "M2", "product": p2["id"]})
    c1 = a.create("/api/v1/channels/", {"tid": unique("c"), "name": "stable"})
    c2 = a.create("/api/v1/channels/", {"tid": unique("c"), "name": "beta"})
    dm = a.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "H",
                                                "kind": "http"})
    dp = a.create("/api/v1/delivery-procedures/", {"tid": unique("dp"), "name": "P",
                                                   "delivery_method": dm["id"]})
    tokens = {
        "model": make_user(a, ["update"], model=m1["id"])[1],
        "channel": make_user(a, ["update"], model=m1["id"], channel=c2["id"])[1],
        "manager": make_user(a, ["manage"], product=p1["id"])[1],
        "two": None,
    }
    u, tokens["two"] = make_user(a, ["update"], model=m1["id"], channel=c1["id"])
    a.create("/api/v1/access-rights/", {"user": u["id"], "action": "update", "model": m2["id"]})
    s.stop()
    db = sqlite3.connect(f"{s.data_dir}/devicehub.db")
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = []
    # 100 000 sessions of M1 (every fourth in beta), 20 000 of M2, interleaved in time
    for i in range(120000):
        model, product = (m1, p1) if i % 6 else (m2, p2)
        chan = c2 if i % 4 == 0 else c1
        t = rfc3339(t0 + timedelta(microseconds=i))
        rows.append((str(uuid.UUID(int=i + 1, version=4)), t, t, "ready", dp["id"],
                     product["id"], model["id"], chan["id"], 3600, 3600, 86400, 604800,
                     '[{"state":"ready","time":"%s"}]' % t))
    db.executemany("INSERT INTO sessions (id, create_time, update_time, state,"
                   " delivery_procedure_id, product_id, model_id, channel_id, ready_timeout,"
                   " processing_timeout, confirm_timeout, retention, history)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO devices (id, device_id, model_id, channel_id, create_time)"
                   " VALUES (?, ?, ?, ?, ?)",
                   ((str(uuid.UUID(int=(1 << 64) + i, version=4)), f"dev-{i}",
                     (m2 if i % 23 == 0 else m1)["id"], c1["id"],
                     rfc3339(t0 + timedelta(microseconds=i))) for i in range(115000)))
    db.commit()
    db.close()
    s.start()
    yield {"server": s, "m1": m1, "m2": m2, "c1": c1, "c2": c2, "tokens": tokens}
    s.cleanup()


def expected_sessions(pred):
    return sum(1 for i in range(120000) if pred(i))


def in_m1(i):
    return i % 6 != 0


def in_beta(i):
    return i % 4 == 0


def test_scoped_session_lists_count_and_page_in_the_database(fleet):
    s = fleet["server"]
    before = peak_rss_kib(s)
    cases = {
        "model": expected_sessions(in_m1),
        "channel": expected_sessions(lambda i: in_m1(i) and in_beta(i)),
        "manager": expected_sessions(in_m1),
        "two": expected_sessions(lambda i: not in_m1(i) or not in_beta(i)),
    }
    for who, want in cases.items():
        c = Client(s, fleet["tokens"][who])
        first = c.get(FU, params={"limit": 1000}).json()
        assert first["count"] == want, (who, first["count"], want)
        assert len(first["results"]) == 1000 and "offset=1000" in first["next"]
        times = [x["create_time"] for x in first["results"]]
        assert times == sorted(times, reverse=True), who
        last = c.get(FU, params={"limit": 1000, "offset": want - 10}).json()
        assert len(last["results"]) == 10 and last["next"] is None
        assert last["results"][-1]["create_time"] == "2026-01-01T00:00:00.000001+00:00" \
            or who == "channel" or who == "two"
        ids = {x["id"] for x in first["results"]} | {x["id"] for x in last["results"]}
        assert len(ids) == 1010
    # filters combine with the grants
    c = Client(s, fleet["tokens"]["two"])
    assert c.get(FU, params={"model": fleet["m2"]["id"]}).json()["count"] == \
        expected_sessions(lambda i: not in_m1(i))
    growth = peak_rss_kib(s) - before
    assert growth < RSS_GROWTH_MAX_KIB, f"peak RSS grew by {growth} KiB"


def test_scoped_device_list_counts_and_pages_in_the_database(fleet):
    s = fleet["server"]
    before = peak_rss_kib(s)
    c = Client(s, fleet["tokens"]["manager"])
    want = sum(1 for i in range(115000) if i % 23 != 0)
    first = c.get("/api/v1/devices/", params={"limit": 1000}).json()
    assert first["count"] == want and len(first["results"]) == 1000
    assert {d["model"] for d in first["results"]} == {fleet["m1"]["id"]}
    last = c.get("/api/v1/devices/", params={"limit": 1000, "offset": want - 1}).json()
    assert len(last["results"]) == 1 and last["next"] is None
    growth = peak_rss_kib(s) - before
    assert growth < RSS_GROWTH_MAX_KIB, f"peak RSS grew by {growth} KiB"
