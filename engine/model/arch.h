#pragma once
// Architectures as tables: each architecture is one file in engine/archs/ holding all it is —
// how its config.json is read, the modules of the transformers class in registration order with
// their tensors, the no-split block class, tied weights and old checkpoint names, its GGUF names,
// its quirks, the tensors GPTQ quantizes in which order, and its forward pass. The files are
// listed in one table (archs/table.cpp); the rest of the engine asks an Architecture, never
// compares a model_type with a name.
//
// This header sits in model/ (the module tree and config parsing need it) while the forward
// passes need runtime/, which sits above: the forward members are plain function pointers over
// types declared here only by name, defined by runtime/ and filled in by the archs/ files.
// Built with LAYERWISE_ARCH_TABLES_ONLY (the Torch-free fuzz targets), the archs/ files leave
// the forward members null and hold their config readers and tables only.
#include "core/dtype.h"
#include "model/config.h"

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace at {
class Tensor;
}

namespace layerwise {

class Checkpoint;
class ConfigReader;
struct ForwardStep;
struct LayerWeights;

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
    std::string path;       // relative to the model root; "{i}" = layer index, repeated per layer;
                            // "{e}" = expert index, repeated per expert (config.num_experts)
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

// What sets an architecture apart beyond its tables.
struct ArchQuirks {
    bool rotary = true;       // rotary position embeddings: the config's rope keys are read, cos/sin computed
    bool qkv_bias = false;    // q/k/v always carry a bias and o never does, whatever attention_bias says (Qwen2)
    bool qk_norm = false;     // an RMSNorm over each head of q and k before the rotation (Qwen3)
    bool fused_decode = false; // CPU decode steps over GGUF blocks may run runtime/decode_fused.cpp (llama layout)
};

// llama.cpp's names for the architecture's tensors (empty `arch`: no GGUF form).
struct GgufNaming {
    std::string arch;                                        // general.architecture
    bool experts = false;                                    // the form with experts (<arch>.expert_count): llama's is Mixtral
    bool experts_renormalised = true; // the chosen experts' weights sum to 1 unless <arch>.expert_weights_norm says
    bool windowed = false;                                   // <arch>.attention.sliding_window > 0: every layer attends over it
    // Gemma: the hidden activation, local layers every `local_every` (layer i local when
    // i % local_every < local_every - 1, llama.cpp's swa pattern, unless
    // <arch>.attention.sliding_window_pattern says otherwise) over <arch>.attention.sliding_window
    // positions, else `default_window` (0: no layer is local without the key, as llama.cpp's Gemma 3),
    // local layers rotating with their own base (<arch>.rope.freq_base_swa, else llama.cpp's
    // 10000: Gemma 3), norm weights stored as 1 + w, and the attention scale llama.cpp derives from
    // the model's size: 1 / sqrt(head size), but hidden / heads for the one size whose layer count
    // is `gemma_hidden_scale_layers` (27B).
    std::string hidden_act = "silu";
    int local_every = 0;
    std::int64_t default_window = 4096;
    bool local_rope = false;
    bool norms_hold_one = false;
    bool gemma_query_scale = false;
    std::int64_t gemma_hidden_scale_layers = 0;
    double swiglu_limit = 0; // gpt-oss: the experts' clamped gate (ModelConfig::swiglu_limit), fixed in llama.cpp
    bool rope_permuted = false;                              // q/k rows reordered by llama.cpp's converter
    std::vector<std::pair<std::string, std::string>> blocks; // "attn_q" -> "self_attn.q_proj" (inside a layer)
    std::vector<std::pair<std::string, std::string>> globals; // "token_embd" -> "model.embed_tokens"
};

// The forward pass, in three parts so that a caller can run one decoder layer at a time:
//   embed(step, ids)                  -> hidden states [batch, n, hidden] on step.exec
//   layer(step, index, weights, h)    -> the decoder layer's output (on its weights' device)
//   head(step, h)                     -> logits of the final norm and output head
using EmbedFn = at::Tensor (*)(const ForwardStep& step, const at::Tensor& ids);
using DecoderLayerFn = at::Tensor (*)(const ForwardStep& step, std::size_t layer, const LayerWeights& weights,
                                      const at::Tensor& hidden);
using HeadFn = at::Tensor (*)(const ForwardStep& step, const at::Tensor& hidden);

struct Architecture {
    ArchSpec spec;
    // Reads the architecture's config.json keys (the rope keys are read for rotary ones).
    void (*read_config)(const ConfigReader& reader, ModelConfig& config) = nullptr;
    ArchQuirks quirks;
    GgufNaming gguf;
    std::string layers_path; // the decoder layers' ModuleList, "model.layers"
    // The linears of a decoder layer GPTQ quantizes, in AutoGPTQ's inside_layer_modules order:
    // each group sees the groups before it already quantized (true_sequential).
    std::vector<std::vector<std::string>> gptq_sequential;
    // Rewrites a Hugging Face checkpoint's entries into the tree's names before they are matched
    // (gpt-oss: one entry per expert out of its fused tensors); nullptr: none. Not for GGUF files.
    void (*adopt_checkpoint)(Checkpoint& checkpoint, const ModelConfig& config) = nullptr;
    EmbedFn embed = nullptr;
    DecoderLayerFn layer = nullptr;
    HeadFn head = nullptr;

    std::string layer_prefix(std::int64_t index) const { return layers_path + "." + std::to_string(index) + "."; }
};

// The built-in architectures: the one table, defined in archs/table.cpp.
const std::vector<Architecture>& builtin_architectures();

// Adds an architecture beside the built-in ones (a variant defined outside the engine, such as a
// test's). Registered before any model of it is read; a model_type already known is replaced.
// Not thread-safe against concurrent lookups.
void register_architecture(Architecture architecture);

const Architecture* find_architecture(const std::string& model_type);
// `experts`: the file gives <arch>.expert_count (llama.cpp writes Mixtral as "llama" with experts).
const Architecture* find_gguf_architecture(const std::string& gguf_arch, bool experts = false);
const ArchSpec* find_arch(const std::string& model_type);
std::string supported_arch_list();  // "gemma2, gpt2, gpt_neox, llama, mistral, phi3, qwen2, qwen3"
std::string supported_gguf_list();  // "gemma2, gemma3, llama, phi3, qwen2, qwen2moe, qwen3, qwen3moe, ..."

// The class transformers uses for an activation name ("silu" -> "SiLUActivation").
std::string activation_class(const std::string& hidden_act);

} // namespace layerwise
