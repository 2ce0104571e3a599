"""Several devicehubd on one PostgreSQL, each with its own port and data dir: requests spread
over two servers; one is killed (kill -9) mid-pipeline and the other finishes every session;
a token revoked on A is refused on B within a second (and a session's change on A shows on
B); an SSE client on B hears of a session created on A; an image uploaded to A downloads
from B byte for byte, with Range and If-Range; a timeout is applied exactly once although
both reapers see it; servers given one link.key show one short link; a CoAP link issued by
one server downloads from the other, and dies there with its session; CoAP answers 5.03
(never waits) while an image is copied from the database."""
import hashlib
import os
import select
import shutil
import signal
import subprocess
import time

import pytest

from urllib.parse import urlsplit

from conftest import ADMIN_TOKEN, Client, Server, make_user, pg_cluster, unique
from sessutil import FU, new_session, procedure, upload_fw, wait_state
from test_coap import coap_port, fetch, raw_get, sha
from test_events import Sse, is_for

pytestmark = pytest.mark.engines("pg")

# Short leases, fast reapers: a dead server's sessions move on within about two seconds.
ARGS = ["--lease-ms", "1500", "--reaper-interval-ms", "100"]
# Propagation bound of issue 11: a change on one server takes effect on all within 1 s.
PROPAGATION_S = 1.0


def second_server(a, extra_args, key=True):
    """Another server on a's database; with key, given a's link.key before its first start
    (README, "Running several servers"), else it makes one of its own."""
    b = Server(extra_args=extra_args, database=a.database)
    if key:
        os.makedirs(b.data_dir)
        shutil.copy2(os.path.join(a.data_dir, "link.key"), os.path.join(b.data_dir, "link.key"))
    b.start()
    b.db_name = None  # the database is a's: dropped once, by a's cleanup
    return b


@pytest.fixture
def pair():
    a = Server(extra_args=ARGS + ["--workers", "4"]).start()
    b = second_server(a, ARGS + ["--workers", "4"])
    yield a, b
    for s in (b, a):
        s.cleanup()


def catalog_of(admin):
    p = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
    m = admin.create("/api/v1/models/", {"tid": unique("m"), "name": "M", "product": p["id"]})
    c = admin.create("/api/v1/channels/", {"tid": unique("c"), "name": "stable"})
    dm = admin.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "H",
                                                    "kind": "http"})
    return {"product": p, "model": m, "channel": c, "method": dm}


