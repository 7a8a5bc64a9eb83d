#!/usr/bin/env python3
"""A realistic-size model for the CPU benchmarks: a Qwen2-style config of about 0.5B
parameters (hidden 896, 24 layers, 14 heads / 2 KV heads, intermediate 4864, vocab 151936,
tied embeddings — the shape of Qwen2.5-0.5B) with random weights made by transformers,
saved as safetensors in float32 and bfloat16.

usage: .venv/bin/python tests/bench/make_bench_model.py OUT_DIR
"""
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/layerwise-bench")
config = AutoConfig.for_model("qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                              num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                              max_position_embeddings=32768, tie_word_embeddings=True, rope_theta=1000000.0)
torch.manual_seed(0)
for dtype in (torch.float32, torch.bfloat16):
    folder = out / f"qwen2-0.5b-{str(dtype).replace('torch.', '')}"
    if (folder / "model.safetensors").exists():
        continue
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.save_pretrained(folder)
    print(folder, sum(p.numel() for p in model.parameters()))
