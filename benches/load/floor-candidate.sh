#!/usr/bin/env bash
# Pingora's own floor as a cdnbench candidate (benches/src/bin/pingora_floor.rs): FLOOR_MODE=proxy
# is a Pingora proxy with caching off, FLOOR_MODE=cache the same proxy with Pingora's cache on (its
# own in-memory storage and cache lock), FLOOR_MODE=static answers from request_filter with 1 KiB
# (FLOOR_BODY=102400 for 100 KiB).
#   cargo build --release -p edge-benches --bin pingora-floor
#   CANDIDATE_NAME=pingora-static CANDIDATE_PORT=19050 FLOOR_MODE=static \
#     FLOOR_BIN=$PWD/target/release/pingora-floor \
#     CANDIDATE_CMD="exec $PWD/benches/load/floor-candidate.sh" \
#     python3 "$CDNBENCH" --peers nginx --scenarios hot1k
set -eu
bin=${FLOOR_BIN:?set FLOOR_BIN to the absolute path of target/release/pingora-floor}
exec "$bin" "${FLOOR_MODE:-proxy}"
