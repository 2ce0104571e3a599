"""The benchmark driver behind scripts/bench: starts a release devicehubd and an nginx (own
config in a temp dir, free ports, current user) serving the same 1 MiB image, measures with
wrk in alternating rounds, runs the 1000-device load and the 100 000-session memory check,
and prints one table of ratios against the targets of DESIGN.md. Every process it starts is
ended in `finally` (scripts/bench also traps signals). Never part of the test suite.

The CoAP case fetches a 256 KiB image block-wise (1024-byte blocks) with libcoap's
coap-client, from devicehubd's coap_link and from libcoap's own example coap-server holding
the same bytes (PUT into a dynamic resource), alternating, BENCH_COAP_FETCHES fetches per
round and side.

Usage: bench.py ROOT DEVICEHUBD  (environment: BENCH_ROUNDS, BENCH_SECONDS, BENCH_DEVICES,
BENCH_SESSIONS, BENCH_COAP_FETCHES, BENCH_ONLY=coap for the CoAP case alone,
BENCH_ONLY=downloads for the whole-image and Range cases alone, BENCH_ONLY=fleet
for the fleet cases alone (fleet.py: BENCH_FLEET, BENCH_FLEET_SECONDS, BENCH_FLEET_ROUNDS,
BENCH_FLEET_RAMP, BENCH_FLEET_BUFFER, BENCH_FLEET_RCVBUF, BENCH_FLEET_STALL, BENCH_FLEET_IDLE,
BENCH_FLEET_MHD=1 for devicehubd with --http-direct=false as a third side), BENCH_ONLY=db for
only the database-bound cases: 4 KiB Range, session GET and /request on SQLite, then the same
on PostgreSQL and on two servers sharing one PostgreSQL, with CPU time per request;
BENCH_KEEP=1 to keep the temp dir).
"""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import requests

import fleet

ROOT, BIN = sys.argv[1], sys.argv[2]
ONLY = os.environ.get("BENCH_ONLY", "")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
DEVICES = int(os.environ.get("BENCH_DEVICES", "1000"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "100000"))
COAP_FETCHES = int(os.environ.get("BENCH_COAP_FETCHES", "20"))
# Fleet cases: clients x KiB/s each; seconds and rounds per server and case.
FLEET = os.environ.get("BENCH_FLEET", "4000x32,10000x8")
FLEET_SECONDS = int(os.environ.get("BENCH_FLEET_SECONDS", "40"))
FLEET_ROUNDS = int(os.environ.get("BENCH_FLEET_ROUNDS", "2"))
# Also devicehubd with --http-direct=false (all through libmicrohttpd), for information.
FLEET_MHD = os.environ.get("BENCH_FLEET_MHD", "") == "1"
# Idle keep-alive connections for the memory-per-connection figure; 0: not measured.
FLEET_IDLE = int(os.environ.get("BENCH_FLEET_IDLE", "4000"))
FLEET_CLIENT = os.path.join(os.path.dirname(os.path.dirname(BIN)), "scripts", "bench.d",
                            "dh-fleet")
IMAGE_SIZE = 1 << 20
COAP_IMAGE_SIZE = 256 * 1024
ADMIN = "bench-admin-" + uuid.uuid4().hex
THREADS = max(1, min(os.cpu_count() or 1, 8))
PYTHON = "/usr/bin/python3"
CLI = os.path.join(ROOT, "scripts", "devicehub")

procs = []  # every process started here, ended in cleanup()
rows = []  # the final table: (case, metric, dh, ref, ratio, target, ok)


def note(msg):
    sys.stderr.write(f"bench: {msg}\n")
    sys.stderr.flush()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
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
    raise RuntimeError(f"{url} did not answer within {timeout} s")


HELP = None


def supported(flag_and_value):
    """The flag if this devicehubd has it (an older build, measured for before/after, may
    not), else nothing."""
    global HELP
    if HELP is None:
        HELP = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
    return flag_and_value if flag_and_value[0] in HELP else []


