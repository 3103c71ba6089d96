#!/usr/bin/env bash
# API benchmark (not a test): authenticated GET /api/cameras/list throughput with wrk, and
# login latency (argon2id dominated), side by side in one run on loopback.
# Usage: ./scripts/bench-api.sh [seconds-per-run]   (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CAMERAS=${CAMERAS:-16}

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$2"; }; }
need wrk wrk
need curl curl
cargo build --release --locked -q

DIR=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
BASE="http://127.0.0.1:$PORT"
PID=""
start() { # $1 = log level; request lines go to a file, as journald would take them
  [ -z "$PID" ] || { kill "$PID"; wait "$PID" 2>/dev/null || true; }
  LOG_LEVEL=$1 DATA_DIR="$DIR" LISTEN_ADDR="127.0.0.1:$PORT" ./target/release/vigia serve 2>>"$DIR/log" &
  PID=$!
  for _ in $(seq 200); do curl -sf "$BASE/health" >/dev/null && return; sleep 0.05; done
  echo "vigia did not start"; cat "$DIR/log"; exit 1
}
trap '[ -z "$PID" ] || kill $PID 2>/dev/null; rm -rf "$DIR"' EXIT
start warn

curl -sf -XPOST "$BASE/api/auth/register" -d '{"username":"admin","password":"bench-password"}' >/dev/null
TOKEN=$(curl -sf -XPOST "$BASE/api/auth/login" -d '{"username":"admin","password":"bench-password"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
for i in $(seq "$CAMERAS"); do
  curl -sf -XPOST -H "Authorization: Bearer $TOKEN" "$BASE/api/cameras" \
    -d "{\"ip\":\"127.0.1.$i\",\"brand\":\"hikvision\",\"username\":\"admin\",\"password\":\"pw$i\"}" >/dev/null
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
echo "vigia $(./target/release/vigia --version | cut -d' ' -f2), release build, redb store, $CAMERAS cameras, wrk on the same host"
echo

rps() { grep 'Requests/sec' <<<"$1" | awk '{print $2}'; }
lat() { grep -m1 'Latency' <<<"$1" | awk '{print $2}'; }
check() { ! grep -q 'Non-2xx' <<<"$1" || { echo "ERROR: non-2xx answers:"; echo "$1"; exit 1; }; }

list=$(wrk -t2 -c64 -d"${SECS}s" -H "Authorization: Bearer $TOKEN" "$BASE/api/cameras/list"); check "$list"
health=$(wrk -t2 -c64 -d"${SECS}s" "$BASE/health"); check "$health"

# login: sequential requests, one at a time (latency), then 2 concurrent clients (throughput)
times=()
for _ in $(seq 31); do
  times+=("$(curl -s -o /dev/null -w '%{time_total}' -XPOST "$BASE/api/auth/login" -d '{"username":"admin","password":"bench-password"}')")
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
p50=$(sed -n 16p <<<"$sorted"); p90=$(sed -n 28p <<<"$sorted")
cat > "$DIR/login.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"username":"admin","password":"bench-password"}'
wrk.headers["Content-Type"] = "application/json"
LUA
login=$(wrk -t2 -c2 -d"${SECS}s" -s "$DIR/login.lua" "$BASE/api/auth/login"); check "$login"

start info # every request logged, the production default
list_info=$(wrk -t2 -c64 -d"${SECS}s" -H "Authorization: Bearer $TOKEN" "$BASE/api/cameras/list"); check "$list_info"

row() { printf '| %-52s | %11s | %-22s |\n' "$1" "$2" "$3"; }
row "request" "requests/s" "latency"
printf '|%s|%s|%s|\n' "------------------------------------------------------" "-------------" "------------------------"
row "GET /api/cameras/list, JWT + store, c=64" "$(rps "$list")" "avg $(lat "$list")"
row "GET /api/cameras/list, same, every request logged" "$(rps "$list_info")" "avg $(lat "$list_info")"
row "GET /health, no auth, c=64" "$(rps "$health")" "avg $(lat "$health")"
row "POST /api/auth/login, argon2id, c=2" "$(rps "$login")" "avg $(lat "$login")"
row "POST /api/auth/login, sequential, 31 runs" "-" "p50 ${p50}s p90 ${p90}s"
echo
awk -v a="$(rps "$list")" -v b="$(rps "$health")" -v c="$(rps "$list_info")" \
  'BEGIN{printf "ratios: list/health %.2f, logged/unlogged list %.2f\n", a/b, c/a}'
