// ggml's K-quant super-block formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K: 256 weights a block) and
// the Q8_K activation blocks they are multiplied with, on the CPU (see gguf_blocks.h):
// decoding to float32 element for element as gguf-py / ggml do, quantizing an activation row to
// Q8_K byte for byte as ggml's reference does, and the weight-row x activation-row dot product
// as a portable loop, an AVX2 path and an AVX-512 VNNI path (an AVX-512 CPU without VNNI runs
// the AVX2 one), with four-row (decode) and 4 x 4 tile (prefill) forms of the two SIMD paths.
//
// Every dot product has the same shape: inside a super-block the weight quants times the
// activation quants times the sub-block scales are summed exactly as integers; the super-blocks
// are combined in float32 (d_w * d_a * sum, less dmin_w * d_a * sum(min * bsum) for the formats
// with mins). So the levels differ only in the float summation order across super-blocks.
//
// The SIMD paths multiply unsigned weight quants by signed activation bytes (maddubs: pairs of
// u8 x s8 summed into int16; every format's quants stay <= 63, so 2 * 63 * 128 cannot saturate)
// and then the int16 pair sums by the sub-block scales (madd, or VNNI's dpwssd that also
// accumulates). Formats whose quants are signed (Q3_K: q - 4, Q6_K: q - 32) are fed to the
// unsigned side without their offset; the offset comes back as offset * sum(scale * bsum),
// which the Q8_K blocks carry precomputed, so no per-byte correction is needed.
#include "cpu/gguf_blocks.h"
#include "cpu/simd.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <iterator>

namespace layerwise::kernels::cpu {

namespace {

// ---- block layouts (bytes only: a row in a mapped file need not be aligned for halves) ------
struct BlockQ2K {
    std::uint8_t scales[16]; // low nibble: scale, high nibble: min, one pair per 16 weights
    std::uint8_t qs[64];     // 2-bit quants
    std::uint8_t d[2], dmin[2];
};
struct BlockQ3K {
    std::uint8_t hmask[32];  // third bit of each quant
    std::uint8_t qs[64];     // low 2 bits
    std::uint8_t scales[12]; // sixteen 6-bit scales, stored + 32
    std::uint8_t d[2];
};
struct BlockQ4K {
    std::uint8_t d[2], dmin[2];
    std::uint8_t scales[12]; // eight 6-bit scales and eight 6-bit mins, one pair per 32 weights
    std::uint8_t qs[128];
};
struct BlockQ5K {
    std::uint8_t d[2], dmin[2];
    std::uint8_t scales[12];
    std::uint8_t qh[32]; // fifth bit of each quant
    std::uint8_t qs[128];
};
struct BlockQ6K {
    std::uint8_t ql[128]; // low 4 bits
    std::uint8_t qh[64];  // high 2 bits
    std::int8_t scales[16];
    std::uint8_t d[2];
};
struct BlockQ8K {
    std::uint8_t d[4]; // float32
    std::int8_t qs[256];
    std::uint8_t bsums[32]; // int16 sums of 16 consecutive qs
};
static_assert(sizeof(BlockQ2K) == 84 && sizeof(BlockQ3K) == 110 && sizeof(BlockQ4K) == 144);
static_assert(sizeof(BlockQ5K) == 176 && sizeof(BlockQ6K) == 210 && sizeof(BlockQ8K) == 292);

float half_at(const std::uint8_t* p)
{
    std::uint16_t h;
    std::memcpy(&h, p, 2);
    return half_to_float(h);
}

// Also called by the SIMD paths, where it must be inlined: as a call it would run as legacy
// (non-VEX) SSE code while the caller's wide registers are live, and some CPUs pay a state
// transition for that on every instruction (it once made the Q3_K kernels ten times slower).
inline __attribute__((always_inline)) float q8k_d(const BlockQ8K& b)
{
    float d;
    std::memcpy(&d, b.d, 4);
    return d;
}

std::int32_t q8k_bsum(const BlockQ8K& b, int j)
{
    std::int16_t s;
    std::memcpy(&s, b.bsums + 2 * j, 2);
    return s;
}

// ---- scale unpacking --------------------------------------------------------------------------
// Q4_K / Q5_K: bytes 0-3 hold scales 0-3 in their low 6 bits, bytes 4-7 mins 0-3; scales and
// mins 4-7 keep their low nibble in bytes 8-11 (scale low, min high) and their top two bits in
// the spare top bits of bytes 0-3 (scales) and 4-7 (mins). Done on 32-bit words, four bytes at
// once; every shift is masked so that no bit crosses into a neighbouring byte.
struct ScalesMins {
    std::uint8_t scale[8], min[8];
};

ScalesMins unpack_scales_mins(const std::uint8_t* packed)
{
    std::uint32_t w[3];
    std::memcpy(w, packed, 12);
    const std::uint32_t words[4] = {
        w[0] & 0x3f3f3f3fu,                                         // scales 0-3
        (w[2] & 0x0f0f0f0fu) | ((w[0] >> 2) & 0x30303030u),         // scales 4-7
        w[1] & 0x3f3f3f3fu,                                         // mins 0-3
        ((w[2] >> 4) & 0x0f0f0f0fu) | ((w[1] >> 2) & 0x30303030u),  // mins 4-7
    };
    ScalesMins out;
    std::memcpy(out.scale, words, 8);
    std::memcpy(out.min, words + 2, 8);
    return out;
}

// Q3_K: scale i keeps its low nibble in byte i (i < 8, low nibble) or byte i - 8 (high nibble),
// and its top two bits in byte 8 + i % 4 at bit 2 * (i / 4). Stored + 32; returned signed.
struct Q3Scales {
    std::int8_t s[16];
};

Q3Scales unpack_q3k_scales(const std::uint8_t* packed)
{
    std::uint32_t w[3];
    std::memcpy(w, packed, 12);
    const std::uint32_t m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
    const std::uint32_t words[4] = {
        (w[0] & m4) | ((w[2] & m2) << 4),
        (w[1] & m4) | (((w[2] >> 2) & m2) << 4),
        ((w[0] >> 4) & m4) | (((w[2] >> 4) & m2) << 4),
        ((w[1] >> 4) & m4) | (((w[2] >> 6) & m2) << 4),
    };
    std::uint8_t raw[16];
    std::memcpy(raw, words, 16);
    Q3Scales out;
    for (int i = 0; i < 16; ++i)
        out.s[i] = static_cast<std::int8_t>(raw[i] - 32);
    return out;
}

// ---- quants of one super-block in element order (shared by decoding and the scalar dots) ----
// Q2_K: 128-element halves; in half h, weight 32 j + l is bits 2 j..2 j + 1 of qs[32 h + l].
void q2k_quants(const BlockQ2K& b, std::uint8_t* q)
{
    for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 32; ++l)
                q[128 * h + 32 * j + l] = (b.qs[32 * h + l] >> (2 * j)) & 3;
}

// Q3_K: as Q2_K for the low two bits; the quant is 4 lower unless bit 4 h + j of hmask[l] is set.
void q3k_quants(const BlockQ3K& b, std::int8_t* q)
{
    for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 32; ++l) {
                const int low = (b.qs[32 * h + l] >> (2 * j)) & 3;
                const int high = (b.hmask[l] >> (4 * h + j)) & 1;
                q[128 * h + 32 * j + l] = static_cast<std::int8_t>(low - (high ? 0 : 4));
            }
}

// Q4_K: 64-element chunks; chunk c is the low nibbles of qs[32 c ..] then their high nibbles.
void q4k_quants(const BlockQ4K& b, std::uint8_t* q)
{
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
            q[64 * c + l] = b.qs[32 * c + l] & 0x0f;
            q[64 * c + 32 + l] = b.qs[32 * c + l] >> 4;
        }
}

// Q5_K: Q4_K plus 16 when bit 2 c (low nibbles) or 2 c + 1 (high nibbles) of qh[l] is set.
void q5k_quants(const BlockQ5K& b, std::uint8_t* q)
{
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
            q[64 * c + l] = static_cast<std::uint8_t>((b.qs[32 * c + l] & 0x0f) | (((b.qh[l] >> (2 * c)) & 1) << 4));
            q[64 * c + 32 + l] = static_cast<std::uint8_t>((b.qs[32 * c + l] >> 4) | (((b.qh[l] >> (2 * c + 1)) & 1) << 4));
        }
}

// Q6_K: 128-element halves; in half h, 32-element group k takes the low (k < 2) or high nibble
// of ql[64 h + 32 (k % 2) + l] and bits 2 k..2 k + 1 of qh[32 h + l] as its top bits; minus 32.
void q6k_quants(const BlockQ6K& b, std::int8_t* q)
{
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 32; ++l) {
                const int low = (b.ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0f;
                const int high = (b.qh[32 * h + l] >> (2 * k)) & 3;
                q[128 * h + 32 * k + l] = static_cast<std::int8_t>((low | (high << 4)) - 32);
            }
}

// ---- decoding (gguf-py's dequantize, bit for bit) --------------------------------------------
// Each value is (d * scale) * q or (d * scale) * q - (dmin * min), every product rounded to
// float32 in that order, as numpy does it. The product and the subtraction are separate
// statements so that a compiler allowed to contract within an expression cannot fuse them
// into one fma, whose single rounding would differ.
void decode_q2k(const BlockQ2K& b, float* y)
{
    const float d = half_at(b.d), dmin = half_at(b.dmin);
    std::uint8_t q[kQKK];
    q2k_quants(b, q);
    for (int k = 0; k < 16; ++k) {
        const float dl = d * static_cast<float>(b.scales[k] & 0x0f);
        const float ml = dmin * static_cast<float>(b.scales[k] >> 4);
        for (int l = 0; l < 16; ++l) {
            const float v = dl * static_cast<float>(q[16 * k + l]);
            y[16 * k + l] = v - ml;
        }
    }
}

void decode_q3k(const BlockQ3K& b, float* y)
{
    const float d = half_at(b.d);
    const Q3Scales sc = unpack_q3k_scales(b.scales);
    std::int8_t q[kQKK];
    q3k_quants(b, q);
    for (int k = 0; k < 16; ++k) {
        const float dl = d * static_cast<float>(sc.s[k]);
        for (int l = 0; l < 16; ++l)
            y[16 * k + l] = dl * static_cast<float>(q[16 * k + l]);
    }
}

void decode_q45k(const float d, const float dmin, const ScalesMins& sm, const std::uint8_t* q, float* y)
{
    for (int k = 0; k < 8; ++k) {
        const float dl = d * static_cast<float>(sm.scale[k]);
        const float ml = dmin * static_cast<float>(sm.min[k]);
        for (int l = 0; l < 32; ++l) {
            const float v = dl * static_cast<float>(q[32 * k + l]);
            y[32 * k + l] = v - ml;
        }
    }
}

