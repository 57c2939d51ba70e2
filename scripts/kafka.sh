#!/usr/bin/env bash
# Runs Apache Kafka (KRaft mode) on 127.0.0.1 for tests, from the broker jars
# on Maven Central (no tarball, no container): a single node, or a
# three-node cluster for failover tests.
#
#   scripts/kafka.sh start    fetch jars (cached), format storage, start, wait until usable
#   scripts/kafka.sh stop     stop the broker and remove its data
#   scripts/kafka.sh status   print the bootstrap address if running
#   scripts/kafka.sh kill     SIGKILL the broker; its config and data stay
#   scripts/kafka.sh restart  start it again after kill: same config, same data, no re-format
#   scripts/kafka.sh pause    SIGSTOP the broker (connections stay open, nothing answers)
#   scripts/kafka.sh resume   SIGCONT it
#
#   scripts/kafka.sh secure-start  a single node with a SASL_SSL listener only (SCRAM-SHA-512,
#                                  SCRAM-SHA-256 and PLAIN; StandardAuthorizer, no ACL = denied);
#                                  needs KAFKA_SSL_CERT, KAFKA_SSL_KEY (PKCS#8) and KAFKA_SSL_CA
#                                  (PEM files) and creates the users of KAFKA_SCRAM_USERS
#                                  ("name:password ...", for every mechanism) and
#                                  the super user admin (KAFKA_ADMIN_PASSWORD, default admin-secret);
#                                  a client certificate is optional, verified against KAFKA_SSL_CA
#                                  when given (ssl.client.auth=requested);
#                                  stop, kill, restart, pause and resume work on it as on start's
#
#   scripts/kafka.sh cluster-start [N]  N-node KRaft cluster (default 3): every node
#                                       broker+controller, one cluster ID, replication N,
#                                       min.insync.replicas N-1; prints the bootstrap list
#   scripts/kafka.sh cluster-stop       stop every node and remove the cluster's data
#   scripts/kafka.sh cluster-status     print the bootstrap list if any node runs
#   scripts/kafka.sh node-kill ID       SIGKILL node ID (1..N); its data stays
#   scripts/kafka.sh node-start ID      start node ID again with its config and data
#
# Environment: KAFKA_PORT (default 39092), KAFKA_CONTROLLER_PORT (default
# 39093), VPP_KAFKA_DIR (default .kafka in the repository), VPP_KAFKA_LIB
# (the broker jars, default $VPP_KAFKA_DIR/lib: point several directories at
# one copy), KAFKA_HEAP (default 512m; 384m per cluster node),
# KAFKA_CLUSTER_PORTS and KAFKA_CLUSTER_CONTROLLER_PORTS (space- or
# comma-separated, one per node; default 19092 29092 49092 and
# 19093 29093 49093).
# Prints the bootstrap address (127.0.0.1:PORT) on success.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${VPP_KAFKA_DIR:-$root/.kafka}"
port="${KAFKA_PORT:-39092}"
cport="${KAFKA_CONTROLLER_PORT:-39093}"
lib="${VPP_KAFKA_LIB:-$dir/lib}"
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
  format_storage "$(new_cluster_id)" "$run"
  launch "$run" "${KAFKA_HEAP:-512m}"
  log "started broker pid $(cat "$pidfile") on 127.0.0.1:$port; waiting until it serves requests"
  wait_ready "$run" "$port"
  echo "127.0.0.1:$port"
}

# pem_value FILE prints FILE as the value of a PEM property of a Kafka
# config: one logical line, "\n\" ending each physical line.
pem_value() { awk 'NR > 1 { printf "\\n\\\n" } { printf "%s", $0 } END { print "" }' "$1"; }

secure_start() {
  command -v java >/dev/null || { log "java not found (Kafka 4.x needs Java 17+)"; exit 1; }
  local f
  for f in KAFKA_SSL_CERT KAFKA_SSL_KEY KAFKA_SSL_CA; do
    [ -r "${!f:-}" ] || { log "secure-start: \$$f must name a readable PEM file"; exit 2; }
  done
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "127.0.0.1:$port"; return
  fi
  fetch
  local admin_pw="${KAFKA_ADMIN_PASSWORD:-admin-secret}"
  local plain_users="" u
  for u in ${KAFKA_SCRAM_USERS:-}; do plain_users="$plain_users user_${u%%:*}=\"${u#*:}\""; done
  rm -rf "$run"; mkdir -p "$run/data"
  cat > "$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=SASL_SSL://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=SASL_SSL://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin_pw";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;
ssl.keystore.type=PEM
ssl.keystore.certificate.chain=$(pem_value "$KAFKA_SSL_CERT")
ssl.keystore.key=$(pem_value "$KAFKA_SSL_KEY")
ssl.truststore.type=PEM
ssl.truststore.certificates=$(pem_value "$KAFKA_SSL_CA")
ssl.client.auth=requested
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
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
  chmod 600 "$run/server.properties"
  local scram=(--add-scram "SCRAM-SHA-512=[name=\"admin\",password=\"$admin_pw\"]")
  for u in ${KAFKA_SCRAM_USERS:-}; do
    scram+=(--add-scram "SCRAM-SHA-512=[name=\"${u%%:*}\",password=\"${u#*:}\"]")
    scram+=(--add-scram "SCRAM-SHA-256=[name=\"${u%%:*}\",password=\"${u#*:}\"]")
  done
  format_storage "$(new_cluster_id)" "$run" "${scram[@]}"
  launch "$run" "${KAFKA_HEAP:-512m}"
  log "started SASL_SSL broker pid $(cat "$pidfile") on 127.0.0.1:$port; waiting until it serves requests"
  wait_ready "$run" "$port"
  echo "127.0.0.1:$port"
}

