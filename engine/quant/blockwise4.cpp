#include "quant/blockwise4.h"

#include "parallel.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

namespace layerwise {

at::Tensor code_4bit(QuantMethod type)
{
    if (type == QuantMethod::nf4) {
        // The NF4 table of bitsandbytes (quantiles of N(0, 1), normalised; exact float32 values).
        return at::tensor({-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                           -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                           0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                           0.7229568362236023, 1.0},
                          at::kFloat);
    }
    TORCH_CHECK(type == QuantMethod::fp4, "code_4bit: nf4 or fp4");
    // FP4 (1 sign, 2 exponent, 1 mantissa bit, bias 2) in bit-pattern order, divided by its absmax.
    at::Tensor code = at::tensor({0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, -0.0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0},
                                 at::kFloat);
    return code.div_(code.abs().max());
}

at::Tensor dynamic_code_8bit()
{
    // create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for exponent i the
    // means of linspace(0.1, 1, 2^i + 1) scaled by 10^(i-6), both signs; then 0 and 1; sorted.
    std::vector<at::Tensor> parts;
    for (int i = 0; i < 7; ++i) {
        const at::Tensor bounds = at::linspace(0.1, 1.0, (1 << i) + 1, at::TensorOptions().dtype(at::kFloat));
        const at::Tensor means = (bounds.narrow(0, 0, bounds.size(0) - 1) + bounds.narrow(0, 1, bounds.size(0) - 1)) / 2.0;
        const double scale = std::pow(10.0, -6 + i);
        parts.push_back(means * scale);
        parts.push_back(means * -scale);
    }
    parts.push_back(at::tensor({0.0, 1.0}, at::kFloat));
    return std::get<0>(at::cat(parts).sort());
}

namespace {

// bitsandbytes scales a full block by the reciprocal of its absmax and the partial last block by
// a division; both clamp to [-1, 1] and guard a zero absmax with 1e-38.
std::pair<at::Tensor, at::Tensor> scale_blocks(const at::Tensor& w, std::int64_t blocksize)
{
    const at::Tensor flat = w.reshape(-1).to(at::kFloat);
    const std::int64_t n = flat.numel(), rem = n % blocksize, full = n - rem, blocks = full / blocksize;
    const at::Tensor com = flat.narrow(0, 0, full).reshape({blocks, blocksize});
    at::Tensor absmax = std::get<0>(com.abs().max(-1));
    at::Tensor scaled = at::clamp(com * absmax.clamp_min(1e-38).reciprocal().view({-1, 1}), -1, 1).reshape(-1);
    if (rem) {
        const at::Tensor tail = flat.narrow(0, full, rem);
        const at::Tensor am = tail.abs().max().clamp_min(1e-38);
        absmax = at::cat({absmax, am.unsqueeze(0)});
        scaled = at::cat({scaled, at::clamp(tail / am, -1, 1)});
    }
    return {scaled, absmax};
}

} // namespace

std::pair<at::Tensor, at::Tensor> quantize_4bit_blocks(const at::Tensor& w, QuantMethod type, std::int64_t blocksize)
{
    TORCH_CHECK(blocksize > 0, "blocksize must be positive");
    const at::Tensor code = code_4bit(type).to(w.device());
    const at::Tensor order = at::argsort(code);
    const at::Tensor sorted = code.index_select(0, order);
    const at::Tensor midpoints = (sorted.narrow(0, 0, 15) + sorted.narrow(0, 1, 15)) / 2;
    auto [scaled, absmax] = scale_blocks(w, blocksize);
    if (scaled.numel() % 2)
        scaled = at::constant_pad_nd(scaled, {0, 1});
    at::Tensor q = at::bucketize(scaled, midpoints, /*out_int32=*/true);
    if (type != QuantMethod::nf4)
        q = order.index_select(0, q.to(at::kLong).reshape(-1));
    const at::Tensor q8 = q.to(at::kByte);
    const at::Tensor high = q8.slice(0, 0, q8.numel(), 2), low = q8.slice(0, 1, q8.numel(), 2);
    return {at::bitwise_or(at::bitwise_left_shift(high, 4), low).unsqueeze(1).contiguous(), absmax};
}

at::Tensor dequantize_4bit_blocks(const at::Tensor& packed, const at::Tensor& absmax, const at::Tensor& code,
                                  std::int64_t blocksize, at::IntArrayRef shape, c10::ScalarType dtype)
{
    std::int64_t n = 1;
    for (auto s : shape)
        n *= s;
    const at::Tensor bytes = packed.reshape(-1);
    TORCH_CHECK(bytes.scalar_type() == at::kByte && bytes.numel() * 2 >= n, "dequantize_4bit: packed size");
    if (bytes.is_cpu()) {
        // The same float32 products (code * absmax) in one pass, without int64 index tensors
        // (which cost more than the weights themselves on every call).
        const at::Tensor b = bytes.contiguous(), c = code.to(at::kFloat).contiguous(), am = absmax.to(at::kFloat).contiguous();
        at::Tensor out = at::empty({n}, at::kFloat);
        const std::uint8_t* pb = b.data_ptr<std::uint8_t>();
        const float* pc = c.data_ptr<float>();
        const float* pa = am.data_ptr<float>();
        float* po = out.data_ptr<float>();
        const std::int64_t blocks = (n + blocksize - 1) / blocksize;
        kernels::parallel_for(0, blocks, 64, [&](std::int64_t b0, std::int64_t b1) {
            for (std::int64_t blk = b0; blk < b1; ++blk) {
                const float scale = pa[blk];
                const std::int64_t end = std::min(n, (blk + 1) * blocksize);
                for (std::int64_t i = blk * blocksize; i < end; ++i) {
                    const std::uint8_t byte = pb[i >> 1];
                    po[i] = pc[(i & 1) ? (byte & 15) : (byte >> 4)] * scale;
                }
            }
        });
        return out.view(shape).to(dtype);
    }
    const at::Tensor nibbles = at::stack({at::bitwise_right_shift(bytes, 4), at::bitwise_and(bytes, 15)}, 1).reshape(-1).narrow(0, 0, n);
    const at::Tensor values = code.to(bytes.device()).index_select(0, nibbles.to(at::kLong));
    const std::int64_t rem = n % blocksize, full = n - rem, blocks = full / blocksize;
    at::Tensor out = at::empty({n}, values.options());
    out.narrow(0, 0, full).copy_((values.narrow(0, 0, full).view({blocks, blocksize}) * absmax.narrow(0, 0, blocks).view({-1, 1})).reshape(-1));
    if (rem)
        out.narrow(0, full, rem).copy_(values.narrow(0, full, rem) * absmax[blocks]);
    return out.view(shape).to(dtype);
}

std::pair<at::Tensor, at::Tensor> quantize_blockwise_8bit(const at::Tensor& a, const at::Tensor& code, std::int64_t blocksize)
{
    auto [scaled, absmax] = scale_blocks(a, blocksize);
    const at::Tensor c = code.to(a.device());
    const at::Tensor midpoints = (c.narrow(0, 0, c.numel() - 1) + c.narrow(0, 1, c.numel() - 1)) / 2;
    return {at::bucketize(scaled, midpoints, true).to(at::kByte).reshape(a.sizes()), absmax};
}

at::Tensor dequantize_blockwise_8bit(const at::Tensor& q, const at::Tensor& absmax, const at::Tensor& code, std::int64_t blocksize)
{
    const at::Tensor values = code.to(q.device()).index_select(0, q.reshape(-1).to(at::kLong));
    const std::int64_t n = values.numel(), rem = n % blocksize, full = n - rem, blocks = full / blocksize;
    if (!rem)
        return (values.view({blocks, blocksize}) * absmax.view({-1, 1})).reshape(-1);
    return at::cat({(values.narrow(0, 0, full).view({blocks, blocksize}) * absmax.narrow(0, 0, blocks).view({-1, 1})).reshape(-1),
                    values.narrow(0, full, rem) * absmax[blocks]});
}

NestedAbsmax nest_absmax(const at::Tensor& absmax, std::int64_t nested_blocksize)
{
    NestedAbsmax r;
    const at::Tensor offset = absmax.mean();
    r.offset = offset.item<float>();
    r.nested_code = dynamic_code_8bit().to(absmax.device());
    auto [q, am] = quantize_blockwise_8bit(absmax - offset, r.nested_code, nested_blocksize);
    r.absmax_u8 = q;
    r.nested_absmax = am;
    return r;
}

at::Tensor unnest_absmax(const at::Tensor& absmax_u8, const at::Tensor& nested_absmax, const at::Tensor& nested_code,
                         float offset, std::int64_t nested_blocksize)
{
    return dequantize_blockwise_8bit(absmax_u8, nested_absmax, nested_code, nested_blocksize) + offset;
}

} // namespace layerwise
