#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy with -D warnings, and all tests (unit tests and the
# integration tests that start real edge processes and a real origin on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The integration tests start the real `edge` binary: build it (cargo test alone builds only the
# test harness of a binary), then run everything.
cargo build --workspace --bins --locked
cargo test --workspace --locked
