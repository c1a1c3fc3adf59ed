#!/usr/bin/env bash
# Installs what a fresh machine lacks: cmake to build phr-gateway (pingora-core builds zlib-ng
# with it), and promtool for the test suite's check of the shipped alert rules (Debian's
# `prometheus` package; the tests say "skipped" without it). Uses apt-get when run as root;
# otherwise says exactly what to install.
set -euo pipefail
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing ${missing[*]} (cmake builds pingora's zlib-ng; prometheus provides promtool for the alert-rule tests)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
elif [[ " ${missing[*]} " == *" cmake "* ]]; then
  echo "setup: cmake is missing; install it first (Debian/Ubuntu: sudo apt-get install cmake)" >&2
  exit 1
else
  echo "setup: promtool is missing; the alert-rule tests will be skipped (Debian/Ubuntu: sudo apt-get install prometheus)" >&2
fi
