// The CUDA kernels' block decoders and the per-lane work of their GEMV
// (kernels/cuda/gguf_decode.cuh), compiled as host code and run on the CPU: every chunk of random
// blocks of every format decodes to the same bits as the CPU decoder (itself checked against
// gguf-py by tst_gguf_kernels), and the 32 lanes' partial sums of each pair of weight rows add up
// to the float64 product of the decoded weights within the float32 summation bound. This checks
// the device code's bit layouts, operation order and indexing on any machine with the toolkit;
// on the GPU, tst_gguf_cuda checks the compiled kernels themselves. Random bytes are valid blocks of every format; only
// the scales are drawn as finite halves (a NaN's payload is not a decoding question), and MXFP4's
// E8M0 bytes below 160 (subnormal scales included; 12 * 2^127 would overflow the sums).
#include "cpu/gguf_blocks.h"
#include "cuda/gguf_decode.cuh"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <random>
#include <vector>

using namespace layerwise::kernels;
using cpu::GgmlType;

namespace {

std::mt19937 rng(2207);

std::uint16_t finite_half()
{
    const auto r = static_cast<std::uint32_t>(rng());
    return static_cast<std::uint16_t>(((r & 1) << 15) | (((r >> 1) % 31) << 10) | ((r >> 8) & 0x3ff));
}

void put16(std::uint8_t* p, std::uint16_t v) { std::memcpy(p, &v, 2); }

// Byte offsets of the half-precision scales in one block of each format.
std::vector<int> half_offsets(GgmlType t)
{
    switch (t) {
    case GgmlType::Q4_0:
    case GgmlType::Q5_0:
    case GgmlType::Q8_0: return {0};
    case GgmlType::Q4_1:
    case GgmlType::Q5_1:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K: return {0, 2};
    case GgmlType::Q2_K: return {80, 82};
    case GgmlType::Q3_K: return {108};
    case GgmlType::Q6_K: return {208};
    default: return {};
    }
}

template <GgmlType T>
int check(const char* name)
{
    int elements = 0, bytes = 0;
    cpu::block_geometry(T, elements, bytes);
    const std::int64_t in = elements == 256 ? 256 * 3 : 32 * 24, rows = 7;
    const std::int64_t row_bytes = in / elements * bytes;
    // 16-byte aligned rows, as on the GPU (the kernels' loads rely on it).
    std::vector<uint4> storage(static_cast<std::size_t>((rows * row_bytes + 15) / 16));
    auto* data = reinterpret_cast<std::uint8_t*>(storage.data());
    for (std::int64_t i = 0; i < rows * row_bytes; ++i)
        data[i] = static_cast<std::uint8_t>(rng());
    for (std::int64_t b = 0; b < rows * row_bytes / bytes; ++b) {
        std::uint8_t* block = data + b * bytes;
        if (T == GgmlType::F16)
            put16(block, finite_half());
        else if (T == GgmlType::BF16)
            block[1] &= 0xbf; // exponent below all ones: finite
        else if (T == GgmlType::F32)
            block[3] &= 0xbf;
        else if (T == GgmlType::MXFP4)
            block[0] = static_cast<std::uint8_t>(rng() % 160);
        for (int off : half_offsets(T))
            put16(block + off, finite_half());
    }
    std::vector<float> expected(static_cast<std::size_t>(in)), got(static_cast<std::size_t>(in));
    int wrong = 0;
    for (std::int64_t r = 0; r < rows; ++r) {
        const std::uint8_t* row = data + r * row_bytes;
        if (!cpu::dequantize_row(T, row, expected.data(), in)) {
            std::printf("FAIL %s: no CPU decoder\n", name);
            return 1;
        }
        for (std::int64_t ch = 0; ch < in / 32; ++ch)
            cuda::detail::decode_chunk<T>(row, ch, got.data() + ch * 32);
        for (std::int64_t i = 0; i < in; ++i)
            if (std::memcmp(&expected[static_cast<std::size_t>(i)], &got[static_cast<std::size_t>(i)], 4) != 0 && wrong++ < 5)
                std::printf("FAIL %s row %lld value %lld: CPU %.9g, CUDA decoder %.9g\n", name, static_cast<long long>(r),
                            static_cast<long long>(i), expected[static_cast<std::size_t>(i)], got[static_cast<std::size_t>(i)]);
    }
    std::printf("%s %s: %lld values decoded\n", wrong ? "FAIL" : "PASS", name, static_cast<long long>(rows * in));

    // The GEMV's lanes: weight rows in pairs (the last one alone), three activation rows.
    constexpr int m = 3;
    std::vector<float> decoded(static_cast<std::size_t>(rows * in));
    for (std::int64_t r = 0; r < rows; ++r)
        cpu::dequantize_row(T, data + r * row_bytes, decoded.data() + r * in, in);
    std::vector<uint4> xs(static_cast<std::size_t>(m * in / 4));
    auto* x = reinterpret_cast<float*>(xs.data());
    std::normal_distribution<float> normal;
    for (std::int64_t i = 0; i < m * in; ++i)
        x[i] = normal(rng);
    double worst = 0;
    for (std::int64_t o0 = 0; o0 < rows; o0 += 2) {
        const bool second = o0 + 1 < rows;
        const std::uint8_t* w0 = data + o0 * row_bytes;
        float y0[m] = {}, y1[m] = {};
        for (int lane = 0; lane < 32; ++lane) {
            float acc0[8] = {}, acc1[8] = {};
            cuda::detail::gemv_lane<T, 8>(w0, second ? w0 + row_bytes : w0, in, x, m, lane, 32, acc0, acc1);
            for (int r = 0; r < m; ++r)
                y0[r] += acc0[r], y1[r] += acc1[r];
        }
        for (int k = 0; k < (second ? 2 : 1); ++k)
            for (int r = 0; r < m; ++r) {
                double exact = 0, mag = 0;
                for (std::int64_t i = 0; i < in; ++i) {
                    const double p = static_cast<double>(decoded[static_cast<std::size_t>((o0 + k) * in + i)]) * x[r * in + i];
                    exact += p, mag += std::fabs(p);
                }
                const double err = std::fabs((k ? y1[r] : y0[r]) - exact) / (mag * in * std::ldexp(1.0, -24) + 1e-30);
                worst = std::max(worst, err);
            }
    }
    const bool gemv_ok = worst <= 1.0;
    std::printf("%s %s: GEMV lanes within %.3g of the float32 summation bound\n", gemv_ok ? "PASS" : "FAIL", name, worst);
    return wrong || !gemv_ok ? 1 : 0;
}

} // namespace

int main()
{
    int failures = 0;
    failures += check<GgmlType::Q4_0>("Q4_0");
    failures += check<GgmlType::Q4_1>("Q4_1");
    failures += check<GgmlType::Q5_0>("Q5_0");
    failures += check<GgmlType::Q5_1>("Q5_1");
    failures += check<GgmlType::Q8_0>("Q8_0");
    failures += check<GgmlType::MXFP4>("MXFP4");
    failures += check<GgmlType::Q2_K>("Q2_K");
    failures += check<GgmlType::Q3_K>("Q3_K");
    failures += check<GgmlType::Q4_K>("Q4_K");
    failures += check<GgmlType::Q5_K>("Q5_K");
    failures += check<GgmlType::Q6_K>("Q6_K");
    failures += check<GgmlType::F16>("F16");
    failures += check<GgmlType::BF16>("BF16");
    failures += check<GgmlType::F32>("F32");
    std::printf("%d of 14 formats differ\n", failures);
    return failures ? 1 : 0;
}
