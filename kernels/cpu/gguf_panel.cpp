// The panel GEMM of gguf_panel.h: per format, a decoder of one weight block into codes, scales
// and offsets; a packer that interleaves sixteen rows' codes four bytes at a time; and the
// AVX-512 VNNI kernel over the packed panel.
#include "cpu/gguf_panel.h"

#include "cpu/simd.h"

#include <cstring>
#include <vector>

namespace layerwise::kernels::cpu {

namespace {

constexpr int kPanelRows = 16;

float half_at(const std::uint8_t* p)
{
    std::uint16_t v;
    std::memcpy(&v, p, 2);
    return half_to_float(v);
}

// One weight block of one row, decoded: codes[elements] and, per group, scale and offset.
struct Decoded {
    std::uint8_t codes[kQKK];
    float scale[16], offset[16];
};

using DecodeBlock = void (*)(const std::uint8_t* block, Decoded& out);

void nibbles(const std::uint8_t* qs, std::uint8_t* codes)
{
    for (int j = 0; j < 16; ++j) {
        codes[j] = qs[j] & 0x0f;
        codes[j + 16] = qs[j] >> 4;
    }
}

void fifth_bits(const std::uint8_t* qh_at, std::uint8_t* codes)
{
    std::uint32_t qh;
    std::memcpy(&qh, qh_at, 4);
    for (int j = 0; j < 32; ++j)
        codes[j] |= static_cast<std::uint8_t>(((qh >> j) & 1) << 4);
}

void decode_q4_0(const std::uint8_t* b, Decoded& out)
{
    const float d = half_at(b);
    nibbles(b + 2, out.codes);
    out.scale[0] = d;
    out.offset[0] = -8.0f * d;
}

void decode_q4_1(const std::uint8_t* b, Decoded& out)
{
    nibbles(b + 4, out.codes);
    out.scale[0] = half_at(b);
    out.offset[0] = half_at(b + 2);
}

void decode_q5_0(const std::uint8_t* b, Decoded& out)
{
    const float d = half_at(b);
    nibbles(b + 6, out.codes);
    fifth_bits(b + 2, out.codes);
    out.scale[0] = d;
    out.offset[0] = -16.0f * d;
}

void decode_q5_1(const std::uint8_t* b, Decoded& out)
{
    nibbles(b + 8, out.codes);
    fifth_bits(b + 4, out.codes);
    out.scale[0] = half_at(b);
    out.offset[0] = half_at(b + 2);
}

void decode_q8_0(const std::uint8_t* b, Decoded& out)
{
    const float d = half_at(b);
    for (int j = 0; j < 32; ++j)
        out.codes[j] = static_cast<std::uint8_t>(b[2 + j] ^ 0x80); // two's complement + 128
    out.scale[0] = d;
    out.offset[0] = -128.0f * d;
}

// MXFP4 {u8 e; u8 qs[16]}: c = kvalues[q] + 12 (0..24), s = e8m0_half(e), o = -12 s.
void decode_mxfp4(const std::uint8_t* b, Decoded& out)
{
    const float d = e8m0_half(b[0]);
    for (int j = 0; j < 16; ++j) {
        out.codes[j] = static_cast<std::uint8_t>(kMxfp4Values[b[1 + j] & 0x0f] + 12);
        out.codes[j + 16] = static_cast<std::uint8_t>(kMxfp4Values[b[1 + j] >> 4] + 12);
    }
    out.scale[0] = d;
    out.offset[0] = -12.0f * d;
}

// Q4_K / Q5_K scales and mins (6 bits each, eight of them in 12 bytes; see gguf_kquants.cpp).
void scales_mins(const std::uint8_t* q, int j, int& scale, int& min)
{
    if (j < 4) {
        scale = q[j] & 63;
        min = q[j + 4] & 63;
    } else {
        scale = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Q4_K {half d, dmin; u8 scales[12]; u8 qs[128]}: chunk c (64 elements) is the low nibbles of
// qs[32 c ..] then their high nibbles; group j (32 elements) has scale j and min j.
void decode_q4_k(const std::uint8_t* b, Decoded& out)
{
    const float d = half_at(b), dmin = half_at(b + 2);
    const std::uint8_t* qs = b + 16;
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
            out.codes[64 * c + l] = qs[32 * c + l] & 0x0f;
            out.codes[64 * c + 32 + l] = qs[32 * c + l] >> 4;
        }
    for (int j = 0; j < 8; ++j) {
        int sc, mn;
        scales_mins(b + 4, j, sc, mn);
        out.scale[j] = d * static_cast<float>(sc);
        out.offset[j] = -(dmin * static_cast<float>(mn));
    }
}

// Q5_K {half d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: Q4_K plus 16 where bit 2 c (low
// nibbles) or 2 c + 1 (high nibbles) of qh[l] is set.
void decode_q5_k(const std::uint8_t* b, Decoded& out)
{
    const float d = half_at(b), dmin = half_at(b + 2);
    const std::uint8_t* qh = b + 16;
    const std::uint8_t* qs = b + 48;
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
            out.codes[64 * c + l] = static_cast<std::uint8_t>((qs[32 * c + l] & 0x0f) | (((qh[l] >> (2 * c)) & 1) << 4));
            out.codes[64 * c + 32 + l] = static_cast<std::uint8_t>((qs[32 * c + l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4));
        }
    for (int j = 0; j < 8; ++j) {
        int sc, mn;
        scales_mins(b + 4, j, sc, mn);
        out.scale[j] = d * static_cast<float>(sc);
        out.offset[j] = -(dmin * static_cast<float>(mn));
    }
}

// Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; half d}: in half h, 32-element part k takes the
// low (k < 2) or high nibble of ql[64 h + 32 (k % 2) + l] and bits 2 k, 2 k + 1 of qh[32 h + l].
void decode_q6_k(const std::uint8_t* b, Decoded& out)
{
    const std::uint8_t* ql = b;
    const std::uint8_t* qh = b + 128;
    const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);
    const float d = half_at(b + 208);
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 32; ++l) {
                const int low = (ql[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0f;
                const int high = (qh[32 * h + l] >> (2 * k)) & 3;
                out.codes[128 * h + 32 * k + l] = static_cast<std::uint8_t>(low | (high << 4));
            }
    for (int j = 0; j < 16; ++j) {
        out.scale[j] = d * static_cast<float>(sc[j]);
        out.offset[j] = -32.0f * out.scale[j];
    }
}

// Q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d}: low two bits as Q2_K's, the quant 4
// lower unless bit 4 h + j of hmask[l] is set; code = that + 4. Scales 6 bits, stored + 32.
void decode_q3_k(const std::uint8_t* b, Decoded& out)
{
    const std::uint8_t* hmask = b;
    const std::uint8_t* qs = b + 32;
    const std::uint8_t* packed = b + 96;
    const float d = half_at(b + 108);
    for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 32; ++l) {
                const int low = (qs[32 * h + l] >> (2 * j)) & 3;
                const int high = (hmask[l] >> (4 * h + j)) & 1;
                out.codes[128 * h + 32 * j + l] = static_cast<std::uint8_t>(low | (high << 2));
            }
    for (int i = 0; i < 16; ++i) {
        const int low = i < 8 ? (packed[i] & 0x0f) : (packed[i - 8] >> 4);
        const int high = (packed[8 + i % 4] >> (2 * (i / 4))) & 3;
        out.scale[i] = d * static_cast<float>((low | (high << 4)) - 32);
        out.offset[i] = -4.0f * out.scale[i];
    }
}

// Q2_K {u8 scales[16]; u8 qs[64]; half d, dmin}: element 128 h + 32 j + l is bits 2 j of
// qs[32 h + l]; group i: scale d * (sc & 15), min dmin * (sc >> 4).
void decode_q2_k(const std::uint8_t* b, Decoded& out)
{
    const std::uint8_t* sc = b;
    const std::uint8_t* qs = b + 16;
    const float d = half_at(b + 80), dmin = half_at(b + 82);
    for (int h = 0; h < 2; ++h)
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 32; ++l)
                out.codes[128 * h + 32 * j + l] = (qs[32 * h + l] >> (2 * j)) & 3;
    for (int i = 0; i < 16; ++i) {
        out.scale[i] = d * static_cast<float>(sc[i] & 0x0f);
        out.offset[i] = -(dmin * static_cast<float>(sc[i] >> 4));
    }
}

struct Format {
    GgmlType type;
    DecodeBlock decode;
    int block_elements, block_bytes, group;
};

const Format kFormats[] = {
    {GgmlType::Q4_0, decode_q4_0, 32, 18, 32},   {GgmlType::Q4_1, decode_q4_1, 32, 20, 32},
    {GgmlType::Q5_0, decode_q5_0, 32, 22, 32},   {GgmlType::Q5_1, decode_q5_1, 32, 24, 32},
    {GgmlType::Q8_0, decode_q8_0, 32, 34, 32},   {GgmlType::MXFP4, decode_mxfp4, 32, 17, 32},
    {GgmlType::Q2_K, decode_q2_k, 256, 84, 16},
    {GgmlType::Q3_K, decode_q3_k, 256, 110, 16}, {GgmlType::Q4_K, decode_q4_k, 256, 144, 32},
    {GgmlType::Q5_K, decode_q5_k, 256, 176, 32}, {GgmlType::Q6_K, decode_q6_k, 256, 210, 16},
};

const Format* format_of(GgmlType t)
{
    for (const Format& f : kFormats)
        if (f.type == t)
            return &f;
    return nullptr;
}

// Where an activation row's codes and block scales sit.
struct ActLayout {
    int block_elements, block_bytes, code_offset;
};

ActLayout act_layout(GgmlType t)
{
    switch (t) {
    case GgmlType::Q8_0: return {32, 34, 2};
    case GgmlType::Q8_1: return {32, 36, 4};
    default: return {256, 292, 4}; // Q8_K {float d; i8 qs[256]; i16 bsums[16]}
    }
}

#ifdef LAYERWISE_SIMD_X86

// A packed group: G / 4 vectors of 64 bytes (lane r = four codes of row r), then sixteen scales
// and sixteen offsets.
constexpr std::int64_t group_bytes(int g) { return static_cast<std::int64_t>(g) * kPanelRows + 128; }

// Sixteen rows' blocks of one format -> the panel's groups of those blocks.
LAYERWISE_AVX512_VNNI void pack_panel(const Format& f, std::int64_t n, const std::uint8_t* w, std::int64_t w_stride,
                                      int rows, std::uint8_t* panel)
{
    alignas(64) static thread_local Decoded decoded[kPanelRows];
    const int groups_per_block = f.block_elements / f.group;
    // Lane r reads row r's codes: rows are sizeof(Decoded) bytes apart, in 4-byte units.
    static_assert(sizeof(Decoded) % 4 == 0);
    const __m512i rows_index = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                  _mm512_set1_epi32(static_cast<int>(sizeof(Decoded) / 4)));
    for (int r = rows; r < kPanelRows; ++r)
        std::memset(&decoded[r], 0, sizeof(Decoded)); // padding rows: zero codes, scales and offsets
    std::uint8_t* out = panel;
    for (std::int64_t b = 0; b < n / f.block_elements; ++b) {
        for (int r = 0; r < rows; ++r)
            f.decode(w + r * w_stride + b * f.block_bytes, decoded[r]);
        for (int g = 0; g < groups_per_block; ++g) {
            for (int k = 0; k < f.group / 4; ++k) {
                const __m512i index = _mm512_add_epi32(rows_index, _mm512_set1_epi32(g * f.group / 4 + k));
                const __m512i v = _mm512_i32gather_epi32(index, decoded[0].codes, 4);
                _mm512_storeu_si512(out + 64 * k, v);
            }
            auto* scale = reinterpret_cast<float*>(out + f.group * kPanelRows);
            for (int r = 0; r < kPanelRows; ++r) {
                scale[r] = decoded[r].scale[g];
                scale[kPanelRows + r] = decoded[r].offset[g];
            }
            out += group_bytes(f.group);
        }
    }
}

