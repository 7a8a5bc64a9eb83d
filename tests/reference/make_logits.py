#!/usr/bin/env python3
"""Reference logits from HF transformers for the tiny checkpoints in tests/fixtures/checkpoints.

For each checkpoint, loaded in float32 (and the bfloat16 ones also in bfloat16): the logits of a
fixed prompt (prefill, every position) and of 20 greedy decode steps with the KV cache, as
transformers' generate computes them.

Output: tests/fixtures/logits/<checkpoint>-<dtype>.json, and for the MXFP4 checkpoints of
tests/fixtures/mxfp4 (transformers needs a GPU to load those; see load_mxfp4)
tests/fixtures/mxfp4/<checkpoint>-float32.json
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

MXFP4 = ROOT / "tests" / "fixtures" / "mxfp4"


def load_mxfp4(folder):
    """A gpt-oss checkpoint with MXFP4 experts, in float32: every tensor as stored, the experts'
    `*_blocks` / `*_scales` decoded by transformers' own MXFP4 decoder (convert_moe_packed_tensors,
    what from_pretrained runs when it dequantizes), so the reference needs no GPU kernels."""
    from safetensors.torch import load_file
    from transformers import AutoConfig
    from transformers.integrations.mxfp4 import convert_moe_packed_tensors
    config = AutoConfig.from_pretrained(folder)
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    stored = load_file(folder / "model.safetensors")
    state = {}
    for name, t in stored.items():
        if name.endswith("_blocks"):
            base = name[: -len("_blocks")]
            state[base] = convert_moe_packed_tensors(t, stored[base + "_scales"], dtype=torch.float32)
        elif not name.endswith("_scales"):
            state[name] = t.float()
    model.load_state_dict(state, strict=True)
    return model.eval()


torch.manual_seed(0)
folders = sorted(CKPTS.iterdir()) + sorted(MXFP4.iterdir() if MXFP4.exists() else [])
for folder in folders:
    if folder.is_file() or (sys.argv[1:] and folder.name not in sys.argv[1:]):
        continue
    dtypes = [torch.float32] + ([torch.bfloat16] if folder.name in ("qwen3-bf16", "llama-bf16-sharded") else [])
    for dtype in dtypes:
        # Gemma 2's soft cap and gpt-oss's sinks run on the eager path only.
        attn = "eager" if folder.name.startswith("gemma2") or folder.name.startswith("gpt_oss") else "sdpa"
        if folder.parent == MXFP4:
            model = load_mxfp4(folder)
        else:
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation=attn).eval()
        ids = torch.tensor([PROMPT])
        with torch.no_grad():
            prefill = model(ids).logits[0].float()
            out = model.generate(ids, max_new_tokens=STEPS, do_sample=False, output_logits=True,
                                 return_dict_in_generate=True, eos_token_id=None, pad_token_id=0, min_new_tokens=STEPS)
        extra = {}
        if folder.parent == MXFP4:
            # A sample of the decoded expert weights, per expert as Layerwise names them (gate_up's
            # gate is its even columns, up its odd ones; transformers' [in, out] transposed).
            sample = {}
            for layer, e in ((0, 1), (1, 3)):
                experts = model.model.layers[layer].mlp.experts
                prefix = f"model.layers.{layer}.mlp.experts.{e}."
                sample[prefix + "gate_proj.weight"] = experts.gate_up_proj[e][:, 0::2].T[:2].tolist()
                sample[prefix + "up_proj.weight"] = experts.gate_up_proj[e][:, 1::2].T[:2].tolist()
                sample[prefix + "down_proj.weight"] = experts.down_proj[e].T[:2].tolist()
            extra["weights_sample"] = sample
        steps = [l[0].float().tolist() for l in out.logits]
        tokens = out.sequences[0, len(PROMPT):].tolist()
        name = f"{folder.name}-{str(dtype).replace('torch.', '')}"
        (MXFP4 if folder.parent == MXFP4 else OUT).joinpath(f"{name}.json").write_text(json.dumps({
            "checkpoint": folder.name, "dtype": str(dtype).replace("torch.", ""), "prompt": PROMPT,
            "prefill_logits": [[round(v, 7) for v in row] for row in prefill.tolist()],
            "step_logits": [[round(v, 7) for v in row] for row in steps],
            "tokens": tokens, **extra}) + "\n")
        print(name, tokens[:8])
