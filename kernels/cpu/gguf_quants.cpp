// ggml's 32-element block formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4) and the plain ones (F32,
// F16, BF16) on the CPU: decoding, the 8-bit activation blocks (Q8_0 / Q8_1) and the dot products of
// a weight row with an activation row, each as a portable loop and AVX2 / AVX-512 VNNI paths
// (see gguf_blocks.h). Inside a block the products are summed exactly as integers; blocks are
// combined in float32, so the levels differ only in that float summation order.
//
// Signed x signed byte products go through the unsigned x signed instructions (maddubs /
// dpbusd) as |w| times y with w's sign: |w| <= 128 and |y| <= 127 keep a pair's int16 sum
// within range (2 * 128 * 127 = 32512), so every product is exact. MXFP4's codes are looked up
// as their signed integer values (-12..12, ggml's doubled E2M1 values) and taken the same way.
#include "cpu/gguf_blocks.h"
#include "cpu/simd.h"

#include <cmath>
#include <cstring>
#include <iterator>

namespace layerwise::kernels::cpu {

namespace {

std::uint16_t u16_at(const std::uint8_t* p)
{
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    return v;
}

float f16_at(const std::uint8_t* p) { return half_to_float(u16_at(p)); }

float bf16_to_float(std::uint16_t b)
{
    const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// ---- block sizes ---------------------------------------------------------------------------
constexpr int kQ4_0 = 18, kQ4_1 = 20, kQ5_0 = 22, kQ5_1 = 24, kQ8_0 = 34, kQ8_1 = 36, kMxfp4 = 17;

// ---- decoding (gguf-py's dequantize, element for element) ----------------------------------
void decode_q4_0(const std::uint8_t* b, float* y)
{
    const float d = f16_at(b);
    const std::uint8_t* qs = b + 2;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
        y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
}

void decode_q4_1(const std::uint8_t* b, float* y)
{
    const float d = f16_at(b), m = f16_at(b + 2);
    const std::uint8_t* qs = b + 4;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(qs[j] & 0x0f) * d + m;
        y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
    }
}

// The fifth bit of element j (0..15) is bit j of qh, of element j + 16 bit j + 16.
void decode_q5_0(const std::uint8_t* b, float* y)
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

void decode_q5_1(const std::uint8_t* b, float* y)
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

void decode_q8_0(const std::uint8_t* b, float* y)
{
    const float d = f16_at(b);
    for (int j = 0; j < 32; ++j)
        y[j] = static_cast<float>(static_cast<std::int8_t>(b[2 + j])) * d;
}

// MXFP4 {u8 e; u8 qs[16]}: kvalues[q] * e8m0_half(e), the nibbles placed as Q4_0's.
void decode_mxfp4(const std::uint8_t* b, float* y)
{
    const float d = e8m0_half(b[0]);
    const std::uint8_t* qs = b + 1;
    for (int j = 0; j < 16; ++j) {
        y[j] = static_cast<float>(kMxfp4Values[qs[j] & 0x0f]) * d;
        y[j + 16] = static_cast<float>(kMxfp4Values[qs[j] >> 4]) * d;
    }
}

// ---- activation quantization ---------------------------------------------------------------
// ggml's reference: d = amax / 127, id = 1 / d, q = roundf(x * id) (halves away from zero).
template <bool WithSum>
void quantize_q8_block_scalar(const float* x, std::uint8_t* out)
{
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j)
        amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const std::uint16_t dh = float_to_half(d);
    std::memcpy(out, &dh, 2);
    auto* qs = reinterpret_cast<std::int8_t*>(out + (WithSum ? 4 : 2));
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
        // A finite block gives |x * id| <= 127. A non-finite value (a model that overflowed) gets
        // -128, what the SIMD path's conversion gives it, instead of an undefined conversion.
        const float v = x[j] * id;
        qs[j] = std::fabs(v) <= 127.5f ? static_cast<std::int8_t>(std::roundf(v)) : std::int8_t{-128};
        sum += qs[j];
    }
    if constexpr (WithSum) {
        const std::uint16_t sh = float_to_half(static_cast<float>(sum) * d);
        std::memcpy(out + 2, &sh, 2);
    }
}

