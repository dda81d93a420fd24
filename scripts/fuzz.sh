#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS each (default 60), starting from the example
# configurations and the corpus kept in fuzz/corpus. Installs the nightly toolchain and
# cargo-fuzz when missing. Exits non-zero, with the crashing input under fuzz/artifacts, if a
# target fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
seconds=${FUZZ_SECONDS:-60}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=(config rules cache_control surrogate_key purge edge_logic)
mkdir -p fuzz/corpus/config
cp config/examples/*.yaml fuzz/corpus/config/
cargo +nightly fuzz build -O
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  status=0
  cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" -max_len=4096 >"$log" 2>&1 || status=$?
  runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log"
    echo "fuzz $t: FAILED after ${runs:-0} runs (the input is under fuzz/artifacts/$t)"
    exit 1
  fi
  echo "fuzz $t: ${runs:-0} runs in ${seconds}s, no failure"
done
