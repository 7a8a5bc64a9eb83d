// CUDA GEMV kernels for decode (see quant_gemv.h / cpu/gemv_cpu.h for the layouts).
//
// GPTQ: qweight is [in / 8, out], so one thread per output column reads coalesced words row
// after row; the input dimension is split over blockIdx.y (split-K) so a 4096-wide layer still
// fills the GPU, and the partial sums meet through atomicAdd. NF4/FP4 and int8 weights are
// row-major [out, in]: one warp per output row, lanes striding along the row, a shuffle
// reduction at the end. Up to kMaxRows activation rows per launch (the launcher loops).
#include "quant_gemv.h"

#include <algorithm>
#include <cuda_fp16.h>

namespace layerwise::kernels {
namespace {

constexpr int kMaxRows = 8;
constexpr int kGptqThreads = 256;
constexpr int kGptqWordsPerSplit = 64; // 512 input rows of x per block in shared memory

__global__ void gptq_gemv_kernel(cpu::GptqGemvArgs a, int rows)
{
    __shared__ float xs[kMaxRows][kGptqWordsPerSplit * 8];
    const std::int64_t p0 = static_cast<std::int64_t>(blockIdx.y) * kGptqWordsPerSplit;
    const std::int64_t p1 = min(p0 + kGptqWordsPerSplit, a.in / 8);
    const std::int64_t i0 = p0 * 8, n_in = (p1 - p0) * 8;
    for (std::int64_t k = threadIdx.x; k < rows * n_in; k += blockDim.x) {
        const std::int64_t r = k / n_in, i = k % n_in;
        xs[r][i] = a.x[r * a.in + i0 + i];
    }
    __syncthreads();
    const std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (o >= a.out)
        return;
    float acc[kMaxRows] = {};
    const std::int64_t zero_words = a.out / 8;
    const int zero_shift = 4 * static_cast<int>(o % 8);
    for (std::int64_t p = p0; p < p1; ++p) {
        const auto word = static_cast<std::uint32_t>(a.qweight[p * a.out + o]);
        for (int j = 0; j < 8; ++j) {
            const std::int64_t i = 8 * p + j;
            const std::int64_t g = a.g_idx[i];
            const float s = __half2float(__ushort_as_half(a.scales[g * a.out + o]));
            const auto zw = static_cast<std::uint32_t>(a.qzeros[g * zero_words + o / 8]);
            const float z = static_cast<float>((((zw >> zero_shift) & 0xF) + 1) & 0xF);
            const float w = (static_cast<float>((word >> (4 * j)) & 0xF) - z) * s;
            for (int r = 0; r < rows; ++r)
                acc[r] += xs[r][i - i0] * w;
        }
    }
    for (int r = 0; r < rows; ++r)
        atomicAdd(a.y + r * a.out + o, acc[r]);
}

__device__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

__device__ int warp_sum_int(int v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

__device__ float absmax_of(const cpu::Blockwise4GemvArgs& a, std::int64_t block)
{
    if (a.absmax)
        return a.absmax[block];
    return a.nested_code[a.absmax_u8[block]] * a.nested_absmax[block / a.nested_blocksize] + a.nested_offset;
}

constexpr int kWarpsPerBlock = 8;

// One warp per output row; each lane takes whole bytes (two values) so one lane never splits
// a byte, then the partial sums of the block are scaled by its absmax. Rows of odd length
// start mid-byte: the first value then comes alone.
__global__ void blockwise4_gemv_kernel(cpu::Blockwise4GemvArgs a, int rows)
{
    __shared__ float code[16];
    if (threadIdx.x < 16)
        code[threadIdx.x] = a.code[threadIdx.x];
    __syncthreads();
    const int lane = threadIdx.x % 32;
    const std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    if (o >= a.out)
        return;
    float acc[kMaxRows] = {};
    const std::int64_t e0 = o * a.in;
    for (std::int64_t i = lane; i < a.in; i += 32) {
        const std::int64_t e = e0 + i;
        const std::uint8_t byte = a.packed[e >> 1];
        const float v = code[(e & 1) ? (byte & 15) : (byte >> 4)] * absmax_of(a, e / a.blocksize);
        for (int r = 0; r < rows; ++r)
            acc[r] += a.x[r * a.in + i] * v;
    }
    for (int r = 0; r < rows; ++r) {
        const float s = warp_sum(acc[r]);
        if (lane == 0)
            a.y[r * a.out + o] = s;
    }
}

__global__ void int8_gemv_kernel(cpu::Int8GemvArgs a, int rows)
{
    const int lane = threadIdx.x % 32;
    const std::int64_t o = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    if (o >= a.out)
        return;
    int acc[kMaxRows] = {};
    const std::int8_t* w = a.w + o * a.in;
    if (a.in % 4 == 0) { // rows start on 4-byte boundaries: four products per dp4a
        const auto* w4 = reinterpret_cast<const int*>(w);
        for (std::int64_t k = lane; k < a.in / 4; k += 32) {
            const int wv = w4[k];
            for (int r = 0; r < rows; ++r)
                acc[r] = __dp4a(reinterpret_cast<const int*>(a.xq + r * a.in)[k], wv, acc[r]);
        }
    } else {
        for (std::int64_t i = lane; i < a.in; i += 32)
            for (int r = 0; r < rows; ++r)
                acc[r] += static_cast<int>(a.xq[r * a.in + i]) * static_cast<int>(w[i]);
    }
    for (int r = 0; r < rows; ++r) {
        const int s = warp_sum_int(acc[r]);
        if (lane == 0)
            a.y[r * a.out + o] = static_cast<float>(s) * (a.x_scale[r] * a.scb[o]) * cpu::kInt8Dequant;
    }
}

} // namespace

void launch_gptq_gemv(const cpu::GptqGemvArgs& a, cudaStream_t stream)
{
    cudaMemsetAsync(a.y, 0, static_cast<std::size_t>(a.m * a.out) * sizeof(float), stream);
    const std::int64_t words = a.in / 8;
    if (a.out == 0 || words == 0)
        return;
    const dim3 grid(static_cast<unsigned>((a.out + kGptqThreads - 1) / kGptqThreads),
                    static_cast<unsigned>((words + kGptqWordsPerSplit - 1) / kGptqWordsPerSplit));
    for (std::int64_t r0 = 0; r0 < a.m; r0 += kMaxRows) {
        cpu::GptqGemvArgs part = a;
        part.x = a.x + r0 * a.in;
        part.y = a.y + r0 * a.out;
        const int rows = static_cast<int>(std::min<std::int64_t>(kMaxRows, a.m - r0));
        gptq_gemv_kernel<<<grid, kGptqThreads, 0, stream>>>(part, rows);
    }
}

void launch_blockwise4_gemv(const cpu::Blockwise4GemvArgs& a, cudaStream_t stream)
{
    if (a.out == 0)
        return;
    const auto blocks = static_cast<unsigned>((a.out + kWarpsPerBlock - 1) / kWarpsPerBlock);
    for (std::int64_t r0 = 0; r0 < a.m; r0 += kMaxRows) {
        cpu::Blockwise4GemvArgs part = a;
        part.x = a.x + r0 * a.in;
        part.y = a.y + r0 * a.out;
        const int rows = static_cast<int>(std::min<std::int64_t>(kMaxRows, a.m - r0));
        blockwise4_gemv_kernel<<<blocks, kWarpsPerBlock * 32, 0, stream>>>(part, rows);
    }
}

void launch_int8_gemv(const cpu::Int8GemvArgs& a, cudaStream_t stream)
{
    if (a.out == 0)
        return;
    const auto blocks = static_cast<unsigned>((a.out + kWarpsPerBlock - 1) / kWarpsPerBlock);
    for (std::int64_t r0 = 0; r0 < a.m; r0 += kMaxRows) {
        cpu::Int8GemvArgs part = a;
        part.xq = a.xq + r0 * a.in;
        part.x_scale = a.x_scale + r0;
        part.y = a.y + r0 * a.out;
        const int rows = static_cast<int>(std::min<std::int64_t>(kMaxRows, a.m - r0));
        int8_gemv_kernel<<<blocks, kWarpsPerBlock * 32, 0, stream>>>(part, rows);
    }
}

} // namespace layerwise::kernels
