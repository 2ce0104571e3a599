"""Schema migrations, on each engine: a fresh database gets every
migrations/<engine>/*.sql recorded in schema_migrations; a database made with only
0001_init.sql is upgraded in place on start and keeps its rows; a restart applies nothing
twice; both engines number their migrations alike; a newer schema is refused (exit 2)."""
import glob
import os
import re
import sqlite3
import subprocess
import tempfile
import uuid
from datetime import datetime, timezone

from conftest import (ADMIN_TOKEN, BIN, PG_DB_OF_DIR, ROOT, Client, Server, make_user,
                      pg_cluster)


def migration_files(engine="sqlite"):
    """(number, name, path) of the engine's migrations, in order."""
    out = []
    d = os.path.join(ROOT, "migrations", "pg" if engine == "pg" else "sqlite")
    for path in sorted(glob.glob(os.path.join(d, "*.sql"))):
        m = re.fullmatch(r"(\d{4})_(\w+)\.sql", os.path.basename(path))
        assert m, path
        out.append((int(m.group(1)), m.group(2), path))
    assert out and out[0][0] == 1
    return out


def applied(server):
    return [(int(v), n, t) for v, n, t in server.db_rows(
        "SELECT version, name, applied_time FROM schema_migrations ORDER BY version")]


def test_both_engines_number_their_migrations_alike():
    """A migration is written for both engines, with the same number and name."""
    assert [(v, n) for v, n, _ in migration_files("sqlite")] == \
        [(v, n) for v, n, _ in migration_files("pg")]


def run_script(engine, data_dir, db_name, sql):
    """Runs a script of statements on a database that no server has opened yet."""
    if engine == "pg":
        pg_cluster().psql(sql, db_name)
        return
    db = sqlite3.connect(os.path.join(data_dir, "devicehub.db"))
    db.executescript(sql)
    db.commit()
    db.close()


def test_fresh_database_has_every_migration(engine):
    s = Server().start()
    try:
        assert Client(s, ADMIN_TOKEN).get("/api/v1/products/").status_code == 200
        rows = applied(s)
        assert [(v, n) for v, n, _ in rows] == [(v, n) for v, n, _ in migration_files(engine)]
        for _, _, t in rows:
            assert datetime.fromisoformat(t).tzinfo is not None
        s.stop()
        # a second start applies nothing again
        s.start()
        assert applied(s) == rows
        log = s.read_log()
        assert log.count("db.migrated") == len(rows)
        # a new database is no failure: nothing at level error on the way
        assert "db.prepare" not in log
        assert not [line for line in log.splitlines() if " error " in line], log
    finally:
        s.cleanup()


def test_upgrade_from_first_migration_keeps_data(engine):
    files = migration_files(engine)
    with tempfile.TemporaryDirectory(prefix="dh-mig-") as d:
        data_dir = os.path.join(d, "var")
        os.makedirs(data_dir)
        db_name = pg_cluster().create_db() if engine == "pg" else None
        with open(files[0][2], encoding="utf-8") as f:
            run_script(engine, data_dir, db_name, f.read())
        now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        sql = ["CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
               " name TEXT NOT NULL, applied_time TEXT NOT NULL);",
               f"INSERT INTO schema_migrations VALUES (1, '{files[0][1]}', '{now}');",
               "INSERT INTO products (id, tid, name, description, create_time)"
               " VALUES ('0d7cbb5e-5a7e-4c57-9c2e-2b8c7e1d7a10', 'old-product', 'Old',"
               f" 'made before the upgrade', '{now}');",
               # firmware from before precedence keys (0003): they get theirs at start-up
               "INSERT INTO models (id, tid, product_id, name, create_time) VALUES"
               " ('5b0f3c1e-0c1d-4e8a-9d33-6a0e7d2b9c01', 'old-model',"
               f" '0d7cbb5e-5a7e-4c57-9c2e-2b8c7e1d7a10', 'M', '{now}');",
               "INSERT INTO channels (id, tid, name, create_time) VALUES"
               f" ('7c9e6d1a-3f2b-4a5c-8e7d-1b2c3d4e5f60', 'old-channel', 'c', '{now}');"]
        if engine == "pg":  # images are rows there, and firmware refers to them
            sql.append(f"INSERT INTO blobs VALUES ('{'ab' * 32}', 1, '{now}');")
        for i, v in enumerate(("1.10.0", "1.9.0", "1.2.0-rc.1")):
            fid = f"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6{i}"
            sql.append("INSERT INTO firmware (id, model_id, version, size, sha256, create_time)"
                       f" VALUES ('{fid}', '5b0f3c1e-0c1d-4e8a-9d33-6a0e7d2b9c01', '{v}', 1,"
                       f" '{'ab' * 32}', '{now}');")
            sql.append(f"INSERT INTO firmware_channels VALUES ('{fid}',"
                       " '7c9e6d1a-3f2b-4a5c-8e7d-1b2c3d4e5f60');")
        run_script(engine, data_dir, db_name, "\n".join(sql))
        if db_name:
            PG_DB_OF_DIR[data_dir] = db_name
        s = Server(data_dir=data_dir).start()
        try:
            rows = applied(s)
            assert [(v, n) for v, n, _ in rows] == [(v, n) for v, n, _ in files]
            assert rows[0][2] == now  # the old record is untouched
            admin = Client(s, ADMIN_TOKEN)
            p = admin.get("/api/v1/products/old-product").json()
            assert p["id"] == "0d7cbb5e-5a7e-4c57-9c2e-2b8c7e1d7a10"
            assert p["description"] == "made before the upgrade"
            # the upgraded database works for new objects too
            admin.create("/api/v1/models/", {"tid": "new-model", "name": "M",
                                             "product": "old-product"})
            admin.create("/api/v1/delivery-methods/", {"tid": "dm", "name": "H",
                                                       "kind": "http"})
            admin.create("/api/v1/delivery-procedures/", {"tid": "dp", "name": "P",
                                                          "delivery_method": "dm"})
            r = admin.post("/api/v1/firmware-update/request", json={
                "model": "old-model", "delivery_procedure_tid": "dp",
                "current_channel": "old-channel", "current_firmware_version": "1.2.0-rc.0"})
            assert r.status_code == 201, r.text
            assert r.json()["target_firmware"].endswith("c60"), r.json()  # 1.10.0
        finally:
            s.cleanup()


