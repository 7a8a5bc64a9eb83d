#!/usr/bin/env python3
"""Block-format fixtures for the GGUF kernels, decoded by the `gguf` package (llama.cpp's gguf-py).

blocks.gguf holds, for every format the kernels run (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K,
Q4_K, Q5_K, Q6_K, F16, BF16, F32, MXFP4), a weight `<TYPE>.weight` of 6 rows x 768 columns
(three K super-blocks, 24 small blocks a row) stored in that format, and `<TYPE>.expected`: the same
weight as float32, decoded by gguf.quants.dequantize. Tests compare the project's decoders with
it bit for bit and its kernels with a float32 matmul over it. `activation` (5 x 768 float32) and
`activation.q8_0` (its Q8_0 blocks by gguf.quants.quantize) check the activation quantizer.

The 32-element formats come from gguf.quants.quantize of normal values (plus a row of zeros,
where d is 0; MXFP4's first row also has the E8M0 bytes of its first three blocks set to 0, 1
and 2, whose scales 2^-128..2^-126 are subnormal floats); gguf-py has no quantizer for the K
formats, so those are random bytes with their half-precision scales (d, dmin) set to small
finite values, which covers every code value. Formats added later (MXFP4) are drawn after the
activations, so the earlier tensors keep their bytes.

Run: .venv/bin/python tests/reference/make_gguf_block_fixtures.py
"""
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gguf_blocks"
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(2026)
ROWS, COLS = 6, 768

# Where each K format keeps its half-precision super-block scales (byte offsets in a block).
K_SCALES = {T.Q2_K: (80, 82), T.Q3_K: (108,), T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,)}


def k_weight(qtype):
    elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    n = ROWS * COLS // elems
    b = rng.integers(0, 256, size=(n, block_bytes), dtype=np.uint8)
    for at in K_SCALES[qtype]:
        b[:, at:at + 2] = rng.uniform(0.001, 0.03, size=n).astype(np.float16).view(np.uint8).reshape(n, 2)
    return b.reshape(ROWS, COLS // elems * block_bytes)


def add_format(qtype):
    if qtype in K_SCALES:
        data = k_weight(qtype)
        expected = dequantize(data, qtype).astype(np.float32)
    else:
        values = rng.normal(0.0, 1.0, size=(ROWS, COLS)).astype(np.float32)
        values[ROWS - 1] = 0.0
        if qtype == T.F32:
            data = values
        elif qtype == T.F16:
            data = values.astype(np.float16)
        else:
            data = quantize(values, qtype)
            if qtype == T.MXFP4:
                data[0, 0:3 * 17:17] = [0, 1, 2]  # E8M0 bytes with subnormal scales
        expected = dequantize(data, qtype).astype(np.float32) if qtype != T.F32 else values
    assert expected.shape == (ROWS, COLS), (qtype, expected.shape)
    w.add_tensor(f"{qtype.name}.weight", data, raw_dtype=qtype)
    w.add_tensor(f"{qtype.name}.expected", expected)


w = gguf.GGUFWriter(str(OUT / "blocks.gguf"), arch="llama")
for qtype in [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.F16, T.BF16, T.F32]:
    add_format(qtype)
# Activations and their Q8_0 blocks as gguf-py's quantize (ggml's quantize_row_q8_0_ref) makes
# them: rows of different magnitudes, a row of zeros, and a row of exact halves (x * 127 / amax
# lands on .5: ties that round away from zero).
act = rng.normal(0.0, 1.0, size=(5, COLS)).astype(np.float32)
act[1] *= 1e-3
act[2] *= 50.0
act[3] = 0.0
act[4] = (np.arange(COLS, dtype=np.float32) % 64 - 31.5) / 127.0 * 2.0
w.add_tensor("activation", act)
w.add_tensor("activation.q8_0", quantize(act, T.Q8_0), raw_dtype=T.Q8_0)
for qtype in [T.MXFP4]:
    add_format(qtype)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print("wrote", OUT / "blocks.gguf")
