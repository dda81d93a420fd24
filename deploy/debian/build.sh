#!/usr/bin/env bash
# Builds the Debian packages edge_<version>_<arch>.deb and purge-api_<version>_<arch>.deb from
# built binaries (dpkg-deb; no packaging tool to install). Each package holds its program in
# /usr/bin (debug sections stripped), its systemd unit, a starting configuration in /etc (a
# conffile: upgrades keep the operator's edits), the reference docs, and maintainer scripts that
# create its system user, state folders and tokens.
#
#   deploy/debian/build.sh [BIN_DIR] [OUT_DIR]
#
# BIN_DIR defaults to the newest build of both programs (build release binaries for packages
# you ship: cargo build --release --bins), OUT_DIR to target/debian.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN_DIR=${1:-${BIN_DIR:-}}
source scripts/bin-dir.sh
out=${2:-target/debian}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
mkdir -p "$out"

# The newest glibc symbol version a binary needs: the libc6 it depends on.
glibc() {
  objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1
}

package() {
  local name=$1 summary=$2 docs=$3
  local root
  root=$(mktemp -d)
  chmod 0755 "$root"
  install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/$name" \
    "$root/usr/share/doc/$name"
  objcopy --strip-debug "$BIN_DIR/$name" "$root/usr/bin/$name"
  chmod 0755 "$root/usr/bin/$name"
  sed 's#/usr/local/bin/#/usr/bin/#g' "deploy/systemd/$name.service" >"$root/lib/systemd/system/$name.service"
  install -m 0640 "deploy/debian/$name/$name.yaml" "$root/etc/$name/$name.yaml"
  echo "/etc/$name/$name.yaml" >"$root/DEBIAN/conffiles"
  for script in postinst prerm postrm; do
    install -m 0755 "deploy/debian/$name/$script" "$root/DEBIAN/$script"
  done
  for doc in $docs; do
    gzip -9n <"docs/$doc" >"$root/usr/share/doc/$name/$doc.gz"
  done
  cat >"$root/usr/share/doc/$name/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: edge CDN

Files: *
License: Apache-2.0
 On Debian systems the full text of the license is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
  cat >"$root/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: edge CDN developers <edge-cdn@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: libc6 (>= $(glibc "$root/usr/bin/$name")), libgcc-s1, passwd
Section: net
Priority: optional
Description: $summary
CONTROL
  cat "deploy/debian/$name/description" >>"$root/DEBIAN/control"
  dpkg-deb --root-owner-group -Zgzip --build "$root" "$out/${name}_${version}_${arch}.deb" >/dev/null
  rm -rf "$root"
  echo "$out/${name}_${version}_${arch}.deb"
}

package edge "caching reverse proxy for an edge tier (edge CDN node)" \
  "configuration.md caching.md purge.md operations.md"
package purge-api "purge service of the edge CDN: durable, ordered purges to every node" \
  "configuration.md purge.md operations.md"
