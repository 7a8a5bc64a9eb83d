#!/usr/bin/env python3
"""Records what bitsandbytes (CPU backend) and transformers + bitsandbytes produce, so the
quantization suite compares Layerwise against the upstream implementation byte for byte.

Outputs (committed; CI needs none of these packages):
  tests/fixtures/quant/blockwise.json    4-bit NF4/FP4 (with and without double quantization)
                                         and LLM.int8 quantization of small weight matrices:
                                         packed bytes, absmax, nested values, dequantized values;
                                         int8 mixed-decomposition matmul outputs
  tests/fixtures/quant/logits.json       stories260K logits under BitsAndBytesConfig
                                         (nf4, nf4 + double quant, fp4, 8-bit), float32 compute
  tests/fixtures/quant/perplexity.json   stories260K perplexity (float32) with the sliding-window
                                         loop of the transformers perplexity guide
  tests/fixtures/quant/llama-quant/
                                         a tiny random-weight llama (transformers, fixed seed;
                                         no shared data in it)
  tests/fixtures/quant/llama-quant-nf4-dq/, llama-quant-int8/
                                         save_pretrained() of that model quantized
  tests/fixtures/quant/tiny_logits.json  its logits, float32 and under each BitsAndBytesConfig

Run: .venv/bin/python tests/reference/make_quant_fixtures.py [path/to/shared/data]
"""
import base64
import json
import math
import os
import shutil
import sys
from pathlib import Path

import torch
import bitsandbytes as bnb
import bitsandbytes.functional as F
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "quant"
DATA = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
MODEL = DATA / "models" / "stories260K"
TEXT = DATA / "models" / "stories260K-llama2c" / "expected_greedy_bos_200.txt"

torch.manual_seed(1234)


def reference_quantize_blockwise():
    """bitsandbytes' PyTorch reference of quantize_blockwise (backends/default/ops.py: nearest
    code by midpoints). Its CPU kernel (used by quantize_4bit's double quantization on this
    machine) rounds about 0.15 % of values to a neighbouring code instead; both are recorded."""
    import inspect
    import re
    import bitsandbytes.backends.default.ops as dops
    src = inspect.getsource(dops)
    m = re.search(r'@register_kernel\("bitsandbytes::quantize_blockwise", "default"\)\n(def _\(.*?)(?=\n\n\n|\n@)', src, re.S)
    ns = {}
    exec(m.group(1).replace("def _(", "def quantize_blockwise_reference(", 1), dops.__dict__, ns)
    return ns["quantize_blockwise_reference"]


REFERENCE_QUANTIZE_BLOCKWISE = reference_quantize_blockwise()


def floats(t):
    """float32 values as base64 of their little-endian bytes (exact and compact)."""
    return base64.b64encode(t.detach().reshape(-1).to(torch.float32).contiguous().numpy().tobytes()).decode()


