#!/usr/bin/env bash
# Soak: repeat the churn tests (workers joining and killed with SIGKILL, from a backlog and under live
# traffic, tests/integration/test_backlog_and_churn.py) N times on the local broker, and count runs
# with a wrong or missing outcome. Not part of CI: N=30 takes about 45 minutes on 2 cores.
#
# Usage: scripts/soak.sh [N]        (default 30; logs of failing runs in .soak/)
set -uo pipefail
cd "$(dirname "$0")/.."
N="${1:-30}"
BIN=.venv/bin
export KAFKA_BROKER="${KAFKA_BROKER:-127.0.0.1:${KAFKA_PORT:-9092}}"
bash scripts/kafka.sh status >/dev/null 2>&1 || bash scripts/kafka.sh up
mkdir -p .soak
passed=0
failed=0
start=$(date +%s)
for i in $(seq 1 "$N"); do
  log=".soak/run-$i.log"
  # Each run's temporary directory (the workers' logs and data) is kept when the run fails.
  tmp=".soak/run-$i"
  rm -rf "$tmp"
  if "$BIN/pytest" tests/integration/test_backlog_and_churn.py -k "joining_and_killed" -q -p no:cacheprovider \
    --basetemp="$tmp" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "run $i/$N: pass ($(tail -n 1 "$log"))"
    rm -rf "$log" "$tmp"
  else
    failed=$((failed + 1))
    echo "run $i/$N: FAIL: $(grep -m 1 -E '^E ' "$log" | cut -c1-300) (log: $log, workers: $tmp)"
  fi
done
echo "soak: $passed passed, $failed failed of $N runs in $(( $(date +%s) - start )) s"
[ "$failed" -eq 0 ]
