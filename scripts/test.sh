#!/usr/bin/env bash
# Runs the whole test suite: unit tests of every crate, and the end-to-end
# tests in tests/ (the real lobster-relay binary on loopback) on SQLite and
# again on PostgreSQL, plus the multi-instance tests (PostgreSQL + Redis).
#
# Needs PostgreSQL and Redis server binaries (Debian: postgresql,
# redis-server). A private PostgreSQL cluster is started for the run unless
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