// ---- scalar dot products -------------------------------------------------------------------
float dot_q4_0_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const std::uint8_t*>(wv);
    const auto* a = static_cast<const std::uint8_t*>(av);
    float sum = 0.0f;
    for (std::int64_t b = 0; b < n / kQK; ++b, w += kQ4_0, a += kQ8_0) {
        const auto* q8 = reinterpret_cast<const std::int8_t*>(a + 2);
        int s = 0;
        for (int j = 0; j < 16; ++j)
            s += ((w[2 + j] & 0x0f) - 8) * q8[j] + ((w[2 + j] >> 4) - 8) * q8[j + 16];
        sum += static_cast<float>(s) * (f16_at(w) * f16_at(a));
    }
    return sum;
}

float dot_q4_1_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const std::uint8_t*>(wv);
    const auto* a = static_cast<const std::uint8_t*>(av);
    float sum = 0.0f;
    for (std::int64_t b = 0; b < n / kQK; ++b, w += kQ4_1, a += kQ8_1) {
        const auto* q8 = reinterpret_cast<const std::int8_t*>(a + 4);
        int s = 0;
        for (int j = 0; j < 16; ++j)
            s += (w[4 + j] & 0x0f) * q8[j] + (w[4 + j] >> 4) * q8[j + 16];
        sum += static_cast<float>(s) * (f16_at(w) * f16_at(a)) + f16_at(w + 2) * f16_at(a + 2);
    }
    return sum;
}

float dot_q5_0_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const std::uint8_t*>(wv);
    const auto* a = static_cast<const std::uint8_t*>(av);
    float sum = 0.0f;
    for (std::int64_t b = 0; b < n / kQK; ++b, w += kQ5_0, a += kQ8_0) {
        std::uint32_t qh;
        std::memcpy(&qh, w + 2, 4);
        const std::uint8_t* qs = w + 6;
        const auto* q8 = reinterpret_cast<const std::int8_t*>(a + 2);
        int s = 0;
        for (int j = 0; j < 16; ++j) {
            const int lo = ((qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4)) - 16;
            const int hi = ((qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4)) - 16;
            s += lo * q8[j] + hi * q8[j + 16];
        }
        sum += static_cast<float>(s) * (f16_at(w) * f16_at(a));
    }
    return sum;
}

float dot_q5_1_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const std::uint8_t*>(wv);
    const auto* a = static_cast<const std::uint8_t*>(av);
    float sum = 0.0f;
    for (std::int64_t b = 0; b < n / kQK; ++b, w += kQ5_1, a += kQ8_1) {
        std::uint32_t qh;
        std::memcpy(&qh, w + 4, 4);
        const std::uint8_t* qs = w + 8;
        const auto* q8 = reinterpret_cast<const std::int8_t*>(a + 4);
        int s = 0;
        for (int j = 0; j < 16; ++j) {
            const int lo = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) & 1u) << 4);
            const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
            s += lo * q8[j] + hi * q8[j + 16];
        }
        sum += static_cast<float>(s) * (f16_at(w) * f16_at(a)) + f16_at(w + 2) * f16_at(a + 2);
    }
    return sum;
}

float dot_q8_0_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const std::uint8_t*>(wv);
    const auto* a = static_cast<const std::uint8_t*>(av);
    float sum = 0.0f;
    for (std::int64_t b = 0; b < n / kQK; ++b, w += kQ8_0, a += kQ8_0) {
        const auto* qw = reinterpret_cast<const std::int8_t*>(w + 2);
        const auto* qa = reinterpret_cast<const std::int8_t*>(a + 2);
        int s = 0;
        for (int j = 0; j < kQK; ++j)
            s += qw[j] * qa[j];
        sum += static_cast<float>(s) * (f16_at(w) * f16_at(a));
    }
    return sum;
}

// Q8_0 activations, as ggml_vec_dot_mxfp4_q8_0: the integer sum times e8m0_half(e) * d.
float dot_mxfp4_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const std::uint8_t*>(wv);
    const auto* a = static_cast<const std::uint8_t*>(av);
    float sum = 0.0f;
    for (std::int64_t b = 0; b < n / kQK; ++b, w += kMxfp4, a += kQ8_0) {
        const auto* q8 = reinterpret_cast<const std::int8_t*>(a + 2);
        int s = 0;
        for (int j = 0; j < 16; ++j)
            s += kMxfp4Values[w[1 + j] & 0x0f] * q8[j] + kMxfp4Values[w[1 + j] >> 4] * q8[j + 16];
        sum += static_cast<float>(s) * (e8m0_half(w[0]) * f16_at(a));
    }
    return sum;
}