// Activation rows [row0, row0 + N) against a packed panel: sixteen outputs per row.
template <int G, int N>
LAYERWISE_AVX512_VNNI void panel_rows(const std::uint8_t* panel, std::int64_t n, const PanelActivations& a,
                                      const ActLayout& layout, std::int64_t row0, float* y, std::int64_t ldy,
                                      __mmask16 lanes)
{
    const std::uint8_t* codes[N];
    const float* meta[N];
    __m512 acc[N];
    for (int c = 0; c < N; ++c) {
        codes[c] = a.rows + (row0 + c) * a.row_bytes + layout.code_offset;
        meta[c] = a.meta + (row0 + c) * a.meta_stride;
        acc[c] = _mm512_setzero_ps();
    }
    const std::int64_t groups16 = n / 16;
    std::int64_t within = 0, at = 0; // element within the activation block; byte offset of the group's codes
    for (std::int64_t e = 0; e < n; e += G) {
        const std::uint8_t* p = panel + (e / G) * group_bytes(G);
        __m512i sum[N];
        for (int c = 0; c < N; ++c)
            sum[c] = _mm512_setzero_si512();
        for (int k = 0; k < G / 4; ++k) {
            const __m512i wk = _mm512_loadu_si512(p + 64 * k);
            for (int c = 0; c < N; ++c) {
                std::int32_t four;
                std::memcpy(&four, codes[c] + at + 4 * k, 4);
                sum[c] = _mm512_dpbusd_epi32(sum[c], wk, _mm512_set1_epi32(four));
            }
        }
        const __m512 scale = _mm512_loadu_ps(reinterpret_cast<const float*>(p + G * kPanelRows));
        const __m512 offset = _mm512_loadu_ps(reinterpret_cast<const float*>(p + G * kPanelRows + 64));
        const std::int64_t g16 = e / 16;
        for (int c = 0; c < N; ++c) {
            const float d = meta[c][g16];
            const float s = G == 32 ? meta[c][groups16 + g16] + meta[c][groups16 + g16 + 1] : meta[c][groups16 + g16];
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[c]), _mm512_mul_ps(scale, _mm512_set1_ps(d)), acc[c]);
            acc[c] = _mm512_fmadd_ps(offset, _mm512_set1_ps(s), acc[c]);
        }
        within += G;
        at += G;
        if (within == layout.block_elements) {
            within = 0;
            at += layout.block_bytes - layout.block_elements;
        }
    }
    for (int c = 0; c < N; ++c)
        _mm512_mask_storeu_ps(y + (row0 + c) * ldy, lanes, acc[c]);
}

