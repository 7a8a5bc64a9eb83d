// GPTQ 4-bit GEMV on the CPU: scalar, AVX2 and AVX-512 paths (see gemv_cpu.h for the layout).
//
// The weight streams row-major ([in / 8, out] words), so a thread walks its outputs in tiles
// of `width` columns: for every packed row it reads `width` contiguous words and accumulates
// into `m x width` float sums that stay in L1. When the 8 rows of every word share a group
// (no act-order, group size a multiple of 8, or one group) the scale and zero leave the inner
// loop: sum_j x_j (q_j - z) s = s (sum_j x_j q_j - z sum_j x_j). Otherwise (act-order) each
// row looks its group's scale and zero up in a float table of the tile.
#include "cpu/gemv_cpu.h"
#include "cpu/simd.h"

#include <algorithm>
#include <vector>

namespace layerwise::kernels::cpu {

namespace {

float zero_of(const GptqGemvArgs& a, std::int64_t g, std::int64_t o)
{
    const auto word = static_cast<std::uint32_t>(a.qzeros[g * (a.out / 8) + o / 8]);
    return static_cast<float>((((word >> (4 * (o % 8))) & 0xF) + 1) & 0xF);
}

// The tile width: m x width sums in ~16 KiB, and in the act-order case the [groups][width]
// tables in ~24 KiB (L1); a multiple of 8.
std::int64_t tile_width(const GptqGemvArgs& a, bool tables_per_group)
{
    std::int64_t w = std::max<std::int64_t>(8, 4096 / std::max<std::int64_t>(1, a.m));
    if (tables_per_group)
        w = std::min<std::int64_t>(w, (24 * 1024) / (8 * std::max<std::int64_t>(1, a.groups)));
    return std::max<std::int64_t>(8, w / 8 * 8);
}

void gptq_scalar(const GptqGemvArgs& a, std::int64_t o_begin, std::int64_t o_end)
{
    const std::int64_t width = std::min<std::int64_t>(o_end - o_begin, tile_width(a, false));
    std::vector<float> acc(static_cast<std::size_t>(a.m * width));
    for (std::int64_t t0 = o_begin; t0 < o_end; t0 += width) {
        const std::int64_t w = std::min(width, o_end - t0);
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (std::int64_t p = 0; p < a.in / 8; ++p) {
            const std::int32_t* row = a.qweight + p * a.out + t0;
            for (int j = 0; j < 8; ++j) {
                const std::int64_t i = 8 * p + j;
                const std::int64_t g = a.g_idx[i];
                for (std::int64_t c = 0; c < w; ++c) {
                    const float q = static_cast<float>((static_cast<std::uint32_t>(row[c]) >> (4 * j)) & 0xF);
                    const float wv = (q - zero_of(a, g, t0 + c)) * half_to_float(a.scales[g * a.out + t0 + c]);
                    for (std::int64_t r = 0; r < a.m; ++r)
                        acc[r * width + c] += a.x[r * a.in + i] * wv;
                }
            }
        }
        for (std::int64_t r = 0; r < a.m; ++r)
            for (std::int64_t c = 0; c < w; ++c)
                a.y[r * a.out + t0 + c] = acc[r * width + c];
    }
}

#ifdef LAYERWISE_SIMD_X86

// ---- AVX2 -------------------------------------------------------------------------------

// fill_tables for one group (or all), eight outputs at a time (F16C for the scales).
LAYERWISE_AVX2 void fill_tables_avx2(const GptqGemvArgs& a, std::int64_t t0, std::int64_t width, std::int64_t g_begin,
                                     std::int64_t g_end, float* s_tab, float* z_tab)
{
    const std::int64_t full = width / 8 * 8;
    const __m256i shifts = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28);
    for (std::int64_t g = g_begin; g < g_end; ++g) {
        float* s = s_tab + (g - g_begin) * width;
        float* z = z_tab + (g - g_begin) * width;
        const std::uint16_t* sg = a.scales + g * a.out + t0;
        const std::int32_t* zg = a.qzeros + g * (a.out / 8) + t0 / 8;
        for (std::int64_t c = 0; c < full; c += 8) {
            _mm256_storeu_ps(s + c, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sg + c))));
            const __m256i zw = _mm256_set1_epi32(zg[c / 8]);
            const __m256i zq = _mm256_and_si256(_mm256_srlv_epi32(zw, shifts), _mm256_set1_epi32(0xF));
            const __m256i zero = _mm256_and_si256(_mm256_add_epi32(zq, _mm256_set1_epi32(1)), _mm256_set1_epi32(0xF));
            _mm256_storeu_ps(z + c, _mm256_cvtepi32_ps(zero));
        }
        for (std::int64_t c = full; c < width; ++c) {
            s[c] = half_to_float(sg[c]);
            z[c] = zero_of(a, g, t0 + c);
        }
    }
}