class Hub:
    """A devicehubd process on a data dir (and a --database URL, when given)."""

    def __init__(self, tmp, data_dir, database=None):
        self.tmp, self.data_dir, self.proc, self.port = tmp, data_dir, None, None
        self.coap_port = free_udp_port()
        self.max_connections = 4096
        self.database = database
        self.extra = []

    def start(self):
        self.port = free_port()
        env = dict(os.environ, DEVICEHUB_ADMIN_TOKEN=ADMIN)
        log = open(os.path.join(self.tmp, "devicehubd.log"), "ab")
        self.proc = subprocess.Popen(
            [BIN, "--listen", "127.0.0.1", "--port", str(self.port), "--data-dir",
             self.data_dir, "--max-connections", str(self.max_connections), "--log-level",
             "warn"]
            + supported(["--coap-port", str(self.coap_port)])
            # every client is on loopback and shares a token: the per-address and
            # per-token limits are for fleets, not for a load generator
            + supported(["--max-connections-per-address", "0"])
            + supported(["--rate-limit", "0"])
            + (["--database", self.database] if self.database else []) + self.extra,
            stdout=log, stderr=log, env=env)
        procs.append(self.proc)
        wait_http(self.url + "/healthz")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def status_kib(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0


def start_nginx(tmp, image, connections=8192, name="nginx"):
    """An nginx of our own on a free port serving image at /image.bin. For a fleet
    (connections above 8192) each worker may hold all of them, its descriptor limit is the
    hard one, and open descriptors of the image are shared (open_file_cache), as devicehubd
    shares them: without that, nginx holds two descriptors per download."""
    port = free_port()
    conf = os.path.join(tmp, name + ".conf")
    user = ""
    if os.geteuid() == 0:
        # As root nginx would switch its workers to nobody; keep them as the current user.
        user = "user root root;"
    fleet_conf = ""
    if connections > 8192:
        import resource
        fleet_conf = (f"worker_rlimit_nofile {resource.getrlimit(resource.RLIMIT_NOFILE)[1]};")
    with open(conf, "w") as f:
        f.write(f"""{user}
worker_processes auto;
daemon off;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}-error.log warn;
{fleet_conf}
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    {"open_file_cache max=64 inactive=60s; keepalive_timeout 120s;" if fleet_conf else ""}
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /image.bin {{ alias {image}; default_type application/octet-stream; }}
        location = /ok {{ return 200 "ok"; }}
    }}
}}
""")
    log = open(os.path.join(tmp, name + ".out"), "ab")
    p = subprocess.Popen(["nginx", "-p", tmp, "-c", conf], stdout=log, stderr=log)
    procs.append(p)
    wait_http(f"http://127.0.0.1:{port}/ok")
    return f"http://127.0.0.1:{port}", p


WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def lua(tmp, name, body):
    path = os.path.join(tmp, name + ".lua")
    with open(path, "w") as f:
        f.write(body + WRK_DONE)
    return path


def parse_wrk(text):
    m = re.search(r"^WRKJSON (.*)$", text, re.M)
    if not m:
        raise RuntimeError(f"wrk gave no result: {text}")
    r = json.loads(m.group(1))
    secs = r["duration_us"] / 1e6
    r["rps"] = r["requests"] / secs
    r["mibps"] = r["bytes"] / secs / (1 << 20)
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return r


def wrk(url, conns, script, seconds=SECONDS):
    threads = min(THREADS, conns)
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s",
                          "--timeout", "10s", "-s", script, url],
                         capture_output=True, text=True, timeout=seconds + 60)
    return parse_wrk(out.stdout + out.stderr)


def alternate(name, runs):
    """Runs each (label, fn) pair ROUNDS times, alternating, and returns per-label lists."""
    res = {label: [] for label, _ in runs}
    for rnd in range(ROUNDS):
        order = runs if rnd % 2 == 0 else list(reversed(runs))
        for label, fn in order:
            r = fn()
            res[label].append(r)
            note(f"{name} round {rnd + 1} {label}: "
                 + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in r.items()
                             if k in ("rps", "mibps", "errors", "ms", "cpu", "cpu_us")))
    return res


def ratio_row(case, metric, dh_runs, ref_runs, target, key):
    """Median of per-round ratios (rounds alternate, so each pair shares the machine's
    state), plus the medians of the absolute values."""
    ratios = [d[key] / r[key] if r[key] else 0.0 for d, r in zip(dh_runs, ref_runs)]
    dh = statistics.median(d[key] for d in dh_runs)
    ref = statistics.median(r[key] for r in ref_runs)
    q = statistics.median(ratios)
    errs = sum(d.get("errors", 0) for d in dh_runs)
    rows.append((case, metric, dh, ref, q, f">= {target}", q >= target and errs == 0,
                 f"errors {errs}" if errs else ""))


def api(hub, method, path, **kw):
    r = requests.request(method, hub.url + path, headers={"Authorization": f"Token {ADMIN}"},
                         timeout=60, **kw)
    if r.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
    return r.json() if r.content else None


