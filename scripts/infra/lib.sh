# shellcheck shell=bash
# Shared helpers for scripts/infra/*.sh. Sourced, never executed directly.
#
# State lives OUTSIDE the git clone, one folder per service:
#   ${METACHAT_INFRA_DIR:-$HOME/.cache/metachat-infra}/<service>/{jars,data,logs,run,conf}

INFRA_SRC_DIR="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
INFRA_DIR="${METACHAT_INFRA_DIR:-${HOME:-/root}/.cache/metachat-infra}"

log()  { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${SERVICE:-infra}" "$*" >&2; }
die()  { log "ERROR: $*"; exit 1; }

# now_ms: wall clock in milliseconds (for timings printed by start).
now_ms() { date +%s%3N; }

svc_dir() { printf '%s/%s' "$INFRA_DIR" "$1"; }

# ---------------------------------------------------------------- apt
APT_UPDATED=0
apt_install() {
  # apt_install PKG... : install Debian packages (root only), `apt-get update` once per process.
  if [ "$(id -u)" != 0 ]; then
    die "missing packages ($*) and not root: run 'sudo apt-get update && sudo apt-get install -y $*'"
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || die "apt-get update failed"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $* failed"
}

# ---------------------------------------------------------------- java / maven
# find_java17: sets JAVA (path of a JDK 17 `java`). Cassandra 5.0 supports only JDK 11/17 and
# Kafka 4 brokers need >= 17, so we pin 17 even when the default `java` is newer (e.g. Temurin 25).
find_java17() {
  local cand v
  for cand in ${METACHAT_JAVA_HOME:+"$METACHAT_JAVA_HOME/bin/java"} \
              ${JAVA_HOME:+"$JAVA_HOME/bin/java"} \
              /usr/lib/jvm/java-17-openjdk-amd64/bin/java /usr/lib/jvm/java-17-openjdk-arm64/bin/java \
              /usr/lib/jvm/java-17-openjdk*/bin/java /usr/lib/jvm/*17*/bin/java \
              "$(command -v java 2>/dev/null || true)"; do
    if [ -z "$cand" ] || [ ! -x "$cand" ]; then continue; fi
    v=$("$cand" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
    if [ "$v" = 17 ]; then JAVA="$cand"; return 0; fi
  done
  log "no JDK 17 found; installing openjdk-17-jdk-headless"
  apt_install openjdk-17-jdk-headless
  JAVA=/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)/bin/java
  [ -x "$JAVA" ] || die "JDK 17 still not found after install"
}

ensure_mvn() {
  command -v mvn >/dev/null 2>&1 || apt_install maven
}

# fetch_jars SERVICE POM: copy the POM's runtime dependency jars into <state>/<service>/jars.
# Cached: re-fetched only when the POM changes (its checksum is kept in jars/.pom.sha256).
# Maven runs are serialized through a global lock (parallel `all.sh start` shares ~/.m2).
fetch_jars() {
  local svc=$1 pom=$2 dir sum
  dir="$(svc_dir "$svc")/jars"
  sum=$(sha256sum "$pom" | cut -d' ' -f1)
  if [ -f "$dir/.pom.sha256" ] && [ "$(cat "$dir/.pom.sha256")" = "$sum" ]; then
    return 0
  fi
  ensure_mvn
  mkdir -p "$INFRA_DIR"
  (
    flock 9
    if [ -f "$dir/.pom.sha256" ] && [ "$(cat "$dir/.pom.sha256")" = "$sum" ]; then exit 0; fi
    log "fetching jars with Maven into $dir (first run only; cached afterwards)"
    local tmp="$dir.tmp.$$" mlog
    mlog="$(svc_dir "$svc")/logs/maven.log"
    mkdir -p "$(dirname "$mlog")"
    rm -rf "$tmp"
    # JAVA_HOME so mvn runs on the JDK 17 we found, whatever the default is.
    if ! JAVA_HOME="$(dirname "$(dirname "$JAVA")")" mvn -B -f "$pom" \
          dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mlog" 2>&1; then
      tail -30 "$mlog" >&2
      die "maven dependency:copy-dependencies failed; full log: $mlog"
    fi
    rm -rf "$dir"; mv "$tmp" "$dir"
    echo "$sum" >"$dir/.pom.sha256"
    log "fetched $(find "$dir" -name '*.jar' | wc -l) jars"
  ) 9>"$INFRA_DIR/.maven.lock"
}

# ---------------------------------------------------------------- processes
# pid_alive PIDFILE MARKER: true if the pid in PIDFILE runs and its command line contains MARKER
# (guards against a recycled pid).
pid_alive() {
  local pidfile=$1 marker=$2 pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"
}

# port_busy PORT: true if something listens on 127.0.0.1:PORT (or any address).
port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# rotate_log FILE: keep the previous run's log as FILE.1.
rotate_log() {
  [ -f "$1" ] && mv -f "$1" "$1.1"
  : >"$1"
}

# stop_pid PIDFILE MARKER TIMEOUT_S: SIGTERM, wait up to TIMEOUT_S, then SIGKILL.
stop_pid() {
  local pidfile=$1 marker=$2 timeout=$3 pid i
  if ! pid_alive "$pidfile" "$marker"; then
    rm -f "$pidfile"; log "not running"; return 0
  fi
  pid=$(cat "$pidfile")
  log "stopping (pid $pid, SIGTERM)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; log "stopped"; return 0; }
    sleep 0.2
  done
  log "still running after ${timeout}s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  rm -f "$pidfile"
}

# fail_with_log LOGFILE MSG: print the log tail and where the full log is, then exit 1.
fail_with_log() {
  local logfile=$1; shift
  log "ERROR: $*"
  if [ -f "$logfile" ]; then
    echo "----- last 60 lines of $logfile -----" >&2
    tail -n 60 "$logfile" >&2
    echo "----- full log: $logfile -----" >&2
  fi
  exit 1
}

# with_lock SERVICE CMD...: run CMD holding the per-service lock (start/stop don't interleave).
with_lock() {
  local svc=$1; shift
  mkdir -p "$(svc_dir "$svc")"
  exec 8>"$(svc_dir "$svc")/.lock"
  flock 8
  "$@"
}

usage_exit() {
  echo "usage: $0 {start|stop|status}" >&2
  exit 2
}

# ---------------------------------------------------------------- probes / kafka tools
# probe KIND PORT: protocol-level readiness check (scripts/infra/probe.py, python3 stdlib only).
probe() {
  local py
  py=$(command -v python3 || true)
  # no python3 (or METACHAT_INFRA_NO_PYTHON=1, to test that path): caller falls back to another check
  if [ -z "$py" ] || [ "${METACHAT_INFRA_NO_PYTHON:-0}" = 1 ]; then return 2; fi
  "$py" "$INFRA_SRC_DIR/probe.py" "$1" 127.0.0.1 "$2"
}

# JVM flags for short-lived CLI tools: small heap, C1 only, serial GC => faster start on 2 cores.
KAFKA_TOOL_OPTS=(-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.slf4j.simpleLogger.logFile=System.err)

# kafka_tool CLASS ARGS...: run one of Kafka's Java tools from the cached jars (fetched if missing).
kafka_tool() {
  local cls=$1; shift
  find_java17
  fetch_jars kafka "$INFRA_SRC_DIR/kafka/pom.xml"
  "$JAVA" "${KAFKA_TOOL_OPTS[@]}" -cp "$(svc_dir kafka)/jars/*" "$cls" "$@"
}

# metrics_up PORT: true if the JMX exporter agent answers /metrics on 127.0.0.1:PORT.
metrics_up() {
  curl -sf -o /dev/null --max-time 5 "http://127.0.0.1:$1/metrics"
}

# jmx_exporter_agent SVC PORT: the -javaagent flag that attaches the Prometheus JMX exporter
# (fetched with the service's jars) to SVC's JVM, serving 127.0.0.1:PORT/metrics with the rules
# in scripts/infra/SVC/jmx-exporter.yml.
jmx_exporter_agent() {
  local svc=$1 port=$2 dir jar
  dir="$(svc_dir "$svc")"
  jar=$(find "$dir/jars" -name 'jmx_prometheus_javaagent-*.jar' | head -1)
  [ -n "$jar" ] || die "no jmx_prometheus_javaagent jar in $dir/jars"
  cp "$INFRA_SRC_DIR/$svc/jmx-exporter.yml" "$dir/conf/jmx-exporter.yml"
  printf -- '-javaagent:%s=127.0.0.1:%s:%s' "$jar" "$port" "$dir/conf/jmx-exporter.yml"
}

# with_metrics_agent PIDFILE: true if the process behind PIDFILE runs with the JMX exporter.
with_metrics_agent() {
  tr '\0' ' ' <"/proc/$(cat "$1" 2>/dev/null)/cmdline" 2>/dev/null | grep -q jmx_prometheus_javaagent
}

# restart_without_metrics SVC PIDFILE MARKER STOP_TIMEOUT: a process started before the
# exporter was attached (by an older version of these scripts) is stopped, so that it restarts
# with it.
restart_without_metrics() {
  local svc=$1 pidfile=$2 marker=$3 timeout=$4
  if pid_alive "$pidfile" "$marker" && ! with_metrics_agent "$pidfile"; then
    log "the running $svc has no metrics exporter (started by an older version of this script); restarting it"
    stop_pid "$pidfile" "$marker" "$timeout"
  fi
  return 0
}

kafka_bootstrap() { printf '127.0.0.1:%s' "${METACHAT_KAFKA_PORT:-19092}"; }
