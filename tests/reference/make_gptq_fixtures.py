#!/usr/bin/env python3
"""Records what AutoGPTQ 0.7.1 packs and how it reads its packing back, so the GPTQ suite
compares Layerwise's packer, unpacker and GPTQ checkpoint loading against it.

AutoGPTQ's package __init__ does not import with the torch of this project (it needs its CUDA
extensions and an older transformers), so its pure-Python QuantLinear files are loaded by path.
Which one packs a saved model: auto_gptq.modeling._utils.pack_model asks
dynamically_import_QuantLinear (use_triton=False, disable_exllama=False, disable_exllamav2=True):
4-bit with the exllama kernels built -> qlinear_exllama; otherwise qlinear_cuda_old unless
desc_act with groups, which takes qlinear_cuda. All three pack with the same code (exllama:
4-bit only); this script packs with the one AutoGPTQ would pick without its CUDA extensions
(cuda_old, or cuda for act-order) and checks that qlinear_exllama's pack gives the same bytes.

Outputs (committed; CI needs none of these packages):
  tests/fixtures/quant/gptq_pack.json
      cases: bits 2, 3, 4, 8 x group size -1, 32, 128 x g_idx in order / act-order, of generated
      integer codes, zero points and float16 scales (formulas below, recomputed by the test);
      sha256 of AutoGPTQ's qweight bytes, its qzeros (base64), and sha256 of the weights its
      QuantLinear.forward (torch path) dequantizes, in float16 and float32.
      rtn: float16 weights packed from a linear (pack's own rounding), base64 in and out.
  tests/fixtures/quant/llama-gptq-4bit-32g/
      a tiny random llama (hidden 64, 2 layers, vocab 256) quantized round-to-nearest (4 bits,
      groups of 32, act-order, asymmetric), packed by AutoGPTQ's QuantLinear.pack and saved as
      save_quantized saves it: gptq_model-4bit-32g.safetensors (float16, with AutoGPTQ's
      metadata), quantize_config.json, config.json with quantization_config.
      Also a byte-level tokenizer.json (one token per byte, no merges) built with `tokenizers`,
      so text commands (generate --prompt, eval) run on it.
  tests/fixtures/quant/gptq_perplexity.json
      transformers' perplexity (float32, the dequantized model) of a shared-data text by the
      sliding-window loop of the transformers perplexity guide (context 64, stride 32).
  tests/fixtures/quant/gptq_logits.json
      transformers (float32) logits of that model with every quantized linear replaced by the
      weight AutoGPTQ's QuantLinear dequantizes (float32 scales: exact): prefill of a fixed prompt
      and greedy decode steps, as make_logits.py records them.
  tests/fixtures/quant/gptq_job/<arch>/ and <arch>.reference.safetensors (gpt2, gpt_neox)
      a tiny random model (hidden 64, 2 layers, vocab 256, float16, the byte-level tokenizer) and
      what AutoGPTQ's GPTQ class computes for it, layer by layer in AutoGPTQ's order
      (inside_layer_modules, true_sequential: each group's inputs captured with forward hooks on
      the model whose earlier layers and groups are already quantized in place, as
      BaseGPTQForCausalLM.quantize feeds them), calibrated on one sequence: the first
      JOB_SEQ_LEN bytes of the shared-data text. Per linear (the name of the source model):
      codes (uint8 [out, in]), scales (float32 [groups, out]), zeros (int32 [groups, out]),
      g_idx (int32 [in]); and the logits of the quantized model (float32, transformers) on
      PROMPT, in gptq_job.json with the parameters.

Run: .venv/bin/python tests/reference/make_gptq_fixtures.py [path/to/shared/data] [--job-only]
(--job-only: only the gptq_job/ fixtures). auto_gptq need not import: its files are read by path.
"""
import base64
import hashlib
import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "quant"
AUTO_GPTQ_VERSION = "0.7.1"
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
DATA = Path(ARGS[0]) if ARGS else ROOT.parent / "shared" / "data"
PPL_TEXT = "models/stories260K-llama2c/expected_greedy_bos_200.txt"


def auto_gptq_dir():
    spec = importlib.util.find_spec("auto_gptq")
    assert spec is not None, "pip install --no-deps auto-gptq==0.7.1"
    return Path(spec.submodule_search_locations[0])


