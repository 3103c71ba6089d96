#!/usr/bin/env bash
# What a /metrics scrape costs with 128 live cameras (scripts/bench-metrics.py): vigia's CPU
# per scrape (scraping windows against quiet ones, interleaved) and the scrape's latency.
#   ./scripts/bench-metrics.sh [CAMERAS] [ROUNDS] [WINDOW_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
cargo build --profile "$PROFILE" --locked --bin vigia
VIGIA_BIN="target/$PROFILE/vigia" exec python3 scripts/bench-metrics.py "$@"
