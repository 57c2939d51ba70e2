#!/usr/bin/env bash
# Runs a single-node Apache Kafka broker (KRaft mode) on 127.0.0.1 for tests,
# from the broker jars on Maven Central (no tarball, no container).
#
#   scripts/kafka.sh start    fetch jars (cached), format storage, start, wait until usable
#   scripts/kafka.sh stop     stop the broker and remove its data
#   scripts/kafka.sh status   print the bootstrap address if running
#
# Environment: KAFKA_PORT (default 39092), KAFKA_CONTROLLER_PORT (default
# 39093), VPP_KAFKA_DIR (default .kafka in the repository).
# Prints the bootstrap address (127.0.0.1:PORT) on success.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${VPP_KAFKA_DIR:-$root/.kafka}"
port="${KAFKA_PORT:-39092}"
cport="${KAFKA_CONTROLLER_PORT:-39093}"
lib="$dir/lib"
run="$dir/run"
pidfile="$run/kafka.pid"

log() { echo "kafka.sh: $*" >&2; }

fetch() {
  if ls "$lib"/kafka_2.13-*.jar >/dev/null 2>&1; then return; fi
  log "fetching Apache Kafka broker jars from Maven Central"
  mkdir -p "$lib"
  mvn -q -B -f "$root/scripts/kafka/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$lib" >&2
}

java_cls() { java -cp "$lib/*" "$@"; }

start() {
  command -v java >/dev/null || { log "java not found (Kafka 4.x needs Java 17+)"; exit 1; }
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "127.0.0.1:$port"; return
  fi
  fetch
  rm -rf "$run"; mkdir -p "$run/data"
  cat > "$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$run/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.backoff.ms=1000
auto.create.topics.enable=false
PROPS
  local cid
  cid="$(java_cls kafka.tools.StorageTool random-uuid 2>/dev/null || java_cls org.apache.kafka.tools.StorageTool random-uuid)"
  if ! java_cls kafka.tools.StorageTool format -t "$cid" -c "$run/server.properties" -g >"$run/format.log" 2>&1; then
    java_cls org.apache.kafka.tools.StorageTool format -t "$cid" -c "$run/server.properties" -g >"$run/format.log" 2>&1 \
      || { cat "$run/format.log" >&2; exit 1; }
  fi
  nohup java -Xms512m -Xmx512m -XX:+UseG1GC \
    -Dlog4j2.configurationFile="$root/scripts/kafka/log4j2.properties" \
    -cp "$lib/*" kafka.Kafka "$run/server.properties" >"$run/kafka.log" 2>&1 &
  echo $! > "$pidfile"
  log "started broker pid $(cat "$pidfile") on 127.0.0.1:$port; waiting until it serves requests"
  for _ in $(seq 1 120); do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      tail -50 "$run/kafka.log" >&2; log "broker exited"; exit 1
    fi
    if grep -q "Kafka Server started" "$run/kafka.log" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      log "broker ready"
      echo "127.0.0.1:$port"; return
    fi
    sleep 1
  done
  tail -50 "$run/kafka.log" >&2; log "broker not ready after 120 s"; exit 1
}

stop() {
  if [ -f "$pidfile" ]; then
    local pid; pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$run"
}

status() {
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then echo "127.0.0.1:$port"; else exit 1; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  fetch) fetch ;;
  *) echo "usage: $0 start|stop|status|fetch" >&2; exit 2 ;;
esac
