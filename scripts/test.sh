#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy with -D warnings, all tests (unit tests and the
# integration tests that start real edge processes, a real origin and a real PostgreSQL on
# loopback), and the validation of deploy/ (manifests, compose, Prometheus, systemd, dashboard).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The integration tests start the real `edge` binary: build it (cargo test alone builds only the
# test harness of a binary), then run everything.
cargo build --workspace --bins --locked
BIN_DIR=target/debug deploy/check.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
# cargo's last line is a doc-test run that is often empty; close with the total of every runner.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit $status
