#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration suite, which talks
# to real Redis, RabbitMQ and PostgreSQL on 127.0.0.1 (started here if needed).
set -euo pipefail
cd "$(dirname "$0")/.."

bash infra/local-services.sh

export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
test_databases() {
  command -v psql >/dev/null 2>&1 || return 0
  psql "$TEST_POSTGRES_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'anteroom_test_%'" 2>/dev/null | sort
}
before=$(test_databases)
status=0
# The integration tests mostly wait on the servers: run several at once.
cargo test --locked -- --test-threads "${ANTEROOM_TEST_THREADS:-8}" || status=$?
# Each run makes its own database; drop the ones this run made.
for db in $(comm -13 <(echo "$before") <(test_databases)); do
  psql "$TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
done
exit $status
