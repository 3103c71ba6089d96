#!/usr/bin/env bash
# Where vigia's CPU goes in live view, next to the floor: N simulated 720p25 ~2 Mbit/s cameras
# (2 s GOP), each kept warm by an LL-HLS poller (examples/hls_poller: blocking playlist reload,
# then the part); vigia's CPU over SECS while `perf record` samples it (cpu-clock, call
# graphs), then the bare retina floor on the same cameras. Prints both, their ratio, and the
# hottest functions (self time) and call chains. Uses the `profiling` profile (release code
# with line tables, no fat LTO).
#   ./scripts/profile-live.sh [N=32] [SECS=30]      (needs linux-perf; apt-get install linux-perf)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-32}
SECS=${2:-30}
WARM=8
command -v perf >/dev/null || { echo "needs perf: apt-get install -y --no-install-recommends linux-perf" >&2; exit 1; }
cargo build --profile profiling --locked -q --bin vigia --examples
BIN=target/profiling
FIX=target/bench-fixtures
[ -f $FIX/h264_720p25.h264 ] || ./scripts/make-fixtures.sh $FIX 720p >/dev/null
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
cores() { awk -v a="$1" -v b="$2" -v t="$TCK" -v s="$SECS" 'BEGIN{printf "%.4f", (b-a)/t/s}'; }

$BIN/vigia camsim --listen 127.0.0.1:0 --fixture $FIX/h264_720p25.h264 >"$WORK/camsim.out" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 50); do grep -q READY "$WORK/camsim.out" 2>/dev/null && break; sleep 0.1; done
RTSP="rtsp://127.0.0.1:$(awk '/READY/{print $2}' "$WORK/camsim.out")"
PORT=$((20000 + RANDOM % 20000)); BASE="http://127.0.0.1:$PORT"
LOG_LEVEL=warn MAX_STREAMS=1024 MAX_CONNECTIONS_PER_IP=2048 DATA_DIR="$WORK" LISTEN_ADDR="127.0.0.1:$PORT" \
  SECRET_KEY=profile-secret-key-0123456789abcdef0123456789 env ${VIGIA_PRELOAD:+LD_PRELOAD=$VIGIA_PRELOAD} $BIN/vigia serve 2>"$WORK/vigia.log" &
VIGIA=$!; PIDS+=($VIGIA)
for _ in $(seq 100); do curl -sf "$BASE/health" >/dev/null && break; sleep 0.05; done
curl -sf -XPOST "$BASE/api/auth/register" -d '{"username":"admin","password":"profile-pass"}' >/dev/null
TOKEN=$(curl -sf -XPOST "$BASE/api/auth/login" -d '{"username":"admin","password":"profile-pass"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
: >"$WORK/urls"
for i in $(seq "$N"); do
  curl -sf -XPOST -H "Authorization: Bearer $TOKEN" "$BASE/api/cameras" \
    -d "{\"ip\":\"127.0.3.$i\",\"rtsp_url\":\"$RTSP/cam$i\"}" >/dev/null
  curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/api/cameras/stream/127.0.3.$i" |
    sed 's/.*"hls_url":"\([^"]*\)".*/\1/' >>"$WORK/urls"; echo >>"$WORK/urls"
done
$BIN/examples/hls_poller "$WORK/urls" $((SECS + WARM + 2)) >"$WORK/poller.out" &
POLLER=$!; PIDS+=($POLLER)
sleep $WARM
a=$(ticks $VIGIA)
perf record -q -F 99 --call-graph dwarf,8192 -p $VIGIA -o "$WORK/perf.data" -- sleep "$SECS" 2>/dev/null
b=$(ticks $VIGIA)
V=$(cores "$a" "$b")
RSS=$(awk '/^VmRSS:/{printf "%.1f MiB", $2/1024}' /proc/$VIGIA/status)
WIN=$(curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/stats" | sed 's/.*"hls_window_bytes":\([0-9]*\).*/\1/' | awk '{printf "%.1f MiB", $1/1048576}')
wait $POLLER 2>/dev/null || true
kill $VIGIA; wait $VIGIA 2>/dev/null || true

$BIN/examples/retina_floor "$RTSP" "$N" $((SECS + WARM + 2)) >"$WORK/floor.out" &
FL=$!
sleep $WARM
a=$(ticks $FL); sleep "$SECS"; b=$(ticks $FL)
R=$(cores "$a" "$b")
wait $FL 2>/dev/null || true

echo "$(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "$N cameras, $SECS s: vigia $V cores (RSS $RSS, HLS window $WIN), retina floor $R cores, ratio $(awk -v v="$V" -v r="$R" 'BEGIN{printf "%.2f", v/r}')"
echo "poller: $(cat "$WORK/poller.out")"
cp "$WORK/perf.data" target/profile-live.perf.data
echo "(perf data kept in target/profile-live.perf.data)"
echo
echo "hottest functions (self):"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -g none --percent-limit 1.2 2>/dev/null |
  grep -v '^#' | grep -v '^$' | sed 's/ *- *- *$//' | head -40
echo
echo "by top-level caller chain (children):"
perf report -i "$WORK/perf.data" --children --sort symbol --stdio -g none --percent-limit 4 2>/dev/null |
  grep -v '^#' | grep -v '^$' | grep -v '\[k\]' | sed 's/ *- *- *$//' | head -40
