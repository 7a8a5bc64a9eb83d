#pragma once
// Architectures as tables (one file per family in models/): the modules of the
// transformers class in registration order, their tensors with shapes derived from the
// config, the no-split block class, tied weights and old checkpoint names.
#include "core/dtype.h"
#include "model/config.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace layerwise {

using ShapeFn = std::vector<std::int64_t> (*)(const ModelConfig&);
using ConditionFn = bool (*)(const ModelConfig&);

struct TensorSpec {
    const char* name;                // "weight", "bias", "inv_freq"
    ShapeFn shape;
    ConditionFn present = nullptr;   // nullptr: always present
    bool buffer = false;
    bool persistent = true;          // non-persistent buffers are never in checkpoints
    std::optional<DType> fixed_dtype; // buffers transformers keeps in float32 whatever the model dtype
};

struct ModuleSpec {
    std::string path;       // relative to the model root; "{i}" = layer index, repeated per layer
    std::string class_name; // "{P}" = the family's class prefix, "{act}" = activation class
    std::vector<TensorSpec> tensors;
    ConditionFn present = nullptr;
};

struct ArchSpec {
    std::string model_type;      // "llama"
    std::string class_prefix;    // "Llama"
    std::string causal_lm_class; // "LlamaForCausalLM"
    std::string base_prefix;     // "model": checkpoints of the bare base model omit it
    std::string layer_class;     // the no-split block, "{P}DecoderLayer"
    std::vector<ModuleSpec> modules;
    // (tensor, the tensor it shares storage with) when config.tie_word_embeddings
    std::vector<std::pair<std::string, std::string>> tied;
    // (old name prefix, current name prefix) found in older checkpoints
    std::vector<std::pair<std::string, std::string>> renamed;
};

const ArchSpec* find_arch(const std::string& model_type);
std::string supported_arch_list(); // "gpt2, gpt_neox, llama, mistral, qwen2, qwen3"

// The class transformers uses for an activation name ("silu" -> "SiLUActivation").
std::string activation_class(const std::string& hidden_act);

// Family tables, defined in models/<family>.cpp.
ArchSpec llama_family_arch(const std::string& model_type, const std::string& class_prefix);
ArchSpec gpt2_arch();
ArchSpec gpt_neox_arch();

} // namespace layerwise
