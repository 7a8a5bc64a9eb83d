// NF4 / FP4 GEMV on the CPU: scalar, AVX2 and AVX-512 paths (see gemv_cpu.h for the layout).
//
// Output row o holds values o*in .. o*in+in-1 of the flat weight. When blocks tile the rows
// (in % blocksize == 0, blocksize a multiple of the vector chunk) every row starts on a byte
// and a block, and the SIMD paths run: a byte holds values 2k (high nibble) and 2k+1 (low), so
// x is split once into its even and odd elements and each byte's two nibbles meet their own
// x without shuffles. The code table lookup is one permute with AVX-512 (16 floats in a
// register) and two permutes and a blend with AVX2. The absmax multiplies once per block:
// sum_i x_i code[q_i] absmax = absmax * sum_i x_i code[q_i]. Other shapes take the scalar loop.
#include "cpu/gemv_cpu.h"
#include "cpu/simd.h"

#include <algorithm>
#include <vector>

namespace layerwise::kernels::cpu {

namespace {

float absmax_of(const Blockwise4GemvArgs& a, std::int64_t block)
{
    if (a.absmax)
        return a.absmax[block];
    return a.nested_code[a.absmax_u8[block]] * a.nested_absmax[block / a.nested_blocksize] + a.nested_offset;
}

void blockwise4_scalar(const Blockwise4GemvArgs& a, std::int64_t o_begin, std::int64_t o_end)
{
    std::vector<float> acc(static_cast<std::size_t>(a.m)), part(static_cast<std::size_t>(a.m));
    for (std::int64_t o = o_begin; o < o_end; ++o) {
        std::fill(acc.begin(), acc.end(), 0.0f);
        const std::int64_t e0 = o * a.in;
        for (std::int64_t i = 0; i < a.in;) {
            const std::int64_t block = (e0 + i) / a.blocksize;
            const std::int64_t end = std::min(a.in, (block + 1) * a.blocksize - e0);
            std::fill(part.begin(), part.end(), 0.0f);
            for (; i < end; ++i) {
                const std::int64_t e = e0 + i;
                const std::uint8_t byte = a.packed[e >> 1];
                const float v = a.code[(e & 1) ? (byte & 15) : (byte >> 4)];
                for (std::int64_t r = 0; r < a.m; ++r)
                    part[r] += a.x[r * a.in + i] * v;
            }
            const float scale = absmax_of(a, block);
            for (std::int64_t r = 0; r < a.m; ++r)
                acc[r] += scale * part[r];
        }
        for (std::int64_t r = 0; r < a.m; ++r)
            a.y[r * a.out + o] = acc[r];
    }
}

// xe[r][k] = x[r][2k], xo[r][k] = x[r][2k + 1].
void split_even_odd(const Blockwise4GemvArgs& a, std::int64_t r0, int rows, std::vector<float>& xe, std::vector<float>& xo)
{
    const std::int64_t half = a.in / 2;
    xe.resize(static_cast<std::size_t>(rows * half));
    xo.resize(static_cast<std::size_t>(rows * half));
    for (int r = 0; r < rows; ++r)
        for (std::int64_t k = 0; k < half; ++k) {
            xe[r * half + k] = a.x[(r0 + r) * a.in + 2 * k];
            xo[r * half + k] = a.x[(r0 + r) * a.in + 2 * k + 1];
        }
}

#ifdef LAYERWISE_SIMD_X86

LAYERWISE_AVX2 inline float hsum_avx2(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

template <int M>
LAYERWISE_AVX2 void blockwise4_avx2(const Blockwise4GemvArgs& a, std::int64_t o_begin, std::int64_t o_end, const float* xe,
                                    const float* xo, float* y)
{
    const std::int64_t half = a.in / 2, blocks = a.in / a.blocksize, bytes_per_block = a.blocksize / 2;
    const __m256 t0 = _mm256_loadu_ps(a.code), t1 = _mm256_loadu_ps(a.code + 8);
    for (std::int64_t o = o_begin; o < o_end; ++o) {
        const std::uint8_t* row = a.packed + o * half;
        __m256 acc[M];
        for (int r = 0; r < M; ++r)
            acc[r] = _mm256_setzero_ps();
        for (std::int64_t b = 0; b < blocks; ++b) {
            // Four independent sums per row (high/low nibbles of even/odd 8-byte steps): one
            // chain of dependent FMAs would wait on their latency.
            __m256 part[M][4];
            for (int r = 0; r < M; ++r)
                for (int k = 0; k < 4; ++k)
                    part[r][k] = _mm256_setzero_ps();
            for (std::int64_t k = b * bytes_per_block; k < (b + 1) * bytes_per_block; k += 16) {
                for (int u = 0; u < 2; ++u) {
                    const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + k + 8 * u)));
                    const __m256i h = _mm256_srli_epi32(v, 4);
                    const __m256 hv = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, h), _mm256_permutevar8x32_ps(t1, h),
                                                       _mm256_castsi256_ps(_mm256_slli_epi32(v, 24)));
                    const __m256 lv = _mm256_blendv_ps(_mm256_permutevar8x32_ps(t0, v), _mm256_permutevar8x32_ps(t1, v),
                                                       _mm256_castsi256_ps(_mm256_slli_epi32(v, 28)));
                    for (int r = 0; r < M; ++r) {
                        part[r][2 * u] = _mm256_fmadd_ps(_mm256_loadu_ps(xe + r * half + k + 8 * u), hv, part[r][2 * u]);
                        part[r][2 * u + 1] = _mm256_fmadd_ps(_mm256_loadu_ps(xo + r * half + k + 8 * u), lv, part[r][2 * u + 1]);
                    }
                }
            }
            const __m256 scale = _mm256_set1_ps(absmax_of(a, o * blocks + b));
            for (int r = 0; r < M; ++r)
                acc[r] = _mm256_fmadd_ps(scale, _mm256_add_ps(_mm256_add_ps(part[r][0], part[r][1]), _mm256_add_ps(part[r][2], part[r][3])),
                                         acc[r]);
        }
        for (int r = 0; r < M; ++r)
            y[r * a.out + o] = hsum_avx2(acc[r]);
    }
}

