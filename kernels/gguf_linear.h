#pragma once
// Linear layers over weights kept in ggml's block formats (a GGUF file's own bytes): the host
// entries that check shapes, quantize the activations once per call to the 8-bit blocks the
// weight format pairs with, and split the output features over LibTorch's thread pool, calling
// one dot-product kernel per (format, instruction-set level) from cpu/gguf_blocks.h. Each has a
// plain LibTorch reference (dequantize, then a float32 matmul): its test oracle.
// gguf_linear, gguf_linear_group, gguf_dequantize and gguf_embedding also take blocks on a CUDA
// device and then run the CUDA kernels (gguf_cuda.h; an error in a build without them).
#include "cpu/cpu_features.h"
#include "cpu/gguf_blocks.h"

#include <ATen/core/Tensor.h>
#include <cstdint>
#include <string>
#include <vector>

namespace layerwise::kernels {

using cpu::GgmlType;

// Whether `type` has a dot-product kernel (and a decoder): Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 MXFP4 Q2_K
// Q3_K Q4_K Q5_K Q6_K F16 BF16 F32.
bool gguf_has_kernel(GgmlType type);
std::string gguf_type_name(GgmlType type); // "Q4_K"
// Bytes of one row of `in` elements (in a multiple of the block elements).
std::int64_t gguf_row_bytes(GgmlType type, std::int64_t in);

// weight: uint8 [out, gguf_row_bytes(type, in)] on the CPU (rows contiguous; a zero-copy view of
// the file's bytes is fine). x [..., in] float32, bfloat16 or float16 -> [..., out] in x's dtype.
// Activations are quantized to Q8_0 / Q8_1 / Q8_K blocks (float for F16/BF16/F32 weights) as
// llama.cpp does; the block products are integer, the sums float32.
at::Tensor gguf_linear(const at::Tensor& x, const at::Tensor& weight, GgmlType type, std::int64_t in,
                       CpuLevel level = CpuLevel::automatic);

// Several weights that read the same input (q, k and v; gate and up): the input is quantized once
// per activation format and one parallel pass computes every output, so a decode step pays the
// quantization and the thread-pool hand-off once instead of once per weight. Returns one tensor
// per weight, as gguf_linear would.
struct GgufWeight {
    at::Tensor weight; // uint8 [out, row bytes]
    GgmlType type;
};
std::vector<at::Tensor> gguf_linear_group(const at::Tensor& x, const std::vector<GgufWeight>& weights, std::int64_t in,
                                          CpuLevel level = CpuLevel::automatic);

// The same on plain pointers, for a caller that keeps its own buffers (the fused decode step):
// x float32 [m, in]; each weight `out` rows of blocks (rows contiguous), written to y [m, out].
// Shapes are the caller's to get right (no checks beyond the count, 1 to 8).
struct GgufRows {
    const std::uint8_t* blocks;
    GgmlType type;
    std::int64_t out;
    float* y;
};
void gguf_matmul_rows(const float* x, std::int64_t m, std::int64_t in, const GgufRows* weights, std::size_t count,
                      CpuLevel level = CpuLevel::automatic);

// Several weights, each over its own few input rows (a mixture of experts' decode step: each
// chosen expert's gate and up over the rows that chose it, then its down over its own
// intermediate rows): every item's rows quantized, then one parallel pass over every weight's
// rows. x float32 [m, in] and y [m, out] per item; `in` shared. For small m (decode); the panel
// kernels of many-row prefill are not used.
struct GgufEach {
    const std::uint8_t* blocks;
    GgmlType type;
    std::int64_t out;
    const float* x;
    std::int64_t m;
    float* y;
};
void gguf_matmul_each(const GgufEach* items, std::size_t count, std::int64_t in, CpuLevel level = CpuLevel::automatic);

// The weight decoded to float32 [out, in] (gguf-py's dequantize, element for element).
at::Tensor gguf_dequantize(const at::Tensor& weight, GgmlType type, std::int64_t in);
// x [..., in] -> dequantize then float32 matmul, in x's dtype.
at::Tensor gguf_linear_reference(const at::Tensor& x, const at::Tensor& weight, GgmlType type, std::int64_t in);
// Rows `ids` (int64, any shape) of a block-format table [rows, in] decoded to float32 [..., in]:
// an embedding lookup that decodes only the rows asked for.
at::Tensor gguf_embedding(const at::Tensor& weight, GgmlType type, std::int64_t in, const at::Tensor& ids);

} // namespace layerwise::kernels