def cli(hub, *args):
    env = dict(os.environ, DEVICEHUB_URL=hub.url, DEVICEHUB_TOKEN=ADMIN)
    out = subprocess.run([PYTHON, CLI, "--json", "-q"] + list(args), env=env,
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"devicehub {' '.join(args)}: {out.stderr}")
    return json.loads(out.stdout) if out.stdout.strip() else None


def setup_catalogue(hub, image):
    cli(hub, "product", "create", "--tid", "bench", "--name", "Bench")
    cli(hub, "model", "create", "--tid", "bench-m", "--name", "Bench model", "--product", "bench")
    cli(hub, "channel", "create", "--tid", "stable", "--name", "stable")
    cli(hub, "method", "create", "--tid", "http", "--name", "HTTP", "--kind", "http")
    # Long timeouts: nothing may expire (or be deleted) while the bench runs.
    day = "86400"
    cli(hub, "procedure", "create", "--tid", "link", "--name", "Link", "--delivery-method",
        "http", "--steps", '[{"plugin": "link"}]', "--confirm", "true", "--ready-timeout", day,
        "--processing-timeout", day, "--confirm-timeout", day, "--retention", "31536000")
    fw = cli(hub, "firmware", "upload", image, "--model", "bench-m", "--version", "2.0.0",
             "--channel", "stable")
    return fw


def request_body(device_id=None):
    body = {"model": "bench-m", "current_channel": "stable",
            "current_firmware_version": "1.0.0", "delivery_procedure_tid": "link"}
    if device_id:
        body["device_id"] = device_id
    return body


def created_session(hub):
    s = api(hub, "POST", "/api/v1/firmware-update/request", json=request_body("bench-dev-0"))
    api(hub, "POST", f"/api/v1/firmware-update/{s['id']}/start")
    deadline = time.monotonic() + 60
    while s["state"] != "created" and time.monotonic() < deadline:
        time.sleep(0.05)
        s = api(hub, "GET", f"/api/v1/firmware-update/{s['id']}/")
    if s["state"] != "created":
        raise RuntimeError(f"session did not reach created: {s}")
    return s


def coap_tool(kind):
    """libcoap3-bin's coap-client or coap-server (Debian names them by TLS library)."""
    for suffix in ("", "-gnutls", "-openssl", "-notls"):
        path = shutil.which(f"coap-{kind}{suffix}")
        if path:
            return path
    raise RuntimeError(f"no coap-{kind}: install libcoap3-bin")


def coap_fetch(url, out, digest):
    """One block-wise GET at 1024-byte blocks with coap-client; its wall time in ms."""
    t0 = time.perf_counter()
    r = subprocess.run([coap_tool("client"), "-B", "30", "-b", "1024", "-o", out, url],
                       capture_output=True, timeout=60)
    ms = (time.perf_counter() - t0) * 1000
    with open(out, "rb") as f:
        got = hashlib.sha256(f.read()).hexdigest()
    if r.returncode != 0 or got != digest:
        raise RuntimeError(f"coap-client {url}: rc {r.returncode}, sha256 {got}: "
                           + r.stderr.decode(errors="replace")[-500:])
    return ms


