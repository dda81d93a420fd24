#!/usr/bin/env bash
# Starts a local CDN: the sample origin on 127.0.0.1:8000, two edge nodes on 127.0.0.1:8080 and
# :8081 (admin on :9080 and :9081) and the purge API on 127.0.0.1:7070, from the files in
# config/examples/. Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p edge -p purge-api -p edge-tests \
  --bin edge --bin purge-api --bin sample-origin
bin=target/release
# Everything the local CDN keeps (disk tiers, the purge log, logs) stays in this checkout.
logs=target/local-cdn/logs
mkdir -p "$logs"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; echo; echo "stopped (logs in $logs)"' EXIT
"$bin/sample-origin" 127.0.0.1:8000 >"$logs/origin.log" 2>&1 & pids+=($!)
"$bin/edge" --config config/examples/edge-local.yaml >"$logs/edge-1.log" 2>&1 & pids+=($!)
"$bin/edge" --config config/examples/edge-local-2.yaml >"$logs/edge-2.log" 2>&1 & pids+=($!)
"$bin/purge-api" --config config/examples/purge-api-local.yaml >"$logs/purge-api.log" 2>&1 & pids+=($!)
for url in http://127.0.0.1:9080/healthz http://127.0.0.1:9081/healthz http://127.0.0.1:7070/healthz; do
  for _ in $(seq 100); do
    if curl -fs "$url" >/dev/null 2>&1; then break; fi
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { tail -n 20 "$logs"/*.log; exit 1; }; done
    sleep 0.1
  done
done
cat <<MSG

Local CDN running (logs in $logs):
  origin     http://127.0.0.1:8000
  edges      http://127.0.0.1:8080  http://127.0.0.1:8081   admin :9080 :9081 (token: local-admin-token)
  purge API  http://127.0.0.1:7070                           (token: local-purge-token)

Try:
  curl -si http://127.0.0.1:8080/assets/app.css | grep -i cache-status   # fwd=miss; stored, then hit
  curl -si http://127.0.0.1:8081/assets/app.css | grep -i cache-status   # each edge has its own cache
  curl -si http://127.0.0.1:8080/api/time       | grep -i cache-status   # fwd=bypass (rule)
  curl -s -X POST -H 'Authorization: Bearer local-purge-token' \\
       'http://127.0.0.1:7070/v1/purge?wait=5s' -d '{"tags": ["css"]}'  # both edges, at once
  $bin/purge-api purge --endpoint http://127.0.0.1:7070 --token local-purge-token --tag assets --wait
  curl -s -H 'Authorization: Bearer local-purge-token' http://127.0.0.1:7070/v1/nodes
  curl -s  http://127.0.0.1:9080/metrics | grep ^edge_purge

Ctrl-C to stop.
MSG
wait "${pids[1]}"
