#include "checkpoint/gguf_dequantize.h"

#include "core/error.h"

#include <cstring>

namespace layerwise::gguf {

float half_to_float(std::uint16_t h)
{
    const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1fu;
    std::uint32_t mantissa = h & 0x3ffu;
    std::uint32_t bits;
    if (exponent == 0x1f) {
        bits = sign | 0x7f800000u | (mantissa << 13); // inf / nan
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else { // subnormal: normalise
        std::uint32_t e = 113;
        while ((mantissa & 0x400u) == 0) {
            mantissa <<= 1;
            --e;
        }
        bits = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

float bfloat16_to_float(std::uint16_t b)
{
    const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

namespace {

std::uint16_t u16_at(const std::uint8_t* p)
{
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

float f16_at(const std::uint8_t* p) { return half_to_float(u16_at(p)); }

// Q4_0: f16 d, 16 bytes of nibbles; low nibbles are elements 0..15, high ones 16..31.
void q4_0(const std::uint8_t* b, float* y)
{
    const float d = f16_at(b);
    const std::uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
        y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
}

// Q4_1: f16 d, f16 m, 16 bytes of nibbles.
void q4_1(const std::uint8_t* b, float* y)
{
    const float d = f16_at(b), m = f16_at(b + 2);
    const std::uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(qs[j] & 0x0f) * d + m;
        y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
}

// Q5_0: f16 d, 32 high bits (u32), 16 bytes of nibbles; values 0..31 minus 16.
void q5_0(const std::uint8_t* b, float* y)
{
    const float d = f16_at(b);
    std::uint32_t qh;
    std::memcpy(&qh, b + 2, 4);
    const std::uint8_t* qs = b + 6;
    for (int j = 0; j < 16; ++j) {
        const int h0 = static_cast<int>((qh >> j) << 4) & 0x10;
        const int h1 = static_cast<int>(qh >> (j + 12)) & 0x10;
        y[j] = static_cast<float>(((qs[j] & 0x0f) | h0) - 16) * d;
        y[j + 16] = static_cast<float>(((qs[j] >> 4) | h1) - 16) * d;
    }
}

// Q5_1: f16 d, f16 m, 32 high bits, 16 bytes of nibbles.
void q5_1(const std::uint8_t* b, float* y)
{
    const float d = f16_at(b), m = f16_at(b + 2);
    std::uint32_t qh;
    std::memcpy(&qh, b + 4, 4);
    const std::uint8_t* qs = b + 8;
    for (int j = 0; j < 16; ++j) {
        const int h0 = static_cast<int>((qh >> j) << 4) & 0x10;
        const int h1 = static_cast<int>(qh >> (j + 12)) & 0x10;
        y[j] = static_cast<float>((qs[j] & 0x0f) | h0) * d + m;
        y[j + 16] = static_cast<float>((qs[j] >> 4) | h1) * d + m;
    }
}

// Q8_0: f16 d, 32 signed bytes.
void q8_0(const std::uint8_t* b, float* y)
{
    const float d = f16_at(b);
    for (int j = 0; j < 32; ++j)
        y[j] = static_cast<float>(static_cast<std::int8_t>(b[2 + j])) * d;
}

// The 6-bit scale and min of sub-block j from the 12 packed scale bytes of Q4_K / Q5_K.
void scale_min_k4(int j, const std::uint8_t* q, int& scale, int& min)
{
    if (j < 4) {
        scale = q[j] & 63;
        min = q[j + 4] & 63;
    } else {
        scale = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Q4_K: f16 d, f16 dmin, 12 scale bytes, 128 bytes of nibbles; 8 sub-blocks of 32.
void q4_k(const std::uint8_t* b, float* y)
{
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const std::uint8_t* scales = b + 4;
    const std::uint8_t* q = b + 16;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
        int sc, m;
        scale_min_k4(is, scales, sc, m);
        const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
        scale_min_k4(is + 1, scales, sc, m);
        const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
        for (int l = 0; l < 32; ++l)
            *y++ = d1 * static_cast<float>(q[l] & 0x0f) - m1;
        for (int l = 0; l < 32; ++l)
            *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
}

// Q5_K: f16 d, f16 dmin, 12 scale bytes, 32 bytes of high bits, 128 bytes of nibbles.
void q5_k(const std::uint8_t* b, float* y)
{
    const float d = f16_at(b), dmin = f16_at(b + 2);
    const std::uint8_t* scales = b + 4;
    const std::uint8_t* qh = b + 16;
    const std::uint8_t* ql = b + 48;
    std::uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32) {
        int sc, m;
        scale_min_k4(is, scales, sc, m);
        const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
        scale_min_k4(is + 1, scales, sc, m);
        const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
        for (int l = 0; l < 32; ++l)
            *y++ = d1 * static_cast<float>((ql[l] & 0x0f) + ((qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; ++l)
            *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
        u1 = static_cast<std::uint8_t>(u1 << 2);
        u2 = static_cast<std::uint8_t>(u2 << 2);
    }
}

// Q6_K: 128 bytes of low nibbles, 64 bytes of 2-bit highs, 16 signed scales, f16 d.
void q6_k(const std::uint8_t* b, float* y)
{
    const std::uint8_t* ql = b;
    const std::uint8_t* qh = b + 128;
    const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);
    const float d = f16_at(b + 208);
    for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * static_cast<float>(sc[is] * q1);
            y[l + 32] = d * static_cast<float>(sc[is + 2] * q2);
            y[l + 64] = d * static_cast<float>(sc[is + 4] * q3);
            y[l + 96] = d * static_cast<float>(sc[is + 6] * q4);
        }
    }
}

using BlockDecoder = void (*)(const std::uint8_t*, float*);

BlockDecoder decoder(TensorType type)
{
    switch (type) {
    case TensorType::Q4_0: return q4_0;
    case TensorType::Q4_1: return q4_1;
    case TensorType::Q5_0: return q5_0;
    case TensorType::Q5_1: return q5_1;
    case TensorType::Q8_0: return q8_0;
    case TensorType::Q4_K: return q4_k;
    case TensorType::Q5_K: return q5_k;
    case TensorType::Q6_K: return q6_k;
    default: return nullptr;
    }
}

} // namespace

bool can_dequantize(TensorType type)
{
    return type == TensorType::F32 || type == TensorType::F16 || type == TensorType::BF16 || decoder(type) != nullptr;
}

void dequantize(TensorType type, const std::uint8_t* src, std::uint64_t numel, float* dst)
{
    switch (type) {
    case TensorType::F32: std::memcpy(dst, src, numel * 4); return;
    case TensorType::F16:
        for (std::uint64_t i = 0; i < numel; ++i)
            dst[i] = half_to_float(u16_at(src + 2 * i));
        return;
    case TensorType::BF16:
        for (std::uint64_t i = 0; i < numel; ++i)
            dst[i] = bfloat16_to_float(u16_at(src + 2 * i));
        return;
    default: break;
    }
    const BlockDecoder decode = decoder(type);
    if (!decode)
        throw UnsupportedError("GGUF tensor type " + std::string(tensor_type_name(type)) +
                               " cannot be decoded yet (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, "
                               "Q5_K, Q6_K); re-quantize the model to one of those");
    const BlockLayout layout = *block_layout(static_cast<std::uint32_t>(type));
    const std::uint64_t blocks = numel / layout.block_elements;
    for (std::uint64_t i = 0; i < blocks; ++i)
        decode(src + i * layout.block_bytes, dst + i * layout.block_elements);
}

} // namespace layerwise::gguf
