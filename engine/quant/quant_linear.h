#pragma once
// Quantized linear layers: quantizing one weight into its bitsandbytes tensors, and
// y = x W^T + b over them. `quant_linear` is the one boundary faster kernels slot in behind.
#include "model/quant_config.h"

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

// x [..., in] -> [..., out] in x's dtype. int8: LLM.int8 mixed decomposition (its int8 x int8
// part on the int8 GEMV kernel on the CPU); 4-bit: up to 8 rows on the CPU the NF4/FP4 GEMV
// kernel (x in the compute dtype, float32 sums), otherwise dequantize to the compute dtype and
// run a plain linear; GPTQ: gptq_linear.
at::Tensor quant_linear(const at::Tensor& x, const QuantInfo& info, const QuantTensors& t, const at::Tensor& bias);

// A GPTQ linear: 4-bit with up to 8 rows on the CPU runs the packed-weight GEMV kernel
// (kernels::gptq_gemv, float32 sums); otherwise the weight is dequantized to the compute dtype
// (exactly scales * (q - zero)) and a plain linear runs.
at::Tensor gptq_linear(const at::Tensor& x, const QuantInfo& info, const QuantTensors& t, const at::Tensor& bias);

// A GGUF linear: the file's blocks against activations quantized to 8-bit blocks, on the CPU
// block kernels (kernels::gguf_linear); elsewhere the weight is decoded for the call.
at::Tensor gguf_linear(const at::Tensor& x, const QuantInfo& info, const QuantTensors& t, const at::Tensor& bias);

} // namespace layerwise
