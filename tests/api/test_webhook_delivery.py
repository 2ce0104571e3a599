"""Webhook deliveries end to end, against local receivers (tests/api/receiver.py): every event
type arrives signed in the Standard Webhooks form, and the README's receiver verifies it; a
receiver that answers 500 three times then 200 sees the same webhook-id four times, in order
with what follows; 50 undelivered events survive kill -9; a slow receiver does not hold back
another; retries end in a visible 'failed'; a private address is refused at connect time
without --webhook-allow-private; redelivery; scope and opt-in filtering; /metrics."""
import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from conftest import ADMIN_TOKEN, ROOT, Client, Server, assert_error, self_signed_cert, unique
from receiver import Receiver
from sessutil import FU, new_session, procedure, upload_fw, wait_state
from test_webhooks import event_types

WH = "/api/v1/webhooks/"
# retries after 0.1 s, doubling: a test sees four attempts within a second
FAST = ["--webhook-allow-private", "--webhook-retry-base-ms", "100", "--reaper-interval-ms",
        "100", "--workers", "2"]


def verify(secret, req):
    """The Standard Webhooks check, as a receiver does it."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg = f"{req.headers['webhook-id']}.{req.headers['webhook-timestamp']}.".encode() + req.body
    want = "v1," + base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()
    return want in req.headers["webhook-signature"].split()


@pytest.fixture(scope="module")
def server(engine):
    s = Server(extra_args=FAST).start()
    yield s
    s.cleanup()


@pytest.fixture
def rx():
    r = Receiver().start()
    yield r
    r.stop()


def hook(admin, rx, path="/hook", **kw):
    body = {"url": rx.url(path)}
    body.update(kw)
    return admin.create(WH, body)


def deliveries(admin, w, **params):
    r = admin.get(WH + w["id"] + "/deliveries/", params=dict(limit=1000, **params))
    assert r.status_code == 200, r.text
    return r.json()["results"]


def wait_log(admin, w, pred, timeout=20.0):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = deliveries(admin, w)
        if pred(got):
            return got
        time.sleep(0.05)
    raise AssertionError(f"delivery log never got there: {got}")


def events_of(reqs, type_=None):
    out = [r.json() for r in reqs]
    return [e for e in out if type_ is None or e["type"] == type_]


def test_every_event_type_arrives_signed(admin, catalog, rx):
    types = [t for t, _ in event_types()]
    w = hook(admin, rx, events=types)
    # objects: a product, changed and deleted
    p = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
    admin.patch("/api/v1/products/" + p["id"], json={"name": "P2"})
    admin.delete("/api/v1/products/" + p["id"])
    # firmware: uploaded, changed, and another one deleted
    data = b"webhook image " * 300
    fw = upload_fw(admin, catalog, "2.0.0", data=data)
    assert admin.patch("/api/v1/firmware/" + fw["id"], json={"description": "d"}).status_code \
        == 200
    gone = upload_fw(admin, catalog, "0.5.0")
    assert admin.delete("/api/v1/firmware/" + gone["id"]).status_code == 204
    # a session through its states, with progress, a whole download and a confirmation
    dp = procedure(admin, catalog, steps=[{"plugin": "link"}], confirm=True)
    s = new_session(admin, catalog, dp, "1.0.0", device_id=unique("dev"))
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "created")
    # half the image (session.delivered, once flushed), then the rest (session.downloaded)
    link = s["payload"]["download_link"]
    r = admin.get(link, headers={"Range": f"bytes=0-{len(data) // 2}"})
    assert r.status_code == 206
    rx.wait(lambda q: any(e["type"] == "session.delivered" for e in events_of(q)))
    r = admin.get(link)
    assert r.content == data
    assert admin.post(FU + s["id"] + "/confirm", json={"success": True}).status_code == 200
    reqs = rx.wait(lambda q: {e["type"] for e in events_of(q)} >= set(types) and any(
        e["type"] == "session.state" and e["data"]["state"] == "success" for e in events_of(q)),
        timeout=30)
    for req in reqs:
        assert req.method == "POST" and req.headers["content-type"] == "application/json"
        assert verify(w["secret"], req), req.headers
        assert abs(int(req.headers["webhook-timestamp"]) - time.time()) < 120
        ev = req.json()
        assert set(ev) == {"type", "time", "data"}, ev
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$", ev["time"]), ev
    evs = events_of(reqs)
    created = [e for e in evs if e["type"] == "object.created" and e["data"]["id"] == p["id"]]
    assert created and created[0]["data"]["kind"] == "product"
    assert created[0]["data"]["object"]["tid"] == p["tid"]
    deleted = [e for e in evs if e["type"] == "object.deleted" and e["data"]["id"] == p["id"]]
    assert deleted and deleted[0]["data"]["object"]["name"] == "P2"
    fws = [e["data"]["id"] for e in evs if e["type"] == "firmware.created"]
    assert fw["id"] in fws and gone["id"] in fws
    assert [e for e in evs if e["type"] == "firmware.deleted"][0]["data"]["id"] == gone["id"]
    states = [e["data"]["state"] for e in evs
              if e["type"] == "session.state" and e["data"]["id"] == s["id"]]
    assert states == ["queued", "processing", "created", "success"], states
    assert [e for e in evs if e["type"] == "session.created"][-1]["data"]["id"] == s["id"]
    down = [e for e in evs if e["type"] == "session.downloaded"]
    assert down[0]["data"]["id"] == s["id"] and down[0]["data"]["delivered"]["coverage"] == 1
    # the log agrees: every delivery is delivered after one attempt
    log = wait_log(admin, w, lambda got: got and all(d["status"] == "delivered" for d in got))
    assert len(log) == len({r.headers["webhook-id"] for r in reqs})
    assert all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in log)
    assert log[0]["create_time"] >= log[-1]["create_time"]  # newest first


def test_readme_receiver_verifies_real_deliveries(admin, tmp_path):
    """The receiver of README.md, "Webhooks", run as written against real deliveries."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme[readme.index("## Webhooks"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    script = tmp_path / "receiver.py"
    script.write_text(code)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    w = admin.create(WH, {"url": f"http://127.0.0.1:{port}/", "events": ["object.created"]})
    out = open(tmp_path / "out", "wb")
    proc = subprocess.Popen([sys.executable, str(script), "127.0.0.1", str(port)], stdout=out,
                            stderr=subprocess.STDOUT, env=dict(os.environ,
                                                               WEBHOOK_SECRET=w["secret"]))
    try:
        tids = [unique("rdm") for _ in range(3)]
        for t in tids:
            admin.create("/api/v1/products/", {"tid": t, "name": "R"})
        log = wait_log(admin, w, lambda got: len(got) == 3 and
                       all(d["status"] == "delivered" for d in got), timeout=30)
        assert all(d["last_status_code"] == 204 for d in log), log
        printed = (tmp_path / "out").read_text()
        for t in tids:
            assert t in printed, printed
        # it does check: a wrong signature and an old timestamp are refused
        body = b'{"type":"object.created","time":"x","data":{}}'
        ts = str(int(time.time()))
        for headers in ({"webhook-id": "m1", "webhook-timestamp": ts,
                         "webhook-signature": "v1,AAAA"},
                        {"webhook-id": "m1", "webhook-timestamp": str(int(time.time()) - 3600),
                         "webhook-signature": "v1," + base64.b64encode(hmac.new(
                             base64.b64decode(w["secret"][6:]),
                             f"m1.{int(time.time()) - 3600}.".encode() + body,
                             hashlib.sha256).digest()).decode()},
                        {"webhook-id": "m1"}):
            r = admin.s.post(f"http://127.0.0.1:{port}/", data=body, headers=headers,
                             timeout=10)
            assert r.status_code == 401, (headers, r.status_code)
    finally:
        proc.kill()
        proc.wait(10)
        out.close()


