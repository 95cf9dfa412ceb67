#!/usr/bin/env bash
# Run every test tier. Starts a local Kafka broker for the integration tier when none answers,
# and stops it again afterwards (only if this script started it).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export KAFKA_BROKER="${KAFKA_BROKER:-127.0.0.1:${KAFKA_PORT:-9092}}"
started=0
if [ -f scripts/kafka.sh ] && [ -d tests/integration ] && ls tests/integration/test_*.py >/dev/null 2>&1; then
  if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
    bash scripts/kafka.sh up
    started=1
  fi
fi
cleanup() { if [ "$started" = 1 ]; then bash scripts/kafka.sh down || true; fi; }
trap cleanup EXIT
"$BIN/pytest" tests "$@"
