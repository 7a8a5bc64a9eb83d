#include "gguf_cuda.h"

#include "gguf_linear.h"

#include <ATen/ATen.h>
#include <algorithm>

#ifdef LAYERWISE_HAVE_CUDA
#include "cuda/gguf_kernels.h"
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace layerwise::kernels {

#ifdef LAYERWISE_HAVE_CUDA

namespace {

// The blocks as the kernels want them (gguf_kernels.h): uint8 [out, row bytes] on CUDA, rows
// contiguous, 16-byte aligned. A view that is not (a slice, an odd storage offset) is copied.
at::Tensor checked_blocks(const at::Tensor& weight, cpu::GgmlType type, std::int64_t in, const char* op)
{
    TORCH_CHECK(cuda::gguf_cuda_supports(type), op, ": no CUDA kernel for GGUF ", gguf_type_name(type));
    int elements = 0, bytes = 0;
    cpu::block_geometry(type, elements, bytes);
    TORCH_CHECK(in > 0 && in % 32 == 0 && in % elements == 0, op, ": ", in, " inputs are not whole ",
                gguf_type_name(type), " blocks of ", elements, " (the CUDA kernels also need a multiple of 32)");
    TORCH_CHECK(weight.is_cuda(), op, ": the blocks must be on a CUDA device");
    TORCH_CHECK(weight.scalar_type() == at::kByte && weight.dim() == 2 && weight.size(1) == gguf_row_bytes(type, in), op,
                ": GGUF ", gguf_type_name(type), " weight must be uint8 [out, ", gguf_row_bytes(type, in), "], got ",
                weight.sizes(), " ", weight.scalar_type());
    if (weight.is_contiguous() && reinterpret_cast<std::uintptr_t>(weight.data_ptr()) % 16 == 0)
        return weight;
    return weight.clone(at::MemoryFormat::Contiguous);
}

void* current_stream(const at::Tensor& on)
{
    return c10::cuda::getCurrentCUDAStream(on.device().index()).stream();
}

cuda::OutType out_type_of(at::ScalarType dtype, const char* op)
{
    switch (dtype) {
    case at::kFloat: return cuda::OutType::f32;
    case at::kHalf: return cuda::OutType::f16;
    case at::kBFloat16: return cuda::OutType::bf16;
    default: TORCH_CHECK(false, op, ": float32, float16 or bfloat16, not ", dtype);
    }
}

std::vector<std::int64_t> with_last(at::IntArrayRef sizes, std::int64_t last)
{
    std::vector<std::int64_t> s = sizes.vec();
    s.back() = last;
    return s;
}

} // namespace

bool gguf_cuda_built()
{
    return true;
}

at::Tensor gguf_dequantize_cuda(const at::Tensor& weight, cpu::GgmlType type, std::int64_t in, at::ScalarType dtype)
{
    const at::Tensor w = checked_blocks(weight, type, in, "gguf_dequantize");
    const cuda::OutType out_type = out_type_of(dtype, "gguf_dequantize");
    const c10::cuda::CUDAGuard guard(w.device());
    at::Tensor out = at::empty({w.size(0), in}, w.options().dtype(dtype));
    cuda::launch_gguf_dequantize(w.data_ptr<std::uint8_t>(), type, in, w.size(0), nullptr, out.data_ptr(), out_type,
                                 current_stream(w));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return out;
}

at::Tensor gguf_linear_cuda(const at::Tensor& x, const at::Tensor& weight, cpu::GgmlType type, std::int64_t in)
{
    const at::Tensor w = checked_blocks(weight, type, in, "gguf_linear");
    TORCH_CHECK(x.size(-1) == in, "gguf_linear: x has ", x.size(-1), " features, the weight ", in);
    TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf,
                "gguf_linear: x must be float32, bfloat16 or float16");
    TORCH_CHECK(x.device() == w.device(), "gguf_linear: x is on ", x.device(), ", the GGUF ", gguf_type_name(type),
                " blocks on ", w.device());
    const c10::cuda::CUDAGuard guard(w.device());
    const std::int64_t out = w.size(0);
    const at::Tensor x2 = x.reshape({-1, in});
    const std::int64_t m = x2.size(0);
    if (m == 0 || out == 0)
        return at::zeros(with_last(x.sizes(), out), x.options());
    if (m <= kGgufCudaGemvMaxRows) {
        // Decode: the blocks are read once for every row, decoded in registers.
        const at::Tensor xf = x2.to(at::kFloat).contiguous();
        at::Tensor y = at::empty({m, out}, xf.options());
        cuda::launch_gguf_gemv(w.data_ptr<std::uint8_t>(), type, in, out, xf.data_ptr<float>(), m, y.data_ptr<float>(),
                               current_stream(w));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        return y.to(x.scalar_type()).reshape(with_last(x.sizes(), out));
    }
    // Prefill: compute-bound, so cuBLAS does the multiply on tiles of weight rows decoded into a
    // scratch buffer of x's dtype (at most kGgufCudaScratchBytes, reused tile after tile on the
    // stream), never the whole weight in float at once.
    const at::Tensor xc = x2.contiguous();
    const cuda::OutType out_type = out_type_of(x.scalar_type(), "gguf_linear");
    const std::int64_t row_scratch = in * static_cast<std::int64_t>(c10::elementSize(x.scalar_type()));
    const std::int64_t tile = std::clamp<std::int64_t>(kGgufCudaScratchBytes / row_scratch, 1, out);
    at::Tensor scratch = at::empty({tile, in}, xc.options());
    at::Tensor y = at::empty({m, out}, xc.options());
    const std::int64_t row_bytes = w.size(1);
    for (std::int64_t o0 = 0; o0 < out; o0 += tile) {
        const std::int64_t n = std::min(tile, out - o0);
        cuda::launch_gguf_dequantize(w.data_ptr<std::uint8_t>() + o0 * row_bytes, type, in, n, nullptr, scratch.data_ptr(),
                                     out_type, current_stream(w));
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        if (n == out)
            at::mm_out(y, xc, scratch.t());
        else
            y.narrow(1, o0, n).copy_(at::mm(xc, scratch.narrow(0, 0, n).t()));
    }
    return y.reshape(with_last(x.sizes(), out));
}

