#!/usr/bin/env python3
"""Records what AutoGPTQ 0.7.1's own GPTQ class (auto_gptq/quantization/gptq.py + quantizer.py)
computes for one small linear layer, so the GPTQ suite compares Layerwise's algorithm against it.

The package's __init__ does not import with current transformers, so the two modules are loaded
by file path. Everything runs in float32 on the CPU.

Outputs (committed; CI needs none of these packages), under tests/fixtures/gptq_algo/:
  inputs.safetensors   weight [24, 192] (float32), calibration samples x [4, 12, 192],
                       the Hessian AutoGPTQ accumulated from them (add_batch once per sample)
  <config>.safetensors per configuration: codes (uint8 [out, in], the integers q of
                       clamp(round(w / scale) + zero, 0, maxq)), scales (float32 [groups, out]),
                       zeros (int32 [groups, out]), g_idx (int32 [in]),
                       loss (float64 [1]: AutoGPTQ's "avg loss", sum of losses / samples)
  configs.json         the configurations (bits, group_size, sym, desc_act, static_groups,
                       damp_percent, dead columns)
The fake-quantized weight fasterquant leaves in the layer equals scales[g_idx] * (codes -
zeros[g_idx]) exactly (asserted here), so it is not stored.

Run: .venv/bin/python tests/reference/make_gptq_algo_fixtures.py
"""
import importlib.util
import json
import logging
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gptq_algo"


def load_autogptq_gptq():
    spec = importlib.util.find_spec("auto_gptq")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("auto-gptq is not installed: .venv/bin/pip install --no-deps auto-gptq==0.7.1")
    base = Path(list(spec.submodule_search_locations)[0]) / "quantization"
    package = types.ModuleType("agptq_quantization")
    package.__path__ = [str(base)]
    sys.modules["agptq_quantization"] = package
    modules = {}
    for name in ("quantizer", "gptq"):
        s = importlib.util.spec_from_file_location(f"agptq_quantization.{name}", base / f"{name}.py")
        m = importlib.util.module_from_spec(s)
        sys.modules[s.name] = m
        s.loader.exec_module(m)
        modules[name] = m
    return modules["gptq"]


gptq_module = load_autogptq_gptq()
torch.cuda.synchronize = lambda *a, **k: None  # fasterquant synchronizes; there is no GPU here
torch.set_num_threads(1)  # one thread: float sums in one order, as the C++ test runs them


class LossCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.values = []

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("avg loss: "):
            self.values.append(float(msg[len("avg loss: "):]))


capture = LossCapture()
gptq_module.logger.addHandler(capture)
gptq_module.logger.setLevel(logging.INFO)

OUT_FEATURES, IN_FEATURES, SAMPLES, ROWS = 24, 192, 4, 12
torch.manual_seed(20240611)
weight = torch.randn(OUT_FEATURES, IN_FEATURES) * 0.05
weight[3, 17] = 0.6  # an outlier, so groups differ
weight[:, 100] *= 4.0
# Columns of very different activation scale, so act-order changes the order.
column_scale = torch.exp(torch.randn(IN_FEATURES) * 0.8)
x = torch.randn(SAMPLES, ROWS, IN_FEATURES) * column_scale
DEAD = [5, 77, 150]
x_dead = x.clone()
x_dead[:, :, DEAD] = 0


