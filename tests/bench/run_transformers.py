#!/usr/bin/env python3
"""The peer run: the same model and workload through HF transformers, then Layerwise, in one
run; prints both and the ratios.

usage: .venv/bin/python tests/bench/run_transformers.py MODEL_DIR [--layerwise build/app/layerwise]
       [--prompt-tokens 128] [--new-tokens 64] [--repeats 3] [--dtype float32]
"""
import argparse
import json
import resource
import statistics
import subprocess
import time

import torch
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--layerwise", default="build/app/layerwise")
ap.add_argument("--prompt-tokens", type=int, default=128)
ap.add_argument("--new-tokens", type=int, default=64)
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--dtype", default="float32")
args = ap.parse_args()

threads = len(__import__("os").sched_getaffinity(0))
# Layerwise first: a child forked from a process that already holds the model would inherit
# that peak in its ru_maxrss.
lw = json.loads(subprocess.run([args.layerwise, "bench", "model", args.model, "--dtype", args.dtype,
                                "--prompt-tokens", str(args.prompt_tokens), "--new-tokens", str(args.new_tokens),
                                "--repeats", str(args.repeats), "--threads", str(threads)],
                               check=True, capture_output=True, text=True).stdout)
torch.set_num_threads(threads)
t0 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).eval()
load_s = time.perf_counter() - t0
rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
vocab = model.config.vocab_size
prompt = torch.tensor([[1 + (i * 7919) % (vocab - 1) for i in range(args.prompt_tokens)]])
ttft, prefill, decode = [], [], []
with torch.inference_mode():
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        out = model(prompt, use_cache=True)
        t1 = time.perf_counter()
        past = out.past_key_values
        token = out.logits[:, -1:].argmax(-1)
        for _ in range(args.new_tokens - 1):
            out = model(token, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = out.logits[:, -1:].argmax(-1)
        t2 = time.perf_counter()
        ttft.append(t1 - t0)
        prefill.append(args.prompt_tokens / (t1 - t0))
        decode.append((args.new_tokens - 1) / (t2 - t1))
hf = {"load_s": load_s, "peak_rss_after_load_bytes": rss_load, "ttft_s": statistics.median(ttft),
      "first_ttft_s": ttft[0],
      "prefill_tokens_per_s": statistics.median(prefill), "decode_tokens_per_s": statistics.median(decode)}
# Peak RSS after generating: a lazily mapped checkpoint (both sides map safetensors) is counted
# once its pages have been used, not at load.
hf["peak_rss_bytes_after_generation"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
lw["peak_rss_bytes_after_generation"] = lw["peak_rss_bytes"]
print(json.dumps({"transformers": hf, "layerwise": {k: lw[k] for k in hf}, "threads": threads,
                  "ratios (layerwise / transformers; load and ttft: transformers / layerwise)": {
                      "decode": lw["decode_tokens_per_s"] / hf["decode_tokens_per_s"],
                      "prefill": lw["prefill_tokens_per_s"] / hf["prefill_tokens_per_s"],
                      "load": hf["load_s"] / lw["load_s"],
                      "ttft": hf["ttft_s"] / lw["ttft_s"],
                      # Load plus the first prompt: a zero-copy load's page reads land in the latter.
                      "load_and_first_ttft": (hf["load_s"] + hf["first_ttft_s"]) / (lw["load_s"] + lw["first_ttft_s"]),
                      "peak_rss_after_load": lw["peak_rss_after_load_bytes"] / hf["peak_rss_after_load_bytes"],
                      "peak_rss_after_generation": lw["peak_rss_bytes_after_generation"] / hf["peak_rss_bytes_after_generation"]}},
                 indent=1))
