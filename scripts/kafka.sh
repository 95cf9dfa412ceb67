#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller) without Docker.
#
# Jars come from Maven Central (needs `mvn` + Java 17): kafka/pom-4.xml for Kafka 4.x (logging through
# Log4j 2), kafka/pom-3.9.xml for 3.9.x (logging through reload4j). Each version's jars live in a
# directory of their own, so brokers of both lines can run side by side.
#
# Usage: scripts/kafka.sh {up|down|stop|status|fetch}
#   up      fetch jars if needed, format storage, start broker, wait until it
#           answers a Metadata request (idempotent: no-op if already up)
#   down    stop the broker (TERM, KILL after 15s), delete its data and pid
#   stop    stop the broker but keep its data (restart: KAFKA_KEEP_DATA=1 up)
#   status  exit 0 if a Kafka broker answers on 127.0.0.1:$KAFKA_PORT
#   fetch   only download the jars of $KAFKA_VERSION into $KAFKA_HOME_DIR/lib-<version>
#
# Environment:
#   KAFKA_PORT             client (PLAINTEXT) port, default 9092
#   KAFKA_CONTROLLER_PORT  KRaft controller port, default KAFKA_PORT+1000
#   KAFKA_HOME_DIR         default <repo>/.kafka (gitignored). Layout:
#                            lib-<version>/       jars of one Kafka version (shared by all ports)
#                            broker-<port>/       one dir per broker instance:
#                              server.properties log4j[2].properties pid version
#                              data/ logs/server.log logs/stdout.log
#   KAFKA_VERSION          Kafka version, default 4.4.0 (tested: 4.4.0 and 3.9.1; any 3.9.x or 4.x
#                          that Maven Central serves should work)
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

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1000))}"
KAFKA_HOME_DIR="${KAFKA_HOME_DIR:-$REPO/.kafka}"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
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

log() { echo "[kafka.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The line decides the Maven project (which logging backend the jars need) and the logging config.
case "$KAFKA_VERSION" in
  3.9.*) POM="$REPO/kafka/pom-3.9.xml"; KAFKA_MAJOR=3 ;;
  4.*) POM="$REPO/kafka/pom-4.xml"; KAFKA_MAJOR=4 ;;
  *) die "KAFKA_VERSION=$KAFKA_VERSION: only 3.9.x and 4.x are supported" ;;
