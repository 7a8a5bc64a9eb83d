#include "dequantize.h"

#include <ATen/ATen.h>

#ifdef LAYERWISE_HAVE_CUDA
#include <c10/cuda/CUDAStream.h>
#include "cuda/dequantize_int8.h"
#endif

namespace layerwise::kernels {

namespace {

void check_inputs(const at::Tensor& cb, const at::Tensor& scb)
{
    TORCH_CHECK(cb.dim() == 2 && cb.scalar_type() == at::kChar, "CB must be int8 [rows, cols]");
    TORCH_CHECK(scb.dim() == 1 && scb.scalar_type() == at::kFloat && scb.size(0) == cb.size(0),
                "SCB must be float32 [rows]");
    TORCH_CHECK(cb.device() == scb.device(), "CB and SCB must be on one device");
}

} // namespace

at::Tensor dequantize_int8_rowwise_reference(const at::Tensor& cb, const at::Tensor& scb, c10::ScalarType dtype)
{
    check_inputs(cb, scb);
    return (cb.to(at::kFloat) * (scb / 127.0f).unsqueeze(1)).to(dtype);
}

at::Tensor dequantize_int8_rowwise(const at::Tensor& cb, const at::Tensor& scb, c10::ScalarType dtype)
{
    check_inputs(cb, scb);
#ifdef LAYERWISE_HAVE_CUDA
    if (cb.is_cuda() && dtype == at::kFloat) {
        auto cbc = cb.contiguous();
        auto scbc = scb.contiguous();
        auto out = at::empty(cb.sizes(), cb.options().dtype(at::kFloat));
        launch_dequantize_int8_rowwise(cbc.data_ptr<int8_t>(), scbc.data_ptr<float>(), out.data_ptr<float>(),
                                       cb.size(0), cb.size(1), c10::cuda::getCurrentCUDAStream().stream());
        return out;
    }
#endif
    return dequantize_int8_rowwise_reference(cb, scb, dtype);
}

bool built_with_cuda()
{
#ifdef LAYERWISE_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

} // namespace layerwise::kernels
