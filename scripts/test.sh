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
# The dashboard test drives Debian's Chromium, headless, through the driver that ships inside the
# playwright package (no browser download). Install it when missing (as root; CI runs as root).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } \
    || echo "warning: could not install chromium: the dashboard browser test will fail" >&2
fi
cleanup() { if [ "$started" = 1 ]; then bash scripts/kafka.sh down || true; fi; }
trap cleanup EXIT
"$BIN/pytest" tests "$@"
