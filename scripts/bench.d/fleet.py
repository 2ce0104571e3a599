"""The fleet mode of scripts/bench: thousands of keep-alive clients each downloading the
1 MiB image at a fixed byte rate (a release reaching a fleet on slow links), against
devicehubd and against nginx serving the same file, in alternating rounds.

The clients are dh-fleet (scripts/bench.d/dh-fleet.c, built into build-bench): epoll, one
small read buffer, a timer wheel for the pacing, a small receive buffer per socket so that
the server really trickles, every byte compared with the image. Per round it reports the
delivered bytes, failed attempts and stalls (a wait of more than BENCH_FLEET_STALL s for
data the pacing allowed); per server the CPU seconds per GiB delivered (utime + stime from
/proc of the server, all threads; nginx: master and workers) and the peak of VmRSS sampled
every 0.2 s (nginx: master and workers summed). The client's own CPU time is reported too,
so that a client that could not keep up is seen, not mistaken for a slow server.

Used by bench.py; never part of the test suite.
"""
import json
import os
import statistics
import subprocess
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_tree(pid):
    """pid and the pids of its children (nginx: the master and its workers)."""
    pids = [pid]
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            pids.append(int(name))
    return pids


def cpu_s(pids):
    """utime + stime of the processes, every thread included."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


class RssSampler(threading.Thread):
    """Samples the summed VmRSS of pids every 0.2 s until stopped; keeps the peak."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak, self.done = pids, rss_kib(pids), threading.Event()

    def run(self):
        while not self.done.wait(0.2):
            self.peak = max(self.peak, rss_kib(self.pids))

    def stop(self):
        self.done.set()
        self.join()
        self.peak = max(self.peak, rss_kib(self.pids))
        return self.peak


def parse_cases(text):
    """'4000x32,10000x8' -> [(4000, 32768), (10000, 8192)] (rates in KiB/s)."""
    out = []
    for part in text.split(","):
        n, kib = part.strip().lower().split("x")
        out.append((int(n), int(kib) * 1024))
    return out


def one_round(client, url, headers, image, clients, rate, seconds, server_pids, note):
    """One dh-fleet run against one server; returns the client's totals with the server's
    CPU seconds and peak RSS over the run."""
    procs = 1 if clients <= 6000 else 2
    args = [client, "--url", url, "--clients", str(clients), "--rate", str(rate),
            "--seconds", str(seconds), "--ramp", os.environ.get("BENCH_FLEET_RAMP", "5"),
            "--expect", image, "--sources", "8", "--procs", str(procs),
            "--buffer", os.environ.get("BENCH_FLEET_BUFFER", "4096"),
            "--rcvbuf", os.environ.get("BENCH_FLEET_RCVBUF", "16384"),
            "--stall", os.environ.get("BENCH_FLEET_STALL", "10")]
    for h in headers:
        args += ["--header", h]
    sampler = RssSampler(server_pids)
    c0 = cpu_s(server_pids)
    sampler.start()
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120)
    peak = sampler.stop()
    cpu = cpu_s(server_pids) - c0
    if out.returncode != 0:
        raise RuntimeError(f"dh-fleet failed: {out.stderr}")
    r = json.loads(out.stdout)
    r["server_cpu_s"] = cpu
    r["peak_rss_mib"] = peak / 1024
    gib = r["bytes"] / (1 << 30)
    r["cpu_per_gib"] = cpu / gib if gib else float("inf")
    r["failures"] = sum(r[k] for k in r if k.startswith("fail_"))
    r["load"] = os.getloadavg()[0]
    note(f"  {clients} x {rate // 1024} KiB/s: {r['bytes'] / (1 << 30):.2f} GiB, "
         f"{r['downloads']} whole, failures {r['failures']}, stalls {r['stalls']}, "
         f"server CPU {cpu:.2f} s = {r['cpu_per_gib']:.3f} s/GiB, peak RSS "
         f"{r['peak_rss_mib']:.1f} MiB, max wait {r['max_wait_s']:.1f} s, lag "
         f"{r['max_lag_s']:.1f} s, client CPU {r['cpu_s']:.1f} s (busiest process "
         f"{100 * r['busiest_proc']:.0f}%), load {r['load']:.1f}")
    return r


