#!/usr/bin/env python3
"""The llama.cpp peer run (through llama-cpp-python): the same GGUF and workload through
Layerwise and llama.cpp in one run; prints both and the ratios.

usage: .venv/bin/python tests/bench/run_llama_cpp.py MODEL.gguf [--layerwise build/app/layerwise]
       [--prompt-tokens 64] [--new-tokens 32] [--repeats 3] [--dtype float32]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import time

import gguf
import llama_cpp
import numpy as np
from llama_cpp import Llama

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--layerwise", default="build/app/layerwise")
ap.add_argument("--prompt-tokens", type=int, default=64)
ap.add_argument("--new-tokens", type=int, default=32)
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--dtype", default="float32")
args = ap.parse_args()

threads = len(os.sched_getaffinity(0))
# Layerwise first: a child forked from a process that already holds the model would inherit
# that peak in its ru_maxrss.
lw = json.loads(subprocess.run([args.layerwise, "bench", "model", args.model, "--dtype", args.dtype,
                                "--prompt-tokens", str(args.prompt_tokens), "--new-tokens", str(args.new_tokens),
                                "--repeats", str(args.repeats), "--threads", str(threads)],
                               check=True, capture_output=True, text=True).stdout)
t0 = time.perf_counter()
llm = Llama(model_path=args.model, n_ctx=args.prompt_tokens + args.new_tokens + 8, n_threads=threads,
            n_threads_batch=threads, n_batch=args.prompt_tokens, verbose=False)
load_s = time.perf_counter() - t0
rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
vocab = llm.n_vocab()
# The same prompt ids as `layerwise bench model`.
prompt = [1 + (i * 7919) % (vocab - 1) for i in range(args.prompt_tokens)]
ttft, prefill, decode = [], [], []
for _ in range(args.repeats):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    for _ in range(args.new_tokens - 1):
        # The last position's logits straight from the context (only that row is computed).
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(vocab,))
        token = int(logits.argmax())
        llm.eval([token])
    t2 = time.perf_counter()
    ttft.append(t1 - t0)
    prefill.append(args.prompt_tokens / (t1 - t0))
    decode.append((args.new_tokens - 1) / (t2 - t1))
peer = {"load_s": load_s, "peak_rss_after_load_bytes": rss_load, "ttft_s": statistics.median(ttft),
        "first_ttft_s": ttft[0],
        "prefill_tokens_per_s": statistics.median(prefill), "decode_tokens_per_s": statistics.median(decode)}
# The memory-bandwidth bound of decode: the weight bytes one token reads (every tensor but the
# embedding table, of which a token reads one row, unless the head is tied to it; of a mixture of
# experts' expert tensors, the share its chosen experts hold) against the read bandwidth
# `layerwise bench kernels` measures in the same run.
reader = gguf.GGUFReader(args.model)
names = {t.name for t in reader.tensors}


def field_int(key):
    f = reader.fields.get(key)
    return int(f.parts[f.data[0]][0]) if f is not None else None


arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
experts, used = field_int(f"{arch}.expert_count"), field_int(f"{arch}.expert_used_count")
expert_share = used / experts if experts and used else 1.0
bytes_per_token = sum(int(t.n_bytes) * (expert_share if "_exps." in t.name else 1.0) for t in reader.tensors
                      if t.name != "token_embd.weight" or "output.weight" not in names)
bw = json.loads(subprocess.run([args.layerwise, "bench", "kernels", "--shapes", "128x128", "--levels", "automatic",
                                "--runs", "3", "--oracle-runs", "1", "--threads", str(threads)],
                               check=True, capture_output=True, text=True).stdout)["memory_read_gb_per_s"] * 1e9
bound = {"bytes_per_token": bytes_per_token, "read_bandwidth_bytes_per_s": bw,
         "bound_tokens_per_s": bw / bytes_per_token,
         "layerwise_share_of_bound": lw["decode_tokens_per_s"] * bytes_per_token / bw,
         "llama.cpp_share_of_bound": peer["decode_tokens_per_s"] * bytes_per_token / bw}
lw["peak_rss_bytes_after_generation"] = lw["peak_rss_bytes"]
peer["peak_rss_bytes_after_generation"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"bandwidth bound": bound, "llama.cpp": peer, "layerwise": {k: lw[k] for k in peer}, "threads": threads,
                  "layerwise dtype": args.dtype,
                  "ratios (layerwise / llama.cpp; load and ttft: llama.cpp / layerwise)": {
                      "decode": lw["decode_tokens_per_s"] / peer["decode_tokens_per_s"],
                      "prefill": lw["prefill_tokens_per_s"] / peer["prefill_tokens_per_s"],
                      "load": peer["load_s"] / lw["load_s"],
                      "ttft": peer["ttft_s"] / lw["ttft_s"],
                      # Load plus the first prompt: a zero-copy load's page reads land in the latter.
                      "load_and_first_ttft": (peer["load_s"] + peer["first_ttft_s"]) / (lw["load_s"] + lw["first_ttft_s"]),
                      "peak_rss_after_load": lw["peak_rss_after_load_bytes"] / peer["peak_rss_after_load_bytes"],
                      "peak_rss_after_generation": lw["peak_rss_bytes_after_generation"] / peer["peak_rss_bytes_after_generation"]}},
                 indent=1))
