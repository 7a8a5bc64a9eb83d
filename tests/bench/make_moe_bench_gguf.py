#!/usr/bin/env python3
"""A small mixture-of-experts GGUF benchmark model made by llama.cpp's own tools: Qwen3-MoE-shaped
(hidden 1024, 20 layers, 16 heads / 4 KV heads of 64, 32 experts of intermediate 512, 8 per token:
1.06B parameters, 0.30B active per token) with random weights from transformers and the Llama-2
SentencePiece tokenizer of ../shared/data/tokenizers/llama2-spm, converted by llama.cpp's
convert_hf_to_gguf.py (F16 and Q8_0) and quantized by llama.cpp's quantizer (llama_model_quantize
through llama-cpp-python) to Q4_0.

usage: .venv/bin/python tests/bench/make_moe_bench_gguf.py LLAMA_CPP_SOURCE_DIR [OUT_DIR]
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
from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

ROOT = Path(__file__).resolve().parents[2]
LLAMA_CPP = Path(sys.argv[1]).resolve()
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/layerwise-bench")
TOKENIZER = ROOT.parent / "shared" / "data" / "tokenizers" / "llama2-spm" / "tokenizer.model"
# The converter writes Qwen3-MoE's byte-level BPE vocabulary; this model carries a SentencePiece
# one, which the converter writes for llama models: its Qwen3-MoE class is pointed at that writer.
CONVERT = """
import sys
root = sys.argv.pop(1)
sys.path[0:0] = [root, root + "/gguf-py"]
import conversion.qwen as qwen
qwen.Qwen3MoeModel.set_vocab = lambda self: self._set_vocab_sentencepiece()
sys.argv[0] = root + "/convert_hf_to_gguf.py"
import convert_hf_to_gguf
convert_hf_to_gguf.main()
"""

hf = OUT / "qwen3moe-1b-shape"
if not (hf / "model.safetensors").exists() and not (hf / "model.safetensors.index.json").exists():
    config = Qwen3MoeConfig(hidden_size=1024, intermediate_size=3072, moe_intermediate_size=512, num_experts=32,
                            num_experts_per_tok=8, norm_topk_prob=True, num_hidden_layers=20, num_attention_heads=16,
                            num_key_value_heads=4, head_dim=64, vocab_size=32000, max_position_embeddings=4096,
                            tie_word_embeddings=False, rope_theta=1000000.0, rms_norm_eps=1e-6,
                            bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = Qwen3MoeForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(hf)
    shutil.copy(TOKENIZER, hf / "tokenizer.model")
    print(hf, sum(p.numel() for p in model.parameters()), flush=True)


def convert(outtype):
    out = OUT / f"qwen3moe-1b-{outtype}.gguf"
    if not out.exists():
        subprocess.run([sys.executable, "-c", CONVERT, str(LLAMA_CPP), str(hf), "--outtype", outtype,
                        "--outfile", str(out)], check=True)
    return out


f16 = convert("f16")
convert("q8_0")
out = OUT / "qwen3moe-1b-q4_0.gguf"
if not out.exists():
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(str(f16).encode(), str(out).encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize failed: {rc}")
    print(out, flush=True)
