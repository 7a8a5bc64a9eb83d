#pragma once
// Device-side decoding of ggml's block formats, 32 values at a time (a "chunk": one block of
// the 32-element family, one eighth of a K-quant super-block, 32 plain F32/F16/BF16 values).
// The layouts are those of cpu/gguf_blocks.h, byte for byte: a GGUF file's bytes copied to the
// GPU are decoded in place.
//
// Exactness: every value is computed with the operations, operands and roundings of the CPU
// decoders (cpu/gguf_quants.cpp, cpu/gguf_kquants.cpp), which are gguf-py's dequantize. nvcc
// contracts a * b + c into one fma by default, whose single rounding would differ from numpy's
// two, so products and sums go through mul_rn / add_rn / sub_rn: on the device the
// round-to-nearest intrinsics (__fmul_rn, __fadd_rn, __fsub_rn), which are never contracted.
//
// Loads: a row starts 16-byte aligned and its blocks follow one another, so a block is aligned
// to the largest power of two dividing its size (MXFP4 17 bytes: 1; Q4_0 18: 2; Q4_1 20: 4;
// Q5_1 24: 8; Q4_K 144 and Q5_K 176: 16; ...). Each decoder reads its bytes with the widest
// loads that alignment allows; fully unrolled, the byte arrays below live in registers.
#include "cpu/gguf_blocks.h"

#include <cstdint>
#include <cstring>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

// Host and device: the decoders also compile as host code, so tst_gguf_cuda_decode checks them
// against the CPU decoders on a machine without a GPU. On the device the round-to-nearest
// intrinsics; on the host plain float operations (x86-64 code without FMA never fuses them).
#define LAYERWISE_HD __host__ __device__ __forceinline__

namespace layerwise::kernels::cuda::detail {

using cpu::GgmlType;

LAYERWISE_HD float mul_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

LAYERWISE_HD float add_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

LAYERWISE_HD float sub_rn(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

constexpr int kChunk = 32;

// Bytes of one chunk's container (the block for the 32-element family and the plain types, the
// super-block for the K family) and how many chunks it holds.
template <GgmlType T> struct Format;
template <> struct Format<GgmlType::Q4_0> { static constexpr int bytes = 18, chunks = 1; };
template <> struct Format<GgmlType::Q4_1> { static constexpr int bytes = 20, chunks = 1; };
template <> struct Format<GgmlType::Q5_0> { static constexpr int bytes = 22, chunks = 1; };
template <> struct Format<GgmlType::Q5_1> { static constexpr int bytes = 24, chunks = 1; };
template <> struct Format<GgmlType::Q8_0> { static constexpr int bytes = 34, chunks = 1; };
template <> struct Format<GgmlType::MXFP4> { static constexpr int bytes = 17, chunks = 1; };
template <> struct Format<GgmlType::Q2_K> { static constexpr int bytes = 84, chunks = 8; };
template <> struct Format<GgmlType::Q3_K> { static constexpr int bytes = 110, chunks = 8; };
template <> struct Format<GgmlType::Q4_K> { static constexpr int bytes = 144, chunks = 8; };
template <> struct Format<GgmlType::Q5_K> { static constexpr int bytes = 176, chunks = 8; };
template <> struct Format<GgmlType::Q6_K> { static constexpr int bytes = 210, chunks = 8; };
template <> struct Format<GgmlType::F32> { static constexpr int bytes = 128, chunks = 1; };
template <> struct Format<GgmlType::F16> { static constexpr int bytes = 64, chunks = 1; };
template <> struct Format<GgmlType::BF16> { static constexpr int bytes = 64, chunks = 1; };

LAYERWISE_HD float half_at(const std::uint8_t* p) // p 2-byte aligned
{
    return __half2float(__ushort_as_half(*reinterpret_cast<const std::uint16_t*>(p)));
}

LAYERWISE_HD float bf16_bits_to_float(std::uint32_t b)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(b << 16);
#else
    const std::uint32_t bits = b << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
#endif
}

// n bytes from p (aligned to Align) into out[0..n).
template <int Align, int N>
LAYERWISE_HD void load_bytes(const std::uint8_t* p, std::uint8_t* out)
{
    static_assert(N % Align == 0, "whole words");
    if constexpr (Align >= 16) {
#pragma unroll
        for (int i = 0; i < N / 16; ++i) {
            const uint4 w = reinterpret_cast<const uint4*>(p)[i];
            const std::uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
            for (int k = 0; k < 16; ++k)
                out[16 * i + k] = static_cast<std::uint8_t>(words[k / 4] >> (8 * (k % 4)));
        }
    } else if constexpr (Align >= 4) {
#pragma unroll
        for (int i = 0; i < N / 4; ++i) {
            const std::uint32_t w = reinterpret_cast<const std::uint32_t*>(p)[i];
#pragma unroll
            for (int k = 0; k < 4; ++k)
                out[4 * i + k] = static_cast<std::uint8_t>(w >> (8 * k));
        }
    } else if constexpr (Align >= 2) {
#pragma unroll
        for (int i = 0; i < N / 2; ++i) {
            const std::uint16_t w = reinterpret_cast<const std::uint16_t*>(p)[i];
            out[2 * i] = static_cast<std::uint8_t>(w);
            out[2 * i + 1] = static_cast<std::uint8_t>(w >> 8);
        }
    } else {
#pragma unroll
        for (int i = 0; i < N; ++i)
            out[i] = p[i];
    }
}

// ---- the 32-element family: one block is one chunk ----------------------------------------------
// Q4_0 {half d; u8 qs[16]}: low nibbles are values 0..15, high nibbles 16..31; (q - 8) * d.
LAYERWISE_HD void decode_q4_0(const std::uint8_t* b, float* v)
{
    const float d = half_at(b);
    std::uint8_t qs[16];
    load_bytes<2, 16>(b + 2, qs);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        v[j] = mul_rn(static_cast<float>((qs[j] & 0x0f) - 8), d);
        v[j + 16] = mul_rn(static_cast<float>((qs[j] >> 4) - 8), d);
    }
}

