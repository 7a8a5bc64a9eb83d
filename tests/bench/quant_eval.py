#!/usr/bin/env python3
"""Perplexity of a model quantized every way Layerwise can, in one run: float32, bitsandbytes
int8 / nf4 / fp4, and AutoGPTQ-format checkpoints by round-to-nearest (RTN) and by GPTQ (with and
without act-order) at the same bits and group sizes. Each row is `layerwise quantize` then
`layerwise eval --perplexity`; the table is printed, and the script fails when GPTQ does not beat
RTN at the same bits and group size.

  .venv/bin/python tests/bench/quant_eval.py [--model DIR] [--text FILE] [--calibration FILE]
                                             [--samples N] [--seq-len N] [--context N] [--stride N]
                                             [--threads N] [--layerwise BIN] [--json FILE]

--model        default: ../shared/data/models/stories260K
--text         the evaluation text (default: the model's golden story,
               stories260K-llama2c/expected_greedy_bos_200.txt)
--calibration  GPTQ calibration text: a file, "default" (what `layerwise quantize` uses: the King
               James Bible that packaging/setup.sh installs), or "self" (the default here): 64
               stories the model itself samples (`layerwise generate`, temperature 1, seeds
               1..64, 400 tokens each after "Once upon a time"), in-domain and distinct from the
               evaluation text
--threads      CPU threads for every step (default 1: stories260K is too small to gain from more)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("LAYERWISE_TEST_DATA", ROOT.parent / "shared" / "data"))

# (label, quantize arguments or None for the model as it is, the GPTQ/RTN pair key)
ROWS = [
    ("float32", None, None),
    ("int8 (bitsandbytes)", ["--method", "int8"], None),
    ("nf4 (bitsandbytes)", ["--method", "nf4"], None),
    ("fp4 (bitsandbytes)", ["--method", "fp4"], None),
    ("RTN 4-bit g128", ["--method", "rtn", "--bits", "4", "--group-size", "128"], ("4", "128")),
    ("GPTQ 4-bit g128", ["--method", "gptq", "--bits", "4", "--group-size", "128"], ("4", "128")),
    ("GPTQ 4-bit g128 act-order", ["--method", "gptq", "--bits", "4", "--group-size", "128", "--desc-act"], ("4", "128")),
    ("RTN 3-bit g128", ["--method", "rtn", "--bits", "3", "--group-size", "128"], ("3", "128")),
    ("GPTQ 3-bit g128", ["--method", "gptq", "--bits", "3", "--group-size", "128"], ("3", "128")),
    ("GPTQ 3-bit g128 act-order", ["--method", "gptq", "--bits", "3", "--group-size", "128", "--desc-act"], ("3", "128")),
    ("RTN 3-bit g32", ["--method", "rtn", "--bits", "3", "--group-size", "32"], ("3", "32")),
    ("GPTQ 3-bit g32", ["--method", "gptq", "--bits", "3", "--group-size", "32"], ("3", "32")),
    ("RTN 2-bit g32", ["--method", "rtn", "--bits", "2", "--group-size", "32"], ("2", "32")),
    ("GPTQ 2-bit g32", ["--method", "gptq", "--bits", "2", "--group-size", "32"], ("2", "32")),
]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DATA / "models" / "stories260K"))
    ap.add_argument("--text", default=str(DATA / "models" / "stories260K-llama2c" / "expected_greedy_bos_200.txt"))
    ap.add_argument("--calibration", default="self")
    ap.add_argument("--samples", type=int, default=128)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--stride", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layerwise", default=os.environ.get("LAYERWISE_BIN", str(ROOT / "build" / "app" / "layerwise")))
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="layerwise-quant-eval-") as tmp:
        calibration = None if a.calibration == "default" else a.calibration
        if a.calibration == "self":
            calibration = str(Path(tmp) / "self.txt")
            stories = []
            for seed in range(1, 65):
                g = run([a.layerwise, "generate", a.model, "--prompt", "Once upon a time", "--max-new-tokens", "400",
                         "--temperature", "1", "--seed", str(seed), "--threads", str(a.threads), "--json"])
                stories.append("Once upon a time" + g["text"].strip())
            Path(calibration).write_text("\n".join(stories) + "\n")
        for i, (label, quant, pair) in enumerate(ROWS):
            folder = a.model
            info = {}
            t0 = time.monotonic()
            if quant is not None:
                folder = str(Path(tmp) / f"m{i}")
                cmd = [a.layerwise, "quantize", a.model, *quant, "--out", folder, "--json"]
                if quant[1] in ("gptq", "rtn"):
                    cmd += ["--threads", str(a.threads), "--device", "cpu"]
                if quant[1] == "gptq":
                    cmd += ["--samples", str(a.samples), "--seq-len", str(a.seq_len)]
                    if calibration:
                        cmd += ["--calibration", calibration]
                info = run(cmd)
            seconds = time.monotonic() - t0
            ev = run([a.layerwise, "eval", folder, "--perplexity", a.text, "--context", str(a.context), "--stride", str(a.stride),
                      "--threads", str(a.threads)])
            rows.append({"label": label, "pair": pair, "method": quant[1] if quant else "float32",
                         "perplexity": ev["perplexity"], "tokens": ev["tokens"],
                         "quantized_linears": info.get("quantized_linears"), "kept_linears": info.get("kept_linears", 0),
                         "weight_bytes": info.get("weight_bytes"), "quantize_seconds": round(seconds, 2)})
            print(f"  {label}: perplexity {ev['perplexity']:.4f}", file=sys.stderr)

    base = rows[0]["perplexity"]
    print(f"\nmodel {a.model}\ntext {a.text} ({rows[0]['tokens']} scored tokens, context {a.context}, stride {a.stride})")
    source = {"self": "64 stories sampled from the model", "default": "the default text (King James Bible)"}.get(a.calibration, a.calibration)
    print(f"GPTQ calibration: {a.samples} x {a.seq_len} tokens of {source}\n")
    print("| method | perplexity | vs float32 | linears quantized | quantize s |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        q = "all" if r["quantized_linears"] is None else str(r["quantized_linears"])
        if r["kept_linears"]:
            q += f" ({r['kept_linears']} kept)"
        if r["method"] == "float32":
            q = "-"
        print(f"| {r['label']} | {r['perplexity']:.4f} | {100 * (r['perplexity'] / base - 1):+.2f}% | {q} | {r['quantize_seconds']} |")
    failed = False
    for pair in sorted({r["pair"] for r in rows if r["pair"]}):
        rtn = [r for r in rows if r["pair"] == pair and r["method"] == "rtn"]
        for g in (r for r in rows if r["pair"] == pair and r["method"] == "gptq"):
            ok = g["perplexity"] < rtn[0]["perplexity"]
            failed |= not ok
            print(f"{'ok' if ok else 'FAIL'}: {g['label']} {g['perplexity']:.4f} vs {rtn[0]['label']} {rtn[0]['perplexity']:.4f}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
