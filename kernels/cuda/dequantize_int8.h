#pragma once
// Host entry point of the CUDA kernel; plain pointers so nvcc never sees LibTorch headers.
#include <cstdint>
#include <cuda_runtime_api.h>

namespace layerwise::kernels {

// out[r, c] = cb[r, c] * scb[r] / 127, all row-major contiguous, on `stream`.
void launch_dequantize_int8_rowwise(const std::int8_t* cb, const float* scb, float* out, std::int64_t rows,
                                    std::int64_t cols, cudaStream_t stream);

} // namespace layerwise::kernels
