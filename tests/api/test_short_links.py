"""Short links (API.md, "Short links"): payload.short_link is <public url>/d/<token>, at most
80 characters for a typical host, its own credential; downloads through it behave exactly
like the authenticated download link (Range, If-Range, ETag, HEAD, 416), curl fetches and
resumes one; in any state but processing/created it answers 404 byte for byte like a token
that never existed; only the token's hash is stored, and links survive a restart."""
import hashlib
import json
import os
import re
import subprocess
import tempfile
from urllib.parse import urlsplit

import pytest

from conftest import ADMIN_TOKEN, BIN, Client, Server, unique
from sessutil import FAST_ARGS, FU, new_session, procedure, upload_fw, wait_state

PUBLIC = "http://device-hub.example:8080"
SIZE = 300 * 1024
# Headers that differ between any two answers, whatever they answer.
VOLATILE = {"x-request-id", "date"}


@pytest.fixture(scope="module")
def server(engine):
    s = Server(extra_args=FAST_ARGS + ["--public-url", PUBLIC]).start()
    yield s
    s.cleanup()


@pytest.fixture
def linked(server, admin, catalog):
    """A created session with the link step: its data, id, and both links on this server."""
    data = os.urandom(SIZE)
    upload_fw(admin, catalog, "2.0.0", data=data)
    dp = procedure(admin, catalog, steps=[{"plugin": "link"}], confirm=True)
    s = new_session(admin, catalog, dp, device_id=unique("dev"))
    assert admin.post(FU + s["id"] + "/start").status_code == 200
    s = wait_state(admin, s["id"], "created")
    p = s["payload"]
    return {"data": data, "id": s["id"], "short": p["short_link"],
            "here": server.url + urlsplit(p["short_link"]).path,
            "long": server.url + urlsplit(p["download_link"]).path}


def head_set(r):
    return {k.lower(): v for k, v in r.headers.items() if k.lower() not in VOLATILE}


def test_the_link_is_short_opaque_and_under_the_public_url(linked):
    short = linked["short"]
    assert len(short) <= 80, short
    m = re.fullmatch(re.escape(PUBLIC) + r"/d/([A-Za-z0-9_-]+)", short)
    assert m, short
    # at least 96 random bits: 16 base64url characters; ours carry 128 (22 characters)
    assert len(m.group(1)) >= 22
    assert linked["id"] not in short


def test_no_token_needed_and_same_answers_as_the_download_link(server, admin, anon, linked):
    data, etag = linked["data"], None
    cases = [
        {},
        {"Range": "bytes=0-99"},
        {"Range": "bytes=1000-"},
        {"Range": "bytes=-500"},
        {"Range": f"bytes={SIZE}-"},
        {"Range": "bytes=0-1,5-6"},
        {"Range": "bytes=x"},
    ]
    for h in cases:
        for method in ("GET", "HEAD"):
            a = admin.request(method, linked["long"], headers=h)
            b = anon.request(method, linked["here"], headers=h)
            assert (a.status_code, a.content) == (b.status_code, b.content), (method, h)
            assert head_set(a) == head_set(b), (method, h)
        etag = etag or b.headers.get("ETag")
    whole = anon.get(linked["here"])
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["ETag"] == etag == '"' + hashlib.sha256(data).hexdigest() + '"'
    assert anon.get(linked["here"], headers={"Range": "bytes=0-9"}).content == data[:10]
    assert anon.get(linked["here"], headers={"Range": f"bytes={SIZE}-"}).status_code == 416
    # If-Range: the ETag keeps the range, another one gets the whole image
    r = anon.get(linked["here"], headers={"Range": "bytes=5-9", "If-Range": etag})
    assert r.status_code == 206 and r.content == data[5:10]
    r = anon.get(linked["here"], headers={"Range": "bytes=5-9", "If-Range": '"other"'})
    assert r.status_code == 200 and len(r.content) == SIZE
    # a token header, even a bad one, changes nothing
    r = Client(server, "not-a-token").get(linked["here"], headers={"Range": "bytes=0-0"})
    assert r.status_code == 206


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "30"] + list(args),
                          capture_output=True, timeout=60)


