#pragma once
// Quantized linear layers: quantizing one weight into its bitsandbytes tensors, and
// y = x W^T + b over them. `quant_linear` is the one boundary faster kernels slot in behind.
#include "quant/quant_config.h"

#include <ATen/core/Tensor.h>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace layerwise {

// The tensors of one quantized linear, under bitsandbytes' names relative to the module
// ("weight", "SCB", "weight.absmax", "weight.quant_map", "weight.nested_absmax",
// "weight.nested_quant_map"); see QuantInfo.
// GPTQ: qweight, qzeros, scales, g_idx (g_idx may be undefined: column order).
struct QuantTensors {
    at::Tensor weight, scb, absmax, quant_map, nested_absmax, nested_quant_map;
    at::Tensor qweight, qzeros, scales, g_idx;
};

struct QuantizedWeight {
    QuantInfo info;
    std::vector<std::pair<std::string, at::Tensor>> tensors; // suffix -> tensor, in bitsandbytes' order
};

// The suffixes (and dtypes/shapes) a weight of `shape` quantized with `options` has; used to
// plan offload files before any quantization runs.
struct QuantTensorSpec {
    std::string suffix;
    c10::ScalarType dtype;
    std::vector<std::int64_t> shape;
};
std::vector<QuantTensorSpec> quant_tensor_specs(const std::vector<std::int64_t>& shape, const QuantOptions& options);

// w [out, in] floating (any device). compute_dtype: what quant_linear will run in.
QuantizedWeight quantize_weight(const at::Tensor& w, const QuantOptions& options, DType compute_dtype);

// Looks the module's tensors up in a map of local names ("self_attn.q_proj.weight"...).
// FormatError naming what is missing or the wrong size.
QuantTensors quant_tensors(const std::unordered_map<std::string, at::Tensor>& tensors, const std::string& module,
                           const QuantInfo& info);

// The weight in floating point [out, in].
at::Tensor dequantize_weight(const QuantInfo& info, const QuantTensors& t, c10::ScalarType dtype);

// x [..., in] -> [..., out] in x's dtype. int8: LLM.int8 mixed decomposition; 4-bit:
// dequantize to the compute dtype, then a plain linear; GPTQ: gptq_linear.
at::Tensor quant_linear(const at::Tensor& x, const QuantInfo& info, const QuantTensors& t, const at::Tensor& bias);

// A GPTQ linear: the one place a packed-weight GEMM/GEMV kernel plugs in. Today it dequantizes
// the weight to the compute dtype (exactly scales * (q - zero)) and runs a plain linear.
at::Tensor gptq_linear(const at::Tensor& x, const QuantInfo& info, const QuantTensors& t, const at::Tensor& bias);

} // namespace layerwise
