#!/usr/bin/env bash
# A soak under faults (see scripts/soak.py): 64 simulated cameras, a quarter with faults,
# all recorded, 32 LL-HLS players and an API client, for MINUTES (default 30); prints a table
# and writes samples, log and an SVG plot of RSS and descriptors to SOAK_OUT (default: a
# temporary directory). Exits non-zero when a check fails.
#   ./scripts/soak.sh [MINUTES]
# PROFILE=profiling builds without fat LTO (minutes instead of ten; what CI's short run uses).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v ffmpeg >/dev/null || { echo "soak: needs ffmpeg (apt-get install -y --no-install-recommends ffmpeg)" >&2; exit 1; }
PROFILE=${PROFILE:-release}
cargo build --profile "$PROFILE" --locked --bin vigia
VIGIA_BIN="target/$PROFILE/vigia" exec python3 scripts/soak.py "${1:-30}"