def test_curl_downloads_and_resumes(linked):
    data = linked["data"]
    with tempfile.TemporaryDirectory() as d:
        whole = os.path.join(d, "whole.bin")
        r = curl("-f", "-o", whole, linked["here"])
        assert r.returncode == 0, r.stderr
        with open(whole, "rb") as f:
            assert hashlib.sha256(f.read()).digest() == hashlib.sha256(data).digest()
        # an interrupted download: the first 123 457 bytes, then `curl -C -` goes on
        part = os.path.join(d, "part.bin")
        with open(part, "wb") as f:
            f.write(data[:123457])
        r = curl("-f", "-C", "-", "-o", part, "-D", os.path.join(d, "head"), linked["here"])
        assert r.returncode == 0, r.stderr
        with open(os.path.join(d, "head")) as f:
            assert f.readline().split()[1] == "206"
        with open(part, "rb") as f:
            assert f.read() == data


def test_404_after_confirm_exactly_like_an_unknown_token(server, admin, anon, linked):
    unknown = server.url + "/d/" + "A" * 22
    before = anon.get(unknown)
    assert before.status_code == 404
    assert before.json() == {"code": "not_found", "detail": "No such link."}
    assert anon.get(linked["here"], headers={"Range": "bytes=0-0"}).status_code == 206
    r = admin.post(FU + linked["id"] + "/confirm", json={"success": True})
    assert r.status_code == 200 and r.json()["state"] == "success"
    for method, h in (("GET", {}), ("GET", {"Range": "bytes=0-0"}), ("HEAD", {})):
        gone = anon.request(method, linked["here"], headers=h)
        never = anon.request(method, unknown, headers=h)
        assert gone.status_code == never.status_code == 404
        assert gone.content == never.content
        assert head_set(gone) == head_set(never)
    # the authenticated link still works in success (API.md, Downloads)
    assert admin.get(linked["long"], headers={"Range": "bytes=0-0"}).status_code == 206
    # other odd tokens: the same 404
    for tok in ("x", "A" * 200, "%41" * 22, linked["short"].rsplit("/", 1)[1] + "A"):
        r = anon.get(server.url + "/d/" + tok)
        assert r.status_code == 404 and r.content == before.content


def test_wrong_method_is_405(anon, linked):
    r = anon.post(linked["here"])
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"


def test_a_failed_or_expired_session_closes_its_link(server, admin, anon, catalog):
    upload_fw(admin, catalog, "2.0.0", data=os.urandom(1000))
    # 3 s: the link is tried before the session times out, also on a loaded machine
    dp = procedure(admin, catalog, steps=[{"plugin": "link"}], confirm=True, confirm_timeout=3)
    s = new_session(admin, catalog, dp, device_id=unique("dev"))
    admin.post(FU + s["id"] + "/start")
    s = wait_state(admin, s["id"], "created")
    here = server.url + urlsplit(s["payload"]["short_link"]).path
    assert anon.get(here).status_code == 200
    wait_state(admin, s["id"], "unconfirmed")
    assert anon.get(here).status_code == 404


