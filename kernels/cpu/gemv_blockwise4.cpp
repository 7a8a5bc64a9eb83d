// NF4 / FP4 GEMV on the CPU: scalar, AVX2 and AVX-512 paths (see gemv_cpu.h for the layout).
//
// Output row o holds values o*in .. o*in+in-1 of the flat weight. When blocks tile the rows
// (in % blocksize == 0, blocksize a multiple of the vector chunk) every row starts on a byte
// and a block, and the SIMD paths run: a byte holds values 2k (high nibble) and 2k+1 (low), so
// x is split once into its even and odd elements and each byte's two nibbles meet their own
// x without shuffles. The code table lookup is one permute with AVX-512 (16 floats in a
// register) and byte shuffles of the table's byte planes with AVX2. The absmax multiplies once per block:
// sum_i x_i code[q_i] absmax = absmax * sum_i x_i code[q_i]. Other shapes take the scalar loop.
#include "cpu/gemv_cpu.h"
#include "cpu/simd.h"

#include <algorithm>
#include <cstring>
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

// xe[r][k] = x[r][2k], xo[r][k] = x[r][2k + 1]; with `order` (32 byte positions), each group
// of 32 takes that order: xe[r][32g + t] = x[r][2 (32g + order[t])].
void split_even_odd(const Blockwise4GemvArgs& a, std::int64_t r0, int rows, const int* order, std::vector<float>& xe,
                    std::vector<float>& xo)
{
    const std::int64_t half = a.in / 2;
    xe.resize(static_cast<std::size_t>(rows * half));
    xo.resize(static_cast<std::size_t>(rows * half));
    for (int r = 0; r < rows; ++r)
        for (std::int64_t k = 0; k < half; ++k) {
            const std::int64_t src = order ? k / 32 * 32 + order[k % 32] : k;
            xe[r * half + k] = a.x[(r0 + r) * a.in + 2 * src];
            xo[r * half + k] = a.x[(r0 + r) * a.in + 2 * src + 1];
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

// AVX2 looks the code up with in-lane byte shuffles (lane-crossing permutes are slow on some
// cores): the table's four byte planes, one pshufb each, then two rounds of unpacking rebuild
// the floats. That leaves the 32 values of each nibble half of a 32-byte step in the order
// kAvx2Order (byte positions), which the even/odd x copies are permuted to match.
constexpr int kAvx2Order[32] = {0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23,
                                8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31};

template <int M>
LAYERWISE_AVX2 void blockwise4_avx2(const Blockwise4GemvArgs& a, std::int64_t o_begin, std::int64_t o_end, const float* xe,
                                    const float* xo, float* y)
{
    const std::int64_t half = a.in / 2, blocks = a.in / a.blocksize, bytes_per_block = a.blocksize / 2;
    __m256i plane[4];
    for (int j = 0; j < 4; ++j) {
        alignas(16) std::uint8_t bytes[16];
        for (int k = 0; k < 16; ++k) {
            std::uint32_t bits;
            std::memcpy(&bits, a.code + k, 4);
            bytes[k] = static_cast<std::uint8_t>(bits >> (8 * j));
        }
        plane[j] = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(bytes)));
    }
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (std::int64_t o = o_begin; o < o_end; ++o) {
        const std::uint8_t* row = a.packed + o * half;
        __m256 acc[M];
        for (int r = 0; r < M; ++r)
            acc[r] = _mm256_setzero_ps();
        for (std::int64_t b = 0; b < blocks; ++b) {
            __m256 part[M][2];
            for (int r = 0; r < M; ++r)
                part[r][0] = part[r][1] = _mm256_setzero_ps();
            for (std::int64_t k = b * bytes_per_block; k < (b + 1) * bytes_per_block; k += 32) {
                const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + k));
                const __m256i idx[2] = {_mm256_and_si256(_mm256_srli_epi16(v, 4), low4), _mm256_and_si256(v, low4)};
                for (int n = 0; n < 2; ++n) { // high nibbles meet the even x, low nibbles the odd x
                    const __m256i b0 = _mm256_shuffle_epi8(plane[0], idx[n]), b1 = _mm256_shuffle_epi8(plane[1], idx[n]);
                    const __m256i b2 = _mm256_shuffle_epi8(plane[2], idx[n]), b3 = _mm256_shuffle_epi8(plane[3], idx[n]);
                    const __m256i l01 = _mm256_unpacklo_epi8(b0, b1), h01 = _mm256_unpackhi_epi8(b0, b1);
                    const __m256i l23 = _mm256_unpacklo_epi8(b2, b3), h23 = _mm256_unpackhi_epi8(b2, b3);
                    const __m256 f[4] = {_mm256_castsi256_ps(_mm256_unpacklo_epi16(l01, l23)),
                                         _mm256_castsi256_ps(_mm256_unpackhi_epi16(l01, l23)),
                                         _mm256_castsi256_ps(_mm256_unpacklo_epi16(h01, h23)),
                                         _mm256_castsi256_ps(_mm256_unpackhi_epi16(h01, h23))};
                    const float* xs = n == 0 ? xe : xo;
                    for (int r = 0; r < M; ++r) {
                        const float* xr = xs + r * half + k;
                        part[r][0] = _mm256_fmadd_ps(_mm256_loadu_ps(xr), f[0], part[r][0]);
                        part[r][1] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + 8), f[1], part[r][1]);
                        part[r][0] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + 16), f[2], part[r][0]);
                        part[r][1] = _mm256_fmadd_ps(_mm256_loadu_ps(xr + 24), f[3], part[r][1]);
                    }
                }
            }
            const __m256 scale = _mm256_set1_ps(absmax_of(a, o * blocks + b));
            for (int r = 0; r < M; ++r)
                acc[r] = _mm256_fmadd_ps(scale, _mm256_add_ps(part[r][0], part[r][1]), acc[r]);
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
    const std::int64_t chunk = level == CpuLevel::avx512 ? 32 : 64; // values per step
    if (level != CpuLevel::scalar && a.in % a.blocksize == 0 && a.blocksize % chunk == 0) {
        std::vector<float> xe, xo;
        for (std::int64_t r0 = 0; r0 < a.m; r0 += 4) {
            const int rows = static_cast<int>(std::min<std::int64_t>(4, a.m - r0));
            split_even_odd(a, r0, rows, level == CpuLevel::avx512 ? nullptr : kAvx2Order, xe, xo);
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