void decode_q4k(const BlockQ4K& b, float* y)
{
    std::uint8_t q[kQKK];
    q4k_quants(b, q);
    decode_q45k(half_at(b.d), half_at(b.dmin), unpack_scales_mins(b.scales), q, y);
}

void decode_q5k(const BlockQ5K& b, float* y)
{
    std::uint8_t q[kQKK];
    q5k_quants(b, q);
    decode_q45k(half_at(b.d), half_at(b.dmin), unpack_scales_mins(b.scales), q, y);
}

void decode_q6k(const BlockQ6K& b, float* y)
{
    const float d = half_at(b.d);
    std::int8_t q[kQKK];
    q6k_quants(b, q);
    for (int k = 0; k < 16; ++k) {
        const float dl = d * static_cast<float>(b.scales[k]);
        for (int l = 0; l < 16; ++l)
            y[16 * k + l] = dl * static_cast<float>(q[16 * k + l]);
    }
}

// ---- Q8_K activations --------------------------------------------------------------------------
// ggml's nearest_int: adding 1.5 * 2^23 leaves round-half-to-even(v) in the low mantissa bits
// (for |v| < 2^22); what it gives for inf / NaN is kept too, so a block of any floats comes out
// as ggml's would.
std::int32_t nearest_int(float v)
{
    const float shifted = v + 12582912.0f;
    std::int32_t bits;
    std::memcpy(&bits, &shifted, 4);
    return (bits & 0x007fffff) - 0x00400000;
}

void quantize_q8k_block_scalar(const float* x, BlockQ8K& out)
{
    // The signed value of the largest magnitude; the first one on a tie, as ggml's strict '>'.
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQKK; ++j) {
        const float ax = std::fabs(x[j]);
        if (ax > amax) {
            amax = ax;
            max = x[j];
        }
    }
    if (amax == 0.0f) {
        std::memset(&out, 0, sizeof out);
        return;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < kQKK; ++j) {
        const float v = iscale * x[j]; // rounded on its own, never fused with nearest_int's add
        // Out-of-range values (only from a subnormal max, whose iscale overflows) wrap as ggml's
        // int -> int8 store does.
        out.qs[j] = static_cast<std::int8_t>(std::min(127, nearest_int(v)));
    }
    for (int g = 0; g < 16; ++g) {
        std::int32_t s = 0;
        for (int l = 0; l < 16; ++l)
            s += out.qs[16 * g + l];
        const auto s16 = static_cast<std::int16_t>(s);
        std::memcpy(out.bsums + 2 * g, &s16, 2);
    }
    const float d = 1.0f / iscale;
    std::memcpy(out.d, &d, 4);
}

// ---- portable dot products ------------------------------------------------------------------
std::int32_t dot16(const std::uint8_t* q, const std::int8_t* a)
{
    std::int32_t s = 0;
    for (int l = 0; l < 16; ++l)
        s += static_cast<std::int32_t>(q[l]) * a[l];
    return s;
}

std::int32_t dot16(const std::int8_t* q, const std::int8_t* a)
{
    std::int32_t s = 0;
    for (int l = 0; l < 16; ++l)
        s += static_cast<std::int32_t>(q[l]) * a[l];
    return s;
}

float dot_q2k_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const BlockQ2K*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        std::uint8_t q[kQKK];
        q2k_quants(w[i], q);
        std::int32_t isum = 0, msum = 0;
        for (int k = 0; k < 16; ++k) {
            isum += (w[i].scales[k] & 0x0f) * dot16(q + 16 * k, a[i].qs + 16 * k);
            msum += (w[i].scales[k] >> 4) * q8k_bsum(a[i], k);
        }
        const float da = q8k_d(a[i]);
        sum += da * half_at(w[i].d) * static_cast<float>(isum) - da * half_at(w[i].dmin) * static_cast<float>(msum);
    }
    return sum;
}

float dot_q3k_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const BlockQ3K*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        std::int8_t q[kQKK];
        q3k_quants(w[i], q);
        const Q3Scales sc = unpack_q3k_scales(w[i].scales);
        std::int32_t isum = 0;
        for (int k = 0; k < 16; ++k)
            isum += sc.s[k] * dot16(q + 16 * k, a[i].qs + 16 * k);
        sum += q8k_d(a[i]) * half_at(w[i].d) * static_cast<float>(isum);
    }
    return sum;
}

template <typename Block, void (*Quants)(const Block&, std::uint8_t*)>
float dot_q45k_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const Block*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        std::uint8_t q[kQKK];
        Quants(w[i], q);
        const ScalesMins sm = unpack_scales_mins(w[i].scales);
        std::int32_t isum = 0, msum = 0;
        for (int k = 0; k < 8; ++k) {
            isum += sm.scale[k] * (dot16(q + 32 * k, a[i].qs + 32 * k) + dot16(q + 32 * k + 16, a[i].qs + 32 * k + 16));
            msum += sm.min[k] * (q8k_bsum(a[i], 2 * k) + q8k_bsum(a[i], 2 * k + 1));
        }
        const float da = q8k_d(a[i]);
        sum += da * half_at(w[i].d) * static_cast<float>(isum) - da * half_at(w[i].dmin) * static_cast<float>(msum);
    }
    return sum;
}

float dot_q6k_scalar(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const BlockQ6K*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        std::int8_t q[kQKK];
        q6k_quants(w[i], q);
        std::int32_t isum = 0;
        for (int k = 0; k < 16; ++k)
            isum += w[i].scales[k] * dot16(q + 16 * k, a[i].qs + 16 * k);
        sum += q8k_d(a[i]) * half_at(w[i].d) * static_cast<float>(isum);
    }
    return sum;
}

#ifdef LAYERWISE_SIMD_X86

// ---- AVX2 ---------------------------------------------------------------------------------------
// The short loops over a block's registers carry `#pragma GCC unroll` (clang reads it too): GCC
// leaves them rolled otherwise, and the AVX2 Q6_K kernel then runs at three quarters the speed.
namespace avx2 {

LAYERWISE_AVX2 inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// F16C's conversion: the same float as half_to_float (both are exact), without its branches.
LAYERWISE_AVX2 inline float half_hw(const std::uint8_t* p)
{
    std::uint16_t h;
    std::memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

LAYERWISE_AVX2 inline __m256i load(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Shuffle controls that give the scales of two 16-weight sub-blocks as the int16 multipliers of
// a 32-byte register's pair sums: from the eight int16 scales of one 128-weight half (in both
// lanes), scale 2 j in the low 128-bit lane and 2 j + 1 in the high one.
struct PairControls {
    __m256i c[4];
};

LAYERWISE_AVX2 inline PairControls pair_controls()
{
    PairControls p;
    for (int j = 0; j < 4; ++j) {
        const int lo = 4 * j, hi = 4 * j + 2; // byte offsets of scales 2 j and 2 j + 1
        p.c[j] = _mm256_setr_m128i(_mm_set1_epi16(static_cast<short>(lo | (lo + 1) << 8)),
                                   _mm_set1_epi16(static_cast<short>(hi | (hi + 1) << 8)));
    }
    return p;
}

// Controls that put scale k (of eight int16 scales) in every int16 lane.
struct ScaleControls {
    __m256i c[8];
};

LAYERWISE_AVX2 inline ScaleControls scale_controls()
{
    ScaleControls s;
    for (int k = 0; k < 8; ++k)
        s.c[k] = _mm256_set1_epi16(static_cast<short>(2 * k | (2 * k + 1) << 8));
    return s;
}

// The scale unpacking of unpack_scales_mins / unpack_q3k_scales on all four words at
// once (the scalar form costs more than the quants' own arithmetic in these kernels). Each
// reads 16 bytes for the 12 packed ones; the other 4 are bytes of the same block, ignored.

// Q4_K / Q5_K (`packed` is the block's scales): the eight scales in bytes 0-7, mins in 8-15.
LAYERWISE_AVX2 inline __m128i scales_mins(const std::uint8_t* packed)
{
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed)); // w0 w1 w2 (qs)
    const __m128i low = _mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)), _mm_setr_epi32(0, 0, 0, 4));
    const __m128i top = _mm_srli_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0)), 2);
    return _mm_or_si128(_mm_and_si128(low, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f)),
                        _mm_and_si128(top, _mm_setr_epi32(0, 0x30303030, 0, 0x30303030)));
}

// sum(min * bsum) for Q4_K / Q5_K (mins in bytes 8-15 of `sm`), as eight int32 to be added
// up: each min covers 32 weights, two bsums, so each goes in twice.
LAYERWISE_AVX2 inline __m256i min_sums(__m128i sm, __m256i bsums)
{
    return _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm)), bsums);
}

// The sixteen Q3_K scales, signed, as int16.
LAYERWISE_AVX2 inline __m256i q3k_scales16(const BlockQ3K& b)
{
    // From 4 bytes before the scales (the last quants): the scales are the block's last bytes
    // but for d, so 16 bytes from them would run past the block.
    const auto* from = reinterpret_cast<const std::uint8_t*>(&b) + offsetof(BlockQ3K, scales) - 4;
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(from)); // (qs) w0 w1 w2
    const __m128i low = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 1)), _mm_setr_epi32(0, 0, 4, 4)),
                                      _mm_set1_epi8(0x0f));
    const __m128i top = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(3, 3, 3, 3)), _mm_setr_epi32(0, 2, 4, 6)),
                                      _mm_set1_epi8(3));
    const __m128i raw = _mm_or_si128(low, _mm_slli_epi32(top, 4));
    return _mm256_cvtepi8_epi16(_mm_sub_epi8(raw, _mm_set1_epi8(32)));
}

// acc + the int32 pair sums of (unsigned w) x (signed a), times int16 `scale`.
LAYERWISE_AVX2 inline __m256i dot_scaled(__m256i acc, __m256i w, __m256i a, __m256i scale)
{
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), scale));
}

LAYERWISE_AVX2 inline __m256i lane_half(__m256i v, int h)
{
    return h == 0 ? _mm256_permute2x128_si256(v, v, 0x00) : _mm256_permute2x128_si256(v, v, 0x11);
}

