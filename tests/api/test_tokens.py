"""Tokens: the secret is shown once and only its hash is kept; users manage their own
tokens, admins everyone's; revocation, deletion and expiry take effect at once."""
import http.client
import threading
import time
from datetime import datetime, timedelta, timezone

from conftest import Client, Server, assert_error, make_user, unique

BASE = "/api/v1/tokens/"


def test_secret_shown_once(admin, server):
    u, _ = make_user(admin, ["update"])
    t = admin.create(BASE, {"user": u["tid"], "name": "ci", "tid": unique("tok")})
    assert t["secret"].startswith("dh_") and len(t["secret"]) == 51
    assert t["prefix"] == t["secret"][:7] and t["user"] == u["id"]
    assert t["revoked"] is False and t["expire_time"] is None
    got = admin.get(BASE + t["id"]).json()
    assert "secret" not in got and "secret_hash" not in got
    assert got == {k: v for k, v in t.items() if k != "secret"}
    listed = admin.get(BASE, params={"user": u["id"]}).json()["results"]
    assert all("secret" not in x and "secret_hash" not in x for x in listed)
    r = admin.patch(BASE + t["id"], json={"name": "renamed"})
    assert "secret" not in r.json()
    # the secret works
    assert Client(server, t["secret"]).get(BASE).status_code == 200


def test_create_for_self_by_default(admin, server):
    u, tok = make_user(admin, ["update"])
    c = Client(server, tok)
    t = c.create(BASE, {"name": "mine"})
    assert t["user"] == u["id"]
    assert Client(server, t["secret"]).get(BASE + t["id"]).status_code == 200


def test_user_without_grants_can_do_nothing(admin, server):
    _, tok = make_user(admin, [])
    assert_error(Client(server, tok).get(BASE), 403, "forbidden")


def test_users_manage_only_their_own_tokens(admin, server):
    a, tok_a = make_user(admin, ["manage"])
    b, tok_b = make_user(admin, ["manage"])
    ca, cb = Client(server, tok_a), Client(server, tok_b)
    tb = cb.create(BASE, {"name": "b2"})
    listed = ca.get(BASE, params={"limit": 1000}).json()
    assert listed["count"] == 1 and all(x["user"] == a["id"] for x in listed["results"])
    assert ca.get(BASE, params={"user": b["id"]}).json()["count"] == 0
    assert_error(ca.get(BASE + tb["id"]), 404, "not_found")
    assert_error(ca.patch(BASE + tb["id"], json={"revoked": True}), 404, "not_found")
    assert_error(ca.delete(BASE + tb["id"]), 404, "not_found")
    assert_error(ca.post(BASE, json={"user": b["id"], "name": "steal"}), 403, "forbidden")
    assert cb.get(BASE + tb["id"]).json()["revoked"] is False
    assert admin.get(BASE, params={"user": b["id"]}).json()["count"] == 2
    # a token's user cannot be changed
    own = ca.get(BASE).json()["results"][0]
    err = assert_error(ca.patch(BASE + own["id"], json={"user": b["id"]}), 400, "invalid")
    assert "user" in err["fields"]


def test_revocation_takes_effect_at_once(admin, server):
    _, tok = make_user(admin, ["manage"])
    c = Client(server, tok)
    for _ in range(3):
        assert c.get("/api/v1/products/").status_code == 200
    t = c.get(BASE).json()["results"][0]
    assert c.patch(BASE + t["id"], json={"revoked": True}).status_code == 200
    r = c.get("/api/v1/products/")
    assert_error(r, 401, "unauthorized")
    assert r.headers["WWW-Authenticate"] == "Token"
    assert admin.get(BASE + t["id"]).json()["revoked"] is True
    assert admin.get(BASE, params={"revoked": "true", "user": t["user"]}).json()["count"] == 1


def test_delete_takes_effect_at_once(admin, server):
    _, tok = make_user(admin, ["manage"])
    c = Client(server, tok)
    assert c.get("/api/v1/products/").status_code == 200
    t = c.get(BASE).json()["results"][0]
    assert c.delete(BASE + t["id"]).status_code == 204
    assert_error(c.get("/api/v1/products/"), 401, "unauthorized")


