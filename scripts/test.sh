#!/usr/bin/env bash
# The whole test suite, as CI runs it: install test dependencies, check formatting and lints,
# then build and run every test. Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/test-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (lean build, then with Postgres)"
cargo clippy --all-targets --locked -- -D warnings
cargo clippy --all-targets --locked --features postgres -- -D warnings
echo "== cargo clippy (an integrator's build without the web page)"
cargo clippy --lib --bins --locked --no-default-features -- -D warnings
echo "== no import cycle between the top-level modules of src/"
python3 scripts/module-cycles.py
echo "== cargo test"
# a failing assertion's own message is then the last thing before the list of failures (a CI
# excerpt keeps the end of the output); every binary runs even after one fails
export RUST_BACKTRACE=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# the lean build's own unit tests (e.g. Postgres settings refused without the feature)
cargo test --locked --lib -- --color never 2>&1 | tee "$log"
# everything, with the Postgres back end (a throwaway cluster per test binary)
cargo test --locked --no-fail-fast --all-targets --features postgres -- --color never 2>&1 | tee -a "$log"
# the HTTP suites once more, every server in Postgres mode
VIGIA_TEST_STORE=postgres cargo test --locked --features postgres \
  --test auth --test cameras --test compat --test contract --test permissions --test system --test users \
  -- --color never 2>&1 | tee -a "$log"
# schemathesis against the OpenAPI document, as each role, on a seeded optimized build
PROFILE=profiling ./scripts/fuzz-api.sh 20 2>&1 | tee -a "$log"
# the aarch64 build: its unit tests under qemu-aarch64 and an end-to-end smoke (~4 min)
./scripts/test-arm.sh 2>&1 | tee -a "$log"
# a 3-minute soak under faults (64 cameras, a quarter faulty, all recorded, 32 players): no
# panic, no 5xx, flat memory and descriptors, every file decodes, nothing lost beyond the bound
PROFILE=profiling ./scripts/soak.sh 3 2>&1 | tee -a "$log"
# one closing line over every test binary
awk '/^test result:/ { p += $4; f += $6 } /^soak: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 } /^fuzz-api: [0-9]+ of [0-9]+ runs passed/ { p += $2; f += $4 - $2 } END { printf "all tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$log"
