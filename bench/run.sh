#!/usr/bin/env bash
# Runs every benchmark of docs/benchmarks.md against a fresh deployment on this
# machine (Redis, RabbitMQ and PostgreSQL on 127.0.0.1, started if needed) and
# prints each figure next to its floor, measured in the same run.
#
#   bench/run.sh                        # everything at full size (~25 minutes): the doc's figures
#   BENCH_MODE=short bench/run.sh       # everything but the flame graphs, small (~4 minutes):
#                                       # a check that every benchmark still runs, not figures to quote
#   SPIKE_PEOPLE=100000 bench/run.sh    # a smaller spike
#   BENCH_ONLY="poll join" bench/run.sh # some of: poll instructions instances gate join embedded
#                                       #          seatmap hold order_checks drain waiting flame spike
#   BENCH_SERVICE_BIN=/tmp/main/anteroom bench/run.sh
#                                       # measures another build of the service (a
#                                       # build of main kept aside: before and after
#                                       # on one machine, alternately)
#
# Sizes (each also settable alone): BENCH_SECONDS, BENCH_CONNECTIONS, SPIKE_PEOPLE,
# EMBEDDED_HISTORY, WAITING_SIZES, WAITING_MEASURE_SECONDS, HOLD_COUNT, DRAIN_PEOPLE,
# INSTRUCTIONS_REQUESTS, ORDER_CHECK_GROUPS.
#
# Results: bench/results/<UTC time>/ (wrk outputs, JSON of each Rust benchmark,
# flame graphs, summary.md); the summary is also printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

case "${BENCH_MODE:-full}" in
  full)
    everything="poll instructions instances gate join embedded seatmap hold order_checks drain waiting flame spike"
    : "${BENCH_SECONDS:=10}" "${SPIKE_PEOPLE:=1000000}" "${EMBEDDED_HISTORY:=100000 1000000}"
    : "${WAITING_SIZES:=10000,100000,1000000}" "${WAITING_MEASURE_SECONDS:=35}"
    : "${HOLD_COUNT:=20000}" "${DRAIN_PEOPLE:=200000}" "${INSTRUCTIONS_REQUESTS:=2000}"
    : "${ORDER_CHECK_GROUPS:=300}"
    ;;
  short)
    everything="poll instructions instances gate join embedded seatmap hold order_checks drain waiting spike"
    : "${BENCH_SECONDS:=3}" "${SPIKE_PEOPLE:=20000}" "${EMBEDDED_HISTORY:=20000}"
    # Everyone polls once in 30 s this far from the front: the window is longer.
    : "${WAITING_SIZES:=2000,20000}" "${WAITING_MEASURE_SECONDS:=32}"
    : "${HOLD_COUNT:=3000}" "${DRAIN_PEOPLE:=20000}" "${INSTRUCTIONS_REQUESTS:=300}"
    : "${ORDER_CHECK_GROUPS:=50}"
    ;;
  *) echo "BENCH_MODE: full or short, not ${BENCH_MODE}" >&2; exit 2 ;;
esac
only="${BENCH_ONLY:-$everything}"
duration="$BENCH_SECONDS"
connections="${BENCH_CONNECTIONS:-256}"
spike_people="$SPIKE_PEOPLE"
embedded_history="$EMBEDDED_HISTORY"
waiting_sizes="$WAITING_SIZES"
service_bin="${BENCH_SERVICE_BIN:-target/release/anteroom}"

bash infra/local-services.sh
ensure_package wrk wrk
say "building the release binaries"
cargo build --release --locked --workspace --bins

postgres="${BENCH_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432}"
run_id="bench_$(date -u +%Y%m%d_%H%M%S)_$$"
results="bench/results/$(date -u +%Y-%m-%dT%H-%M-%SZ)"
mkdir -p "$results"
psql "$postgres/postgres" -qc "CREATE DATABASE $run_id" >/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
floor_port=$(free_port)
admin="bench-admin-token-$RANDOM$RANDOM$RANDOM"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$postgres/postgres" -qc "DROP DATABASE IF EXISTS $run_id" >/dev/null 2>&1 || true
  # The run's keys and queues go too: a million waiting people are hundreds of megabytes.
  redis-cli --scan --pattern "{$run_id:*" | xargs -r -n 500 redis-cli UNLINK >/dev/null 2>&1 || true
  rabbitmqctl list_queues name --no-table-headers -q 2>/dev/null | grep "^$run_id\." \
    | xargs -r -n 1 rabbitmqctl delete_queue -q >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Starts an instance of the run's deployment on port $1, logging to $2; the
