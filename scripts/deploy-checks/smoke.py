"""Starts the built binaries with the environment the deployment files give them (the compose
files, resolved; the Kubernetes ConfigMap and Deployments; the Dockerfile's ENV), on free local
ports, and checks that they accept it, and that what they log is what the Logstash pipeline
parses (scripts/check-deploy.sh). Arguments: the repository root, the directory of the resolved
compose projects, the directory holding the binaries."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

ROOT, RESOLVED, BIN = sys.argv[1:4]
os.chdir(ROOT)
failures = []
LEVELS = {"error", "warn", "info", "debug", "trace"}
SERVICES = {"metachat", "api-gateway", "user-service", "diary-service"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
SECRETS = {"AUTH_TOKEN_SECRET": "c" * 64, "SERVICE_TOKEN": "t" * 32, "DB_PASSWORD": "p" * 24}


def check(cond, what):
    print(f"  {'ok  ' if cond else 'FAIL'}  {what}")
    if not cond:
        failures.append(what)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dockerfile_env(target):
    text = re.sub(r"\\\n", " ", open("Dockerfile").read())
    stages, current = {}, None
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            current = stages[m.group(2) or m.group(1)] = dict(stages.get(m.group(1), {}))
        elif word.upper() == "ENV":
            current.update({k: v.strip('"') for k, v in re.findall(r"([A-Za-z_]\w*)=(\"[^\"]*\"|\S+)", rest)})
    return stages[target]


def binary(name):
    path = os.path.join(BIN, name)
    return [path] if os.path.exists(path) else [os.path.join(BIN, "metachat"), name]


def http(port, path, method="GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=b"{}" if method == "POST" else None,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def log_lines(where, stdout, environment):
    """Every line is a record the Logstash pipeline parses (config/logging/README.md)."""
    records, bad = [], []
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
            good = (isinstance(record, dict) and TIMESTAMP.fullmatch(record.get("timestamp", ""))
                    and record.get("level") in LEVELS and record.get("service") in SERVICES
                    and record.get("environment") == environment and isinstance(record.get("message"), str)
                    and isinstance(record.get("fields"), dict))
        except json.JSONDecodeError:
            good = False
        (records if good else bad).append(record if good else line)
    check(records and not bad, f"{where}: each of its {len(records) + len(bad)} log lines is a JSON record with timestamp "
          f"(RFC 3339, ms, Z), level, service, environment={environment}, message and fields"
          + (f"; not: {bad[:2]}" if bad else ""))
    return records


def start(command, env):
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tempfile.mkdtemp())


def stop(process, grace):
    process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return None, out, err
    return process.returncode, out, err


def wait_ready(port, path, want, process):
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        if http(port, path)[0] == want:
            return True
        time.sleep(0.25)
    return False


def base_env(extra):
    return {"PATH": "/usr/bin:/bin", "HOME": tempfile.mkdtemp(), **{k: str(v) for k, v in extra.items()}}


def compose_env(combo, service):
    with open(os.path.join(RESOLVED, f"{combo}.json")) as f:
        project = json.load(f)
    return {**dockerfile_env(project["services"][service]["build"]["target"]),
            **project["services"][service]["environment"]}


def k8s_env(service):
    config = yaml.safe_load(open("deploy/k8s/configmap.yaml"))["data"]
    deployment = yaml.safe_load(open(f"deploy/k8s/{service}-deployment.yaml"))
    env = {**dockerfile_env(service), **config}
    for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        env[e["name"]] = e["value"] if "value" in e else SECRETS[e["valueFrom"]["secretKeyRef"]["key"]]
    return env


# --- the embedded platform, as docker-compose.simple.yml runs it -------------------------------
env = compose_env("simple", "metachat")
check(env["BIND_ADDRESS"] == "0.0.0.0", "simple: the platform listens on 0.0.0.0, as in a container")
gateway = free_port()
# Only the ports and the data directory change; the secrets are the example values Compose put in.
env.update(PORT=gateway, USER_SERVICE_PORT=free_port(), DIARY_SERVICE_PORT=free_port(), DATA_DIR=tempfile.mkdtemp())
process = start(binary("metachat"), base_env(env))
ready = wait_ready(gateway, "/health/ready", 200, process)
check(ready, "simple: the platform starts with the compose file's and the image's environment, and is ready")
if ready:
    check(http(gateway, "/users")[0] == 401, "simple: authentication is on (GET /users without a token: 401)")
    status, body = http(gateway, "/metrics")
    check(status == 200 and "metachat_http_requests_total" in body, "simple: GET /metrics answers Prometheus text")
code, out, err = stop(process, 20)
check(code == 0, f"simple: SIGTERM stops it cleanly within stop_grace_period (exit {code})")
records = log_lines("simple", out, env["ENVIRONMENT"])
check(any("request_id" in r["fields"] for r in records), "simple: request lines carry fields.request_id")
check(not err.strip(), "simple: nothing on stderr" + (f" ({err.strip()[:200]})" if err.strip() else ""))

# --- the gateway, as docker-compose.services.yml and the Deployment run it -----------------------
for where, env in (("services compose", compose_env("infrastructure+services", "api-gateway")),
                   ("Kubernetes", k8s_env("api-gateway"))):
    port = free_port()
    env.update(PORT=port)
    process = start(binary("api-gateway"), base_env(env))
    live = wait_ready(port, "/health/live", 200, process)
    check(live, f"{where}: the gateway starts with ENVIRONMENT={env['ENVIRONMENT']} and its environment (/health/live 200)")
    if live:
        check(http(port, "/health/ready")[0] == 503, f"{where}: /health/ready is 503 while the services are unreachable")
        check(http(port, "/users")[0] == 401, f"{where}: authentication is on")
    code, out, err = stop(process, 20)
    check(code == 0, f"{where}: the gateway stops cleanly on SIGTERM (exit {code})")
    log_lines(f"{where}: the gateway", out, env["ENVIRONMENT"])

# --- the services: every variable accepted, then the event store is what they reach for -----------
for service in ("user-service", "diary-service"):
    for where, env in (("services compose", compose_env("infrastructure+services", service)), ("Kubernetes", k8s_env(service))):
        env.update(PORT=free_port())
        process = start(binary(service), base_env(env))
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
        store = f"postgres://{env['DB_USER']}@{env['DB_HOST']}:{env['DB_PORT']}/{env['DB_NAME']}"
        check(process.returncode not in (0, None) and f"cannot open the event store at {store}" in err
              and "environment variable" not in err,
              f"{where}: {service} accepts every variable and reaches for the event store at {store}"
              + ("" if f"at {store}" in err else f" (said: {err.strip()[:300]})"))
        log_lines(f"{where}: {service}", out, env["ENVIRONMENT"])

print(f"  {len(failures)} failed" if failures else "  all checks pass")
sys.exit(1 if failures else 0)