def load_qlinear(name):
    path = auto_gptq_dir() / "nn_modules" / "qlinear" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"agptq_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.QuantLinear


CUDA_OLD = load_qlinear("qlinear_cuda_old")
CUDA = load_qlinear("qlinear_cuda")
EXLLAMA = load_qlinear("qlinear_exllama")

IN, OUT_FEATURES = 256, 64


def b64(t):
    return base64.b64encode(t.contiguous().numpy().tobytes()).decode()


def sha(t):
    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


# --- generated cases (the test recomputes these formulas) -----------------------------------
def codes_of(bits):  # int32 [out, in]
    o = torch.arange(OUT_FEATURES, dtype=torch.int64).view(-1, 1)
    i = torch.arange(IN, dtype=torch.int64).view(1, -1)
    return ((o * 131 + i * 71 + (o * i) % 17) % (2 ** bits)).to(torch.int32)


def g_idx_of(group, act_order):  # int32 [in]
    g = IN if group == -1 else group
    i = torch.arange(IN, dtype=torch.int64)
    position = (i * 37 + 11) % IN if act_order else i  # a permutation of the columns
    return (position // g).to(torch.int32)


def groups_of(group):
    return 1 if group == -1 else IN // group


def zeros_of(bits, groups):  # int32 [groups, out], real zero points in 1..2^bits-1
    g = torch.arange(groups, dtype=torch.int64).view(-1, 1)
    o = torch.arange(OUT_FEATURES, dtype=torch.int64).view(1, -1)
    return (1 + (g * 29 + o * 13) % (2 ** bits - 1)).to(torch.int32)


def scales_of(groups):  # float32 [groups, out], exact in float16
    g = torch.arange(groups, dtype=torch.int64).view(-1, 1)
    o = torch.arange(OUT_FEATURES, dtype=torch.int64).view(1, -1)
    return (1 + (g * 7 + o * 3) % 61).to(torch.float32) / 1024


def dequantized(ql, dtype, x_dtype):
    """What ql's torch forward computes as its weight [out, in]: identity input, exact."""
    ql = ql
    saved = ql.scales
    ql.scales = saved.to(dtype)
    with torch.no_grad():
        w = ql.forward(torch.eye(ql.infeatures, dtype=x_dtype)).t().contiguous()
    ql.scales = saved
    return w


def qlinear_class(group, act_order):
    return CUDA if act_order and group != -1 else CUDA_OLD


def pack_case(bits, group, act_order):
    codes, g_idx = codes_of(bits), g_idx_of(group, act_order)
    groups = groups_of(group)
    zeros, scales = zeros_of(bits, groups), scales_of(groups)
    gl = g_idx.long()
    # A float32 linear whose values pack back to exactly these codes.
    w = (codes - zeros[gl].t()).to(torch.float32) * scales[gl].t()
    linear = nn.Linear(IN, OUT_FEATURES, bias=False)
    linear.weight.data = w
    cls = qlinear_class(group, act_order)
    ql = cls(bits, group, IN, OUT_FEATURES, bias=False)
    # pack takes scales/zeros as the quantizer returns them: [out, groups], float.
    ql.pack(linear, scales.t().contiguous(), zeros.t().to(torch.float32).contiguous(), g_idx)
    if bits == 4:
        ex = EXLLAMA(bits, group, IN, OUT_FEATURES, bias=False)
        ex.pack(linear, scales.t().contiguous(), zeros.t().to(torch.float32).contiguous(), g_idx)
        assert torch.equal(ex.qweight, ql.qweight) and torch.equal(ex.qzeros, ql.qzeros), "exllama packs differently"
    assert ql.qweight.dtype == torch.int32 and list(ql.qweight.shape) == [IN * bits // 32, OUT_FEATURES]
    scales16 = ql.scales.half()
    ql.scales = scales16
    if not act_order:
        assert torch.equal(ql.g_idx, g_idx)
    d16 = dequantized(ql, torch.float16, torch.float16)
    d32 = dequantized(ql, torch.float32, torch.float32)
    # The stored scales are exact; the float32 weights are exactly scales * (q - z).
    assert torch.equal(d32, ((codes - zeros[gl].t()).to(torch.float32) * scales[gl].t()))
    return {
        "bits": bits, "group_size": group, "act_order": act_order, "packed_by": cls.__module__.replace("agptq_", ""),
        "qweight_shape": list(ql.qweight.shape), "qweight_sha256": sha(ql.qweight),
        "qzeros_shape": list(ql.qzeros.shape), "qzeros": b64(ql.qzeros),
        "scales_sha256": sha(scales16), "g_idx_sha256": sha(ql.g_idx.to(torch.int32)),
        "dequantized_f16_sha256": sha(d16), "dequantized_f32_sha256": sha(d32),
    }


def rtn_case(bits, group, act_order, seed):
    """A float16 weight and float32 scales/zeros as a quantizer hands them to pack: pack's own
    rounding makes the codes."""
    torch.manual_seed(seed)
    out, inp = 32, 64
    w = (torch.randn(out, inp) * 0.05).half()
    groups = inp // group
    g_idx = ((torch.randperm(inp) if act_order else torch.arange(inp)) // group).to(torch.int32)
    # Scales and zero points fitted per group (with some headroom) so every code is in range:
    # AutoGPTQ's pack does not clamp, an out-of-range code would spill into its neighbours.
    maxq = 2 ** bits - 1
    scales = torch.empty(groups, out)
    zeros = torch.empty(groups, out)
    for g in range(groups):
        cols = w[:, g_idx == g].float()
        lo, hi = cols.min(1).values.clamp(max=0), cols.max(1).values.clamp(min=0)
        scales[g] = (hi - lo) / maxq * 1.3
        zeros[g] = torch.round(-lo / scales[g]).clamp(1, maxq)
    gl = g_idx.long()
    codes = torch.round((w.float() + (zeros * scales)[gl].t()) / scales.half().float()[gl].t())
    assert codes.min() >= 0 and codes.max() <= maxq
    linear = nn.Linear(inp, out, bias=False).half()
    linear.weight.data = w
    cls = qlinear_class(group, act_order)
    ql = cls(bits, group, inp, out, bias=False)
    ql.pack(linear, scales.t().contiguous(), zeros.t().contiguous(), g_idx)
    return {"bits": bits, "group_size": group, "act_order": act_order, "shape": [out, inp],
            "packed_by": cls.__module__.replace("agptq_", ""),
            "weight_f16": b64(w), "scales_f32": b64(scales), "zeros_i32": b64(zeros.to(torch.int32)),
            "g_idx_i32": b64(g_idx), "qweight": b64(ql.qweight), "qzeros": b64(ql.qzeros),
            "scales_f16": b64(ql.scales.half())}


def pack_fixtures():
    cases = [pack_case(b, g, a) for b in (2, 3, 4, 8) for g in (-1, 32, 128) for a in (False, True)]
    rtn = [rtn_case(b, 32, a, 100 + b) for b in (3, 4) for a in (False, True)]
    doc = {"auto_gptq": AUTO_GPTQ_VERSION, "torch": torch.__version__, "in": IN, "out": OUT_FEATURES,
           "cases": cases, "rtn": rtn}
    (OUT / "gptq_pack.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"gptq_pack.json: {len(cases)} cases, {len(rtn)} rtn")


# --- the tiny GPTQ llama ----------------------------------------------------------------------
BITS, GROUP, DESC_ACT, SYM = 4, 32, True, False
PROMPT = [3, 17, 42, 5, 9, 1, 33, 60, 2, 11, 200, 129]
STEPS = 6
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def quantize_rtn(w, bits, group, act_order, sym, perm_seed):
    """AutoGPTQ's Quantizer (find_params per group, in act-order when asked), round to nearest
    instead of GPTQ's error feedback. Returns scales, zeros [out, groups] and g_idx [in]."""
    out, inp = w.shape
    maxq = 2 ** bits - 1
    if act_order:
        gen = torch.Generator().manual_seed(perm_seed)
        perm = torch.randperm(inp, generator=gen)  # stands in for argsort(diag(H), descending)
    else:
        perm = torch.arange(inp)
    wp = w[:, perm].float()
    scales, zeros = [], []
    for start in range(0, inp, group):
        x = wp[:, start:start + group]
        xmin = torch.minimum(x.min(1).values, torch.zeros(out))
        xmax = torch.maximum(x.max(1).values, torch.zeros(out))
        if sym:
            xmax = torch.maximum(xmin.abs(), xmax)
            xmin = torch.where(xmin < 0, -xmax, xmin)
        tmp = (xmin == 0) & (xmax == 0)
        xmin[tmp], xmax[tmp] = -1, +1
        scale = (xmax - xmin) / maxq
        zero = torch.full_like(scale, (maxq + 1) / 2) if sym else torch.round(-xmin / scale)
        zero = zero.clamp(min=1)  # the stored zero - 1 must not underflow (see gptq_pack.h)
        scales.append(scale.unsqueeze(1))
        zeros.append(zero.unsqueeze(1))
    invperm = torch.argsort(perm)
    g_idx = (torch.arange(inp) // group)[invperm].to(torch.int32)
    return torch.cat(scales, 1), torch.cat(zeros, 1), g_idx


def make_llama():
    torch.manual_seed(4321)
    config = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=256, max_position_embeddings=128, rms_norm_eps=1e-6,
                         initializer_range=0.08, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).eval()
    model = model.half()  # AutoGPTQ quantizes and saves a float16 model
    quantize_config = {"bits": BITS, "group_size": GROUP, "damp_percent": 0.01, "desc_act": DESC_ACT,
                       "static_groups": False, "sym": SYM, "true_sequential": True, "model_name_or_path": None,
                       "model_file_base_name": None, "is_marlin_format": False, "quant_method": "gptq"}
    state = {}
    dequant = {}
    quantized_names = set()
    for l in range(config.num_hidden_layers):
        for k, name in enumerate(LINEARS):
            module_name = f"model.layers.{l}.{name}"
            linear = model.get_submodule(module_name)
            scales, zeros, g_idx = quantize_rtn(linear.weight.data, BITS, GROUP, DESC_ACT, SYM, 10 * l + k)
            cls = qlinear_class(GROUP, DESC_ACT)
            ql = cls(BITS, GROUP, linear.in_features, linear.out_features, bias=False)
            ql.pack(linear, scales, zeros, g_idx)
            ql.scales = ql.scales.half()
            for suffix in ("qweight", "qzeros", "scales", "g_idx"):
                state[f"{module_name}.{suffix}"] = getattr(ql, suffix).clone().contiguous()
            dequant[module_name] = dequantized(ql, torch.float32, torch.float32)
            quantized_names.add(module_name + ".weight")
    # save_quantized: the whole state dict of the quantized model, in module order.
    full = {}
    for key, value in model.state_dict().items():
        if key in quantized_names:
            module_name = key[: -len(".weight")]
            for suffix in ("qweight", "qzeros", "scales", "g_idx"):
                full[f"{module_name}.{suffix}"] = state[f"{module_name}.{suffix}"]
        else:
            full[key] = value.clone().contiguous()
    folder = OUT / f"llama-gptq-{BITS}bit-{GROUP}g"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    base = f"gptq_model-{BITS}bit-{GROUP}g"
    metadata = {"format": "pt", "auto_gptq_version": AUTO_GPTQ_VERSION, "gptq_bits": str(BITS),
                "gptq_group_size": str(GROUP), "gptq_desc_act": str(DESC_ACT), "gptq_damp_percent": "0.01",
                "gptq_is_marlin_format": "False"}
    save_file(full, str(folder / f"{base}.safetensors"), metadata)
    model.config.quantization_config = quantize_config
    model.config.save_pretrained(folder)
    (folder / "generation_config.json").unlink(missing_ok=True)
    with open(folder / "quantize_config.json", "w", encoding="utf-8") as f:
        json.dump(quantize_config, f, indent=2)

    # The dequantized model in float32, run by transformers.
    ref_config = LlamaConfig(**{k: v for k, v in config.to_dict().items() if k != "quantization_config"})
    ref = LlamaForCausalLM(ref_config).eval()
    sd = {k: v.float() for k, v in model.state_dict().items()}
    for module_name, w in dequant.items():
        sd[module_name + ".weight"] = w
    ref.load_state_dict(sd)
    ids = torch.tensor([PROMPT])
    with torch.no_grad():
        prefill = ref(ids).logits[0].float()
        out = ref.generate(ids, max_new_tokens=STEPS, do_sample=False, output_logits=True, return_dict_in_generate=True,
                           eos_token_id=None, pad_token_id=0, min_new_tokens=STEPS)
    steps = [l[0].float().tolist() for l in out.logits]
    tokens = out.sequences[0, len(PROMPT):].tolist()
    save_byte_tokenizer(folder)
    (OUT / "gptq_perplexity.json").write_text(json.dumps(perplexity(ref, folder), indent=1) + "\n")
    (OUT / "gptq_logits.json").write_text(json.dumps({
        "checkpoint": folder.name, "dtype": "float32", "transformers": transformers.__version__,
        "prompt": PROMPT,
        "prefill_logits": [[round(v, 7) for v in row] for row in prefill.tolist()],
        "step_logits": [[round(v, 7) for v in row] for row in steps],
        "tokens": tokens}) + "\n")
    print(f"{folder.name}: {sorted(p.name for p in folder.iterdir())}, tokens {tokens}")


def save_byte_tokenizer(folder):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    # GPT-2's byte -> printable character table (the alphabet of ByteLevel pre-tokenization).
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    assert sorted(chars.values()) == sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: b for b, ch in chars.items()}  # token id = byte value
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(str(folder / "tokenizer.json"))


def perplexity(model, folder, context=64, stride=32):
    # The sliding-window loop of https://huggingface.co/docs/transformers/perplexity
    from transformers import PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"))
    text = (DATA / PPL_TEXT).read_text()
    ids = torch.tensor([tok(text)["input_ids"]])
    assert ids[0, :5].tolist() == list(text.encode()[:5])
    seq_len = ids.size(1)
    nll_sum, n_tokens, prev_end_loc = 0.0, 0, 0
    for begin_loc in range(0, seq_len, stride):
        end_loc = min(begin_loc + context, seq_len)
        trg_len = end_loc - prev_end_loc
        input_ids = ids[:, begin_loc:end_loc]
        target_ids = input_ids.clone()
        target_ids[:, :-trg_len] = -100
        with torch.no_grad():
            loss = model(input_ids, labels=target_ids).loss
        num_loss_tokens = (target_ids != -100).sum().item() - target_ids.size(0)
        nll_sum += loss.item() * num_loss_tokens
        n_tokens += num_loss_tokens
        prev_end_loc = end_loc
        if end_loc == seq_len:
            break
    avg = nll_sum / n_tokens
    return {"model": folder.name, "text": PPL_TEXT, "context": context, "stride": stride, "sequence_tokens": seq_len,
            "tokens": n_tokens, "nll": avg, "perplexity": math.exp(avg)}


# --- GPTQ jobs of GPT-2 and GPT-NeoX ------------------------------------------------------------
JOB_SEQ_LEN = 256
JOB_CASES = {
    # arch: (layers path, AutoGPTQ's inside_layer_modules, bits, group size, desc_act, sym)
    "gpt2": ("transformer.h", [["attn.c_attn"], ["attn.c_proj"], ["mlp.c_fc"], ["mlp.c_proj"]], 4, 32, False, True),
    "gpt_neox": ("gpt_neox.layers", [["attention.query_key_value"], ["attention.dense"], ["mlp.dense_h_to_4h"],
                                     ["mlp.dense_4h_to_h"]], 4, 32, True, False),
}


def load_autogptq_gptq():
    base = auto_gptq_dir() / "quantization"
    import types
    package = types.ModuleType("agptq_quantization")
    package.__path__ = [str(base)]
    sys.modules["agptq_quantization"] = package
    modules = {}
    for name in ("quantizer", "gptq"):
        spec = importlib.util.spec_from_file_location(f"agptq_quantization.{name}", base / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        modules[name] = module
    torch.cuda.synchronize = lambda *a, **k: None  # fasterquant synchronizes; there may be no GPU
    return modules["gptq"]


def make_job_model(arch):
    torch.manual_seed(2468 if arch == "gpt2" else 1357)
    if arch == "gpt2":
        config = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_inner=128, vocab_size=256, n_positions=JOB_SEQ_LEN,
                                         initializer_range=0.08, bos_token_id=None, eos_token_id=None)
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.GPTNeoXConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                                            vocab_size=256, max_position_embeddings=JOB_SEQ_LEN, rotary_pct=0.5,
                                            initializer_range=0.08, tie_word_embeddings=False, bos_token_id=None,
                                            eos_token_id=None)
        model = transformers.GPTNeoXForCausalLM(config)
    return model.eval()


def gptq_like_autogptq(model, ids, layers_path, groups, bits, group, desc_act, sym):
    """AutoGPTQ's sequential quantization; returns {module: (codes, scales, zeros, g_idx)}."""
    gptq_module = load_autogptq_gptq()
    out = {}
    for l, layer in enumerate(model.get_submodule(layers_path)):
        for names in groups:
            quantizers, handles = {}, []
            for name in names:
                module = layer.get_submodule(name)
                g = gptq_module.GPTQ(module)
                g.quantizer.configure(bits, perchannel=True, sym=sym, mse=False)
                quantizers[name] = g
                handles.append(module.register_forward_hook(lambda m, inp, o, g=g: g.add_batch(inp[0].data, o.data)))
            with torch.no_grad():
                model(ids)
            for h in handles:
                h.remove()
            for name, g in quantizers.items():
                scale, zero, g_idx = g.fasterquant(percdamp=0.01, group_size=group, actorder=desc_act, static_groups=False)
                module = layer.get_submodule(name)
                q = module.weight.data.t() if isinstance(module, transformers.Conv1D) else module.weight.data
                gl = g_idx.long()
                codes = torch.clamp(torch.round(q / scale[:, gl]) + zero[:, gl], 0, 2 ** bits - 1)
                assert torch.allclose(scale[:, gl] * (codes - zero[:, gl]), q, atol=1e-6), name
                out[f"{layers_path}.{l}.{name}"] = (codes.to(torch.uint8).contiguous(), scale.t().contiguous().float(),
                                                    zero.t().contiguous().to(torch.int32), g_idx.to(torch.int32))
                g.free()
    return out


def make_gptq_jobs():
    text = (DATA / PPL_TEXT).read_text()
    ids = torch.tensor([list(text.encode()[:JOB_SEQ_LEN])])
    summary = {"auto_gptq": AUTO_GPTQ_VERSION, "transformers": transformers.__version__, "torch": torch.__version__,
               "calibration": PPL_TEXT, "samples": 1, "seq_len": JOB_SEQ_LEN, "prompt": PROMPT, "cases": {}}
    for arch, (layers_path, groups, bits, group, desc_act, sym) in JOB_CASES.items():
        folder = OUT / "gptq_job" / arch
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        model = make_job_model(arch)
        model.half().save_pretrained(folder)
        (folder / "generation_config.json").unlink(missing_ok=True)
        save_byte_tokenizer(folder)
        model = model.float()  # the float16 weights, computed in float32 as the job does on a CPU
        torch.set_num_threads(1)
        result = gptq_like_autogptq(model, ids, layers_path, groups, bits, group, desc_act, sym)
        tensors = {}
        for name, (codes, scales, zeros, g_idx) in result.items():
            tensors[name + ".codes"], tensors[name + ".scales"] = codes, scales
            tensors[name + ".zeros"], tensors[name + ".g_idx"] = zeros, g_idx
        save_file(tensors, str(OUT / "gptq_job" / f"{arch}.reference.safetensors"))
        with torch.no_grad():
            logits = model(torch.tensor([PROMPT])).logits[0].float()
        summary["cases"][arch] = {"bits": bits, "group_size": group, "desc_act": desc_act, "sym": sym,
                                  "damp_percent": 0.01, "modules": sorted(result),
                                  "logits": [[round(v, 6) for v in row] for row in logits.tolist()]}
        print(f"gptq_job/{arch}: {len(result)} linears")
    (OUT / "gptq_job" / "gptq_job.json").write_text(json.dumps(summary) + "\n")


if __name__ == "__main__":
    if "--job-only" not in sys.argv:
        pack_fixtures()
        make_llama()
    make_gptq_jobs()