def test_only_the_hash_is_stored_and_links_survive_a_restart():
    srv = Server(extra_args=FAST_ARGS).start()
    try:
        admin = Client(srv, ADMIN_TOKEN)
        from test_delivered import make_catalog
        cat = make_catalog(admin)
        data = os.urandom(5000)
        upload_fw(admin, cat, "2.0.0", data=data)
        dp = procedure(admin, cat, steps=[{"plugin": "link"}], confirm=True)
        ids = []
        for _ in range(2):
            s = new_session(admin, cat, dp, device_id=unique("dev"))
            admin.post(FU + s["id"] + "/start")
            ids.append(wait_state(admin, s["id"], "created"))
        tokens = [urlsplit(s["payload"]["short_link"]).path.rsplit("/", 1)[1] for s in ids]
        assert tokens[0] != tokens[1]
        # one finished, one still created, then an orderly restart and a crash
        admin.post(FU + ids[0]["id"] + "/confirm", json={"success": False})
        srv.stop()
        stored = b""
        for root, _, files in os.walk(srv.data_dir):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    stored += fh.read()
        if srv.engine == "pg":  # the database is not in the data dir
            stored += repr(srv.db_rows("SELECT * FROM sessions")).encode()
        for t in tokens:
            assert t.encode() not in stored
            assert hashlib.sha256(t.encode()).hexdigest().encode() in stored
        for restart in (srv.start, lambda: (srv.kill9(), srv.start())):
            restart()
            anon = Client(srv, None)
            assert anon.get(f"{srv.url}/d/{tokens[0]}").status_code == 404
            r = anon.get(f"{srv.url}/d/{tokens[1]}")
            assert r.status_code == 200 and r.content == data
    finally:
        srv.cleanup()


def test_short_link_downloads_count_as_delivered(admin, anon, linked):
    assert anon.get(linked["here"], headers={"Range": "bytes=0-999"}).status_code == 206
    from sessutil import wait_for
    s = wait_for(admin, linked["id"], lambda s: s["delivered"]["bytes_sent"] == 1000)
    assert s["delivered"]["coverage"] == pytest.approx(1000 / SIZE)


def test_valid_while_processing_and_a_new_run_gets_a_new_link():
    """The link works while later steps run; the server dies; the session runs again with a
    new link and the old one is gone. The progress event carries the whole link."""
    # a lease of 3 s, not 10: the next start takes the killed run's session up sooner
    srv = Server(extra_args=FAST_ARGS + ["--lease-ms", "3000"]).start()
    try:
        admin = Client(srv, ADMIN_TOKEN)
        from test_delivered import make_catalog
        from test_events import Sse, is_for
        cat = make_catalog(admin)
        data = os.urandom(3000)
        upload_fw(admin, cat, "2.0.0", data=data)
        dp = procedure(admin, cat, confirm=True, processing_timeout=60,
                       steps=[{"plugin": "link"},
                              {"plugin": "exec", "params": {"program": "/bin/sleep",
                                                            "args": ["10"]}}])
        s = new_session(admin, cat, dp, device_id=unique("dev"))
        sse = Sse(srv, query="?last_event_id=0")
        try:
            admin.post(FU + s["id"] + "/start")
            from sessutil import wait_for
            s1 = wait_for(admin, s["id"], lambda x: "short_link" in x["payload"])
            assert s1["state"] == "processing"
            ev = sse.next_event(lambda e: is_for(s["id"])(e) and e["event"] == "session.progress"
                                and "short_link" in e["data"]["payload"])
            assert ev["data"]["payload"]["short_link"] == s1["payload"]["short_link"]
        finally:
            sse.close()
        old = urlsplit(s1["payload"]["short_link"]).path
        r = Client(srv, None).get(srv.url + old)
        assert r.status_code == 200 and r.content == data
        srv.kill9()
        srv.start()
        s2 = wait_for(admin, s["id"], lambda x: x["attempts"] == 2 and "short_link" in x["payload"])
        new = urlsplit(s2["payload"]["short_link"]).path
        assert new != old
        anon = Client(srv, None)
        assert anon.get(srv.url + old).status_code == 404
        assert anon.get(srv.url + new).content == data
    finally:
        srv.cleanup()


def test_the_log_never_shows_a_short_link_token(linked):
    """A short link is a credential: even the debug log shows its route, not its token."""
    s = Server(extra_args=["--log-level", "debug"]).start()
    try:
        r = Client(s).get("/d/AbCdEfGhIjKlMnOpQrStUvWx")
        assert r.status_code == 404
        r = Client(s).request("POST", "/d/AbCdEfGhIjKlMnOpQrStUvWx")
        assert r.status_code == 405
        log = s.read_log()
        assert "AbCdEfGhIjKlMnOpQrStUvWx" not in log
        assert log.count("path=\"(a path that holds a credential)\"") == 2, log[-2000:]
    finally:
        s.cleanup()


