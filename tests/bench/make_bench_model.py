#!/usr/bin/env python3
"""Realistic-size models for the CPU benchmarks, with random weights made by transformers, saved
as safetensors in float32 and bfloat16:
  qwen2-0.5b   the shape of Qwen2.5-0.5B: hidden 896, 24 layers, 14 heads / 2 KV heads,
               intermediate 4864, vocab 151936, tied embeddings;
  llama3.2-1b  the shape of Llama-3.2-1B: hidden 2048, 16 layers, 32 heads / 8 KV heads,
               intermediate 8192, vocab 128256, tied embeddings, llama3 RoPE scaling.

usage: .venv/bin/python tests/bench/make_bench_model.py [OUT_DIR] [--shape qwen2-0.5b|llama3.2-1b]
"""
import argparse
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("out", nargs="?", default="/tmp/layerwise-bench")
ap.add_argument("--shape", default="qwen2-0.5b", choices=["qwen2-0.5b", "llama3.2-1b"])
args = ap.parse_args()

if args.shape == "qwen2-0.5b":
    config = AutoConfig.for_model("qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                  num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                                  max_position_embeddings=32768, tie_word_embeddings=True, rope_theta=1000000.0)
else:
    config = AutoConfig.for_model("llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                                  num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
                                  max_position_embeddings=131072, tie_word_embeddings=True, rope_theta=500000.0,
                                  rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                                  rms_norm_eps=1e-5, bos_token_id=128000, eos_token_id=128001)
torch.manual_seed(0)
for dtype in (torch.float32, torch.bfloat16):
    folder = Path(args.out) / f"{args.shape}-{str(dtype).replace('torch.', '')}"
    if (folder / "model.safetensors").exists() or (folder / "model.safetensors.index.json").exists():
        continue
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(folder)
    print(folder, sum(p.numel() for p in model.parameters()), flush=True)