def test_500_three_times_then_200_same_id_four_times(admin, rx):
    rx.script("/flaky", [(500, b"no"), (500, b"no"), (500, b'{"e":"still no"}'),
                         (200, b"ok")])
    w = hook(admin, rx, "/flaky", events=["object.created"])
    t = unique("flaky")
    admin.create("/api/v1/products/", {"tid": t, "name": "F"})
    # and two more events behind it: they must wait for the first
    admin.create("/api/v1/products/", {"tid": t + "-2", "name": "F"})
    admin.create("/api/v1/products/", {"tid": t + "-3", "name": "F"})
    reqs = rx.wait(lambda q: len(q) >= 6, path="/flaky")
    ids = [r.headers["webhook-id"] for r in reqs]
    assert len(set(ids[:4])) == 1, ids
    assert [r.json()["data"]["object"]["tid"] for r in reqs] == [t] * 4 + [t + "-2", t + "-3"]
    assert all(verify(w["secret"], r) for r in reqs)
    # retried with growing delays (0.1 s base, doubling, jitter 0.8..1.2)
    gaps = [b.time - a.time for a, b in zip(reqs, reqs[1:4])]
    assert gaps[0] >= 0.07 and gaps[1] >= 0.15 and gaps[2] >= 0.3, gaps
    log = wait_log(admin, w, lambda got: len(got) == 3 and
                   all(d["status"] == "delivered" for d in got))
    first = [d for d in log if d["id"] == ids[0]][0]
    assert first["attempts"] == 4 and first["last_status_code"] == 200
    assert first["last_error"] is None and first["next_attempt_time"] is None