// Q4_1 {half d, m; u8 qs[16]}: q * d + m.
LAYERWISE_HD void decode_q4_1(const std::uint8_t* b, float* v)
{
    const float d = half_at(b), m = half_at(b + 2);
    std::uint8_t qs[16];
    load_bytes<4, 16>(b + 4, qs);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        v[j] = add_rn(mul_rn(static_cast<float>(qs[j] & 0x0f), d), m);
        v[j + 16] = add_rn(mul_rn(static_cast<float>(qs[j] >> 4), d), m);
    }
}

// Q5_0 {half d; u32 qh; u8 qs[16]}: the fifth bit of value j is bit j of qh; (q - 16) * d.
LAYERWISE_HD void decode_q5_0(const std::uint8_t* b, float* v)
{
    const float d = half_at(b);
    const std::uint32_t qh = static_cast<std::uint32_t>(*reinterpret_cast<const std::uint16_t*>(b + 2)) |
                             static_cast<std::uint32_t>(*reinterpret_cast<const std::uint16_t*>(b + 4)) << 16;
    std::uint8_t qs[16];
    load_bytes<2, 16>(b + 6, qs);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        const int h0 = static_cast<int>((qh >> j) & 1) << 4, h1 = static_cast<int>((qh >> (j + 16)) & 1) << 4;
        v[j] = mul_rn(static_cast<float>(((qs[j] & 0x0f) | h0) - 16), d);
        v[j + 16] = mul_rn(static_cast<float>(((qs[j] >> 4) | h1) - 16), d);
    }
}

// Q5_1 {half d, m; u32 qh; u8 qs[16]}: q * d + m.
LAYERWISE_HD void decode_q5_1(const std::uint8_t* b, float* v)
{
    const float d = half_at(b), m = half_at(b + 2);
    const std::uint32_t qh = *reinterpret_cast<const std::uint32_t*>(b + 4);
    std::uint8_t qs[16];
    load_bytes<8, 16>(b + 8, qs);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        const int h0 = static_cast<int>((qh >> j) & 1) << 4, h1 = static_cast<int>((qh >> (j + 16)) & 1) << 4;
        v[j] = add_rn(mul_rn(static_cast<float>((qs[j] & 0x0f) | h0), d), m);
        v[j + 16] = add_rn(mul_rn(static_cast<float>((qs[j] >> 4) | h1), d), m);
    }
}

// Q8_0 {half d; i8 qs[32]}: q * d.
LAYERWISE_HD void decode_q8_0(const std::uint8_t* b, float* v)
{
    const float d = half_at(b);
    std::uint8_t qs[32];
    load_bytes<2, 32>(b + 2, qs);
#pragma unroll
    for (int j = 0; j < 32; ++j)
        v[j] = mul_rn(static_cast<float>(static_cast<std::int8_t>(qs[j])), d);
}

