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
  gguf)
    # the small GGUF fixtures (metadata of every type, every tensor type, tiny models)
    i=0; for f in "$fixtures"/gguf/*.gguf; do [ "$(stat -c %s "$f")" -le 65536 ] && cp "$f" "$out/gguf$i"; i=$((i+1)); done ;;
  sharded_index) cp "$fixtures"/checkpoints/*/model.safetensors.index.json "$out"/ 2>/dev/null || true
    i=0; for f in "$fixtures"/checkpoints/*/*.index.json; do cp "$f" "$out/index$i"; i=$((i+1)); done ;;
  config) i=0; for f in "$fixtures"/checkpoints/*/config.json "$fixtures"/../../resources/presets/*.json; do cp "$f" "$out/config$i"; i=$((i+1)); done ;;
  torch_pickle)
    i=0; for f in "$fixtures"/checkpoints/*/*.bin "$fixtures"/formats/*.bin; do
      python3 -c 'import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); n=[x for x in z.namelist() if x.endswith("/data.pkl")][0]; sys.stdout.buffer.write(z.read(n))' "$f" > "$out/pkl$i"
      i=$((i+1)); done ;;
  tokenizer_json)
    # small tokenizer.json files: the shared big ones would make every run slow
    i=0; for f in "$fixtures"/../../../shared/data/models/stories260K/tokenizer.json; do [ -f "$f" ] && cp "$f" "$out/tok$i"; i=$((i+1)); done
    printf '{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]}}' > "$out/tiny" ;;
  chat_template)
    i=0; for f in "$fixtures"/chat_templates/*.json; do
      python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
def walk(x):
    if isinstance(x,dict):
        for k,v in x.items():
            if k in ("template","source") and isinstance(v,str): yield v
            elif k == "templates" and isinstance(v,dict):
                for t in v.values():
                    if isinstance(t,str): yield t
                    else: yield from walk(t)
            else: yield from walk(v)
    elif isinstance(x,list):
        for v in x: yield from walk(v)
for n,t in enumerate(walk(d)):
    open(sys.argv[2]+"/tpl%d_%d"%(int(sys.argv[3]),n),"w").write(t)' "$f" "$out" "$i"; i=$((i+1)); done
    printf '{%% for m in messages %%}{{ m.role }}: {{ m.content | trim }}\n{%% endfor %%}' > "$out/basic" ;;
esac
# Inputs that once broke a parser stay in its corpus (tests/fuzz/regressions/TARGET/).
regressions="$(cd "$(dirname "$0")" && pwd)/regressions/$target"
if [ -d "$regressions" ]; then cp "$regressions"/* "$out/"; fi
