#!/usr/bin/env bash
# schemathesis against vigia's own OpenAPI document (scripts/fuzz-api.py), each role in turn,
# in a network namespace of its own (generated discovery ranges reach nothing but its
# loopback). EXAMPLES is the most test cases per operation and phase (default 20: the short
# run of ./scripts/test.sh; the figures in docs/BENCHMARKS.md come from 1000).
#   ./scripts/fuzz-api.sh [EXAMPLES]
# PROFILE=profiling builds without fat LTO. Needs root (unshare), ./scripts/test-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ST="$PWD/target/pyenv/bin/st"
[ -x "$ST" ] || { echo "fuzz-api: schemathesis is missing: run ./scripts/test-deps.sh" >&2; exit 1; }
command -v unshare >/dev/null || { echo "fuzz-api: needs unshare (apt-get install -y util-linux) and root" >&2; exit 1; }
PROFILE=${PROFILE:-release}
cargo build --profile "$PROFILE" --locked --bin vigia
export VIGIA_BIN="$PWD/target/$PROFILE/vigia" ST FUZZ_OUT=${FUZZ_OUT:-target/tmp/fuzz-api}
rm -rf "$FUZZ_OUT"
exec unshare --net sh -c 'ip link set lo up && exec python3 scripts/fuzz-api.py "$1"' sh "${1:-20}"