# new_cluster_id prints a fresh KRaft cluster ID.
new_cluster_id() {
  java_cls kafka.tools.StorageTool random-uuid 2>/dev/null || java_cls org.apache.kafka.tools.StorageTool random-uuid
}

# format_storage CID RUNDIR [ARGS...] formats the log dirs of
# RUNDIR/server.properties; ARGS go to the format command (--add-scram).
format_storage() {
  local cid="$1" r="$2"; shift 2
  if ! java_cls kafka.tools.StorageTool format -t "$cid" -c "$r/server.properties" -g "$@" >"$r/format.log" 2>&1; then
    java_cls org.apache.kafka.tools.StorageTool format -t "$cid" -c "$r/server.properties" -g "$@" >"$r/format.log" 2>&1 \
      || { cat "$r/format.log" >&2; exit 1; }
  fi
}

# launch RUNDIR HEAP starts the broker of RUNDIR/server.properties in the
# background; its pid goes to RUNDIR/kafka.pid. An earlier log is kept as
# kafka.log.N so that wait_ready only sees this start.
launch() {
  local r="$1" heap="$2" n=1
  if [ -f "$r/kafka.log" ]; then
    while [ -f "$r/kafka.log.$n" ]; do n=$((n + 1)); done
    mv "$r/kafka.log" "$r/kafka.log.$n"
  fi
  nohup java "-Xms$heap" "-Xmx$heap" -XX:+UseG1GC \
    -Dlog4j2.configurationFile="$root/scripts/kafka/log4j2.properties" \
    -cp "$lib/*" kafka.Kafka "$r/server.properties" >"$r/kafka.log" 2>&1 &
  echo $! > "$r/kafka.pid"
}

# wait_ready RUNDIR PORT waits until the broker of RUNDIR logged that it
# started and accepts connections on PORT.
wait_ready() {
  local r="$1" p="$2"
  for _ in $(seq 1 240); do
    if ! kill -0 "$(cat "$r/kafka.pid")" 2>/dev/null; then
      tail -50 "$r/kafka.log" >&2; log "broker exited"; exit 1
    fi
    if grep -q "Kafka Server started" "$r/kafka.log" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      log "broker on 127.0.0.1:$p ready"
      return
    fi
    sleep 0.5
  done
  tail -50 "$r/kafka.log" >&2; log "broker on 127.0.0.1:$p not ready after 120 s"; exit 1
}

# signal_pid SIG PIDFILE sends SIG to the process of PIDFILE if it runs.
signal_pid() {
  local sig="$1" f="$2"
  [ -f "$f" ] || { log "not started ($f missing)"; exit 1; }
  local pid; pid="$(cat "$f")"
  kill -0 "$pid" 2>/dev/null || { log "pid $pid not running"; exit 1; }
  kill "-$sig" "$pid"
  if [ "$sig" = KILL ]; then
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  fi
}

# restart starts the single node again after kill: same config and data.
restart() {
  [ -f "$run/server.properties" ] || { log "no broker to restart in $run (run start first)"; exit 1; }
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "127.0.0.1:$port"; return
  fi
  launch "$run" "${KAFKA_HEAP:-512m}"
  log "restarted broker pid $(cat "$pidfile") on 127.0.0.1:$port (same data)"
  wait_ready "$run" "$port"
  echo "127.0.0.1:$port"
}

# ---- three-node cluster -------------------------------------------------

cluster="$dir/cluster"

# cluster_ports prints the broker ports (or, with "controller", the
# controller ports) of nodes 1..N, one per line.
cluster_ports() {
  local v
  if [ "${1:-}" = controller ]; then v="${KAFKA_CLUSTER_CONTROLLER_PORTS:-19093 29093 49093}"; else v="${KAFKA_CLUSTER_PORTS:-19092 29092 49092}"; fi
  echo "$v" | tr ', ' '\n\n' | grep -v '^$'
}

# node_port ID [controller] prints the port of node ID.
node_port() { cluster_ports "${2:-}" | sed -n "${1}p"; }