LAYERWISE_AVX2 float dot_q2k(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const BlockQ2K*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    const PairControls pairs = pair_controls();
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        const float da = q8k_d(a[i]);
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales));
        const __m256i scales = _mm256_cvtepu8_epi16(_mm_and_si128(packed, m4));
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), m4));
        const __m256i msum = _mm256_madd_epi16(mins, load(a[i].bsums));
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(da * half_hw(w[i].dmin)), _mm256_cvtepi32_ps(msum), acc_min);
        __m256i sum = _mm256_setzero_si256();
        #pragma GCC unroll 4
        for (int h = 0; h < 2; ++h) {
            const __m256i sc = lane_half(scales, h);
            __m256i q = load(w[i].qs + 32 * h);
            #pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                sum = dot_scaled(sum, _mm256_and_si256(q, m3), load(a[i].qs + 128 * h + 32 * j), _mm256_shuffle_epi8(sc, pairs.c[j]));
                q = _mm256_srli_epi16(q, 2); // what crosses from the byte above lands above bit 1: masked
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(da * half_hw(w[i].d)), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc) - hsum(acc_min);
}

LAYERWISE_AVX2 float dot_q3k(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const BlockQ3K*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    const __m256i m3 = _mm256_set1_epi8(3), bit2 = _mm256_set1_epi8(4);
    const PairControls pairs = pair_controls();
    __m256 acc = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        const __m256i scales = q3k_scales16(w[i]);
        // The quants go in as 0..7 (hmask bit as bit 2); the -4 comes back as -4 sum(scale * bsum).
        __m256i sum = _mm256_sub_epi32(_mm256_setzero_si256(),
                                       _mm256_slli_epi32(_mm256_madd_epi16(scales, load(a[i].bsums)), 2));
        __m256i hbits = load(w[i].hmask); // shifted right one bit per 32-weight group
        #pragma GCC unroll 4
        for (int h = 0; h < 2; ++h) {
            const __m256i sc = lane_half(scales, h);
            __m256i q = load(w[i].qs + 32 * h);
            #pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
                const __m256i wq = _mm256_or_si256(_mm256_and_si256(q, m3),
                                                   _mm256_and_si256(_mm256_slli_epi16(hbits, 2), bit2));
                sum = dot_scaled(sum, wq, load(a[i].qs + 128 * h + 32 * j), _mm256_shuffle_epi8(sc, pairs.c[j]));
                q = _mm256_srli_epi16(q, 2);
                hbits = _mm256_srli_epi16(hbits, 1);
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(q8k_d(a[i]) * half_hw(w[i].d)), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc);
}

// Q4_K and Q5_K share everything but the fifth bit.
template <bool FifthBit, typename Block>
LAYERWISE_AVX2 float dot_q45k(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const Block*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    const __m256i m4 = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
    const ScaleControls ctrl = scale_controls();
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        const float da = q8k_d(a[i]);
        const __m128i sm = scales_mins(w[i].scales);
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(da * half_hw(w[i].dmin)), _mm256_cvtepi32_ps(min_sums(sm, load(a[i].bsums))), acc_min);
        const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
        __m256i hbits;
        if constexpr (FifthBit)
            hbits = load(w[i].qh); // shifted right two bits per 64-weight chunk
        __m256i sum = _mm256_setzero_si256();
        #pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
            const __m256i q = load(w[i].qs + 32 * c);
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if constexpr (FifthBit) {
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(hbits, 4), bit4));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(hbits, 3), bit4));
                hbits = _mm256_srli_epi16(hbits, 2);
            }
            sum = dot_scaled(sum, lo, load(a[i].qs + 64 * c), _mm256_shuffle_epi8(scales, ctrl.c[2 * c]));
            sum = dot_scaled(sum, hi, load(a[i].qs + 64 * c + 32), _mm256_shuffle_epi8(scales, ctrl.c[2 * c + 1]));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(da * half_hw(w[i].d)), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc) - hsum(acc_min);
}

LAYERWISE_AVX2 float dot_q4k(std::int64_t n, const void* w, const void* a) { return dot_q45k<false, BlockQ4K>(n, w, a); }
LAYERWISE_AVX2 float dot_q5k(std::int64_t n, const void* w, const void* a) { return dot_q45k<true, BlockQ5K>(n, w, a); }

LAYERWISE_AVX2 float dot_q6k(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const BlockQ6K*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    const PairControls pairs = pair_controls();
    __m256 acc = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales)));
        // Quants go in as 0..63; the -32 comes back as -32 sum(scale * bsum).
        __m256i sum = _mm256_sub_epi32(_mm256_setzero_si256(),
                                       _mm256_slli_epi32(_mm256_madd_epi16(scales, load(a[i].bsums)), 5));
        #pragma GCC unroll 4
        for (int h = 0; h < 2; ++h) {
            const __m256i sc = lane_half(scales, h);
            const __m256i ql0 = load(w[i].ql + 64 * h), ql1 = load(w[i].ql + 64 * h + 32);
            const __m256i qh = load(w[i].qh + 32 * h);
            // qh bits 2 k..2 k + 1 moved to bits 4..5 of each byte (masked: no bit crosses bytes).
            const __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30)),
                _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30)),
            };
            #pragma GCC unroll 4
            for (int k = 0; k < 4; ++k)
                sum = dot_scaled(sum, q[k], load(a[i].qs + 128 * h + 32 * k), _mm256_shuffle_epi8(sc, pairs.c[k]));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(q8k_d(a[i]) * half_hw(w[i].d)), _mm256_cvtepi32_ps(sum), acc);
    }
    return hsum(acc);
}

// Q8_K quantization, byte for byte the scalar one. nearest_int's add-1.5*2^23 is done as
// round-to-nearest-even then the add: the same bits for every |v| < 2^22 and for inf / NaN, and
// the product is rounded by its own instruction first, so it can never be fused into an fma.
LAYERWISE_AVX2 void quantize_q8k(const float* x, BlockQ8K* out, std::int64_t blocks)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), magic = _mm256_set1_ps(12582912.0f);
    const __m256i mant = _mm256_set1_epi32(0x007fffff), bias = _mm256_set1_epi32(0x00400000);
    const __m256i q_max = _mm256_set1_epi32(127), low_byte = _mm256_set1_epi32(0xff);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (std::int64_t b = 0; b < blocks; ++b, x += kQKK) {
        BlockQ8K& o = out[b];
        // max_ps returns its second operand when either is NaN: the running max goes second so
        // a NaN is skipped, as ggml's '>' skips it.
        __m256 vmax = _mm256_setzero_ps();
        for (int k = 0; k < kQKK; k += 8)
            vmax = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), vmax);
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float amax = _mm_cvtss_f32(m);
        if (amax == 0.0f) {
            std::memset(&o, 0, sizeof o);
            continue;
        }
        float max = 0.0f;
        for (int k = 0; k < kQKK; k += 8) {
            const __m256 eq = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), _mm256_set1_ps(amax), _CMP_EQ_OQ);
            if (const int bits = _mm256_movemask_ps(eq)) {
                max = x[k + __builtin_ctz(static_cast<unsigned>(bits))];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m256 vscale = _mm256_set1_ps(iscale);
        __m256i group_sums[16];
        for (int k = 0; k < kQKK; k += 32) {
            __m256i q[4];
            for (int v = 0; v < 4; ++v) {
                const __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * v), vscale),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
                const __m256i bits = _mm256_castps_si256(_mm256_add_ps(r, magic));
                q[v] = _mm256_min_epi32(_mm256_sub_epi32(_mm256_and_si256(bits, mant), bias), q_max);
            }
            // bsums from the int32 values wrapped to int8 as they are stored.
            for (int g = 0; g < 2; ++g) {
                const __m256i lo = _mm256_srai_epi32(_mm256_slli_epi32(q[2 * g], 24), 24);
                const __m256i hi = _mm256_srai_epi32(_mm256_slli_epi32(q[2 * g + 1], 24), 24);
                group_sums[k / 16 + g] = _mm256_add_epi32(lo, hi);
            }
            // Keep the low byte (the int8 store's wrap) and pack 32 int32 to 32 bytes; packing
            // works within 128-bit lanes, the permute puts the 4-byte groups back in order.
            const __m256i p01 = _mm256_packus_epi32(_mm256_and_si256(q[0], low_byte), _mm256_and_si256(q[1], low_byte));
            const __m256i p23 = _mm256_packus_epi32(_mm256_and_si256(q[2], low_byte), _mm256_and_si256(q[3], low_byte));
            const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p01, p23), order);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.qs + k), bytes);
        }
        // Sixteen horizontal sums at once: two hadd levels leave, per 128-bit lane, one partial
        // sum of four groups; the lanes are then added.
        __m256i sums8[2];
        for (int half = 0; half < 2; ++half) {
            const __m256i* g = group_sums + 8 * half;
            const __m256i h0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(g[0], g[1]), _mm256_hadd_epi32(g[2], g[3]));
            const __m256i h4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(g[4], g[5]), _mm256_hadd_epi32(g[6], g[7]));
            sums8[half] = _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                                           _mm256_permute2x128_si256(h0123, h4567, 0x31));
        }
        const __m256i bsums = _mm256_permute4x64_epi64(_mm256_packs_epi32(sums8[0], sums8[1]), 0xd8);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.bsums), bsums);
        const float d = 1.0f / iscale;
        std::memcpy(o.d, &d, 4);
    }
}


// ---- multi-row kernels -------------------------------------------------------------------------
// dot4 (decode: four weight rows x one activation row) and dot4x4 (prefill: four weight rows x
// four activation rows) share one loop shape over the formats: an unpacker per format turns a
// weight block into eight 32-weight registers of unsigned quants, each with its int16 scales
// (step k covers weights 32 k..32 k + 31, so the activations are at qs + 32 k for every format),
// plus the per-activation-row int32 start of the sum (the signed formats' offset, from the
// bsums) and the min sums (formats with mins). In dot4x4 each register is unpacked once and
// multiplied into four activation rows' sums, and Q4_K / Q5_K's min sums come from a layout of
// the activation rows' bsums built once per block (activation_pairs).
//
// Per weight row and block, the four int32 sums of the four (weight, activation) pairs are
// folded into one register whose lane 4 l + p holds the part of pair p's sum from 128-bit lane l
// (reduce4), so one conversion and one fma (with d_w * d_a laid out the same way) accumulate
// four pairs. The integers are the single-row kernels' exactly; d_w * d_a is the same float
// product; only the float summation order differs.

// Lane 4 l + p of the result: the sum of s[p]'s four int32 lanes in 128-bit lane l.
LAYERWISE_AVX2 inline __m256i reduce4(__m256i s0, __m256i s1, __m256i s2, __m256i s3)
{
    const __m256 t01 = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_unpacklo_epi64(s0, s1), _mm256_unpackhi_epi64(s0, s1)));
    const __m256 t23 = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_unpacklo_epi64(s2, s3), _mm256_unpackhi_epi64(s2, s3)));
    return _mm256_add_epi32(_mm256_castps_si256(_mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(2, 0, 2, 0))),
                            _mm256_castps_si256(_mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(3, 1, 3, 1))));
}