def run(cfg):
    layer = torch.nn.Linear(IN_FEATURES, OUT_FEATURES, bias=False)
    layer.weight.data = weight.clone()
    g = gptq_module.GPTQ(layer)
    g.quantizer.configure(cfg["bits"], perchannel=True, sym=cfg["sym"], mse=False)
    inputs = x_dead if cfg["dead"] else x
    for s in range(SAMPLES):
        g.add_batch(inputs[s : s + 1], None)  # AutoGPTQ's hook: one calibration sample per call
    hessian = g.H.clone()
    before = len(capture.values)
    scale, zero, g_idx = g.fasterquant(percdamp=cfg["damp_percent"], group_size=cfg["group_size"],
                                       actorder=cfg["desc_act"], static_groups=cfg["static_groups"])
    assert len(capture.values) == before + 1
    q = layer.weight.data.clone()
    scales = scale.t().contiguous().float()  # [groups, out]
    zeros = zero.t().contiguous()
    assert torch.equal(zeros, zeros.round())
    # The integer codes behind the fake-quantized weight.
    s_col = scales[g_idx.long()].t()
    z_col = zeros[g_idx.long()].t()
    codes = torch.round(q / s_col + z_col)
    # fasterquant's weight is scale * (q - zero), float for float: the codes, scales and zeros
    # determine it exactly, so it is not stored.
    assert torch.equal(s_col * (codes - z_col), q)
    assert codes.min() >= 0 and codes.max() <= 2 ** cfg["bits"] - 1
    return hessian, {
        "codes": codes.to(torch.uint8).contiguous(),
        "scales": scales,
        "zeros": zeros.to(torch.int32).contiguous(),
        "g_idx": g_idx.to(torch.int32).contiguous(),
        "loss": torch.tensor([capture.values[-1]], dtype=torch.float64),
    }


CONFIGS = {
    "b4_g32_sym": dict(bits=4, group_size=32, sym=True, desc_act=False, static_groups=False),
    "b4_g32_asym": dict(bits=4, group_size=32, sym=False, desc_act=False, static_groups=False),
    "b4_g32_sym_act": dict(bits=4, group_size=32, sym=True, desc_act=True, static_groups=False),
    "b4_g64_asym_act": dict(bits=4, group_size=64, sym=False, desc_act=True, static_groups=False),
    "b4_g32_sym_static": dict(bits=4, group_size=32, sym=True, desc_act=False, static_groups=True),
    "b4_g32_asym_act_static": dict(bits=4, group_size=32, sym=False, desc_act=True, static_groups=True),
    "b3_g64_sym": dict(bits=3, group_size=64, sym=True, desc_act=False, static_groups=False),
    "b8_g32_asym": dict(bits=8, group_size=32, sym=False, desc_act=False, static_groups=False),
    "b2_g32_asym": dict(bits=2, group_size=32, sym=False, desc_act=False, static_groups=False),
    # 50 does not divide the 192 columns: groups of 50, 50, 50 and 42, as AutoGPTQ makes them.
    "b4_g50_asym": dict(bits=4, group_size=50, sym=False, desc_act=False, static_groups=False),
    "b4_g50_sym_act": dict(bits=4, group_size=50, sym=True, desc_act=True, static_groups=False),
    "b4_gnone_sym": dict(bits=4, group_size=-1, sym=True, desc_act=False, static_groups=False),
    "b4_gnone_asym_act": dict(bits=4, group_size=-1, sym=False, desc_act=True, static_groups=False),
    "b4_g32_asym_dead": dict(bits=4, group_size=32, sym=False, desc_act=False, static_groups=False, dead=True),
    "b4_gnone_sym_dead": dict(bits=4, group_size=-1, sym=True, desc_act=False, static_groups=False, dead=True),
    "b4_g64_sym_act_dead_damp": dict(bits=4, group_size=64, sym=True, desc_act=True, static_groups=False, dead=True,
                                     damp_percent=0.1),
}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    hessians = {}
    configs = {}
    for name, cfg in CONFIGS.items():
        cfg = {"damp_percent": 0.01, "dead": False, **cfg}
        hessian, tensors = run(cfg)
        key = "dead" if cfg["dead"] else "live"
        if key in hessians:
            assert torch.equal(hessians[key], hessian)
        hessians[key] = hessian
        save_file(tensors, str(OUT / f"{name}.safetensors"))
        configs[name] = {**cfg, "dead_columns": DEAD if cfg["dead"] else []}
        print(f"{name}: avg loss {tensors['loss'].item():.6g}")
    # Zero activations give zero Hessian rows and columns and leave every other entry as it was.
    masked = hessians["live"].clone()
    masked[DEAD, :] = 0
    masked[:, DEAD] = 0
    assert torch.equal(masked, hessians["dead"]), "the dead-column Hessian is not the masked live one"
    save_file({"weight": weight.contiguous(), "x": x.contiguous(), "hessian": hessians["live"].contiguous()},
              str(OUT / "inputs.safetensors"))
    (OUT / "configs.json").write_text(json.dumps({"samples": SAMPLES, "configs": configs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
