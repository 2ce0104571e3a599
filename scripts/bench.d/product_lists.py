"""One-off measurement of the session list for a caller whose grant is one product (every
product manager's token), before and after an index: builds a data dir with N sessions spread
over P products with BIN_BEFORE, times the list there, then starts BIN_AFTER on the same data
(it applies its migrations, timed too) and times it again. Prints the query plans of the
list's two statements (the count and the page's ids, as db/sessions.c builds them) under each
binary, and the median and 90th percentile of R requests per case, seen from the client
(keep-alive, one connection).

    /usr/bin/python3 scripts/bench.d/product_lists.py BIN_BEFORE BIN_AFTER \\
        [--engine sqlite|pg] [--sessions 100000] [--products 20] [--rounds 30]

Release builds; never part of the test suite. The numbers are in docs/performance.md.
"""
import argparse
import io
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "api"))
import conftest  # noqa: E402
from conftest import Client, Server, make_user, pg_cluster, unique  # noqa: E402

FU = "/api/v1/firmware-update/"

# The list's statements for a caller with one grant, product = ?1, without the draft right
# (db/sessions.c: session_where, dh_sql_visibility); '?1' becomes '$1' on PostgreSQL.
WHERE = (" WHERE (((s.product_id = ?1)) AND (NOT coalesce(s.target_firmware_id, '') IN"
         " (SELECT id FROM firmware WHERE draft <> 0) OR 1 = 0))")
COUNT_SQL = "SELECT count(*) FROM sessions s" + WHERE
PAGE_SQL = ("SELECT s.id FROM sessions s WHERE s.id IN (SELECT s.id FROM sessions s" + WHERE +
            " ORDER BY s.create_time DESC, s.id DESC LIMIT 50 OFFSET 4000)"
            " ORDER BY s.create_time DESC, s.id DESC")


def load(s, n, products, dp):
    """n sessions, product i % P, one second apart, written straight into the database."""
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = []
    for i in range(n):
        p, m = products[i % len(products)]
        t = (t0 + timedelta(seconds=i)).isoformat(timespec="microseconds")
        rows.append((str(uuid.UUID(int=i + 1, version=4)), t, t, "ready", dp, p, m, 3600,
                     3600, 86400, 604800, '[{"state":"ready","time":"%s"}]' % t))
    cols = ("id, create_time, update_time, state, delivery_procedure_id, product_id,"
            " model_id, ready_timeout, processing_timeout, confirm_timeout, retention, history")
    if s.engine == "pg":
        buf = io.StringIO()
        for r in rows:
            buf.write("\t".join(str(v) for v in r) + "\n")
        c = pg_cluster()
        subprocess.run([os.path.join(c.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                        "-h", c.sock, "-p", str(c.port), "-U", "postgres", "-d", s.db_name,
                        "-c", f"COPY sessions ({cols}) FROM STDIN"],
                       input=buf.getvalue(), check=True, text=True, timeout=600)
        # what autovacuum does after a bulk load: statistics, and the visibility map that lets
        # PostgreSQL answer from an index alone
        c.psql("VACUUM ANALYZE sessions", s.db_name)
        c.psql("ANALYZE firmware", s.db_name)
        return
    db = sqlite3.connect(os.path.join(s.data_dir, "devicehub.db"))
    db.executemany(f"INSERT INTO sessions ({cols}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.commit()
    db.close()


def plans(s, product):
    out = []
    for name, sql in (("count", COUNT_SQL), ("page", PAGE_SQL)):
        if s.engine == "pg":
            sql = sql.replace("?1", f"'{product}'")
            lines = [r[0] for r in s.db_rows("EXPLAIN " + sql)]
        else:
            db = sqlite3.connect(os.path.join(s.data_dir, "devicehub.db"))
            lines = ["  " * 0 + r[3] for r in
                     db.execute("EXPLAIN QUERY PLAN " + sql, (product,)).fetchall()]
            db.close()
        out.append(f"  {name}:\n" + "\n".join("    " + ln for ln in lines))
    return "\n".join(out)


def timed(c, params, rounds):
    ms = []
    body = None
    for _ in range(rounds):
        t = time.perf_counter()
        r = c.get(FU, params=params)
        ms.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text
        body = r.json()
    ms.sort()
    return statistics.median(ms), ms[int(len(ms) * 0.9) - 1], body


def measure(s, token, admin_token, rounds, per_product):
    c = Client(s, token)
    res = {}
    cases = {"product, page 1": {"limit": 50},
             "product, offset 4000": {"limit": 50, "offset": 4000},
             "product, last page": {"limit": 50, "offset": per_product - 50}}
    for name, params in cases.items():
        med, p90, body = timed(c, params, rounds)
        res[name] = (med, p90, body["count"], [x["id"] for x in body["results"]])
    med, p90, body = timed(Client(s, admin_token), {"limit": 50}, rounds)
    res["unscoped, page 1"] = (med, p90, body["count"], [x["id"] for x in body["results"]])
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--engine", default="sqlite", choices=("sqlite", "pg"))
    ap.add_argument("--sessions", type=int, default=100000)
    ap.add_argument("--products", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=30)
    a = ap.parse_args()
    conftest.BIN = a.before
    s = Server(engine=a.engine).start()
    try:
        admin = Client(s, s.admin_token)
        products = []
        for i in range(a.products):
            p = admin.create("/api/v1/products/", {"tid": unique("p"), "name": f"P{i}"})
            m = admin.create("/api/v1/models/", {"tid": unique("m"), "name": "M",
                                                 "product": p["id"]})
            products.append((p["id"], m["id"]))
        dm = admin.create("/api/v1/delivery-methods/", {"tid": unique("dm"), "name": "H",
                                                        "kind": "http"})
        dp = admin.create("/api/v1/delivery-procedures/", {"tid": unique("dp"), "name": "P",
                                                           "delivery_method": dm["id"]})
        _, token = make_user(admin, ["update"], product=products[3][0])
        s.stop()
        load(s, a.sessions, products, dp["id"])
        per_product = a.sessions // a.products
        results = {}
        for label, binary in (("before", a.before), ("after", a.after)):
            conftest.BIN = binary
            t = time.perf_counter()
            s.start()
            start_ms = (time.perf_counter() - t) * 1000
            print(f"{label} ({binary}): start {start_ms:.0f} ms, plans:")
            print(plans(s, products[3][0]))
            results[label] = measure(s, token, s.admin_token, a.rounds, per_product)
            s.stop()
        print(f"\n{a.engine}, {a.sessions} sessions over {a.products} products, "
              f"median / p90 ms of {a.rounds} requests")
        print("| list | before | after |")
        print("|---|---|---|")
        for case in results["before"]:
            b, af = results["before"][case], results["after"][case]
            assert b[2:] == af[2:], f"{case}: the answers differ"
            print(f"| {case} (count {b[2]}) | {b[0]:.2f} / {b[1]:.2f} |"
                  f" {af[0]:.2f} / {af[1]:.2f} |")
    finally:
        s.cleanup()
        if conftest.CURRENT["cluster"] is not None:
            conftest.CURRENT["cluster"].stop()


if __name__ == "__main__":
    main()
