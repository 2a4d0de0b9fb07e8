#!/usr/bin/env bash
# Fuzzes the HTTP API with schemathesis against the service's own OpenAPI
# document (GET /api/openapi.json), in embedded mode on a fresh SQLite database.
#
# Usage: infra/fuzz.sh
#   ANTEROOM_BIN=target/release/anteroom infra/fuzz.sh   # another build (default target/debug/anteroom)
#   FUZZ_EXAMPLES=500 infra/fuzz.sh                      # more test cases per operation (default 100)
#   FUZZ_SEED=7 infra/fuzz.sh                            # another seed (default 1: the same cases every run)
#   FUZZ_REPORT_DIR=fuzz-report infra/fuzz.sh            # also write JUnit and HAR reports there
#   FUZZ_SCHEMA=static/openapi.json infra/fuzz.sh        # test an edited schema without rebuilding
# Extra arguments go to `schemathesis run` as they are.
#
# It starts the service on a free port with ANTEROOM_DEMO=1, creates one more
# event for the fuzzer and takes an admission pass for it (so holds, payments
# and cancellations are reached), then runs every schemathesis check (except
# use_after_free: a left token and a cancelled order stay readable by design)
# with stateful, link-following tests. Exits with schemathesis's status.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
bin="${ANTEROOM_BIN:-target/debug/anteroom}"
examples="${FUZZ_EXAMPLES:-100}"
seed="${FUZZ_SEED:-1}"
schema="${FUZZ_SCHEMA:-}"

source infra/lib.sh

if [ ! -x "$bin" ]; then
  say "no service binary at $bin: build it (cargo build) or set ANTEROOM_BIN"; exit 2
fi
ensure_pip_tool schemathesis schemathesis "$SCHEMATHESIS_VERSION"
installed=$(schemathesis --version | awk '{print $NF}')
if [ "$installed" != "$SCHEMATHESIS_VERSION" ]; then
  say "warning: schemathesis $installed is installed; this script is written for $SCHEMATHESIS_VERSION"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/anteroom-fuzz.XXXXXX")
service_pid=""
stop() {
  if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
    kill "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_token="fuzz-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"

say "starting $bin on $base (embedded mode, fresh database in $work)"
env -u REDIS_URL -u AMQP_URL -u ANTEROOM_CLIENT_RATE -u ANTEROOM_TRUST_FORWARDED -u ANTEROOM_SECRET -u ANTEROOM_NAMESPACE \
  ANTEROOM_DEMO=1 ANTEROOM_ADMIN_TOKEN="$admin_token" ANTEROOM_ADDR="127.0.0.1:$port" \
  DATABASE_URL="sqlite://$work/anteroom.db" RUST_LOG="${RUST_LOG:-warn}" \
  "$bin" serve >"$work/service.log" 2>&1 &
service_pid=$!

for _ in $(seq 1 300); do
  if curl -fsS -o /dev/null "$base/readyz" 2>/dev/null; then break; fi
  if ! kill -0 "$service_pid" 2>/dev/null; then
    say "the service exited during start-up:"; cat "$work/service.log"; exit 2
  fi
  sleep 0.1
done
if ! curl -fsS -o /dev/null "$base/readyz"; then
  say "the service is not ready after 30 s:"; tail -n 50 "$work/service.log"; exit 2
fi

# The fuzzer's own event: room for many holds by one pass, admission at once.
json() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
curl -fsS -o /dev/null -X POST "$base/api/admin/events" -H "Authorization: Bearer $admin_token" \
  -H 'Content-Type: application/json' -d '{
    "id": "fuzz", "name": "Fuzz Night", "venue": "Lab", "starts_at": "2030-01-01T19:00:00Z",
    "hold_seconds": 30, "max_seats_per_user": 1000,
    "admission": {"per_second": 100, "max_active": 100000, "pass_seconds": 3600},
    "sections": [
      {"id": "A", "name": "Floor", "price_cents": 9900, "rows": 20, "seats_per_row": 50},
      {"id": "B", "name": "Balcony", "price_cents": 4900, "rows": 10, "seats_per_row": 20}
    ]}'
token=$(curl -fsS -X POST "$base/api/events/fuzz/queue" -H 'Content-Type: application/json' -d '{}' | json token)
pass=""
for _ in $(seq 1 100); do
  status=$(curl -fsS "$base/api/queue/$token")
  if [ "$(printf '%s' "$status" | json state)" = admitted ]; then
    pass=$(printf '%s' "$status" | json pass); break
  fi
  sleep 0.1
done
if [ -z "$pass" ]; then say "no admission pass within 10 s: $status"; exit 2; fi

# Orders of that pass in each state, for the order routes to start from.
hold() {
  curl -fsS -X POST "$base/api/events/fuzz/holds" -H "Authorization: Bearer $pass" \
    -H 'Content-Type: application/json' -d "{\"seats\": [\"$1\"]}" | json order_id
}
paid=$(hold B-10-18); cancelled=$(hold B-10-19); pending=$(hold B-10-20)
curl -fsS -o /dev/null -X POST "$base/api/orders/$paid/pay" -H "Authorization: Bearer $pass" \
  -H 'Content-Type: application/json' -d '{"payment_ref": "fuzz-1"}'