def test_one_server_killed_the_other_finishes_every_session(pair, tmp_path):
    a, b = pair
    ca, cb = Client(a, ADMIN_TOKEN), Client(b, ADMIN_TOKEN)
    cat = catalog_of(ca)
    upload_fw(ca, cat, "2.0.0")
    # each run takes a while, so that a kill finds sessions mid-pipeline
    dp = procedure(ca, cat, steps=[{"plugin": "exec", "params": {
        "program": "/bin/sleep", "args": ["0.3"]}}], confirm=False)
    clients = (ca, cb)
    ids = [new_session(clients[i % 2], cat, dp)["id"] for i in range(200)]
    for i, sid in enumerate(ids):
        assert clients[i % 2].post(FU + sid + "/start").status_code == 200
    # kill A while its workers run steps: about 7 s of work is left for eight workers
    wait_until(lambda: a.read_log().count("session.step") >= 4, 60)
    a.kill9()
    # B finishes every session: none lost, none stuck (two counts a round, not 200 reads)
    def ended():
        return sum(cb.get(FU, params={"model": cat["model"]["id"], "state": st,
                                      "limit": 1}).json()["count"] for st in ("success", "fail"))
    deadline = time.monotonic() + 240
    while ended() < len(ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    states = {sid: cb.get(FU + sid).json() for sid in ids}
    left = [sid for sid in ids if states[sid]["state"] not in ("success", "fail")]
    assert not left, {sid: states[sid]["state"] for sid in left}
    failed = {sid: states[sid]["error"] for sid in ids if states[sid]["state"] != "success"}
    assert not failed, failed
    taken = [sid for sid in ids if states[sid]["attempts"] == 2]
    assert taken, "no session was mid-pipeline on the killed server"
    assert "session.recovered" in b.read_log()


def wait_until(pred, limit):
    """Seconds until pred() held, polling every 10 ms; fails after limit seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.01)
    raise AssertionError(f"not within {limit} s")


def test_revocation_and_changes_on_a_take_effect_on_b_within_a_second(pair):
    a, b = pair
    ca, cb = Client(a, ADMIN_TOKEN), Client(b, ADMIN_TOKEN)
    cat = catalog_of(ca)
    upload_fw(ca, cat, "2.0.0")
    dp = procedure(ca, cat)
    times = []
    for _ in range(3):
        u, _ = make_user(ca, ["update"], product=cat["product"]["id"])
        tok = ca.create("/api/v1/tokens/", {"user": u["id"], "name": "revoked"})
        secret = tok["secret"]
        for _ in range(3):  # B has it cached now
            assert Client(b, secret).get(FU).status_code == 200
        assert ca.delete(f"/api/v1/tokens/{tok['id']}/").status_code == 204
        times.append(wait_until(lambda: Client(b, secret).get(FU).status_code == 401,
                                PROPAGATION_S))
    # a session read (and cached) on B, confirmed on A: B answers the new state
    s = new_session(ca, cat, dp)
    ca.post(FU + s["id"] + "/start")
    wait_state(cb, s["id"], "created")
    for _ in range(3):
        assert cb.get(FU + s["id"]).json()["state"] == "created"
    assert ca.post(FU + s["id"] + "/confirm", json={"success": True}).status_code == 200
    times.append(wait_until(lambda: cb.get(FU + s["id"]).json()["state"] == "success",
                            PROPAGATION_S))
    print(f"\npropagation A->B seconds: {['%.3f' % t for t in times]}")


def test_a_grant_removed_on_a_is_enforced_on_b_within_a_second(pair):
    a, b = pair
    ca = Client(a, ADMIN_TOKEN)
    cat = catalog_of(ca)
    upload_fw(ca, cat, "2.0.0")
    s = new_session(ca, cat, procedure(ca, cat))
    times = []
    for _ in range(3):
        u, secret = make_user(ca, ["update"], product=cat["product"]["id"])
        grant = ca.get("/api/v1/access-rights/", params={"user": u["id"]}).json()["results"][0]
        user_on_b = Client(b, secret)
        for _ in range(3):  # B has the user's rights cached now
            assert user_on_b.get(FU + s["id"]).status_code == 200
        assert ca.delete(f"/api/v1/access-rights/{grant['id']}").status_code == 204
        # beyond every grant of the user: 404, as for a session that does not exist
        times.append(wait_until(lambda: user_on_b.get(FU + s["id"]).status_code == 404,
                                PROPAGATION_S))
        # and a grant given back on A lets B answer again
        ca.create("/api/v1/access-rights/", {"user": u["id"], "action": "update",
                                             "product": cat["product"]["id"]})
        times.append(wait_until(lambda: user_on_b.get(FU + s["id"]).status_code == 200,
                                PROPAGATION_S))
    print(f"\nrights propagation A->B seconds: {['%.3f' % t for t in times]}")


def test_a_step_longer_than_the_lease_is_not_taken_over(pair, tmp_path):
    """The worker running a step renews its lease: the other server's reaper, which sees
    the session's claim every 100 ms, never takes it over although the step lasts three
    times --lease-ms."""
    a, b = pair
    ca, cb = Client(a, ADMIN_TOKEN), Client(b, ADMIN_TOKEN)
    cat = catalog_of(ca)
    upload_fw(ca, cat, "2.0.0")
    runs = tmp_path / "runs"
    dp = procedure(ca, cat, confirm=False, steps=[{"plugin": "exec", "params": {
        "program": "/bin/sh", "args": ["-c", f"echo run >> {runs}; sleep 4.5"]}}])
    s = new_session(ca, cat, dp)
    assert ca.post(FU + s["id"] + "/start").status_code == 200
    done = wait_state(cb, s["id"], "success", timeout=30)
    assert done["attempts"] == 1, done
    assert runs.read_text() == "run\n"
    for srv in (a, b):
        assert "session.recovered" not in srv.read_log()


def test_sse_on_b_hears_a_session_created_on_a(pair):
    a, b = pair
    ca = Client(a, ADMIN_TOKEN)
    cat = catalog_of(ca)
    upload_fw(ca, cat, "2.0.0")
    dp = procedure(ca, cat)
    sse = Sse(b, query="?heartbeat=200")
    try:
        s = new_session(ca, cat, dp, device_id=unique("dev"))
        ev = sse.next_event(lambda e: e.get("event") == "session.created" and is_for(s["id"])(e),
                            timeout=10)
        assert ev, "B's stream did not carry A's session"
        assert ev["data"]["state"] == s["state"]
    finally:
        sse.close()


def test_image_uploaded_to_a_downloads_from_b(pair):
    a, b = pair
    ca, cb = Client(a, ADMIN_TOKEN), Client(b, ADMIN_TOKEN)
    cat = catalog_of(ca)
    data = os.urandom(3 * 1024 * 1024 + 12345)  # several chunks, not a multiple of one
    fw = upload_fw(ca, cat, "2.0.0", data=data)
    url = f"/api/v1/firmware/{fw['id']}/image"
    ra = ca.get(url)
    r = cb.get(url, headers={"Range": "bytes=1000000-"})
    assert r.status_code == 206, r.text
    assert r.content == data[1000000:]
    assert r.headers["ETag"] == ra.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    whole = cb.get(url)
    assert whole.status_code == 200 and whole.content == data
    r = cb.get(url, headers={"Range": "bytes=0-4095", "If-Range": ra.headers["ETag"]})
    assert r.status_code == 206 and r.content == data[:4096]
    r = cb.get(url, headers={"Range": "bytes=0-4095", "If-Range": '"other"'})
    assert r.status_code == 200 and r.content == data
    assert "blob.filled" in b.read_log()


def test_a_timeout_is_applied_once_by_two_reapers(pair):
    a, b = pair
    ca, cb = Client(a, ADMIN_TOKEN), Client(b, ADMIN_TOKEN)
    cat = catalog_of(ca)
    upload_fw(ca, cat, "2.0.0")
    dp = procedure(ca, cat, confirm_timeout=1)
    ids = []
    for i in range(20):
        c = (ca, cb)[i % 2]
        s = new_session(c, cat, dp)
        c.post(FU + s["id"] + "/start")
        ids.append(s["id"])
    for sid in ids:
        s = wait_state(cb, sid, "unconfirmed", timeout=30)
        assert [h["state"] for h in s["history"]].count("unconfirmed") == 1, s["history"]
    # each move is logged just after its commit: the last line may follow the state seen
    def moved():
        return sum(srv.read_log().count("to=unconfirmed") for srv in (a, b))
    wait_until(lambda: moved() >= len(ids), 10)
    assert moved() == len(ids)


def test_servers_with_one_link_key_show_one_short_link(pair):
    """README, "Running several servers": each server needs the same link.key, copied into
    a new server's data dir before its first start (the pair's B). Then every server shows
    a session's short_link alike, whichever of them ran its link step, and a link issued by
    one downloads from the other. A server with a key of its own cannot compute the links
    of the others: it shows null."""
    a, b = pair
    ca, cb = Client(a, ADMIN_TOKEN), Client(b, ADMIN_TOKEN)
    cat = catalog_of(ca)
    data = os.urandom(200 * 1024 + 7)
    upload_fw(ca, cat, "2.0.0", data=data)
    dp = procedure(ca, cat, steps=[{"plugin": "link"}])
    links = {}
    for i, (start_on, other) in enumerate(((ca, cb), (cb, ca), (ca, cb), (cb, ca))):
        s = new_session(start_on, cat, dp, version=f"1.0.{i}")
        assert start_on.post(FU + s["id"] + "/start").status_code == 200
        mine = wait_state(start_on, s["id"], "created")["payload"]["short_link"]
        assert mine and "/d/" in mine, mine
        assert wait_state(other, s["id"], "created")["payload"]["short_link"] == mine
        listed = other.get(FU, params={"limit": 1000}).json()["results"]
        assert [x["payload"]["short_link"] for x in listed if x["id"] == s["id"]] == [mine]
        # the device's link, sent to the other server: no token, Range, the same bytes
        path = "/d/" + mine.rsplit("/d/", 1)[1]
        got = other.get(path, token="")
        assert got.status_code == 200 and got.content == data
        part = other.get(path, token="", headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        links[s["id"]] = mine
    # a server started with a key of its own (after the links were issued, so that none
    # of them was its): the links download, but it cannot show them
    c = second_server(a, ARGS, key=False)
    try:
        cc = Client(c, ADMIN_TOKEN)
        for sid, link in links.items():
            assert cc.get(FU + sid).json()["payload"]["short_link"] is None
            assert cc.get("/d/" + link.rsplit("/d/", 1)[1], token="").content == data
    finally:
        c.cleanup()


def coap_catalog_of(admin):
    cat = catalog_of(admin)
    cat["method"] = admin.create("/api/v1/delivery-methods/", {
        "tid": unique("dm"), "name": "CoAP", "kind": "coap"})
    return cat


def coap_code(server, path, block=(0, 6)):
    """The CoAP answer's code to GET path on server, as (class, detail)."""
    code = raw_get(f"coap://127.0.0.1:{coap_port(server)}{path}", block=block)[1]
    return code >> 5, code & 31


