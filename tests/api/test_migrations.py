"""Schema migrations: a fresh data dir gets every migrations/*.sql recorded in
schema_migrations; a database made with only 0001_init.sql is upgraded in place on start
and keeps its rows; a restart applies nothing twice."""
import glob
import os
import re
import sqlite3
import tempfile
from datetime import datetime, timezone

from conftest import ADMIN_TOKEN, ROOT, Client, Server

MIGRATIONS = os.path.join(ROOT, "migrations", "sqlite")


def migration_files():
    out = []
    for path in sorted(glob.glob(os.path.join(MIGRATIONS, "*.sql"))):
        m = re.fullmatch(r"(\d{4})_(\w+)\.sql", os.path.basename(path))
        assert m, path
        out.append((int(m.group(1)), m.group(2), path))
    assert out and out[0][0] == 1
    return out


def applied(data_dir):
    db = sqlite3.connect(os.path.join(data_dir, "devicehub.db"))
    try:
        return db.execute("SELECT version, name, applied_time FROM schema_migrations"
                          " ORDER BY version").fetchall()
    finally:
        db.close()


def test_fresh_database_has_every_migration():
    s = Server().start()
    try:
        assert Client(s, ADMIN_TOKEN).get("/api/v1/products/").status_code == 200
        rows = applied(s.data_dir)
        assert [(v, n) for v, n, _ in rows] == [(v, n) for v, n, _ in migration_files()]
        for _, _, t in rows:
            assert datetime.fromisoformat(t).tzinfo is not None
        s.stop()
        # a second start applies nothing again
        s.start()
        assert applied(s.data_dir) == rows
        assert s.read_log().count("db.migrated") == len(rows)
    finally:
        s.cleanup()


def test_upgrade_from_first_migration_keeps_data():
    files = migration_files()
    with tempfile.TemporaryDirectory(prefix="dh-mig-") as d:
        data_dir = os.path.join(d, "var")
        os.makedirs(data_dir)
        db = sqlite3.connect(os.path.join(data_dir, "devicehub.db"))
        with open(files[0][2], encoding="utf-8") as f:
            db.executescript(f.read())
        db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                   " name TEXT NOT NULL, applied_time TEXT NOT NULL)")
        now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        db.execute("INSERT INTO schema_migrations VALUES (1, ?, ?)", (files[0][1], now))
        db.execute("INSERT INTO products (id, tid, name, description, create_time)"
                   " VALUES ('0d7cbb5e-5a7e-4c57-9c2e-2b8c7e1d7a10', 'old-product', 'Old',"
                   " 'made before the upgrade', ?)", (now,))
        # firmware from before precedence keys (0003): they get theirs at start-up
        db.execute("INSERT INTO models (id, tid, product_id, name, create_time) VALUES"
                   " ('5b0f3c1e-0c1d-4e8a-9d33-6a0e7d2b9c01', 'old-model',"
                   " '0d7cbb5e-5a7e-4c57-9c2e-2b8c7e1d7a10', 'M', ?)", (now,))
        db.execute("INSERT INTO channels (id, tid, name, create_time) VALUES"
                   " ('7c9e6d1a-3f2b-4a5c-8e7d-1b2c3d4e5f60', 'old-channel', 'c', ?)", (now,))
        for i, v in enumerate(("1.10.0", "1.9.0", "1.2.0-rc.1")):
            fid = f"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6{i}"
            db.execute("INSERT INTO firmware (id, model_id, version, size, sha256, create_time)"
                       " VALUES (?, '5b0f3c1e-0c1d-4e8a-9d33-6a0e7d2b9c01', ?, 1, ?, ?)",
                       (fid, v, "ab" * 32, now))
            db.execute("INSERT INTO firmware_channels VALUES (?,"
                       " '7c9e6d1a-3f2b-4a5c-8e7d-1b2c3d4e5f60')", (fid,))
        db.commit()
        db.close()
        s = Server(data_dir=data_dir).start()
        try:
            rows = applied(data_dir)
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


def test_newer_database_than_binary_is_refused():
    """A database migrated by a newer build has versions this binary does not know."""
    files = migration_files()
    with tempfile.TemporaryDirectory(prefix="dh-mig-") as d:
        data_dir = os.path.join(d, "var")
        s = Server(data_dir=data_dir).start()
        s.stop()
        db = sqlite3.connect(os.path.join(data_dir, "devicehub.db"))
        db.execute("INSERT INTO schema_migrations VALUES (?, 'future', '2099-01-01T00:00:00Z')",
                   (files[-1][0] + 100,))
        db.commit()
        db.close()
        try:
            s.start()
            started = True
        except RuntimeError:
            started = False
        finally:
            s.cleanup()
        assert not started, "devicehubd started on a database newer than itself"
