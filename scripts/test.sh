#!/usr/bin/env bash
# Runs the whole test suite: unit tests of every crate and the end-to-end
# tests in tests/, which build and run the real lobster-relay binary.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p lobster-relay --bin lobster-relay
cargo test --locked --workspace "$@"
