#!/usr/bin/env bash
# Line coverage of the workspace's tests, the end-to-end suites included (the binaries they
# start are instrumented too and write their own profiles): prints the summary and writes an
# HTML report. Installs what it needs on first use: rustup's llvm-tools component and
# cargo-llvm-cov (a crate). The fault tests are left out (run them with `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=0.9.1
if command -v rustup >/dev/null; then
  rustup component add llvm-tools-preview >/dev/null 2>&1 \
    || echo "coverage: could not add llvm-tools-preview with rustup; trying anyway" >&2
fi
if [ "$(cargo llvm-cov --version 2>/dev/null | awk '{print $2}')" != "$VERSION" ]; then
  echo "coverage: installing cargo-llvm-cov $VERSION (first use only)"
  cargo install cargo-llvm-cov --locked --version "$VERSION"
fi
out="${CARGO_TARGET_DIR:-target}/coverage"
cargo llvm-cov clean --workspace
cargo llvm-cov --workspace --locked --no-report -- \
  --skip a_diary_service_killed --skip a_kafka_outage --skip a_postgresql_restart \
  --skip a_cassandra_outage
cargo llvm-cov report --html --output-dir "$out"
cargo llvm-cov report --summary-only
echo "coverage: HTML report in $out/html/index.html"
