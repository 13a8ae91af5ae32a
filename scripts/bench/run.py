#!/usr/bin/env python3
"""MetaChat's benchmark suite (`make bench-platform`, through scripts/bench.sh).

Starts the release build of the embedded platform and the baselines (bench/: bare axum
answering the same JSON from memory; one durable insert per request into SQLite, and into
PostgreSQL when it is reachable) side by side on this machine, seeds the platform through its
API, and drives every scenario with wrk at a fixed concurrency: a warm-up, then several rounds,
reporting the median requests/s with the rounds' spread and the median p50 and p99. Latency
at half of peak throughput and projection lag under a steady write rate come from
metachat-load (bench/src/load.rs), an open-loop generator at a fixed rate. Growth seeds one
writer with thousands to a million entries and measures pages and analytics at each size.
The production wiring (PostgreSQL, Kafka, Cassandra, as scripts/infra starts them) runs the
same scenarios when those servers are up. Every figure is printed beside its baseline from
the same run, with the ratio and the target of BENCHMARKS.md; the whole result is also
written as JSON.

Absolute numbers on a shared machine are noise: read the ratios.

Usage: run.py --bin-dir DIR [--out FILE] [--entries N] [--rounds N] [--seconds S]
              [--connections C] [--growth N,N,...] [--lag-rate R] [--postgres URL]
              [--production auto|yes|no] [--perf DIR] [--quick | --smoke]
"""

import argparse
import concurrent.futures
import contextlib
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
    if not args.smoke:
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


def settle(base, limit=900, fatal=True, metrics=None):
    """Waits until every projection and follower (the read models, the entry analyzer, the
    search indexer embedding text, profile inference) has applied every event, as /metrics
    reports (the gateway's, embedded; each service's, `metrics`, in the production wiring),
    so that one scenario's background work does not run into the next: the seconds it took,
    or None when it had not after `limit` seconds and that is not `fatal`."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        behind = []
        for url in metrics or [f"{base}/metrics"]:
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
            behind += [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("metachat_projection_lag_events{")]
        if behind and max(behind) == 0:
            return time.monotonic() - started
        time.sleep(0.5)
    if fatal:
        sys.exit(f"the projections did not catch up in {limit} s")
    return None


def projection_lag(base, writer_id, samples, until=None):
    """Write, then read the first page until it shows the write: p50 and p99 in ms, one write
    at a time, `samples` times or until the monotonic clock reaches `until`."""
    lags = []
    while (len(lags) < samples) if until is None else (time.monotonic() < until):
        status, _, body = http("POST", f"{base}/diary/entries", {
            "userId": writer_id, "title": f"lag {len(lags)}", "content": "Visible yet?"})
        assert status == 201, (status, body)
        written = time.monotonic()
        while time.monotonic() - written < 120:
            _, _, page = http("GET", f"{base}/diary/entries/user/{writer_id}?limit=1")
            if page["entries"] and page["entries"][0]["id"] == body["id"]:
                break
        lags.append((time.monotonic() - written) * 1000)
    lags.sort()
    return {"p50_ms": statistics.median(lags),
            "p99_ms": lags[max(0, int(len(lags) * 0.99) - 1)], "samples": len(lags)}


def load(bin_dir, url, rate, seconds, *, paths=None, post=None, body=None, connections=64,
         requests=None):
    """metachat-load at a fixed rate (latency counted from when each request was due), or
    `requests` requests as fast as they are answered: its JSON figures."""
    argv = [os.path.join(bin_dir, "metachat-load"), "--url", url,
            "--connections", str(connections)]
    argv += (["--requests", str(requests)] if requests is not None
             else ["--rate", str(rate), "--seconds", str(seconds)])
    argv += ["--paths", paths] if paths else ["--post", post, "--body", body]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def lag_under_load(base, bin_dir, load_body, probe_writer, rate, seconds):
    """Projection lag (write to visible in the list) measured by a probe writer one write at a
    time, while metachat-load writes `rate` entries a second for another writer."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        writing = pool.submit(load, bin_dir, base, rate, seconds, post="/diary/entries",
                              body=load_body)
        time.sleep(0.5)
        probe = projection_lag(base, probe_writer, None, until=time.monotonic() + seconds - 1)
        figures = writing.result()
    return {"rate": rate, "seconds": seconds, "writes": figures, **probe}


