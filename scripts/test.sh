#!/usr/bin/env bash
# The whole test suite, as CI runs it: install test dependencies, check formatting and lints,
# then build and run every test. Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/test-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --all-targets -- --color never 2>&1 | tee "$log"
# one closing line over every test binary
awk '/^test result:/ { p += $4; f += $6 } END { printf "all tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$log"
