#!/usr/bin/env python3
"""Device maps that transformers' from_pretrained computes, for `layerwise plan --accelerate`.

`from_pretrained(device_map=STRATEGY, max_memory=LIMITS, dtype=DTYPE)` resolves the dtype
(`"auto"`: the config's), builds the empty model in that dtype on the meta device and calls
`transformers.integrations.accelerate._get_device_map`, which runs transformers' own
get_balanced_memory / get_max_memory / infer_auto_device_map (derived from accelerate's, with
accelerate's get_max_memory and clean_device_map underneath). This script does exactly those
steps, with the same functions, and records the inputs and the map (or the exception raised).

The grid: tiny configs of every architecture (tied and untied embeddings; GPT-2, GPT-NeoX,
Llama, Mistral, Qwen2, Qwen3 and a Gemma-like layout: tied, a vocabulary much larger than the
hidden size, wide heads), the real-size presets, every dtype against the config's own
(float16, bfloat16, float32, and none = "auto"), every strategy, and limit tables with 0-8
GPUs, GPUs left out or at 0, `cpu` and `disk` present or absent or 0, limits as integers and as
strings ("10GiB", "10GB", "10MiB", ...), and tables where the model fits nowhere but on disk.

Output: tests/fixtures/device_maps.json (one compact file)
Run: .venv/bin/python tests/reference/make_device_maps.py   (transformers 5.24, accelerate 1.15)
"""
import copy
import json
import logging
import random
import sys
import warnings
from pathlib import Path

import accelerate
import torch
import transformers
from transformers import AutoConfig
from transformers.integrations.accelerate import _get_device_map, compute_module_sizes
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING
from transformers.modeling_utils import _get_dtype
from transformers.utils import ContextManagers

sys.path.insert(0, str(Path(__file__).parent))
from make_checkpoints import TINY  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STRATEGIES = ["auto", "balanced", "balanced_low_0", "sequential"]
DTYPES = [None, "float16", "bfloat16", "float32"]

# Extra tiny layouts beyond make_checkpoints' (each with its config dtype, so "auto" differs by model).
EXTRA = {
    # Gemma's proportions: tied, vocabulary >> hidden, head_dim wider than hidden / heads.
    "gemmalike": dict(model_type="llama", hidden_size=32, intermediate_size=96, num_hidden_layers=3,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=32, vocab_size=1024,
                      max_position_embeddings=64, tie_word_embeddings=True, dtype="bfloat16"),
    "qwen3tied": dict(model_type="qwen3", hidden_size=16, intermediate_size=48, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, vocab_size=200,
                      max_position_embeddings=64, tie_word_embeddings=True, dtype="float16"),
    "gpt2wide": dict(model_type="gpt2", n_embd=32, n_layer=5, n_head=4, vocab_size=50, n_positions=64,
                     dtype="float16"),
    "neoxdeep": dict(model_type="gpt_neox", hidden_size=16, intermediate_size=64, num_hidden_layers=6,
                     num_attention_heads=2, vocab_size=40, max_position_embeddings=32, rotary_pct=1.0,
                     tie_word_embeddings=False, dtype="bfloat16"),
}
OWN_DTYPE = {"llama": "float32", "llama31": "bfloat16", "mistral": "float16", "qwen2": "float32",
             "qwen2yarn": "float32", "llamadynamic": "float32", "llamalongrope": "float32", "qwen3": "bfloat16",
             "gpt2": "float32", "gpt_neox": "float16"}


def build(model_type, cfg, own_dtype, dtype):
    """The empty model exactly as from_pretrained builds it before computing the device map."""
    config = AutoConfig.for_model(model_type, **cfg)
    if getattr(config, "dtype", None) is None:
        config.dtype = own_dtype  # what "auto" reads from the checkpoint's first floating tensor
    cls = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    config, dtype = _get_dtype("auto" if dtype is None else dtype, None, config, None, None, True)
    with ContextManagers(cls.get_init_context(dtype, False, False, None)):
        return cls(config)


def as_string(value, rng):
    """A limit as users write it; the recorded string is what transformers parses."""
    unit, scale = rng.choice([("GiB", 2**30), ("GB", 10**9), ("MiB", 2**20), ("MB", 10**6), ("KiB", 2**10),
                              ("KB", 10**3), ("gb", 10**9), ("Mb", 10**6)])
    number = value / scale
    text = f"{number:.0f}" if rng.random() < 0.3 else f"{number:.3f}".rstrip("0").rstrip(".")
    return (text or "0") + unit


