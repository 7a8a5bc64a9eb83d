#!/usr/bin/env python3
"""A ~1B-parameter GGUF benchmark model made by llama.cpp's own tools: the TinyLlama-1.1B shape
(Llama, hidden 2048, 22 layers, 32 heads / 4 KV heads, intermediate 5632, vocabulary 32000, untied
head) with random weights from transformers, the Llama-2 SentencePiece tokenizer of
../shared/data/tokenizers/llama2-spm, converted by llama.cpp's convert_hf_to_gguf.py (F16 and
Q8_0) and quantized by llama.cpp's quantizer (llama_model_quantize through llama-cpp-python) to
Q4_0 and Q4_K_M.

usage: .venv/bin/python tests/bench/make_bench_gguf.py LLAMA_CPP_SOURCE_DIR [OUT_DIR]
       (LLAMA_CPP_SOURCE_DIR: vendor/llama.cpp of the llama-cpp-python sdist:
        pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36)
"""
import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

import llama_cpp
import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parents[2]
LLAMA_CPP = Path(sys.argv[1]).resolve()
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/layerwise-bench")
TOKENIZER = ROOT.parent / "shared" / "data" / "tokenizers" / "llama2-spm" / "tokenizer.model"

hf = OUT / "tinyllama-1.1b-shape"
if not (hf / "model.safetensors").exists() and not (hf / "model.safetensors.index.json").exists():
    config = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                         num_key_value_heads=4, vocab_size=32000, max_position_embeddings=2048,
                         tie_word_embeddings=False, rope_theta=10000.0, rms_norm_eps=1e-5,
                         bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(hf)
    shutil.copy(TOKENIZER, hf / "tokenizer.model")
    print(hf, sum(p.numel() for p in model.parameters()), flush=True)


def convert(outtype):
    out = OUT / f"tinyllama-1.1b-{outtype}.gguf"
    if not out.exists():
        subprocess.run([sys.executable, str(LLAMA_CPP / "convert_hf_to_gguf.py"), str(hf), "--outtype", outtype,
                        "--outfile", str(out)], check=True)
    return out


f16 = convert("f16")
convert("q8_0")
for name, ftype in (("q4_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0), ("q4_k_m", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M)):
    out = OUT / f"tinyllama-1.1b-{name}.gguf"
    if out.exists():
        continue
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(f16).encode(), str(out).encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize failed for {name}: {rc}")
    print(out, flush=True)
