#pragma once
// Prefill GEMM for the GGUF block formats: weight rows packed sixteen at a time into an
// interleaved panel (one 32-bit lane per weight row), so one AVX-512 VNNI dpbusd multiplies four
// codes of sixteen rows by the same four activation codes, and a block's sixteen results come
// out as one vector to scale, instead of one horizontal sum per row and block as the row-by-row
// kernels need. The panel is built from the mapped blocks on the fly, per call and per thread,
// and used for every activation row of the prompt; nothing is stored beside the file's blocks.
//
// Every format is put in one shape for this: per group of G elements (32, or 16 for Q2_K, Q3_K
// and Q6_K, whose scales change every 16), unsigned 8-bit codes c, a float scale s and a float
// offset o, so that the weight is s * c + o:
//   Q4_0 (q - 8) d: c = q, s = d, o = -8 d       Q8_0 q d: c = q + 128, s = d, o = -128 d
//   Q4_1 / Q5_1: o = m                          Q5_0: o = -16 d
//   MXFP4 kvalues[q] e8m0_half(e): c = kvalues[q] + 12, s = e8m0_half(e), o = -12 s
//   Q4_K / Q5_K: s = d * scale_j, o = -dmin * min_j     Q6_K: s = d * scale_j, o = -32 s
//   Q3_K: s = d * scale_j, o = -4 s                      Q2_K: s = d * (sc & 15), o = -dmin * (sc >> 4)
// The activation rows are the same 8-bit blocks the row kernels take (Q8_0, Q8_1 or Q8_K), with
// a block scale a_d; then sum w x = sum over groups of s a_d (sum c q) + o a_d (sum q), the inner
// sums exact in int32 (at most 256 * 255 * 127 per group). No LibTorch here.
#include "cpu/gguf_blocks.h"

#include <cstdint>

namespace layerwise::kernels::cpu {

// Activation rows for the panel: `rows` points at m rows of `row_bytes` bytes of `type` blocks
// (Q8_0, Q8_1 or Q8_K); `meta` holds, per row, n / 16 block scales (each 16-element group's
// block's a_d) followed by n / 16 group sums (a_d times the sum of the group's codes); see
// panel_prepare_activations. `meta_stride` = n / 8 floats.
struct PanelActivations {
    GgmlType type = GgmlType::Q8_0;
    const std::uint8_t* rows = nullptr;
    std::int64_t row_bytes = 0;
    const float* meta = nullptr;
    std::int64_t meta_stride = 0;
};

// Whether `weight` has a panel kernel at `level` (AVX-512 with VNNI only; the row kernels serve
// every other case).
bool panel_available(GgmlType weight, CpuLevel level);

// Fills meta (n / 8 floats) for one quantized activation row of n elements.
void panel_prepare_row(GgmlType activation, const std::uint8_t* row, std::int64_t n, float* meta);

// Weight rows w, w + w_stride, ... (`rows` of them, 1..16) of n elements of `weight` against
// activation rows [0, m): y[r * ldy + i] = dot(weight row i, activation row r). Call only where
// panel_available said yes.
void panel_gemm(GgmlType weight, std::int64_t n, const std::uint8_t* w, std::int64_t w_stride, int rows,
                const PanelActivations& a, std::int64_t m, float* y, std::int64_t ldy);

} // namespace layerwise::kernels::cpu