esac
[[ "$KAFKA_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "KAFKA_VERSION=$KAFKA_VERSION is not a release number like 4.4.0"

LIB_DIR="$KAFKA_HOME_DIR/lib-$KAFKA_VERSION"
INST_DIR="$KAFKA_HOME_DIR/broker-$KAFKA_PORT"
DATA_DIR="$INST_DIR/data"
LOG_DIR="$INST_DIR/logs"
PID_FILE="$INST_DIR/pid"
VERSION_FILE="$INST_DIR/version"
SERVER_PROPS="$INST_DIR/server.properties"
MARKER="$LIB_DIR/.complete"
if ((KAFKA_MAJOR >= 4)); then
  # Log4j 2 (Kafka 4.x): -Dlog4j2.configurationFile=...
  LOG4J_PROPS="$INST_DIR/log4j2.properties"
  TOOLS_LOG4J_PROPS="$KAFKA_HOME_DIR/tools-log4j2.properties"
  log4j_flag() { echo "-Dlog4j2.configurationFile=file:$1"; }
else
  # reload4j, the log4j 1.x API (Kafka 3.9.x): -Dlog4j.configuration=...
  LOG4J_PROPS="$INST_DIR/log4j.properties"
  TOOLS_LOG4J_PROPS="$KAFKA_HOME_DIR/tools-log4j.properties"
  log4j_flag() { echo "-Dlog4j.configuration=file:$1"; }
fi

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
    # Metadata v4 request (the oldest version Kafka 4.x still accepts; 3.x accepts it too):
    # empty topic list (= no topics, just brokers), allow_auto_topic_creation=false
    body = struct.pack(">hhih", 3, 4, 4242, len(cid)) + cid + struct.pack(">ib", 0, 0)
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
    if size < 12 or size > 10_000_000:
        sys.exit(2)
    data = recv(size)
    corr, _throttle_ms, nbrokers = struct.unpack_from(">iii", data, 0)
    sys.exit(0 if corr == 4242 and nbrokers >= 1 else 2)
except (OSError, EOFError, struct.error):
    sys.exit(2)
finally:
    s.close()
PY
}

broker_ready() { probe "$HOST" "$KAFKA_PORT" >/dev/null 2>&1; }

# ", Kafka X" when this script started the broker on this port (its instance dir records the version)
running_version_note() {
  if live_pid >/dev/null && [[ -f "$VERSION_FILE" ]]; then
    echo ", Kafka $(cat "$VERSION_FILE")"
  fi
}

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

pom_digest() { { sha256sum "$POM" | cut -d' ' -f1; echo "$KAFKA_VERSION"; } | sha256sum | cut -d' ' -f1; }

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
  local tmp mode ok=""
  tmp="$(mktemp -d "$KAFKA_HOME_DIR/lib.tmp.XXXXXX")"
  # Offline first (fast, no network once ~/.m2 is warm), then online.
  for mode in -o ""; do
    rm -rf "$tmp" && mkdir -p "$tmp"
    if [[ -z "$mode" ]]; then log "fetching kafka_2.13:$KAFKA_VERSION and dependencies from Maven Central ..."; fi
    if JAVA_HOME="${JAVA_HOME:-}" mvn -B -q $mode -f "$POM" \
         -Dkafka.version="$KAFKA_VERSION" \
         dependency:copy-dependencies -DincludeScope=runtime \
         -DoutputDirectory="$tmp" >"$KAFKA_HOME_DIR/fetch.log" 2>&1 \
       && [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
      ok=1; break
    fi
  done
  if [[ -z "$ok" ]]; then
    rm -rf "$tmp"
    tail -n 40 "$KAFKA_HOME_DIR/fetch.log" >&2 || true
    die "could not fetch kafka_2.13:$KAFKA_VERSION (see $KAFKA_HOME_DIR/fetch.log)"
  fi
  printf '%s\n%s\n' "$digest" "$KAFKA_VERSION" >"$tmp/.complete"
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  exec 9>&-
  log "kafka $KAFKA_VERSION jars in $LIB_DIR ($(ls "$LIB_DIR"/*.jar | wc -l) jars)"
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
  if ((KAFKA_MAJOR >= 4)); then
    cat >>"$SERVER_PROPS" <<EOF
# Kafka 4.x: share-group state lives in a topic of 3 replicas by default; this is one node.
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
EOF
    write_log4j2_configs
  else
    write_log4j1_configs
  fi
}

write_log4j2_configs() {
  cat >"$LOG4J_PROPS" <<EOF
# Log4j 2 config (Kafka 4.x), passed as -Dlog4j2.configurationFile=file:...
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = $LOG_DIR/server.log
appender.file.filePattern = $LOG_DIR/server.log.%i
appender.file.append = false
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
  cat >"$TOOLS_LOG4J_PROPS" <<'EOF'
status = warn
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = stderr
EOF
}

write_log4j1_configs() {
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
    log "a Kafka broker already answers on $HOST:$KAFKA_PORT$(running_version_note)"
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
  # Data written by another Kafka version is not ours to migrate: say so instead of guessing.
  if [[ -d "$DATA_DIR" && -f "$VERSION_FILE" && "$(cat "$VERSION_FILE")" != "$KAFKA_VERSION" ]]; then
    die "$DATA_DIR holds data of Kafka $(cat "$VERSION_FILE"), not $KAFKA_VERSION: run without KAFKA_KEEP_DATA=1 (or \`down\`) first"
  fi

  fetch
  write_configs
  echo "$KAFKA_VERSION" >"$VERSION_FILE"

  if [[ ! -f "$DATA_DIR/meta.properties" ]]; then
    local cid
    cid="$(random_cluster_id)"
    if ! "$JAVA" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$LIB_DIR/*" "$(log4j_flag "$TOOLS_LOG4J_PROPS")" \
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
    "$(log4j_flag "$LOG4J_PROPS")" -Dkafka.logs.dir="$LOG_DIR" \
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
  log "started Kafka $KAFKA_VERSION broker pid $pid on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT), waiting ..."
  wait_ready "$pid" || exit 1
  log "Kafka $KAFKA_VERSION ready on $HOST:$KAFKA_PORT (pid $pid, logs: $LOG_DIR/server.log)"
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
  rm -f "$PID_FILE" "$VERSION_FILE"
}

cmd_status() {
  need_tools
  if broker_ready; then
    local pid
    pid="$(live_pid || echo '?')"
    echo "Kafka up on $HOST:$KAFKA_PORT (pid $pid)$(running_version_note)"
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