def coap_case(hub, tmp):
    """devicehubd's coap_link against libcoap's example coap-server on the same 256 KiB."""
    image = os.path.join(tmp, "coap-image.bin")
    data = os.urandom(COAP_IMAGE_SIZE)
    with open(image, "wb") as f:
        f.write(data)
    digest = hashlib.sha256(data).hexdigest()
    cli(hub, "model", "create", "--tid", "bench-coap", "--name", "CoAP model", "--product",
        "bench")
    cli(hub, "method", "create", "--tid", "coap", "--name", "CoAP", "--kind", "coap")
    day = "86400"
    cli(hub, "procedure", "create", "--tid", "coap-link", "--name", "CoAP link",
        "--delivery-method", "coap", "--steps", '[{"plugin": "link"}]', "--confirm", "true",
        "--ready-timeout", day, "--processing-timeout", day, "--confirm-timeout", day,
        "--retention", "31536000")
    cli(hub, "firmware", "upload", image, "--model", "bench-coap", "--version", "2.0.0",
        "--channel", "stable")
    body = dict(request_body("bench-coap-0"), model="bench-coap",
                delivery_procedure_tid="coap-link")
    s = api(hub, "POST", "/api/v1/firmware-update/request", json=body)
    api(hub, "POST", f"/api/v1/firmware-update/{s['id']}/start")
    deadline = time.monotonic() + 60
    while s["state"] != "created" and time.monotonic() < deadline:
        time.sleep(0.05)
        s = api(hub, "GET", f"/api/v1/firmware-update/{s['id']}/")
    dh_url = s["payload"]["coap_link"]

    port = free_udp_port()
    log = open(os.path.join(tmp, "coap-server.log"), "ab")
    ref = subprocess.Popen([coap_tool("server"), "-A", "127.0.0.1", "-p", str(port), "-d", "4"],
                           stdout=log, stderr=log)
    procs.append(ref)
    ref_url = f"coap://127.0.0.1:{port}/image"
    deadline = time.monotonic() + 10
    while True:  # coap-server binds at once; retry the upload until it answers
        r = subprocess.run([coap_tool("client"), "-B", "5", "-m", "put", "-b", "1024", "-f",
                            image, ref_url], capture_output=True, timeout=60)
        try:
            coap_fetch(ref_url, os.path.join(tmp, "coap-check.bin"), digest)
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    out = os.path.join(tmp, "coap-out.bin")
    note(f"CoAP: devicehubd {dh_url}, coap-server {ref_url}")

    def cpu_ms(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    def side(url, pid):
        def one():
            c0 = cpu_ms(pid)
            ms = statistics.median(coap_fetch(url, out, digest) for _ in range(COAP_FETCHES))
            return {"ms": ms, "cpu": (cpu_ms(pid) - c0) / COAP_FETCHES}
        return one

    res = alternate("coap 256 KiB Block2 1024", [("devicehubd", side(dh_url, hub.proc.pid)),
                                                 ("coap-server", side(ref_url, ref.pid))])
    dh_runs, ref_runs = res["devicehubd"], res["coap-server"]
    ratios = [d["ms"] / r["ms"] for d, r in zip(dh_runs, ref_runs)]
    q = statistics.median(ratios)
    rows.append(("CoAP 256 KiB, Block2 1024 B", "ms/fetch",
                 statistics.median(d["ms"] for d in dh_runs),
                 statistics.median(r["ms"] for r in ref_runs), q, "<= 1.5", q <= 1.5, ""))
    cpu_dh = statistics.median(d["cpu"] for d in dh_runs)
    cpu_ref = statistics.median(r["cpu"] for r in ref_runs)
    rows.append(("CoAP 256 KiB, server CPU", "ms/fetch", cpu_dh, cpu_ref,
                 cpu_dh / cpu_ref if cpu_ref else 0.0, "(info)", True, ""))
    d = api(hub, "GET", f"/api/v1/firmware-update/{s['id']}/")["delivered"]
    note(f"CoAP session delivered: {d}")


# The shape of the server's sessions table (migrations/sqlite/0002_sessions.sql and 0007)
# without its foreign keys: the same columns and indexes, so the raw rate writes comparable rows.
RAW_SCHEMA = """
CREATE TABLE sessions (id TEXT PRIMARY KEY, create_time TEXT NOT NULL,
    update_time TEXT NOT NULL, creator TEXT NOT NULL DEFAULT '', creator_id TEXT,
    state TEXT NOT NULL, finished INTEGER NOT NULL DEFAULT 0, expire_us INTEGER,
    delivery_procedure_id TEXT NOT NULL, product_id TEXT NOT NULL, model_id TEXT NOT NULL,
    channel_id TEXT, device_ref TEXT, device_name TEXT, current_firmware_id TEXT,
    current_version TEXT, target_firmware_id TEXT, target_version TEXT,
    allow_draft INTEGER NOT NULL DEFAULT 0, steps TEXT NOT NULL DEFAULT '[]',
    needs_confirm INTEGER NOT NULL DEFAULT 0, ready_timeout INTEGER NOT NULL,
    processing_timeout INTEGER NOT NULL, confirm_timeout INTEGER NOT NULL,
    retention INTEGER NOT NULL, base_url TEXT NOT NULL DEFAULT '', queue_us INTEGER,
    lease_owner TEXT, lease_until INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    payload TEXT NOT NULL DEFAULT '{}', error TEXT, history TEXT NOT NULL DEFAULT '[]');
CREATE INDEX sessions_expire ON sessions(expire_us) WHERE finished = 0;
CREATE INDEX sessions_queue ON sessions(state, queue_us);
CREATE INDEX sessions_model ON sessions(model_id, create_time);
CREATE INDEX sessions_device ON sessions(device_ref);
CREATE INDEX sessions_created ON sessions(create_time, id);
CREATE INDEX sessions_product ON sessions(product_id, create_time, id, target_firmware_id);
"""
RAW_INSERT = """INSERT INTO sessions (id, create_time, update_time, creator, creator_id, state,
    expire_us, delivery_procedure_id, product_id, model_id, channel_id, current_version,
    target_firmware_id, target_version, steps, needs_confirm, ready_timeout,
    processing_timeout, confirm_timeout, retention, base_url, history)
    VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"""


def raw_insert_rate(tmp, seconds):
    """One-row transactions into a sessions-shaped table, WAL and synchronous=NORMAL as the
    server uses, on the same disk as its data dir, from one Python thread."""
    path = os.path.join(tmp, f"raw-{uuid.uuid4().hex}.db")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(RAW_SCHEMA)
    ids = [str(uuid.uuid4()) for _ in range(4)]
    now = "2026-01-01T00:00:00.000000+00:00"
    n = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        db.execute("BEGIN")
        db.execute(RAW_INSERT, (
            str(uuid.uuid4()), now, now, "admin", ids[0], "ready", 1767225600000000 + n,
            ids[1], ids[2], ids[3], ids[0], "1.0.0", ids[1], "2.0.0", '[{"plugin":"link"}]',
            1, 86400, 86400, 86400, 31536000, "http://127.0.0.1:8080",
            '[{"state":"ready","time":"' + now + '"}]'))
        db.execute("COMMIT")
        n += 1
    el = time.monotonic() - t0
    db.close()
    for suffix in ("", "-wal", "-shm"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
    return {"rps": n / el, "errors": 0}


def cpu_s(pid):
    """User plus system CPU seconds of process pid so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_cpu(pids, fn):
    """Runs fn() (a wrk result) and adds the CPU microseconds per request of the processes
    (a server; nginx's master and workers), which the machine's load moves far less than
    the rates."""
    before = fleet.cpu_s(pids)
    r = fn()
    r["cpu_us"] = (fleet.cpu_s(pids) - before) * 1e6 / max(1, r["requests"])
    return r


def cpu_req_row(case, dh_runs, ref_runs):
    """Server CPU per request of both sides (for information): median of per-round ratios."""
    ratios = [d["cpu_us"] / r["cpu_us"] for d, r in zip(dh_runs, ref_runs) if r["cpu_us"]]
    rows.append((case, "CPU us/req", statistics.median(d["cpu_us"] for d in dh_runs),
                 statistics.median(r["cpu_us"] for r in ref_runs),
                 statistics.median(ratios) if ratios else 0.0, "(info)", True, ""))


def measured(hubs, fn):
    """Runs fn() (a wrk result) and adds the hubs' CPU microseconds per request."""
    before = [cpu_s(h.proc.pid) for h in hubs]
    r = fn()
    used = sum(cpu_s(h.proc.pid) - b for h, b in zip(hubs, before))
    r["cpu_us"] = used * 1e6 / max(1, r["requests"])
    return r


def wrk_many(urls, conns, script):
    """wrk against several URLs at once (conns each); the summed rates."""
    out = {}
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, url in enumerate(urls):
            f = open(os.path.join(d, f"wrk{i}.out"), "w+")
            p = subprocess.Popen(["wrk", "-t", str(max(1, THREADS // len(urls))), "-c",
                                  str(conns), "-d", f"{SECONDS}s", "--timeout", "10s", "-s",
                                  script, url],
                                 stdout=f, stderr=subprocess.STDOUT)
            procs.append(p)
            files.append((p, f))
        total = {"requests": 0, "rps": 0.0, "errors": 0}
        for p, f in files:
            p.wait(SECONDS + 60)
            f.seek(0)
            r = parse_wrk(f.read())
            for k in total:
                total[k] += r[k]
            f.close()
        out = total
    return out


def cpu_row(case, metric, runs, ref_runs, key="rps"):
    """An informational row: the value, the reference (SQLite), their ratio and CPU per
    request in the last column."""
    dh = statistics.median(r[key] for r in runs)
    ref = statistics.median(r[key] for r in ref_runs) if ref_runs else 0.0
    cpu = statistics.median(r["cpu_us"] for r in runs)
    errs = sum(r.get("errors", 0) for r in runs)
    rows.append((case, metric, dh, ref, dh / ref if ref else 0.0, "-", errs == 0,
                 f"{cpu:.0f} us CPU/req" + (f", errors {errs}" if errs else "")))


def pg_cases(tmp, image, sqlite_runs):
    """/request and session GET on PostgreSQL (one server), then two servers on one
    PostgreSQL, against the SQLite server's numbers of this run."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "api"))
    import pgcluster
    if not pgcluster.pg_bindir():
        note("PostgreSQL is not installed: no PostgreSQL rows")
        return
    cluster = pgcluster.Cluster()
    try:
        cluster.start()
        url = cluster.url(cluster.create_db())
        a = Hub(tmp, os.path.join(tmp, "var-pg-a"), url).start()
        setup_catalogue(a, image)
        s = created_session(a)
        auth = f'wrk.headers["Authorization"] = "Token {ADMIN}"\n'
        get = lua(tmp, "get", auth)
        post = lua(tmp, "request-pg", auth + f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{json.dumps(request_body())}'
""")
        path = f"/api/v1/firmware-update/{s['id']}/"
        one = {"get": [], "request": []}
        for _ in range(ROUNDS):
            one["get"].append(measured([a], lambda: wrk(a.url + path, 64, get)))
            one["request"].append(measured(
                [a], lambda: wrk(a.url + "/api/v1/firmware-update/request", 16, post)))
        cpu_row("GET session c64, PostgreSQL", "req/s", one["get"], sqlite_runs["get"])
        cpu_row("/request c16, PostgreSQL", "sessions/s", one["request"],
                sqlite_runs["request"])
        b = Hub(tmp, os.path.join(tmp, "var-pg-b"), url).start()
        two = {"get": [], "request": []}
        for _ in range(ROUNDS):
            two["get"].append(measured([a, b], lambda: wrk_many(
                [a.url + path, b.url + path], 32, get)))
            two["request"].append(measured([a, b], lambda: wrk_many(
                [a.url + "/api/v1/firmware-update/request",
                 b.url + "/api/v1/firmware-update/request"], 8, post)))
        cpu_row("GET session, 2 servers x c32, PG", "req/s", two["get"], sqlite_runs["get"])
        cpu_row("/request, 2 servers x c8, PG", "sessions/s", two["request"],
                sqlite_runs["request"])
        a.stop()
        b.stop()
    finally:
        cluster.stop()


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100.0 * (len(v) - 1))))]


