"""Runs config/logging/elasticsearch-setup.sh against a stub Elasticsearch and Kibana, and
deploy/k8s/deploy.sh against a stub kubectl, and checks what they send (scripts/check-deploy.sh).
Argument: the repository root."""

import http.server
import json
import os
import stat
import subprocess
import sys
import tempfile
import threading

import yaml

ROOT = sys.argv[1]
failures = []


def check(cond, what):
    print(f"  {'ok  ' if cond else 'FAIL'}  {what}")
    if not cond:
        failures.append(what)
    return cond


# --- elasticsearch-setup.sh -----------------------------------------------------------------------

class Stub(http.server.BaseHTTPRequestHandler):
    requests = []
    fail_path = None

    def handle_one(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        Stub.requests.append({"method": self.command, "path": self.path, "body": body,
                              "auth": self.headers.get("Authorization"), "xsrf": self.headers.get("kbn-xsrf"),
                              "type": self.headers.get("Content-Type")})
        status = 500 if Stub.fail_path and self.path.startswith(Stub.fail_path) else 200
        answer = b'{"acknowledged": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = handle_one

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}"
script = os.path.join(ROOT, "config/logging/elasticsearch-setup.sh")
# Passwords with the characters JSON must escape.
env = {"PATH": os.environ["PATH"], "ELASTICSEARCH_URL": url, "KIBANA_URL": url,
       "ELASTIC_PASSWORD": "el\"astic\\pw", "KIBANA_PASSWORD": 'ki"bana\\pw', "LOGSTASH_WRITER_PASSWORD": "log'stash\"pw"}


def run(mode, extra=None):
    Stub.requests = []
    return subprocess.run(["bash", script, mode], env={**env, **(extra or {})}, capture_output=True, text=True, timeout=60)


result = run("elasticsearch")
check(result.returncode == 0, "elasticsearch-setup.sh elasticsearch: succeeds" + (f" ({result.stderr.strip()})" if result.returncode else ""))
by_path = {r["path"].split("?")[0]: r for r in Stub.requests}
import base64  # noqa: E402
auth = "Basic " + base64.b64encode(f"elastic:{env['ELASTIC_PASSWORD']}".encode()).decode()
check(all(r["auth"] == auth for r in Stub.requests), "every request is made as the elastic user")
try:
    bodies = {p: json.loads(r["body"]) for p, r in by_path.items() if r["body"]}
    check(True, f"every body is valid JSON ({len(bodies)})")
except json.JSONDecodeError as e:
    bodies = {}
    check(False, f"every body is valid JSON ({e})")
check(bodies.get("/_security/user/kibana_system/_password") == {"password": env["KIBANA_PASSWORD"]},
      "sets kibana_system's password to KIBANA_PASSWORD (quotes and backslashes escaped)")
role = bodies.get("/_security/role/metachat_logs_writer", {})
check(sorted(role.get("indices", [{}])[0].get("names", [])) == ["metachat-logs-*", "metachat-unparsed-*"],
      "the role metachat_logs_writer writes only metachat-logs-* and metachat-unparsed-*")
user = bodies.get("/_security/user/logstash_writer", {})
check(user.get("password") == env["LOGSTASH_WRITER_PASSWORD"] and user.get("roles") == ["metachat_logs_writer"],
      "the user logstash_writer has LOGSTASH_WRITER_PASSWORD and only that role")
policy = bodies.get("/_ilm/policy/metachat-logs", {})
check(policy.get("policy", {}).get("phases", {}).get("delete", {}).get("min_age") == "30d",
      "the lifecycle policy deletes an index 30 days old (LOG_RETENTION_DAYS)")
with open(os.path.join(ROOT, "config/logging/elasticsearch-index-template.json")) as f:
    check(bodies.get("/_index_template/metachat-logs") == json.load(f),
          "the index template sent is elasticsearch-index-template.json")