// Uniform words. xs[r][i] = x[r][i] * 16^-(i % 8) for i % 8 in 1..6, so that the masked (not
// shifted) nibble q_j * 16^j times xs gives x q exactly; nibble 7 is shifted down (its mask
// would set the sign bit), nibble 0 needs no scaling. xsum[r][p] = sum of x over word p.
template <int M>
LAYERWISE_AVX2 void gptq_uniform_avx2(const GptqGemvArgs& a, std::int64_t o_begin, std::int64_t o_end, const float* xs,
                                      const float* xsum, std::int64_t xs_stride)
{
    const std::int64_t words = a.in / 8;
    const std::int64_t width = std::min<std::int64_t>(o_end - o_begin, tile_width(a, false));
    std::vector<float> acc_buf(static_cast<std::size_t>(M * width + 8));
    std::vector<float> s_tab(static_cast<std::size_t>(width)), z_tab(static_cast<std::size_t>(width));
    float* acc = acc_buf.data();
    const __m256i nib = _mm256_set1_epi32(0xF);
    for (std::int64_t t0 = o_begin; t0 < o_end; t0 += width) {
        const std::int64_t w = std::min(width, o_end - t0);
        const std::int64_t full = w / 8 * 8;
        std::fill(acc_buf.begin(), acc_buf.end(), 0.0f);
        std::int64_t current = -1;
        for (std::int64_t p = 0; p < words; ++p) {
            const std::int64_t g = a.g_idx[8 * p];
            if (g != current) {
                fill_tables_avx2(a, t0, w, g, g + 1, s_tab.data(), z_tab.data());
                current = g;
            }
            const std::int32_t* row = a.qweight + p * a.out + t0;
            __m256 xb[M][8];
            __m256 xsb[M];
            for (int r = 0; r < M; ++r) {
                for (int j = 0; j < 8; ++j)
                    xb[r][j] = _mm256_broadcast_ss(xs + r * xs_stride + 8 * p + j);
                xsb[r] = _mm256_broadcast_ss(xsum + r * words + p);
            }
            for (std::int64_t c = 0; c < full; c += 8) {
                const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c));
                __m256 q[8];
                q[0] = _mm256_cvtepi32_ps(_mm256_and_si256(wv, nib));
                q[1] = _mm256_cvtepi32_ps(_mm256_and_si256(wv, _mm256_set1_epi32(0xF << 4)));
                q[2] = _mm256_cvtepi32_ps(_mm256_and_si256(wv, _mm256_set1_epi32(0xF << 8)));
                q[3] = _mm256_cvtepi32_ps(_mm256_and_si256(wv, _mm256_set1_epi32(0xF << 12)));
                q[4] = _mm256_cvtepi32_ps(_mm256_and_si256(wv, _mm256_set1_epi32(0xF << 16)));
                q[5] = _mm256_cvtepi32_ps(_mm256_and_si256(wv, _mm256_set1_epi32(0xF << 20)));
                q[6] = _mm256_cvtepi32_ps(_mm256_and_si256(wv, _mm256_set1_epi32(0xF << 24)));
                q[7] = _mm256_cvtepi32_ps(_mm256_srli_epi32(wv, 28));
                const __m256 s = _mm256_loadu_ps(s_tab.data() + c);
                const __m256 z = _mm256_loadu_ps(z_tab.data() + c);
                for (int r = 0; r < M; ++r) {
                    // Two chains (even and odd nibbles) halve the FMA latency on the way.
                    __m256 t = _mm256_mul_ps(xb[r][0], q[0]), u = _mm256_mul_ps(xb[r][1], q[1]);
                    for (int j = 2; j < 8; j += 2) {
                        t = _mm256_fmadd_ps(xb[r][j], q[j], t);
                        u = _mm256_fmadd_ps(xb[r][j + 1], q[j + 1], u);
                    }
                    t = _mm256_fnmadd_ps(z, xsb[r], _mm256_add_ps(t, u));
                    float* ar = acc + r * width + c;
                    _mm256_storeu_ps(ar, _mm256_fmadd_ps(s, t, _mm256_loadu_ps(ar)));
                }
            }
            for (std::int64_t c = full; c < w; ++c) { // only when out is not a multiple of 8 (never for 4 bits)
                const auto wv = static_cast<std::uint32_t>(row[c]);
                for (int r = 0; r < M; ++r) {
                    float t = 0;
                    for (int j = 0; j < 8; ++j)
                        t += a.x[r * a.in + 8 * p + j] * static_cast<float>((wv >> (4 * j)) & 0xF);
                    acc[r * width + c] += s_tab[c] * (t - z_tab[c] * xsum[r * words + p]);
                }
            }
        }
        for (int r = 0; r < M; ++r)
            std::copy(acc + r * width, acc + r * width + w, a.y + r * a.out + t0);
    }
}