def limit_tables(total, largest, rng, count):
    """Random max_memory tables around the model's size (and its largest block)."""
    tables = []
    gpu_fractions = [0.05, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5, 2.5]
    cpu_fractions = [0.0, 0.1, 0.3, 0.6, 1.0, 1.5, 3.0, 5.0]
    for _ in range(count):
        n_gpus = rng.choice([0, 1, 1, 2, 2, 3, 4, 5, 6, 8])
        mm = {}
        for g in range(n_gpus):
            r = rng.random()
            if r < 0.08 and n_gpus > 1:
                continue  # left out: accelerate gives it nothing
            if r < 0.14:
                mm[g] = 0
            elif r < 0.24:
                mm[g] = int(largest * rng.choice([0.5, 1.0, 1.5, 2.2]))
            else:
                mm[g] = int(total * rng.choice(gpu_fractions) / n_gpus) + rng.randrange(0, 4096)
        r = rng.random()
        if r < 0.65 or not mm:
            mm["cpu"] = int(total * rng.choice(cpu_fractions)) + rng.randrange(0, 4096)
        elif r < 0.75:
            mm["cpu"] = 0
        if rng.random() < 0.3:
            mm["disk"] = int(total * rng.choice([0.0, 0.5, 3.0]))
        if rng.random() < 0.1:  # fits nowhere but on disk
            for k in mm:
                mm[k] = rng.randrange(0, max(1, largest // 4))
        for k in list(mm):
            if rng.random() < 0.3:
                mm[k] = as_string(mm[k], rng)
        tables.append(mm)
    return tables


def main():
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    accelerate.utils.modeling.logger.setLevel(logging.ERROR)
    rng = random.Random(20261205)

    models = []  # name, model_type, config, own dtype, tables per (dtype, strategy)
    for key, cfg in list(TINY.items()) + list(EXTRA.items()):
        cfg = dict(cfg)
        own = cfg.pop("dtype", None) or OWN_DTYPE[key]
        models.append((f"tiny-{key}", cfg.pop("model_type"), cfg, own, 4))
    for path in sorted((ROOT / "resources" / "presets").glob("*.json")):
        cfg = json.loads(path.read_text())
        cfg.pop("layerwise", None)
        own = cfg.get("torch_dtype", cfg.get("dtype")) or "float32"
        models.append((path.stem, cfg.pop("model_type"), cfg, own, 2))

    cases = []
    for name, model_type, cfg, own, per in models:
        for dtype in DTYPES:
            model = build(model_type, cfg, own, dtype)
            sizes, leaves = compute_module_sizes(model)
            total = sizes[""]
            largest = max(leaves.values())
            reported = []
            if name == "Llama-3.1-8B" and dtype == "float32":
                reported = [{0: 21162913260, "cpu": 14228702746}, {0: 21162913260}]  # the tables of the bug report
            for strategy in STRATEGIES:
                for mm in limit_tables(total, largest, rng, per) + reported:
                    case = [name, dtype, strategy, [[k, v] for k, v in mm.items()]]
                    try:
                        dm = _get_device_map(model, strategy, copy.deepcopy(mm), None)
                        case.append([[k, v] for k, v in dm.items()])
                    except Exception as e:  # recorded: the planner must refuse the same inputs
                        case.append(f"{type(e).__name__}: {e}")
                    cases.append(case)
            del model
        print(name, len(cases), file=sys.stderr)
    out = {
        "generator": "tests/reference/make_device_maps.py",
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "case": ["model", "dtype (null: auto)", "strategy", "max_memory [[key, limit]...]",
                 "device_map [[module, device]...] or the exception raised"],
        "models": {name: {"model_type": mt, "config": cfg, "dtype": own} for name, mt, cfg, own, _ in models},
        "cases": cases,
    }
    head = json.dumps({k: v for k, v in out.items() if k != "cases"}, separators=(",", ":"))
    rows = ",\n".join(json.dumps(c, separators=(",", ":")) for c in cases)  # one case per line: readable diffs
    (ROOT / "tests" / "fixtures" / "device_maps.json").write_text(head[:-1] + ',"cases":[\n' + rows + "\n]}\n")
    print(len(cases), "cases", file=sys.stderr)


if __name__ == "__main__":
    main()
