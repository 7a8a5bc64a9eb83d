#pragma once
// ggml's block formats on plain pointers: the weight blocks as a GGUF file stores them, the
// 8-bit activation blocks a matmul quantizes its input to once (as llama.cpp does), and one dot
// product per (weight format, instruction-set level): a weight row against a quantized
// activation row, integer products inside a block, float32 across blocks. No LibTorch here.
//
// Layouts (ggml-common.h; little-endian; `half` is IEEE binary16 bits):
//   Q4_0  {half d; u8 qs[16]}                       32 values, (q - 8) * d; low nibbles 0..15, high 16..31
//   Q4_1  {half d, m; u8 qs[16]}                     q * d + m
//   Q5_0  {half d; u32 qh; u8 qs[16]}                ((q | h << 4) - 16) * d
//   Q5_1  {half d, m; u32 qh; u8 qs[16]}             (q | h << 4) * d + m
//   Q8_0  {half d; i8 qs[32]}                        q * d
//   Q8_1  {half d, s; i8 qs[32]}                     activation side: s = d * sum(qs)
//   MXFP4 {u8 e; u8 qs[16]}                          kvalues[q] * 2^(e - 128); nibbles as Q4_0's
//   Q2_K  {u8 scales[16]; u8 qs[64]; half d, dmin}   256 values
//   Q3_K  {u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d}
//   Q4_K  {half d, dmin; u8 scales[12]; u8 qs[128]}
//   Q5_K  {half d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}
//   Q6_K  {u8 ql[128]; u8 qh[64]; i8 scales[16]; half d}
//   Q8_K  {float d; i8 qs[256]; i16 bsums[16]}        activation side: bsums = sums of 16 qs
#include "cpu/cpu_features.h"

#include <cstdint>
#include <cstring>

namespace layerwise::kernels::cpu {

// ggml's type numbers (ggml.h).
enum class GgmlType : std::uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30, MXFP4 = 39,
};

inline constexpr int kQK = 32;   // elements of a Q4_0..Q8_1 (and MXFP4) block
inline constexpr int kQKK = 256; // elements of a K-quant super-block

// MXFP4 (OCP microscaling FP4, ggml's block_mxfp4): the sixteen E2M1 values a code stands for,
// doubled so they are integers (ggml's kvalues_mxfp4), and the block's E8M0 exponent byte as
// half its power of two, 2^(e - 128) (ggml_e8m0_to_fp32_half: the bits 0x00200000 << e, a
// subnormal, for e < 2); a value is the float32 product kvalues[q] * e8m0_half(e), as in ggml.
inline constexpr std::int8_t kMxfp4Values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
inline float e8m0_half(std::uint8_t e)
{
    const std::uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<std::uint32_t>(e - 1) << 23;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// ---- the 32-element family (gguf_quants.cpp) ----------------------------------------------
// Activations: n (a multiple of 32) floats -> n / 32 blocks of Q8_0 / Q8_1, each block's
// d = amax / 127 (stored as half), q = round-to-nearest(x / d), exactly as ggml's reference
// quantize_row_q8_0 / q8_1 (s = d * sum(q) for Q8_1, from the unrounded d).
void quantize_row_q8_0(const float* x, void* out, std::int64_t n, CpuLevel level);
void quantize_row_q8_1(const float* x, void* out, std::int64_t n, CpuLevel level);

// ---- the K family (gguf_kquants.cpp) ------------------------------------------------------
// n (a multiple of 256) floats -> n / 256 Q8_K blocks: d = amax / -127 with the sign of the
// largest-magnitude value (ggml's quantize_row_q8_K_ref), q = nearest int of x / d clamped to
// 127, bsums[j] = sum of qs[16 j .. 16 j + 15].
void quantize_row_q8_K(const float* x, void* out, std::int64_t n, CpuLevel level);

// A dot product over n elements: one weight row (n / block elements blocks of `weight type`)
// against one activation row in the type activation_type() names.
using VecDot = float (*)(std::int64_t n, const void* weight_row, const void* activation_row);

// Four dot products at once: weight rows w, w + row_stride, w + 2 row_stride, w + 3 row_stride
// (bytes) against one activation row, into out[0..3]; each the same sum as VecDot's.
using VecDot4 = void (*)(std::int64_t n, const void* weight_rows, std::int64_t row_stride, const void* activation_row,
                         float* out);
// The four-row kernel for `weight` at `level`, or nullptr (then call the VecDot four times).
VecDot4 vec_dot4_kernel(GgmlType weight, CpuLevel level);

// Prefill: four weight rows against four activation rows (a tile), so each weight block is
// unpacked once for four activation rows and each activation block loaded once for four weight
// rows. out[w * 4 + a] = dot(weight row w, activation row a), each the same sum as VecDot's.
// Strides in bytes.
using VecDot4x4 = void (*)(std::int64_t n, const void* weight_rows, std::int64_t weight_stride,
                           const void* activation_rows, std::int64_t activation_stride, float* out);
VecDot4x4 vec_dot4x4_kernel(GgmlType weight, CpuLevel level); // nullptr: none for this format

// The K family's multi-row kernels (gguf_kquants.cpp), behind the two above.
VecDot4 vec_dot4_k_family(GgmlType weight, CpuLevel level);
VecDot4x4 vec_dot4x4_k_family(GgmlType weight, CpuLevel level);

// The activation block type the dot products for `weight` take: Q8_0 (Q4_0, Q5_0, Q8_0, MXFP4),
// Q8_1 (Q4_1, Q5_1), Q8_K (Q2_K..Q6_K), F32 (F32, F16, BF16: float activations).
GgmlType activation_type(GgmlType weight);

// The dot product for `weight` at `level` (the best one at or below it), or nullptr when there
// is no kernel for that format.
VecDot vec_dot_kernel(GgmlType weight, CpuLevel level);

// Per-family tables behind vec_dot_kernel (nullptr for a type the family does not hold).
VecDot vec_dot_q32_family(GgmlType weight, CpuLevel level); // gguf_quants.cpp: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 MXFP4 F32 F16 BF16
VecDot vec_dot_k_family(GgmlType weight, CpuLevel level);   // gguf_kquants.cpp: Q2_K Q3_K Q4_K Q5_K Q6_K

// Decodes n elements (whole blocks) of `type` into float32, exactly as gguf-py's
// gguf.quants.dequantize (and ggml's dequantize_row_*) do. False for a type without a decoder.
bool dequantize_row(GgmlType type, const void* src, float* dst, std::int64_t n);
bool dequantize_row_q32_family(GgmlType type, const void* src, float* dst, std::int64_t n);
bool dequantize_row_k_family(GgmlType type, const void* src, float* dst, std::int64_t n);

// Block geometry: elements and bytes per block (1 and the element size for F32/F16/BF16);
// false for an unknown type.
bool block_geometry(GgmlType type, int& elements, int& bytes);

} // namespace layerwise::kernels::cpu
