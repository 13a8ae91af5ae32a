#!/usr/bin/env python3
"""MetaChat's benchmark suite (`make bench-platform`, through scripts/bench.sh).

Starts the release build of the embedded platform and the baselines (bench/: bare axum
answering the same JSON from memory; one durable insert per request into SQLite, and into
PostgreSQL when it is reachable) side by side on this machine, seeds the platform through its
API, and drives every scenario with wrk at a fixed concurrency: a warm-up, then several rounds,
reporting the median requests/s with the rounds' spread and the median p50 and p99. Every
figure is printed beside its baseline from the same run, with the ratio and the target of
BENCHMARKS.md; the whole result is also written as JSON.

Absolute numbers on a shared machine are noise: read the ratios.

Usage: run.py --bin-dir DIR [--out FILE] [--entries N] [--rounds N] [--seconds S]
              [--connections C] [--postgres URL] [--quick]
"""

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import random
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=30):
    """(status, headers, parsed JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, dict(response.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        return error.code, dict(error.headers), parsed


class Process:
    """A server of the benchmark's own, stopped with SIGTERM."""

    def __init__(self, name, argv, env, ready_url, log_dir):
        self.name = name
        self.log = open(os.path.join(log_dir, f"{name}.log"), "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.ready_ms = self.wait_ready(ready_url)

    def wait_ready(self, url, limit=60):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited at start; see {self.log.name}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return (time.monotonic() - self.started) * 1000
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.002)
        sys.exit(f"{self.name} not ready in {limit} s; see {self.log.name}")

    def status(self, field):
        """A /proc/<pid>/status field in MB (VmRSS: now; VmHWM: the peak)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url, script, env, connections, seconds):
    """One wrk run: requests/s, p50 and p99 in ms, and the failed requests."""
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s",
            os.path.join(HERE, script), url]
    out = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        latency[pct] = float(value) * UNITS[unit]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p50_ms": latency.get("50"), "p99_ms": latency.get("99"),
            "errors": errors, "requests": total}


def measure(url, script, env, args, connections=None):
    """Warm-up, then `args.rounds` rounds: the median requests/s with the spread, the median
    p50 and p99."""
    connections = connections or args.connections
    wrk(url, script, env, connections, max(1, args.seconds // 2))
    rounds = [wrk(url, script, env, connections, args.seconds) for _ in range(args.rounds)]
    rps = [r["rps"] for r in rounds]
    return {
        "rps": statistics.median(rps),
        "rps_min": min(rps),
        "rps_max": max(rps),
        "p50_ms": statistics.median(r["p50_ms"] for r in rounds),
        "p99_ms": statistics.median(r["p99_ms"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "requests": sum(r["requests"] for r in rounds),
        "connections": connections,
        "rounds": len(rounds),
        "seconds": args.seconds,
    }


def write_file(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def seed(base, args, work):
    """Users to list and read, and one writer whose entries spread over the past year."""
    def user(i):
        status, _, body = http("POST", f"{base}/users", {
            "username": f"bench{i}", "email": f"bench{i}@example.com",
            "firstName": "Bench", "lastName": f"User{i}"})
        assert status == 201, (status, body)
        return body["id"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        users = list(pool.map(user, range(args.users)))
    writer = users[0]
    now = datetime.datetime.now(datetime.timezone.utc)
    rng = random.Random(7)
    words = ("today I walked by the river and felt calm; the light was golden and the birds "
             "were loud, and I listened for a long time before writing this down").split()

    def entry(i):
        written = now - datetime.timedelta(seconds=rng.randrange(365 * 86400))
        content = " ".join(rng.choice(words) for _ in range(60))
        status, _, body = http("POST", f"{base}/diary/entries", {
            "userId": writer, "title": f"Day {i}", "content": content,
            "tags": ["bench"], "createdAt": written.strftime("%Y-%m-%dT%H:%M:%SZ")})
        assert status == 201, (status, body)
        return body["id"]

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        entries = list(pool.map(entry, range(args.entries)))
    seeded = time.monotonic() - started
    # The read models have every entry before anything is measured: the analytics of the
    # past year and a day count them all.
    start = (now - datetime.timedelta(days=366)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (now + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    deadline = time.monotonic() + 300
    while True:
        _, _, analytics = http(
            "GET", f"{base}/diary/analytics?userId={writer}&from={start}&to={end}")
        if analytics and analytics.get("entryCount") == args.entries:
            break
        if time.monotonic() > deadline:
            sys.exit(f"the read models did not catch up with {args.entries} entries: "
                     f"{analytics and analytics.get('entryCount')}")
        time.sleep(0.2)
    return users, writer, entries, seeded


def settle(base, limit=900, fatal=True):
    """Waits until every projection and follower (the read models, the entry analyzer, the
    search indexer embedding text, profile inference) has applied every event, as /metrics
    reports, so that one scenario's background work does not run into the next: the seconds
    it took, or None when it had not after `limit` seconds and that is not `fatal`."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            text = response.read().decode()
        behind = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("metachat_projection_lag_events{")]
        if behind and max(behind) == 0:
            return time.monotonic() - started
        time.sleep(0.5)
    if fatal:
        sys.exit(f"the projections did not catch up in {limit} s")
    return None


