#!/usr/bin/env bash
# kafka-console-producer.sh: Kafka's own kafka-console-producer tool (org.apache.kafka.tools.ConsoleProducer) from the cached jars:
# write lines from stdin to a topic (--topic T; --reader-property parse.key=true --reader-property key.separator=: for keys).
# --bootstrap-server defaults to 127.0.0.1:${METACHAT_KAFKA_PORT:-19092}. Pass --help for all options.
set -euo pipefail
SERVICE=kafka
# shellcheck source=lib.sh
. "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/lib.sh"
case " $* " in
  *" --bootstrap-server "*|*" --bootstrap-server="*|*" --help "*|*" --version "*) set -- "$@" ;;
  *) set -- --bootstrap-server "$(kafka_bootstrap)" "$@" ;;
esac
kafka_tool org.apache.kafka.tools.ConsoleProducer "$@"