def test_failing_delivery_shows_why_then_failed(admin, server, rx):
    rx.script("/down", [(503, b'{"error": "maintenance"}')] * 50)
    s = Server(extra_args=FAST + ["--webhook-max-attempts", "3"])
    s.start()
    try:
        a = Client(s, ADMIN_TOKEN)
        w = a.create(WH, {"url": rx.url("/down"), "events": ["object.created"]})
        a.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
        log = wait_log(a, w, lambda got: got and got[0]["status"] == "failed")
        d = log[0]
        assert d["attempts"] == 3 and d["last_status_code"] == 503
        assert d["last_error"] == "HTTP 503" and "maintenance" in d["last_response"]
        assert d["next_attempt_time"] is None and d["done_time"]
        assert len(rx.received("/down")) == 3
        assert a.get(WH + w["id"] + "/deliveries/", params={"status": "failed"}).json()[
            "count"] == 1
        metrics = a.get("/metrics").text
        assert 'devicehub_webhook_deliveries{status="failed"} 1' in metrics
        assert 'devicehub_webhook_attempts_total{result="other_status"} 3' in metrics
        assert 'devicehub_webhook_outcomes_total{outcome="failed"} 1' in metrics
        # redelivery puts it back with the same id, now answered
        rx.scripts["/down"] = [(200, b"{}")]
        r = a.post(WH + w["id"] + "/deliveries/" + d["id"] + "/redeliver")
        assert r.status_code == 200 and r.json()["status"] in ("pending", "delivered")
        log = wait_log(a, w, lambda got: got[0]["status"] == "delivered")
        assert log[0]["attempts"] == 4 and log[0]["id"] == d["id"]
        reqs = rx.received("/down")
        assert len(reqs) == 4 and len({q.headers["webhook-id"] for q in reqs}) == 1
        assert 'devicehub_webhook_deliveries{status="delivered"} 1' in a.get("/metrics").text
    finally:
        s.cleanup()


def test_max_age_ends_in_failed(rx, tmp_path):
    s = Server(extra_args=FAST + ["--webhook-max-age", "1"])
    s.start()
    # a port where nothing listens: bound, and so kept from any other process, until the end
    sock = socket.socket()
    try:
        a = Client(s, ADMIN_TOKEN)
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
        w = a.create(WH, {"url": f"http://127.0.0.1:{dead}/x", "events": ["object.created"]})
        a.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
        log = wait_log(a, w, lambda got: got and got[0]["status"] == "failed")
        assert log[0]["attempts"] >= 2, log
        assert "cannot connect" in log[0]["last_error"], log
        assert log[0]["last_status_code"] is None
    finally:
        sock.close()
        s.cleanup()


def test_slow_receiver_does_not_delay_another(admin):
    slow, fast = Receiver().start(), Receiver().start()
    try:
        # the slow one outlasts the 10 s --webhook-timeout: held back by it, the fast
        # delivery would come 10 s late; on its own, well within 8 s on a loaded machine
        slow.script("/slow", [(200, b"{}", 20)])
        ws = hook(admin, slow, "/slow", events=["object.created"])
        wf = hook(admin, fast, "/fast", events=["object.created"])
        t0 = time.monotonic()
        p = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
        got = fast.wait(lambda q: any(r.json()["data"]["id"] == p["id"] for r in q),
                        path="/fast", timeout=9)
        assert got[-1].time - t0 < 8, got[-1].time - t0
        slow.wait(lambda q: len(q) == 1, path="/slow", timeout=5)  # there, waiting
        assert deliveries(admin, ws)[0]["status"] == "pending"
        # its answer is recorded a moment after the receiver saw the request
        wait_log(admin, wf, lambda got: got[0]["status"] == "delivered", timeout=5)
    finally:
        slow.stop()
        fast.stop()


