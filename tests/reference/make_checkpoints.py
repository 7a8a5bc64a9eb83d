#!/usr/bin/env python3
"""Creates tiny random-weight checkpoints of every supported architecture with HF
transformers and records what transformers says about them, plus the same facts for
real-size configs (built on the meta device, no weights).

Outputs (committed as fixtures, so CI needs none of these packages):
  tests/fixtures/checkpoints/<name>/   config.json + weights (single, sharded, .bin)
  tests/fixtures/checkpoints/<name>/reference.json   transformers' facts about the model
  tests/fixtures/presets_reference.json              the same facts for resources/presets
  tests/fixtures/mxfp4/gpt_oss-mxfp4/                the gpt_oss checkpoint with MXFP4 experts

Run: .venv/bin/python tests/reference/make_checkpoints.py [checkpoints|presets|moe|mxfp4|FIXTURE...]
"""
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
import accelerate
from accelerate.utils import compute_module_sizes
from transformers import AutoConfig, AutoModelForCausalLM

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "checkpoints"

TINY = {
    "llama": dict(model_type="llama", hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=96, max_position_embeddings=64,
                  tie_word_embeddings=False),
    "llama31": dict(model_type="llama", hidden_size=16, intermediate_size=40, num_hidden_layers=3,
                    num_attention_heads=2, num_key_value_heads=1, vocab_size=80, max_position_embeddings=128,
                    tie_word_embeddings=True, rope_theta=500000.0,
                    rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
    "mistral": dict(model_type="mistral", hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=1, vocab_size=72, max_position_embeddings=64,
                    sliding_window=32),
    # The window bites: 6 positions while the prompt and its decode steps reach 30.
    "mistralwindow": dict(model_type="mistral", hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=1, vocab_size=72, max_position_embeddings=64,
                          sliding_window=6, initializer_range=0.2),
    "qwen2": dict(model_type="qwen2", hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=96, max_position_embeddings=64,
                  tie_word_embeddings=True),
    "qwen2yarn": dict(model_type="qwen2", hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, vocab_size=96, max_position_embeddings=64,
                      tie_word_embeddings=True,
                      rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}),
    # max_position_embeddings 16: the fixed prompt and its decode steps outgrow it.
    "llamadynamic": dict(model_type="llama", hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, vocab_size=96, max_position_embeddings=16,
                         tie_word_embeddings=False, rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
    "llamalongrope": dict(model_type="llama", hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, vocab_size=96, max_position_embeddings=64,
                          tie_word_embeddings=False,
                          rope_scaling={"rope_type": "longrope", "original_max_position_embeddings": 16,
                                        "short_factor": [1.0, 1.1, 1.3, 1.6], "long_factor": [1.0, 2.5, 6.0, 11.0]}),
    "qwen3": dict(model_type="qwen3", hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8, vocab_size=96,
                  max_position_embeddings=64, tie_word_embeddings=False),
    # Phi-4-mini's shape in small: three quarters of each head rotated, tied embeddings.
    "phi3": dict(model_type="phi3", hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=96, max_position_embeddings=64,
                 partial_rotary_factor=0.75, tie_word_embeddings=True, pad_token_id=0, bos_token_id=1,
                 eos_token_id=2),
    # Phi-3-mini's sliding window in small: 6 positions, outgrown by the prompt and decode steps.
    "phi3window": dict(model_type="phi3", hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, vocab_size=96, max_position_embeddings=64,
                       partial_rotary_factor=0.75, tie_word_embeddings=True, sliding_window=6, initializer_range=0.2,
                       pad_token_id=0, bos_token_id=1, eos_token_id=2),
    # Gemma 2 in small: layer 0 attends over a 6-token window (the prompt and decode steps outgrow
    # it); weights and caps chosen so that both soft caps bite.
    "gemma2": dict(model_type="gemma2", hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8,
                   vocab_size=96, max_position_embeddings=64, sliding_window=6, initializer_range=0.2,
                   attn_logit_softcapping=1.5, final_logit_softcapping=2.0, pad_token_id=0, bos_token_id=1,
                   eos_token_id=2),
    # Mixtures of experts, made with transformers 4.x (see MOE_CASES); routing weights large
    # enough that the tokens spread over the experts.
    "qwen3moe": dict(model_type="qwen3_moe", hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
                     num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, head_dim=8, vocab_size=96,
                     max_position_embeddings=64, initializer_range=0.2, tie_word_embeddings=False),
    "qwen2moe": dict(model_type="qwen2_moe", hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
                     shared_expert_intermediate_size=24, num_experts=8, num_experts_per_tok=2, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, vocab_size=96, max_position_embeddings=64,
                     initializer_range=0.2, tie_word_embeddings=False),
    "mixtral": dict(model_type="mixtral", hidden_size=32, intermediate_size=24, num_local_experts=4,
                    num_experts_per_tok=2, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    vocab_size=96, max_position_embeddings=64, initializer_range=0.2),
    # Gemma 3's text model in small: q/k norms, layer 0 local (6-position window, rotary base
    # 10000), layer 1 global (base 1e6, linear scaling 4): both ropes and the window bite.
    "gemma3": dict(model_type="gemma3_text", hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=8,
                   vocab_size=96, max_position_embeddings=64, sliding_window=6, initializer_range=0.2,
                   layer_types=["sliding_attention", "full_attention"],
                   rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1000000.0},
                                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                   pad_token_id=0, bos_token_id=1, eos_token_id=2),
    # gpt-oss in small: layer 0 local (6-position window), layer 1 global, yarn rotary, sinks; a
    # swiglu_limit of 1 so the clamps bite; hidden and intermediate sizes multiples of 32 (MXFP4
    # blocks). The expert and router biases are drawn too (transformers starts them at zero).
    "gptoss": dict(model_type="gpt_oss", hidden_size=64, intermediate_size=32, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=16, num_local_experts=4,
                   num_experts_per_tok=2, vocab_size=96, max_position_embeddings=64, sliding_window=6,
                   layer_types=["sliding_attention", "full_attention"], swiglu_limit=1.0, initializer_range=0.2,
                   rope_parameters={"rope_type": "yarn", "factor": 4.0, "beta_fast": 32.0, "beta_slow": 1.0,
                                    "truncate": False, "original_max_position_embeddings": 16, "rope_theta": 150000.0},
                   tie_word_embeddings=False),
    "gpt2": dict(model_type="gpt2", n_embd=16, n_layer=2, n_head=4, vocab_size=96, n_positions=32),
    "gpt_neox": dict(model_type="gpt_neox", hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                     num_attention_heads=4, vocab_size=96, max_position_embeddings=64, rotary_pct=0.5),
}