at::Tensor gguf_embedding_cuda(const at::Tensor& weight, cpu::GgmlType type, std::int64_t in, const at::Tensor& ids)
{
    const at::Tensor w = checked_blocks(weight, type, in, "gguf_embedding");
    const c10::cuda::CUDAGuard guard(w.device());
    const at::Tensor flat = ids.reshape({-1}).to(at::kLong);
    const std::int64_t rows = w.size(0), n = flat.numel();
    if (n > 0) {
        // Checked on the host (one small copy): a bad id must be an error, not a read past the table.
        const at::Tensor host = flat.cpu().contiguous();
        const std::int64_t* id = host.data_ptr<std::int64_t>();
        for (std::int64_t i = 0; i < n; ++i)
            TORCH_CHECK(id[i] >= 0 && id[i] < rows, "gguf_embedding: token id ", id[i], " outside the table of ", rows,
                        " rows");
    }
    const at::Tensor dev_ids = flat.to(w.device()).contiguous();
    at::Tensor out = at::empty({n, in}, w.options().dtype(at::kFloat));
    cuda::launch_gguf_dequantize(w.data_ptr<std::uint8_t>(), type, in, n, dev_ids.data_ptr<std::int64_t>(),
                                 out.data_ptr(), cuda::OutType::f32, current_stream(w));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    auto shape = ids.sizes().vec();
    shape.push_back(in);
    return out.reshape(shape);
}

#else // no CUDA kernels in this build

namespace {
[[noreturn]] void no_cuda(const char* op, cpu::GgmlType type)
{
    TORCH_CHECK(false, op, ": the GGUF ", gguf_type_name(type),
                " blocks are on a CUDA device, but this build has no CUDA kernels for them (built with LAYERWISE_CUDA=OFF, "
                "without a CUDA toolkit or against a LibTorch without CUDA)");
}
} // namespace

bool gguf_cuda_built()
{
    return false;
}

at::Tensor gguf_dequantize_cuda(const at::Tensor&, cpu::GgmlType type, std::int64_t, at::ScalarType)
{
    no_cuda("gguf_dequantize", type);
}

at::Tensor gguf_linear_cuda(const at::Tensor&, const at::Tensor&, cpu::GgmlType type, std::int64_t)
{
    no_cuda("gguf_linear", type);
}

at::Tensor gguf_embedding_cuda(const at::Tensor&, cpu::GgmlType type, std::int64_t, const at::Tensor&)
{
    no_cuda("gguf_embedding", type);
}

#endif

} // namespace layerwise::kernels