def test_scope_opt_in_and_inactive(admin, catalog, rx):
    p, m = catalog["product"], catalog["model"]
    scoped = hook(admin, rx, "/scoped", model=m["id"])
    everything = hook(admin, rx, "/all")
    progress = hook(admin, rx, "/progress", events=["session.progress"])
    off = hook(admin, rx, "/off", active=False)
    other = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "Other"})
    upload_fw(admin, catalog, "3.0.0")
    dp = procedure(admin, catalog, steps=[{"plugin": "link"}], confirm=False)
    s = new_session(admin, catalog, dp, "1.0.0")
    admin.post(FU + s["id"] + "/start")
    wait_state(admin, s["id"], "success")
    rx.wait(lambda q: any(e["type"] == "session.state" and e["data"]["state"] == "success"
                          for e in events_of(q)), path="/scoped")
    rx.wait(lambda q: any(e["type"] == "session.progress" for e in events_of(q)),
            path="/progress")
    rx.wait(lambda q: any(e["type"] == "session.state" and e["data"]["state"] == "success"
                          for e in events_of(q)), path="/all")
    scoped_types = {e["type"] for e in events_of(rx.received("/scoped"))}
    assert "session.progress" not in scoped_types and "session.state" in scoped_types
    # the other product's creation is not in the model's scope, but the unscoped one has it
    assert not any(e["data"].get("id") == other["id"]
                   for e in events_of(rx.received("/scoped")))
    assert any(e["type"] == "object.created" and e["data"]["id"] == other["id"]
               for e in events_of(rx.received("/all")))
    assert {e["type"] for e in events_of(rx.received("/progress"))} == {"session.progress"}
    assert rx.received("/off") == [] and deliveries(admin, off) == []
    assert scoped["product"] == p["id"] and everything["model"] is None
    assert progress["events"] == ["session.progress"]


def test_rolled_back_change_sends_nothing(admin, rx):
    w = hook(admin, rx, "/rb", events=["object.created"])
    p = admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
    rx.wait(lambda q: len(q) == 1, path="/rb")
    assert_error(admin.post("/api/v1/products/", json={"tid": p["tid"], "name": "again"}), 409)
    admin.create("/api/v1/products/", {"tid": unique("p"), "name": "marker"})
    reqs = rx.wait(lambda q: len(q) == 2, path="/rb")
    assert reqs[1].json()["data"]["object"]["name"] == "marker"
    assert len(deliveries(admin, w)) == 2


# A deferred foreign key that no row satisfies, set off by a trigger on the outbox: the
# transaction writes its delivery row, goes on, and fails at COMMIT, after everything.
POISON_SQLITE = [
    "CREATE TABLE test_never (id TEXT PRIMARY KEY)",
    "CREATE TABLE test_poison (ref TEXT REFERENCES test_never(id)"
    " DEFERRABLE INITIALLY DEFERRED)",
    "CREATE TRIGGER test_poison_outbox AFTER INSERT ON webhook_deliveries"
    " WHEN NEW.body LIKE '%poison-at-commit%'"
    " BEGIN INSERT INTO test_poison VALUES ('nothing'); END",
]
POISON_PG = [
    "CREATE TABLE test_never (id text PRIMARY KEY)",
    "CREATE TABLE test_poison (ref text REFERENCES test_never(id)"
    " DEFERRABLE INITIALLY DEFERRED)",
    "CREATE FUNCTION test_poison_fn() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN INSERT INTO test_poison VALUES ('nothing'); RETURN NULL; END $$",
    "CREATE TRIGGER test_poison_outbox AFTER INSERT ON webhook_deliveries FOR EACH ROW"
    " WHEN (NEW.body LIKE '%poison-at-commit%') EXECUTE FUNCTION test_poison_fn()",
]


