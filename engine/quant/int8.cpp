#include "quant/int8.h"

#include "quant_gemv.h"

#include <ATen/ATen.h>

namespace layerwise {

namespace {

// Row-wise int8 codes of a float16 matrix (rows x cols): absmax per row, round(a * 127 / absmax).
// bitsandbytes writes 127 / absmax as absmax.reciprocal() * 127 (Python's scalar / tensor).
std::pair<at::Tensor, at::Tensor> rowwise_codes(const at::Tensor& a16)
{
    const at::Tensor row_stats = std::get<0>(a16.abs().max(1)).to(at::kFloat);
    const at::Tensor codes = at::round(a16 * (row_stats.reciprocal() * 127.0).unsqueeze(-1)).to(at::kChar);
    return {codes, row_stats};
}

// a int8 [m, k], b_t int8 [n, k] -> int32 [m, n], exact (a float64 product of the codes; the
// CPU runs the int8 GEMV kernel instead).
at::Tensor int_matmul(const at::Tensor& a, const at::Tensor& b_t)
{
    return at::matmul(a.to(at::kDouble), b_t.to(at::kDouble).t()).to(at::kInt);
}

} // namespace

std::pair<at::Tensor, at::Tensor> quantize_int8_rows(const at::Tensor& w)
{
    TORCH_CHECK(w.dim() == 2, "quantize_int8_rows: a 2-D weight");
    return rowwise_codes(w.contiguous().to(at::kHalf));
}

at::Tensor dequantize_int8_rows(const at::Tensor& cb, const at::Tensor& scb)
{
    return cb * scb.view({-1, 1}) * 7.874015718698502e-3;
}

at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& cb, const at::Tensor& scb, const at::Tensor& bias,
                       double threshold)
{
    const auto dtype = x.scalar_type();
    auto out_shape = x.sizes().vec();
    out_shape.back() = cb.size(0);
    const at::Tensor a = x.reshape({-1, x.size(-1)});
    at::Tensor a16 = a.to(at::kHalf, /*non_blocking=*/false, /*copy=*/true);
    at::Tensor outlier_cols;
    if (threshold > 0.0) {
        const at::Tensor outliers = a16.abs() >= threshold;
        if (outliers.any().item<bool>()) {
            outlier_cols = at::argwhere(outliers.any(0)).view(-1);
            a16.masked_fill_(outliers, 0);
        }
    }
    auto [ca, sca] = rowwise_codes(a16);
    if (outlier_cols.defined() && a.size(0) > 1)
        ca.index_fill_(1, outlier_cols, 0);
    // int8_mm_dequant: acc * (row_stats * col_stats) / 127^2. On the CPU the int8 GEMV kernel
    // computes the same exact int32 sums and the same float32 scaling.
    at::Tensor out = ca.is_cpu() ? kernels::int8_gemv(ca, sca, cb, scb)
                                 : int_matmul(ca, cb) * (sca.view({-1, 1}) * scb.view({1, -1})) * 6.200124e-05;
    if (bias.defined())
        out += bias;
    out = out.to(dtype);
    if (outlier_cols.defined()) {
        const at::Tensor sub_a = a.index_select(1, outlier_cols);
        const at::Tensor sub_b = dequantize_int8_rows(cb.index_select(1, outlier_cols), scb).to(dtype).t();
        out = out.addmm(sub_a, sub_b);
    }
    return out.view(out_shape);
}

} // namespace layerwise
