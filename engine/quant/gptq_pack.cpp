#include "quant/gptq_pack.h"

#include <ATen/ATen.h>
#include <cstdint>

namespace layerwise {

namespace {

void check_bits(int bits)
{
    TORCH_CHECK(bits == 2 || bits == 3 || bits == 4 || bits == 8, "GPTQ packs 2, 3, 4 or 8 bits, not ", bits);
}

// values int32 [count, n] (each in 0..2^bits-1) -> words int32 [count*bits/32, n]: the values of
// each column as one bit stream (value k at bits k*bits .. k*bits+bits-1 of the column's words).
at::Tensor pack_rows(const at::Tensor& values, int bits)
{
    const at::Tensor v = values.to(at::kCPU, at::kInt).contiguous();
    const std::int64_t count = v.size(0), n = v.size(1);
    TORCH_CHECK(count * bits % 32 == 0, "GPTQ packing: ", count, " values of ", bits, " bits do not fill whole words");
    at::Tensor words = at::zeros({count * bits / 32, n}, at::kInt);
    const auto* in = reinterpret_cast<const std::uint32_t*>(v.data_ptr<std::int32_t>());
    auto* out = reinterpret_cast<std::uint32_t*>(words.data_ptr<std::int32_t>());
    for (std::int64_t k = 0; k < count; ++k) {
        const std::int64_t pos = k * bits;
        const std::int64_t word = pos / 32;
        const int shift = static_cast<int>(pos % 32);
        const std::uint32_t* src = in + k * n;
        std::uint32_t* lo = out + word * n;
        for (std::int64_t j = 0; j < n; ++j)
            lo[j] |= src[j] << shift;
        if (shift + bits > 32) { // a 3-bit value straddling two words
            std::uint32_t* hi = lo + n;
            for (std::int64_t j = 0; j < n; ++j)
                hi[j] |= src[j] >> (32 - shift);
        }
    }
    return words;
}

// The inverse of pack_rows for `count` values per column: int32 [count, n], on the words' device.
at::Tensor unpack_rows(const at::Tensor& words, int bits, std::int64_t count)
{
    const auto device = words.device();
    const std::int64_t mask = (std::int64_t{1} << bits) - 1;
    if (32 % bits == 0) {
        // Whole values per word: shift every word by each value's offset.
        const std::int64_t per = 32 / bits;
        const at::Tensor shifts = at::arange(0, 32, bits, at::TensorOptions().dtype(at::kInt).device(device)).view({1, per, 1});
        const at::Tensor v = at::bitwise_and(at::bitwise_right_shift(words.unsqueeze(1), shifts), static_cast<std::int32_t>(mask));
        return v.reshape({words.size(0) * per, words.size(1)}).narrow(0, 0, count);
    }
    // 3 bits: a value may continue in the next word; read each value from a 64-bit pair of words.
    const auto lopts = at::TensorOptions().dtype(at::kLong).device(device);
    const at::Tensor pos = at::arange(count, lopts) * bits;
    const at::Tensor word = at::floor_divide(pos, 32);
    const at::Tensor shift = at::remainder(pos, 32).view({-1, 1});
    const at::Tensor w64 = at::bitwise_and(words.to(at::kLong), std::int64_t{0xFFFFFFFF});
    const at::Tensor padded = at::cat({w64, at::zeros({1, words.size(1)}, lopts)});
    const at::Tensor lo = padded.index_select(0, word);
    const at::Tensor hi = padded.index_select(0, word + 1);
    const at::Tensor pair = at::bitwise_or(lo, at::bitwise_left_shift(hi, 32));
    return at::bitwise_and(at::bitwise_right_shift(pair, shift), mask).to(at::kInt);
}

} // namespace

GptqPacked gptq_pack(const at::Tensor& codes, const at::Tensor& scales, const at::Tensor& zeros, const at::Tensor& g_idx,
                     int bits)
{
    check_bits(bits);
    TORCH_CHECK(codes.dim() == 2, "gptq_pack: codes [out, in]");
    const std::int64_t out = codes.size(0), in = codes.size(1);
    TORCH_CHECK(in % 32 == 0 && out % 32 == 0, "gptq_pack: in (", in, ") and out (", out, ") must be multiples of 32");
    TORCH_CHECK(scales.dim() == 2 && scales.size(1) == out, "gptq_pack: scales [groups, out]");
    const std::int64_t groups = scales.size(0);
    TORCH_CHECK(zeros.dim() == 2 && zeros.size(0) == groups && zeros.size(1) == out, "gptq_pack: zeros [groups, out]");
    TORCH_CHECK(g_idx.dim() == 1 && g_idx.size(0) == in, "gptq_pack: g_idx [in]");
    const std::int32_t maxq = (1 << bits) - 1;
    const at::Tensor q = codes.to(at::kCPU, at::kInt);
    const at::Tensor z = zeros.to(at::kCPU, at::kInt);
    const at::Tensor g = g_idx.to(at::kCPU, at::kInt);
    TORCH_CHECK(q.min().item<std::int32_t>() >= 0 && q.max().item<std::int32_t>() <= maxq, "gptq_pack: codes outside 0..", maxq);
    TORCH_CHECK(z.min().item<std::int32_t>() >= 0 && z.max().item<std::int32_t>() <= maxq, "gptq_pack: zeros outside 0..", maxq);
    TORCH_CHECK(g.min().item<std::int32_t>() >= 0 && g.max().item<std::int32_t>() < groups, "gptq_pack: g_idx outside 0..",
                groups - 1);
    GptqPacked p;
    p.qweight = pack_rows(q.t(), bits);                                        // along the input dim
    p.qzeros = pack_rows(at::bitwise_and(z - 1, maxq).t(), bits).t().contiguous(); // along the output dim
    p.scales = scales.to(at::kCPU, at::kHalf).contiguous();
    p.g_idx = g.contiguous();
    return p;
}

at::Tensor gptq_unpack_codes(const at::Tensor& qweight, int bits)
{
    check_bits(bits);
    TORCH_CHECK(qweight.dim() == 2 && qweight.scalar_type() == at::kInt, "gptq_unpack_codes: int32 qweight [in*bits/32, out]");
    return unpack_rows(qweight, bits, qweight.size(0) * 32 / bits).t().contiguous();
}

at::Tensor gptq_unpack_zeros(const at::Tensor& qzeros, int bits)
{
    check_bits(bits);
    TORCH_CHECK(qzeros.dim() == 2 && qzeros.scalar_type() == at::kInt, "gptq_unpack_zeros: int32 qzeros [groups, out*bits/32]");
    const at::Tensor fields = unpack_rows(qzeros.t(), bits, qzeros.size(1) * 32 / bits).t();
    return at::bitwise_and(fields + 1, (1 << bits) - 1).contiguous();
}

at::Tensor gptq_default_g_idx(std::int64_t in, int group_size)
{
    if (group_size <= 0)
        return at::zeros({in}, at::kInt);
    return at::floor_divide(at::arange(in, at::kInt), group_size);
}

at::Tensor gptq_dequantize(const GptqPacked& p, int bits, c10::ScalarType dtype)
{
    check_bits(bits);
    const std::int64_t in = p.qweight.size(0) * 32 / bits;
    const at::Tensor codes = unpack_rows(p.qweight, bits, in);                 // [in, out]
    const at::Tensor zeros = gptq_unpack_zeros(p.qzeros, bits);               // [groups, out]
    const std::int64_t groups = p.scales.size(0);
    at::Tensor g = p.g_idx.defined() ? p.g_idx : gptq_default_g_idx(in, static_cast<int>((in + groups - 1) / groups));
    g = g.to(p.qweight.device(), at::kLong);
    const at::Tensor s = p.scales.to(at::kFloat).index_select(0, g);          // [in, out]
    const at::Tensor z = zeros.index_select(0, g);
    return (s * (codes - z).to(at::kFloat)).to(dtype).t();
}

at::Tensor gptq_rtn_codes(const at::Tensor& w, const at::Tensor& scales, const at::Tensor& zeros, const at::Tensor& g_idx,
                          int bits)
{
    check_bits(bits);
    TORCH_CHECK(w.dim() == 2 && g_idx.dim() == 1 && g_idx.size(0) == w.size(1), "gptq_rtn_codes: w [out, in], g_idx [in]");
    TORCH_CHECK(scales.dim() == 2 && scales.size(1) == w.size(0) && zeros.sizes() == scales.sizes(),
                "gptq_rtn_codes: scales and zeros [groups, out]");
    const at::Tensor g = g_idx.to(w.device(), at::kLong);
    // AutoGPTQ: scale_zeros = zeros * scales in the quantizer's dtype; stored scales in float16;
    // (W[:, i] + scale_zeros[g]) / stored[g] with torch's type promotion.
    const at::Tensor scale_zeros = zeros.to(w.device(), scales.scalar_type()) * scales.to(w.device());
    const at::Tensor stored = scales.to(w.device(), at::kHalf);
    const at::Tensor num = w + scale_zeros.index_select(0, g).t();
    const at::Tensor q = at::round(num / stored.index_select(0, g).t());
    return at::clamp(q, 0, (1 << bits) - 1).to(at::kInt).contiguous();
}

} // namespace layerwise
