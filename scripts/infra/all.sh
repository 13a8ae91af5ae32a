#!/usr/bin/env bash
# all.sh: PostgreSQL, Kafka and Cassandra together.
#   all.sh start [postgres] [kafka] [cassandra]   start the named services (default: all three)
#   all.sh stop  [services...]                    stop them, in parallel (default: all three)
#   all.sh status [services...]                   exit 0 only if every named service is up
# `start` runs the services in parallel (output prefixed with [service]); set
# METACHAT_INFRA_SEQUENTIAL=1 to start them one after another. Exits non-zero if any failed.
set -euo pipefail
HERE="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
ALL=(postgres kafka cassandra)

cmd="${1:-}"; [ $# -gt 0 ] && shift
svcs=("$@"); [ ${#svcs[@]} -gt 0 ] || svcs=("${ALL[@]}")
for s in "${svcs[@]}"; do
  case "$s" in postgres|kafka|cassandra) ;; *) echo "unknown service '$s' (known: ${ALL[*]})" >&2; exit 2 ;; esac
done

case "$cmd" in
  start)
    t0=$(date +%s%3N)
    rc=0
    if [ "${METACHAT_INFRA_SEQUENTIAL:-0}" = 1 ] || [ ${#svcs[@]} = 1 ]; then
      for s in "${svcs[@]}"; do "$HERE/$s.sh" start || rc=1; done
    else
      declare -A pids=()
      for s in "${svcs[@]}"; do
        ( "$HERE/$s.sh" start 2>&1 | sed -u "s/^/[$s] /" ) &
        pids[$s]=$!
      done
      for s in "${svcs[@]}"; do
        if ! wait "${pids[$s]}"; then echo "[all] $s FAILED to start" >&2; rc=1; fi
      done
    fi
    echo "[all] start ${svcs[*]}: $([ $rc = 0 ] && echo ok || echo FAILED) in $(( $(date +%s%3N) - t0 )) ms" >&2
    exit $rc ;;
  stop)
    rc=0
    declare -A pids=()
    for s in "${svcs[@]}"; do "$HERE/$s.sh" stop & pids[$s]=$!; done
    for s in "${svcs[@]}"; do wait "${pids[$s]}" || { echo "[all] $s FAILED to stop" >&2; rc=1; }; done
    exit $rc ;;
  status)
    rc=0
    for s in "${svcs[@]}"; do "$HERE/$s.sh" status || rc=1; done
    exit $rc ;;
  *) echo "usage: $0 {start|stop|status} [postgres] [kafka] [cassandra]" >&2; exit 2 ;;
esac
