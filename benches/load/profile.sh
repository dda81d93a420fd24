#!/usr/bin/env bash
# Profiles the edge's hit path and miss path with `perf` and draws flamegraphs.
#
#   cargo build --release -p edge
#   benches/load/profile.sh [out-dir]       # default: benches/profiles
#
# Starts an nginx origin serving a 1 KiB file with `Cache-Control: public, max-age=3600`, one
# edge (release build, memory over disk, the cdnbench candidate's settings) and wrk (-t2 -c64)
# against it, and records the edge with `perf record --call-graph dwarf` while wrk runs:
#   hit   the same 1 KiB object, primed first
#   miss  a new key on every request (`?m=<n>`)
#   disk  1 KiB hits from the disk tier (memory tier takes nothing)
# Writes <out>/<scenario>.svg (inferno), <out>/<scenario>.folded (collapsed stacks) and prints
# wrk's figures. Needs nginx, wrk, perf and inferno (`cargo install inferno`); apt-get installs
# the first three on Debian if they are missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/benches/profiles}
mkdir -p "$out"
bin=${EDGE_BIN:-$root/target/release/edge}
[[ -x $bin ]] || { echo "no $bin: cargo build --release -p edge first" >&2; exit 1; }
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need nginx nginx
need wrk wrk
need perf linux-perf
command -v inferno-flamegraph >/dev/null || cargo install inferno --quiet
seconds=${PROFILE_SECONDS:-8}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

origin=$(free_port)
mkdir -p "$work/www/f" "$work/nginx"
head -c 1024 /dev/urandom >"$work/www/f/1k.bin"
# nginx workers run as an unprivileged user when started as root.
chmod -R a+rX "$work"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server {
    listen 127.0.0.1:$origin;
    root $work/www;
    add_header Cache-Control "public, max-age=3600";
  }
}
EOF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)

start_edge() { # name memory-max-object-size
  local port admin
  port=$(free_port)
  admin=$(free_port)
  cat >"$work/$1.yaml" <<EOF
node: { id: profile-$1 }
listen: [{ addr: "127.0.0.1:$port" }]
admin: { addr: "127.0.0.1:$admin" }
cache:
  memory: { max_size: 1GiB, max_object_size: $2 }
  disk: { path: $work/$1-disk, max_size: 4GiB, max_object_size: 1GiB }
origins:
  origin: { servers: ["127.0.0.1:$origin"] }
sites:
  - hosts: ["*"]
    origin: origin
EOF
  "$bin" --config "$work/$1.yaml" >"$work/$1.log" 2>&1 &
  edge_pid=$!
  pids+=($edge_pid)
  edge_url=http://127.0.0.1:$port
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && return 0
    sleep 0.05
  done
  echo "edge $1 did not become ready" >&2
  cat "$work/$1.log" >&2
  exit 1
}

prime() {
  local code
  for _ in 1 2; do
    code=$(curl -sS -o /dev/null -w "%{http_code}" "$edge_url/f/1k.bin")
    [[ $code == 200 ]] || { echo "priming got $code" >&2; exit 1; }
  done
}

cat >"$work/miss.lua" <<'EOF'
-- Each wrk thread has its own Lua state with the same random sequence: a table's address
-- tells the threads apart, so no two requests share a key.
local thread = tostring({}):match("0x(%x+)") or tostring(os.clock())
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/f/1k.bin?m=" .. thread .. "-" .. tostring(n))
end
EOF

profile() { # scenario edge-pid url [wrk args...]
  local name=$1 pid=$2 url=$3
  shift 3
  wrk -t2 -c64 -d"$((seconds + 2))"s "$@" "$url" >"$work/$name.wrk" &
  local wrk_pid=$!
  sleep 1
  perf record -q -F 499 --call-graph dwarf,16384 -p "$pid" -o "$work/$name.data" -- sleep "$seconds" 2>/dev/null
  wait "$wrk_pid"
  perf script -i "$work/$name.data" 2>/dev/null | inferno-collapse-perf >"$out/$name.folded"
  inferno-flamegraph --title "edge: $name" <"$out/$name.folded" >"$out/$name.svg"
  echo "== $name: $(grep -E 'Requests/sec|Transfer/sec' "$work/$name.wrk" | tr -s ' ' | tr '\n' ' ')"
}

start_edge mem 1MiB
prime
profile hit "$edge_pid" "$edge_url/f/1k.bin"
profile miss "$edge_pid" "$edge_url" -s "$work/miss.lua"

start_edge disk 64B
prime
profile disk "$edge_pid" "$edge_url/f/1k.bin"
echo "flamegraphs in $out"