// MXFP4 {u8 e; u8 qs[16]}: nibbles as Q4_0's, each an index into the doubled E2M1 values;
// kvalues[q] * e8m0_half(e). The block is only byte aligned (17 bytes).
LAYERWISE_HD float e8m0_half(std::uint8_t e)
{
    const std::uint32_t bits = e < 2 ? 0x00200000u << e : static_cast<std::uint32_t>(e - 1) << 23;
#ifdef __CUDA_ARCH__
    return __uint_as_float(bits);
#else
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
#endif
}

// Code q's value in registers, not from a table in local memory: the magnitudes of codes 0..7
// (0 1 2 3 4 6 8 12) are the nibbles of 0xC8643210; bit 3 is the sign (code 8 is 0).
LAYERWISE_HD int mxfp4_value(int q)
{
    const int magnitude = static_cast<int>((0xC8643210u >> (4 * (q & 7))) & 0x0f);
    return q & 8 ? -magnitude : magnitude;
}

LAYERWISE_HD void decode_mxfp4(const std::uint8_t* b, float* v)
{
    const float d = e8m0_half(b[0]);
    std::uint8_t qs[16];
    load_bytes<1, 16>(b + 1, qs);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        v[j] = mul_rn(static_cast<float>(mxfp4_value(qs[j] & 0x0f)), d);
        v[j + 16] = mul_rn(static_cast<float>(mxfp4_value(qs[j] >> 4)), d);
    }
}

// ---- the K family: chunk c (0..7) of a 256-value super-block ------------------------------------
// Q2_K {u8 scales[16]; u8 qs[64]; half d, dmin}: values 32 c .. 32 c + 31 are bits 2 j of
// qs[32 h + l] (h = c / 4, j = c % 4); value 16 k + l has scale scales[k] & 15 and min
// scales[k] >> 4: (d * scale) * q - (dmin * min).
LAYERWISE_HD void decode_q2_k(const std::uint8_t* b, int c, float* v)
{
    const float d = half_at(b + 80), dmin = half_at(b + 82);
    const int h = c / 4, shift = 2 * (c % 4);
    std::uint8_t qs[32];
    load_bytes<4, 32>(b + 16 + 32 * h, qs);
    const std::uint16_t sc = *reinterpret_cast<const std::uint16_t*>(b + 2 * c); // scales[2c], scales[2c + 1]
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const int s = (sc >> (8 * half)) & 0xff;
        const float dl = mul_rn(d, static_cast<float>(s & 0x0f));
        const float ml = mul_rn(dmin, static_cast<float>(s >> 4));
#pragma unroll
        for (int l = 0; l < 16; ++l) {
            const int q = (qs[16 * half + l] >> shift) & 3;
            v[16 * half + l] = sub_rn(mul_rn(dl, static_cast<float>(q)), ml);
        }
    }
}

// Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d}: the low two bits as Q2_K, minus 4
// unless bit 4 h + j of hmask[l] is set. Sixteen 6-bit scales, stored + 32: scale i keeps its
// low nibble in byte i (i < 8) or the high nibble of byte i - 8, its top two bits at bit
// 2 (i / 4) of byte 8 + i % 4. (d * scale) * q.
LAYERWISE_HD int q3_k_scale(const std::uint8_t* sc, int i)
{
    const int low = i < 8 ? (sc[i] & 0x0f) : (sc[i - 8] >> 4);
    const int high = (sc[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (low | (high << 4)) - 32;
}

LAYERWISE_HD void decode_q3_k(const std::uint8_t* b, int c, float* v)
{
    const float d = half_at(b + 108);
    const int h = c / 4, j = c % 4;
    std::uint8_t hmask[32], qs[32], sc[12];
    load_bytes<2, 32>(b, hmask);
    load_bytes<2, 32>(b + 32 + 32 * h, qs);
    load_bytes<2, 12>(b + 96, sc);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const float dl = mul_rn(d, static_cast<float>(q3_k_scale(sc, 2 * c + half)));
#pragma unroll
        for (int l = 0; l < 16; ++l) {
            const int i = 16 * half + l;
            const int low = (qs[i] >> (2 * j)) & 3;
            const int high = (hmask[i] >> (4 * h + j)) & 1;
            v[i] = mul_rn(dl, static_cast<float>(low - (high ? 0 : 4)));
        }
    }
}

// Q4_K / Q5_K: eight 6-bit scales and mins in 12 bytes, one pair per 32 values (chunk c):
// c < 4: scale = byte c & 63, min = byte c + 4 & 63; c >= 4: the low nibble of byte c + 4
// (scale) or its high nibble (min), with the top two bits of byte c - 4 (scale) or byte c (min).
LAYERWISE_HD void q45_k_scale_min(const std::uint8_t* sc, int c, int& scale, int& min)
{
    if (c < 4) {
        scale = sc[c] & 63;
        min = sc[c + 4] & 63;
    } else {
        scale = (sc[c + 4] & 0x0f) | ((sc[c - 4] >> 6) << 4);
        min = (sc[c + 4] >> 4) | ((sc[c] >> 6) << 4);
    }
}

// Q4_K {half d, dmin; u8 scales[12]; u8 qs[128]}: chunk c is the low (c even) or high nibbles
// of qs[32 (c / 2) ..]; (d * scale) * q - (dmin * min).
LAYERWISE_HD void decode_q4_k(const std::uint8_t* b, int c, float* v)
{
    const float d = half_at(b), dmin = half_at(b + 2);
    std::uint8_t sc[12], qs[32];
    load_bytes<4, 12>(b + 4, sc);
    load_bytes<16, 32>(b + 16 + 32 * (c / 2), qs);
    int scale, min;
    q45_k_scale_min(sc, c, scale, min);
    const float dl = mul_rn(d, static_cast<float>(scale)), ml = mul_rn(dmin, static_cast<float>(min));
    const int shift = 4 * (c % 2);
#pragma unroll
    for (int l = 0; l < 32; ++l)
        v[l] = sub_rn(mul_rn(dl, static_cast<float>((qs[l] >> shift) & 0x0f)), ml);
}

// Q5_K {half d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: Q4_K plus 16 where bit c of qh[l] is set.
LAYERWISE_HD void decode_q5_k(const std::uint8_t* b, int c, float* v)
{
    const float d = half_at(b), dmin = half_at(b + 2);
    std::uint8_t sc[12], qh[32], qs[32];
    load_bytes<4, 12>(b + 4, sc);
    load_bytes<16, 32>(b + 16, qh);
    load_bytes<16, 32>(b + 48 + 32 * (c / 2), qs);
    int scale, min;
    q45_k_scale_min(sc, c, scale, min);
    const float dl = mul_rn(d, static_cast<float>(scale)), ml = mul_rn(dmin, static_cast<float>(min));
    const int shift = 4 * (c % 2);
#pragma unroll
    for (int l = 0; l < 32; ++l) {
        const int q = ((qs[l] >> shift) & 0x0f) | (((qh[l] >> c) & 1) << 4);
        v[l] = sub_rn(mul_rn(dl, static_cast<float>(q)), ml);
    }
}

// Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; half d}: chunk c = 4 h + k takes the low (k < 2)
// or high nibble of ql[64 h + 32 (k % 2) + l] and bits 2 k of qh[32 h + l] on top, minus 32;
// value 16 i + l has scale scales[i]: (d * scale) * q.
LAYERWISE_HD void decode_q6_k(const std::uint8_t* b, int c, float* v)
{
    const float d = half_at(b + 208);
    const int h = c / 4, k = c % 4;
    std::uint8_t ql[32], qh[32];
    load_bytes<2, 32>(b + 64 * h + 32 * (k % 2), ql);
    load_bytes<2, 32>(b + 128 + 32 * h, qh);
    const std::uint16_t sc = *reinterpret_cast<const std::uint16_t*>(b + 192 + 2 * c);
#pragma unroll
    for (int half = 0; half < 2; ++half) {
        const float dl = mul_rn(d, static_cast<float>(static_cast<std::int8_t>(sc >> (8 * half))));
#pragma unroll
        for (int l = 0; l < 16; ++l) {
            const int i = 16 * half + l;
            const int q = (((ql[i] >> (4 * (k / 2))) & 0x0f) | (((qh[i] >> (2 * k)) & 3) << 4)) - 32;
            v[i] = mul_rn(dl, static_cast<float>(q));
        }
    }
}

// ---- plain values ------------------------------------------------------------------------------
LAYERWISE_HD void decode_f32(const std::uint8_t* b, float* v)
{
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const float4 f = reinterpret_cast<const float4*>(b)[i];
        v[4 * i] = f.x, v[4 * i + 1] = f.y, v[4 * i + 2] = f.z, v[4 * i + 3] = f.w;
    }
}

