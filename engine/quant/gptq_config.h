#pragma once
// GPTQ checkpoints as AutoGPTQ writes and finds them: the quantize config (`quantize_config.json`,
// and the same object as config.json's `quantization_config`), and which weights file of a model
// folder holds the packed model. No LibTorch here.
#include <filesystem>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

namespace layerwise {

struct GptqConfig {
    int bits = 4;              // 2, 3, 4 or 8
    int group_size = 128;      // input columns sharing one scale and zero point; -1: one group
    bool desc_act = false;     // act-order: columns quantized by decreasing Hessian diagonal (g_idx not monotone)
    bool sym = true;           // symmetric: every zero point is 2^(bits-1)
    bool static_groups = false;
    double damp_percent = 0.01; // Hessian dampening, a fraction of its mean diagonal, in (0, 1)
    bool true_sequential = true;
    bool is_marlin_format = false;
    std::optional<std::string> model_name_or_path;
    std::optional<std::string> model_file_base_name; // weights file name without extension
    std::string checkpoint_format = "gptq";          // how qzeros are stored (only "gptq": zero - 1)

    // The group size in columns for `in` input features (-1: all of them).
    long long group_columns(long long in) const { return group_size < 0 ? in : group_size; }
};

// An AutoGPTQ quantize config (quantize_config.json's object, or config.json's
// quantization_config). Unknown keys are ignored as AutoGPTQ ignores them; `w_bit` and
// `q_group_size` are read as bits and group_size. FormatError naming `where` and the field for a
// value of the wrong type or out of range; UnsupportedError for another quant_method, an AWQ
// ("version": "GEMM") or Marlin config, or a checkpoint_format other than "gptq".
GptqConfig parse_gptq_config(const nlohmann::json& j, const std::string& where);

// The object AutoGPTQ's BaseQuantizeConfig.to_dict() writes, keys in its order (ordered_json).
nlohmann::ordered_json gptq_config_json(const GptqConfig& config);
// quantize_config.json's text: the object above, indented by 2 as Python's json.dump(indent=2).
std::string gptq_quantize_config_text(const GptqConfig& config);

// "gptq_model-4bit-128g" (AutoGPTQ's file name when model_file_base_name is not set).
std::string gptq_default_basename(const GptqConfig& config);

// Where a GPTQ model's config and weights are, and what may override them (files saved by
// other tools: a config elsewhere, weights under another base name).
struct GptqSource {
    std::optional<std::filesystem::path> config_file; // a quantize_config.json-like file, or a config.json
    std::optional<std::string> model_basename;        // the weights file without its extension
};

struct GptqCheckpoint {
    GptqConfig config;
    std::filesystem::path config_file;  // where the config was read
    std::filesystem::path weights;      // <base>.safetensors, <base>.safetensors.index.json, or .bin/.pt
};

// The GPTQ config of `folder`, looked up as AutoGPTQ's from_quantized does: quantize_config.json,
// then quant_config.json, then config.json's quantization_config (when its quant_method is
// "gptq"); nullopt when none of these describes a GPTQ model and nothing is overridden.
std::optional<GptqConfig> find_gptq_config(const std::filesystem::path& folder, const GptqSource& source = {},
                                           std::filesystem::path* config_file = nullptr);

// The config (as above) and the weights file: the explicit basename, else model_file_base_name,
// else gptq_model-<bits>bit-<group>g then "model"; each tried as .safetensors.index.json,
// .safetensors, then .bin and .pt. FormatError naming every file tried when none exists.
std::optional<GptqCheckpoint> find_gptq_checkpoint(const std::filesystem::path& folder, const GptqSource& source = {});

} // namespace layerwise