// Any g_idx (act-order): per row, its group's scale and zero from the tile's tables; the
// word's 8 rows go through registers before the sums return to memory.
template <int M>
LAYERWISE_AVX2 void gptq_grouped_avx2(const GptqGemvArgs& a, std::int64_t o_begin, std::int64_t o_end)
{
    const std::int64_t words = a.in / 8;
    const std::int64_t width = std::min<std::int64_t>(o_end - o_begin, tile_width(a, true));
    std::vector<float> acc_buf(static_cast<std::size_t>(M * width));
    std::vector<float> s_tab(static_cast<std::size_t>(a.groups * width)), z_tab(static_cast<std::size_t>(a.groups * width));
    float* acc = acc_buf.data();
    const __m256i nib = _mm256_set1_epi32(0xF);
    for (std::int64_t t0 = o_begin; t0 < o_end; t0 += width) {
        const std::int64_t w = std::min(width, o_end - t0);
        const std::int64_t full = w / 8 * 8;
        fill_tables_avx2(a, t0, w, 0, a.groups, s_tab.data(), z_tab.data());
        std::fill(acc_buf.begin(), acc_buf.end(), 0.0f);
        for (std::int64_t p = 0; p < words; ++p) {
            const std::int32_t* row = a.qweight + p * a.out + t0;
            const float* sg[8];
            const float* zg[8];
            for (int j = 0; j < 8; ++j) {
                sg[j] = s_tab.data() + a.g_idx[8 * p + j] * w;
                zg[j] = z_tab.data() + a.g_idx[8 * p + j] * w;
            }
            for (std::int64_t c = 0; c < full; c += 8) {
                const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + c));
                __m256 t[M], u[M];
                for (int r = 0; r < M; ++r)
                    t[r] = u[r] = _mm256_setzero_ps();
                for (int j = 0; j < 8; j += 2) {
                    const __m256 q0 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(wv, 4 * j), nib));
                    const __m256 q1 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(wv, 4 * j + 4), nib));
                    const __m256 w0 = _mm256_mul_ps(_mm256_sub_ps(q0, _mm256_loadu_ps(zg[j] + c)), _mm256_loadu_ps(sg[j] + c));
                    const __m256 w1 = _mm256_mul_ps(_mm256_sub_ps(q1, _mm256_loadu_ps(zg[j + 1] + c)), _mm256_loadu_ps(sg[j + 1] + c));
                    for (int r = 0; r < M; ++r) {
                        t[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(a.x + r * a.in + 8 * p + j), w0, t[r]);
                        u[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(a.x + r * a.in + 8 * p + j + 1), w1, u[r]);
                    }
                }
                for (int r = 0; r < M; ++r) {
                    float* ar = acc + r * width + c;
                    _mm256_storeu_ps(ar, _mm256_add_ps(_mm256_loadu_ps(ar), _mm256_add_ps(t[r], u[r])));
                }
            }
            for (std::int64_t c = full; c < w; ++c)
                for (int j = 0; j < 8; ++j) {
                    const float q = static_cast<float>((static_cast<std::uint32_t>(row[c]) >> (4 * j)) & 0xF);
                    const float wf = (q - zg[j][c]) * sg[j][c];
                    for (int r = 0; r < M; ++r)
                        acc[r * width + c] += a.x[r * a.in + 8 * p + j] * wf;
                }
        }
        for (int r = 0; r < M; ++r)
            std::copy(acc + r * width, acc + r * width + w, a.y + r * a.out + t0);
    }
}

// ---- AVX-512 ----------------------------------------------------------------------------

