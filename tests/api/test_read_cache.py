"""The per-thread read cache of session GETs and image downloads: a cached answer never
outlives a change, and rights are checked on every request, cached or not. Each client keeps
its connection, so repeated requests reach the same HTTP thread and its cache."""
import hashlib

import pytest

from conftest import Client, Server, assert_error, make_user, unique
from sessutil import FAST_ARGS, FU, new_session, procedure, upload_fw, wait_for, wait_state


@pytest.fixture(scope="module")
def server(engine):
    s = Server(extra_args=FAST_ARGS).start()
    yield s
    s.cleanup()


def created_session(admin, catalog, data, **timeouts):
    upload_fw(admin, catalog, "5.0.0", data=data)
    s = new_session(admin, catalog, procedure(admin, catalog, confirm=True, **timeouts),
                    "1.0.0")
    admin.post(FU + s["id"] + "/start")
    return wait_state(admin, s["id"], "created")


def test_cached_answers_follow_every_change(admin, catalog):
    data = bytes(range(256)) * 64
    # a retention of 3 s: the reads after the confirmation come before the session is
    # finished, also on a loaded machine
    s = created_session(admin, catalog, data, retention=3)
    link = s["payload"]["download_link"]
    def same(a, b):
        # the reaper flushes the bytes the ranges below delivered (every 100 ms here): that
        # change is one a cached answer must follow, not one this loop makes on purpose
        return {k: v for k, v in a.items() if k != "delivered"} == \
            {k: v for k, v in b.items() if k != "delivered"}

    for _ in range(3):  # the second and third come from the cache
        r = admin.get(FU + s["id"] + "/")
        assert r.status_code == 200 and same(r.json(), s), (r.json(), s)
        assert r.headers["Content-Type"] == "application/json; charset=utf-8"
        r = admin.get(link, headers={"Range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == data[100:200]
        assert r.headers["ETag"] == '"' + hashlib.sha256(data).hexdigest() + '"'
    r = admin.post(FU + s["id"] + "/confirm", json={"success": True})
    assert r.status_code == 200 and r.json()["state"] == "success"
    got = admin.get(FU + s["id"] + "/").json()
    assert got["state"] == "success" and got["history"][-1]["state"] == "success"
    assert admin.get(link, headers={"Range": "bytes=0-9"}).content == data[:10]
    # the reaper (another thread, another connection) ends the session after its retention
    done = wait_for(admin, s["id"], lambda x: x["finished"], timeout=10)
    assert done["state"] == "success" and done["expiration_time"] is None
    assert_error(admin.get(link, headers={"Range": "bytes=0-9"}), 410, "finished")


def test_rights_checked_on_cached_answers(admin, catalog):
    data = b"cached image " * 300
    s = created_session(admin, catalog, data)
    link = s["payload"]["download_link"]
    other_model = admin.create("/api/v1/models/", {"tid": unique("m"), "name": "M",
                                                   "product": catalog["product"]["id"]})
    _, tok_other = make_user(admin, ["update"], model=other_model["id"])
    _, tok_mine = make_user(admin, ["update"], model=catalog["model"]["id"])
    other, mine = Client(admin.server, tok_other), Client(admin.server, tok_mine)
    for _ in range(3):
        assert mine.get(FU + s["id"] + "/").json()["id"] == s["id"]
        assert mine.get(link).content == data
        assert_error(other.get(FU + s["id"] + "/"), 404, "not_found")
        assert_error(other.get(link), 404, "not_found")
        assert_error(Client(admin.server, None).get(link), 401)
