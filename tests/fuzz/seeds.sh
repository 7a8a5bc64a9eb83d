#!/usr/bin/env bash
# Seeds a corpus folder for one fuzz target from the committed fixtures.
# usage: seeds.sh TARGET FIXTURES_DIR OUT_DIR
set -euo pipefail
target=$1 fixtures=$2 out=$3
mkdir -p "$out"
case "$target" in
  safetensors_header)
    # the JSON header of each fixture safetensors file
    for f in "$fixtures"/checkpoints/*/*.safetensors "$fixtures"/formats/*.safetensors; do
      python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",d[:8])[0]; sys.stdout.buffer.write(d[8:8+n])' "$f" \
        > "$out/$(echo "$f" | md5sum | cut -c1-12)"
    done ;;
  sharded_index) cp "$fixtures"/checkpoints/*/model.safetensors.index.json "$out"/ 2>/dev/null || true
    i=0; for f in "$fixtures"/checkpoints/*/*.index.json; do cp "$f" "$out/index$i"; i=$((i+1)); done ;;
  config) i=0; for f in "$fixtures"/checkpoints/*/config.json "$fixtures"/../../resources/presets/*.json; do cp "$f" "$out/config$i"; i=$((i+1)); done ;;
  torch_pickle)
    i=0; for f in "$fixtures"/checkpoints/*/*.bin "$fixtures"/formats/*.bin; do
      python3 -c 'import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); n=[x for x in z.namelist() if x.endswith("/data.pkl")][0]; sys.stdout.buffer.write(z.read(n))' "$f" > "$out/pkl$i"
      i=$((i+1)); done ;;
esac