float dot_f32_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const float*>(wv);
    const auto* a = static_cast<const float*>(av);
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n; ++i)
        sum += w[i] * a[i];
    return sum;
}

float dot_f16_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const std::uint16_t*>(wv);
    const auto* a = static_cast<const float*>(av);
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n; ++i)
        sum += half_to_float(w[i]) * a[i];
    return sum;
}

float dot_bf16_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const std::uint16_t*>(wv);
    const auto* a = static_cast<const float*>(av);
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n; ++i)
        sum += bf16_to_float(w[i]) * a[i];
    return sum;
}

#ifdef LAYERWISE_SIMD_X86

// ---- AVX2 and AVX-512 VNNI: one text, two targets -----------------------------------------
namespace avx2 {
#define LAYERWISE_GGUF_TARGET LAYERWISE_AVX2
#define LAYERWISE_GGUF_VNNI 0
#define LAYERWISE_GGUF_TILE 2
#include "cpu/gguf_quants_simd.inc"
#undef LAYERWISE_GGUF_TARGET
#undef LAYERWISE_GGUF_VNNI
#undef LAYERWISE_GGUF_TILE
} // namespace avx2

namespace vnni {
#define LAYERWISE_GGUF_TARGET LAYERWISE_AVX512_VNNI
#define LAYERWISE_GGUF_VNNI 1
#define LAYERWISE_GGUF_TILE 4
#include "cpu/gguf_quants_simd.inc"
#undef LAYERWISE_GGUF_TARGET
#undef LAYERWISE_GGUF_VNNI
#undef LAYERWISE_GGUF_TILE
} // namespace vnni

using avx2::hsum_ps;

LAYERWISE_AVX2 float dot_f32_avx2(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const float*>(wv);
    const auto* a = static_cast<const float*>(av);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(a + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(a + i + 8), acc1);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; ++i)
        sum += w[i] * a[i];
    return sum;
}

LAYERWISE_AVX2 float dot_f16_avx2(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const std::uint16_t*>(wv);
    const auto* a = static_cast<const float*>(av);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
        const __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + 8)));
        acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(a + i), acc0);
        acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(a + i + 8), acc1);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; ++i)
        sum += half_to_float(w[i]) * a[i];
    return sum;
}

LAYERWISE_AVX2 float dot_bf16_avx2(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const std::uint16_t*>(wv);
    const auto* a = static_cast<const float*>(av);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i h0 = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i)));
        const __m256i h1 = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + 8)));
        acc0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(h0, 16)), _mm256_loadu_ps(a + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(h1, 16)), _mm256_loadu_ps(a + i + 8), acc1);
    }
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; ++i)
        sum += bf16_to_float(w[i]) * a[i];
    return sum;
}

