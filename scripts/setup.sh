#!/usr/bin/env bash
# Installs what a fresh machine lacks to build phr-gateway: cmake (pingora-core builds zlib-ng
# with it). Uses apt-get when run as root; otherwise says exactly what to install.
set -euo pipefail
if command -v cmake >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing cmake (needed by pingora's zlib-ng build)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends cmake >/dev/null
else
  echo "setup: cmake is missing; install it first (Debian/Ubuntu: sudo apt-get install cmake)" >&2
  exit 1
fi
