#!/usr/bin/env bash
# Runs the whole test suite: unit tests of every crate, and the end-to-end
# tests in tests/ (the real lobster-relay binary on loopback) on SQLite and
# again on PostgreSQL, plus the multi-instance tests (PostgreSQL + Redis),
# then the Node.js and Python SDK suites against the same binary
# (sdk/node/test.sh, sdk/python/test.sh; they need node >= 18 with npm, and
# python3 >= 3.9 with venv). LOBSTER_SKIP_SDKS=1 skips those two.
#
# Needs PostgreSQL and Redis server binaries (Debian: postgresql,
# redis-server), and chromium for the dashboard's browser tests. A private PostgreSQL cluster is started for the run unless
# LOBSTER_TEST_POSTGRES_URL already points at one; tests start their own
# redis-server processes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

if [ -z "${LOBSTER_TEST_POSTGRES_URL:-}" ]; then
  pg_dir="$(mktemp -d /tmp/lobster-test-pg.XXXXXX)"
  trap 'stop_postgres "$pg_dir"; rm -rf "$pg_dir"' EXIT
  start_postgres "$pg_dir"
fi

cargo build --locked -p lobster-relay --bin lobster-relay
echo "== all crates; end-to-end on SQLite" >&2
cargo test --locked --workspace --no-fail-fast "$@"
echo "== end-to-end again on PostgreSQL" >&2
LOBSTER_E2E_BACKEND=postgres cargo test --locked -p lobster-e2e --no-fail-fast "$@"
if [ -z "${LOBSTER_SKIP_SDKS:-}" ]; then
  echo "== Node.js SDK (sdk/node/test.sh)" >&2
  sdk/node/test.sh
  echo "== Python SDK (sdk/python/test.sh)" >&2
  sdk/python/test.sh
fi