def test_a_coap_link_issued_by_one_server_downloads_from_the_other():
    """CoAP answers from the link table alone: a server learns of the links other servers
    issue from their events (the link step's progress), and forgets them with their
    session's state."""
    args = ARGS + ["--workers", "2", "--coap-port", "0"]
    a = Server(extra_args=args).start()
    b = second_server(a, args)
    try:
        ca = Client(a, ADMIN_TOKEN)
        cat = coap_catalog_of(ca)
        data = os.urandom(200 * 1024 + 3)
        upload_fw(ca, cat, "2.0.0", data=data)
        dp = procedure(ca, cat, steps=[{"plugin": "link"}])
        others = set()
        for i in range(4):  # whichever server runs the step, the other serves the link
            s = new_session(ca, cat, dp, version=f"1.0.{i}")
            assert ca.post(FU + s["id"] + "/start").status_code == 200
            s = wait_state(ca, s["id"], "created")
            ran = a if f"session.step id={s['id']}" in a.read_log() else b
            other = b if ran is a else a
            others.add(other.port)
            path = urlsplit(s["payload"]["coap_link"]).path
            t0 = time.monotonic()
            while coap_code(other, path) != (2, 5) and time.monotonic() - t0 < 10:
                time.sleep(0.05)  # 5.03 while the image is copied here
            assert coap_code(other, path) == (2, 5)
            rc, got, out = fetch(f"coap://127.0.0.1:{coap_port(other)}{path}", block=1024)
            assert rc == 0 and sha(got) == sha(data), out
            # finished on the server that ran it: the other answers 4.04 within a second
            assert ca.post(FU + s["id"] + "/confirm", json={"success": True}).status_code \
                == 200
            wait_until(lambda: coap_code(other, path) == (4, 4), PROPAGATION_S)
        print(f"\nservers that served another's link: {len(others)}")
    finally:
        b.cleanup()
        a.cleanup()