// Four halves (at p[0..3]) as floats.
LAYERWISE_AVX2 inline __m128 halves4(const std::uint8_t* p0, const std::uint8_t* p1, const std::uint8_t* p2, const std::uint8_t* p3)
{
    std::uint16_t h[4];
    std::memcpy(h, p0, 2);
    std::memcpy(h + 1, p1, 2);
    std::memcpy(h + 2, p2, 2);
    std::memcpy(h + 3, p3, 2);
    return _mm_cvtph_ps(_mm_setr_epi16(static_cast<short>(h[0]), static_cast<short>(h[1]), static_cast<short>(h[2]),
                                       static_cast<short>(h[3]), 0, 0, 0, 0));
}

LAYERWISE_AVX2 inline __m256 twice(__m128 v) { return _mm256_insertf128_ps(_mm256_castps128_ps256(v), v, 1); }

// The float lanes 4 l + p summed over l: out[p].
LAYERWISE_AVX2 inline void store_lane_sums(__m256 v, float* out)
{
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}

struct Consts {
    __m256i m3, m4, m30, bit2, bit4;
    PairControls pairs;
    ScaleControls ctrl;
};

LAYERWISE_AVX2 inline Consts make_consts()
{
    return {_mm256_set1_epi8(3), _mm256_set1_epi8(0x0f), _mm256_set1_epi8(0x30), _mm256_set1_epi8(4),
            _mm256_set1_epi8(0x10), pair_controls(), scale_controls()};
}

// -(scales << shift) as int16 (Q6_K: -(scale * 32) within +-4096; Q3_K: -(scale * 4)): madd
// with an activation row's bsums gives the offset's share of the sum.
LAYERWISE_AVX2 inline __m256i neg_shifted(__m256i scales16, int shift)
{
    return _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_sll_epi16(scales16, _mm_cvtsi32_si128(shift)));
}

// The unpackers. step(k, q, s) must be called for k = 0..7 in order (some keep state).
struct UnpackQ2K {
    using Block = BlockQ2K;
    static constexpr bool has_min = true, has_offset = false, has_min_pairs = false;
    const Block& b;
    const Consts& c;
    __m256i sc[2], mins16, cur;
    LAYERWISE_AVX2 UnpackQ2K(const Block& blk, const Consts& k) : b(blk), c(k)
    {
        const __m128i m4 = _mm_set1_epi8(0x0f);
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
        const __m256i scales = _mm256_cvtepu8_epi16(_mm_and_si128(packed, m4));
        sc[0] = lane_half(scales, 0);
        sc[1] = lane_half(scales, 1);
        mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), m4));
    }
    LAYERWISE_AVX2 __m256i offset(__m256i) const { return _mm256_setzero_si256(); }
    LAYERWISE_AVX2 __m256i mins(__m256i bsums) const { return _mm256_madd_epi16(mins16, bsums); }
    LAYERWISE_AVX2 void step(int k, __m256i& q, __m256i& s)
    {
        const int h = k / 4, j = k % 4;
        if (j == 0)
            cur = load(b.qs + 32 * h);
        q = _mm256_and_si256(_mm256_srli_epi16(cur, 2 * j), c.m3);
        s = _mm256_shuffle_epi8(sc[h], c.pairs.c[j]);
    }
};

struct UnpackQ3K {
    using Block = BlockQ3K;
    static constexpr bool has_min = false, has_offset = true, has_min_pairs = false;
    const Block& b;
    const Consts& c;
    __m256i sc[2], neg4, hm, cur;
    LAYERWISE_AVX2 UnpackQ3K(const Block& blk, const Consts& k) : b(blk), c(k)
    {
        const __m256i scales = q3k_scales16(b);
        sc[0] = lane_half(scales, 0);
        sc[1] = lane_half(scales, 1);
        neg4 = neg_shifted(scales, 2); // quants go in as 0..7: the -4 as -4 sum(scale * bsum)
        hm = load(b.hmask);
    }
    LAYERWISE_AVX2 __m256i offset(__m256i bsums) const { return _mm256_madd_epi16(neg4, bsums); }
    LAYERWISE_AVX2 __m256i mins(__m256i) const { return _mm256_setzero_si256(); }
    LAYERWISE_AVX2 void step(int k, __m256i& q, __m256i& s)
    {
        const int h = k / 4, j = k % 4;
        if (j == 0)
            cur = load(b.qs + 32 * h);
        // hmask bit k to bit 2 (what crosses bytes lands off bit 2: masked)
        const __m256i hb = k < 2 ? _mm256_slli_epi16(hm, 2 - k) : _mm256_srli_epi16(hm, k - 2);
        q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(cur, 2 * j), c.m3), _mm256_and_si256(hb, c.bit2));
        s = _mm256_shuffle_epi8(sc[h], c.pairs.c[j]);
    }
};

template <bool FifthBit, typename B>
struct UnpackQ45K {
    using Block = B;
    static constexpr bool has_min = true, has_offset = false, has_min_pairs = true;
    const Block& b;
    const Consts& c;
    __m256i scales, mins16, cur, qh;
    __m128i min_pairs; // int16 mins 0..7: dword l = (min 2 l, min 2 l + 1)
    LAYERWISE_AVX2 UnpackQ45K(const Block& blk, const Consts& k) : b(blk), c(k)
    {
        const __m128i sm = scales_mins(b.scales);
        scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
        mins16 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm)); // each min covers two bsums
        min_pairs = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));
        if constexpr (FifthBit)
            qh = load(b.qh);
    }
    LAYERWISE_AVX2 __m256i offset(__m256i) const { return _mm256_setzero_si256(); }
    LAYERWISE_AVX2 __m256i mins(__m256i bsums) const { return _mm256_madd_epi16(mins16, bsums); }
    LAYERWISE_AVX2 void step(int k, __m256i& q, __m256i& s)
    {
        if (k % 2 == 0) {
            cur = load(b.qs + 16 * k);
            q = _mm256_and_si256(cur, c.m4);
        } else {
            q = _mm256_and_si256(_mm256_srli_epi16(cur, 4), c.m4);
        }
        if constexpr (FifthBit) { // qh bit k to bit 4
            const __m256i hb = k < 4 ? _mm256_slli_epi16(qh, 4 - k) : _mm256_srli_epi16(qh, k - 4);
            q = _mm256_or_si256(q, _mm256_and_si256(hb, c.bit4));
        }
        s = _mm256_shuffle_epi8(scales, c.ctrl.c[k]);
    }
};

struct UnpackQ6K {
    using Block = BlockQ6K;
    static constexpr bool has_min = false, has_offset = true, has_min_pairs = false;
    const Block& b;
    const Consts& c;
    __m256i sc[2], neg32, ql0, ql1, qh;
    LAYERWISE_AVX2 UnpackQ6K(const Block& blk, const Consts& k) : b(blk), c(k)
    {
        const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
        sc[0] = lane_half(scales, 0);
        sc[1] = lane_half(scales, 1);
        neg32 = neg_shifted(scales, 5); // quants go in as 0..63: the -32 as -32 sum(scale * bsum)
    }
    LAYERWISE_AVX2 __m256i offset(__m256i bsums) const { return _mm256_madd_epi16(neg32, bsums); }
    LAYERWISE_AVX2 __m256i mins(__m256i) const { return _mm256_setzero_si256(); }
    LAYERWISE_AVX2 void step(int k, __m256i& q, __m256i& s)
    {
        const int h = k / 4, j = k % 4;
        if (j == 0) {
            ql0 = load(b.ql + 64 * h);
            ql1 = load(b.ql + 64 * h + 32);
            qh = load(b.qh + 32 * h);
        }
        const __m256i low = j == 0 ? ql0 : j == 1 ? ql1 : _mm256_srli_epi16(j == 2 ? ql0 : ql1, 4);
        const __m256i high = j == 0 ? _mm256_slli_epi16(qh, 4) : j == 1 ? _mm256_slli_epi16(qh, 2) : j == 2 ? qh : _mm256_srli_epi16(qh, 2);
        q = _mm256_or_si256(_mm256_and_si256(low, c.m4), _mm256_and_si256(high, c.m30));
        s = _mm256_shuffle_epi8(sc[h], c.pairs.c[j]);
    }
};

template <typename U>
LAYERWISE_AVX2 inline const typename U::Block& block_at(const std::uint8_t* rows, std::int64_t stride, int r, std::int64_t i)
{
    return reinterpret_cast<const typename U::Block*>(rows + r * stride)[i];
}

// Decode streams each weight row once from memory; four rows at a time the hardware
// prefetchers alone leave a single thread waiting on DRAM: block i of each row prefetches the
// bytes 512 on (measured, one thread, 1 GB of Q4_K rows: AVX2 dot4 about 6.6 -> 8.0 GB/s, VNNI
// 8.0 -> 9.0; no change when the rows are in L2). A prefetch past the end of the rows cannot
// fault.
template <typename U>
inline __attribute__((always_inline)) void prefetch_ahead(const std::uint8_t* row, std::int64_t i)
{
    constexpr int kAhead = 512, kBytes = static_cast<int>(sizeof(typename U::Block));
    const std::uintptr_t p = reinterpret_cast<std::uintptr_t>(row) + static_cast<std::uintptr_t>(i * kBytes + kAhead);
    for (int l = 0; l < kBytes; l += 64)
        __builtin_prefetch(reinterpret_cast<const void*>(p + static_cast<std::uintptr_t>(l)));
}

template <typename U>
LAYERWISE_AVX2 void dot4_rows(std::int64_t n, const void* wv, std::int64_t stride, const void* av, float* out)
{
    const auto* w = static_cast<const std::uint8_t*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    const Consts c = make_consts();
    __m256 acc = _mm256_setzero_ps(); // lane 4 l + r: weight row r
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        const BlockQ8K& ab = a[i];
        const __m256i bsums = load(ab.bsums);
        __m256i sum[4], msum[4];
        #pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {
            prefetch_ahead<U>(w + r * stride, i);
            U u(block_at<U>(w, stride, r, i), c);
            sum[r] = U::has_offset ? u.offset(bsums) : _mm256_setzero_si256();
            #pragma GCC unroll 8
            for (int k = 0; k < 8; ++k) {
                __m256i q, s;
                u.step(k, q, s);
                sum[r] = dot_scaled(sum[r], q, load(ab.qs + 32 * k), s);
            }
            if constexpr (U::has_min)
                msum[r] = u.mins(bsums);
        }
        const __m256 da = _mm256_set1_ps(q8k_d(ab));
        const auto& b0 = block_at<U>(w, stride, 0, i);
        const auto& b1 = block_at<U>(w, stride, 1, i);
        const auto& b2 = block_at<U>(w, stride, 2, i);
        const auto& b3 = block_at<U>(w, stride, 3, i);
        acc = _mm256_fmadd_ps(_mm256_mul_ps(twice(halves4(b0.d, b1.d, b2.d, b3.d)), da),
                              _mm256_cvtepi32_ps(reduce4(sum[0], sum[1], sum[2], sum[3])), acc);
        if constexpr (U::has_min)
            acc = _mm256_fnmadd_ps(_mm256_mul_ps(twice(halves4(b0.dmin, b1.dmin, b2.dmin, b3.dmin)), da),
                                   _mm256_cvtepi32_ps(reduce4(msum[0], msum[1], msum[2], msum[3])), acc);
    }
    store_lane_sums(acc, out);
}

