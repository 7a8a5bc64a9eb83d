#pragma once
// Quantized GEMV for decode (a few activation rows against a quantized weight): one host
// entry per op taking tensors, dispatching on the device — CUDA kernels for CUDA tensors
// (when built with CUDA), SIMD CPU kernels chosen at run time from cpuid (AVX-512, AVX2, or a
// portable loop) otherwise, split over output features on LibTorch's thread pool. Every op
// has a plain LibTorch reference (dequantize, then a float32 matmul): its test oracle and
// its fallback. Activations float32, bfloat16 or float16; accumulation in float32.
#include "cpu/cpu_features.h"

#include <ATen/core/Tensor.h>
#include <cstdint>

namespace layerwise::kernels {

// ---- GPTQ, 4 bits (AutoGPTQ layout) ------------------------------------------------------
// qweight int32 [in / 8, out]: value j of word [p, o] is q[8p + j, o] at bits 4j..4j+3.
// qzeros  int32 [groups, out / 8]: zero of output 8w + k at bits 4k..4k+3, stored minus 1
//         (read back as (field + 1) mod 16, as AutoGPTQ's torch path and gptq_dequantize do).
// scales  float16 [groups, out].
// g_idx   int32 [in]: the group of each input row (act-order makes it non-monotonic).
// W[o, i] = scales[g, o] * (q[i, o] - zero[g, o]), g = g_idx[i].

// float32 [out, in].
at::Tensor dequantize_gptq_reference(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
                                     const at::Tensor& g_idx);
// x [m, in] -> [m, out] in x's dtype.
at::Tensor gptq_gemv_reference(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& qzeros,
                               const at::Tensor& scales, const at::Tensor& g_idx);
at::Tensor gptq_gemv(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
                     const at::Tensor& g_idx, CpuLevel level = CpuLevel::automatic);

// ---- NF4 / FP4 (bitsandbytes layout) -----------------------------------------------------
// The weight [out, in] flattened row-major in blocks of `blocksize`; value e in byte e / 2 of
// `packed` (uint8, (out * in + 1) / 2 values, any shape), the first value in the high nibble;
// `code` float32 [16]. absmax float32 [blocks], or (nested) uint8 [blocks] with
// absmax[b] = nested_code[u8[b]] * nested_absmax[b / nested_blocksize] + nested_offset.
struct Blockwise4Weight {
    at::Tensor packed, absmax, code;
    at::Tensor nested_absmax, nested_code; // defined when absmax is uint8
    float nested_offset = 0.0f;
    std::int64_t nested_blocksize = 256;
    std::int64_t out = 0, in = 0, blocksize = 64;
};

at::Tensor dequantize_blockwise4_reference(const Blockwise4Weight& w); // float32 [out, in]
at::Tensor blockwise4_gemv_reference(const at::Tensor& x, const Blockwise4Weight& w);
// x [m, in] -> [m, out] in x's dtype.
at::Tensor blockwise4_gemv(const at::Tensor& x, const Blockwise4Weight& w, CpuLevel level = CpuLevel::automatic);

// ---- LLM.int8 rows (int8 x int8) ---------------------------------------------------------
// xq int8 [m, in] (row-absmax codes in [-127, 127]; a -128 takes the slower exact loop), x_scale float32 [m] (the rows' absmax),
// cb int8 [out, in], scb float32 [out]:
// y[r, o] = (sum_i xq[r, i] cb[o, i]) * (x_scale[r] * scb[o]) / 127^2, the sum exact (int32).
at::Tensor int8_gemv_reference(const at::Tensor& xq, const at::Tensor& x_scale, const at::Tensor& cb,
                               const at::Tensor& scb); // float32 [m, out]
at::Tensor int8_gemv(const at::Tensor& xq, const at::Tensor& x_scale, const at::Tensor& cb, const at::Tensor& scb,
                     CpuLevel level = CpuLevel::automatic); // float32 [m, out]

} // namespace layerwise::kernels
