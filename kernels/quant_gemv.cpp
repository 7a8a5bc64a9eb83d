#include "quant_gemv.h"

#include "cpu/gemv_cpu.h"

#include "parallel.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#ifdef LAYERWISE_HAVE_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include "cuda/quant_gemv.h"
#endif

namespace layerwise::kernels {

namespace {

void check_activations(const at::Tensor& x, std::int64_t in, const char* op)
{
    TORCH_CHECK(x.dim() == 2, op, ": x must be [m, in], got ", x.dim(), " dimensions");
    TORCH_CHECK(x.size(1) == in, op, ": x has ", x.size(1), " features, the weight ", in);
    TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf, op,
                ": x must be float32, bfloat16 or float16");
}

// Runs fn(o_begin, o_end) over [0, out) in pieces of whole `unit`s, on LibTorch's pool.
template <typename Fn>
void parallel_outputs(std::int64_t out, std::int64_t unit, std::int64_t min_outputs, const Fn& fn)
{
    const std::int64_t units = (out + unit - 1) / unit;
    parallel_for(0, units, std::max<std::int64_t>(1, min_outputs / unit), [&](std::int64_t b, std::int64_t e) {
        fn(b * unit, std::min(out, e * unit));
    });
}

// ---- GPTQ ----

struct GptqShape {
    std::int64_t in, out, groups;
};

GptqShape check_gptq(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales, const at::Tensor& g_idx)
{
    TORCH_CHECK(qweight.dim() == 2 && qweight.scalar_type() == at::kInt, "gptq: qweight must be int32 [in / 8, out]");
    const std::int64_t in = qweight.size(0) * 8, out = qweight.size(1);
    TORCH_CHECK(scales.dim() == 2 && scales.scalar_type() == at::kHalf && scales.size(1) == out,
                "gptq: scales must be float16 [groups, ", out, "]");
    const std::int64_t groups = scales.size(0);
    TORCH_CHECK(groups >= 1, "gptq: at least one group");
    TORCH_CHECK(out % 8 == 0 && qzeros.dim() == 2 && qzeros.scalar_type() == at::kInt && qzeros.size(0) == groups &&
                    qzeros.size(1) == out / 8,
                "gptq: qzeros must be int32 [", groups, ", ", out / 8, "]");
    TORCH_CHECK(g_idx.dim() == 1 && g_idx.scalar_type() == at::kInt && g_idx.size(0) == in, "gptq: g_idx must be int32 [", in, "]");
    TORCH_CHECK(qweight.device() == qzeros.device() && qweight.device() == scales.device() && qweight.device() == g_idx.device(),
                "gptq: all tensors on one device");
    return {in, out, groups};
}

// ---- NF4 / FP4 ----

void check_blockwise4(const Blockwise4Weight& w)
{
    const std::int64_t n = w.out * w.in;
    TORCH_CHECK(w.out > 0 && w.in > 0 && w.blocksize > 0, "blockwise4: a positive shape and block size");
    TORCH_CHECK(w.packed.scalar_type() == at::kByte && w.packed.numel() == (n + 1) / 2, "blockwise4: packed must hold ",
                (n + 1) / 2, " bytes for [", w.out, ", ", w.in, "]");
    TORCH_CHECK(w.code.scalar_type() == at::kFloat && w.code.numel() == 16, "blockwise4: code must be float32 [16]");
    const std::int64_t blocks = (n + w.blocksize - 1) / w.blocksize;
    TORCH_CHECK(w.absmax.numel() == blocks, "blockwise4: absmax must have ", blocks, " values");
    if (w.absmax.scalar_type() == at::kByte) {
        TORCH_CHECK(w.nested_absmax.defined() && w.nested_code.defined() && w.nested_blocksize > 0,
                    "blockwise4: a uint8 absmax needs nested_absmax and nested_code");
        TORCH_CHECK(w.nested_code.scalar_type() == at::kFloat && w.nested_code.numel() == 256,
                    "blockwise4: nested_code must be float32 [256]");
        TORCH_CHECK(w.nested_absmax.scalar_type() == at::kFloat &&
                        w.nested_absmax.numel() == (blocks + w.nested_blocksize - 1) / w.nested_blocksize,
                    "blockwise4: nested_absmax must have one float32 per ", w.nested_blocksize, " blocks");
    } else {
        TORCH_CHECK(w.absmax.scalar_type() == at::kFloat, "blockwise4: absmax must be float32 or uint8 (nested)");
    }
}

at::Tensor absmax_reference(const Blockwise4Weight& w)
{
    if (w.absmax.scalar_type() != at::kByte)
        return w.absmax.reshape(-1).to(at::kFloat);
    const std::int64_t blocks = w.absmax.numel();
    const at::Tensor which = at::arange(blocks, w.absmax.options().dtype(at::kLong)).div(w.nested_blocksize, "floor");
    return w.nested_code.index_select(0, w.absmax.reshape(-1).to(at::kLong)) * w.nested_absmax.reshape(-1).index_select(0, which) +
           w.nested_offset;
}

// ---- int8 ----

void check_int8(const at::Tensor& xq, const at::Tensor& x_scale, const at::Tensor& cb, const at::Tensor& scb)
{
    TORCH_CHECK(cb.dim() == 2 && cb.scalar_type() == at::kChar, "int8_gemv: cb must be int8 [out, in]");
    TORCH_CHECK(scb.dim() == 1 && scb.scalar_type() == at::kFloat && scb.size(0) == cb.size(0), "int8_gemv: scb must be float32 [",
                cb.size(0), "]");
    TORCH_CHECK(xq.dim() == 2 && xq.scalar_type() == at::kChar && xq.size(1) == cb.size(1), "int8_gemv: xq must be int8 [m, ",
                cb.size(1), "]");
    TORCH_CHECK(x_scale.dim() == 1 && x_scale.scalar_type() == at::kFloat && x_scale.size(0) == xq.size(0),
                "int8_gemv: x_scale must be float32 [", xq.size(0), "]");
    TORCH_CHECK(xq.device() == x_scale.device() && xq.device() == cb.device() && xq.device() == scb.device(),
                "int8_gemv: all tensors on one device");
}

} // namespace