check(by_path.get("/_cluster/health", {}).get("method") == "GET" and Stub.requests[0]["path"].startswith("/_cluster/health"),
      "waits for the cluster first")
result = run("elasticsearch", {"LOG_RETENTION_DAYS": "7"})
check(json.loads({r["path"]: r for r in Stub.requests}["/_ilm/policy/metachat-logs"]["body"])["policy"]["phases"]["delete"]["min_age"] == "7d",
      "LOG_RETENTION_DAYS=7 keeps 7 days")
Stub.fail_path = "/_index_template"
result = run("elasticsearch")
check(result.returncode != 0 and "answered 500" in result.stderr, "an error answer fails the setup, naming the request")
Stub.fail_path = None
result = run("elasticsearch", {"KIBANA_PASSWORD": ""})
check(result.returncode != 0 and "KIBANA_PASSWORD is not set" in result.stderr and not Stub.requests,
      "a missing password stops it before any request")
result = run("kibana")
views = [json.loads(r["body"]) for r in Stub.requests if r["path"] == "/api/data_views/data_view"]
check(result.returncode == 0 and sorted(v["data_view"]["title"] for v in views) == ["metachat-logs-*", "metachat-unparsed-*"]
      and all(v["data_view"]["timeFieldName"] == "@timestamp" and v["override"] for v in views)
      and all(r["xsrf"] for r in Stub.requests if r["method"] == "POST"),
      "elasticsearch-setup.sh kibana: the two data views, on @timestamp, with kbn-xsrf")
server.shutdown()

# --- deploy.sh ------------------------------------------------------------------------------------

work = tempfile.mkdtemp()
log = os.path.join(work, "calls")
kubectl = os.path.join(work, "kubectl")
with open(kubectl, "w") as f:
    f.write(f"""#!/usr/bin/env bash
# A stub kubectl: records each call and what it was given.
set -eu
exec 9>{work}/lock
flock 9   # the two ends of a pipe start together: number the calls one at a time
n=$(ls -d {work}/call-* 2>/dev/null | wc -l)
dir={work}/call-$n
mkdir -p "$dir"
flock -u 9
printf '%s\\n' "$@" >"$dir/args"
for arg in "$@"; do
  case $arg in --from-env-file=*) cp "${{arg#--from-env-file=}}" "$dir/env-file"; stat -c %a "${{arg#--from-env-file=}}" >"$dir/env-file-mode" ;; esac
done
case "$*" in
  "config current-context") echo stub-cluster ;;
  create\\ secret*) echo "kind: Secret" ;;
  *"apply -k "*) cp -r "${{@: -1}}" "$dir/overlay" ;;
  *"apply -f -"*) cat >"$dir/stdin" ;;
esac
""")
os.chmod(kubectl, 0o755)
deploy = os.path.join(ROOT, "deploy/k8s/deploy.sh")
secrets = {"AUTH_TOKEN_SECRET": "a" * 64, "SERVICE_TOKEN": "s" * 32, "DB_PASSWORD": "pg-p@ss=word"}


def calls():
    out = []
    for i in range(len([d for d in os.listdir(work) if d.startswith("call-")])):
        d = os.path.join(work, f"call-{i}")
        with open(os.path.join(d, "args")) as f:
            out.append((d, f.read().split("\n")[:-1]))
    return out


def deploy_run(extra):
    for d in [d for d in os.listdir(work) if d.startswith("call-")]:
        subprocess.run(["rm", "-rf", os.path.join(work, d)], check=True)
    e = {"PATH": os.environ["PATH"], "HOME": work, "KUBECTL": kubectl, **extra}
    return subprocess.run(["bash", deploy], env=e, capture_output=True, text=True, timeout=60)


result = deploy_run({})
check(result.returncode != 0 and "set AUTH_TOKEN_SECRET SERVICE_TOKEN DB_PASSWORD" in result.stderr and not calls(),
      "deploy.sh without the secrets: stops, naming them, before calling kubectl")