// Four rows of a float format (F32, F16, BF16: dense checkpoints and GGUF's float tensors)
// against one float activation row, for decode: the activation is loaded once for the four rows,
// each row's stream is prefetched 512 bytes ahead, and every row's sum is formed in exactly the
// order of its one-row kernel above (two accumulators of eight lanes, then the tail).
struct F32Elements {
    static constexpr int bytes = 4;
    LAYERWISE_AVX2 static __m256 load8(const std::uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
    static float one(const std::uint8_t* p)
    {
        float f;
        std::memcpy(&f, p, 4);
        return f;
    }
};
struct F16Elements {
    static constexpr int bytes = 2;
    LAYERWISE_AVX2 static __m256 load8(const std::uint8_t* p)
    {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    static float one(const std::uint8_t* p) { return half_to_float(u16_at(p)); }
};
struct Bf16Elements {
    static constexpr int bytes = 2;
    LAYERWISE_AVX2 static __m256 load8(const std::uint8_t* p)
    {
        const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
    }
    static float one(const std::uint8_t* p) { return bf16_to_float(u16_at(p)); }
};

template <typename E>
LAYERWISE_AVX2 void dot4_float(std::int64_t n, const void* wv, std::int64_t stride, const void* av, float* out)
{
    const auto* w = static_cast<const std::uint8_t*>(wv);
    const auto* a = static_cast<const float*>(av);
    __m256 acc[4][2];
    for (auto& r : acc)
        r[0] = r[1] = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a0 = _mm256_loadu_ps(a + i), a1 = _mm256_loadu_ps(a + i + 8);
        for (int r = 0; r < 4; ++r) {
            const std::uint8_t* p = w + r * stride + i * E::bytes;
            _mm_prefetch(reinterpret_cast<const char*>(p + 512), _MM_HINT_T0);
            acc[r][0] = _mm256_fmadd_ps(E::load8(p), a0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(E::load8(p + 8 * E::bytes), a1, acc[r][1]);
        }
    }
    for (int r = 0; r < 4; ++r) {
        float sum = hsum_ps(_mm256_add_ps(acc[r][0], acc[r][1]));
        for (std::int64_t j = i; j < n; ++j)
            sum += E::one(w + r * stride + j * E::bytes) * a[j];
        out[r] = sum;
    }
}

LAYERWISE_AVX2 void dot4_f32_avx2(std::int64_t n, const void* w, std::int64_t s, const void* a, float* out)
{
    dot4_float<F32Elements>(n, w, s, a, out);
}
LAYERWISE_AVX2 void dot4_f16_avx2(std::int64_t n, const void* w, std::int64_t s, const void* a, float* out)
{
    dot4_float<F16Elements>(n, w, s, a, out);
}
LAYERWISE_AVX2 void dot4_bf16_avx2(std::int64_t n, const void* w, std::int64_t s, const void* a, float* out)
{
    dot4_float<Bf16Elements>(n, w, s, a, out);
}

// Exact round-half-away-from-zero of 8 floats (roundf), as ints.
LAYERWISE_AVX2 inline __m256i round_away(__m256 v)
{
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_sub_ps(v, t); // exact
    const __m256 half = _mm256_set1_ps(0.5f);
    const __m256 up = _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), _mm256_set1_ps(1.0f));
    const __m256 down = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(-0.5f), _CMP_LE_OQ), _mm256_set1_ps(1.0f));
    return _mm256_cvttps_epi32(_mm256_sub_ps(_mm256_add_ps(t, up), down));
}

template <bool WithSum>
LAYERWISE_AVX2 void quantize_q8_avx2(const float* x, std::uint8_t* out, std::int64_t n)
{
    const __m256 sign_mask = _mm256_set1_ps(-0.0f);
    for (std::int64_t b = 0; b < n / kQK; ++b, x += kQK, out += WithSum ? kQ8_1 : kQ8_0) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; ++k) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign_mask, v[k]));
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const std::uint16_t dh = float_to_half(d);
        std::memcpy(out, &dh, 2);
        const __m256 mul = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; ++k)
            q[k] = round_away(_mm256_mul_ps(v[k], mul));
        if constexpr (WithSum) {
            const __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
            s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
            const std::uint16_t sh = float_to_half(static_cast<float>(_mm_cvtsi128_si32(s4)) * d);
            std::memcpy(out + 2, &sh, 2);
        }
        // int32 -> int8 in element order: packs interleave 128-bit lanes, the permute undoes it.
        const __m256i p01 = _mm256_packs_epi32(q[0], q[1]), p23 = _mm256_packs_epi32(q[2], q[3]);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + (WithSum ? 4 : 2)), p);
    }
}

#endif // LAYERWISE_SIMD_X86

bool has_vnni() { return cpu_features().avx512vnni; }

} // namespace

void quantize_row_q8_0(const float* x, void* out, std::int64_t n, CpuLevel level)
{
    auto* o = static_cast<std::uint8_t*>(out);
#ifdef LAYERWISE_SIMD_X86
    if (resolve_cpu_level(level) != CpuLevel::scalar && cpu_level_available(CpuLevel::avx2))
        return quantize_q8_avx2<false>(x, o, n);
#endif
    (void)level;
    for (std::int64_t b = 0; b < n / kQK; ++b)
        quantize_q8_block_scalar<false>(x + b * kQK, o + b * kQ8_0);
}

