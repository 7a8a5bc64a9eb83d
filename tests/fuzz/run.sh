#!/usr/bin/env bash
# Longer fuzz sessions from a configured build folder: every target, or those named, for SECONDS
# each (default 300) or until RUNS executions when RUNS is set, with random seeds, growing the
# corpus in BUILD/tests/fuzz/corpus/TARGET (seeded from the fixtures and tests/fuzz/regressions/
# TARGET the first time). Crashes land in CORPUS.crashes/: once fixed, copy each input into
# tests/fuzz/regressions/TARGET/ so that every later run starts from it.
# usage: [RUNS=N] tests/fuzz/run.sh [BUILD_DIR] [SECONDS] [TARGET...]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build=${1:-$root/build} seconds=${2:-300}
shift $(( $# > 2 ? 2 : $# ))
targets=${*:-safetensors_header sharded_index config torch_pickle tokenizer_json chat_template gguf}
cmake --build "$build" --target $(for t in $targets; do printf 'fuzz_%s ' "$t"; done)
for t in $targets; do
  corpus="$build/tests/fuzz/corpus/$t"
  [ -d "$corpus" ] || "$root/tests/fuzz/seeds.sh" "$t" "$root/tests/fixtures" "$corpus"
  mkdir -p "$corpus.crashes"
  echo "== $t (${RUNS:+$RUNS runs or }$seconds s)"
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" ${RUNS:+-runs=$RUNS} -max_len=65536 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$corpus.crashes/" "$corpus" 2>&1 \
    | grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|ERROR|SUMMARY|Done" || true
done
