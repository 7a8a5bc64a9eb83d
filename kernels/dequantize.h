#pragma once
// Row-wise int8 weights (LLM.int8 / bitsandbytes layout): W[r, c] = CB[r, c] * SCB[r] / 127.
#include <ATen/core/Tensor.h>

namespace layerwise::kernels {

// The LibTorch reference: CB int8 [rows, cols], SCB float32 [rows] -> `dtype` [rows, cols].
at::Tensor dequantize_int8_rowwise_reference(const at::Tensor& cb, const at::Tensor& scb, c10::ScalarType dtype);

// Dispatches to the CUDA kernel for CUDA tensors (when built with CUDA), else the reference.
at::Tensor dequantize_int8_rowwise(const at::Tensor& cb, const at::Tensor& scb, c10::ScalarType dtype);

// True when this build carries CUDA kernels.
bool built_with_cuda();

} // namespace layerwise::kernels