def test_the_log_never_shows_a_short_link_token_answered_before_routing():
    """The requests answered before a route is chosen (a bad target, body framing or header
    line, a path under /d/ that no route takes) do not log a short link's token either."""
    import rawhttp
    s = Server(extra_args=["--log-level", "debug"]).start()
    tok = "AbCdEfGhIjKlMnOpQrStUvWx"
    cases = [
        (f"GET /d/{tok}?x=%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (f"GET /d/{tok}%01 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (f"GET /d/{tok} HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
         400),
        (f"GET /d/{tok} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (f"GET /d/{tok} HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
        (f"GET /d/{tok} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (f"GET /d/{tok}/x HTTP/1.1\r\nHost: a\r\n\r\n", 404),
        (f"GET //d/{tok} HTTP/1.1\r\nHost: a\r\n\r\n", 404),
    ]
    try:
        for raw, status in cases:
            r = rawhttp.one_answer(s.port, raw.encode())
            assert r.status == status, (raw, r)
        log = s.read_log()
        assert tok not in log, log[-3000:]
        assert log.count("path=\"(a path that holds a credential)\"") == len(cases), log[-3000:]
    finally:
        s.cleanup()


def stored_text(srv):
    """Every row of every table of srv's database, as text (the engine's own rendering)."""
    if srv.engine == "pg":
        tables = [r[0] for r in srv.db_rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_type = 'BASE TABLE'")]
        return "\n".join(repr(srv.db_rows(f'SELECT t::text FROM "{t}" t')) for t in tables)
    tables = [r[0] for r in srv.db_rows("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return "\n".join(repr(srv.db_rows(f'SELECT * FROM "{t}"')) for t in tables)


def test_events_store_no_token_and_readers_get_the_live_link(tmp_path):
    """A short link is a credential: the events table (PostgreSQL), the webhook outbox and its
    delivery log, and a backup hold its prefix only. The token is added when an event goes
    out: the event stream and a webhook get the working link while it serves, signed over
    the body sent; once the session is done, a redelivery and a replay of the stream show
    null, as the session does."""
    from test_events import Sse, is_for
    from test_webhook_delivery import FAST, verify
    from receiver import Receiver
    from sessutil import wait_for
    from test_delivered import make_catalog
    srv = Server(extra_args=FAST).start()
    rx = Receiver().start()
    sse = None
    try:
        admin, anon = Client(srv, ADMIN_TOKEN), Client(srv, None)
        cat = make_catalog(admin)
        w = admin.create("/api/v1/webhooks/", {"url": rx.url("/hook"),
                                               "events": ["session.progress"]})
        data = os.urandom(4000)
        upload_fw(admin, cat, "2.0.0", data=data)
        dp = procedure(admin, cat, steps=[{"plugin": "link"}], confirm=True)
        s = new_session(admin, cat, dp, device_id=unique("dev"))
        sse = Sse(srv, query="?last_event_id=0")
        admin.post(FU + s["id"] + "/start")
        s = wait_state(admin, s["id"], "created")
        short = s["payload"]["short_link"]
        token = short.rsplit("/d/", 1)[1]
        assert len(token) == 22 and short.startswith(srv.url + "/d/")

        def with_link(req):
            return "short_link" in req.json()["data"]["payload"]

        # the readers: the whole link, working, while the session is created
        sent = rx.wait(lambda q: any(with_link(r) for r in q))
        first = [r for r in sent if with_link(r)][0]
        assert verify(w["secret"], first)
        ev = first.json()["data"]
        assert ev["id"] == s["id"] and ev["attempts"] == 1
        assert ev["payload"]["short_link"] == short
        got = anon.get(srv.url + urlsplit(ev["payload"]["short_link"]).path)
        assert got.status_code == 200 and got.content == data
        live = sse.next_event(lambda e: is_for(s["id"])(e) and e["event"] == "session.progress"
                              and "short_link" in e["data"]["payload"])
        assert live and live["data"]["payload"]["short_link"] == short
        sse.close()
        sse = None

        # nothing stored holds the token: every table (events, outbox and its log, sessions)
        text = stored_text(srv)
        assert srv.url + "/d/" in text  # the prefix is there
        assert token not in text
        if srv.engine == "sqlite":
            for root, _, files in os.walk(srv.data_dir):
                for f in files:
                    with open(os.path.join(root, f), "rb") as fh:
                        assert token.encode() not in fh.read(), f
            archive = tmp_path / "b.tar"
            r = subprocess.run([BIN, "backup", "--data-dir", srv.data_dir, "--to",
                                str(archive)], capture_output=True, timeout=120)
            assert r.returncode == 0, r.stderr
            backup = archive.read_bytes()
            assert b"/d/" in backup and token.encode() not in backup

        # done: the session shows null, a redelivery sends null, signed over what it sends
        assert admin.post(FU + s["id"] + "/confirm", json={"success": True}).status_code == 200
        done = wait_for(admin, s["id"], lambda x: x["state"] == "success")
        assert done["payload"]["short_link"] is None
        assert anon.get(srv.url + "/d/" + token).status_code == 404
        n = len(rx.received())
        r = admin.post(f"/api/v1/webhooks/{w['id']}/deliveries/"
                       f"{first.headers['webhook-id']}/redeliver")
        assert r.status_code == 200, r.text
        again = rx.wait(lambda q: len(q) > n)[n]
        assert again.headers["webhook-id"] == first.headers["webhook-id"]
        assert verify(w["secret"], again)
        assert again.json()["data"]["payload"]["short_link"] is None
        assert token not in stored_text(srv)
        # a reader who replays the stream now gets null too
        sse = Sse(srv, query="?last_event_id=0")
        old = sse.next_event(lambda e: is_for(s["id"])(e) and e["event"] == "session.progress"
                             and "short_link" in e["data"]["payload"])
        assert old and old["data"]["payload"]["short_link"] is None
    finally:
        if sse:
            sse.close()
        rx.stop()
        srv.cleanup()


def test_a_receiver_that_echoes_the_link_leaves_no_token_in_the_delivery_log():
    """The delivery log keeps an excerpt of each answer: a receiver that echoes the link it
    got shows it there with the token as stars."""
    from test_webhook_delivery import FAST
    from receiver import Receiver
    from test_delivered import make_catalog
    srv = Server(extra_args=FAST).start()
    rx = Receiver(default=(200, lambda req: json.dumps(
        {"got": req.json()["data"]["payload"].get("short_link")}).encode())).start()
    try:
        admin = Client(srv, ADMIN_TOKEN)
        cat = make_catalog(admin)
        w = admin.create("/api/v1/webhooks/", {"url": rx.url("/hook"),
                                               "events": ["session.progress"]})
        upload_fw(admin, cat, "2.0.0", data=os.urandom(1000))
        dp = procedure(admin, cat, steps=[{"plugin": "link"}], confirm=True)
        s = new_session(admin, cat, dp, device_id=unique("dev"))
        admin.post(FU + s["id"] + "/start")
        s = wait_state(admin, s["id"], "created")
        short = s["payload"]["short_link"]
        token = short.rsplit("/d/", 1)[1]
        got = rx.wait(lambda q: any(r.json()["data"]["payload"].get("short_link") == short
                                    for r in q))
        wid = [r for r in got if r.json()["data"]["payload"].get("short_link")][0].headers[
            "webhook-id"]
        from test_webhook_delivery import wait_log
        log = wait_log(admin, w, lambda got: any(d["id"] == wid and d["last_response"]
                                                 for d in got))
        d = [d for d in log if d["id"] == wid][0]
        assert json.loads(d["last_response"]) == {"got": short.replace(token, "*" * 22)}
        assert token not in stored_text(srv)
    finally:
        rx.stop()
        srv.cleanup()
