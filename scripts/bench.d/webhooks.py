"""Webhook measurements (never part of the test suite): what the outbox costs the requests
that cause events, and how fast the sender drains a backlog. Starts a release devicehubd
(--webhook-allow-private) and an nginx answering 204 on a free port, both in a temp dir, and
ends both in `finally`.

1. /request (a session without a device: one session.created event each) with wrk for
   BENCH_SECONDS at 16 connections, with 0, 1 and 10 webhooks subscribed to it, in
   BENCH_ROUNDS alternating rounds: with the receiver up (the nginx: the sender delivers
   alongside, as in production) and away (a closed port: the outbox rows are written, the
   sender fails once and waits), which isolates what the outbox adds to the request itself.
2. The backlog those runs left, and then BENCH_EVENTS events written with the receiver
   paused (a closed port) and sent once it is back: deliveries per second with
   --webhook-endpoint-concurrency 1 (strict order) and 8.

Usage: webhooks.py ROOT DEVICEHUBD (a release build: scripts/bench builds build-bench).
Environment: BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_EVENTS (2000), BENCH_KEEP=1 keeps the
temp dir.
"""
import json
import os
import re
import shutil
import statistics
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import requests

ROOT, BIN = sys.argv[1], sys.argv[2]
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "2000"))
ADMIN = "bench-admin-" + uuid.uuid4().hex
procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def start_hub(tmp, name, extra):
    port = free_port()
    log = open(os.path.join(tmp, name + ".log"), "ab")
    p = subprocess.Popen([BIN, "--listen", "127.0.0.1", "--port", str(port), "--data-dir",
                          os.path.join(tmp, name), "--log-level", "warn",
                          "--webhook-allow-private"] + extra,
                         stdout=log, stderr=log, env=dict(os.environ, DEVICEHUB_ADMIN_TOKEN=ADMIN))
    procs.append(p)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/healthz")
    return p, url


def start_nginx(tmp, port):
    conf = os.path.join(tmp, "nginx.conf")
    user = "user root root;" if os.geteuid() == 0 else ""
    with open(conf, "w") as f:
        f.write(f"""{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{ listen 127.0.0.1:{port}; location / {{ return 204; }} }}
}}
""")
    log = open(os.path.join(tmp, "nginx.out"), "ab")
    p = subprocess.Popen(["nginx", "-p", tmp, "-c", conf], stdout=log, stderr=log)
    procs.append(p)
    wait_http(f"http://127.0.0.1:{port}/")
    return p


def api(url, method, path, **kw):
    r = requests.request(method, url + path, headers={"Authorization": f"Token {ADMIN}"},
                         timeout=60, **kw)
    if r.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
    return r.json() if r.content else None


def catalogue(url):
    api(url, "POST", "/api/v1/products/", json={"tid": "b", "name": "B"})
    api(url, "POST", "/api/v1/models/", json={"tid": "bm", "name": "BM", "product": "b"})
    api(url, "POST", "/api/v1/channels/", json={"tid": "stable", "name": "stable"})
    api(url, "POST", "/api/v1/delivery-methods/", json={"tid": "http", "name": "H",
                                                        "kind": "http"})
    api(url, "POST", "/api/v1/delivery-procedures/",
        json={"tid": "link", "name": "L", "delivery_method": "http",
              "steps": [{"plugin": "link"}], "ready_timeout": 86400, "retention": 86400})


def wrk_request(url, tmp):
    body = json.dumps({"model": "bm", "current_channel": "stable",
                       "current_firmware_version": "1.0.0", "delivery_procedure_tid": "link"})
    script = os.path.join(tmp, "req.lua")
    with open(script, "w") as f:
        f.write(f"""wrk.method = "POST"
wrk.headers["Authorization"] = "Token {ADMIN}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{body}'
done = function(s, l, r)
  io.write(string.format('WRKJSON {{"requests":%d,"us":%d,"errors":%d}}\\n', s.requests,
    s.duration, s.errors.status + s.errors.connect + s.errors.read + s.errors.timeout))
end
""")
    out = subprocess.run(["wrk", "-t", "2", "-c", "16", "-d", f"{SECONDS}s", "-s", script,
                          url + "/api/v1/firmware-update/request"],
                         capture_output=True, text=True, timeout=SECONDS + 60)
    r = json.loads(re.search(r"^WRKJSON (.*)$", out.stdout, re.M).group(1))
    return r["requests"] / (r["us"] / 1e6), r["errors"]


