"""Simulated devices for scripts/bench: N threads, each one device running the whole flow
against a devicehubd (request, start, poll until created, ranged download, sha256 check,
confirm), all released at once. Prints one JSON object: counts, failures with reasons, and
per-step latency samples in milliseconds. Python threads, no asyncio, Debian's requests.
"""
import hashlib
import json
import sys
import threading
import time

import requests

STEPS = ("request", "start", "wait", "download", "confirm", "total")
POLL_S = 0.25
WAIT_LIMIT_S = 300.0
BUSY_RETRIES = 20


class Failure(Exception):
    pass


def call(sess, stats, method, url, **kw):
    """One HTTP call; honours Retry-After on 429/503 a bounded number of times."""
    for _ in range(BUSY_RETRIES):
        r = sess.request(method, url, timeout=120, **kw)
        if r.status_code in (429, 503):
            with stats["lock"]:
                stats["retries"] += 1
            time.sleep(float(r.headers.get("Retry-After", "1") or 1))
            continue
        return r
    raise Failure(f"{method} {url}: still busy after {BUSY_RETRIES} tries")


def device(i, cfg, barrier, stats):
    sess = requests.Session()
    sess.headers["Authorization"] = "Token " + cfg["token"]
    base = cfg["url"] + "/api/v1/firmware-update/"
    times = {}
    try:
        barrier.wait(timeout=120)
        t0 = time.monotonic()
        body = {"model": cfg["model"], "device_id": f"{cfg['prefix']}-{i:05d}",
                "current_channel": cfg["channel"], "current_firmware_version": "1.0.0",
                "delivery_procedure_tid": cfg["procedure"]}
        t = time.monotonic()
        r = call(sess, stats, "POST", base + "request", json=body)
        times["request"] = time.monotonic() - t
        if r.status_code != 201 or r.json().get("state") != "ready":
            raise Failure(f"request: {r.status_code} {r.text[:200]}")
        sid = r.json()["id"]
        t = time.monotonic()
        r = call(sess, stats, "POST", base + sid + "/start")
        times["start"] = time.monotonic() - t
        if r.status_code not in (200, 202):
            raise Failure(f"start: {r.status_code} {r.text[:200]}")
        t = time.monotonic()
        s = r.json()
        while s.get("state") not in ("created", "success", "fail", "unconfirmed"):
            if time.monotonic() - t > WAIT_LIMIT_S:
                raise Failure(f"wait: still {s.get('state')} after {WAIT_LIMIT_S} s")
            time.sleep(POLL_S)
            r = call(sess, stats, "GET", base + sid + "/")
            if r.status_code != 200:
                raise Failure(f"poll: {r.status_code} {r.text[:200]}")
            s = r.json()
        times["wait"] = time.monotonic() - t
        if s["state"] != "created":
            raise Failure(f"wait: ended in {s['state']}: {s.get('error')}")
        link, size = s["payload"]["download_link"], s["payload"]["size"]
        t = time.monotonic()
        h = hashlib.sha256()
        off = 0
        while off < size:
            end = min(off + cfg["chunk"], size) - 1
            r = call(sess, stats, "GET", link, headers={"Range": f"bytes={off}-{end}"})
            if r.status_code != 206 or len(r.content) != end - off + 1:
                raise Failure(f"download at {off}: {r.status_code} {len(r.content)} bytes")
            h.update(r.content)
            off = end + 1
        times["download"] = time.monotonic() - t
        ok = h.hexdigest() == s["payload"]["sha256"]
        t = time.monotonic()
        body = {"success": True} if ok else {"success": False, "message": "sha256 mismatch"}
        r = call(sess, stats, "POST", base + sid + "/confirm", json=body)
        times["confirm"] = time.monotonic() - t
        if not ok:
            raise Failure("download: sha256 mismatch")
        if r.status_code != 200 or r.json().get("state") != "success":
            raise Failure(f"confirm: {r.status_code} {r.text[:200]}")
        times["total"] = time.monotonic() - t0
        with stats["lock"]:
            stats["ok"] += 1
            for k, v in times.items():
                stats["lat"][k].append(v * 1000.0)
    except (Failure, requests.RequestException, ValueError, KeyError,
            threading.BrokenBarrierError) as e:
        with stats["lock"]:
            stats["failed"] += 1
            if len(stats["errors"]) < 20:
                stats["errors"].append(f"device {i}: {type(e).__name__}: {e}")
    finally:
        sess.close()


def main():
    cfg = json.loads(sys.argv[1])
    n = cfg["devices"]
    stats = {"lock": threading.Lock(), "ok": 0, "failed": 0, "retries": 0, "errors": [],
             "lat": {k: [] for k in STEPS}}
    threading.stack_size(256 * 1024)
    barrier = threading.Barrier(n)
    threads = [threading.Thread(target=device, args=(i, cfg, barrier, stats), daemon=True)
               for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_LIMIT_S * 2)
    stuck = sum(1 for t in threads if t.is_alive())
    out = {"devices": n, "ok": stats["ok"], "failed": stats["failed"] + stuck,
           "retries": stats["retries"], "errors": stats["errors"],
           "elapsed_s": time.monotonic() - t0, "lat_ms": stats["lat"]}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
