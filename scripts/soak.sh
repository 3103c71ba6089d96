#!/usr/bin/env bash
# A soak under faults (see scripts/soak.py): 64 simulated cameras, a quarter with faults,
# all recorded, 32 LL-HLS players and an API client, for MINUTES (default 30); prints a table
# and writes samples, log and an SVG plot of RSS and descriptors to SOAK_OUT (default: a
# temporary directory). Exits non-zero when a check fails.
#   ./scripts/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ffmpeg >/dev/null || { echo "soak: needs ffmpeg (apt-get install -y --no-install-recommends ffmpeg)" >&2; exit 1; }
cargo build --release --locked --bin vigia
exec python3 scripts/soak.py "${1:-30}"
