#pragma once
// The GGUF block-format entry points for weights on a CUDA device: the blocks are the file's
// bytes in a uint8 [out, row bytes] tensor on the GPU (the layout of cpu/gguf_blocks.h).
// gguf_linear.h's entry points call these when the weight lives on CUDA; in a build without the
// CUDA kernels (LAYERWISE_CUDA=OFF, no toolkit, or a LibTorch without CUDA) they throw, naming
// the operation and the format, so a GGUF weight on a GPU never silently runs as floats.
#include "cpu/gguf_blocks.h"

#include <ATen/core/Tensor.h>
#include <cstdint>
#include <vector>

namespace layerwise::kernels {

// Whether this build carries the CUDA block kernels (it says nothing about a GPU being present).
bool gguf_cuda_built();

// Decode (at most this many activation rows) reads the blocks once with a GEMV; more rows
// (prefill) dequantize the weight tile by tile into a scratch buffer of x's dtype and multiply
// with cuBLAS.
inline constexpr std::int64_t kGgufCudaGemvMaxRows = 8;
// The scratch a prefill matmul may hold for the dequantized tile of the weight.
inline constexpr std::int64_t kGgufCudaScratchBytes = std::int64_t(64) << 20;

// The weight decoded to `dtype` (float32, float16 or bfloat16) [out, in] on the weight's device:
// the same values as the CPU's gguf_dequantize, then rounded to dtype as LibTorch does.
at::Tensor gguf_dequantize_cuda(const at::Tensor& weight, cpu::GgmlType type, std::int64_t in, at::ScalarType dtype);

// x [..., in] (float32, bfloat16 or float16, on the weight's device) -> [..., out] in x's dtype.
// Float activations: the result is the dequantize-then-matmul reference up to float32
// summation order (GEMV) or the matmul's own rounding in x's dtype (prefill).
at::Tensor gguf_linear_cuda(const at::Tensor& x, const at::Tensor& weight, cpu::GgmlType type, std::int64_t in);

// Rows `ids` (int64, any shape, on any device) of a block table on CUDA, decoded to float32
// [..., in] on the table's device. An id outside the table is an error.
at::Tensor gguf_embedding_cuda(const at::Tensor& weight, cpu::GgmlType type, std::int64_t in, const at::Tensor& ids);

} // namespace layerwise::kernels
