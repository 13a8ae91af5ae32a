#!/usr/bin/env bash
# MetaChat's benchmark suite (BENCHMARKS.md): builds the release binaries of the platform and
# of the baselines (bench/), installs wrk (Debian) when missing, and runs scripts/bench/run.py,
# which prints the table and writes it as JSON (default $CARGO_TARGET_DIR/bench/results.json).
# Arguments go to run.py (--quick: a check of the suite, not a measurement).
# PostgreSQL (scripts/infra/postgres.sh start) is used for the PostgreSQL baseline when it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICE=bench
# shellcheck source=infra/lib.sh
. scripts/infra/lib.sh
command -v wrk >/dev/null || apt_install wrk
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --locked -p metachat --bin metachat -p metachat-bench --bin metachat-baseline
mkdir -p "$target/bench"
exec python3 scripts/bench/run.py --bin-dir "$target/release" --out "$target/bench/results.json" "$@"
