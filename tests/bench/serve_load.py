#!/usr/bin/env python3
"""Load test of an OpenAI-compatible server on loopback: one streaming client alone, then N
streaming clients at once for a fixed time. Prints one JSON object: aggregate completion
tokens/s with N clients and with one, time to first token (p50, p99), errors.

Runs `layerwise serve` or llama.cpp's server (`python -m llama_cpp.server`, llama-cpp-python's
[server] extras) on the same GGUF file with the same context and threads, so the two can be
compared in one run:

  .venv/bin/python tests/bench/serve_load.py --server layerwise --model FILE.gguf
  .venv/bin/python tests/bench/serve_load.py --server llama-cpp --model FILE.gguf
  .venv/bin/python tests/bench/serve_load.py --compare --model FILE.gguf   (both, with ratios)
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

import openai

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMPTS = ["Tell me about the sea.", "Write a short poem about autumn.", "Explain how a bicycle works.",
           "Describe a busy market.", "What makes a good friend?", "Describe a thunderstorm.",
           "Give advice to a new gardener.", "Tell a story about a lost key."]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind, model, context, threads, parallel):
    port = free_port()
    if kind == "layerwise":
        binary = os.environ.get("LAYERWISE_BIN", os.path.join(ROOT, "build", "app", "layerwise"))
        cmd = [binary, "serve", model, "--port", str(port), "--context", str(context), "--threads", str(threads),
               "--parallel", str(parallel)]
    else:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", model, "--port", str(port), "--n_ctx", str(context),
               "--n_threads", str(threads), "--n_threads_batch", str(threads),
               # By default a new request interrupts the one streaming: let requests take turns instead.
               "--interrupt_requests", "False"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=600)
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            client.models.list()
            return proc, client
        except Exception:
            if proc.poll() is not None:
                sys.exit(f"{' '.join(cmd)} exited with {proc.returncode}")
            time.sleep(0.5)
    proc.kill()
    sys.exit(f"{kind} did not start")


def one_request(client, prompt, max_tokens, seed):
    """(time to first token, completion tokens, seconds) of one streaming chat request."""
    t0 = time.perf_counter()
    first, pieces = None, 0
    stream = client.chat.completions.create(model="m", stream=True, max_tokens=max_tokens, temperature=0.7, seed=seed,
                                            messages=[{"role": "user", "content": prompt}])
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces += 1
            if first is None:
                first = time.perf_counter() - t0
    return first if first is not None else time.perf_counter() - t0, pieces, time.perf_counter() - t0


def run_clients(client, clients, seconds, max_tokens):
    stop_at = time.time() + seconds
    ttfts, tokens, errors = [], [0], [0]
    lock = threading.Lock()

    def worker(k):
        n = 0
        while time.time() < stop_at:
            try:
                ttft, pieces, _ = one_request(client, PROMPTS[(k + n) % len(PROMPTS)], max_tokens, k * 1000 + n)
                with lock:
                    ttfts.append(ttft)
                    tokens[0] += pieces
            except Exception as e:  # counted, and the run goes on
                with lock:
                    errors[0] += 1
                print(f"client {k}: {e}", file=sys.stderr)
            n += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttfts.sort()
    return {"clients": clients, "seconds": wall, "requests": len(ttfts), "errors": errors[0],
            "completion_tokens": tokens[0], "tokens_per_s": tokens[0] / wall,
            "ttft_p50_s": statistics.median(ttfts) if ttfts else None,
            "ttft_p99_s": ttfts[min(len(ttfts) - 1, int(len(ttfts) * 0.99))] if ttfts else None}


def measure(kind, args):
    proc, client = start(kind, args.model, args.context, args.threads, args.parallel or args.clients)
    try:
        one_request(client, PROMPTS[0], 8, 0)  # warm-up
        single = run_clients(client, 1, args.single_seconds, args.max_tokens)
        many = run_clients(client, args.clients, args.seconds, args.max_tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"server": kind, "single": single, "concurrent": many,
            "concurrent_over_single": many["tokens_per_s"] / single["tokens_per_s"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", choices=["layerwise", "llama-cpp"], default="layerwise")
    ap.add_argument("--compare", action="store_true", help="run both servers, one after the other")
    ap.add_argument("--model", required=True)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--single-seconds", type=float, default=20)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=0,
                    help="layerwise: requests decoded together (default: --clients); llama_cpp.server runs one at a time")
    args = ap.parse_args()
    if not args.compare:
        print(json.dumps(measure(args.server, args), indent=1))
        return
    ours, peer = measure("layerwise", args), measure("llama-cpp", args)
    print(json.dumps({"layerwise": ours, "llama_cpp": peer,
                      "concurrent_tokens_per_s_ratio": ours["concurrent"]["tokens_per_s"] / peer["concurrent"]["tokens_per_s"],
                      "single_tokens_per_s_ratio": ours["single"]["tokens_per_s"] / peer["single"]["tokens_per_s"]},
                     indent=1))


if __name__ == "__main__":
    main()