template <int G>
LAYERWISE_AVX512_VNNI void run_panel(const std::uint8_t* panel, std::int64_t n, const PanelActivations& a, std::int64_t m,
                                     float* y, std::int64_t ldy, __mmask16 lanes)
{
    const ActLayout layout = act_layout(a.type);
    std::int64_t r = 0;
    for (; r + 8 <= m; r += 8)
        panel_rows<G, 8>(panel, n, a, layout, r, y, ldy, lanes);
    for (; r + 4 <= m; r += 4)
        panel_rows<G, 4>(panel, n, a, layout, r, y, ldy, lanes);
    for (; r < m; ++r)
        panel_rows<G, 1>(panel, n, a, layout, r, y, ldy, lanes);
}

#endif

} // namespace

bool panel_available(GgmlType weight, CpuLevel level)
{
#ifdef LAYERWISE_SIMD_X86
    return format_of(weight) != nullptr && resolve_cpu_level(level) == CpuLevel::avx512 &&
           cpu_level_available(CpuLevel::avx512) && cpu_features().avx512vnni;
#else
    (void)weight;
    (void)level;
    return false;
#endif
}

void panel_prepare_row(GgmlType activation, const std::uint8_t* row, std::int64_t n, float* meta)
{
    const ActLayout layout = act_layout(activation);
    const std::int64_t groups16 = n / 16;
    for (std::int64_t g = 0; g < groups16; ++g) {
        const std::int64_t e = g * 16;
        const std::uint8_t* block = row + (e / layout.block_elements) * layout.block_bytes;
        float d;
        if (activation == GgmlType::Q8_K)
            std::memcpy(&d, block, 4);
        else
            d = half_at(block);
        meta[g] = d;
        if (activation == GgmlType::Q8_1) {
            // The block's own s (d times the sum of its 32 codes, as the row kernels and llama.cpp
            // use it) on its first half; the 32-element formats that take Q8_1 add the two.
            meta[groups16 + g] = g % 2 == 0 ? half_at(block + 2) : 0.0f;
            continue;
        }
        const auto* q = reinterpret_cast<const std::int8_t*>(block + layout.code_offset + e % layout.block_elements);
        std::int32_t sum = 0;
        for (int j = 0; j < 16; ++j)
            sum += q[j];
        meta[groups16 + g] = d * static_cast<float>(sum);
    }
}

void panel_gemm(GgmlType weight, std::int64_t n, const std::uint8_t* w, std::int64_t w_stride, int rows,
                const PanelActivations& a, std::int64_t m, float* y, std::int64_t ldy)
{
#ifdef LAYERWISE_SIMD_X86
    const Format& f = *format_of(weight);
    thread_local std::vector<std::uint8_t> panel;
    const std::size_t bytes = static_cast<std::size_t>(n / f.group * group_bytes(f.group));
    if (panel.size() < bytes)
        panel.resize(bytes);
    pack_panel(f, n, w, w_stride, rows, panel.data());
    const auto lanes = static_cast<__mmask16>((1u << rows) - 1);
    if (f.group == 32)
        run_panel<32>(panel.data(), n, a, m, y, ldy, lanes);
    else
        run_panel<16>(panel.data(), n, a, m, y, ldy, lanes);
#else
    (void)weight, (void)n, (void)w, (void)w_stride, (void)rows, (void)a, (void)m, (void)y, (void)ldy;
#endif
}

} // namespace layerwise::kernels::cpu
