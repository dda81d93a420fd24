#!/usr/bin/env bash
# Bounded soak: mixed hits, misses, large objects and purges against two release-built edges and
# purge-api for SOAK_SECONDS (default 300) over SOAK_CONCURRENCY connections (default 64). Prints
# the figures; exits 1 on any failed request, growth of RSS or descriptors, or a tier over bounds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
cargo build --release --locked -p edge -p purge-api -p edge-tests --bin edge --bin purge-api --bin soak
# The soak uses many connections; make sure the limit is not what it measures.
ulimit -n 65536 2>/dev/null || true
EDGE_BIN="$PWD/target/release/edge" exec target/release/soak
