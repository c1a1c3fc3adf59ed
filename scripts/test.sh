#!/usr/bin/env bash
# The whole test suite: what the README's second command and CI run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo test --all-targets "$@"
