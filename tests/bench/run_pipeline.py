#!/usr/bin/env python3
"""A pipeline across processes against one process, in one run: the same model and greedy workload
through `layerwise generate` alone and with its layers split with N `layerwise worker` processes on
127.0.0.1 (this machine's loopback: the link costs latency, not bandwidth). Prints decode tokens/s
of both (medians), their ratio, and the per-token cost of a stage hop:
(1 / split - 1 / alone) / hops, where a step makes one round trip to each worker.

usage: .venv/bin/python tests/bench/run_pipeline.py MODEL [--layerwise build/app/layerwise]
       [--workers 1] [--new-tokens 64] [--repeats 5] [--threads N]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import time

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--layerwise", default="build/app/layerwise")
ap.add_argument("--workers", type=int, default=1)
ap.add_argument("--new-tokens", type=int, default=64)
ap.add_argument("--repeats", type=int, default=5)
ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
args = ap.parse_args()

TOKEN = "bench-token"
workers, hosts = [], []
for _ in range(args.workers):
    p = subprocess.Popen([args.layerwise, "worker", "--listen", "127.0.0.1:0", "--token", TOKEN,
                          "--threads", str(args.threads)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    hosts.append(re.search(r"listening on (\S+)", line).group(1))
    workers.append(p)


def run(extra):
    out = subprocess.run([args.layerwise, "generate", args.model, "--ids", "1", "--greedy", "--json",
                          "--max-new-tokens", str(args.new_tokens), "--threads", str(args.threads)] + extra,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


try:
    pipeline = [a for h in hosts for a in ("--host", h)] + ["--token", TOKEN, "--split", "even"]
    alone, split, same = [], [], True
    for _ in range(args.repeats):  # interleaved, so both see the same machine state
        a, s = run([]), run(pipeline)
        alone.append(a["decode_tokens_per_s"])
        split.append(s["decode_tokens_per_s"])
        same = same and a["token_ids"] == s["token_ids"]
    ma, ms = statistics.median(alone), statistics.median(split)
    hop_s = (1 / ms - 1 / ma) / args.workers
    print(json.dumps({
        "model": args.model, "workers": args.workers, "threads": args.threads, "new_tokens": args.new_tokens,
        "decode_tokens_per_s": {"one process": ma, "pipeline": ms}, "ratio (pipeline / one process)": ms / ma,
        "per-token stage hop overhead_ms": hop_s * 1000, "same greedy tokens": same,
    }, indent=1))
finally:
    for p in workers:
        p.terminate()
        p.wait()
