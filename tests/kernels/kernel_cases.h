#pragma once
// Test inputs for the GEMV kernels, shared by the CPU and CUDA suites: GPTQ weights packed
// from random codes by a packer written here from the AutoGPTQ layout (independent of the
// kernels' unpacking), bitsandbytes NF4/FP4 weights from the engine's quantizer (itself
// checked byte for byte against bitsandbytes in tst_quant), LLM.int8 codes, and the
// normalised error llama.cpp's test-backend-ops bounds: sum((a - b)^2) / sum(b^2).
#include "quant/blockwise4.h"
#include "quant_gemv.h"

#include <ATen/ATen.h>
#include <string>

namespace layerwise::test {

inline double nmse(const at::Tensor& out, const at::Tensor& oracle)
{
    const at::Tensor a = out.to(at::kDouble).cpu(), b = oracle.to(at::kDouble).cpu();
    const double den = b.square().sum().item<double>();
    return (a - b).square().sum().item<double>() / (den > 0 ? den : 1.0);
}

// int64 values in [0, 2^32) -> the int32 with those bits.
inline at::Tensor to_int32_bits(const at::Tensor& v)
{
    return at::where(v >= (std::int64_t(1) << 31), v - (std::int64_t(1) << 32), v).to(at::kInt);
}

struct GptqCase {
    at::Tensor q;        // int64 [in, out], codes 0..15
    at::Tensor zstored;  // int64 [groups, out], 0..15 (the real zero is one more, mod 16)
    at::Tensor scales;   // float16 [groups, out]
    at::Tensor g_idx;    // int32 [in]
    at::Tensor qweight, qzeros;
    std::int64_t in = 0, out = 0, groups = 0;
};

// group_size -1: one group. act_order: rows assigned to groups through a random permutation
// (as desc_act leaves them). symmetric: every zero is 8 (stored 7).
inline GptqCase make_gptq_case(std::int64_t in, std::int64_t out, std::int64_t group_size, bool act_order, bool symmetric)
{
    GptqCase c;
    c.in = in;
    c.out = out;
    const std::int64_t gs = group_size < 0 ? in : group_size;
    c.groups = (in + gs - 1) / gs;
    c.q = at::randint(0, 16, {in, out}, at::kLong);
    c.zstored = symmetric ? at::full({c.groups, out}, 7, at::kLong) : at::randint(0, 16, {c.groups, out}, at::kLong);
    c.scales = (at::rand({c.groups, out}) * 0.02 + 0.001).to(at::kHalf);
    at::Tensor g = at::arange(in, at::kLong).div(gs, "floor");
    if (act_order) {
        const at::Tensor perm = at::randperm(in, at::kLong);
        g = at::empty({in}, at::kLong).index_put_({perm}, g);
    }
    c.g_idx = g.to(at::kInt);
    at::Tensor qw = at::zeros({in / 8, out}, at::kLong);
    for (int j = 0; j < 8; ++j)
        qw += c.q.slice(0, j, in, 8) * (std::int64_t(1) << (4 * j));
    c.qweight = to_int32_bits(qw);
    at::Tensor qz = at::zeros({c.groups, out / 8}, at::kLong);
    for (int k = 0; k < 8; ++k)
        qz += c.zstored.slice(1, k, out, 8) * (std::int64_t(1) << (4 * k));
    c.qzeros = to_int32_bits(qz);
    return c;
}

// W[o, i] from the codes themselves, float32 [out, in].
inline at::Tensor gptq_weight_of(const GptqCase& c)
{
    const at::Tensor g = c.g_idx.to(at::kLong);
    const at::Tensor zero = (c.zstored + 1).remainder(16);
    const at::Tensor w_t = (c.q - zero.index_select(0, g)).to(at::kFloat) * c.scales.to(at::kFloat).index_select(0, g);
    return w_t.t().contiguous();
}

inline kernels::Blockwise4Weight make_blockwise4(const at::Tensor& w, QuantMethod method, std::int64_t blocksize, bool nested)
{
    auto [packed, absmax] = quantize_4bit_blocks(w, method, blocksize);
    kernels::Blockwise4Weight b;
    b.packed = packed;
    b.code = code_4bit(method);
    b.out = w.size(0);
    b.in = w.size(1);
    b.blocksize = blocksize;
    if (!nested) {
        b.absmax = absmax;
        return b;
    }
    NestedAbsmax n = nest_absmax(absmax, 256);
    b.absmax = n.absmax_u8;
    b.nested_absmax = n.nested_absmax;
    b.nested_code = n.nested_code;
    b.nested_offset = n.offset;
    b.nested_blocksize = 256;
    return b;
}

inline kernels::Blockwise4Weight to_device(kernels::Blockwise4Weight b, const at::Device& d)
{
    b.packed = b.packed.to(d);
    b.absmax = b.absmax.to(d);
    b.code = b.code.to(d);
    if (b.nested_absmax.defined()) {
        b.nested_absmax = b.nested_absmax.to(d);
        b.nested_code = b.nested_code.to(d);
    }
    return b;
}

// Row-absmax int8 codes of x (as LLM.int8 makes them) and their scales.
inline std::pair<at::Tensor, at::Tensor> int8_rows(const at::Tensor& x)
{
    const at::Tensor absmax = std::get<0>(x.abs().max(1)).clamp_min(1e-8);
    return {at::round(x * (127.0 / absmax).unsqueeze(1)).to(at::kChar), absmax.to(at::kFloat)};
}

} // namespace layerwise::test
