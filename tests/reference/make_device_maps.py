#!/usr/bin/env python3
"""Device maps computed by accelerate, for the planner's parity tests.

For empty-weight models (tiny configs of every architecture, and the real-size presets) over a
grid of max_memory limits x strategies x dtypes x no-split settings, runs exactly what
`from_pretrained(device_map=STRATEGY, max_memory=...)` did through accelerate:

    max_memory = get_balanced_memory(model, max_memory, no_split, dtype, low_zero)  # not for "sequential"
    max_memory = get_max_memory(max_memory)                                           # for "sequential"
    device_map = infer_auto_device_map(model, max_memory, no_split, dtype)

and records the inputs and the (cleaned) device map, or the error accelerate raised.

Output: tests/fixtures/device_maps.json
Run: .venv/bin/python tests/reference/make_device_maps.py
"""
import itertools
import json
import random
import sys
from pathlib import Path

import accelerate
import torch
from accelerate.utils import compute_module_sizes, get_balanced_memory, get_max_memory, infer_auto_device_map
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).parent))
from make_checkpoints import TINY  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

STRATEGIES = ["auto", "balanced", "balanced_low_0", "sequential"]


def build(model_type, cfg, dtype):
    config = AutoConfig.for_model(model_type, **cfg)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def limit_sets(total, rng, count):
    """Uneven limits around the model size: single GPU, several GPUs, CPU only, disk spill."""
    sets = []
    fractions = [0.05, 0.15, 0.3, 0.45, 0.6, 0.8, 1.1, 1.6]
    for n_gpus in (0, 1, 2, 3, 4):
        for _ in range(count):
            mm = {}
            for g in range(n_gpus):
                mm[g] = int(total * rng.choice(fractions) / max(1, n_gpus - 1))
            if n_gpus == 0 or rng.random() < 0.8:
                mm["cpu"] = int(total * rng.choice(fractions))
            if rng.random() < 0.15:
                mm["disk"] = int(total * 2)
            if rng.random() < 0.3:
                # also as strings, the way users write them
                key = rng.choice(list(mm))
                mm[key] = f"{max(mm[key], 1) / 2**20:.3f}MiB" if rng.random() < 0.5 else f"{max(mm[key], 1000) / 1e3:.1f}KB"
            sets.append(mm)
    return sets


def run_case(model, mm, strategy, dtype, no_split):
    mm = dict(mm)
    if strategy != "sequential":
        mm = get_balanced_memory(model, max_memory=mm, no_split_module_classes=no_split, dtype=dtype,
                                 low_zero=(strategy == "balanced_low_0"))
    else:
        mm = get_max_memory(mm)
    return infer_auto_device_map(model, max_memory=mm, no_split_module_classes=no_split, dtype=dtype)


def main():
    rng = random.Random(20261125)
    models = []
    for key, cfg in TINY.items():
        cfg = dict(cfg)
        models.append((f"tiny-{key}", cfg.pop("model_type"), cfg, torch.float32, 6))
    for path in sorted((ROOT / "resources" / "presets").glob("*.json")):
        cfg = json.loads(path.read_text())
        cfg.pop("layerwise", None)
        models.append((path.stem, cfg.pop("model_type"), cfg, torch.bfloat16, 1))

    cases = []
    for name, model_type, cfg, build_dtype, per_count in models:
        model = build(model_type, cfg, build_dtype)
        total = compute_module_sizes(model)[""]
        no_split_classes = list(model._no_split_modules)
        dtypes = [None, "float16"] if build_dtype == torch.float32 else [None, "float32"]
        for mm in limit_sets(total, rng, per_count):
            for strategy, dtype, no_split in itertools.product(STRATEGIES, dtypes, (True, False)):
                if per_count == 1 and not no_split:
                    continue  # real-size models: keep the grid small
                if strategy != "sequential" and "disk" in mm:
                    continue  # accelerate's get_balanced_memory raises on a "disk" key
                ns = no_split_classes if no_split else []
                entry = {"model": name, "max_memory": [[k, v] for k, v in mm.items()], "strategy": strategy,
                         "dtype": dtype, "no_split": no_split}
                try:
                    dm = run_case(model, mm, strategy, dtype, ns)
                    entry["device_map"] = [[k, v] for k, v in dm.items()]
                except Exception as e:  # recorded: the planner must refuse the same inputs
                    entry["error"] = f"{type(e).__name__}: {e}"
                cases.append(entry)
        print(name, len(cases), file=sys.stderr)
    out = {
        "accelerate": accelerate.__version__,
        "models": {name: {"model_type": mt, "config": cfg, "dtype": str(bd).replace("torch.", "")}
                   for name, mt, cfg, bd, _ in models},
        "cases": cases,
    }
    (ROOT / "tests" / "fixtures" / "device_maps.json").write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(len(cases), "cases", file=sys.stderr)


if __name__ == "__main__":
    main()
