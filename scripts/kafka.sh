#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller) without Docker.
#
# Jars come from Maven Central via kafka/pom.xml (needs `mvn` + Java 17).
#
# Usage: scripts/kafka.sh {up|down|stop|status|fetch}
#   up      fetch jars if needed, format storage, start broker, wait until it
#           answers a Metadata request (idempotent: no-op if already up)
#   down    stop the broker (TERM, KILL after 15s), delete its data and pid
#   stop    stop the broker but keep its data (restart: KAFKA_KEEP_DATA=1 up)
#   status  exit 0 if a Kafka broker answers on 127.0.0.1:$KAFKA_PORT
#   fetch   only download/copy the jars into $KAFKA_HOME_DIR/lib
#
# Environment:
#   KAFKA_PORT             client (PLAINTEXT) port, default 9092
#   KAFKA_CONTROLLER_PORT  KRaft controller port, default KAFKA_PORT+1000
#   KAFKA_HOME_DIR         default <repo>/.kafka (gitignored). Layout:
#                            lib/                 jars (shared by all ports)
#                            broker-<port>/       one dir per broker instance:
#                              server.properties log4j.properties pid
#                              data/ logs/server.log logs/stdout.log
#   KAFKA_VERSION          Kafka version(s) to try, default "3.9.1 3.9.0"
#   KAFKA_HEAP_OPTS        default "-Xmx512m -Xms256m"
#   KAFKA_JVM_OPTS         extra JVM flags for the broker (appended)
#   KAFKA_START_TIMEOUT    seconds to wait for readiness, default 90
#   KAFKA_KEEP_DATA=1      on `up`, reuse data left by a crashed/killed broker
#                          instead of wiping it (restart then takes ~10s longer)
#   JAVA_HOME              honoured if set; else the Java 17 JDK if present
#   PYTHON                 python3 used for the readiness probe
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
POM="$REPO/kafka/pom.xml"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1000))}"
KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-$REPO/.kafka}"
KAFKA_VERSIONS="${KAFKA_VERSION:-3.9.1 3.9.0}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
HOST=127.0.0.1