def pending(url):
    text = requests.get(url + "/metrics", timeout=30).text
    return int(re.search(r'devicehub_webhook_deliveries\{status="pending"\} (\d+)', text).group(1))


def drain(url, timeout=600):
    t0 = time.monotonic()
    n0 = pending(url)
    while pending(url) and time.monotonic() - t0 < timeout:
        time.sleep(0.1)
    return n0, time.monotonic() - t0


def main():
    tmp = tempfile.mkdtemp(prefix="dh-bench-wh-")
    try:
        port = free_port()
        dead = free_port()  # nothing listens there: the sender fails once and waits
        nginx = start_nginx(tmp, port)
        cases = [("0", 0, port), ("1", 1, port), ("1, away", 1, dead), ("10", 10, port),
                 ("10, away", 10, dead)]
        results = {name: [] for name, _, _ in cases}
        for rnd in range(ROUNDS):
            for name, n, target in cases:
                hub, url = start_hub(tmp, f"r{rnd}-{n}-{target}",
                                     ["--webhook-retry-base-ms", "600000"])
                catalogue(url)
                for i in range(n):
                    api(url, "POST", "/api/v1/webhooks/",
                        json={"url": f"http://127.0.0.1:{target}/h{i}",
                              "events": ["session.created"]})
                rps, errs = wrk_request(url, tmp)
                left, secs = drain(url) if target == port else (pending(url), 0)
                results[name].append((rps, errs, left, left / secs if left and secs else 0))
                hub.terminate()
                hub.wait(30)
        print(f"1. /request with webhooks subscribed to session.created; receiver nginx 204"
              f" or away (medians of {ROUNDS} alternating rounds)")
        print(f"{'webhooks':>10} {'requests/s':>11} {'vs none':>8} {'errors':>7}"
              f" {'backlog':>8} {'drained/s':>10}")
        base = statistics.median(r[0] for r in results["0"])
        for name, _, _ in cases:
            rs = results[name]
            rps = statistics.median(r[0] for r in rs)
            print(f"{name:>10} {rps:>11.0f} {rps / base:>8.2f} {sum(r[1] for r in rs):>7}"
                  f" {statistics.median(r[2] for r in rs):>8.0f}"
                  f" {statistics.median(r[3] for r in rs):>10.0f}")
        print(f"2. draining {EVENTS} events queued while the receiver was away (one webhook;"
              f" medians of {ROUNDS})")
        for conc in (1, 8):
            rates = []
            for rnd in range(ROUNDS):
                nginx.terminate()
                nginx.wait(30)
                hub, url = start_hub(tmp, f"drain{conc}-{rnd}",
                                     ["--webhook-endpoint-concurrency", str(conc),
                                      "--webhook-retry-base-ms", "60000"])
                api(url, "POST", "/api/v1/webhooks/",
                    json={"url": f"http://127.0.0.1:{port}/d", "events": ["object.created"]})
                for i in range(EVENTS):
                    api(url, "POST", "/api/v1/channels/", json={"tid": f"c{i}", "name": "c"})
                nginx = start_nginx(tmp, port)
                # the first attempt failed and waits a minute: redeliver it to start now
                w = api(url, "GET", "/api/v1/webhooks/")["results"][0]
                first = api(url, "GET", f"/api/v1/webhooks/{w['id']}/deliveries/",
                            params={"limit": 1, "offset": EVENTS - 1})["results"][0]
                api(url, "POST",
                    f"/api/v1/webhooks/{w['id']}/deliveries/{first['id']}/redeliver")
                left, secs = drain(url)
                rates.append(left / secs if secs else 0)
                hub.terminate()
                hub.wait(30)
            print(f"   endpoint concurrency {conc}: {statistics.median(rates):.0f} deliveries/s")
    finally:
        # SIGTERM first: an nginx master killed outright leaves its workers behind
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        if os.environ.get("BENCH_KEEP"):
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