def generated(rows, cols):
    """A weight matrix both sides compute exactly: integers and one correctly rounded division
    per value, scaled per block of 64 so block absmaxes differ."""
    i = torch.arange(rows * cols, dtype=torch.int64)
    num = ((i * 7919) % 2003 - 1001).to(torch.float32)
    scale = ((i // 64) % 13 + 1).to(torch.float32)
    return (num / torch.tensor(1000.0) * scale).reshape(rows, cols)


def ints(t):
    return [int(v) for v in t.reshape(-1).tolist()]


def matrices():
    m = {}
    m["randn_8x64"] = torch.randn(8, 64)
    m["odd_7x9"] = torch.randn(7, 9)  # 63 values: one partial block, odd count (padded nibble)
    z = torch.randn(4, 48)
    z.view(-1)[:64] = 0.0  # the first block is all zeros
    m["zero_block_4x48"] = z
    o = torch.randn(6, 50) * 0.02
    o[1, 3] = 8.0
    o[4, 40] = -12.5  # outliers
    m["outliers_6x50"] = o
    return m


# Large enough for two nested blocks of 256 absmax values (generated, not stored).
GENERATED = {"generated_96x200": (96, 200)}


def blockwise():
    out = {"bitsandbytes": bnb.__version__, "torch": torch.__version__, "matrices": {}}
    out["nf4_code"] = floats(F.get_4bit_type("nf4", device="cpu"))
    out["fp4_code"] = floats(F.get_4bit_type("fp4", device="cpu"))
    out["dynamic_code"] = floats(F.create_dynamic_map())
    items = [(n, w, False) for n, w in matrices().items()] + \
        [(n, generated(*shape), True) for n, shape in GENERATED.items()]
    for name, w, gen in items:
        rec = {"shape": list(w.shape), "4bit": {}}
        if gen:
            rec["generated"] = True
        else:
            rec["values"] = floats(w)
        for qt in ("nf4", "fp4"):
            for dq in (False, True):
                q, s = F.quantize_4bit(w, blocksize=64, quant_type=qt, compress_statistics=dq)
                d = F.dequantize_4bit(q, s)
                r = {"packed": base64.b64encode(bytes(ints(q))).decode(), "packed_shape": list(q.shape)}
                if not gen:
                    r["dequantized"] = floats(d)
                if dq:
                    r["absmax_u8"] = base64.b64encode(bytes(ints(s.absmax))).decode()
                    _, plain = F.quantize_4bit(w, blocksize=64, quant_type=qt, compress_statistics=False)
                    ref_q, ref_am = REFERENCE_QUANTIZE_BLOCKWISE(plain.absmax - plain.absmax.mean(),
                                                                  F.create_dynamic_map(), 256)
                    r["absmax_u8_reference"] = base64.b64encode(bytes(ints(ref_q))).decode()
                    r["nested_absmax_reference"] = floats(ref_am)
                    r["offset"] = float(s.offset)
                    r["nested_absmax"] = floats(s.state2.absmax)
                    r["nested_code"] = floats(s.state2.code)
                else:
                    r["absmax"] = floats(s.absmax)
                packed = s.as_dict(packed=True)
                key = [k for k in packed if k.startswith("quant_state.")][0]
                r["quant_state_key"] = key
                r["quant_state_json"] = json.loads(bytes(ints(packed[key])).decode())
                rec["4bit"][f"{qt}{'-dq' if dq else ''}"] = r
        # LLM.int8 weights, as Int8Params quantizes them (through float16).
        cb, scb, _ = F.int8_vectorwise_quant(w.contiguous().to(torch.float16))
        rec["int8"] = {"CB": base64.b64encode(cb.numpy().tobytes()).decode(), "SCB": floats(scb)}
        if not gen:
            rec["int8"]["dequantized"] = floats(F.int8_vectorwise_dequant(cb, scb))
        out["matrices"][name] = rec

    # The mixed int8 matmul (MatMul8bitLt.forward without gradients), float32 activations.
    w = torch.randn(24, 40) * 0.1
    bias = torch.randn(24) * 0.1
    cb, scb, _ = F.int8_vectorwise_quant(w.to(torch.float16))
    cases = []
    for label, x in [("no_outliers", torch.randn(3, 40)),
                     ("outliers", torch.randn(5, 40)),
                     ("one_row_outlier", torch.randn(1, 40))]:
        if label == "outliers":
            x[0, 7] = 9.0
            x[3, 21] = -7.5
            x[2, 7] = 3.0
        if label == "one_row_outlier":
            x[0, 11] = 6.0
        state = bnb.MatmulLtState()
        state.threshold = 6.0
        state.has_fp16_weights = False
        state.is_training = False  # inference: MatMul8bitLt (the int8 path), as Linear8bitLt.eval()
        state.CB, state.SCB = cb, scb
        y = bnb.matmul(x, cb, state=state, threshold=6.0, bias=bias)
        cases.append({"label": label, "x_shape": list(x.shape), "x": floats(x), "y": floats(y)})
    out["int8_matmul"] = {"weight_shape": list(w.shape), "weight": floats(w), "bias": floats(bias),
                          "threshold": 6.0, "cases": cases}
    return out


CONFIGS = {
    "nf4": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32),
    "nf4-dq": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                   bnb_4bit_compute_dtype=torch.float32),
    "fp4": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype=torch.float32),
    "int8": dict(load_in_8bit=True),
}
SAVED = {"nf4-dq": "nf4-dq", "int8": "int8"}
IDS = [1, 403, 407, 261, 378, 285, 395, 271, 259, 300]
TINY = OUT / "llama-quant"
TINY_IDS = [1, 40, 7, 61, 3, 28, 59, 27, 11, 30]


