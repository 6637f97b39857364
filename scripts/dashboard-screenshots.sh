#!/usr/bin/env bash
# Regenerates the dashboard screenshots in docs/dashboard/ by running the
# browser tests (tests/tests/dashboard.rs) with DASHBOARD_SCREENSHOTS set.
# Needs Debian's chromium (apt-get install -y chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
export DASHBOARD_SCREENSHOTS="$PWD/docs/dashboard"
mkdir -p "$DASHBOARD_SCREENSHOTS"
cargo build --locked -p lobster-relay --bin lobster-relay
cargo test --locked -p lobster-e2e --test dashboard -- --nocapture "$@"
ls -l "$DASHBOARD_SCREENSHOTS"