// Q4_K / Q5_K min sums of a 4 x 4 tile in reduce4's layout without reducing: each min covers
// 32 weights, two bsums, whose sum (|.| <= 32 * 128) fits an int16. With the activation rows'
// pair sums laid out once per block as bpairs[x] lane 4 l + p = (pair sums 2 m, 2 m + 1 of
// row p), m = l + 2 x, a weight row's sums are two madds with its mins laid out the same way.
LAYERWISE_AVX2 inline void activation_pairs(const BlockQ8K* const* ab, __m256i* bpairs)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i s[4];
    for (int p = 0; p < 4; ++p)
        s[p] = _mm256_madd_epi16(load(ab[p]->bsums), ones); // lane j (128-bit lane j / 4): pair sum j
    // pk01 dword 4 L + m: row 0 for m < 2, row 1 otherwise; its pair sums 4 L + 2 (m % 2) and
    // 4 L + 2 (m % 2) + 1 as int16. pk23 likewise for rows 2 and 3.
    const __m256i pk01 = _mm256_packs_epi32(s[0], s[1]), pk23 = _mm256_packs_epi32(s[2], s[3]);
    const __m256i idx0 = _mm256_setr_epi32(0, 2, 0, 2, 1, 3, 1, 3), idx1 = _mm256_setr_epi32(4, 6, 4, 6, 5, 7, 5, 7);
    bpairs[0] = _mm256_blend_epi32(_mm256_permutevar8x32_epi32(pk01, idx0), _mm256_permutevar8x32_epi32(pk23, idx0), 0xcc);
    bpairs[1] = _mm256_blend_epi32(_mm256_permutevar8x32_epi32(pk01, idx1), _mm256_permutevar8x32_epi32(pk23, idx1), 0xcc);
}

LAYERWISE_AVX2 inline __m256i min_pair_sums(__m128i min_pairs, const __m256i* bpairs)
{
    const __m256i mp = _mm256_castsi128_si256(min_pairs);
    const __m256i m0 = _mm256_permutevar8x32_epi32(mp, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
    const __m256i m1 = _mm256_permutevar8x32_epi32(mp, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3));
    return _mm256_add_epi32(_mm256_madd_epi16(m0, bpairs[0]), _mm256_madd_epi16(m1, bpairs[1]));
}

template <typename U>
LAYERWISE_AVX2 void dot4x4_rows(std::int64_t n, const void* wv, std::int64_t wstride, const void* av, std::int64_t astride,
                                float* out)
{
    const auto* w = static_cast<const std::uint8_t*>(wv);
    const auto* a = static_cast<const std::uint8_t*>(av);
    const Consts c = make_consts();
    __m256 acc[4]; // acc[r] lane 4 l + p: weight row r x activation row p
    for (auto& v : acc)
        v = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        const BlockQ8K* ab[4];
        for (int p = 0; p < 4; ++p)
            ab[p] = reinterpret_cast<const BlockQ8K*>(a + p * astride) + i;
        const __m256 da = twice(_mm_setr_ps(q8k_d(*ab[0]), q8k_d(*ab[1]), q8k_d(*ab[2]), q8k_d(*ab[3])));
        __m256i bpairs[2]; // Q4_K / Q5_K: see min_pair_sums
        if constexpr (U::has_min_pairs)
            activation_pairs(ab, bpairs);
        #pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {
            const auto& b = block_at<U>(w, wstride, r, i);
            U u(b, c);
            __m256i sum[4];
            #pragma GCC unroll 4
            for (int p = 0; p < 4; ++p)
                sum[p] = U::has_offset ? u.offset(load(ab[p]->bsums)) : _mm256_setzero_si256();
            #pragma GCC unroll 8
            for (int k = 0; k < 8; ++k) {
                __m256i q, s;
                u.step(k, q, s);
                #pragma GCC unroll 4
                for (int p = 0; p < 4; ++p)
                    sum[p] = dot_scaled(sum[p], q, load(ab[p]->qs + 32 * k), s);
            }
            acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(half_hw(b.d)), da),
                                     _mm256_cvtepi32_ps(reduce4(sum[0], sum[1], sum[2], sum[3])), acc[r]);
            if constexpr (U::has_min_pairs) {
                acc[r] = _mm256_fnmadd_ps(_mm256_mul_ps(_mm256_set1_ps(half_hw(b.dmin)), da),
                                          _mm256_cvtepi32_ps(min_pair_sums(u.min_pairs, bpairs)), acc[r]);
            } else if constexpr (U::has_min) {
                __m256i msum[4];
                #pragma GCC unroll 4
                for (int p = 0; p < 4; ++p)
                    msum[p] = u.mins(load(ab[p]->bsums));
                acc[r] = _mm256_fnmadd_ps(_mm256_mul_ps(_mm256_set1_ps(half_hw(b.dmin)), da),
                                          _mm256_cvtepi32_ps(reduce4(msum[0], msum[1], msum[2], msum[3])), acc[r]);
            }
        }
    }
    for (int r = 0; r < 4; ++r)
        store_lane_sums(acc[r], out + 4 * r);
}

using UnpackQ4K = UnpackQ45K<false, BlockQ4K>;
using UnpackQ5K = UnpackQ45K<true, BlockQ5K>;

LAYERWISE_AVX2 void dot4_q2k(std::int64_t n, const void* w, std::int64_t s, const void* a, float* o) { dot4_rows<UnpackQ2K>(n, w, s, a, o); }
LAYERWISE_AVX2 void dot4_q3k(std::int64_t n, const void* w, std::int64_t s, const void* a, float* o) { dot4_rows<UnpackQ3K>(n, w, s, a, o); }
LAYERWISE_AVX2 void dot4_q4k(std::int64_t n, const void* w, std::int64_t s, const void* a, float* o) { dot4_rows<UnpackQ4K>(n, w, s, a, o); }
LAYERWISE_AVX2 void dot4_q5k(std::int64_t n, const void* w, std::int64_t s, const void* a, float* o) { dot4_rows<UnpackQ5K>(n, w, s, a, o); }
LAYERWISE_AVX2 void dot4_q6k(std::int64_t n, const void* w, std::int64_t s, const void* a, float* o) { dot4_rows<UnpackQ6K>(n, w, s, a, o); }

LAYERWISE_AVX2 void dot4x4_q2k(std::int64_t n, const void* w, std::int64_t ws, const void* a, std::int64_t as, float* o) { dot4x4_rows<UnpackQ2K>(n, w, ws, a, as, o); }
LAYERWISE_AVX2 void dot4x4_q3k(std::int64_t n, const void* w, std::int64_t ws, const void* a, std::int64_t as, float* o) { dot4x4_rows<UnpackQ3K>(n, w, ws, a, as, o); }
LAYERWISE_AVX2 void dot4x4_q4k(std::int64_t n, const void* w, std::int64_t ws, const void* a, std::int64_t as, float* o) { dot4x4_rows<UnpackQ4K>(n, w, ws, a, as, o); }
LAYERWISE_AVX2 void dot4x4_q5k(std::int64_t n, const void* w, std::int64_t ws, const void* a, std::int64_t as, float* o) { dot4x4_rows<UnpackQ5K>(n, w, ws, a, as, o); }
LAYERWISE_AVX2 void dot4x4_q6k(std::int64_t n, const void* w, std::int64_t ws, const void* a, std::int64_t as, float* o) { dot4x4_rows<UnpackQ6K>(n, w, ws, a, as, o); }

} // namespace avx2

// ---- AVX-512 VNNI ---------------------------------------------------------------------------------
// 64-byte registers hold 64 weights whose activations are contiguous: two 32-weight groups that
// come from the same 32 packed bytes at different shifts, built by broadcasting those bytes to
// both 256-bit halves and shifting the upper half (a masked shift) before masking the bits out.
// The int16 pair sums are multiplied by the scales and accumulated by dpwssd (VNNI: multiply,
// pair-add and accumulate in one instruction). dpwssd rather than dpbusd: dpbusd would give
// int32 sums of four products that still need a per-sub-block scale, an int32 multiply (vpmulld,
// two uops) where maddubs + dpwssd needs two one-uop instructions.
//
// Only for CPUs with VNNI; an AVX-512 CPU without it runs the AVX2 kernels. A madd + add
// variant compiled under this same target is no way out: clang fuses madd + add into dpwssd
// by itself whenever the target has VNNI, so it would fault on exactly the CPUs it is for.
namespace avx512 {
using avx2::half_hw;

LAYERWISE_AVX512_VNNI inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
LAYERWISE_AVX512_VNNI inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }

// The same 32 bytes in both halves, the upper one shifted right by `Shift` bits (16-bit lanes).
template <int Shift>
LAYERWISE_AVX512_VNNI inline __m512i twin(const void* p)
{
    const __m512i v = _mm512_broadcast_i64x4(load256(p));
    return _mm512_mask_srli_epi16(v, static_cast<__mmask32>(0xffff0000u), v, Shift);
}

LAYERWISE_AVX512_VNNI inline __m512i dot_scaled(__m512i acc, __m512i w, __m512i a, __m512i scale)
{
    return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(w, a), scale);
}

// int16 lane i of the result = scale (first + i / per) of `scales` (int16 scales in lanes 0..15).
LAYERWISE_AVX512_VNNI inline __m512i spread_index(int first, int per)
{
    alignas(64) std::int16_t idx[32];
    for (int i = 0; i < 32; ++i)
        idx[i] = static_cast<std::int16_t>(first + i / per);
    return _mm512_load_si512(idx);
}

// A ternary-logic immediate: a | (b & c).
constexpr int kOrAnd = 0xf8;