# (fixture name, tiny config key, dtype, layout)
CASES = [
    ("llama-f32", "llama", torch.float32, "single"),
    ("llama-bf16-sharded", "llama", torch.bfloat16, "sharded"),
    ("llama-bin", "llama", torch.float32, "bin"),
    ("llama31-tied", "llama31", torch.float32, "single"),
    ("mistral-f16", "mistral", torch.float16, "single"),
    ("mistral-window", "mistralwindow", torch.float32, "single"),
    ("qwen2-sharded", "qwen2", torch.float32, "sharded"),
    ("qwen2-yarn", "qwen2yarn", torch.float32, "single"),
    ("llama-dynamic", "llamadynamic", torch.float32, "single"),
    ("llama-longrope", "llamalongrope", torch.float32, "single"),
    ("qwen3-bf16", "qwen3", torch.bfloat16, "single"),
    ("phi3", "phi3", torch.float32, "single"),
    ("phi3-window", "phi3window", torch.float32, "single"),
    ("gemma2", "gemma2", torch.float32, "single"),
    ("gemma3", "gemma3", torch.float32, "single"),
    ("gpt2", "gpt2", torch.float32, "single"),
    ("gpt_oss", "gptoss", torch.float32, "single"),
    ("gpt2-bin-sharded", "gpt2", torch.float32, "bin-sharded"),
    ("gpt_neox-sharded", "gpt_neox", torch.float16, "sharded"),
]

