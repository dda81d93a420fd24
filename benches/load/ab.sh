#!/usr/bin/env bash
# One-process A/B: one run of one binary under one load, with the CPU it spent per request. Run two
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
#   FLOOR=1      BIN is target/release/pingora-floor instead of an edge, in FLOOR_MODE (default
#                `proxy`, caching off; `cache`, Pingora's cache with its own in-memory storage;
#                `static`, a fixed answer of SIZE bytes from `request_filter`, no cache at all)
#   BIN `nginx`  nginx proxy_cache instead of an edge, configured as cdnbench configures it (2
#                workers, its store on tmpfs unless NGINX_CACHE_DIR names a folder, SENDFILE=on
#                or off); the figures are its workers'. nginx has no memory tier, so `hit` and
#                `disk` are the same load. SETTLE is ignored.
#   RULES=...    the edge's catch-all site's rules, YAML list items one per line, e.g.
#                '- match: { path_prefix: / }' and '  response_headers: { set: { A: b } }'
#   SETTLE=15    after the load, wait this long and print the RSS per object held in memory and
#                the objects made durable on disk
#   PERF=out.data  record what is measured with `perf record --call-graph dwarf` during the
#                last load, or during round PERF_ROUND
#   ROUNDS=1     loads run one after another against the same edge, a line each (misses take
#                new keys every round, so the tiers fill as in cdnbench's repeats)
set -euo pipefail
bin=${1:?usage: ab.sh BIN hit|disk|miss}
scenario=${2:?usage: ab.sh BIN hit|disk|miss}
secs=${SECS:-5}
# shellcheck source=benches/load/lib.sh
source "$(dirname "$0")/lib.sh"
need wrk wrk
start_origin "${SIZE:-1024}"

port=$(free_port)
admin=$(free_port)
memobj=1MiB
[[ $scenario == disk ]] && memobj=64B
disk=$work/disk
[[ -n ${NODISK:-} ]] && disk=""
edge_config "$work/edge.yaml" ab "$port" "$admin" "$memobj" "$disk"
url="http://127.0.0.1:$port$origin_path"
# What runs under the load: an edge, Pingora's floor or nginx.
mode=edge
[[ -n ${FLOOR:-} ]] && mode=floor
[[ $bin == nginx ]] && mode=nginx
if [[ $mode == nginx ]]; then
  store=${NGINX_CACHE_DIR:-/dev/shm/$(basename "$work")-nginx}
  mkdir -p "$store" "$work/proxy"
  [[ -z ${NGINX_CACHE_DIR:-} ]] && trap 'cleanup; rm -rf "$store"' EXIT
  # Its workers write the store: they run as root (as in cdnbench), not as nginx's default user.
  {
    echo "user root;"
    nginx_head "$work/proxy" 2
    cat <<EOF
  sendfile ${SENDFILE:-on}; tcp_nopush off; tcp_nodelay on;
  keepalive_timeout 120s;
  proxy_cache_path $store levels=1:2 keys_zone=edge:128m max_size=2g inactive=4h use_temp_path=off;
  upstream origin { server 127.0.0.1:$origin; keepalive 256; }
  server {
    listen 127.0.0.1:$port backlog=4096 reuseport;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache edge;
      proxy_cache_lock on;
    }
  }
}
EOF
  } >"$work/proxy/nginx.conf"
  nginx -c "$work/proxy/nginx.conf" -p "$work/proxy" >"$work/edge.log" 2>&1 &
  ready="$url"
elif [[ $mode == floor ]]; then
  ORIGIN=127.0.0.1:$origin CANDIDATE_PORT=$port FLOOR_BODY=${SIZE:-1024} "$bin" "${FLOOR_MODE:-proxy}" \
    >"$work/edge.log" 2>&1 &
  ready="$url"
else
  "$bin" --config "$work/edge.yaml" >"$work/edge.log" 2>&1 &
  ready="http://127.0.0.1:$admin/healthz"
fi
edge=$!
pids+=($edge)
for _ in $(seq 100); do curl -sf -o /dev/null "$ready" && break; sleep 0.1; done

# What is measured: the edge, or nginx's workers (its master only starts them).
measured=$edge
if [[ $mode == nginx ]]; then
  for _ in $(seq 100); do
    measured=$(pgrep -d ' ' -P "$edge" || true)
    [[ $(wc -w <<<"$measured") -ge 2 ]] && break
    sleep 0.1
  done
  [[ -n $measured ]] || { echo "nginx started no workers:" >&2; cat "$work/edge.log" >&2; exit 1; }
fi
switches() { for p in $measured; do cat /proc/"$p"/task/*/status; done | awk '/ctxt_switches/ { s += $2 } END { print s }'; }
cpu() { for p in $measured; do cat /proc/"$p"/stat; done | awk '{ s += $14 + $15 } END { print s }'; }
case $scenario in
  hit | disk) for _ in 1 2 3; do curl -s -o /dev/null "$url"; done; args=("$url") ;;
  miss) args=(-s "$work/miss.lua" "$url") ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
rounds=${ROUNDS:-1}
for round in $(seq "$rounds"); do
  # A tag of its own per round, so no round asks for a key an earlier one stored.
  miss_script "$work/miss.lua" "r$round-"
  recorder=""
  cs0=$(switches)
  t0=$(cpu)
  if [[ -n ${PERF:-} && $round == "${PERF_ROUND:-$rounds}" ]]; then
    perf record -F 700 --call-graph dwarf,16384 -p "${measured// /,}" -o "$PERF" -- sleep "$secs" >/dev/null 2>&1 &
    recorder=$!
  fi
  out=$(wrk -t2 -c64 -d"${secs}s" "${args[@]}")
  [[ -n $recorder ]] && wait "$recorder"
  t1=$(cpu)
  cs1=$(switches)
  requests=$(awk '/requests in/ { print $1 }' <<<"$out")
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  hwm=$(for p in $measured; do cat /proc/"$p"/status; done | awk '/VmHWM/ { s += $2 } END { print int(s / 1024) }')
  label=$(basename "$bin")
  [[ $mode == nginx ]] && label="nginx sendfile ${SENDFILE:-on}"
  ((rounds > 1)) && label="$label round $round"
  python3 -c "print(f'$label $scenario req/s {float($rps):.0f} cpu_us_per_req {($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / $requests:.1f} switches_per_req {($cs1 - $cs0) / $requests:.2f} peak_rss_mb $hwm')"
done
if [[ -n ${SETTLE:-} && $mode == edge ]]; then
  sleep "$SETTLE"
  rss=$(awk '/VmRSS/ { print $2 * 1024 }' /proc/"$edge"/status)
  metrics=$(curl -s "http://127.0.0.1:$admin/metrics")
  objects=$(awk '/^edge_cache_tier_objects\{tier="memory"\}/ { print $2 }' <<<"$metrics")
  counted=$(awk '/^edge_cache_tier_bytes\{tier="memory"\}/ { print $2 }' <<<"$metrics")
  on_disk=$(awk '/^edge_cache_tier_objects\{tier="disk"\}/ { print $2 }' <<<"$metrics")
  python3 -c "print(f'settled: rss {$rss / 2**20:.0f} MiB, {$objects:.0f} objects in memory, counted {$counted / $objects / 1000:.2f} KB each, ${on_disk:-0} on disk')"
fi