LAYERWISE_AVX512_VNNI float dot_q2k(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const BlockQ2K*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    const __m512i m3 = _mm512_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0f);
    // Register g (of four) covers 16-weight sub-blocks 4 g..4 g + 3, one per 128-bit lane.
    const __m512i spread[4] = {spread_index(0, 8), spread_index(4, 8), spread_index(8, 8), spread_index(12, 8)};
    __m512 acc = _mm512_setzero_ps();
    __m256 acc_min = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        const float da = q8k_d(a[i]);
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales));
        const __m512i scales = _mm512_zextsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(packed, m4)));
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), m4));
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(da * half_hw(w[i].dmin)),
                                  _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, load256(a[i].bsums))), acc_min);
        __m512i sum = _mm512_setzero_si512();
        #pragma GCC unroll 4
        for (int h = 0; h < 2; ++h) {
            const __m512i q = twin<2>(w[i].qs + 32 * h); // bits 0-1 | bits 2-3, then 4-5 | 6-7
            sum = dot_scaled(sum, _mm512_and_si512(q, m3), load512(a[i].qs + 128 * h),
                             _mm512_permutexvar_epi16(spread[2 * h], scales));
            sum = dot_scaled(sum, _mm512_and_si512(_mm512_srli_epi16(q, 4), m3), load512(a[i].qs + 128 * h + 64),
                             _mm512_permutexvar_epi16(spread[2 * h + 1], scales));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(da * half_hw(w[i].d)), _mm512_cvtepi32_ps(sum), acc);
    }
    return _mm512_reduce_add_ps(acc) - avx2::hsum(acc_min);
}

LAYERWISE_AVX512_VNNI float dot_q3k(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const BlockQ3K*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    const __m512i m3 = _mm512_set1_epi8(3), bit2 = _mm512_set1_epi8(4);
    const __m512i spread[4] = {spread_index(0, 8), spread_index(4, 8), spread_index(8, 8), spread_index(12, 8)};
    __m512 acc = _mm512_setzero_ps();
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        const __m256i scales16 = avx2::q3k_scales16(w[i]);
        const __m512i scales = _mm512_zextsi256_si512(scales16);
        // Quants 0..7 in, the -4 as -4 sum(scale * bsum) (see the AVX2 path).
        __m512i sum = _mm512_zextsi256_si512(_mm256_sub_epi32(
            _mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(scales16, load256(a[i].bsums)), 2)));
        const __m512i hm = twin<1>(w[i].hmask); // group b's bit at bit b (lower half) | b + 1 (upper)
        #pragma GCC unroll 4
        for (int h = 0; h < 2; ++h) {
            const __m512i q = twin<2>(w[i].qs + 32 * h);
            // hmask bit 4 h + 2 p (+ 1 in the upper half) to bit 2: shifted left 2 for h = p = 0,
            // right otherwise. Each shift is from hm itself so that no top bit is lost on the way.
            const __m512i h01 = h == 0 ? _mm512_slli_epi16(hm, 2) : _mm512_srli_epi16(hm, 2);
            const __m512i h23 = h == 0 ? hm : _mm512_srli_epi16(hm, 4);
            const __m512i w01 = _mm512_ternarylogic_epi32(_mm512_and_si512(q, m3), h01, bit2, kOrAnd);
            const __m512i w23 = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(q, 4), m3), h23, bit2, kOrAnd);
            sum = dot_scaled(sum, w01, load512(a[i].qs + 128 * h), _mm512_permutexvar_epi16(spread[2 * h], scales));
            sum = dot_scaled(sum, w23, load512(a[i].qs + 128 * h + 64), _mm512_permutexvar_epi16(spread[2 * h + 1], scales));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(q8k_d(a[i]) * half_hw(w[i].d)), _mm512_cvtepi32_ps(sum), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

template <bool FifthBit, typename Block>
LAYERWISE_AVX512_VNNI float dot_q45k(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const Block*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    const __m512i m4 = _mm512_set1_epi8(0x0f), bit4 = _mm512_set1_epi8(0x10);
    // Chunk c's register: low nibbles (scale 2 c) | high nibbles (scale 2 c + 1).
    const __m512i spread[4] = {spread_index(0, 16), spread_index(2, 16), spread_index(4, 16), spread_index(6, 16)};
    __m512 acc = _mm512_setzero_ps();
    __m256 acc_min = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        const float da = q8k_d(a[i]);
        const __m128i sm = avx2::scales_mins(w[i].scales);
        acc_min = _mm256_fmadd_ps(_mm256_set1_ps(da * half_hw(w[i].dmin)),
                                  _mm256_cvtepi32_ps(avx2::min_sums(sm, load256(a[i].bsums))), acc_min);
        const __m512i scales = _mm512_zextsi128_si512(_mm_cvtepu8_epi16(sm));
        __m512i hbits;
        if constexpr (FifthBit)
            hbits = twin<1>(w[i].qh); // bit 2 c at bit 0 | bit 2 c + 1 at bit 0, after c shifts by 2
        __m512i sum = _mm512_setzero_si512();
        #pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
            __m512i q = _mm512_and_si512(twin<4>(w[i].qs + 32 * c), m4);
            if constexpr (FifthBit) {
                q = _mm512_ternarylogic_epi32(q, _mm512_slli_epi16(hbits, 4), bit4, kOrAnd);
                hbits = _mm512_srli_epi16(hbits, 2);
            }
            sum = dot_scaled(sum, q, load512(a[i].qs + 64 * c), _mm512_permutexvar_epi16(spread[c], scales));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(da * half_hw(w[i].d)), _mm512_cvtepi32_ps(sum), acc);
    }
    return _mm512_reduce_add_ps(acc) - avx2::hsum(acc_min);
}

LAYERWISE_AVX512_VNNI float dot_q4k(std::int64_t n, const void* w, const void* a) { return dot_q45k<false, BlockQ4K>(n, w, a); }
LAYERWISE_AVX512_VNNI float dot_q5k(std::int64_t n, const void* w, const void* a) { return dot_q45k<true, BlockQ5K>(n, w, a); }

LAYERWISE_AVX512_VNNI float dot_q6k(std::int64_t n, const void* wv, const void* av)
{
    const auto* w = static_cast<const BlockQ6K*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i spread[4] = {spread_index(0, 8), spread_index(4, 8), spread_index(8, 8), spread_index(12, 8)};
    __m512 acc = _mm512_setzero_ps();
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales)));
        const __m512i scales = _mm512_zextsi256_si512(scales16);
        __m512i sum = _mm512_zextsi256_si512(_mm256_sub_epi32(
            _mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(scales16, load256(a[i].bsums)), 5)));
        #pragma GCC unroll 4
        for (int h = 0; h < 2; ++h) {
            const __m512i ql = load512(w[i].ql + 64 * h); // groups 0 | 1 (low nibbles), 2 | 3 (high)
            const __m512i qh = twin<2>(w[i].qh + 32 * h); // bits 0-1 | 2-3 (shifted 4), 4-5 | 6-7 (in place)
            const __m512i q01 = _mm512_ternarylogic_epi32(_mm512_and_si512(ql, m4), _mm512_slli_epi16(qh, 4), m30, kOrAnd);
            const __m512i q23 = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), qh, m30, kOrAnd);
            sum = dot_scaled(sum, q01, load512(a[i].qs + 128 * h), _mm512_permutexvar_epi16(spread[2 * h], scales));
            sum = dot_scaled(sum, q23, load512(a[i].qs + 128 * h + 64), _mm512_permutexvar_epi16(spread[2 * h + 1], scales));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(q8k_d(a[i]) * half_hw(w[i].d)), _mm512_cvtepi32_ps(sum), acc);
    }
    return _mm512_reduce_add_ps(acc);
}


// ---- multi-row kernels ---------------------------------------------------------------------
// As the AVX2 ones (see there), with 64-weight registers: step k (0..3) covers weights
// 64 k..64 k + 63, laid out as the single-row kernels above do. Mins stay 256-bit (the AVX2
// min sums) with their own accumulators.

LAYERWISE_AVX512_VNNI inline __m512i reduce4(__m512i s0, __m512i s1, __m512i s2, __m512i s3)
{
    const __m512 t01 = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_unpacklo_epi64(s0, s1), _mm512_unpackhi_epi64(s0, s1)));
    const __m512 t23 = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_unpacklo_epi64(s2, s3), _mm512_unpackhi_epi64(s2, s3)));
    return _mm512_add_epi32(_mm512_castps_si512(_mm512_shuffle_ps(t01, t23, _MM_SHUFFLE(2, 0, 2, 0))),
                            _mm512_castps_si512(_mm512_shuffle_ps(t01, t23, _MM_SHUFFLE(3, 1, 3, 1))));
}

// out[p] = the lanes 4 l + p of v summed over l, less those of `minus`.
LAYERWISE_AVX512_VNNI inline void store_lane_sums(__m512 v, __m256 minus, float* out)
{
    const __m256 v8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    const __m128 v4 = _mm_add_ps(_mm256_castps256_ps128(v8), _mm256_extractf128_ps(v8, 1));
    const __m128 m4 = _mm_add_ps(_mm256_castps256_ps128(minus), _mm256_extractf128_ps(minus, 1));
    _mm_storeu_ps(out, _mm_sub_ps(v4, m4));
}

struct Consts {
    __m512i m3, m4, m30, bit2, bit4;
    __m512i spread8[4];  // 16-weight scales: register k covers sub-blocks 4 k..4 k + 3
    __m512i spread16[4]; // 32-weight scales: register k covers sub-blocks 2 k, 2 k + 1
    __m512i pair_order, min_spread; // Q4_K / Q5_K min sums in dot4x4 (see there)
};

LAYERWISE_AVX512_VNNI inline Consts make_consts()
{
    Consts c;
    c.m3 = _mm512_set1_epi8(3);
    c.m4 = _mm512_set1_epi8(0x0f);
    c.m30 = _mm512_set1_epi8(0x30);
    c.bit2 = _mm512_set1_epi8(4);
    c.bit4 = _mm512_set1_epi8(0x10);
    for (int k = 0; k < 4; ++k) {
        c.spread8[k] = spread_index(4 * k, 8);
        c.spread16[k] = spread_index(2 * k, 16);
    }
    alignas(64) std::int32_t order[16], spread[16];
    for (int l = 0; l < 4; ++l)
        for (int p = 0; p < 4; ++p) {
            order[4 * l + p] = 4 * ((p & 1) * 2 + l / 2) + (p >> 1) * 2 + l % 2;
            spread[4 * l + p] = l;
        }
    c.pair_order = _mm512_load_si512(order);
    c.min_spread = _mm512_load_si512(spread);
    return c;
}

