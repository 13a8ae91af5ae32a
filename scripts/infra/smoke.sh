#!/usr/bin/env bash
# smoke.sh: end-to-end check of the running servers with stock clients:
#   psql query + CREATE/DROP DATABASE; Kafka topic create/list + produce/consume one message with
#   Kafka's console tools; CQL `SELECT release_version FROM system.local` + a write/read via cqlsh.
# Expects `all.sh start` to have run. Exits non-zero on the first failure.
set -euo pipefail
HERE="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
PG_PORT="${METACHAT_PG_PORT:-55432}"
step() { printf '\n== %s\n' "$*"; }

step "postgres 127.0.0.1:$PG_PORT"
PSQL=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/psql' 2>/dev/null | sort -V | tail -1)
export PGPASSWORD=metachat
"${PSQL:-psql}" -X -At -h 127.0.0.1 -p "$PG_PORT" -U metachat -d metachat -c 'select version()'
db="smoke_$$"
"${PSQL:-psql}" -X -q -h 127.0.0.1 -p "$PG_PORT" -U metachat -d metachat -c "create database $db" -c "drop database $db"
echo "create/drop database: ok"

topic="smoke.$$.$(date +%s)"
step "kafka topic $topic"
"$HERE/kafka-topics.sh" --create --topic "$topic" --partitions 1 2>&1 | grep -v 'could collide'
topics=$("$HERE/kafka-topics.sh" --list)
grep -qx "$topic" <<<"$topics" || { echo "topic not listed: $topics" >&2; exit 1; }
echo "listed: ok"
printf 'k1:hello-%s\n' "$$" | "$HERE/kafka-console-producer.sh" --topic "$topic" \
  --reader-property parse.key=true --reader-property key.separator=:
got=$("$HERE/kafka-console-consumer.sh" --topic "$topic" --from-beginning --max-messages 1 \
  --timeout-ms 30000 --formatter-property print.key=true 2>/dev/null)
echo "consumed: $got"
[ "$got" = "$(printf 'k1\thello-%s' "$$")" ]
"$HERE/kafka-topics.sh" --delete --topic "$topic"

step "cassandra"
"$HERE/cql.sh" "SELECT release_version FROM system.local"
"$HERE/cql.sh" "CREATE KEYSPACE IF NOT EXISTS smoke WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1};
  CREATE TABLE IF NOT EXISTS smoke.kv (k text PRIMARY KEY, v text);
  INSERT INTO smoke.kv (k, v) VALUES ('pid', '$$');"
out=$("$HERE/cql.sh" "SELECT v FROM smoke.kv WHERE k = 'pid'")
grep -q "^ *$$\$" <<<"$out" || { echo "cql write/read: FAILED, got: $out" >&2; exit 1; }
echo "cql write/read: ok"
"$HERE/cql.sh" "DROP KEYSPACE smoke"

printf '\nsmoke: all ok\n'
