#!/usr/bin/env bash
# Builds vigia for aarch64 with Debian's cross compiler and tests it under qemu-user:
# the unit tests (cargo test --lib, run by qemu-aarch64), then an end-to-end smoke of the
# aarch64 binary: register, add a camera (the native simulator), stream HLS (judged by
# ffmpeg), record 5 s (judged by ffprobe). Prints the stripped binary's size and the time.
#   ./scripts/test-arm.sh            # lean build (the appliance's)
#   FEATURES=postgres ./scripts/test-arm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
TARGET=aarch64-unknown-linux-gnu
FEATURES=${FEATURES:-}
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu qemu-user curl ffmpeg; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "test-arm: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"

feat=(); [ -n "$FEATURES" ] && feat=(--features "$FEATURES")
echo "== build (release, $TARGET${FEATURES:+, $FEATURES})"
cargo build --release --target "$TARGET" "${feat[@]}"
BIN=target/$TARGET/release/vigia
aarch64-linux-gnu-strip -o target/vigia-aarch64-stripped "$BIN"
SIZE=$(stat -c %s target/vigia-aarch64-stripped)
echo "stripped aarch64 binary: $SIZE bytes ($(( SIZE / 1024 )) KiB)"

echo "== unit tests under qemu-aarch64 (debug build: quicker to build than fat LTO)"
cargo test --target "$TARGET" "${feat[@]}" --lib

echo "== end-to-end smoke: the aarch64 binary under qemu-aarch64"
cargo build --bin vigia   # the native simulator
work=$(mktemp -d)
cleanup() { kill "${SIM:-}" "${VIGIA:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
target/debug/vigia camsim --listen 127.0.0.1:0 > "$work/sim.out" 2>/dev/null &
SIM=$!
for _ in $(seq 100); do grep -q READY "$work/sim.out" && break; sleep 0.1; done
SIM_PORT=$(awk '/READY/ {print $2}' "$work/sim.out")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LISTEN_ADDR=127.0.0.1:$PORT DATA_DIR=$work/data MIN_FREE_DISK_MB=0 \
  qemu-aarch64 -L /usr/aarch64-linux-gnu "$BIN" serve 2> "$work/vigia.log" &
VIGIA=$!
API=http://127.0.0.1:$PORT
for _ in $(seq 300); do curl -sf "$API/health" >/dev/null && break; sleep 0.1; done
curl -sf "$API/health" >/dev/null || { cat "$work/vigia.log"; echo "vigia did not start"; exit 1; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
curl -sf -X POST "$API/api/auth/register" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"arm-smoke-pw-1"}' >/dev/null
TOKEN=$(curl -sf -X POST "$API/api/auth/login" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"arm-smoke-pw-1"}' | json '["token"]')
auth=(-H "Authorization: Bearer $TOKEN" -H 'content-type: application/json')
curl -sf "${auth[@]}" -X POST "$API/api/cameras" \
  -d "{\"ip\":\"127.0.0.9\",\"rtsp_url\":\"rtsp://127.0.0.1:$SIM_PORT/cam1/audio\"}" >/dev/null
HLS=$(curl -sf "${auth[@]}" "$API/api/cameras/stream/127.0.0.9" | json '["hls_url"]')
out=$(ffmpeg -nostdin -v error -i "$HLS" -t 3 -f null - 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "ffmpeg on the live view: $out"; exit 1; }
echo "live view: 3 s decoded without an error"
curl -sf "${auth[@]}" -X POST "$API/api/nvr/record/127.0.0.9" -d '{"duration":5}' >/dev/null
for _ in $(seq 200); do
  st=$(curl -sf "${auth[@]}" "$API/api/nvr/status/127.0.0.9" | json '["is_recording"]')
  [ "$st" = "False" ] && break; sleep 0.2
done
FILE=$(find "$work/data/recordings" -name '*.mp4' | head -1)
DUR=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$FILE")
out=$(ffmpeg -nostdin -v error -i "$FILE" -f null - 2>&1)
[ -z "$out" ] || { echo "ffmpeg on the recording: $out"; exit 1; }
python3 -c "import sys; d=float('$DUR'); sys.exit(0 if 4.5 <= d <= 6.5 else 1)" \
  || { echo "recorded $DUR s, wanted ~5"; exit 1; }
echo "recording: $DUR s, decodes without an error"
echo "test-arm: all passed in $(( $(date +%s) - T0 )) s (binary $SIZE bytes stripped)"
