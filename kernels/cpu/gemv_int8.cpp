// LLM.int8 GEMV on the CPU (int8 activations x int8 weights -> exact int32): scalar, AVX2
// and AVX-512 (VNNI when present) paths (see gemv_cpu.h).
//
// The unsigned x signed byte products (maddubs / dpbusd) take |w| as the unsigned side and x
// with w's sign as the signed side: |w| <= 128 and |x| <= 127 keep a pair's sum within int16
// (2 * 128 * 127 = 32512), so every product is exact for any weight byte.
#include "cpu/gemv_cpu.h"
#include "cpu/simd.h"

#include <algorithm>

namespace layerwise::kernels::cpu {

namespace {

void store(const Int8GemvArgs& a, std::int64_t r, std::int64_t o, std::int32_t acc)
{
    a.y[r * a.out + o] = static_cast<float>(acc) * (a.x_scale[r] * a.scb[o]) * kInt8Dequant;
}

// The tail past the last full vector; never inlined, so the VNNI-targeted caller cannot
// vectorize it with instructions a CPU without VNNI lacks.
__attribute__((noinline)) std::int32_t tail_dot(const std::int8_t* x, const std::int8_t* w, std::int64_t begin, std::int64_t end)
{
    std::int32_t s = 0;
    for (std::int64_t i = begin; i < end; ++i)
        s += static_cast<std::int32_t>(x[i]) * static_cast<std::int32_t>(w[i]);
    return s;
}

void int8_scalar(const Int8GemvArgs& a, std::int64_t o_begin, std::int64_t o_end)
{
    for (std::int64_t o = o_begin; o < o_end; ++o) {
        const std::int8_t* w = a.w + o * a.in;
        for (std::int64_t r = 0; r < a.m; ++r) {
            const std::int8_t* x = a.xq + r * a.in;
            store(a, r, o, tail_dot(x, w, 0, a.in));
        }
    }
}

#ifdef LAYERWISE_SIMD_X86

LAYERWISE_AVX2 inline std::int32_t hsum_epi32_avx2(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

template <int M>
LAYERWISE_AVX2 void int8_avx2(const Int8GemvArgs& a, std::int64_t o_begin, std::int64_t o_end)
{
    const std::int64_t full = a.in / 32 * 32;
    const __m256i ones = _mm256_set1_epi16(1);
    for (std::int64_t o = o_begin; o < o_end; ++o) {
        const std::int8_t* w = a.w + o * a.in;
        __m256i acc[M];
        for (int r = 0; r < M; ++r)
            acc[r] = _mm256_setzero_si256();
        for (std::int64_t i = 0; i < full; i += 32) {
            const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i));
            const __m256i aw = _mm256_abs_epi8(wv);
            for (int r = 0; r < M; ++r) {
                const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.xq + r * a.in + i));
                const __m256i p16 = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv));
                acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(p16, ones));
            }
        }
        for (int r = 0; r < M; ++r) {
            store(a, r, o, hsum_epi32_avx2(acc[r]) + tail_dot(a.xq + r * a.in, w, full, a.in));
        }
    }
}

// AVX-512 BW: 64 bytes a step; x takes w's sign by a masked subtraction. Two copies of one body,
// each under its own target: compiled under the VNNI target, the maddubs + madd + add of the
// plain copy would be fused by the compiler into vpdpbusd/vpdpwssd, which an AVX-512 CPU
// without VNNI cannot run.
#define LAYERWISE_INT8_AVX512(NAME, TARGET, ACCUMULATE)                                                \
    template <int M>                                                                                   \
    TARGET void NAME(const Int8GemvArgs& a, std::int64_t o_begin, std::int64_t o_end)                  \
    {                                                                                                  \
        const std::int64_t full = a.in / 64 * 64;                                                      \
        const __m512i ones = _mm512_set1_epi16(1);                                                     \
        const __m512i zero = _mm512_setzero_si512();                                                   \
        (void)ones;                                                                                    \
        for (std::int64_t o = o_begin; o < o_end; ++o) {                                               \
            const std::int8_t* w = a.w + o * a.in;                                                     \
            __m512i acc[M];                                                                            \
            for (int r = 0; r < M; ++r)                                                                \
                acc[r] = _mm512_setzero_si512();                                                       \
            for (std::int64_t i = 0; i < full; i += 64) {                                              \
                const __m512i wv = _mm512_loadu_si512(w + i);                                          \
                const __m512i aw = _mm512_abs_epi8(wv);                                                \
                const __mmask64 neg = _mm512_movepi8_mask(wv);                                         \
                for (int r = 0; r < M; ++r) {                                                          \
                    const __m512i xv = _mm512_loadu_si512(a.xq + r * a.in + i);                        \
                    const __m512i sx = _mm512_mask_sub_epi8(xv, neg, zero, xv);                        \
                    acc[r] = ACCUMULATE;                                                               \
                }                                                                                      \
            }                                                                                          \
            for (int r = 0; r < M; ++r)                                                                \
                store(a, r, o, _mm512_reduce_add_epi32(acc[r]) + tail_dot(a.xq + r * a.in, w, full, a.in)); \
        }                                                                                              \
    }
LAYERWISE_INT8_AVX512(int8_avx512_bw, LAYERWISE_AVX512,
                      _mm512_add_epi32(acc[r], _mm512_madd_epi16(_mm512_maddubs_epi16(aw, sx), ones)))
LAYERWISE_INT8_AVX512(int8_avx512_vnni, LAYERWISE_AVX512_VNNI, _mm512_dpbusd_epi32(acc[r], aw, sx))
#undef LAYERWISE_INT8_AVX512

template <int M>
void run_rows(CpuLevel level, const Int8GemvArgs& a, std::int64_t b, std::int64_t e)
{
    if (level == CpuLevel::avx512) {
        if (cpu_features().avx512vnni)
            int8_avx512_vnni<M>(a, b, e);
        else
            int8_avx512_bw<M>(a, b, e);
    } else {
        int8_avx2<M>(a, b, e);
    }
}

#endif // LAYERWISE_SIMD_X86

} // namespace

void int8_gemv(const Int8GemvArgs& a, CpuLevel level, std::int64_t o_begin, std::int64_t o_end)
{
    level = resolve_cpu_level(level);
#ifdef LAYERWISE_SIMD_X86
    if (level != CpuLevel::scalar) {
        for (std::int64_t r0 = 0; r0 < a.m; r0 += 4) {
            Int8GemvArgs part = a;
            part.xq = a.xq + r0 * a.in;
            part.x_scale = a.x_scale + r0;
            part.y = a.y + r0 * a.out;
            part.m = std::min<std::int64_t>(4, a.m - r0);
            switch (part.m) {
            case 1: run_rows<1>(level, part, o_begin, o_end); break;
            case 2: run_rows<2>(level, part, o_begin, o_end); break;
            case 3: run_rows<3>(level, part, o_begin, o_end); break;
            default: run_rows<4>(level, part, o_begin, o_end); break;
            }
        }
        return;
    }
#endif
    int8_scalar(a, o_begin, o_end);
}

} // namespace layerwise::kernels::cpu