# words after them (a wrapper such as `callgrind`) run it. Its pid is $!.
serve() {
  local port=$1 log=$2; shift 2
  REDIS_URL=redis://127.0.0.1:6379 AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f \
  DATABASE_URL="$postgres/$run_id" ANTEROOM_SECRET="$run_id" ANTEROOM_NAMESPACE="$run_id" \
  ANTEROOM_ADMIN_TOKEN="$admin" ANTEROOM_ADDR="127.0.0.1:$port" ANTEROOM_DEMO=0 RUST_LOG=warn \
    "$@" "$service_bin" serve >"$log" 2>&1 &
}
# Runs a program under valgrind's callgrind, its counts in $grind. exec: the
# background job's pid ($!) is then valgrind's, whose counters callgrind_control reads.
callgrind() { exec valgrind --tool=callgrind --callgrind-out-file="$grind/callgrind.out.%p" "$@"; }
# Waits until $1 answers, or prints the log $2 and stops the run.
await_ready() {
  for _ in $(seq 600); do curl -sf "$1/readyz" >/dev/null && return; sleep 0.2; done
  echo "the service at $1 did not start:"; tail -20 "$2"; exit 1
}

say "starting the service (namespace $run_id) and the floor"
serve "$port" "$results/service.log"
pids+=($!)
target/release/anteroom-bench floor --addr "127.0.0.1:$floor_port" >/dev/null 2>&1 &
pids+=($!)
service_pid=${pids[0]} floor_pid=${pids[1]}
base="http://127.0.0.1:$port"
await_ready "$base" "$results/service.log"

# Requests per second that wrk measured against a URL (extra arguments go to wrk).
rate() {
  local name=$1; shift
  wrk -t1 -c"$connections" -d"${duration}s" --latency "$@" >"$results/wrk-$name.txt"
  awk '/Requests\/sec/ {print $2}' "$results/wrk-$name.txt"
}
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
# The CPU time (µs) that process $1 spent per request of the wrk run named $2,
# from $3, its CPU seconds before the run (bench/cpu.py): a figure that moves
# far less than requests/s with what else the two cores are doing.
cpu_per_request() {
  local requests; requests=$(awk '/requests in/ {print $1}' "$results/wrk-$2.txt")
  python3 -c "print(f'{($(python3 bench/cpu.py "$1") - $3) * 1e6 / $requests:.1f}')"
}
create_event() { # id, per_second, seats[, paused]
  curl -sf -XPOST "$base/api/admin/events" -H "Authorization: Bearer $admin" -d "{
    \"id\": \"$1\", \"paused\": ${4:-false}, \"name\": \"Bench\", \"venue\": \"Bench\", \"starts_at\": \"2030-01-01T20:00:00Z\",
    \"hold_seconds\": 60, \"max_seats_per_user\": 4,
    \"admission\": {\"per_second\": $2, \"max_active\": 1000, \"pass_seconds\": 600, \"abandon_seconds\": 3600},
    \"sections\": [{\"id\": \"A\", \"name\": \"Floor\", \"price_cents\": 100, \"rows\": 100, \"seats_per_row\": $3}]}" >/dev/null
}
rows=()
# Each figure carries the load average it was measured under: on a shared
# machine that is what tells two runs apart.
row() {
  local load; load=$(cut -d' ' -f1-3 /proc/loadavg)
  rows+=("| $1 | $2 | $3 | $4 | $5 | $load |"); echo "  $1: $2 vs $3 -> $4 (goal $5; load $load)"
}

floor="" floor_cpu=""
measure_floor() {
  say "floor: the cheapest axum GET"
  local a b from
  from=$(python3 bench/cpu.py "$floor_pid")
  a=$(rate floor-1 "http://127.0.0.1:$floor_port/")
  floor_cpu=$(cpu_per_request "$floor_pid" floor-1 "$from")
  b=$(rate floor-2 "http://127.0.0.1:$floor_port/")
  floor=$(python3 -c "print(round(($a + $b) / 2))")
  echo "  floor: $a and $b requests/s -> $floor; $floor_cpu µs of CPU per request"
}
if [[ " $only " == *" poll "* || " $only " == *" instances "* || " $only " == *" gate "* || " $only " == *" join "* || " $only " == *" seatmap "* ]]; then
  measure_floor