struct UnpackQ2K {
    using Block = BlockQ2K;
    static constexpr bool has_min = true, has_offset = false, has_min_pairs = false;
    const Block& b;
    const Consts& c;
    __m512i scales, cur;
    __m256i mins16;
    LAYERWISE_AVX512_VNNI UnpackQ2K(const Block& blk, const Consts& k) : b(blk), c(k)
    {
        const __m128i m4 = _mm_set1_epi8(0x0f);
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
        scales = _mm512_zextsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(packed, m4)));
        mins16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), m4));
    }
    LAYERWISE_AVX512_VNNI __m256i offset(__m256i) const { return _mm256_setzero_si256(); }
    LAYERWISE_AVX512_VNNI __m256i mins(__m256i bsums) const { return _mm256_madd_epi16(mins16, bsums); }
    LAYERWISE_AVX512_VNNI void step(int k, __m512i& q, __m512i& s)
    {
        if (k % 2 == 0) {
            cur = twin<2>(b.qs + 16 * k); // bits 0-1 | 2-3, then 4-5 | 6-7
            q = _mm512_and_si512(cur, c.m3);
        } else {
            q = _mm512_and_si512(_mm512_srli_epi16(cur, 4), c.m3);
        }
        s = _mm512_permutexvar_epi16(c.spread8[k], scales);
    }
};

struct UnpackQ3K {
    using Block = BlockQ3K;
    static constexpr bool has_min = false, has_offset = true, has_min_pairs = false;
    const Block& b;
    const Consts& c;
    __m512i scales, hm, cur;
    __m256i neg4;
    LAYERWISE_AVX512_VNNI UnpackQ3K(const Block& blk, const Consts& k) : b(blk), c(k)
    {
        const __m256i scales16 = avx2::q3k_scales16(b);
        scales = _mm512_zextsi256_si512(scales16);
        neg4 = avx2::neg_shifted(scales16, 2);
        hm = twin<1>(b.hmask); // group g's bit at bit g (lower half) | g + 1 (upper)
    }
    LAYERWISE_AVX512_VNNI __m256i offset(__m256i bsums) const { return _mm256_madd_epi16(neg4, bsums); }
    LAYERWISE_AVX512_VNNI __m256i mins(__m256i) const { return _mm256_setzero_si256(); }
    LAYERWISE_AVX512_VNNI void step(int k, __m512i& q, __m512i& s)
    {
        const int h = k / 2;
        __m512i low, hb;
        if (k % 2 == 0) {
            cur = twin<2>(b.qs + 32 * h);
            low = _mm512_and_si512(cur, c.m3);
            hb = h == 0 ? _mm512_slli_epi16(hm, 2) : _mm512_srli_epi16(hm, 2);
        } else {
            low = _mm512_and_si512(_mm512_srli_epi16(cur, 4), c.m3);
            hb = h == 0 ? hm : _mm512_srli_epi16(hm, 4);
        }
        q = _mm512_ternarylogic_epi32(low, hb, c.bit2, kOrAnd);
        s = _mm512_permutexvar_epi16(c.spread8[k], scales);
    }
};

template <bool FifthBit, typename B>
struct UnpackQ45K {
    using Block = B;
    static constexpr bool has_min = true, has_offset = false, has_min_pairs = true;
    const Block& b;
    const Consts& c;
    __m512i scales, hbits;
    __m256i mins16;
    __m128i min_pairs;
    LAYERWISE_AVX512_VNNI UnpackQ45K(const Block& blk, const Consts& k) : b(blk), c(k)
    {
        const __m128i sm = avx2::scales_mins(b.scales);
        scales = _mm512_zextsi128_si512(_mm_cvtepu8_epi16(sm));
        mins16 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));
        min_pairs = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));
        if constexpr (FifthBit)
            hbits = twin<1>(b.qh); // bit 2 k at bit 0 | bit 2 k + 1 at bit 0, after k shifts by 2
    }
    LAYERWISE_AVX512_VNNI __m256i offset(__m256i) const { return _mm256_setzero_si256(); }
    LAYERWISE_AVX512_VNNI __m256i mins(__m256i bsums) const { return _mm256_madd_epi16(mins16, bsums); }
    LAYERWISE_AVX512_VNNI void step(int k, __m512i& q, __m512i& s)
    {
        q = _mm512_and_si512(twin<4>(b.qs + 32 * k), c.m4);
        if constexpr (FifthBit) {
            q = _mm512_ternarylogic_epi32(q, _mm512_slli_epi16(hbits, 4), c.bit4, kOrAnd);
            hbits = _mm512_srli_epi16(hbits, 2);
        }
        s = _mm512_permutexvar_epi16(c.spread16[k], scales);
    }
};

struct UnpackQ6K {
    using Block = BlockQ6K;
    static constexpr bool has_min = false, has_offset = true, has_min_pairs = false;
    const Block& b;
    const Consts& c;
    __m512i scales, ql, qh;
    __m256i neg32;
    LAYERWISE_AVX512_VNNI UnpackQ6K(const Block& blk, const Consts& k) : b(blk), c(k)
    {
        const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)));
        scales = _mm512_zextsi256_si512(scales16);
        neg32 = avx2::neg_shifted(scales16, 5);
    }
    LAYERWISE_AVX512_VNNI __m256i offset(__m256i bsums) const { return _mm256_madd_epi16(neg32, bsums); }
    LAYERWISE_AVX512_VNNI __m256i mins(__m256i) const { return _mm256_setzero_si256(); }
    LAYERWISE_AVX512_VNNI void step(int k, __m512i& q, __m512i& s)
    {
        const int h = k / 2;
        if (k % 2 == 0) {
            ql = load512(b.ql + 64 * h); // groups 0 | 1 (low nibbles), 2 | 3 (high)
            qh = twin<2>(b.qh + 32 * h); // bits 0-1 | 2-3 (shifted 4), 4-5 | 6-7 (in place)
            q = _mm512_ternarylogic_epi32(_mm512_and_si512(ql, c.m4), _mm512_slli_epi16(qh, 4), c.m30, kOrAnd);
        } else {
            q = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(ql, 4), c.m4), qh, c.m30, kOrAnd);
        }
        s = _mm512_permutexvar_epi16(c.spread8[k], scales);
    }
};

template <typename U>
LAYERWISE_AVX512_VNNI inline const typename U::Block& block_at(const std::uint8_t* rows, std::int64_t stride, int r, std::int64_t i)
{
    return reinterpret_cast<const typename U::Block*>(rows + r * stride)[i];
}

template <typename U>
LAYERWISE_AVX512_VNNI void dot4_rows(std::int64_t n, const void* wv, std::int64_t stride, const void* av, float* out)
{
    const auto* w = static_cast<const std::uint8_t*>(wv);
    const auto* a = static_cast<const BlockQ8K*>(av);
    const Consts c = make_consts();
    __m512 acc = _mm512_setzero_ps();     // lane 4 l + r: weight row r
    __m256 acc_min = _mm256_setzero_ps(); // likewise, l < 2
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        const BlockQ8K& ab = a[i];
        const __m256i bsums = load256(ab.bsums);
        __m512i sum[4];
        __m256i msum[4];
        #pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {
            avx2::prefetch_ahead<U>(w + r * stride, i);
            U u(block_at<U>(w, stride, r, i), c);
            sum[r] = U::has_offset ? _mm512_zextsi256_si512(u.offset(bsums)) : _mm512_setzero_si512();
            #pragma GCC unroll 4
            for (int k = 0; k < 4; ++k) {
                __m512i q, s;
                u.step(k, q, s);
                sum[r] = dot_scaled(sum[r], q, load512(ab.qs + 64 * k), s);
            }
            if constexpr (U::has_min)
                msum[r] = u.mins(bsums);
        }
        const __m128 da = _mm_set1_ps(q8k_d(ab));
        const auto& b0 = block_at<U>(w, stride, 0, i);
        const auto& b1 = block_at<U>(w, stride, 1, i);
        const auto& b2 = block_at<U>(w, stride, 2, i);
        const auto& b3 = block_at<U>(w, stride, 3, i);
        acc = _mm512_fmadd_ps(_mm512_broadcast_f32x4(_mm_mul_ps(avx2::halves4(b0.d, b1.d, b2.d, b3.d), da)),
                              _mm512_cvtepi32_ps(reduce4(sum[0], sum[1], sum[2], sum[3])), acc);
        if constexpr (U::has_min)
            acc_min = _mm256_fmadd_ps(avx2::twice(_mm_mul_ps(avx2::halves4(b0.dmin, b1.dmin, b2.dmin, b3.dmin), da)),
                                      _mm256_cvtepi32_ps(avx2::reduce4(msum[0], msum[1], msum[2], msum[3])), acc_min);
    }
    store_lane_sums(acc, acc_min, out);
}

