#!/usr/bin/env bash
# Live-view benchmark (not a test): 1, 16, 64 and 128 simulated 720p25 ~2 Mbit/s cameras,
# each kept warm by a light LL-HLS poller (measured from 12 s on, once the window is full),
# side by side in one run with
#   - the old backend's design: one `ffmpeg -c copy -f hls` per camera writing to tmpfs, and
#   - the floor: a bare retina reader that pulls the same streams and drops the frames.
# Reports CPU (user+sys, in cores) and memory (RSS for vigia with the HLS window and the median
# of RSS minus window read together from /stats, PSS summed for the others),
# part publish latency (from vigia's /stats) and time to the first playable playlist.
# vigia and the floor are measured ROUNDS times (default 3), alternately, and their medians
# reported (this machine's CPU time moves ±20 % between two runs of the same thing); the
# ratio is of the medians, each round's own ratio beside it.
# Usage: ./scripts/bench-live.sh [seconds-per-measurement]  (default 60; COUNTS="1 16" to pick;
# PROFILE=profiling for release code without fat LTO, minutes faster to build; PERF=<dir> also
# records vigia with `perf record --call-graph dwarf` during each count's first measurement into
# <dir>/vigia-<N>.data; `perf script -i … > v.txt; scripts/perf-owners.py v.txt` sums it by owner)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
COUNTS=${COUNTS:-"1 16 64 128"}
WARM=12
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
printf '| %7s | %-26s | %-24s | %-22s | %-14s | %-18s | %-16s |\n' cameras "vigia CPU (cores, median (range)), RSS" "ffmpeg CPU, PSS (sum)" "retina floor CPU (median (range)), PSS" "vigia/floor (medians)" "part publish p50/p99" "first playlist"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' ---------: -------------------------- ------------------------ ---------------------- -------------- ------------------ ----------------

ratio() { awk -v v="$1" -v r="$2" 'BEGIN{ if (r > 0) printf "%.2f", v/r; else print "-" }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
range() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1{lo=$1} {hi=$1} END{printf "%s-%s", lo, hi}'; }

# one measurement of vigia with N cameras and N pollers; sets V_* and the figures it reads
measure_vigia() {
  DATA="$WORK/data-$N-$1"; mkdir -p "$DATA"
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
  ./target/$PROFILE/examples/hls_poller "$WORK/urls-$N" $((SECS + WARM + 5)) >"$WORK/poller-$N.out" &
  POLLER=$!; PIDS+=($POLLER)
  sleep $WARM
  local a b
  a=$(ticks $VIGIA)
  if [ -n "${PERF:-}" ] && [ "$1" = 1 ]; then
    mkdir -p "$PERF"
    perf record -q --call-graph dwarf,32768 -F 500 -p $VIGIA -o "$PERF/vigia-$N.data" -- sleep "$SECS" 2>/dev/null
  else
    sleep "$SECS"
  fi
  b=$(ticks $VIGIA)
  V_CPU=$(cores $a $b); V_RSS=$(rss_mib $VIGIA)
  # RSS over the window, from /stats, which reads both at one moment (cameras started together
  # end their segments together: the window swings by one segment per camera within a second);
  # the median of 8 readings over 2 s, one segment's time
  local overs=""
  for _ in $(seq 8); do
    overs="$overs $(curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/stats" | jq -r '(.memory.rss_bytes - .streams.hls_window_bytes) / 1048576 | . * 10 | floor / 10')"
    sleep 0.25
  done
  OVER=$(median <<<"$overs")
  STATS=$(curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/stats")
  WIN=$(jq -r '.streams.hls_window_bytes / 1048576 | . * 10 | floor / 10' <<<"$STATS")
  P50=$(jq -r '.streams.part_publish_ms.p50' <<<"$STATS"); P99=$(jq -r '.streams.part_publish_ms.p99' <<<"$STATS")
  LIVE=$(jq -r '[.cameras.detail[] | select(.stream.state == "live")] | length' <<<"$STATS")
  SEGBUF=$(jq -c .streams.segment_buffers <<<"$STATS")
  wait $POLLER 2>/dev/null || true
  POLL=$(cat "$WORK/poller-$N.out")
  kill $VIGIA; wait $VIGIA 2>/dev/null || true
}

# one measurement of the floor: retina pulls and drops; sets R_CPU, R_PSS
measure_floor() {
  ./target/$PROFILE/examples/retina_floor "$RTSP" "$N" $((SECS + WARM + 2)) >"$WORK/floor-$N.out" &
  local fl=$! a b
  sleep $WARM
  a=$(ticks $fl); sleep "$SECS"; b=$(ticks $fl)
  R_CPU=$(cores $a $b); R_PSS=$(pss_mib $fl)
  wait $fl 2>/dev/null || true
}

# the old design: one ffmpeg per camera, HLS to tmpfs; sets F_CPU, F_PSS
measure_ffmpeg() {
  local ff=() a b
  for i in $(seq "$N"); do
    mkdir -p "$SHM/cam$i"
    ffmpeg -nostdin -v error -rtsp_transport tcp -i "$RTSP/cam$i" -c copy -f hls -hls_time 2 -hls_list_size 6 \
      -hls_flags delete_segments "$SHM/cam$i/index.m3u8" 2>>"$WORK/ffmpeg.log" &
    ff+=($!)
  done
  sleep $WARM
  a=$(ticks "${ff[@]}"); sleep "$SECS"; b=$(ticks "${ff[@]}")
  F_CPU=$(cores $a $b); F_PSS=$(pss_mib "${ff[@]}")
  kill "${ff[@]}" 2>/dev/null; wait "${ff[@]}" 2>/dev/null || true
  rm -rf "${SHM:?}"/cam*
}

ROUNDS=${ROUNDS:-3}
for N in $COUNTS; do
  VS=""; RS=""; EACH=""
  for r in $(seq "$ROUNDS"); do
    measure_vigia "$r"
    measure_floor
    VS="$VS $V_CPU"; RS="$RS $R_CPU"
    EACH="$EACH $(ratio "$V_CPU" "$R_CPU")"
    # the figures other than CPU are those of the first round
    if [ "$r" = 1 ]; then
      ROW_RSS=$V_RSS; ROW_WIN=$WIN; ROW_OVER=$OVER; ROW_P="$P50 / $P99 ms"; ROW_FIRST=$FIRST; ROW_PSS=$R_PSS
      ROW_INFO="$LIVE/$N live; poller: $POLL; floor: $(cat "$WORK/floor-$N.out"); segment buffers: $SEGBUF"
    fi
  done
  measure_ffmpeg
  VM=$(median <<<"$VS"); RM=$(median <<<"$RS")
  RATIO=$(ratio "$VM" "$RM")
  printf '| %7s | %-26s | %-24s | %-22s | %-14s | %-18s | %-16s |\n' "$N" "$VM ($(range <<<"$VS")), $ROW_RSS MiB (window $ROW_WIN MiB, RSS over it $ROW_OVER MiB)" "$F_CPU, $F_PSS MiB" "$RM ($(range <<<"$RS")), $ROW_PSS MiB" "$RATIO (rounds:$EACH)" "$ROW_P" "$ROW_FIRST"
  echo "    ($ROW_INFO)" >&2
done
