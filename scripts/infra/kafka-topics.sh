#!/usr/bin/env bash
# kafka-topics.sh: Kafka's own kafka-topics tool (org.apache.kafka.tools.TopicCommand) from the cached jars:
# create, list, describe or delete topics.
# --bootstrap-server defaults to 127.0.0.1:${METACHAT_KAFKA_PORT:-19092}. Pass --help for all options.
set -euo pipefail
SERVICE=kafka
# shellcheck source=lib.sh
. "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/lib.sh"
case " $* " in
  *" --bootstrap-server "*|*" --bootstrap-server="*|*" --help "*|*" --version "*) set -- "$@" ;;
  *) set -- --bootstrap-server "$(kafka_bootstrap)" "$@" ;;
esac
kafka_tool org.apache.kafka.tools.TopicCommand "$@"
