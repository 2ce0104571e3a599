"""Bytes delivered per session (API.md, sessions: `delivered`): what the session's downloads
sent, repeats included, and the fraction of distinct image bytes sent at least once; the
union of overlapping ranges, HEAD counting nothing, session.downloaded published once, and
counters that survive a state change, an orderly stop and a crash after a flush."""
import os
import time
from urllib.parse import urlsplit

import pytest

from conftest import ADMIN_TOKEN, Client, Server, unique
from sessutil import FAST_ARGS, FU, new_session, procedure, upload_fw, wait_for, wait_state
from test_events import Sse, is_for

SIZE = 100_000


@pytest.fixture(scope="module")
def server(engine):
    s = Server(extra_args=FAST_ARGS).start()
    yield s
    s.cleanup()


def linked_session(admin, catalog, data):
    """A session with the link step, waiting in `created` for its device's download."""
    upload_fw(admin, catalog, "2.0.0", data=data)
    dp = procedure(admin, catalog, steps=[{"plugin": "link"}], confirm=True)
    s = new_session(admin, catalog, dp, device_id=unique("dev"))
    assert admin.post(FU + s["id"] + "/start").status_code == 200
    return wait_state(admin, s["id"], "created")


def delivered(admin, sid):
    return admin.get(FU + sid).json()["delivered"]


def wait_delivered(admin, sid, bytes_sent, timeout=10.0):
    return wait_for(admin, sid, lambda s: s["delivered"]["bytes_sent"] == bytes_sent,
                    timeout)["delivered"]


def test_a_new_session_has_delivered_nothing(admin, catalog):
    s = linked_session(admin, catalog, os.urandom(SIZE))
    assert s["delivered"] == {"bytes_sent": 0, "coverage": 0}


def test_overlapping_ranges_cover_their_union_and_downloaded_fires_once(server, admin,
                                                                        catalog):
    data = os.urandom(SIZE)
    s = linked_session(admin, catalog, data)
    sid, link = s["id"], s["payload"]["download_link"]
    sse = Sse(server, query=f"?last_event_id={0}")
    try:
        a = admin.get(link, headers={"Range": "bytes=0-59999"})
        assert a.status_code == 206 and a.content == data[:60000]
        d = wait_delivered(admin, sid, 60000)
        assert d["coverage"] == pytest.approx(0.6)
        b = admin.get(link, headers={"Range": "bytes=40000-"})
        assert b.status_code == 206 and b.content == data[40000:]
        d = wait_delivered(admin, sid, 120000)
        assert d["coverage"] == 1
        # once more, whole: more bytes, still full, and no second event
        assert admin.get(link).content == data
        assert wait_delivered(admin, sid, 220000)["coverage"] == 1
        # every event up to session.downloaded, however slow the stream; then whatever
        # else comes within a second (a second downloaded event would)
        seen = []
        for _ in range(50):
            ev = sse.next_event(is_for(sid), timeout=1.0 if any(
                e["event"] == "session.downloaded" for e in seen) else 10.0)
            if ev is None:
                break
            seen.append(ev)
        kinds = [e["event"] for e in seen]
        assert kinds.count("session.downloaded") == 1, kinds
        done = next(e for e in seen if e["event"] == "session.downloaded")
        assert done["data"]["delivered"] == {"bytes_sent": 120000, "coverage": 1}
        assert done["data"]["state"] == "created"
        # the tenths reached before it came as session.delivered (0.6 here)
        assert "session.delivered" in kinds[:kinds.index("session.downloaded")]
    finally:
        sse.close()


def test_head_and_refused_ranges_count_nothing(admin, catalog):
    s = linked_session(admin, catalog, os.urandom(SIZE))
    sid, link = s["id"], s["payload"]["download_link"]
    assert admin.head(link).status_code == 200
    assert admin.get(link, headers={"Range": f"bytes={SIZE}-"}).status_code == 416
    assert admin.get(link, headers={"Range": "bytes=0-99"}).status_code == 206
    # the 100-byte range shows up, and only it
    assert wait_delivered(admin, sid, 100) == {"bytes_sent": 100, "coverage": 100 / SIZE}
    time.sleep(0.3)  # two more flushes: nothing else arrives
    assert delivered(admin, sid)["bytes_sent"] == 100


def test_counters_survive_state_changes_and_restarts():
    srv = Server(extra_args=FAST_ARGS).start()
    try:
        admin = Client(srv, ADMIN_TOKEN)
        cat = make_catalog(admin)
        data = os.urandom(SIZE)
        s = linked_session(admin, cat, data)
        # the path: each restart listens on another free port
        sid, link = s["id"], urlsplit(s["payload"]["download_link"]).path
        assert admin.get(link, headers={"Range": "bytes=0-24999"}).status_code == 206
        # an orderly stop writes what is pending
        srv.stop()
        srv.start()
        assert delivered(admin, sid) == {"bytes_sent": 25000, "coverage": 0.25}
        assert admin.get(link, headers={"Range": "bytes=25000-49999"}).status_code == 206
        wait_delivered(admin, sid, 50000)
        # a crash after the flush loses nothing
        srv.kill9()
        srv.start()
        assert delivered(admin, sid) == {"bytes_sent": 50000, "coverage": 0.5}
        # the confirm writes the counters with the change and keeps them
        assert admin.get(link, headers={"Range": "bytes=50000-"}).status_code == 206
        r = admin.post(FU + sid + "/confirm", json={"success": True})
        assert r.status_code == 200 and r.json()["state"] == "success"
        assert r.json()["delivered"] == {"bytes_sent": 100000, "coverage": 1}
        # success still allows the authenticated download, and it still counts
        assert admin.get(link, headers={"Range": "bytes=0-9"}).status_code == 206
        assert wait_delivered(admin, sid, 100010)["coverage"] == 1
    finally:
        srv.cleanup()


def make_catalog(admin):
    """What the catalog fixture makes, on another server."""
    p = admin.create("/api/v1/products/", {"tid": unique("prod"), "name": "P"})
    m = admin.create("/api/v1/models/", {"tid": unique("model"), "name": "M",
                                         "product": p["tid"]})
    c = admin.create("/api/v1/channels/", {"tid": unique("chan"), "name": "stable"})
    dm = admin.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "HTTP",
                                                    "kind": "http"})
    return {"product": p, "model": m, "channel": c, "method": dm}
