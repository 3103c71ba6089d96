#!/usr/bin/env bash
# Makes the camera simulator's fixtures with ffmpeg: pre-encoded H.264 (Annex B, an access
# unit delimiter before every frame, no B-frames, a key frame every second) and AAC (ADTS).
# Usage: ./scripts/make-fixtures.sh [outdir]            the small committed fixtures (360p)
#        ./scripts/make-fixtures.sh outdir 720p         also 720p25 at ~2 Mbit/s (benchmarks)
set -euo pipefail
out=${1:-"$(dirname "$0")/../fixtures"}
mkdir -p "$out"
command -v ffmpeg >/dev/null || { echo "ffmpeg missing: apt-get install -y --no-install-recommends ffmpeg" >&2; exit 1; }

video() { # name size rate gop bitrate seconds
  ffmpeg -nostdin -v error -y -f lavfi -i "testsrc2=size=$2:rate=$3" -t "$6" \
    -c:v libx264 -profile:v high -preset veryfast -tune zerolatency -pix_fmt yuv420p \
    -g "$4" -keyint_min "$4" -sc_threshold 0 -b:v "$5" -maxrate "$5" -bufsize "$5" \
    -bsf:v h264_metadata=aud=insert -f h264 "$out/$1.h264"
}
video h264_360p25 640x360 25 25 500k 4
video h264_180p25 320x180 25 25 150k 2
ffmpeg -nostdin -v error -y -f lavfi -i "sine=frequency=440:sample_rate=48000" -ac 2 -t 4 \
  -c:a aac -b:a 64k -f adts "$out/aac_48k.aac"
if [ "${2:-}" = 720p ]; then
  video h264_720p25 1280x720 25 50 2000k 8
fi
ls -l "$out"
