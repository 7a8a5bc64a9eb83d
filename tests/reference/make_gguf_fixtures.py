#!/usr/bin/env python3
"""GGUF reader fixtures written by the `gguf` package (llama.cpp's gguf-py).

types.gguf: one small random tensor per ggml type Layerwise decodes (F32, F16, BF16, Q8_0, Q4_0,
Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K), a 3-D tensor, metadata of every value type (scalars and
arrays of each type, an array of arrays), general.alignment = 64.
types.json: what gguf.GGUFReader reads back: the metadata (type and value per key) and every
tensor's type, shape (transformers order: ggml dims reversed), absolute data offset and its
values dequantized by gguf.quants.dequantize.

Q4_0...Q8_0 data comes from gguf.quants.quantize of normal random values; the K types (for which
gguf-py has no quantizer) are random blocks whose f16 scales are set to small finite values.

Run: .venv/bin/python tests/reference/make_gguf_fixtures.py
"""
import json
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T, GGUFValueType as V
from gguf.quants import quantize, dequantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gguf"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)


def k_blocks(qtype, rows, cols):
    """Random K-quant blocks with finite small f16 scales at the places ggml keeps them."""
    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    n = rows * cols // block_elems
    b = rng.integers(0, 256, size=(n, block_bytes), dtype=np.uint8)
    def put_f16(at, lo, hi):
        b[:, at:at + 2] = rng.uniform(lo, hi, size=n).astype(np.float16).view(np.uint8).reshape(n, 2)
    if qtype in (T.Q4_K, T.Q5_K):
        put_f16(0, 0.001, 0.02)  # d
        put_f16(2, 0.001, 0.02)  # dmin
    elif qtype == T.Q6_K:
        put_f16(208, 0.001, 0.02)
    return b.reshape(rows, cols // block_elems * block_bytes)


path = OUT / "types.gguf"
w = gguf.GGUFWriter(str(path), arch="llama")
w.add_custom_alignment(64)
w.add_name("layerwise gguf fixture")
scalars = {
    "test.u8": (200, V.UINT8), "test.i8": (-100, V.INT8), "test.u16": (60000, V.UINT16),
    "test.i16": (-30000, V.INT16), "test.u32": (4000000000, V.UINT32), "test.i32": (-2000000000, V.INT32),
    "test.f32": (0.15625, V.FLOAT32), "test.bool": (True, V.BOOL), "test.string": ("héllo, wörld", V.STRING),
    "test.u64": (18000000000000000000, V.UINT64), "test.i64": (-9000000000000000000, V.INT64),
    "test.f64": (-2.718281828459045, V.FLOAT64),
}
for k, (v, t) in scalars.items():
    w.add_key_value(k, v, t)
arrays = {
    "test.arr.u8": ([1, 2, 255], V.UINT8), "test.arr.i8": ([-1, 0, 127], V.INT8),
    "test.arr.u16": ([0, 65535], V.UINT16), "test.arr.i16": ([-32768, 5], V.INT16),
    "test.arr.u32": ([7, 4294967295], V.UINT32), "test.arr.i32": ([-7, 2147483647], V.INT32),
    "test.arr.f32": ([0.5, -1.25, 3.0], V.FLOAT32), "test.arr.bool": ([True, False, True], V.BOOL),
    "test.arr.string": (["a", "", "ü"], V.STRING), "test.arr.u64": ([0, 2**64 - 1], V.UINT64),
    "test.arr.i64": ([-2**63, 2**63 - 1], V.INT64), "test.arr.f64": ([1e-300, -0.1], V.FLOAT64),
}
for k, (v, t) in arrays.items():
    w.add_key_value(k, v, V.ARRAY, sub_type=t)
# An array of arrays (GGUF allows nesting): [[1, 2], [3]] of int32
w.add_key_value("test.arr.nested", [[1, 2], [3]], V.ARRAY, sub_type=V.ARRAY)

tensors = {}
for qtype, rows, cols in [(T.F32, 3, 64), (T.F16, 3, 64), (T.BF16, 3, 64), (T.Q8_0, 3, 64), (T.Q4_0, 3, 64),
                          (T.Q4_1, 3, 64), (T.Q5_0, 3, 64), (T.Q5_1, 3, 64), (T.Q4_K, 2, 256), (T.Q5_K, 2, 256),
                          (T.Q6_K, 2, 256)]:
    x = rng.standard_normal((rows, cols)).astype(np.float32)
    name = f"t.{qtype.name.lower()}"
    if qtype == T.F32:
        w.add_tensor(name, x)
    elif qtype == T.F16:
        w.add_tensor(name, x.astype(np.float16))
    elif qtype in (T.Q4_K, T.Q5_K, T.Q6_K):
        w.add_tensor(name, k_blocks(qtype, rows, cols), raw_dtype=qtype)
    else:
        w.add_tensor(name, quantize(x, qtype), raw_dtype=qtype)
w.add_tensor("t.f32_3d", rng.standard_normal((2, 3, 32)).astype(np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

# What gguf-py reads back.
r = gguf.GGUFReader(str(path))
meta = {}
for name, field in r.fields.items():
    if name.startswith("GGUF."):
        continue
    if field.types[0] == V.ARRAY and len(field.types) > 1 and field.types[1] == V.ARRAY:
        value = [[1, 2], [3]]  # gguf-py does not decode nested arrays; this is what was written
    else:
        value = field.contents()
    meta[name] = {"type": [t.name for t in field.types], "value": value}
out = {"file": path.name, "alignment": 64, "version": 3, "metadata": meta, "tensors": {}}
for t in r.tensors:
    values = dequantize(t.data, t.tensor_type).astype(np.float32)
    out["tensors"][t.name] = {
        "type": t.tensor_type.name, "shape": [int(d) for d in reversed(t.shape)], "offset": int(t.data_offset),
        "bytes": int(t.n_bytes), "values": [float(v) for v in values.reshape(-1)],
    }
(OUT / "types.json").write_text(json.dumps(out, indent=None, ensure_ascii=False) + "\n")
print(path, path.stat().st_size, "bytes;", len(out["tensors"]), "tensors")
