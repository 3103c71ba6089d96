#!/usr/bin/env bash
# Recording benchmark (not a test): N simulated 720p25 ~2 Mbit/s cameras recorded
# continuously (row 1), then recorded and watched by LL-HLS pollers (row 2); vigia CPU
# (user+sys, cores) and RSS, file bytes ÷ payload bytes, frames written vs received; and the
# old backend's way for one camera: a re-encoding ffmpeg (libx264 fast, CRF 23).
# Usage: ./scripts/bench-record.sh [seconds] [cameras]   (defaults: 60 s, 128 cameras)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
N=${2:-128}
WARM=8
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$2"; }; }
need ffmpeg ffmpeg; need curl curl; need jq jq
cargo build --release --locked -q --features postgres --bin vigia --examples
FIX=target/bench-fixtures
[ -f $FIX/h264_720p25.h264 ] || ./scripts/make-fixtures.sh $FIX 720p >/dev/null
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
cores() { awk -v a="$1" -v b="$2" -v t="$TCK" -v s="$SECS" 'BEGIN{printf "%.4f", (b-a)/t/s}'; }

./target/release/vigia camsim --listen 127.0.0.1:0 --fixture $FIX/h264_720p25.h264 >"$WORK/camsim.out" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 50); do grep -q READY "$WORK/camsim.out" 2>/dev/null && break; sleep 0.1; done
RTSP="rtsp://127.0.0.1:$(awk '/READY/{print $2}' "$WORK/camsim.out")"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
echo "$N cameras, 720p25 H.264 High ~2 Mbit/s (vigia camsim), continuous recording to $(df -T "$WORK" | awk 'NR==2{print $2}'), ${SECS} s after ${WARM} s warm-up"
echo
printf '| %-22s | %-12s | %-9s | %-9s | %-20s | %-26s |\n' "run" "vigia CPU" "per cam" "RSS" "file / payload bytes" "frames written / received"
printf '|%s|%s|%s|%s|%s|%s|\n' ------------------------ -------------- ----------- ----------- ---------------------- ----------------------------

run() { # $1 = label, $2 = watch (0/1)
  local DATA="$WORK/data-$2" PORT=$((20000 + RANDOM % 20000))
  local BASE="http://127.0.0.1:$PORT"
  mkdir -p "$DATA"
  LOG_LEVEL=warn MAX_STREAMS=1024 MAX_CONNECTIONS_PER_IP=2048 MIN_FREE_DISK_MB=64 DATA_DIR="$DATA" LISTEN_ADDR="127.0.0.1:$PORT" \
    SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 ./target/release/vigia serve 2>"$WORK/vigia-$2.log" &
  local V=$!; PIDS+=($V)
  for _ in $(seq 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.05; done
  curl -sf -XPOST "$BASE/api/auth/register" -d '{"username":"admin","password":"bench-password"}' >/dev/null
  local T; T=$(curl -sf -XPOST "$BASE/api/auth/login" -d '{"username":"admin","password":"bench-password"}' | jq -r .token)
  for i in $(seq "$N"); do
    curl -sf -XPOST -H "Authorization: Bearer $T" "$BASE/api/cameras" \
      -d "{\"ip\":\"127.0.4.$((i % 250 + 1))\",\"channel\":$((i / 250 + 1)),\"rtsp_url\":\"$RTSP/cam$i\"}" >/dev/null
  done
  local IDS; IDS=$(curl -sf -H "Authorization: Bearer $T" "$BASE/api/cameras/list" | jq -r '.cameras[].id')
  local CURLS=()
  for id in $IDS; do curl -sf -XPOST -H "Authorization: Bearer $T" "$BASE/api/nvr/record/$id" >/dev/null & CURLS+=($!); done
  wait "${CURLS[@]}" || true
  local POLLER=""
  if [ "$2" = 1 ]; then
    : >"$WORK/urls"
    for id in $IDS; do curl -sf -H "Authorization: Bearer $T" "$BASE/api/cameras/stream/$id" | jq -r .hls_url >>"$WORK/urls"; done
    ./target/release/examples/hls_poller "$WORK/urls" $((SECS + WARM + 2)) >"$WORK/poller.out" &
    POLLER=$!; PIDS+=($POLLER)
  fi
  sleep $WARM
  local a b; a=$(ticks $V); sleep "$SECS"; b=$(ticks $V)
  local CPU RSS; CPU=$(cores "$a" "$b"); RSS=$(awk '/^VmRSS:/{printf "%.0f MiB", $2/1024}' /proc/$V/status)
  CURLS=()
  for id in $IDS; do curl -sf -XDELETE -H "Authorization: Bearer $T" "$BASE/api/nvr/record/$id" >/dev/null & CURLS+=($!); done
  wait "${CURLS[@]}" || true
  local S; S=$(curl -sf -H "Authorization: Bearer $T" "$BASE/stats")
  local DISK; DISK=$(du -sb "$DATA/recordings" | awk '{print $1}')
  local RATIO; RATIO=$(jq -r --arg d "$DISK" '($d|tonumber) / .recordings.payload_bytes | . * 10000 | round / 10000' <<<"$S")
  local FR; FR=$(jq -r '"\(.recordings.frames_out) / \(.recordings.frames_in)"' <<<"$S")
  local PER; PER=$(awk -v c="$CPU" -v n="$N" 'BEGIN{printf "%.5f", c/n}')
  printf '| %-22s | %-12s | %-9s | %-9s | %-20s | %-26s |\n' "$1" "$CPU" "$PER" "$RSS" "$RATIO" "$FR"
  [ -z "$POLLER" ] || { wait "$POLLER" 2>/dev/null || true; echo "    (poller: $(cat "$WORK/poller.out"))" >&2; }
  kill $V; wait $V 2>/dev/null || true
}
run "recorded" 0
run "recorded and watched" 1

# the old backend: one re-encoding ffmpeg per camera (here: one camera)
ffmpeg -nostdin -v error -rtsp_transport tcp -i "$RTSP/cam1" -c:v libx264 -preset fast -crf 23 -an \
  -f mp4 -movflags frag_keyframe "$WORK/ffmpeg.mp4" &
FF=$!; PIDS+=($FF)
sleep $WARM
a=$(ticks $FF); sleep "$SECS"; b=$(ticks $FF)
printf '| %-22s | %-12s | %-9s | %-9s | %-20s | %-26s |\n' "ffmpeg x264 fast CRF 23" "$(cores "$a" "$b")" "(1 cam)" "-" "-" "-"