# MoE checkpoints come from transformers 4.x, whose modules are those the checkpoints store (one
# module per expert: model.layers.0.mlp.experts.3.gate_proj); transformers 5 fuses the experts into
# one parameter per projection and converts on load. Made with
#   pip install --target DIR "transformers==4.57.1" "huggingface_hub<1.0" "tokenizers<0.23" requests
#   PYTHONPATH=DIR .venv/bin/python tests/reference/make_checkpoints.py moe
# (make_logits.py then loads them with transformers 5, which reads the same files).
MOE_CASES = [
    ("qwen3_moe", "qwen3moe", torch.float32, "single"),
    ("qwen2_moe", "qwen2moe", torch.float32, "single"),
    ("mixtral", "mixtral", torch.float32, "single"),
]

SIZE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "int8": torch.int8}


def dtype_name(dt):
    return str(dt).replace("torch.", "")


def facts(model):
    params = [[n, list(p.shape), dtype_name(p.dtype)] for n, p in model.named_parameters()]
    persistent = set(model.state_dict().keys())
    buffers = [[n, list(b.shape), dtype_name(b.dtype), n in persistent] for n, b in model.named_buffers()]
    modules = [[n, type(m).__name__] for n, m in model.named_modules() if n]
    sizes = {}
    for key, dt in SIZE_DTYPES.items():
        s = compute_module_sizes(model, dtype=dt)
        sizes[key] = {k: v for k, v in s.items() if k.count(".") <= 2}
    return {
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "class": type(model).__name__,
        "num_parameters": model.num_parameters(),
        "memory_footprint": model.get_memory_footprint(),
        "no_split_modules": list(model._no_split_modules or []),
        "parameters": params,
        "buffers": buffers,
        "modules": modules,
        "module_sizes": sizes,
    }


def save_bin(model, folder, sharded):
    sd = {k: v.contiguous().clone() for k, v in model.state_dict().items()}
    if "lm_head.weight" in sd and model.config.tie_word_embeddings:
        del sd["lm_head.weight"]  # transformers never saves the tied copy
    if not sharded:
        torch.save(sd, folder / "pytorch_model.bin")
        return
    names = list(sd)
    half = len(names) // 2
    parts = [names[:half], names[half:]]
    weight_map, total = {}, 0
    for i, part in enumerate(parts):
        fname = f"pytorch_model-{i + 1:05d}-of-{len(parts):05d}.bin"
        torch.save({k: sd[k] for k in part}, folder / fname)
        for k in part:
            weight_map[k] = fname
            total += sd[k].numel() * sd[k].element_size()
    (folder / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n")


def make_case(name, key, dtype, layout):
    torch.manual_seed(1234)
    cfg = dict(TINY[key])
    model_type = cfg.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    if model_type == "gpt_oss":
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith("_bias") or n.endswith("router.bias"):
                    p.normal_(0.0, 0.2)
    folder = OUT / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if layout == "single":
        model.save_pretrained(folder)
    elif layout == "sharded":
        model.save_pretrained(folder, max_shard_size="8KB")
    else:
        model.config.save_pretrained(folder)
        save_bin(model, folder, sharded=(layout == "bin-sharded"))
    for extra in ("generation_config.json",):
        (folder / extra).unlink(missing_ok=True)
    # Reload the way a user would, to record what transformers reports for the files.
    # 4.x names some attention classes after the attention kernel (Qwen2MoeSdpaAttention); eager
    # gives the plain name 5.x uses.
    eager = {"attn_implementation": "eager"} if transformers.__version__.startswith("4.") else {}
    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype="auto", **eager)
    f = facts(loaded)
    f["dtype_auto"] = dtype_name(loaded.dtype)
    f["files"] = sorted(p.name for p in folder.iterdir())
    (folder / "reference.json").write_text(json.dumps(f, indent=1) + "\n")
    print(f"{name}: {f['num_parameters']} parameters, footprint {f['memory_footprint']}, files {f['files']}")