def test_change_rolled_back_after_its_outbox_row_sends_nothing(admin, server, rx):
    """The outbox row is written and the transaction fails afterwards, at COMMIT: the
    change and its delivery go together, and nothing is sent."""
    w = hook(admin, rx, "/rbc", events=["object.created"])
    for sql in POISON_PG if server.engine == "pg" else POISON_SQLITE:
        server.db_exec(sql)
    try:
        tid = unique("poison")
        r = admin.post("/api/v1/products/", json={"tid": tid, "name": "poison-at-commit"})
        assert r.status_code >= 400 and "code" in r.json(), (r.status_code, r.text)
        assert admin.get("/api/v1/products/" + tid).status_code == 404
        assert server.db_rows("SELECT count(*) FROM webhook_deliveries"
                              " WHERE body LIKE '%poison-at-commit%'") == [["0"]]
        admin.create("/api/v1/products/", {"tid": unique("p"), "name": "marker"})
        reqs = rx.wait(lambda q: len(q) >= 1, path="/rbc")
        time.sleep(0.5)  # a late delivery of the poisoned change would arrive by now
        reqs = rx.received("/rbc")
        assert [q.json()["data"]["object"]["name"] for q in reqs] == ["marker"]
        assert len(deliveries(admin, w)) == 1
    finally:
        for sql in ("DROP TRIGGER test_poison_outbox" + (" ON webhook_deliveries"
                                                         if server.engine == "pg" else ""),
                    "DROP TABLE test_poison", "DROP TABLE test_never"):
            server.db_exec(sql)


def wait_overlap(rx, path, want, timeout=20.0):
    """The most requests to path (None: any) the receiver held at once (arrival to answer),
    once want of them have been answered."""
    reqs = rx.wait(lambda q: sum(1 for r in q if r.answered) >= want, path=path,
                   timeout=timeout)
    edges = sorted([(r.time, 1) for r in reqs] + [(r.answered, -1) for r in reqs
                                                    if r.answered])
    most = now = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    return most


def test_webhook_concurrency_bounds_all_endpoints_together(rx):
    """--webhook-concurrency 3: four endpoints with three events each, every answer taking
    0.6 s: at most three requests are ever open at the receiver, and three are."""
    s = Server(extra_args=FAST + ["--webhook-concurrency", "3"]).start()
    try:
        a = Client(s, ADMIN_TOKEN)
        paths = [f"/c{i}" for i in range(4)]
        for p in paths:
            rx.script(p, [(200, b"{}", 0.6)] * 3)
            a.create(WH, {"url": rx.url(p), "events": ["object.created"]})
        for _ in range(3):
            a.create("/api/v1/products/", {"tid": unique("p"), "name": "C"})
        assert wait_overlap(rx, None, 12, timeout=30) == 3
        # each endpoint kept its default of one at a time
        for p in paths:
            assert wait_overlap(rx, p, 3) == 1, p
    finally:
        s.cleanup()


def test_webhook_endpoint_concurrency_above_one(rx):
    """--webhook-endpoint-concurrency 3: one endpoint gets up to three requests at once,
    never more."""
    s = Server(extra_args=FAST + ["--webhook-endpoint-concurrency", "3"]).start()
    try:
        a = Client(s, ADMIN_TOKEN)
        # the first three answers take 2 s: the first three events are made meanwhile, however
        # slowly a loaded machine makes them, and so are in flight together
        rx.script("/par", [(200, b"{}", 2.0)] * 3 + [(200, b"{}", 0.6)] * 4)
        w = a.create(WH, {"url": rx.url("/par"), "events": ["object.created"]})
        for _ in range(7):
            a.create("/api/v1/products/", {"tid": unique("p"), "name": "E"})
        assert wait_overlap(rx, "/par", 7, timeout=30) == 3
        wait_log(a, w, lambda got: len(got) == 7 and all(d["status"] == "delivered"
                                                         for d in got))
    finally:
        s.cleanup()


def test_connect_timeout_for_a_receiver_that_never_accepts(rx):
    """A listening socket whose backlog is full drops new connections' SYNs: the connect
    hangs. --webhook-connect-timeout 1 ends each attempt after about a second, although
    --webhook-timeout allows 30, and says so."""
    lsn = socket.socket()
    filler = socket.socket()
    s = None
    try:
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(0)
        filler.connect(lsn.getsockname())  # the one connection the backlog takes
        port = lsn.getsockname()[1]
        s = Server(extra_args=FAST + ["--webhook-connect-timeout", "1", "--webhook-timeout",
                                      "30", "--webhook-max-attempts", "2"]).start()
        a = Client(s, ADMIN_TOKEN)
        w = a.create(WH, {"url": f"http://127.0.0.1:{port}/never", "events": [
            "object.created"]})
        t0 = time.monotonic()
        a.create("/api/v1/products/", {"tid": unique("p"), "name": "N"})
        log = wait_log(a, w, lambda got: got and got[0]["status"] == "failed", timeout=20)
        took = time.monotonic() - t0
        assert log[0]["attempts"] == 2 and log[0]["last_status_code"] is None, log
        assert log[0]["last_error"] == "cannot connect within 1000 ms", log
        # two attempts of about one second each, far below one --webhook-timeout
        assert took < 15, took
        assert 'devicehub_webhook_attempts_total{result="timeout"} 2' in a.get("/metrics").text
    finally:
        filler.close()
        lsn.close()
        if s:
            s.cleanup()