// ---- GPTQ -----------------------------------------------------------------------------------

at::Tensor dequantize_gptq_reference(const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
                                     const at::Tensor& g_idx)
{
    const GptqShape s = check_gptq(qweight, qzeros, scales, g_idx);
    const at::Tensor shifts = at::arange(0, 32, 4, qweight.options());
    const at::Tensor q = at::bitwise_and(at::bitwise_right_shift(qweight.unsqueeze(1), shifts.view({1, 8, 1})), 15).reshape({s.in, s.out});
    const at::Tensor z = at::bitwise_and(at::bitwise_right_shift(qzeros.unsqueeze(2), shifts.view({1, 1, 8})), 15).reshape({s.groups, s.out}).add(1).bitwise_and(15);
    const at::Tensor g = g_idx.to(at::kLong);
    const at::Tensor w_t = (q.to(at::kFloat) - z.index_select(0, g).to(at::kFloat)) * scales.to(at::kFloat).index_select(0, g);
    return w_t.t().contiguous();
}

at::Tensor gptq_gemv_reference(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& qzeros,
                               const at::Tensor& scales, const at::Tensor& g_idx)
{
    check_activations(x, qweight.size(0) * 8, "gptq_gemv");
    const at::Tensor w = dequantize_gptq_reference(qweight, qzeros, scales, g_idx);
    return at::matmul(x.to(at::kFloat), w.t()).to(x.scalar_type());
}

