#!/usr/bin/env bash
# The integration tier against a Kafka version of its choosing, on a broker of its own:
#
#   scripts/test-kafka.sh VERSION [pytest args...]     e.g. scripts/test-kafka.sh 3.9.1 -x
#
# Starts a single-node broker of that version (scripts/kafka.sh, jars fetched on first use) on
# KAFKA_TEST_PORT (default 9392, controller port +1000), runs tests/integration against it, and
# stops it again. The tests that start brokers of their own (a broker restart) run that version
# too. `make test` runs the same tier against the default version (4.x).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || { echo "usage: $0 VERSION [pytest args...]" >&2; exit 2; }
export KAFKA_VERSION="$1"
shift
export KAFKA_PORT="${KAFKA_TEST_PORT:-9392}"
export KAFKA_BROKER="127.0.0.1:$KAFKA_PORT"
BIN=.venv/bin

if bash scripts/kafka.sh status >/dev/null 2>&1; then
  # Its version cannot be asked over the wire: testing it could test the wrong Kafka.
  echo "a broker already answers on $KAFKA_BROKER: stop it or set KAFKA_TEST_PORT" >&2
  exit 1
fi
cleanup() { bash scripts/kafka.sh down || true; }
trap cleanup EXIT
bash scripts/kafka.sh up
echo "integration tier against Kafka $KAFKA_VERSION on $KAFKA_BROKER" >&2
"$BIN/pytest" tests/integration "$@"
