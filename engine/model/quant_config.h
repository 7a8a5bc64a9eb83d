#pragma once
// What to quantize at load time and how (bitsandbytes' LLM.int8, NF4, FP4), the per-weight
// facts a quantized linear needs, and bitsandbytes' serialized forms of both: the
// `quantization_config` of config.json and the `quant_state.bitsandbytes__<type>` JSON.
// No LibTorch here.
#include "core/dtype.h"

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace layerwise {

// gguf: a GGUF file's block-quantized weights kept as they are stored (see QuantInfo::ggml_type).
enum class QuantMethod { none, int8, nf4, fp4, gptq, gguf };

std::string_view quant_method_name(QuantMethod m); // "none", "int8", "nf4", "fp4", "gptq", "gguf"
// "none", "int8" (also "8bit"), "nf4", "fp4"; PlanError otherwise.
QuantMethod parse_quant_method(std::string_view name);

struct QuantOptions {
    QuantMethod method = QuantMethod::none;
    bool double_quant = false;              // 4-bit: absmax quantized to 8 bits in blocks of 256
    std::optional<DType> compute_dtype;     // nullopt: the model's dtype
    std::vector<std::string> skip_modules;  // module names (or name suffixes) kept unquantized
    double int8_threshold = 6.0;            // LLM.int8 outlier threshold (0: no decomposition)
    std::int64_t blocksize = 64;            // 4-bit block size

    bool enabled() const { return method != QuantMethod::none; }
    // bitsandbytes' rule: a module is skipped when a skip entry equals it or is one of its
    // dotted components' suffix ("lm_head" skips "lm_head" and "model.lm_head").
    bool skips(const std::string& module_name) const;
};

// What one quantized linear holds besides its tensors. Tensors (bitsandbytes' state-dict
// names, relative to the module): int8 `weight` (int8 [out, in]) + `SCB` (float32 [out]);
// 4-bit `weight` (uint8 [(n+1)/2, 1], first value in the high nibble), `weight.absmax`
// (float32 [blocks], or uint8 when nested), `weight.quant_map` (float32 [16]), and when nested
// `weight.nested_absmax` (float32) and `weight.nested_quant_map` (float32 [256]).
struct QuantInfo {
    QuantMethod method = QuantMethod::none;
    std::vector<std::int64_t> shape;   // the dequantized weight [out, in]
    DType dtype = DType::f32;          // dtype of the weight before quantization (bitsandbytes' `dtype`)
    DType compute_dtype = DType::f32;  // what the matmul runs in
    std::int64_t blocksize = 64;
    bool nested = false;
    float nested_offset = 0.0f;        // mean subtracted from absmax before nesting
    std::int64_t nested_blocksize = 256;
    double threshold = 6.0;            // int8 outlier threshold
    // GPTQ (AutoGPTQ's packing, see gptq_pack.h): tensors `qweight`, `qzeros`, `scales`, `g_idx`.
    int bits = 4;                      // 2, 3, 4 or 8
    int group_size = -1;               // columns per group; -1: one group
    bool desc_act = false;             // act-order: g_idx is not in column order
    bool sym = true;
    // GGUF: the ggml type number of the blocks (Q4_K = 12...); tensor `weight` is uint8
    // [out, row bytes] holding the file's blocks, rows in Hugging Face's order.
    std::uint32_t ggml_type = 0;
    // GGUF q/k projections of llama models: the heads whose rows llama.cpp's converter interleaved
    // (0: Hugging Face's order). Kept as stored, the rotary embedding then rotates adjacent pairs.
    std::int64_t rope_interleaved_heads = 0;
};

// The bitsandbytes quant_state JSON ("quant_type", "blocksize", "dtype", "shape",
// "nested_blocksize", "nested_dtype", "nested_offset"). `where` names the tensor for errors.
QuantInfo parse_bnb_quant_state(std::string_view json_text, const std::string& where);
std::string bnb_quant_state_json(const QuantInfo& info);

// True for the companions bitsandbytes saves beside a quantized weight (SCB, weight_format,
// weight.absmax, weight.quant_map, weight.nested_*, weight.quant_state.*) and GPTQ's qweight,
// qzeros and g_idx (its `scales` is recognised beside a qweight): not model tensors.
bool is_quant_companion(const std::string& tensor_name);

// config.json's "quantization_config" as transformers writes it for bitsandbytes.
nlohmann::json bnb_quantization_config(const QuantOptions& options, DType compute_dtype);
// Reads it back (FormatError for a malformed one, UnsupportedError for another quant_method).
QuantOptions parse_bnb_quantization_config(const nlohmann::json& config, const std::string& where);

} // namespace layerwise
