#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets/) for SECONDS (default 20) with cargo-fuzz and
# libFuzzer, installing cargo-fuzz from crates.io when it is missing. No sanitizer: the
# crate forbids unsafe code, and a stable toolchain builds the coverage instrumentation.
# A crash leaves its input in fuzz/artifacts/TARGET/ and fails the run.
set -euo pipefail
seconds=${1:-20}
cd "$(dirname "$0")/../fuzz"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked --quiet
fi
# Outside the clone, so that later runs reuse the instrumented build.
target_dir=${FUZZ_TARGET_DIR:-/var/tmp/phr-gateway-fuzz-target}
for target in normalise request_head request_body; do
  echo "== fuzz $target (${seconds}s)"
  # grep hides libFuzzer's chatter; the exit status is cargo-fuzz's. (Read before anything
  # else runs: an `|| true` after the pipe would replace it with its own 0, and did.)
  set +e
  cargo fuzz run --sanitizer none --target-dir "$target_dir" "$target" -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>&1 |
    grep -E '^(Done|stat::number_of_executed_units)|panicked|ERROR|SUMMARY|artifact'
  fuzzed=${PIPESTATUS[0]}
  set -e
  if [ "$fuzzed" -ne 0 ]; then
    echo "fuzz: $target failed (exit $fuzzed); its input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
