"""GET /api/v1/events: Server-Sent Events of session changes, filtered by access rights;
heartbeats, Last-Event-ID replay, the subscriber limit (503 + Retry-After), parked
subscribers that leave the HTTP pool free, and a shutdown that does not hang."""
import json
import os
import socket
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import ADMIN_TOKEN, Client, Server, assert_error, make_user, unique

EV = "/api/v1/events"


class Sse:
    """A raw-socket SSE reader (chunked HTTP/1.1), so every byte and timeout is ours."""

    def __init__(self, server, token=ADMIN_TOKEN, query="", headers=None, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        lines = [f"GET {EV}{query} HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
                 "Accept: text/event-stream"]
        if token:
            lines.append(f"Authorization: Token {token}")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""
        head = self._until(b"\r\n\r\n", time.monotonic() + timeout)
        status_line, *hdrs = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for h in hdrs:
            k, _, v = h.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.text = ""  # de-chunked body read so far, not yet parsed into events

    def _fill(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("stream closed")
        self.raw += data

    def _until(self, sep, deadline):
        while sep not in self.raw:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {sep!r} in {self.raw[:200]!r}")
            self._fill(deadline)
        out, self.raw = self.raw.split(sep, 1)
        return out

    def body_json(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        n = int(self._until(b"\r\n", deadline), 16) if "chunked" in self.headers.get(
            "transfer-encoding", "") else int(self.headers["content-length"])
        while len(self.raw) < n:
            self._fill(deadline)
        return json.loads(self.raw[:n])

    def _read_chunk(self, deadline):
        size = int(self._until(b"\r\n", deadline).split(b";")[0], 16)
        if size == 0:
            raise EOFError("stream ended")
        while len(self.raw) < size + 2:
            self._fill(deadline)
        self.text += self.raw[:size].decode()
        self.raw = self.raw[size + 2:]

    def blocks(self, timeout=5.0):
        """Yields each SSE block (text between blank lines) until timeout."""
        deadline = time.monotonic() + timeout
        while True:
            while "\n\n" in self.text:
                block, self.text = self.text.split("\n\n", 1)
                yield block
            if time.monotonic() >= deadline:
                return
            try:
                self._read_chunk(deadline)
            except (TimeoutError, socket.timeout):
                return

    def next_event(self, pred=lambda e: True, timeout=5.0):
        """The first event (dict of id, event, data) matching pred, or None at timeout."""
        for block in self.blocks(timeout):
            ev = parse_block(block)
            if "event" in ev and pred(ev):
                return ev
        return None

    def close(self):
        self.sock.close()


def parse_block(block):
    ev = {"comments": []}
    for line in block.split("\n"):
        if line.startswith(":"):
            ev["comments"].append(line[1:].strip())
            continue
        k, _, v = line.partition(":")
        ev[k] = v[1:] if v.startswith(" ") else v
    if "data" in ev and ev.get("event", "").startswith("session."):
        ev["data"] = json.loads(ev["data"])
    return ev


def request_session(client, cat, device=None, version="1.0.0"):
    r = client.post("/api/v1/firmware-update/request", json={
        "model": cat["model"]["tid"], "device_id": device or unique("dev"),
        "delivery_method": cat["method"]["tid"],
        "delivery_procedure_tid": cat["procedure"]["tid"],
        "current_channel": cat["channel"]["tid"], "current_firmware_version": version})
    assert r.status_code == 201, r.text
    return r.json()


def upload_fw(admin, cat, version="2.0.0"):
    parts = [("model", (None, cat["model"]["tid"])), ("version", (None, version)),
             ("channels", (None, cat["channel"]["tid"])),
             ("file", ("app.bin", b"\x01" * 1000, "application/octet-stream"))]
    r = admin.request("POST", "/api/v1/firmware/", files=parts)
    assert r.status_code == 201, r.text
    return r.json()


def is_for(sid):
    return lambda e: isinstance(e.get("data"), dict) and e["data"].get("id") == sid


def test_needs_a_token_and_the_update_right(server, admin, anon, catalog):
    assert_error(anon.get(EV), 401, "unauthorized")
    _, tok = make_user(admin, ["upload"])
    assert_error(Client(server, tok).get(EV), 403, "forbidden")


@pytest.mark.parametrize("query,field", [
    ("?heartbeat=abc", "heartbeat"), ("?heartbeat=99", "heartbeat"),
    ("?heartbeat=60001", "heartbeat"), ("?heartbeat=", "heartbeat"),
    ("?last_event_id=-1", "last_event_id"), ("?last_event_id=x", "last_event_id")])
def test_bad_parameters_are_400_with_the_field(admin, query, field):
    body = assert_error(admin.get(EV + query), 400, "invalid")
    assert field in body["fields"], body


def test_bad_last_event_id_header_is_400(admin):
    body = assert_error(admin.get(EV, headers={"Last-Event-ID": "nope"}), 400, "invalid")
    assert "last_event_id" in body["fields"]


def test_stream_headers_and_first_bytes(server):
    s = Sse(server, query="?heartbeat=200")
    try:
        assert s.status == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        assert s.headers["cache-control"] == "no-cache"
        first = next(s.blocks(5))
        assert first.startswith("retry: 3000"), first
        # with nothing happening, heartbeat comments keep coming
        beats = [b for b in s.blocks(1.5) if b.strip() == ": heartbeat"]
        assert len(beats) >= 2, beats
    finally:
        s.close()


def test_session_created_state_and_progress_events(server, admin, catalog):
    upload_fw(admin, catalog)
    s = Sse(server, query="?heartbeat=1000")
    try:
        sess = request_session(admin, catalog)
        assert sess["state"] == "ready"
        ev = s.next_event(is_for(sess["id"]))
        assert ev and ev["event"] == "session.created", ev
        assert int(ev["id"]) > 0
        assert ev["data"]["state"] == "ready"
        assert ev["data"]["target_firmware_version"] == "2.0.0"
        r = admin.post(f"/api/v1/firmware-update/{sess['id']}/start")
        assert r.status_code in (200, 202), r.text
        states = []
        kinds = set()
        deadline = time.monotonic() + 10
        while "created" not in states and time.monotonic() < deadline:
            ev = s.next_event(is_for(sess["id"]), timeout=deadline - time.monotonic())
            if ev is None:
                break
            kinds.add(ev["event"])
            if ev["event"] == "session.state":
                states.append(ev["data"]["state"])
        assert states[-1:] == ["created"], states
        assert "processing" in states, states
        assert "session.progress" in kinds, kinds
    finally:
        s.close()


def test_events_follow_access_rights(server, admin, catalog):
    # a second catalogue: the scoped user may update catalog's model only
    other = dict(catalog)
    p = admin.create("/api/v1/products/", {"tid": unique("prod"), "name": "P2"})
    other["model"] = admin.create("/api/v1/models/", {"tid": unique("model"), "name": "M2",
                                                      "product": p["tid"]})
    _, tok = make_user(admin, ["update"], model=catalog["model"]["id"])
    s = Sse(server, token=tok, query="?heartbeat=200")
    try:
        hidden = request_session(admin, other)
        seen = request_session(admin, catalog)
        got = []
        for block in s.blocks(10):
            ev = parse_block(block)
            if ev.get("event") == "session.created":
                got.append(ev["data"]["id"])
            if seen["id"] in got:
                break
        assert seen["id"] in got
        assert hidden["id"] not in got
    finally:
        s.close()


def test_firmware_events_reach_a_grant_on_one_of_the_images_channels(server, admin, catalog):
    """An image is in several channels: a grant over the model narrowed to a channel sees
    the firmware events of images in that channel, as it sees the images on GET, and not
    those of images only in other channels."""
    other = admin.create("/api/v1/channels/", {"tid": unique("chan"), "name": "beta"})
    _, tok = make_user(admin, ["update"], model=catalog["model"]["id"],
                       channel=catalog["channel"]["id"])
    s = Sse(server, token=tok, query="?heartbeat=200")
    try:
        hidden = upload_fw(admin, dict(catalog, channel=other), version="7.0.0")
        both = upload_fw(admin, dict(catalog, channel={
            "tid": f"{other['tid']},{catalog['channel']['tid']}"}), version="7.0.1")
        got = []
        for block in s.blocks(10):
            ev = parse_block(block)
            if ev.get("event") == "firmware.created":
                got.append(json.loads(ev["data"])["id"])
            if both["id"] in got:
                break
        assert both["id"] in got and hidden["id"] not in got, got
        c = Client(server, tok)
        assert c.get(f"/api/v1/firmware/{both['id']}").status_code == 200
        assert c.get(f"/api/v1/firmware/{hidden['id']}").status_code == 403
    finally:
        s.close()


def test_sessions_of_draft_targets_reach_draft_holders_only(server, admin, catalog):
    parts = [("model", (None, catalog["model"]["tid"])), ("version", (None, "5.0.0")),
             ("channels", (None, catalog["channel"]["tid"])), ("draft", (None, "true")),
             ("file", ("app.bin", b"\x02" * 100, "application/octet-stream"))]
    assert admin.request("POST", "/api/v1/firmware/", files=parts).status_code == 201
    _, upd = make_user(admin, ["update"], model=catalog["model"]["id"])
    _, drf = make_user(admin, ["draft"], model=catalog["model"]["id"])
    su, sd = Sse(server, token=upd, query="?heartbeat=200"), Sse(server, token=drf)
    try:
        r = Client(server, drf).post("/api/v1/firmware-update/request", json={
            "model": catalog["model"]["tid"], "delivery_procedure_tid":
            catalog["procedure"]["tid"], "current_channel": catalog["channel"]["tid"],
            "current_firmware_version": "1.0.0", "allow_draft_firmware": True})
        assert r.status_code == 201, r.text
        marker = request_session(admin, catalog, version="5.0.0")  # up_to_date: for all
        assert sd.next_event(is_for(r.json()["id"])), "the draft holder sees it"
        got = []
        for block in su.blocks(10):
            ev = parse_block(block)
            if ev.get("event") == "session.created":
                got.append(ev["data"]["id"])
            if marker["id"] in got:
                break
        assert marker["id"] in got and r.json()["id"] not in got, got
    finally:
        su.close()
        sd.close()


def read_until_end(s, timeout):
    """The blocks of a stream until the server ends it (None if it did not in time)."""
    got = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            got.extend(s.blocks(deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                return None
    except EOFError:
        return got
    return None


@pytest.mark.parametrize("how", ["revoke", "delete", "deactivate", "expire", "ungrant"])
def test_a_stream_ends_once_its_token_no_longer_authenticates(server, admin, catalog, how):
    """An open stream is no back door: revoking or deleting its token, deactivating its
    user, the token's expiry, or losing the `update` right end it (an `error` event, then
    the end of the stream) without waiting for a heartbeat (60 s here)."""
    u, tok = make_user(admin, ["update"], model=catalog["model"]["id"])
    t = admin.get("/api/v1/tokens/", params={"user": u["id"]}).json()["results"][0]
    if how == "expire":
        # 4 s: the stream is open and found quiet before then, also on a loaded machine
        soon = datetime.now(timezone.utc) + timedelta(seconds=4)
        assert admin.patch("/api/v1/tokens/" + t["id"],
                           json={"expire_time": soon.isoformat()}).status_code == 200
    s = Sse(server, token=tok, query="?heartbeat=60000")
    try:
        assert s.status == 200
        assert next(s.blocks(5)).startswith("retry:")
        assert not list(s.blocks(0.3)), "quiet before the change"
        if how == "revoke":
            admin.patch("/api/v1/tokens/" + t["id"], json={"revoked": True})
        elif how == "delete":
            admin.delete("/api/v1/tokens/" + t["id"])
        elif how == "deactivate":
            admin.patch("/api/v1/users/" + u["id"], json={"is_active": False})
        elif how == "ungrant":
            for g in admin.get("/api/v1/access-rights/", params={"user": u["id"]}).json()[
                    "results"]:
                admin.delete("/api/v1/access-rights/" + g["id"])
        blocks = read_until_end(s, 10)
        assert blocks is not None, "the stream outlived its token"
        last = parse_block(blocks[-1])
        assert last.get("event") == "error", blocks
        assert json.loads(last["data"])["code"] == (
            "forbidden" if how == "ungrant" else "unauthorized"), last
    finally:
        s.close()


def test_a_stream_follows_changes_of_rights(server, admin, catalog):
    """Grants changed while a stream is open apply to the events it shows next."""
    p2 = admin.create("/api/v1/products/", {"tid": unique("prod"), "name": "P2"})
    other = dict(catalog, model=admin.create("/api/v1/models/", {
        "tid": unique("model"), "name": "M2", "product": p2["tid"]}))
    u, tok = make_user(admin, ["update"], model=catalog["model"]["id"])
    g = admin.get("/api/v1/access-rights/", params={"user": u["id"]}).json()["results"][0]
    s = Sse(server, token=tok, query="?heartbeat=200")
    try:
        first = request_session(admin, catalog)
        assert s.next_event(is_for(first["id"])), "seen with the first grant"
        assert admin.patch("/api/v1/access-rights/" + g["id"],
                           json={"model": other["model"]["id"]}).status_code == 200
        hidden = request_session(admin, catalog)
        shown = request_session(admin, other)
        got = []
        for block in s.blocks(10):
            ev = parse_block(block)
            if ev.get("event") == "session.created":
                got.append(ev["data"]["id"])
            if shown["id"] in got:
                break
        assert shown["id"] in got and hidden["id"] not in got, got
    finally:
        s.close()


def test_last_event_id_replays_what_followed(server, admin, catalog):
    s = Sse(server, query="?heartbeat=1000")
    try:
        a = request_session(admin, catalog)
        ev_a = s.next_event(is_for(a["id"]))
        assert ev_a
    finally:
        s.close()
    b = request_session(admin, catalog)
    c = request_session(admin, catalog)
    for how in ({"headers": {"Last-Event-ID": ev_a["id"]}},
                {"query": f"?last_event_id={ev_a['id']}"}):
        r = Sse(server, query=how.get("query", ""), headers=how.get("headers"))
        try:
            ids = []
            for block in r.blocks(10):
                ev = parse_block(block)
                if ev.get("event") == "session.created":
                    ids.append(ev["data"]["id"])
                if c["id"] in ids:
                    break
            assert a["id"] not in ids
            assert ids.index(b["id"]) < ids.index(c["id"])
        finally:
            r.close()
    # without Last-Event-ID only new events come: nothing of a, b or c
    r = Sse(server, query="?heartbeat=200")
    try:
        for block in r.blocks(0.8):
            assert "session.created" not in block
    finally:
        r.close()


def test_subscriber_limit_503_then_free_again():
    srv = Server(extra_args=["--max-events", "2"]).start()
    subs = []
    try:
        # one stream per user at this size (an eighth of --max-events, at least one)
        admin = Client(srv, ADMIN_TOKEN)
        toks = [make_user(admin, ["update"])[1] for _ in range(2)]
        subs = [Sse(srv), Sse(srv, token=toks[0])]
        assert [x.status for x in subs] == [200, 200]
        metrics = Client(srv).get("/metrics").text
        assert "devicehub_event_subscribers 2\n" in metrics, metrics
        extra = Sse(srv, token=toks[1])
        assert extra.status == 503
        assert extra.headers.get("retry-after")
        body = extra.body_json()
        assert body["code"] == "unavailable" and "subscriptions" in body["detail"], body
        extra.close()
        subs.pop().close()
        deadline = time.monotonic() + 5
        status = None
        while time.monotonic() < deadline:  # the server notices the hang-up of a parked client
            again = Sse(srv, token=toks[1])
            status = again.status
            again.close()
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
    finally:
        for x in subs:
            x.close()
        srv.cleanup()


def test_zero_max_events_turns_the_stream_off():
    srv = Server(extra_args=["--max-events", "0"]).start()
    try:
        r = Client(srv, ADMIN_TOKEN).get(EV)
        assert_error(r, 503, "unavailable")
        assert r.headers["Retry-After"]
    finally:
        srv.cleanup()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_idle_subscribers_leave_the_pool_free():
    """One HTTP thread, several idle subscribers: other requests still answer at once."""
    srv = Server(extra_args=["--http-threads", "1"]).start()
    subs = []
    try:
        subs = [Sse(srv, query="?heartbeat=60000") for _ in range(4)]
        assert all(x.status == 200 for x in subs)
        c = Client(srv, ADMIN_TOKEN)
        t0 = time.monotonic()
        # a thread held by a subscriber would leave these waiting for its next heartbeat,
        # a minute away; the bounds leave ThreadSanitizer on a loaded machine its time
        for _ in range(5):
            assert c.get("/healthz", timeout=10).status_code == 200
            assert c.get("/api/v1/products/", timeout=10).status_code == 200
        assert time.monotonic() - t0 < 20
        # parked subscribers cost no CPU: the server is idle while they wait
        before = cpu_seconds(srv.proc.pid)
        time.sleep(1.0)
        assert cpu_seconds(srv.proc.pid) - before < 0.2
    finally:
        for x in subs:
            x.close()
        srv.cleanup()


def test_shutdown_with_subscribers_connected_does_not_hang():
    srv = Server().start()
    subs = []
    try:
        subs = [Sse(srv, query="?heartbeat=60000") for _ in range(3)]
        assert all(x.status == 200 for x in subs)
        t0 = time.monotonic()
        rc = srv.stop(timeout=10)
        assert rc == 0
        assert time.monotonic() - t0 < 8
        for x in subs:  # each stream was ended or closed, none left hanging
            with pytest.raises((EOFError, ConnectionError, OSError)):
                for _ in x.blocks(2):
                    pass
                x._read_chunk(time.monotonic() + 2)
    finally:
        for x in subs:
            x.close()
        srv.cleanup()
