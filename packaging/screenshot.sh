#!/usr/bin/env bash
# Renders the main window under Xvfb to a PNG.
# usage: packaging/screenshot.sh OUT.png [MODEL]   (MODEL: folder, config.json or preset)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out=$(realpath -m "$1") model=${2:-Llama-3.1-8B}
LAYERWISE_SCREENSHOT="$out" LAYERWISE_MODEL="$model" QT_QPA_PLATFORM=xcb \
  xvfb-run -a -s "-screen 0 1280x800x24" "$root/build/app/layerwise"
echo "$out"