def test_newer_database_than_binary_is_refused(engine):
    """A database migrated by a newer build has versions this binary does not know: a clear
    message and exit status 2."""
    files = migration_files(engine)
    with tempfile.TemporaryDirectory(prefix="dh-mig-") as d:
        data_dir = os.path.join(d, "var")
        s = Server(data_dir=data_dir).start()
        s.stop()
        run_script(engine, data_dir, s.db_name,
                   f"INSERT INTO schema_migrations VALUES ({files[-1][0] + 100}, 'future',"
                   " '2099-01-01T00:00:00Z')")
        try:
            r = subprocess.run([BIN, "--data-dir", data_dir, "--port", "0", "--listen",
                                "127.0.0.1"] + (["--database", s.database] if s.database else []),
                               capture_output=True, text=True, timeout=60, env=s.env)
            assert r.returncode == 2, (r.returncode, r.stderr)
            assert "newer than this build" in r.stderr, r.stderr
        finally:
            s.cleanup()


# The session list of a caller with one product grant, as db/sessions.c builds it; the plan
# check below asks which index the database picks for it.
PRODUCT_LIST_COUNT_SQL = (
    "SELECT count(*) FROM sessions s WHERE (((s.product_id = '{p}')) AND (NOT"
    " coalesce(s.target_firmware_id, '') IN (SELECT id FROM firmware WHERE draft <> 0)"
    " OR 1 = 0))")
PRODUCT_LIST_PAGE_SQL = (
    "SELECT s.id FROM sessions s WHERE (((s.product_id = '{p}')) AND (NOT"
    " coalesce(s.target_firmware_id, '') IN (SELECT id FROM firmware WHERE draft <> 0)"
    " OR 1 = 0)) ORDER BY s.create_time DESC, s.id DESC LIMIT 7 OFFSET 7")


def plan(server, sql):
    if server.engine == "pg":
        # statistics as autovacuum would leave them, taken now so that the plan does not
        # depend on whether it has run yet; a table this small is read whole, and forbidding
        # that shows which index serves
        return " ".join(r[0] for r in pg_cluster().psql(
            "ANALYZE sessions; ANALYZE firmware; SET enable_seqscan = off;"
            " SET enable_sort = off; EXPLAIN " + sql, server.db_name))
    return " ".join(r[-1] for r in server.db_rows("EXPLAIN QUERY PLAN " + sql))


