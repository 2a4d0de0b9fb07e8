#!/usr/bin/env bash
# Runs the whole test suite: formatting and lints, the unit tests, then the integration suite against
# real Redis, RabbitMQ and PostgreSQL on 127.0.0.1 (started here if needed),
# against a Redis Cluster, a Redis Sentinel set and a RabbitMQ cluster
# (infra/cluster.sh), and against embedded mode (SQLite, in-process); then
# schemathesis against the OpenAPI document, PyJWT against the passes, the operators' alerts and
# dashboard, and the pages in headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
source infra/lib.sh

bash infra/local-services.sh
ensure_package chromium chromium
ensure_package nginx nginx
ensure_package node nodejs
ensure_package npm npm

status=0
export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
test_databases() {
  command -v psql >/dev/null 2>&1 || return 0
  psql "$TEST_POSTGRES_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'anteroom_test_%'" 2>/dev/null | sort
}
before=$(test_databases)
# The integration tests mostly wait on the servers: run several at once.
threads="${ANTEROOM_TEST_THREADS:-8}"
echo "== formatting (rustfmt's defaults) and lints (clippy, warnings are errors)"
cargo fmt --all --check || status=$?
cargo clippy --locked --workspace --all-targets -- -D warnings || status=$?
echo "== unit tests and the integration suite against the servers"
cargo test --locked --workspace -- --test-threads "$threads" --skip embedded_only || status=$?
echo "== the integration suite against clustered engines: Redis Cluster (3 masters, 3 replicas) and Sentinel, a 3-node RabbitMQ cluster"
# Started once per run (infra/cluster.sh) and shared; each test has its own namespace.
# A million codes are the record's work, done in the passes before and after.
if cluster_urls=$(bash infra/cluster.sh up | grep '_URL='); then
  eval "$cluster_urls"
  for redis in "$REDIS_CLUSTER_URL" "$REDIS_SENTINEL_URL"; do
    TEST_REDIS_URL="$redis" TEST_AMQP_URL="$AMQP_CLUSTER_URL" cargo test --locked --test api -- \
      --test-threads "$threads" --skip servers_only --skip process --skip embedded_only \
      --skip a_million_codes || status=$?
  done
  echo "== a node of each cluster dies mid-sale, and the Sentinels fail over (alone: they kill shared nodes, and start them again)"
  TEST_REDIS_URL="$REDIS_CLUSTER_URL" TEST_AMQP_URL="$AMQP_CLUSTER_URL" cargo test --locked --test api \
    servers_only::node_loss -- --ignored --test-threads 1 --skip sentinel || status=$?
  TEST_REDIS_URL="$REDIS_SENTINEL_URL" TEST_AMQP_URL="$AMQP_CLUSTER_URL" cargo test --locked --test api \
    servers_only::node_loss::three_instances_behind_nginx_keep_a_sale_going_through_a_sentinel_failover \
    -- --ignored --test-threads 1 || status=$?
else
  echo "the clusters did not start"; status=1
fi
echo "== the integration suite against embedded mode"
ANTEROOM_TEST_BACKEND=embedded cargo test --locked --test api -- --test-threads "$threads" --skip servers_only || status=$?
echo "== schemathesis against the OpenAPI document (no 500, every response as documented)"
# It starts target/debug/anteroom, which the integration suite above has built.
bash infra/fuzz.sh || status=$?
echo "== a shop's backend verifies passes with PyJWT and the JWKS alone (EdDSA and ES256)"
bash infra/jwt-check.sh || status=$?
echo "== the operators' alert rules (promtool) and Grafana dashboard"
bash infra/check-ops.sh || status=$?
echo "== the pages in headless Chromium"
# They start target/debug/anteroom, which the integration suite above has built.
(cd e2e && npm ci --no-audit --no-fund --loglevel=error && node --test --test-concurrency=1) || status=$?
# Each run makes its own database; drop the ones this run made.
for db in $(comm -13 <(echo "$before") <(test_databases)); do
  psql "$TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
done
exit $status