fi

if [[ " $only " == *" poll "* ]]; then
  say "status poll"
  # Paused, so that the polled place stays waiting, as a million places do
  # (an admitted poll also signs the pass: the waiting room's one last poll).
  create_event poll 1 10 true
  token=$(curl -sf -XPOST "$base/api/events/poll/queue" | python3 -c 'import sys, json; print(json.load(sys.stdin)["token"])')
  from=$(python3 bench/cpu.py "$service_pid")
  poll=$(rate poll "$base/api/queue/$token")
  poll_cpu=$(cpu_per_request "$service_pid" poll "$from")
  row "status poll (req/s)" "$poll" "$floor" "$(ratio "$poll" "$floor")" "≥ 0.80"
  row "status poll (µs of the server's CPU per request)" "$poll_cpu" "$floor_cpu" "$(ratio "$floor_cpu" "$poll_cpu")" "≥ 0.80 (floor / poll)"
fi

if [[ " $only " == *" instructions "* ]]; then
  say "instructions per request, under valgrind's callgrind (a figure that does not drift with the machine's noise)"
  ensure_package valgrind valgrind
  grind="$results/callgrind"
  mkdir -p "$grind"
  # A second instance of the same deployment, and a second floor, run under callgrind.
  grind_port=$(free_port)
  grind_floor_port=$(free_port)
  serve "$grind_port" "$grind/service.log" callgrind
  grind_service=$!
  pids+=($grind_service)
  callgrind target/release/anteroom-bench floor --addr "127.0.0.1:$grind_floor_port" >"$grind/floor.log" 2>&1 &
  grind_floor=$!
  pids+=($grind_floor)
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$grind_port/readyz" >/dev/null && curl -sf "http://127.0.0.1:$grind_floor_port/" >/dev/null && break; sleep 0.5; done
  create_event instructions 1 10 true
  token=$(curl -sf -XPOST "$base/api/events/instructions/queue" | python3 -c 'import sys, json; print(json.load(sys.stdin)["token"])')
  count="$INSTRUCTIONS_REQUESTS"
  read -r floor_instructions _ < <(CALLGRIND_DIR="$grind" python3 bench/instructions.py "$grind_floor" "http://127.0.0.1:$grind_floor_port/" "$count")
  read -r poll_instructions software_sha < <(CALLGRIND_DIR="$grind" python3 bench/instructions.py "$grind_service" "http://127.0.0.1:$grind_port/api/queue/$token" "$count")
  row "status poll (instructions per request)" "$poll_instructions" "$floor_instructions" "$(ratio "$floor_instructions" "$poll_instructions")" "≥ 0.80 (floor / poll)"
  # valgrind hides the CPU's SHA extensions: the token's HMAC runs in software under callgrind only.
  without_sha=$((poll_instructions - software_sha))
  row "status poll less software SHA-256 ($software_sha, a few hundred natively with SHA-NI)" "$without_sha" "$floor_instructions" "$(ratio "$floor_instructions" "$without_sha")" "≥ 0.80 (floor / poll)"
  kill "$grind_service" "$grind_floor" 2>/dev/null || true
fi

