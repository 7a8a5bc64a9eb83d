#!/usr/bin/env bash
# A longer fuzz session of every target (default 5 minutes each), from a configured build folder.
# usage: tests/fuzz/run.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build=${1:-$root/build} seconds=${2:-300}
targets="safetensors_header sharded_index config torch_pickle tokenizer_json chat_template gguf"
cmake --build "$build" --target $(for t in $targets; do printf 'fuzz_%s ' "$t"; done)
for t in $targets; do
  echo "== $t ($seconds s)"
  "$root/tests/fuzz/smoke.sh" "$build/tests/fuzz/fuzz_$t" "$t" "$root/tests/fixtures" "$build/tests/fuzz/corpus/$t" "$seconds" 2>&1 \
    | grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|SUMMARY|Done" || true
done
