#pragma once
// Host launchers of the CUDA kernels for ggml's block formats (gguf_kernels.cu). The weight is
// the GGUF file's own bytes copied to the GPU: `rows` rows of `in` elements, each row
// gguf_row_bytes(type, in) bytes, rows contiguous, the first row 16-byte aligned (the callers
// in gguf_cuda.cpp make sure of that). Plain pointers and a plain stream handle (a
// cudaStream_t passed as void*), so neither LibTorch nor the CUDA headers are needed to call
// them. Every launch is asynchronous on `stream`; errors are left for the caller's
// cudaGetLastError.
#include "cpu/gguf_blocks.h"

#include <cstdint>

namespace layerwise::kernels::cuda {

// Whether the kernels below handle `type`: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 MXFP4 Q2_K Q3_K Q4_K Q5_K
// Q6_K F16 BF16 F32 (the formats the CPU kernels run).
bool gguf_cuda_supports(cpu::GgmlType type);

enum class OutType { f32, f16, bf16 };

// out[r, :] = the decoded row src_row(r) of `blocks`, for r in [0, rows): src_row(r) is
// row_ids[r] when row_ids is given (an embedding lookup; device int64, already checked to be in
// range) and r otherwise. out is [rows, in] of `out_type`, row-major. Each value is decoded
// exactly as the CPU's dequantize_row (gguf-py's dequantize) does, then rounded to out_type
// (nearest-even, as LibTorch's float conversion).
void launch_gguf_dequantize(const std::uint8_t* blocks, cpu::GgmlType type, std::int64_t in, std::int64_t rows,
                            const std::int64_t* row_ids, void* out, OutType out_type, void* stream);

// The most activation rows one GEMV launch takes; the launcher loops over more.
inline constexpr int kGgufGemvMaxRows = 8;

// y[r, o] = sum_i x[r, i] * w[o, i] for r < m, o < out: x float32 [m, in], y float32 [m, out],
// w `out` rows of blocks. The weight bytes are read once for all m rows (m <= 8 per pass).
void launch_gguf_gemv(const std::uint8_t* blocks, cpu::GgmlType type, std::int64_t in, std::int64_t out,
                      const float* x, std::int64_t m, float* y, void* stream);

} // namespace layerwise::kernels::cuda
