#!/usr/bin/env bash
# Installs what the build needs beyond the Rust toolchain: cmake and a C/C++ compiler for
# Pingora's zlib-ng, and curl (the quick start polls its nodes with it). With `--tests`, also
# what the tests use as real clients and tools: openssl (test certificates and TLS clients),
# gzip and nghttp (an HTTP/2 client whose windows can be shut), and the PostgreSQL server that
# the replicated purge-api tests start (Debian's postgresql), and ip (the package check brings up
# loopback in its own network namespace). Debian/Ubuntu (apt-get); run as
# root or with sudo available.
set -euo pipefail
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v cc >/dev/null || missing+=(gcc)
command -v c++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
command -v curl >/dev/null || missing+=(curl)
if [[ ${1:-} == --tests ]]; then
  command -v openssl >/dev/null || missing+=(openssl)
  command -v gzip >/dev/null || missing+=(gzip)
  command -v nghttp >/dev/null || missing+=(nghttp2-client)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  command -v ip >/dev/null || missing+=(iproute2)
fi
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