def test_kill9_with_50_undelivered_then_all_arrive(tmp_path):
    # the receiver's port, bound (so no other process takes it) and closed to connections
    # until the receiver listens on it after the crash
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    s = Server(data_dir=str(tmp_path / "var"), extra_args=FAST)
    s.start()
    rx = None
    try:
        a = Client(s, ADMIN_TOKEN)
        w = a.create(WH, {"url": f"http://127.0.0.1:{port}/k", "events": ["object.created"]})
        tids = [unique("k9") for _ in range(50)]
        for t in tids:
            a.create("/api/v1/products/", {"tid": t, "name": "K"})
        # the first has been tried and failed: the sender is at work
        wait_log(a, w, lambda got: any(d["attempts"] >= 1 for d in got))
        assert all(d["status"] == "pending" for d in deliveries(a, w))
        s.kill9()
        rx = Receiver().start(sock=sock)
        s.start()
        reqs = rx.wait(lambda q: {r.json()["data"]["object"]["tid"] for r in q} >= set(tids),
                       path="/k", timeout=60)
        order = []
        for r in reqs:
            t = r.json()["data"]["object"]["tid"]
            if t not in order:
                order.append(t)
        assert order == tids  # event order, across the crash
        assert all(verify(w["secret"], r) for r in reqs)
        a = Client(s, ADMIN_TOKEN)
        wait_log(a, w, lambda got: len(got) == 50 and all(d["status"] == "delivered"
                                                          for d in got))
    finally:
        if rx:
            rx.stop()
        else:
            sock.close()
        s.cleanup()


def loopback_name():
    name = socket.gethostname()
    try:
        addr = socket.getaddrinfo(name, 80, proto=socket.IPPROTO_TCP)[0][4][0]
    except OSError:
        return None
    ip = ipaddress.ip_address(addr)
    return name if (ip.is_loopback or ip.is_private) and "." not in name else None


def test_private_address_refused_at_connect_time(rx, tmp_path):
    s = Server(data_dir=str(tmp_path / "var"), extra_args=FAST)
    s.start()
    try:
        a = Client(s, ADMIN_TOKEN)
        w = a.create(WH, {"url": rx.url("/priv"), "events": ["object.created"]})
        s.stop()
        s.extra_args = [x for x in FAST if x != "--webhook-allow-private"] + [
            "--webhook-max-attempts", "2"]
        s.start()
        a = Client(s, ADMIN_TOKEN)
        name = loopback_name()
        byname = a.create(WH, {"url": rx.url("/byname", host=name),
                               "events": ["object.created"]}) if name else None
        a.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
        for hk in [w] + ([byname] if byname else []):
            log = wait_log(a, hk, lambda got: got and got[0]["status"] == "failed")
            assert "refused to connect to 127.0.0.1" in log[0]["last_error"], log
            assert "loopback" in log[0]["last_error"]
        assert rx.received() == []
        assert "devicehub_webhook_attempts_total{result=\"refused\"}" in a.get("/metrics").text
    finally:
        s.cleanup()


def test_tls_verified_by_default_and_with_webhook_ca(admin, tmp_path):
    cert, key = self_signed_cert(str(tmp_path))
    rx = Receiver().start(tls=(cert, key))
    s = None
    try:
        w = admin.create(WH, {"url": rx.url("/tls"), "events": ["object.created"]})
        admin.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
        log = wait_log(admin, w, lambda got: got and got[0]["attempts"] >= 1)
        assert log[0]["status"] == "pending" and "TLS failed" in log[0]["last_error"], log
        assert rx.received() == []
        admin.delete(WH + w["id"])
        s = Server(extra_args=FAST + ["--webhook-ca", cert]).start()
        a = Client(s, ADMIN_TOKEN)
        w = a.create(WH, {"url": rx.url("/tls"), "events": ["object.created"]})
        a.create("/api/v1/products/", {"tid": unique("p"), "name": "P"})
        log = wait_log(a, w, lambda got: got and got[0]["status"] == "delivered")
        assert verify(w["secret"], rx.received("/tls")[0])
    finally:
        rx.stop()
        if s:
            s.cleanup()
