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
from datetime import datetime, timezone

from conftest import ADMIN_TOKEN, BIN, PG_DB_OF_DIR, ROOT, Client, Server, pg_cluster


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
        assert s.read_log().count("db.migrated") == len(rows)
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
