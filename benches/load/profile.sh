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
# shellcheck source=benches/load/lib.sh
source "$(dirname "$0")/lib.sh"
need wrk wrk
need perf linux-perf
command -v inferno-flamegraph >/dev/null || cargo install inferno --quiet
seconds=${PROFILE_SECONDS:-8}
start_origin 1024

start_edge() { # name memory-max-object-size
  local port admin
  port=$(free_port)
  admin=$(free_port)
  edge_config "$work/$1.yaml" "profile-$1" "$port" "$admin" "$2" "$work/$1-disk"
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
    code=$(curl -sS -o /dev/null -w "%{http_code}" "$edge_url$origin_path")
    [[ $code == 200 ]] || { echo "priming got $code" >&2; exit 1; }
  done
}

miss_script "$work/miss.lua"

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
profile hit "$edge_pid" "$edge_url$origin_path"
profile miss "$edge_pid" "$edge_url" -s "$work/miss.lua"

start_edge disk 64B
prime
profile disk "$edge_pid" "$edge_url$origin_path"
echo "flamegraphs in $out"
