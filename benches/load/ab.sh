#!/usr/bin/env bash
# One-edge A/B: one run of one binary under one load, with the CPU it spent per request. Run two
# binaries interleaved (before, after, before, after, ...) and compare medians:
#
#   cargo build --release -p edge && cp target/release/edge /tmp/edge-after
#   for i in 1 2 3; do benches/load/ab.sh /tmp/edge-before miss; benches/load/ab.sh /tmp/edge-after miss; done
#
# Starts an nginx origin serving one file with `Cache-Control: public, max-age=3600`, the edge
# (memory tier 1 GiB over a 4 GiB disk tier, 2 workers as on this machine) and wrk -t2 -c64 for
# SECS seconds. Scenarios:
#   hit   the same object, primed first, from the memory tier
#   disk  the same object from the disk tier (the memory tier takes nothing)
#   miss  a new key on every request (`?m=<n>`)
# Prints one line: req/s, the edge's CPU µs per request (from /proc/<pid>/stat), its context
# switches per request and its peak RSS. Environment:
#   SECS=5       length of the load
#   SIZE=1024    bytes of the file
#   NODISK=1     no disk tier (memory only)
#   FLOOR=1      BIN is target/release/pingora-floor: its `proxy` mode (caching off) instead of an edge
#   SETTLE=15    after the load, wait this long and print the RSS per object held in memory
#   PERF=out.data  record the edge with `perf record --call-graph dwarf` during the load
set -euo pipefail
bin=${1:?usage: ab.sh BIN hit|disk|miss}
scenario=${2:?usage: ab.sh BIN hit|disk|miss}
secs=${SECS:-5}
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need nginx nginx
need wrk wrk
work=$(mktemp -d /var/tmp/edge-ab.XXXX)
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
head -c "${SIZE:-1024}" /dev/urandom >"$work/www/f/object"
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
  server { listen 127.0.0.1:$origin; root $work/www; add_header Cache-Control "public, max-age=3600"; }
}
EOF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)

port=$(free_port)
admin=$(free_port)
memobj=1MiB
[[ $scenario == disk ]] && memobj=64B
disk="disk: { path: $work/disk, max_size: 4GiB, max_object_size: 1GiB }"
[[ -n ${NODISK:-} ]] && disk=""
cat >"$work/edge.yaml" <<EOF
node: { id: ab }
listen: [{ addr: "127.0.0.1:$port" }]
admin: { addr: "127.0.0.1:$admin" }
cache:
  memory: { max_size: 1GiB, max_object_size: $memobj }
  $disk
origins:
  origin: { servers: ["127.0.0.1:$origin"] }
sites:
  - hosts: ["*"]
    origin: origin
EOF
url="http://127.0.0.1:$port/f/object"
if [[ -n ${FLOOR:-} ]]; then
  ORIGIN=127.0.0.1:$origin CANDIDATE_PORT=$port "$bin" proxy >"$work/edge.log" 2>&1 &
  ready="$url"
else
  "$bin" --config "$work/edge.yaml" >"$work/edge.log" 2>&1 &
  ready="http://127.0.0.1:$admin/healthz"
fi
edge=$!
pids+=($edge)
for _ in $(seq 100); do curl -sf -o /dev/null "$ready" && break; sleep 0.1; done

cat >"$work/miss.lua" <<'EOF'
-- Each thread gets its own `tid` (set from the main state), so no two threads ask for one key.
counter = 0
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function request()
  counter = counter + 1
  return wrk.format("GET", string.format("/f/object?m=%d-%d-%d", math.random(1e9), tid, counter))
end
EOF
case $scenario in
  hit | disk) for _ in 1 2 3; do curl -s -o /dev/null "$url"; done; args=("$url") ;;
  miss) args=(-s "$work/miss.lua" "$url") ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac

switches() { cat /proc/"$edge"/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s }'; }
cpu() { awk '{ print $14 + $15 }' /proc/"$edge"/stat; }
cs0=$(switches)
t0=$(cpu)
if [[ -n ${PERF:-} ]]; then
  perf record -F 700 --call-graph dwarf,16384 -p "$edge" -o "$PERF" -- sleep "$secs" >/dev/null 2>&1 &
  recorder=$!
fi
out=$(wrk -t2 -c64 -d"${secs}s" "${args[@]}")
[[ -n ${PERF:-} ]] && wait "$recorder"
t1=$(cpu)
cs1=$(switches)
requests=$(awk '/requests in/ { print $1 }' <<<"$out")
rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
hwm=$(awk '/VmHWM/ { print int($2 / 1024) }' /proc/"$edge"/status)
python3 -c "print(f'$(basename "$bin") $scenario req/s {float($rps):.0f} cpu_us_per_req {($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / $requests:.1f} switches_per_req {($cs1 - $cs0) / $requests:.2f} peak_rss_mb $hwm')"
if [[ -n ${SETTLE:-} && -z ${FLOOR:-} ]]; then
  sleep "$SETTLE"
  rss=$(awk '/VmRSS/ { print $2 * 1024 }' /proc/"$edge"/status)
  metrics=$(curl -s "http://127.0.0.1:$admin/metrics")
  objects=$(awk '/^edge_cache_tier_objects\{tier="memory"\}/ { print $2 }' <<<"$metrics")
  counted=$(awk '/^edge_cache_tier_bytes\{tier="memory"\}/ { print $2 }' <<<"$metrics")
  python3 -c "print(f'settled: rss {$rss / 2**20:.0f} MiB, {$objects:.0f} objects in memory, counted {$counted / $objects / 1000:.2f} KB each')"
fi