def test_upgrade_to_session_product_index_lists_alike(engine):
    """A data dir from before 0007 (sessions of three products, times that tie, targets that
    are drafts) gets sessions_product on start; the database uses it for a product-scoped
    list, and the list answers as before: the caller's sessions only, newest first, ties by
    id, drafts only with the draft right, every page in order."""
    files = [f for f in migration_files(engine) if f[0] < 7]
    with tempfile.TemporaryDirectory(prefix="dh-mig-") as d:
        data_dir = os.path.join(d, "var")
        os.makedirs(data_dir)
        db_name = pg_cluster().create_db() if engine == "pg" else None
        for _, _, path in files:
            with open(path, encoding="utf-8") as f:
                run_script(engine, data_dir, db_name, f.read())
        now = "2026-01-01T00:00:00.000000+00:00"
        sql = ["CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
               " name TEXT NOT NULL, applied_time TEXT NOT NULL);"]
        sql += [f"INSERT INTO schema_migrations VALUES ({v}, '{n}', '{now}');"
                for v, n, _ in files]
        products = [f"00000000-0000-4000-8000-0000000000a{i}" for i in range(3)]
        models = [f"00000000-0000-4000-8000-0000000000b{i}" for i in range(3)]
        for i, (p, m) in enumerate(zip(products, models)):
            sql.append(f"INSERT INTO products (id, tid, name, create_time) VALUES ('{p}',"
                       f" 'p{i}', 'P', '{now}');")
            sql.append(f"INSERT INTO models (id, tid, product_id, name, create_time) VALUES"
                       f" ('{m}', 'm{i}', '{p}', 'M', '{now}');")
        dm, dp = "00000000-0000-4000-8000-0000000000c0", "00000000-0000-4000-8000-0000000000c1"
        sql.append(f"INSERT INTO delivery_methods (id, tid, name, kind, create_time) VALUES"
                   f" ('{dm}', 'dm', 'H', 'http', '{now}');")
        sql.append(f"INSERT INTO delivery_procedures (id, tid, name, delivery_method_id,"
                   f" create_time) VALUES ('{dp}', 'dp', 'P', '{dm}', '{now}');")
        if engine == "pg":
            sql.append(f"INSERT INTO blobs VALUES ('{'ab' * 32}', 1, '{now}');")
        fw = {}
        for draft in (0, 1):
            fw[draft] = f"00000000-0000-4000-8000-0000000000d{draft}"
            sql.append(f"INSERT INTO firmware (id, model_id, version, draft, size, sha256,"
                       f" create_time) VALUES ('{fw[draft]}', '{models[0]}', '1.0.{draft}',"
                       f" {draft}, 1, '{'ab' * 32}', '{now}');")
        sessions = []  # (create_time, id, product index, target is a draft)
        for i in range(60):
            sid = str(uuid.UUID(int=(i * 7919) % 997 + 1, version=4))  # ids out of time order
            t = f"2026-01-01T00:00:{i // 2:02d}.000000+00:00"  # every time twice
            k, draft = i % 3, i % 5 == 0
            sessions.append((t, sid, k, draft))
            target = f"'{fw[1 if draft else 0]}'" if k == 0 else "NULL"
            sql.append("INSERT INTO sessions (id, create_time, update_time, state,"
                       " delivery_procedure_id, product_id, model_id, target_firmware_id,"
                       " ready_timeout, processing_timeout, confirm_timeout, retention)"
                       f" VALUES ('{sid}', '{t}', '{t}', 'ready', '{dp}', '{products[k]}',"
                       f" '{models[k]}', {target}, 3600, 3600, 86400, 604800);")
        run_script(engine, data_dir, db_name, "\n".join(sql))
        # the fleet the index is for: most sessions belong to other products (older ones here,
        # so that the lists checked below are the sixty above); in scripts short enough for
        # psql's command line
        for chunk in range(0, 1200, 200):
            rows = []
            for j in range(chunk, chunk + 200):
                sid = str(uuid.UUID(int=100000 + j, version=4))
                k = 1 + j % 2
                rows.append(f"('{sid}', '2025-12-31T00:00:00.000000+00:00',"
                            f" '2025-12-31T00:00:00.000000+00:00', 'ready', '{dp}',"
                            f" '{products[k]}', '{models[k]}', NULL, 3600, 3600, 86400, 604800)")
            run_script(engine, data_dir, db_name,
                       "INSERT INTO sessions (id, create_time, update_time, state,"
                       " delivery_procedure_id, product_id, model_id, target_firmware_id,"
                       " ready_timeout, processing_timeout, confirm_timeout, retention) VALUES "
                       + ", ".join(rows) + ";")
        if db_name:
            PG_DB_OF_DIR[data_dir] = db_name
        s = Server(data_dir=data_dir).start()
        try:
            assert [v for v, _, _ in applied(s)][-1] >= 7
            for q in (PRODUCT_LIST_COUNT_SQL, PRODUCT_LIST_PAGE_SQL):
                p = plan(s, q.format(p=products[0]))
                assert "sessions_product" in p, p
            admin = Client(s, ADMIN_TOKEN)
            newest_first = sorted(sessions, reverse=True)
            for actions, sees_drafts in ((["update"], False), (["update", "draft"], True)):
                _, token = make_user(admin, actions, product=products[0])
                c = Client(s, token)
                want = [sid for _, sid, k, draft in newest_first
                        if k == 0 and (sees_drafts or not draft)]
                got, offset = [], 0
                for _ in range(20):
                    r = c.get("/api/v1/firmware-update/", params={"limit": 7, "offset": offset})
                    assert r.status_code == 200, r.text
                    body = r.json()
                    assert body["count"] == len(want)
                    got += [x["id"] for x in body["results"]]
                    if body["next"] is None:
                        break
                    offset += 7
                assert got == want, (actions, got, want)
            # an unscoped list is unchanged too
            r = admin.get("/api/v1/firmware-update/", params={"limit": 60}).json()
            assert r["count"] == 1260
            assert [x["id"] for x in r["results"]] == [sid for _, sid, _, _ in newest_first]
        finally:
            s.cleanup()