template <bool Bf16>
LAYERWISE_HD void decode_16bit(const std::uint8_t* b, float* v)
{
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const uint4 w = reinterpret_cast<const uint4*>(b)[i];
        const std::uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int k = 0; k < 8; ++k) {
            const std::uint32_t bits = (words[k / 2] >> (16 * (k % 2))) & 0xffff;
            v[8 * i + k] = Bf16 ? bf16_bits_to_float(bits) : __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
        }
    }
}

// Chunk `chunk` (counted from the row's start) of a row of format T into v[0..32).
template <GgmlType T>
LAYERWISE_HD void decode_chunk(const std::uint8_t* row, std::int64_t chunk, float* v)
{
    using F = Format<T>;
    const std::uint8_t* b = row + (chunk / F::chunks) * F::bytes;
    const int c = static_cast<int>(chunk % F::chunks);
    if constexpr (T == GgmlType::Q4_0) decode_q4_0(b, v);
    else if constexpr (T == GgmlType::Q4_1) decode_q4_1(b, v);
    else if constexpr (T == GgmlType::Q5_0) decode_q5_0(b, v);
    else if constexpr (T == GgmlType::Q5_1) decode_q5_1(b, v);
    else if constexpr (T == GgmlType::Q8_0) decode_q8_0(b, v);
    else if constexpr (T == GgmlType::MXFP4) decode_mxfp4(b, v);
    else if constexpr (T == GgmlType::Q2_K) decode_q2_k(b, c, v);
    else if constexpr (T == GgmlType::Q3_K) decode_q3_k(b, c, v);
    else if constexpr (T == GgmlType::Q4_K) decode_q4_k(b, c, v);
    else if constexpr (T == GgmlType::Q5_K) decode_q5_k(b, c, v);
    else if constexpr (T == GgmlType::Q6_K) decode_q6_k(b, c, v);
    else if constexpr (T == GgmlType::F32) decode_f32(b, v);
    else if constexpr (T == GgmlType::F16) decode_16bit<false>(b, v);
    else decode_16bit<true>(b, v);
}

// One lane's share of the decode GEMV (gguf_kernels.cu): weight rows w0 and w1 (the same row
// twice when w0 is the last one) against `rows` (<= MaxRows) activation rows x [rows, in];
// chunks lane, lane + lanes, ... are decoded into registers and multiplied with the same 32
// values of every activation row (read as float4: rows of a multiple of 32 floats stay 16-byte
// aligned). Partial sums are added to acc0 / acc1 [rows]; the caller sums them over the lanes.
template <GgmlType T, int MaxRows>
LAYERWISE_HD void gemv_lane(const std::uint8_t* w0, const std::uint8_t* w1, std::int64_t in, const float* x, int rows,
                            int lane, int lanes, float* acc0, float* acc1)
{
    const std::int64_t chunks = in / kChunk;
    for (std::int64_t ch = lane; ch < chunks; ch += lanes) {
        float v0[kChunk], v1[kChunk];
        decode_chunk<T>(w0, ch, v0);
        decode_chunk<T>(w1, ch, v1);
#pragma unroll
        for (int r = 0; r < MaxRows; ++r) {
            if (r < rows) {
                const float4* xr = reinterpret_cast<const float4*>(x + r * in + ch * kChunk);
                float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
                for (int i = 0; i < kChunk / 4; ++i) {
#ifdef __CUDA_ARCH__
                    const float4 a = __ldg(xr + i);
#else
                    const float4 a = xr[i];
#endif
                    s0 = fmaf(v0[4 * i], a.x, s0), s1 = fmaf(v1[4 * i], a.x, s1);
                    s0 = fmaf(v0[4 * i + 1], a.y, s0), s1 = fmaf(v1[4 * i + 1], a.y, s1);
                    s0 = fmaf(v0[4 * i + 2], a.z, s0), s1 = fmaf(v1[4 * i + 2], a.z, s1);
                    s0 = fmaf(v0[4 * i + 3], a.w, s0), s1 = fmaf(v1[4 * i + 3], a.w, s1);
                }
                acc0[r] += s0;
                acc1[r] += s1;
            }
        }
    }
}

} // namespace layerwise::kernels::cuda::detail
