#!/usr/bin/env bash
# A short fuzz run (a few seconds) from the fixture seeds; fails on any crash or sanitizer report.
# A fixed random seed keeps the suite repeatable; tests/fuzz/run.sh explores (random seeds, minutes).
# usage: smoke.sh FUZZER TARGET FIXTURES_DIR CORPUS_DIR [SECONDS]
set -euo pipefail
fuzzer=$1 target=$2 fixtures=$3 corpus=$4 seconds=${5:-8}
here="$(cd "$(dirname "$0")" && pwd)"
[ -d "$corpus" ] || "$here/seeds.sh" "$target" "$fixtures" "$corpus"
mkdir -p "$corpus.crashes"
exec "$fuzzer" -seed=1 -artifact_prefix="$corpus.crashes/" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "$corpus"