template <typename U>
LAYERWISE_AVX512_VNNI void dot4x4_rows(std::int64_t n, const void* wv, std::int64_t wstride, const void* av,
                                       std::int64_t astride, float* out)
{
    const auto* w = static_cast<const std::uint8_t*>(wv);
    const auto* a = static_cast<const std::uint8_t*>(av);
    const Consts c = make_consts();
    __m512 acc[4]; // acc[r] lane 4 l + p: weight row r x activation row p
    __m256 acc_min[4];
    for (int r = 0; r < 4; ++r) {
        acc[r] = _mm512_setzero_ps();
        acc_min[r] = _mm256_setzero_ps();
    }
    for (std::int64_t i = 0; i < n / kQKK; ++i) {
        const BlockQ8K* ab[4];
        for (int p = 0; p < 4; ++p)
            ab[p] = reinterpret_cast<const BlockQ8K*>(a + p * astride) + i;
        const __m128 da = _mm_setr_ps(q8k_d(*ab[0]), q8k_d(*ab[1]), q8k_d(*ab[2]), q8k_d(*ab[3]));
        // Q4_K / Q5_K min sums in reduce4's layout without reducing (as the AVX2 kernel's
        // activation_pairs, with four 128-bit lanes one madd covers all eight mins): lane
        // 4 l + p = row p's bsum pair sums (2 l, 2 l + 1), against (min 2 l, min 2 l + 1).
        __m512i bpairs;
        if constexpr (U::has_min_pairs) {
            const __m512i ones = _mm512_set1_epi16(1);
            const __m512i s01 = _mm512_madd_epi16(_mm512_inserti64x4(_mm512_castsi256_si512(load256(ab[0]->bsums)), load256(ab[1]->bsums), 1), ones);
            const __m512i s23 = _mm512_madd_epi16(_mm512_inserti64x4(_mm512_castsi256_si512(load256(ab[2]->bsums)), load256(ab[3]->bsums), 1), ones);
            bpairs = _mm512_permutexvar_epi32(c.pair_order, _mm512_packs_epi32(s01, s23));
        }
        #pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) {
            const auto& b = block_at<U>(w, wstride, r, i);
            U u(b, c);
            __m512i sum[4];
            #pragma GCC unroll 4
            for (int p = 0; p < 4; ++p)
                sum[p] = U::has_offset ? _mm512_zextsi256_si512(u.offset(load256(ab[p]->bsums))) : _mm512_setzero_si512();
            #pragma GCC unroll 4
            for (int k = 0; k < 4; ++k) {
                __m512i q, s;
                u.step(k, q, s);
                #pragma GCC unroll 4
                for (int p = 0; p < 4; ++p)
                    sum[p] = dot_scaled(sum[p], q, load512(ab[p]->qs + 64 * k), s);
            }
            acc[r] = _mm512_fmadd_ps(_mm512_broadcast_f32x4(_mm_mul_ps(_mm_set1_ps(half_hw(b.d)), da)),
                                     _mm512_cvtepi32_ps(reduce4(sum[0], sum[1], sum[2], sum[3])), acc[r]);
            if constexpr (U::has_min_pairs) {
                const __m512i mins = _mm512_permutexvar_epi32(c.min_spread, _mm512_castsi128_si512(u.min_pairs));
                acc[r] = _mm512_fnmadd_ps(_mm512_broadcast_f32x4(_mm_mul_ps(_mm_set1_ps(half_hw(b.dmin)), da)),
                                          _mm512_cvtepi32_ps(_mm512_madd_epi16(mins, bpairs)), acc[r]);
            } else if constexpr (U::has_min) {
                __m256i msum[4];
                #pragma GCC unroll 4
                for (int p = 0; p < 4; ++p)
                    msum[p] = u.mins(load256(ab[p]->bsums));
                acc_min[r] = _mm256_fmadd_ps(avx2::twice(_mm_mul_ps(_mm_set1_ps(half_hw(b.dmin)), da)),
                                             _mm256_cvtepi32_ps(avx2::reduce4(msum[0], msum[1], msum[2], msum[3])), acc_min[r]);
            }
        }
    }
    for (int r = 0; r < 4; ++r)
        store_lane_sums(acc[r], acc_min[r], out + 4 * r);
}

using UnpackQ4K = UnpackQ45K<false, BlockQ4K>;
using UnpackQ5K = UnpackQ45K<true, BlockQ5K>;

LAYERWISE_AVX512_VNNI void dot4_q2k(std::int64_t n, const void* w, std::int64_t s, const void* a, float* o) { dot4_rows<UnpackQ2K>(n, w, s, a, o); }
LAYERWISE_AVX512_VNNI void dot4_q3k(std::int64_t n, const void* w, std::int64_t s, const void* a, float* o) { dot4_rows<UnpackQ3K>(n, w, s, a, o); }
LAYERWISE_AVX512_VNNI void dot4_q4k(std::int64_t n, const void* w, std::int64_t s, const void* a, float* o) { dot4_rows<UnpackQ4K>(n, w, s, a, o); }
LAYERWISE_AVX512_VNNI void dot4_q5k(std::int64_t n, const void* w, std::int64_t s, const void* a, float* o) { dot4_rows<UnpackQ5K>(n, w, s, a, o); }
LAYERWISE_AVX512_VNNI void dot4_q6k(std::int64_t n, const void* w, std::int64_t s, const void* a, float* o) { dot4_rows<UnpackQ6K>(n, w, s, a, o); }

LAYERWISE_AVX512_VNNI void dot4x4_q2k(std::int64_t n, const void* w, std::int64_t ws, const void* a, std::int64_t as, float* o) { dot4x4_rows<UnpackQ2K>(n, w, ws, a, as, o); }
LAYERWISE_AVX512_VNNI void dot4x4_q3k(std::int64_t n, const void* w, std::int64_t ws, const void* a, std::int64_t as, float* o) { dot4x4_rows<UnpackQ3K>(n, w, ws, a, as, o); }
LAYERWISE_AVX512_VNNI void dot4x4_q4k(std::int64_t n, const void* w, std::int64_t ws, const void* a, std::int64_t as, float* o) { dot4x4_rows<UnpackQ4K>(n, w, ws, a, as, o); }
LAYERWISE_AVX512_VNNI void dot4x4_q5k(std::int64_t n, const void* w, std::int64_t ws, const void* a, std::int64_t as, float* o) { dot4x4_rows<UnpackQ5K>(n, w, ws, a, as, o); }
LAYERWISE_AVX512_VNNI void dot4x4_q6k(std::int64_t n, const void* w, std::int64_t ws, const void* a, std::int64_t as, float* o) { dot4x4_rows<UnpackQ6K>(n, w, ws, a, as, o); }

} // namespace avx512

#endif // LAYERWISE_SIMD_X86

// The level a request runs at: the best available at or below it.
CpuLevel usable_level(CpuLevel level)
{
    level = resolve_cpu_level(level);
#ifdef LAYERWISE_SIMD_X86
    if (level == CpuLevel::avx512 && !cpu_level_available(CpuLevel::avx512))
        level = CpuLevel::avx2;
    if (level == CpuLevel::avx2 && !cpu_level_available(CpuLevel::avx2))
        level = CpuLevel::scalar;
    return level;
#else
    (void)level;
    return CpuLevel::scalar;
#endif
}

} // namespace

void quantize_row_q8_K(const float* x, void* out, std::int64_t n, CpuLevel level)
{
    auto* o = static_cast<BlockQ8K*>(out);
    const std::int64_t blocks = n / kQKK;
#ifdef LAYERWISE_SIMD_X86
    if (usable_level(level) != CpuLevel::scalar)
        return avx2::quantize_q8k(x, o, blocks);
#endif
    (void)level;
    for (std::int64_t b = 0; b < blocks; ++b)
        quantize_q8k_block_scalar(x + b * kQKK, o[b]);
}

namespace {

// The kernels of one K format at one level: single-row dot, four-row dot, 4 x 4 tile (the last
// two null at the scalar level: the caller then runs the single-row kernel four or sixteen times).
struct KFormatKernels {
    GgmlType type;
    VecDot dot;
    VecDot4 dot4;
    VecDot4x4 tile;
};

const KFormatKernels kScalarK[] = {
    {GgmlType::Q2_K, dot_q2k_scalar, nullptr, nullptr},
    {GgmlType::Q3_K, dot_q3k_scalar, nullptr, nullptr},
    {GgmlType::Q4_K, dot_q45k_scalar<BlockQ4K, q4k_quants>, nullptr, nullptr},
    {GgmlType::Q5_K, dot_q45k_scalar<BlockQ5K, q5k_quants>, nullptr, nullptr},
    {GgmlType::Q6_K, dot_q6k_scalar, nullptr, nullptr},
};

#ifdef LAYERWISE_SIMD_X86
#define LAYERWISE_K_LEVEL_TABLE(ns)                                            \
    {                                                                          \
        {GgmlType::Q2_K, ns::dot_q2k, ns::dot4_q2k, ns::dot4x4_q2k},           \
            {GgmlType::Q3_K, ns::dot_q3k, ns::dot4_q3k, ns::dot4x4_q3k},       \
            {GgmlType::Q4_K, ns::dot_q4k, ns::dot4_q4k, ns::dot4x4_q4k},       \
            {GgmlType::Q5_K, ns::dot_q5k, ns::dot4_q5k, ns::dot4x4_q5k},       \
            {GgmlType::Q6_K, ns::dot_q6k, ns::dot4_q6k, ns::dot4x4_q6k},       \
    }
const KFormatKernels kAvx2K[] = LAYERWISE_K_LEVEL_TABLE(avx2);
const KFormatKernels kVnniK[] = LAYERWISE_K_LEVEL_TABLE(avx512);
#undef LAYERWISE_K_LEVEL_TABLE
#endif

// The entry for `weight` at the best level at or below `level` (AVX-512 without VNNI: the AVX2
// kernels, see the AVX-512 section); null for a format outside the K family.
const KFormatKernels* k_format_kernels(GgmlType weight, CpuLevel level)
{
    const KFormatKernels* table = kScalarK;
#ifdef LAYERWISE_SIMD_X86
    const CpuLevel l = usable_level(level);
    if (l == CpuLevel::avx512 && cpu_features().avx512vnni)
        table = kVnniK;
    else if (l != CpuLevel::scalar)
        table = kAvx2K;
#else
    (void)level;
#endif
    for (std::size_t i = 0; i < std::size(kScalarK); ++i)
        if (table[i].type == weight)
            return &table[i];
    return nullptr;
}

} // namespace

VecDot vec_dot_k_family(GgmlType weight, CpuLevel level)
{
    const KFormatKernels* k = k_format_kernels(weight, level);
    return k ? k->dot : nullptr;
}

VecDot4 vec_dot4_k_family(GgmlType weight, CpuLevel level)
{
    const KFormatKernels* k = k_format_kernels(weight, level);
    return k ? k->dot4 : nullptr;
}

VecDot4x4 vec_dot4x4_k_family(GgmlType weight, CpuLevel level)
{
    const KFormatKernels* k = k_format_kernels(weight, level);
    return k ? k->tile : nullptr;
}

bool dequantize_row_k_family(GgmlType type, const void* src, float* dst, std::int64_t n)
{
    const std::int64_t blocks = n / kQKK;
    switch (type) {
    case GgmlType::Q2_K:
        for (std::int64_t b = 0; b < blocks; ++b)
            decode_q2k(static_cast<const BlockQ2K*>(src)[b], dst + b * kQKK);
        return true;
    case GgmlType::Q3_K:
        for (std::int64_t b = 0; b < blocks; ++b)
            decode_q3k(static_cast<const BlockQ3K*>(src)[b], dst + b * kQKK);
        return true;
    case GgmlType::Q4_K:
        for (std::int64_t b = 0; b < blocks; ++b)
            decode_q4k(static_cast<const BlockQ4K*>(src)[b], dst + b * kQKK);
        return true;
    case GgmlType::Q5_K:
        for (std::int64_t b = 0; b < blocks; ++b)
            decode_q5k(static_cast<const BlockQ5K*>(src)[b], dst + b * kQKK);
        return true;
    case GgmlType::Q6_K:
        for (std::int64_t b = 0; b < blocks; ++b)
            decode_q6k(static_cast<const BlockQ6K*>(src)[b], dst + b * kQKK);
        return true;
    default: return false;
    }
}

} // namespace layerwise::kernels::cpu
