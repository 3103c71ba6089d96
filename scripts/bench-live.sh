#!/usr/bin/env bash
# Live-view benchmark (not a test): 1, 16, 64 and 128 simulated 720p25 ~2 Mbit/s cameras,
# each kept warm by a light LL-HLS poller, side by side in one run with
#   - the old backend's design: one `ffmpeg -c copy -f hls` per camera writing to tmpfs, and
#   - the floor: a bare retina reader that pulls the same streams and drops the frames.
# Reports CPU (user+sys, in cores) and memory (RSS for vigia, PSS summed for the others),
# part publish latency (from vigia's /stats) and time to the first playable playlist.
# Usage: ./scripts/bench-live.sh [seconds-per-measurement]  (default 60; COUNTS="1 16" to pick;
# PROFILE=profiling for release code without fat LTO, minutes faster to build; PERF=<dir> also
# records vigia with `perf record -g` during each measurement into <dir>/vigia-<N>.data)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
COUNTS=${COUNTS:-"1 16 64 128"}
WARM=8
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$2"; }; }
need ffmpeg ffmpeg
need curl curl
need jq jq
PROFILE=${PROFILE:-release}
cargo build --profile "$PROFILE" --locked -q --features postgres --bin vigia --examples
FIX=target/bench-fixtures
[ -f $FIX/h264_720p25.h264 ] || ./scripts/make-fixtures.sh $FIX 720p >/dev/null

WORK=$(mktemp -d)
SHM=$(mktemp -d -p /dev/shm vigia-bench.XXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; pkill -f "$SHM" 2>/dev/null || true; rm -rf "$WORK" "$SHM"; }
trap cleanup EXIT
TCK=$(getconf CLK_TCK)
ticks() { local t=0; for p in "$@"; do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
pss_mib() { local k=0; for p in "$@"; do [ -r /proc/$p/smaps_rollup ] && k=$((k + $(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup))); done; awk -v k=$k 'BEGIN{printf "%.1f", k/1024}'; }
rss_mib() { awk '/^VmRSS:/{printf "%.1f", $2/1024}' /proc/$1/status; }
cores() { awk -v a="$1" -v b="$2" -v t="$TCK" -v s="$SECS" 'BEGIN{printf "%.4f", (b-a)/t/s}'; }

./target/$PROFILE/vigia camsim --listen 127.0.0.1:0 --fixture $FIX/h264_720p25.h264 >"$WORK/camsim.out" 2>/dev/null &
CAMSIM=$!; PIDS+=($CAMSIM)
for _ in $(seq 50); do grep -q READY "$WORK/camsim.out" 2>/dev/null && break; sleep 0.1; done
CPORT=$(awk '/READY/{print $2}' "$WORK/camsim.out")
RTSP="rtsp://127.0.0.1:$CPORT"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F), cargo profile $PROFILE"
echo "fixture: $(ffprobe -v error -show_entries stream=width,height,r_frame_rate,bit_rate -of csv=p=0 $FIX/h264_720p25.h264 | head -1) H.264 High, 2 s GOP, served by vigia camsim over RTSP/TCP; ${SECS} s per measurement after ${WARM} s warm-up"
echo
printf '| %7s | %-26s | %-24s | %-22s | %-14s | %-18s | %-16s |\n' cameras "vigia CPU (cores), RSS" "ffmpeg CPU, PSS (sum)" "retina floor CPU, PSS" "vigia/floor" "part publish p50/p99" "first playlist"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ---------: -------------------------- ------------------------ ---------------------- -------------- ------------------ ----------------

