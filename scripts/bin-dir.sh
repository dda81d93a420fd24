# Sourced: sets BIN_DIR, unless it is set, to the newest build folder that has both `edge` and
# `purge-api` (debug or release), or stops with what to do.
if [[ -z ${BIN_DIR:-} ]]; then
  BIN_DIR=$(ls -td target/debug target/release 2>/dev/null |
    while read -r d; do [[ -x $d/edge && -x $d/purge-api ]] && { echo "$d"; break; }; done)
  [[ -n $BIN_DIR ]] || { echo "$0: build edge and purge-api first (cargo build --bins), or set BIN_DIR" >&2; exit 1; }
fi
