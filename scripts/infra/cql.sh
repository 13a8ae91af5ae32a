#!/usr/bin/env bash
# cql.sh: cqlsh against the test Cassandra (127.0.0.1:${METACHAT_CASSANDRA_PORT:-19042}).
#   cql.sh "SELECT release_version FROM system.local"   run one statement (or several, ';'-separated)
#   cql.sh -f file.cql                                   run a file
#   cql.sh                                               interactive shell
# cqlsh comes from PyPI (package `cqlsh`, pinned below), installed on first use into a venv under
# ${METACHAT_INFRA_DIR:-~/.cache/metachat-infra}/cassandra/cqlsh-venv.
set -euo pipefail
SERVICE=cql
# shellcheck source=lib.sh
. "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/lib.sh"

CQLSH_VERSION=6.2.2
PORT="${METACHAT_CASSANDRA_PORT:-19042}"
VENV="$(svc_dir cassandra)/cqlsh-venv"

if [ ! -x "$VENV/bin/cqlsh" ] || [ "$(cat "$VENV/.version" 2>/dev/null)" != "$CQLSH_VERSION" ]; then
  command -v python3 >/dev/null || die "python3 is needed for cqlsh"
  mkdir -p "$(dirname "$VENV")"
  (
    flock 9
    if [ -x "$VENV/bin/cqlsh" ] && [ "$(cat "$VENV/.version" 2>/dev/null)" = "$CQLSH_VERSION" ]; then exit 0; fi
    log "installing cqlsh $CQLSH_VERSION from PyPI into $VENV (first use only)"
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2 || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install -q "cqlsh==$CQLSH_VERSION" >&2 || die "pip install cqlsh failed"
    echo "$CQLSH_VERSION" >"$VENV/.version"
  ) 9>"$(svc_dir cassandra)/.cqlsh.lock"
fi

export CQLSH_NO_BUNDLED=TRUE   # use the venv's cassandra-driver
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  # One-shot statement: drop cqlsh's harmless "built against 5.0.0, but this server is 5.0.x"
  # banner (printed on stdout), keep cqlsh's exit status.
  set +o pipefail
  "$VENV/bin/cqlsh" 127.0.0.1 "$PORT" -e "$*" | { grep -v '^WARNING: cqlsh was built against' || true; }
  exit "${PIPESTATUS[0]}"
fi
exec "$VENV/bin/cqlsh" 127.0.0.1 "$PORT" "$@"
