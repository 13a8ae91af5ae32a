#!/usr/bin/env bash
# kafka-consumer-groups.sh: Kafka's own kafka-consumer-groups tool (org.apache.kafka.tools.consumer.group.ConsumerGroupCommand) from the cached jars:
# list or describe consumer groups and their lag (--list, --describe --group G).
# --bootstrap-server defaults to 127.0.0.1:${METACHAT_KAFKA_PORT:-19092}. Pass --help for all options.
set -euo pipefail
SERVICE=kafka
# shellcheck source=lib.sh
. "$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)/lib.sh"
case " $* " in
  *" --bootstrap-server "*|*" --bootstrap-server="*|*" --help "*|*" --version "*) set -- "$@" ;;
  *) set -- --bootstrap-server "$(kafka_bootstrap)" "$@" ;;
esac
kafka_tool org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@"
