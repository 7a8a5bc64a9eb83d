#!/usr/bin/env python3
"""Encoding speed of Layerwise's tokenizer next to Hugging Face `tokenizers`, on the same text in
the same run, single-threaded; and whether both give the same ids for the whole text.

  .venv/bin/python tests/bench/tokenizer_bench.py [--tokenizer PATH] [--text FILE] [--layerwise BIN]

--tokenizer  a tokenizer.json (default: ../shared/data/tokenizers/qwen3/tokenizer.json)
--text       UTF-8 text to encode (default: 1 MB of English prose, Python's standard-library
             docstrings, written to a temporary file)
--layerwise  the layerwise executable (default: build/app/layerwise); its figure comes from
             `layerwise tokenize TOKENIZER --bench FILE --json` (median of 5 runs)
"""
import argparse
import importlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # before tokenizers starts its thread pool
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("LAYERWISE_TEST_DATA", ROOT.parent / "shared" / "data"))
SIZE = 1_000_000


def english_text(size=SIZE):
    """Docstrings of the standard library: English prose, the same for a given Python version."""
    seen = set()
    parts = []
    total = 0
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in ("antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"):
            continue
        try:
            module = importlib.import_module(name)
        except Exception:  # platform-specific modules
            continue
        objects = [module]
        for _, value in sorted(vars(module).items()):
            if inspect.isclass(value) or inspect.isroutine(value):
                objects.append(value)
            if inspect.isclass(value):
                objects += [v for _, v in sorted(vars(value).items()) if inspect.isroutine(v)]
        for obj in objects:
            doc = inspect.getdoc(obj)
            if not doc or doc in seen or len(doc) < 60:
                continue
            seen.add(doc)
            parts.append(doc)
            total += len(doc.encode()) + 2
            if total >= size:
                text = "\n\n".join(parts).encode()[:size]
                return text.decode("utf-8", errors="ignore")
    return "\n\n".join(parts)


def time_hf(tokenizer, text, runs=5):
    rates = []
    ids = None
    for _ in range(runs):
        t0 = time.perf_counter()
        ids = tokenizer.encode(text, add_special_tokens=False).ids
        rates.append(len(text.encode()) / 1e6 / (time.perf_counter() - t0))
    return statistics.median(rates), ids


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", default=str(DATA / "tokenizers" / "qwen3" / "tokenizer.json"))
    parser.add_argument("--text")
    parser.add_argument("--layerwise", default=str(ROOT / "build" / "app" / "layerwise"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.text:
            path = Path(args.text)
            text = path.read_text(encoding="utf-8")
        else:
            text = english_text()
            path = Path(tmp) / "english.txt"
            path.write_text(text, encoding="utf-8")
        size = len(text.encode())
        hf = Tokenizer.from_file(args.tokenizer)
        hf_rate, hf_ids = time_hf(hf, text)
        result = {"tokenizer": args.tokenizer, "bytes": size, "hf_tokens": len(hf_ids), "hf_mb_per_s": round(hf_rate, 2),
                  "hf_version": tokenizers.__version__}

        if Path(args.layerwise).exists():
            run = subprocess.run([args.layerwise, "tokenize", args.tokenizer, "--bench", str(path), "--json"],
                                 capture_output=True, text=True, check=True)
            ours = json.loads(run.stdout)
            result["layerwise_mb_per_s"] = round(ours["mb_per_s"], 2)
            result["ratio_layerwise_over_hf"] = round(ours["mb_per_s"] / hf_rate, 2)
            encoded = subprocess.run([args.layerwise, "tokenize", args.tokenizer, "-", "--no-special", "--json"],
                                     input=text.encode(), capture_output=True, check=True)
            result["same_ids"] = json.loads(encoded.stdout)["ids"] == hf_ids
        else:
            result["layerwise"] = f"{args.layerwise} not found: build it, or pass --layerwise"

    print(f"text: {size} bytes; tokenizer: {args.tokenizer}")
    print(f"HF tokenizers {tokenizers.__version__}: {result['hf_mb_per_s']} MB/s (median of 5, one thread)")
    if "layerwise_mb_per_s" in result:
        print(f"layerwise: {result['layerwise_mb_per_s']} MB/s (median of 5, one thread); "
              f"ratio {result['ratio_layerwise_over_hf']}; same ids: {result['same_ids']}")
    print(json.dumps(result))
    return 0 if result.get("same_ids", True) else 1


if __name__ == "__main__":
    sys.exit(main())