result = deploy_run({**secrets, "AUTH_TOKEN_SECRET": "short"})
check(result.returncode != 0 and "at least 32 bytes" in result.stderr and not calls(),
      "deploy.sh with a short AUTH_TOKEN_SECRET: stops")
result = deploy_run({**secrets, "KUBECTL": "/nonexistent/kubectl"})
check(result.returncode != 0 and "kubectl not found" in result.stderr, "deploy.sh without kubectl: says so")
result = deploy_run({**secrets, "VERSION": "9.8.7", "IMAGE_REGISTRY": "registry.example.com/metachat"})
check(result.returncode == 0, "deploy.sh with the secrets: succeeds" + (f" ({result.stderr.strip()})" if result.returncode else ""))
seen = calls()
def first(pred):
    return next((i for i, (_, a) in enumerate(seen) if pred(a)), None)


ns = first(lambda a: a[:2] == ["apply", "-f"] and a[2].endswith("namespace.yaml"))
create = first(lambda a: a[:2] == ["create", "secret"])
piped = first(lambda a: a[:3] == ["apply", "-f", "-"])
kustomize = first(lambda a: a[:2] == ["apply", "-k"])
check(None not in (ns, create, piped, kustomize) and ns < min(create, piped) and max(create, piped) < kustomize
      and open(os.path.join(seen[piped][0], "stdin")).read().strip() == "kind: Secret",
      "deploy.sh applies the namespace, then the Secret (created client-side, piped to apply), then the manifests")
rollouts = [a for _, a in seen if "rollout" in a]
check(sorted(a[a.index("rollout") + 2] for a in rollouts) == ["deployment/api-gateway", "deployment/diary-service", "deployment/user-service"],
      "deploy.sh waits for the three rollouts")
secret_call = next((d for d, a in seen if a[:2] == ["create", "secret"]), None)
if check(secret_call is not None and os.path.exists(os.path.join(secret_call, "env-file")), "the Secret is made from an env file"):
    with open(os.path.join(secret_call, "env-file")) as f:
        pairs = dict(line.split("=", 1) for line in f.read().splitlines())
    with open(os.path.join(secret_call, "env-file-mode")) as f:
        mode = f.read().strip()
    check(pairs == secrets, "the Secret holds exactly AUTH_TOKEN_SECRET, SERVICE_TOKEN, DB_PASSWORD, unchanged")
    check(mode == "600", f"the env file is readable by its owner only (mode {mode})")
    args = "\n".join("\n".join(a) for _, a in seen)
    check(not any(v in args for v in secrets.values()), "no secret value is on a kubectl command line")
    check("--dry-run=client" in open(os.path.join(secret_call, "args")).read(), "the Secret is rendered client-side, then applied")
overlay_call = next((d for d, a in seen if a[:2] == ["apply", "-k"]), None)
if check(overlay_call is not None, "the manifests are applied with -k"):
    with open(os.path.join(overlay_call, "overlay", "kustomization.yaml")) as f:
        overlay = yaml.safe_load(f)
    check(overlay["images"] == [{"name": f"metachat/{s}", "newName": f"registry.example.com/metachat/{s}", "newTag": "9.8.7"}
                                for s in ("api-gateway", "user-service", "diary-service")],
          "the overlay sets the three images to IMAGE_REGISTRY and VERSION")
    base = overlay["resources"][0]
    check(base.startswith("..") and os.path.basename(base) == "k8s", f"the overlay's base is deploy/k8s, by a relative path ({base})")
    check(len(overlay.get("commonAnnotations", {}).get("metachat/configuration-sha256", "")) == 64,
          "the pods carry a checksum of the configuration and secrets")
subprocess.run(["rm", "-rf", work], check=True)
print(f"  {len(failures)} failed" if failures else "  all checks pass")
sys.exit(1 if failures else 0)
