#pragma once
// LLM.int8() as bitsandbytes computes it: weights row-wise absmax-quantized to int8 (through
// float16, SCB = the row's absmax), and a matmul that takes activation columns holding any
// |x| >= threshold out in floating point against the dequantized weight columns while the rest
// runs as int8 x int8 -> int32 with row-wise activation scales.
#include <ATen/core/Tensor.h>
#include <utility>

namespace layerwise {

// w [out, in] floating -> CB int8 [out, in], SCB float32 [out] (bitsandbytes' Int8Params).
std::pair<at::Tensor, at::Tensor> quantize_int8_rows(const at::Tensor& w);
// CB * SCB / 127 as bitsandbytes' int8_vectorwise_dequant computes it (float32).
at::Tensor dequantize_int8_rows(const at::Tensor& cb, const at::Tensor& scb);

// x [..., in] -> [..., out] in x's dtype. threshold 0: no outlier decomposition.
// The int8 x int8 -> int32 product is exact (the int8 GEMV kernel of layerwise_kernels on the
// CPU, a float64 matmul of the codes elsewhere).
at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& cb, const at::Tensor& scb, const at::Tensor& bias,
                       double threshold);

} // namespace layerwise
