#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build with the CUDA kernels, run the gpu-labelled suites
# (tst_gguf_cuda: the GGUF block kernels against gguf-py and the CPU; tst_kernels_cuda; tst_gpu)
# and measure prefill and decode tokens/s of a GGUF model on cuda:0 and on the CPU. A few
# minutes on a 16-core machine: only the targets needed, only this GPU's architecture.
#
#   tests/bench/gpu_gguf_check.sh [model.gguf]    (default: the default chat model, SmolLM2 Q4_1)
#
# Needs a CUDA LibTorch (the .venv's torch wheel built for CUDA), nvcc (CUDA_HOME, default
# /usr/local/cuda) and the project's usual build dependencies.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-gpu}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
MODEL=${1:-$(cat .venv/default_model.txt 2>/dev/null || true)}

.venv/bin/python -c 'import sys, torch; sys.exit(0 if torch.version.cuda else "the .venv torch wheel has no CUDA")'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLAYERWISE_CUDA=ON -DLAYERWISE_UI=OFF \
  -DLAYERWISE_FUZZ=OFF -DCMAKE_CUDA_COMPILER="$CUDA_HOME/bin/nvcc" -DCUDAToolkit_ROOT="$CUDA_HOME" \
  -DCMAKE_CUDA_ARCHITECTURES="${ARCH:-90}" -DTorch_DIR="$(cat .venv/torch_dir.txt)" | grep 'CUDA kernels: ON'
cmake --build "$BUILD" -j"$(nproc)" --target layerwise tst_gguf_cuda tst_gguf_cuda_decode tst_kernels_cuda tst_gpu

# The suites. A skip of a GPU check means the GPU was not seen: that fails too.
LOG="$BUILD/gpu_tests.log"
status=0
(cd "$BUILD" && ctest -R 'tst_gguf_cuda|tst_kernels_cuda|tst_gpu' --timeout 300 --output-on-failure -V) >"$LOG" 2>&1 || status=$?
grep -E ': (FAIL!|QINFO) |tests passed|tests failed' "$LOG" || true
if grep 'SKIP   :' "$LOG" | grep -v 'has the CUDA kernels\|default chat model is not installed'; then
  echo "GPU checks were skipped"
  status=1
fi
[ "$status" -eq 0 ] || { echo "FAILED: see $LOG"; exit 1; }

# Prefill and decode tokens/s of the same file on cuda:0 and on the CPU (medians of 3 runs).
if [ -f "$MODEL" ]; then
  for where in '{"": 0}' '{"": "cpu"}'; do
    echo "$where" >"$BUILD/map.json"
    "$BUILD/app/layerwise" bench model "$MODEL" --device-map "$BUILD/map.json" --prompt-tokens 64 \
      --new-tokens 64 --repeats 3 | .venv/bin/python -c 'import json, sys; j = json.load(sys.stdin)
print(json.dumps({k: j[k] for k in ("device_map", "weights_bytes", "load_s", "ttft_s", "prefill_tokens_per_s", "decode_tokens_per_s")}))'
  done
else
  echo "no model for the speed measurement: give a .gguf path"
fi