def projection_lag(base, writer_id, samples):
    """Write, then read the first page until it shows the write: p50 and p99 in ms (at rest,
    one write at a time)."""
    lags = []
    for i in range(samples):
        status, _, body = http("POST", f"{base}/diary/entries", {
            "userId": writer_id, "title": f"lag {i}", "content": "Visible yet?"})
        assert status == 201, (status, body)
        written = time.monotonic()
        while True:
            _, _, page = http("GET", f"{base}/diary/entries/user/{writer_id}?limit=1")
            if page["entries"] and page["entries"][0]["id"] == body["id"]:
                break
        lags.append((time.monotonic() - written) * 1000)
    lags.sort()
    return {"p50_ms": statistics.median(lags), "p99_ms": lags[int(len(lags) * 0.99) - 1],
            "samples": samples}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--out", default="bench-results.json")
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--settle", type=int, default=60,
                        help="how long to wait after a write scenario for the followers")
    parser.add_argument("--postgres", default=os.environ.get(
        "BENCH_POSTGRES", "postgres://metachat:metachat@127.0.0.1:55432/metachat"))
    parser.add_argument("--quick", action="store_true",
                        help="1 round of 2 s, 1,000 entries: to check the suite, not to measure")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.entries, args.users = 1, 2, 1000, 50

    work = tempfile.mkdtemp(prefix="metachat-bench-")
    data = os.path.join(work, "data")
    port, user_port, diary_port, baseline_port = (free_port() for _ in range(4))
    base = f"http://127.0.0.1:{port}"
    env = {"PATH": os.environ["PATH"], "DATA_DIR": data, "PORT": str(port),
           "USER_SERVICE_PORT": str(user_port), "DIARY_SERVICE_PORT": str(diary_port),
           "LOG_LEVEL": "warn", "METACHAT_MODEL_DIR": os.environ.get("METACHAT_MODEL_DIR", "")}
    metachat_bin = os.path.join(args.bin_dir, "metachat")
    results = {"machine": {"cpus": os.cpu_count(), "system": platform.platform(),
                           "processor": platform.processor()},
               "settings": vars(args), "when": datetime.datetime.now().isoformat(),
               "scenarios": {}, "baselines": {}}

    # Cold start: to /health/ready, on an empty data directory, five times.
    starts = []
    for i in range(5):
        cold = dict(env, DATA_DIR=os.path.join(work, f"cold{i}"))
        p = Process("cold-start", [metachat_bin], cold, f"{base}/health/ready", work)
        starts.append(p.ready_ms)
        p.stop()
    results["cold_start_ms"] = statistics.median(starts)

    app = Process("metachat", [metachat_bin], env, f"{base}/health/ready", work)
    time.sleep(1)
    results["idle_rss_mb"] = app.status("VmRSS")
    users, writer, entries, seeded = seed(base, args, work)
    settled = settle(base)
    results["seeded"] = {"users": len(users), "entries": len(entries), "seconds": seeded,
                         "followers_caught_up_after_s": settled}
    print(f"seeded {len(users)} users and {len(entries)} entries in {seeded:.1f} s; the "
          f"followers (analysis, search index) caught up {settled:.1f} s later", flush=True)

    # The baselines answer the body MetaChat answers for an entry.
    _, _, one = http("GET", f"{base}/diary/entries/{entries[0]}")
    body_file = write_file(work, "entry.json", json.dumps(one, separators=(",", ":")))
    baseline_env = {"PATH": os.environ["PATH"], "BASELINE_PORT": str(baseline_port),
                    "BASELINE_BODY": body_file,
                    "BASELINE_SQLITE": os.path.join(work, "baseline.db")}
    postgres = None
    try:
        subprocess.run(["psql", args.postgres, "-c", "SELECT 1"], check=True,
                       capture_output=True, timeout=10)
        postgres = args.postgres
        baseline_env["BASELINE_POSTGRES"] = postgres
    except (OSError, subprocess.SubprocessError):
        print(f"PostgreSQL at {args.postgres} is not reachable: no PostgreSQL baseline", flush=True)
    baseline = Process("baseline", [os.path.join(args.bin_dir, "metachat-baseline")],
                       baseline_env, f"http://127.0.0.1:{baseline_port}/json", work)
    bl = f"http://127.0.0.1:{baseline_port}"

    entry_body = write_file(work, "new-entry.json", json.dumps({
        "userId": users[1], "title": "Benchmark {n}",
        "content": " ".join(["A day worth writing about, in some sixty words."] * 6),
        "tags": ["bench"]}))
    paths = lambda name, items: write_file(work, name, "\n".join(items) + "\n")
    rng = random.Random(11)
    now = datetime.datetime.now(datetime.timezone.utc)

    def week_range():
        end = now - datetime.timedelta(days=rng.randrange(358))
        start = end - datetime.timedelta(days=7)
        return (f"/diary/entries/user/{writer}?startTime={start.strftime('%Y-%m-%dT%H:%M:%SZ')}"
                f"&endTime={end.strftime('%Y-%m-%dT%H:%M:%SZ')}&limit=10")

    read_paths = {
        "get entry by id": paths("entries.txt", [f"/diary/entries/{e}" for e in entries]),
        "get user by id": paths("users.txt", [f"/users/{u}" for u in users]),
        "a user's entries, first page": paths("page.txt", [f"/diary/entries/user/{writer}?limit=10"]),
        "a user's entries in a week": paths("range.txt", [week_range() for _ in range(200)]),
        "list users, first page": paths("list-users.txt", ["/users?page=1&limit=10"]),
        "analytics for a week": paths("week.txt", [f"/diary/analytics?userId={writer}&period=week"]),
        "analytics for a year": paths("year.txt", [f"/diary/analytics?userId={writer}&period=year"]),
    }
    mixed_paths = paths("mixed.txt", [f"/diary/entries/{e}" for e in entries[:50]]
                        + [f"/diary/entries/user/{writer}?limit=10",
                           f"/diary/analytics?userId={writer}&period=week"] * 5)
    profile_body = write_file(work, "profile.json", json.dumps({"bio": "Bench bio {n}"}))

    def run(name, url, script, extra, into, writes=False):
        print(f"  {name} ...", end=" ", flush=True)
        figure = measure(url, script, extra, args)
        into[name] = figure
        print(f"{figure['rps']:,.0f}/s p99 {figure['p99_ms']:.1f} ms"
              + (f" ({figure['errors']} failed)" if figure["errors"] else ""), end="", flush=True)
        if writes:
            # The analyses and embeddings of what was written, before the next scenario.
            caught_up = settle(base, limit=args.settle, fatal=False)
            figure["followers_caught_up_after_s"] = caught_up
            print("; followers " + (f"caught up {caught_up:.1f} s later" if caught_up is not None
                                    else f"still behind {args.settle} s later"),
                  end="", flush=True)
        print(flush=True)

    print("baselines", flush=True)
    run("bare axum, JSON from memory", f"{bl}/json", "paths.lua",
        {"PATHS": paths("json.txt", ["/json"])}, results["baselines"])
    run("SQLite, one durable insert per request", f"{bl}/sqlite", "write.lua",
        {"BODY": body_file, "PATH_TO": "/sqlite"}, results["baselines"])
    if postgres:
        run("PostgreSQL, one insert per transaction", f"{bl}/postgres", "write.lua",
            {"BODY": body_file, "PATH_TO": "/postgres"}, results["baselines"])
    print("MetaChat, embedded", flush=True)
    for name, file in read_paths.items():
        run(name, base, "paths.lua", {"PATHS": file}, results["scenarios"])
    run("create entry (durable)", base, "write.lua",
        {"BODY": entry_body, "PATH_TO": "/diary/entries"}, results["scenarios"], writes=True)
    # Each user changes their own profile (users[1] to users[3] are the writers above).
    run("update profile", base, "write.lua",
        {"BODY": profile_body, "METHOD": "PUT",
         "PATHS": paths("profiles.txt", [f"/users/{u}" for u in users[4:]])},
        results["scenarios"], writes=True)
    run("mixed: 90% reads, 10% writes", base, "mixed.lua",
        {"PATHS": mixed_paths, "BODY": entry_body, "PATH_TO": "/diary/entries"},
        results["scenarios"], writes=True)
    print("  peak memory at 64 connections ...", end=" ", flush=True)
    wrk(base, "paths.lua", {"PATHS": read_paths["get entry by id"]}, 64, args.seconds)
    results["peak_rss_mb"] = app.status("VmHWM")
    print(f"{results['peak_rss_mb']:.0f} MB", flush=True)
    results["projection_lag"] = projection_lag(base, users[3], 50 if args.quick else 200)
    baseline.stop()
    app.stop()

    # Rebuild of every read model from the events, the platform stopped.
    events = sqlite3.connect(os.path.join(data, "metachat.db")).execute(
        "SELECT COUNT(*) FROM events").fetchone()[0]
    started = time.monotonic()
    subprocess.run([metachat_bin, "rebuild-read-models"], env=env, check=True,
                   capture_output=True)
    took = time.monotonic() - started
    results["rebuild"] = {"events": events, "seconds": took, "events_per_s": events / took}

    report(results)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nwritten to {args.out}; logs and data in {work}")


