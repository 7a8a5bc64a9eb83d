#!/usr/bin/env python3
"""Fixtures for the checkpoint readers and size parsing, produced by the upstream libraries.

  tests/fixtures/formats/all_dtypes.safetensors  one tensor per safetensors dtype (safetensors.torch)
  tests/fixtures/formats/all_dtypes.json         their values as float64 lists, as torch reads them
  tests/fixtures/formats/all_dtypes.bin          the same tensors through torch.save (a strided view too)
  tests/fixtures/formats/code_execution.bin      a torch.save'd file whose pickle calls os.system
                                                 (never unpickled by Layerwise: it must be refused)
  tests/fixtures/sizes.json                      accelerate's convert_file_size_to_int on many strings

Run: .venv/bin/python tests/reference/make_format_fixtures.py
"""
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from accelerate.utils.modeling import convert_file_size_to_int

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "formats"
OUT.mkdir(parents=True, exist_ok=True)

base = torch.tensor([[0.0, 1.5, -2.25], [3.0, -0.5, 7.0]], dtype=torch.float64)
tensors = {
    "f64": base.clone(),
    "f32": base.float(),
    "f16": base.half(),
    "bf16": base.bfloat16(),
    "f8_e4m3": base.to(torch.float8_e4m3fn),
    "f8_e5m2": base.to(torch.float8_e5m2),
    "i64": torch.tensor([[-(2**40), 1, 2], [3, 4, 5]], dtype=torch.int64),
    "i32": torch.tensor([[-(2**30), 1, 2], [3, 4, 5]], dtype=torch.int32),
    "i16": torch.tensor([[-30000, 1, 2], [3, 4, 5]], dtype=torch.int16),
    "i8": torch.tensor([[-128, 127, 2], [3, 4, 5]], dtype=torch.int8),
    "u8": torch.tensor([[255, 0, 2], [3, 4, 5]], dtype=torch.uint8),
    "u16": torch.tensor([[65535, 0, 2], [3, 4, 5]], dtype=torch.uint16),
    "u32": torch.tensor([[4000000000, 0, 2], [3, 4, 5]], dtype=torch.uint32),
    "u64": torch.tensor([[2**50, 0, 2], [3, 4, 5]], dtype=torch.uint64),
    "bool": torch.tensor([[True, False, True], [False, False, True]]),
    "scalar": torch.tensor(42.0, dtype=torch.float32),
    "empty": torch.zeros((0, 4), dtype=torch.float16),
}
save_file(tensors, OUT / "all_dtypes.safetensors", metadata={"format": "pt", "origin": "make_format_fixtures.py"})


def values(t):
    return t.to(torch.float64).flatten().tolist() if t.dtype != torch.uint64 else [float(x) for x in t.flatten().tolist()]


ref = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape), "values": values(v)}
       for k, v in tensors.items()}
(OUT / "all_dtypes.json").write_text(json.dumps(ref, indent=1) + "\n")

# torch.save: the common dtypes, plus a transposed (non-contiguous) view sharing a storage.
bin_tensors = {k: tensors[k] for k in ("f64", "f32", "f16", "bf16", "i64", "i32", "i16", "i8", "u8", "bool")}
shared = torch.arange(12, dtype=torch.float32).reshape(3, 4)
bin_tensors["transposed"] = shared.t()
bin_tensors["row_view"] = shared[1]
torch.save(bin_tensors, OUT / "all_dtypes.bin")
ref_bin = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape), "values": values(v)}
           for k, v in bin_tensors.items()}
(OUT / "all_dtypes_bin.json").write_text(json.dumps(ref_bin, indent=1) + "\n")


class Payload:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


torch.save({"weight": torch.zeros(2), "evil": Payload()}, OUT / "code_execution.bin")

cases = ["20GIB", "20GiB", "1.5GiB", "500MiB", "64KiB", "10GB", "10Gb", "5gb", "5MB", "5Mb", "1KB", "3kb",
         "0.5GB", "1e1GB", "  2GiB", "2 GiB", "+3MiB", "7.9999KB", "1.3GiB", "100MIB", "2kib",
         "20XB", "-1GB", "", "GB", "abc", "1.2.3GB", "12", "nanGB", "infGB", "-0.0001KB"]
out = {}
for c in cases:
    try:
        out[c] = convert_file_size_to_int(c)
    except Exception as e:  # accelerate raises ValueError for every bad string
        out[c] = None
for i in (0, 1, 123456789, 2**40):
    out[str(i)] = convert_file_size_to_int(i)  # integers are bytes
(ROOT / "tests" / "fixtures" / "sizes.json").write_text(json.dumps(out, indent=1) + "\n")
print(json.dumps(out))