void quantize_row_q8_1(const float* x, void* out, std::int64_t n, CpuLevel level)
{
    auto* o = static_cast<std::uint8_t*>(out);
#ifdef LAYERWISE_SIMD_X86
    if (resolve_cpu_level(level) != CpuLevel::scalar && cpu_level_available(CpuLevel::avx2))
        return quantize_q8_avx2<true>(x, o, n);
#endif
    (void)level;
    for (std::int64_t b = 0; b < n / kQK; ++b)
        quantize_q8_block_scalar<true>(x + b * kQK, o + b * kQ8_1);
}

namespace {

// The kernels of one format at one level: the single-row dot, the four-row dot and the 4 x 4 tile
// (the last two null where there is none: the scalar level and the float formats).
struct FormatKernels {
    GgmlType type;
    VecDot dot;
    VecDot4 dot4;
    VecDot4x4 tile;
};

const FormatKernels kScalar[] = {
    {GgmlType::Q4_0, dot_q4_0_scalar, nullptr, nullptr}, {GgmlType::Q4_1, dot_q4_1_scalar, nullptr, nullptr},
    {GgmlType::Q5_0, dot_q5_0_scalar, nullptr, nullptr}, {GgmlType::Q5_1, dot_q5_1_scalar, nullptr, nullptr},
    {GgmlType::Q8_0, dot_q8_0_scalar, nullptr, nullptr}, {GgmlType::MXFP4, dot_mxfp4_scalar, nullptr, nullptr},
    {GgmlType::F32, dot_f32_scalar, nullptr, nullptr},   {GgmlType::F16, dot_f16_scalar, nullptr, nullptr},
    {GgmlType::BF16, dot_bf16_scalar, nullptr, nullptr},
};

#ifdef LAYERWISE_SIMD_X86
#define LAYERWISE_GGUF_LEVEL_TABLE(ns)                                                                            \
    {                                                                                                            \
        {GgmlType::Q4_0, ns::dot_q4_0, ns::dot4_q4_0, ns::dot4x4_q4_0},                                            \
            {GgmlType::Q4_1, ns::dot_q4_1, ns::dot4_q4_1, ns::dot4x4_q4_1},                                        \
            {GgmlType::Q5_0, ns::dot_q5_0, ns::dot4_q5_0, ns::dot4x4_q5_0},                                        \
            {GgmlType::Q5_1, ns::dot_q5_1, ns::dot4_q5_1, ns::dot4x4_q5_1},                                        \
            {GgmlType::Q8_0, ns::dot_q8_0, ns::dot4_q8_0, ns::dot4x4_q8_0},                                        \
            {GgmlType::MXFP4, ns::dot_mxfp4, ns::dot4_mxfp4, ns::dot4x4_mxfp4},                                    \
            {GgmlType::F32, dot_f32_avx2, dot4_f32_avx2, nullptr},                                                   \
            {GgmlType::F16, dot_f16_avx2, dot4_f16_avx2, nullptr},                                                   \
            {GgmlType::BF16, dot_bf16_avx2, dot4_bf16_avx2, nullptr},                                                \
    }
const FormatKernels kAvx2[] = LAYERWISE_GGUF_LEVEL_TABLE(avx2);
const FormatKernels kVnni[] = LAYERWISE_GGUF_LEVEL_TABLE(vnni);
#undef LAYERWISE_GGUF_LEVEL_TABLE
#endif

// The entry for `weight` in the table of the best level at or below `level`; null for a format
// outside the 32-element and float family.
const FormatKernels* format_kernels(GgmlType weight, CpuLevel level)
{
    level = resolve_cpu_level(level);
    const FormatKernels* table = kScalar;
#ifdef LAYERWISE_SIMD_X86
    if (level == CpuLevel::avx512 && cpu_level_available(CpuLevel::avx512) && has_vnni())
        table = kVnni;
    else if (level != CpuLevel::scalar && cpu_level_available(CpuLevel::avx2))
        table = kAvx2;
#endif
    for (std::size_t i = 0; i < std::size(kScalar); ++i)
        if (table[i].type == weight)
            return &table[i];
    return nullptr;
}

} // namespace

VecDot vec_dot_q32_family(GgmlType weight, CpuLevel level)
{
    const FormatKernels* k = format_kernels(weight, level);
    return k ? k->dot : nullptr;
}

