#!/usr/bin/env bash
# The web app's browser tests (services/api-gateway/tests/browser): installs Debian's Chromium
# when missing, playwright-core and axe-core from the npm registry (pinned by package-lock.json;
# playwright drives the system's Chromium and downloads no browser), starts the embedded
# platform with authentication on in a fresh data directory, and runs the journey in
# app.test.mjs against it. Screenshots of the main pages, desktop and phone, light and dark,
# go to $SCREENSHOTS (default $CARGO_TARGET_DIR/browser-screenshots).
#   scripts/browser-tests.sh [--release]    (default: the debug build the tests use)
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICE=browser
# shellcheck source=infra/lib.sh
. scripts/infra/lib.sh

command -v chromium >/dev/null || apt_install chromium
command -v node >/dev/null || apt_install nodejs npm
target="${CARGO_TARGET_DIR:-$PWD/target}"
profile=debug
flags=(--locked)
if [ "${1:-}" = --release ]; then profile=release; flags+=(--release); fi
cargo build "${flags[@]}" -p metachat --bin metachat
scripts/model.sh || log "the sentence-embedding model could not be fetched: search is checked without it"

tests=services/api-gateway/tests/browser
if [ ! -d "$tests/node_modules/playwright-core" ] || [ ! -d "$tests/node_modules/axe-core" ] \
  || [ "$tests/package-lock.json" -nt "$tests/node_modules/.package-lock.json" ]; then
  log "npm ci (playwright-core, axe-core)"
  (cd "$tests" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
fi

data=$(mktemp -d /tmp/metachat-browser-XXXXXX)
read -r port user_port diary_port < <(python3 -c '
import socket
held = [socket.socket() for _ in range(3)]
for s in held: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in held])')
secret=$(head -c 32 /dev/urandom | base64)
log "platform on 127.0.0.1:$port (data in $data)"
DATA_DIR="$data" PORT="$port" USER_SERVICE_PORT="$user_port" DIARY_SERVICE_PORT="$diary_port" \
  AUTH_TOKEN_SECRET="$secret" RATE_LIMIT_PER_MINUTE=100000 \
  LOG_LEVEL=warn "$target/$profile/metachat" >"$data/platform.log" 2>&1 &
platform=$!
cleanup() {
  kill "$platform" 2>/dev/null || true
  wait "$platform" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
  kill -0 "$platform" 2>/dev/null || { cat "$data/platform.log" >&2; die "the platform did not start"; }
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/health/ready" >/dev/null || die "the platform is not ready after 30 s"

shots="${SCREENSHOTS:-$target/browser-screenshots}"
rm -rf "$shots"
if ! METACHAT_URL="http://127.0.0.1:$port" SCREENSHOTS="$shots" node "$tests/app.test.mjs"; then
  log "the platform's log (last 50 lines):"
  tail -n 50 "$data/platform.log" >&2
  exit 1
fi