def wiring_env(args, wiring_id):
    """The environment of the production wiring's processes, on the servers scripts/infra
    starts, with a database, keyspace, topics and consumer groups of this run's own."""
    infra = lambda name, default: os.environ.get(name, default)
    return {"DB_HOST": "127.0.0.1", "DB_PORT": infra("METACHAT_POSTGRES_PORT", "55432"),
            "DB_USER": "metachat", "DB_PASSWORD": "metachat", "DB_NAME": wiring_id,
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{infra('METACHAT_KAFKA_PORT', '19092')}",
            "KAFKA_USER_EVENTS_TOPIC": f"{wiring_id}-user-events",
            "KAFKA_DIARY_EVENTS_TOPIC": f"{wiring_id}-diary-events",
            "CASSANDRA_HOSTS": f"127.0.0.1:{infra('METACHAT_CASSANDRA_PORT', '19042')}",
            "CASSANDRA_KEYSPACE": wiring_id.replace("-", "_")}


def reachable(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", int(port))) == 0


def start_production(args, env, work, base_port):
    """The three services as separate processes on PostgreSQL, Kafka and Cassandra: the
    processes, or None when those servers are not up."""
    wiring_id = f"bench_{os.getpid()}_{int(time.time())}"
    settings = wiring_env(args, wiring_id)
    ports = (settings["DB_PORT"], settings["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1],
             settings["CASSANDRA_HOSTS"].rsplit(":", 1)[1])
    if not all(reachable(p) for p in ports):
        return None
    subprocess.run(["psql", args.postgres, "-c", f"CREATE DATABASE {wiring_id}"], check=True,
                   capture_output=True, timeout=30)
    metachat_bin = os.path.join(args.bin_dir, "metachat")
    gateway, user_port, diary_port = base_port, free_port(), free_port()
    addresses = {"USER_SERVICE_ADDRESS": f"127.0.0.1:{user_port}",
                 "DIARY_SERVICE_ADDRESS": f"127.0.0.1:{diary_port}"}
    common = {k: env[k] for k in ("PATH", "LOG_LEVEL", "METACHAT_MODEL_DIR")}
    processes = []
    for name, port, group in (("user-service", user_port, "users"),
                              ("diary-service", diary_port, "diary")):
        service_env = {**common, **settings, **addresses, "PORT": str(port),
                       "KAFKA_CONSUMER_GROUP": f"{wiring_id}-{group}"}
        processes.append(Process(name, [metachat_bin, name], service_env,
                                 f"http://127.0.0.1:{port}/metrics", work))
    processes.append(Process("api-gateway", [metachat_bin, "api-gateway"],
                             {**common, **addresses, "PORT": str(gateway),
                              "BIND_ADDRESS": "127.0.0.1"},
                             f"http://127.0.0.1:{gateway}/health/ready", work))
    metrics = [f"http://127.0.0.1:{p}/metrics" for p in (user_port, diary_port)]
    return processes, wiring_id, f"http://127.0.0.1:{gateway}", metrics


@contextlib.contextmanager
def profiled(args, name, embedded):
    """With --perf DIR: samples the embedded platform's process while the block runs (one
    extra round after the measured ones; `perf record -e cpu-clock -g`, no hardware counters
    on these machines) and writes the hottest symbols to DIR/<scenario>.txt."""
    if not (args.perf and embedded and args.pid):
        yield
        return
    os.makedirs(args.perf, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    data = os.path.join(args.perf, f"{slug}.data")
    recorder = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "999", "-g",
                                 "-p", str(args.pid), "-o", data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.send_signal(2)
        recorder.wait()
        report_text = subprocess.run(
            ["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol",
             "--stdio", "-g", "none", "--percent-limit", "0.5"],
            capture_output=True, text=True).stdout
        with open(os.path.join(args.perf, f"{slug}.txt"), "w") as f:
            f.write(f"# {name}: perf record -e cpu-clock -F 999 -g on the embedded platform "
                    f"while the scenario ran (scripts/bench.sh --perf)\n")
            # perf pads each line to a wide column and ends it with "-  -" (no children).
            lines = [re.sub(r"\s+-\s+-\s*$", "", line).rstrip()
                     for line in report_text.splitlines()
                     if line.strip() and not line.startswith("#")]
            f.write("\n".join(lines[:80]) + "\n")
        os.remove(data)


def scenarios(base, users, writer, entries, work, args, into, metrics=None):
    """The scenarios of one wiring, into `into`: reads and writes with wrk at a fixed
    concurrency, then reads and writes at half of their peak with metachat-load."""
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
    entry_body = write_file(work, "new-entry.json", json.dumps({
        "userId": users[1], "title": "Benchmark {n}",
        "content": " ".join(["A day worth writing about, in some sixty words."] * 6),
        "tags": ["bench"]}))
    mixed_paths = paths("mixed.txt", [f"/diary/entries/{e}" for e in entries[:50]]
                        + [f"/diary/entries/user/{writer}?limit=10",
                           f"/diary/analytics?userId={writer}&period=week"] * 5)
    profile_body = write_file(work, "profile.json", json.dumps({"bio": "Bench bio {n}"}))

    def run(name, url, script, extra, writes=False):
        print(f"  {name} ...", end=" ", flush=True)
        figure = measure(url, script, extra, args)
        if args.perf and metrics is None:
            # One more round, sampled: the figures above are not slowed by the sampling.
            with profiled(args, name, True):
                wrk(url, script, extra, args.connections, args.seconds)
        into[name] = figure
        print(f"{figure['rps']:,.0f}/s p99 {figure['p99_ms']:.1f} ms"
              + (f" ({figure['errors']} failed)" if figure["errors"] else ""), end="", flush=True)
        if writes:
            # The analyses and embeddings of what was written, before the next scenario.
            caught_up = settle(base, limit=args.settle, fatal=False, metrics=metrics)
            figure["followers_caught_up_after_s"] = caught_up
            print("; followers " + (f"caught up {caught_up:.1f} s later" if caught_up is not None
                                    else f"still behind {args.settle} s later"),
                  end="", flush=True)
        print(flush=True)

    def half_peak(name, **work_args):
        peak = into[name]["rps"]
        rate = max(1, round(peak / 2))
        print(f"  {name} at half of its peak, {rate:,}/s ...", end=" ", flush=True)
        figure = load(args.bin_dir, base, rate, args.seconds, **work_args)
        into[name]["half_peak"] = figure
        print(f"p50 {figure['p50_ms']:.1f} ms, p99 {figure['p99_ms']:.1f} ms"
              + (f" ({figure['errors']} failed)" if figure["errors"] else ""), flush=True)

    for name, file in read_paths.items():
        run(name, base, "paths.lua", {"PATHS": file})
    half_peak("get entry by id", paths=read_paths["get entry by id"])
    half_peak("get user by id", paths=read_paths["get user by id"])
    run("create entry (durable)", base, "write.lua",
        {"BODY": entry_body, "PATH_TO": "/diary/entries"}, writes=True)
    half_peak("create entry (durable)", post="/diary/entries", body=entry_body)
    settle(base, limit=args.settle, fatal=False, metrics=metrics)
    # Each user changes their own profile (users[1] to users[3] are the writers above).
    run("update profile", base, "write.lua",
        {"BODY": profile_body, "METHOD": "PUT",
         "PATHS": paths("profiles.txt", [f"/users/{u}" for u in users[4:]])}, writes=True)
    run("mixed: 90% reads, 10% writes", base, "mixed.lua",
        {"PATHS": mixed_paths, "BODY": entry_body, "PATH_TO": "/diary/entries"}, writes=True)
    return read_paths, entry_body


def growth(base, args, work):
    """One writer's history grown to each size of `args.growth` (cumulatively, through the
    API with metachat-load), and at each size: a page, a week's range, analytics for a week and a
    year."""
    status, _, body = http("POST", f"{base}/users", {
        "username": "growth", "email": "growth@example.com", "firstName": "Growth",
        "lastName": "Writer"})
    assert status == 201, (status, body)
    writer = body["id"]
    span_days = 3 * 365
    now = datetime.datetime.now(datetime.timezone.utc)
    rng = random.Random(5)
    paths = lambda name, items: write_file(work, name, "\n".join(items) + "\n")
    stamp = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
    ranges = []
    for _ in range(200):
        end = now - datetime.timedelta(days=rng.randrange(span_days))
        ranges.append(f"/diary/entries/user/{writer}?startTime={stamp(end - datetime.timedelta(days=7))}"
                      f"&endTime={stamp(end)}&limit=10")
    checks = {
        "a user's entries, first page": paths("g-page.txt", [f"/diary/entries/user/{writer}?limit=10"]),
        "a user's entries in a week": paths("g-range.txt", ranges),
        "analytics for a week": paths("g-week.txt", [f"/diary/analytics?userId={writer}&period=week"]),
        "analytics for a year": paths("g-year.txt", [f"/diary/analytics?userId={writer}&period=year"]),
    }
    results, stored = [], 0
    for size in args.growth:
        print(f"  growing one writer's history to {size:,} entries ...", end=" ", flush=True)
        started = time.monotonic()
        bulk = write_file(work, "bulk-entry.json", json.dumps({
            "userId": writer, "title": "Day {n}", "content": "{words:60}.", "tags": ["bulk"],
            "createdAt": f"{{past:{span_days}}}"}))
        while stored < size:
            figures = load(args.bin_dir, base, None, None, requests=size - stored,
                           post="/diary/entries", body=bulk, connections=32)
            stored += figures["ok"]
            if figures["errors"]:
                print(f"({figures['errors']} refused) ", end="", flush=True)
        seeded = time.monotonic() - started
        caught_up = settle(base, limit=max(600, size // 100), fatal=False)
        print(f"{stored:,} stored in {seeded:.0f} s, followers caught up "
              f"{caught_up if caught_up is None else round(caught_up)} s later", flush=True)
        row = {"entries": stored, "seed_s": seeded, "followers_caught_up_after_s": caught_up}
        for name, file in checks.items():
            row[name] = measure(base, "paths.lua", {"PATHS": file}, args)
            print(f"    {name}: {row[name]['rps']:,.0f}/s p99 {row[name]['p99_ms']:.1f} ms",
                  flush=True)
        results.append(row)
    return results


def run_growth(metachat_bin, env, args, work):
    """Growth on a platform of its own, without the sentence-embedding model: embedding every
    entry of a large history would take hours here; what growth measures does not use it."""
    print("\nGrowth: one writer's history", flush=True)
    gport = free_port()
    genv = dict(env, DATA_DIR=os.path.join(work, "growth"), PORT=str(gport),
                USER_SERVICE_PORT=str(free_port()), DIARY_SERVICE_PORT=str(free_port()),
                METACHAT_MODEL_DIR=os.path.join(work, "no-model"))
    gapp = Process("growth", [metachat_bin], genv, f"http://127.0.0.1:{gport}/health/ready", work)
    try:
        return growth(f"http://127.0.0.1:{gport}", args, work)
    finally:
        gapp.stop()


def with_model(metachat_bin, env, model_dir, args, work):
    """The platform with the sentence-embedding model: its memory idle and under load, how
    fast its indexer embeds new entries, and analytics for a year with themes (the window's
    entries grouped by meaning) and search by meaning."""
    mport = free_port()
    menv = dict(env, DATA_DIR=os.path.join(work, "model"), PORT=str(mport),
                USER_SERVICE_PORT=str(free_port()), DIARY_SERVICE_PORT=str(free_port()),
                METACHAT_MODEL_DIR=model_dir)
    mbase = f"http://127.0.0.1:{mport}"
    app = Process("with-model", [metachat_bin], menv, f"{mbase}/health/ready", work)
    time.sleep(1)
    out = {"idle_rss_mb": app.status("VmRSS")}
    print("MetaChat, embedded, with the sentence-embedding model", flush=True)
    margs = argparse.Namespace(**{**vars(args), "entries": 500, "users": 20})
    users, writer, entries, seeded = seed(mbase, margs, work)
    started = time.monotonic()
    caught_up = settle(mbase, limit=600, fatal=False)
    took = time.monotonic() - started + seeded
    out["indexed"] = {"entries": len(entries), "seconds": took,
                      "entries_per_s": len(entries) / took if caught_up is not None else None}
    print(f"  {len(entries)} entries written and embedded in {took:.1f} s", flush=True)
    paths = lambda name, items: write_file(work, name, "\n".join(items) + "\n")
    for name, path in (
            ("analytics for a year, with themes", f"/diary/analytics?userId={writer}&period=year"),
            ("search by meaning", f"/diary/search?userId={writer}&q=a+calm+morning+by+the+river")):
        figure = measure(mbase, "paths.lua", {"PATHS": paths("m.txt", [path])}, args)
        out[name] = figure
        print(f"  {name}: {figure['rps']:,.0f}/s p99 {figure['p99_ms']:.1f} ms"
              + (f" ({figure['errors']} failed)" if figure["errors"] else ""), flush=True)
    wrk(mbase, "paths.lua", {"PATHS": paths("m-get.txt", [f"/diary/entries/{e}" for e in entries])},
        64, args.seconds)
    out["peak_rss_mb"] = app.status("VmHWM")
    print(f"  memory: idle {out['idle_rss_mb']:.0f} MB, peak {out['peak_rss_mb']:.0f} MB",
          flush=True)
    app.stop()
    return out


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
    parser.add_argument("--growth", default="1000,100000",
                        help="sizes of one writer's history to measure at, comma-separated "
                             "(1000000 takes about an hour here); empty for none")
    parser.add_argument("--lag-rate", type=int, default=1000,
                        help="writes a second while projection lag is measured")
    parser.add_argument("--production", choices=("auto", "yes", "no"), default="auto",
                        help="the production wiring too: auto when its servers are up")
    parser.add_argument("--postgres", default=os.environ.get(
        "BENCH_POSTGRES", "postgres://metachat:metachat@127.0.0.1:55432/metachat"))
    parser.add_argument("--perf", default="",
                        help="a directory: sample the embedded platform with perf during each "
                             "scenario and write the hottest symbols there")
    parser.add_argument("--quick", action="store_true",
                        help="1 round of 2 s, 1,000 entries: to check the suite, not to measure")
    parser.add_argument("--growth-only", action="store_true",
                        help="only the growth scenario (its ratios are against its own first "
                             "size), e.g. to measure a change to analytics quickly")
    parser.add_argument("--smoke", action="store_true",
                        help="1 round of 1 s, 200 entries, tiny growth, no production wiring: "
                             "what CI runs so the suite never rots (measures nothing)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.entries, args.users = 1, 2, 1000, 50
        args.growth, args.settle = "1000,10000", 30
    if args.smoke:
        args.rounds, args.seconds, args.entries, args.users = 1, 1, 200, 20
        args.growth, args.lag_rate, args.settle, args.production = "100,300", 50, 30, "no"
    args.growth = [int(n) for n in args.growth.split(",") if n.strip()]

    work = tempfile.mkdtemp(prefix="metachat-bench-")
    data = os.path.join(work, "data")
    port, user_port, diary_port, baseline_port = (free_port() for _ in range(4))
    base = f"http://127.0.0.1:{port}"
    # The scenarios run without the sentence-embedding model (search by meaning, related
    # entries and themes off, as on a machine where scripts/model.sh never ran): its indexer
    # embeds a few dozen entries a second here, so after a burst of writes it would still be
    # busy in every later scenario. "With the model" measures it on its own.
    model_dir = os.environ.get("METACHAT_MODEL_DIR") or os.path.expanduser(
        "~/.cache/metachat/models/all-MiniLM-L6-v2")
    env = {"PATH": os.environ["PATH"], "DATA_DIR": data, "PORT": str(port),
           "USER_SERVICE_PORT": str(user_port), "DIARY_SERVICE_PORT": str(diary_port),
           "LOG_LEVEL": "warn", "METACHAT_MODEL_DIR": os.path.join(work, "no-model")}
    metachat_bin = os.path.join(args.bin_dir, "metachat")
    results = {"machine": {"cpus": os.cpu_count(), "system": platform.platform(),
                           "processor": platform.processor()},
               "model": os.path.exists(os.path.join(model_dir, "config.json")),
               "settings": vars(args), "when": datetime.datetime.now().isoformat(),
               "scenarios": {}, "baselines": {}}

    if args.growth_only:
        args.pid = None
        results["growth"] = run_growth(metachat_bin, env, args, work)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
        print(f"\nwritten to {args.out}; logs and data in {work}")
        return

    # Cold start: to /health/ready, on an empty data directory, five times.
    starts = []
    for i in range(5):
        cold = dict(env, DATA_DIR=os.path.join(work, f"cold{i}"))
        p = Process("cold-start", [metachat_bin], cold, f"{base}/health/ready", work)
        starts.append(p.ready_ms)
        p.stop()
    results["cold_start_ms"] = statistics.median(starts)

    app = Process("metachat", [metachat_bin], env, f"{base}/health/ready", work)
    args.pid = app.proc.pid
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

    print("baselines", flush=True)
    for name, script, extra in (
            ("bare axum, JSON from memory", "paths.lua",
             {"PATHS": write_file(work, "json.txt", "/json\n")}),
            ("SQLite, one durable insert per request", "write.lua",
             {"BODY": body_file, "PATH_TO": "/sqlite"}),
            ("PostgreSQL, one insert per transaction", "write.lua",
             {"BODY": body_file, "PATH_TO": "/postgres"})):
        if "PostgreSQL" in name and not postgres:
            continue
        figure = measure(bl, script, extra, args)
        results["baselines"][name] = figure
        print(f"  {name}: {figure['rps']:,.0f}/s p99 {figure['p99_ms']:.1f} ms", flush=True)
    json_file = write_file(work, "json.txt", "/json\n")
    peak = results["baselines"]["bare axum, JSON from memory"]["rps"]
    figure = load(args.bin_dir, bl, max(1, round(peak / 2)), args.seconds, paths=json_file)
    results["baselines"]["bare axum, JSON from memory"]["half_peak"] = figure
    print(f"  bare axum at half of its peak: p99 {figure['p99_ms']:.1f} ms", flush=True)

    print("MetaChat, embedded", flush=True)
    read_paths, entry_body = scenarios(base, users, writer, entries, work, args,
                                       results["scenarios"])
    print("  peak memory at 64 connections ...", end=" ", flush=True)
    wrk(base, "paths.lua", {"PATHS": read_paths["get entry by id"]}, 64, args.seconds)
    results["peak_rss_mb"] = app.status("VmHWM")
    print(f"{results['peak_rss_mb']:.0f} MB", flush=True)
    settle(base, limit=args.settle, fatal=False)
    results["projection_lag"] = projection_lag(base, users[3], 50 if args.smoke else 200)
    print(f"  projection lag at rest: p99 {results['projection_lag']['p99_ms']:.1f} ms", flush=True)
    print(f"  projection lag under {args.lag_rate:,} writes/s ...", end=" ", flush=True)
    results["projection_lag_under_load"] = lag_under_load(
        base, args.bin_dir, entry_body, users[2], args.lag_rate, max(3, args.seconds * 2))
    under = results["projection_lag_under_load"]
    print(f"p50 {under['p50_ms']:.1f} ms, p99 {under['p99_ms']:.1f} ms over "
          f"{under['samples']} probes; the writes' p99 {under['writes']['p99_ms']:.1f} ms",
          flush=True)
    settle(base, limit=args.settle, fatal=False)
    app.stop()

    results["with_model"] = None
    if results["model"] and not args.smoke:
        results["with_model"] = with_model(metachat_bin, env, model_dir, args, work)

    results["growth"] = run_growth(metachat_bin, env, args, work) if args.growth else []

    # Rebuild of every read model from the events, the platform stopped.
    events = sqlite3.connect(os.path.join(data, "metachat.db")).execute(
        "SELECT COUNT(*) FROM events").fetchone()[0]
    started = time.monotonic()
    subprocess.run([metachat_bin, "rebuild-read-models"], env=env, check=True,
                   capture_output=True)
    took = time.monotonic() - started
    results["rebuild"] = {"events": events, "seconds": took, "events_per_s": events / took}
    print(f"rebuild: {events:,} events in {took:.1f} s", flush=True)

    results["production"] = None
    if args.production != "no" and postgres:
        started_production = start_production(args, env, work, free_port())
        if started_production is None and args.production == "yes":
            sys.exit("the production wiring's servers are not up: scripts/infra/all.sh start")
        if started_production is not None:
            processes, wiring_id, pbase, pmetrics = started_production
            print(f"MetaChat, production wiring (PostgreSQL, Kafka, Cassandra: {wiring_id})",
                  flush=True)
            pargs = argparse.Namespace(**{**vars(args), "entries": min(args.entries, 2000)})
            pusers, pwriter, pentries, pseeded = seed(pbase, pargs, work)
            settle(pbase, limit=300, fatal=False, metrics=pmetrics)
            production = {"scenarios": {}, "seeded": {"entries": len(pentries),
                                                      "seconds": pseeded}}
            scenarios(pbase, pusers, pwriter, pentries, work, args,
                      production["scenarios"], metrics=pmetrics)
            settle(pbase, limit=300, fatal=False, metrics=pmetrics)
            production["projection_lag"] = projection_lag(pbase, pusers[3], 50)
            print(f"  projection lag at rest: p99 {production['projection_lag']['p99_ms']:.1f} ms",
                  flush=True)
            results["production"] = production
            for p in processes:
                p.stop()
            subprocess.run(["psql", args.postgres, "-c", f"DROP DATABASE {wiring_id}"],
                           capture_output=True, timeout=60)
    baseline.stop()

    report(results)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nwritten to {args.out}; logs and data in {work}")
    failed = {n: f["errors"] for n, f in {**results["scenarios"], **results["baselines"]}.items()
              if f["errors"]}
    if args.smoke and failed:
        sys.exit(f"the smoke run had failed requests: {failed}")


def table(header, rows):
    widths = [max(len(str(x[i])) for x in rows + [header]) for i in range(len(header))]
    print()
    for line in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip())


def yes(met):
    return "yes" if met else "NO"


def report(r):
    """The tables: each figure beside its baseline and its target."""
    s, b = r["scenarios"], r["baselines"]
    json_rps = b["bare axum, JSON from memory"]["rps"]
    sqlite_rps = b["SQLite, one durable insert per request"]["rps"]
    postgres = b.get("PostgreSQL, one insert per transaction")

    def rows_of(s, store_rps, store, targets):
        get_rps = s["get entry by id"]["rps"]
        rows = []

        def row(name, against, ratio, target="", met=None):
            f = s[name]
            rows.append((name, f"{f['rps']:,.0f} ({f['rps_min']:,.0f}-{f['rps_max']:,.0f})",
                         f"{f['p50_ms']:.2f}", f"{f['p99_ms']:.2f}", against,
                         f"{ratio:.2f}" if ratio is not None else "",
                         target if targets else "", yes(met) if targets and target else ""))

        for name in ("get entry by id", "get user by id"):
            ratio = s[name]["rps"] / json_rps
            row(name, f"{json_rps:,.0f} bare axum", ratio, ">= 0.33", ratio >= 1 / 3)
        if store_rps:
            ratio = s["create entry (durable)"]["rps"] / store_rps
            row("create entry (durable)", f"{store_rps:,.0f} {store} inserts", ratio, ">= 1.00",
                ratio >= 1)
        else:
            row("create entry (durable)", "", None)
        for name in ("a user's entries, first page", "a user's entries in a week",
                     "analytics for a week", "analytics for a year"):
            ratio = s[name]["rps"] / get_rps
            row(name, f"{get_rps:,.0f} get by id", ratio, ">= 0.50", ratio >= 0.5)
        for name in ("list users, first page", "update profile", "mixed: 90% reads, 10% writes"):
            row(name, "", None)
        return rows

    header = ("scenario", "req/s (spread)", "p50 ms", "p99 ms", "baseline (same run)", "ratio",
              "target", "met")
    print("\nEmbedded wiring")
    table(header, rows_of(s, sqlite_rps, "SQLite", True))

    half = []
    for name, target in (("get entry by id", 5), ("get user by id", 5),
                         ("create entry (durable)", 20)):
        h = s[name]["half_peak"]
        half.append((name, f"{h['rate']:,.0f}", f"{h['p50_ms']:.2f}", f"{h['p99_ms']:.2f}",
                     f"< {target}", yes(h["p99_ms"] < target)))
    h = b["bare axum, JSON from memory"]["half_peak"]
    half.append(("bare axum, JSON from memory (baseline)", f"{h['rate']:,.0f}",
                 f"{h['p50_ms']:.2f}", f"{h['p99_ms']:.2f}", "", ""))
    print("\nAt half of peak throughput (metachat-load, a fixed rate; latency from when each "
          "request was due)")
    table(("scenario", "req/s", "p50 ms", "p99 ms", "target p99 ms", "met"), half)

    if r["growth"]:
        rows = []
        first = r["growth"][0]
        for g in r["growth"]:
            for name in ("a user's entries, first page", "a user's entries in a week",
                         "analytics for a week", "analytics for a year"):
                ratio = g[name]["rps"] / first[name]["rps"]
                rows.append((f"{g['entries']:,}", name, f"{g[name]['rps']:,.0f}",
                             f"{g[name]['p99_ms']:.2f}", f"{ratio:.2f}"))
        print("\nGrowth: one writer's history (entries over three years), each figure against "
              "the smallest history")
        table(("entries", "scenario", "req/s", "p99 ms", "vs smallest"), rows)

    lag, under = r["projection_lag"], r["projection_lag_under_load"]
    print(f"\nprojection lag, write to visible in the list: at rest p50 {lag['p50_ms']:.1f} ms, "
          f"p99 {lag['p99_ms']:.1f} ms; under {under['rate']:,} writes/s "
          f"(achieved {under['writes']['achieved_rate']:,.0f}/s) p50 {under['p50_ms']:.1f} ms, "
          f"p99 {under['p99_ms']:.1f} ms (target p99 < 20 ms: {yes(under['p99_ms'] < 20)})")
    rb = r["rebuild"]
    print(f"rebuild of the read models: {rb['events']:,} events in {rb['seconds']:.2f} s, "
          f"{rb['events_per_s']:,.0f} events/s (target >= 200,000: "
          f"{yes(rb['events_per_s'] >= 200_000)})")
    print(f"memory: idle {r['idle_rss_mb']:.0f} MB (target < 30: {yes(r['idle_rss_mb'] < 30)}), "
          f"peak {r['peak_rss_mb']:.0f} MB at 64 connections (target < 100: "
          f"{yes(r['peak_rss_mb'] < 100)})")
    print(f"cold start to ready: {r['cold_start_ms']:.0f} ms (target < 300: "
          f"{yes(r['cold_start_ms'] < 300)})")
    failed = {n: f["errors"] for n, f in {**s, **b}.items() if f["errors"]}
    if failed:
        print(f"failed requests: {failed}")

    m = r.get("with_model")
    if m:
        print(f"\nwith the sentence-embedding model: memory idle {m['idle_rss_mb']:.0f} MB, peak "
              f"{m['peak_rss_mb']:.0f} MB; {m['indexed']['entries']} entries written and "
              f"embedded in {m['indexed']['seconds']:.1f} s; analytics for a year with themes "
              f"{m['analytics for a year, with themes']['rps']:,.0f}/s (p99 "
              f"{m['analytics for a year, with themes']['p99_ms']:.1f} ms); search by meaning "
              f"{m['search by meaning']['rps']:,.0f}/s (p99 {m['search by meaning']['p99_ms']:.1f} ms)")

    p = r.get("production")
    if p:
        print("\nProduction wiring (PostgreSQL, Kafka, Cassandra; its own figures, against the "
              "same baselines)")
        table(header, rows_of(p["scenarios"], postgres and postgres["rps"], "PostgreSQL", False))
        lag = p["projection_lag"]
        print(f"projection lag at rest: p50 {lag['p50_ms']:.1f} ms, p99 {lag['p99_ms']:.1f} ms")
        failed = {n: f["errors"] for n, f in p["scenarios"].items() if f["errors"]}
        if failed:
            print(f"failed requests: {failed}")


if __name__ == "__main__":
    main()
