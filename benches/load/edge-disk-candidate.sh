#!/usr/bin/env bash
# The edge as a cdnbench candidate that serves from its disk tier only: the memory tier takes no
# object (max_object_size 64B), so every hit reads, checks and streams a body file. Compare with
# nginx on a disk directory:
#   cargo build --release -p edge
#   CANDIDATE_NAME=edge-disk CANDIDATE_PORT=19050 EDGE_BIN=$PWD/target/release/edge \
#     CANDIDATE_CMD="exec $PWD/benches/load/edge-disk-candidate.sh" \
#     python3 "$CDNBENCH" --peers nginx --nginx-cache-dir /var/tmp/cdnbench-nginx
set -eu
dir=${CANDIDATE_DIR:-$(mktemp -d)}
admin=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/edge.yaml" <<YAML
node: { id: bench-disk }
listen: [{ addr: "127.0.0.1:$CANDIDATE_PORT" }]
admin: { addr: "127.0.0.1:$admin" }
cache:
  memory: { max_size: 64MiB, max_object_size: 64B }
  disk: { path: $dir/disk, max_size: ${EDGE_DISK:-4GiB}, max_object_size: 1GiB }
origins:
  origin: { servers: ["$ORIGIN"] }
sites:
  - hosts: ["*"]
    origin: origin
YAML
bin=${EDGE_BIN:?set EDGE_BIN to the absolute path of target/release/edge}
exec "$bin" --config "$dir/edge.yaml"