def session_count(hub):
    return api(hub, "GET", "/api/v1/firmware-update/", params={"limit": 1})["count"]


def fill_sessions(hub, tmp, target):
    """POSTs /request (no device) with wrk until `target` sessions are stored."""
    script = lua(tmp, "fill", f"""
wrk.method = "POST"
wrk.headers["Authorization"] = "Token {ADMIN}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{json.dumps(request_body())}'
""")
    for _ in range(200):
        have = session_count(hub)
        if have >= target:
            return have
        wrk(hub.url + "/api/v1/firmware-update/request", 32, script, seconds=10)
    return session_count(hub)


def fleet_cases(hub, tmp, image, link):
    """The fleet storm of DESIGN.md: BENCH_FLEET cases, each against a fresh devicehubd
    and a fresh nginx, rounds alternating."""
    if not os.path.exists(FLEET_CLIENT):
        raise RuntimeError(f"{FLEET_CLIENT} missing: build build-bench with meson")
    cases = fleet.parse_cases(FLEET)
    most = max([n for n, _ in cases] + [FLEET_IDLE])  # nginx must hold the idle case too
    path = "/" + link.split("://", 1)[1].split("/", 1)[1]
    ngx_proc = []

    def start_hub(extra=()):
        hub.stop()
        hub.max_connections = max(hub.max_connections, 16384)
        hub.extra = list(extra)
        hub.start()
        note(f"devicehubd {' '.join(extra)} pid {hub.proc.pid} on {hub.url}")
        return hub.url + path, [f"Authorization: Token {ADMIN}"], [hub.proc.pid]

    def start_ngx():
        for p in ngx_proc:
            p.terminate()
            p.wait(30)
        ngx_proc.clear()
        url, p = start_nginx(tmp, image, connections=most + 1024, name="nginx-fleet")
        ngx_proc.append(p)
        pids = fleet.proc_tree(p.pid)
        note(f"nginx pids {pids} on {url}")
        return url + "/image.bin", [], pids

    sides = [("devicehubd", start_hub), ("nginx", start_ngx)]
    if FLEET_MHD:
        sides.append(("libmicrohttpd path", lambda: start_hub(["--http-direct=false"])))
    fleet.run_cases(sides, FLEET_CLIENT, image, cases, FLEET_SECONDS, FLEET_ROUNDS, note, rows)
    if FLEET_IDLE:
        fleet.idle_case(sides, FLEET_CLIENT, image, FLEET_IDLE, note, rows)
    start_hub()  # as the rest of the bench expects it