def test_expiry(admin, server):
    u, _ = make_user(admin, ["manage"])
    past = (datetime.now(timezone.utc) - timedelta(seconds=5)).isoformat()
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    old = admin.create(BASE, {"user": u["id"], "expire_time": past})
    assert_error(Client(server, old["secret"]).get(BASE), 401, "unauthorized")
    new = admin.create(BASE, {"user": u["id"], "expire_time": future})
    assert new["expire_time"].endswith("+00:00")
    c = Client(server, new["secret"])
    assert c.get(BASE).status_code == 200
    # moving the expiry into the past takes effect at once
    admin.patch(BASE + new["id"], json={"expire_time": "2001-01-01T00:00:00+02:00"})
    assert admin.get(BASE + new["id"]).json()["expire_time"] == \
        "2000-12-31T22:00:00.000000+00:00"
    assert_error(c.get(BASE), 401, "unauthorized")
    admin.patch(BASE + new["id"], json={"expire_time": None})
    assert c.get(BASE).status_code == 200


def test_bad_input(admin):
    u, _ = make_user(admin, [])
    before = admin.get(BASE, params={"limit": 1000}).json()["count"]
    for body, field in [({"user": "nobody"}, "user"),
                        ({"user": u["id"], "expire_time": "tomorrow"}, "expire_time"),
                        ({"user": u["id"], "expire_time": "2030-01-01T00:00:00"},
                         "expire_time"),
                        ({"user": u["id"], "expire_time": "2030-02-30T00:00:00+00:00"},
                         "expire_time"),
                        ({"user": u["id"], "expire_time": "2031-02-29T00:00:00Z"},
                         "expire_time"),
                        ({"user": u["id"], "expire_time": "2030-04-31T00:00:00Z"},
                         "expire_time"),
                        ({"user": u["id"], "expire_time": "2030-01-01T24:00:00Z"},
                         "expire_time"),
                        ({"user": u["id"], "expire_time": "2030-06-30T23:59:60Z"},
                         "expire_time"),
                        ({"user": u["id"], "expire_time": "2030-01-01T00:00:00+24:00"},
                         "expire_time"),
                        ({"user": u["id"], "revoked": "no"}, "revoked"),
                        ({"user": u["id"], "secret": "mine"}, "secret"),
                        ({"user": u["id"], "tid": "bad tid"}, "tid")]:
        err = assert_error(admin.post(BASE, json=body), 400, "invalid")
        assert field in err["fields"], (body, err)
    assert admin.get(BASE, params={"limit": 1000}).json()["count"] == before
    # the last day of February of a leap year is a day
    t = admin.create(BASE, {"user": u["id"], "expire_time": "2032-02-29T12:00:00-01:30"})
    assert t["expire_time"] == "2032-02-29T13:30:00.000000+00:00"
    admin.delete(BASE + t["id"])
    # prefix and secret_hash are read-only: ignored on input
    t = admin.create(BASE, {"user": u["id"], "prefix": "dh_xxxx", "secret_hash": "00"})
    assert t["prefix"] == t["secret"][:7]


def test_revocation_is_final(admin, server):
    """Nobody un-revokes a token, not its owner with another token, not an admin: 409
    token_revoked, and the token stays refused. Other fields may still change."""
    u, tok = make_user(admin, ["update"])
    t = admin.get(BASE, params={"user": u["id"]}).json()["results"][0]
    other = admin.create(BASE, {"user": u["id"], "name": "second"})
    owner = Client(server, other["secret"])
    assert admin.patch(BASE + t["id"], json={"revoked": True}).status_code == 200
    for c in (owner, admin):
        for body in ({"revoked": False}, {"revoked": False, "name": "sneaky"}):
            body = assert_error(c.patch(BASE + t["id"], json=body), 409, "token_revoked")
            assert "revoked" in body["detail"]
    got = admin.get(BASE + t["id"]).json()
    assert got["revoked"] is True and got["name"] == t["name"]
    assert_error(Client(server, tok).get(BASE), 401, "unauthorized")
    # revoking again and renaming are fine
    assert owner.patch(BASE + t["id"], json={"revoked": True}).status_code == 200
    assert owner.patch(BASE + t["id"], json={"name": "old"}).json()["revoked"] is True
    # a token created revoked is revoked for good too
    born = admin.create(BASE, {"user": u["id"], "revoked": True})
    assert_error(admin.patch(BASE + born["id"], json={"revoked": False}), 409,
                 "token_revoked")
    assert_error(Client(server, born["secret"]).get(BASE), 401, "unauthorized")