template <int M>
LAYERWISE_AVX512 void gptq_uniform_avx512(const GptqGemvArgs& a, std::int64_t o_begin, std::int64_t o_end, const float* xs,
                                          const float* xsum, std::int64_t xs_stride)
{
    const std::int64_t words = a.in / 8;
    const std::int64_t width = std::min<std::int64_t>(o_end - o_begin, tile_width(a, false));
    std::vector<float> acc_buf(static_cast<std::size_t>(M * width + 16));
    std::vector<float> s_tab(static_cast<std::size_t>(width)), z_tab(static_cast<std::size_t>(width));
    float* acc = acc_buf.data();
    for (std::int64_t t0 = o_begin; t0 < o_end; t0 += width) {
        const std::int64_t w = std::min(width, o_end - t0);
        std::fill(acc_buf.begin(), acc_buf.end(), 0.0f);
        std::int64_t current = -1;
        for (std::int64_t p = 0; p < words; ++p) {
            const std::int64_t g = a.g_idx[8 * p];
            if (g != current) {
                fill_tables_avx2(a, t0, w, g, g + 1, s_tab.data(), z_tab.data());
                current = g;
            }
            const std::int32_t* row = a.qweight + p * a.out + t0;
            for (std::int64_t c = 0; c < w; c += 16) {
                const __mmask16 k = w - c >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (w - c)) - 1);
                const __m512i wv = _mm512_maskz_loadu_epi32(k, row + c);
                __m512 q[8];
                q[0] = _mm512_cvtepi32_ps(_mm512_and_si512(wv, _mm512_set1_epi32(0xF)));
                for (int j = 1; j < 7; ++j)
                    q[j] = _mm512_cvtepi32_ps(_mm512_and_si512(wv, _mm512_set1_epi32(0xF << (4 * j))));
                q[7] = _mm512_cvtepi32_ps(_mm512_srli_epi32(wv, 28));
                const __m512 s = _mm512_maskz_loadu_ps(k, s_tab.data() + c);
                const __m512 z = _mm512_maskz_loadu_ps(k, z_tab.data() + c);
                for (int r = 0; r < M; ++r) {
                    const float* xr = xs + r * xs_stride + 8 * p;
                    __m512 t = _mm512_mul_ps(_mm512_set1_ps(xr[0]), q[0]), u = _mm512_mul_ps(_mm512_set1_ps(xr[1]), q[1]);
                    for (int j = 2; j < 8; j += 2) {
                        t = _mm512_fmadd_ps(_mm512_set1_ps(xr[j]), q[j], t);
                        u = _mm512_fmadd_ps(_mm512_set1_ps(xr[j + 1]), q[j + 1], u);
                    }
                    t = _mm512_fnmadd_ps(z, _mm512_set1_ps(xsum[r * words + p]), _mm512_add_ps(t, u));
                    float* ar = acc + r * width + c;
                    _mm512_mask_storeu_ps(ar, k, _mm512_fmadd_ps(s, t, _mm512_maskz_loadu_ps(k, ar)));
                }
            }
        }
        for (int r = 0; r < M; ++r)
            std::copy(acc + r * width, acc + r * width + w, a.y + r * a.out + t0);
    }
}

template <int M>
LAYERWISE_AVX512 void gptq_grouped_avx512(const GptqGemvArgs& a, std::int64_t o_begin, std::int64_t o_end)
{
    const std::int64_t words = a.in / 8;
    const std::int64_t width = std::min<std::int64_t>(o_end - o_begin, tile_width(a, true));
    std::vector<float> acc_buf(static_cast<std::size_t>(M * width));
    std::vector<float> s_tab(static_cast<std::size_t>(a.groups * width)), z_tab(static_cast<std::size_t>(a.groups * width));
    float* acc = acc_buf.data();
    for (std::int64_t t0 = o_begin; t0 < o_end; t0 += width) {
        const std::int64_t w = std::min(width, o_end - t0);
        fill_tables_avx2(a, t0, w, 0, a.groups, s_tab.data(), z_tab.data());
        std::fill(acc_buf.begin(), acc_buf.end(), 0.0f);
        for (std::int64_t p = 0; p < words; ++p) {
            const std::int32_t* row = a.qweight + p * a.out + t0;
            for (int j = 0; j < 8; ++j) {
                const std::int64_t i = 8 * p + j;
                const float* sg = s_tab.data() + a.g_idx[i] * w;
                const float* zg = z_tab.data() + a.g_idx[i] * w;
                for (std::int64_t c = 0; c < w; c += 16) {
                    const __mmask16 k = w - c >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (w - c)) - 1);
                    const __m512i wv = _mm512_maskz_loadu_epi32(k, row + c);
                    const __m512 q = _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(wv, 4 * j), _mm512_set1_epi32(0xF)));
                    const __m512 wf = _mm512_mul_ps(_mm512_sub_ps(q, _mm512_maskz_loadu_ps(k, zg + c)), _mm512_maskz_loadu_ps(k, sg + c));
                    for (int r = 0; r < M; ++r) {
                        float* ar = acc + r * width + c;
                        _mm512_mask_storeu_ps(ar, k, _mm512_fmadd_ps(_mm512_set1_ps(a.x[r * a.in + i]), wf, _mm512_maskz_loadu_ps(k, ar)));
                    }
                }
            }
        }
        for (int r = 0; r < M; ++r)
            std::copy(acc + r * width, acc + r * width + w, a.y + r * a.out + t0);
    }
}

