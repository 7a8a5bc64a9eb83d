// CUDA kernels for ggml's block formats (see gguf_kernels.h for the contract and gguf_decode.cuh
// for the decoding): a dequantize kernel (blocks -> float32 / float16 / bfloat16, optionally
// through a row index: the embedding lookup) and a GEMV for decode (1 to 8 activation rows).
// Prefill (more rows) dequantizes tile by tile into a scratch buffer and runs cuBLAS through
// at::mm; that part lives on the host side (gguf_cuda.cpp).
//
// Why the GEMV takes float activations, with each weight chunk decoded in registers, rather
// than quantizing the activations to 8-bit blocks and using integer dot products (dp4a, as the
// CPU kernels and llama.cpp do): at 1 to 8 rows the GEMV is bound by reading the weight bytes
// from HBM once; decoding 32 values costs a few dozen register instructions per 18 to 34 bytes
// loaded, which the memory system hides. Float activations need no quantize launch per matmul,
// and the result differs from the dequantize-then-matmul reference only by float32 summation
// order (no 8-bit activation rounding), so the GPU's error bound is that of a float matmul. The
// price is 4 bytes of activation read from L1 per weight value and row (1 with 8-bit blocks):
// each warp computes two output rows, so every activation value loaded serves two weight rows.
#include "gguf_kernels.h"

#include "gguf_decode.cuh"

#include <cuda_runtime.h>