def report(r):
    """The table: each figure beside its baseline and its target."""
    s, b = r["scenarios"], r["baselines"]
    json_rps = b["bare axum, JSON from memory"]["rps"]
    get_rps = s["get entry by id"]["rps"]
    rows = []

    def row(name, figure, against, ratio, target, met):
        rows.append((name, f"{figure['rps']:,.0f} ({figure['rps_min']:,.0f}-{figure['rps_max']:,.0f})",
                     f"{figure['p50_ms']:.2f}", f"{figure['p99_ms']:.2f}", against,
                     f"{ratio:.2f}", target, "yes" if met else "NO"))

    for name in ("get entry by id", "get user by id"):
        ratio = s[name]["rps"] / json_rps
        row(name, s[name], f"{json_rps:,.0f} bare axum", ratio, ">= 0.33", ratio >= 1 / 3)
    sqlite_rps = b["SQLite, one durable insert per request"]["rps"]
    ratio = s["create entry (durable)"]["rps"] / sqlite_rps
    row("create entry (durable)", s["create entry (durable)"], f"{sqlite_rps:,.0f} SQLite inserts",
        ratio, ">= 1.00", ratio >= 1)
    for name in ("a user's entries, first page", "a user's entries in a week",
                 "analytics for a week", "analytics for a year"):
        ratio = s[name]["rps"] / get_rps
        row(name, s[name], f"{get_rps:,.0f} get by id", ratio, ">= 0.50", ratio >= 0.5)
    for name in ("list users, first page", "update profile", "mixed: 90% reads, 10% writes"):
        row(name, s[name], "", s[name]["rps"] / json_rps, "", True)
    header = ("scenario", "req/s (spread)", "p50 ms", "p99 ms", "baseline (same run)", "ratio",
              "target", "met")
    widths = [max(len(str(x[i])) for x in rows + [header]) for i in range(len(header))]
    print()
    for line in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip())
    lag = r["projection_lag"]
    print(f"\nprojection lag, write to visible in the list (at rest): p50 {lag['p50_ms']:.1f} ms, "
          f"p99 {lag['p99_ms']:.1f} ms (target p99 < 20 ms at 1,000 writes/s: "
          f"{'yes' if lag['p99_ms'] < 20 else 'NO'})")
    rb = r["rebuild"]
    print(f"rebuild of the read models: {rb['events']:,} events in {rb['seconds']:.2f} s, "
          f"{rb['events_per_s']:,.0f} events/s (target >= 200,000: "
          f"{'yes' if rb['events_per_s'] >= 200_000 else 'NO'})")
    print(f"memory: idle {r['idle_rss_mb']:.0f} MB (target < 30: "
          f"{'yes' if r['idle_rss_mb'] < 30 else 'NO'}), peak {r['peak_rss_mb']:.0f} MB at 64 "
          f"connections (target < 100: {'yes' if r['peak_rss_mb'] < 100 else 'NO'})")
    print(f"cold start to ready: {r['cold_start_ms']:.0f} ms (target < 300: "
          f"{'yes' if r['cold_start_ms'] < 300 else 'NO'})")
    failed = {n: f["errors"] for n, f in {**s, **b}.items() if f["errors"]}
    if failed:
        print(f"failed requests: {failed}")


if __name__ == "__main__":
    main()