template <int M>
LAYERWISE_AVX512 void blockwise4_avx512(const Blockwise4GemvArgs& a, std::int64_t o_begin, std::int64_t o_end, const float* xe,
                                        const float* xo, float* y)
{
    const std::int64_t half = a.in / 2, blocks = a.in / a.blocksize, bytes_per_block = a.blocksize / 2;
    const __m512 table = _mm512_loadu_ps(a.code);
    for (std::int64_t o = o_begin; o < o_end; ++o) {
        const std::uint8_t* row = a.packed + o * half;
        __m512 acc[M];
        for (int r = 0; r < M; ++r)
            acc[r] = _mm512_setzero_ps();
        for (std::int64_t b = 0; b < blocks; ++b) {
            __m512 part[M], part_lo[M];
            for (int r = 0; r < M; ++r)
                part[r] = part_lo[r] = _mm512_setzero_ps();
            for (std::int64_t k = b * bytes_per_block; k < (b + 1) * bytes_per_block; k += 16) {
                const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k)));
                const __m512 hv = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table);
                const __m512 lv = _mm512_permutexvar_ps(v, table);
                for (int r = 0; r < M; ++r) {
                    part[r] = _mm512_fmadd_ps(_mm512_loadu_ps(xe + r * half + k), hv, part[r]);
                    part_lo[r] = _mm512_fmadd_ps(_mm512_loadu_ps(xo + r * half + k), lv, part_lo[r]);
                }
            }
            const __m512 scale = _mm512_set1_ps(absmax_of(a, o * blocks + b));
            for (int r = 0; r < M; ++r)
                acc[r] = _mm512_fmadd_ps(scale, _mm512_add_ps(part[r], part_lo[r]), acc[r]);
        }
        for (int r = 0; r < M; ++r)
            y[r * a.out + o] = _mm512_reduce_add_ps(acc[r]);
    }
}

template <int M> struct Avx2 { static void run(const Blockwise4GemvArgs& a, std::int64_t b, std::int64_t e, const float* xe, const float* xo, float* y) { blockwise4_avx2<M>(a, b, e, xe, xo, y); } };
template <int M> struct Avx512 { static void run(const Blockwise4GemvArgs& a, std::int64_t b, std::int64_t e, const float* xe, const float* xo, float* y) { blockwise4_avx512<M>(a, b, e, xe, xo, y); } };

template <template <int> class Kernel>
void by_rows(int rows, const Blockwise4GemvArgs& a, std::int64_t b, std::int64_t e, const float* xe, const float* xo, float* y)
{
    switch (rows) {
    case 1: Kernel<1>::run(a, b, e, xe, xo, y); break;
    case 2: Kernel<2>::run(a, b, e, xe, xo, y); break;
    case 3: Kernel<3>::run(a, b, e, xe, xo, y); break;
    case 4: Kernel<4>::run(a, b, e, xe, xo, y); break;
    }
}

#endif // LAYERWISE_SIMD_X86

} // namespace

void blockwise4_gemv(const Blockwise4GemvArgs& a, CpuLevel level, std::int64_t o_begin, std::int64_t o_end)
{
    level = resolve_cpu_level(level);
#ifdef LAYERWISE_SIMD_X86
    const std::int64_t chunk = 32; // values per step: 16 bytes (AVX2 in two halves, AVX-512 at once)
    if (level != CpuLevel::scalar && a.in % a.blocksize == 0 && a.blocksize % chunk == 0) {
        std::vector<float> xe, xo;
        for (std::int64_t r0 = 0; r0 < a.m; r0 += 4) {
            const int rows = static_cast<int>(std::min<std::int64_t>(4, a.m - r0));
            split_even_odd(a, r0, rows, xe, xo);
            if (level == CpuLevel::avx512)
                by_rows<Avx512>(rows, a, o_begin, o_end, xe.data(), xo.data(), a.y + r0 * a.out);
            else
                by_rows<Avx2>(rows, a, o_begin, o_end, xe.data(), xo.data(), a.y + r0 * a.out);
        }
        return;
    }
#endif
    blockwise4_scalar(a, o_begin, o_end);
}

} // namespace layerwise::kernels::cpu