at::Tensor gptq_gemv(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& qzeros, const at::Tensor& scales,
                     const at::Tensor& g_idx, CpuLevel level)
{
    const GptqShape s = check_gptq(qweight, qzeros, scales, g_idx);
    check_activations(x, s.in, "gptq_gemv");
    TORCH_CHECK(x.device() == qweight.device(), "gptq_gemv: x and the weight on one device");
    const at::Tensor xf = x.to(at::kFloat).contiguous();
    at::Tensor y = at::empty({x.size(0), s.out}, xf.options());
    if (x.size(0) == 0)
        return y.to(x.scalar_type());
    const at::Tensor qw = qweight.contiguous(), qz = qzeros.contiguous(), sc = scales.contiguous(), gi = g_idx.contiguous();
    cpu::GptqGemvArgs a;
    a.x = xf.data_ptr<float>();
    a.qweight = qw.data_ptr<std::int32_t>();
    a.qzeros = qz.data_ptr<std::int32_t>();
    a.scales = reinterpret_cast<const std::uint16_t*>(sc.data_ptr<at::Half>());
    a.g_idx = gi.data_ptr<std::int32_t>();
    a.y = y.data_ptr<float>();
    a.m = x.size(0);
    a.in = s.in;
    a.out = s.out;
    a.groups = s.groups;
#ifdef LAYERWISE_HAVE_CUDA
    if (x.is_cuda()) {
        const c10::cuda::CUDAGuard guard(x.device());
        TORCH_CHECK(at::logical_and(gi >= 0, gi < s.groups).all().item<bool>(), "gptq_gemv: g_idx values must lie in [0, ",
                    s.groups, ")");
        launch_gptq_gemv(a, c10::cuda::getCurrentCUDAStream().stream());
        return y.to(x.scalar_type());
    }
#endif
    TORCH_CHECK(x.is_cpu(), "gptq_gemv: CPU or CUDA tensors (this build has no CUDA kernels)");
    a.uniform_words = true;
    for (std::int64_t i = 0; i < s.in; ++i) {
        TORCH_CHECK(a.g_idx[i] >= 0 && a.g_idx[i] < s.groups, "gptq_gemv: g_idx[", i, "] = ", a.g_idx[i], " is not a group in [0, ",
                    s.groups, ")");
        if (a.g_idx[i] != a.g_idx[i / 8 * 8])
            a.uniform_words = false;
    }
    TORCH_CHECK(cpu_level_available(level), "gptq_gemv: this CPU cannot run the ", cpu_level_name(level), " kernels");
    parallel_outputs(s.out, 8, 128, [&](std::int64_t b, std::int64_t e) { cpu::gptq_gemv(a, level, b, e); });
    return y.to(x.scalar_type());
}

// ---- NF4 / FP4 ------------------------------------------------------------------------------

at::Tensor dequantize_blockwise4_reference(const Blockwise4Weight& w)
{
    check_blockwise4(w);
    const std::int64_t n = w.out * w.in;
    const at::Tensor bytes = w.packed.reshape(-1);
    const at::Tensor nibbles =
        at::stack({at::bitwise_right_shift(bytes, 4), at::bitwise_and(bytes, 15)}, 1).reshape(-1).narrow(0, 0, n);
    const at::Tensor values = w.code.index_select(0, nibbles.to(at::kLong));
    const at::Tensor scale = absmax_reference(w).repeat_interleave(w.blocksize).narrow(0, 0, n);
    return (values * scale).view({w.out, w.in});
}

at::Tensor blockwise4_gemv_reference(const at::Tensor& x, const Blockwise4Weight& w)
{
    check_activations(x, w.in, "blockwise4_gemv");
    return at::matmul(x.to(at::kFloat), dequantize_blockwise4_reference(w).t()).to(x.scalar_type());
}

