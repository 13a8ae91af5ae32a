#!/usr/bin/env bash
# Checks the monitoring configuration under config/ with the tools that run it:
#   promtool check config   config/prometheus/prometheus.yml
#   promtool check rules    config/prometheus/rules/*.yml
#   promtool test rules     config/prometheus/tests/*.yml   (a unit test for every alert)
#   amtool check-config     config/alertmanager/alertmanager.yml.tmpl, rendered with envsubst
#   amtool config routes test: where a critical and a warning alert go
# promtool, amtool and envsubst come from Debian's `prometheus`, `prometheus-alertmanager` and
# `gettext-base` packages, installed here when missing (root only); no service is started. The
# `prometheus` server binary of the same package is what platform/tests/prometheus.rs runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lib.sh
SERVICE=monitoring
. scripts/infra/lib.sh

# Removed on exit: a policy-rc.d this script made, the rendered configuration.
cleanup=()
trap 'rm -rf "${cleanup[@]}"' EXIT
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v envsubst >/dev/null || missing+=(gettext-base)
if [ "${#missing[@]}" -gt 0 ]; then
  # Install without starting the packaged server (policy-rc.d refuses service starts).
  policy=/usr/sbin/policy-rc.d
  if [ "$(id -u)" = 0 ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    cleanup+=("$policy")
  fi
  apt_install "${missing[@]}"
fi
promtool --version 2>&1 | head -1

promtool check config config/prometheus/prometheus.yml config/prometheus/prometheus-embedded.yml
promtool check rules config/prometheus/rules/*.yml
promtool test rules config/prometheus/tests/*.yml

# Alertmanager's configuration, rendered as at start with example settings.
rendered=$(mktemp -d)
cleanup+=("$rendered")
ALERT_EMAIL_TO=ops@example.com ALERT_EMAIL_FROM=alerts@example.com \
  SMTP_SMARTHOST=smtp.example.com:587 SMTP_USERNAME=alerts SLACK_CHANNEL='#metachat-alerts' \
  envsubst '${ALERT_EMAIL_TO} ${ALERT_EMAIL_FROM} ${SMTP_SMARTHOST} ${SMTP_USERNAME} ${SLACK_CHANNEL}' \
  <config/alertmanager/alertmanager.yml.tmpl >"$rendered/alertmanager.yml"
if grep -q '\${' "$rendered/alertmanager.yml"; then
  echo "alertmanager.yml.tmpl has a variable envsubst was not told about" >&2
  exit 1
fi
amtool check-config "$rendered/alertmanager.yml"
route() {
  local want=$1; shift
  local got
  got=$(amtool config routes test --config.file="$rendered/alertmanager.yml" "$@" 2>/dev/null)
  if [ "$got" != "$want" ]; then
    echo "an alert with $* goes to '$got', not '$want'" >&2
    exit 1
  fi
  echo "routes: $* -> $got"
}
route "on-call,team" severity=critical alertname=ServiceDown
route "team" severity=warning alertname=HighLatency

# Every alert has a unit test: an `alertname:` in config/prometheus/tests for each `alert:`.
untested=()
for alert in $(sed -n 's/^ *- alert: *//p' config/prometheus/rules/*.yml); do
  grep -q "alertname: *$alert\$" config/prometheus/tests/*.yml || untested+=("$alert")
done
if [ "${#untested[@]}" -gt 0 ]; then
  echo "alerts without a unit test in config/prometheus/tests: ${untested[*]}" >&2
  exit 1
fi
echo "every alert has a unit test: $(sed -n 's/^ *- alert: *//p' config/prometheus/rules/*.yml | wc -l) alerts"
