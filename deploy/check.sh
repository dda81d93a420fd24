#!/usr/bin/env bash
# Validates what deploy/ ships, with tools from the package registries (installed on first use
# into target/deploy-check): Kubernetes manifests against the API schemas (kubernetes-validate),
# the compose file against the Compose specification (check-jsonschema), Prometheus's
# configuration and alert rules (promtool, Debian's prometheus package), the systemd units
# (systemd-analyze verify), every sample configuration with `--check`, the Grafana dashboard's
# JSON, and the Debian packages (deploy/debian/check.sh: built, installed on this machine,
# started, purged). Run by scripts/test.sh after the binaries are built; run by hand, it uses
# the newest build of `edge` and `purge-api` (debug or release), or BIN_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bin-dir.sh
bin=$BIN_DIR
tools=target/deploy-check
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
apt_install() {
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
command -v promtool >/dev/null || apt_install prometheus
command -v systemd-analyze >/dev/null || apt_install systemd
if [[ ! -x $tools/venv/bin/kubernetes-validate || ! -x $tools/venv/bin/check-jsonschema ]]; then
  mkdir -p "$tools"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q kubernetes-validate==1.37.0 check-jsonschema==0.39.0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "deploy: Kubernetes manifests"
"$tools/venv/bin/kubernetes-validate" --strict -k 1.30.0 deploy/kubernetes/*.yaml

echo "deploy: compose file"
"$tools/venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose/compose.yaml

echo "deploy: Prometheus configuration and alert rules"
promtool check config deploy/prometheus/prometheus.yml
promtool check config deploy/compose/prometheus.yml --syntax-only
promtool check rules deploy/prometheus/alerts.yml

echo "deploy: systemd units"
mkdir -p "$work/units"
for unit in deploy/systemd/*.service; do
  # verify wants the programs the unit names to exist: point them at the ones just built.
  sed -e "s#/usr/local/bin/edge#$PWD/$bin/edge#g" -e "s#/usr/local/bin/purge-api#$PWD/$bin/purge-api#g" \
    "$unit" >"$work/units/$(basename "$unit")"
done
out=$(systemd-analyze verify --man=no "$work"/units/*.service 2>&1 || true)
# Users the units run as are created at install time, not on this machine.
problems=$(grep -v -E "Failed to resolve (user|group)|^$" <<<"$out" || true)
if [[ -n $problems ]]; then
  echo "$problems" >&2
  exit 1
fi

echo "deploy: sample configurations (--check)"
python3 - "$work" <<'PY'
import pathlib, re, sys
work = pathlib.Path(sys.argv[1])
# ConfigMaps carry configuration files: write each out to be checked like the others.
for manifest in pathlib.Path("deploy/kubernetes").glob("*.yaml"):
    for name, body in re.findall(r"\n  ([a-z-]+\.yaml): \|\n((?:    .*\n|\n)+)", manifest.read_text()):
        text = "\n".join(line[4:] for line in body.splitlines()).replace("__NODE_ID__", "edge-0")
        (work / f"k8s-{name}").write_text(text + "\n")
PY
shopt -s nullglob
for f in config/examples/*.yaml deploy/compose/*.yaml "$work"/k8s-*.yaml; do
  case $(basename "$f") in
    compose.yaml) continue ;;
    *purge-api*) prog=purge-api ;;
    *) prog=edge ;;
  esac
  "$bin/$prog" --config "$f" --check
done
[[ -f $work/k8s-edge.yaml && -f $work/k8s-purge-api.yaml ]] || { echo "ConfigMap configurations not found" >&2; exit 1; }

echo "deploy: Grafana dashboard"
python3 - <<'PY'
import json, pathlib, re
# Every family either binary registers, wherever in its sources.
metrics = set()
for src in [*pathlib.Path("edge/src").rglob("*.rs"), *pathlib.Path("purge-api/src").rglob("*.rs")]:
    metrics |= set(re.findall(r'"((?:edge|purge_api)_[a-z_]+)"', src.read_text()))
for path in pathlib.Path("deploy/grafana/dashboards").glob("*.json"):
    d = json.loads(path.read_text())
    exprs = [t["expr"] for p in d["panels"] for t in p.get("targets", [])]
    assert exprs, f"{path}: no queries"
    for e in exprs:
        for name in re.findall(r"\b((?:edge|purge_api)_[a-z_]+?)(?:_bucket|_count|_sum)?\b", e):
            assert name in metrics, f"{path}: {name} is not a metric the binaries export"
    print(f"{path}: ok ({len(exprs)} queries)")
PY

echo "deploy: Debian packages"
BIN_DIR=$bin deploy/debian/check.sh
echo "deploy: ok"
