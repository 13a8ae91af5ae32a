#!/usr/bin/env bash
# Prepares Elasticsearch and Kibana for MetaChat's logs; docker-compose.elk.yml runs it once
# per start, and every step may run again (it sets, it does not add):
#
#   elasticsearch-setup.sh elasticsearch
#       the kibana_system user's password (KIBANA_PASSWORD); the role metachat_logs_writer and
#       the user logstash_writer (LOGSTASH_WRITER_PASSWORD) that Logstash writes with; the
#       lifecycle policy metachat-logs (delete after LOG_RETENTION_DAYS, default 30); the index
#       template of elasticsearch-index-template.json
#   elasticsearch-setup.sh kibana
#       the data views "MetaChat logs" (metachat-logs-*) and "MetaChat unparsed lines"
#       (metachat-unparsed-*)
#
# Talks to ELASTICSEARCH_URL (http://elasticsearch:9200) and KIBANA_URL (http://kibana:5601) as
# the elastic user (ELASTIC_PASSWORD). Needs bash and curl (the Elasticsearch image has both).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
es=${ELASTICSEARCH_URL:-http://elasticsearch:9200}
kibana=${KIBANA_URL:-http://kibana:5601}
retention_days=${LOG_RETENTION_DAYS:-30}

die() { echo "elasticsearch-setup: $*" >&2; exit 1; }
need() { [ -n "${!1:-}" ] || die "$1 is not set"; }
command -v curl >/dev/null || die "needs curl"

# A JSON string from any text (passwords may hold quotes or backslashes).
json_string() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

# call METHOD URL [BODY] [curl options...]: one request as the elastic user; fails, printing the
# answer, unless the status is 2xx.
call() {
  local method=$1 url=$2 body=${3:-} status out
  shift 3 || shift $#
  out=$(mktemp)
  status=$(curl -sS -o "$out" -w '%{http_code}' -u "elastic:$ELASTIC_PASSWORD" -X "$method" \
    -H 'Content-Type: application/json' "$@" ${body:+--data-binary "$body"} "$url") || status=000
  if [ "${status:0:1}" != 2 ]; then
    echo "elasticsearch-setup: $method $url answered $status:" >&2
    cat "$out" >&2; echo >&2
    rm -f "$out"
    return 1
  fi
  rm -f "$out"
}

# wait_for URL WHAT: until URL answers 2xx as the elastic user (5 minutes at most).
wait_for() {
  local url=$1 what=$2 i
  for ((i = 0; i < 150; i++)); do
    if curl -fsS -o /dev/null -u "elastic:$ELASTIC_PASSWORD" "$url" 2>/dev/null; then
      return 0
    fi
    sleep 2
  done
  die "$what did not answer at $url within 5 minutes"
}

setup_elasticsearch() {
  need ELASTIC_PASSWORD; need KIBANA_PASSWORD; need LOGSTASH_WRITER_PASSWORD
  case $retention_days in ''|*[!0-9]*) die "LOG_RETENTION_DAYS must be a number of days" ;; esac
  wait_for "$es/_cluster/health?wait_for_status=yellow&timeout=2s" Elasticsearch

  call POST "$es/_security/user/kibana_system/_password" \
    "{\"password\": $(json_string "$KIBANA_PASSWORD")}"
  echo "elasticsearch-setup: kibana_system password set"

  call PUT "$es/_security/role/metachat_logs_writer" '{
    "cluster": ["monitor"],
    "indices": [{"names": ["metachat-logs-*", "metachat-unparsed-*"],
                 "privileges": ["create_index", "write", "auto_configure"]}]}'
  call PUT "$es/_security/user/logstash_writer" \
    "{\"password\": $(json_string "$LOGSTASH_WRITER_PASSWORD"), \"roles\": [\"metachat_logs_writer\"],
      \"full_name\": \"Logstash, writing MetaChat's logs\"}"
  echo "elasticsearch-setup: role metachat_logs_writer and user logstash_writer set"

  # Daily indices, each deleted when it is LOG_RETENTION_DAYS old.
  call PUT "$es/_ilm/policy/metachat-logs" "{
    \"policy\": {\"phases\": {\"hot\": {\"actions\": {}},
                              \"delete\": {\"min_age\": \"${retention_days}d\", \"actions\": {\"delete\": {}}}}}}"
  call PUT "$es/_index_template/metachat-logs" "$(cat "$here/elasticsearch-index-template.json")"
  echo "elasticsearch-setup: lifecycle policy metachat-logs (${retention_days} days) and index template metachat-logs set"
}

setup_kibana() {
  need ELASTIC_PASSWORD
  wait_for "$kibana/api/status" Kibana
  local id title name
  for view in "metachat-logs|metachat-logs-*|MetaChat logs" \
              "metachat-unparsed|metachat-unparsed-*|MetaChat unparsed lines"; do
    IFS='|' read -r id title name <<<"$view"
    call POST "$kibana/api/data_views/data_view" "{\"override\": true, \"data_view\": {
      \"id\": \"$id\", \"title\": \"$title\", \"name\": \"$name\", \"timeFieldName\": \"@timestamp\"}}" \
      -H 'kbn-xsrf: metachat-setup'
    echo "elasticsearch-setup: Kibana data view \"$name\" ($title) set"
  done
}

case "${1:-}" in
  elasticsearch) setup_elasticsearch ;;
  kibana) setup_kibana ;;
  *) die "usage: $0 elasticsearch|kibana" ;;
esac
