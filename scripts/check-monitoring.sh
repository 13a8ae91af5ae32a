#!/usr/bin/env bash
# Checks the monitoring configuration under config/ with the tools that run it:
#   promtool check config   config/prometheus/prometheus.yml
#   promtool check rules    config/prometheus/rules/*.yml
#   promtool test rules     config/prometheus/tests/*.yml   (a unit test for every alert)
# promtool comes from Debian's `prometheus` package, installed here when missing (root only);
# its service is not started.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=infra/lib.sh
SERVICE=monitoring
. scripts/infra/lib.sh

if ! command -v promtool >/dev/null; then
  # Install without starting the packaged server (policy-rc.d refuses service starts).
  policy=/usr/sbin/policy-rc.d
  if [ "$(id -u)" = 0 ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt_install prometheus
fi
promtool --version 2>&1 | head -1

promtool check config config/prometheus/prometheus.yml
promtool check rules config/prometheus/rules/*.yml
promtool test rules config/prometheus/tests/*.yml
