#!/usr/bin/env bash
# MetaChat's benchmark suite (BENCHMARKS.md): builds the release binaries of the platform, of
# the baselines and of the load generator (bench/), installs wrk (Debian) when missing, and
# runs scripts/bench/run.py, which prints the tables and writes them as JSON (default
# $CARGO_TARGET_DIR/bench/results.json). Arguments go to run.py: --quick checks the suite in a
# few minutes; --smoke (what CI runs) checks it in seconds on the debug build the tests built,
# measuring nothing.
# PostgreSQL (scripts/infra/postgres.sh start) is used for the PostgreSQL baseline when it runs,
# and with Kafka and Cassandra (scripts/infra/all.sh start) for the production wiring's figures.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICE=bench
# shellcheck source=infra/lib.sh
. scripts/infra/lib.sh
command -v wrk >/dev/null || apt_install wrk
for arg in "$@"; do
  if [ "$arg" = --perf ]; then command -v perf >/dev/null || apt_install linux-perf; fi
done
target="${CARGO_TARGET_DIR:-$PWD/target}"
profile=release
for arg in "$@"; do
  [ "$arg" = --smoke ] && profile=debug
done
flags=(--locked)
[ "$profile" = release ] && flags+=(--release)
cargo build "${flags[@]}" -p metachat --bin metachat
cargo build "${flags[@]}" -p metachat-bench --bins
mkdir -p "$target/bench"
exec python3 scripts/bench/run.py --bin-dir "$target/$profile" --out "$target/bench/results.json" "$@"