if [[ -z "${JAVA_HOME:-}" && -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then
  JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
fi
if [[ -n "${JAVA_HOME:-}" ]]; then
  JAVA="$JAVA_HOME/bin/java"
else
  JAVA="$(command -v java || true)"
fi
PYTHON="${PYTHON:-$(command -v python3 || command -v python || true)}"

LIB_DIR="$KAFKA_HOME_DIR/lib"
INST_DIR="$KAFKA_HOME_DIR/broker-$KAFKA_PORT"
DATA_DIR="$INST_DIR/data"
LOG_DIR="$INST_DIR/logs"
PID_FILE="$INST_DIR/pid"
SERVER_PROPS="$INST_DIR/server.properties"
LOG4J_PROPS="$INST_DIR/log4j.properties"
TOOLS_LOG4J_PROPS="$KAFKA_HOME_DIR/tools-log4j.properties"
MARKER="$LIB_DIR/.complete"

log() { echo "[kafka.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_tools() {
  [[ -n "$JAVA" && -x "$JAVA" ]] || die "java not found (set JAVA_HOME)"
  [[ -n "$PYTHON" ]] || die "python3 not found (needed for the readiness probe; set PYTHON)"
}

# probe HOST PORT -> exit 0: Kafka broker answers Metadata and lists >=1 live broker
#                         1: connection refused / unreachable (port free)
#                         2: something accepts connections but it's not a ready broker
probe() {
  "$PYTHON" - "$1" "$2" <<'PY'
import socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    s = socket.create_connection((host, port), timeout=1.0)
except OSError:
    sys.exit(1)
try:
    s.settimeout(2.0)
    cid = b"kafka.sh-probe"
    # Metadata v1 request, empty topic list (= no topics, just brokers)
    body = struct.pack(">hhih", 3, 1, 4242, len(cid)) + cid + struct.pack(">i", 0)
    s.sendall(struct.pack(">i", len(body)) + body)
    def recv(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf
    (size,) = struct.unpack(">i", recv(4))
    if size < 8 or size > 10_000_000:
        sys.exit(2)
    data = recv(size)
    corr, nbrokers = struct.unpack_from(">ii", data, 0)
    sys.exit(0 if corr == 4242 and nbrokers >= 1 else 2)
except (OSError, EOFError, struct.error):
    sys.exit(2)
finally:
    s.close()
PY
}

broker_ready() { probe "$HOST" "$KAFKA_PORT" >/dev/null 2>&1; }

# pid from the pid file if that process is alive and is a Kafka broker
live_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
  echo "$pid"
}

pom_digest() { { sha256sum "$POM" | cut -d' ' -f1; echo "$KAFKA_VERSIONS"; } | sha256sum | cut -d' ' -f1; }

fetch() {
  need_tools
  command -v mvn >/dev/null || die "mvn not found"
  [[ -f "$POM" ]] || die "missing $POM"
  mkdir -p "$KAFKA_HOME_DIR"
  local digest
  digest="$(pom_digest)"
  # Serialise concurrent fetches (e.g. two `up`s on different ports).
  exec 9>"$KAFKA_HOME_DIR/.fetch.lock"
  flock 9
  if [[ -f "$MARKER" && "$(sed -n 1p "$MARKER")" == "$digest" ]]; then
    exec 9>&-
    return 0
  fi
  local tmp v mode ok=""
  tmp="$(mktemp -d "$KAFKA_HOME_DIR/lib.tmp.XXXXXX")"
  for v in $KAFKA_VERSIONS; do
    # Offline first (fast, no network once ~/.m2 is warm), then online.
    for mode in -o ""; do
      rm -rf "$tmp" && mkdir -p "$tmp"
      if [[ -z "$mode" ]]; then log "fetching kafka_2.13:$v and dependencies from Maven Central ..."; fi
      if JAVA_HOME="${JAVA_HOME:-}" mvn -B -q $mode -f "$POM" \
           -Dkafka.version="$v" \
           dependency:copy-dependencies -DincludeScope=runtime \
           -DoutputDirectory="$tmp" >"$KAFKA_HOME_DIR/fetch.log" 2>&1 \
         && [[ -f "$tmp/kafka_2.13-$v.jar" ]]; then
        ok="$v"; break 2
      fi
    done
    log "kafka $v not resolvable (see $KAFKA_HOME_DIR/fetch.log)"
  done
  if [[ -z "$ok" ]]; then
    rm -rf "$tmp"
    tail -n 40 "$KAFKA_HOME_DIR/fetch.log" >&2 || true
    die "could not fetch any of: $KAFKA_VERSIONS"
  fi
  printf '%s\n%s\n' "$digest" "$ok" >"$tmp/.complete"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  exec 9>&-
  log "kafka $ok jars in $LIB_DIR ($(ls "$LIB_DIR"/*.jar | wc -l) jars)"
}

write_configs() {
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  cat >"$SERVER_PROPS" <<EOF
# Generated by scripts/kafka.sh -- single-node KRaft (combined broker+controller)
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA_DIR
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=true
delete.topic.enable=true
offsets.topic.replication.factor=1
# 1 partition instead of 50: first consumer-group join is much faster locally
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=24
EOF
  cat >"$LOG4J_PROPS" <<EOF
# reload4j (log4j 1.x API) config, passed as -Dlog4j.configuration=file:...
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$LOG_DIR/server.log
log4j.appender.file.Append=false
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.log.LogCleaner=INFO
log4j.logger.state.change.logger=INFO
log4j.logger.kafka.authorizer.logger=INFO
log4j.logger.org.apache.zookeeper=WARN
EOF
  cat >"$TOOLS_LOG4J_PROPS" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

random_cluster_id() {
  # Same format as `kafka.tools.StorageTool random-uuid` (url-safe base64 of a
  # random 16-byte UUID, no padding, never starting with '-'), minus a JVM start.
  "$PYTHON" -c '
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not s.startswith("-"):
        print(s); break'
}

print_failure_logs() {
  log "---- tail of $LOG_DIR/server.log ----"
  tail -n 60 "$LOG_DIR/server.log" >&2 2>/dev/null || true
  if [[ -s "$LOG_DIR/stdout.log" ]]; then
    log "---- tail of $LOG_DIR/stdout.log ----"
    tail -n 30 "$LOG_DIR/stdout.log" >&2 || true
  fi
}

stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "broker pid $pid did not exit after 15s, sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

wait_ready() {
  local pid="$1" start=$SECONDS
  while ((SECONDS - start < KAFKA_START_TIMEOUT)); do
    if broker_ready; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "broker process $pid exited during startup"
      print_failure_logs
      rm -f "$PID_FILE"
      return 1
    fi
    sleep 0.2
  done
  log "broker not ready after ${KAFKA_START_TIMEOUT}s; stopping it"
  print_failure_logs
  stop_pid "$pid"
  rm -f "$PID_FILE"
  return 1
}

lock_instance() {
  # Serialise up/down for the same port (fd 8 is closed for the broker child).
  mkdir -p "$INST_DIR"
  exec 8>"$INST_DIR/.lock"
  flock 8
}

cmd_up() {
  need_tools
  lock_instance
  if broker_ready; then
    log "a Kafka broker already answers on $HOST:$KAFKA_PORT"
    return 0
  fi
  local pid rc
  if pid="$(live_pid)"; then
    log "broker pid $pid is starting; waiting for it"
    wait_ready "$pid" || exit 1
    log "Kafka ready on $HOST:$KAFKA_PORT (pid $pid)"
    return 0
  fi
  rm -f "$PID_FILE"
  rc=0; probe "$HOST" "$KAFKA_PORT" || rc=$?
  ((rc == 1)) || die "port $KAFKA_PORT is in use by something that is not a ready Kafka broker"
  rc=0; probe "$HOST" "$KAFKA_CONTROLLER_PORT" || rc=$?
  ((rc == 1)) || die "controller port $KAFKA_CONTROLLER_PORT is in use (set KAFKA_CONTROLLER_PORT)"

  # No live broker for this port: leftover data is from a crash / external
  # kill. Wipe it (down wipes data anyway) -- reusing it would stall startup
  # ~10s on DuplicateBrokerRegistration until broker.session.timeout.ms passes.
  if [[ -d "$DATA_DIR" && "${KAFKA_KEEP_DATA:-0}" != 1 ]]; then
    log "removing stale data dir $DATA_DIR (set KAFKA_KEEP_DATA=1 to keep it)"
    rm -rf "$DATA_DIR"
  fi

  fetch
  write_configs

  if [[ ! -f "$DATA_DIR/meta.properties" ]]; then
    local cid
    cid="$(random_cluster_id)"
    if ! "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$LIB_DIR/*" -Dlog4j.configuration="file:$TOOLS_LOG4J_PROPS" \
         kafka.tools.StorageTool format -t "$cid" -c "$SERVER_PROPS" --ignore-formatted \
         >"$LOG_DIR/format.log" 2>&1; then
      cat "$LOG_DIR/format.log" >&2
      die "storage format failed"
    fi
  fi

  # setsid: own session so Ctrl-C / job-control kills of the caller don't hit it.
  # The inner shell writes its own pid (== java's pid after exec).
  rm -f "$PID_FILE"
  # shellcheck disable=SC2086
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    "$JAVA" $KAFKA_HEAP_OPTS \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$LOG4J_PROPS" -Dkafka.logs.dir="$LOG_DIR" \
    $KAFKA_JVM_OPTS \
    -cp "$LIB_DIR/*" kafka.Kafka "$SERVER_PROPS" \
    >"$LOG_DIR/stdout.log" 2>&1 </dev/null 8>&- 9>&- &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s "$PID_FILE" ]] && break
    sleep 0.05
  done
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || die "failed to launch broker (no pid)"
  log "started broker pid $pid on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT), waiting ..."
  wait_ready "$pid" || exit 1
  log "Kafka ready on $HOST:$KAFKA_PORT (pid $pid, logs: $LOG_DIR/server.log)"
}

cmd_stop() {
  # Stop the broker but keep its data: `KAFKA_KEEP_DATA=1 up` restarts it where it was.
  local pid
  lock_instance
  if pid="$(live_pid)"; then
    log "stopping broker pid $pid (keeping its data)"
    stop_pid "$pid"
  fi
  rm -f "$PID_FILE"
}

cmd_down() {
  local pid
  lock_instance
  if pid="$(live_pid)"; then
    log "stopping broker pid $pid"
    stop_pid "$pid"
  else
    if broker_ready; then
      log "WARNING: a broker answers on $KAFKA_PORT but has no pid file under $INST_DIR; not touching it"
    else
      log "no broker running for port $KAFKA_PORT"
    fi
  fi
  rm -rf "$DATA_DIR"
  rm -f "$PID_FILE"
}

cmd_status() {
  need_tools
  if broker_ready; then
    local pid
    pid="$(live_pid || echo '?')"
    echo "Kafka up on $HOST:$KAFKA_PORT (pid $pid)"
    return 0
  fi
  echo "Kafka not answering on $HOST:$KAFKA_PORT"
  return 1
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  fetch) fetch ;;
  *) echo "usage: $0 {up|down|stop|status|fetch}" >&2; exit 2 ;;
esac
