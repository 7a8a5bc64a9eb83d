#!/usr/bin/env bash
# Renders the main window under Xvfb to a PNG.
# usage: packaging/screenshot.sh OUT.png [MODEL] [GPUS] [CHAT_PROMPT]
#        MODEL: folder, config.json or preset; GPUS: hypothetical GPU profiles, e.g. RTX-4090,RTX-4090;
#        CHAT_PROMPT: load MODEL (a folder with weights), send this prompt greedily and show the
#        Chat tab once the answer is complete (e.g. ../shared/data/models/stories260K "" "Zoo");
#        LAYERWISE_SCREENSHOT_VIEW=plan shows the Plan tab (the loaded layers' states) instead;
#        LAYERWISE_SCREENSHOT_WIZARD=DIR walks the quantization wizard through int8 (or
#        LAYERWISE_SCREENSHOT_WIZARD_METHOD, e.g. gptq) on MODEL (a folder
#        with weights; the copy goes to a temporary folder), saves DIR/wizard-<n>-<page>.png, and OUT.png
#        shows the quantized model loaded (LAYERWISE_SCREENSHOT_EVAL_TEXT: the evaluation text file).
#        LAYERWISE_SCREENSHOT_SIZE=WxH: the window size (default: as the settings restore it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out=$(realpath -m "$1") model=${2:-Llama-3.1-8B} gpus=${3:-} prompt=${4:-}
# A throw-away settings and data folder, so the picture does not depend on earlier runs.
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
XDG_CONFIG_HOME="$home/config" XDG_DATA_HOME="$home/data" XDG_CACHE_HOME="$home/cache" \
LAYERWISE_SCREENSHOT="$out" LAYERWISE_SCREENSHOT_CHAT="$prompt" LAYERWISE_SCREENSHOT_VIEW="${LAYERWISE_SCREENSHOT_VIEW:-}" \
LAYERWISE_SCREENSHOT_WIZARD="${LAYERWISE_SCREENSHOT_WIZARD:+$(realpath -m "${LAYERWISE_SCREENSHOT_WIZARD}")}" \
LAYERWISE_SCREENSHOT_EVAL_TEXT="${LAYERWISE_SCREENSHOT_EVAL_TEXT:-}" LAYERWISE_SCREENSHOT_SIZE="${LAYERWISE_SCREENSHOT_SIZE:-}" LAYERWISE_MODEL="$model" LAYERWISE_GPUS="$gpus" \
  QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1400x900x24" "$root/build/app/layerwise"
echo "$out"