FP4_VALUES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], dtype=np.float32)


def mxfp4(w):
    """[experts, rows, cols] float32 -> the published gpt-oss MXFP4 form: codes uint8
    [experts, rows, cols / 32, 16] (element 2j in the low nibble of byte j) and E8M0 scales uint8
    [experts, rows, cols / 32]. Each block's scale puts its largest magnitude in [4, 8) (gguf-py's
    rule); every element takes the nearest of the 16 FP4 values."""
    e, rows, cols = w.shape
    blocks = w.reshape(e, rows, cols // 32, 32)
    amax = np.abs(blocks).max(axis=-1)
    with np.errstate(divide="ignore"):
        exp = np.where(amax > 0, np.floor(np.log2(amax)) - 2 + 127, 0).astype(np.int32)
    scale = np.ldexp(np.float32(1.0), exp - 127).astype(np.float32)
    codes = np.abs(blocks[..., None] - scale[..., None, None] * FP4_VALUES).argmin(axis=-1).astype(np.uint8)
    packed = codes[..., 0::2] | (codes[..., 1::2] << 4)
    return packed, exp.astype(np.uint8)


def make_mxfp4():
    """tests/fixtures/mxfp4/gpt_oss-mxfp4: the gpt_oss fixture with its expert weights in the
    published MXFP4 form (`*_blocks`, `*_scales`, quantization_config quant_method mxfp4), the rest
    as it is. make_logits.py computes its reference through transformers' own MXFP4 decoder."""
    from safetensors.numpy import load_file, save_file
    src = OUT / "gpt_oss"
    dst = ROOT / "tests" / "fixtures" / "mxfp4" / "gpt_oss-mxfp4"
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    tensors = load_file(src / "model.safetensors")
    out = {}
    for name, t in tensors.items():
        if name.endswith("mlp.experts.gate_up_proj") or name.endswith("mlp.experts.down_proj"):
            # transformers' [experts, in, out] -> the checkpoint's rows = outputs
            blocks, scales = mxfp4(np.ascontiguousarray(t.transpose(0, 2, 1)))
            out[name + "_blocks"] = blocks
            out[name + "_scales"] = scales
        else:
            out[name] = t
    save_file(out, dst / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print("gpt_oss-mxfp4:", sorted(k for k in out if "layers.0.mlp.experts" in k))


def make_presets():
    out = {}
    for path in sorted((ROOT / "resources" / "presets").glob("*.json")):
        cfg = json.loads(path.read_text())
        model_type = cfg.pop("model_type")
        cfg.pop("layerwise", None)
        # How the weights are stored (gpt-oss: MXFP4 experts) is not the model: from_config builds
        # it unquantized, and the sizes below are bfloat16 ones.
        cfg.pop("quantization_config", None)
        config = AutoConfig.for_model(model_type, **cfg)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        out[path.stem] = {
            "num_parameters": model.num_parameters(),
            "module_sizes_bfloat16": compute_module_sizes(model, dtype=torch.bfloat16)[""],
            "num_layers": config.num_hidden_layers,
        }
        print(path.stem, out[path.stem])
    (ROOT / "tests" / "fixtures" / "presets_reference.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    what = sys.argv[1:] or ["checkpoints", "presets"]
    for case in CASES:  # all, or the ones named
        if "checkpoints" in what or case[0] in what:
            make_case(*case)
    if "checkpoints" in what or "mxfp4" in what:
        make_mxfp4()
    if "moe" in what:
        assert transformers.__version__.startswith("4."), "MoE checkpoints are made with transformers 4.x"
        for case in MOE_CASES:
            make_case(*case)
    if "presets" in what:
        make_presets()