// x prepared for the uniform paths: scaled copies (see gptq_uniform_avx2) and word sums.
void prepare_uniform(const GptqGemvArgs& a, std::int64_t r0, int rows, std::vector<float>& xs, std::vector<float>& xsum)
{
    const std::int64_t words = a.in / 8;
    xs.resize(static_cast<std::size_t>(rows * a.in));
    xsum.resize(static_cast<std::size_t>(rows * words));
    static constexpr float kScale[8] = {1.0f, 1.0f / 16, 1.0f / 256, 1.0f / 4096, 1.0f / 65536, 1.0f / 1048576, 1.0f / 16777216, 1.0f};
    for (int r = 0; r < rows; ++r)
        for (std::int64_t p = 0; p < words; ++p) {
            float s = 0;
            for (int j = 0; j < 8; ++j) {
                const float v = a.x[(r0 + r) * a.in + 8 * p + j];
                xs[r * a.in + 8 * p + j] = v * kScale[j];
                s += v;
            }
            xsum[r * words + p] = s;
        }
}

template <template <int> class Kernel, typename... Args>
void by_rows(int rows, Args&&... args)
{
    switch (rows) {
    case 1: Kernel<1>::run(args...); break;
    case 2: Kernel<2>::run(args...); break;
    case 3: Kernel<3>::run(args...); break;
    case 4: Kernel<4>::run(args...); break;
    }
}

template <int M> struct UniformAvx2 { static void run(const GptqGemvArgs& a, std::int64_t b, std::int64_t e, const float* xs, const float* xsum, std::int64_t st) { gptq_uniform_avx2<M>(a, b, e, xs, xsum, st); } };
template <int M> struct UniformAvx512 { static void run(const GptqGemvArgs& a, std::int64_t b, std::int64_t e, const float* xs, const float* xsum, std::int64_t st) { gptq_uniform_avx512<M>(a, b, e, xs, xsum, st); } };
template <int M> struct GroupedAvx2 { static void run(const GptqGemvArgs& a, std::int64_t b, std::int64_t e) { gptq_grouped_avx2<M>(a, b, e); } };
template <int M> struct GroupedAvx512 { static void run(const GptqGemvArgs& a, std::int64_t b, std::int64_t e) { gptq_grouped_avx512<M>(a, b, e); } };

#endif // LAYERWISE_SIMD_X86

} // namespace

void gptq_gemv(const GptqGemvArgs& a, CpuLevel level, std::int64_t o_begin, std::int64_t o_end)
{
    level = resolve_cpu_level(level);
#ifdef LAYERWISE_SIMD_X86
    if (level == CpuLevel::avx2 || level == CpuLevel::avx512) {
        const bool wide = level == CpuLevel::avx512;
        // Rows in register blocks of up to 4 (more would spill the accumulators).
        std::vector<float> xs, xsum;
        for (std::int64_t r0 = 0; r0 < a.m; r0 += 4) {
            const int rows = static_cast<int>(std::min<std::int64_t>(4, a.m - r0));
            GptqGemvArgs part = a;
            part.x = a.x + r0 * a.in;
            part.y = a.y + r0 * a.out;
            part.m = rows;
            if (a.uniform_words) {
                prepare_uniform(a, r0, rows, xs, xsum);
                if (wide)
                    by_rows<UniformAvx512>(rows, part, o_begin, o_end, xs.data(), xsum.data(), a.in);
                else
                    by_rows<UniformAvx2>(rows, part, o_begin, o_end, xs.data(), xsum.data(), a.in);
            } else if (wide) {
                by_rows<GroupedAvx512>(rows, part, o_begin, o_end);
            } else {
                by_rows<GroupedAvx2>(rows, part, o_begin, o_end);
            }
        }
        return;
    }
#endif
    gptq_scalar(a, o_begin, o_end);
}

} // namespace layerwise::kernels::cpu