for N in $COUNTS; do
  # --- vigia with N cameras and N pollers
  DATA="$WORK/data-$N"; mkdir -p "$DATA"
  PORT=$((20000 + RANDOM % 20000)); BASE="http://127.0.0.1:$PORT"
  LOG_LEVEL=warn MAX_STREAMS=1024 MAX_CONNECTIONS_PER_IP=2048 DATA_DIR="$DATA" LISTEN_ADDR="127.0.0.1:$PORT" SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 \
    ./target/$PROFILE/vigia serve 2>"$WORK/vigia-$N.log" &
  VIGIA=$!; PIDS+=($VIGIA)
  for _ in $(seq 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.05; done
  curl -sf -XPOST "$BASE/api/auth/register" -d '{"username":"admin","password":"bench-password"}' >/dev/null
  TOKEN=$(curl -sf -XPOST "$BASE/api/auth/login" -d '{"username":"admin","password":"bench-password"}' | jq -r .token)
  for i in $(seq "$N"); do
    curl -sf -XPOST -H "Authorization: Bearer $TOKEN" "$BASE/api/cameras" \
      -d "{\"ip\":\"127.0.3.$((i % 250 + 1))\",\"channel\":$((i / 250 + 1)),\"rtsp_url\":\"$RTSP/cam$i\"}" >/dev/null
  done
  IDS=$(curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/api/cameras/list" | jq -r '.cameras[].id')
  # every camera asked for at once from one process (threads), as 128 viewers clicking would:
  # from the stream API call to the first playlist's last byte
  FIRST=$(python3 - "$BASE" "$TOKEN" "$WORK/urls-$N" $IDS <<'PY'
import json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
base, token, out, ids = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def first(cam):
    t0 = time.monotonic()
    req = urllib.request.Request(f"{base}/api/cameras/stream/{cam}", headers={"Authorization": f"Bearer {token}"})
    url = json.load(urllib.request.urlopen(req, timeout=60))["hls_url"]
    urllib.request.urlopen(url, timeout=60).read()
    return time.monotonic() - t0, url
with ThreadPoolExecutor(len(ids)) as pool:
    res = sorted(pool.map(first, ids))
open(out, "w").write("".join(u + "\n" for _, u in res))
print(f"p50 {res[(len(res) - 1) // 2][0]:.2f} s, max {res[-1][0]:.2f} s")
PY
)
  ./target/$PROFILE/examples/hls_poller "$WORK/urls-$N" $((SECS + WARM + 2)) >"$WORK/poller-$N.out" &
  POLLER=$!; PIDS+=($POLLER)
  sleep $WARM
  a=$(ticks $VIGIA)
  if [ -n "${PERF:-}" ]; then
    mkdir -p "$PERF"; perf record -q -g -p $VIGIA -o "$PERF/vigia-$N.data" -- sleep "$SECS" 2>/dev/null
  else
    sleep "$SECS"
  fi
  b=$(ticks $VIGIA)
  V_CPU=$(cores $a $b); V_RSS=$(rss_mib $VIGIA)
  STATS=$(curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/stats")
  WIN=$(jq -r '.streams.hls_window_bytes / 1048576 | . * 10 | floor / 10' <<<"$STATS")
  P50=$(jq -r '.streams.part_publish_ms.p50' <<<"$STATS"); P99=$(jq -r '.streams.part_publish_ms.p99' <<<"$STATS")
  LIVE=$(jq -r '[.cameras.detail[] | select(.stream.state == "live")] | length' <<<"$STATS")
  wait $POLLER 2>/dev/null || true
  POLL=$(cat "$WORK/poller-$N.out")
  kill $VIGIA; wait $VIGIA 2>/dev/null || true

  # --- the old design: one ffmpeg per camera, HLS to tmpfs
  FF=()
  for i in $(seq "$N"); do
    mkdir -p "$SHM/cam$i"
    ffmpeg -nostdin -v error -rtsp_transport tcp -i "$RTSP/cam$i" -c copy -f hls -hls_time 2 -hls_list_size 6 \
      -hls_flags delete_segments "$SHM/cam$i/index.m3u8" 2>>"$WORK/ffmpeg.log" &
    FF+=($!)
  done
  sleep $WARM
  a=$(ticks "${FF[@]}"); sleep "$SECS"; b=$(ticks "${FF[@]}")
  F_CPU=$(cores $a $b); F_PSS=$(pss_mib "${FF[@]}")
  kill "${FF[@]}" 2>/dev/null; wait "${FF[@]}" 2>/dev/null || true
  rm -rf "${SHM:?}"/cam*

  # --- the floor: retina pulls and drops
  ./target/$PROFILE/examples/retina_floor "$RTSP" "$N" $((SECS + WARM + 2)) >"$WORK/floor-$N.out" &
  FL=$!
  sleep $WARM
  a=$(ticks $FL); sleep "$SECS"; b=$(ticks $FL)
  R_CPU=$(cores $a $b); R_PSS=$(pss_mib $FL)
  wait $FL 2>/dev/null || true

  RATIO=$(awk -v v="$V_CPU" -v r="$R_CPU" 'BEGIN{ if (r > 0) printf "%.2f", v/r; else print "-" }')
  printf '| %7s | %-26s | %-24s | %-22s | %-14s | %-18s | %-16s |\n' "$N" "$V_CPU, $V_RSS MiB (window $WIN MiB)" "$F_CPU, $F_PSS MiB" "$R_CPU, $R_PSS MiB" "$RATIO" "$P50 / $P99 ms" "$FIRST"
  echo "    ($LIVE/$N live; poller: $POLL; floor: $(cat "$WORK/floor-$N.out"); segment buffers: $(jq -c .streams.segment_buffers <<<"$STATS"))" >&2
done
