#!/usr/bin/env bash
# Apache Kafka 4.x for tests: one KRaft node (broker + controller in one JVM) from Maven Central jars.
#   kafka.sh start|stop|status
# Bootstrap: 127.0.0.1:${METACHAT_KAFKA_PORT:-19092}; controller 127.0.0.1:${METACHAT_KAFKA_CONTROLLER_PORT:-19093}.
set -euo pipefail
SERVICE=kafka
# shellcheck source=lib.sh
. "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/lib.sh"

PORT="${METACHAT_KAFKA_PORT:-19092}"
CPORT="${METACHAT_KAFKA_CONTROLLER_PORT:-19093}"
PARTITIONS="${METACHAT_KAFKA_PARTITIONS:-1}"
TIMEOUT="${METACHAT_KAFKA_START_TIMEOUT:-120}"
D="$(svc_dir kafka)"
DATA="$D/data"
CONF="$D/conf/server.properties"
LOGFILE="$D/logs/kafka.log"
PIDFILE="$D/run/kafka.pid"
MARKER="$CONF"   # in the broker's command line: identifies our process behind the pid
HEAP="${METACHAT_KAFKA_HEAP:-1g}"
METRICS_PORT="${METACHAT_KAFKA_METRICS_PORT:-19071}"   # the JMX exporter's /metrics

healthy() {
  pid_alive "$PIDFILE" "$MARKER" || return 1
  local rc=0
  probe kafka "$PORT" >/dev/null 2>&1 || rc=$?
  if [ "$rc" = 2 ]; then   # no python3: ask with Kafka's own admin client instead
    timeout 30 "$0" __topics --list >/dev/null 2>&1
  else
    return "$rc"
  fi
}

new_cluster_id() {  # what `kafka-storage.sh random-uuid` prints: 16 random bytes, base64url, no padding
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    case "$id" in -*) ;; *) echo "$id"; return ;; esac
  done
}

do_start() {
  local t0; t0=$(now_ms)
  restart_without_metrics kafka "$PIDFILE" "$MARKER" "${METACHAT_KAFKA_STOP_TIMEOUT:-60}"
  if healthy; then log "already running: bootstrap 127.0.0.1:$PORT"; return 0; fi
  find_java17
  fetch_jars kafka "$INFRA_SRC_DIR/kafka/pom.xml"
  mkdir -p "$D/conf" "$D/logs" "$D/run"

  if pid_alive "$PIDFILE" "$MARKER"; then
    log "broker process $(cat "$PIDFILE") exists but is not ready yet; waiting"
  else
    rm -f "$PIDFILE"
    for p in "$PORT" "$CPORT" "$METRICS_PORT"; do
      port_busy "$p" && die "port 127.0.0.1:$p is taken by another process (set METACHAT_KAFKA_PORT / METACHAT_KAFKA_CONTROLLER_PORT / METACHAT_KAFKA_METRICS_PORT)"
    done
    sed -e "s#@PORT@#$PORT#g" -e "s#@CONTROLLER_PORT@#$CPORT#g" -e "s#@DATA_DIR@#$DATA#g" \
        -e "s#@PARTITIONS@#$PARTITIONS#g" "$INFRA_SRC_DIR/kafka/server.properties" >"$CONF"

    # `format --standalone` writes the controller's endpoint into the KRaft metadata log, so the
    # data dir is reused only while the controller port is unchanged; otherwise it is wiped and
    # formatted afresh (topics and offsets are lost then).
    local stamp="controller 127.0.0.1:$CPORT"
    if [ -f "$DATA/meta.properties" ] && [ "$(cat "$D/run/format.stamp" 2>/dev/null)" = "$stamp" ]; then
      log "reusing data dir $DATA"
    else
      rm -rf "$DATA"; mkdir -p "$DATA"
      local cid; cid=$(new_cluster_id)
      log "formatting $DATA (cluster id $cid)"
      "$JAVA" "${KAFKA_TOOL_OPTS[@]}" -cp "$D/jars/*" kafka.tools.StorageTool format --standalone \
          -t "$cid" -c "$CONF" >"$D/logs/format.log" 2>&1 \
        || fail_with_log "$D/logs/format.log" "kafka storage format failed"
      echo "$stamp" >"$D/run/format.stamp"
    fi

    local agent; agent=$(jmx_exporter_agent kafka "$METRICS_PORT")
    rotate_log "$LOGFILE"
    log "starting broker on 127.0.0.1:$PORT (controller 127.0.0.1:$CPORT, heap $HEAP, metrics http://127.0.0.1:$METRICS_PORT/metrics)"
    # setsid: own session, so the broker outlives this shell and ignores its terminal's signals;
    # cwd = run dir, so no stray hs_err file lands in the caller's cwd (e.g. the git clone).
    # fds 8/9 (our locks) are closed so the broker doesn't hold them.
    # shellcheck disable=SC2016  # $0/$$/$@ expand in the child bash, on purpose
    setsid bash -c 'cd "${0%/*}" && echo $$ >"$0" && exec "$@"' "$PIDFILE" \
      "$JAVA" -Xms"$HEAP" -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -XX:ErrorFile="$D/logs/hs_err_pid%p.log" \
        -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true "$agent" \
        -Dorg.slf4j.simpleLogger.logFile=System.out -Dorg.slf4j.simpleLogger.showDateTime=true \
        -Dorg.slf4j.simpleLogger.dateTimeFormat="yyyy-MM-dd'T'HH:mm:ss.SSS" \
        -Dorg.slf4j.simpleLogger.defaultLogLevel="${METACHAT_KAFKA_LOG_LEVEL:-info}" \
        -cp "$D/jars/*" kafka.Kafka "$CONF" \
      </dev/null >>"$LOGFILE" 2>&1 8>&- 9>&- &
    local i
    for ((i = 0; i < 50; i++)); do [ -s "$PIDFILE" ] && break; sleep 0.1; done
  fi

  local deadline=$(( $(date +%s) + TIMEOUT ))
  until healthy; do
    pid_alive "$PIDFILE" "$MARKER" || fail_with_log "$LOGFILE" "broker exited during startup"
    [ "$(date +%s)" -lt "$deadline" ] || fail_with_log "$LOGFILE" "not ready after ${TIMEOUT}s (broker still running, pid $(cat "$PIDFILE"); stop it with $0 stop)"
    sleep 0.3
  done
  log "ready in $(( $(now_ms) - t0 )) ms: bootstrap 127.0.0.1:$PORT (logs: $LOGFILE)"
}

do_stop() {
  stop_pid "$PIDFILE" "$MARKER" "${METACHAT_KAFKA_STOP_TIMEOUT:-60}"
}

do_status() {
  if healthy; then
    echo "kafka: up   bootstrap 127.0.0.1:$PORT pid $(cat "$PIDFILE") $(probe kafka "$PORT" 2>/dev/null || true) metrics http://127.0.0.1:$METRICS_PORT/metrics (log: $LOGFILE)"
  else
    echo "kafka: down (log: $LOGFILE)"
    return 1
  fi
}

case "${1:-}" in
  start)  if healthy && with_metrics_agent "$PIDFILE"; then log "already running: bootstrap 127.0.0.1:$PORT"; exit 0; fi
          with_lock kafka do_start ;;
  stop)   with_lock kafka do_stop ;;
  status) do_status ;;
  __topics) shift; kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" "$@" ;;
  *) usage_exit ;;
esac
