#!/usr/bin/env bash
# Checks the Debian packages on this machine: builds them from BIN_DIR (default: the newest
# build), installs them, verifies their units with systemd-analyze and their configurations with
# --check, starts both programs from their installed units' command lines, as their package
# users, with the installed configurations (in a private network namespace when the machine
# allows one, so that nothing else here holds their ports), sends a purge through purge-api and
# waits until the edge has applied it, then purges both packages. It refuses to run where
# either package is already installed. Root, or sudo; deploy/check.sh runs it (after installing
# systemd-analyze).
set -euo pipefail
cd "$(dirname "$0")/../.."
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"

if [[ ${1:-} == --run ]]; then
  # Inside the namespace (as root): loopback up, start both, purge, stop.
  ip link set lo up 2>/dev/null || true
  logs=$2
  unit_cmd() { sed -n 's/^ExecStart=//p' "/lib/systemd/system/$1.service"; }
  setpriv --reuid=edge --regid=edge --init-groups \
    --inh-caps=+net_bind_service --ambient-caps=+net_bind_service \
    $(unit_cmd edge) >"$logs/edge.log" 2>&1 &
  edge=$!
  setpriv --reuid=purge-api --regid=purge-api --init-groups \
    $(unit_cmd purge-api) >"$logs/purge-api.log" 2>&1 &
  purge_api=$!
  trap 'kill $edge $purge_api 2>/dev/null; wait 2>/dev/null || true' EXIT
  up() {
    for _ in $(seq 300); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done
    echo "packages: $1 did not answer; logs:" >&2
    tail -n 20 "$logs"/*.log >&2
    return 1
  }
  up http://127.0.0.1:9080/healthz
  up http://127.0.0.1:7070/healthz
  # No origin listens here: the edge answers for itself, and says so.
  status=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: www.example.com' http://127.0.0.1/)
  [[ $status == 502 || $status == 504 ]] || { echo "packages: the edge answered $status" >&2; exit 1; }
  token=$(grep -v '^#' /etc/purge-api/tokens | head -n1)
  reply=$(curl -s -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    'http://127.0.0.1:7070/v1/purge?wait=20s' -d '{"urls": ["http://www.example.com/"]}')
  grep -q '"complete":true' <<<"$reply" || { echo "packages: purge not applied: $reply" >&2; exit 1; }
  echo "packages: both programs started as their users; a purge reached the edge"
  exit 0
fi

source scripts/bin-dir.sh
for p in edge purge-api; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    echo "deploy/debian/check.sh: package $p is installed on this machine; it would be replaced and purged: remove it first" >&2
    exit 1
  fi
done
work=$(mktemp -d)
chmod 0755 "$work"
cleanup() {
  $sudo dpkg --purge purge-api edge >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "packages: build from $BIN_DIR"
deploy/debian/build.sh "$BIN_DIR" "$work"
echo "packages: install"
# The edge first: purge-api's installation copies its admin token.
$sudo dpkg -i "$work"/edge_*.deb >/dev/null
$sudo dpkg -i "$work"/purge-api_*.deb >/dev/null
$sudo cmp -s /etc/edge/admin-token /etc/purge-api/edge-admin-token ||
  { echo "packages: purge-api does not hold the edge's admin token" >&2; exit 1; }
echo "packages: systemd-analyze verify"
out=$(systemd-analyze verify --man=no /lib/systemd/system/edge.service \
  /lib/systemd/system/purge-api.service 2>&1 || true)
if [[ -n $out ]]; then
  echo "$out" >&2
  exit 1
fi
echo "packages: --check the installed configurations"
/usr/bin/edge --config /etc/edge/edge.yaml --check
/usr/bin/purge-api --config /etc/purge-api/purge-api.yaml --check
echo "packages: start"
if command -v ip >/dev/null && $sudo unshare --net true 2>/dev/null; then
  $sudo unshare --net "$0" --run "$work"
else
  $sudo "$0" --run "$work"
fi
