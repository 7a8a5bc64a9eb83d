#include "dequantize_int8.h"

namespace layerwise::kernels {
namespace {

// One thread per element; rows*cols fits the grid for any weight matrix of a real model.
__global__ void dequantize_int8_rowwise_kernel(const std::int8_t* __restrict__ cb, const float* __restrict__ scb,
                                               float* __restrict__ out, std::int64_t rows, std::int64_t cols)
{
    const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * cols)
        return;
    const std::int64_t r = i / cols;
    out[i] = static_cast<float>(cb[i]) * (scb[r] / 127.0f);
}

} // namespace

void launch_dequantize_int8_rowwise(const std::int8_t* cb, const float* scb, float* out, std::int64_t rows,
                                    std::int64_t cols, cudaStream_t stream)
{
    const std::int64_t n = rows * cols;
    if (n == 0)
        return;
    constexpr int threads = 256;
    const auto blocks = static_cast<unsigned int>((n + threads - 1) / threads);
    dequantize_int8_rowwise_kernel<<<blocks, threads, 0, stream>>>(cb, scb, out, rows, cols);
}

} // namespace layerwise::kernels