def hold_lock(db, table):
    """A psql session that holds ACCESS EXCLUSIVE on table (every read of it waits) until
    release_lock."""
    c = pg_cluster()
    p = subprocess.Popen([os.path.join(c.bindir, "psql"), "-X", "-q", "-At", "-h", c.sock,
                          "-p", str(c.port), "-U", "postgres", "-d", db],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    p.stdin.write(f"BEGIN;\nLOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n")
    p.stdin.flush()
    ready, _, _ = select.select([p.stdout], [], [], 20)
    assert ready and p.stdout.readline().strip() == "locked"
    return p


def release_lock(p):
    if p.poll() is None:
        p.stdin.write("ROLLBACK;\n")
        p.stdin.close()
        p.wait(20)


def test_coap_never_waits_for_an_image_copied_from_the_database():
    """A server that did not take the upload copies the image from the database before it
    can send it. Not on the CoAP thread: while the copy waits (here on a table lock), the
    image's link answers 5.03 with Max-Age 1 and every other request is answered; once the
    copy is done the link serves the image."""
    args = ARGS + ["--workers", "2", "--coap-port", "0"]
    a = Server(extra_args=args).start()
    b = lock = None
    try:
        ca = Client(a, ADMIN_TOKEN)
        cat = coap_catalog_of(ca)
        data = os.urandom(2 * 1024 * 1024 + 5)
        upload_fw(ca, cat, "2.0.0", data=data)
        dp = procedure(ca, cat, steps=[{"plugin": "link"}])
        s = new_session(ca, cat, dp)
        assert ca.post(FU + s["id"] + "/start").status_code == 200
        s = wait_state(ca, s["id"], "created")  # run by A, the only server yet
        path = urlsplit(s["payload"]["coap_link"]).path
        lock = hold_lock(a.db_name, "blob_chunks")
        b = second_server(a, args)  # loads A's links, and starts copying the image
        base = f"coap://127.0.0.1:{coap_port(b)}"
        for _ in range(3):
            _, code, _, _, opts, payload = raw_get(base + path, block=(0, 6))
            assert (code >> 5, code & 31) == (5, 3) and opts.get(14) == [b"\x01"], code
            assert payload == b""
            assert coap_code(b, "/.well-known/core", block=None) == (2, 5)
            assert coap_code(b, "/d/" + "A" * 22) == (4, 4)
        assert "blob.filled" not in b.read_log()
        release_lock(lock)
        wait_until(lambda: coap_code(b, path) == (2, 5), 20)
        rc, got, out = fetch(base + path, block=1024)
        assert rc == 0 and sha(got) == sha(data), out
        assert "blob.filled" in b.read_log()
    finally:
        if lock:
            release_lock(lock)
        if b:
            b.cleanup()
        a.cleanup()