namespace layerwise::kernels::cuda {
namespace {

using cpu::GgmlType;
using detail::decode_chunk;
using detail::kChunk;

constexpr int kGemvWarps = 4;       // warps per thread block
constexpr int kGemvRowsPerWarp = 2; // weight rows each warp computes

__device__ __forceinline__ float warp_sum(float v)
{
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// One warp per kGemvRowsPerWarp weight rows; lane l takes chunks l, l + 32, ... of those rows
// (detail::gemv_lane), and the lanes' partial sums meet in a shuffle reduction.
template <GgmlType T>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gguf_gemv_kernel(const std::uint8_t* __restrict__ w, std::int64_t row_bytes, std::int64_t in, std::int64_t out,
                     const float* __restrict__ x, int rows, float* __restrict__ y)
{
    const int lane = threadIdx.x & 31;
    const std::int64_t o0 = (static_cast<std::int64_t>(blockIdx.x) * kGemvWarps + threadIdx.x / 32) * kGemvRowsPerWarp;
    if (o0 >= out)
        return;
    const bool second = o0 + 1 < out;
    const std::uint8_t* w0 = w + o0 * row_bytes;
    const std::uint8_t* w1 = second ? w0 + row_bytes : w0; // a lone last row is decoded twice, used once
    float acc0[kGgufGemvMaxRows] = {}, acc1[kGgufGemvMaxRows] = {};
    detail::gemv_lane<T, kGgufGemvMaxRows>(w0, w1, in, x, rows, lane, 32, acc0, acc1);
#pragma unroll
    for (int r = 0; r < kGgufGemvMaxRows; ++r) {
        if (r < rows) {
            const float s0 = warp_sum(acc0[r]), s1 = warp_sum(acc1[r]);
            if (lane == 0) {
                y[r * out + o0] = s0;
                if (second)
                    y[r * out + o0 + 1] = s1;
            }
        }
    }
}

// One thread per chunk of 32 output values: decode, round to the output type, store as 16-byte
// vectors (rows are multiples of 32 values, so every chunk starts 64- or 128-byte aligned).
template <GgmlType T>
__global__ void gguf_dequantize_kernel(const std::uint8_t* __restrict__ w, std::int64_t row_bytes, std::int64_t in,
                                       std::int64_t rows, const std::int64_t* __restrict__ row_ids, void* out,
                                       OutType out_type)
{
    const std::int64_t chunks = in / kChunk, total = rows * chunks;
    for (std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
         t += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
        const std::int64_t r = t / chunks, ch = t % chunks;
        const std::int64_t src = row_ids ? row_ids[r] : r;
        float v[kChunk];
        decode_chunk<T>(w + src * row_bytes, ch, v);
        const std::int64_t first = r * in + ch * kChunk;
        if (out_type == OutType::f32) {
            float4* o = reinterpret_cast<float4*>(static_cast<float*>(out) + first);
#pragma unroll
            for (int i = 0; i < kChunk / 4; ++i)
                o[i] = make_float4(v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]);
        } else {
            uint4* o = reinterpret_cast<uint4*>(static_cast<std::uint16_t*>(out) + first);
#pragma unroll
            for (int i = 0; i < kChunk / 8; ++i) {
                std::uint32_t words[4];
#pragma unroll
                for (int k = 0; k < 4; ++k) {
                    const float a = v[8 * i + 2 * k], b = v[8 * i + 2 * k + 1];
                    std::uint32_t lo, hi;
                    if (out_type == OutType::f16) {
                        lo = __half_as_ushort(__float2half_rn(a)), hi = __half_as_ushort(__float2half_rn(b));
                    } else {
                        lo = __bfloat16_as_ushort(__float2bfloat16_rn(a)), hi = __bfloat16_as_ushort(__float2bfloat16_rn(b));
                    }
                    words[k] = lo | (hi << 16);
                }
                o[i] = make_uint4(words[0], words[1], words[2], words[3]);
            }
        }
    }
}

std::int64_t row_bytes_of(GgmlType type, std::int64_t in)
{
    int elements = 0, bytes = 0;
    cpu::block_geometry(type, elements, bytes);
    return in / elements * bytes;
}

// The switch over the formats with a kernel: `CALL(T)` for the one `type` names.
#define LAYERWISE_GGUF_FORMATS(type, CALL)                                                             \
    switch (type) {                                                                                   \
    case GgmlType::Q4_0: CALL(GgmlType::Q4_0); break;                                                 \
    case GgmlType::Q4_1: CALL(GgmlType::Q4_1); break;                                                 \
    case GgmlType::Q5_0: CALL(GgmlType::Q5_0); break;                                                 \
    case GgmlType::Q5_1: CALL(GgmlType::Q5_1); break;                                                 \
    case GgmlType::Q8_0: CALL(GgmlType::Q8_0); break;                                                 \
    case GgmlType::MXFP4: CALL(GgmlType::MXFP4); break;                                               \
    case GgmlType::Q2_K: CALL(GgmlType::Q2_K); break;                                                 \
    case GgmlType::Q3_K: CALL(GgmlType::Q3_K); break;                                                 \
    case GgmlType::Q4_K: CALL(GgmlType::Q4_K); break;                                                 \
    case GgmlType::Q5_K: CALL(GgmlType::Q5_K); break;                                                 \
    case GgmlType::Q6_K: CALL(GgmlType::Q6_K); break;                                                 \
    case GgmlType::F32: CALL(GgmlType::F32); break;                                                   \
    case GgmlType::F16: CALL(GgmlType::F16); break;                                                   \
    case GgmlType::BF16: CALL(GgmlType::BF16); break;                                                 \
    default: break;                                                                                   \
    }

} // namespace

bool gguf_cuda_supports(GgmlType type)
{
    bool supported = false;
#define LAYERWISE_SUPPORTED(T) supported = true
    LAYERWISE_GGUF_FORMATS(type, LAYERWISE_SUPPORTED)
#undef LAYERWISE_SUPPORTED
    return supported;
}

void launch_gguf_dequantize(const std::uint8_t* blocks, GgmlType type, std::int64_t in, std::int64_t rows,
                            const std::int64_t* row_ids, void* out, OutType out_type, void* stream)
{
    const std::int64_t total = rows * (in / kChunk);
    if (total == 0)
        return;
    constexpr int threads = 256;
    const std::int64_t wanted = (total + threads - 1) / threads;
    const auto blocks_n = static_cast<unsigned>(wanted < (1 << 20) ? wanted : (1 << 20)); // grid-stride beyond
    const std::int64_t row_bytes = row_bytes_of(type, in);
    auto s = static_cast<cudaStream_t>(stream);
#define LAYERWISE_LAUNCH(T) \
    gguf_dequantize_kernel<T><<<blocks_n, threads, 0, s>>>(blocks, row_bytes, in, rows, row_ids, out, out_type)
    LAYERWISE_GGUF_FORMATS(type, LAYERWISE_LAUNCH)
#undef LAYERWISE_LAUNCH
}

void launch_gguf_gemv(const std::uint8_t* blocks, GgmlType type, std::int64_t in, std::int64_t out, const float* x,
                      std::int64_t m, float* y, void* stream)
{
    if (out == 0 || m == 0)
        return;
    const std::int64_t rows_per_block = kGemvWarps * kGemvRowsPerWarp;
    const auto grid = static_cast<unsigned>((out + rows_per_block - 1) / rows_per_block);
    const std::int64_t row_bytes = row_bytes_of(type, in);
    auto s = static_cast<cudaStream_t>(stream);
    for (std::int64_t r0 = 0; r0 < m; r0 += kGgufGemvMaxRows) {
        const int rows = static_cast<int>(m - r0 < kGgufGemvMaxRows ? m - r0 : kGgufGemvMaxRows);
#define LAYERWISE_LAUNCH(T) \
    gguf_gemv_kernel<T><<<grid, kGemvWarps * 32, 0, s>>>(blocks, row_bytes, in, out, x + r0 * in, rows, y + r0 * out)
        LAYERWISE_GGUF_FORMATS(type, LAYERWISE_LAUNCH)
#undef LAYERWISE_LAUNCH
    }
}

} // namespace layerwise::kernels::cuda
