"""The CLI's configure commands: catalogue objects created, listed, shown, changed and
deleted through scripts/devicehub, checked against the server's own API; errors show the
server's code and detail with exit 1, usage errors exit 2 and change nothing."""
import json

from conftest import make_user, unique


def test_configure_catalogue(cli, admin):
    p, m, c, dm, dp = (unique(k) for k in ("prod", "model", "chan", "dm", "dp"))
    prod = cli.json("product", "create", "--tid", p, "--name", "Sensor",
                    "description=Air quality")
    assert prod["tid"] == p and prod["description"] == "Air quality"
    model = cli.json("model", "create", "--tid", m, "--name", "Model A", "--product", p)
    assert model["product"] == prod["id"]
    cli.json("channel", "create", "--tid", c, "--name", "stable")
    cli.json("method", "create", "--tid", dm, "--name", "HTTP", "--kind", "http")
    proc = cli.json("procedure", "create", "--tid", dp, "--name", "Link",
                    "--delivery-method", dm, "--steps", '[{"plugin": "link"}]',
                    "--confirm", "true", "ready_timeout=120")
    assert proc["steps"] == [{"plugin": "link"}] and proc["confirm"] is True
    assert proc["ready_timeout"] == 120
    # What the CLI created is what the server holds.
    r = admin.get(f"/api/v1/delivery-procedures/{dp}")
    assert r.status_code == 200 and r.json() == proc
    # get by tid, text output shows fields
    out = cli.ok("model", "get", m).stdout
    assert f"tid          {m}" in out or (m in out and "Model A" in out)
    # list with a filter, text and JSON
    out = cli.ok("model", "list", f"tid={m}").stdout
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["ID", "TID", "NAME"] and m in lines[1]
    assert lines[-1] == "(1 of 1)"
    page = cli.json("model", "list", f"tid={m}")
    assert page["count"] == 1 and page["results"][0]["id"] == model["id"]
    # update: PATCH with typed fields; raw JSON with :=
    upd = cli.json("procedure", "update", dp, "--confirm", "false", "steps:=[]")
    assert upd["confirm"] is False and upd["steps"] == []
    assert admin.get(f"/api/v1/delivery-procedures/{dp}").json()["confirm"] is False


def test_delete_and_referenced_conflict(cli, admin):
    p, m = unique("prod"), unique("model")
    cli.ok("product", "create", "--tid", p, "--name", "P")
    cli.ok("model", "create", "--tid", m, "--name", "M", "--product", p)
    r = cli.run("product", "delete", p)
    assert r.returncode == 1 and "409" in r.stderr and "referenced" in r.stderr, r.stderr
    assert admin.get(f"/api/v1/products/{p}").status_code == 200
    assert cli.ok("model", "delete", m).stdout.strip() == f"deleted model {m}"
    cli.ok("product", "delete", p)
    assert admin.get(f"/api/v1/products/{p}").status_code == 404


def test_server_error_shows_code_detail_and_fields(cli, admin):
    m = unique("model")
    r = cli.run("model", "create", "--tid", m, "--name", "M", "--product", "no-such-product")
    assert r.returncode == 1
    assert r.stdout == ""
    assert "HTTP 400" in r.stderr and "no-such-product" in r.stderr
    assert "\n  product: " in r.stderr  # the fields object, one line per field
    assert admin.get(f"/api/v1/models/{m}").status_code == 404
    r = cli.run("product", "get", "no-such-product")
    assert r.returncode == 1 and "HTTP 404 not_found" in r.stderr


def test_tid_taken_is_409(cli):
    p = unique("prod")
    cli.ok("product", "create", "--tid", p, "--name", "A")
    r = cli.run("product", "create", "--tid", p, "--name", "B")
    assert r.returncode == 1 and "HTTP 409" in r.stderr, r.stderr
    assert cli.json("product", "get", p)["name"] == "A"


def test_usage_errors_exit_2_and_send_nothing(cli, admin):
    before = admin.get("/api/v1/delivery-procedures/").json()["count"]
    cases = [
        (["procedure", "create", "--tid", unique("dp"), "--confirm", "maybe"], "confirm"),
        (["procedure", "create", "--tid", unique("dp"), "--steps", "[not json"], "steps"),
        (["procedure", "create", "--tid", unique("dp"), "ready_timeout=soon"], "integer"),
        (["procedure", "create", "--tid", unique("dp"), "garbage"], "KEY=VALUE"),
        (["procedure", "frobnicate"], "invalid choice"),
        (["procedure", "update", "dp"], "nothing to change"),
        (["--url", "ftp://x", "product", "list"], "--url"),
    ]
    for args, words in cases:
        r = cli.run(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert words in r.stderr, (args, r.stderr)
    assert admin.get("/api/v1/delivery-procedures/").json()["count"] == before


def test_auth_errors(cli):
    r = cli.run("product", "list", token="wrong-token-123456")
    assert r.returncode == 1 and "HTTP 401" in r.stderr and "token" in r.stderr.lower()
    r = cli.run("product", "list", token="")
    assert r.returncode == 1 and "HTTP 401" in r.stderr


def test_unreachable_server(cli, server):
    r = cli.run("--url", "http://127.0.0.1:1", "product", "list")
    assert r.returncode == 1 and "cannot connect to http://127.0.0.1:1" in r.stderr


def test_user_token_right_and_token_works(cli, admin):
    u, m, p = unique("user"), unique("model"), unique("prod")
    cli.ok("product", "create", "--tid", p, "--name", "P")
    cli.ok("model", "create", "--tid", m, "--name", "M", "--product", p)
    user = cli.json("user", "create", "--tid", u, "--name", "Operator")
    right = cli.json("right", "create", "--user", u, "--action", "manage", "--product", p)
    assert right["user"] == user["id"] and right["action"] == "manage"
    tok = cli.json("token", "create", "--user", u, "--name", "ci")
    secret = tok["secret"]
    assert secret
    # The new token sees its product's models but may not manage users.
    page = cli.json("model", "list", f"tid={m}", token=secret)
    assert page["count"] == 1
    r = cli.run("user", "list", token=secret)
    assert r.returncode == 1 and "HTTP 403" in r.stderr
    # The secret is shown once: a get shows none.
    assert "secret" not in cli.json("token", "get", tok["id"])
    r = cli.ok("token", "create", "--user", u, "--name", "other")
    assert "shown only now" in r.stderr


def test_list_paging_all(cli):
    p = unique("prod")
    for i in range(5):
        cli.ok("product", "create", "--tid", f"{p}-{i}", "--name", "N")
    page = cli.json("product", "list", "--limit", "2")
    assert len(page["results"]) == 2 and page["next"]
    everything = cli.json("product", "list", "--limit", "2", "--all")
    assert everything["count"] == len(everything["results"]) >= 5
    tids = {o["tid"] for o in everything["results"]}
    assert {f"{p}-{i}" for i in range(5)} <= tids


def test_help_on_every_subcommand(cli):
    for args in (["--help"], ["product", "--help"], ["product", "create", "--help"],
                 ["procedure", "create", "--help"], ["firmware", "upload", "--help"],
                 ["update", "--help"], ["sessions", "list", "--help"],
                 ["session", "confirm", "--help"]):
        r = cli.run(*args)
        assert r.returncode == 0 and r.stdout.startswith("usage: devicehub"), args
    assert "--delivery-method" in cli.run("procedure", "create", "--help").stdout
    assert "--max-bytes" in cli.run("update", "--help").stdout


def test_json_option_after_subcommand(cli):
    page = json.loads(cli.ok("channel", "list", "--json").stdout)
    assert set(page) == {"count", "next", "results"}
