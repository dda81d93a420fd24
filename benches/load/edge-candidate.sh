#!/usr/bin/env bash
# The edge as a cdnbench candidate: a memory tier (EDGE_MEM, default 1GiB, objects up to
# EDGE_MEM_OBJECT, default 16MiB, so the 10 MiB object is held in memory as Varnish's heap and
# nginx's tmpfs hold it) over a disk tier (EDGE_DISK, default 4GiB), one catch-all site in front
# of cdnbench's origin ($ORIGIN), listening on $CANDIDATE_PORT; EDGE_MIN_USES (default 1) sets
# cache.disk.admission.min_uses. docs/benchmarks.md has the command.
set -eu
dir=${CANDIDATE_DIR:-$(mktemp -d)}
admin=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$dir/edge.yaml" <<YAML
node: { id: ${EDGE_ID:-bench} }
listen: [{ addr: "127.0.0.1:$CANDIDATE_PORT" }]
admin: { addr: "127.0.0.1:$admin" }
cache:
  memory: { max_size: ${EDGE_MEM:-1GiB}, max_object_size: ${EDGE_MEM_OBJECT:-16MiB} }
  disk: { path: $dir/disk, max_size: ${EDGE_DISK:-4GiB}, max_object_size: 1GiB, admission: { min_uses: ${EDGE_MIN_USES:-1} } }
origins:
  origin: { servers: ["$ORIGIN"] }
sites:
  - hosts: ["*"]
    origin: origin
YAML
bin=${EDGE_BIN:?set EDGE_BIN to the absolute path of target/release/edge}
exec "$bin" --config "$dir/edge.yaml"
