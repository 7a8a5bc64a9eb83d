#!/usr/bin/env python3
"""Reference logits from HF transformers for the tiny checkpoints in tests/fixtures/checkpoints.

For each checkpoint, loaded in float32 (and the bfloat16 ones also in bfloat16): the logits of a
fixed prompt (prefill, every position) and of 20 greedy decode steps with the KV cache, as
transformers' generate computes them.

Output: tests/fixtures/logits/<checkpoint>-<dtype>.json
Run: .venv/bin/python tests/reference/make_logits.py [CHECKPOINT...]   (default: all)
"""
import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[2]
CKPTS = ROOT / "tests" / "fixtures" / "checkpoints"
OUT = ROOT / "tests" / "fixtures" / "logits"
OUT.mkdir(parents=True, exist_ok=True)
PROMPT = [3, 17, 42, 5, 9, 1, 33, 60, 2, 11]
STEPS = 20

torch.manual_seed(0)
for folder in sorted(CKPTS.iterdir()):
    if sys.argv[1:] and folder.name not in sys.argv[1:]:
        continue
    dtypes = [torch.float32] + ([torch.bfloat16] if folder.name in ("qwen3-bf16", "llama-bf16-sharded") else [])
    for dtype in dtypes:
        # Gemma 2's soft cap runs on the eager path only.
        attn = "eager" if folder.name.startswith("gemma2") else "sdpa"
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation=attn).eval()
        ids = torch.tensor([PROMPT])
        with torch.no_grad():
            prefill = model(ids).logits[0].float()
            out = model.generate(ids, max_new_tokens=STEPS, do_sample=False, output_logits=True,
                                 return_dict_in_generate=True, eos_token_id=None, pad_token_id=0, min_new_tokens=STEPS)
        steps = [l[0].float().tolist() for l in out.logits]
        tokens = out.sequences[0, len(PROMPT):].tolist()
        name = f"{folder.name}-{str(dtype).replace('torch.', '')}"
        (OUT / f"{name}.json").write_text(json.dumps({
            "checkpoint": folder.name, "dtype": str(dtype).replace("torch.", ""), "prompt": PROMPT,
            "prefill_logits": [[round(v, 7) for v in row] for row in prefill.tolist()],
            "step_logits": [[round(v, 7) for v in row] for row in steps],
            "tokens": tokens}) + "\n")
        print(name, tokens[:8])