curl -fsS -o /dev/null -X DELETE "$base/api/orders/$cancelled" -H "Authorization: Bearer $pass"

sed "s/@ORDERS@/\"$paid\", \"$cancelled\", \"$pending\"/" >"$work/schemathesis.toml" <<'EOF'
# Written by infra/fuzz.sh.
[generation]
database = "none"

[cache]
enabled = false

[auth.openapi.admin]
bearer = "${FUZZ_ADMIN_TOKEN}"

[auth.openapi.pass]
bearer = "${FUZZ_PASS}"

# Existing ids, mixed into the generated ones, so that requests get past 404.
[dictionaries.events]
values = ["fuzz", "demo"]

[dictionaries.sections]
values = ["A", "B"]

[dictionaries.seats]
values = ["A-1-1", "A-1-2", "A-1-3", "A-1-50", "A-2-7", "A-3-3", "A-5-25", "A-10-10", "A-20-1", "A-20-50",
          "B-1-1", "B-1-2", "B-2-9", "B-5-5", "B-10-20"]

[dictionaries.files]
values = ["anteroom.css", "common.js", "waiting.js", "pow.js", "seats.js", "seatcanvas.js", "admin.js", "home.js"]

[dictionaries.orders]
values = [@ORDERS@]

[parameters]
"path.id" = { dictionary = "events", probability = 0.5 }
"path.order_id" = { dictionary = "orders", probability = 0.6 }
"path.file" = { dictionary = "files", probability = 0.5 }
"body.seats[*]" = { dictionary = "seats", probability = 0.8 }
"body.best_available.section" = { dictionary = "sections", probability = 0.8 }
"query.section" = { dictionary = "sections", probability = 0.8 }

# Answers the schema cannot foresee for a valid request: API.md's rules across
# fields (unique section ids, at most 1,000,000 seats) and the state of the
# venue and of the pass (seats taken, max_seats_per_user reached, a pass for
# another event, an order already expired, cancelled or paid).
[[operations]]
include-operation-id = "createEvent"
checks.positive_data_acceptance.expected-statuses = [201, 401, 409, 422]

# 409 and 428: an event the fuzzer gave a join challenge (challenge_used, challenge_required);
# 403 and 429: one it made invitation-only or limited per address (code_required,
# invalid_code, too_many_places, rate_limited after ten unknown codes).
[[operations]]
include-operation-id = "joinQueue"
checks.positive_data_acceptance.expected-statuses = [200, 201, 403, 404, 409, 410, 428, 429]

# A million codes are hashed, written and sent back in one answer: seconds in
# this debug build, more on a loaded machine (the route's own deadline is
# BULK_REQUEST_TIMEOUT, 120 s; the command line's --request-timeout is above it,
# and every other route answers within its 15 s deadline).
[[operations]]
include-operation-id = "issueCodes"
checks.max_response_time = 130

[[operations]]
include-operation-id = "holdSeats"
checks.positive_data_acceptance.expected-statuses = [201, 401, 404, 409, 422]

[[operations]]
include-operation-id = "proposeBestAvailable"
checks.positive_data_acceptance.expected-statuses = [200, 404, 409, 422]

[[operations]]
include-operation-id = "payOrder"
checks.positive_data_acceptance.expected-statuses = [200, 401, 404, 410]

[[operations]]
include-operation-id = "cancelOrder"
checks.positive_data_acceptance.expected-statuses = [200, 401, 404, 409, 410]

# 422: an origin whose host does not parse (the pattern cannot say every rule of a host).
[[operations]]
include-operation-id = "updateEvent"
checks.positive_data_acceptance.expected-statuses = [200, 401, 404, 409, 422]

# 400: a return_to on none of the event's return_origins (the fuzzer's event lists none).
[[operations]]
include-operation-id = "waitingRoomPage"
checks.positive_data_acceptance.expected-statuses = [200, 400, 404]

[[operations]]
include-operation-id = "returnToSite"
checks.positive_data_acceptance.expected-statuses = [303, 400, 404]
EOF

report=()
if [ -n "${FUZZ_REPORT_DIR:-}" ]; then
  mkdir -p "$FUZZ_REPORT_DIR"
  report=(--report junit,har --report-dir "$FUZZ_REPORT_DIR")
fi

say "schemathesis $installed: $examples examples per operation, seed $seed"
status=0
FUZZ_ADMIN_TOKEN="$admin_token" FUZZ_PASS="$pass" \
  schemathesis --config-file "$work/schemathesis.toml" run "${schema:-$base/api/openapi.json}" --url "$base" \
  --checks all --exclude-checks use_after_free \
  --max-examples "$examples" --seed "$seed" --workers 1 --request-timeout 150 \
  ${report[@]+"${report[@]}"} "$@" || status=$?

if grep -q 'panicked' "$work/service.log"; then
  say "the service panicked:"; grep -A5 'panicked' "$work/service.log" | head -n 40
  [ "$status" -ne 0 ] || status=1
fi
say "schemathesis exited with $status"
exit "$status"
