#!/usr/bin/env bash
# Bounded replay of slow and hostile clients against a release-built edge on loopback: an idle
# flood (ATTACK_IDLE, default 20000 connections), readers that stop reading a large disk object
# (ATTACK_READERS, 2000), and HTTP/2 streams with a zero window (h2load, from nghttp2-client).
# A count of 0 skips that attack. Each attack is held ATTACK_HOLD seconds (65: past the default
# send_timeout); ATTACK_LIMITS sets the edge's `limits` (flow YAML without braces, e.g.
# "send_timeout: 10s"). Prints a table of the edge's RSS, descriptors, open connections, bytes
# held for clients, /readyz and a normal request's latency during and after each attack.
# EDGE_BIN runs another edge binary (one without `limits` keys needs ATTACK_LIMITS empty).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
if ! command -v h2load >/dev/null; then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get install -y -qq nghttp2-client >/dev/null || echo "attack: no h2load; the HTTP/2 attack is skipped" >&2
fi
cargo build --release --locked -p edge -p edge-tests --bin edge --bin attack
# The attacker holds a descriptor per connection too.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
EDGE_BIN="${EDGE_BIN:-$PWD/target/release/edge}" exec target/release/attack