if [[ " $only " == *" instances "* ]]; then
  say "polls through nginx (infra/nginx.conf) in front of 1, 2 and 3 instances"
  # Everything shares this host's cores, so the polls/s cannot grow with the
  # instances here; what is measured is what each poll costs the instances,
  # in CPU time and in instructions (no request talks to another instance).
  ensure_package nginx nginx
  ensure_package valgrind valgrind
  create_event instances 1 10 true
  token=$(curl -sf -XPOST "$base/api/events/instances/queue" | python3 -c 'import sys, json; print(json.load(sys.stdin)["token"])')
  nginx_dir="$PWD/$results/nginx"
  mkdir -p "$nginx_dir"
  # nginx with infra/nginx.conf's settings in front of the given ports: sets nginx_pid, nginx_base.
  start_nginx() {
    local listen; listen=$(free_port)
    python3 - "$listen" "$@" >"$nginx_dir/nginx.conf" <<'PY'
import re, sys
listen, upstreams = sys.argv[1], sys.argv[2:]
config = open("infra/nginx.conf").read()
servers = "".join(f"server 127.0.0.1:{p} max_fails=3 fail_timeout=5s;\n        " for p in upstreams)
config = re.sub(r"(server 127\.0\.0\.1:\d+ [^;]*;\s*)+", servers, config)
print(config.replace("listen 8080;", f"listen 127.0.0.1:{listen};"))
PY
    nginx -p "$nginx_dir" -c "$nginx_dir/nginx.conf" -g "daemon off; pid $nginx_dir/nginx.pid; error_log $nginx_dir/error.log;" &
    nginx_pid=$!
    pids+=($nginx_pid)
    nginx_base="http://127.0.0.1:$listen"
    await_ready "$nginx_base" "$nginx_dir/error.log"
  }
  stop_nginx() { kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; }
  # Adds an instance (its words after the port and log: a wrapper) to instance_ports and instance_pids.
  add_instance() {
    local instance_port; instance_port=$(free_port)
    serve "$instance_port" "$results/instance-$instance_port.log" "$@"
    pids+=($!)
    instance_pids+=($!)
    instance_ports+=("$instance_port")
    await_ready "http://127.0.0.1:$instance_port" "$results/instance-$instance_port.log"
  }
  # CPU seconds the instances have used so far.
  cpu_seconds() { python3 bench/cpu.py "${instance_pids[@]}"; }
  instance_ports=("$port")
  instance_pids=("$service_pid")
  for n in 1 2 3; do
    while (( ${#instance_pids[@]} < n )); do add_instance; done
    start_nginx "${instance_ports[@]}"
    # What the instances spend with nobody asking (following the log, the
    # catalog, heartbeats) is theirs whatever the load: taken apart from the polls'.
    idle_from=$(cpu_seconds)
    sleep 5
    idle_cpu=$(python3 -c "print($(cpu_seconds) - $idle_from)")
    cpu_before=$(cpu_seconds)
    polls=$(rate "instances-$n" "$nginx_base/api/queue/$token")
    cpu_after=$(cpu_seconds)
    requests=$(awk '/requests in/ {print $1}' "$results/wrk-instances-$n.txt")
    read -r per_poll background < <(python3 -c "
idle_per_second = $idle_cpu / 5
busy = $cpu_after - $cpu_before
print(f'{(busy - idle_per_second * $duration) * 1e6 / $requests:.1f}', f'{idle_per_second * 1e3 / $n:.1f}')")
    stop_nginx
    row "polls through nginx, $n instance(s) (req/s)" "$polls ($per_poll µs of service CPU per poll; $background ms/s per instance idle)" "$floor" "$(ratio "$polls" "$floor")" "CPU per poll flat"
  done
  # The extra instances go: later sections measure one.
  for pid in "${instance_pids[@]:1}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done

  say "instructions per poll through nginx, added up over 1 and 3 instances under callgrind, less what they run idle"
  grind="$results/callgrind-instances"
  mkdir -p "$grind"
  instance_ports=()
  instance_pids=()
  one_instance=""
  for n in 1 3; do
    while (( ${#instance_pids[@]} < n )); do add_instance callgrind; done
    start_nginx "${instance_ports[@]}"
    read -r instructions _ < <(CALLGRIND_DIR="$grind" python3 bench/instructions.py --less-idle "$(IFS=,; echo "${instance_pids[*]}")" \
      "$nginx_base/api/queue/$token" "$INSTRUCTIONS_REQUESTS")
    stop_nginx
    : "${one_instance:=$instructions}"
    row "poll through nginx, $n instance(s) (instructions per poll, all instances, less idle)" "$instructions" "$one_instance (1 instance)" "$(ratio "$instructions" "$one_instance")" "1.00: flat"
  done
  for pid in "${instance_pids[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
fi

if [[ " $only " == *" gate "* ]]; then
  say "the gate: a reverse proxy's check of a pass (signature only, no server asked)"
  create_event gate 1000 10
  token=$(curl -sf -XPOST "$base/api/events/gate/queue" | python3 -c 'import sys, json; print(json.load(sys.stdin)["token"])')
  pass=""
  for _ in $(seq 100); do
    pass=$(curl -sf "$base/api/queue/$token" | python3 -c 'import sys, json; print(json.load(sys.stdin).get("pass", ""))')
    [[ -n "$pass" ]] && break
    sleep 0.1
  done
  [[ -n "$pass" ]] || { echo "the gate's pass was never admitted"; exit 1; }
  [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: anteroom_pass=$pass" "$base/api/gate/gate") == 204 ]] \
    || { echo "the gate refused a valid pass"; exit 1; }
  gate=$(rate gate -H "Cookie: anteroom_pass=$pass" "$base/api/gate/gate")
  row "gate, valid pass in the cookie: 204 (req/s)" "$gate" "$floor" "$(ratio "$gate" "$floor")" "≥ 0.80"
  refused=$(rate gate-refused -H "X-Original-URL: https://shop.example/checkout?item=7" "$base/api/gate/gate")
  row "gate, no pass: 401 + Location (req/s)" "$refused" "$floor" "$(ratio "$refused" "$floor")" "≥ 0.70"
fi

# CPU seconds per second that the processes named by $@ (as bench/cpu.py
# takes them) spend with nobody asking, read over 5 s.
idle_cpu_per_second() {
  local from
  from=$(python3 bench/cpu.py "$@")
  sleep 5
  python3 -c "print(($(python3 bench/cpu.py "$@") - $from) / 5)"
}

join=""
join_cpu=""
measure_join() {
  say "join (durable, publisher confirms, group commit)"
  create_event join 1 100
  # What serves a join: the service, Redis, RabbitMQ, PostgreSQL (wrk not
  # counted); what they spend with nobody joining, over as long, taken off.
  local servers=("$service_pid" redis-server beam.smp postgres) idle before after joins
  idle=$(python3 -c "print($(idle_cpu_per_second "${servers[@]}") * $duration)")
  before=$(python3 bench/cpu.py "${servers[@]}")
  join=$(rate join -s bench/join.lua "$base/api/events/join/queue")
  after=$(python3 bench/cpu.py "${servers[@]}")
  joins=$(awk '/requests in/ {print $1}' "$results/wrk-join.txt")
  join_cpu=$(python3 -c "print(round(($after - $before - $idle) / $joins * 1e6, 1))")
}
if [[ " $only " == *" join "* ]]; then
  measure_join
  row "join (req/s)" "$join" "$floor" "$(ratio "$join" "$floor")" "≥ 0.30"
  row "join: CPU per join, service + Redis + RabbitMQ + PostgreSQL, less idle (µs)" "$join_cpu" "—" "—" "— (lower is better)"
  say "join with a visitor id, as the waiting page joins"
  create_event join-visitor 1 100
  visitor_join=$(rate join-visitor -s bench/join_visitor.lua "$base/api/events/join-visitor/queue")
  # wrk runs Lua for every request here (a body of its own): wrk's CPU, on the same cores, is part of the gap.
  row "join with a visitor id (req/s)" "$visitor_join" "$floor" "$(ratio "$visitor_join" "$floor")" "— (the page's join)"
fi

if [[ " $only " == *" embedded "* ]]; then
  # What a new user runs first: one process, one SQLite file, no servers.
  [[ -n "$join" ]] || measure_join
  say "embedded mode: joins beside the servers', and restarts after a long history"
  embedded_dir=$(mktemp -d)
  embedded_port=$(free_port)
  embedded_base="http://127.0.0.1:$embedded_port"
  # Starts the embedded service on its file; `ready_after` is how long it took to answer /readyz.
  start_embedded() {
    local started; started=$(date +%s.%N)
    ANTEROOM_ADDR="127.0.0.1:$embedded_port" DATABASE_URL="sqlite://$embedded_dir/anteroom.db" \
    ANTEROOM_ADMIN_TOKEN="$admin" ANTEROOM_DEMO=0 RUST_LOG=warn,anteroom::adapters::embedded=info \
      "$service_bin" serve >>"$results/embedded.log" 2>&1 &
    embedded_pid=$!
    pids+=($embedded_pid)
    for _ in $(seq 1200); do curl -sf "$embedded_base/readyz" >/dev/null && break; sleep 0.05; done
    curl -sf "$embedded_base/readyz" >/dev/null || { echo "the embedded service did not start:"; tail "$results/embedded.log"; exit 1; }
    ready_after=$(python3 -c "print(f'{$(date +%s.%N) - $started:.2f}')")
  }
  joined() { # everyone who joined the paused event: all still waiting
    curl -sf "$embedded_base/api/admin/events/history/stats" -H "Authorization: Bearer $admin" \
      | python3 -c 'import sys, json; s = json.load(sys.stdin); print(s["waiting"] + s["admitted_total"])'
  }
  start_embedded
  base=$embedded_base create_event join 1 100
  embedded_join=$(rate embedded-join -s bench/join.lua "$embedded_base/api/events/join/queue")
  row "embedded join (req/s)" "$embedded_join" "$join (the servers' join)" "$(ratio "$embedded_join" "$join")" "≥ 1.00"
  # Paused, so that everyone who joins stays in the line the restart must bring back.
  base=$embedded_base create_event history 1 100 true
  for people in $embedded_history; do
    while (( $(joined) < people )); do
      wrk -t1 -c64 -d2s -s bench/join.lua "$embedded_base/api/events/history/queue" >/dev/null
    done
    before=$(joined)
    kill -9 "$embedded_pid"
    wait "$embedded_pid" 2>/dev/null || true
    start_embedded
    after=$(joined)
    [[ "$after" == "$before" ]] || { echo "the restart lost joins: $before before, $after after"; exit 1; }
    bytes=$(du -cb "$embedded_dir"/anteroom.db* | tail -1 | cut -f1)
    row "embedded restart after kill -9, $before people waiting (s)" "$ready_after (database $((bytes / 1048576)) MB)" "—" "—" "< 2 s after a million"
  done
  rm -rf "$embedded_dir"
fi

if [[ " $only " == *" seatmap "* ]]; then
  say "the seat map of a 100,000-seat event (100 rows of 1,000), gzip"
  create_event stadium 100 1000
  map="$base/api/events/stadium/seatmap"
  version=$(curl -sf "$map" | python3 -c 'import sys, json; print(json.load(sys.stdin)["version"])')
  gzip_header="Accept-Encoding: gzip"
  full=$(rate seatmap -H "$gzip_header" "$map")
  row "/seatmap, 100,000 seats, gzip (req/s)" "$full" "$floor" "$(ratio "$full" "$floor")" "—"
  since=$(rate seatmap-since -H "$gzip_header" "$map?since=$version")
  row "/seatmap?since=, nothing changed (req/s)" "$since" "$floor" "$(ratio "$since" "$floor")" "—"
  # Bytes a buyer's seat page fetches in a minute while the map changes between
  # every refresh (every 2 s): before, /seats whole each time; now, /seatmap
  # once and then ?since= answers with a few seats each.
  bytes() { curl -s --compressed -o /dev/null -w '%{size_download}' "$@"; }
  seats_whole=$(bytes "$base/api/events/stadium/seats")
  map_whole=$(bytes "$map")
  # A buyer holds three seats: the answer to a reader at the version before.
  token=$(curl -sf -XPOST "$base/api/events/stadium/queue" | python3 -c 'import sys, json; print(json.load(sys.stdin)["token"])')
  pass=""
  for _ in $(seq 50); do
    pass=$(curl -sf "$base/api/queue/$token" | python3 -c 'import sys, json; print(json.load(sys.stdin).get("pass", ""))')
    [[ -n "$pass" ]] && break; sleep 0.2
  done
  curl -sf -XPOST "$base/api/events/stadium/holds" -H "Authorization: Bearer $pass" \
    -d '{"seats": ["A-50-499", "A-50-500", "A-50-501"]}' >/dev/null
  few_changes=$(bytes "$map?since=$version")
  before=$((30 * seats_whole))
  after=$((map_whole + 30 * few_changes))
  row "seat page, bytes per buyer per minute" "$after (now: /seatmap $map_whole + 30 × ~$few_changes)" "$before (before: 30 × /seats $seats_whole)" "$(ratio "$after" "$before")" "kilobytes, not megabytes"
fi

if [[ " $only " == *" hold "* ]]; then
  say "hold + order insert vs a bare sqlx insert"
  # What serves a hold: the service, Redis, RabbitMQ, PostgreSQL, read from
  # the moment the holds start to the moment the last is answered (not while
  # their buyers are admitted, nor during the floor's inserts after them);
  # what they spend with nobody holding, over as long, taken off.
  hold_servers=("$service_pid" redis-server beam.smp postgres)
  idle_per_second=$(idle_cpu_per_second "${hold_servers[@]}")
  # The bench pauses after each of the two lines for the reading; a reading
  # that fails leaves its file empty and the row without a figure, and the
  # reader goes on passing the bench's lines through.
  target/release/anteroom-bench hold --url "$base" --admin-token "$admin" --database-url "$postgres/$run_id" \
    --holds "$HOLD_COUNT" --connections 64 --json "$results/hold.json" \
    2> >(while IFS= read -r line; do
           case "$line" in
             "hold: "*" holds over "*) python3 bench/cpu.py "${hold_servers[@]}" >"$results/hold-cpu-from" || true ;;
             "hold: "*" held in "*) python3 bench/cpu.py "${hold_servers[@]}" >"$results/hold-cpu-to" || true ;;
           esac
           echo "$line" >&2
         done) | tee "$results/hold.txt"
  read -r holds inserts r hold_cpu < <(python3 -c "
import json
h = json.load(open('$results/hold.json'))
try:
    spent = float(open('$results/hold-cpu-to').read()) - float(open('$results/hold-cpu-from').read())
    idle = $idle_per_second * h['holds'] / h['holds_per_second']
    per_hold = round((spent - idle) / h['holds'] * 1e6, 1)
except (OSError, ValueError):
    per_hold = '—'
print(round(h['holds_per_second']), round(h['inserts_per_second']), f\"{h['ratio']:.2f}\", per_hold)")
  row "hold + order insert (holds/s)" "$holds" "$inserts" "$r" "≥ 0.70 and ≥ 5,000/s"
  row "hold: CPU per hold, service + Redis + RabbitMQ + PostgreSQL, less idle (µs)" "$hold_cpu" "—" "—" "— (lower is better)"
fi

if [[ " $only " == *" order_checks "* ]]; then
  say "an order's checks in PostgreSQL: the record's lookups against foreign keys (bench/order_checks.py)"
  python3 bench/order_checks.py "$postgres" "$ORDER_CHECK_GROUPS" 3 | tee "$results/order_checks.txt"
  read -r lookups keys r < <(python3 -c "
import re
means = {}
for line in open('$results/order_checks.txt'):
    name, figures = line.split(':', 1)
    values = [float(v) for v in re.findall(r'[0-9.]+', figures.split('µs')[0])]
    means[name] = sum(values) / len(values)
print(round(means['lookups'], 1), round(means['keys'], 1), f\"{means['lookups'] / means['keys']:.2f}\")")
  row "order checks: PostgreSQL's CPU per order, lookups (now) vs foreign keys (µs)" "$lookups" "$keys" "$r" "< 1 (lower is better)"
fi

if [[ " $only " == *" drain "* ]]; then
  say "admission worker drain, no rate limit"
  target/release/anteroom-bench drain --url "$base" --admin-token "$admin" --people "$DRAIN_PEOPLE" \
    --json "$results/drain.json" | tee "$results/drain.txt"
  drained=$(python3 -c "import json; print(round(json.load(open('$results/drain.json'))['admitted_per_second']))")
  row "admission drain (admitted/s)" "$drained" "—" "—" "≥ 200,000/s"
fi

if [[ " $only " == *" waiting "* ]]; then
  say "a line of $waiting_sizes people at once, everyone polling when told"
  target/release/anteroom-bench waiting --url "$base" --admin-token "$admin" --sizes "$waiting_sizes" --measure-seconds "$WAITING_MEASURE_SECONDS" \
    --redis-url redis://127.0.0.1:6379 --namespace "$run_id" --service-pid "$service_pid" \
    --json "$results/waiting.json" | tee "$results/waiting.txt"
  python3 bench/plot_waiting.py "$results/waiting.json" "$results/waiting.svg"
  while read -r waiting_row; do
    eval "row $waiting_row"
  done < <(python3 -c "
import json, shlex
for s in json.load(open('$results/waiting.json'))['sizes']:
    figure = lambda v, unit='': '—' if v is None else f'{v:,.0f}{unit}'
    p99 = figure(s['poll'] and s['poll']['p99_ms'], ' ms')
    measured = (f\"{s['polls_per_second']:,.0f} polls/s, p99 {p99}, \"
                f\"{figure(s['service_cpu_micros_per_poll'], ' µs')} CPU per poll, {s['late_polls']} late; bytes per person: \"
                f\"Redis {figure(s['redis_bytes_per_person'])}, RabbitMQ {figure(s['rabbitmq_bytes_per_person'])}, \"
                f\"service {figure(s['service_rss_bytes_per_person'])}\")
    print(' '.join(shlex.quote(x) for x in [f\"{s['waiting']:,} waiting at once\", measured, '—', '—', 'flat cost per poll, Redis < 150 B per person']))")
fi

if [[ " $only " == *" flame "* ]]; then
  say "flame graphs of the poll and the hold (perf, inferno)"
  ensure_package perf linux-perf
  command -v inferno-flamegraph >/dev/null 2>&1 || { say "installing inferno"; cargo install --locked --quiet inferno; }
  # Samples the service for a few seconds into $results/flame-$1.svg, titled $2.
  flame() {
    perf record -q -F 199 --call-graph dwarf,65528 -p "$service_pid" -o "$results/flame-$1.perf" -- sleep 5 2>/dev/null
    perf script -i "$results/flame-$1.perf" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph --minwidth 0.2 --title "$2" >"$results/flame-$1.svg"
    rm -f "$results/flame-$1.perf"
    echo "  $results/flame-$1.svg"
  }
  create_event flame-poll 1 10 true
  token=$(curl -sf -XPOST "$base/api/events/flame-poll/queue" | python3 -c 'import sys, json; print(json.load(sys.stdin)["token"])')
  wrk -t1 -c"$connections" -d9s "$base/api/queue/$token" >/dev/null &
  load=$!
  sleep 2
  flame poll "the status poll of a waiting place (wrk -c$connections)"
  wait "$load"
  # The hold's flame graph is sampled while the holds run (not while their buyers are admitted).
  target/release/anteroom-bench hold --url "$base" --admin-token "$admin" --database-url "$postgres/$run_id" \
    --holds 40000 --connections 64 >"$results/flame-hold.txt" 2>&1 &
  load=$!
  until grep -q "held:" "$results/flame-hold.txt"; do sleep 0.2; done
  flame hold "hold + order: best-available and one seat per request (64 connections)"
  wait "$load"
fi

if [[ " $only " == *" spike "* ]]; then
  say "the spike: $spike_people people for 10,000 seats"
  status=0
  target/release/anteroom-bench spike --url "$base" --admin-token "$admin" --people "$spike_people" \
    --seats 10000 --json "$results/spike.json" | tee "$results/spike.txt" || status=$?
  summary=$(python3 -c "
import json; s = json.load(open('$results/spike.json'))
join = next(l for l in s['latencies'] if l['route'] == 'join')
served = {l['route']: l for l in s['service_latencies']}
service_join = served.get('POST /api/events/{id}/queue', {}).get('p99_ms_at_most')
ok = all(c['ok'] for c in s['checks'])
hold = next(l for l in s['latencies'] if l['route'] == 'hold')
print(f\"{s['wall_seconds']:.0f} s wall, join p99 {join['p99_ms']:.1f} ms (as the service timed it: ≤ {service_join} ms), {s['joins_per_second']:.0f} joins/s, best-available hold p50 {hold['p50_ms']:.1f} / p99 {hold['p99_ms']:.1f} ms, books {'balanced' if ok else 'NOT balanced'}\")")
  row "spike ($spike_people people, 10,000 seats)" "$summary" "—" "—" "sold out, zero oversell, join p99 < 50 ms, hold p99 < 100 ms"
  [[ $status -eq 0 ]] || { echo "the spike's book checks failed"; exit $status; }
fi

{
  echo "# Benchmarks $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); wrk -t1 -c$connections -d${duration}s"
  echo
  echo "| benchmark | measured | floor | ratio | goal | load average after |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >"$results/summary.md"
echo
cat "$results/summary.md"
