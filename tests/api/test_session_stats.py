"""GET /api/v1/firmware-update/stats: counts of the sessions created in the last hours per
state, per hour and per target firmware, for the dashboard's overview; a scoped caller counts
only the sessions it may see; bad parameters are 400 and change nothing."""
import datetime
import os

import pytest

from conftest import ADMIN_TOKEN, Client, Server, assert_error, make_user, unique

STATES = ["ready", "up_to_date", "queued", "processing", "created", "success", "fail",
          "unconfirmed"]


@pytest.fixture(scope="module")
def server(engine):
    s = Server().start()
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def admin(server):
    return Client(server, ADMIN_TOKEN)


def catalogue(admin, versions):
    """A product with one model, a channel, a confirming link procedure and firmware."""
    t = {k: unique(k) for k in ("prod", "model", "chan", "dm", "dp")}
    admin.create("/api/v1/products/", {"tid": t["prod"], "name": "P"})
    admin.create("/api/v1/models/", {"tid": t["model"], "name": "M", "product": t["prod"]})
    admin.create("/api/v1/channels/", {"tid": t["chan"], "name": "stable"})
    admin.create("/api/v1/delivery-methods/", {"tid": t["dm"], "name": "HTTP", "kind": "http"})
    admin.create("/api/v1/delivery-procedures/",
                 {"tid": t["dp"], "name": "Link", "delivery_method": t["dm"],
                  "steps": [{"plugin": "link"}], "confirm": True})
    t["fw"] = {}
    for v in versions:
        r = admin.post("/api/v1/firmware/", json=None, files={"file": ("f.bin", os.urandom(64))},
                       data={"model": t["model"], "version": v, "channels": t["chan"]})
        assert r.status_code == 201, r.text
        t["fw"][v] = r.json()["id"]
    return t


def session(admin, t, current, target=None):
    body = {"model": t["model"], "device_id": unique("dev"), "current_channel": t["chan"],
            "current_firmware_version": current, "delivery_procedure_tid": t["dp"]}
    if target:
        body["target_firmware_version"] = target
    return admin.create("/api/v1/firmware-update/request", body)


def run_to(admin, s, outcome):
    """Starts s and, once created, confirms it (outcome True/False) or leaves it created."""
    admin.post(f"/api/v1/firmware-update/{s['id']}/start")
    for _ in range(400):
        got = admin.get(f"/api/v1/firmware-update/{s['id']}/").json()
        if got["state"] == "created":
            break
    assert got["state"] == "created", got
    if outcome is not None:
        r = admin.post(f"/api/v1/firmware-update/{s['id']}/confirm",
                       json={"success": outcome, **({} if outcome else {"message": "no"})})
        assert r.status_code == 200, r.text


