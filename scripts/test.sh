#!/usr/bin/env bash
# The whole test suite: what the README's second command and CI run.
# Benches run once each as smoke tests first, so the suite's closing lines are the tests'.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --benches "$@"
# Doc tests are left out: the crate has none, and an empty run would close the output.
exec cargo test --lib --bins --tests "$@"