at::Tensor blockwise4_gemv(const at::Tensor& x, const Blockwise4Weight& w, CpuLevel level)
{
    check_blockwise4(w);
    check_activations(x, w.in, "blockwise4_gemv");
    TORCH_CHECK(x.device() == w.packed.device() && x.device() == w.absmax.device() && x.device() == w.code.device(),
                "blockwise4_gemv: x and the weight on one device");
    const bool nested = w.absmax.scalar_type() == at::kByte;
    const at::Tensor xf = x.to(at::kFloat).contiguous();
    at::Tensor y = at::empty({x.size(0), w.out}, xf.options());
    if (x.size(0) == 0)
        return y.to(x.scalar_type());
    const at::Tensor packed = w.packed.contiguous(), absmax = w.absmax.contiguous(), code = w.code.contiguous();
    const at::Tensor nested_absmax = nested ? w.nested_absmax.contiguous() : at::Tensor();
    const at::Tensor nested_code = nested ? w.nested_code.contiguous() : at::Tensor();
    cpu::Blockwise4GemvArgs a;
    a.x = xf.data_ptr<float>();
    a.packed = packed.data_ptr<std::uint8_t>();
    a.code = code.data_ptr<float>();
    if (nested) {
        a.absmax_u8 = absmax.data_ptr<std::uint8_t>();
        a.nested_absmax = nested_absmax.data_ptr<float>();
        a.nested_code = nested_code.data_ptr<float>();
        a.nested_offset = w.nested_offset;
        a.nested_blocksize = w.nested_blocksize;
    } else {
        a.absmax = absmax.data_ptr<float>();
    }
    a.y = y.data_ptr<float>();
    a.m = x.size(0);
    a.in = w.in;
    a.out = w.out;
    a.blocksize = w.blocksize;
#ifdef LAYERWISE_HAVE_CUDA
    if (x.is_cuda()) {
        TORCH_CHECK(nested_absmax.defined() == nested && (!nested || nested_absmax.is_cuda()), "blockwise4_gemv: one device");
        const c10::cuda::CUDAGuard guard(x.device());
        launch_blockwise4_gemv(a, c10::cuda::getCurrentCUDAStream().stream());
        return y.to(x.scalar_type());
    }
#endif
    TORCH_CHECK(x.is_cpu(), "blockwise4_gemv: CPU or CUDA tensors (this build has no CUDA kernels)");
    TORCH_CHECK(cpu_level_available(level), "blockwise4_gemv: this CPU cannot run the ", cpu_level_name(level), " kernels");
    parallel_outputs(w.out, 1, 16, [&](std::int64_t b, std::int64_t e) { cpu::blockwise4_gemv(a, level, b, e); });
    return y.to(x.scalar_type());
}

// ---- int8 -----------------------------------------------------------------------------------

at::Tensor int8_gemv_reference(const at::Tensor& xq, const at::Tensor& x_scale, const at::Tensor& cb, const at::Tensor& scb)
{
    check_int8(xq, x_scale, cb, scb);
    const at::Tensor acc = at::matmul(xq.to(at::kFloat), cb.to(at::kFloat).t());
    return acc * (x_scale.view({-1, 1}) * scb.view({1, -1})) * cpu::kInt8Dequant;
}

at::Tensor int8_gemv(const at::Tensor& xq, const at::Tensor& x_scale, const at::Tensor& cb, const at::Tensor& scb, CpuLevel level)
{
    check_int8(xq, x_scale, cb, scb);
    const at::Tensor xc = xq.contiguous(), xs = x_scale.contiguous(), w = cb.contiguous(), s = scb.contiguous();
    at::Tensor y = at::empty({xq.size(0), cb.size(0)}, s.options());
    if (xq.size(0) == 0)
        return y;
    cpu::Int8GemvArgs a;
    a.xq = xc.data_ptr<std::int8_t>();
    a.x_scale = xs.data_ptr<float>();
    a.w = w.data_ptr<std::int8_t>();
    a.scb = s.data_ptr<float>();
    a.y = y.data_ptr<float>();
    a.m = xq.size(0);
    a.in = cb.size(1);
    a.out = cb.size(0);
#ifdef LAYERWISE_HAVE_CUDA
    if (xq.is_cuda()) {
        const c10::cuda::CUDAGuard guard(xq.device());
        launch_int8_gemv(a, c10::cuda::getCurrentCUDAStream().stream());
        return y;
    }
#endif
    TORCH_CHECK(xq.is_cpu(), "int8_gemv: CPU or CUDA tensors (this build has no CUDA kernels)");
    TORCH_CHECK(cpu_level_available(level), "int8_gemv: this CPU cannot run the ", cpu_level_name(level), " kernels");
    // The SIMD paths need activation codes in [-127, 127] (row-absmax codes are); any other
    // input takes the portable loop, exact for every byte.
    const std::int64_t n = a.m * a.in;
    for (std::int64_t i = 0; i < n; ++i)
        if (a.xq[i] == -128) {
            level = CpuLevel::scalar;
            break;
        }
    parallel_outputs(a.out, 1, 16, [&](std::int64_t b, std::int64_t e) { cpu::int8_gemv(a, level, b, e); });
    return y;
}

} // namespace layerwise::kernels
