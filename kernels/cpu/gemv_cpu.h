#pragma once
// The CPU GEMV kernels on plain pointers, one function per op taking the instruction-set
// level and the range of output features to compute ([o_begin, o_end)); the host entries in
// quant_gemv.cpp check shapes, split the outputs over LibTorch's thread pool and call these.
// Activations are float32 (the host converts bfloat16), accumulation is float32 (int32 for
// int8 x int8). No LibTorch here.
#include "cpu/cpu_features.h"

#include <cstdint>

namespace layerwise::kernels::cpu {

// GPTQ, 4 bits, AutoGPTQ layout: W[o, i] = scales[g_idx[i], o] * (q[i, o] - zero[g_idx[i], o]) with
// zero = (stored + 1) mod 16, as AutoGPTQ's torch path and gptq_dequantize read it.
struct GptqGemvArgs {
    const float* x = nullptr;             // [m, in]
    const std::int32_t* qweight = nullptr; // [in / 8, out]: value j of word [p, o] is row 8p + j, bits 4j..4j+3
    const std::int32_t* qzeros = nullptr;  // [groups, out / 8]: zero of output 8w + k at bits 4k..4k+3, stored minus 1 (mod 16)
    const std::uint16_t* scales = nullptr; // float16 bits [groups, out]
    const std::int32_t* g_idx = nullptr;   // [in], each in [0, groups)
    float* y = nullptr;                    // [m, out]
    std::int64_t m = 0, in = 0, out = 0, groups = 0;
    bool uniform_words = false;            // the 8 rows of every packed word share one group
};
// o_begin and o_end multiples of 8 (or o_end == out).
void gptq_gemv(const GptqGemvArgs& a, CpuLevel level, std::int64_t o_begin, std::int64_t o_end);

// bitsandbytes NF4 / FP4: the weight [out, in] flattened row-major, value e in byte e / 2 (high
// nibble first), scaled by the absmax of its block e / blocksize.
struct Blockwise4GemvArgs {
    const float* x = nullptr;            // [m, in]
    const std::uint8_t* packed = nullptr; // [(out * in + 1) / 2]
    const float* code = nullptr;          // [16]
    const float* absmax = nullptr;        // [blocks] float32, or null when nested:
    const std::uint8_t* absmax_u8 = nullptr; // [blocks]: absmax = nested_code[u8] * nested_absmax[b / nested_blocksize] + offset
    const float* nested_absmax = nullptr;
    const float* nested_code = nullptr;   // [256]
    float nested_offset = 0.0f;
    std::int64_t nested_blocksize = 256;
    float* y = nullptr;                   // [m, out]
    std::int64_t m = 0, in = 0, out = 0, blocksize = 64;
};
void blockwise4_gemv(const Blockwise4GemvArgs& a, CpuLevel level, std::int64_t o_begin, std::int64_t o_end);

// LLM.int8 rows: y[r, o] = float(sum_i xq[r, i] * w[o, i]) * (x_scale[r] * scb[o]) * (1 / 127^2),
// the int32 sum exact. xq values in [-127, 127] (row-absmax codes); w any int8.
struct Int8GemvArgs {
    const std::int8_t* xq = nullptr;  // [m, in]
    const float* x_scale = nullptr;   // [m]
    const std::int8_t* w = nullptr;   // [out, in]
    const float* scb = nullptr;       // [out]
    float* y = nullptr;               // [m, out]
    std::int64_t m = 0, in = 0, out = 0;
};
void int8_gemv(const Int8GemvArgs& a, CpuLevel level, std::int64_t o_begin, std::int64_t o_end);

// bitsandbytes' 1 / 127^2 as int8_mm_dequant writes it.
inline constexpr float kInt8Dequant = 6.200124e-05f;

} // namespace layerwise::kernels::cpu
