#!/usr/bin/env bash
# The whole pipeline end to end on a local broker: start Kafka, create topics, publish sample pixels
# and line items, start a worker, simulate traffic, print the report, stop what was started.
#
#   DEMO_EVENTS (default 50000)  DEMO_USERS (default 5000)  KAFKA_PORT (default 9092)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
EVENTS="${DEMO_EVENTS:-50000}"
USERS="${DEMO_USERS:-5000}"
export KAFKA_BROKER="${KAFKA_BROKER:-127.0.0.1:${KAFKA_PORT:-9092}}"
# A fresh prefix and app id per run: a rerun never mixes with an earlier one's records.
RUN="demo-$(date +%s)"
export ATTRIBUTION_TOPIC_PREFIX="$RUN-" ATTRIBUTION_APP_ID="$RUN" ATTRIBUTION_DATA_DIR=".attribution-data/$RUN"
export ATTRIBUTION_WEB_PORT="${ATTRIBUTION_WEB_PORT:-6066}"
LOG=".attribution-data/$RUN/worker.log"
mkdir -p ".attribution-data/$RUN"

started_kafka=0
worker=""
cleanup() {
  if [[ -n "$worker" ]] && kill -0 "$worker" 2>/dev/null; then
    kill -TERM "$worker" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$worker" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$worker" 2>/dev/null || true
  fi
  if [[ "$started_kafka" = 1 ]]; then bash scripts/kafka.sh down >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Kafka on $KAFKA_BROKER"
if bash scripts/kafka.sh status >/dev/null 2>&1; then
  echo "a broker is already running: using it"
else
  bash scripts/kafka.sh up
  started_kafka=1
fi

step "Topics (prefix $ATTRIBUTION_TOPIC_PREFIX)"
$BIN/attribution topics create

step "Sample pixels and line items"
$BIN/attribution pixels put examples/pixels.jsonl | tail -n 3
$BIN/attribution line-items put examples/line-items.jsonl | tail -n 3

step "Worker (log: $LOG)"
$BIN/attribution worker -l info >"$LOG" 2>&1 &
worker=$!

step "Simulated traffic: $EVENTS events, $USERS users, stamped with the time they are published"
$BIN/attribution simulate --no-config --events "$EVENTS" --users "$USERS" --no-progress

step "Waiting for the worker to judge every conversion"
expected=$($BIN/python -c "
from attribution.synth import TrafficSpec, events
print(len({v['event_id'] for t, _, v in events(TrafficSpec(users=$USERS, events=$EVENTS)) if t == 'conversions'}))")
last=-1
for i in $(seq 120); do
  kill -0 "$worker" 2>/dev/null || { echo "worker died:"; tail -n 30 "$LOG"; exit 1; }
  judged=$($BIN/attribution report --json --timeout 30 | $BIN/python -c "import sys, json; print(json.load(sys.stdin)['totals']['conversions'])")
  printf '\r%s of %s conversions judged' "$judged" "$expected"
  if [[ "$judged" -ge "$expected" ]]; then break; fi
  sleep 1
done
echo

step "Report"
$BIN/attribution report

step "Hourly report rows (conversion-reports, first 12)"
$BIN/attribution report --hourly >".attribution-data/$RUN/hourly.txt"
head -n 13 ".attribution-data/$RUN/hourly.txt"

step "Pixel status"
$BIN/attribution pixels list | head -n 12
