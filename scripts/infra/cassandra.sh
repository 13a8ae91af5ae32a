#!/usr/bin/env bash
# Apache Cassandra 5.0 for tests: one node from the Maven Central jars (cassandra-all) on JDK 17.
#   cassandra.sh start|stop|status
# CQL: 127.0.0.1:${METACHAT_CASSANDRA_PORT:-19042}; storage (gossip) 127.0.0.1:${METACHAT_CASSANDRA_STORAGE_PORT:-17000}.
# No JMX port is opened (no -Dcassandra.jmx.local.port), so nothing clashes on 7199.
# A node starts with an empty data dir, unless METACHAT_CASSANDRA_KEEP_DATA=1 (a restart that
# must find its keyspaces again, as in the outage test).
set -euo pipefail
SERVICE=cassandra
# shellcheck source=lib.sh
. "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/lib.sh"

PORT="${METACHAT_CASSANDRA_PORT:-19042}"
SPORT="${METACHAT_CASSANDRA_STORAGE_PORT:-17000}"
SSLPORT="${METACHAT_CASSANDRA_SSL_STORAGE_PORT:-17001}"
HEAP="${METACHAT_CASSANDRA_HEAP:-1G}"
METRICS_PORT="${METACHAT_CASSANDRA_METRICS_PORT:-19070}"   # the JMX exporter's /metrics
TIMEOUT="${METACHAT_CASSANDRA_START_TIMEOUT:-240}"
D="$(svc_dir cassandra)"
DATA="$D/data"
CONF="$D/conf/cassandra.yaml"
LOGFILE="$D/logs/cassandra.log"
PIDFILE="$D/run/cassandra.pid"
MARKER="-Dcassandra.config=file://$CONF"

healthy() {
  pid_alive "$PIDFILE" "$MARKER" || return 1
  local rc=0
  probe cql "$PORT" >/dev/null 2>&1 || rc=$?
  if [ "$rc" = 2 ]; then   # no python3: settle for the log line plus an open CQL port
    grep -q 'Startup complete' "$LOGFILE" 2>/dev/null && port_busy "$PORT"
  else
    return "$rc"
  fi
}

do_start() {
  local t0; t0=$(now_ms)
  restart_without_metrics cassandra "$PIDFILE" "$MARKER" "${METACHAT_CASSANDRA_STOP_TIMEOUT:-90}"
  if healthy; then log "already running: CQL 127.0.0.1:$PORT"; return 0; fi
  find_java17
  fetch_jars cassandra "$INFRA_SRC_DIR/cassandra/pom.xml"
  mkdir -p "$D/conf" "$D/logs" "$D/run" "$D/triggers" "$DATA"

  if pid_alive "$PIDFILE" "$MARKER"; then
    log "process $(cat "$PIDFILE") exists but CQL does not answer yet; waiting"
  else
    rm -f "$PIDFILE"
    for p in "$PORT" "$SPORT" "$METRICS_PORT"; do
      port_busy "$p" && die "port 127.0.0.1:$p is taken by another process (set METACHAT_CASSANDRA_PORT / METACHAT_CASSANDRA_STORAGE_PORT / METACHAT_CASSANDRA_METRICS_PORT)"
    done
    sed -e "s#@NATIVE_PORT@#$PORT#g" -e "s#@STORAGE_PORT@#$SPORT#g" -e "s#@SSL_STORAGE_PORT@#$SSLPORT#g" \
      "$INFRA_SRC_DIR/cassandra/cassandra.yaml" >"$CONF"
    cp "$INFRA_SRC_DIR/cassandra/jvm17.opts" "$INFRA_SRC_DIR/cassandra/logback.xml" "$D/conf/"
    # Every test makes keyspaces of its own and leaves them; thousands of tables slow a 1 GB
    # node's schema changes past the tests' start-up deadlines. A new node process starts empty.
    if [ "${METACHAT_CASSANDRA_KEEP_DATA:-0}" = 1 ]; then
      log "keeping the data dir $DATA (METACHAT_CASSANDRA_KEEP_DATA=1)"
    else
      rm -rf "$DATA"
      mkdir -p "$DATA"
      log "new data dir $DATA (test keyspaces are not kept from one node start to the next)"
    fi

    local jamm agent
    jamm=$(find "$D/jars" -name 'jamm-*.jar' | head -1)
    agent=$(jmx_exporter_agent cassandra "$METRICS_PORT")
    rotate_log "$LOGFILE"
    log "starting on 127.0.0.1:$PORT (storage port $SPORT, heap $HEAP, metrics http://127.0.0.1:$METRICS_PORT/metrics)"
    # setsid: own session, outlives this shell; cwd = run dir (so no stray hs_err file lands in
    # the caller's cwd, e.g. the git clone). fds 8/9 (our locks) are not passed on.
    # shellcheck disable=SC2016  # $0/$$/$@ expand in the child bash, on purpose
    setsid bash -c 'cd "${0%/*}" && echo $$ >"$0" && exec "$@"' "$PIDFILE" \
      "$JAVA" @"$D/conf/jvm17.opts" -Xms"$HEAP" -Xmx"$HEAP" \
        ${jamm:+-javaagent:"$jamm"} "$agent" \
        "$MARKER" \
        -Dcassandra.storagedir="$DATA" -Dcassandra.logdir="$D/logs" \
        -Dlogback.configurationFile="$D/conf/logback.xml" \
        -Dcassandra-foreground=yes \
        -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=100 \
        -Dcassandra.superuser_setup_delay_ms=0 -Dcassandra.triggers_dir="$D/triggers" \
        -XX:ErrorFile="$D/logs/hs_err_pid%p.log" \
        -cp "$D/conf:$D/jars/*" org.apache.cassandra.service.CassandraDaemon \
      </dev/null >>"$LOGFILE" 2>&1 8>&- 9>&- &
    local i
    for ((i = 0; i < 50; i++)); do [ -s "$PIDFILE" ] && break; sleep 0.1; done
  fi

  local deadline=$(( $(date +%s) + TIMEOUT ))
  until healthy; do
    pid_alive "$PIDFILE" "$MARKER" \
      || fail_with_log "$LOGFILE" "cassandra exited during startup (a corrupt data dir? remove $DATA to recreate)"
    [ "$(date +%s)" -lt "$deadline" ] || fail_with_log "$LOGFILE" "not ready after ${TIMEOUT}s (process still running, pid $(cat "$PIDFILE"); stop it with $0 stop)"
    sleep 0.5
  done
  log "ready in $(( $(now_ms) - t0 )) ms: CQL 127.0.0.1:$PORT (logs: $LOGFILE)"
}

do_stop() {
  stop_pid "$PIDFILE" "$MARKER" "${METACHAT_CASSANDRA_STOP_TIMEOUT:-90}"
}

do_status() {
  if healthy; then
    echo "cassandra: up   CQL 127.0.0.1:$PORT pid $(cat "$PIDFILE") $(probe cql "$PORT" 2>/dev/null || true) metrics http://127.0.0.1:$METRICS_PORT/metrics (log: $LOGFILE)"
  else
    echo "cassandra: down (log: $LOGFILE)"
    return 1
  fi
}

case "${1:-}" in
  start)  if healthy && with_metrics_agent "$PIDFILE"; then log "already running: CQL 127.0.0.1:$PORT"; exit 0; fi
          with_lock cassandra do_start ;;
  stop)   with_lock cassandra do_stop ;;
  status) do_status ;;
  *) usage_exit ;;
esac
