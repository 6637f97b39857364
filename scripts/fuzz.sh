#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 20), seeded from
# fuzz/seeds/<target> (real vectors: the contract's Standard Webhooks test
# vector, GitHub's documented example, wire frames, --forward examples).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Installs cargo-fuzz if missing. cargo-fuzz passes nightly-only `-Z` flags
# to rustc; on a stable toolchain RUSTC_BOOTSTRAP=1 allows them. Targets are
# built with --sanitizer none: the workspace forbids unsafe code, so what we
# hunt is panics and broken invariants, and without ASan the build is
# shorter and the runs several times faster. Pass FUZZ_SANITIZER=address to
# get ASan back (e.g. for long runs, see docs/security-supply-chain.md).
#
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the script;
# reproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>` in fuzz/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-20}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(signature agent_message route)
sanitizer="${FUZZ_SANITIZER:-none}"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

# Fuzz the dependency versions we ship: start from the workspace's lock
# (cargo drops what the fuzz crate does not use and resolves only what the
# workspace lacks, libfuzzer-sys and arbitrary). fuzz/Cargo.lock is
# therefore generated, not tracked. fuzz/ is its own workspace, so it
# builds into fuzz/target with its own flags and never touches ../target.
cp ../Cargo.lock Cargo.lock

echo "== building fuzz targets (sanitizer: $sanitizer)" >&2
cargo fuzz build --sanitizer "$sanitizer"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
  echo "== fuzzing $target for ${seconds}s" >&2
  mkdir -p "corpus/$target"
  # corpus/ (gitignored) keeps what a run learns for the next one; seeds/
  # is read-only input. -max_len bounds inputs so a short run explores
  # breadth rather than huge bodies.
  status=0
  cargo fuzz run --sanitizer "$sanitizer" "$target" \
    "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E '^(Done [0-9]+ runs|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)' "$log" >&2 || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz target $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
done
