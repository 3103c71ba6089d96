#!/usr/bin/env bash
# API benchmark (not a test), redb and PostgreSQL side by side in one run on loopback:
# authenticated GET /api/cameras/list throughput with wrk, GET /health, and login (argon2id).
# Usage: ./scripts/bench-api.sh [seconds-per-run]   (default 10; needs root for apt and initdb)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CAMERAS=${CAMERAS:-16}

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$2"; }; }
need wrk wrk
need curl curl
need bc bc
need psql postgresql-client
[ -x "$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)/initdb" ] || need initdb postgresql
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build --release --locked -q --features postgres --bin vigia --example seed_recordings
RECORDINGS=${RECORDINGS:-100000}

WORK=$(mktemp -d)
chmod 755 "$WORK"
PID=""
PGDIR="$WORK/pg"
cleanup() {
  [ -z "$PID" ] || kill "$PID" 2>/dev/null || true
  [ -d "$PGDIR/data" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# a throwaway PostgreSQL cluster on a free loopback port (defaults: fsync on, as in production)
PGPORT=$((20000 + RANDOM % 20000))
mkdir -p "$PGDIR" && chown postgres "$PGDIR"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" -A trust -U postgres >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGDIR" start >/dev/null
psql -h "$PGDIR" -p "$PGPORT" -U postgres -qc "CREATE DATABASE vigia"

PORT=$((20000 + RANDOM % 20000))
BASE="http://127.0.0.1:$PORT"
start() { # $1 = data dir, $2 = log level, rest = extra environment
  local dir=$1 level=$2; shift 2
  [ -z "$PID" ] || { kill "$PID"; wait "$PID" 2>/dev/null || true; }
  env "$@" MAX_CONNECTIONS_PER_IP=2048 LOG_LEVEL="$level" DATA_DIR="$dir" LISTEN_ADDR="127.0.0.1:$PORT" \
    SECRET_KEY=bench-secret-key-0123456789abcdef0123456789 ./target/release/vigia serve 2>>"$WORK/log" &
  PID=$!
  local t0; t0=$(date +%s.%N)
  for _ in $(seq 400); do
    if curl -sf "$BASE/health" >/dev/null; then STARTUP=$(echo "$(date +%s.%N) - $t0" | bc); return; fi
    sleep 0.02
  done
  echo "vigia did not start"; cat "$WORK/log"; exit 1
}
populate() {
  curl -sf -XPOST "$BASE/api/auth/register" -d '{"username":"admin","password":"bench-password"}' >/dev/null
  TOKEN=$(curl -sf -XPOST "$BASE/api/auth/login" -d '{"username":"admin","password":"bench-password"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
  for i in $(seq "$CAMERAS"); do
    curl -sf -XPOST -H "Authorization: Bearer $TOKEN" "$BASE/api/cameras" \
      -d "{\"ip\":\"127.0.1.$i\",\"brand\":\"hikvision\",\"username\":\"admin\",\"password\":\"pw$i\"}" >/dev/null
  done
}
rps() { grep 'Requests/sec' <<<"$1" | awk '{print $2}'; }
lat() { grep -m1 'Latency' <<<"$1" | awk '{print $2}'; }
check() { ! grep -q 'Non-2xx' <<<"$1" || { echo "ERROR: non-2xx answers:"; echo "$1"; exit 1; }; }
cat > "$WORK/login.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"username":"admin","password":"bench-password"}'
wrk.headers["Content-Type"] = "application/json"
LUA

declare -A R
run_backend() { # $1 = name, rest = environment selecting the store
  local name=$1; shift
  local dir="$WORK/data-$name"; mkdir -p "$dir"
  # the recording index, seeded before start (redb allows one process at a time)
  local target="$dir"
  [ "$name" = postgres ] && target="postgres://postgres@127.0.0.1:$PGPORT/vigia"
  R[$name,seed]=$(./target/release/examples/seed_recordings "$target" "$RECORDINGS")
  start "$dir" warn "$@"
  R[$name,startup]=$STARTUP
  populate
  local out
  out=$(wrk -t2 -c64 -d"${SECS}s" -H "Authorization: Bearer $TOKEN" "$BASE/api/cameras/list"); check "$out"
  R[$name,list]=$(rps "$out"); R[$name,list_lat]=$(lat "$out")
  out=$(wrk -t2 -c64 -d"${SECS}s" "$BASE/health"); check "$out"
  R[$name,health]=$(rps "$out"); R[$name,health_lat]=$(lat "$out")
  out=$(wrk -t2 -c64 -d"${SECS}s" -H "Authorization: Bearer $TOKEN" "$BASE/api/nvr/recordings?limit=100"); check "$out"
  R[$name,recs]=$(rps "$out"); R[$name,recs_lat]=$(lat "$out")
  out=$(wrk -t2 -c64 -d"${SECS}s" -H "Authorization: Bearer $TOKEN" "$BASE/api/nvr/recordings?camera_ip=127.0.1.5&start_date=2026-01-01&limit=20&offset=200"); check "$out"
  R[$name,recs_f]=$(rps "$out"); R[$name,recs_f_lat]=$(lat "$out")
  out=$(wrk -t2 -c2 -d"${SECS}s" -s "$WORK/login.lua" "$BASE/api/auth/login"); check "$out"
  R[$name,login]=$(rps "$out"); R[$name,login_lat]=$(lat "$out")
  local times=()
  for _ in $(seq 31); do
    times+=("$(curl -s -o /dev/null -w '%{time_total}' -XPOST "$BASE/api/auth/login" -d '{"username":"admin","password":"bench-password"}')")
  done
  R[$name,login_p50]=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 16p)
  start "$dir" info "$@" # every request logged, the production default
  out=$(wrk -t2 -c64 -d"${SECS}s" -H "Authorization: Bearer $TOKEN" "$BASE/api/cameras/list"); check "$out"
  R[$name,list_logged]=$(rps "$out")
}

run_backend redb
run_backend postgres DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/vigia"

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
echo "vigia $(./target/release/vigia --version | cut -d' ' -f2), release build, $CAMERAS cameras, wrk and PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on the same host"
echo
row() { printf '| %-46s | %-22s | %-22s | %7s |\n' "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b/a}'; }
row "requests/s (avg latency)" "redb" "postgres" "pg/redb"
printf '|%s|%s|%s|%s|\n' "------------------------------------------------" "------------------------" "------------------------" "---------"
row "GET /api/cameras/list, JWT + store, c=64" "${R[redb,list]} (${R[redb,list_lat]})" "${R[postgres,list]} (${R[postgres,list_lat]})" "$(ratio "${R[redb,list]}" "${R[postgres,list]}")"
row "GET /api/cameras/list, every request logged" "${R[redb,list_logged]}" "${R[postgres,list_logged]}" "$(ratio "${R[redb,list_logged]}" "${R[postgres,list_logged]}")"
row "GET /health (store ping), c=64" "${R[redb,health]} (${R[redb,health_lat]})" "${R[postgres,health]} (${R[postgres,health_lat]})" "$(ratio "${R[redb,health]}" "${R[postgres,health]}")"
row "GET /api/nvr/recordings?limit=100 ($RECORDINGS rows)" "${R[redb,recs]} (${R[redb,recs_lat]})" "${R[postgres,recs]} (${R[postgres,recs_lat]})" "$(ratio "${R[redb,recs]}" "${R[postgres,recs]}")"
row "  same, one camera, a date, offset 200, limit 20" "${R[redb,recs_f]} (${R[redb,recs_f_lat]})" "${R[postgres,recs_f]} (${R[postgres,recs_f_lat]})" "$(ratio "${R[redb,recs_f]}" "${R[postgres,recs_f]}")"
row "start-up to /health with $RECORDINGS recordings (s)" "${R[redb,startup]}" "${R[postgres,startup]}" "$(ratio "${R[redb,startup]}" "${R[postgres,startup]}")"
row "POST /api/auth/login, argon2id, c=2" "${R[redb,login]} (${R[redb,login_lat]})" "${R[postgres,login]} (${R[postgres,login_lat]})" "$(ratio "${R[redb,login]}" "${R[postgres,login]}")"
row "POST /api/auth/login, sequential p50 (s)" "${R[redb,login_p50]}" "${R[postgres,login_p50]}" "$(ratio "${R[redb,login_p50]}" "${R[postgres,login_p50]}")"
echo
echo "seeding: redb ${R[redb,seed]}; postgres ${R[postgres,seed]}"