def run_cases(sides, client, image, cases, seconds, rounds, note, rows):
    """sides: [(label, start_fn)], devicehubd first and nginx second, optionally more
    devicehubd set-ups after them (reported against nginx, for information); start_fn()
    (re)starts that server and returns (url, headers, pids). Every round starts its server
    afresh (so that each peak RSS is this round's, and the devicehubd set-ups can share one
    data directory); rounds alternate between the servers."""
    for clients, rate in cases:
        res = {label: [] for label, _ in sides}
        for rnd in range(rounds):
            order = sides if rnd % 2 == 0 else list(reversed(sides))
            for label, start in order:
                url, headers, pids = start()
                note(f"fleet round {rnd + 1} {label}")
                res[label].append(one_round(client, url, headers, image, clients, rate,
                                            seconds, pids, note))
        ref_label = sides[1][0]
        ref = res[ref_label]
        for i, (label, _) in enumerate(sides):
            if i == 1:
                continue
            dh = res[label]
            case = f"fleet {clients} x {rate // 1024} KiB/s" + ("" if i == 0 else
                                                                f" ({label})")
            info = i > 1
            cpu_ratios = [d["cpu_per_gib"] / r["cpu_per_gib"] for d, r in zip(dh, ref)]
            q = statistics.median(cpu_ratios)
            bad = sum(d["failures"] + d["stalls"] for d in dh)
            busy = max(x["busiest_proc"] for x in dh + ref)
            extra = f"failed/stalled {bad}" if bad else ""
            if busy > 0.7:
                extra += f" client busy {100 * busy:.0f}%"
            rows.append((case, "CPU s/GiB", statistics.median(d["cpu_per_gib"] for d in dh),
                         statistics.median(r["cpu_per_gib"] for r in ref), q,
                         "(info)" if info else "<= 1.5", info or (q <= 1.5 and bad == 0),
                         extra.strip()))
            peak_dh = max(d["peak_rss_mib"] for d in dh)
            peak_ref = max(r["peak_rss_mib"] for r in ref)
            limit = 2 * peak_ref + 32
            rows.append((case, "peak RSS MiB", peak_dh, peak_ref, peak_dh / peak_ref,
                         "(info)" if info else f"<= {limit:.0f}",
                         info or (peak_dh <= limit and bad == 0), ""))
            gib_dh = sum(d["bytes"] for d in dh) / (1 << 30)
            gib_ref = sum(r["bytes"] for r in ref) / (1 << 30)
            bad_ref = sum(r["failures"] + r["stalls"] for r in ref)
            rows.append((case, "GiB sent", gib_dh, gib_ref,
                         gib_dh / gib_ref if gib_ref else 0, "(info)", True,
                         f"reference failed/stalled {bad_ref}" if bad_ref else ""))


def idle_case(sides, client, image, clients, note, rows, seconds=20):
    """What an idle keep-alive connection costs: each of `clients` connections downloads
    the image once (at 1 MiB/s, opened over 5 s, read 64 KiB at a time so that the client
    keeps up on a loaded machine), then stays open and idle; the growth of the server's RSS
    from before the run to 2 s before its end, per connection. Measured well within
    --head-timeout (30 s), which would close them. The row says so when not every client was
    idle by the end (the figure then mixes in connections still downloading)."""
    per, parked = {}, {}
    for label, start in sides:
        url, headers, pids = start()
        time.sleep(0.5)
        base = rss_kib(pids)
        args = [client, "--url", url, "--clients", str(clients), "--rate", str(1 << 20),
                "--seconds", str(seconds), "--ramp", "5", "--requests", "1", "--expect",
                image, "--sources", "8", "--procs", "1" if clients <= 6000 else "2",
                "--buffer", "65536", "--rcvbuf", "0"]
        for h in headers:
            args += ["--header", h]
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(seconds - 2)
        idle = rss_kib(pids)
        out, err = p.communicate(timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"dh-fleet failed: {err}")
        r = json.loads(out)
        bad = sum(r[k] for k in r if k.startswith("fail_"))
        per[label] = (idle - base) / clients
        parked[label] = r["parked"]
        note(f"idle {label}: {r['parked']} of {clients} idle, failures {bad}, RSS "
             f"{base / 1024:.1f} -> {idle / 1024:.1f} MiB, {per[label]:.2f} KiB each")
    ref_label = sides[1][0]
    for i, (label, _) in enumerate(sides):
        if i == 1:
            continue
        short = [f"{x} {parked[x]} of {clients} idle" for x in (label, ref_label)
                 if parked[x] < clients]
        rows.append((f"idle keep-alive x{clients} ({label})", "KiB each", per[label],
                     per[ref_label], per[label] / per[ref_label] if per[ref_label] else 0,
                     "(info)", True, ", ".join(short)))