def stats(client, **params):
    r = client.get("/api/v1/firmware-update/stats", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_counts_per_state_hour_and_firmware(admin):
    t = catalogue(admin, ["1.1.0", "1.2.0"])
    before = stats(admin, model=t["model"])
    assert before["states"] == {s: 0 for s in STATES} and before["firmware"] == []
    made = []  # (session, the state it ends in)
    made.append((session(admin, t, "1.0.0"), "ready"))            # target 1.2.0
    made.append((session(admin, t, "1.2.0"), "up_to_date"))       # no target
    for target, outcome, state in ((None, True, "success"),       # on 1.2.0
                                   (None, True, "success"),       # on 1.2.0
                                   ("1.1.0", False, "fail"),
                                   ("1.1.0", None, "created")):
        made.append((session(admin, t, "1.0.0", target), state))
        run_to(admin, made[-1][0], outcome)
    got = stats(admin, model=t["model"])
    want = {s: 0 for s in STATES}
    want.update({"ready": 1, "up_to_date": 1, "success": 2, "fail": 1, "created": 1})
    assert got["states"] == want
    assert got["hours"] == 24 and len(got["timeline"]) == 24
    # the buckets are whole UTC hours, the last one holding now; they sum to the totals
    starts = [datetime.datetime.fromisoformat(b["start"]) for b in got["timeline"]]
    assert all((b - a).total_seconds() == 3600 for a, b in zip(starts, starts[1:]))
    assert starts[0].minute == 0 and starts[0] == datetime.datetime.fromisoformat(got["since"])
    until = datetime.datetime.fromisoformat(got["until"])
    assert starts[-1] <= until < starts[-1] + datetime.timedelta(hours=1)
    summed = {s: sum(b["states"][s] for b in got["timeline"]) for s in STATES}
    assert summed == want
    assert [(f["version"], f["total"]) for f in got["firmware"]] == [("1.1.0", 2), ("1.2.0", 3)]
    by_version = {f["version"]: f for f in got["firmware"]}
    assert by_version["1.2.0"]["states"]["success"] == 2
    assert by_version["1.2.0"]["states"]["ready"] == 1
    assert by_version["1.1.0"]["states"]["fail"] == 1
    assert by_version["1.1.0"]["states"]["created"] == 1
    assert by_version["1.1.0"]["firmware"] == t["fw"]["1.1.0"]
    assert by_version["1.1.0"]["model_tid"] == t["model"]
    model_id = admin.get(f"/api/v1/models/{t['model']}/").json()["id"]
    assert all(f["model"] == model_id for f in got["firmware"])
    # by tid or id alike; another window
    assert stats(admin, model=model_id)["states"] == want
    # the current hour only: the sessions created since it began (all of them, unless the
    # test ran across the turn of an hour)
    one = stats(admin, model=t["model"], hours=1)
    since = datetime.datetime.fromisoformat(one["since"])
    want_one = {s: 0 for s in STATES}
    for x, state in made:
        if datetime.datetime.fromisoformat(x["create_time"]) >= since:
            want_one[state] += 1
    assert one["hours"] == 1 and len(one["timeline"]) == 1 and one["states"] == want_one


def test_window_leaves_out_older_sessions(admin, server):
    """A session created two days ago (its row aged in the database file) is not counted
    in 24 hours but is in 72."""
    t = catalogue(admin, ["2.0.0"])
    s = session(admin, t, "1.0.0")
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2))
    server.db_exec(f"UPDATE sessions SET create_time = '{old.isoformat(timespec='microseconds')}'"
                   f" WHERE id = '{s['id']}'")
    new = session(admin, t, "1.0.0")
    assert stats(admin, model=t["model"])["states"]["ready"] == 1
    assert stats(admin, model=t["model"], hours=72)["states"]["ready"] == 2
    line = stats(admin, model=t["model"], hours=72)["timeline"]
    # 48 h ago is in the first half of the 72 hourly buckets, the new one in the bucket of
    # its hour: the last one, or the one before if an hour began since it was created
    assert sum(b["states"]["ready"] for b in line[:36]) == 1
    assert sum(b["states"]["ready"] for b in line[36:]) == 1
    hour = datetime.datetime.fromisoformat(new["create_time"]).replace(minute=0, second=0,
                                                                        microsecond=0)
    at = [i for i, b in enumerate(line) if datetime.datetime.fromisoformat(b["start"]) == hour]
    assert at and at[0] >= len(line) - 2 and line[at[0]]["states"]["ready"] == 1, (at, line)


def test_scoped_caller_counts_what_it_may_see(admin, server):
    a = catalogue(admin, ["3.0.0"])
    b = catalogue(admin, ["3.0.0"])
    for _ in range(2):
        session(admin, a, "1.0.0")
    for _ in range(3):
        session(admin, b, "1.0.0")
    _, secret = make_user(admin, ["update"], product=a["prod"])
    scoped = Client(server, secret)
    mine = stats(scoped)
    assert mine["states"]["ready"] == 2
    assert [f["firmware"] for f in mine["firmware"]] == [a["fw"]["3.0.0"]]
    # another product's model: nothing, not an error (as the session list filters)
    assert stats(scoped, model=b["model"])["states"]["ready"] == 0
    assert stats(admin, model=b["model"])["states"]["ready"] == 3
    _, none = make_user(admin, [])
    r = Client(server, none).get("/api/v1/firmware-update/stats")
    assert_error(r, 403)
    r = Client(server, None).get("/api/v1/firmware-update/stats")
    assert_error(r, 401)


@pytest.mark.parametrize("hours", ["0", "169", "-1", "1.5", "x", ""])
def test_bad_hours(admin, hours):
    r = admin.get("/api/v1/firmware-update/stats", params={"hours": hours})
    body = assert_error(r, 400, "invalid")
    assert "hours" in body["fields"]


def test_unknown_model_counts_nothing(admin):
    got = stats(admin, model="no-such-model")
    assert got["states"] == {s: 0 for s in STATES} and got["firmware"] == []
    assert sum(sum(b["states"].values()) for b in got["timeline"]) == 0


def test_literal_path_wins_and_other_methods_are_405(admin):
    r = admin.post("/api/v1/firmware-update/stats", json={})
    assert_error(r, 405)
    assert "GET" in r.headers["Allow"]
    assert admin.head("/api/v1/firmware-update/stats").status_code == 200
