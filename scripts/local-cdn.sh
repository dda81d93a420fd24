#!/usr/bin/env bash
# Starts a local CDN: the sample origin on 127.0.0.1:8000 and an edge node on 127.0.0.1:8080
# (admin on 127.0.0.1:9080), from config/examples/edge-local.yaml. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p edge -p edge-tests --bin edge --bin sample-origin
bin=target/release
logs=$(mktemp -d)
"$bin/sample-origin" 127.0.0.1:8000 >"$logs/origin.log" 2>&1 &
origin=$!
"$bin/edge" --config config/examples/edge-local.yaml >"$logs/edge.log" 2>&1 &
edge=$!
trap 'kill $edge $origin 2>/dev/null; wait 2>/dev/null; echo; echo "stopped (logs in $logs)"' EXIT
for _ in $(seq 100); do
  if curl -fs http://127.0.0.1:9080/healthz >/dev/null 2>&1; then break; fi
  kill -0 $edge 2>/dev/null || { cat "$logs/edge.log"; exit 1; }
  sleep 0.1
done
cat <<MSG

Local CDN running (logs in $logs):
  origin  http://127.0.0.1:8000
  edge    http://127.0.0.1:8080      admin http://127.0.0.1:9080

Try:
  curl -si http://127.0.0.1:8080/assets/app.css | grep -i cache-status   # fwd=miss; stored, then hit
  (stop and start this script again: the same request is a hit with detail=disk)
  curl -si http://127.0.0.1:8080/api/time       | grep -i cache-status   # fwd=bypass (rule)
  curl -si http://127.0.0.1:8080/private        | grep -i cache-status   # never stored
  curl -si -H 'Range: bytes=0-3' http://127.0.0.1:8080/assets/app.css
  curl -s  http://127.0.0.1:9080/metrics | grep ^edge_

Ctrl-C to stop.
MSG
wait $edge
