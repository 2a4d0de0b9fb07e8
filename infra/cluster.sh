#!/usr/bin/env bash
# Local clusters on one machine, from Debian's packages (no Docker engine):
#   - a Redis Cluster of 3 masters + 3 replicas   (ports 7101-7106)
#   - a Redis primary + replica + 3 Sentinels     (ports 7201-7202, 7301-7303)
#   - a RabbitMQ cluster of 3 nodes               (AMQP 5681-5683, dist 25681-25683)
# Usage: infra/cluster.sh up | down | urls | redis-owner KEY | kill-redis-owner KEY | failover-redis-owner KEY | kill-rabbit-leader QUEUE | failover-sentinel
# (the kill and failover commands are for the node-loss tests: `up` starts a killed node again).
# `up` starts what does not answer yet (a node start takes seconds: start them
# once and share them between test runs; each run uses its own namespace) and
# prints the URLs to give Anteroom. Data lives under $CLUSTER_DIR.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CLUSTER_DIR="${CLUSTER_DIR:-/tmp/anteroom-cluster}"
REDIS_CLUSTER_PORTS=(7101 7102 7103 7104 7105 7106)
SENTINEL_PRIMARY=7201 SENTINEL_REPLICA=7202
SENTINEL_PORTS=(7301 7302 7303)
RABBIT_NODES=(1 2 3)
rabbit_port() { echo $((5680 + $1)); }
rabbit_name() { echo "anteroom$1@localhost"; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { # port, what, seconds
  for _ in $(seq 1 "$3"); do answers "$1" && return 0; sleep 0.5; done
  say "$2 did not listen on port $1 in time"; return 1
}

all_answer() { # ports…
  local port
  for port in "$@"; do answers "$port" || return 1; done
  return 0
}

none_answers() { # ports…
  local port
  for port in "$@"; do answers "$port" && return 1; done
  return 0
}

cookie() { cat "${HOME:-/root}/.erlang.cookie"; }
ctl() { # node number, rabbitmqctl arguments…
  local n=$1; shift
  rabbitmqctl --erlang-cookie "$(cookie)" -n "$(rabbit_name "$n")" "$@"
}

redis_node() { # port, extra arguments…
  local port=$1; shift
  mkdir -p "$CLUSTER_DIR/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$CLUSTER_DIR/redis-$port" \
    --logfile "$CLUSTER_DIR/redis-$port/log" --save "" --appendonly yes --appendfsync always "$@"
}

# Each master serves its own slots while another's are being failed over
# (Redis stops every slot by default): one event's master gone pauses only
# the events on it (docs/reliability.md, "One master's failover").
# A replica always stands for election, however long it was cut off from its
# master (a node the tests restarted may not have caught up when the next test
# kills its master: seen in CI, "unable to failover: disconnected from master
# for longer than allowed"); Anteroom's fence restores whatever it lost.
cluster_node_args=(--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 3000
  --cluster-require-full-coverage no --cluster-replica-validity-factor 0)

# The same on a cluster started before the setting was added.
serve_own_slots() {
  local port
  for port in "${REDIS_CLUSTER_PORTS[@]}"; do
    redis-cli -p "$port" config set cluster-require-full-coverage no >/dev/null
    redis-cli -p "$port" config set cluster-replica-validity-factor 0 >/dev/null
  done
}

redis_cluster_up() {
  local port
  if ! none_answers "${REDIS_CLUSTER_PORTS[@]}"; then
    # A cluster exists: a node that died (a fault test kills one) rejoins from its nodes.conf.
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
      answers "$port" || { say "restarting redis cluster node $port"; redis_node "$port" "${cluster_node_args[@]}"; }
    done
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do wait_for "$port" "redis $port" 40; done
    if cluster_ok 60; then serve_own_slots; say "redis cluster is up"; return; fi
    say "the redis cluster is broken: starting afresh"
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; done
    sleep 1
  fi
  say "starting a redis cluster of 3 masters and 3 replicas"
  rm -rf $(printf "$CLUSTER_DIR/redis-%s " "${REDIS_CLUSTER_PORTS[@]}")
  for port in "${REDIS_CLUSTER_PORTS[@]}"; do redis_node "$port" "${cluster_node_args[@]}"; done
  for port in "${REDIS_CLUSTER_PORTS[@]}"; do wait_for "$port" "redis $port" 40; done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${REDIS_CLUSTER_PORTS[@]}") \
    --cluster-replicas 1 --cluster-yes >"$CLUSTER_DIR/redis-cluster-create.log"
  cluster_ok 60 || { say "the redis cluster did not become ready"; return 1; }
  say "redis cluster is up"
}

cluster_ok() { # seconds: every node answering and every slot served
  local port
  for _ in $(seq 1 $(($1 * 2))); do
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q "cluster_state:ok" || { sleep 0.5; continue 2; }
    done
    return 0
  done
  return 1
}

# The port of the Redis Cluster master that serves KEY.
redis_owner() {
  local key=$1 slot master
  slot=$(redis-cli -p "${REDIS_CLUSTER_PORTS[0]}" cluster keyslot "$key")
  master=$(redis-cli -p "${REDIS_CLUSTER_PORTS[0]}" cluster nodes | awk -v slot="$slot" '
    $3 ~ /master/ && $3 !~ /fail/ { for (i = 9; i <= NF; i++) { split($i, r, "-"); if (r[2] == "") r[2] = r[1];
      if (slot + 0 >= r[1] + 0 && slot + 0 <= r[2] + 0) { split($2, a, "[:@]"); print a[2]; exit } } }')
  [ -n "$master" ] || { say "no master serves slot $slot"; return 1; }
  echo "$master"
}

# The port of a replica of the master on port $1.
replica_of() {
  local id
  id=$(redis-cli -p "$1" cluster myid)
  redis-cli -p "$1" cluster nodes | awk -v id="$id" '$3 ~ /slave/ && $4 == id { split($2, a, "[:@]"); print a[2]; exit }'
}

# Waits (up to 20 s) until a replica of the master on port $1 is in sync with it.
replica_in_sync() {
  local replica
  for _ in $(seq 40); do
    replica=$(replica_of "$1")
    [ -n "$replica" ] && redis-cli -p "$replica" info replication | tr -d '\r' |
      grep -q '^master_link_status:up' && return 0
    sleep 0.5
  done
  say "no replica of the master on port $1 is in sync" >&2
}

# Kills (SIGKILL) the Redis Cluster master that serves KEY, and prints its port.
kill_redis_owner() {
  local master
  master=$(redis_owner "$1")
  replica_in_sync "$master"
  kill -9 "$(redis-cli -p "$master" info server | tr -d '\r' | awk -F: '$1 == "process_id" { print $2 }')"
  echo "$master"
}

# A planned failover of the master that serves KEY (CLUSTER FAILOVER on its
# replica, which takes over without losing a write); prints the new master's port.
failover_redis_owner() {
  local master replica
  master=$(redis_owner "$1")
  replica=$(replica_of "$master")
  [ -n "$replica" ] || { say "the master on port $master has no replica"; return 1; }
  redis-cli -p "$replica" cluster failover >/dev/null
  for _ in $(seq 100); do
    redis-cli -p "$replica" role | head -1 | grep -q master && { echo "$replica"; return 0; }
    sleep 0.1
  done
  say "the replica on port $replica did not take over"; return 1
}

# The port of the primary the Sentinels name now.
sentinel_primary() {
  redis-cli -p "${SENTINEL_PORTS[0]}" sentinel get-master-addr-by-name anteroom | tail -1
}

# A planned failover of the Sentinel set's primary; prints the new primary's port.
failover_sentinel() {
  local before after
  before=$(sentinel_primary)
  redis-cli -p "${SENTINEL_PORTS[0]}" sentinel failover anteroom >/dev/null
  for _ in $(seq 150); do
    after=$(sentinel_primary)
    if [ "$after" != "$before" ]; then echo "$after"; return; fi
    sleep 0.2
  done
  say "the sentinels did not fail over from $before"; return 1
}

sentinel_up() {
  if answers "${SENTINEL_PORTS[0]}" && answers "$SENTINEL_PRIMARY"; then say "redis sentinel is up"; return; fi
  say "starting a redis primary, a replica and 3 sentinels"
  if none_answers "$SENTINEL_PRIMARY" "$SENTINEL_REPLICA" "${SENTINEL_PORTS[@]}"; then
    rm -rf "$CLUSTER_DIR/redis-$SENTINEL_PRIMARY" "$CLUSTER_DIR/redis-$SENTINEL_REPLICA" "$CLUSTER_DIR"/sentinel-*
  fi
  answers "$SENTINEL_PRIMARY" || redis_node "$SENTINEL_PRIMARY"
  answers "$SENTINEL_REPLICA" || redis_node "$SENTINEL_REPLICA" --replicaof 127.0.0.1 "$SENTINEL_PRIMARY"
  for port in "${SENTINEL_PORTS[@]}"; do
    answers "$port" && continue
    mkdir -p "$CLUSTER_DIR/sentinel-$port"
    # Sentinel rewrites its own configuration file: one per sentinel.
    cat >"$CLUSTER_DIR/sentinel-$port/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
daemonize yes
dir $CLUSTER_DIR/sentinel-$port
logfile $CLUSTER_DIR/sentinel-$port/log
sentinel monitor anteroom 127.0.0.1 $SENTINEL_PRIMARY 2
sentinel down-after-milliseconds anteroom 2000
sentinel failover-timeout anteroom 10000
CONF
    redis-server "$CLUSTER_DIR/sentinel-$port/sentinel.conf" --sentinel
  done
  for port in "$SENTINEL_PRIMARY" "$SENTINEL_REPLICA" "${SENTINEL_PORTS[@]}"; do wait_for "$port" "redis $port" 40; done
  say "redis sentinel is up"
}

rabbit_up() {
  local ports
  ports=$(for n in "${RABBIT_NODES[@]}"; do rabbit_port "$n"; done)
  if all_answer $ports && ctl 1 cluster_status 2>/dev/null | grep -q "$(rabbit_name 3)"; then
    say "rabbitmq cluster is up"; return
  fi
  say "starting the rabbitmq cluster's nodes that do not answer"
  # A node whose cluster peers are gone waits for them at boot: start afresh.
  none_answers $ports && rm -rf "$CLUSTER_DIR"/rabbit-*
  for n in "${RABBIT_NODES[@]}"; do
    answers "$(rabbit_port "$n")" && continue
    local dir="$CLUSTER_DIR/rabbit-$n"
    mkdir -p "$dir"
    echo "[]." >"$dir/enabled_plugins"
    printf 'listeners.tcp.1 = 127.0.0.1:%s\nloopback_users = none\n' "$(rabbit_port "$n")" >"$dir/rabbitmq.conf"
    # The node's own start script: Debian's wrapper would switch user.
    RABBITMQ_NODENAME="$(rabbit_name "$n")" RABBITMQ_NODE_PORT="$(rabbit_port "$n")" \
      RABBITMQ_DIST_PORT=$((25680 + n)) RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
      RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
      RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
      setsid /usr/lib/rabbitmq/bin/rabbitmq-server >"$dir/stdout" 2>&1 </dev/null &
  done
  for n in "${RABBIT_NODES[@]}"; do
    wait_for "$(rabbit_port "$n")" "rabbitmq node $n" 240
    ctl "$n" await_startup >/dev/null
  done
  for n in 2 3; do
    if ! ctl "$n" cluster_status 2>/dev/null | grep -q "$(rabbit_name 1)"; then
      ctl "$n" stop_app >/dev/null
      ctl "$n" join_cluster "$(rabbit_name 1)" >/dev/null
      ctl "$n" start_app >/dev/null
    fi
  done
  say "rabbitmq cluster is up"
}

# Kills (SIGKILL) the RabbitMQ node that leads quorum queue QUEUE, and prints its number.
kill_rabbit_leader() {
  local queue=$1 leader n
  leader=$(ctl 1 list_queues name leader --quiet --no-table-headers 2>/dev/null | awk -v q="$queue" '$1 == q { print $2 }')
  [ -n "$leader" ] || { say "no leader found for $queue"; return 1; }
  for n in "${RABBIT_NODES[@]}"; do
    if [ "$(rabbit_name "$n")" = "$leader" ]; then
      kill -9 "$(ctl "$n" eval 'list_to_integer(os:getpid()).' | tr -d '\r')"
      echo "$n"; return 0
    fi
  done
  say "$leader is not one of this cluster's nodes"; return 1
}

urls() {
  local nodes
  nodes=$(printf '&node=127.0.0.1:%s' "${REDIS_CLUSTER_PORTS[@]:1}")
  # Quoted for `eval`: the URLs hold '&' and '?'.
  printf 'REDIS_CLUSTER_URL=%q\n' "redis-cluster://127.0.0.1:${REDIS_CLUSTER_PORTS[0]}?${nodes#&}"
  nodes=$(printf '&node=127.0.0.1:%s' "${SENTINEL_PORTS[@]:1}")
  printf 'REDIS_SENTINEL_URL=%q\n' "redis-sentinel://127.0.0.1:${SENTINEL_PORTS[0]}?sentinelServiceName=anteroom${nodes}"
  local amqp=()
  for n in "${RABBIT_NODES[@]}"; do amqp+=("amqp://guest:guest@127.0.0.1:$(rabbit_port "$n")/%2f"); done
  (IFS=,; printf 'AMQP_CLUSTER_URL=%q\n' "${amqp[*]}")
}

down() {
  for port in "${REDIS_CLUSTER_PORTS[@]}" "$SENTINEL_PRIMARY" "$SENTINEL_REPLICA" "${SENTINEL_PORTS[@]}"; do
    answers "$port" && redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  for n in "${RABBIT_NODES[@]}"; do ctl "$n" stop >/dev/null 2>&1 || true; done
  rm -rf "$CLUSTER_DIR"
  say "stopped, and $CLUSTER_DIR removed"
}

case "${1:-up}" in
  up)
    ensure_package redis-server redis-server
    ensure_package rabbitmq-server rabbitmq-server
    mkdir -p "$CLUSTER_DIR"
    redis_cluster_up
    sentinel_up
    rabbit_up
    urls
    ;;
  down) down ;;
  urls) urls ;;
  redis-owner) redis_owner "$2" ;;
  kill-redis-owner) kill_redis_owner "$2" ;;
  failover-redis-owner) failover_redis_owner "$2" ;;
  kill-rabbit-leader) kill_rabbit_leader "$2" ;;
  failover-sentinel) failover_sentinel ;;
  *) say "usage: $0 up | down | urls | redis-owner KEY | kill-redis-owner KEY | failover-redis-owner KEY | kill-rabbit-leader QUEUE | failover-sentinel"; exit 2 ;;
esac
