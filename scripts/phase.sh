#!/usr/bin/env bash
# Runs one phase of a build or test run and prints how long it took, so a CI log shows where
# the time goes: `scripts/phase.sh "unit tests" cargo test ...`.
set -uo pipefail
name=$1
shift
start=$(date +%s)
echo "==> ${name}: started $(date -u +%H:%M:%S)"
"$@"
status=$?
echo "==> ${name}: $(( $(date +%s) - start )) s (exit ${status})"
exit "${status}"