def main():
    # SIGTERM from scripts/bench's trap becomes SystemExit, so `finally` stops the children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="dh-bench-")
    note(f"temp dir {tmp}; {ROUNDS} rounds of {SECONDS} s; wrk threads {THREADS}")
    try:
        run(tmp)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


def run(tmp):
    image = os.path.join(tmp, "image.bin")
    with open(image, "wb") as f:
        f.write(os.urandom(IMAGE_SIZE))
    with open(image, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    hub = Hub(tmp, os.path.join(tmp, "var")).start()
    note(f"devicehubd pid {hub.proc.pid} on {hub.url}")
    fw = setup_catalogue(hub, image)
    assert fw["sha256"] == digest, (fw, digest)
    if ONLY == "fleet":
        fleet_cases(hub, tmp, image, created_session(hub)["payload"]["download_link"])
        print_rows()
        return
    if ONLY not in ("db", "downloads"):
        coap_case(hub, tmp)
    if ONLY == "coap":
        print_rows()
        return
    ngx, ngx_p = start_nginx(tmp, image)
    ngx_pids = fleet.proc_tree(ngx_p.pid)
    note(f"nginx on {ngx}")
    s = created_session(hub)
    link = s["payload"]["download_link"]
    check = requests.get(link, headers={"Authorization": f"Token {ADMIN}"}, timeout=30)
    assert hashlib.sha256(check.content).hexdigest() == digest
    assert hashlib.sha256(requests.get(ngx + "/image.bin").content).hexdigest() == digest

    auth = f'wrk.headers["Authorization"] = "Token {ADMIN}"\n'
    whole = lua(tmp, "whole", auth)
    ranged = lua(tmp, "range", auth + f"""
local blocks = {IMAGE_SIZE // 4096}
request = function()
  local off = math.random(0, blocks - 1) * 4096
  wrk.headers["Range"] = "bytes=" .. off .. "-" .. (off + 4095)
  return wrk.format(nil, nil, wrk.headers)
end
""")
    for conns in (16, 256) if ONLY != "db" else ():
        res = alternate(f"whole image c{conns}", [
            ("devicehubd", lambda c=conns: with_cpu([hub.proc.pid],
                                                    lambda: wrk(link, c, whole))),
            ("nginx", lambda c=conns: with_cpu(ngx_pids,
                                               lambda: wrk(ngx + "/image.bin", c, whole)))])
        ratio_row(f"whole 1 MiB image, c{conns}", "req/s", res["devicehubd"], res["nginx"],
                  0.9, "rps")
        ratio_row(f"whole 1 MiB image, c{conns}", "MiB/s", res["devicehubd"], res["nginx"],
                  0.9, "mibps")
        cpu_req_row(f"whole 1 MiB image, c{conns}", res["devicehubd"], res["nginx"])
    res = alternate("range 4 KiB c64", [
        ("devicehubd", lambda: with_cpu([hub.proc.pid], lambda: wrk(link, 64, ranged))),
        ("nginx", lambda: with_cpu(ngx_pids, lambda: wrk(ngx + "/image.bin", 64, ranged)))])
    ratio_row("4 KiB Range + auth, c64", "req/s", res["devicehubd"], res["nginx"], 0.8, "rps")
    ratio_row("4 KiB Range + auth, c64", "MiB/s", res["devicehubd"], res["nginx"], 0.8,
              "mibps")
    cpu_req_row("4 KiB Range + auth, c64", res["devicehubd"], res["nginx"])
    if ONLY == "downloads":
        print_rows()
        return
    get_sess = hub.url + f"/api/v1/firmware-update/{s['id']}/"
    res = alternate("session GET c64", [
        ("devicehubd", lambda: measured([hub], lambda: wrk(get_sess, 64, whole))),
        ("nginx", lambda: wrk(ngx + "/ok", 64, whole))])
    sqlite_runs = {"get": res["devicehubd"]}
    ratio_row("GET session vs return 200, c64", "req/s", res["devicehubd"], res["nginx"], 0.5,
              "rps")

    post = lua(tmp, "request", auth + f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{json.dumps(request_body())}'
""")
    res = alternate("sessions created/s", [
        ("devicehubd", lambda: measured(
            [hub], lambda: wrk(hub.url + "/api/v1/firmware-update/request", 16, post))),
        ("sqlite", lambda: raw_insert_rate(tmp, SECONDS))])
    ratio_row("/request c16 vs raw SQLite insert", "sessions/s", res["devicehubd"],
              res["sqlite"], 0.5, "rps")
    sqlite_runs["request"] = res["devicehubd"]
    note("CPU per request (SQLite): GET %.0f us, /request %.0f us" % (
        statistics.median(r["cpu_us"] for r in sqlite_runs["get"]),
        statistics.median(r["cpu_us"] for r in sqlite_runs["request"])))
    if ONLY == "db":
        hub.stop()
        if "--database" in subprocess.run([BIN, "--help"], capture_output=True,
                                          text=True).stdout:
            pg_cases(tmp, image, sqlite_runs)
        print_rows()
        return

    if "--database" in subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout:
        pg_cases(tmp, image, sqlite_runs)

    fleet_cases(hub, tmp, image, link)

    # 1000 devices through the whole flow at once.
    note(f"{DEVICES} simulated devices ...")
    cfg = {"url": hub.url, "token": ADMIN, "model": "bench-m", "channel": "stable",
           "procedure": "link", "prefix": "bench-" + uuid.uuid4().hex[:6], "devices": DEVICES,
           "chunk": 128 * 1024}
    out = subprocess.run([PYTHON, os.path.join(ROOT, "scripts", "bench.d", "devices.py"),
                          json.dumps(cfg)], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError("devices.py failed: " + out.stderr[-3000:])
    load = json.loads(out.stdout)
    hwm = hub.status_kib("VmHWM")
    for e in load["errors"]:
        note(e)
    note(f"devices: {load['ok']} ok, {load['failed']} failed, {load['retries']} busy retries, "
         f"{load['elapsed_s']:.1f} s")

    # 100 000 sessions stored: fill through the API, restart, measure.
    note(f"filling to {SESSIONS} sessions ...")
    stored = fill_sessions(hub, tmp, SESSIONS)
    hub.stop()
    hub.start()
    time.sleep(1.0)
    rss_idle = hub.status_kib("VmRSS")
    wrk(hub.url + f"/api/v1/firmware-update/{s['id']}/", 64, whole, seconds=SECONDS)
    for off in (0, stored // 2, max(0, stored - 1000)):
        api(hub, "GET", "/api/v1/firmware-update/", params={"limit": 1000, "offset": off})
    api(hub, "GET", "/api/v1/firmware-update/", params={"state": "ready", "limit": 1000})
    rss_after = hub.status_kib("VmRSS")
    hwm2 = hub.status_kib("VmHWM")

    print_table(load, hwm, stored, rss_idle, rss_after, hwm2)


def print_rows():
    print()
    print(f"Device Hub bench: {ROUNDS} alternating rounds of {SECONDS} s, wrk -t{THREADS}, "
          f"{os.cpu_count()} cores; ratio = median of per-round devicehubd/reference "
          "(PostgreSQL rows: against this run's SQLite server)")
    w = max([36] + [len(r[0]) for r in rows])
    head = f"{'case':<{w}} {'metric':<12} {'devicehubd':>11} {'reference':>11} {'ratio':>6}  " \
           f"{'target':<8} ok"
    print(head)
    print("-" * len(head))
    for case, metric, dh, ref, q, target, ok, extra in rows:
        fmt = ".3f" if max(abs(dh), abs(ref)) < 10 else ".1f"
        print(f"{case:<{w}} {metric:<12} {dh:>11{fmt}} {ref:>11{fmt}} {q:>6.2f}  {target:<8} "
              f"{'yes' if ok else 'NO'} {extra}".rstrip())
    print()


def print_table(load, hwm, stored, rss_idle, rss_after, hwm2):
    print_rows()
    lat = load["lat_ms"]
    print(f"{load['devices']} devices, whole flow: {load['ok']} ok, {load['failed']} failed "
          f"(target 0: {'yes' if load['failed'] == 0 else 'NO'}), {load['retries']} busy "
          f"retries, {load['elapsed_s']:.1f} s; peak RSS (VmHWM) {hwm / 1024:.1f} MiB")
    print(f"{'step':<10} {'p50 ms':>9} {'p99 ms':>9}")
    for k in ("request", "start", "wait", "download", "confirm", "total"):
        print(f"{k:<10} {pct(lat[k], 50):>9.1f} {pct(lat[k], 99):>9.1f}")
    print()
    ok = rss_after < 64 * 1024 and hwm2 < 64 * 1024
    print(f"{stored} sessions stored, after restart: RSS {rss_idle / 1024:.1f} MiB idle, "
          f"{rss_after / 1024:.1f} MiB after GET/list traffic, VmHWM {hwm2 / 1024:.1f} MiB "
          f"(target < 64 MiB: {'yes' if ok else 'NO'})")


if __name__ == "__main__":
    main()
