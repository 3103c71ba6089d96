#!/usr/bin/env bash
# Times discovery's worst case: a /24 where nothing answers (every SYN dropped), 7 ports.
# Runs `vigia discover` in a network namespace of its own whose 127.77.0.0/24 is routed to a
# veth peer that drops everything (as tests/discovery.rs does), N times; prints a table.
#   sudo ./scripts/bench-discovery.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-7}
cargo build --release --locked -q --bin vigia
BIN=$(pwd)/target/release/vigia
setup='set -e
ip link set lo up
ip link add v0 type veth peer name v1
ip link set v0 up; ip link set v1 up
sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.v0.route_localnet=1
ip route del local 127.0.0.0/8 dev lo table local
ip route add local 127.0.0.0/16 dev lo table local
ip route add 127.77.0.0/24 via 127.99.0.1 dev v0 onlink
ip neigh add 127.99.0.1 lladdr 02:00:00:00:00:01 dev v0 nud permanent
exec "$0" discover 127.77.0.0/24'
scan=(); total=()
for _ in $(seq "$RUNS"); do
  out=$(ONVIF_TIMEOUT=1 LOG_LEVEL=warn unshare --net sh -c "$setup" "$BIN")
  scan+=("$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["port_scan_ms"])')")
  total+=("$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["elapsed_ms"])')")
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "# silent /24 x 7 ports (1778 connects), $RUNS runs, $(date +%F), $(nproc) cores"
echo "| | median | min | max |"
echo "|---|---|---|---|"
echo "| port scan, ms | $(med "${scan[@]}") | $(printf '%s\n' "${scan[@]}" | sort -n | head -1) | $(printf '%s\n' "${scan[@]}" | sort -n | tail -1) |"
echo "| whole scan (ONVIF_TIMEOUT=1), ms | $(med "${total[@]}") | $(printf '%s\n' "${total[@]}" | sort -n | head -1) | $(printf '%s\n' "${total[@]}" | sort -n | tail -1) |"