def tiny_model():
    """A small random llama whose linears have rows of 64 (4-bit blocks) and two layers."""
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(20261125)
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).to(torch.float32)
    shutil.rmtree(TINY, ignore_errors=True)
    model.save_pretrained(TINY)


def logits(model_path, ids_list, saved_prefix=None):
    out = {"model": model_path.name, "ids": ids_list, "configs": {}}
    ids = torch.tensor([ids_list])
    ref = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    with torch.no_grad():
        out["float32"] = floats(ref(ids).logits[0])
    for name, kw in CONFIGS.items():
        model = AutoModelForCausalLM.from_pretrained(model_path, quantization_config=BitsAndBytesConfig(**kw),
                                                     device_map="cpu")
        with torch.no_grad():
            lg = model(ids).logits[0].float()
        out["configs"][name] = {"logits": floats(lg), "memory_footprint": model.get_memory_footprint(),
                                "state_dict_bytes": sum(t.numel() * t.element_size()
                                                        for t in model.state_dict().values())}
        if saved_prefix and name in SAVED:
            folder = OUT / f"{saved_prefix}-{SAVED[name]}"
            shutil.rmtree(folder, ignore_errors=True)
            model.save_pretrained(folder)
    return out


def perplexity(context=64, stride=32):
    # The sliding-window loop of https://huggingface.co/docs/transformers/perplexity
    tok = AutoTokenizer.from_pretrained(MODEL)
    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32)
    text = TEXT.read_text()
    encodings = tok(text, return_tensors="pt")
    seq_len = encodings.input_ids.size(1)
    nll_sum, n_tokens, prev_end_loc = 0.0, 0, 0
    for begin_loc in range(0, seq_len, stride):
        end_loc = min(begin_loc + context, seq_len)
        trg_len = end_loc - prev_end_loc
        input_ids = encodings.input_ids[:, begin_loc:end_loc]
        target_ids = input_ids.clone()
        target_ids[:, :-trg_len] = -100
        with torch.no_grad():
            loss = model(input_ids, labels=target_ids).loss
        num_valid_tokens = (target_ids != -100).sum().item()
        num_loss_tokens = num_valid_tokens - target_ids.size(0)
        nll_sum += loss.item() * num_loss_tokens
        n_tokens += num_loss_tokens
        prev_end_loc = end_loc
        if end_loc == seq_len:
            break
    avg = nll_sum / n_tokens
    return {"model": "stories260K", "text": "models/stories260K-llama2c/expected_greedy_bos_200.txt",
            "context": context, "stride": stride, "sequence_tokens": seq_len, "tokens": n_tokens,
            "nll": avg, "perplexity": math.exp(avg)}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "blockwise.json").write_text(json.dumps(blockwise()) + "\n")
    (OUT / "logits.json").write_text(json.dumps(logits(MODEL, IDS)) + "\n")
    tiny_model()
    (OUT / "tiny_logits.json").write_text(json.dumps(logits(TINY, TINY_IDS, saved_prefix="llama-quant")) + "\n")
    (OUT / "perplexity.json").write_text(json.dumps(perplexity(), indent=1) + "\n")
    print("transformers", transformers.__version__, "bitsandbytes", bnb.__version__)


if __name__ == "__main__":
    main()