cluster_size() { cat "$cluster/size" 2>/dev/null || echo 0; }

cluster_bootstrap() {
  local n; n="$(cluster_size)"; local out=""
  for id in $(seq 1 "$n"); do out="${out:+$out,}127.0.0.1:$(node_port "$id")"; done
  echo "$out"
}

cluster_start() {
  command -v java >/dev/null || { log "java not found (Kafka 4.x needs Java 17+)"; exit 1; }
  local n="${1:-3}"
  [ "$n" -ge 1 ] && [ "$n" -le "$(cluster_ports | wc -l)" ] || { log "cluster-start: N must be 1..$(cluster_ports | wc -l)"; exit 2; }
  fetch
  if [ -d "$cluster" ]; then cluster_stop; fi
  mkdir -p "$cluster"; echo "$n" > "$cluster/size"
  local voters="" minisr=$(( n > 1 ? n - 1 : 1 ))
  for id in $(seq 1 "$n"); do voters="${voters:+$voters,}$id@127.0.0.1:$(node_port "$id" controller)"; done
  local cid; cid="$(new_cluster_id)"
  for id in $(seq 1 "$n"); do
    local r="$cluster/node-$id" p c
    p="$(node_port "$id")"; c="$(node_port "$id" controller)"
    mkdir -p "$r/data"
    cat > "$r/server.properties" <<PROPS
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$p,CONTROLLER://127.0.0.1:$c
advertised.listeners=PLAINTEXT://127.0.0.1:$p
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$r/data
num.partitions=1
default.replication.factor=$n
min.insync.replicas=$minisr
offsets.topic.replication.factor=$n
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$n
transaction.state.log.min.isr=$minisr
group.initial.rebalance.delay.ms=0
log.cleaner.backoff.ms=1000
auto.create.topics.enable=false
# Failover in seconds, not tens of seconds: a killed node is fenced (and
# leaves every ISR) after broker.session.timeout.ms.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=6000
replica.lag.time.max.ms=10000
PROPS
    echo "$cid" > "$r/cluster.id"
    format_storage "$cid" "$r"
  done
  for id in $(seq 1 "$n"); do launch "$cluster/node-$id" "${KAFKA_HEAP:-384m}"; done
  log "started $n nodes (cluster $cid); waiting until each serves requests"
  for id in $(seq 1 "$n"); do wait_ready "$cluster/node-$id" "$(node_port "$id")"; done
  cluster_bootstrap
}

cluster_stop() {
  local pids=()
  for f in "$cluster"/node-*/kafka.pid; do
    [ -f "$f" ] || continue
    local pid; pid="$(cat "$f")"
    if kill -0 "$pid" 2>/dev/null; then kill -CONT "$pid" 2>/dev/null; kill "$pid" 2>/dev/null || true; pids+=("$pid"); fi
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$cluster"
}

node_dir() {
  local id="${1:-}"
  [ -n "$id" ] && [ -f "$cluster/node-$id/server.properties" ] || { log "no cluster node '$id' in $cluster"; exit 2; }
  echo "$cluster/node-$id"
}

node_kill() { local r; r="$(node_dir "${1:-}")"; signal_pid KILL "$r/kafka.pid"; log "node $1 killed"; }

node_start() {
  local r; r="$(node_dir "${1:-}")"
  if [ -f "$r/kafka.pid" ] && kill -0 "$(cat "$r/kafka.pid")" 2>/dev/null; then return; fi
  launch "$r" "${KAFKA_HEAP:-384m}"
  log "node $1 starting again (same data)"
  wait_ready "$r" "$(node_port "$1")"
}

cluster_status() {
  local any=""
  for f in "$cluster"/node-*/kafka.pid; do
    [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && any=1
  done
  [ -n "$any" ] || exit 1
  cluster_bootstrap
}

stop() {
  if [ -f "$pidfile" ]; then
    local pid; pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -CONT "$pid" 2>/dev/null || true # a paused broker cannot handle SIGTERM
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
  secure-start) secure_start ;;
  stop) stop ;;
  status) status ;;
  fetch) fetch ;;
  kill) signal_pid KILL "$pidfile"; log "broker killed (data kept)" ;;
  restart) restart ;;
  pause) signal_pid STOP "$pidfile"; log "broker paused" ;;
  resume) signal_pid CONT "$pidfile"; log "broker resumed" ;;
  cluster-start) cluster_start "${2:-3}" ;;
  cluster-stop) cluster_stop ;;
  cluster-status) cluster_status ;;
  node-kill) node_kill "${2:-}" ;;
  node-start) node_start "${2:-}" ;;
  *) echo "usage: $0 start|secure-start|stop|status|fetch|kill|restart|pause|resume|cluster-start [N]|cluster-stop|cluster-status|node-kill ID|node-start ID" >&2; exit 2 ;;
esac
