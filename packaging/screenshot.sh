#!/usr/bin/env bash
# Renders the main window under Xvfb to a PNG.
# usage: packaging/screenshot.sh OUT.png [MODEL] [GPUS]   (MODEL: folder, config.json or preset;
#        GPUS: hypothetical GPU profiles, e.g. RTX-4090,RTX-4090)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out=$(realpath -m "$1") model=${2:-Llama-3.1-8B} gpus=${3:-}
LAYERWISE_SCREENSHOT="$out" LAYERWISE_MODEL="$model" LAYERWISE_GPUS="$gpus" QT_QPA_PLATFORM=xcb \
  xvfb-run -a -s "-screen 0 1280x800x24" "$root/build/app/layerwise"
echo "$out"