VecDot4 vec_dot4_kernel(GgmlType weight, CpuLevel level)
{
    const FormatKernels* k = format_kernels(weight, level);
    return k ? k->dot4 : vec_dot4_k_family(weight, level);
}

VecDot4x4 vec_dot4x4_kernel(GgmlType weight, CpuLevel level)
{
    const FormatKernels* k = format_kernels(weight, level);
    return k ? k->tile : vec_dot4x4_k_family(weight, level);
}
bool dequantize_row_q32_family(GgmlType type, const void* src, float* dst, std::int64_t n)
{
    const auto* s = static_cast<const std::uint8_t*>(src);
    using Decode = void (*)(const std::uint8_t*, float*);
    Decode decode = nullptr;
    int bytes = 0;
    switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, static_cast<std::size_t>(n) * 4); return true;
    case GgmlType::F16:
        for (std::int64_t i = 0; i < n; ++i)
            dst[i] = half_to_float(u16_at(s + 2 * i));
        return true;
    case GgmlType::BF16:
        for (std::int64_t i = 0; i < n; ++i)
            dst[i] = bf16_to_float(u16_at(s + 2 * i));
        return true;
    case GgmlType::Q4_0: decode = decode_q4_0, bytes = kQ4_0; break;
    case GgmlType::Q4_1: decode = decode_q4_1, bytes = kQ4_1; break;
    case GgmlType::Q5_0: decode = decode_q5_0, bytes = kQ5_0; break;
    case GgmlType::Q5_1: decode = decode_q5_1, bytes = kQ5_1; break;
    case GgmlType::Q8_0: decode = decode_q8_0, bytes = kQ8_0; break;
    case GgmlType::MXFP4: decode = decode_mxfp4, bytes = kMxfp4; break;
    default: return false;
    }
    for (std::int64_t b = 0; b < n / kQK; ++b)
        decode(s + b * bytes, dst + b * kQK);
    return true;
}

GgmlType activation_type(GgmlType weight)
{
    switch (weight) {
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
    case GgmlType::Q8_0:
    case GgmlType::MXFP4: return GgmlType::Q8_0;
    case GgmlType::Q4_1:
    case GgmlType::Q5_1: return GgmlType::Q8_1;
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K: return GgmlType::Q8_K;
    default: return GgmlType::F32;
    }
}

VecDot vec_dot_kernel(GgmlType weight, CpuLevel level)
{
    if (VecDot f = vec_dot_q32_family(weight, level))
        return f;
    return vec_dot_k_family(weight, level);
}

bool dequantize_row(GgmlType type, const void* src, float* dst, std::int64_t n)
{
    return dequantize_row_q32_family(type, src, dst, n) || dequantize_row_k_family(type, src, dst, n);
}

bool block_geometry(GgmlType type, int& elements, int& bytes)
{
    switch (type) {
    case GgmlType::F32: elements = 1, bytes = 4; return true;
    case GgmlType::F16:
    case GgmlType::BF16: elements = 1, bytes = 2; return true;
    case GgmlType::Q4_0: elements = kQK, bytes = kQ4_0; return true;
    case GgmlType::Q4_1: elements = kQK, bytes = kQ4_1; return true;
    case GgmlType::Q5_0: elements = kQK, bytes = kQ5_0; return true;
    case GgmlType::Q5_1: elements = kQK, bytes = kQ5_1; return true;
    case GgmlType::Q8_0: elements = kQK, bytes = kQ8_0; return true;
    case GgmlType::Q8_1: elements = kQK, bytes = kQ8_1; return true;
    case GgmlType::Q2_K: elements = kQKK, bytes = 84; return true;
    case GgmlType::Q3_K: elements = kQKK, bytes = 110; return true;
    case GgmlType::Q4_K: elements = kQKK, bytes = 144; return true;
    case GgmlType::Q5_K: elements = kQKK, bytes = 176; return true;
    case GgmlType::Q6_K: elements = kQKK, bytes = 210; return true;
    case GgmlType::Q8_K: elements = kQKK, bytes = 292; return true;
    case GgmlType::MXFP4: elements = kQK, bytes = kMxfp4; return true;
    }
    return false;
}

} // namespace layerwise::kernels::cpu