def test_users_with_scoped_grants_manage_their_own_tokens(admin, server, catalog):
    """Any grant, scoped or not, lets its user list, create, change and delete their own
    tokens; someone else's token, and a token that does not exist, are 404."""
    m, c = catalog["model"], catalog["channel"]
    stranger = admin.create(BASE, {"user": make_user(admin, ["update"])[0]["id"]})
    for scope in ({"product": catalog["product"]["id"]}, {"model": m["id"]},
                  {"model": m["id"], "channel": c["id"]}):
        u, tok = make_user(admin, ["update"], **scope)
        me = Client(server, tok)
        listed = me.get(BASE).json()
        assert listed["count"] == 1 and listed["results"][0]["user"] == u["id"], scope
        t = me.create(BASE, {"name": "spare"})
        assert t["user"] == u["id"] and t["secret"].startswith("dh_")
        assert me.get(BASE + t["id"]).json()["name"] == "spare"
        assert me.patch(BASE + t["id"], json={"name": "renamed"}).json()["name"] == "renamed"
        assert me.delete(BASE + t["id"]).status_code == 204
        for path in (BASE + stranger["id"], BASE + "00000000-0000-4000-8000-000000000000"):
            assert_error(me.get(path), 404, "not_found")
            assert_error(me.patch(path, json={"name": "x"}), 404, "not_found")
            assert_error(me.delete(path), 404, "not_found")
        assert_error(me.post(BASE, json={"user": stranger["user"]}), 403, "forbidden")


def test_no_request_succeeds_after_a_revocation_answers():
    """The revocation race (issue 10, item 12): eight threads use a token while it is revoked
    (PATCH revoked, or DELETE); once the revocation has answered, no request sent with the
    token after that may succeed (401, never 200 nor the 404 of a deleted token that still
    authenticated). 1000 trials, each with a fresh token; about 20 s with ASan."""
    trials, nthreads = 1000, 8
    s = Server(extra_args=["--http-threads", "4"]).start()
    try:
        admin = Client(s, s.admin_token)
        u, _ = make_user(admin, ["update"])
        toks = [admin.create(BASE, {"user": u["id"]}) for _ in range(trials)]
        state = {"tok": None, "stop": False, "quit": False}
        log = [[] for _ in range(nthreads)]  # per thread: (token id, sent at, status)
        go = [threading.Event() for _ in range(nthreads)]
        idle = [threading.Event() for _ in range(nthreads)]

        def worker(k):
            # http.client, not requests: a quarter of the client's CPU per request
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
            while True:
                go[k].wait()
                go[k].clear()
                if state["quit"]:
                    c.close()
                    return
                while not state["stop"]:
                    t = state["tok"]
                    sent = time.monotonic()
                    c.request("GET", BASE + t["id"],
                              headers={"Authorization": "Token " + t["secret"]})
                    r = c.getresponse()
                    r.read()
                    log[k].append((t["id"], sent, r.status))
                idle[k].set()

        def until(pred):
            end = time.monotonic() + 30
            while not pred():
                assert time.monotonic() < end, "the threads stopped making requests"
                time.sleep(0.0005)

        threads = [threading.Thread(target=worker, args=(k,), daemon=True)
                   for k in range(nthreads)]
        for t in threads:
            t.start()
        for i, t in enumerate(toks):
            for k in range(nthreads):
                log[k] = []
                idle[k].clear()
            state["tok"], state["stop"] = t, False
            for e in go:
                e.set()
            # the token is in use (and cached) when it goes
            until(lambda: sum(x[0] == t["id"] and x[2] == 200 for k in range(nthreads)
                              for x in list(log[k])) >= nthreads // 2)
            if i % 2:
                assert admin.delete(BASE + t["id"]).status_code == 204
            else:
                assert admin.patch(BASE + t["id"], json={"revoked": True}).status_code == 200
            answered = time.monotonic()
            # as many requests sent after the answer as there are threads
            until(lambda: sum(x[1] > answered for k in range(nthreads)
                              for x in list(log[k])) >= nthreads)
            state["stop"] = True
            for e in idle:
                assert e.wait(30)
            late = [x for k in range(nthreads) for x in log[k] if x[1] > answered]
            assert all(x[2] == 401 for x in late), (i, "DELETE" if i % 2 else "PATCH", late)
        state["quit"] = True
        for e in go:
            e.set()
        for t in threads:
            t.join(10)
    finally:
        s.cleanup()
